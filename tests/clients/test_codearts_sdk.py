"""The official Huawei Cloud SDKs (huaweicloudsdkcodeartsrepo, and the older huaweicloudsdkcodehub) against keygate.

Unmodified clients built with ``BasicCredentials(AK, SK)`` and ``with_endpoints([gateway URL])``: every request is
signed with SDK-HMAC-SHA256 by the SDK itself, and keygate verifies it. The SDK writes
``$HOME/.huaweicloud/application_id`` when it is imported, so HOME points at a temporary folder for the import and
is put back right after, for the other suites in the same session.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

_REAL_HOME = os.environ.get("HOME")
SDK_HOME = tempfile.mkdtemp(prefix="keygate-sdk-home-")
atexit.register(shutil.rmtree, SDK_HOME, True)
os.environ["HOME"] = SDK_HOME
try:
    # huaweicloudsdkcore.http.user_agent reads (and creates) the application id at import time.
    import huaweicloudsdkcore.http.user_agent  # noqa: F401
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

    SDKS = {
        name: (importlib.import_module(f"{package}.v3"), importlib.import_module(f"{package}.v4"), client)
        for name, package, client in [
            ("codeartsrepo", "huaweicloudsdkcodeartsrepo", "CodeArtsRepoClient"),
            ("codehub", "huaweicloudsdkcodehub", "CodeHubClient"),
        ]
    }
finally:
    if _REAL_HOME is None:
        os.environ.pop("HOME", None)
    else:
        os.environ["HOME"] = _REAL_HOME

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "keys"


@dataclass
class Sdk:
    """One SDK package's v3 and v4 modules and clients, signing as one access key."""

    v3: object
    v4: object
    old: object  # the v3 client: add/delete through /v1 and /v2
    new: object  # the v4 client: list/remove/check/submodules

    @classmethod
    def build(cls, gw, ak: str, sk: str, package: str = "codeartsrepo") -> "Sdk":
        v3, v4, client = SDKS[package]
        creds = BasicCredentials(ak, sk)

        def make(module):
            return getattr(module, client).new_builder().with_credentials(creds).with_endpoints([gw.url]).build()

        return cls(v3=v3, v4=v4, old=make(v3), new=make(v4))

    # ---- v1 / v2 ----

    def add(self, repo: int, key: str, title: str = "ci", can_push: bool = False, application: str = "ci", v1=False):
        body = self.v3.AddDeployKeyRequestBody(application=application, can_push=can_push, key=key, key_title=title)
        if v1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return self.old.add_deploy_key(self.v3.AddDeployKeyRequest(repository_id=repo, body=body))
        return self.old.add_deploy_key_v2(self.v3.AddDeployKeyV2Request(repository_id=repo, body=body))

    def delete(self, repo: int, key_id: int, v1=False):
        if v1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return self.old.delete_deploy_key(self.v3.DeleteDeployKeyRequest(repository_id=repo, key_id=key_id))
        return self.old.delete_deploy_key_v2(self.v3.DeleteDeployKeyV2Request(repository_id=repo, key_id=key_id))

    # ---- v4 ----

    def list(self, repo: int, **page):
        return self.new.list_repository_deploy_keys(self.v4.ListRepositoryDeployKeysRequest(repository_id=repo, **page))

    def ids(self, repo: int) -> list[int]:
        # The SDK turns an empty JSON array into body=None.
        return [k.id for k in self.list(repo, limit=100).body or []]

    def remove(self, repo: int, key_id: int):
        return self.new.remove_deploy_key(self.v4.RemoveDeployKeyRequest(repository_id=repo, key_id=key_id))

    def check(self, repo: int, key: str) -> bool:
        body = self.v4.DeployKeyValueDto(key=key)
        return self.new.check_deploy_key(self.v4.CheckDeployKeyRequest(repository_id=repo, body=body)).exists

    def check_group(self, group: int, key: str) -> bool:
        body = self.v4.DeployKeyValueDto(key=key)
        return self.new.check_group_deploy_key(self.v4.CheckGroupDeployKeyRequest(group_id=group, body=body)).exists

    def sync(self, repo: int, key_id: int):
        req = self.v4.SyncDeployKeyToSubmodulesRequest(repository_id=repo, key_id=key_id)
        return self.new.sync_deploy_key_to_submodules(req)

    def unsync(self, repo: int, key_id: int):
        req = self.v4.RemoveDeployKeyFromSubmodulesRequest(repository_id=repo, key_id=key_id)
        return self.new.remove_deploy_key_from_submodules(req)


