"""python-gitlab 8.6.0 against the real keygate binary: the GitLab v4 deploy-key dialect as a real client sees it.

The contract is /work/shared/research/gitlab/REPORT.md (§3 semantics, §5 error bodies, §6 pagination, §8 client
behaviour). Every test gets a fresh, seeded gateway (see conftest.py): root (admin), alice (maintainer of
acme/widgets and acme/tools/cli), bob (reporter on acme/widgets), carol (maintainer of acme/widgets with a
read-only token); alice is not a member of other/secret.
"""

from __future__ import annotations

import json
import re
import warnings
from urllib.parse import parse_qs, urlsplit

import gitlab
import pytest
import requests
from gitlab import exceptions as glexc

TIMEOUT = 15
MD5_RE = re.compile(r"^([0-9a-f]{2}:){15}[0-9a-f]{2}$")
SHA256_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


# ---- helpers ---------------------------------------------------------------------------------------------------


class Recorder:
    """Records every HTTP response a python-gitlab client receives (through its requests session hooks)."""

    def __init__(self, gl: gitlab.Gitlab):
        self.responses: list[requests.Response] = []
        gl.session.hooks["response"].append(self._hook)

    def _hook(self, r, *args, **kwargs):
        self.responses.append(r)

    def clear(self) -> None:
        self.responses.clear()

    def calls(self, method: str | None = None) -> list[requests.Response]:
        return [r for r in self.responses if method is None or r.request.method == method]

    def last(self, method: str | None = None) -> requests.Response:
        calls = self.calls(method)
        assert calls, f"no {method or ''} request was recorded"
        return calls[-1]


def client(gw, user: str | None = None, *, token: str | None = None, **kwargs) -> gitlab.Gitlab:
    if token is None:
        token = gw.tokens[user]
    gl = gitlab.Gitlab(gw.url, private_token=token, timeout=TIMEOUT, **kwargs)
    gl.recorder = Recorder(gl)
    return gl


def create(project, key, title: str | None = None, **extra):
    """project.keys.create with the raw .pub text, exactly as a user pastes it (trailing newline included)."""
    data = {"title": title or f"title-{key.comment}", "key": key.public, **extra}
    return project.keys.create(data)


def body_of(err: glexc.GitlabError) -> str:
    body = err.response_body
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")


# ---- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture
def gw(gateway):
    return gateway


@pytest.fixture
def alice(gw):
    return client(gw, "alice")


@pytest.fixture
def root(gw):
    return client(gw, "root")


@pytest.fixture
def widgets(alice):
    """alice's lazy handle on acme/widgets (requests go to /projects/acme%2Fwidgets/...)."""
    return alice.projects.get("acme/widgets", lazy=True)


@pytest.fixture
def cli_project(alice):
    """alice's lazy handle on the nested project acme/tools/cli, addressed by its path."""
    return alice.projects.get("acme/tools/cli", lazy=True)


@pytest.fixture
def forty_five(widgets, ssh_keys):
    """45 keys created by alice on acme/widgets, in creation order (ids)."""
    ids = [create(widgets, k, title=f"page-key-{i:02d}").id for i, k in enumerate(ssh_keys.many(45, "page"))]
    assert len(set(ids)) == 45
    return ids


# ---- projects: lazy and non-lazy -------------------------------------------------------------------------------


def test_lazy_project_uses_url_encoded_path(gw, alice, widgets, ssh_keys):
    assert widgets.id == "acme%2Fwidgets"  # python-gitlab encodes the path once, up front
    assert widgets.keys.list(get_all=True) == []
    k = create(widgets, ssh_keys.new("lazy"))
    assert [x.id for x in widgets.keys.list(get_all=True)] == [k.id]
    paths = [urlsplit(r.request.url).path for r in alice.recorder.responses]
    assert all(p.startswith("/api/v4/projects/acme%2Fwidgets/deploy_keys") for p in paths), paths


