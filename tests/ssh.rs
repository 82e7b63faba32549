//! The SSH door end to end: a real OpenSSH sshd on a free loopback port, the real git client and
//! the real gateway, with the deploy keys managed through the dialects.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Gateway, Seed};
use serde_json::{Value, json};

const SSHD: &str = "/usr/sbin/sshd";
/// Where test doors live. sshd refuses an AuthorizedKeysCommand when the program or any
/// directory above it is not root-owned or is writable by others, so never under /tmp.
const DOORS: &str = "/var/lib/keygate-test";

/// The uid and gid of the `git` account.
fn git_account() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"git") && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether this machine can run sshd for the tests. `scripts/test.sh` installs openssh-server,
/// creates the `git` account and sets `KEYGATE_TEST_SSH=require`, so in CI a missing piece fails
/// the test instead of skipping it.
fn available() -> bool {
    let ready = Path::new(SSHD).exists() && is_root() && git_account().is_some();
    if !ready {
        assert_ne!(
            std::env::var("KEYGATE_TEST_SSH").as_deref(),
            Ok("require"),
            "the SSH door tests need root, {SSHD} and a `git` account"
        );
        eprintln!("skipped: needs root, {SSHD} and a `git` account (scripts/test.sh sets them up)");
    }
    ready
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("command runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One gateway, one sshd in front of it, and a scratch directory laid out as a git host.
struct Door {
    gw: Gateway,
    seed: Seed,
    dir: tempfile::TempDir,
    port: u16,
    sshd: Child,
}

impl Door {
    fn open() -> Door {
        let gw = Gateway::start();
        let seed = gw.seed();
        Door::in_front_of(gw, seed)
    }

    fn in_front_of(gw: Gateway, seed: Seed) -> Door {
        let (uid, gid) = git_account().expect("git account");
        std::fs::create_dir_all(DOORS).unwrap();
        set_mode(Path::new(DOORS), 0o755);
        let dir = tempfile::Builder::new()
            .prefix("door-")
            .tempdir_in(DOORS)
            .unwrap();
        let root = dir.path();
        set_mode(root, 0o755);
        let program = root.join("keygate");
        if std::fs::hard_link(env!("CARGO_BIN_EXE_keygate"), &program).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_keygate"), &program).unwrap();
        }
        set_mode(&program, 0o755);
        // The git host's copy of the secret belongs to the account sshd runs both stages as.
        let secret = root.join("internal.secret");
        std::fs::write(&secret, format!("{}\n", gw.internal_secret())).unwrap();
        set_mode(&secret, 0o600);
        std::os::unix::fs::chown(&secret, Some(uid), Some(gid)).unwrap();
        let git_root = root.join("git");
        std::fs::create_dir(&git_root).unwrap();
        std::os::unix::fs::chown(&git_root, Some(uid), Some(gid)).unwrap();
        for sub in ["keys", "home", "work"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        assert!(
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(root.join("host_ed25519")))
            .status
            .success()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {root}/host_ed25519\nPidFile {root}/sshd.pid\n\
             AuthorizedKeysFile none\n\
             AuthorizedKeysCommand {root}/keygate ssh authorized-keys --gateway {url} --secret-file {root}/internal.secret --git-root {root}/git %u %t %k\n\
             AuthorizedKeysCommandUser git\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin no\nStrictModes no\nLogLevel VERBOSE\n",
            root = root.display(),
            url = gw.url,
        );
        std::fs::write(root.join("sshd_config"), config).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let sshd = Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(root.join("sshd_config"))
            .arg("-E")
            .arg(root.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("sshd starts");
        let door = Door {
            gw,
            seed,
            dir,
            port,
            sshd,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                door.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        door
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("sshd.log")).unwrap_or_default()
    }

    /// A new key pair; returns the private key's path and the public key's text.
    fn keypair(&self, name: &str) -> (PathBuf, String) {
        let path = self.root().join("keys").join(name);
        assert!(
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(&path))
            .status
            .success()
        );
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        (path, public.trim().to_string())
    }

    /// Adds a deploy key through the GitLab API as alice (a maintainer); returns its id.
    fn add_key(&self, repo: i64, public: &str, can_push: bool, expires_at: Option<&str>) -> i64 {
        common::add_key(
            &self.gw,
            &self.seed.alice,
            repo,
            public,
            can_push,
            expires_at,
        )
    }

    fn ssh_command(&self, key: &Path) -> String {
        format!(
            "ssh -i {} -p {} -F /dev/null -o IdentitiesOnly=yes -o IdentityAgent=none \
             -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
            key.display(),
            self.port
        )
    }

    /// Runs git as a client with `key`, in `cwd`.
    fn git(&self, key: &Path, cwd: &Path, args: &[&str]) -> Output {
        run(Command::new("git")
            .args([
                "-c",
                "user.name=CI",
                "-c",
                "user.email=ci@example.com",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(cwd)
            .env("HOME", self.root().join("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_SSH_COMMAND", self.ssh_command(key)))
    }

    /// `ssh git@127.0.0.1 [command]` with `key`.
    fn ssh(&self, key: &Path, user: &str, command: Option<&str>) -> Output {
        let mut cmd = Command::new("sh");
        let line = match command {
            Some(_) => format!("{} {user}@127.0.0.1 \"$0\"", self.ssh_command(key)),
            None => format!("{} -T {user}@127.0.0.1", self.ssh_command(key)),
        };
        cmd.arg("-c").arg(line);
        if let Some(c) = command {
            cmd.arg(c);
        }
        run(&mut cmd)
    }

    fn url(&self, path: &str) -> String {
        format!("git@127.0.0.1:{path}")
    }

    fn bare(&self, repo: i64) -> PathBuf {
        keygate::ssh::repository_dir(&self.root().join("git"), repo)
    }

    /// A fresh work tree with one commit; returns its directory and the commit id.
    fn work_tree(&self, name: &str) -> (PathBuf, String) {
        let dir = self.root().join("work").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let none = Path::new("/dev/null");
        assert!(self.git(none, &dir, &["init", "-q"]).status.success());
        std::fs::write(dir.join("README"), format!("{name}\n")).unwrap();
        assert!(self.git(none, &dir, &["add", "README"]).status.success());
        assert!(
            self.git(none, &dir, &["commit", "-q", "-m", name])
                .status
                .success()
        );
        let head = text(&self.git(none, &dir, &["rev-parse", "HEAD"]).stdout);
        (dir, head.trim().to_string())
    }

    fn push(&self, key: &Path, work: &Path, path: &str) -> Output {
        self.git(key, work, &["push", "-q", &self.url(path), "main"])
    }

    fn clone(&self, key: &Path, path: &str, into: &str) -> Output {
        let work = self.root().join("work");
        self.git(key, &work, &["clone", "-q", &self.url(path), into])
    }
}

impl Drop for Door {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn assert_refused(out: &Output, words: &str, door: &Door) {
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a refusal, got success: {stderr}"
    );
    assert!(
        stderr.contains(words),
        "expected {words:?} in: {stderr}\nsshd log:\n{}",
        door.log()
    );
}

fn assert_ok(out: &Output, door: &Door) {
    assert!(
        out.status.success(),
        "git failed: {}\nsshd log:\n{}",
        text(&out.stderr),
        door.log()
    );
}

const NOT_FOUND: &str =
    "The project you were looking for could not be found or you don't have permission to view it.";
const READ_ONLY: &str = "This deploy key does not have write access to this project.";

// ---------- the door with the real sshd and git ----------

#[test]
fn push_with_a_writable_key_then_clone_read_only_and_a_read_only_push_is_refused() {
    if !available() {
        return;
    }
    let door = Door::open();
    let (writer, writer_pub) = door.keypair("writer");
    let (reader, reader_pub) = door.keypair("reader");
    door.add_key(door.seed.widgets, &writer_pub, true, None);
    door.add_key(door.seed.widgets, &reader_pub, false, None);

    // A push with a can_push key lands in the bare repository, which did not exist before.
    assert!(!door.bare(door.seed.widgets).exists());
    let (work, head) = door.work_tree("first");
    assert_ok(&door.push(&writer, &work, "acme/widgets.git"), &door);
    let landed = run(Command::new("git")
        .arg("--git-dir")
        .arg(door.bare(door.seed.widgets))
        .args(["rev-parse", "main"]));
    assert_eq!(text(&landed.stdout).trim(), head);

    // The read-only key clones it, with or without `.git`, with a leading `/`, in another case.
    assert_ok(&door.clone(&reader, "acme/widgets.git", "c1"), &door);
    let cloned = std::fs::read_to_string(door.root().join("work/c1/README")).unwrap();
    assert_eq!(cloned, "first\n");
    assert_ok(&door.clone(&reader, "acme/widgets", "c2"), &door);
    let url = format!("ssh://git@127.0.0.1:{}/Acme/Widgets.git", door.port);
    let work_dir = door.root().join("work");
    assert_ok(
        &door.git(&reader, &work_dir, &["clone", "-q", &url, "c3"]),
        &door,
    );
    let archive = door.git(
        &reader,
        &work_dir,
        &[
            "archive",
            "--remote",
            &door.url("acme/widgets.git"),
            "main",
            "README",
        ],
    );
    assert_ok(&archive, &door);
    assert!(!archive.stdout.is_empty());

    // Its push is refused with the words GitLab users know, and nothing changes.
    let c1 = door.root().join("work/c1");
    std::fs::write(c1.join("README"), "changed\n").unwrap();
    assert!(
        door.git(&reader, &c1, &["commit", "-q", "-am", "x"])
            .status
            .success()
    );
    let refused = door.push(&reader, &c1, "acme/widgets.git");
    assert_refused(&refused, READ_ONLY, &door);
    let after = run(Command::new("git")
        .arg("--git-dir")
        .arg(door.bare(door.seed.widgets))
        .args(["rev-parse", "main"]));
    assert_eq!(text(&after.stdout).trim(), head);
}

#[test]
fn a_key_of_one_repository_opens_no_other() {
    if !available() {
        return;
    }
    let door = Door::open();
    let (key, public) = door.keypair("widgets-only");
    door.add_key(door.seed.widgets, &public, true, None);
    let (work, _) = door.work_tree("elsewhere");
    // Another repository that exists, and one that does not: the same answer, so a key learns
    // nothing about repositories it cannot open.
    for path in ["acme/tools/cli.git", "other/secret.git", "no/such-repo.git"] {
        assert_refused(&door.clone(&key, path, "x"), NOT_FOUND, &door);
        assert_refused(&door.push(&key, &work, path), NOT_FOUND, &door);
    }
    assert!(!door.bare(door.seed.cli_repo).exists());
    assert!(!door.bare(door.seed.secret).exists());
}

#[test]
fn a_key_deleted_through_another_dialect_is_refused_at_the_next_fetch() {
    if !available() {
        return;
    }
    let door = Door::open();
    let (key, public) = door.keypair("revoked");
    let id = door.add_key(door.seed.widgets, &public, false, None);
    let (work, _) = door.work_tree("seed");
    let (writer, writer_pub) = door.keypair("seeder");
    door.add_key(door.seed.widgets, &writer_pub, true, None);
    assert_ok(&door.push(&writer, &work, "acme/widgets"), &door);
    assert_ok(&door.clone(&key, "acme/widgets", "before"), &door);
    // Revoked through GitHub's API: no cache anywhere, so the very next connection is refused.
    door.gw
        .req("DELETE", &format!("/repos/acme/widgets/keys/{id}"))
        .header("Authorization", &format!("token {}", door.seed.alice))
        .send()
        .expect(204);
    let fetch = door.git(
        &key,
        &door.root().join("work/before"),
        &["fetch", "-q", "origin"],
    );
    assert_refused(&fetch, "Permission denied", &door);
}

#[test]
fn an_expired_key_is_refused() {
    if !available() {
        return;
    }
    let door = Door::open();
    let (key, public) = door.keypair("expiring");
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let at = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    door.add_key(door.seed.widgets, &public, true, Some(&at));
    let (work, _) = door.work_tree("before-expiry");
    assert_ok(&door.push(&key, &work, "acme/widgets"), &door);
    std::thread::sleep(
        (soon - time::OffsetDateTime::now_utc()).unsigned_abs() + Duration::from_millis(200),
    );
    assert_refused(
        &door.clone(&key, "acme/widgets", "after"),
        "Permission denied",
        &door,
    );
}

#[test]
fn logins_without_a_git_command_and_injection_attempts_are_refused() {
    if !available() {
        return;
    }
    let door = Door::open();
    let (key, public) = door.keypair("prober");
    door.add_key(door.seed.widgets, &public, true, None);
    let marker = door.root().join("pwned");
    let touch = format!("touch {}", marker.display());
    let shell = door.ssh(&key, "git", None);
    assert_refused(&shell, "interactive logins are not allowed", &door);
    for (command, words) in [
        ("id", "only git-upload-pack"),
        (touch.as_str(), "only git-upload-pack"),
        (&format!("sh -c '{touch}'"), "only git-upload-pack"),
        (
            &format!("git-upload-pack --upload-pack='{touch}'"),
            "exactly one repository path",
        ),
        (
            &format!("git-upload-pack 'acme/widgets'; {touch}"),
            "exactly one repository path",
        ),
        (
            &format!("git-upload-pack 'acme/widgets' && {touch}"),
            "exactly one repository path",
        ),
        ("git-upload-pack '../../../etc'", "not valid"),
        ("git-upload-pack '/etc/passwd/../..'", "not valid"),
        (
            "git-receive-pack '-c core.hooksPath=/tmp acme/widgets'",
            "not valid",
        ),
        (
            "git-upload-pack 'acme/widgets' 'acme/tools/cli'",
            "exactly one repository path",
        ),
        ("git-upload-pack '/etc/passwd'", NOT_FOUND),
    ] {
        let out = door.ssh(&key, "git", Some(command));
        assert_refused(&out, words, &door);
    }
    assert!(!marker.exists(), "an injected command ran");
    // A deploy key is for the git account only; any other user gets nothing from stage 1.
    let other = door.ssh(&key, "nobody", Some("git-upload-pack 'acme/widgets'"));
    assert_refused(&other, "Permission denied", &door);
}

#[test]
fn a_clone_sets_last_used_in_gitlab_and_github() {
    if !available() {
        return;
    }
    let door = Door::open();
    let (key, public) = door.keypair("used");
    let id = door.add_key(door.seed.widgets, &public, false, None);
    let gitlab = |door: &Door| -> Value {
        door.gw
            .req(
                "GET",
                &format!("/api/v4/projects/{}/deploy_keys/{id}", door.seed.widgets),
            )
            .token(&door.seed.alice)
            .send()
            .expect(200)
            .json()
    };
    let github = |door: &Door| -> Value {
        door.gw
            .req("GET", &format!("/repos/acme/widgets/keys/{id}"))
            .header("Authorization", &format!("token {}", door.seed.alice))
            .send()
            .expect(200)
            .json()
    };
    assert_eq!(gitlab(&door)["last_used_at"], Value::Null);
    assert_eq!(github(&door)["last_used"], Value::Null);
    assert_ok(&door.clone(&key, "acme/widgets", "c"), &door);
    let used_at = gitlab(&door)["last_used_at"].as_str().unwrap().to_string();
    let used = github(&door)["last_used"].as_str().unwrap().to_string();
    assert!(used_at.starts_with(&used[..19]), "{used_at} vs {used}");
    // A second clone within the minute writes nothing: the recorded time stays.
    assert_ok(&door.clone(&key, "acme/widgets", "c2"), &door);
    assert_eq!(gitlab(&door)["last_used_at"].as_str().unwrap(), used_at);
}

#[test]
fn a_stopped_gateway_or_a_wrong_secret_denies_access() {
    if !available() {
        return;
    }
    let mut door = Door::open();
    let (key, public) = door.keypair("lonely");
    door.add_key(door.seed.widgets, &public, true, None);
    assert_ok(&door.clone(&key, "acme/widgets", "ok"), &door);
    // The wrong secret: the gateway refuses stage 1, and sshd gets no line.
    let secret = door.root().join("internal.secret");
    let good = std::fs::read_to_string(&secret).unwrap();
    std::fs::write(&secret, format!("{}\n", "0".repeat(64))).unwrap();
    assert_refused(
        &door.clone(&key, "acme/widgets", "bad-secret"),
        "Permission denied",
        &door,
    );
    std::fs::write(&secret, good).unwrap();
    assert_ok(&door.clone(&key, "acme/widgets", "good-again"), &door);
    door.gw.stop();
    assert_refused(
        &door.clone(&key, "acme/widgets", "down"),
        "Permission denied",
        &door,
    );
}

// ---------- stage 2 run by hand: what sshd would run once stage 1 let the key in ----------

/// Runs the forced command as sshd would, with `SSH_ORIGINAL_COMMAND`.
fn git_shell(gw: &Gateway, secret: &Path, git_root: &Path, key: &str, original: &str) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["ssh", "git-shell", "--gateway", &gw.url, "--secret-file"])
        .arg(secret)
        .arg("--git-root")
        .arg(git_root)
        .arg(key)
        .env("SSH_ORIGINAL_COMMAND", original))
}

#[test]
fn the_forced_command_refuses_with_the_gateways_reason_and_fails_closed() {
    let mut gw = Gateway::start();
    let seed = gw.seed();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, gw.internal_secret()).unwrap();
    let git_root = dir.path().join("git");
    let add = |repo: i64, can_push: bool| -> i64 {
        common::add_key(
            &gw,
            &seed.alice,
            repo,
            &common::fresh_key("k"),
            can_push,
            None,
        )
    };
    let read_only = add(seed.widgets, false);
    let stderr = |out: Output| {
        assert!(!out.status.success());
        text(&out.stderr)
    };
    let push = "git-receive-pack 'acme/widgets.git'";
    let out = git_shell(&gw, &secret, &git_root, &format!("key-{read_only}"), push);
    assert_eq!(stderr(out).trim(), format!("ERROR: {READ_ONLY}"));
    let out = git_shell(
        &gw,
        &secret,
        &git_root,
        "key-999999",
        "git-upload-pack 'acme/widgets'",
    );
    assert!(stderr(out).contains("no longer exists"));
    let out = git_shell(
        &gw,
        &secret,
        &git_root,
        "key-1; id",
        "git-upload-pack 'acme/widgets'",
    );
    assert!(stderr(out).contains("expected key-<ID>"));
    assert!(!git_root.exists(), "nothing refused may touch the git root");
    // A wrong secret and a stopped gateway both shut the door, with a message that says so.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "1".repeat(64)).unwrap();
    let out = git_shell(
        &gw,
        &wrong,
        &git_root,
        &format!("key-{read_only}"),
        "git-upload-pack 'acme/widgets'",
    );
    assert!(stderr(out).contains("refused this host's internal secret"));
    gw.stop();
    let out = git_shell(
        &gw,
        &secret,
        &git_root,
        &format!("key-{read_only}"),
        "git-upload-pack 'acme/widgets'",
    );
    assert!(stderr(out).contains("cannot reach the keygate gateway"));
}

