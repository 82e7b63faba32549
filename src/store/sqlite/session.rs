//! Read sessions: every read a request makes shares one snapshot on its worker thread's own connection.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use thread_local::ThreadLocal;

use super::memo::Memo;
use super::{Result, end_read, execute};

const SESSION_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(100);

/// One thread's read connection, whether a session's transaction is open on it, and the rows
/// its sessions read while the database stayed unchanged.
struct Local {
    conn: Connection,
    open: Cell<bool>,
    memo: RefCell<Memo>,
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

    /// Runs `f` with every `read` this thread makes on this database inside one transaction,
    /// so authentication and the operation see the same snapshot and pay for one. Nested
    /// sessions join the open one. When no connection can be had, `f` runs without a session
    /// and its reads take pooled connections (and report the failure) as usual.
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
        if execute(&local.conn, "BEGIN").is_err() {
            return f();
        }
        local.open.set(true);
        // Taking the version is what opens the snapshot (BEGIN is deferred), so the version is
        // the snapshot's own.
        let version = local
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)));
        local.memo.borrow_mut().validate(version.ok());
        // Ends the transaction on every way out, a panic included, so the connection is never
        // left holding a snapshot (that would pin the WAL and stop checkpoints).
        struct End<'a>(&'a Local);
        impl Drop for End<'_> {
            fn drop(&mut self) {
                self.0.open.set(false);
                end_read(&self.0.conn);
            }
        }
        let _end = End(local);
        f()
    }

    /// The connection of this thread's open session and its memo, if there is one.
    pub(super) fn current(&self) -> Option<(&Connection, &RefCell<Memo>)> {
        self.threads
            .get()
            .filter(|local| local.open.get())
            .map(|local| (&local.conn, &local.memo))
    }

    /// After a write made inside a session, its later reads must see that write: the snapshot
    /// is dropped, and the next read takes a new one.
    pub(super) fn refresh(&self) {
        if let Some((conn, memo)) = self.current() {
            memo.borrow_mut().invalidate();
            let _ = execute(conn, "COMMIT").and_then(|()| execute(conn, "BEGIN"));
        }
    }

    fn open_connection(&self) -> Result<Local> {
        let conn = Connection::open(&self.path)?;
        super::set_up(&conn)?;
        // A reader in WAL mode waits only in rare cases (WAL recovery after a crash); on the
        // async worker that wait stalls every client of the worker, so it is short and answered
        // as busy (503 with Retry-After) rather than waited out for the usual five seconds.
        conn.busy_timeout(SESSION_BUSY_TIMEOUT)?;
        Ok(Local {
            conn,
            open: Cell::new(false),
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
        let (dir, store) = store();
        let id = store
            .write(|db| {
                let user = db.insert_user("ann", false)?;
                db.insert_token(user, b"h", crate::store::Scope::Api, None)
            })
            .unwrap();
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
}
