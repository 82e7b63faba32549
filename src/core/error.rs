//! The one error type of the domain core; each dialect renders it in its own wire shape.

use super::key::KeyError;
use crate::store::StoreError;

/// What was looked for and not found (or not visible to the caller, which must look the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Repository,
    /// A key that exists nowhere, or is not attached to the repository asked about.
    Key,
    User,
    Namespace,
    Token,
    AuditEvent,
}

/// Why an authenticated caller may not do something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// A member who may see the repository but not manage its deploy keys.
    NotMaintainer,
    NotAdmin,
    /// Looking at another user's keys with no repository maintained in common.
    NoCommonRepository,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Title,
    Key,
    ExpiresAt,
    Path,
    Username,
    Id,
    /// CodeArts' free-text `application` label of a link.
    Application,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Key => "key",
            Field::ExpiresAt => "expires_at",
            Field::Path => "path",
            Field::Username => "username",
            Field::Id => "id",
            Field::Application => "application",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Blank,
    TooLong {
        max: usize,
    },
    /// The key text was refused; the reason never includes the text itself.
    Key(KeyError),
    /// An expiry date that has already passed.
    Expired,
    /// A value of the wrong form; says what form was expected.
    Format(&'static str),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Blank => f.write_str("must not be blank"),
            Problem::TooLong { max } => write!(f, "is too long (at most {max} characters)"),
            Problem::Key(err) => write!(f, "{err}"),
            Problem::Expired => f.write_str("has expired"),
            Problem::Format(what) => write!(f, "must be {what}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The key exists already and the caller may not reuse it (GitLab's "has already been taken").
    KeyTaken,
    /// The key is a deploy key somewhere already (GitHub's one-repository rule).
    KeyInUse,
    /// The key is already attached to this repository.
    KeyOnRepository,
    UserExists,
    RepositoryExists,
    /// This signed request has been used before: it may change something once only.
    RequestUsed,
    /// The link changed after the moment the caller said it last saw it (a conditional delete).
    ChangedSince,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} not found")]
    NotFound(Missing),
    #[error("not authenticated")]
    Unauthorized,
    #[error("forbidden: {0:?}")]
    Forbidden(Denied),
    #[error("the token is read-only")]
    InsufficientScope,
    #[error("{} {problem}", field.as_str())]
    Invalid { field: Field, problem: Problem },
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    #[error("the database is busy")]
    Busy,
    /// Never shown to clients; logged with the request id.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: Field, problem: Problem) -> Error {
        Error::Invalid { field, problem }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Busy => {
                // Every busy answer of the store reaches its caller through here, once.
                ::metrics::counter!("keygate_store_busy_total").increment(1);
                Error::Busy
            }
            StoreError::Unique(what) => match what.as_str() {
                "deploy_keys.fingerprint_sha256" => Error::Conflict(Conflict::KeyTaken),
                "key_links.repo_id, key_links.key_id" => Error::Conflict(Conflict::KeyOnRepository),
                "users.username" => Error::Conflict(Conflict::UserExists),
                "repositories.full_path" | "repositories.id" => {
                    Error::Conflict(Conflict::RepositoryExists)
                }
                // Random values (token hashes, uuids, access keys) colliding is not the client's doing.
                other => Error::Internal(format!("unexpected unique violation on {other}")),
            },
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<KeyError> for Error {
    fn from(err: KeyError) -> Self {
        Error::invalid(Field::Key, Problem::Key(err))
    }
}