def test_lazy_nested_project_path(gw, alice, cli_project, ssh_keys):
    k = create(cli_project, ssh_keys.new("nested"))
    assert [x.id for x in cli_project.keys.list(get_all=True)] == [k.id]
    assert alice.recorder.last("POST").request.path_url.startswith("/api/v4/projects/acme%2Ftools%2Fcli/deploy_keys")
    assert alice.recorder.last("POST").status_code == 201


def test_non_lazy_project_get_returns_numeric_id(gw, alice):
    project = alice.projects.get("acme/widgets")
    first = alice.recorder.responses[0]
    assert first.request.method == "GET"
    assert first.request.path_url == "/api/v4/projects/acme%2Fwidgets"
    assert first.status_code == 200
    assert isinstance(project.id, int)
    assert project.id == gw.repo_ids["acme/widgets"]
    assert project.path_with_namespace == "acme/widgets"


def test_non_lazy_nested_project_get(gw, alice):
    project = alice.projects.get("acme/tools/cli")
    assert project.id == gw.repo_ids["acme/tools/cli"]
    assert project.path_with_namespace == "acme/tools/cli"


def test_project_get_by_numeric_id(gw, alice):
    project = alice.projects.get(gw.repo_ids["acme/tools/cli"])
    assert project.id == gw.repo_ids["acme/tools/cli"]
    assert project.path_with_namespace == "acme/tools/cli"


def test_non_lazy_project_then_keys_by_numeric_id(gw, alice, widgets, ssh_keys):
    """After a non-lazy get, python-gitlab addresses the project by its numeric id; that is the same repository."""
    project = alice.projects.get("acme/widgets")
    k = create(project, ssh_keys.new("numeric"))
    assert alice.recorder.last("POST").request.path_url == f"/api/v4/projects/{project.id}/deploy_keys"
    assert [x.id for x in widgets.keys.list(get_all=True)] == [k.id]
    assert [x.id for x in project.keys.list(get_all=True)] == [k.id]


def test_non_lazy_project_get_of_invisible_project_is_404(gw, alice):
    with pytest.raises(glexc.GitlabGetError) as e:
        alice.projects.get("other/secret")
    assert e.value.response_code == 404
    assert e.value.error_message == "404 Project Not Found"


# ---- pagination (§6) -------------------------------------------------------------------------------------------


def _page_sizes(gl) -> list[int]:
    return [len(r.json()) for r in gl.recorder.calls("GET")]


def test_list_get_all_follows_link_header(gw, alice, widgets, forty_five):
    alice.recorder.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keys = widgets.keys.list(get_all=True)
    assert [k.id for k in keys] == forty_five
    # default per_page 20: three requests, page 2 and 3 reached by following Link rel="next"
    assert _page_sizes(alice) == [20, 20, 5]
    queries = [parse_qs(urlsplit(r.request.url).query) for r in alice.recorder.calls("GET")]
    assert [q.get("page", ["1"])[0] for q in queries] == ["1", "2", "3"]
    assert not [w for w in caught if "differs" in str(w.message)], [str(w.message) for w in caught]


def test_list_get_all_with_per_page_10(gw, alice, widgets, forty_five):
    alice.recorder.clear()
    keys = widgets.keys.list(get_all=True, per_page=10)
    assert [k.id for k in keys] == forty_five
    assert _page_sizes(alice) == [10, 10, 10, 10, 5]


def test_list_single_page(gw, alice, widgets, forty_five):
    alice.recorder.clear()
    page2 = widgets.keys.list(page=2, per_page=20)
    assert len(page2) == 20
    assert [k.id for k in page2] == forty_five[20:40]  # order: link creation
    assert len(alice.recorder.calls("GET")) == 1
    page3 = widgets.keys.list(page=3, per_page=20)
    assert [k.id for k in page3] == forty_five[40:]


def test_list_iterator_exposes_totals(gw, widgets, forty_five):
    it = widgets.keys.list(iterator=True)
    assert it.total == 45
    assert it.total_pages == 3
    assert it.per_page == 20
    assert it.current_page == 1
    assert it.next_page == 2
    assert it.prev_page is None
    assert [k.id for k in it] == forty_five


