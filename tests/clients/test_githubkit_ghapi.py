"""githubkit 0.16.1 and ghapi 2.1.4 against the real keygate binary: two more GitHub deploy-key clients.

The contract is /work/shared/research/github/REPORT.md (§4 what each client sends, §5 what each needs: githubkit's
``rest.paginate`` follows ``Link rel="next"`` and validates every item with pydantic; ghapi's ``paged`` asks for
page 1, 2, ... until a page is ``[]`` and ``last_page()`` reads ``rel="last"``). Every test runs against both base URLs
a GitHub Enterprise client may be given: ``/api/v3`` and the bare host. The gateway is fresh and seeded per test
(see conftest.py); alice maintains acme/widgets.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from fasttransport.errors import APIError
from ghapi.all import GhApi, paged
from githubkit import GitHub, TokenAuthStrategy
from githubkit.exception import RequestFailed

TIMEOUT = 15
OWNER, REPO = "acme", "widgets"
IN_USE = "key is already in use"

BASES = pytest.mark.parametrize("prefix", ["/api/v3", ""], ids=["api-v3", "bare"])


def bare(public: str) -> str:
    """``type base64``: how GitHub shows a key, without its comment."""
    return " ".join(public.split()[:2])


def key_url(gw, prefix: str, key_id: int) -> str:
    return f"{gw.url}{prefix}/repos/{OWNER}/{REPO}/keys/{key_id}"


def list_requests(gw, prefix: str, at_least: int = 0) -> int:
    """How many key-list requests the server has logged (the log has the path, never the query); waits up to 5 s
    for ``at_least`` of them, since the log is read by another thread."""
    needle = f"GET {prefix}/repos/{OWNER}/{REPO}/keys 200 "
    deadline = time.monotonic() + 5
    while sum(needle in line for line in gw.log_lines) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    if at_least:
        time.sleep(0.2)
    return sum(needle in line for line in gw.log_lines)


# ---- githubkit -------------------------------------------------------------------------------------------------


def githubkit_client(gw, prefix: str, user: str = "alice") -> GitHub:
    return GitHub(TokenAuthStrategy(gw.tokens[user]), base_url=gw.url + prefix, timeout=TIMEOUT)


@BASES
def test_githubkit_deploy_key_story(gateway, ssh_keys, prefix):
    gw = gateway
    gh = githubkit_client(gw, prefix)
    repos = gh.rest.repos

    assert list(gh.rest.paginate(repos.list_deploy_keys, owner=OWNER, repo=REPO, per_page=2)) == []

    keys = ssh_keys.many(5, comment="githubkit")
    created = []
    for i, k in enumerate(keys):
        read_only = i % 2 == 0
        resp = repos.create_deploy_key(OWNER, REPO, title=f"gk-{i}", key=k.public, read_only=read_only)
        assert resp.status_code == 201, resp.text
        made = resp.parsed_data  # pydantic DeployKey: a missing or mistyped required field would raise here
        assert isinstance(made.id, int)
        assert (made.title, made.read_only, made.key) == (f"gk-{i}", read_only, bare(k.public))
        assert made.url == key_url(gw, prefix, made.id)
        assert made.verified is True
        created.append(made)
    assert len({m.id for m in created}) == 5

    # 5 keys at 2 per page: githubkit only reaches keys 3-5 by following Link rel="next" (absolute URLs).
    before = list_requests(gw, prefix, at_least=1)
    listed = list(gh.rest.paginate(repos.list_deploy_keys, owner=OWNER, repo=REPO, per_page=2))
    assert [k.id for k in listed] == [m.id for m in created]
    assert [(k.title, k.read_only, k.key) for k in listed] == [(m.title, m.read_only, m.key) for m in created]
    assert list_requests(gw, prefix, at_least=before + 3) - before == 3

    got = repos.get_deploy_key(OWNER, REPO, created[2].id)
    assert got.status_code == 200
    assert (got.parsed_data.id, got.parsed_data.title, got.parsed_data.key, got.parsed_data.url) == (
        created[2].id,
        "gk-2",
        bare(keys[2].public),
        key_url(gw, prefix, created[2].id),
    )

    # the same public key again (GitHub: a key can be a deploy key once) -> 422 with GitHub's validation body
    with pytest.raises(RequestFailed) as dup:
        repos.create_deploy_key(OWNER, REPO, title="gk-dup", key=keys[1].public, read_only=True)
    assert dup.value.response.status_code == 422
    body = dup.value.response.json()
    assert body["message"] == "Validation Failed"
    assert [e["message"] for e in body["errors"]] == [IN_USE]

    deleted = repos.delete_deploy_key(OWNER, REPO, created[0].id)
    assert deleted.status_code == 204
    with pytest.raises(RequestFailed) as gone:
        repos.get_deploy_key(OWNER, REPO, created[0].id)
    assert gone.value.response.status_code == 404
    assert gone.value.response.json()["message"] == "Not Found"

    rest = list(gh.rest.paginate(repos.list_deploy_keys, owner=OWNER, repo=REPO, per_page=2))
    assert [k.id for k in rest] == [m.id for m in created[1:]]


# ---- ghapi -----------------------------------------------------------------------------------------------------


def ghapi_client(gw, prefix: str, user: str = "alice") -> GhApi:
    return GhApi(gh_host=gw.url + prefix, token=gw.tokens[user], timeout=TIMEOUT)


async def _ghapi_story(gw, prefix: str, keys) -> None:
    api = ghapi_client(gw, prefix)
    repos = api.repos

    assert [p async for p in paged(repos.list_deploy_keys, OWNER, REPO, per_page=2)] == []

    created = []
    for i, k in enumerate(keys):
        read_only = i % 2 == 1
        made = await repos.create_deploy_key(OWNER, REPO, key=k.public, title=f"gh-{i}", read_only=read_only)
        assert isinstance(made.id, int)
        assert (made.title, made.read_only, made.key) == (f"gh-{i}", read_only, bare(k.public))
        assert made.url == key_url(gw, prefix, made.id)
        created.append(made)

    # paged() asks page=1,2,... until a page is [] -> [2, 2, 1] then an empty 4th page ends it
    pages = [p async for p in paged(repos.list_deploy_keys, OWNER, REPO, per_page=2)]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [k.id for p in pages for k in p] == [m.id for m in created]
    assert [(k.title, k.read_only) for p in pages for k in p] == [(m.title, m.read_only) for m in created]

    # last_page() parses rel="last" of the most recent response's Link header
    for per_page, last in ((2, 3), (1, 5), (4, 2)):
        first = await repos.list_deploy_keys(OWNER, REPO, per_page=per_page, page=1)
        assert len(first) == per_page
        assert api.last_page() == last, f"per_page={per_page}: Link was {api.recv_hdrs.get('Link')!r}"
    # everything on one page: GitHub omits the Link header, so there is no last page to read
    whole = await repos.list_deploy_keys(OWNER, REPO, per_page=100, page=1)
    assert len(whole) == 5
    assert api.last_page() == 0, f"one page needs no Link, got {api.recv_hdrs.get('Link')!r}"

    got = await repos.get_deploy_key(OWNER, REPO, created[3].id)
    assert (got.id, got.title, got.read_only, got.key) == (created[3].id, "gh-3", True, bare(keys[3].public))

    with pytest.raises(APIError) as dup:
        await repos.create_deploy_key(OWNER, REPO, key=keys[3].public, title="gh-dup", read_only=True)
    assert dup.value.status_code == 422
    assert IN_USE in str(dup.value.raw)

    await repos.delete_deploy_key(OWNER, REPO, created[3].id)
    with pytest.raises(APIError) as gone:
        await repos.get_deploy_key(OWNER, REPO, created[3].id)
    assert gone.value.status_code == 404

    rest = [k.id for p in [p async for p in paged(repos.list_deploy_keys, OWNER, REPO, per_page=2)] for k in p]
    assert rest == [m.id for i, m in enumerate(created) if i != 3]


@BASES
def test_ghapi_deploy_key_story(gateway, ssh_keys, prefix):
    asyncio.run(_ghapi_story(gateway, prefix, ssh_keys.many(5, comment="ghapi")))
