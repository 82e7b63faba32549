//! A CodeArts request read whole, authenticated (signature, token or both) and run on the core in
//! one hop, and the parameters and body fields the API takes.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use serde_json::Value;
use time::OffsetDateTime;

use super::error::CaError;
use crate::auth::aksk::SignedRequest;
use crate::core::{
    Conflict, Core, Error, Gate, KeySubmission, Principal, RepoRef, SingleUse, Window,
};
use crate::http::{self, Params, State, rate};

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;
/// Repository ids and offsets are int32 in the CodeArts API.
const MAX_INT32: i64 = i32::MAX as i64;
const MAX_APPLICATION_CHARS: usize = 255;

/// A request as it arrived, owned so it can travel to the blocking pool and be verified there
/// in the same hop as the core call.
pub(super) struct Call {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: web::Bytes,
    pub(super) signed: bool,
    pub(super) token: Option<String>,
    pub(super) request_id: String,
    /// The repository the path names, if it parses: a bad body is reported only to a caller
    /// who may manage it, after 401, 403 and 404, as the other dialects order their errors.
    pub(super) repository: Option<RepoRef>,
    /// Counts failed logins and spends the user's budget (`http::rate`).
    pub(super) caller: std::sync::Arc<rate::Caller>,
    /// For the audit trail; only a request that may change something has one.
    pub(super) origin: Option<std::sync::Arc<crate::core::Origin>>,
}

impl Call {
    pub(super) async fn read(req: &HttpRequest, payload: web::Payload) -> Result<Call, CaError> {
        let body = http::read_body(payload).await?;
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(name, value)| {
                // The SDK sends header values (a project id, say) as UTF-8 and signs their text,
                // so UTF-8 gives back exactly what it signed, non-ASCII included.
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let token = req
            .headers()
            .get(header::HeaderName::from_static("x-auth-token"))
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        Ok(Call {
            method: req.method().as_str().to_owned(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().unwrap_or_default().to_owned(),
            signed: req.headers().contains_key(header::AUTHORIZATION),
            headers,
            body,
            token,
            request_id: http::request_id(req),
            repository: repository(req).ok(),
            caller: rate::Caller::of(req),
            origin: (req.method() != actix_web::http::Method::GET)
                .then(|| http::origin(req, "codearts")),
        })
    }

    /// Authenticates, then runs `op` with the parsed arguments, all on the blocking pool. The
    /// arguments are checked only after authentication, so an unauthenticated caller learns
    /// nothing from parameter errors (API Gateway authenticates before the service parses).
    /// A signed change runs under `Core::single_use`: the same signed bytes change something at
    /// most once, and a second time get `Conflict::RequestUsed`.
    pub(super) async fn run<A, T, F>(
        self,
        state: &State,
        args: Result<A, CaError>,
        op: F,
    ) -> Result<T, CaError>
    where
        A: Send + 'static,
        T: Send + 'static,
        F: FnOnce(&Core, &Principal, A) -> Result<T, Error> + Send + 'static,
    {
        let core = state.core.clone();
        // A GET changes nothing (check-key is a POST), so it may read on the worker itself.
        let read_only = self.method == "GET";
        let query = self.query.clone();
        let work = move || {
            let result = self.authenticate(&core).and_then(|(who, single_use)| {
                let who = who.from_origin(self.origin.clone());
                let args = match (args, &self.repository) {
                    (Ok(args), _) => args,
                    (Err(bad), Some(repo)) => {
                        // check-key only reads, so a read-only token may make it.
                        let write = self.method != "GET" && !self.path.ends_with("/check-key");
                        core.preflight(&who, write, Gate::Manage(repo))
                            .map_err(CaError::Core)?;
                        return Err(bad);
                    }
                    (Err(bad), None) => return Err(bad),
                };
                let core = match single_use {
                    Some(request) => core.single_use(request),
                    None => core,
                };
                let outcome = op(&core, &who, args);
                if let Err(Error::Conflict(Conflict::RequestUsed)) = &outcome {
                    log::info!("request {}: a signature used before", self.request_id);
                }
                outcome.map_err(CaError::Core)
            });
            if let Err(CaError::Core(err @ Error::Internal(_))) = &result {
                http::log_internal(&self.request_id, err);
            }
            Ok(result)
        };
        if read_only {
            http::reading(&state.core, &query, work).await?
        } else {
            http::writing(&state.core, work).await?
        }
    }

    /// A signature is checked whenever `Authorization` is present, a token whenever
    /// `X-Auth-Token` is; with both, both must be valid and name the same user, and the token's
    /// scope applies (a read-only token keeps a signed request read-only).
    pub(super) fn authenticate(
        &self,
        core: &Core,
    ) -> Result<(Principal, Option<SingleUse>), CaError> {
        let caller = &self.caller;
        let outcome = self.identify(core);
        match &outcome {
            Err(CaError::Signature | CaError::BadToken | CaError::DifferentUsers) => {
                caller.failed()
            }
            Ok((who, _)) => caller
                .authenticated(who.user.id)
                .map_err(|b| CaError::Throttled {
                    limit: b.limit,
                    window: b.window,
                    retry_after: b.retry_after,
                })?,
            Err(_) => {}
        }
        outcome
    }

    fn identify(&self, core: &Core) -> Result<(Principal, Option<SingleUse>), CaError> {
        let signer = if self.signed {
            let headers: Vec<(&str, &str)> = self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let req = SignedRequest {
                method: &self.method,
                raw_path: &self.path,
                raw_query: &self.query,
                headers: &headers,
                body: &self.body,
            };
            match core.authenticate_signature(&req, OffsetDateTime::now_utc())? {
                Ok(signed) => Some(signed),
                Err(reason) => {
                    log::info!("request {}: signature refused: {reason}", self.request_id);
                    return Err(CaError::Signature);
                }
            }
        } else {
            None
        };
        let bearer = match &self.token {
            Some(token) => Some(core.authenticate_token(token).map_err(|e| match e {
                Error::Unauthorized => CaError::BadToken,
                other => CaError::Core(other),
            })?),
            None => None,
        };
        match (signer, bearer) {
            (Some((signer, single_use)), Some(bearer)) if signer.user.id == bearer.user.id => {
                Ok((bearer, single_use))
            }
            (Some(_), Some(_)) => Err(CaError::DifferentUsers),
            (Some(signed), None) => Ok(signed),
            // A token is no one-off: a script may send the same call with it twice.
            (None, Some(who)) => Ok((who, None)),
            (None, None) => Err(CaError::NoCredentials),
        }
    }
}

// ---------- parameters ----------

/// A path id in `1..=max`; `max` is named in the message only where the API bounds it (int32).
fn positive_int(req: &HttpRequest, name: &str, max: i64) -> Result<i64, CaError> {
    req.match_info()
        .get(name)
        .and_then(|raw| raw.parse::<i64>().ok())
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            CaError::Param(if max == i64::MAX {
                format!("{name} must be a positive integer.")
            } else {
                format!("{name} must be an integer from 1 to {max}.")
            })
        })
}

