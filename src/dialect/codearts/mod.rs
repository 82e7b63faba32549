//! The Huawei Cloud CodeArts Repo deploy-key API (`/v1`, `/v2`, `/v4`), as the official SDKs call it.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, Resource, ResponseError, web};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::iso_millis;
use crate::auth::aksk::SignedRequest;
use crate::core::{
    Added, Conflict, Core, DeployKey, Error, Field, Gate, KeyError, KeySubmission, Missing,
    Principal, Problem, RepoRef, SingleUse, Window,
};
use crate::http::{self, BodyError, Params, State, blocking};

const OPENAPI: &str = include_str!("../../dialects/codearts.yaml");
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;
/// Repository ids and offsets are int32 in the CodeArts API.
const MAX_INT32: i64 = i32::MAX as i64;
const MAX_APPLICATION_CHARS: usize = 255;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // v1 spells the collection `deploy_keys`, v2 and v4 `deploy-keys`; v1 and v2 behave alike.
    for (version, collection) in [("/v1", "deploy_keys"), ("/v2", "deploy-keys")] {
        let keys = format!("/repositories/{{repository_id}}/{collection}");
        cfg.service(
            web::scope(version)
                .service(resource(&keys).post(add))
                .service(resource(&format!("{keys}/{{key_id}}")).delete(delete))
                .default_service(web::to(no_route)),
        );
    }
    let repo_keys = "/repositories/{repository_id}/deploy-keys";
    cfg.service(
        web::scope("/v4")
            .service(resource("/openapi.yaml").get(openapi))
            .service(resource(repo_keys).get(list_repository))
            // Before `{key_id}`, which would otherwise take `check-key` as an id.
            .service(resource(&format!("{repo_keys}/check-key")).post(check_repository))
            .service(resource(&format!("{repo_keys}/{{key_id}}")).delete(remove))
            .service(
                resource(&format!("{repo_keys}/{{key_id}}/submodules"))
                    .post(sync_submodules)
                    .delete(unsync_submodules),
            )
            .service(resource("/groups/{group_id}/deploy-keys").get(list_group))
            .service(resource("/groups/{group_id}/deploy-keys/check-key").post(check_group))
            .service(resource("/projects/{project_id}/deploy-keys").get(list_project))
            .default_service(web::to(no_route)),
    );
}

/// The 408 for a body that did not arrive in time on a CodeArts path: enveloped on v1 and v2.
pub fn body_timeout(path: &str) -> HttpResponse {
    let enveloped = ["/v1/", "/v2/"].iter().any(|p| path.starts_with(p));
    CaError::BodyTimeout.render(enveloped)
}

/// API Gateway matches an API on method and path together, so a known path with another method
/// is an unknown API too (404, not 405).
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(no_route))
}

// ---------- errors ----------

/// Every failure a CodeArts route can answer. The code catalogue lives in `describe` (and in
/// dialects/codearts.yaml and docs/codearts.md, which must agree with it).
#[derive(Debug)]
enum CaError {
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
}

/// The shape v1 and v2 answer errors in: `{"status":"failed","result":null,"error":{…}}`.
#[derive(Debug)]
struct Enveloped(CaError);

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

const FORBIDDEN: &str =
    "Insufficient permissions. Apply for the required permissions and try again.";

