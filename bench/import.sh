#!/usr/bin/env bash
# Times `keygate import authorized-keys` and `keygate export authorized-keys` with public tools
# only: examples/seed.rs writes N distinct ed25519 public keys as an authorized_keys file (into a
# scratch database thrown away, so the measured database starts empty), shuf puts the lines in
# random order, as a real file is, and date +%s.%N times each step on a fresh database:
#   first import (every key new), second import (every key already present), export of them all.
#   bench/import.sh [N]        (N: 100000)
#   env: BENCH_POSTGRES_URL (run on a fresh schema of this PostgreSQL database instead of a SQLite file)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
n="$(awk -v n="${1:-100000}" 'BEGIN{printf "%d", n}')"
cargo build --release --quiet --example seed
cargo build --release --quiet --bin keygate
bin="$PWD/target/release/keygate"
seeder="$PWD/target/release/examples/seed"
work="$(mktemp -d)"
schema=""
cleanup() {
  pg_schema_drop "$schema"
  rm -rf "$work"
}
trap cleanup EXIT
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  schema="bench_import_$$"
  db="$(pg_schema_url "$schema")"
else
  db="$work/import.db"
fi
"$seeder" --db "$work/scratch.db" --keys "$n" --repos 1 --sample 1 \
  --authorized-keys-out "$work/ordered" >/dev/null
shuf "$work/ordered" >"$work/authorized_keys"
"$bin" --db "$db" repo add bench/import >/dev/null
echo "keygate $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores, store $([ -n "$schema" ] && echo PostgreSQL || echo SQLite), $n lines"
# Runs keygate with ARGS, stdout to OUT; prints the seconds it took.
timed() { # out args...
  local out="$1" start
  shift
  start="$(date +%s.%N)"
  RUST_LOG=warn "$bin" --db "$db" "$@" >"$out"
  awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $start}"
}
secs="$(timed "$work/first" import authorized-keys "$work/authorized_keys" --repo bench/import)"
echo "import (all new): $secs s, $(awk -v n="$n" -v s="$secs" 'BEGIN{printf "%.0f", n / s}') lines/s: $(cat "$work/first")"
secs="$(timed "$work/second" import authorized-keys "$work/authorized_keys" --repo bench/import)"
echo "import again (all present): $secs s: $(cat "$work/second")"
secs="$(timed "$work/exported" export authorized-keys --secret-file "$work/internal.secret" --git-root /srv/git)"
echo "export: $secs s, $(wc -l <"$work/exported") lines"