def test_pagination_headers_on_last_page(gw, alice, widgets, forty_five):
    widgets.keys.list(page=3, per_page=20)
    h = alice.recorder.last("GET").headers
    assert h["X-Page"] == "3"
    assert h["X-Per-Page"] == "20"
    assert h["X-Total"] == "45"
    assert h["X-Total-Pages"] == "3"
    assert h["X-Next-Page"] == ""
    assert h["X-Prev-Page"] == "2"
    assert 'rel="next"' not in h["Link"]
    assert 'rel="prev"' in h["Link"] and 'rel="first"' in h["Link"] and 'rel="last"' in h["Link"]


def test_empty_list_has_one_total_page(gw, cli_project):
    it = cli_project.keys.list(iterator=True)
    assert list(it) == []
    assert it.total == 0
    assert it.total_pages == 1


# ---- create (§3, §4) -------------------------------------------------------------------------------------------


def test_create_without_can_push_defaults_to_false(gw, alice, widgets, ssh_keys):
    key = ssh_keys.new("ro")
    k = create(widgets, key)
    post = alice.recorder.last("POST")
    assert json.loads(post.request.body) == {"title": "title-ro", "key": key.public}  # no can_push sent
    assert post.status_code == 201
    assert k.can_push is False
    assert widgets.keys.get(k.id).can_push is False


def test_create_with_can_push_true(gw, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("rw"), can_push=True)
    assert k.can_push is True
    assert widgets.keys.get(k.id).can_push is True


def test_created_key_fingerprints_match_ssh_keygen(gw, widgets, ssh_keys):
    key = ssh_keys.new("fp")
    k = create(widgets, key)
    assert MD5_RE.match(k.fingerprint), k.fingerprint
    assert k.fingerprint == key.md5
    assert SHA256_RE.match(k.fingerprint_sha256), k.fingerprint_sha256
    assert k.fingerprint_sha256 == key.sha256


@pytest.mark.parametrize("comment, stored", [("a b c", "a"), ("me@host", "me@host")])
def test_created_key_text_is_normalised(gw, widgets, ssh_keys, comment, stored):
    key = ssh_keys.new(comment)
    assert key.public.endswith(f" {comment}\n")
    k = create(widgets, key)
    assert k.key == f"{key.type} {key.blob} {stored}"
    assert k.key.endswith(f" {stored}")
    assert widgets.keys.get(k.id).key == k.key


def test_created_key_has_gitlab_shape(gw, alice, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("shape"), title="Shape key")
    resp = alice.recorder.last("POST")
    assert resp.headers["Content-Type"].split(";")[0].strip() == "application/json"
    a = k.attributes
    for field in ("id", "title", "created_at", "expires_at", "key", "fingerprint", "fingerprint_sha256", "can_push"):
        assert field in a, f"missing {field}: {a}"
    assert isinstance(a["id"], int)
    assert a["title"] == "Shape key"
    assert a["expires_at"] is None
    assert TIME_RE.match(a["created_at"]), a["created_at"]
    assert "projects_with_write_access" not in a
    assert "projects_with_readonly_access" not in a


def test_create_with_expires_at(gw, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("exp"), expires_at="2099-01-02T03:04:05Z")
    assert k.expires_at.startswith("2099-01-02T03:04:05"), k.expires_at
    assert widgets.keys.get(k.id).expires_at.startswith("2099-01-02T03:04:05")


# ---- get, update -----------------------------------------------------------------------------------------------


def test_get_key_by_id(gw, widgets, ssh_keys):
    key = ssh_keys.new("get")
    k = create(widgets, key, title="get me", can_push=True)
    got = widgets.keys.get(k.id)
    assert got.id == k.id
    assert got.title == "get me"
    assert got.can_push is True
    assert got.fingerprint_sha256 == key.sha256
    assert got.key == k.key


