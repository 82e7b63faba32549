//! SQL for access keys, submodules, link labels and namespace-wide key listings.

use rusqlite::{OptionalExtension, params};

use super::SqliteDb;
use crate::store::{Namespace, StoreError, User, now_ms};

type Result<T> = std::result::Result<T, StoreError>;

/// The namespace `?1` and every namespace below it, as a CTE named `tree(id)`.
const SUBTREE: &str = "WITH RECURSIVE tree(id) AS (SELECT ?1 \
     UNION ALL SELECT n.id FROM namespaces n JOIN tree t ON n.parent_id = t.id)";

/// Links on repositories inside `tree` that user `?2` maintains (`?2` NULL: every repository).
const GROUP_LINKS: &str = "FROM key_links l JOIN repositories r ON r.id = l.repo_id \
     WHERE r.namespace_id IN (SELECT id FROM tree) \
     AND (?2 IS NULL OR EXISTS (SELECT 1 FROM memberships m WHERE m.repo_id = r.id \
          AND m.user_id = ?2 AND m.role = 'maintainer'))";

impl SqliteDb<'_> {
    // ---- signatures already used ----

    /// Records a signature as used until `expires_at`; false if it was used before. Forgets
    /// signatures that have expired, which can no longer verify anyway.
    pub(super) fn claim_signature(&self, signature: &str, expires_at: i64) -> Result<bool> {
        self.conn()
            .prepare_cached("DELETE FROM used_signatures WHERE expires_at < ?1")?
            .execute([now_ms()])?;
        Ok(self
            .conn()
            .prepare_cached(
                "INSERT INTO used_signatures (signature, expires_at) VALUES (?1, ?2) \
                 ON CONFLICT (signature) DO NOTHING",
            )?
            .execute(params![signature, expires_at])?
            == 1)
    }

    // ---- access keys ----

    pub(super) fn insert_access_key(
        &self,
        user_id: i64,
        access_key: &str,
        secret_key: &str,
    ) -> Result<i64> {
        self.conn()
            .prepare_cached(
                "INSERT INTO access_keys (user_id, access_key, secret_key, created_at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![user_id, access_key, secret_key, now_ms()])?;
        Ok(self.conn().last_insert_rowid())
    }

    /// The user an access key belongs to, and its secret.
    pub(super) fn access_key_owner(&self, access_key: &str) -> Result<Option<(User, String)>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT u.id, u.username, u.admin, u.created_at, a.secret_key \
                 FROM access_keys a JOIN users u ON u.id = a.user_id WHERE a.access_key = ?1",
            )?
            .query_row([access_key], |row| {
                Ok((
                    User {
                        id: row.get(0)?,
                        username: row.get(1)?,
                        admin: row.get(2)?,
                        created_at: row.get(3)?,
                    },
                    row.get(4)?,
                ))
            })
            .optional()?)
    }

    /// A user's access keys (never the secrets), oldest first.
    pub(super) fn access_keys_of(&self, user_id: i64) -> Result<Vec<String>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT access_key FROM access_keys WHERE user_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([user_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn delete_access_key(&self, access_key: &str) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM access_keys WHERE access_key = ?1")?
            .execute([access_key])?
            > 0)
    }

    // ---- submodules ----

    /// Declares `child` a submodule of `parent`; declaring it twice changes nothing.
    pub(super) fn insert_submodule(&self, parent_id: i64, child_id: i64) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO submodules (parent_id, child_id, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (parent_id, child_id) DO NOTHING",
            )?
            .execute(params![parent_id, child_id, now_ms()])?;
        Ok(())
    }

    pub(super) fn delete_submodule(&self, parent_id: i64, child_id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM submodules WHERE parent_id = ?1 AND child_id = ?2")?
            .execute([parent_id, child_id])?
            > 0)
    }

    /// The ids of a repository's submodules, in id order.
    pub(super) fn submodule_ids(&self, parent_id: i64) -> Result<Vec<i64>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT child_id FROM submodules WHERE parent_id = ?1 ORDER BY child_id",
        )?;
        let rows = stmt.query_map([parent_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ---- link labels ----

    pub(super) fn set_link_application(
        &self,
        repo_id: i64,
        key_id: i64,
        application: &str,
    ) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO key_link_applications (repo_id, key_id, application) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (repo_id, key_id) DO UPDATE SET application = excluded.application",
            )?
            .execute(params![repo_id, key_id, application])?;
        Ok(())
    }

    pub(super) fn link_application(&self, repo_id: i64, key_id: i64) -> Result<Option<String>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT application FROM key_link_applications WHERE repo_id = ?1 AND key_id = ?2",
            )?
            .query_row([repo_id, key_id], |r| r.get(0))
            .optional()?)
    }

    // ---- namespaces ----

    /// Every namespace, by path.
    pub(super) fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, parent_id, name, full_path, uuid, created_at FROM namespaces ORDER BY full_path",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Namespace {
                id: r.get(0)?,
                parent_id: r.get(1)?,
                name: r.get(2)?,
                full_path: r.get(3)?,
                uuid: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether the user holds any role, and whether the maintainer role, on a repository in the
    /// namespace or below it.
    pub(super) fn namespace_roles(&self, namespace_id: i64, user_id: i64) -> Result<(bool, bool)> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "{SUBTREE} SELECT COUNT(*) > 0, COALESCE(SUM(m.role = 'maintainer'), 0) > 0 \
                 FROM memberships m JOIN repositories r ON r.id = m.repo_id \
                 WHERE m.user_id = ?2 AND r.namespace_id IN (SELECT id FROM tree)"
            ))?
            .query_row([namespace_id, user_id], |r| Ok((r.get(0)?, r.get(1)?)))?)
    }

    /// One page of the distinct keys on repositories in the namespace or below it that `viewer`
    /// maintains (`None`: all of them), by key id, and how many there are in all.
    pub(super) fn namespace_key_ids(
        &self,
        namespace_id: i64,
        viewer: Option<i64>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<i64>, u64)> {
        let total: i64 = self
            .conn()
            .prepare_cached(&format!(
                "{SUBTREE} SELECT COUNT(DISTINCT l.key_id) {GROUP_LINKS}"
            ))?
            .query_row(params![namespace_id, viewer], |r| r.get(0))?;
        let mut stmt = self.conn().prepare_cached(&format!(
            "{SUBTREE} SELECT DISTINCT l.key_id {GROUP_LINKS} ORDER BY l.key_id LIMIT ?3 + 0 OFFSET ?4 + 0"
        ))?;
        let rows = stmt.query_map(params![namespace_id, viewer, limit, offset as i64], |r| {
            r.get(0)
        })?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, total as u64))
    }

    /// Whether the key is attached to a repository in the namespace or below it that `viewer`
    /// maintains (`None`: any repository).
    pub(super) fn namespace_has_key(
        &self,
        namespace_id: i64,
        viewer: Option<i64>,
        key_id: i64,
    ) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "{SUBTREE} SELECT EXISTS (SELECT 1 {GROUP_LINKS} AND l.key_id = ?3)"
            ))?
            .query_row(params![namespace_id, viewer, key_id], |r| r.get(0))?)
    }
}
