//! SQLite persistence: the connection pool, migrations, transactions and every SQL statement.

mod groups;
mod queries;

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

pub use queries::*;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_codearts.sql"),
];

/// How long a writer waits for another writer before the request is answered as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_SIZE: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A UNIQUE index refused a row; holds `table.column` as SQLite names it.
    #[error("unique constraint failed: {0}")]
    Unique(String),
    /// Another writer held the database for longer than the busy timeout.
    #[error("database is busy")]
    Busy,
    #[error("database schema version {found} is newer than this keygate ({known})")]
    TooNew { found: i64, known: i64 },
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("connection pool error: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("cannot open database: {0}")]
    Io(#[from] std::io::Error),
}

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

/// A pool of connections to one SQLite file.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let manager = SqliteConnectionManager::file(path).with_init(|conn| {
            // synchronous=FULL: in WAL mode NORMAL may lose the last commits on power loss, and an
            // acknowledged revocation must never come back. See docs/operations.md.
            conn.execute_batch(
                "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;",
            )?;
            conn.busy_timeout(BUSY_TIMEOUT)
        });
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(Duration::from_secs(30))
            .build(manager)?;
        let store = Store { pool };
        {
            let mut conn = store.pool.get()?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            migrate(&mut conn)?;
        }
        restrict_permissions(path);
        Ok(store)
    }

    /// Runs `f` on a pooled connection outside any explicit transaction (one consistent read each statement).
    pub fn read<T, E>(&self, f: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        // A deferred transaction gives multi-statement reads (a page and its count) one snapshot.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let out = f(&Db { conn: &tx })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` in one IMMEDIATE transaction: it either commits whole (durably) or not at all.
    pub fn write<T, E>(&self, f: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        // IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of
        // failing with SQLITE_BUSY when a read transaction tries to upgrade.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&Db { conn: &tx })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // Best effort: the file holds token hashes and, for CodeArts, secret keys.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

/// Milliseconds since the Unix epoch, the unit of every stored time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
