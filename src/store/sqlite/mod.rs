//! The SQLite backend: the connection pool, migrations (migrate.rs), transactions and every SQLite statement.

mod audit;
mod deferred_audit;
mod group_commit;
mod groups;
mod memo;
mod migrate;
#[cfg(test)]
mod plans;
mod queries;
mod session;
mod ssh;
mod wal_index;
mod writer_thread;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

pub use group_commit::{BatchStats, MAX_BATCH_AGE, MAX_BATCH_REQUESTS};
use group_commit::{Tx, Writer};
pub use writer_thread::{Done, Job};

use super::contract::forward_queries;
use super::copy::{Kind, Snapshot, TABLES, Value, parents_first};
use super::{
    AuditEvent, AuditFilter, DeployKey, KeyLink, KeyRange, LinkedKey, Namespace, NewKey,
    Repository, Role, Scope, Token, User,
};
use super::{Db, StoreError};
use migrate::migrate;

/// How long a writer waits for another writer before the request is answered as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_SIZE: u32 = 8;
/// Prepared statements kept per connection. rusqlite's default of 16 is fewer than the statements
/// of one busy mix of routes, and a statement evicted is parsed again on its next use.
const STATEMENT_CACHE: usize = 128;
/// The writer connection's page cache, in KiB as `PRAGMA cache_size` takes it (negative).
const WRITER_CACHE_KIB: i64 = -16 * 1024;

type Result<T> = std::result::Result<T, StoreError>;

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        // The one place where SQLite's errors become ours: handlers never see raw SQLite text.
        if let rusqlite::Error::SqliteFailure(code, msg) = &err {
            match code.code {
                ErrorCode::ConstraintViolation
                    if code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        || code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    let what = msg
                        .as_deref()
                        .and_then(|m| m.split_once("failed: "))
                        .map(|(_, cols)| cols.to_string())
                        .unwrap_or_default();
                    return StoreError::Unique(what);
                }
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => return StoreError::Busy,
                _ => {}
            }
        }
        StoreError::Sqlite(err)
    }
}

/// A pool of read connections to one SQLite file, and the one connection this process writes with.
#[derive(Clone)]
pub struct SqliteStore {
    pool: r2d2::Pool<SqliteConnectionManager>,
    writer: Arc<Writer>,
    /// The server's writes (`submit`); CLI commands and background tasks use `writer` directly.
    queue: Arc<writer_thread::Queue>,
    sessions: Arc<session::Sessions>,
    /// The writer connection's memo (memo.rs), used only while the writer's lock is held.
    writer_memo: Arc<Mutex<std::cell::RefCell<memo::Memo>>>,
    file: Arc<FileId>,
}

/// The database file as it was when the store opened it: its path, and the device and inode
/// its connections hold (`None` where there are no inodes).
struct FileId {
    path: std::path::PathBuf,
    id: Option<(u64, u64)>,
}

#[cfg(unix)]
fn file_id(path: &Path) -> std::io::Result<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| Some((m.dev(), m.ino())))
}

#[cfg(not(unix))]
fn file_id(path: &Path) -> std::io::Result<Option<(u64, u64)>> {
    std::fs::metadata(path).map(|_| None)
}

/// What every connection of ours runs first: the pool's, the writer's and each session's.
fn set_up(conn: &Connection) -> rusqlite::Result<()> {
    // synchronous=FULL: in WAL mode NORMAL may lose the last commits on power loss, and an
    // acknowledged revocation must never come back. See docs/operations.md.
    // recursive_triggers: without it, a row that a REPLACE conflict deletes fires no delete
    // trigger, and the counters (the SSH door reads a key's count of links) would drift.
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; \
         PRAGMA recursive_triggers = ON;",
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(BUSY_TIMEOUT)
}