def access_key(gw, user: str) -> tuple[str, str]:
    """`keygate access-key add USER`, which prints `AK SK`; the SK is remembered for the log checks."""
    out = gw.cli("access-key", "add", user)
    ak, sk = out.split(" ")
    if not hasattr(gw, "secret_keys"):
        gw.secret_keys = []
    gw.secret_keys.append(sk)
    return ak, sk


def groups(gw) -> dict[str, tuple[int, str]]:
    """`keygate group list` as path -> (group id, project id or '-')."""
    rows = [line.split(" ") for line in gw.cli("group", "list").splitlines()]
    return {path: (int(gid), project) for gid, project, path in rows}


@pytest.fixture
def alice(gateway):
    return Sdk.build(gateway, *access_key(gateway, "alice"))


@pytest.fixture
def widgets(gateway) -> int:
    return gateway.repo_ids["acme/widgets"]


@pytest.fixture
def cli_repo(gateway) -> int:
    return gateway.repo_ids["acme/tools/cli"]


def error_of(call) -> ClientRequestException:
    with pytest.raises(ClientRequestException) as info:
        call()
    return info.value


def test_the_sdk_wrote_its_application_id_into_the_temporary_home():
    assert (Path(SDK_HOME) / ".huaweicloud" / "application_id").is_file()
    assert os.environ.get("HOME") == _REAL_HOME


@pytest.mark.parametrize("package", ["codeartsrepo", "codehub"])
def test_add_list_check_sync_and_delete(gateway, ssh_keys, widgets, cli_repo, package):
    ak, sk = access_key(gateway, "alice")
    sdk = Sdk.build(gateway, ak, sk, package)
    gateway.cli("repo", "submodule", "add", "acme/widgets", "acme/tools/cli")
    first, second = ssh_keys.new("first@ci"), ssh_keys.new("second@ci")

    # Add through v2, then v1.
    added = sdk.add(widgets, first.public, title="first", can_push=True)
    assert (added.status, added.status_code, added.error) == ("success", 200, None)
    assert added.result.key_title == "first"
    assert added.result.key == first.public.strip()
    assert added.result.can_push is True
    assert added.result.created_at.endswith("+00:00")
    first_id = int(added.result.key_id)
    v1 = sdk.add(widgets, second.public, title="second", v1=True)
    assert v1.status == "success" and v1.result.can_push is False
    second_id = int(v1.result.key_id)

    # List through v4: ids are integers, fingerprints are ssh-keygen's MD5, X-Total is the total.
    listed = sdk.list(widgets)
    assert [(k.id, k.title, k.fingerprint) for k in listed.body] == [
        (first_id, "first", first.md5),
        (second_id, "second", second.md5),
    ]
    assert listed.x_total == "2"

    # check-key: this key (whatever its comment) is there, another is not; the groups see it too.
    assert sdk.check(widgets, first.public) is True
    assert sdk.check(widgets, first.public.replace("first@ci", "renamed")) is True
    assert sdk.check(widgets, ssh_keys.public("never-added")) is False
    acme, _ = groups(gateway)["acme"]
    assert sdk.check_group(acme, second.public) is True
    assert sdk.check_group(acme, ssh_keys.public("never-added")) is False

    # Sync to submodules: the child gets the key with the same push permission.
    synced = sdk.sync(widgets, first_id)
    assert synced.status_code == 200
    on_child = sdk.list(cli_repo)
    assert [(k.id, k.fingerprint) for k in on_child.body] == [(first_id, first.md5)]
    unsynced = sdk.unsync(widgets, first_id)
    assert unsynced.status_code == 204
    assert sdk.ids(cli_repo) == []
    assert sdk.ids(widgets) == [first_id, second_id]

    # Delete through v2 (a JSON true) and v4 (204), and through v1.
    deleted = sdk.delete(widgets, first_id)
    assert (deleted.result, deleted.status) == (True, "success")
    removed = sdk.remove(widgets, second_id)
    assert (removed.status_code, removed.raw_content) == (204, b"")
    empty = sdk.list(widgets)
    assert (empty.body, empty.x_total) == (None, "0")  # the SDK's reading of []
    third = int(sdk.add(widgets, first.public, v1=True).result.key_id)
    assert sdk.delete(widgets, third, v1=True).result is True
    assert sdk.ids(widgets) == []


