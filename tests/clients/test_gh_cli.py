"""The GitHub CLI (Debian's `gh`) in its GitHub Enterprise mode, straight against keygate over HTTPS: the recipe
in docs/github.md, command for command."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import Gateway, seed_default, trust_test_ca

GH = shutil.which("gh")


@pytest.fixture
def https_gateway(tmp_path):
    """The standard seed, served over HTTPS whatever KEYGATE_TEST_TLS says: gh speaks nothing else to an
    Enterprise host."""
    if GH is None:
        if os.environ.get("KEYGATE_TEST_GH") == "require":
            pytest.fail("gh is missing; scripts/test.sh installs Debian's gh package")
        pytest.skip("gh is not installed (Debian package gh)")
    (tmp_path / "gw").mkdir()
    gw = Gateway(tmp_path / "gw", tls=True)
    seed_default(gw)
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()


def gh_env(gw: Gateway, tmp_path, token: str, trust: bool = True) -> dict[str, str]:
    """What the recipe exports, and nothing of the caller's gh or GitHub setup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYGATE_", "GH_", "GITHUB_"))}
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE"):
        env.pop(name, None)
    if trust:
        trust_test_ca(env)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        GH_CONFIG_DIR=str(home / "gh"),
        GH_HOST=f"127.0.0.1:{gw.port}",
        GH_ENTERPRISE_TOKEN=token,
        GH_NO_UPDATE_NOTIFIER="1",
        GH_PROMPT_DISABLED="1",
        NO_COLOR="1",
    )
    return env


def gh(env, *args, check=True) -> subprocess.CompletedProcess:
    res = subprocess.run([GH, *args], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if check:
        assert res.returncode == 0, f"gh {' '.join(args)} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def test_the_recipe_manages_deploy_keys(https_gateway, tmp_path, ssh_keys):
    gw = https_gateway
    env = gh_env(gw, tmp_path, gw.tokens["alice"])
    repo = f"127.0.0.1:{gw.port}/acme/widgets"

    status = gh(env, "auth", "status")
    out = status.stdout + status.stderr
    assert f"Logged in to 127.0.0.1:{gw.port} as alice" in out, out
    assert gw.tokens["alice"] not in out

    ci, deploy = ssh_keys.new("ci"), ssh_keys.new("deploy")
    gh(env, "repo", "deploy-key", "add", str(ci.pub_path), "--title", "ci", "-R", repo)
    gh(env, "repo", "deploy-key", "add", str(deploy.pub_path), "--title", "deploy", "--allow-write", "-R", repo)
    rows = [line.split("\t") for line in gh(env, "repo", "deploy-key", "list", "-R", repo).stdout.splitlines()]
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("ci", "read-only", f"{ci.type} {ci.blob}"),
        ("deploy", "read-write", f"{deploy.type} {deploy.blob}"),
    ], rows

    gh(env, "repo", "deploy-key", "delete", rows[0][0], "-R", repo)
    keys = json.loads(gh(env, "api", "repos/acme/widgets/keys").stdout)
    assert [(k["title"], k["read_only"]) for k in keys] == [("deploy", False)]
    assert keys[0]["url"].startswith(f"https://127.0.0.1:{gw.port}/api/v3/repos/acme/widgets/keys/")

    viewer = json.loads(gh(env, "api", "graphql", "-f", "query={viewer{login}}").stdout)
    assert viewer == {"data": {"viewer": {"login": "alice"}}}
    assert not any(gw.tokens["alice"] in line for line in gw.log_lines)


def test_gh_refuses_an_untrusted_certificate_and_a_bad_token(https_gateway, tmp_path):
    gw = https_gateway
    # No CA variable at all: Go's system roots, which do not hold the test CA.
    untrusted = gh(gh_env(gw, tmp_path, gw.tokens["alice"], trust=False), "api", "repos/acme/widgets/keys", check=False)
    assert untrusted.returncode != 0
    assert "certificate signed by unknown authority" in untrusted.stderr, untrusted.stderr

    bad = gh(gh_env(gw, tmp_path, "kgt_not_a_token"), "api", "repos/acme/widgets/keys", check=False)
    assert bad.returncode != 0
    assert "Bad credentials (HTTP 401)" in bad.stderr, bad.stderr
