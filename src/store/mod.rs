//! Persistence: one storage contract (`Queries`) over two backends, SQLite (embedded, the default) and PostgreSQL.

mod audit_filter;
mod contract;
mod copy;
pub mod postgres;
mod records;
pub mod sqlite;

use std::path::Path;

pub use contract::Queries;
pub use copy::CopyReport;
pub use records::*;
pub use sqlite::{Done, Job};

/// A connection inside a transaction opened by `Store::read` or `Store::write`, whichever backend.
pub type Db<'a> = dyn Queries + 'a;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A UNIQUE index refused a row; holds `table.column` as SQLite names it (PostgreSQL's
    /// constraint names are translated to the same text, so the core maps one vocabulary).
    #[error("unique constraint failed: {0}")]
    Unique(String),
    /// Another writer held the database for longer than the busy timeout, no connection was
    /// free in time, or concurrent writers kept conflicting after every retry.
    #[error("database is busy")]
    Busy,
    #[error("database schema version {found} is newer than this keygate ({known})")]
    TooNew { found: i64, known: i64 },
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// Logged, never shown: PostgreSQL's messages may name tables, constraints and values.
    #[error("database error: {0}")]
    Postgres(::postgres::Error),
    /// The pool could not open its connections at start (a missing directory, not a database, …).
    #[error("cannot open the database: {0}")]
    Pool(r2d2::Error),
    #[error("cannot open database: {0}")]
    Io(#[from] std::io::Error),
    /// The SQLite file at `--db` is gone, or is another file than the one the store opened
    /// (moved away, deleted, a copy put in its place): what it writes nobody will read again.
    #[error("the database file {} was removed or replaced since keygate opened it; restart keygate", .0.display())]
    Replaced(std::path::PathBuf),
    /// An operation that only one backend has (a PRAGMA, SQLite's online backup).
    #[error("not supported on this database: {0}")]
    Unsupported(&'static str),
    /// A `--db` value that is neither a file path nor a usable PostgreSQL URL.
    #[error("invalid database address: {0}")]
    Address(String),
}

impl From<r2d2::Error> for StoreError {
    fn from(err: r2d2::Error) -> Self {
        // r2d2 reports only timeouts here (connection errors surface through the driver itself).
        log::warn!("no database connection free in time: {err}");
        StoreError::Busy
    }
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// The database keygate runs on: a pool of connections to one SQLite file or one PostgreSQL database.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Registered once: looking a counter up by name and labels costs more than the increment.
    transactions: Transactions,
}

/// The `keygate_store_transactions_total` counters of this store's backend.
#[derive(Clone)]
struct Transactions {
    read: ::metrics::Counter,
    write: ::metrics::Counter,
}

impl Transactions {
    /// Through the `metrics` facade (a no-op when no recorder is installed), so the store knows
    /// nothing of HTTP. Literal labels make static keys.
    fn of(backend: &Backend) -> Transactions {
        const NAME: &str = "keygate_store_transactions_total";
        match backend {
            Backend::Sqlite(_) => Transactions {
                read: ::metrics::counter!(NAME, "backend" => "sqlite", "kind" => "read"),
                write: ::metrics::counter!(NAME, "backend" => "sqlite", "kind" => "write"),
            },
            Backend::Postgres(_) => Transactions {
                read: ::metrics::counter!(NAME, "backend" => "postgres", "kind" => "read"),
                write: ::metrics::counter!(NAME, "backend" => "postgres", "kind" => "write"),
            },
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Whether `--db` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// `db` fit for a log line or an error message: a URL loses its password, a path stays as it is.
pub fn redact(db: &str) -> String {
    if !is_postgres_url(db) {
        return db.to_string();
    }
    let (scheme, rest) = db.split_once("://").unwrap_or(("", db));
    // The user part ends at the last `@`, not at the first `/` or `?`: a password may hold `/`,
    // `?`, `#` or `@` unescaped. An `@` later in the query would hide more than the password,
    // which errs on the safe side.
    let Some(at) = rest.rfind('@') else {
        return redact_query(db);
    };
    let (userinfo, host_and_tail) = (&rest[..at], &rest[at + 1..]);
    let user = userinfo.split(':').next().unwrap_or("");
    let shown = if userinfo.contains(':') {
        format!("{scheme}://{user}:***@{host_and_tail}")
    } else {
        format!("{scheme}://{user}@{host_and_tail}")
    };
    redact_query(&shown)
}

/// A `password=` query parameter is hidden too (libpq accepts one there).
fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

impl Store {
    /// Opens the database `db` names (a `postgres://` URL, else a SQLite file, created if
    /// needed) and brings its schema up to date.
    pub fn open(db: &Path) -> Result<Store, StoreError> {
        let backend = match db.to_str().filter(|s| is_postgres_url(s)) {
            Some(url) => Backend::Postgres(postgres::PgStore::open(url)?),
            None => Backend::Sqlite(sqlite::SqliteStore::open(db)?),
        };
        // After `telemetry::handle()` installed the recorder, when there is one.
        let transactions = Transactions::of(&backend);
        Ok(Store {
            backend,
            transactions,
        })
    }

    /// Which backend this is: "sqlite" or "postgres".
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// A PRAGMA's value as a pooled connection sees it (SQLite only; for tests and diagnostics).
    pub fn pragma(&self, name: &str) -> Result<String, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.pragma(name),
            Backend::Postgres(_) => Err(StoreError::Unsupported("PRAGMA")),
        }
    }

    /// Copies the whole database to a new SQLite file at `dest` (SQLite only: a PostgreSQL
    /// instance is backed up with PostgreSQL's own tools, see docs/scale-out.md).
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.backup_to(dest),
            Backend::Postgres(_) => Err(StoreError::Unsupported(
                "keygate db backup (use pg_dump or pg_basebackup)",
            )),
        }
    }

    /// Copies every row of this SQLite database into `dest`, an empty PostgreSQL database,
    /// keeping ids (and id counters), so every client's URLs and cached ids stay valid.
    pub fn copy_into(&self, dest: &Store) -> Result<CopyReport, StoreError> {
        match (&self.backend, &dest.backend) {
            (Backend::Sqlite(from), Backend::Postgres(to)) => to.import(&from.export()?),
            _ => Err(StoreError::Unsupported(
                "db copy copies a SQLite file into a PostgreSQL database",
            )),
        }
    }

    /// What SQLite's group commit has committed since the store was opened: batches (one fsync
    /// each), requests, and batch sizes. `None` on PostgreSQL, which commits each write alone.
    pub fn batch_stats(&self) -> Option<sqlite::BatchStats> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.batch_stats()),
            Backend::Postgres(_) => None,
        }
    }

    /// Whether the store can serve: a one-row read, and on SQLite first that the file at its
    /// path is still the one its connections hold open. Those connections keep reading and
    /// writing a file that was moved or deleted, so a read alone would pass while every write
    /// went where no restart, backup or other gateway would find it.
    pub fn ping(&self) -> Result<(), StoreError> {
        if let Backend::Sqlite(s) = &self.backend {
            s.check_file()?;
        }
        self.read(|db| db.user_by_id(0).map(drop))
    }

    /// Runs `f` in a read transaction, so all its statements see one snapshot.
    pub fn read<T, E>(&self, f: impl FnMut(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.transactions.read.increment(1);
        match &self.backend {
            Backend::Sqlite(s) => s.read(f),
            Backend::Postgres(p) => p.read(f),
        }
    }

    /// Runs `f` with its reads sharing one snapshot and one transaction, on this thread's own
    /// connection (SQLite). On PostgreSQL each read keeps its own transaction, as before.
    pub fn session<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.backend {
            Backend::Sqlite(s) => s.session(f),
            Backend::Postgres(_) => f(),
        }
    }

    /// Whether a request that only reads may run on the async worker itself: SQLite's readers
    /// never wait for writers (WAL) and a session never waits for a pooled connection, whereas a
    /// PostgreSQL read waits on the network.
    pub fn reads_inline(&self) -> bool {
        matches!(self.backend, Backend::Sqlite(_))
    }

    /// Runs `f` in one write transaction: it either commits whole (durably) or not at all. On
    /// PostgreSQL `f` may run more than once, when a concurrent writer forced a retry; only the
    /// run that commits counts, so `f` must not act outside the transaction.
    pub fn write<T, E>(&self, f: impl FnMut(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.transactions.write.increment(1);
        match &self.backend {
            Backend::Sqlite(s) => s.write(f),
            Backend::Postgres(p) => p.write(f),
        }
    }

    /// Queues `job` for the SQLite writer thread, where its writes share one batch and one
    /// fsync with the jobs queued with it, and its `Done` is called once they are durable.
    /// `Err(job)` on PostgreSQL, whose server groups commits itself: run it where it can block.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        match &self.backend {
            Backend::Sqlite(s) => s.submit(job),
            Backend::Postgres(_) => Err(job),
        }
    }

    /// As `write`, for a write of many rows (an import chunk): on SQLite it runs in a transaction
    /// of its own instead of a savepoint of the writer's batch, which keeps SQLite's statement
    /// journals small; PostgreSQL has no batch, so there it is `write`.
    pub fn write_alone<T, E>(&self, f: impl FnMut(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.transactions.write.increment(1);
        match &self.backend {
            Backend::Sqlite(s) => s.write_alone(f),
            Backend::Postgres(p) => p.write(f),
        }
    }
}