def test_update_title_and_can_push_persist(gw, alice, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("upd"), title="before")
    got = widgets.keys.get(k.id)
    got.title = "after"
    got.can_push = True
    got.save()
    put = alice.recorder.last("PUT")
    assert put.status_code == 200
    assert json.loads(put.request.body) == {"title": "after", "can_push": True}
    again = widgets.keys.get(k.id)
    assert again.title == "after"
    assert again.can_push is True


def test_update_can_push_only(gw, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("upd2"), title="keep", can_push=True)
    got = widgets.keys.get(k.id)
    got.can_push = False
    got.save()
    again = widgets.keys.get(k.id)
    assert again.can_push is False
    assert again.title == "keep"


# ---- enable (§3) -----------------------------------------------------------------------------------------------


def test_enable_on_second_project_by_path(gw, alice, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("enable"), can_push=True)
    cli_project = alice.projects.get("acme/tools/cli", lazy=True)
    result = cli_project.keys.enable(k.id)
    post = alice.recorder.last("POST")
    assert post.request.path_url == f"/api/v4/projects/acme%2Ftools%2Fcli/deploy_keys/{k.id}/enable"
    assert post.status_code == 201
    assert result["id"] == k.id
    found = [x for x in cli_project.keys.list(get_all=True) if x.id == k.id]
    assert len(found) == 1
    assert found[0].can_push is False  # a new link starts read-only
    assert widgets.keys.get(k.id).can_push is True  # the first link is untouched


def test_enable_response_is_deploy_key_without_can_push(gw, widgets, cli_project, ssh_keys):
    key = ssh_keys.new("enable-shape")
    k = create(widgets, key)
    result = cli_project.keys.enable(k.id)
    assert result["fingerprint_sha256"] == key.sha256
    assert result["key"] == k.key
    assert "can_push" not in result


def test_enable_is_idempotent(gw, widgets, cli_project, ssh_keys):
    k = create(widgets, ssh_keys.new("enable-twice"), can_push=True)
    widgets.keys.enable(k.id)  # already linked here: the link stays as it is
    assert [x.id for x in widgets.keys.list(get_all=True)] == [k.id]
    assert widgets.keys.get(k.id).can_push is True


def test_enable_unknown_key_is_404(gw, cli_project):
    with pytest.raises(glexc.GitlabProjectDeployKeyError) as e:
        cli_project.keys.enable(999999)
    assert e.value.response_code == 404
    assert e.value.error_message == "404 Deploy key Not Found"


# ---- create again: join and re-post (§3) -----------------------------------------------------------------------


def test_same_key_on_second_project_joins(gw, alice, root, widgets, cli_project, ssh_keys):
    key = ssh_keys.new("join")
    k1 = create(widgets, key, title="first")
    k2 = create(cli_project, key, title="second", can_push=True)
    assert alice.recorder.last("POST").status_code == 201
    assert k2.id == k1.id
    assert k2.can_push is True
    assert cli_project.keys.get(k1.id).can_push is True
    assert widgets.keys.get(k1.id).can_push is False
    # one key row, linked twice
    same = [d for d in root.deploykeys.list(get_all=True) if d.fingerprint_sha256 == key.sha256]
    assert len(same) == 1


def test_repost_on_same_project_returns_existing_key(gw, alice, widgets, ssh_keys):
    key = ssh_keys.new("again")
    k1 = create(widgets, key, title="first", can_push=True)
    k2 = create(widgets, key, title="second", can_push=False)
    assert alice.recorder.last("POST").status_code == 201
    assert k2.id == k1.id
    assert k2.title == "first"  # title and can_push sent the second time are ignored
    assert k2.can_push is True
    assert [x.id for x in widgets.keys.list(get_all=True)] == [k1.id]


# ---- delete ----------------------------------------------------------------------------------------------------


