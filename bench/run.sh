#!/usr/bin/env bash
# Benchmarks keygate with public tools only: builds the release binary and the seeding/write load
# generator (examples/loadgen.rs), seeds a fresh database with 1000 keys on one repository, starts
# the server, drives reads with wrk (Debian package `wrk`) and writes with loadgen, and reports
# throughput, latency, server CPU per request and the server's memory (from /proc).
# In the same run it measures two anchors (issue 10) and prints keygate's figures as ratios of them:
#   hello-json    bench/hello.rs, actix-web with keygate's server settings answering a constant JSON
#                 object, loaded by wrk exactly like gitlab-get (ratio: hello CPU / gitlab-get CPU)
#   sqlite-full   bench/sqlite_full.rs, raw SQLite WAL + synchronous=FULL, one insert per
#                 BEGIN IMMEDIATE/COMMIT, 16 threads and 1 (ratio: create-delete req/s / inserts/s)
# and with --keys N the scale scenarios: a database of 10^3 keys and one of N keys (examples/seed.rs,
# N/1000 repositories of 1000 keys each), each served by its own gateway, measured alike: GitLab GET
# of one key, GitLab list page 1 of a 1000-key repository, the admin list GET /api/v4/deploy_keys,
# and the SSH lookup GET /internal/ssh/authorized-key; ratios N / 10^3 and each gateway's VmHWM.
#   bench/run.sh [--keys N] [scenario ...]
#     scenarios: gitlab-get gitlab-list gitlab-list-1 github-list create-delete sqlite-full hello-json
#                (the default: all of these; sqlite-full right after create-delete, as both wait on the
#                same disk's fsync), scale (added by --keys N, e.g. --keys 1e6; SQLite only)
#   env: CONNECTIONS (16), DURATION (10 seconds), WORKERS (server threads, 0 = one per core),
#        BENCH_POSTGRES_URL (run on a fresh schema of this PostgreSQL database instead of a SQLite file),
#        KEYGATE_BIN (a keygate binary to measure instead of this checkout's: an older build, for a
#        before and after in one sitting), GATEWAYS (1; with 2, a second server on the same
#        PostgreSQL shares the load: each load generator's connections are split between the two,
#        and the figures add both servers up)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
connections="${CONNECTIONS:-16}"
duration="${DURATION:-10}"
scale_keys=""
scenarios=()
while [ $# -gt 0 ]; do
  case "$1" in
    --keys) [ $# -ge 2 ] || { echo "--keys needs a number" >&2; exit 2; }
      scale_keys="$(awk -v n="$2" 'BEGIN{printf "%d", n}')"; shift 2 ;;
    *) scenarios+=("$1"); shift ;;
  esac
done
[ ${#scenarios[@]} -gt 0 ] || scenarios=(gitlab-get gitlab-list gitlab-list-1 github-list create-delete sqlite-full hello-json)
if [ -n "$scale_keys" ]; then
  [ "$scale_keys" -gt 1000 ] || { echo "--keys must be more than the 1000 it is compared with" >&2; exit 2; }
  case " ${scenarios[*]} " in *" scale "*) ;; *) scenarios+=(scale) ;; esac
fi
case " ${scenarios[*]} " in *" scale "*) [ -n "$scale_keys" ] || scale_keys=1000000 ;; esac