impl SqliteStore {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        // Before SQLite touches anything: it gives the -wal and -shm files the database file's mode.
        create_private(path)?;
        // Before any connection opens the file: were it swapped in between, readiness fails
        // (until a restart) instead of vouching for a file no connection of ours holds.
        let file = Arc::new(FileId {
            path: path.to_path_buf(),
            id: file_id(path)?,
        });
        let manager = SqliteConnectionManager::file(path).with_init(|conn| set_up(conn));
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            // A request that cannot get a connection in time is answered "busy" (503), like one
            // that cannot get the write lock.
            .connection_timeout(BUSY_TIMEOUT)
            // r2d2's check on checkout (an empty `execute_batch`, a parse) finds nothing on a
            // file: a connection to it does not go stale as a socket does. It was a third of
            // what a write's authentication cost.
            .test_on_check_out(false)
            .build(manager)
            .map_err(StoreError::Pool)?;
        {
            let mut conn = pool.get().map_err(StoreError::Pool)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            migrate(&mut conn)?;
        }
        // Opened after WAL is on; never one of the pool's, so reads never queue behind a batch.
        let conn = Connection::open(path)?;
        set_up(&conn)?;
        // Every change of the process goes through this one connection, and a write touches the
        // pages of every index it updates: 2 MiB, SQLite's default, thrashed at a million keys
        // (each connection has its own cache since SQLite is built without the shared one).
        conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
        // A statement that fires a trigger keeps a statement journal. In memory, releasing each
        // one walks the whole sub-journal of the savepoint around it, which grows with that
        // savepoint's writes: quadratic for a write of many keys (82% of a bulk insert's CPU, in
        // perf). On a file (past SQLITE_STMTJRNL_SPILL, .cargo/config.toml) nothing is walked.
        conn.pragma_update(None, "temp_store", "FILE")?;
        let hooks = memo::WriterHooks::install(&conn)?;
        let writer = Arc::new(Writer::new(conn));
        let queue = Arc::new(writer_thread::Queue::start(Arc::clone(&writer))?);
        Ok(SqliteStore {
            pool,
            writer,
            queue,
            sessions: Arc::new(session::Sessions::new(path)),
            writer_memo: Arc::new(Mutex::new(memo::Memo::for_writer(hooks).into())),
            file,
        })
    }

    /// Fails when the file at the store's path is not the one it opened. Only the path is
    /// looked at: a SQLite connection opened on a stranger file would share the WAL and shared
    /// memory with ours, and on closing could checkpoint our WAL into that file and delete it.
    pub fn check_file(&self) -> Result<()> {
        match file_id(&self.file.path) {
            Ok(id) if id == self.file.id => Ok(()),
            Ok(_) => Err(StoreError::Replaced(self.file.path.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::Replaced(self.file.path.clone()))
            }
            Err(e) => Err(StoreError::Io(e)),
        }
    }

    /// A PRAGMA's value as a pooled connection sees it (for tests and diagnostics).
    pub fn pragma(&self, name: &str) -> Result<String> {
        let conn = self.pool.get()?;
        Ok(conn
            .pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })?)
    }

    /// Copies the whole database to a new file at `dest` with SQLite's online backup API: a
    /// consistent snapshot even while other connections write. `dest` must not exist yet; it is
    /// created with mode 0600 before SQLite writes a page, because it holds token hashes and
    /// CodeArts secret keys (SQLite gives its journal the same mode).
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        create_new_private(dest)?;
        let copy = || -> Result<()> {
            let source = self.pool.get().map_err(StoreError::Pool)?;
            let mut target = Connection::open(dest)?;
            let backup = rusqlite::backup::Backup::new(&source, &mut target)?;
            // Small steps with pauses let writers in between; a step is 64 pages (256 KiB).
            backup.run_to_completion(64, Duration::from_millis(5), None)?;
            Ok(())
        };
        copy().inspect_err(|_| {
            // A half-written copy must not pass for a backup.
            let _ = std::fs::remove_file(dest);
        })
    }

    /// Runs `f` in a DEFERRED transaction, so all its statements see one snapshot: the open
    /// session's, when this thread is inside `session`, else a new one on a pooled connection.
    pub fn read<T, E>(
        &self,
        f: impl FnOnce(&Db) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        if let Some(local) = self.sessions.current() {
            return f(&SqliteDb {
                conn: local.conn(),
                memo: Some(local.memo()),
                session: Some(local),
                audit: None,
            });
        }
        if let Some(mut job) = writer_thread::in_job(&self.writer) {
            return self
                .writer
                .read_deferred(job.arrived, &mut job.joined, |conn| {
                    let memo = self.writer_memo();
                    f(&SqliteDb {
                        conn,
                        memo: Some(&memo),
                        session: None,
                        audit: None,
                    })
                })
                .map_err(E::from)?;
        }
        let conn = self.pool.get().map_err(StoreError::from)?;
        execute(&conn, "BEGIN").map_err(StoreError::from)?;
        // The guard also ends the read when `f` panics, before the connection goes back to the pool.
        struct End<'a>(&'a Connection);
        impl Drop for End<'_> {
            fn drop(&mut self) {
                end_read(self.0);
            }
        }
        let _end = End(&conn);
        f(&SqliteDb {
            conn: &conn,
            memo: None,
            session: None,
            audit: None,
        })
    }

    /// The writer's memo, for a closure running under the writer's lock (so never contended).
    fn writer_memo(&self) -> std::sync::MutexGuard<'_, std::cell::RefCell<memo::Memo>> {
        self.writer_memo.lock().unwrap_or_else(|poisoned| {
            // A job panicked mid-lookup: what it kept is not to be trusted.
            let memo = poisoned.into_inner();
            memo.borrow_mut().invalidate();
            self.writer_memo.clear_poison();
            memo
        })
    }

    /// Runs `f`, with every read it makes on this thread sharing one transaction (see
    /// `session::Sessions::run`). For requests that only read, run on an async worker.
    pub fn session<T>(&self, f: impl FnOnce() -> T) -> T {
        self.sessions.run(f)
    }

    /// Runs `f` on the writer connection in a SAVEPOINT of its own: it either commits whole
    /// (durably) or not at all, and this returns only once it is durable. `f` shares its
    /// transaction and fsync with the writes that queued behind each other (group_commit/).
    /// In a job of the writer thread it returns at once, and the job's answer waits instead.
    pub fn write<T, E>(
        &self,
        f: impl FnOnce(&Db) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        self.on_writer(|tx: &Tx| {
            let memo = self.writer_memo();
            f(&SqliteDb {
                conn: tx.conn,
                memo: Some(&memo),
                session: None,
                audit: Some(tx.audit),
            })
        })
    }

    /// Runs `on` in its own savepoint of the writer's open batch: `write`, below the contract.
    fn on_writer<T, E>(
        &self,
        on: impl FnOnce(&Tx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let out = match writer_thread::in_job(&self.writer) {
            Some(mut job) => self.writer.run_deferred(job.arrived, &mut job.joined, on),
            None => self.writer.run(on),
        };
        // Reads after a write in the same session must see it.
        self.sessions.refresh();
        out
    }

    /// As `write`, but in a transaction of its own rather than a savepoint of a batch: for
    /// writes of many rows (`Writer::run_alone` says why).
    pub fn write_alone<T, E>(
        &self,
        f: impl FnOnce(&Db) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let out = self.writer.run_alone(|tx| {
            f(&SqliteDb {
                conn: tx.conn,
                memo: None,
                session: None,
                audit: Some(tx.audit),
            })
        });
        self.sessions.refresh();
        out
    }

    /// Queues `job` for the writer thread: its writes share the batches of the jobs queued with
    /// it, and its `Done` is called once they are durable. `Err(job)` if the thread is gone.
    pub fn submit(&self, job: Job) -> std::result::Result<(), Job> {
        self.queue.submit(job)
    }

    /// How many batches and requests the writer has committed (for metrics: batch sizes).
    pub fn batch_stats(&self) -> BatchStats {
        self.writer.stats()
    }
}

