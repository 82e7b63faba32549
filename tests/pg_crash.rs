//! An acknowledged write, above all a revocation, survives PostgreSQL stopping as a power cut
//! would (`pg_ctl stop -m immediate`), and the gateway serves again once it is back. Runs only on
//! a cluster the test command owns (KEYGATE_TEST_PG_DIR, set by scripts/test.sh); one test in
//! its own binary, since the crash interrupts every connection to the cluster.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Gateway, PgSchema, fresh_key};
use serde_json::json;

#[test]
fn an_acknowledged_revocation_survives_an_immediate_shutdown_of_postgres() {
    let Some(dir) = std::env::var_os("KEYGATE_TEST_PG_DIR") else {
        eprintln!(
            "skipped: KEYGATE_TEST_PG_DIR is unset (scripts/test.sh sets it for its own cluster)"
        );
        return;
    };
    let schema = PgSchema::create();
    let url = schema.url.clone();
    let gw = Gateway::start_with(|s| s.db = PathBuf::from(&url));
    let seed = gw.seed();
    let path = format!("/api/v4/projects/{}/deploy_keys", seed.widgets);
    let add = |title: &str| {
        gw.req("POST", &path)
            .token(&seed.alice)
            .json(&json!({"title": title, "key": fresh_key(title)}))
            .send()
            .expect(201)
            .json()["id"]
            .as_i64()
            .unwrap()
    };
    let kept = add("kept");
    let revoked = add("revoked");
    gw.req("DELETE", &format!("{path}/{revoked}"))
        .token(&seed.alice)
        .send()
        .expect(204);
    let crash = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/pg-test-cluster.sh"
    ))
    .arg("crash")
    .arg(&dir)
    .output()
    .unwrap();
    assert!(
        crash.status.success(),
        "{}",
        String::from_utf8_lossy(&crash.stderr)
    );
    // The pool drops the connections the crash broke and opens new ones; no 500 meanwhile.
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let res = gw.req("GET", &path).token(&seed.alice).send();
        match res.status {
            200 => break res.json(),
            503 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("after the crash: {other} {}", res.body),
        }
    };
    let ids: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![kept], "the revocation stayed, the other key too");
    gw.req("GET", &format!("{path}/{revoked}"))
        .token(&seed.alice)
        .send()
        .expect(404);
    add("after");
}
