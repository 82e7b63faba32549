//! The records keygate stores, the same on every backend.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub admin: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read and write.
    Api,
    /// GET only.
    ReadApi,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Api => "api",
            Scope::ReadApi => "read_api",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: i64,
    pub user_id: i64,
    pub scope: Scope,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Maintainer,
    Reporter,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Maintainer => "maintainer",
            Role::Reporter => "reporter",
        }
    }

    pub(crate) fn from_str(s: &str) -> Role {
        if s == "maintainer" {
            Role::Maintainer
        } else {
            Role::Reporter
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub full_path: String,
    /// 32 lower-case hex digits: how CodeArts addresses a top-level namespace (its "project").
    pub uuid: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub id: i64,
    pub name: String,
    pub full_path: String,
    pub created_at: i64,
    pub namespace: Namespace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployKey {
    pub id: i64,
    pub fingerprint_sha256: Text,
    pub fingerprint_md5: Text,
    pub key_text: Text,
    pub kind: Text,
    pub bits: u32,
    pub title: Text,
    /// An instance-wide key, created by an admin with no repository.
    pub public: bool,
    pub owner_id: Option<i64>,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

/// Text a record shares with its copies: the memo hands out copies of the rows it keeps (a list
/// page is 20 keys of six strings each), and a copy then costs a count, not an allocation.
pub type Text = std::sync::Arc<str>;

/// A key as attached to one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedKey {
    pub key: DeployKey,
    pub repo_id: i64,
    pub can_push: bool,
    pub added_by: Option<Text>,
    pub linked_at: i64,
    /// When the link last changed: its creation, or a change of `can_push`.
    pub updated_at: i64,
}

/// One repository a key is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLink {
    pub id: i64,
    pub repo: Repository,
    pub can_push: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which of the instance's keys a list walks, and in which direction: ids strictly between
/// `after` and `before` (unbounded when `None`), so a keyset page starts at its cursor on the
/// primary key instead of walking `OFFSET` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyRange {
    /// Only instance-wide keys.
    pub public_only: bool,
    pub after: Option<i64>,
    pub before: Option<i64>,
    /// Newest id first.
    pub descending: bool,
}

/// Everything needed to insert a key row; the caller has parsed and checked it.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    pub fingerprint_sha256: &'a str,
    pub fingerprint_md5: &'a str,
    pub key_text: &'a str,
    pub kind: &'a str,
    pub bits: u32,
    pub title: &'a str,
    pub public: bool,
    pub owner_id: Option<i64>,
    pub expires_at: Option<i64>,
    /// When the core made it (milliseconds): the answer it gives is built from these values.
    pub created_at: i64,
}

/// One change as the audit trail recorded it. Never a secret: a key appears by id and SHA256
/// fingerprint, a token by id, an access key by its AK (an identifier, as a username is).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditEvent {
    pub id: i64,
    pub created_at: i64,
    /// `user` (a dialect's authenticated caller), `cli` (the admin CLI; `actor_name` is the OS
    /// user) or `system` (the gateway itself: retention pruning).
    pub actor_kind: String,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub dialect: Option<String>,
    pub method: Option<String>,
    /// The route template (`/api/v4/projects/{id}/deploy_keys`), never the raw path.
    pub route: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    /// `deploy_key.create`, `token.issue`, … (docs/operations.md lists them).
    pub action: String,
    pub repo_id: Option<i64>,
    /// The repository's path when the change was made: it may be removed or re-created since.
    pub repo_path: Option<String>,
    pub key_id: Option<i64>,
    pub fingerprint: Option<String>,
    /// The user a change is about (a new user, a token's owner, a role's holder).
    pub user_id: Option<i64>,
    pub user_name: Option<String>,
    /// A JSON object: `before` and `after` for updates, and what else the action names.
    pub details: String,
}

/// Which audit events a list reads. Every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub repo_id: Option<i64>,
    /// The repository's path at the time, in any case (events of a removed repository too).
    pub repo_path: Option<String>,
    /// Only repositories whose path was under this namespace path (`group` or `group/sub`).
    pub under: Option<String>,
    /// Only events on repositories this user maintains now.
    pub maintained_by: Option<i64>,
    /// Target user (GitLab's `entity_type=User&entity_id=`).
    pub user_id: Option<i64>,
    /// Inclusive bounds on `created_at`, in milliseconds.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Oldest first (a log), rather than newest first (GitLab's lists).
    pub oldest_first: bool,
}