// ---------- stage 1 run by hand ----------

fn authorized_keys(gw: &Gateway, secret: &Path, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args([
            "ssh",
            "authorized-keys",
            "--gateway",
            &gw.url,
            "--secret-file",
        ])
        .arg(secret)
        .args(["--git-root", "/srv/git"])
        .args(args))
}

#[test]
fn stage_one_prints_one_forced_command_line_for_an_active_key_only() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, gw.internal_secret()).unwrap();
    let public = common::fresh_key("stage1");
    let (kind, b64) = {
        let mut words = public.split_whitespace();
        (
            words.next().unwrap().to_string(),
            words.next().unwrap().to_string(),
        )
    };
    // Not a deploy key yet: nothing, and success, so sshd simply refuses the key.
    let out = authorized_keys(&gw, &secret, &["git", &kind, &b64]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "");
    let id = common::add_key(&gw, &seed.alice, seed.widgets, &public, false, None);
    let out = authorized_keys(&gw, &secret, &["git", &kind, &b64]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let program = std::fs::canonicalize(env!("CARGO_BIN_EXE_keygate")).unwrap();
    let secret_abs = std::fs::canonicalize(&secret).unwrap();
    assert_eq!(
        printed,
        format!(
            "command=\"{} ssh git-shell --gateway {} --secret-file {} --git-root /srv/git key-{id}\",restrict {kind} {b64}\n",
            program.display(),
            gw.url,
            secret_abs.display()
        )
    );
    // Another account, a hostile key text, options smuggled in as values: nothing.
    for args in [
        vec!["root", kind.as_str(), b64.as_str()],
        vec!["git", "ssh-rsa", b64.as_str()],
        vec!["git", kind.as_str(), "--gateway=http://127.0.0.1:1/"],
        vec!["git", "--help", b64.as_str()],
        vec!["git", kind.as_str(), &format!("{b64}\ncommand=\"sh\"")],
    ] {
        let out = authorized_keys(&gw, &secret, &args);
        assert_eq!(text(&out.stdout), "", "{args:?}");
    }
    // An expired key or one attached nowhere prints nothing either.
    gw.req(
        "DELETE",
        &format!("/api/v4/projects/{}/deploy_keys/{id}", seed.widgets),
    )
    .token(&seed.alice)
    .send()
    .expect(204);
    let out = authorized_keys(&gw, &secret, &["git", &kind, &b64]);
    assert_eq!(text(&out.stdout), "");
    // A wrong secret prints nothing and fails, so the failure shows in sshd's log.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "2".repeat(64)).unwrap();
    let out = authorized_keys(&gw, &wrong, &["git", &kind, &b64]);
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "");
}

