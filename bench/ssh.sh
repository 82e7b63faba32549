#!/usr/bin/env bash
# Benchmarks the SSH door (issue 8) at 10^3..10^6 deploy keys, with public tools only (OpenSSH, wrk):
# for each size it seeds a fresh database (examples/seed.rs), starts the release gateway and two
# sshds, and measures
#   ssh-internal          GET /internal/ssh/authorized-key alone (wrk, 1 connection), server CPU/request
#   ssh-internal-16       the same route with 16 connections: throughput and server CPU/request
#   ssh-stage1            `keygate ssh authorized-keys … git TYPE B64` as sshd runs it, process start
#                         included (examples/spawntime.rs), and the gateway CPU per run
#   sshd-keygate          a real `ssh git@127.0.0.1 true` login through keygate's AuthorizedKeysCommand
#   sshd-authorized-keys-file  the anchor, same run: the same login against an AuthorizedKeysFile with
#                         the same N keys, the login key on the LAST line (worst case of sshd's scan)
# and prints ratios against the anchor and against the smallest size.
#   bench/ssh.sh [--sizes 1e3,1e4,1e5,1e6]
#   env: DURATION (wrk seconds, 5), STAGE1_RUNS (500), LOGIN_RUNS (100), FILE_LOGIN_BUDGET (seconds
#        of anchor logins per size, 60: fewer runs at 10^6, where one login scans ~90 MB)
# Needs root (sshd, the git account, a root-owned directory for the AuthorizedKeysCommand).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=(1000 10000 100000 1000000)
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) IFS=, read -r -a sizes <<<"$2"; shift 2 ;;
    *) echo "usage: bench/ssh.sh [--sizes 1e3,1e4,...]" >&2; exit 2 ;;
  esac
done
for i in "${!sizes[@]}"; do sizes[$i]="$(awk "BEGIN{printf \"%d\", ${sizes[$i]}}")"; done
duration="${DURATION:-5}"
stage1_runs="${STAGE1_RUNS:-500}"
login_runs="${LOGIN_RUNS:-100}"
file_budget="${FILE_LOGIN_BUDGET:-60}"

[ "$(id -u)" = 0 ] || { echo "bench/ssh.sh must run as root (it starts sshd)" >&2; exit 1; }
id git >/dev/null 2>&1 || { echo "bench/ssh.sh needs a 'git' account (useradd -r -m git)" >&2; exit 1; }
if ! command -v wrk >/dev/null 2>&1 || [ ! -x /usr/sbin/sshd ]; then
  apt-get install -y -qq wrk openssh-server openssh-client >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq wrk openssh-server openssh-client >/dev/null; }
fi
# Two builds: built together with the examples, the binary would get their dev-dependency features.
cargo build --release --quiet --example seed --example spawntime
cargo build --release --quiet --bin keygate
seed="$PWD/target/release/examples/seed"
spawntime="$PWD/target/release/examples/spawntime"

# sshd runs the AuthorizedKeysCommand only if it and every directory above it are root-owned and not
# writable by others: so not under /tmp. The database and client files can live anywhere.
door="/var/lib/keygate-bench"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work" "$door"
}
trap cleanup EXIT
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}
rm -rf "$door"
mkdir -p "$door/ak" "$door/git" /run/sshd
chmod 755 "$door" "$door/ak"
chown git: "$door/git"
install -m 755 target/release/keygate "$door/keygate"
ssh-keygen -q -t ed25519 -N "" -f "$door/host_ed25519"
ssh-keygen -q -t ed25519 -N "" -C login -f "$work/login"
# spawntime substitutes from sample lines; the login sample is the login key alone.
awk '{print "login", $1, $2}' "$work/login.pub" >"$work/login.sample"

