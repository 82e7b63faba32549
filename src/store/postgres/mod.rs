//! The PostgreSQL backend: the pool, migrations, SERIALIZABLE transactions with bounded retries, and error mapping.

mod audit;
mod groups;
mod password;
mod queries;
mod ssh;

use std::cell::{Cell, RefCell};
use std::str::FromStr;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, NoTls, Row, Transaction};
use r2d2_postgres::PostgresConnectionManager;

use super::contract::forward_queries;
use super::copy::{CopyReport, Kind, Snapshot, TABLES, Value};
use super::{
    AuditEvent, AuditFilter, DeployKey, KeyLink, KeyRange, LinkedKey, Namespace, NewKey,
    Repository, Role, Scope, Token, User,
};
use super::{Db, StoreError, redact};

/// Versioned per backend: PostgreSQL's version 1 holds what SQLite reached in its version 4.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_list_indexes.sql"),
    include_str!("migrations/0003_audit_events.sql"),
];

/// Connections per gateway. Several gateways share one server, whose `max_connections` (100 by
/// default) must cover them all; see docs/scale-out.md.
const POOL_SIZE: u32 = 8;
/// How long a request waits for a free connection (or for the server) before it is answered busy.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement may wait for a row lock another gateway holds.
const LOCK_TIMEOUT_MS: u32 = 5000;
/// Runs of a write transaction that lost a serialization race, before the client is told 503.
const RETRIES: u32 = 12;
/// Runs made side by side with other writers; later runs take the instance's write lock alone.
const OPTIMISTIC_RUNS: u32 = 3;
/// First half of the write lock's advisory key; the second is the schema's hash, one lock per instance.
const WRITE_LOCK: i32 = 0x6b67_7772;
/// Any number, the same in every keygate: serializes migrations when several gateways start at once.
const MIGRATION_LOCK: i64 = 0x006b_6579_6761_7465;

type Result<T> = std::result::Result<T, StoreError>;

impl From<postgres::Error> for StoreError {
    fn from(err: postgres::Error) -> Self {
        // The one place where PostgreSQL's errors become ours: its message text stays in the log.
        // A connection lost mid-request (the server restarting, a network cut) is the store being
        // unavailable, not a keygate bug: 503 with Retry-After, and the client tries again.
        if err.is_closed() {
            log::warn!("PostgreSQL connection lost: {err}");
            return StoreError::Busy;
        }
        if let Some(db) = err.as_db_error() {
            let code = db.code();
            if *code == SqlState::UNIQUE_VIOLATION {
                return StoreError::Unique(unique_name(db.constraint().unwrap_or("")).to_string());
            }
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::LOCK_NOT_AVAILABLE
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || code.code().starts_with("57P")
                || code.code().starts_with("08")
            {
                return StoreError::Busy;
            }
        }
        StoreError::Postgres(err)
    }
}

/// A unique constraint's name as SQLite spells the columns it guards, so the core's one map of
/// conflicts (`core::error`) serves both backends. The names are fixed in the migrations.
fn unique_name(constraint: &str) -> &str {
    match constraint {
        "users_username_nocase" => "users.username",
        "deploy_keys_sha256_unique" => "deploy_keys.fingerprint_sha256",
        "key_links_repo_key_unique" => "key_links.repo_id, key_links.key_id",
        "repositories_full_path_nocase" => "repositories.full_path",
        "repositories_pkey" => "repositories.id",
        "namespaces_full_path_nocase" => "namespaces.full_path",
        "namespaces_uuid_unique" => "namespaces.uuid",
        "tokens_hash_unique" => "tokens.hash",
        "access_keys_access_key_unique" => "access_keys.access_key",
        "used_signatures_pkey" => "used_signatures.signature",
        "memberships_pkey" => "memberships.repo_id, memberships.user_id",
        "submodules_pkey" => "submodules.parent_id, submodules.child_id",
        other => other,
    }
}

/// Settings every pooled connection gets before its first use.
#[derive(Debug)]
struct Session;

impl r2d2::CustomizeConnection<Client, postgres::Error> for Session {
    fn on_acquire(&self, conn: &mut Client) -> std::result::Result<(), postgres::Error> {
        // synchronous_commit=on: a commit is acknowledged only once its WAL is flushed, so an
        // acknowledged revocation survives a crash of PostgreSQL (an operator's server default
        // of "off" would break that promise; "remote_apply" etc. are stronger and fine, but a
        // session setting overrides them, so leave a stronger server default alone).
        conn.batch_execute(&format!(
            "DO $$ BEGIN IF current_setting('synchronous_commit') IN ('off', 'local') THEN \
               SET synchronous_commit = on; END IF; END $$; \
             SET lock_timeout = {LOCK_TIMEOUT_MS}; SET client_min_messages = warning;"
        ))
    }
}

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// A pool of connections to one PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: std::sync::Arc<PoolOffRuntime>,
}

