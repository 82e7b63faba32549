//! Read sessions: every read a request makes shares one snapshot on its worker thread's own connection.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use thread_local::ThreadLocal;

use super::Result;

/// One thread's read connection, and whether a session's transaction is open on it.
struct Local {
    conn: Connection,
    open: Cell<bool>,
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
        if local.open.get() || execute(&local.conn, "BEGIN").is_err() {
            return f();
        }
        local.open.set(true);
        // Ends the transaction on every way out, a panic included, so the connection is never
        // left holding a snapshot (that would pin the WAL and stop checkpoints).
        struct End<'a>(&'a Local);
        impl Drop for End<'_> {
            fn drop(&mut self) {
                self.0.open.set(false);
                if execute(&self.0.conn, "COMMIT").is_err() {
                    let _ = execute(&self.0.conn, "ROLLBACK");
                }
            }
        }
        let _end = End(local);
        f()
    }

    /// The connection of this thread's open session, if there is one.
    pub(super) fn current(&self) -> Option<&Connection> {
        self.threads
            .get()
            .filter(|local| local.open.get())
            .map(|local| &local.conn)
    }

    /// After a write made inside a session, its later reads must see that write: the snapshot
    /// is dropped, and the next read takes a new one.
    pub(super) fn refresh(&self) {
        if let Some(conn) = self.current() {
            let _ = execute(conn, "COMMIT").and_then(|()| execute(conn, "BEGIN"));
        }
    }

    fn open_connection(&self) -> Result<Local> {
        let conn = Connection::open(&self.path)?;
        super::set_up(&conn)?;
        Ok(Local {
            conn,
            open: Cell::new(false),
        })
    }
}

/// Runs a statement that takes no parameters from the connection's statement cache: parsing
/// `BEGIN` and `COMMIT` anew on every request cost more than the reads between them.
pub(super) fn execute(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