// ---------- the internal routes over raw HTTP ----------

#[test]
fn internal_routes_refuse_requests_without_the_secret() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let public = common::fresh_key("internal");
    common::add_key(&gw, &seed.alice, seed.widgets, &public, false, None);
    let fingerprint = gw
        .req(
            "GET",
            &format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
        )
        .token(&seed.alice)
        .send()
        .expect(200)
        .json()[0]["fingerprint_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let lookup = format!(
        "/internal/ssh/authorized-key?fingerprint={}",
        percent_encoding::utf8_percent_encode(&fingerprint, percent_encoding::NON_ALPHANUMERIC)
    );
    let secret = gw.internal_secret();
    for auth in [
        None,
        Some("Bearer wrong".to_string()),
        Some(format!("Bearer {secret}x")),
        Some(seed.root.clone()),
    ] {
        let mut req = gw.req("GET", &lookup);
        if let Some(value) = &auth {
            req = req.header("Authorization", value);
        }
        let res = req.send().expect(401);
        assert!(!res.body.contains(&secret));
        let mut post = gw.req("POST", "/internal/ssh/access");
        if let Some(value) = &auth {
            post = post.header("Authorization", value);
        }
        post.json(&json!({"key_id": 1, "repository": "acme/widgets", "action": "git-upload-pack"}))
            .send()
            .expect(401);
    }
    // An admin's token is no substitute for the secret; the secret opens the route.
    let found = gw
        .req("GET", &lookup)
        .header("Authorization", &format!("Bearer {secret}"))
        .send()
        .expect(200)
        .json();
    assert!(found["id"].as_i64().is_some());
    let bad = gw
        .req("GET", "/internal/ssh/authorized-key?fingerprint=nope")
        .header("Authorization", &format!("Bearer {secret}"))
        .send();
    assert_eq!(bad.status, 400);
    // Not in any public contract.
    for doc in [
        "/api/v4/openapi.yaml",
        "/api/v3/openapi.yaml",
        "/v4/openapi.yaml",
    ] {
        let body = gw.req("GET", doc).send().expect(200).body;
        assert!(!body.contains("/internal"), "{doc}");
    }
}

