//! The SSH door's rules: which offered key may log in, and what a key may do to a repository.

use super::{Core, DeployKey, Repository, Result};
use crate::store::now_ms;

/// A clone storm must not become a write storm: a key's last use is written at most this often.
const LAST_USE_RESOLUTION_MS: i64 = 60 * 1000;

/// What a git command asks of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitAccess {
    /// `git-upload-pack` (clone, fetch) and `git-upload-archive`.
    Read,
    /// `git-receive-pack` (push).
    Push,
}

/// Why the door stays shut. The words users see are the adapter's to choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshDenial {
    /// The key was deleted since sshd accepted it.
    KeyMissing,
    KeyExpired,
    /// No such repository, or the key is not attached to it: the two look the same, so a key
    /// learns nothing about repositories it cannot open.
    NotFound,
    /// A push with a key attached read-only.
    ReadOnly,
}

impl SshDenial {
    pub fn as_str(self) -> &'static str {
        match self {
            SshDenial::KeyMissing => "key_missing",
            SshDenial::KeyExpired => "key_expired",
            SshDenial::NotFound => "not_found",
            SshDenial::ReadOnly => "read_only",
        }
    }
}

/// An allowed git command: the repository as stored, whatever case the client wrote.
#[derive(Debug, Clone)]
pub struct SshGrant {
    pub key_id: i64,
    pub repository: Repository,
    pub can_push: bool,
}

fn expired(key: &DeployKey, now: i64) -> bool {
    key.expires_at.is_some_and(|at| at <= now)
}

impl Core {
    /// The deploy key sshd was offered, by SHA256 fingerprint, if it may log in at all: it
    /// exists, has not expired and is attached to some repository.
    pub fn ssh_login_key(&self, fingerprint_sha256: &str) -> Result<Option<DeployKey>> {
        let key = self
            .store
            .read(|db| db.linked_key_by_sha256(fingerprint_sha256))?;
        Ok(key.filter(|k| !expired(k, now_ms())))
    }

    /// Whether key `key_id` may run a git command of kind `access` on the repository at `path`.
    /// Asked afresh on every connection, so a revocation or an expiry takes effect at the next one.
    /// An allowed use is recorded as the key's last use.
    pub fn ssh_access(
        &self,
        key_id: i64,
        path: &str,
        access: GitAccess,
    ) -> Result<std::result::Result<SshGrant, SshDenial>> {
        let now = now_ms();
        let verdict = self.store.read(|db| {
            let Some(key) = db.key_by_id(key_id)? else {
                return Ok::<_, super::Error>(Err(SshDenial::KeyMissing));
            };
            if expired(&key, now) {
                return Ok(Err(SshDenial::KeyExpired));
            }
            let Some(repository) = db.repo_by_path(path)? else {
                return Ok(Err(SshDenial::NotFound));
            };
            let Some(link) = db.linked_key(repository.id, key_id)? else {
                return Ok(Err(SshDenial::NotFound));
            };
            if access == GitAccess::Push && !link.can_push {
                return Ok(Err(SshDenial::ReadOnly));
            }
            let stale = key
                .last_used_at
                .is_none_or(|at| at <= now - LAST_USE_RESOLUTION_MS);
            Ok(Ok((
                SshGrant {
                    key_id,
                    repository,
                    can_push: link.can_push,
                },
                stale,
            )))
        })?;
        let (grant, stale) = match verdict {
            Ok(found) => found,
            Err(denial) => return Ok(Err(denial)),
        };
        if stale {
            // The conditional UPDATE makes racing connections write once; a busy store must not
            // shut the door on a key that may use it, so the record is best effort.
            let touched = self
                .store
                .write(|db| db.touch_key_used(key_id, now, now - LAST_USE_RESOLUTION_MS));
            if let Err(err) = touched {
                log::warn!("key {key_id}: last use not recorded: {err}");
            }
        }
        Ok(Ok(grant))
    }
}
