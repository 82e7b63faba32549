#!/usr/bin/env bash
# Runs every test: the Rust suites (the SSH door's with a real sshd and git), then the real-client
# suites (python-gitlab, PyGithub, githubkit, ghapi, gql, the huaweicloud SDK, octokit, gitbeaker)
# against the real binary, each on SQLite and again on PostgreSQL, and once more over HTTPS on
# SQLite. Installs what they need: a pinned venv, the locked node_modules, ssh-keygen and sshd
# (openssh-server), openssl, curl and gh, the `git` account the SSH door serves, and PostgreSQL 15
# (scripts/pg-test-cluster.sh) when it is missing.
#
# PostgreSQL: KEYGATE_TEST_POSTGRES_URL when given (the tests create and drop schemas in its
# database); otherwise a throwaway cluster of our own, on a free loopback port, stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
  if ! as_root; then
    echo "not root: cannot install $*; the tests that need it will say so" >&2
    return 0
  fi
  # Debian would start its own sshd on port 22; a policy-rc.d that exits 101 stops that.
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  if [ -n "$made_policy" ]; then rm -f "$policy"; fi
}

if ! command -v ssh-keygen >/dev/null 2>&1 || [ ! -x /usr/sbin/sshd ]; then
  echo "installing openssh-client and openssh-server for the fingerprint and SSH door tests"
  apt_install openssh-client openssh-server
fi
# openssl and curl: tests/tls.rs (TLS versions, ALPN) and the client suites' throwaway CA; gh: the
# GitHub CLI recipe (tests/clients/test_gh_cli.py).
missing=()
for tool in openssl curl gh; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} for the TLS tests"
  apt_install "${missing[@]}"
fi
# From here on a missing gh fails its test instead of skipping it.
if as_root; then export KEYGATE_TEST_GH=require; fi
if ! command -v promtool >/dev/null 2>&1; then
  echo "installing prometheus for promtool (tests/metrics.rs checks a live scrape with it)"
  apt_install prometheus
fi
if as_root; then
  # From here on a missing promtool fails tests/metrics.rs instead of skipping it.
  export KEYGATE_TEST_PROMTOOL=require
  # The account the SSH door serves. '*' rather than useradd's '!': with UsePAM no, sshd takes
  # '!' for a locked account and refuses it before any key is looked at.
  if ! id git >/dev/null 2>&1; then
    useradd --system --create-home --home-dir /var/lib/keygate-git --shell /bin/sh --password '*' git
  fi
  mkdir -p /run/sshd
  # From here on a missing piece fails the SSH door tests instead of skipping them.
  export KEYGATE_TEST_SSH=require
fi

if [ -z "${KEYGATE_TEST_POSTGRES_URL:-}" ]; then
  pg_dir="$(mktemp -d /tmp/keygate-pg.XXXXXX)"
  # The postmaster runs detached: stop it however this script ends, an interrupted CI run included.
  trap 'scripts/pg-test-cluster.sh stop "$pg_dir"' EXIT
  trap 'exit 130' INT TERM HUP
  KEYGATE_TEST_POSTGRES_URL="$(scripts/pg-test-cluster.sh start "$pg_dir")"
  # Ours to crash: tests/pg_crash.rs and tests/pg_readiness.rs stop it with `pg_ctl stop -m immediate`
  # and start it again.
  export KEYGATE_TEST_PG_DIR="$pg_dir"
fi
export KEYGATE_TEST_POSTGRES_URL

cargo build --locked
# SQLite (the default). The store conformance suite and the two-gateway suite use PostgreSQL here too.
env -u KEYGATE_TEST_BACKEND cargo test --locked
# Every Rust HTTP suite again, each test on a fresh PostgreSQL schema.
KEYGATE_TEST_BACKEND=postgres cargo test --locked --tests

venv="${KEYGATE_TEST_VENV:-.venv-test}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
# the Node clients (octokit, gitbeaker), exactly as pinned in package-lock.json; test_node_clients.py skips without node
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  (cd tests/clients/node && npm ci --no-audit --no-fund --silent) || { echo "npm ci failed in tests/clients/node" >&2; exit 1; }
fi
env -u KEYGATE_TEST_BACKEND KEYGATE_BIN="$PWD/target/debug/keygate" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/clients
# Every client suite again over HTTPS (SQLite): a throwaway CA, the clients trusting it alone.
env -u KEYGATE_TEST_BACKEND KEYGATE_TEST_TLS=1 KEYGATE_BIN="$PWD/target/debug/keygate" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/clients
KEYGATE_TEST_BACKEND=postgres KEYGATE_BIN="$PWD/target/debug/keygate" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/clients
