//! GitHub's error bodies (BasicError, ValidationError) and the one type that renders them.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Value, json};

use crate::core::{Error, Field, KeyError, Problem};
use crate::dialect;
use crate::http::BodyError;

pub(super) const DOCS_REST: &str = "https://docs.github.com/rest";
pub(super) const DOCS_GRAPHQL: &str = "https://docs.github.com/graphql";
const DOCS_VERSIONS: &str = "https://docs.github.com/rest/about-the-rest-api/api-versions";
pub(super) const DOCS_LIST: &str =
    "https://docs.github.com/rest/deploy-keys/deploy-keys#list-deploy-keys";
pub(super) const DOCS_CREATE: &str =
    "https://docs.github.com/rest/deploy-keys/deploy-keys#create-a-deploy-key";
pub(super) const DOCS_GET: &str =
    "https://docs.github.com/rest/deploy-keys/deploy-keys#get-a-deploy-key";
pub(super) const DOCS_DELETE: &str =
    "https://docs.github.com/rest/deploy-keys/deploy-keys#delete-a-deploy-key";
pub(super) const DOCS_REPO: &str = "https://docs.github.com/rest/repos/repos#get-a-repository";
pub(super) const DOCS_USER: &str =
    "https://docs.github.com/rest/users/users#get-the-authenticated-user";
const DOCS_PRIMARY_LIMIT: &str = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-primary-rate-limits";
pub(super) const DOCS_RATE_LIMIT: &str = "https://docs.github.com/rest/rate-limit/rate-limit#get-rate-limit-status-for-the-authenticated-user";

const INVALID_KEY: &str = "key is invalid. You must supply a key in OpenSSH public key format";