impl CaError {
    /// Status, code and message. Messages never contain the request's key text or credentials.
    fn describe(&self) -> (StatusCode, &'static str, Cow<'static, str>) {
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
            CaError::Core(err) => describe_core(err),
        };
        (status, code, message)
    }

    /// Errors API Gateway itself would answer, before any service: the same flat shape on every
    /// version, as Huawei Cloud sends them.
    fn is_gateways(&self) -> bool {
        matches!(self, CaError::Signature | CaError::NoRoute)
    }

    fn render(&self, enveloped: bool) -> HttpResponse {
        let (status, code, message) = self.describe();
        let body = if enveloped && !self.is_gateways() {
            json!({"status": "failed", "result": null, "error": {"code": code, "message": message}})
        } else {
            json!({"error_code": code, "error_msg": message})
        };
        super::with_retry_after(super::json(status, &body))
    }

    /// Sends a missing namespace on a `/projects/…` route to its own code.
    fn for_project(self) -> CaError {
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

type Reply = Result<HttpResponse, CaError>;

// ---------- authentication and the one core call ----------

/// A request as it arrived, owned so it can travel to the blocking pool and be verified there
/// in the same hop as the core call.
struct Call {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: web::Bytes,
    signed: bool,
    token: Option<String>,
    request_id: String,
    /// The repository the path names, if it parses: a bad body is reported only to a caller
    /// who may manage it, after 401, 403 and 404, as the other dialects order their errors.
    repository: Option<RepoRef>,
}

impl Call {
    async fn read(req: &HttpRequest, payload: web::Payload) -> Result<Call, CaError> {
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
            .get("x-auth-token")
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
        })
    }

    /// Authenticates, then runs `op` with the parsed arguments, all on the blocking pool. The
    /// arguments are checked only after authentication, so an unauthenticated caller learns
    /// nothing from parameter errors (API Gateway authenticates before the service parses).
    /// A signed change runs under `Core::single_use`: the same signed bytes change something at
    /// most once, and a second time get `Conflict::RequestUsed`.
    async fn run<A, T, F>(
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
        blocking(move || {
            let result = self.authenticate(&core).and_then(|(who, single_use)| {
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
        })
        .await?
    }

    /// A signature is checked whenever `Authorization` is present, a token whenever
    /// `X-Auth-Token` is; with both, both must be valid and name the same user, and the token's
    /// scope applies (a read-only token keeps a signed request read-only).
    fn authenticate(&self, core: &Core) -> Result<(Principal, Option<SingleUse>), CaError> {
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

fn repository(req: &HttpRequest) -> Result<RepoRef, CaError> {
    positive_int(req, "repository_id", MAX_INT32).map(RepoRef::Id)
}

fn key_id(req: &HttpRequest) -> Result<i64, CaError> {
    positive_int(req, "key_id", i64::MAX)
}

fn group_id(req: &HttpRequest) -> Result<i64, CaError> {
    positive_int(req, "group_id", i64::MAX)
}

/// A CodeArts project id: 32 hex digits (keygate's namespace uuid).
fn project_id(req: &HttpRequest) -> Result<String, CaError> {
    req.match_info()
        .get("project_id")
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| CaError::Param("project_id must be 32 hexadecimal digits.".into()))
}

/// `offset` (0..2147483647, default 0) and `limit` (1..100, default 20); anything else is a 400.
fn window(req: &HttpRequest) -> Result<Window, CaError> {
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
struct Body(Params);

impl Body {
    fn parse(bytes: &[u8]) -> Result<Body, CaError> {
        // No content type: the body is read as JSON whatever the client declared.
        Ok(Body(Params::parse("", None, bytes)?))
    }

    fn require_present(&self, names: &[&str]) -> Result<(), CaError> {
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

    fn string(&self, name: &str) -> Result<String, CaError> {
        match self.0.raw(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(CaError::Param(format!("{name} must be a string."))),
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, CaError> {
        match self.0.raw(name) {
            Some(Value::Bool(b)) => Ok(*b),
            _ => Err(CaError::Param(format!("{name} must be a boolean."))),
        }
    }

    /// `AddDeployKeyRequestBody`: all four fields are required, as the CodeArts spec says.
    fn add_request(&self) -> Result<(KeySubmission, String), CaError> {
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
    fn check_request(&self) -> Result<String, CaError> {
        self.require_present(&["key"])?;
        self.string("key")
    }
}

// ---------- rendering ----------

/// `2025-06-14T20:30:10.000+08:00` is the documented form; keygate answers in UTC.
fn codearts_time(ms: i64) -> String {
    let utc = iso_millis(ms);
    format!("{}+00:00", utc.trim_end_matches('Z'))
}

/// The v1/v2 `Key` model. `key_id` is a string there, although it is the same number v4 sends.
#[derive(Serialize)]
struct KeyResult<'a> {
    key_id: String,
    key_title: &'a str,
    key: &'a str,
    can_push: bool,
    created_at: String,
}

/// The v4 `DeployKeyDto`.
#[derive(Serialize)]
struct KeyItem<'a> {
    id: i64,
    title: &'a str,
    fingerprint: &'a str,
    created_at: String,
}

fn item(key: &DeployKey) -> KeyItem<'_> {
    KeyItem {
        id: key.id,
        title: &key.title,
        fingerprint: &key.fingerprint_md5,
        created_at: codearts_time(key.created_at),
    }
}

fn success<T: Serialize>(result: T) -> HttpResponse {
    super::json(
        StatusCode::OK,
        &json!({"result": result, "status": "success"}),
    )
}

/// A 200 array with the total in `X-Total`, the only paging header the SDK reads.
fn listed(items: &[DeployKey], total: u64) -> HttpResponse {
    let body: Vec<KeyItem> = items.iter().map(item).collect();
    let mut res = super::json(StatusCode::OK, &body);
    res.headers_mut()
        .insert(HeaderName::from_static("x-total"), HeaderValue::from(total));
    res
}

// ---------- v1 / v2 handlers ----------

async fn add(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Result<HttpResponse, Enveloped> {
    add_key(req, state, payload).await.map_err(Enveloped)
}

async fn add_key(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = repository(&req).and_then(|repo| {
        let body = Body::parse(&call.body)?;
        Ok((repo, body.add_request()?))
    });
    let linked = call
        .run(
            &state,
            args,
            |core, who, (repo, (submission, application))| {
                match core.add_key_with_application(who, &repo, &submission, &application) {
                    // CodeArts refuses a key the repository has already (the same key elsewhere is
                    // shared instead, keeping its id and title).
                    Ok((_, Added::Existing)) => Err(Error::Conflict(Conflict::KeyOnRepository)),
                    Ok((linked, _)) => Ok(linked),
                    // The same signed add again: with the key still there (a retry whose answer was
                    // lost, say) it is the usual duplicate; gone, it stays gone.
                    Err(Error::Conflict(Conflict::RequestUsed))
                        if core.repo_has_key(who, &repo, &submission.key)? =>
                    {
                        Err(Error::Conflict(Conflict::KeyOnRepository))
                    }
                    Err(err) => Err(err),
                }
            },
        )
        .await?;
    Ok(success(KeyResult {
        key_id: linked.key.id.to_string(),
        key_title: &linked.key.title,
        key: &linked.key.key_text,
        can_push: linked.can_push,
        created_at: codearts_time(linked.key.created_at),
    }))
}

async fn delete(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Result<HttpResponse, Enveloped> {
    remove_key(&req, &state, payload)
        .await
        // A JSON boolean: the SDK casts with bool(), which makes the string "false" true.
        .map(|()| success(true))
        .map_err(Enveloped)
}

async fn remove_key(
    req: &HttpRequest,
    state: &State,
    payload: web::Payload,
) -> Result<(), CaError> {
    let call = Call::read(req, payload).await?;
    let args = repository(req).and_then(|repo| Ok((repo, key_id(req)?)));
    call.run(state, args, |core, who, (repo, id)| {
        core.remove_key(who, &repo, id).map(drop)
    })
    .await
}

// ---------- v4 handlers ----------

async fn openapi() -> HttpResponse {
    super::openapi(OPENAPI)
}

async fn no_route() -> Reply {
    Err(CaError::NoRoute)
}

async fn remove(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    remove_key(&req, &state, payload).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_repository(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = repository(&req).and_then(|repo| Ok((repo, window(&req)?)));
    let page = call
        .run(&state, args, |core, who, (repo, window)| {
            core.list_keys(who, &repo, window)
        })
        .await?;
    let keys: Vec<DeployKey> = page.items.into_iter().map(|l| l.key).collect();
    Ok(listed(&keys, page.total))
}

async fn list_group(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = group_id(&req).and_then(|id| Ok((id, window(&req)?)));
    let page = call
        .run(&state, args, |core, who, (id, window)| {
            core.group_keys(who, id, window)
        })
        .await?;
    Ok(listed(&page.items, page.total))
}

async fn list_project(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = project_id(&req).and_then(|id| Ok((id, window(&req)?)));
    let page = call
        .run(&state, args, |core, who, (id, window)| {
            core.project_keys(who, &id, window)
        })
        .await
        .map_err(CaError::for_project)?;
    Ok(listed(&page.items, page.total))
}

async fn check_repository(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args =
        repository(&req).and_then(|repo| Ok((repo, Body::parse(&call.body)?.check_request()?)));
    let exists = call
        .run(&state, args, |core, who, (repo, key)| {
            core.repo_has_key(who, &repo, &key)
        })
        .await?;
    Ok(super::json(StatusCode::OK, &json!({ "exists": exists })))
}

async fn check_group(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = group_id(&req).and_then(|id| Ok((id, Body::parse(&call.body)?.check_request()?)));
    let exists = call
        .run(&state, args, |core, who, (id, key)| {
            core.group_has_key(who, id, &key)
        })
        .await?;
    Ok(super::json(StatusCode::OK, &json!({ "exists": exists })))
}

async fn sync_submodules(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = repository(&req).and_then(|repo| Ok((repo, key_id(&req)?)));
    call.run(&state, args, |core, who, (repo, id)| {
        core.sync_key_to_submodules(who, &repo, id)
    })
    .await?;
    // The SDK's response model has no fields; an empty body is what CodeArts sends.
    Ok(HttpResponse::Ok().finish())
}

async fn unsync_submodules(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = repository(&req).and_then(|repo| Ok((repo, key_id(&req)?)));
    call.run(&state, args, |core, who, (repo, id)| {
        core.remove_key_from_submodules(who, &repo, id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