/// The sync driver runs each call on a runtime of its own, which tokio refuses to start on a
/// thread already inside a runtime (actix's workers). Requests reach the store on the blocking
/// pool, where that is allowed; opening and the final close happen on a thread of their own.
struct PoolOffRuntime(Option<Pool>);

impl std::ops::Deref for PoolOffRuntime {
    type Target = Pool;
    fn deref(&self) -> &Pool {
        self.0.as_ref().expect("the pool lives until drop")
    }
}

impl Drop for PoolOffRuntime {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            // Closing a connection blocks on the driver's runtime: never on an actix worker.
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

impl PgStore {
    /// Connects to the database `url` names and brings its schema up to date. The password
    /// comes from the URL, else `PGPASSWORD`, else `~/.pgpass` (or `PGPASSFILE`), as with libpq.
    pub fn open(url: &str) -> Result<PgStore> {
        // `Application::build` runs inside actix's runtime; see `PoolOffRuntime`.
        std::thread::scope(|scope| {
            scope
                .spawn(|| Self::open_here(url))
                .join()
                .unwrap_or_else(|_| Err(StoreError::Address("opening the store panicked".into())))
        })
    }

    fn open_here(url: &str) -> Result<PgStore> {
        let mut config = postgres::Config::from_str(url)
            .map_err(|_| StoreError::Address(format!("not a PostgreSQL URL: {}", redact(url))))?;
        password::fill(&mut config);
        log::info!("store: PostgreSQL at {}", redact(url));
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            // Open lazily: N gateways idle on few server connections.
            .min_idle(Some(1))
            .connection_timeout(CONNECTION_TIMEOUT)
            .connection_customizer(Box::new(Session))
            .build(manager)
            .map_err(StoreError::Pool)?;
        let store = PgStore {
            pool: std::sync::Arc::new(PoolOffRuntime(Some(pool))),
        };
        {
            let mut conn = store.pool.get().map_err(StoreError::Pool)?;
            migrate(&mut conn)?;
        }
        Ok(store)
    }

