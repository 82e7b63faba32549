//! The domain core: repositories, deploy keys and who may manage them. No HTTP, no SQL.

mod access_keys;
mod admin;
pub mod audit;
mod error;
mod groups;
mod import;
mod instance_keys;
mod inventory;
pub mod key;
mod repo_keys;
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
pub use instance_keys::KeyWithRepos;
pub use inventory::Inventory;
pub use key::{KeyError, KeyPolicy, PublicKey};
pub use repo_keys::{Added, KeySubmission, ParsedSubmission, Reuse};
pub use single_use::SingleUse;
pub use ssh::{GitAccess, SshDenial, SshGrant};

use crate::store::{Db, NewKey, Store, now_ms};

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