free_port() {
  local p
  for p in $(shuf -i 20000-60000 -n 100); do
    ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
  echo "no free port" >&2; exit 1
}
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "nothing listens on $1" >&2; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"
ms() { # wrk's "212.00us" / "1.20ms" / "1.00s" in ms
  awk -v v="$1" 'BEGIN{ n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}
# Both logins use curve25519-sha256: OpenSSH 9's default sntrup761 hybrid costs the client ~60 ms of CPU,
# the same on both sides, which would only dilute the difference being measured.
ssh_cmd=(ssh -i "$work/login" -F /dev/null -o IdentitiesOnly=yes -o IdentityAgent=none
  -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR
  -o KexAlgorithms=curve25519-sha256)
start_sshd() { # name, port, extra config lines
  local name="$1" port="$2"
  printf 'Port %s\nListenAddress 127.0.0.1\nHostKey %s/host_ed25519\nPidFile %s/%s.pid\n%s\nPubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin no\nStrictModes no\nLogLevel ERROR\nMaxStartups 100\n' \
    "$port" "$door" "$door" "$name" "$3" >"$door/$name.config"
  /usr/sbin/sshd -D -f "$door/$name.config" -E "$work/$name.log" </dev/null &
  pids+=($!)
  wait_port "$port"
}
declare -A result
record() { # key, line: keeps "p50 p99" of a printed result line
  result[$1]="$(echo "$2" | sed -n 's/.*p50 \([0-9.]*\) ms p99 \([0-9.]*\) ms.*/\1 \2/p')"
}

echo "keygate $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores; $(ssh -V 2>&1 | cut -d, -f1); sizes ${sizes[*]}"
for n in "${sizes[@]}"; do
  stop_all
  db="$work/keys-$n.db"
  "$seed" --db "$db" --keys "$n" --repos 100 --add-key "$work/login.pub" \
    --sample-out "$work/sample" --sample 1000 --authorized-keys-out "$door/ak/git"
  chmod 644 "$door/ak/git"
  # Seeding 10^6 keys leaves ~0.5 GB of dirty pages; their writeback would land in the measurements.
  sync
  RUST_LOG=warn "$door/keygate" --db "$db" serve --listen 127.0.0.1:0 2>"$work/serve.log" &
  gw=$!
  pids+=("$gw")
  for _ in $(seq 100); do grep -q "listening on" "$work/serve.log" 2>/dev/null && break; sleep 0.1; done
  url="$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -1)"
  [ -n "$url" ] || { cat "$work/serve.log" >&2; exit 1; }
  install -m 600 -o git -g git "$work/internal.secret" "$door/internal.secret"
  secret="$(cat "$work/internal.secret")"
  echo "N=$n: database $(du -m "$db" | cut -f1) MB, authorized_keys $(du -m "$door/ak/git" | cut -f1) MB, gateway RSS $(awk '/VmRSS/ {print $2, $3}' /proc/$gw/status)"

  for c in 1 16; do
    before="$(ticks "$gw")"
    out="$(BENCH_SAMPLE="$work/sample" wrk -t1 -c"$c" -d"${duration}s" --latency \
      -H "Authorization: Bearer $secret" -s bench/fingerprints.lua "$url")"
    used="$(( $(ticks "$gw") - before ))"
    if echo "$out" | grep -q "Non-2xx"; then echo "internal route: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
    requests="$(echo "$out" | awk '/requests in/ {print $1}')"
    name="ssh-internal"; [ "$c" = 1 ] || name="ssh-internal-$c"
    line="$(printf '%s N=%s: p50 %s ms p99 %s ms, %s req/s, server CPU %s us/request' "$name" "$n" \
      "$(ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")" "$(ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")" \
      "$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')" \
      "$(awk "BEGIN{printf \"%.0f\", $used / $hz * 1e6 / $requests}")")"
    echo "$line"
    record "$name $n" "$line"
  done

  before="$(ticks "$gw")"
  line="$("$spawntime" --name "ssh-stage1 N=$n" --sample "$work/sample" --runs "$stage1_runs" --expect-stdout -- \
    "$door/keygate" ssh authorized-keys --gateway "$url" --secret-file "$door/internal.secret" \
    --git-root "$door/git" git '{type}' '{b64}')"
  used="$(( $(ticks "$gw") - before ))"
  echo "$line, gateway CPU $(awk "BEGIN{printf \"%.0f\", $used / $hz * 1e6 / $stage1_runs}") us/run"
  record "ssh-stage1 $n" "$line"

  port_k="$(free_port)"
  start_sshd keygate "$port_k" "AuthorizedKeysFile none
AuthorizedKeysCommand $door/keygate ssh authorized-keys --gateway $url --secret-file $door/internal.secret --git-root $door/git %u %t %k
AuthorizedKeysCommandUser git"
  port_f="$(free_port)"
  start_sshd file "$port_f" "AuthorizedKeysFile $door/ak/%u"

  line="$("$spawntime" --name "sshd-keygate N=$n" --sample "$work/login.sample" --runs "$login_runs" --fail-status 255 -- \
    "${ssh_cmd[@]}" -p "$port_k" git@127.0.0.1 true)"
  echo "$line"
  record "sshd-keygate $n" "$line"
  # One timed login says how many the budget allows at this size (at least 20).
  t0=$(date +%s.%N)
  "${ssh_cmd[@]}" -p "$port_f" git@127.0.0.1 true </dev/null || { cat "$work/file.log" >&2; exit 1; }
  runs="$(awk -v t="$(awk "BEGIN{print $(date +%s.%N) - $t0}")" -v b="$file_budget" -v m="$login_runs" \
    'BEGIN{ r = int(b / t); if (r > m) r = m; if (r < 20) r = 20; print r }')"
  line="$("$spawntime" --name "sshd-authorized-keys-file N=$n" --sample "$work/login.sample" --runs "$runs" --warmup 1 --fail-status 255 -- \
    "${ssh_cmd[@]}" -p "$port_f" git@127.0.0.1 true)"
  echo "$line"
  record "sshd-authorized-keys-file $n" "$line"
done
stop_all

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo "ratios (p50, p99):"
for n in "${sizes[@]}"; do
  read -r k50 k99 <<<"${result[sshd-keygate $n]}"
  read -r f50 f99 <<<"${result[sshd-authorized-keys-file $n]}"
  echo "  N=$n: sshd-keygate / sshd-authorized-keys-file = $(ratio "$k50" "$f50"), $(ratio "$k99" "$f99")"
done
first="${sizes[0]}"
last="${sizes[${#sizes[@]}-1]}"
for name in ssh-stage1 ssh-internal sshd-keygate sshd-authorized-keys-file; do
  read -r a50 a99 <<<"${result[$name $last]}"
  read -r b50 b99 <<<"${result[$name $first]}"
  echo "  $name N=$last / N=$first = $(ratio "$a50" "$b50"), $(ratio "$a99" "$b99")"
done