/// Runs a statement that takes no parameters from the connection's statement cache: parsing
/// `BEGIN`, `COMMIT` and the savepoint commands anew on every request cost more than the reads
/// between them.
fn execute(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Ends a read transaction. It changed nothing, so how it ends only matters for releasing its
/// snapshot (a snapshot kept would pin the WAL and stop checkpoints).
fn end_read(conn: &Connection) {
    if execute(conn, "COMMIT").is_err() {
        let _ = execute(conn, "ROLLBACK");
    }
}

/// The first column of every row `sql` selects: for tests, to read back what a change left.
#[cfg(test)]
fn column<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> Vec<T> {
    conn.prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// A connection inside a transaction opened by `SqliteStore::read` or `SqliteStore::write`.
pub struct SqliteDb<'a> {
    /// Through `conn()`, which begins a session's transaction first.
    conn: &'a Connection,
    /// A read session's memo or the writer's (`memo.rs`); `None` on pooled reads.
    memo: Option<&'a std::cell::RefCell<memo::Memo>>,
    session: Option<&'a session::Local>,
    /// On the writer connection: where its audit records wait for the COMMIT.
    audit: Option<&'a deferred_audit::DeferredAudit>,
}

impl SqliteDb<'_> {
    /// The memo for rows of tables whose every change the writer's memo does not hear (key
    /// tables, memberships): a read session's only.
    fn session_memo(&self) -> Option<&std::cell::RefCell<memo::Memo>> {
        self.session.and(self.memo)
    }

    /// The connection, for a statement: inside a session, its transaction has begun.
    fn conn(&self) -> &Connection {
        if let Some(session) = self.session {
            session.begin();
        }
        self.conn
    }
}

