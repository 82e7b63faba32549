#!/usr/bin/env bash
# Benchmarks keygate with public tools only: builds the release binary and the seeding/write load
# generator (examples/loadgen.rs), seeds a fresh database with 1000 keys on one repository, starts
# the server, drives reads with wrk (Debian package `wrk`) and writes with loadgen, and reports
# throughput, latency, server CPU per request and the server's memory (from /proc).
#   bench/run.sh [scenario ...]   scenarios: gitlab-get gitlab-list gitlab-list-1 github-list create-delete
#   env: CONNECTIONS (16), DURATION (10 seconds), WORKERS (server threads, 0 = one per core),
#        BENCH_POSTGRES_URL (run on a fresh schema of this PostgreSQL database instead of a SQLite file),
#        GATEWAYS (1; with 2, a second server on the same PostgreSQL shares the load: each load
#        generator's connections are split between the two, and the figures add both servers up)
set -euo pipefail
cd "$(dirname "$0")/.."
connections="${CONNECTIONS:-16}"
duration="${DURATION:-10}"
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(gitlab-get gitlab-list gitlab-list-1 github-list create-delete)

if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  else echo "bench/run.sh needs wrk: apt-get install wrk" >&2; exit 1; fi
fi
cargo build --release --quiet --bin keygate --example loadgen
bin="$PWD/target/release/keygate"
gen="$PWD/target/release/examples/loadgen"
work="$(mktemp -d)"
pids=()
gateways="${GATEWAYS:-1}"
schema=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$schema" ] && psql -qX "$BENCH_POSTGRES_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  schema="bench_$$"
  psql -qX -v ON_ERROR_STOP=1 "$BENCH_POSTGRES_URL" -c "CREATE SCHEMA $schema" >/dev/null
  case "$BENCH_POSTGRES_URL" in *\?*) sep='&' ;; *) sep='?' ;; esac
  db="${BENCH_POSTGRES_URL}${sep}options=-csearch_path%3D$schema"
else
  [ "$gateways" = 1 ] || { echo "GATEWAYS=2 needs BENCH_POSTGRES_URL" >&2; exit 2; }
  db="$work/bench.db"
fi
"$bin" --db "$db" user add bench --admin
token="$("$bin" --db "$db" token add bench)"
"$bin" --db "$db" repo add acme/widgets >/dev/null
"$bin" --db "$db" repo add acme/scratch >/dev/null
urls=()
for g in $(seq "$gateways"); do
  RUST_LOG=warn "$bin" --db "$db" serve --listen 127.0.0.1:0 --workers "${WORKERS:-0}" \
    --internal-secret-file "$work/internal.secret" 2>"$work/serve$g.log" &
  pids+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$work/serve$g.log" 2>/dev/null && break; sleep 0.1; done
  urls+=("$(grep -o 'http://[0-9.:]*' "$work/serve$g.log" | head -1)")
done
pid="${pids[0]}"
url="${urls[0]}"
echo "keygate $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores, $connections connections, ${duration}s each, store $([ -n "$schema" ] && echo PostgreSQL || echo SQLite), $gateways gateway(s)"
echo "idle: $(grep VmRSS /proc/$pid/status | tr -s ' \t' ' ')"

start=$(date +%s.%N)
"$gen" "$url" "$token" seed --count 1000
echo "seed: 1000 sequential creates (one fsync'd transaction each) in $(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $start}") s"

# utime + stime of the server, in clock ticks (fields 14 and 15 of /proc/PID/stat).
server_ticks() { local t=0 p; for p in "${pids[@]}"; do t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat") )); done; echo "$t"; }
share=$(( connections / gateways ))
hz="$(getconf CLK_TCK)"
run_wrk() { # name, header, path, [lua]
  local name="$1" header="$2" path="$3" lua="${4:-}" out before used requests
  before="$(server_ticks)"
  local g waits=()
  for g in $(seq 0 $(( gateways - 1 ))); do
    if [ -n "$lua" ]; then
      BENCH_PATH="$path" BENCH_PAGES="$([ "$name" = "${name#github}" ] && echo 50 || echo 34)" wrk -t2 -c"$share" -d"${duration}s" --latency -H "$header" -s bench/pages.lua "${urls[$g]}" >"$work/wrk$g" &
    else
      wrk -t2 -c"$share" -d"${duration}s" --latency -H "$header" "${urls[$g]}$path" >"$work/wrk$g" &
    fi
    waits+=($!)
  done
  wait "${waits[@]}"
  out="$(cat "$work"/wrk*)"
  rm -f "$work"/wrk*
  used="$(( $(server_ticks) - before ))"
  requests="$(echo "$out" | awk '/requests in/ {n += $1} END {print n}')"
  if echo "$out" | grep -q "Non-2xx"; then echo "$name: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
  printf '%s: %s req/s, p50 %s, p99 %s, server CPU %s us/request\n' "$name" \
    "$(echo "$out" | awk '/Requests\/sec/ {n += $2} END {printf "%.0f", n}')" \
    "$(echo "$out" | awk '$1 == "50%" {print $2; exit}')" "$(echo "$out" | awk '$1 == "99%" {print $2; exit}')" \
    "$(awk "BEGIN{printf \"%.0f\", $used / $hz * 1e6 / $requests}")"
}
for s in "${scenarios[@]}"; do
  case "$s" in
    gitlab-get) run_wrk "$s" "PRIVATE-TOKEN: $token" /api/v4/projects/1/deploy_keys/500 ;;
    gitlab-list) run_wrk "$s (20 per page, pages 1-50)" "PRIVATE-TOKEN: $token" /api/v4/projects/1/deploy_keys lua ;;
    gitlab-list-1) run_wrk "$s (per_page=1)" "PRIVATE-TOKEN: $token" "/api/v4/projects/1/deploy_keys?per_page=1" ;;
    github-list) run_wrk "$s (30 per page, pages 1-34)" "Authorization: token $token" /api/v3/repos/acme/widgets/keys lua ;;
    create-delete)
      before="$(server_ticks)"
      waits=()
      for g in $(seq 0 $(( gateways - 1 ))); do
        "$gen" "${urls[$g]}" "$token" create-delete --clients "$share" --seconds "$duration" >"$work/gen$g" &
        waits+=($!)
      done
      wait "${waits[@]}"
      line="$(cat "$work"/gen* | paste -sd ';' -)"
      rm -f "$work"/gen*
      used="$(( $(server_ticks) - before ))"
      requests="$(echo "$line" | tr ';' '\n' | sed -n 's/.* \([0-9]*\) requests.*/\1/p' | awk '{n += $1} END {print n}')"
      echo "$line; server CPU $(awk "BEGIN{printf \"%.0f\", $used / $hz * 1e6 / $requests}") us/request" ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
echo "after load: $(grep VmRSS /proc/$pid/status | tr -s ' \t' ' '); peak $(grep VmHWM /proc/$pid/status | tr -s ' \t' ' ')"
