#!/usr/bin/env bash
# Runs every test: the Rust suites, then the real-client suites (python-gitlab, PyGithub, githubkit,
# ghapi, the huaweicloud SDK, octokit, gitbeaker) against the real binary. Installs what they need: a
# pinned venv, the locked node_modules, and ssh-keygen when the machine lacks it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ssh-keygen >/dev/null 2>&1; then
  echo "installing openssh-client (ssh-keygen) for the fingerprint tests"
  apt-get update -qq && apt-get install -y -qq openssh-client >/dev/null
fi

cargo build --locked
cargo test --locked

venv="${KEYGATE_TEST_VENV:-.venv-test}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
# the Node clients (octokit, gitbeaker), exactly as pinned in package-lock.json; test_node_clients.py skips without node
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  (cd tests/clients/node && npm ci --no-audit --no-fund --silent) || { echo "npm ci failed in tests/clients/node" >&2; exit 1; }
fi
KEYGATE_BIN="$PWD/target/debug/keygate" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/clients