pub(super) fn repository(req: &HttpRequest) -> Result<RepoRef, CaError> {
    positive_int(req, "repository_id", MAX_INT32).map(RepoRef::Id)
}

pub(super) fn key_id(req: &HttpRequest) -> Result<i64, CaError> {
    positive_int(req, "key_id", i64::MAX)
}

pub(super) fn group_id(req: &HttpRequest) -> Result<i64, CaError> {
    positive_int(req, "group_id", i64::MAX)
}

/// A CodeArts project id: 32 hex digits (keygate's namespace uuid).
pub(super) fn project_id(req: &HttpRequest) -> Result<String, CaError> {
    req.match_info()
        .get("project_id")
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| CaError::Param("project_id must be 32 hexadecimal digits.".into()))
}

/// `offset` (0..2147483647, default 0) and `limit` (1..100, default 20); anything else is a 400.
pub(super) fn window(req: &HttpRequest) -> Result<Window, CaError> {
    let params = Params::from_query(req.query_string())?;
    let bounded = |name: &str, min: i64, max: i64, default: i64| {
        let bad = || CaError::Param(format!("{name} must be an integer from {min} to {max}."));
        match params.integer(name).map_err(|_| bad())? {
            None => Ok(default),
            Some(n) if (min..=max).contains(&n) => Ok(n),
            Some(_) => Err(bad()),
        }
    };
    Ok(Window {
        offset: bounded("offset", 0, MAX_INT32, 0)? as u64,
        limit: bounded("limit", 1, MAX_LIMIT, DEFAULT_LIMIT)? as u32,
    })
}

/// The JSON body's fields, strictly typed: the SDK never coerces, so neither does keygate.
pub(super) struct Body(Params);

impl Body {
    pub(super) fn parse(bytes: &[u8]) -> Result<Body, CaError> {
        // No content type: the body is read as JSON whatever the client declared.
        Ok(Body(Params::parse("", None, bytes)?))
    }

    pub(super) fn require_present(&self, names: &[&str]) -> Result<(), CaError> {
        let missing: Vec<&str> = names.iter().copied().filter(|n| !self.0.has(n)).collect();
        match missing.len() {
            0 => Ok(()),
            1 => Err(CaError::Param(format!("{} is missing.", missing[0]))),
            _ => Err(CaError::Param(format!(
                "{} are missing.",
                missing.join(", ")
            ))),
        }
    }

    pub(super) fn string(&self, name: &str) -> Result<String, CaError> {
        match self.0.raw(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(CaError::Param(format!("{name} must be a string."))),
        }
    }

    pub(super) fn boolean(&self, name: &str) -> Result<bool, CaError> {
        match self.0.raw(name) {
            Some(Value::Bool(b)) => Ok(*b),
            _ => Err(CaError::Param(format!("{name} must be a boolean."))),
        }
    }

    /// `AddDeployKeyRequestBody`: all four fields are required, as the CodeArts spec says.
    pub(super) fn add_request(&self) -> Result<(KeySubmission, String), CaError> {
        self.require_present(&["key_title", "key", "can_push", "application"])?;
        let submission = KeySubmission {
            title: self.string("key_title")?,
            key: self.string("key")?,
            can_push: self.boolean("can_push")?,
            expires_at: None,
        };
        let application = self.string("application")?;
        if application.chars().count() > MAX_APPLICATION_CHARS {
            return Err(CaError::Param(format!(
                "application is too long (maximum is {MAX_APPLICATION_CHARS} characters)."
            )));
        }
        Ok((submission, application))
    }

    /// `DeployKeyValueDto`: `{key}`.
    pub(super) fn check_request(&self) -> Result<String, CaError> {
        self.require_present(&["key"])?;
        self.string("key")
    }
}