def test_paging_with_offset_limit_and_x_total(gateway, alice, ssh_keys, widgets):
    ids = [int(alice.add(widgets, k.public, title=f"k{i}").result.key_id) for i, k in enumerate(ssh_keys.many(5))]
    seen = []
    for offset in range(0, 6, 2):
        page = alice.list(widgets, offset=offset, limit=2)
        assert page.x_total == "5"
        seen += [k.id for k in page.body or []]
    assert seen == ids
    default = alice.list(widgets)
    assert [k.id for k in default.body] == ids
    err = error_of(lambda: alice.list(widgets, limit=101))
    assert (err.status_code, err.error_code) == (400, "CH.00100001")
    assert err.error_msg == "limit must be an integer from 1 to 100."
    err = error_of(lambda: alice.list(widgets, offset=-1))
    assert (err.status_code, err.error_code) == (400, "CH.00100001")


def test_group_and_project_lists(gateway, alice, ssh_keys, widgets, cli_repo):
    shared = ssh_keys.new("shared")
    a = int(alice.add(widgets, shared.public).result.key_id)
    assert int(alice.add(cli_repo, shared.public, can_push=True).result.key_id) == a
    cli_key = ssh_keys.new("cli")
    b = int(alice.add(cli_repo, cli_key.public).result.key_id)
    by_path = groups(gateway)
    acme_id, acme_project = by_path["acme"]
    tools_id, tools_project = by_path["acme/tools"]
    assert tools_project == "-"

    v4 = alice.v4
    listed = alice.new.list_group_deploy_keys(v4.ListGroupDeployKeysRequest(group_id=acme_id, offset=0, limit=100))
    assert ([k.id for k in listed.body], listed.x_total) == ([a, b], "2")
    sub = alice.new.list_group_deploy_keys(v4.ListGroupDeployKeysRequest(group_id=tools_id, offset=1, limit=1))
    assert ([k.id for k in sub.body], sub.x_total) == ([b], "2")
    project = alice.new.list_project_deploy_keys(
        v4.ListProjectDeployKeysRequest(project_id=acme_project, offset=0, limit=5)
    )
    assert [(k.id, k.fingerprint) for k in project.body] == [(a, shared.md5), (b, cli_key.md5)]
    assert project.x_total == "2"

    other_id, other_project = by_path["other"]
    err = error_of(lambda: alice.new.list_group_deploy_keys(v4.ListGroupDeployKeysRequest(group_id=other_id)))
    assert (err.status_code, err.error_code) == (404, "CH.00402003")
    err = error_of(lambda: alice.new.list_project_deploy_keys(v4.ListProjectDeployKeysRequest(project_id=other_project)))
    assert (err.status_code, err.error_code) == (404, "CH.00402004")


def test_a_wrong_secret_key_is_apigw_0301(gateway, alice, widgets):
    ak, sk = access_key(gateway, "alice")
    wrong = Sdk.build(gateway, ak, sk[:-1] + ("A" if sk[-1] != "A" else "B"))
    err = error_of(lambda: wrong.list(widgets))
    assert (err.status_code, err.error_code) == (401, "APIGW.0301")
    assert err.error_msg == "Incorrect IAM authentication information: verify aksk signature fail"
    assert err.request_id and len(err.request_id) == 32
    # The same on v2, where the service's own errors would be enveloped.
    err = error_of(lambda: wrong.add(widgets, (FIXTURES / "ed25519.pub").read_text()))
    assert (err.status_code, err.error_code) == (401, "APIGW.0301")
    # An unknown AK, and a revoked one.
    err = error_of(lambda: Sdk.build(gateway, "A" * 20, sk).list(widgets))
    assert err.error_code == "APIGW.0301"
    gateway.cli("access-key", "revoke", ak)
    err = error_of(lambda: Sdk.build(gateway, ak, sk).list(widgets))
    assert err.error_code == "APIGW.0301"
    alice.list(widgets)  # alice's other access key still works


