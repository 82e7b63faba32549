//! GitLab's error bodies and status codes: the one place a core error becomes GitLab's wording.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};

use crate::core::{Conflict, Denied, Error, KeyError, Missing, Problem};
use crate::dialect::{json as json_response, with_retry_after};
use crate::http::BodyError;

/// Every failure a GitLab route can answer, rendered exactly as GitLab words it.
#[derive(Debug)]
pub(super) enum GlError {
    Core {
        err: Error,
        /// GitLab says `404 Not found` for GET/PUT and `404 Deploy key Not Found` for DELETE/enable.
        key_missing: &'static str,
        /// Project routes prefix model errors with `deploy_key.`; the admin route does not.
        nested: bool,
    },
    Missing(Vec<&'static str>),
    InvalidParam(&'static str),
    AtLeastOne,
    /// `GET /keys` with something that is not a fingerprint.
    BadFingerprint,
    Body(BodyError),
    NoRoute,
    /// `pagination=keyset` ordered by something other than the id.
    KeysetUnavailable,
    /// A parameter outside its allowed values, as Grape's `values:` words it.
    NotAValue(&'static str),
    /// The user's request budget is spent (`http::rate`).
    RateLimited(crate::http::rate::Budget),
}

pub(super) const NOT_FOUND: &str = "404 Not found";
pub(super) const DEPLOY_KEY_NOT_FOUND: &str = "404 Deploy key Not Found";

impl GlError {
    pub(super) fn core(err: Error) -> GlError {
        GlError::Core {
            err,
            key_missing: NOT_FOUND,
            nested: true,
        }
    }

    pub(super) fn key_missing(self, text: &'static str) -> GlError {
        match self {
            GlError::Core { err, nested, .. } => GlError::Core {
                err,
                key_missing: text,
                nested,
            },
            other => other,
        }
    }

    pub(super) fn top_level(self) -> GlError {
        match self {
            GlError::Core {
                err, key_missing, ..
            } => GlError::Core {
                err,
                key_missing,
                nested: false,
            },
            other => other,
        }
    }
}

impl From<Error> for GlError {
    fn from(err: Error) -> Self {
        GlError::core(err)
    }
}

impl From<BodyError> for GlError {
    fn from(err: BodyError) -> Self {
        GlError::Body(err)
    }
}

impl std::fmt::Display for GlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

fn key_messages(err: &KeyError) -> (String, bool) {
    // The bool says whether GitLab would add `fingerprint_sha256: cannot be generated`.
    match err {
        KeyError::Blank => ("can't be blank".into(), true),
        KeyError::TooLong => ("is too long (maximum is 5000 characters)".into(), false),
        KeyError::Private => (
            "is a private key. Paste the public key (the .pub file) instead; the private key was not stored"
                .into(),
            false,
        ),
        KeyError::Malformed | KeyError::TypeMismatch => ("is invalid".into(), true),
        KeyError::ForbiddenType => (
            "type is forbidden. Must be RSA, ECDSA, ED25519, ECDSA_SK, or ED25519_SK".into(),
            false,
        ),
        KeyError::TooSmall { min } => (format!("must be at least {min} bits"), false),
    }
}

fn model_error(nested: bool, fields: Vec<(&str, String)>) -> Value {
    let mut map = serde_json::Map::new();
    for (field, message) in fields {
        let name = if nested {
            format!("deploy_key.{field}")
        } else {
            field.to_string()
        };
        map.insert(name, json!([message]));
    }
    json!({ "message": map })
}

impl ResponseError for GlError {
    fn status_code(&self) -> StatusCode {
        match self {
            GlError::Core { err, .. } => match err {
                Error::NotFound(_) => StatusCode::NOT_FOUND,
                Error::Unauthorized => StatusCode::UNAUTHORIZED,
                Error::Forbidden(_) | Error::InsufficientScope => StatusCode::FORBIDDEN,
                Error::Conflict(Conflict::ChangedSince) => StatusCode::PRECONDITION_FAILED,
                Error::Invalid { .. } | Error::Conflict(_) => StatusCode::BAD_REQUEST,
                Error::Busy => StatusCode::SERVICE_UNAVAILABLE,
                Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            GlError::Body(BodyError::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            GlError::NoRoute => StatusCode::NOT_FOUND,
            GlError::KeysetUnavailable => StatusCode::METHOD_NOT_ALLOWED,
            GlError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let body = match self {
            GlError::Core {
                err,
                key_missing,
                nested,
            } => match err {
                Error::NotFound(Missing::Repository) => json!({"message": "404 Project Not Found"}),
                Error::NotFound(Missing::User) => json!({"message": "404 User Not Found"}),
                Error::NotFound(Missing::Namespace) => json!({"message": "404 Group Not Found"}),
                Error::NotFound(Missing::Key) => json!({ "message": key_missing }),
                Error::NotFound(_) => json!({"message": NOT_FOUND}),
                Error::Unauthorized => json!({"message": "401 Unauthorized"}),
                Error::Forbidden(Denied::NoCommonRepository) => {
                    json!({"message": "403 Forbidden - No common authorized project found"})
                }
                Error::Forbidden(_) => json!({"message": "403 Forbidden"}),
                Error::InsufficientScope => json!({
                    "error": "insufficient_scope",
                    "error_description": "The request requires higher privileges than provided by the access token.",
                    "scope": "api"
                }),
                Error::Invalid { field, problem } => {
                    let message = match problem {
                        Problem::Key(k) => {
                            let (text, no_fingerprint) = key_messages(k);
                            let mut fields = vec![("key", text)];
                            if no_fingerprint {
                                fields.push(("fingerprint_sha256", "cannot be generated".into()));
                            }
                            return json_response(status, &model_error(*nested, fields));
                        }
                        Problem::Blank => "can't be blank".to_string(),
                        Problem::TooLong { max } => {
                            format!("is too long (maximum is {max} characters)")
                        }
                        Problem::Expired => "has expired".to_string(),
                        Problem::Format(what) => format!("is invalid (expected {what})"),
                    };
                    model_error(*nested, vec![(field.as_str(), message)])
                }
                Error::Conflict(Conflict::UserExists | Conflict::RepositoryExists) => {
                    json!({"message": "409 Conflict"})
                }
                Error::Conflict(Conflict::ChangedSince) => {
                    json!({"message": "412 Precondition Failed"})
                }
                Error::Conflict(_) => model_error(
                    *nested,
                    vec![("fingerprint_sha256", "has already been taken".into())],
                ),
                Error::Busy => json!({"message": "503 Service Unavailable"}),
                Error::Internal(_) => json!({"message": "500 Internal Server Error"}),
            },
            GlError::Missing(names) => {
                let each: Vec<String> = names.iter().map(|n| format!("{n} is missing")).collect();
                json!({ "error": each.join(", ") })
            }
            GlError::InvalidParam(name) => json!({ "error": format!("{name} is invalid") }),
            GlError::AtLeastOne => json!({
                "error": "title, can_push are missing, at least one parameter must be provided"
            }),
            GlError::Body(BodyError::TooLarge) => {
                json!({"message": "413 Request Entity Too Large"})
            }
            GlError::Body(err) => json!({ "error": err.to_string() }),
            GlError::BadFingerprint => json!({"message": "Failed to return the key"}),
            GlError::NoRoute => json!({"error": "404 Not Found"}),
            GlError::KeysetUnavailable => {
                json!({"error": "Keyset pagination is not yet available for this type of request"})
            }
            GlError::NotAValue(name) => {
                json!({ "error": format!("{name} does not have a valid value") })
            }
            GlError::RateLimited(budget) => {
                // Rack::Attack's throttled answer; `rate::stamp` adds the `RateLimit-*` headers.
                return HttpResponse::TooManyRequests()
                    .content_type("text/plain")
                    .insert_header((actix_web::http::header::RETRY_AFTER, budget.retry_after))
                    .body("Retry later\n");
            }
        };
        with_retry_after(json_response(status, &body))
    }
}

pub(super) type Reply = Result<HttpResponse, GlError>;