/// Stage 1 follows a key's attachments as they come and go through the API: an instance key
/// attached nowhere is refused, opens once enabled on a project, stays open while one of two
/// projects keeps it, and is refused again once the last lets it go, though the key remains.
#[test]
fn the_lookup_admits_a_key_exactly_while_some_repository_holds_it() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let secret = gw.internal_secret();
    let public = common::fresh_key("instance");
    let created = gw
        .req("POST", "/api/v4/deploy_keys")
        .token(&seed.root)
        .json(&json!({"title": "instance", "key": public}))
        .send()
        .expect(201)
        .json();
    let id = created["id"].as_i64().unwrap();
    let lookup = format!(
        "/internal/ssh/authorized-key?fingerprint={}",
        percent_encoding::utf8_percent_encode(
            created["fingerprint_sha256"].as_str().unwrap(),
            percent_encoding::NON_ALPHANUMERIC
        )
    );
    let status = || {
        gw.req("GET", &lookup)
            .header("Authorization", &format!("Bearer {secret}"))
            .send()
            .status
    };
    let keys = |project: i64| format!("/api/v4/projects/{project}/deploy_keys/{id}");
    assert_eq!(status(), 404, "attached nowhere yet");
    for project in [seed.widgets, seed.cli_repo] {
        gw.req("POST", &format!("{}/enable", keys(project)))
            .token(&seed.alice)
            .send()
            .expect(201);
        assert_eq!(status(), 200, "enabled on {project}");
    }
    gw.req("DELETE", &keys(seed.widgets))
        .token(&seed.alice)
        .send()
        .expect(204);
    assert_eq!(status(), 200, "one project still holds it");
    gw.req("DELETE", &keys(seed.cli_repo))
        .token(&seed.alice)
        .send()
        .expect(204);
    assert_eq!(status(), 404, "no project holds it");
    let listed = gw
        .req("GET", "/api/v4/deploy_keys")
        .token(&seed.root)
        .send()
        .expect(200)
        .json();
    assert!(
        listed.as_array().unwrap().iter().any(|k| k["id"] == id),
        "the instance key itself remains: {listed}"
    );
}
