"""PyGithub 2.10.0 against the real keygate binary: the GitHub deploy-key dialect as a real client sees it.

The contract is /work/shared/research/github/REPORT.md (§3 error bodies, §4-§5 what PyGithub sends and needs) and
dialects/github.yaml. Every test runs against both base URLs a GitHub Enterprise client may be given: ``/api/v3``
and the bare host. Every test gets a fresh, seeded gateway (see conftest.py): root (admin), alice (maintainer of
acme/widgets and acme/tools/cli), bob (reporter on acme/widgets), carol (maintainer of acme/widgets with a
read-only token); alice is not a member of other/secret.
"""

from __future__ import annotations

import re
import time

import pytest
from github import Auth, BadCredentialsException, Github, GithubException, UnknownObjectException

TIMEOUT = 15
INVALID_KEY = "key is invalid. You must supply a key in OpenSSH public key format"
IN_USE = "key is already in use"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

BASES = pytest.mark.parametrize("prefix", ["/api/v3", ""], ids=["api-v3", "bare"])


def client(gw, prefix: str, user: str | None = None, *, token: str | None = None, **kwargs) -> Github:
    """A PyGithub client on ``gw.url + prefix``; ``user`` picks a seeded token, ``token`` any text, neither none."""
    if user is not None:
        token = gw.tokens[user]
    auth = Auth.Token(token) if token is not None else None
    return Github(base_url=gw.url + prefix, auth=auth, timeout=TIMEOUT, **kwargs)


def list_requests(gw, prefix: str, at_least: int = 0) -> int:
    """How many key-list requests the server has logged (its log has the path, never the query). The log is
    read by another thread, so this waits up to 5 s for ``at_least`` of them, then a moment for any straggler."""
    needle = f"GET {prefix}/repos/acme/widgets/keys 200 "
    deadline = time.monotonic() + 5
    while sum(needle in line for line in gw.log_lines) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    if at_least:
        time.sleep(0.2)
    return sum(needle in line for line in gw.log_lines)


def bare(public: str) -> str:
    """``type base64``: how GitHub shows a key, without its comment."""
    return " ".join(public.split()[:2])


@BASES
def test_get_repo_and_permissions(gateway, prefix):
    gw = gateway
    repo = client(gw, prefix, "alice").get_repo("acme/widgets")
    assert repo.full_name == "acme/widgets"
    assert repo.name == "widgets"
    assert repo.id == gw.repo_ids["acme/widgets"]
    assert repo.private is True
    assert repo.owner.login == "acme" and repo.owner.type == "Organization"
    assert repo.url == f"{gw.url}{prefix}/repos/acme/widgets"
    perms = repo.permissions
    assert (perms.admin, perms.maintain, perms.push, perms.triage, perms.pull) == (True, True, True, True, True)

    reporter = client(gw, prefix, "bob").get_repo("acme/widgets").permissions
    assert (reporter.admin, reporter.maintain, reporter.push, reporter.triage, reporter.pull) == (
        False,
        False,
        False,
        True,
        True,
    )
    assert client(gw, prefix, "alice").get_user().login == "alice"


@BASES
def test_keys_round_trip_over_several_pages(gateway, ssh_keys, prefix):
    gw = gateway
    g = client(gw, prefix, "alice", per_page=2)
    repo = g.get_repo("acme/widgets")
    assert repo.get_keys().totalCount == 0
    assert list(repo.get_keys()) == []

    keys = ssh_keys.many(5, comment="pygithub")
    created = []
    for i, k in enumerate(keys):
        read_only = i % 2 == 0
        made = repo.create_key(f"deploy-{i}", k.public, read_only=read_only)
        assert made.title == f"deploy-{i}"
        assert made.read_only is read_only
        assert made.key == bare(k.public)
        assert made.verified is True and made.enabled is True
        assert made.added_by == "alice"
        assert made.last_used is None
        assert made.url == f"{gw.url}{prefix}/repos/acme/widgets/keys/{made.id}"
        assert TIME_RE.match(made.raw_data["created_at"])
        created.append(made)

    before = list_requests(gw, prefix, at_least=2)
    listed = list(repo.get_keys())
    # 5 keys at 2 per page: PyGithub followed rel="next" twice (a bad Link would silently stop at page 1).
    assert list_requests(gw, prefix, at_least=before + 3) - before == 3
    assert [k.id for k in listed] == [k.id for k in created]
    assert [(k.title, k.read_only, k.key) for k in listed] == [(k.title, k.read_only, k.key) for k in created]
    assert repo.get_keys().totalCount == 5

    for made in created[:2]:
        got = repo.get_key(made.id)
        assert (got.id, got.title, got.read_only, got.key, got.url) == (
            made.id,
            made.title,
            made.read_only,
            made.key,
            made.url,
        )

    for made in created:
        # delete() sends DELETE to the key's own `url`.
        repo.get_key(made.id).delete()
        with pytest.raises(UnknownObjectException):
            repo.get_key(made.id).title
    assert repo.get_keys().totalCount == 0
    assert list(repo.get_keys()) == []


