#!/usr/bin/env bash
# Benchmarks keygate with public tools only: builds the release binary and the load generator
# (examples/loadgen.rs), seeds a fresh database with 1000 keys, starts the server, runs each
# scenario, and reports throughput, latency and the server's memory (from /proc).
#   bench/run.sh [scenario ...]      env: CLIENTS (16), DURATION (10 seconds), WORKERS (server threads, 0 = cores)
set -euo pipefail
cd "$(dirname "$0")/.."
clients="${CLIENTS:-16}"
duration="${DURATION:-10}"
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(gitlab-get gitlab-list github-list create-delete)

cargo build --release --locked --quiet --bin keygate --example loadgen
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
echo "keygate $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores; server pid $pid at $url"
echo "idle: $(grep VmRSS /proc/$pid/status | tr -s ' ')"

start=$(date +%s.%N)
"$gen" "$url" "$token" seed --count 1000
echo "seed: 1000 sequential creates in $(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $start}") s"

for s in "${scenarios[@]}"; do
  "$gen" "$url" "$token" "$s" --clients "$clients" --seconds "$duration"
done
echo "after load: $(grep -E 'VmRSS' /proc/$pid/status | tr -s ' '); peak: $(grep VmHWM /proc/$pid/status | tr -s ' ')"
