//! Read sessions: every read a request makes shares one snapshot on its worker thread's own connection, or none at all when the memo answers.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use thread_local::ThreadLocal;

use super::memo::{Memo, Version};
use super::wal_index::{self, Header};
use super::{Result, end_read, execute};

const SESSION_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(100);

/// One thread's read connection, whether a session is running on it and has begun its
/// transaction, and the rows its sessions read while the database stayed unchanged.
pub(super) struct Local {
    conn: Connection,
    open: Cell<bool>,
    /// A session's transaction begins at its first statement: a session the memo answers whole
    /// runs none, and so takes no lock.
    begun: Cell<bool>,
    /// Whether the connection is in WAL mode, so its WAL-index header may be read.
    wal: bool,
    memo: RefCell<Memo>,
}

impl Local {
    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(super) fn memo(&self) -> &RefCell<Memo> {
        &self.memo
    }

    fn header(&self) -> Option<Header> {
        if self.wal {
            wal_index::header(&self.conn)
        } else {
            None
        }
    }

    /// Begins the session's transaction if it has not: called before each statement.
    pub(super) fn begin(&self) {
        if self.begun.get() {
            return;
        }
        self.begun.set(true);
        if execute(&self.conn, "BEGIN").is_err() {
            // Each statement then reads on its own, still consistent in itself.
            self.memo.borrow_mut().invalidate();
            return;
        }
        // BEGIN is deferred: reading the version is what opens the snapshot. If a commit
        // landed since the memo's header was read, the memo's rows may predate this snapshot,
        // so none are served for the rest of the session (those served already were the
        // state as it began).
        let opened = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)));
        let mut memo = self.memo.borrow_mut();
        if opened.is_err()
            || memo
                .version()
                .is_some_and(|v| self.header().map(Version::Wal).as_ref() != Some(v))
        {
            memo.invalidate();
        }
    }

    /// Ends the transaction if one began, so the next statement takes a new snapshot.
    fn end(&self) {
        if self.begun.replace(false) {
            end_read(&self.conn);
        }
    }
}

/// The read connections of the threads that ran sessions on one database. A session runs on an
/// async worker (there are as many as cores), so it never waits for a pooled connection: a wait
/// there would stall every client of that worker.
pub(super) struct Sessions {
    threads: ThreadLocal<Local>,
    path: PathBuf,
}

impl Sessions {
    pub(super) fn new(path: &Path) -> Sessions {
        Sessions {
            threads: ThreadLocal::new(),
            path: path.to_path_buf(),
        }
    }

