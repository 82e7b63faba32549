//! The SQLite schema's migrations, applied in order at open, and the tests that each keeps what was stored before it.

use rusqlite::{Connection, TransactionBehavior};

use super::Result;
use crate::store::StoreError;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_codearts.sql"),
    include_str!("migrations/0003_used_signatures.sql"),
    include_str!("migrations/0004_link_updated_at.sql"),
    include_str!("migrations/0005_list_indexes.sql"),
    include_str!("migrations/0006_key_counts.sql"),
    include_str!("migrations/0007_audit_events.sql"),
    include_str!("migrations/0008_audit_check.sql"),
    include_str!("migrations/0009_public_keys_partial.sql"),
    include_str!("migrations/0010_md5_prefix_index.sql"),
    include_str!("migrations/0011_key_link_count.sql"),
];

/// Brings the database up to the newest schema, refusing one newer than this build knows.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{SqliteStore, column};
    use super::*;
    use crate::store::KeyRange;

    /// A database at `path` as schema `version` left it, before the migrations after it.
    fn at_schema(path: &std::path::Path, version: usize) -> Connection {
        let conn = Connection::open(path).unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        conn
    }

    /// Inserts a key as any schema since the first holds one, with SQL alone (no store yet).
    fn insert_key_row(conn: &Connection, sha256: &str, md5: &str, public: i64) {
        conn.execute(
            "INSERT INTO deploy_keys (fingerprint_sha256, fingerprint_md5, key_text, kind, bits, \
             title, public, created_at) VALUES (?1, ?2, 'ssh-ed25519 AAAA', 'ssh-ed25519', 256, 't', ?3, 1)",
            rusqlite::params![sha256, md5, public],
        )
        .unwrap();
    }

    /// The counters the lists read follow every insert, delete (cascades too) and change of
    /// `public`, and start from the keys a database already held when migration 6 ran.
    #[test]
    fn key_and_link_counts_follow_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counts.db");
        let insert = |conn: &Connection, i: i64, public: i64| {
            let sha256 = format!("SHA256:{i}");
            insert_key_row(conn, &sha256, &sha256, public);
        };
        {
            let conn = at_schema(&path, 5);
            for i in 0..7 {
                insert(&conn, i, i64::from(i % 3 == 0));
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        let conn = store.pool.get().unwrap();
        for i in 7..40 {
            insert(&conn, i, i64::from(i % 4 == 0));
        }
        conn.execute("DELETE FROM deploy_keys WHERE id % 5 = 0", [])
            .unwrap();
        conn.execute(
            "UPDATE deploy_keys SET public = 1 - public WHERE id % 7 = 0",
            [],
        )
        .unwrap();
        conn.execute("UPDATE deploy_keys SET title = 'u' WHERE id % 2 = 0", [])
            .unwrap();
        let actual = |public_only: bool| -> u64 {
            conn.query_row(
                "SELECT COUNT(*) FROM deploy_keys WHERE ?1 = 0 OR public = 1",
                [public_only],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as u64
        };
        // Links: added, removed one by one, and by cascade when a key or a repository goes.
        conn.execute_batch(
            "INSERT INTO namespaces (name, full_path, uuid, created_at) VALUES ('g', 'g', 'u', 1);
             INSERT INTO repositories (namespace_id, name, full_path, created_at) VALUES (1, 'a', 'g/a', 1);
             INSERT INTO repositories (namespace_id, name, full_path, created_at) VALUES (1, 'b', 'g/b', 1);
             INSERT INTO key_links (repo_id, key_id, can_push, created_at, updated_at)
               SELECT 1, id, 0, 1, 1 FROM deploy_keys;
             INSERT INTO key_links (repo_id, key_id, can_push, created_at, updated_at)
               SELECT 2, id, 0, 1, 1 FROM deploy_keys WHERE id % 3 = 0;
             DELETE FROM key_links WHERE repo_id = 1 AND key_id % 4 = 0;
             DELETE FROM deploy_keys WHERE id % 9 = 0;",
        )
        .unwrap();
        let links = |repo: i64| -> u64 {
            conn.query_row(
                "SELECT COUNT(*) FROM key_links WHERE repo_id = ?1",
                [repo],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as u64
        };
        for repo in [1, 2] {
            let counted = store
                .read(|db| db.count_linked_keys(repo, u64::MAX))
                .unwrap();
            assert_eq!(counted, links(repo), "repository {repo}");
            assert!(counted > 3);
        }
        // Each key's own count of links (the SSH door's lookup reads it), as the links stand.
        let per_key = || -> (i64, Vec<i64>) {
            let drifted = conn
                .query_row(
                    "SELECT COUNT(*) FROM deploy_keys k \
                     WHERE links <> (SELECT COUNT(*) FROM key_links l WHERE l.key_id = k.id)",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let seen = column::<i64>(
                &conn,
                "SELECT DISTINCT links FROM deploy_keys ORDER BY links",
            );
            (drifted, seen)
        };
        assert_eq!(per_key(), (0, vec![0, 1, 2]));
        // A REPLACE deletes the rows it conflicts with: their delete triggers must fire too.
        conn.execute(
            "INSERT OR REPLACE INTO key_links (repo_id, key_id, can_push, created_at, updated_at) \
             SELECT repo_id, key_id, 1, 2, 2 FROM key_links WHERE repo_id = 2",
            [],
        )
        .unwrap();
        assert_eq!(per_key(), (0, vec![0, 1, 2]), "after a REPLACE");
        assert_eq!(
            store.read(|db| db.count_linked_keys(2, u64::MAX)).unwrap(),
            links(2)
        );
        conn.execute("DELETE FROM repositories WHERE id = 2", [])
            .unwrap();
        assert_eq!(per_key(), (0, vec![0, 1]), "after the cascade");
        assert_eq!(
            store.read(|db| db.count_linked_keys(2, u64::MAX)).unwrap(),
            0
        );
        assert_eq!(
            store.read(|db| db.count_linked_keys(99, u64::MAX)).unwrap(),
            0
        );
        for public_only in [false, true] {
            let counted = store
                .read(|db| db.count_keys(public_only, u64::MAX))
                .unwrap();
            assert_eq!(counted, actual(public_only), "public_only={public_only}");
            assert!(counted > 3);
            let capped = store.read(|db| db.count_keys(public_only, 3)).unwrap();
            assert_eq!(capped, 3, "the count stops at its cap");
        }
    }

    /// Migration 8 keeps every audit record and the high-water mark of their ids (a pruned newest
    /// id is not handed out again), still refuses an unknown actor kind, and its insert no longer
    /// builds a temporary b-tree for the CHECK.
    #[test]
    fn migration_8_rebuilds_the_audit_table_keeping_records_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let insert = "INSERT INTO audit_events (created_at, actor_kind, actor_name, action) \
                      VALUES (?1, ?2, 'someone', 'deploy_key.create')";
        {
            let conn = at_schema(&path, 7);
            for (at, kind) in [(1, "user"), (2, "cli"), (3, "system"), (4, "user")] {
                conn.execute(insert, rusqlite::params![at, kind]).unwrap();
            }
            conn.execute("DELETE FROM audit_events WHERE id = 4", [])
                .unwrap();
        }
        SqliteStore::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        let kept: Vec<(i64, String)> = conn
            .prepare("SELECT id, actor_kind FROM audit_events ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            kept,
            [(1, "user".into()), (2, "cli".into()), (3, "system".into())]
        );
        conn.execute(insert, rusqlite::params![5, "cli"]).unwrap();
        assert_eq!(conn.last_insert_rowid(), 5, "id 4 was shown once");
        assert!(conn.execute(insert, rusqlite::params![6, "robot"]).is_err());
        let program: Vec<String> = conn
            .prepare(&format!("EXPLAIN {insert}"))
            .unwrap()
            .query_map([1, 2], |r| r.get(1))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            !program.iter().any(|op| op == "OpenEphemeral"),
            "{program:?}"
        );
        let indexes: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 3);
    }

    /// Migration 9 keeps every key and lists the instance-wide ones as before, from an index that
    /// holds them alone.
    #[test]
    fn migration_9_indexes_only_the_public_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = at_schema(&path, 8);
            for (n, public) in [(1, 0), (2, 1), (3, 0), (4, 1)] {
                insert_key_row(&conn, &format!("SHA256:{n}"), "md5", public);
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        let public_only = KeyRange {
            public_only: true,
            ..KeyRange::default()
        };
        let ids = |range| {
            store
                .read(|db| db.list_keys(range, 0, 20))
                .unwrap()
                .iter()
                .map(|k| k.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(public_only), [2, 4]);
        assert_eq!(ids(KeyRange::default()), [1, 2, 3, 4]);
        // INDEXED BY fails the statement outright if the index cannot serve it.
        let conn = Connection::open(&path).unwrap();
        let entries: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM deploy_keys INDEXED BY deploy_keys_public WHERE public = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(entries, 2);
    }

    /// Migration 10 swaps the MD5 index for one of the fingerprints' first 11 characters, built
    /// from the keys already stored: each is found by its MD5 as before.
    #[test]
    fn migration_10_finds_the_keys_stored_before_it_by_md5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = at_schema(&path, 9);
            for n in 1..=3 {
                insert_key_row(
                    &conn,
                    &format!("SHA256:{n}"),
                    &format!("aa:bb:cc:dd:0{n}"),
                    0,
                );
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        for n in 1..=3 {
            let found = store
                .read(|db| db.key_by_md5(&format!("aa:bb:cc:dd:0{n}")))
                .unwrap();
            assert_eq!(found.map(|k| k.id), Some(n));
        }
        let conn = Connection::open(&path).unwrap();
        let entries: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM deploy_keys INDEXED BY deploy_keys_md5 \
                 WHERE substr(fingerprint_md5, 1, 11) = 'aa:bb:cc:dd'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(entries, 3);
    }

    /// Migration 11 counts the links of the keys stored before it, the SSH door's lookup admits
    /// exactly the linked ones, and a link cannot be moved to another key behind the counts.
    #[test]
    fn migration_11_counts_each_keys_links_and_the_lookup_reads_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = at_schema(&path, 10);
            conn.execute_batch(
                "INSERT INTO namespaces (name, full_path, uuid, created_at) VALUES ('g', 'g', 'u', 1);
                 INSERT INTO repositories (namespace_id, name, full_path, created_at) VALUES (1, 'a', 'g/a', 1);
                 INSERT INTO repositories (namespace_id, name, full_path, created_at) VALUES (1, 'b', 'g/b', 1);",
            )
            .unwrap();
            for n in 1..=3 {
                let sha256 = format!("SHA256:{n}");
                insert_key_row(&conn, &sha256, &sha256, 0);
            }
            conn.execute_batch(
                "INSERT INTO key_links (repo_id, key_id, can_push, created_at) VALUES (1, 1, 0, 1);
                 INSERT INTO key_links (repo_id, key_id, can_push, created_at) VALUES (2, 1, 0, 1);
                 INSERT INTO key_links (repo_id, key_id, can_push, created_at) VALUES (1, 2, 0, 1);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        let counts = column::<i64>(&conn, "SELECT links FROM deploy_keys ORDER BY id");
        assert_eq!(counts, [2, 1, 0]);
        for (n, admitted) in [(1, true), (2, true), (3, false)] {
            let found = store
                .read(|db| db.linked_key_by_sha256(&format!("SHA256:{n}")))
                .unwrap();
            assert_eq!(found.map(|k| k.id), admitted.then_some(n), "key {n}");
        }
        let moved = conn.execute("UPDATE key_links SET key_id = 3 WHERE key_id = 2", []);
        assert!(
            moved.is_err_and(|e| e.to_string().contains("key_id never changes")),
            "a link moved to another key"
        );
    }

    /// A database made before links had `updated_at` keeps its links, each last changed when made.
    #[test]
    fn migration_4_dates_existing_links_by_their_creation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 3;
                 INSERT INTO namespaces (name, full_path, uuid, created_at) VALUES ('g', 'g', 'u', 1);
                 INSERT INTO repositories (namespace_id, name, full_path, created_at) VALUES (1, 'r', 'g/r', 1);
                 INSERT INTO deploy_keys (fingerprint_sha256, fingerprint_md5, key_text, kind, bits, title, created_at)
                   VALUES ('SHA256:x', 'aa', 'ssh-ed25519 AAAA', 'ssh-ed25519', 256, 't', 5);
                 INSERT INTO key_links (repo_id, key_id, can_push, created_at) VALUES (1, 1, 0, 1234567);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let linked = store
            .read(|db| db.linked_key(1, 1))
            .unwrap()
            .expect("the link survives");
        assert_eq!(linked.updated_at, 1_234_567);
        assert_eq!(
            store.pragma("user_version").unwrap(),
            MIGRATIONS.len().to_string()
        );
    }
}
