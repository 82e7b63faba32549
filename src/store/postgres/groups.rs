//! PostgreSQL SQL for access keys, used signatures, submodules, link labels, and namespaces: the list, a user's roles in a subtree, and their keys.

use super::queries::{NAMESPACE_COLS, namespace_at, user_at};
use super::{PgDb, Result};
use crate::store::{Namespace, User, now_ms};

/// The namespace `$1` and every namespace below it, as a CTE named `tree(id)`.
const SUBTREE: &str = "WITH RECURSIVE tree(id) AS (SELECT $1::bigint \
     UNION ALL SELECT n.id FROM namespaces n JOIN tree t ON n.parent_id = t.id)";

/// Links on repositories inside `tree` that user `$2` maintains (`$2` NULL: every repository).
const GROUP_LINKS: &str = "FROM key_links l JOIN repositories r ON r.id = l.repo_id \
     WHERE r.namespace_id IN (SELECT id FROM tree) \
     AND ($2::bigint IS NULL OR EXISTS (SELECT 1 FROM memberships m WHERE m.repo_id = r.id \
          AND m.user_id = $2 AND m.role = 'maintainer'))";

impl PgDb<'_> {
    // ---- signatures already used ----

    pub(super) fn claim_signature(&self, signature: &str, expires_at: i64) -> Result<bool> {
        self.exec(
            "DELETE FROM used_signatures WHERE expires_at < $1",
            &[&now_ms()],
        )?;
        Ok(self.exec(
            "INSERT INTO used_signatures (signature, expires_at) VALUES ($1, $2) \
             ON CONFLICT (signature) DO NOTHING",
            &[&signature, &expires_at],
        )? == 1)
    }

    // ---- access keys ----

    pub(super) fn insert_access_key(
        &self,
        user_id: i64,
        access_key: &str,
        secret_key: &str,
    ) -> Result<i64> {
        Ok(self
            .one(
                "INSERT INTO access_keys (user_id, access_key, secret_key, created_at) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&user_id, &access_key, &secret_key, &now_ms()],
            )?
            .get(0))
    }

    pub(super) fn access_key_owner(&self, access_key: &str) -> Result<Option<(User, String)>> {
        Ok(self
            .opt(
                "SELECT u.id, u.username, u.admin, u.created_at, a.secret_key \
                 FROM access_keys a JOIN users u ON u.id = a.user_id WHERE a.access_key = $1",
                &[&access_key],
            )?
            .map(|r| (user_at(&r, 0), r.get(4))))
    }

    pub(super) fn access_keys_of(&self, user_id: i64) -> Result<Vec<String>> {
        Ok(self
            .rows(
                "SELECT access_key FROM access_keys WHERE user_id = $1 ORDER BY id",
                &[&user_id],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    pub(super) fn delete_access_key(&self, access_key: &str) -> Result<bool> {
        Ok(self.exec(
            "DELETE FROM access_keys WHERE access_key = $1",
            &[&access_key],
        )? > 0)
    }

    // ---- submodules ----

    pub(super) fn insert_submodule(&self, parent_id: i64, child_id: i64) -> Result<()> {
        self.exec(
            "INSERT INTO submodules (parent_id, child_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (parent_id, child_id) DO NOTHING",
            &[&parent_id, &child_id, &now_ms()],
        )?;
        Ok(())
    }

    pub(super) fn delete_submodule(&self, parent_id: i64, child_id: i64) -> Result<bool> {
        Ok(self.exec(
            "DELETE FROM submodules WHERE parent_id = $1 AND child_id = $2",
            &[&parent_id, &child_id],
        )? > 0)
    }

    pub(super) fn submodule_ids(&self, parent_id: i64) -> Result<Vec<i64>> {
        Ok(self
            .rows(
                "SELECT child_id FROM submodules WHERE parent_id = $1 ORDER BY child_id",
                &[&parent_id],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    // ---- link labels ----

    pub(super) fn set_link_application(
        &self,
        repo_id: i64,
        key_id: i64,
        application: &str,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO key_link_applications (repo_id, key_id, application) VALUES ($1, $2, $3) \
             ON CONFLICT (repo_id, key_id) DO UPDATE SET application = excluded.application",
            &[&repo_id, &key_id, &application],
        )?;
        Ok(())
    }

    pub(super) fn link_application(&self, repo_id: i64, key_id: i64) -> Result<Option<String>> {
        Ok(self
            .opt(
                "SELECT application FROM key_link_applications WHERE repo_id = $1 AND key_id = $2",
                &[&repo_id, &key_id],
            )?
            .map(|r| r.get(0)))
    }

    // ---- namespaces ----

    /// Every namespace by path, ordered as SQLite's NOCASE column orders them.
    pub(super) fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        Ok(self
            .rows(
                &format!(
                    "SELECT {NAMESPACE_COLS} FROM namespaces \
                     ORDER BY lower(full_path) COLLATE \"C\", full_path COLLATE \"C\""
                ),
                &[],
            )?
            .iter()
            .map(|r| namespace_at(r, 0))
            .collect())
    }

    pub(super) fn namespace_roles(&self, namespace_id: i64, user_id: i64) -> Result<(bool, bool)> {
        let row = self.one(
            &format!(
                "{SUBTREE} SELECT COUNT(*) > 0, COALESCE(bool_or(m.role = 'maintainer'), false) \
                 FROM memberships m JOIN repositories r ON r.id = m.repo_id \
                 WHERE m.user_id = $2 AND r.namespace_id IN (SELECT id FROM tree)"
            ),
            &[&namespace_id, &user_id],
        )?;
        Ok((row.get(0), row.get(1)))
    }

    pub(super) fn namespace_key_ids(
        &self,
        namespace_id: i64,
        viewer: Option<i64>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<i64>, u64)> {
        let total: i64 = self
            .one(
                &format!("{SUBTREE} SELECT COUNT(DISTINCT l.key_id) {GROUP_LINKS}"),
                &[&namespace_id, &viewer],
            )?
            .get(0);
        let ids = self
            .rows(
                &format!(
                    "{SUBTREE} SELECT DISTINCT l.key_id {GROUP_LINKS} ORDER BY l.key_id LIMIT $3 OFFSET $4"
                ),
                &[&namespace_id, &viewer, &i64::from(limit), &(offset as i64)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok((ids, total as u64))
    }

    pub(super) fn namespace_has_key(
        &self,
        namespace_id: i64,
        viewer: Option<i64>,
        key_id: i64,
    ) -> Result<bool> {
        Ok(self
            .one(
                &format!("{SUBTREE} SELECT EXISTS (SELECT 1 {GROUP_LINKS} AND l.key_id = $3)"),
                &[&namespace_id, &viewer, &key_id],
            )?
            .get(0))
    }
}
