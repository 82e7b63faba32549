//! `keygate import authorized-keys` and `keygate export authorized-keys` through the real binary:
//! exact reports, what the GitLab API then shows, idempotent re-runs, the progress bar only on a
//! terminal, and export lines byte-identical to stage 1's.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Gateway;
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/keys")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// SHA256 fingerprints of the fixtures, from fixtures/keys/manifest.tsv.
fn sha256_of(name: &str) -> String {
    fixture("manifest.tsv")
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .map(|f| f[5].to_string())
        .unwrap_or_else(|| panic!("{name} is not in the manifest"))
}

/// An authorized_keys file assembled part by part, remembering the line each part starts at.
#[derive(Default)]
struct KeyFile {
    text: String,
    lines: usize,
}

impl KeyFile {
    fn add(&mut self, part: &str) -> usize {
        let first = self.lines + 1;
        for line in part.trim_end_matches('\n').split('\n') {
            self.text.push_str(line);
            self.text.push('\n');
            self.lines += 1;
        }
        first
    }

    fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("authorized_keys-{}", self.lines));
        std::fs::write(&path, &self.text).unwrap();
        path
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn import(gw: &Gateway, file: &Path, args: &[&str]) -> Output {
    let mut all = vec!["import", "authorized-keys", file.to_str().unwrap()];
    all.extend_from_slice(args);
    gw.cli_raw(&all)
}

/// The deploy keys of a repository as the GitLab API lists them (as the admin).
fn gitlab_keys(gw: &Gateway, token: &str, repo: i64) -> Vec<Value> {
    gw.req(
        "GET",
        &format!("/api/v4/projects/{repo}/deploy_keys?per_page=100"),
    )
    .token(token)
    .send()
    .expect(200)
    .json()
    .as_array()
    .unwrap()
    .clone()
}

fn instance_key_count(gw: &Gateway, token: &str) -> usize {
    gw.req("GET", "/api/v4/deploy_keys?per_page=100")
        .token(token)
        .send()
        .expect(200)
        .json()
        .as_array()
        .unwrap()
        .len()
}

