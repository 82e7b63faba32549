//! CodeArts' error shapes: the code catalogue, the flat v4 body and the v1/v2 envelope.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::core::{Conflict, Error, Field, KeyError, Missing, Problem};
use crate::http::BodyError;

/// Every failure a CodeArts route can answer. The code catalogue lives in `describe` (and in
/// dialects/codearts.yaml and docs/codearts.md, which must agree with it).
#[derive(Debug)]
pub(super) enum CaError {
    Core(Error),
    /// The SDK-HMAC-SHA256 signature did not verify (any reason: the reason is only logged).
    Signature,
    NoCredentials,
    /// An X-Auth-Token that is unknown, expired or revoked.
    BadToken,
    /// A valid token and a valid signature of two different users.
    DifferentUsers,
    /// A parameter or body field that is missing, of the wrong type or out of range.
    Param(String),
    TooLarge,
    /// The body did not arrive within `--body-timeout` (answered by `http::limits`, before routing).
    BodyTimeout,
    ProjectMissing,
    NoRoute,
    /// The user's request budget is spent (`http::rate`); the window ends in this many seconds.
    Throttled {
        limit: u64,
        window: u64,
        retry_after: u64,
    },
    /// The client's address is banned for failed logins, for this many more seconds.
    Banned(u64),
}

/// The shape v1 and v2 answer errors in: `{"status":"failed","result":null,"error":{…}}`.
#[derive(Debug)]
pub(super) struct Enveloped(pub(super) CaError);

impl From<Error> for CaError {
    fn from(err: Error) -> Self {
        CaError::Core(err)
    }
}

impl From<BodyError> for CaError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge => CaError::TooLarge,
            BodyError::BadQuery => CaError::Param("The query string is not valid.".into()),
            BodyError::BadJson | BodyError::BadForm => {
                CaError::Param("The request body must be a JSON object.".into())
            }
        }
    }
}

impl std::fmt::Display for CaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::fmt::Display for Enveloped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// API Gateway's throttling code (Huawei Cloud documents it as `APIG.0308`; keygate's gateway
/// codes keep the `APIGW` spelling of `APIGW.0301`).
const THROTTLED: &str = "APIGW.0308";

const FORBIDDEN: &str =
    "Insufficient permissions. Apply for the required permissions and try again.";

impl CaError {
    /// Status, code and message. Messages never contain the request's key text or credentials.
    pub(super) fn describe(&self) -> (StatusCode, &'static str, Cow<'static, str>) {
        use StatusCode as S;
        let (status, code, message): (StatusCode, &'static str, Cow<'static, str>) = match self {
            CaError::Signature => (
                S::UNAUTHORIZED,
                "APIGW.0301",
                "Incorrect IAM authentication information: verify aksk signature fail".into(),
            ),
            CaError::NoRoute => (
                S::NOT_FOUND,
                "APIGW.0101",
                "The API does not exist or has not been published in the environment.".into(),
            ),
            CaError::NoCredentials => (
                S::UNAUTHORIZED,
                "DEV.00000001",
                "Authentication required: sign the request with an access key (SDK-HMAC-SHA256) or send X-Auth-Token."
                    .into(),
            ),
            CaError::BadToken => (
                S::UNAUTHORIZED,
                "DEV.00000003",
                "Authentication information expired or invalid.".into(),
            ),
            CaError::DifferentUsers => (
                S::UNAUTHORIZED,
                "DEV.00000004",
                "The X-Auth-Token and the signing access key belong to different users.".into(),
            ),
            CaError::Param(message) => (S::BAD_REQUEST, "CH.00100001", message.clone().into()),
            CaError::TooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "CH.00100006",
                "The request body is too large (maximum is 64 KiB).".into(),
            ),
            CaError::BodyTimeout => (
                S::REQUEST_TIMEOUT,
                "CH.00000408",
                "The request body was not received in time.".into(),
            ),
            CaError::ProjectMissing => (
                S::NOT_FOUND,
                "CH.00402004",
                "The project does not exist. Check and try again.".into(),
            ),
            CaError::Throttled { limit, window, .. } => (
                S::TOO_MANY_REQUESTS,
                THROTTLED,
                format!(
                    "The throttling threshold has been reached: policy user over ratelimit,limit:{limit},time:{window} seconds"
                )
                .into(),
            ),
            CaError::Banned(_) => (
                S::TOO_MANY_REQUESTS,
                THROTTLED,
                "The throttling threshold has been reached: too many failed authentications from this address".into(),
            ),
            CaError::Core(err) => describe_core(err),
        };
        (status, code, message)
    }

    /// Errors API Gateway itself would answer, before any service: the same flat shape on every
    /// version, as Huawei Cloud sends them.
    pub(super) fn is_gateways(&self) -> bool {
        matches!(
            self,
            CaError::Signature | CaError::NoRoute | CaError::Throttled { .. } | CaError::Banned(_)
        )
    }

    pub(super) fn render(&self, enveloped: bool) -> HttpResponse {
        let (status, code, message) = self.describe();
        let body = if enveloped && !self.is_gateways() {
            json!({"status": "failed", "result": null, "error": {"code": code, "message": message}})
        } else {
            json!({"error_code": code, "error_msg": message})
        };
        let mut res = crate::dialect::with_retry_after(crate::dialect::json(status, &body));
        if let CaError::Throttled {
            retry_after: wait, ..
        }
        | CaError::Banned(wait) = self
        {
            res.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(*wait),
            );
        }
        res
    }

    /// Sends a missing namespace on a `/projects/…` route to its own code.
    pub(super) fn for_project(self) -> CaError {
        match self {
            CaError::Core(Error::NotFound(Missing::Namespace)) => CaError::ProjectMissing,
            other => other,
        }
    }
}