def test_delete_then_get_is_404(gw, alice, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("del"))
    widgets.keys.delete(k.id)
    d = alice.recorder.last("DELETE")
    assert d.status_code == 204
    assert d.content == b""
    with pytest.raises(glexc.GitlabGetError) as e:
        widgets.keys.get(k.id)
    assert e.value.response_code == 404
    assert widgets.keys.list(get_all=True) == []


def test_delete_via_object(gw, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("del-obj"))
    widgets.keys.get(k.id).delete()
    assert widgets.keys.list(get_all=True) == []


def test_delete_on_one_project_keeps_other_link(gw, widgets, cli_project, ssh_keys):
    key = ssh_keys.new("del-shared")
    k = create(widgets, key)
    create(cli_project, key)
    widgets.keys.delete(k.id)
    assert cli_project.keys.get(k.id).fingerprint_sha256 == key.sha256
    with pytest.raises(glexc.GitlabGetError):
        widgets.keys.get(k.id)


# ---- admin /deploy_keys ----------------------------------------------------------------------------------------


def test_admin_list_has_project_access_attributes(gw, root, widgets, cli_project, ssh_keys):
    rw = create(widgets, ssh_keys.new("admin-rw"), can_push=True)
    ro = create(cli_project, ssh_keys.new("admin-ro"))
    keys = {k.id: k for k in root.deploykeys.list(get_all=True)}
    assert set(keys) == {rw.id, ro.id}
    for k in keys.values():
        assert isinstance(k.projects_with_write_access, list)
        assert isinstance(k.projects_with_readonly_access, list)
    assert [p["path_with_namespace"] for p in keys[rw.id].projects_with_write_access] == ["acme/widgets"]
    assert keys[rw.id].projects_with_readonly_access == []
    assert [p["path_with_namespace"] for p in keys[ro.id].projects_with_readonly_access] == ["acme/tools/cli"]
    assert [p["id"] for p in keys[ro.id].projects_with_readonly_access] == [gw.repo_ids["acme/tools/cli"]]
    assert keys[ro.id].projects_with_write_access == []


def test_admin_list_get_all_pages(gw, root, widgets, ssh_keys):
    ids = [create(widgets, k).id for k in ssh_keys.many(23, "admin-page")]
    root.recorder.clear()
    assert sorted(k.id for k in root.deploykeys.list(get_all=True)) == sorted(ids)
    assert [len(r.json()) for r in root.recorder.calls("GET")] == [20, 3]


def test_admin_list_keyset_iterator_follows_the_cursor(gw, root, widgets, ssh_keys):
    """GitLab's keyset pagination as python-gitlab drives it: newest first, one Link rel=next a page."""
    ids = [create(widgets, k).id for k in ssh_keys.many(23, "keyset")]
    root.recorder.clear()
    it = root.deploykeys.list(iterator=True, pagination="keyset", order_by="id", per_page=10)
    assert [k.id for k in it] == sorted(ids, reverse=True)
    # No totals on a keyset page, as GitLab: python-gitlab says None.
    assert it.total is None and it.total_pages is None
    calls = root.recorder.calls("GET")
    # The short third page ends the walk: no Link, and no extra request for an empty page.
    assert [len(r.json()) for r in calls] == [10, 10, 3]
    for r in calls[1:]:
        query = parse_qs(urlsplit(r.request.url).query)
        assert query["pagination"] == ["keyset"] and "id_before" in query and "page" not in query
        assert r.request.url.startswith(gw.url)
    assert "link" not in calls[-1].headers


def test_admin_create_instance_key_is_public(gw, root, widgets, ssh_keys):
    key = ssh_keys.new("instance")
    d = root.deploykeys.create({"title": "instance key", "key": key.public})
    assert root.recorder.last("POST").status_code == 201
    assert isinstance(d.id, int)
    assert d.title == "instance key"
    assert d.fingerprint_sha256 == key.sha256
    private = create(widgets, ssh_keys.new("not-public"))
    public_ids = [k.id for k in root.deploykeys.list(public=True, get_all=True)]
    assert d.id in public_ids
    assert private.id not in public_ids