/// The private key fixtures' base64 lines: none may ever be printed.
fn private_bodies() -> Vec<String> {
    ["private-openssh-ed25519.key", "private-pem-rsa.key"]
        .iter()
        .flat_map(|name| {
            fixture(name)
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 16)
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_mixed_file_reports_each_refused_line_and_stores_only_the_good_keys() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let dir = tempfile::tempdir().unwrap();
    let mut file = KeyFile::default();
    file.add("# deploy keys of the build farm");
    let ed25519 = file.add(&fixture("ed25519.pub"));
    file.add("");
    let rsa = file.add(&format!(
        "command=\"echo \\\"a b\\\"\",no-pty,from=\"10.0.0.1\" {}",
        fixture("rsa-2048.pub")
    ));
    // No comment: the title says where the key came from.
    let uncommented = fixture("ecdsa-256.pub");
    let mut words = uncommented.split_whitespace();
    let ecdsa = file.add(&format!(
        "{} {}",
        words.next().unwrap(),
        words.next().unwrap()
    ));
    let junk = file.add("not a key");
    let private = file.add(&fixture("private-openssh-ed25519.key"));
    let weak = file.add(&fixture("rsa-1024.pub"));
    let ca = file.add(&format!("cert-authority {}", fixture("ecdsa-384.pub")));
    // The same key as the first one, behind options: already there by then.
    file.add(&fixture("options-ed25519.pub"));
    let dsa = file.add(&fixture("dsa-1024.pub"));
    let sk = file.add(&fixture("sk-ed25519.pub"));
    let mismatch = file.add(&fixture("mismatched-type.pub"));
    let pem = file.add(&fixture("private-pem-rsa.key"));
    let path = file.write(dir.path());

    let out = import(&gw, &path, &["--repo", "acme/widgets"]);
    assert_eq!(out.status.code(), Some(1), "a refused line fails the run");
    assert_eq!(
        text(&out.stdout),
        "imported 4, already present 1, refused 7\n"
    );
    assert_eq!((private, private + 7), (7, 14));
    assert_eq!(
        text(&out.stderr),
        format!(
            "line {junk}: key is not a valid OpenSSH public key\n\
             lines {private}-{}: this is a private key; paste the public key (the .pub file) instead\n\
             line {weak}: key must be at least 2048 bits\n\
             line {ca}: a cert-authority line trusts certificates, which keygate does not accept\n\
             line {dsa}: key type is forbidden\n\
             line {mismatch}: the key type word does not match the type inside the key\n\
             lines {pem}-{}: this is a private key; paste the public key (the .pub file) instead\n",
            private + 7,
            pem + 26,
        )
    );
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for body in private_bodies() {
        assert!(!printed.contains(&body), "private key material printed");
    }
    assert!(!printed.contains("AAAA"), "no key body is printed at all");

    let keys = gitlab_keys(&gw, &seed.root, seed.widgets);
    let got: Vec<(String, String, bool)> = keys
        .iter()
        .map(|k| {
            (
                k["fingerprint_sha256"].as_str().unwrap().to_string(),
                k["title"].as_str().unwrap().to_string(),
                k["can_push"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                sha256_of("ed25519.pub"),
                "fixture-ed25519@keygate".to_string(),
                false
            ),
            (
                sha256_of("rsa-2048.pub"),
                "fixture-rsa-2048@keygate".to_string(),
                false
            ),
            (
                sha256_of("ecdsa-256.pub"),
                format!("imported line {ecdsa}"),
                false
            ),
            (
                sha256_of("sk-ed25519.pub"),
                "fixture-sk-ed25519@keygate".to_string(),
                false
            ),
        ]
    );
    // Options are gone: the key is stored as `type base64 comment`.
    assert_eq!(
        keys[1]["key"].as_str().unwrap(),
        fixture("rsa-2048.pub").trim()
    );
    assert_eq!((ed25519, rsa), (2, 4));
    assert_eq!(
        instance_key_count(&gw, &seed.root),
        4,
        "refused lines stored nothing"
    );
    assert_eq!(sk, 19);
}

#[test]
fn a_second_run_changes_nothing_and_can_push_is_set_on_new_links_only() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let dir = tempfile::tempdir().unwrap();
    let mut file = KeyFile::default();
    for name in ["ed25519.pub", "rsa-2048.pub", "ecdsa-521.pub"] {
        file.add(&fixture(name));
    }
    file.add("ssh-ed25519 AAAA-broken");
    let path = file.write(dir.path());

    let first = import(&gw, &path, &["--repo", "acme/widgets", "--can-push"]);
    assert_eq!(
        text(&first.stdout),
        "imported 3, already present 0, refused 1\n"
    );
    let before = gitlab_keys(&gw, &seed.root, seed.widgets);
    assert!(before.iter().all(|k| k["can_push"] == json!(true)));
    // Again, without --can-push: every key is there already, and keeps its permission.
    let again = import(&gw, &path, &["--repo", "acme/widgets"]);
    assert_eq!(
        text(&again.stdout),
        "imported 0, already present 3, refused 1\n"
    );
    assert_eq!(text(&again.stderr), text(&first.stderr));
    assert_eq!(gitlab_keys(&gw, &seed.root, seed.widgets), before);
    assert_eq!(instance_key_count(&gw, &seed.root), 3);

    // The same keys on another repository join the existing key rows, read-only there.
    let other = import(&gw, &path, &["--repo", "acme/tools/cli"]);
    assert_eq!(
        text(&other.stdout),
        "imported 3, already present 0, refused 1\n"
    );
    let on_cli = gitlab_keys(&gw, &seed.root, seed.cli_repo);
    let ids = |keys: &[Value]| keys.iter().map(|k| k["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&on_cli), ids(&before), "one key row per public key");
    assert!(on_cli.iter().all(|k| k["can_push"] == json!(false)));
    assert_eq!(instance_key_count(&gw, &seed.root), 3);

    // Only clean lines: success.
    let mut clean = KeyFile::default();
    clean.add(&fixture("rsa-1024.pub"));
    let path = clean.write(dir.path());
    let weak = import(&gw, &path, &["--repo", "acme/widgets"]);
    assert_eq!(weak.status.code(), Some(1));
    let allowed = import(
        &gw,
        &path,
        &["--repo", "acme/widgets", "--min-rsa-bits", "1024"],
    );
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
    assert_eq!(
        text(&allowed.stdout),
        "imported 1, already present 0, refused 0\n"
    );
    assert_eq!(text(&allowed.stderr), "");

    let missing = import(&gw, &path, &["--repo", "no/such"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(text(&missing.stderr), "keygate: no such repository\n");
    assert_eq!(text(&missing.stdout), "");
}

/// The import's audit records, oldest first, as `keygate audit list --json` prints them.
fn key_events(gw: &Gateway) -> Vec<Value> {
    gw.cli(&["audit", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("one JSON object per line"))
        .filter(|e| e["action"].as_str().unwrap().starts_with("deploy_key."))
        .collect()
}

#[test]
fn an_import_records_each_key_it_creates_or_joins_and_a_rerun_records_nothing() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let dir = tempfile::tempdir().unwrap();
    let mut file = KeyFile::default();
    let ed = file.add(&fixture("ed25519.pub"));
    let rsa = file.add(&fixture("rsa-2048.pub"));
    // Listed twice: one key, one record, and the second line is "already present".
    file.add(&fixture("ed25519.pub"));
    let path = file.write(dir.path());

    let first = import(&gw, &path, &["--repo", "acme/widgets", "--can-push"]);
    assert_eq!(
        text(&first.stdout),
        "imported 2, already present 1, refused 0\n"
    );
    let keys = gitlab_keys(&gw, &seed.root, seed.widgets);
    let id_of = |fingerprint: &str| {
        keys.iter()
            .find(|k| k["fingerprint_sha256"] == fingerprint)
            .map(|k| k["id"].clone())
            .unwrap()
    };
    let created = key_events(&gw);
    assert_eq!(created.len(), 2, "{created:#?}");
    for (event, name, line) in [
        (&created[0], "ed25519.pub", ed),
        (&created[1], "rsa-2048.pub", rsa),
    ] {
        let fingerprint = sha256_of(name);
        assert_eq!(event["action"], "deploy_key.create");
        assert_eq!(event["actor"]["kind"], "cli");
        assert_eq!(event["dialect"], "cli");
        assert_eq!(event["repo_path"], "acme/widgets");
        assert_eq!(event["repo_id"], seed.widgets);
        assert_eq!(event["fingerprint"], fingerprint.as_str());
        assert_eq!(event["key_id"], id_of(&fingerprint));
        assert_eq!(event["details"]["after"]["can_push"], true);
        assert_eq!(event["details"]["import_line"], line);
        assert!(!event.to_string().contains("AAAA"), "no key material");
    }

    import(&gw, &path, &["--repo", "acme/widgets"]);
    assert_eq!(
        key_events(&gw).len(),
        2,
        "nothing changed, nothing recorded"
    );

    // The same keys on another repository join them there: one record each, read-only.
    import(&gw, &path, &["--repo", "acme/tools/cli"]);
    let all = key_events(&gw);
    let joined: Vec<&Value> = all[2..].iter().collect();
    assert_eq!(joined.len(), 2, "{all:#?}");
    for event in &joined {
        assert_eq!(event["action"], "deploy_key.join");
        assert_eq!(event["repo_path"], "acme/tools/cli");
        assert_eq!(event["details"]["after"]["can_push"], false);
    }
    assert_eq!(joined[0]["key_id"], created[0]["key_id"]);
    assert_eq!(joined[1]["key_id"], created[1]["key_id"]);
}

/// "imported N, already present M, refused R" as two numbers, after checking nothing was refused.
fn imported_and_present(out: &Output) -> (usize, usize) {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let numbers: Vec<usize> = report
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 3, "{report}");
    assert_eq!(numbers[2], 0, "{report}");
    (numbers[0], numbers[1])
}

/// Two imports of one file into one repository at once, as a deployment script run on every
/// gateway host would start them. On PostgreSQL their chunks race under SERIALIZABLE: the loser
/// of each race must run again and find the winner's keys, never fail or import part of a file.
#[test]
fn two_imports_of_one_file_at_once_both_succeed_and_store_each_key_once() {
    let gw = Gateway::start();
    gw.seed();
    let dir = tempfile::tempdir().unwrap();
    let mut file = KeyFile::default();
    // More than two chunks, so the two runs meet more than once.
    let keys = 2 * keygate::core::IMPORT_CHUNK + 500;
    for i in 0..keys {
        file.add(&common::fresh_key(&format!("host-{i}")));
    }
    let path = file.write(dir.path());
    let runs: Vec<Output> = std::thread::scope(|scope| {
        let both: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| import(&gw, &path, &["--repo", "acme/widgets"])))
            .collect();
        both.into_iter().map(|run| run.join().unwrap()).collect()
    });
    let (a, b) = (
        imported_and_present(&runs[0]),
        imported_and_present(&runs[1]),
    );
    assert_eq!(a.0 + b.0, keys, "each key imported by one run: {a:?} {b:?}");
    assert_eq!(a.1 + b.1, keys, "and found present by the other");
    let created = key_events(&gw);
    assert_eq!(created.len(), keys, "one record per key");
    let ids: std::collections::HashSet<i64> = created
        .iter()
        .map(|e| {
            assert_eq!(e["action"], "deploy_key.create");
            e["key_id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), keys);
}

#[test]
fn the_progress_bar_shows_on_a_terminal_only() {
    let gw = Gateway::start();
    gw.seed();
    let dir = tempfile::tempdir().unwrap();
    let mut file = KeyFile::default();
    file.add(&fixture("ed25519.pub"));
    file.add(&fixture("ecdsa-256.pub"));
    let path = file.write(dir.path());
    let piped = import(&gw, &path, &["--repo", "acme/widgets"]);
    assert!(piped.status.success());
    assert_eq!(text(&piped.stderr), "", "nothing drawn into a pipe");
    assert!(!text(&piped.stdout).contains('\u{1b}'));

    let command = format!(
        "{} --db '{}' import authorized-keys '{}' --repo acme/tools/cli",
        env!("CARGO_BIN_EXE_keygate"),
        gw.db.display(),
        path.display()
    );
    let tty = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env("RUST_LOG", "error")
        .output()
        .expect("script(1) runs");
    let shown = text(&tty.stdout);
    assert!(tty.status.success(), "{shown}");
    assert!(shown.contains("importing"), "{shown:?}");
    assert!(shown.contains("2/2 keys"), "{shown:?}");
    assert!(shown.contains("imported 2, already present 0, refused 0"));
}

fn door_args(gw: &Gateway, secret: &Path) -> Vec<String> {
    vec![
        "--gateway".into(),
        gw.url.clone(),
        "--secret-file".into(),
        secret.to_str().unwrap().into(),
        "--git-root".into(),
        "/srv/git".into(),
    ]
}

fn export(gw: &Gateway, secret: &Path, repo: Option<&str>) -> Output {
    let mut args: Vec<String> = vec!["export".into(), "authorized-keys".into()];
    args.extend(door_args(gw, secret));
    if let Some(repo) = repo {
        args.extend(["--repo".to_string(), repo.to_string()]);
    }
    gw.cli_raw(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// What stage 1 (`keygate ssh authorized-keys … git TYPE BASE64`) prints for a key.
fn stage_one(gw: &Gateway, secret: &Path, kind: &str, blob: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["ssh", "authorized-keys"])
        .args(door_args(gw, secret))
        .args(["git", kind, blob])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn export_prints_stage_ones_line_once_per_active_key() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("internal.secret");
    std::fs::write(&secret, gw.internal_secret()).unwrap();

    let mut widgets = KeyFile::default();
    widgets.add(&fixture("ed25519.pub"));
    widgets.add(&fixture("rsa-2048.pub"));
    let mut cli = KeyFile::default();
    cli.add(&fixture("rsa-2048.pub"));
    cli.add(&fixture("ecdsa-256.pub"));
    for (file, repo) in [(&widgets, "acme/widgets"), (&cli, "acme/tools/cli")] {
        let out = import(&gw, &file.write(dir.path()), &["--repo", repo]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // A key that expires in a moment, and one removed from its only repository: neither can log in.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let at = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    gw.req(
        "POST",
        &format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
    )
    .token(&seed.alice)
    .json(&json!({"title": "soon", "key": common::fresh_key("soon"), "expires_at": at}))
    .send()
    .expect(201);
    let gone = gw
        .req(
            "POST",
            &format!("/api/v4/projects/{}/deploy_keys", seed.secret),
        )
        .token(&seed.root)
        .json(&json!({"title": "gone", "key": common::fresh_key("gone")}))
        .send()
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    gw.req(
        "DELETE",
        &format!("/api/v4/projects/{}/deploy_keys/{gone}", seed.secret),
    )
    .token(&seed.root)
    .send()
    .expect(204);
    std::thread::sleep(
        (soon - time::OffsetDateTime::now_utc()).unsigned_abs()
            + std::time::Duration::from_millis(200),
    );

    let out = export(&gw, &secret, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = text(&out.stdout);
    let lines: Vec<&str> = exported.lines().collect();
    let ids: HashMap<String, i64> = gitlab_keys(&gw, &seed.root, seed.widgets)
        .into_iter()
        .chain(gitlab_keys(&gw, &seed.root, seed.cli_repo))
        .map(|k| {
            (
                k["fingerprint_sha256"].as_str().unwrap().to_string(),
                k["id"].as_i64().unwrap(),
            )
        })
        .collect();
    let program = std::fs::canonicalize(env!("CARGO_BIN_EXE_keygate")).unwrap();
    let secret_abs = std::fs::canonicalize(&secret).unwrap();
    let expected: Vec<String> = ["ed25519.pub", "rsa-2048.pub", "ecdsa-256.pub"]
        .iter()
        .map(|name| {
            let public = fixture(name);
            let bare: Vec<&str> = public.split_whitespace().take(2).collect();
            format!(
                "command=\"{} ssh git-shell --gateway {} --secret-file {} --git-root /srv/git key-{}\",restrict {}",
                program.display(),
                gw.url,
                secret_abs.display(),
                ids[&sha256_of(name)],
                bare.join(" ")
            )
        })
        .collect();
    assert_eq!(
        lines, expected,
        "one line per key, the key on two repositories once"
    );
    // Byte for byte what the SSH door's stage 1 prints for the same key.
    for line in &lines {
        let words: Vec<&str> = line.rsplitn(3, ' ').collect();
        assert_eq!(
            stage_one(&gw, &secret, words[1], words[0]),
            format!("{line}\n")
        );
    }

    let out = export(&gw, &secret, Some("acme/tools/cli"));
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), format!("{}\n{}\n", lines[1], lines[2]));
    let out = export(&gw, &secret, Some("no/such"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "keygate: no such repository\n");
    assert_eq!(text(&out.stdout), "");
}