    /// Runs `f` with every `read` this thread makes on this database inside one session: its
    /// statements share one transaction, begun at the first (so authentication and the
    /// operation see the same snapshot and pay for one), and rows read under an unchanged
    /// WAL-index header come from the memo. Nested sessions join the open one. When no
    /// connection can be had, `f` runs without a session and its reads take pooled connections
    /// (and report the failure) as usual.
    pub(super) fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let Ok(local) = self.threads.get_or_try(|| self.open_connection()) else {
            return f();
        };
        if local.open.get() {
            return f();
        }
        // A transaction left open by a COMMIT and ROLLBACK that both failed would pin the WAL
        // and make every later BEGIN fail: end it before starting anew.
        if !local.conn.is_autocommit() {
            let _ = execute(&local.conn, "ROLLBACK");
        }
        // Read before any snapshot this session takes: see memo.rs.
        local
            .memo
            .borrow_mut()
            .validate(local.header().map(Version::Wal));
        local.open.set(true);
        // Ends the transaction on every way out, a panic included, so the connection is never
        // left holding a snapshot (that would pin the WAL and stop checkpoints).
        struct End<'a>(&'a Local);
        impl Drop for End<'_> {
            fn drop(&mut self) {
                self.0.open.set(false);
                self.0.end();
            }
        }
        let _end = End(local);
        f()
    }

    /// This thread's open session, if there is one.
    pub(super) fn current(&self) -> Option<&Local> {
        self.threads.get().filter(|local| local.open.get())
    }

    /// After a write made inside a session, its later reads must see that write: the snapshot
    /// is dropped, and the next statement takes a new one.
    pub(super) fn refresh(&self) {
        if let Some(local) = self.current() {
            local.memo.borrow_mut().invalidate();
            local.end();
        }
    }

    fn open_connection(&self) -> Result<Local> {
        let conn = Connection::open(&self.path)?;
        super::set_up(&conn)?;
        // A reader in WAL mode waits only in rare cases (WAL recovery after a crash); on the
        // async worker that wait stalls every client of the worker, so it is short and answered
        // as busy (503 with Retry-After) rather than waited out for the usual five seconds.
        conn.busy_timeout(SESSION_BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        Ok(Local {
            conn,
            open: Cell::new(false),
            begun: Cell::new(false),
            wal: mode.eq_ignore_ascii_case("wal"),
            memo: RefCell::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        (dir, store)
    }

    fn users(store: &Store) -> usize {
        store.read(|db| db.list_users().map(|u| u.len())).unwrap()
    }

    /// Adds a user from another thread, as another request (or gateway) would.
    fn commit_elsewhere(store: &Store) {
        let other = store.clone();
        std::thread::spawn(move || other.write(|db| db.insert_user("eve", false).map(|_| ())))
            .join()
            .unwrap()
            .unwrap();
    }

    /// A change committed between two sessions on the same worker thread is seen by the second:
    /// nothing of the first session's snapshot survives it (a revocation counts at once).
    #[test]
    fn each_session_sees_what_was_committed_before_it() {
        let (_dir, store) = store();
        let before = store.session(|| users(&store));
        commit_elsewhere(&store);
        assert_eq!(store.session(|| users(&store)), before + 1);
    }

    /// Reads inside one session share its snapshot, nested sessions join it, and a write made
    /// inside it is seen by the reads after it.
    #[test]
    fn a_session_is_one_snapshot_until_it_writes() {
        let (_dir, store) = store();
        store.session(|| {
            let first = users(&store);
            commit_elsewhere(&store);
            assert_eq!(users(&store), first, "same snapshot within the session");
            assert_eq!(
                store.session(|| users(&store)),
                first,
                "a nested session joins"
            );
            store
                .write(|db| db.insert_user("mallory", false).map(|_| ()))
                .unwrap();
            assert_eq!(
                users(&store),
                first + 2,
                "after its own write it reads anew"
            );
        });
    }

    /// A panic inside a session ends its transaction: the next session on this thread reads a
    /// new snapshot.
    #[test]
    fn a_panic_ends_the_session() {
        let (_dir, store) = store();
        let before = store.session(|| users(&store));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.session(|| {
                users(&store);
                panic!("boom");
            })
        }));
        assert!(caught.is_err());
        commit_elsewhere(&store);
        assert_eq!(store.session(|| users(&store)), before + 1);
    }

    fn token(store: &Store) -> Option<i64> {
        store
            .read(|db| db.token_by_hash(b"h").map(|t| t.map(|(t, _)| t.id)))
            .unwrap()
    }

    /// Sessions on an unchanged database take the rows the memo kept; once anything commits
    /// (here another connection, as another process would) the next session reads anew, so a
    /// deleted token is gone at once. Within a session that wrote, nothing is kept.
    #[test]
    fn the_memo_serves_only_an_unchanged_database() {
        use super::super::memo::MISSES;
        let (dir, store, id) = seeded();
        let misses = || MISSES.with(|m| m.get());
        let start = misses();
        assert_eq!(store.session(|| token(&store)), Some(id));
        assert_eq!(misses(), start + 1, "the first session reads the row");
        assert_eq!(store.session(|| token(&store)), Some(id));
        assert_eq!(misses(), start + 1, "the second takes it from the memo");
        let other = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
        other.execute("DELETE FROM tokens", []).unwrap();
        assert_eq!(store.session(|| token(&store)), None, "deleted elsewhere");
        assert_eq!(misses(), start + 2);
        store.session(|| {
            store
                .write(|db| db.insert_token(1, b"h", crate::store::Scope::Api, None))
                .unwrap();
            assert!(token(&store).is_some(), "its own write is seen");
            token(&store);
        });
        assert_eq!(
            misses(),
            start + 2,
            "a session that wrote neither keeps nor serves rows"
        );
    }

    fn seeded() -> (tempfile::TempDir, Store, i64) {
        let (dir, store) = store();
        let id = store
            .write(|db| {
                let user = db.insert_user("ann", false)?;
                db.insert_token(user, b"h", crate::store::Scope::Api, None)
            })
            .unwrap();
        (dir, store, id)
    }

    fn current_is_autocommit(store: &Store) -> bool {
        let crate::store::Backend::Sqlite(sqlite) = &store.backend else {
            unreachable!("a SQLite store")
        };
        sqlite.sessions.current().unwrap().conn().is_autocommit()
    }

    /// A session the memo answers whole runs no statement, so it begins no transaction and
    /// takes no lock; its first statement begins one.
    #[test]
    fn a_session_the_memo_answers_runs_no_statement() {
        let (_dir, store, id) = seeded();
        store.session(|| token(&store));
        store.session(|| {
            assert_eq!(token(&store), Some(id));
            assert!(current_is_autocommit(&store), "no transaction began");
            users(&store);
            assert!(!current_is_autocommit(&store), "a statement began one");
        });
    }

    /// A commit that lands after a session began from the memo but before its first statement:
    /// from that statement on, the memo's rows (older than the snapshot) are not served.
    #[test]
    fn a_commit_before_the_first_statement_ends_the_memo_for_the_session() {
        let (dir, store, id) = seeded();
        store.session(|| token(&store));
        let other = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
        store.session(|| {
            assert_eq!(token(&store), Some(id), "from the memo");
            other.execute("DELETE FROM tokens", []).unwrap();
            users(&store);
            assert_eq!(token(&store), None, "read in the new snapshot");
        });
    }
}
