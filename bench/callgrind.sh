#!/usr/bin/env bash
# Counts the user-space instructions one GitLab GET of a key and one GitLab list page of 20 keys cost
# the release gateway, and one request costs the hello-json anchor (bench/hello.rs), with valgrind's callgrind: a figure that repeats from run
# to run on a shared machine, where req/s and CPU time do not.
#   bench/callgrind.sh [N]     N identical requests per server (default 2000)
#   env: WARMUP (200 requests before the counted ones), OUT (where the callgrind.out files are kept,
#        target/callgrind; open them with callgrind_annotate), KEYGATE_BIN (a keygate binary to count
#        instead of this checkout's: an older build, for a before and after)
# Each server runs twice under `valgrind --tool=callgrind` with one worker: once sent WARMUP requests,
# once WARMUP + N, by `examples/loadgen.rs repeat` (one keep-alive connection, one request at a time,
# each must be 200), then stopped with SIGTERM. Instructions per request = (Ir of the second run - Ir of
# the first) / N: start-up, warm-up (first connection, prepared statements, page cache) and shutdown
# cancel out. The database: 1000 keys on one repository (examples/seed.rs), GET of key 500 and the first
# page of 20, as in bench/run.sh. Needs valgrind (Debian package `valgrind`).
# gitlab-write: N durable writes on one connection by `loadgen repeat-write`, alternately a POST
# of a fresh ed25519 key to project 2 (acme/scratch, empty) and the DELETE of that key (201, 204),
# each its own group-commit batch and fsync; instructions per write request, create and delete
# averaged (N and WARMUP rounded down to even).
#   bench/callgrind.sh N LABEL...   only these of gitlab-get gitlab-list hello-json gitlab-write
#                                   (the ratio lines need their two labels)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-2000}"
shift $(( $# > 0 ? 1 : 0 ))
labels=("$@")
[ ${#labels[@]} -gt 0 ] || labels=(gitlab-get gitlab-list hello-json gitlab-write)
warm="${WARMUP:-200}"
out="${OUT:-$PWD/target/callgrind}"
command -v valgrind >/dev/null || { echo "bench/callgrind.sh needs valgrind: apt-get install valgrind" >&2; exit 1; }
# Two builds: built together with the examples, the binary would get their dev-dependency features.
cargo build --release --quiet --example loadgen --example seed --example hello
cargo build --release --quiet --bin keygate
bin="${KEYGATE_BIN:-$PWD/target/release/keygate}"
gen="$PWD/target/release/examples/loadgen"
mkdir -p "$out"
work="$(mktemp -d)"
server=""
cleanup() {
  [ -z "$server" ] || kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

db="$work/callgrind.db"
target/release/examples/seed --db "$db" --keys 1000 --repos 1 >/dev/null
"$bin" --db "$db" user add bench --admin >/dev/null
token="$("$bin" --db "$db" token add bench)"
"$bin" --db "$db" repo add acme/scratch >/dev/null

# Total Ir of one run of a server under callgrind that is sent COUNT requests.
instructions() { # label, count, command...
  local label="$1" count="$2" file="$out/$1-$2.out" u=""
  shift 2
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$file" "$@" --listen 127.0.0.1:0 --workers 1 \
    2>"$work/$label.log" &
  server=$!
  # Valgrind takes seconds to start an 11 MB binary.
  for _ in $(seq 600); do u="$(grep -o 'listening on http://[0-9.:]*' "$work/$label.log" | head -1)"; [ -n "$u" ] && break; sleep 0.1; done
  [ -n "$u" ] || { echo "$label did not start:" >&2; cat "$work/$label.log" >&2; exit 1; }
  "$gen" "${u#listening on }" "$token" "${modes[$label]:-repeat}" --path "${paths[$label]}" --count "$count"
  kill -TERM "$server"
  wait "$server" || true
  server=""
  awk '/^(summary|totals):/ {print $2; exit}' "$file"
}

echo "keygate $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(valgrind --version), $n requests after $warm"
declare -A per
declare -A paths=([gitlab-get]=/api/v4/projects/1/deploy_keys/500 [gitlab-list]='/api/v4/projects/1/deploy_keys?per_page=20'
  [hello-json]=/api/v4/projects/1/deploy_keys/500 [gitlab-write]=/api/v4/projects/2/deploy_keys)
declare -A modes=([gitlab-write]=repeat-write)
for label in "${labels[@]}"; do
  [ -n "${paths[$label]:-}" ] || { echo "bench/callgrind.sh: unknown label $label" >&2; exit 2; }
  warm_l="$warm" n_l="$n"
  [ "${modes[$label]:-}" != repeat-write ] || { warm_l="$(( warm / 2 * 2 ))"; n_l="$(( n / 2 * 2 ))"; }
  case "$label" in
    gitlab-*) cmd=("$bin" --db "$db" serve --internal-secret-file "$work/internal.secret" --rate-limit-per-user 1000000000) ;;
    hello-json) cmd=(target/release/examples/hello) ;;
  esac
  base="$(instructions "$label" "$warm_l" "${cmd[@]}")"
  total="$(instructions "$label" "$(( warm_l + n_l ))" "${cmd[@]}")"
  per[$label]="$(( (total - base) / n_l ))"
  printf 'callgrind %s: %d instructions/request ((%d - %d Ir) / %d; %s)\n' "$label" "${per[$label]}" "$total" "$base" "$n_l" \
    "$out/$label-$(( warm_l + n_l )).out"
done
[ -z "${per[hello-json]:-}" ] || [ -z "${per[gitlab-get]:-}" ] || awk -v h="${per[hello-json]}" -v g="${per[gitlab-get]}" \
  'BEGIN{ printf "callgrind ratio hello-json / gitlab-get: %.2f (the same ratio as bench/run.sh, in instructions)\n", h / g }'
[ -z "${per[gitlab-list]:-}" ] || [ -z "${per[gitlab-get]:-}" ] || awk -v l="${per[gitlab-list]}" -v g="${per[gitlab-get]}" \
  'BEGIN{ printf "callgrind ratio gitlab-list (20 keys) / gitlab-get: %.2f (goal: at most 2)\n", l / g }'
