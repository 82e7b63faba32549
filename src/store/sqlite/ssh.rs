//! SQL for the SSH door: the key sshd is offered, and when a key was last used.

use rusqlite::OptionalExtension;

use super::SqliteDb;
use crate::store::{DeployKey, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

impl SqliteDb<'_> {
    /// The key with this SHA256 fingerprint, if it is attached to at least one repository: one
    /// lookup on the fingerprint's unique index and the key's row, which counts its links.
    pub(super) fn linked_key_by_sha256(&self, fingerprint: &str) -> Result<Option<DeployKey>> {
        Ok(self
            .conn()
            .prepare_cached(concat!(
                "SELECT ",
                super::queries::key_cols!(),
                " FROM deploy_keys k WHERE k.fingerprint_sha256 = ?1 AND k.links > 0"
            ))?
            .query_row([fingerprint], |r| super::queries::key_at(r, 0))
            .optional()?)
    }

    pub(super) fn login_keys(
        &self,
        repo_id: Option<i64>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DeployKey>> {
        let cols = super::queries::KEY_COLS;
        let key = |r: &rusqlite::Row| super::queries::key_at(r, 0);
        let rows = match repo_id {
            // The links' UNIQUE (repo_id, key_id) index holds a repository's keys in id order.
            Some(repo_id) => self
                .conn()
                .prepare_cached(&format!(
                    "SELECT {cols} FROM key_links l JOIN deploy_keys k ON k.id = l.key_id \
                     WHERE l.repo_id = ?1 AND l.key_id > ?2 ORDER BY l.key_id LIMIT ?3"
                ))?
                .query_map(rusqlite::params![repo_id, after, limit], key)?
                .collect::<rusqlite::Result<_>>()?,
            None => self
                .conn()
                .prepare_cached(&format!(
                    "SELECT {cols} FROM deploy_keys k WHERE k.id > ?1 AND k.links > 0 \
                     ORDER BY k.id LIMIT ?2"
                ))?
                .query_map(rusqlite::params![after, limit], key)?
                .collect::<rusqlite::Result<_>>()?,
        };
        Ok(rows)
    }

    /// Sets a key's last use to `now` unless it was set after `fresh_after`; true if it changed.
    pub(super) fn touch_key_used(&self, key_id: i64, now: i64, fresh_after: i64) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached(
                "UPDATE deploy_keys SET last_used_at = ?2 \
                 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at <= ?3)",
            )?
            .execute(rusqlite::params![key_id, now, fresh_after])?
            == 1)
    }
}