impl<'a> dyn Queries + 'a {
    /// Runs `f` inside a SAVEPOINT: when it fails, what it wrote is undone and what the enclosing
    /// transaction wrote before it (a claimed signature) is kept for the commit.
    pub fn savepoint<T, E>(&self, f: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.savepoint_begin()?;
        match f(self) {
            Ok(out) => {
                self.savepoint_release()?;
                Ok(out)
            }
            Err(err) => {
                self.savepoint_rollback()?;
                Err(err)
            }
        }
    }
}

/// Milliseconds since the Unix epoch, the unit of every stored time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_the_password_and_only_it() {
        assert_eq!(
            redact("postgres://kg:s3cret@db.internal:5432/keygate"),
            "postgres://kg:***@db.internal:5432/keygate"
        );
        assert_eq!(
            redact("postgresql://kg@db/keygate?password=x&sslmode=disable"),
            "postgresql://kg@db/keygate?password=***&sslmode=disable"
        );
        assert_eq!(redact("./keygate.db"), "./keygate.db");
        for password in ["a/b", "a?b", "a#b", "a@b", "a:b/c@d"] {
            let shown = redact(&format!(
                "postgres://kg:{password}@db:5432/keygate?sslmode=disable"
            ));
            assert_eq!(
                shown, "postgres://kg:***@db:5432/keygate?sslmode=disable",
                "{password}"
            );
        }
    }
}