// Each statement lives once, as an inherent method in queries.rs, groups.rs or ssh.rs; the
// contract forwards to it (inlined, so the SQLite path costs what it did before the contract).
forward_queries!(SqliteDb {
    fn savepoint_begin(&self) -> Result<()> {
        self.conn.execute_batch("SAVEPOINT change")?;
        if let Some(audit) = self.audit {
            audit.change_begun();
        }
        Ok(())
    }
    fn savepoint_release(&self) -> Result<()> {
        self.conn.execute_batch("RELEASE change")?;
        if let Some(audit) = self.audit {
            audit.change_released();
        }
        Ok(())
    }
    fn savepoint_rollback(&self) -> Result<()> {
        if let Some(audit) = self.audit {
            audit.change_rolled_back();
        }
        Ok(self
            .conn
            .execute_batch("ROLLBACK TO change; RELEASE change")?)
    }
    fn insert_audit_events(&self, events: Vec<AuditEvent>) -> Result<()> {
        SqliteDb::insert_audit_events(self, events)
    }
});

impl SqliteStore {
    /// Every row, in one read transaction, for `keygate db copy`.
    pub(crate) fn export(&self) -> Result<Snapshot> {
        let mut conn = self.pool.get()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let mut rows = Vec::new();
        for table in TABLES {
            let names: Vec<&str> = table.cols.iter().map(|(name, _)| *name).collect();
            let mut stmt =
                tx.prepare(&format!("SELECT {} FROM {}", names.join(", "), table.name))?;
            let read = stmt.query_map([], |row| {
                table
                    .cols
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| {
                        Ok(match kind {
                            Kind::Int | Kind::Int32 => row
                                .get::<_, Option<i64>>(i)?
                                .map_or(Value::Null, Value::Int),
                            Kind::Bool => row
                                .get::<_, Option<i64>>(i)?
                                .map_or(Value::Null, |v| Value::Bool(v != 0)),
                            Kind::Text => row
                                .get::<_, Option<String>>(i)?
                                .map_or(Value::Null, Value::Text),
                            Kind::Blob => row
                                .get::<_, Option<Vec<u8>>>(i)?
                                .map_or(Value::Null, Value::Blob),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Value>>>()
            })?;
            let table_rows = read.collect::<rusqlite::Result<Vec<_>>>()?;
            rows.push(if table.name == "namespaces" {
                parents_first(table_rows)
            } else {
                table_rows
            });
        }
        // AUTOINCREMENT's counters: a deleted newest id is never handed out again, after a copy too.
        let mut stmt = tx.prepare("SELECT name, seq FROM sqlite_sequence")?;
        let high_water = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Snapshot { rows, high_water })
    }
}

/// Creates the database file readable by its owner only, and tightens an existing one and its
/// WAL files: they hold token hashes and CodeArts secret keys.
#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        if std::fs::metadata(&file).is_ok() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Creates a new, empty file readable by its owner only; an existing file is an error, never
/// overwritten (its mode may be wider, and it may be something else entirely).
fn create_new_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(|_| ())
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(|_| ())
}
