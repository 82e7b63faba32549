#!/usr/bin/env bash
# Benchmarks keygate with public tools only: builds the release binary and the seeding/write load
# generator (examples/loadgen.rs), seeds a fresh database with 1000 keys on one repository, starts
# the server, drives reads with wrk (Debian package `wrk`) and writes with loadgen, and reports
# throughput, latency, server CPU per request and the server's memory (from /proc).
#   bench/run.sh [scenario ...]   scenarios: gitlab-get gitlab-list gitlab-list-1 github-list create-delete
#   env: CONNECTIONS (16), DURATION (10 seconds), WORKERS (server threads, 0 = one per core)
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
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

db="$work/bench.db"
"$bin" --db "$db" user add bench --admin
token="$("$bin" --db "$db" token add bench)"
"$bin" --db "$db" repo add acme/widgets >/dev/null
"$bin" --db "$db" repo add acme/scratch >/dev/null
RUST_LOG=warn "$bin" --db "$db" serve --listen 127.0.0.1:0 --workers "${WORKERS:-0}" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve.log" 2>/dev/null && break; sleep 0.1; done
url="$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -1)"
echo "keygate $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores, $connections connections, ${duration}s each"
echo "idle: $(grep VmRSS /proc/$pid/status | tr -s ' \t' ' ')"

start=$(date +%s.%N)
"$gen" "$url" "$token" seed --count 1000
echo "seed: 1000 sequential creates (one fsync'd transaction each) in $(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $start}") s"

# utime + stime of the server, in clock ticks (fields 14 and 15 of /proc/PID/stat).
server_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz="$(getconf CLK_TCK)"
run_wrk() { # name, header, path, [lua]
  local name="$1" header="$2" path="$3" lua="${4:-}" out before used requests
  before="$(server_ticks)"
  if [ -n "$lua" ]; then
    out="$(BENCH_PATH="$path" BENCH_PAGES="$([ "$name" = "${name#github}" ] && echo 50 || echo 34)" wrk -t2 -c"$connections" -d"${duration}s" --latency -H "$header" -s bench/pages.lua "$url")"
  else
    out="$(wrk -t2 -c"$connections" -d"${duration}s" --latency -H "$header" "$url$path")"
  fi
  used="$(( $(server_ticks) - before ))"
  requests="$(echo "$out" | awk '/requests in/ {print $1}')"
  if echo "$out" | grep -q "Non-2xx"; then echo "$name: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
  printf '%s: %s req/s, p50 %s, p99 %s, server CPU %s us/request\n' "$name" \
    "$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')" \
    "$(echo "$out" | awk '$1 == "50%" {print $2}')" "$(echo "$out" | awk '$1 == "99%" {print $2}')" \
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
      line="$("$gen" "$url" "$token" create-delete --clients "$connections" --seconds "$duration")"
      used="$(( $(server_ticks) - before ))"
      requests="$(echo "$line" | sed -n 's/.* \([0-9]*\) requests.*/\1/p')"
      echo "$line; server CPU $(awk "BEGIN{printf \"%.0f\", $used / $hz * 1e6 / $requests}") us/request" ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
echo "after load: $(grep VmRSS /proc/$pid/status | tr -s ' \t' ' '); peak $(grep VmHWM /proc/$pid/status | tr -s ' \t' ' ')"