fn describe_core(err: &Error) -> (StatusCode, &'static str, Cow<'static, str>) {
    use StatusCode as S;
    match err {
        Error::NotFound(Missing::Key) => (
            S::NOT_FOUND,
            "CH.00402002",
            "The deploy key does not exist in the repository.".into(),
        ),
        Error::NotFound(Missing::Namespace) => (
            S::NOT_FOUND,
            "CH.00402003",
            "The group does not exist. Check and try again.".into(),
        ),
        Error::NotFound(_) => (
            S::NOT_FOUND,
            "CH.00402000",
            "The repository does not exist. Check and try again.".into(),
        ),
        // Core operations never authenticate; a stray Unauthorized means the token went bad.
        Error::Unauthorized => (
            S::UNAUTHORIZED,
            "DEV.00000003",
            "Authentication information expired or invalid.".into(),
        ),
        Error::Forbidden(_) => (S::FORBIDDEN, "CH.004403", FORBIDDEN.into()),
        Error::InsufficientScope => (
            S::FORBIDDEN,
            "CH.004403",
            "Insufficient permissions: the X-Auth-Token is read-only.".into(),
        ),
        Error::Invalid {
            problem: Problem::Key(key),
            ..
        } => describe_key(key),
        Error::Invalid {
            field: Field::Key, ..
        } => (S::BAD_REQUEST, "CH.00100002", "Invalid deploy key.".into()),
        Error::Invalid {
            field: Field::Title,
            problem,
        } => (
            S::BAD_REQUEST,
            "CH.00100001",
            match problem {
                Problem::TooLong { max } => {
                    format!("key_title is too long (maximum is {max} characters).").into()
                }
                Problem::Format(what) => format!("key_title must be {what}.").into(),
                _ => "key_title must not be blank.".into(),
            },
        ),
        Error::Invalid { field, .. } => (
            S::BAD_REQUEST,
            "CH.00100001",
            format!("{} is invalid.", field.as_str()).into(),
        ),
        Error::Conflict(Conflict::RequestUsed) => (
            S::CONFLICT,
            "DEV.00000005",
            "This signed request was used before and changed nothing now. Sign it again (a new X-Sdk-Date) and resend it."
                .into(),
        ),
        Error::Conflict(Conflict::KeyOnRepository) => (
            S::BAD_REQUEST,
            "CH.00402001",
            "The deploy key already exists in this repository.".into(),
        ),
        Error::Conflict(_) => (
            S::BAD_REQUEST,
            "CH.00402005",
            "The deploy key is already used by a repository you cannot manage.".into(),
        ),
        Error::Busy => (
            S::SERVICE_UNAVAILABLE,
            "CH.00000503",
            "The service is busy. Try again later.".into(),
        ),
        Error::Internal(_) => (
            S::INTERNAL_SERVER_ERROR,
            "CH.00000500",
            "Internal error.".into(),
        ),
    }
}

fn describe_key(err: &KeyError) -> (StatusCode, &'static str, Cow<'static, str>) {
    let status = StatusCode::BAD_REQUEST;
    match err {
        KeyError::Private => (
            status,
            "CH.00100003",
            "The key is a private key. Submit the public key (the .pub file) instead; the private key was not stored."
                .into(),
        ),
        KeyError::TooSmall { min } => (
            status,
            "CH.00100004",
            format!("The deploy key is too weak: RSA keys must have at least {min} bits.").into(),
        ),
        KeyError::ForbiddenType => (
            status,
            "CH.00100005",
            "The deploy key type is not allowed. Use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa (or their security-key variants)."
                .into(),
        ),
        // KeyError's own texts name the problem and never include the key.
        other => (
            status,
            "CH.00100002",
            format!("Invalid deploy key: {other}.").into(),
        ),
    }
}

impl ResponseError for CaError {
    fn status_code(&self) -> StatusCode {
        self.describe().0
    }

    fn error_response(&self) -> HttpResponse {
        self.render(false)
    }
}

impl ResponseError for Enveloped {
    fn status_code(&self) -> StatusCode {
        self.0.describe().0
    }

    fn error_response(&self) -> HttpResponse {
        self.0.render(true)
    }
}

pub(super) type Reply = Result<HttpResponse, CaError>;
