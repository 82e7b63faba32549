//! `/-/readiness` fails with 503 while PostgreSQL is down and passes again once it is back, while
//! `/-/liveness` stays 200. Runs only on a cluster the test command owns (KEYGATE_TEST_PG_DIR, set
//! by scripts/test.sh); in its own binary, since stopping the cluster cuts every connection to it.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Gateway, PgSchema};
use serde_json::json;

fn cluster(command: &str, dir: &std::ffi::OsStr) {
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/pg-test-cluster.sh"
    ))
    .arg(command)
    .arg(dir)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn readiness_follows_postgres_down_and_up_again() {
    let Some(dir) = std::env::var_os("KEYGATE_TEST_PG_DIR") else {
        eprintln!(
            "skipped: KEYGATE_TEST_PG_DIR is unset (scripts/test.sh sets it for its own cluster)"
        );
        return;
    };
    let schema = PgSchema::create();
    let url = schema.url.clone();
    let gw = Gateway::start_with(|s| s.db = PathBuf::from(&url));
    let ready = gw.req("GET", "/-/readiness").send().expect(200).json();
    assert_eq!(
        ready,
        json!({"status": "ok", "db_check": [{"status": "ok"}]})
    );

    cluster("halt", &dir);
    let down = gw.req("GET", "/-/readiness").send();
    // Resume before any assertion, so that a failure here leaves the cluster to the later tests.
    let live = gw.req("GET", "/-/liveness").send();
    cluster("resume", &dir);
    assert_eq!(down.status, 503, "{}", down.body);
    let body = down.json();
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["db_check"][0]["status"], "failed");
    assert_eq!(live.status, 200, "liveness does not ask the store");

    // The pool replaces the connections the stop broke; readiness comes back on its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = gw.req("GET", "/-/readiness").send();
        match res.status {
            200 => break,
            503 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("after the restart: {other} {}", res.body),
        }
    }
}
