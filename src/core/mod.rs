//! The domain core: repositories, deploy keys and who may manage them. No HTTP, no SQL.

mod access_keys;
mod admin;
pub mod audit;
mod error;
mod groups;
mod import;
mod inventory;
pub mod key;
mod single_use;
mod ssh;
pub mod text;

use crate::store::Job;
pub use crate::store::{
    AuditEvent, AuditFilter, DeployKey, KeyLink, KeyRange, LinkedKey, Namespace, Repository, Role,
    Scope, Token, User,
};
pub use audit::{AuditScope, Origin};
pub use error::{Conflict, Denied, Error, Field, Missing, Problem};
pub use import::{Candidate, IMPORT_CHUNK, Imported, KeyFile, Refusal};
pub use inventory::Inventory;
pub use key::{KeyError, KeyPolicy, PublicKey};
pub use single_use::SingleUse;
pub use ssh::{GitAccess, SshDenial, SshGrant};

use crate::store::{Db, NewKey, Store, now_ms};
use audit::{Actor, Change, record};
use serde_json::json;

pub type Result<T> = std::result::Result<T, Error>;

/// Longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 255;

/// The authenticated caller of an operation.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub scope: Scope,
    /// Where the request came from, for the audit trail; set by the dialect for changes only.
    pub origin: Option<std::sync::Arc<Origin>>,
}

/// How a client names a repository: by numeric id or by its `namespace/…/name` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoRef {
    Id(i64),
    Path(String),
}

/// How a client names a group (namespace): by numeric id or by its full `group/…/sub` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    Id(i64),
    Path(String),
}

/// A slice of a list: dialects page by number or by offset, the core only by offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub offset: u64,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: u64,
}

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

/// An instance key with every repository it is attached to (`can_push` beside each).
pub type KeyWithRepos = (DeployKey, Vec<(Repository, bool)>);

/// The core: cheap to clone, shared by every worker.
#[derive(Clone, Debug)]
pub struct Core {
    store: Store,
    policy: KeyPolicy,
    /// Set for the operations of a signed CodeArts request (`Core::single_use`).
    single_use: Option<std::sync::Arc<SingleUse>>,
}

impl Core {
    pub fn new(store: Store, policy: KeyPolicy) -> Core {
        Core {
            store,
            policy,
            single_use: None,
        }
    }

    pub fn policy(&self) -> &KeyPolicy {
        &self.policy
    }

    /// Runs `f`, a request that only reads, with all its reads (authentication included) in one
    /// snapshot where the store can (`Store::session`). Every session takes a new snapshot, and
    /// rows are reused across sessions only while the database is unchanged (as the session
    /// began), so a revocation counts at once.
    pub fn read_session<T>(&self, f: impl FnOnce() -> T) -> T {
        self.store.session(f)
    }

    /// Queues a write request's whole work for the store's writer (`Store::submit`).
    pub fn submit(&self, job: Job) -> std::result::Result<(), Job> {
        self.store.submit(job)
    }

    /// Whether read-only requests may run on the async worker (`Store::reads_inline`).
    pub fn reads_inline(&self) -> bool {
        self.store.reads_inline()
    }

    /// The user behind a personal token; unknown and expired tokens look the same.
    pub fn authenticate_token(&self, token: &str) -> Result<Principal> {
        let hash = crate::auth::token_hash(token);
        let found = self.store.read(|db| db.token_by_hash(&hash))?;
        match found {
            Some((t, user)) if t.expires_at.is_none_or(|e| e > now_ms()) => Ok(Principal {
                user,
                scope: t.scope,
                origin: None,
            }),
            _ => Err(Error::Unauthorized),
        }
    }

    /// The repository, if the caller may see it (any member, or an admin).
    pub fn repository(&self, who: &Principal, repo: &RepoRef) -> Result<Repository> {
        self.store
            .read(|db| visible_repo(db, who, repo).map(|(r, _)| r))
    }

    /// The repository and the caller's role there (`None` for an admin who is not a member).
    pub fn repository_role(
        &self,
        who: &Principal,
        repo: &RepoRef,
    ) -> Result<(Repository, Option<Role>)> {
        self.store.read(|db| visible_repo(db, who, repo))
    }

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
            db.linked_key(repo.id, key_id)?
                .ok_or(Error::NotFound(Missing::Key))
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
    fn add_key_in(
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
            let linked = db
                .linked_key(repo.id, key_id)?
                .ok_or(Error::NotFound(Missing::Key))?;
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
            let after = db
                .linked_key(repo.id, key_id)?
                .ok_or(Error::NotFound(Missing::Key))?;
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
            let linked = db
                .linked_key(repo.id, key_id)?
                .ok_or(Error::NotFound(Missing::Key))?;
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

    /// A user by id or username. Any authenticated caller may look one up: only public fields
    /// leave the dialects.
    pub fn user(&self, _who: &Principal, target: &UserRef) -> Result<User> {
        self.store.read(|db| find_user(db, target))
    }

    /// One page of users in id order, or only the one named `username` (an empty page if none).
    pub fn users_named(
        &self,
        _who: &Principal,
        username: Option<&str>,
        window: Window,
    ) -> Result<Paged<User>> {
        self.store.read(|db| {
            Ok(Paged {
                items: db.users_page(username, window.offset, window.limit)?,
                total: db.count_users(username)?,
            })
        })
    }

    fn check_submission(&self, submission: &KeySubmission) -> Result<PublicKey> {
        let parsed = PublicKey::parse(&submission.key, &self.policy)?;
        check_details(submission)?;
        Ok(parsed)
    }

    /// What must hold before a request's parameters are judged, checked in the order GitLab and
    /// GitHub answer: a read-only token on a write (403), then the repository (404) and the right to
    /// manage its keys (403), or admin rights. Lets an adapter report a bad parameter only to a
    /// caller who could have made the call.
    pub fn preflight(&self, who: &Principal, write: bool, gate: Gate<'_>) -> Result<()> {
        if write {
            require_write(who)?;
        }
        match gate {
            Gate::Authenticated => Ok(()),
            Gate::Admin => require_admin(who),
            Gate::Manage(repo) => self
                .store
                .read(|db| managed_repo(db, who, repo).map(|_| ())),
        }
    }
}

/// What a request needs beyond a valid token, for `Core::preflight`.
#[derive(Debug, Clone, Copy)]
pub enum Gate<'a> {
    Authenticated,
    Admin,
    /// The right to manage this repository's deploy keys.
    Manage(&'a RepoRef),
}

/// How a client names a user: by numeric id or by username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Id(i64),
    Name(String),
}

