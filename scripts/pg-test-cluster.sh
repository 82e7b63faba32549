#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `start DIR` runs initdb in DIR (as the postgres OS
# user when run as root), starts it on a free loopback port with fsync on, and prints its URL;
# `crash DIR` stops it as a power cut would (`pg_ctl stop -m immediate`: no checkpoint, crash recovery
# on the next start) and starts it again on the same port; `halt DIR` stops it the same way and
# `resume DIR` starts it again (tests/pg_readiness.rs); `stop DIR` stops it immediately and
# removes DIR. Installs PostgreSQL 15 from Debian where missing.
set -euo pipefail

find_bin() {
  for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin /usr/local/bin /usr/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

run_server() {
  local bin="$1" dir="$2" port="$3"
  # fsync and synchronous_commit stay on (the defaults): the durability tests rely on them.
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=400 -c shared_buffers=64MB" \
    start >&2 || { cat "$dir/server.log" >&2; exit 1; }
}

case "${1:-}" in
  start)
    dir="$2"
    if ! bin="$(find_bin)"; then
      echo "installing postgresql-15 for the PostgreSQL tests" >&2
      # Debian's postinst would create and start its own cluster on port 5432; a policy-rc.d that
      # exits 101 keeps it from starting.
      made_policy=
      if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
      fi
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >&2
      if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
      bin="$(find_bin)"
    fi
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
      useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    # Every role is trusted but one: kg_password must log in with SCRAM, so that tests/pg_password.rs
    # can prove a password reaches the server (pg_hba.conf takes the first line that matches).
    as_owner sed -i '1i host all kg_password 127.0.0.1/32 scram-sha-256' "$dir/data/pg_hba.conf"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    echo "$port" >"$dir/port"
    run_server "$bin" "$dir" "$port"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  crash)
    dir="$2"
    bin="$(find_bin)"
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >&2
    run_server "$bin" "$dir" "$(cat "$dir/port")"
    ;;
  halt)
    # Stops it (as a lost database host would look) but keeps DIR for `resume`.
    dir="$2"
    as_owner "$(find_bin)/pg_ctl" -D "$dir/data" -m immediate -w stop >&2
    ;;
  resume)
    dir="$2"
    run_server "$(find_bin)" "$dir" "$(cat "$dir/port")"
    ;;
  stop)
    dir="$2"
    if bin="$(find_bin)" && [ -d "$dir/data" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start DIR | crash DIR | stop DIR" >&2
    exit 2
    ;;
esac
