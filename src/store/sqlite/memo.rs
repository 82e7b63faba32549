//! A worker's memo of rows it read in earlier sessions, kept only while no connection has committed since.
//!
//! Every request authenticates and finds its repository again; on an unchanged database those
//! lookups return what they returned the request before. The WAL index's header
//! (`wal_index.rs`) changes whenever any connection, of this process or another, commits. So
//! the memo is tagged with the header read as its rows' session began (before that session's
//! snapshot), and emptied at the start of every session that finds another header: a
//! revocation committed anywhere counts at the very next request, as without it. Rows a session
//! reads are kept under the tag it began with; had something committed in between, the header
//! already differs and the next session empties them.
//! Only rows are kept: expiry and every other rule that depends on the clock run on each request.
//!
//! The writer connection has a memo of its own (`WriterHooks`): a batch's jobs authenticate the
//! same token and find the same repository one after another, inside one write transaction that
//! no other connection can commit into. Its rows live for one transaction of the writer, and
//! none are kept or served once that transaction has changed any table but the key tables: a
//! change it makes itself (a revoked token, a renamed repository) counts at the next lookup,
//! even if a savepoint rolls it back later.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rusqlite::Connection;

use super::wal_index::Header;
use super::{LinkedKey, Repository, Role, Token, User};

/// Entries a table holds before it is emptied, so that a stream of unknown tokens or of
/// different pages bounds a worker's memory instead of growing it.
const CAP: usize = 512;

#[cfg(test)]
thread_local! {
    /// Reads the memo did not answer, on this thread (session.rs's tests).
    pub(super) static MISSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Rows of one kind, by the arguments of the statement that read them.
/// Keyed by ids and token hashes (SHA-256 digests no client can aim), so a fast seeded hasher
/// serves; a table is bounded by `CAP` anyway.
pub(super) struct Table<K, V>(foldhash::HashMap<K, V>);

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table(foldhash::HashMap::default())
    }
}

/// What a memo's rows were read under.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    /// A read session's: the WAL-index header as it began.
    Wal(Header),
    /// The writer's: its transaction, as `WriterHooks` counts them.
    Writer(u64),
}

/// Tables whose rows no memoized lookup reads: the writer's changes to them (every key write)
/// leave its memo valid. A change to any other table empties it until the transaction ends.
const KEY_TABLES: [&str; 6] = [
    "deploy_keys",
    "key_links",
    "key_link_applications",
    "audit_events",
    "key_counts",
    "link_counts",
];

/// Tables the writer memo's rows come from (`token_by_hash`: tokens and users; `repo_by_id`,
/// `repo_by_path`: repositories and namespaces). SQLite's update hook only hears changes to
/// tables with a rowid, so each of these must have one (a test holds this).
#[cfg(test)]
const WRITER_MEMO_TABLES: [&str; 4] = ["tokens", "users", "repositories", "namespaces"];

/// SQLite's hooks on the writer connection, telling its memo when rows may have changed.
#[derive(Default)]
pub(super) struct WriterHooks {
    /// Transactions the writer connection has ended (committed or rolled back).
    ended: AtomicU64,
    /// The open transaction has changed a table outside `KEY_TABLES`.
    changed: AtomicBool,
}

impl WriterHooks {
    /// Installs the hooks on `conn`, the writer connection.
    pub(super) fn install(conn: &Connection) -> rusqlite::Result<Arc<WriterHooks>> {
        let hooks = Arc::new(WriterHooks::default());
        let on_change = Arc::clone(&hooks);
        conn.update_hook(Some(move |_, _: &str, table: &str, _| {
            if !KEY_TABLES.contains(&table) {
                on_change.changed.store(true, Ordering::Relaxed);
            }
        }))?;
        let on_commit = Arc::clone(&hooks);
        conn.commit_hook(Some(move || {
            on_commit.end();
            false
        }))?;
        let on_rollback = Arc::clone(&hooks);
        conn.rollback_hook(Some(move || on_rollback.end()))?;
        Ok(hooks)
    }

    fn end(&self) {
        self.ended.fetch_add(1, Ordering::Relaxed);
        self.changed.store(false, Ordering::Relaxed);
    }

    /// The open transaction, or `None` once it has changed what the memo's rows come from.
    fn version(&self) -> Option<Version> {
        (!self.changed.load(Ordering::Relaxed))
            .then(|| Version::Writer(self.ended.load(Ordering::Relaxed)))
    }
}