def test_admin_create_duplicate_is_400_not_nested(gw, root, widgets, ssh_keys):
    key = ssh_keys.new("admin-dup")
    create(widgets, key)
    with pytest.raises(glexc.GitlabCreateError) as e:
        root.deploykeys.create({"title": "dup", "key": key.public})
    assert e.value.response_code == 400
    assert e.value.error_message == {"fingerprint_sha256": ["has already been taken"]}


def test_maintainer_can_enable_instance_key(gw, root, widgets, ssh_keys):
    d = root.deploykeys.create({"title": "instance", "key": ssh_keys.public("instance-enable")})
    assert widgets.keys.enable(d.id)["id"] == d.id
    assert [k.id for k in widgets.keys.list(get_all=True)] == [d.id]


def test_admin_list_forbidden_for_non_admin(gw, alice):
    with pytest.raises(glexc.GitlabListError) as e:
        alice.deploykeys.list()
    assert e.value.response_code == 403
    assert e.value.error_message == "403 Forbidden"


# ---- errors (§5) -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["ssh-rsa not-base64!!", "hello world", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"])
def test_invalid_key_is_400_with_nested_field(gw, widgets, bad):
    with pytest.raises(glexc.GitlabCreateError) as e:
        widgets.keys.create({"title": "bad", "key": bad})
    assert e.value.response_code == 400
    assert isinstance(e.value.error_message, dict), e.value.error_message
    assert "deploy_key.key" in e.value.error_message
    assert widgets.keys.list(get_all=True) == []


def test_private_key_is_refused_and_not_echoed(gw, widgets, ssh_keys):
    key = ssh_keys.new("secret")
    assert "PRIVATE KEY" in key.private
    with pytest.raises(glexc.GitlabCreateError) as e:
        widgets.keys.create({"title": "oops", "key": key.private})
    assert e.value.response_code == 400
    body = body_of(e.value)
    for line in key.private.splitlines():
        if line.strip():
            assert line.strip() not in body, f"private key line echoed in the response: {line!r}"
    assert "PRIVATE KEY" not in body
    assert widgets.keys.list(get_all=True) == []


@pytest.mark.parametrize("variant", ["same text", "other comment"])
def test_key_taken_in_inaccessible_project_is_400(gw, root, widgets, ssh_keys, variant):
    key = ssh_keys.new("taken")
    create(root.projects.get("other/secret", lazy=True), key)
    text = key.public if variant == "same text" else f"{key.type} {key.blob} someone-else"
    with pytest.raises(glexc.GitlabCreateError) as e:
        widgets.keys.create({"title": "mine", "key": text})
    assert e.value.response_code == 400
    assert e.value.error_message == {"deploy_key.fingerprint_sha256": ["has already been taken"]}


def test_bad_token_is_401(gw):
    gl = client(gw, token="glpat-not-a-real-token")
    with pytest.raises(glexc.GitlabAuthenticationError) as e:
        gl.projects.get("acme/widgets", lazy=True).keys.list()
    assert e.value.response_code == 401
    assert e.value.error_message == "401 Unauthorized"


def test_no_token_is_401(gw):
    gl = gitlab.Gitlab(gw.url, timeout=TIMEOUT)
    with pytest.raises(glexc.GitlabAuthenticationError) as e:
        gl.projects.get("acme/widgets", lazy=True).keys.list()
    assert e.value.response_code == 401


def test_reporter_cannot_list_keys(gw):
    bob = client(gw, "bob")
    with pytest.raises(glexc.GitlabListError) as e:
        bob.projects.get("acme/widgets", lazy=True).keys.list()
    assert e.value.response_code == 403


def test_reporter_cannot_create_keys(gw, ssh_keys):
    bob = client(gw, "bob")
    with pytest.raises(glexc.GitlabCreateError) as e:
        create(bob.projects.get("acme/widgets", lazy=True), ssh_keys.new("bob"))
    assert e.value.response_code == 403


