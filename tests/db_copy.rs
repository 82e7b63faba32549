//! `keygate db copy`: a populated SQLite instance copied into PostgreSQL answers every dialect
//! exactly as before: same ids, fingerprints, `Link` headers; tokens and access keys keep working.
//! Needs KEYGATE_TEST_POSTGRES_URL (scripts/test.sh provides it); skipped without.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Creds, Gateway, PgSchema, Seed, access_key, fresh_key, signed};
use serde_json::{Value, json};

/// Everything a client could see, with the gateway's own address taken out of URLs.
fn views(gw: &Gateway, seed: &Seed, creds: &Creds) -> Vec<(String, u16, String, Value)> {
    let mut out = Vec::new();
    let plain = |path: String, auth: (&str, String)| {
        let res = gw.req("GET", &path).header(auth.0, &auth.1).send();
        let link = res.header("link").unwrap_or("").replace(&gw.url, "BASE");
        let body = serde_json::from_str(&res.body.replace(&gw.url, "BASE")).unwrap_or(Value::Null);
        (path, res.status, link, body)
    };
    let gitlab = ("PRIVATE-TOKEN", seed.alice.clone());
    let github = ("Authorization", format!("token {}", seed.alice));
    let root = ("PRIVATE-TOKEN", seed.root.clone());
    for page in 1..=3 {
        out.push(plain(
            format!(
                "/api/v4/projects/{}/deploy_keys?per_page=2&page={page}",
                seed.widgets
            ),
            gitlab.clone(),
        ));
        out.push(plain(
            format!("/api/v3/repos/acme/widgets/keys?per_page=2&page={page}"),
            github.clone(),
        ));
    }
    out.push(plain(
        "/api/v4/deploy_keys?per_page=100".into(),
        root.clone(),
    ));
    out.push(plain("/api/v4/users?per_page=100".into(), root));
    out.push(plain(
        format!("/api/v4/projects/{}/deploy_keys", seed.cli_repo),
        gitlab,
    ));
    let listed = signed(
        gw,
        creds,
        "GET",
        &format!(
            "/v4/repositories/{}/deploy-keys?limit=100&offset=0",
            seed.widgets
        ),
        None,
    )
    .send();
    out.push((
        "codearts v4 list".into(),
        listed.status,
        String::new(),
        serde_json::from_str(&listed.body).unwrap_or(Value::Null),
    ));
    out
}

#[test]
fn a_copied_instance_answers_every_dialect_as_the_sqlite_one_did() {
    if std::env::var_os("KEYGATE_TEST_POSTGRES_URL").is_none() {
        eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is unset (scripts/test.sh sets it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keygate.db");
    let mut before = Gateway::start_with(|s| s.db = file.clone());
    let seed = before.seed();
    let creds = access_key(&before, "alice");
    let path = format!("/api/v4/projects/{}/deploy_keys", seed.widgets);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            before
                .req("POST", &path)
                .token(&seed.alice)
                .json(&json!({"title": format!("k{i}"), "key": fresh_key("copy"), "can_push": i % 2 == 0}))
                .send()
                .expect(201)
                .json()["id"]
                .as_i64()
                .unwrap(),
        );
    }
    signed(
        &before,
        &creds,
        "POST",
        &format!("/v2/repositories/{}/deploy-keys", seed.cli_repo),
        Some(&json!({"application": "ci", "can_push": false, "key": fresh_key("ca"), "key_title": "ca"})),
    )
    .send()
    .expect(200);
    // The newest key deleted: its id must not come back after the copy either.
    let newest = before
        .req("POST", &path)
        .token(&seed.alice)
        .json(&json!({"title": "gone", "key": fresh_key("gone")}))
        .send()
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    before
        .req("DELETE", &format!("{path}/{newest}"))
        .token(&seed.alice)
        .send()
        .expect(204);
    let expected = views(&before, &seed, &creds);
    assert!(expected.iter().all(|v| v.1 == 200), "{expected:?}");
    assert!(
        expected[0].2.contains("rel=\"next\""),
        "paged: {}",
        expected[0].2
    );
    assert_eq!(expected.last().unwrap().3.as_array().map(Vec::len), Some(5));
    before.stop();

    let schema = PgSchema::create();
    let out = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["db", "copy", "--from"])
        .arg(&file)
        .args(["--to", &schema.url])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deploy_keys 6"));
    // A second copy into the same, now filled, database is refused.
    let again = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["db", "copy", "--from"])
        .arg(&file)
        .args(["--to", &schema.url])
        .output()
        .unwrap();
    assert!(!again.status.success());

    let url = schema.url.clone();
    let after = Gateway::start_with(|s| s.db = PathBuf::from(&url));
    let got = views(&after, &seed, &creds);
    for (want, got) in expected.iter().zip(&got) {
        assert_eq!(want, got, "{}", want.0);
    }
    assert_eq!(expected.len(), got.len());
    // Old tokens and access keys write too, and ids count on past the deleted newest one.
    let next = after
        .req("POST", &path)
        .token(&seed.alice)
        .json(&json!({"title": "after", "key": fresh_key("after")}))
        .send()
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    assert!(next > newest, "{next} after {newest}");
    signed(
        &after,
        &creds,
        "DELETE",
        &format!("/v4/repositories/{}/deploy-keys/{}", seed.widgets, ids[0]),
        None,
    )
    .send()
    .expect(204);
    drop(after);
    drop(schema);
}
