//! The admin CLI: exact outputs, exit codes and `--db` placement that scripts rely on.

mod common;

use std::process::Command;

use common::Gateway;

fn keygate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(args)
        .env_remove("KEYGATE_DB")
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn db_flag_anywhere_and_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let db = db.to_str().unwrap();
    let out = keygate(&["user", "add", "alice", "--db", db]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "", "user add prints nothing");
    let out = keygate(&["--db", db, "user", "add", "root", "--admin"]);
    assert!(out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["user", "list"])
        .env("KEYGATE_DB", db)
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "1 alice user\n2 root admin");
}

#[test]
fn tokens_print_once_and_list_without_secrets() {
    let gw = Gateway::start();
    gw.cli(&["user", "add", "alice"]);
    let token = gw.cli(&["token", "add", "alice"]);
    assert!(token.starts_with("kgt_") && token.len() == 68, "{token}");
    assert!(token[4..].chars().all(|c| c.is_ascii_hexdigit()));
    let read_only = gw.cli(&[
        "token",
        "add",
        "alice",
        "--read-only",
        "--expires-at",
        "2099-01-01",
    ]);
    assert_ne!(token, read_only);
    let listed = gw.cli(&["token", "list", "alice"]);
    assert_eq!(
        listed, "1 api never\n2 read_api 2099-01-01T00:00:00.000Z",
        "ids and scopes only"
    );
    assert!(!listed.contains(&token[4..]));
    gw.cli(&["repo", "add", "acme/widgets"]);
    let path = "/api/v4/projects/1/deploy_keys";
    gw.cli(&[
        "repo",
        "grant",
        "acme/widgets",
        "alice",
        "--role",
        "maintainer",
    ]);
    gw.req("GET", path).token(&token).send().expect(200);
    gw.cli(&["token", "revoke", "1"]);
    gw.req("GET", path).token(&token).send().expect(401);
    let out = gw.cli_raw(&["token", "revoke", "1"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "keygate: no such token"
    );
}

#[test]
fn repositories_ids_paths_and_errors() {
    let gw = Gateway::start();
    assert_eq!(gw.cli(&["repo", "add", "acme/widgets"]), "1");
    assert_eq!(
        gw.cli(&["repo", "add", "acme/sub/deep/tool", "--id", "4242"]),
        "4242"
    );
    assert_eq!(gw.cli(&["repo", "add", "other/thing"]), "4243");
    assert_eq!(
        gw.cli(&["repo", "list"]),
        "1 acme/widgets\n4242 acme/sub/deep/tool\n4243 other/thing"
    );
    for (args, message) in [
        (
            vec!["repo", "add", "ACME/Widgets"],
            "keygate: that repository path or id is taken",
        ),
        (
            vec!["repo", "add", "x/y", "--id", "4242"],
            "keygate: that repository path or id is taken",
        ),
        (
            vec!["repo", "add", "lonely"],
            "keygate: invalid path: it must be namespace/name",
        ),
        (
            vec!["repo", "add", "a/b", "--id", "0"],
            "keygate: invalid id: it must be an integer from 1 to 2147483647",
        ),
        (
            vec![
                "repo",
                "grant",
                "acme/widgets",
                "ghost",
                "--role",
                "maintainer",
            ],
            "keygate: no such user",
        ),
        (
            vec!["repo", "remove", "no/such"],
            "keygate: no such repository",
        ),
    ] {
        let out = gw.cli_raw(&args);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            message,
            "{args:?}"
        );
        assert!(out.stdout.is_empty());
    }
    let out = gw.cli_raw(&["repo", "add", "a/b c"]);
    assert!(!out.status.success());
    gw.cli(&["repo", "remove", "other/thing"]);
    assert_eq!(
        gw.cli(&["repo", "list"]),
        "1 acme/widgets\n4242 acme/sub/deep/tool"
    );
}

#[test]
fn removing_a_user_revokes_their_tokens() {
    let gw = Gateway::start();
    let seed = gw.seed();
    gw.req("GET", "/api/v4/projects/1")
        .token(&seed.bob)
        .send()
        .expect(200);
    gw.cli(&["user", "remove", "bob"]);
    gw.req("GET", "/api/v4/projects/1")
        .token(&seed.bob)
        .send()
        .expect(401);
    let out = gw.cli_raw(&["user", "add", "alice"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "keygate: that user already exists"
    );
}