def test_read_only_token_cannot_create(gw, widgets, ssh_keys):
    carol = client(gw, "carol")
    with pytest.raises(glexc.GitlabCreateError) as e:
        create(carol.projects.get("acme/widgets", lazy=True), ssh_keys.new("carol"))
    assert e.value.response_code == 403
    assert e.value.error_message == "insufficient_scope"
    body = json.loads(body_of(e.value))
    assert body["error"] == "insufficient_scope"
    assert body["error_description"] == (
        "The request requires higher privileges than provided by the access token."
    )
    assert "api" in body["scope"].split()
    assert widgets.keys.list(get_all=True) == []


def test_read_only_token_can_list(gw, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("for-carol"))
    carol = client(gw, "carol")
    assert [x.id for x in carol.projects.get("acme/widgets", lazy=True).keys.list(get_all=True)] == [k.id]


def test_read_only_token_cannot_delete(gw, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("keep-me"))
    carol = client(gw, "carol")
    with pytest.raises(glexc.GitlabDeleteError) as e:
        carol.projects.get("acme/widgets", lazy=True).keys.delete(k.id)
    assert e.value.response_code == 403
    assert e.value.error_message == "insufficient_scope"
    assert [x.id for x in widgets.keys.list(get_all=True)] == [k.id]


@pytest.mark.parametrize("path", ["other/secret", "no/such/project"])
def test_invisible_or_missing_project_is_404(gw, alice, path):
    with pytest.raises(glexc.GitlabListError) as e:
        alice.projects.get(path, lazy=True).keys.list()
    assert e.value.response_code == 404
    assert e.value.error_message == "404 Project Not Found"


def test_create_on_invisible_project_is_404(gw, alice, ssh_keys):
    with pytest.raises(glexc.GitlabCreateError) as e:
        create(alice.projects.get("other/secret", lazy=True), ssh_keys.new("nope"))
    assert e.value.response_code == 404
    assert e.value.error_message == "404 Project Not Found"


def test_missing_key_get_is_404(gw, widgets):
    with pytest.raises(glexc.GitlabGetError) as e:
        widgets.keys.get(999999)
    assert e.value.response_code == 404
    assert e.value.error_message == "404 Not found"


def test_key_of_another_project_get_is_404(gw, widgets, cli_project, ssh_keys):
    k = create(cli_project, ssh_keys.new("elsewhere"))
    with pytest.raises(glexc.GitlabGetError) as e:
        widgets.keys.get(k.id)
    assert e.value.response_code == 404


def test_missing_key_delete_is_404(gw, widgets):
    with pytest.raises(glexc.GitlabDeleteError) as e:
        widgets.keys.delete(999999)
    assert e.value.response_code == 404
    assert e.value.error_message == "404 Deploy key Not Found"


# ---- authentication variants and the log (§7; design: never log secrets) -------------------------------------


def test_bearer_token_is_accepted(gw, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("bearer"))
    gl = gitlab.Gitlab(gw.url, oauth_token=gw.tokens["alice"], timeout=TIMEOUT)
    assert [x.id for x in gl.projects.get("acme/widgets", lazy=True).keys.list(get_all=True)] == [k.id]


def test_query_string_token_works_and_is_not_logged(gw, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("query"))
    token = gw.tokens["alice"]
    r = requests.get(
        f"{gw.url}/api/v4/projects/acme%2Fwidgets/deploy_keys", params={"private_token": token}, timeout=TIMEOUT
    )
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()] == [k.id]
    gw.stop()
    log = gw.log_text()
    assert token not in log
    request_lines = [line for line in gw.log_lines if "deploy_keys" in line]
    assert request_lines, "expected one log line per request (design.md); no line mentions deploy_keys:\n" + log


