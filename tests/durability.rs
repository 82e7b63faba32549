//! Revoked keys stay revoked: across a crash (SIGKILL), a restart, racing writers and retries.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use common::{Gateway, fresh_key};
use serde_json::json;

/// The real binary serving `db` on a free port; returns the child and its base URL.
fn spawn_server(db: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
        // On PostgreSQL the internal secret goes to the working directory: keep it out of the tree.
        .current_dir(std::env::temp_dir())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keygate starts");
    let (url, _, lines) = common::listening(&mut child);
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn with_url(gw: &Gateway, url: &str, method: &str, path: &str) -> common::Req {
    // The harness builds URLs on its own server; point this one at the spawned process.
    gw.req(method, path).retarget(&gw.url, url)
}

#[test]
fn an_acknowledged_delete_survives_sigkill() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let db = gw.db.clone();
    let (mut child, url) = spawn_server(&db);
    let path = format!("/api/v4/projects/{}/deploy_keys", seed.widgets);
    let kept = with_url(&gw, &url, "POST", &path)
        .token(&seed.alice)
        .json(&json!({"title": "kept", "key": fresh_key("kept")}))
        .send()
        .expect(201)
        .json();
    let revoked = with_url(&gw, &url, "POST", &path)
        .token(&seed.alice)
        .json(&json!({"title": "revoked", "key": fresh_key("revoked")}))
        .send()
        .expect(201)
        .json();
    with_url(&gw, &url, "DELETE", &format!("{path}/{}", revoked["id"]))
        .token(&seed.alice)
        .send()
        .expect(204);
    // No graceful shutdown, no checkpoint: the process dies the instant the 204 is read.
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, url) = spawn_server(&db);
    let listed = with_url(&gw, &url, "GET", &path)
        .token(&seed.alice)
        .send()
        .expect(200)
        .json();
    let ids: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].clone())
        .collect();
    assert_eq!(ids, vec![kept["id"].clone()]);
    with_url(&gw, &url, "GET", &format!("{path}/{}", revoked["id"]))
        .token(&seed.alice)
        .send()
        .expect(404);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let gw = Gateway::start();
    let (child, url) = spawn_server(&gw.db);
    with_url(&gw, &url, "GET", "/api/v4/openapi.yaml")
        .send()
        .expect(200);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
}

#[test]
fn a_restart_keeps_state_and_ids_are_never_reused() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let path = format!("/api/v4/projects/{}/deploy_keys", seed.widgets);
    let mut last = 0;
    for i in 0..3 {
        last = gw
            .req("POST", &path)
            .token(&seed.alice)
            .json(&json!({"title": "t", "key": fresh_key(&format!("k{i}"))}))
            .send()
            .expect(201)
            .json()["id"]
            .as_i64()
            .unwrap();
    }
    gw.req("DELETE", &format!("{path}/{last}"))
        .token(&seed.alice)
        .send()
        .expect(204);
    let gw = gw.restart();
    let listed = gw
        .req("GET", &path)
        .token(&seed.alice)
        .send()
        .expect(200)
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    // SQLite would hand the highest deleted rowid out again without AUTOINCREMENT.
    let next = gw
        .req("POST", &path)
        .token(&seed.alice)
        .json(&json!({"title": "t", "key": fresh_key("after")}))
        .send()
        .expect(201)
        .json();
    assert!(next["id"].as_i64().unwrap() > last);
}