#[derive(Default)]
pub(super) struct Memo {
    /// What the rows were read under; `None` while nothing may be kept (the header could not
    /// be read, the session wrote, the writer's transaction changed a table).
    version: Option<Version>,
    /// The writer's memo: its version is looked up again before every lookup.
    writer: Option<Arc<WriterHooks>>,
    pub(super) tokens: Table<Vec<u8>, Option<(Token, User)>>,
    pub(super) repos_by_id: Table<i64, Option<Repository>>,
    pub(super) repos_by_path: Table<String, Option<Repository>>,
    pub(super) roles: Table<(i64, i64), Option<Role>>,
    pub(super) linked: Table<(i64, i64), Option<LinkedKey>>,
    pub(super) pages: Table<(i64, u64, u32), Vec<LinkedKey>>,
    pub(super) link_counts: Table<i64, u64>,
}

impl Memo {
    /// The writer connection's memo, valid as `hooks` say.
    pub(super) fn for_writer(hooks: Arc<WriterHooks>) -> Memo {
        Memo {
            writer: Some(hooks),
            ..Memo::default()
        }
    }

    /// Called as a session starts, with the header read before its snapshot.
    pub(super) fn validate(&mut self, version: Option<Version>) {
        if version.is_none() || version != self.version {
            *self = Memo {
                version,
                writer: self.writer.take(),
                ..Memo::default()
            };
        }
    }

    /// A writer memo's check before each lookup.
    fn refresh(&mut self) {
        if let Some(version) = self.writer.as_ref().map(|hooks| hooks.version()) {
            self.validate(version);
        }
    }

    /// Forgets everything until the next session: this one's snapshot changed under it.
    pub(super) fn invalidate(&mut self) {
        self.validate(None);
    }

    /// Whether rows may be served and kept: the header was read and nothing since changed it
    /// in this session's view.
    pub(super) fn version(&self) -> Option<&Version> {
        self.version.as_ref()
    }
}