if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  else echo "bench/run.sh needs wrk: apt-get install wrk" >&2; exit 1; fi
fi
# Two builds: built together with the examples, the binary would get their dev-dependency features.
cargo build --release --quiet --example loadgen --example seed --example hello --example sqlite_full
cargo build --release --quiet --bin keygate
bin="${KEYGATE_BIN:-$PWD/target/release/keygate}"
gen="$PWD/target/release/examples/loadgen"
seeder="$PWD/target/release/examples/seed"
hello="$PWD/target/release/examples/hello"
sqlite_full="$PWD/target/release/examples/sqlite_full"
work="$(mktemp -d)"
pids=()
others=() # anchor and scale servers, stopped after their scenario (or here, on failure)
gateways="${GATEWAYS:-1}"
schema=""
cleanup() {
  for p in "${pids[@]}" "${others[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg_schema_drop "$schema"
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  schema="bench_$$"
  db="$(pg_schema_url "$schema")"
else
  [ "$gateways" = 1 ] || { echo "GATEWAYS=2 needs BENCH_POSTGRES_URL" >&2; exit 2; }
  db="$work/bench.db"
fi
"$bin" --db "$db" user add bench --admin
token="$("$bin" --db "$db" token add bench)"
"$bin" --db "$db" repo add acme/widgets >/dev/null
"$bin" --db "$db" repo add acme/scratch >/dev/null
# Waits for a server started in the background (its stderr in LOG) to say where it listens.
listening_url() { # log
  local u=""
  for _ in $(seq 100); do u="$(grep -o 'listening on http://[0-9.:]*' "$1" 2>/dev/null | head -1)"; [ -n "$u" ] && break; sleep 0.1; done
  [ -n "$u" ] || { echo "no server came up:" >&2; cat "$1" >&2; exit 1; }
  echo "${u#listening on }"
}
# One user sends every request: a budget far above the run keeps the per-user accounting running
# (its cost is part of each request) without ever refusing one.
budget="--rate-limit-per-user 1000000000"
urls=()
for g in $(seq "$gateways"); do
  RUST_LOG=warn "$bin" --db "$db" serve --listen 127.0.0.1:0 --workers "${WORKERS:-0}" $budget \
    --internal-secret-file "$work/internal.secret" 2>"$work/serve$g.log" &
  pids+=($!)
  urls+=("$(listening_url "$work/serve$g.log")")
done
pid="${pids[0]}"
url="${urls[0]}"
# The servers run_wrk loads and measures: keygate's gateways, unless a scenario aims elsewhere.
target_pids=("${pids[@]}")
target_urls=("${urls[@]}")
echo "keygate $([ -n "${KEYGATE_BIN:-}" ] && echo "$KEYGATE_BIN" || git rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores, $connections connections, ${duration}s each, store $([ -n "$schema" ] && echo PostgreSQL || echo SQLite), $gateways gateway(s)"
echo "idle: $(grep VmRSS /proc/$pid/status | tr -s ' \t' ' ')"

start=$(date +%s.%N)
"$gen" "$url" "$token" seed --count 1000
echo "seed: 1000 sequential creates (one fsync'd transaction each) in $(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $start}") s"

