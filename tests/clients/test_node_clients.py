"""The Node clients against the real keygate binary: @octokit/rest 22.0.1 (GitHub dialect) and @gitbeaker/rest 43.8.0
(GitLab v4 dialect).

Each story is an ESM script in ./node (see the comment at its top) that exits 0 only when every step passed. The
libraries are ESM-only and resolve from ./node/node_modules, installed by scripts/test.sh with `npm ci` from the
committed package-lock.json. Skipped only when `node` is not installed; a missing node_modules is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE = shutil.which("node")
TIMEOUT = 120

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def run_story(script: str, gw, **env: str) -> subprocess.CompletedProcess:
    for pkg in ("@octokit/rest", "@gitbeaker/rest"):
        assert (NODE_DIR / "node_modules" / pkg / "package.json").is_file(), (
            f"{pkg} is not installed in {NODE_DIR}/node_modules: run `npm ci` there (scripts/test.sh does)"
        )
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    full_env.update(KEYGATE_URL=gw.url, **env)
    res = subprocess.run(
        [NODE, script],
        cwd=NODE_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, (
        f"node {script} exited {res.returncode}\n--- stdout ---\n{res.stdout}\n--- stderr ---\n{res.stderr}"
        f"\n--- keygate log (last 40 lines) ---\n" + "\n".join(gw.log_lines[-40:])
    )
    return res


def logged(gw, needle: str, at_least: int) -> int:
    """How many server log lines contain ``needle``; waits up to 5 s for ``at_least`` (another thread reads the log)."""
    deadline = time.monotonic() + 5
    while sum(needle in line for line in gw.log_lines) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    return sum(needle in line for line in gw.log_lines)


def test_octokit_story(gateway):
    res = run_story("octokit_story.mjs", gateway, KEYGATE_TOKEN=gateway.tokens["alice"], KEYGATE_REPO="acme/widgets")
    assert res.stdout.rstrip().endswith("PASS octokit"), res.stdout
    # the three base URLs each paginated 5 keys in 3 pages
    assert res.stdout.count("5 keys in 3 pages") == 3, res.stdout
    # with baseUrl ".../api/v3/" octokit really sent "//repos" paths, and keygate served them
    assert logged(gateway, "POST /api/v3//repos/acme/widgets/keys 201 ", 5) == 5, "\n".join(gateway.log_lines)


def test_gitbeaker_story(gateway):
    res = run_story(
        "gitbeaker_story.mjs",
        gateway,
        KEYGATE_TOKEN=gateway.tokens["alice"],
        KEYGATE_PROJECT="acme/widgets",
        KEYGATE_PROJECT2="acme/tools/cli",
    )
    assert res.stdout.rstrip().endswith("PASS gitbeaker"), res.stdout
    assert "[ok] all (follows Link): 23 keys" in res.stdout, res.stdout
