//! PostgreSQL SQL for the SSH door: the key sshd is offered, and when a key was last used.

use super::queries::{KEY_COLS, key_at};
use super::{PgDb, Result};
use crate::store::DeployKey;

impl PgDb<'_> {
    pub(super) fn linked_key_by_sha256(&self, fingerprint: &str) -> Result<Option<DeployKey>> {
        Ok(self
            .opt(
                &format!(
                    "SELECT {KEY_COLS} FROM deploy_keys k WHERE k.fingerprint_sha256 = $1 \
                     AND EXISTS (SELECT 1 FROM key_links l WHERE l.key_id = k.id)"
                ),
                &[&fingerprint],
            )?
            .map(|r| key_at(&r, 0)))
    }

    pub(super) fn login_keys(
        &self,
        repo_id: Option<i64>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DeployKey>> {
        let limit = i64::from(limit);
        let rows = match repo_id {
            Some(repo_id) => self.rows(
                &format!(
                    "SELECT {KEY_COLS} FROM key_links l JOIN deploy_keys k ON k.id = l.key_id \
                     WHERE l.repo_id = $1 AND l.key_id > $2 ORDER BY l.key_id LIMIT $3"
                ),
                &[&repo_id, &after, &limit],
            )?,
            None => self.rows(
                &format!(
                    "SELECT {KEY_COLS} FROM deploy_keys k WHERE k.id > $1 \
                     AND EXISTS (SELECT 1 FROM key_links l WHERE l.key_id = k.id) \
                     ORDER BY k.id LIMIT $2"
                ),
                &[&after, &limit],
            )?,
        };
        Ok(rows.iter().map(|r| key_at(r, 0)).collect())
    }

    pub(super) fn touch_key_used(&self, key_id: i64, now: i64, fresh_after: i64) -> Result<bool> {
        Ok(self.exec(
            "UPDATE deploy_keys SET last_used_at = $2 \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)",
            &[&key_id, &now, &fresh_after],
        )? == 1)
    }
}
