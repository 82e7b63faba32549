//! Keys seen across the instance rather than through one repository: the admin lists, instance-wide keys, the lookup by fingerprint, and a user's keys.

use serde_json::json;

use super::audit::{Actor, Change, record};
use super::{
    Core, Denied, DeployKey, Error, KeyLink, KeyRange, KeySubmission, Missing, Paged, Principal,
    Repository, Result, User, UserRef, Window, find_user, new_key, require_admin, require_write,
};
use crate::store::Db;

/// An instance key with every repository it is attached to (`can_push` beside each).
pub type KeyWithRepos = (DeployKey, Vec<(Repository, bool)>);

impl Core {
    /// Every key on the instance (admins only), each with the repositories it is attached to;
    /// the total is counted no further than `count_to`.
    pub fn all_keys(
        &self,
        who: &Principal,
        public_only: bool,
        window: Window,
        count_to: u64,
    ) -> Result<Paged<KeyWithRepos>> {
        require_admin(who)?;
        self.store.read(|db| {
            let range = KeyRange {
                public_only,
                ..KeyRange::default()
            };
            let keys = db.list_keys(range, window.offset, window.limit)?;
            Ok(Paged {
                items: with_repos(db, keys)?,
                total: db.count_keys(public_only, count_to)?,
            })
        })
    }

    /// The first `limit` keys of `range` (admins only), each with its repositories: a keyset page,
    /// as costly at the millionth key as at the first, and never counted.
    pub fn keys_in_range(
        &self,
        who: &Principal,
        range: KeyRange,
        limit: u32,
    ) -> Result<Vec<KeyWithRepos>> {
        require_admin(who)?;
        self.store
            .read(|db| with_repos(db, db.list_keys(range, 0, limit)?))
    }

    /// Creates an instance-wide (public) key attached to no repository (admins only).
    pub fn create_instance_key(
        &self,
        who: &Principal,
        submission: &KeySubmission,
    ) -> Result<DeployKey> {
        require_write(who)?;
        require_admin(who)?;
        let parsed = self.check_submission(submission)?;
        let text = parsed.text();
        self.write(|db| {
            let id = db.insert_key(&new_key(
                &parsed,
                &text,
                submission,
                true,
                Some(who.user.id),
            ))?;
            let key = db
                .key_by_id(id)?
                .ok_or_else(|| Error::Internal("key vanished inside its transaction".into()))?;
            record(
                db,
                Actor::User(who),
                Change::on_key(
                    "deploy_key.create",
                    None,
                    &key,
                    json!({"after": {
                        "title": key.title,
                        "public": true,
                        "expires_at": key.expires_at,
                    }}),
                ),
            )?;
            Ok(key)
        })
    }

    /// A key by its MD5 (`aa:bb:…`) or SHA256 (`SHA256:…`) fingerprint, with its owner and links (admins only).
    pub fn key_by_fingerprint(
        &self,
        who: &Principal,
        fingerprint: &str,
    ) -> Result<(DeployKey, Option<User>, Vec<KeyLink>)> {
        require_admin(who)?;
        self.store.read(|db| {
            let key = if fingerprint.starts_with("SHA256:") {
                db.key_by_sha256(fingerprint)?
            } else {
                db.key_by_md5(&fingerprint.trim_start_matches("MD5:").to_ascii_lowercase())?
            }
            .ok_or(Error::NotFound(Missing::Key))?;
            let owner = match key.owner_id {
                Some(id) => db.user_by_id(id)?,
                None => None,
            };
            let links = db.links_of_key(key.id)?;
            Ok((key, owner, links))
        })
    }

    /// Keys on repositories that both the caller and `target` maintain (all of `target`'s, for an admin).
    pub fn keys_of_user(
        &self,
        who: &Principal,
        target: &UserRef,
        window: Window,
    ) -> Result<Paged<DeployKey>> {
        self.store.read(|db| {
            let user = find_user(db, target)?;
            let viewer = (!who.user.admin).then_some(who.user.id);
            if let Some(viewer) = viewer
                && !db.share_maintained_repo(user.id, viewer)?
            {
                return Err(Error::Forbidden(Denied::NoCommonRepository));
            }
            let (items, total) =
                db.keys_in_common_repos(user.id, viewer, window.offset, window.limit)?;
            Ok(Paged { items, total })
        })
    }
}

/// Each key with the repositories it is attached to: one probe of the links' `key_id` index a key.
fn with_repos(db: &Db, keys: Vec<DeployKey>) -> Result<Vec<KeyWithRepos>> {
    let mut items = Vec::with_capacity(keys.len());
    for key in keys {
        let repos = db
            .links_of_key(key.id)?
            .into_iter()
            .map(|link| (link.repo, link.can_push))
            .collect();
        items.push((key, repos));
    }
    Ok(items)
}
