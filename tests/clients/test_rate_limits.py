"""Clients that pace themselves keep working under a small per-user budget: PyGithub and python-gitlab.

keygate is started with 5 requests per user per 2-second window. Each client makes more requests than that; every
one must succeed, and the server's log must show that it did refuse some (GitHub's 403 with ``Retry-After``,
GitLab's 429 ``Retry later``), which the client waited out and retried on its own.
"""

from __future__ import annotations

import time

import gitlab
import pytest
from github import Auth, Github, GithubRetry

from conftest import Gateway, _require_binary, seed_default

TIMEOUT = 15
BUDGET = ["--rate-limit-per-user", "5", "--rate-limit-window", "2"]
REQUESTS = 12


@pytest.fixture
def small_budget(tmp_path):
    _require_binary()
    gw = Gateway(tmp_path)
    seed_default(gw)
    try:
        gw.start(*BUDGET)
        yield gw
    finally:
        gw.stop()


def logged(gw: Gateway, needle: str, want: int = 1) -> int:
    """Lines of the server's log that contain ``needle``, once its reader thread has caught up with
    ``want`` of them (or 5 s have passed): the last request's line can come after its response."""
    deadline = time.monotonic() + 5
    while sum(needle in line for line in gw.log_lines) < want and time.monotonic() < deadline:
        time.sleep(0.02)
    return sum(needle in line for line in gw.log_lines)


def test_pygithub_waits_out_the_budget(small_budget):
    gw = small_budget
    # GithubRetry is PyGithub's default; named here because it is what this test is about.
    g = Github(base_url=gw.url + "/api/v3", auth=Auth.Token(gw.tokens["alice"]), timeout=TIMEOUT, retry=GithubRetry())
    repo = g.get_repo("acme/widgets")
    for _ in range(REQUESTS):
        assert list(repo.get_keys()) == []
    assert logged(gw, "GET /api/v3/repos/acme/widgets/keys 403 ") >= 1, "the budget was never spent"
    assert logged(gw, "GET /api/v3/repos/acme/widgets/keys 200 ", REQUESTS) == REQUESTS


def test_python_gitlab_waits_out_the_budget(small_budget):
    gw = small_budget
    gl = gitlab.Gitlab(gw.url, private_token=gw.tokens["alice"], timeout=TIMEOUT)
    project = gl.projects.get("acme/widgets", lazy=True)
    for _ in range(REQUESTS):
        # obey_rate_limit is python-gitlab's default: on 429 it sleeps Retry-After and retries.
        assert project.keys.list(get_all=False, obey_rate_limit=True, max_retries=10) == []
    path = "GET /api/v4/projects/acme%2Fwidgets/deploy_keys"
    assert logged(gw, f"{path} 429 ") >= 1, "the budget was never spent"
    assert logged(gw, f"{path} 200 ", REQUESTS) == REQUESTS
