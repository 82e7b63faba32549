//! A repository's deploy keys: list, get, add (a new key or one already on the instance), update, remove, enable.

use serde_json::json;

use super::audit::{Actor, Change, record};
use super::{
    Conflict, Core, DeployKey, Error, KeyError, LinkedKey, Missing, Paged, Principal, PublicKey,
    RepoRef, Result, Window, check_details, check_title, managed_repo, new_key, require_write,
};
use crate::store::{Db, NewKey, now_ms};

/// What to do when the key being added already exists elsewhere on the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// GitLab and Gitea: attach the existing key if the caller may use it.
    Join,
    /// GitHub: a key may be a deploy key of one repository only.
    Exclusive,
}

/// A deploy key as a client submits it, before parsing.
#[derive(Clone)]
pub struct KeySubmission {
    pub title: String,
    pub key: String,
    pub can_push: bool,
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for KeySubmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key text may be a private key pasted by mistake: never print it.
        f.debug_struct("KeySubmission")
            .field("title", &self.title)
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("can_push", &self.can_push)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A submission whose key was parsed where the request arrived (`Core::parse_submission`): on
/// SQLite a create runs on the writer thread, one request at a time, and parsing the key there
/// cost as much as the create's SQL. The verdict waits inside until the caller is known to be
/// allowed to manage the repository, so a stranger still learns nothing from it.
#[derive(Debug, Clone)]
pub struct ParsedSubmission {
    pub submission: KeySubmission,
    key: std::result::Result<PublicKey, KeyError>,
}

impl ParsedSubmission {
    fn key(&self) -> Result<&PublicKey> {
        self.key.as_ref().map_err(|err| Error::from(err.clone()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The key was already attached to this repository; nothing changed.
    Existing,
    /// An existing key was attached to this repository.
    Joined,
    Created,
}

impl Core {
    pub fn list_keys(
        &self,
        who: &Principal,
        repo: &RepoRef,
        window: Window,
    ) -> Result<Paged<LinkedKey>> {
        self.list_keys_counted_to(who, repo, window, u64::MAX)
    }

    /// A page of the repository's keys, its total counted no further than `count_to`.
    pub fn list_keys_counted_to(
        &self,
        who: &Principal,
        repo: &RepoRef,
        window: Window,
        count_to: u64,
    ) -> Result<Paged<LinkedKey>> {
        self.store.read(|db| {
            let repo = managed_repo(db, who, repo)?;
            Ok(Paged {
                items: db.linked_keys(repo.id, window.offset, window.limit)?,
                total: db.count_linked_keys(repo.id, count_to)?,
            })
        })
    }

    pub fn get_key(&self, who: &Principal, repo: &RepoRef, key_id: i64) -> Result<LinkedKey> {
        self.store.read(|db| {
            let repo = managed_repo(db, who, repo)?;
            find_linked(db, repo.id, key_id)
        })
    }

    /// Attaches a key to a repository, creating it when it is new to the instance.
    pub fn add_key(
        &self,
        who: &Principal,
        repo: &RepoRef,
        submission: &ParsedSubmission,
        reuse: Reuse,
    ) -> Result<(LinkedKey, Added)> {
        require_write(who)?;
        self.write(|db| self.add_key_in(db, who, repo, submission, reuse))
    }

    /// Parses the submission's key against this instance's policy, for `add_key`.
    pub fn parse_submission(&self, submission: KeySubmission) -> ParsedSubmission {
        let key = PublicKey::parse(&submission.key, &self.policy);
        ParsedSubmission { submission, key }
    }

    /// The body of `add_key`, inside a write transaction the caller owns (so a dialect can store
    /// more with the same link, all or nothing).
    pub(super) fn add_key_in(
        &self,
        db: &Db,
        who: &Principal,
        repo: &RepoRef,
        parsed_submission: &ParsedSubmission,
        reuse: Reuse,
    ) -> Result<(LinkedKey, Added)> {
        // Who may, before what: a stranger learns nothing about the key from the answer.
        let repo = managed_repo(db, who, repo)?;
        let parsed = parsed_submission.key()?;
        let submission = &parsed_submission.submission;
        let added = match db.key_by_sha256(parsed.sha256())? {
            Some(_) if reuse == Reuse::Exclusive => {
                return Err(Error::Conflict(Conflict::KeyInUse));
            }
            // Already here: returned as it is, and what else was sent does not matter.
            Some(existing) if db.linked_key(repo.id, existing.id)?.is_some() => {
                (existing.id, Added::Existing)
            }
            Some(existing) => {
                check_details(submission)?;
                if !who.user.admin && !db.key_accessible(existing.id, who.user.id)? {
                    return Err(Error::Conflict(Conflict::KeyTaken));
                }
                db.insert_link(
                    repo.id,
                    existing.id,
                    submission.can_push,
                    Some(who.user.id),
                    now_ms(),
                )?;
                record(
                    db,
                    Actor::User(who),
                    Change::on_key(
                        "deploy_key.join",
                        Some(&repo),
                        &existing,
                        json!({"after": {"can_push": submission.can_push}}),
                    ),
                )?;
                (existing.id, Added::Joined)
            }
            None => {
                check_details(submission)?;
                let text = parsed.text();
                let new = new_key(parsed, &text, submission, false, Some(who.user.id));
                let id = db.insert_key(&new)?;
                db.insert_link(
                    repo.id,
                    id,
                    submission.can_push,
                    Some(who.user.id),
                    new.created_at,
                )?;
                // The answer is what was just stored, not read back: on SQLite this runs on the
                // writer thread, where the read cost a fifth of the create.
                let linked = LinkedKey {
                    key: stored_key(id, &new),
                    repo_id: repo.id,
                    can_push: submission.can_push,
                    added_by: Some(who.user.username.as_str().into()),
                    linked_at: new.created_at,
                    updated_at: new.created_at,
                };
                record(
                    db,
                    Actor::User(who),
                    Change::on_key(
                        "deploy_key.create",
                        Some(&repo),
                        &linked.key,
                        json!({"after": {
                            "title": linked.key.title,
                            "can_push": submission.can_push,
                            "expires_at": linked.key.expires_at,
                        }}),
                    ),
                )?;
                return Ok((linked, Added::Created));
            }
        };
        Ok((linked_in_transaction(db, repo.id, added.0)?, added.1))
    }

    /// Changes a key's push permission on this repository and, where the caller owns the key
    /// outright, its title. Like GitLab, a title the caller may not change is ignored silently.
    pub fn update_key(
        &self,
        who: &Principal,
        repo: &RepoRef,
        key_id: i64,
        title: Option<&str>,
        can_push: Option<bool>,
    ) -> Result<LinkedKey> {
        require_write(who)?;
        self.write(|db| {
            let repo = managed_repo(db, who, repo)?;
            let linked = find_linked(db, repo.id, key_id)?;
            if let Some(can_push) = can_push {
                db.set_can_push(repo.id, key_id, can_push)?;
            }
            if let Some(title) = title {
                let sole_user = !linked.key.public && db.link_count(key_id)? == 1;
                if who.user.admin || sole_user {
                    check_title(title)?;
                    db.update_key_title(key_id, title)?;
                }
            }
            let after = linked_in_transaction(db, repo.id, key_id)?;
            if (&after.key.title, after.can_push) != (&linked.key.title, linked.can_push) {
                record(
                    db,
                    Actor::User(who),
                    Change::on_key(
                        "deploy_key.update",
                        Some(&repo),
                        &after.key,
                        json!({
                            "before": {"title": linked.key.title, "can_push": linked.can_push},
                            "after": {"title": after.key.title, "can_push": after.can_push},
                        }),
                    ),
                )?;
            }
            Ok(after)
        })
    }

    /// Detaches a key from a repository; a private key used nowhere else is deleted with it.
    pub fn remove_key(&self, who: &Principal, repo: &RepoRef, key_id: i64) -> Result<LinkedKey> {
        self.remove_key_unchanged_since(who, repo, key_id, None)
    }

    /// `remove_key`, but only if the link has not changed after `since` (milliseconds, read at
    /// whole-second resolution: a change within that second counts as seen). Checked in the same
    /// write transaction as the delete, so a concurrent update cannot slip in between.
    pub fn remove_key_unchanged_since(
        &self,
        who: &Principal,
        repo: &RepoRef,
        key_id: i64,
        since: Option<i64>,
    ) -> Result<LinkedKey> {
        require_write(who)?;
        self.write(|db| {
            let repo = managed_repo(db, who, repo)?;
            let linked = find_linked(db, repo.id, key_id)?;
            if since
                .is_some_and(|since| linked.updated_at.div_euclid(1000) > since.div_euclid(1000))
            {
                return Err(Error::Conflict(Conflict::ChangedSince));
            }
            db.delete_link(repo.id, key_id)?;
            let key_deleted = db.delete_key_if_orphaned(key_id)?;
            record(
                db,
                Actor::User(who),
                Change::on_key(
                    "deploy_key.delete",
                    Some(&repo),
                    &linked.key,
                    json!({
                        "before": {"title": linked.key.title, "can_push": linked.can_push},
                        "key_deleted": key_deleted,
                    }),
                ),
            )?;
            Ok(linked)
        })
    }

    /// Attaches an existing key the caller may use, read-only; attaching twice changes nothing.
    pub fn enable_key(&self, who: &Principal, repo: &RepoRef, key_id: i64) -> Result<DeployKey> {
        require_write(who)?;
        self.write(|db| {
            let repo = managed_repo(db, who, repo)?;
            let key = db.key_by_id(key_id)?.ok_or(Error::NotFound(Missing::Key))?;
            if db.linked_key(repo.id, key_id)?.is_none() {
                if !who.user.admin && !db.key_accessible(key_id, who.user.id)? {
                    return Err(Error::NotFound(Missing::Key));
                }
                db.insert_link(repo.id, key_id, false, Some(who.user.id), now_ms())?;
                record(
                    db,
                    Actor::User(who),
                    Change::on_key(
                        "deploy_key.enable",
                        Some(&repo),
                        &key,
                        json!({"after": {"can_push": false}}),
                    ),
                )?;
            }
            Ok(key)
        })
    }
}

/// The key as this repository holds it; a key the repository does not hold is not found.
fn find_linked(db: &Db, repo_id: i64, key_id: i64) -> Result<LinkedKey> {
    db.linked_key(repo_id, key_id)?
        .ok_or(Error::NotFound(Missing::Key))
}

/// A link this transaction made or found: gone would be a bug, not a client's mistake.
fn linked_in_transaction(db: &Db, repo_id: i64, key_id: i64) -> Result<LinkedKey> {
    db.linked_key(repo_id, key_id)?
        .ok_or_else(|| Error::Internal("link vanished inside its transaction".into()))
}

/// The row `insert_key` stored for `new` under `id`.
fn stored_key(id: i64, new: &NewKey) -> DeployKey {
    DeployKey {
        id,
        fingerprint_sha256: new.fingerprint_sha256.into(),
        fingerprint_md5: new.fingerprint_md5.into(),
        key_text: new.key_text.into(),
        kind: new.kind.into(),
        bits: new.bits,
        title: new.title.into(),
        public: new.public,
        owner_id: new.owner_id,
        expires_at: new.expires_at,
        last_used_at: None,
        created_at: new.created_at,
    }
}
