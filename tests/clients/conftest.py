"""Shared harness for the real-client suites: runs the keygate binary on a free port with a fresh database.

Every dialect suite (python-gitlab now; PyGithub and the Huawei CodeArts SDK later) uses the same pieces:

* ``Gateway``: one keygate process plus its database; ``cli()`` drives the admin CLI, ``url`` is the base URL,
  ``log_lines`` holds everything the server wrote to stderr (kept so tests can prove no secret is ever logged).
* ``gateway`` fixture: a fresh temp dir, a fresh database seeded with the standard cast (``seed_default``), a
  started server; on teardown SIGTERM, and the server must exit 0 within 10 s.
* ``ssh_keys`` fixture: fresh OpenSSH keys from /usr/bin/ssh-keygen, plus the fingerprints ssh-keygen prints.

Configuration: ``KEYGATE_BIN`` (default ``<repo>/target/debug/keygate``); ``RUST_LOG`` is passed through and
defaults to ``info`` so that per-request log lines are produced and can be checked for leaks.
``KEYGATE_TEST_BACKEND=postgres`` (with ``KEYGATE_TEST_POSTGRES_URL``) gives every gateway a fresh PostgreSQL
schema instead of a SQLite file; ``psql`` creates and drops it.
``KEYGATE_TEST_TLS=1`` serves every gateway over HTTPS (``--tls-cert``/``--tls-key``) with a certificate from a
throwaway CA made once per session with ``openssl``, and makes the clients trust that CA alone
(``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``, ``CURL_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS``); ``gw.url`` is then https.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYGATE_BIN = Path(os.environ.get("KEYGATE_BIN") or REPO_ROOT / "target/debug/keygate")
SSH_KEYGEN = "/usr/bin/ssh-keygen" if os.path.exists("/usr/bin/ssh-keygen") else (shutil.which("ssh-keygen") or "ssh-keygen")

PG_URL = os.environ.get("KEYGATE_TEST_POSTGRES_URL", "")
ON_POSTGRES = os.environ.get("KEYGATE_TEST_BACKEND") == "postgres"
PSQL = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
_schemas = iter(range(1, 1 << 30))


def _psql(sql: str) -> None:
    subprocess.run([PSQL, "-qX", "-v", "ON_ERROR_STOP=1", PG_URL, "-c", sql], check=True, capture_output=True, timeout=30)


CLI_TIMEOUT = 30
START_TIMEOUT = 20
STOP_TIMEOUT = 10

LISTENING_RE = re.compile(r"keygate listening on (https?://127\.0\.0\.1:(\d+))")

TLS = os.environ.get("KEYGATE_TEST_TLS") == "1"


@dataclass
class Pki:
    """A throwaway CA and one server certificate it signed, for 127.0.0.1 and localhost (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def make_pki(directory: Path) -> Pki:
    """Makes the CA and the server certificate with the ``openssl`` command, as an operator would."""
    d = Path(directory)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60, cwd=d)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=keygate test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", "key.pem", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "cert.pem", "-days", "2", "-extfile", "server.ext")
    return Pki(ca=d / "ca.pem", cert=d / "cert.pem", key=d / "key.pem")


@functools.lru_cache(maxsize=None)
def session_pki() -> Pki:
    """The session's CA and server certificate, made on first use and removed when the session ends."""
    d = Path(tempfile.mkdtemp(prefix="keygate-tls-"))
    atexit.register(shutil.rmtree, d, True)
    return make_pki(d)


def trust_test_ca(env: dict[str, str]) -> dict[str, str]:
    """``env`` with every CA variable the clients read pointing at the test CA alone. The machine's own
    ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``/``CURL_CA_BUNDLE`` would otherwise win over it."""
    ca = str(session_pki().ca)
    env.update(REQUESTS_CA_BUNDLE=ca, SSL_CERT_FILE=ca, CURL_CA_BUNDLE=ca, NODE_EXTRA_CA_CERTS=ca)
    return env


if TLS:
    # In-process clients (requests, httpx, urllib) read these at request time; node subprocesses inherit them.
    trust_test_ca(os.environ)


