//! The SQLite backend: the connection pool, migrations, transactions and every SQLite statement.

mod groups;
mod queries;
mod ssh;

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use super::copy::{Kind, Snapshot, TABLES, Value, parents_first};
use super::{Db, Queries, StoreError};
use super::{
    DeployKey, KeyLink, LinkedKey, Namespace, NewKey, Repository, Role, Scope, Token, User,
};

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_codearts.sql"),
    include_str!("migrations/0003_used_signatures.sql"),
    include_str!("migrations/0004_link_updated_at.sql"),
];

/// How long a writer waits for another writer before the request is answered as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_SIZE: u32 = 8;

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

/// A pool of connections to one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: r2d2::Pool<SqliteConnectionManager>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        // Before SQLite touches anything: it gives the -wal and -shm files the database file's mode.
        create_private(path)?;
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
            // A request that cannot get a connection in time is answered "busy" (503), like one
            // that cannot get the write lock.
            .connection_timeout(BUSY_TIMEOUT)
            .build(manager)
            .map_err(StoreError::Pool)?;
        let store = SqliteStore { pool };
        {
            let mut conn = store.pool.get().map_err(StoreError::Pool)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            migrate(&mut conn)?;
        }
        Ok(store)
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

    /// Runs `f` on a pooled connection in a DEFERRED transaction, so all its statements see one snapshot.
    pub fn read<T, E>(
        &self,
        f: impl FnOnce(&Db) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let out = f(&SqliteDb { conn: &tx })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` in one IMMEDIATE transaction: it either commits whole (durably) or not at all.
    pub fn write<T, E>(
        &self,
        f: impl FnOnce(&Db) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        // IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of
        // failing with SQLITE_BUSY when a read transaction tries to upgrade.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&SqliteDb { conn: &tx })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }
}

/// A connection inside a transaction opened by `SqliteStore::read` or `SqliteStore::write`.
pub struct SqliteDb<'a> {
    conn: &'a Transaction<'a>,
}

// Each statement lives once, as an inherent method in queries.rs, groups.rs or ssh.rs; the
// contract forwards to it (inlined, so the SQLite path costs what it did before the contract).
impl Queries for SqliteDb<'_> {
    fn savepoint_begin(&self) -> Result<()> {
        Ok(self.conn.execute_batch("SAVEPOINT change")?)
    }
    fn savepoint_release(&self) -> Result<()> {
        Ok(self.conn.execute_batch("RELEASE change")?)
    }
    fn savepoint_rollback(&self) -> Result<()> {
        Ok(self
            .conn
            .execute_batch("ROLLBACK TO change; RELEASE change")?)
    }
    fn insert_user(&self, username: &str, admin: bool) -> Result<i64> {
        SqliteDb::insert_user(self, username, admin)
    }
    fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        SqliteDb::user_by_name(self, username)
    }
    fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        SqliteDb::user_by_id(self, id)
    }
    fn users_page(&self, username: Option<&str>, offset: u64, limit: u32) -> Result<Vec<User>> {
        SqliteDb::users_page(self, username, offset, limit)
    }
    fn count_users(&self, username: Option<&str>) -> Result<u64> {
        SqliteDb::count_users(self, username)
    }
    fn list_users(&self) -> Result<Vec<User>> {
        SqliteDb::list_users(self)
    }
    fn delete_user(&self, id: i64) -> Result<bool> {
        SqliteDb::delete_user(self, id)
    }
    fn insert_token(
        &self,
        user_id: i64,
        hash: &[u8],
        scope: Scope,
        expires_at: Option<i64>,
    ) -> Result<i64> {
        SqliteDb::insert_token(self, user_id, hash, scope, expires_at)
    }
    fn token_by_hash(&self, hash: &[u8]) -> Result<Option<(Token, User)>> {
        SqliteDb::token_by_hash(self, hash)
    }
    fn list_tokens(&self, user_id: i64) -> Result<Vec<Token>> {
        SqliteDb::list_tokens(self, user_id)
    }
    fn delete_token(&self, id: i64) -> Result<bool> {
        SqliteDb::delete_token(self, id)
    }
    fn namespace_by_path(&self, full_path: &str) -> Result<Option<Namespace>> {
        SqliteDb::namespace_by_path(self, full_path)
    }
    fn namespace_by_id(&self, id: i64) -> Result<Option<Namespace>> {
        SqliteDb::namespace_by_id(self, id)
    }
    fn namespace_by_uuid(&self, uuid: &str) -> Result<Option<Namespace>> {
        SqliteDb::namespace_by_uuid(self, uuid)
    }
    fn insert_namespace(
        &self,
        parent_id: Option<i64>,
        name: &str,
        full_path: &str,
        uuid: &str,
    ) -> Result<i64> {
        SqliteDb::insert_namespace(self, parent_id, name, full_path, uuid)
    }
    fn insert_repo(
        &self,
        id: Option<i64>,
        namespace_id: i64,
        name: &str,
        full_path: &str,
    ) -> Result<i64> {
        SqliteDb::insert_repo(self, id, namespace_id, name, full_path)
    }
    fn repo_by_id(&self, id: i64) -> Result<Option<Repository>> {
        SqliteDb::repo_by_id(self, id)
    }
    fn repo_by_path(&self, full_path: &str) -> Result<Option<Repository>> {
        SqliteDb::repo_by_path(self, full_path)
    }
    fn list_repos(&self) -> Result<Vec<Repository>> {
        SqliteDb::list_repos(self)
    }
    fn delete_repo(&self, id: i64) -> Result<bool> {
        SqliteDb::delete_repo(self, id)
    }
    fn set_role(&self, repo_id: i64, user_id: i64, role: Role) -> Result<()> {
        SqliteDb::set_role(self, repo_id, user_id, role)
    }
    fn delete_role(&self, repo_id: i64, user_id: i64) -> Result<bool> {
        SqliteDb::delete_role(self, repo_id, user_id)
    }
    fn role_of(&self, repo_id: i64, user_id: i64) -> Result<Option<Role>> {
        SqliteDb::role_of(self, repo_id, user_id)
    }
    fn key_by_id(&self, id: i64) -> Result<Option<DeployKey>> {
        SqliteDb::key_by_id(self, id)
    }
    fn key_by_sha256(&self, fingerprint: &str) -> Result<Option<DeployKey>> {
        SqliteDb::key_by_sha256(self, fingerprint)
    }
    fn key_by_md5(&self, fingerprint: &str) -> Result<Option<DeployKey>> {
        SqliteDb::key_by_md5(self, fingerprint)
    }
    fn insert_key(&self, new: &NewKey) -> Result<i64> {
        SqliteDb::insert_key(self, new)
    }
    fn update_key_title(&self, key_id: i64, title: &str) -> Result<()> {
        SqliteDb::update_key_title(self, key_id, title)
    }
    fn delete_key_if_orphaned(&self, key_id: i64) -> Result<bool> {
        SqliteDb::delete_key_if_orphaned(self, key_id)
    }
    fn insert_link(
        &self,
        repo_id: i64,
        key_id: i64,
        can_push: bool,
        added_by: Option<i64>,
    ) -> Result<()> {
        SqliteDb::insert_link(self, repo_id, key_id, can_push, added_by)
    }
    fn set_can_push(&self, repo_id: i64, key_id: i64, can_push: bool) -> Result<()> {
        SqliteDb::set_can_push(self, repo_id, key_id, can_push)
    }
    fn delete_link(&self, repo_id: i64, key_id: i64) -> Result<bool> {
        SqliteDb::delete_link(self, repo_id, key_id)
    }
    fn link_count(&self, key_id: i64) -> Result<i64> {
        SqliteDb::link_count(self, key_id)
    }
    fn linked_key(&self, repo_id: i64, key_id: i64) -> Result<Option<LinkedKey>> {
        SqliteDb::linked_key(self, repo_id, key_id)
    }
    fn linked_keys(&self, repo_id: i64, offset: u64, limit: u32) -> Result<Vec<LinkedKey>> {
        SqliteDb::linked_keys(self, repo_id, offset, limit)
    }
    fn count_linked_keys(&self, repo_id: i64) -> Result<u64> {
        SqliteDb::count_linked_keys(self, repo_id)
    }
    fn links_of_key(&self, key_id: i64) -> Result<Vec<KeyLink>> {
        SqliteDb::links_of_key(self, key_id)
    }
    fn list_keys(&self, public_only: bool, offset: u64, limit: u32) -> Result<Vec<DeployKey>> {
        SqliteDb::list_keys(self, public_only, offset, limit)
    }
    fn count_keys(&self, public_only: bool) -> Result<u64> {
        SqliteDb::count_keys(self, public_only)
    }
    fn key_accessible(&self, key_id: i64, user_id: i64) -> Result<bool> {
        SqliteDb::key_accessible(self, key_id, user_id)
    }
    fn keys_in_common_repos(
        &self,
        target: i64,
        viewer: Option<i64>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<DeployKey>, u64)> {
        SqliteDb::keys_in_common_repos(self, target, viewer, offset, limit)
    }
    fn share_maintained_repo(&self, target: i64, viewer: i64) -> Result<bool> {
        SqliteDb::share_maintained_repo(self, target, viewer)
    }
    fn claim_signature(&self, signature: &str, expires_at: i64) -> Result<bool> {
        SqliteDb::claim_signature(self, signature, expires_at)
    }
    fn insert_access_key(&self, user_id: i64, access_key: &str, secret_key: &str) -> Result<i64> {
        SqliteDb::insert_access_key(self, user_id, access_key, secret_key)
    }
    fn access_key_owner(&self, access_key: &str) -> Result<Option<(User, String)>> {
        SqliteDb::access_key_owner(self, access_key)
    }
    fn access_keys_of(&self, user_id: i64) -> Result<Vec<String>> {
        SqliteDb::access_keys_of(self, user_id)
    }
    fn delete_access_key(&self, access_key: &str) -> Result<bool> {
        SqliteDb::delete_access_key(self, access_key)
    }
    fn insert_submodule(&self, parent_id: i64, child_id: i64) -> Result<()> {
        SqliteDb::insert_submodule(self, parent_id, child_id)
    }
    fn delete_submodule(&self, parent_id: i64, child_id: i64) -> Result<bool> {
        SqliteDb::delete_submodule(self, parent_id, child_id)
    }
    fn submodule_ids(&self, parent_id: i64) -> Result<Vec<i64>> {
        SqliteDb::submodule_ids(self, parent_id)
    }
    fn set_link_application(&self, repo_id: i64, key_id: i64, application: &str) -> Result<()> {
        SqliteDb::set_link_application(self, repo_id, key_id, application)
    }
    fn link_application(&self, repo_id: i64, key_id: i64) -> Result<Option<String>> {
        SqliteDb::link_application(self, repo_id, key_id)
    }
    fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        SqliteDb::list_namespaces(self)
    }
    fn namespace_roles(&self, namespace_id: i64, user_id: i64) -> Result<(bool, bool)> {
        SqliteDb::namespace_roles(self, namespace_id, user_id)
    }
    fn namespace_key_ids(
        &self,
        namespace_id: i64,
        viewer: Option<i64>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<i64>, u64)> {
        SqliteDb::namespace_key_ids(self, namespace_id, viewer, offset, limit)
    }
    fn namespace_has_key(
        &self,
        namespace_id: i64,
        viewer: Option<i64>,
        key_id: i64,
    ) -> Result<bool> {
        SqliteDb::namespace_has_key(self, namespace_id, viewer, key_id)
    }
    fn linked_key_by_sha256(&self, fingerprint: &str) -> Result<Option<DeployKey>> {
        SqliteDb::linked_key_by_sha256(self, fingerprint)
    }
    fn touch_key_used(&self, key_id: i64, now: i64, fresh_after: i64) -> Result<bool> {
        SqliteDb::touch_key_used(self, key_id, now, fresh_after)
    }
}

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

fn migrate(conn: &mut Connection) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