@BASES
def test_401_without_or_with_a_bad_token(gateway, prefix):
    gw = gateway
    with pytest.raises(GithubException) as err:
        client(gw, prefix).get_repo("acme/widgets")
    assert err.value.status == 401
    assert err.value.data["message"] == "Requires authentication"
    with pytest.raises(BadCredentialsException) as err:
        client(gw, prefix, token="not-a-token").get_repo("acme/widgets")
    assert err.value.status == 401
    assert err.value.data["message"] == "Bad credentials"


@BASES
def test_404_for_unknown_invisible_and_foreign(gateway, ssh_keys, prefix):
    gw = gateway
    alice = client(gw, prefix, "alice")
    for name in ("other/secret", "acme/nothing", "acme/tools"):
        with pytest.raises(UnknownObjectException) as err:
            alice.get_repo(name)
        assert err.value.status == 404
    repo = alice.get_repo("acme/widgets")
    with pytest.raises(UnknownObjectException):
        repo.get_key(987654321).title
    # A key of another repository is not found through this one, even by an admin who sees both.
    foreign = client(gw, prefix, "root").get_repo("other/secret").create_key("root's", ssh_keys.public("root"))
    with pytest.raises(UnknownObjectException):
        repo.get_key(foreign.id).title
    with pytest.raises(UnknownObjectException):
        client(gw, prefix, "root").get_repo("acme/widgets").get_key(foreign.id).title


@BASES
def test_422_invalid_duplicate_and_private_keys(gateway, ssh_keys, prefix):
    gw = gateway
    repo = client(gw, prefix, "alice").get_repo("acme/widgets")
    kept = ssh_keys.new("kept")
    repo.create_key("kept", kept.public)

    with pytest.raises(GithubException) as err:
        repo.create_key("broken", "ssh-ed25519 AAAA-not-base64 broken")
    assert err.value.status == 422
    assert err.value.data["message"] == "Validation Failed"
    assert err.value.data["errors"] == [
        {"resource": "PublicKey", "code": "custom", "field": "key", "message": INVALID_KEY}
    ]

    # Already a deploy key of this repository, or of any other one: GitHub's one-repository rule.
    for target, user in (("acme/widgets", "alice"), ("other/secret", "root")):
        with pytest.raises(GithubException) as err:
            client(gw, prefix, user).get_repo(target).create_key("again", kept.public, read_only=True)
        assert err.value.status == 422
        assert err.value.data["errors"][0]["message"] == IN_USE

    secret = ssh_keys.new("secret")
    with pytest.raises(GithubException) as err:
        repo.create_key("oops", secret.private)
    assert err.value.status == 422
    message = err.value.data["errors"][0]["message"]
    assert "private key" in message
    material = [line for line in secret.private.splitlines() if len(line) > 20 and not line.startswith("-----")]
    assert material and not any(line in str(err.value.data) for line in material)

    assert [k.title for k in repo.get_keys()] == ["kept"]
    assert client(gw, prefix, "root").get_repo("other/secret").get_keys().totalCount == 0

    # Nothing secret ever reaches the log: no token, no private key material.
    gw.stop()
    log = gw.log_text()
    assert not any(token in log for token in gw.secrets())
    assert not any(line in log for line in material)


@BASES
def test_403_for_reporters_and_read_only_tokens(gateway, ssh_keys, prefix):
    gw = gateway
    bob = client(gw, prefix, "bob").get_repo("acme/widgets")
    with pytest.raises(GithubException) as err:
        bob.create_key("bob", ssh_keys.public("bob"))
    assert err.value.status == 403
    assert err.value.data["message"] == "Must have admin rights to Repository."
    with pytest.raises(GithubException) as err:
        list(bob.get_keys())
    assert err.value.status == 403

    carol = client(gw, prefix, "carol").get_repo("acme/widgets")
    with pytest.raises(GithubException) as err:
        carol.create_key("carol", ssh_keys.public("carol"))
    assert err.value.status == 403
    assert err.value.data["message"] == "Resource not accessible by personal access token"
    assert list(carol.get_keys()) == []


@BASES
def test_basic_auth_and_rate_limit(gateway, prefix):
    gw = gateway
    # Auth.Login sends `Authorization: Basic base64(login:password)`; a token is accepted as the password.
    g = Github(base_url=gw.url + prefix, auth=Auth.Login("alice", gw.tokens["alice"]), timeout=TIMEOUT)
    assert g.get_user().login == "alice"
    assert [k.id for k in g.get_repo("acme/widgets").get_keys()] == []
    with pytest.raises(BadCredentialsException):
        Github(base_url=gw.url + prefix, auth=Auth.Login("alice", "wrong"), timeout=TIMEOUT).get_user().login

    overview = g.get_rate_limit()
    # PyGithub keeps the X-RateLimit-* headers of the last answer: the body reports the same numbers.
    remaining, limit = g.rate_limiting
    core = overview.resources.core
    assert (core.remaining, core.limit) == (remaining, limit)
    assert int(core.reset.timestamp()) == g.rate_limiting_resettime
    assert core.used + core.remaining == core.limit
    assert overview.rate.remaining == core.remaining
    assert overview.resources.graphql.limit == core.limit