    /// Runs `f` in a REPEATABLE READ, READ ONLY transaction: one snapshot, and no serialization
    /// failure can hit it.
    pub fn read<T, E>(
        &self,
        mut f: impl FnMut(&Db) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        let tx = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(StoreError::from)?;
        let db = PgDb::new(tx);
        let out = f(&db)?;
        db.tx.into_inner().commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` in a SERIALIZABLE transaction, again from the start when PostgreSQL reports
    /// that a concurrent transaction (maybe on another gateway) made it unserializable: the
    /// check-then-insert sequences of the core (join an existing key, one repository per GitHub
    /// key, the replay cache, submodule sync) then behave as under SQLite's single writer.
    /// SSI locks index pages, so writers on one hot repository conflict often; after a few lost
    /// races a run goes alone (see `OPTIMISTIC_RUNS`) rather than risk a 503.
    pub fn write<T, E>(
        &self,
        mut f: impl FnMut(&Db) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        for attempt in 0..=RETRIES {
            if attempt > 0 {
                ::metrics::counter!("keygate_store_retries_total").increment(1);
                backoff(attempt);
            }
            let alone = attempt >= OPTIMISTIC_RUNS;
            let mut conn = WriteLock {
                conn: self.pool.get().map_err(StoreError::from)?,
                held: false,
            };
            // Writers share the instance's write lock, so they run side by side; a run that lost
            // OPTIMISTIC_RUNS races takes it alone, before its transaction begins, so that its
            // snapshot follows every writer it waited for. With no writer beside it (readers are
            // READ ONLY, outside SSI) it cannot lose again: retries end, hot spots included.
            if alone {
                conn.conn
                    .execute(
                        "SELECT pg_advisory_lock($1, hashtext(current_schema()))",
                        &[&WRITE_LOCK],
                    )
                    .map_err(StoreError::from)?;
                conn.held = true;
            }
            let tx = conn
                .conn
                .build_transaction()
                .isolation_level(IsolationLevel::Serializable)
                .start()
                .map_err(StoreError::from)?;
            let db = PgDb::new(tx);
            if !alone
                && let Err(err) = db.exec(
                    "SELECT pg_advisory_xact_lock_shared($1, hashtext(current_schema()))",
                    &[&WRITE_LOCK],
                )
            {
                if db.lost_race.get() {
                    continue;
                }
                return Err(err.into());
            }
            let out = f(&db);
            // A statement that lost the race dooms the whole run, whatever `f` made of the error.
            if db.lost_race.get() {
                continue;
            }
            let value = out?;
            match db.tx.into_inner().commit() {
                Ok(()) => return Ok(value),
                Err(err) => match StoreError::from(err) {
                    StoreError::Busy => continue,
                    other => return Err(other.into()),
                },
            }
        }
        log::warn!("a write transaction lost {RETRIES} serialization races in a row");
        Err(StoreError::Busy.into())
    }
}

impl PgStore {
    /// Writes `snapshot` into this database, which must hold no data yet, in one transaction;
    /// ids are kept and each id sequence continues after the source's high-water mark.
    pub(crate) fn import(&self, snapshot: &Snapshot) -> Result<CopyReport> {
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction()?;
        let used: i64 = tx
            .query_one(
                "SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM namespaces)                  + (SELECT COUNT(*) FROM deploy_keys) + (SELECT COUNT(*) FROM access_keys)",
                &[],
            )?
            .get(0);
        if used > 0 {
            return Err(StoreError::Address(
                "the target database already holds data: db copy fills an empty one only".into(),
            ));
        }
        let mut report = Vec::new();
        for (table, rows) in TABLES.iter().zip(&snapshot.rows) {
            let names: Vec<&str> = table.cols.iter().map(|(name, _)| *name).collect();
            let slots: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            let stmt = tx.prepare(&format!(
                "INSERT INTO {} ({}) VALUES ({})",
                table.name,
                names.join(", "),
                slots.join(", ")
            ))?;
            for row in rows {
                let params: Vec<Box<dyn ToSql + Sync>> = table
                    .cols
                    .iter()
                    .zip(row)
                    .map(|((_, kind), value)| to_param(*kind, value))
                    .collect();
                let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
                tx.execute(&stmt, &refs)?;
            }
            if table.has_id_sequence {
                let copied_max = rows
                    .iter()
                    .filter_map(|r| match r[0] {
                        Value::Int(id) => Some(id),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0);
                let counter = snapshot
                    .high_water
                    .iter()
                    .find(|(name, _)| name == table.name)
                    .map_or(0, |(_, seq)| *seq);
                let next_after = copied_max.max(counter);
                if next_after > 0 {
                    tx.execute(
                        "SELECT setval(pg_get_serial_sequence($1, 'id'), $2)",
                        &[&table.name, &next_after],
                    )?;
                }
            }
            report.push((table.name, rows.len()));
        }
        tx.commit()?;
        Ok(CopyReport { tables: report })
    }
}

fn to_param(kind: Kind, value: &Value) -> Box<dyn ToSql + Sync> {
    match (kind, value) {
        (Kind::Int, Value::Int(v)) => Box::new(*v),
        (Kind::Int32, Value::Int(v)) => Box::new(*v as i32),
        (Kind::Bool, Value::Bool(v)) => Box::new(*v),
        (Kind::Text, Value::Text(v)) => Box::new(v.clone()),
        (Kind::Blob, Value::Blob(v)) => Box::new(v.clone()),
        (Kind::Int, _) => Box::new(None::<i64>),
        (Kind::Int32, _) => Box::new(None::<i32>),
        (Kind::Bool, _) => Box::new(None::<bool>),
        (Kind::Text, _) => Box::new(None::<String>),
        (Kind::Blob, _) => Box::new(None::<Vec<u8>>),
    }
}

/// A pooled connection that may hold the instance's write lock alone (a session lock, taken
/// before the transaction began); the lock is released however the run ends, panics included,
/// so no connection goes back to the pool holding it.
struct WriteLock {
    conn: r2d2::PooledConnection<PostgresConnectionManager<NoTls>>,
    held: bool,
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        if self.held {
            // Runs after the transaction ended (it borrowed `conn`, so it was dropped first).
            if let Err(err) = self.conn.batch_execute("SELECT pg_advisory_unlock_all()") {
                log::error!("could not release the write lock: {err}");
            }
        }
    }
}

/// Sleeps a random time that grows with the attempt, so racing gateways fall out of step.
fn backoff(attempt: u32) {
    let ceiling_us = 500u64 << attempt.min(7);
    let mut bytes = [0u8; 8];
    let jitter = match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes) % ceiling_us,
        Err(_) => ceiling_us / 2,
    };
    std::thread::sleep(Duration::from_micros(ceiling_us / 2 + jitter));
}

fn migrate(conn: &mut Client) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    let mut tx = conn.transaction()?;
    // Transaction-scoped: released by the commit, or by the rollback when this fails.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS keygate_schema (version BIGINT NOT NULL)")?;
    let found: i64 = match tx.query_opt("SELECT version FROM keygate_schema", &[])? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO keygate_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql)?;
        tx.execute(
            "UPDATE keygate_schema SET version = $1",
            &[&(index as i64 + 1)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// A connection inside a transaction opened by `PgStore::read` or `PgStore::write`.
pub struct PgDb<'a> {
    // The driver wants `&mut` for every statement; the contract hands out `&`.
    tx: RefCell<Transaction<'a>>,
    /// Set when a statement failed with a serialization failure or deadlock: the run is retried.
    lost_race: Cell<bool>,
    /// Statements prepared in this transaction, by their text. A statement given as text costs
    /// two round trips (parse, then execute); a transaction that runs one many times (an import
    /// chunk: three per key) pays the parse once.
    prepared: RefCell<std::collections::HashMap<String, postgres::Statement>>,
}

impl<'a> PgDb<'a> {
    fn new(tx: Transaction<'a>) -> PgDb<'a> {
        PgDb {
            tx: RefCell::new(tx),
            lost_race: Cell::new(false),
            prepared: RefCell::default(),
        }
    }

    fn statement(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(statement) = self.prepared.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .tx
            .borrow_mut()
            .prepare(sql)
            .map_err(|e| self.fail(e))?;
        self.prepared
            .borrow_mut()
            .insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    fn fail(&self, err: postgres::Error) -> StoreError {
        let err = StoreError::from(err);
        if matches!(err, StoreError::Busy) {
            self.lost_race.set(true);
        }
        err
    }

    fn rows(&self, sql: &str, params: Params) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        self.tx
            .borrow_mut()
            .query(&statement, params)
            .map_err(|e| self.fail(e))
    }

    fn opt(&self, sql: &str, params: Params) -> Result<Option<Row>> {
        let statement = self.statement(sql)?;
        self.tx
            .borrow_mut()
            .query_opt(&statement, params)
            .map_err(|e| self.fail(e))
    }

    fn one(&self, sql: &str, params: Params) -> Result<Row> {
        let statement = self.statement(sql)?;
        self.tx
            .borrow_mut()
            .query_one(&statement, params)
            .map_err(|e| self.fail(e))
    }

    fn exec(&self, sql: &str, params: Params) -> Result<u64> {
        let statement = self.statement(sql)?;
        self.tx
            .borrow_mut()
            .execute(&statement, params)
            .map_err(|e| self.fail(e))
    }

    fn batch(&self, sql: &str) -> Result<()> {
        self.tx
            .borrow_mut()
            .batch_execute(sql)
            .map_err(|e| self.fail(e))
    }
}

// Each statement lives once, as an inherent method in queries.rs; the contract forwards to it.
forward_queries!(PgDb {
    fn savepoint_begin(&self) -> Result<()> {
        self.batch("SAVEPOINT change")
    }
    fn savepoint_release(&self) -> Result<()> {
        self.batch("RELEASE SAVEPOINT change")
    }
    fn savepoint_rollback(&self) -> Result<()> {
        self.batch("ROLLBACK TO SAVEPOINT change; RELEASE SAVEPOINT change")
    }
    fn keys_by_sha256_many(&self, fingerprints: &[&str]) -> Result<Vec<DeployKey>> {
        PgDb::keys_by_sha256_many(self, fingerprints)
    }
    fn linked_key_ids(&self, repo_id: i64, key_ids: &[i64]) -> Result<Vec<i64>> {
        PgDb::linked_key_ids(self, repo_id, key_ids)
    }
    fn insert_keys(&self, new: &[NewKey]) -> Result<()> {
        PgDb::insert_keys(self, new)
    }
    fn insert_links(
        &self,
        repo_id: i64,
        key_ids: &[i64],
        can_push: bool,
        added_by: Option<i64>,
    ) -> Result<()> {
        PgDb::insert_links(self, repo_id, key_ids, can_push, added_by)
    }
    fn insert_audit_events(&self, events: Vec<AuditEvent>) -> Result<()> {
        PgDb::insert_audit_events(self, &events)
    }
});