#[test]
fn racing_writers_get_answers_not_500s() {
    let gw = Arc::new(Gateway::start());
    let seed = gw.seed();
    let path = Arc::new(format!("/api/v4/projects/{}/deploy_keys", seed.widgets));
    let token = Arc::new(seed.alice.clone());
    let same = Arc::new(fresh_key("same"));
    // Sixteen clients add the same key at once: one key, one link, every answer a 201.
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (gw, path, token, same) = (gw.clone(), path.clone(), token.clone(), same.clone());
            std::thread::spawn(move || {
                let res = gw
                    .req("POST", &path)
                    .token(&token)
                    .json(&json!({"title": "race", "key": *same}))
                    .send();
                (res.status, res.json()["id"].clone())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().all(|(s, _)| *s == 201), "{results:?}");
    assert!(results.iter().all(|(_, id)| *id == results[0].1));
    let id = results[0].1.as_i64().unwrap();

    // Sixteen clients delete it at once: exactly one 204, the rest 404, and it stays gone.
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (gw, path, token) = (gw.clone(), path.clone(), token.clone());
            std::thread::spawn(move || {
                gw.req("DELETE", &format!("{path}/{id}"))
                    .token(&token)
                    .send()
                    .status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 204 || *s == 404),
        "{statuses:?}"
    );
    gw.req("GET", &format!("{path}/{id}"))
        .token(&token)
        .send()
        .expect(404);

    // Mixed load of distinct writers.
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let (gw, path, token) = (gw.clone(), path.clone(), token.clone());
            std::thread::spawn(move || {
                let mut bad = Vec::new();
                for i in 0..15 {
                    let res = gw
                        .req("POST", &path)
                        .token(&token)
                        .json(&json!({"title": "m", "key": fresh_key(&format!("t{t}i{i}"))}))
                        .send();
                    if res.status != 201 {
                        bad.push(res.status);
                        continue;
                    }
                    let id = res.json()["id"].as_i64().unwrap();
                    if i % 2 == 0 {
                        let s = gw
                            .req("DELETE", &format!("{path}/{id}"))
                            .token(&token)
                            .send()
                            .status;
                        if s != 204 {
                            bad.push(s);
                        }
                    }
                }
                bad
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Vec::<u16>::new());
    }
    let total = gw.req("GET", &path).token(&token).send().expect(200);
    assert_eq!(total.header("x-total"), Some("56"));
}

#[test]
fn the_database_and_its_wal_are_private_and_pragmas_are_as_documented() {
    if common::sqlite_only("the file's mode and its PRAGMAs") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let gw = Gateway::start();
    let seed = gw.seed();
    gw.req(
        "GET",
        &format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
    )
    .token(&seed.alice)
    .send()
    .expect(200);
    for suffix in ["", "-wal", "-shm"] {
        let mut path = gw.db.as_os_str().to_owned();
        path.push(suffix);
        let mode = std::fs::metadata(&path)
            .expect("file exists while serving")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{path:?}");
    }
    let store = keygate::store::Store::open(&gw.db).unwrap();
    assert_eq!(store.pragma("journal_mode").unwrap(), "wal");
    assert_eq!(store.pragma("synchronous").unwrap(), "2", "FULL");
    assert_eq!(store.pragma("foreign_keys").unwrap(), "1");
    assert_eq!(store.pragma("busy_timeout").unwrap(), "5000");
}

#[test]
fn a_held_write_lock_gives_503_with_retry_after_never_500() {
    if common::sqlite_only("another process holding the write lock") {
        return;
    }
    let gw = Arc::new(Gateway::start());
    let seed = gw.seed();
    // Another process (an operator's sqlite3 shell, say) holds the write lock.
    let blocker = rusqlite::Connection::open(&gw.db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let path = Arc::new(format!("/api/v4/projects/{}/deploy_keys", seed.widgets));
    let token = Arc::new(seed.alice.clone());
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let (gw, path, token) = (gw.clone(), path.clone(), token.clone());
            std::thread::spawn(move || {
                let res = gw
                    .req("POST", &path)
                    .token(&token)
                    .json(&json!({"title": "t", "key": fresh_key(&format!("b{i}"))}))
                    .send();
                (
                    res.status,
                    res.header("retry-after").map(str::to_string),
                    res.body,
                )
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    blocker.execute_batch("ROLLBACK").unwrap();
    for (status, retry, body) in &results {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body, "{\"message\":\"503 Service Unavailable\"}");
    }
    // Readers were never blocked by the writer, and nothing was half-written.
    let listed = gw.req("GET", &path).token(&token).send().expect(200);
    assert_eq!(listed.header("x-total"), Some("0"));
}

#[test]
fn db_backup_writes_a_private_consistent_copy_and_never_overwrites() {
    if common::sqlite_only("keygate db backup (SQLite's online backup API)") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let gw = Gateway::start();
    let seed = gw.seed();
    let (ak, _sk) = gw
        .cli(&["access-key", "add", "alice"])
        .split_once(' ')
        .map(|(a, s)| (a.to_string(), s.to_string()))
        .unwrap();
    let path = format!("/api/v4/projects/{}/deploy_keys", seed.widgets);
    let key = gw
        .req("POST", &path)
        .token(&seed.alice)
        .json(&json!({"title": "backed up", "key": fresh_key("b")}))
        .send()
        .expect(201)
        .json();
    let backup = gw.dir().join("backup.db");
    // While the server is running: the online backup API needs no pause in serving.
    assert_eq!(gw.cli(&["db", "backup", backup.to_str().unwrap()]), "");
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the copy holds CodeArts secret keys");

    // The copy is a whole database: a server on it sees the key, the CLI sees the access key.
    let copy = keygate::store::Store::open(&backup).unwrap();
    let (title, text): (String, String) = copy
        .read(|db| {
            Ok::<_, keygate::store::StoreError>(
                db.key_by_id(key["id"].as_i64().unwrap())?
                    .map(|k| (k.title.to_string(), k.key_text.to_string()))
                    .unwrap(),
            )
        })
        .unwrap();
    assert_eq!(title, "backed up");
    assert_eq!(text, key["key"].as_str().unwrap());
    let listed = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("--db")
        .arg(&backup)
        .args(["access-key", "list", "alice"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), ak);

    // An existing file is never overwritten (it may be wider open, or not a backup at all).
    std::fs::write(gw.dir().join("taken"), b"precious").unwrap();
    let taken = gw.dir().join("taken");
    let out = gw.cli_raw(&["db", "backup", taken.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("keygate: backup to "));
    assert_eq!(std::fs::read(&taken).unwrap(), b"precious");

    // A mistyped --db is an error, not a backup of a new empty database.
    let typo = gw.dir().join("typo.db");
    let out = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("--db")
        .arg(&typo)
        .args(["db", "backup"])
        .arg(gw.dir().join("of-nothing.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
    assert!(!typo.exists() && !gw.dir().join("of-nothing.db").exists());
}