/// Every failure a GitHub route can answer, rendered as GitHub words it.
#[derive(Debug)]
pub(super) enum GhError {
    Core {
        err: Error,
        /// GitHub points each error at the documentation of the operation that failed.
        docs: &'static str,
    },
    NoToken,
    MissingField(&'static str),
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// A body that could not be read, with the documentation of the operation it was sent to.
    Body(BodyError, &'static str),
    NoRoute,
    BadVersion(String),
    /// The user's request budget is spent (`http::rate`); it refills in `retry_after` seconds.
    RateLimited {
        user: i64,
        retry_after: u64,
    },
}

impl GhError {
    pub(super) fn with_docs(self, docs: &'static str) -> GhError {
        match self {
            GhError::Core { err, .. } => GhError::Core { err, docs },
            other => other,
        }
    }
}

impl From<Error> for GhError {
    fn from(err: Error) -> Self {
        GhError::Core {
            err,
            docs: DOCS_REST,
        }
    }
}

impl From<BodyError> for GhError {
    fn from(err: BodyError) -> Self {
        GhError::Body(err, DOCS_CREATE)
    }
}

impl std::fmt::Display for GhError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

pub(super) fn basic(message: &str, docs: &str, status: StatusCode) -> Value {
    json!({"message": message, "documentation_url": docs, "status": status.as_str()})
}

/// GitHub's 422 for one field of the key resource; `missing_field` items carry no message.
fn validation(code: &str, field: &str, message: Option<String>) -> Value {
    let mut item = json!({"resource": "PublicKey", "code": code, "field": field});
    if let Some(message) = message {
        item["message"] = Value::String(message);
    }
    json!({
        "message": "Validation Failed",
        "errors": [item],
        "documentation_url": DOCS_CREATE,
        "status": "422",
    })
}

/// The reason only, never the text: a refused key may be a private one.
fn key_problem(err: &KeyError) -> Value {
    let message = match err {
        KeyError::Blank => return validation("missing_field", "key", None),
        KeyError::TooLong | KeyError::Malformed | KeyError::TypeMismatch => INVALID_KEY.to_string(),
        KeyError::Private => {
            "key is invalid. It is a private key: supply the public key (the .pub \
                              file) in OpenSSH public key format; the private key was not stored"
                .to_string()
        }
        KeyError::ForbiddenType => {
            "key is invalid. Its type is not allowed: use an ED25519, ECDSA, RSA, ED25519_SK or \
             ECDSA_SK key"
                .to_string()
        }
        KeyError::TooSmall { min } => format!("key is weak. RSA keys must be at least {min} bits"),
    };
    validation("custom", "key", Some(message))
}

impl ResponseError for GhError {
    fn status_code(&self) -> StatusCode {
        match self {
            GhError::Core { err, .. } => match err {
                Error::NotFound(_) => StatusCode::NOT_FOUND,
                Error::Unauthorized => StatusCode::UNAUTHORIZED,
                Error::Forbidden(_) | Error::InsufficientScope => StatusCode::FORBIDDEN,
                Error::Invalid { .. } | Error::Conflict(_) => StatusCode::UNPROCESSABLE_ENTITY,
                Error::Busy => StatusCode::SERVICE_UNAVAILABLE,
                Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            GhError::NoToken => StatusCode::UNAUTHORIZED,
            GhError::MissingField(_) | GhError::WrongType { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            GhError::Body(BodyError::TooLarge, _) => StatusCode::PAYLOAD_TOO_LARGE,
            GhError::Body(..) | GhError::BadVersion(_) => StatusCode::BAD_REQUEST,
            GhError::NoRoute => StatusCode::NOT_FOUND,
            // GitHub's primary limit: 403, which every client (octokit's throttling plugin,
            // PyGithub's GithubRetry) reads as "wait for the reset".
            GhError::RateLimited { .. } => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let body = match self {
            GhError::Core { err, docs } => match err {
                Error::NotFound(_) => basic("Not Found", docs, status),
                Error::Unauthorized => basic("Bad credentials", DOCS_REST, status),
                Error::Forbidden(_) => basic("Must have admin rights to Repository.", docs, status),
                Error::InsufficientScope => basic(
                    "Resource not accessible by personal access token",
                    docs,
                    status,
                ),
                Error::Invalid {
                    problem: Problem::Key(k),
                    ..
                } => key_problem(k),
                Error::Invalid {
                    field,
                    problem: Problem::Blank,
                } => validation("missing_field", field.as_str(), None),
                Error::Invalid {
                    field,
                    problem: Problem::TooLong { max },
                } => validation(
                    "custom",
                    field.as_str(),
                    Some(format!(
                        "{} is too long (maximum is {max} characters)",
                        field.as_str()
                    )),
                ),
                Error::Invalid { field, .. } => validation(
                    "custom",
                    field.as_str(),
                    Some(format!("{} is invalid", field.as_str())),
                ),
                // With `Reuse::Exclusive` every conflict means the key is a deploy key somewhere.
                Error::Conflict(_) => validation(
                    "custom",
                    Field::Key.as_str(),
                    Some("key is already in use".into()),
                ),
                Error::Busy => basic("Service Unavailable", docs, status),
                Error::Internal(_) => basic("Server Error", docs, status),
            },
            GhError::NoToken => basic("Requires authentication", DOCS_REST, status),
            GhError::MissingField(field) => validation("missing_field", field, None),
            GhError::WrongType { field, expected } => basic(
                &format!(
                    "Invalid request.\n\nFor 'properties/{field}', the value is not a {expected}."
                ),
                DOCS_CREATE,
                status,
            ),
            GhError::Body(BodyError::TooLarge, docs) => basic("Payload Too Large", docs, status),
            GhError::Body(_, docs) => basic("Problems parsing JSON", docs, status),
            GhError::NoRoute => basic("Not Found", DOCS_REST, status),
            GhError::BadVersion(version) => {
                // Echoed as GitHub does, but bounded: it is whatever the client sent.
                let shown: String = version.chars().take(64).collect();
                basic(
                    &format!(
                        "The version you specified in the \"X-GitHub-API-Version\" request header, \
                         \"{shown}\", is not a supported version. The following versions are \
                         currently supported: \"2026-03-10\" (most recent), \"2022-11-28\"."
                    ),
                    DOCS_VERSIONS,
                    status,
                )
            }
            GhError::RateLimited { user, .. } => basic(
                &format!("API rate limit exceeded for user ID {user}."),
                DOCS_PRIMARY_LIMIT,
                status,
            ),
        };
        let mut res = dialect::with_retry_after(gh_json(status, &body));
        if let GhError::RateLimited { retry_after, .. } = self {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        res
    }
}

/// GitHub's `application/json; charset=utf-8` (octokit parses JSON only under a JSON type).
pub(super) fn gh_json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> HttpResponse {
    let mut res = dialect::json(status, body);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    res
}

pub(super) type Reply = Result<HttpResponse, GhError>;