/// A link this transaction made or found: gone would be a bug, not a client's mistake.
fn linked_in_transaction(db: &Db, repo_id: i64, key_id: i64) -> Result<LinkedKey> {
    db.linked_key(repo_id, key_id)?
        .ok_or_else(|| Error::Internal("link vanished inside its transaction".into()))
}

fn new_key<'a>(
    parsed: &'a PublicKey,
    key_text: &'a str,
    submission: &'a KeySubmission,
    public: bool,
    owner_id: Option<i64>,
) -> NewKey<'a> {
    NewKey {
        fingerprint_sha256: parsed.sha256(),
        fingerprint_md5: parsed.md5(),
        key_text,
        kind: parsed.kind(),
        bits: parsed.bits(),
        title: &submission.title,
        public,
        owner_id,
        expires_at: submission.expires_at,
        created_at: now_ms(),
    }
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

/// The title and expiry of a key about to be created or attached.
fn check_details(submission: &KeySubmission) -> Result<()> {
    check_title(&submission.title)?;
    if submission.expires_at.is_some_and(|at| at <= now_ms()) {
        return Err(Error::invalid(Field::Key, Problem::Expired));
    }
    Ok(())
}

fn check_title(title: &str) -> Result<()> {
    if title.trim().is_empty() {
        return Err(Error::invalid(Field::Title, Problem::Blank));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::invalid(
            Field::Title,
            Problem::TooLong {
                max: MAX_TITLE_CHARS,
            },
        ));
    }
    // Titles end up in logs, terminals and authorized_keys comments; see `text` for why each
    // refused character is dangerous there.
    if !text::is_safe(title) {
        return Err(Error::invalid(
            Field::Title,
            Problem::Format(text::SAFE_TEXT),
        ));
    }
    Ok(())
}

fn require_write(who: &Principal) -> Result<()> {
    match who.scope {
        Scope::Api => Ok(()),
        Scope::ReadApi => Err(Error::InsufficientScope),
    }
}

pub(super) fn require_admin(who: &Principal) -> Result<()> {
    if who.user.admin {
        Ok(())
    } else {
        Err(Error::Forbidden(Denied::NotAdmin))
    }
}

/// The repository and the caller's role there; invisible repositories are simply not found.
fn visible_repo(db: &Db, who: &Principal, repo: &RepoRef) -> Result<(Repository, Option<Role>)> {
    let found = find_repo(db, repo)?;
    let role = db.role_of(found.id, who.user.id)?;
    if role.is_none() && !who.user.admin {
        return Err(Error::NotFound(Missing::Repository));
    }
    Ok((found, role))
}

fn find_user(db: &Db, target: &UserRef) -> Result<User> {
    match target {
        UserRef::Id(id) => db.user_by_id(*id)?,
        UserRef::Name(name) => db.user_by_name(name)?,
    }
    .ok_or(Error::NotFound(Missing::User))
}

/// The namespace a client named, if there is one.
fn find_namespace(db: &Db, group: &GroupRef) -> Result<Option<Namespace>> {
    Ok(match group {
        GroupRef::Id(id) => db.namespace_by_id(*id)?,
        GroupRef::Path(path) => db.namespace_by_path(path)?,
    })
}

/// The namespace and whose maintained repositories count in it (`None`: an admin, all of them).
/// A namespace the caller has no role in is not found; one where they only report is forbidden,
/// the same answers a single repository gives.
pub(super) fn managed_namespace(
    db: &Db,
    who: &Principal,
    namespace: Option<Namespace>,
) -> Result<(Namespace, Option<i64>)> {
    let namespace = namespace.ok_or(Error::NotFound(Missing::Namespace))?;
    if who.user.admin {
        return Ok((namespace, None));
    }
    let (member, maintainer) = db.namespace_roles(namespace.id, who.user.id)?;
    if !member {
        return Err(Error::NotFound(Missing::Namespace));
    }
    if !maintainer {
        return Err(Error::Forbidden(Denied::NotMaintainer));
    }
    Ok((namespace, Some(who.user.id)))
}

fn find_repo(db: &Db, repo: &RepoRef) -> Result<Repository> {
    match repo {
        RepoRef::Id(id) => db.repo_by_id(*id)?,
        RepoRef::Path(path) => db.repo_by_path(path)?,
    }
    .ok_or(Error::NotFound(Missing::Repository))
}

/// The repository, if the caller may manage its deploy keys.
fn managed_repo(db: &Db, who: &Principal, repo: &RepoRef) -> Result<Repository> {
    if who.user.admin {
        // An admin manages every repository, whatever their role: one lookup fewer on each
        // write, which on SQLite runs on the writer thread one request at a time.
        return find_repo(db, repo);
    }
    let (repo, role) = visible_repo(db, who, repo)?;
    if role == Some(Role::Maintainer) {
        Ok(repo)
    } else {
        Err(Error::Forbidden(Denied::NotMaintainer))
    }
}
