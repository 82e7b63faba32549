//! The query plans of the lookups and lists that must cost the same at a million keys (issue 10).
//!
//! Not a timing test: every statement the operations run is captured as SQLite executes it and
//! asked for its `EXPLAIN QUERY PLAN`. A plan that scans deploy_keys or key_links without an index,
//! or sorts into a temporary B-tree, grows with the instance, whatever a benchmark said that day.

use std::cell::RefCell;

use rusqlite::Connection;
use rusqlite::trace::{TraceEvent, TraceEventCodes};

use super::{SqliteDb, migrate};
use crate::store::{KeyRange, NewKey, Role, Scope};

thread_local! {
    /// Statements as SQLite ran them, parameters expanded: the callback is a plain `fn`.
    static RAN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn record(event: TraceEvent<'_>) {
    if let TraceEvent::Stmt(stmt, sql) = event {
        let sql = stmt.expanded_sql().unwrap_or_else(|| sql.to_string());
        RAN.with(|ran| ran.borrow_mut().push(sql));
    }
}

fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// A fresh database in memory with the whole schema.
fn migrated() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    migrate(&mut conn).unwrap();
    conn
}

/// The store's queries on `conn` as they run outside any memo or session.
fn plain(conn: &Connection) -> SqliteDb<'_> {
    SqliteDb {
        conn,
        memo: None,
        session: None,
        audit: None,
    }
}

/// The statements `run` makes SQLite execute on `conn`, parameters expanded.
fn traced(conn: &Connection, run: impl FnOnce()) -> Vec<String> {
    RAN.with(|ran| ran.borrow_mut().clear());
    conn.trace_v2(TraceEventCodes::SQLITE_TRACE_STMT, Some(record));
    run();
    conn.trace_v2(TraceEventCodes::SQLITE_TRACE_STMT, None);
    RAN.with(|ran| ran.take())
}

/// A key to insert, by its fingerprints; the rest is the same for every key of these tests.
fn new_key<'a>(sha256: &'a str, md5: &'a str, public: bool) -> NewKey<'a> {
    NewKey {
        fingerprint_sha256: sha256,
        fingerprint_md5: md5,
        key_text: "ssh-ed25519 AAAA",
        kind: "ssh-ed25519",
        bits: 256,
        title: "t",
        public,
        owner_id: None,
        expires_at: None,
        created_at: 1,
    }
}

/// Why a plan line costs more as the instance grows, if it does. A `SCAN` is allowed only of a
/// capped count's own subquery, or on an index by a statement that a LIMIT stops.
fn growth(sql: &str, line: &str) -> Option<&'static str> {
    if line.contains("TEMP B-TREE") {
        return Some("sorts into a temporary B-tree");
    }
    let line = line.trim_start();
    if !line.starts_with("SCAN ") || line.starts_with("SCAN (subquery") {
        return None;
    }
    if !line.contains("INDEX") {
        return Some("scans a table");
    }
    (!sql.contains("LIMIT")).then_some("scans an index to its end")
}