/// `read()`'s rows for `key`: from the memo when it has them, else read and kept. Without a memo
/// (a pooled read, the writer) or while it keeps nothing, just `read()`.
pub(super) fn memoized<K, Q, V, E>(
    memo: Option<&RefCell<Memo>>,
    table: fn(&mut Memo) -> &mut Table<K, V>,
    key: &Q,
    read: impl FnOnce() -> Result<V, E>,
) -> Result<V, E>
where
    K: Borrow<Q> + Hash + Eq,
    Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
    V: Clone,
{
    let Some(memo) = memo else {
        return read();
    };
    {
        let mut memo = memo.borrow_mut();
        memo.refresh();
        if memo.version.is_none() {
            drop(memo);
            return read();
        }
        if let Some(hit) = table(&mut memo).0.get(key) {
            return Ok(hit.clone());
        }
    }
    #[cfg(test)]
    MISSES.with(|m| m.set(m.get() + 1));
    let value = read()?;
    let mut memo = memo.borrow_mut();
    // The read may have found the database changed under the session (`Local::begin`).
    if memo.version.is_none() {
        return Ok(value);
    }
    let rows = &mut table(&mut memo).0;
    if rows.len() >= CAP {
        rows.clear();
    }
    rows.insert(key.to_owned(), value.clone());
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::super::group_commit::BatchStats;
    use super::super::writer_thread::Job;
    use super::super::{SqliteStore, column};
    use super::*;
    use crate::store::{AuditEvent, Scope, StoreError};

    type Outcome = Result<Option<i64>, StoreError>;
    type StoreJob = Box<dyn FnOnce(&SqliteStore) -> Outcome + Send>;

    /// A store with user `u` and a token of hash `h`; its path stays in `dir`.
    fn store(dir: &tempfile::TempDir) -> (SqliteStore, i64) {
        let store = SqliteStore::open(&dir.path().join("m.db")).unwrap();
        let token = store
            .write(|db| {
                let user = db.insert_user("u", false)?;
                db.insert_token(user, b"h", Scope::Api, None)
            })
            .unwrap();
        (store, token)
    }

    /// The token of hash `hash` as a job of the writer thread finds it, with whether the memo
    /// answered.
    fn token(store: &SqliteStore, hash: &[u8]) -> Result<(Option<i64>, bool), StoreError> {
        let misses = MISSES.get();
        let found = store.read(|db| db.token_by_hash(hash))?;
        Ok((found.map(|(t, _)| t.id), MISSES.get() == misses))
    }

    /// Queues `job` for the store's writer thread; `answer` gets what it returned once its batch
    /// was decided (the batch's error if the batch failed).
    fn queue(store: &SqliteStore, job: StoreJob, answer: impl FnOnce(Outcome) + Send + 'static) {
        let store2 = store.clone();
        let job: Job = Box::new(move || {
            let own = job(&store2);
            Box::new(move |durable| answer(durable.and(own)))
        });
        store.submit(job).map_err(|_| ()).unwrap();
    }

    /// Runs `jobs` on the store's writer thread, all queued before the first runs (so in one
    /// batch), and returns what each returned once its batch was decided.
    fn in_one_batch(store: &SqliteStore, jobs: Vec<StoreJob>) -> Vec<Outcome> {
        let (release, gate) = mpsc::channel::<()>();
        let (started, wait_started) = mpsc::channel::<()>();
        let hold: Job = Box::new(move || {
            started.send(()).unwrap();
            let _ = gate.recv();
            Box::new(|_| {})
        });
        store.submit(hold).map_err(|_| ()).unwrap();
        wait_started.recv().unwrap();
        let decided = |s: BatchStats| s.batches + s.failed_batches;
        let before = decided(store.batch_stats());
        let (tx, rx) = mpsc::channel();
        for (i, job) in jobs.into_iter().enumerate() {
            let tx = tx.clone();
            queue(store, job, move |answer| tx.send((i, answer)).unwrap());
        }
        drop((tx, release));
        let mut answers: Vec<(usize, Outcome)> = rx.iter().collect();
        answers.sort_by_key(|(i, _)| *i);
        assert_eq!(decided(store.batch_stats()), before + 1, "not one batch");
        answers.into_iter().map(|(_, a)| a).collect()
    }

    /// An audit record with `action`, as the core makes them.
    fn record(action: &str) -> AuditEvent {
        AuditEvent {
            actor_kind: "system".into(),
            actor_name: "test".into(),
            action: action.into(),
            details: "{}".into(),
            ..AuditEvent::default()
        }
    }

    /// A job that writes one audit record with `action` and nothing else.
    fn records(action: &'static str) -> StoreJob {
        Box::new(move |s| {
            s.write(|db| db.insert_audit_event(record(action)))?;
            Ok(None)
        })
    }

    /// The actions of the audit records committed to the store in `dir`, in the order written.
    fn committed_actions(dir: &tempfile::TempDir) -> Vec<String> {
        let conn = Connection::open(dir.path().join("m.db")).unwrap();
        column(&conn, "SELECT action FROM audit_events ORDER BY id")
    }

    // The batch's audit records wait for its COMMIT (deferred_audit.rs); those of a request, or
    // of a core savepoint, that rolled back must go, and the rest commit in the order made.
    #[test]
    fn held_audit_records_go_with_a_rolled_back_request_or_savepoint_and_the_rest_commit_in_order()
    {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store(&dir);
        let answers = in_one_batch(
            &store,
            vec![
                records("kept.first"),
                // Refused after recording: "u" is taken.
                Box::new(|s| {
                    s.write(|db| {
                        db.insert_audit_event(record("refused"))?;
                        db.insert_user("u", false)
                    })?;
                    Ok(None)
                }),
                Box::new(|s| {
                    s.write(|db| {
                        db.savepoint_begin()?;
                        db.insert_audit_event(record("undone"))?;
                        db.savepoint_rollback()?;
                        db.savepoint_begin()?;
                        db.insert_audit_event(record("kept.released"))?;
                        db.savepoint_release()?;
                        db.insert_audit_event(record("kept.last"))
                    })?;
                    Ok(None)
                }),
            ],
        );
        assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
        assert!(answers[1].is_err(), "{answers:?}");
        assert_eq!(
            committed_actions(&dir),
            ["kept.first", "kept.released", "kept.last"]
        );
    }

    // A lost batch commits nothing, so what its requests recorded must not commit with the next.
    #[test]
    fn a_lost_batchs_held_audit_records_stay_out_of_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store(&dir);
        let answers = in_one_batch(
            &store,
            vec![
                records("lost"),
                // Last in the batch: `OR ROLLBACK` ends the transaction, as SQLITE_FULL or an I/O
                // error would, and with it the whole batch.
                Box::new(|s| {
                    s.on_writer(|tx| {
                        tx.execute(
                            "INSERT OR ROLLBACK INTO users (username, created_at) VALUES ('u', 0)",
                            [],
                        )
                        .map_err(StoreError::from)
                    })?;
                    Ok(None)
                }),
            ],
        );
        assert!(
            matches!(answers[..], [Err(StoreError::Sqlite(_)), Err(_)]),
            "both members learn the batch was lost: {answers:?}"
        );
        assert_eq!(store.batch_stats().failed_batches, 1);
        store
            .write(|db| db.insert_audit_event(record("after")))
            .unwrap();
        assert_eq!(committed_actions(&dir), ["after"]);
    }

    #[test]
    fn a_token_revoked_in_the_batch_is_refused_at_its_next_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let (store, id) = store(&dir);
        let answers = in_one_batch(
            &store,
            vec![
                Box::new(|s| {
                    let (first, _) = token(s, b"h")?;
                    let (again, memo) = token(s, b"h")?;
                    assert!(memo, "the second lookup in the batch read the database");
                    assert_eq!(first, again);
                    Ok(first)
                }),
                Box::new(move |s| s.write(|db| db.delete_token(id)).map(|_| None)),
                Box::new(|s| Ok(token(s, b"h")?.0)),
            ],
        );
        assert_eq!(answers[0].as_ref().unwrap(), &Some(id));
        assert_eq!(
            answers[2].as_ref().unwrap(),
            &None,
            "a revoked token authenticated"
        );
    }

    #[test]
    fn a_token_of_a_rolled_back_change_is_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let (store, id) = store(&dir);
        let answers = in_one_batch(
            &store,
            vec![
                Box::new(|s| Ok(token(s, b"h")?.0)),
                // Adds a token, looks it up, then fails: its savepoint is rolled back.
                Box::new(move |s| {
                    s.write(|db| {
                        db.insert_token(1, b"ghost", Scope::Api, None)?;
                        assert!(db.token_by_hash(b"ghost")?.is_some());
                        Err::<(), _>(StoreError::Busy)
                    })
                    .map(|_| None)
                }),
                Box::new(|s| Ok(token(s, b"ghost")?.0)),
                Box::new(|s| Ok(token(s, b"h")?.0)),
            ],
        );
        assert!(answers[1].is_err());
        assert_eq!(
            answers[2].as_ref().unwrap(),
            &None,
            "a rolled-back token authenticated"
        );
        assert_eq!(answers[3].as_ref().unwrap(), &Some(id));
    }

    #[test]
    fn key_writes_keep_the_memo_and_a_deleted_user_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store(&dir);
        let answers = in_one_batch(
            &store,
            vec![
                Box::new(|s| Ok(token(s, b"h")?.0)),
                // A key table's change (an audit row) leaves the token's row as it was.
                Box::new(|s| {
                    s.write(|db| db.insert_audit_event(record("test")))?;
                    let (_, memo) = token(s, b"h")?;
                    assert!(memo, "a key-table write emptied the memo");
                    Ok(None)
                }),
                // The user goes, and its tokens with it by ON DELETE CASCADE.
                Box::new(|s| {
                    let (found, _) = token(s, b"h")?;
                    assert!(found.is_some());
                    s.write(|db| db.delete_user(1))?;
                    Ok(token(s, b"h")?.0)
                }),
            ],
        );
        assert_eq!(
            answers[2].as_ref().unwrap(),
            &None,
            "the memo kept a deleted user's token"
        );
    }

    /// Runs `job` alone on the store's writer thread and returns what it returned.
    fn alone_on_writer_thread(store: &SqliteStore, job: StoreJob) -> Outcome {
        let (tx, rx) = mpsc::channel();
        queue(store, job, move |answer| tx.send(answer).unwrap());
        rx.recv().unwrap()
    }

    #[test]
    fn a_token_revoked_by_another_process_between_batches_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, id) = store(&dir);
        // A batch that only reads: it ends in a ROLLBACK, with nothing to commit.
        let found = alone_on_writer_thread(&store, Box::new(|s| Ok(token(s, b"h")?.0)));
        assert_eq!(found.unwrap(), Some(id));
        // The CLI, say: its own connection, while the writer holds no transaction.
        let other = Connection::open(dir.path().join("m.db")).unwrap();
        other
            .execute("DELETE FROM tokens WHERE id = ?1", [id])
            .unwrap();
        let found = alone_on_writer_thread(&store, Box::new(|s| Ok(token(s, b"h")?.0)));
        assert_eq!(found.unwrap(), None, "the memo outlived its transaction");
    }

    #[test]
    fn the_writer_memo_hears_every_change_to_its_tables() {
        let dir = tempfile::tempdir().unwrap();
        let _ = store(&dir);
        let conn = Connection::open(dir.path().join("m.db")).unwrap();
        for table in WRITER_MEMO_TABLES {
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            // The update hook is silent for WITHOUT ROWID tables.
            assert!(
                !sql.to_uppercase().contains("WITHOUT ROWID"),
                "{table}: {sql}"
            );
        }
    }
}