class Gateway:
    """One keygate database, its CLI, and (once started) one ``serve`` process."""

    def __init__(self, workdir: Path, binary: Path = KEYGATE_BIN, tls: bool = TLS):
        self.workdir = Path(workdir)
        # Serve HTTPS with the session's test certificate (``KEYGATE_TEST_TLS=1`` makes it the default).
        self.tls = tls
        self.binary = Path(binary)
        self.db = self.workdir / "keygate.db"
        self.schema: str | None = None
        if ON_POSTGRES:
            assert PG_URL, "KEYGATE_TEST_BACKEND=postgres needs KEYGATE_TEST_POSTGRES_URL (scripts/test.sh sets both)"
            self.schema = f"kgpy_{os.getpid()}_{next(_schemas)}"
            _psql(f"CREATE SCHEMA {self.schema}")
            sep = "&" if "?" in PG_URL else "?"
            self.db = f"{PG_URL}{sep}options=-csearch_path%3D{self.schema}"
        self.url: str | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        # Everything the server wrote, line by line (without the newline). stderr is the log.
        self.log_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._readers: list[threading.Thread] = []
        self._listening = threading.Event()
        # Filled by the seeding helpers.
        self.admins: set[str] = set()
        self.users: list[str] = []
        self.tokens: dict[str, str] = {}
        self.repo_ids: dict[str, int] = {}
        self.grants: list[tuple[str, str, str]] = []

    # ---- CLI ---------------------------------------------------------------------------------------------------

    def cli_run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``keygate --db DB *args`` and return the completed process, whatever its exit code."""
        cmd = [str(self.binary), "--db", str(self.db), *map(str, args)]
        return subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=self._env()
        )

    def cli(self, *args: str, input: str | None = None) -> str:
        """Run ``keygate --db DB *args``; it must exit 0. Returns stdout, stripped."""
        res = self.cli_run(*args, input=input)
        assert res.returncode == 0, (
            f"keygate {' '.join(map(str, args))} exited {res.returncode}\n"
            f"stdout: {res.stdout!r}\nstderr: {res.stderr!r}"
        )
        return res.stdout.strip()

    # ---- seeding helpers (each records what it made on this object) ------------------------------------------

    def add_user(self, name: str, admin: bool = False) -> None:
        out = self.cli("user", "add", name, *(["--admin"] if admin else []))
        assert out == "", f"`user add {name}` must print nothing on stdout, printed {out!r}"
        self.users.append(name)
        if admin:
            self.admins.add(name)

    def add_token(self, user: str, read_only: bool = False) -> str:
        token = self.cli("token", "add", user, *(["--read-only"] if read_only else []))
        assert token and len(token.split()) == 1, f"`token add {user}` must print only the token, printed {token!r}"
        self.tokens[user] = token
        return token

    def add_repo(self, path: str, repo_id: int | None = None) -> int:
        out = self.cli("repo", "add", path, *(["--id", str(repo_id)] if repo_id is not None else []))
        assert re.fullmatch(r"\d+", out), f"`repo add {path}` must print only the numeric id, printed {out!r}"
        self.repo_ids[path] = int(out)
        if repo_id is not None:
            assert int(out) == repo_id, f"`repo add {path} --id {repo_id}` printed {out}"
        return int(out)

    def grant(self, path: str, user: str, role: str) -> None:
        self.cli("repo", "grant", path, user, "--role", role)
        self.grants.append((path, user, role))

    # ---- server ------------------------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        # KEYGATE_* settings from the caller's shell (KEYGATE_PUBLIC_URL, KEYGATE_DB, ...) must not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        return env

    def _drain(self, stream, sink: list[str], watch: bool) -> None:
        for raw in iter(stream.readline, ""):
            line = raw.rstrip("\n")
            sink.append(line)
            if watch and not self._listening.is_set():
                m = LISTENING_RE.search(line)
                if m:
                    self.url = m.group(1)
                    self.port = int(m.group(2))
                    self._listening.set()
        stream.close()

    def start(self, *extra_args: str, listen: str = "127.0.0.1:0") -> None:
        """Start ``keygate --db DB serve --listen LISTEN``; wait for the listening line on stderr."""
        assert self.proc is None, "gateway already started"
        cmd = [str(self.binary), "--db", str(self.db), "serve", "--listen", listen, *extra_args]
        if self.tls:
            pki = session_pki()
            cmd += ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key)]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=self._env(),
            cwd=self.workdir,
        )
        # One thread per pipe, started at once and running until EOF, so neither pipe can ever fill up.
        for stream, sink, watch in ((self.proc.stderr, self.log_lines, True), (self.proc.stdout, self.stdout_lines, False)):
            t = threading.Thread(target=self._drain, args=(stream, sink, watch), daemon=True)
            t.start()
            self._readers.append(t)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                exited = self.proc.poll()
                if exited is None:
                    self.proc.kill()
                    self.proc.wait()
                for t in self._readers:
                    t.join(2)
                self.proc = None  # nothing left to stop; the error below says what happened
                raise AssertionError(
                    f"keygate serve did not print 'keygate listening on http(s)://127.0.0.1:PORT' on stderr within "
                    f"{START_TIMEOUT}s (exit code {exited})\nstderr:\n" + "\n".join(self.log_lines)
                    + "\nstdout:\n" + "\n".join(self.stdout_lines)
                )
        assert self.url.startswith("https://" if self.tls else "http://"), self.url

    def stop(self) -> int:
        """SIGTERM the server; it must exit with code 0 within 10 s. Idempotent. Joins the log readers."""
        try:
            return self._stop()
        finally:
            if self.schema is not None and (self.proc is None or self.returncode is not None):
                _psql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
                self.schema = None

    def _stop(self) -> int:
        if self.proc is None:
            return 0
        if self.returncode is None:
            early = self.proc.poll()
            if early is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                    for t in self._readers:
                        t.join(5)
                    self.returncode = -9
                    raise AssertionError(f"keygate did not exit within {STOP_TIMEOUT}s of SIGTERM")
            for t in self._readers:
                t.join(5)
            self.returncode = self.proc.returncode
            if early is not None:
                raise AssertionError(f"keygate exited on its own (code {early}) before SIGTERM\n" + self.log_text())
        assert self.returncode == 0, f"keygate exited with {self.returncode} after SIGTERM\n" + self.log_text()
        return self.returncode

    def log_text(self) -> str:
        """Everything the server printed so far (stderr, then stdout)."""
        return "\n".join(self.log_lines + self.stdout_lines)

    def secrets(self) -> list[str]:
        return list(self.tokens.values())


def seed_default(gw: Gateway) -> None:
    """The standard cast used by every dialect suite.

    users:  root (admin), alice (maintainer), bob (reporter), carol (maintainer with a read-only token)
    repos:  acme/widgets, acme/tools/cli (nested group), other/secret (alice is NOT a member)
    grants: alice maintainer on acme/widgets and acme/tools/cli; bob reporter and carol maintainer on acme/widgets
    """
    gw.add_user("root", admin=True)
    for name in ("alice", "bob", "carol"):
        gw.add_user(name)
    gw.add_token("root")
    gw.add_token("alice")
    gw.add_token("bob")
    gw.add_token("carol", read_only=True)
    for path in ("acme/widgets", "acme/tools/cli", "other/secret"):
        gw.add_repo(path)
    gw.grant("acme/widgets", "alice", "maintainer")
    gw.grant("acme/tools/cli", "alice", "maintainer")
    gw.grant("acme/widgets", "bob", "reporter")
    gw.grant("acme/widgets", "carol", "maintainer")


def _require_binary() -> None:
    if not KEYGATE_BIN.is_file() or not os.access(KEYGATE_BIN, os.X_OK):
        pytest.fail(f"keygate binary not found at {KEYGATE_BIN} (build it with `cargo build`, or set KEYGATE_BIN)")


@pytest.fixture
def gateway(tmp_path):
    """A seeded, running keygate on 127.0.0.1:<free port> with its own database; stopped (exit 0) afterwards."""
    _require_binary()
    gw = Gateway(tmp_path)
    seed_default(gw)
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()


# ---- SSH keys ------------------------------------------------------------------------------------------------


@dataclass
class SshKey:
    """A key pair made by ssh-keygen. ``public`` is the .pub file text (with its trailing newline)."""

    path: Path
    public: str
    private: str
    comment: str

    @property
    def pub_path(self) -> Path:
        return self.path.with_name(self.path.name + ".pub")

    @functools.cached_property
    def md5(self) -> str:
        """The MD5 fingerprint as ``ssh-keygen -l -E md5`` prints it (aa:bb:...), without the "MD5:" prefix."""
        md5 = SshKeyFactory.fingerprint(self.pub_path, "md5")
        assert md5.startswith("MD5:"), md5
        return md5[len("MD5:"):]

    @functools.cached_property
    def sha256(self) -> str:
        """The SHA256 fingerprint as ``ssh-keygen -l`` prints it, "SHA256:" prefix included."""
        return SshKeyFactory.fingerprint(self.pub_path, "sha256")

    @property
    def type(self) -> str:
        return self.public.split()[0]

    @property
    def blob(self) -> str:
        return self.public.split()[1]


class SshKeyFactory:
    """Makes fresh keys with /usr/bin/ssh-keygen (~5 ms each, so a pool of 45+ is quick)."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._n = 0
        self._lock = threading.Lock()

    def new(self, comment: str = "keygate-test", key_type: str = "ed25519", bits: int | None = None) -> SshKey:
        with self._lock:
            self._n += 1
            path = self.dir / f"id_{key_type}_{self._n}"
        cmd = [SSH_KEYGEN, "-q", "-t", key_type, *(["-b", str(bits)] if bits else []), "-N", "", "-C", comment]
        cmd += ["-f", str(path)]
        subprocess.run(cmd, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
        return SshKey(
            path=path,
            public=path.with_name(path.name + ".pub").read_text(),
            private=path.read_text(),
            comment=comment,
        )

    def public(self, comment: str = "keygate-test") -> str:
        """Just the .pub text of a fresh ed25519 key."""
        return self.new(comment).public

    def many(self, n: int, comment: str = "keygate-test") -> list[SshKey]:
        """n fresh ed25519 keys (comments ``comment-0`` ...), made in parallel, returned in order."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda i: self.new(f"{comment}-{i}"), range(n)))

    @staticmethod
    def fingerprint(pub_path: Path, hash_name: str) -> str:
        """The fingerprint field of ``ssh-keygen -l -E HASH -f PUB`` (e.g. "MD5:aa:bb:..." or "SHA256:...")."""
        out = subprocess.run(
            [SSH_KEYGEN, "-l", "-E", hash_name, "-f", str(pub_path)], check=True, capture_output=True, text=True
        ).stdout
        return out.split()[1]


@pytest.fixture(scope="session")
def ssh_keys():
    with tempfile.TemporaryDirectory(prefix="keygate-sshkeys-") as d:
        yield SshKeyFactory(Path(d))