def test_server_log_never_contains_tokens_or_private_keys(gw, ssh_keys):
    private = ssh_keys.new("leak")
    bad_token = "glpat-bad-token-that-must-not-be-logged"
    for user in ("root", "alice", "bob", "carol"):
        gl = client(gw, user)
        project = gl.projects.get("acme/widgets", lazy=True)
        try:
            create(project, ssh_keys.new(f"log-{user}"))
        except glexc.GitlabError:
            pass  # bob and carol are refused; the refusal must not log their tokens either
        try:
            project.keys.list(get_all=True)
        except glexc.GitlabError:
            pass
        requests.get(
            f"{gw.url}/api/v4/projects/acme%2Fwidgets/deploy_keys",
            params={"private_token": gw.tokens[user]},
            timeout=TIMEOUT,
        )
        requests.get(
            f"{gw.url}/api/v4/projects/acme%2Fwidgets/deploy_keys",
            headers={"Authorization": f"Bearer {gw.tokens[user]}"},
            timeout=TIMEOUT,
        )
    with pytest.raises(glexc.GitlabAuthenticationError):
        client(gw, token=bad_token).projects.get("acme/widgets", lazy=True).keys.list()
    with pytest.raises(glexc.GitlabCreateError):
        client(gw, "alice").projects.get("acme/widgets", lazy=True).keys.create(
            {"title": "private", "key": private.private}
        )
    gw.stop()
    log = gw.log_text()
    for user, token in gw.tokens.items():
        assert token not in log, f"{user}'s token appears in the server log"
    assert bad_token not in log
    assert "PRIVATE KEY" not in log
    for line in private.private.splitlines()[1:-1]:
        assert line not in log, "private key material appears in the server log"


# ---- the caller and the server: gl.auth(), gl.user, gl.users, gl.version() -------------------------------------


def test_auth_sets_the_current_user(gw, alice):
    with warnings.catch_warnings():
        # auth() warns when the user's web_url is not on the base URL the client was given.
        warnings.simplefilter("error")
        alice.auth()
    assert alice.user.username == "alice"
    assert isinstance(alice.user.id, int)
    assert not hasattr(alice.user, "is_admin"), "a non-admin is not told about admin rights"
    assert alice.recorder.last("GET").request.path_url == "/api/v4/user"


def test_auth_of_an_admin_shows_is_admin(gw, root):
    root.auth()
    assert root.user.username == "root"
    assert root.user.is_admin is True


def test_auth_with_a_read_only_token(gw):
    carol = client(gw, "carol")
    carol.auth()
    assert carol.user.username == "carol"


@pytest.mark.parametrize("token", ["glpat-not-a-real-token", ""])
def test_auth_with_a_bad_token_raises(gw, token):
    with pytest.raises(glexc.GitlabAuthenticationError) as e:
        client(gw, token=token).auth()
    assert e.value.response_code == 401
    assert e.value.error_message == "401 Unauthorized"


def test_current_user_id_lists_user_project_deploy_keys(gw, alice, widgets, ssh_keys):
    k = create(widgets, ssh_keys.new("mine"))
    alice.auth()
    carol = client(gw, "carol")
    # python-gitlab has no manager for this route; http_list pages it like any list.
    keys = carol.http_list(f"/users/{alice.user.id}/project_deploy_keys", get_all=True)
    assert [x["id"] for x in keys] == [k.id]
    assert carol.users.get(alice.user.id).username == "alice"


def test_users_by_username(gw, alice):
    bob = client(gw, "bob")
    found = bob.users.list(username="alice", get_all=True)
    assert [u.username for u in found] == ["alice"]
    alice.auth()
    assert found[0].id == alice.user.id
    assert not hasattr(found[0], "is_admin")
    assert bob.users.list(username="nobody", get_all=True) == []
    with pytest.raises(glexc.GitlabGetError) as e:
        bob.users.get(999999)
    assert e.value.response_code == 404
    assert e.value.error_message == "404 User Not Found"


def test_version(gw, alice):
    version, revision = alice.version()
    assert re.fullmatch(r"17\.\d+\.\d+", version), version
    assert revision.startswith("keygate-")
    meta = alice.http_get("/metadata")
    assert (meta["version"], meta["revision"]) == (version, revision)
    assert meta["kas"]["enabled"] is False