def test_an_unknown_repository_is_404_with_keygates_code(alice, ssh_keys):
    err = error_of(lambda: alice.list(999_999))
    assert (err.status_code, err.error_code) == (404, "CH.00402000")
    assert err.error_msg == "The repository does not exist. Check and try again."
    # v2 nests the error; the SDK finds it all the same.
    err = error_of(lambda: alice.add(999_999, ssh_keys.public()))
    assert (err.status_code, err.error_code) == (404, "CH.00402000")
    err = error_of(lambda: alice.remove(999_999, 1))
    assert (err.status_code, err.error_code) == (404, "CH.00402000")


def test_key_errors_have_distinct_codes(gateway, alice, ssh_keys, widgets):
    key = ssh_keys.new("dup")
    alice.add(widgets, key.public)
    cases = [
        (key.public, "CH.00402001"),
        ("ssh-ed25519 AAAA-not-base64", "CH.00100002"),
        (key.private, "CH.00100003"),
        ((FIXTURES / "rsa-1024.pub").read_text(), "CH.00100004"),
        ((FIXTURES / "dsa-1024.pub").read_text(), "CH.00100005"),
    ]
    for text, code in cases:
        err = error_of(lambda: alice.add(widgets, text))
        assert (err.status_code, err.error_code) == (400, code), text[:30]
        assert text.strip() not in err.error_msg
    err = error_of(lambda: alice.check(widgets, key.private))
    assert (err.status_code, err.error_code) == (400, "CH.00100003")
    # Fields the SDK leaves out when None, and types it does not check, are the gateway's to refuse.
    err = error_of(lambda: alice.add(widgets, ssh_keys.public(), application=None))
    assert (err.error_code, err.error_msg) == ("CH.00100001", "application is missing.")
    err = error_of(lambda: alice.add(widgets, ssh_keys.public(), can_push="true"))
    assert (err.error_code, err.error_msg) == ("CH.00100001", "can_push must be a boolean.")
    assert len(alice.ids(widgets)) == 1, "only the first key was added"

    # Nothing secret ever reaches the log: not the SK, not a token, not the private key.
    gateway.stop()
    log = gateway.log_text()
    assert "signature refused" not in log  # every request above was signed correctly
    for secret in gateway.secret_keys + gateway.secrets():
        assert secret not in log
    for line in key.private.splitlines():
        if len(line) > 20:
            assert line not in log


def test_a_reporter_is_forbidden(gateway, widgets):
    bob = Sdk.build(gateway, *access_key(gateway, "bob"))
    err = error_of(lambda: bob.list(widgets))
    assert (err.status_code, err.error_code) == (403, "CH.004403")
    err = error_of(lambda: bob.add(widgets, (FIXTURES / "ed25519.pub").read_text()))
    assert (err.status_code, err.error_code) == (403, "CH.004403")


def test_x_auth_token_beside_the_signature(gateway, alice, widgets):
    req = alice.v4.ListRepositoryDeployKeysRequest(repository_id=widgets)
    ok = alice.new.list_repository_deploy_keys_invoker(req).add_header("X-Auth-Token", gateway.tokens["alice"]).invoke()
    assert ok.x_total == "0"
    invoker = alice.new.list_repository_deploy_keys_invoker(req).add_header("X-Auth-Token", gateway.tokens["root"])
    err = error_of(invoker.invoke)
    assert (err.status_code, err.error_code) == (401, "DEV.00000004")
    invoker = alice.new.list_repository_deploy_keys_invoker(req).add_header("X-Auth-Token", "kgt_revoked")
    err = error_of(invoker.invoke)
    assert (err.status_code, err.error_code) == (401, "DEV.00000003")


def test_signed_extra_headers_verify_even_outside_ascii(gateway, widgets):
    """With a project id the SDK adds and signs X-Project-Id (sent as UTF-8); keygate needs none but must verify it."""
    ak, sk = access_key(gateway, "alice")
    v3, v4, client = SDKS["codeartsrepo"]
    creds = BasicCredentials(ak, sk, "projé-0123")
    new = getattr(v4, client).new_builder().with_credentials(creds).with_endpoints([gateway.url]).build()
    listed = new.list_repository_deploy_keys(v4.ListRepositoryDeployKeysRequest(repository_id=widgets))
    assert listed.x_total == "0"