#[test]
fn the_million_key_operations_walk_indexes_only() {
    let mut conn = migrated();
    let tx = conn.transaction().unwrap();
    let db = plain(&tx);
    let admin = db.insert_user("root", true).unwrap();
    db.insert_token(admin, b"hash", Scope::Api, None).unwrap();
    let ns = db.insert_namespace(None, "g", "g", "uuid").unwrap();
    let repo = db.insert_repo(None, ns, "r", "g/r").unwrap();
    db.set_role(repo, admin, Role::Maintainer).unwrap();
    let key = db.insert_key(&new_key("SHA256:a", "aa", false)).unwrap();
    db.insert_key(&new_key("SHA256:b", "aa", true)).unwrap();
    db.insert_link(repo, key, false, Some(admin), 1).unwrap();

    // The statements each operation runs, in the order its core function runs them.
    type Run<'a> = Box<dyn Fn(&SqliteDb) + 'a>;
    let cap = 10_001;
    let operations: Vec<(&str, Run)> = vec![
        (
            "GitLab GET of one key",
            Box::new(|db| {
                db.token_by_hash(b"hash").unwrap();
                db.repo_by_id(repo).unwrap();
                db.role_of(repo, admin).unwrap();
                db.linked_key(repo, key).unwrap();
            }),
        ),
        (
            "list page 1 of a project's keys",
            Box::new(|db| {
                db.linked_keys(repo, 0, 20).unwrap();
                db.count_linked_keys(repo, cap).unwrap();
            }),
        ),
        (
            "GitLab admin list, by page and by keyset",
            Box::new(|db| {
                for public_only in [false, true] {
                    let range = KeyRange {
                        public_only,
                        ..KeyRange::default()
                    };
                    db.list_keys(range, 0, 20).unwrap();
                    db.count_keys(public_only, cap).unwrap();
                    let newest_first = KeyRange {
                        before: Some(1_000_000),
                        descending: true,
                        ..range
                    };
                    db.list_keys(newest_first, 0, 20).unwrap();
                    let oldest_first = KeyRange {
                        after: Some(999_980),
                        ..range
                    };
                    db.list_keys(oldest_first, 0, 20).unwrap();
                }
                db.links_of_key(key).unwrap();
            }),
        ),
        (
            "GitLab fingerprint search",
            Box::new(|db| {
                db.key_by_md5("aa").unwrap();
                db.key_by_sha256("SHA256:a").unwrap();
            }),
        ),
        (
            "SSH lookup and access check",
            Box::new(|db| {
                db.linked_key_by_sha256("SHA256:a").unwrap();
                db.key_by_id(key).unwrap();
                db.repo_by_path("g/r").unwrap();
                db.linked_key(repo, key).unwrap();
                db.touch_key_used(key, 10, 5).unwrap();
            }),
        ),
    ];

    let mut found = Vec::new();
    for (operation, run) in &operations {
        let ran = traced(&tx, || run(&db));
        assert!(!ran.is_empty(), "{operation}: nothing ran");
        for sql in ran {
            for line in plan(&tx, &sql) {
                if let Some(why) = growth(&sql, &line) {
                    found.push(format!("{operation}: {why}: {line}\n    in {sql}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "plans that grow:\n{}", found.join("\n"));
}

/// The checker itself: what the admin list's count and page were before the `deploy_keys_public`
/// index and the capped count (schema 5) are caught.
#[test]
fn unbounded_plans_are_caught() {
    let conn = migrated();
    let before = [
        "SELECT COUNT(*) FROM deploy_keys WHERE (0 = 0 OR public = 1)",
        "SELECT id FROM deploy_keys k WHERE (1 = 0 OR k.public = 1) ORDER BY k.title LIMIT 20",
        "SELECT COUNT(*) FROM key_links WHERE can_push = 1",
    ];
    for sql in before {
        let lines = plan(&conn, sql);
        assert!(
            lines.iter().any(|line| growth(sql, line).is_some()),
            "not caught: {sql}: {lines:?}"
        );
    }
}

/// `?public=true` pages walk the partial index of instance-wide keys (schema 9), which private
/// keys never enter: a walk of the primary key in id order is a SEARCH too, so `growth` alone
/// would not notice it reading every private key to fill a page of public ones.
#[test]
fn public_pages_walk_the_index_of_public_keys_only() {
    let conn = migrated();
    let db = plain(&conn);
    for descending in [false, true] {
        let range = KeyRange {
            public_only: true,
            descending,
            ..KeyRange::default()
        };
        let ran = traced(&conn, || {
            db.list_keys(range, 0, 20).unwrap();
        });
        assert_eq!(ran.len(), 1, "{ran:?}");
        let lines = plan(&conn, &ran[0]);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("USING INDEX deploy_keys_public")),
            "{lines:?}"
        );
    }
    let partial: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'deploy_keys_public'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(partial.ends_with("WHERE public = 1"), "{partial}");
}

/// An MD5 fingerprint is found through the index of its first 11 characters (schema 10), and
/// only the key whose whole fingerprint matches is answered: keys that share the prefix are
/// told apart by the comparison after the index.
#[test]
fn an_md5_lookup_walks_the_prefix_index_and_compares_the_whole_fingerprint() {
    let conn = migrated();
    let db = plain(&conn);
    let prefix = "aa:bb:cc:dd";
    let md5 = |tail: &str| format!("{prefix}:{tail}:00:00:00:00:00:00:00:00:00:00:00");
    let (first, second) = (md5("01"), md5("02"));
    let ids = [("SHA256:a", &first), ("SHA256:b", &second)]
        .map(|(sha, md5)| db.insert_key(&new_key(sha, md5, false)).unwrap());
    assert_eq!(db.key_by_md5(&first).unwrap().unwrap().id, ids[0]);
    assert_eq!(db.key_by_md5(&second).unwrap().unwrap().id, ids[1]);
    assert!(db.key_by_md5(&md5("03")).unwrap().is_none());
    assert!(db.key_by_md5(prefix).unwrap().is_none());

    let ran = traced(&conn, || {
        db.key_by_md5(&first).unwrap();
    });
    let lines = plan(&conn, &ran[0]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("USING INDEX deploy_keys_md5")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains("TEMP B-TREE")),
        "{lines:?}"
    );
}

/// The SSH door's lookup reads the fingerprint's index and the key's row, which counts the key's
/// links, and no link: at a million keys each b-tree it touches is a random leaf to read.
#[test]
fn the_ssh_lookup_reads_one_index_and_the_keys_row_only() {
    let conn = migrated();
    let db = plain(&conn);
    let ns = db.insert_namespace(None, "g", "g", "uuid").unwrap();
    let repo = db.insert_repo(None, ns, "r", "g/r").unwrap();
    let key = db.insert_key(&new_key("SHA256:a", "aa", false)).unwrap();
    assert!(db.linked_key_by_sha256("SHA256:a").unwrap().is_none());
    db.insert_link(repo, key, false, None, 1).unwrap();
    assert_eq!(
        db.linked_key_by_sha256("SHA256:a").unwrap().unwrap().id,
        key
    );

    let ran = traced(&conn, || {
        db.linked_key_by_sha256("SHA256:a").unwrap();
    });
    let lines = plan(&conn, &ran[0]);
    assert_eq!(
        lines,
        ["SEARCH k USING INDEX sqlite_autoindex_deploy_keys_1 (fingerprint_sha256=?)"]
    );
}