# utime + stime of the target servers, in clock ticks (fields 14 and 15 of /proc/PID/stat).
server_ticks() { local t=0 p; for p in "${target_pids[@]}"; do t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat") )); done; echo "$t"; }
share=$(( connections / gateways ))
hz="$(getconf CLK_TCK)"
# Figures kept for the ratios at the end: "name" -> "req/s cpu_us".
declare -A figure
run_wrk() { # name, header, path, [lua script: pages.lua spreads over pages, any other is used as is]
  local name="$1" header="$2" path="$3" lua="${4:-}" out before used requests rps cpu
  local c=$(( connections / ${#target_urls[@]} ))
  before="$(server_ticks)"
  local g waits=()
  for g in "${!target_urls[@]}"; do
    if [ -n "$lua" ]; then
      BENCH_PATH="$path" BENCH_PAGES="$([ "$name" = "${name#github}" ] && echo 50 || echo 34)" wrk -t2 -c"$c" -d"${duration}s" --latency -H "$header" -s "$lua" "${target_urls[$g]}" >"$work/wrk$g" &
    else
      wrk -t2 -c"$c" -d"${duration}s" --latency -H "$header" "${target_urls[$g]}$path" >"$work/wrk$g" &
    fi
    waits+=($!)
  done
  wait "${waits[@]}"
  out="$(cat "$work"/wrk*)"
  rm -f "$work"/wrk*
  used="$(( $(server_ticks) - before ))"
  requests="$(echo "$out" | awk '/requests in/ {n += $1} END {print n}')"
  if echo "$out" | grep -q "Non-2xx"; then echo "$name: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
  rps="$(echo "$out" | awk '/Requests\/sec/ {n += $2} END {printf "%.0f", n}')"
  cpu="$(awk "BEGIN{printf \"%.1f\", $used / $hz * 1e6 / $requests}")"
  figure[${name%% (*}]="$rps $cpu"
  printf '%s: %s req/s, p50 %s, p99 %s, server CPU %s us/request\n' "$name" "$rps" \
    "$(echo "$out" | awk '$1 == "50%" {print $2; exit}')" "$(echo "$out" | awk '$1 == "99%" {print $2; exit}')" \
    "$(awk "BEGIN{printf \"%.0f\", $cpu}")"
}
# a / b to two decimals, or "-" when either is missing.
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN{ if (a != "" && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
stop_others() { local p; for p in "${others[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; others=(); }
vm() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; } # pid, VmRSS/VmHWM: kB

# A fresh database of N keys on R repositories (examples/seed.rs, round-robin, so bench/repo-1 holds N/R).
scale_seed() { # keys, repos
  "$seeder" --db "$work/scale-$1.db" --keys "$1" --repos "$2" --sample-out "$work/sample-$1" --sample 1000 | sed "s/^/scale N=$1: /"
}
# One size of the scale scenarios: its database (seeded here unless it is already), its own gateway,
# the four lookups, then the gateway's memory.
scale_size() { # keys, repos
  local n="$1" repos="$2" sdb="$work/scale-$1.db" log="$work/scale-$1.log" surl spid stoken secret rid kid
  [ -e "$sdb" ] || scale_seed "$n" "$repos"
  "$bin" --db "$sdb" user add bench --admin >/dev/null
  stoken="$("$bin" --db "$sdb" token add bench)"
  # Seeding 10^6 keys leaves ~0.5 GB of dirty pages; their writeback would land in the measurements.
  sync
  RUST_LOG=warn "$bin" --db "$sdb" serve --listen 127.0.0.1:0 --workers "${WORKERS:-0}" $budget \
    --internal-secret-file "$work/scale-$n.secret" 2>"$log" &
  spid=$!
  others+=("$spid")
  surl="$(listening_url "$log")"
  secret="$(cat "$work/scale-$n.secret")"
  rid="$(curl -sf -H "PRIVATE-TOKEN: $stoken" "$surl/api/v4/projects/bench%2Frepo-1" | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2)"
  # The key in the middle of the repository's list, so the GET is not of the first row inserted.
  kid="$(curl -sf -H "PRIVATE-TOKEN: $stoken" "$surl/api/v4/projects/$rid/deploy_keys?per_page=1&page=$(( n / repos / 2 ))" | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2)"
  [ -n "$rid" ] && [ -n "$kid" ] || { echo "scale N=$n: no repository bench/repo-1 or no key in it" >&2; exit 1; }
  target_pids=("$spid")
  target_urls=("$surl")
  run_wrk "scale-gitlab-get N=$n" "PRIVATE-TOKEN: $stoken" "/api/v4/projects/$rid/deploy_keys/$kid"
  run_wrk "scale-gitlab-list-page1 N=$n (20 of $(( n / repos )) keys)" "PRIVATE-TOKEN: $stoken" "/api/v4/projects/$rid/deploy_keys"
  run_wrk "scale-gitlab-admin-list N=$n (page 1, 20 of $n)" "PRIVATE-TOKEN: $stoken" /api/v4/deploy_keys
  BENCH_SAMPLE="$work/sample-$n" run_wrk "scale-ssh-lookup N=$n (1000 fingerprints)" "Authorization: Bearer $secret" "" bench/fingerprints.lua
  figure[scale-hwm N=$n]="$(vm "$spid" VmHWM)"
  echo "scale N=$n: database $(du -m "$sdb" | cut -f1) MB, $(grep VmRSS "/proc/$spid/status" | tr -s ' \t' ' '); peak $(grep VmHWM "/proc/$spid/status" | tr -s ' \t' ' ')"
  stop_others
  rm -f "$sdb" "$sdb"-*
  target_pids=("${pids[@]}")
  target_urls=("${urls[@]}")
}
for s in "${scenarios[@]}"; do
  case "$s" in
    gitlab-get) run_wrk "$s" "PRIVATE-TOKEN: $token" /api/v4/projects/1/deploy_keys/500 ;;
    gitlab-list) run_wrk "$s (20 per page, pages 1-50)" "PRIVATE-TOKEN: $token" /api/v4/projects/1/deploy_keys bench/pages.lua ;;
    gitlab-list-1) run_wrk "$s (per_page=1)" "PRIVATE-TOKEN: $token" "/api/v4/projects/1/deploy_keys?per_page=1" ;;
    github-list) run_wrk "$s (30 per page, pages 1-34)" "Authorization: token $token" /api/v3/repos/acme/widgets/keys bench/pages.lua ;;
    hello-json)
      "$hello" --listen 127.0.0.1:0 --workers "${WORKERS:-0}" 2>"$work/hello.log" &
      others+=($!)
      target_pids=($!)
      target_urls=("$(listening_url "$work/hello.log")")
      # The same path and header as gitlab-get: the anchor answers every request alike.
      run_wrk "anchor $s" "PRIVATE-TOKEN: $token" /api/v4/projects/1/deploy_keys/500
      stop_others
      target_pids=("${pids[@]}")
      target_urls=("${urls[@]}")
      ;;
    sqlite-full)
      # On the same file system as the benchmark database, so both pay the same fsync.
      out="$("$sqlite_full" --db "$work/anchor-full.db" --threads "$connections,1" --seconds "$duration")"
      rm -f "$work"/anchor-full.db*
      many="$(echo "$out" | awk 'NR == 1 {print $(NF - 1)}')"
      one="$(echo "$out" | awk 'NR == 2 {print $(NF - 1)}')"
      busy="$(echo "$out" | awk 'NR == 1 {print $(NF - 3)}')"
      figure[sqlite-full]="$many $one"
      echo "anchor sqlite-full: $connections threads $many inserts/s ($busy BEGINs busy past 5 s), 1 thread $one inserts/s (WAL, synchronous=FULL, one insert per BEGIN IMMEDIATE/COMMIT, ${duration}s each)" ;;
    scale)
      if [ -n "$schema" ]; then echo "scale: SQLite only (examples/seed.rs writes a file); skipped" >&2; continue; fi
      echo "scale: 1000 keys on 1 repository, then $scale_keys keys on $(( (scale_keys + 999) / 1000 )) repositories of ~1000 (bench/repo-1 is the one measured)"
      # Both databases first: seeding N takes minutes, and the two sizes are compared only if they
      # are measured close together, under the same load from whatever else runs on the machine.
      scale_seed "$scale_keys" "$(( (scale_keys + 999) / 1000 ))"
      scale_seed 1000 1
      scale_size 1000 1
      scale_size "$scale_keys" "$(( (scale_keys + 999) / 1000 ))" ;;
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
      figure[create-delete]="$(echo "$line" | tr ';' '\n' | sed -n 's/.* \([0-9]*\) req\/s.*/\1/p' | awk '{n += $1} END {print n}')"
      echo "$line; server CPU $(awk "BEGIN{printf \"%.0f\", $used / $hz * 1e6 / $requests}") us/request" ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
echo "after load: $(grep VmRSS /proc/$pid/status | tr -s ' \t' ' '); peak $(grep VmHWM /proc/$pid/status | tr -s ' \t' ' ')"

# Each ratio beside its figures and the goal of issue 10; "-" where a scenario did not run.
read -r get_rps get_cpu <<<"${figure[gitlab-get]:-}"
read -r _ hello_cpu <<<"${figure[anchor hello-json]:-}"
read -r _ list_cpu <<<"${figure[gitlab-list]:-}"
read -r full_many full_one <<<"${figure[sqlite-full]:-}"
[ -z "${get_cpu:-}" ] || [ -z "${hello_cpu:-}" ] ||
  echo "ratio gitlab-get server CPU: hello-json ${hello_cpu} us / gitlab-get ${get_cpu} us = $(ratio "$hello_cpu" "$get_cpu") (goal >= 0.5)"
[ -z "${get_cpu:-}" ] || [ -z "${list_cpu:-}" ] ||
  echo "ratio gitlab-list page of 20 / gitlab-get server CPU: ${list_cpu} us / ${get_cpu} us = $(ratio "$list_cpu" "$get_cpu")x (goal <= 2x)"
[ -z "${figure[create-delete]:-}" ] || [ -z "${full_many:-}" ] ||
  echo "ratio create-delete / sqlite-full: ${figure[create-delete]} req/s / $full_many inserts/s ($connections threads) = $(ratio "${figure[create-delete]}" "$full_many") (goal >= 2; against 1 thread's $full_one: $(ratio "${figure[create-delete]}" "$full_one"))"
if [ -n "${figure[scale-hwm N=1000]:-}" ]; then
  for s in gitlab-get gitlab-list-page1 gitlab-admin-list ssh-lookup; do
    read -r small_rps small_cpu <<<"${figure[scale-$s N=1000]}"
    read -r big_rps big_cpu <<<"${figure[scale-$s N=$scale_keys]}"
    echo "ratio scale-$s N=$scale_keys / N=1000: server CPU $(ratio "$big_cpu" "$small_cpu")x ($small_cpu -> $big_cpu us/request), req/s $(ratio "$small_rps" "$big_rps")x slower ($small_rps -> $big_rps) (goal: within 1.5x)"
  done
  for n in 1000 "$scale_keys"; do
    echo "ratio scale-gitlab-list-page1 / scale-gitlab-get N=$n server CPU: $(ratio "$(echo "${figure[scale-gitlab-list-page1 N=$n]}" | cut -d' ' -f2)" "$(echo "${figure[scale-gitlab-get N=$n]}" | cut -d' ' -f2)")x (goal <= 2x)"
  done
  echo "scale peak RSS: VmHWM $(awk "BEGIN{printf \"%.1f\", ${figure[scale-hwm N=1000]} / 1024}") MiB at N=1000, $(awk "BEGIN{printf \"%.1f\", ${figure[scale-hwm N=$scale_keys]} / 1024}") MiB at N=$scale_keys (goal < 64 MiB)"
fi
