//! The GitLab v4 deploy-key API (and the legacy v3 `keys` routes), as python-gitlab and gitbeaker expect it.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;
use serde_json::{Value, json};

use super::{iso_millis, parse_time};
use crate::core::{
    Conflict, Core, Denied, DeployKey, Error, Gate, KeyError, KeySubmission, KeyWithRepos,
    LinkedKey, Missing, Paged, Principal, Problem, RepoRef, Repository, Reuse, UserRef,
};
use crate::http::{self, BodyError, Pagination, Params, State, base_url, blocking, link_header};

const OPENAPI: &str = include_str!("../../../dialects/gitlab.yaml");
const DEFAULT_PER_PAGE: u32 = 20;
/// Query parameters a `Link` URL keeps besides `page` and `per_page`.
const LINK_PARAMS: [&str; 1] = ["public"];
const MAX_PER_PAGE: u32 = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v4")
            .route("/openapi.yaml", web::get().to(openapi))
            .route("/deploy_keys", web::get().to(admin_list))
            .route("/deploy_keys", web::post().to(admin_create))
            .route("/keys", web::get().to(key_by_fingerprint))
            .route("/projects/{id}", web::get().to(project))
            .route("/projects/{id}/deploy_keys", web::get().to(list))
            .route("/projects/{id}/deploy_keys", web::post().to(create))
            .route("/projects/{id}/deploy_keys/{key_id}", web::get().to(get))
            .route("/projects/{id}/deploy_keys/{key_id}", web::put().to(update))
            .route(
                "/projects/{id}/deploy_keys/{key_id}",
                web::delete().to(delete),
            )
            .route(
                "/projects/{id}/deploy_keys/{key_id}/enable",
                web::post().to(enable),
            )
            .route(
                "/users/{user}/project_deploy_keys",
                web::get().to(user_keys),
            )
            .default_service(web::to(not_found)),
    );
    // GitLab 8.x-10.x served every route under both names; old scripts still use `keys`.
    for legacy in [
        "/api/v3/projects/{id}/keys",
        "/api/v3/projects/{id}/deploy_keys",
    ] {
        cfg.service(
            web::scope(legacy)
                .route("", web::get().to(v3_list))
                .route("", web::post().to(v3_create))
                .route("/{key_id}", web::get().to(v3_get))
                .route("/{key_id}", web::delete().to(v3_delete))
                .route("/{key_id}/enable", web::post().to(v3_enable))
                .route("/{key_id}/disable", web::delete().to(v3_delete)),
        );
    }
}

// ---------- errors ----------

/// Every failure a GitLab route can answer, rendered exactly as GitLab words it.
#[derive(Debug)]
enum GlError {
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
}

const NOT_FOUND: &str = "404 Not found";
const DEPLOY_KEY_NOT_FOUND: &str = "404 Deploy key Not Found";

impl GlError {
    fn core(err: Error) -> GlError {
        GlError::Core {
            err,
            key_missing: NOT_FOUND,
            nested: true,
        }
    }

    fn key_missing(self, text: &'static str) -> GlError {
        match self {
            GlError::Core { err, nested, .. } => GlError::Core {
                err,
                key_missing: text,
                nested,
            },
            other => other,
        }
    }

    fn top_level(self) -> GlError {
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
                Error::Invalid { .. } | Error::Conflict(_) => StatusCode::BAD_REQUEST,
                Error::Busy => StatusCode::SERVICE_UNAVAILABLE,
                Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            GlError::Body(BodyError::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            GlError::NoRoute => StatusCode::NOT_FOUND,
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
                            return super::json(status, &model_error(*nested, fields));
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
        };
        super::with_retry_after(super::json(status, &body))
    }
}

type Reply = Result<HttpResponse, GlError>;

// ---------- request parsing ----------

/// A parsed request: its parameters and the caller's token (not yet checked).
struct Call {
    params: Params,
    token: Option<String>,
    /// Whether the route changes anything: a read-only token is refused before anything else.
    write: bool,
    request_id: String,
}

/// What a route needs beyond a valid token (owned, to cross into the blocking pool).
enum Need {
    Token,
    Admin,
    Manage(RepoRef),
}

impl Call {
    fn read(req: &HttpRequest, body: &[u8]) -> Result<Call, GlError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let params = Params::parse(req.query_string(), content_type, body)?;
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let token = header("private-token")
            .or_else(|| http::authorization_token(req, &["bearer"]))
            .or_else(|| params.string("private_token").ok().flatten())
            .or_else(|| params.string("access_token").ok().flatten());
        Ok(Call {
            params,
            token,
            write: !matches!(*req.method(), Method::GET | Method::HEAD),
            request_id: http::request_id(req),
        })
    }

    fn query(req: &HttpRequest) -> Result<Call, GlError> {
        Call::read(req, b"")
    }

    async fn with_body(req: &HttpRequest, payload: web::Payload) -> Result<Call, GlError> {
        let body = http::read_body(payload).await?;
        Call::read(req, &body)
    }

    fn pagination(&self) -> Result<Pagination, GlError> {
        let page = self
            .params
            .integer("page")
            .map_err(|_| GlError::InvalidParam("page"))?;
        let per_page = self
            .params
            .integer("per_page")
            .map_err(|_| GlError::InvalidParam("per_page"))?;
        Ok(Pagination::new(
            page,
            per_page,
            DEFAULT_PER_PAGE,
            MAX_PER_PAGE,
        ))
    }

    fn string(&self, name: &'static str) -> Result<Option<String>, GlError> {
        self.params
            .string(name)
            .map_err(|_| GlError::InvalidParam(name))
    }

    fn boolean(&self, name: &'static str) -> Result<Option<bool>, GlError> {
        self.params
            .boolean(name)
            .map_err(|_| GlError::InvalidParam(name))
    }

    fn expires_at(&self) -> Result<Option<i64>, GlError> {
        match self.string("expires_at")? {
            None => Ok(None),
            Some(text) if text.trim().is_empty() => Ok(None),
            Some(text) => parse_time(&text)
                .map(Some)
                .ok_or(GlError::InvalidParam("expires_at")),
        }
    }

    /// `title`, `key`, `can_push` and `expires_at`, with Grape's "is missing" errors in its order.
    fn submission(&self) -> Result<KeySubmission, GlError> {
        let key = self.string("key")?;
        let title = self.string("title")?;
        let missing: Vec<&'static str> = [("key", key.is_none()), ("title", title.is_none())]
            .into_iter()
            .filter_map(|(n, absent)| absent.then_some(n))
            .collect();
        if !missing.is_empty() {
            return Err(GlError::Missing(missing));
        }
        Ok(KeySubmission {
            title: title.unwrap_or_default(),
            // GitLab strips the key before anything else.
            key: key.unwrap_or_default().trim().to_string(),
            can_push: self.boolean("can_push")?.unwrap_or(false),
            expires_at: self.expires_at()?,
        })
    }

    /// Authenticates, then either runs `op` with the parsed `args` or, when they did not parse,
    /// reports that only after `need` holds: GitLab answers 401, then 403/404, then 400. One hop
    /// to the blocking pool either way.
    async fn run<A, T, F>(
        &self,
        state: &web::Data<State>,
        need: Need,
        args: Result<A, GlError>,
        op: F,
    ) -> Result<T, GlError>
    where
        A: Send + 'static,
        T: Send + 'static,
        F: FnOnce(&Core, &Principal, A) -> Result<T, Error> + Send + 'static,
    {
        let core = state.core.clone();
        let token = self.token.clone();
        let write = self.write;
        let outcome = blocking(move || {
            let who = core.authenticate_token(token.as_deref().ok_or(Error::Unauthorized)?)?;
            Ok(match args {
                Ok(args) => op(&core, &who, args).map_err(GlError::core),
                Err(bad) => {
                    let gate = match &need {
                        Need::Token => Gate::Authenticated,
                        Need::Admin => Gate::Admin,
                        Need::Manage(repo) => Gate::Manage(repo),
                    };
                    core.preflight(&who, write, gate)
                        .map_err(GlError::core)
                        .and(Err(bad))
                }
            })
        })
        .await;
        let result = outcome.unwrap_or_else(|err| Err(GlError::core(err)));
        if let Err(GlError::Core {
            err: err @ Error::Internal(_),
            ..
        }) = &result
        {
            http::log_internal(&self.request_id, err);
        }
        result
    }
}

/// `:id` is a numeric id or a URL-encoded path, matched as one raw segment so `%2F` is not split.
fn project_ref(req: &HttpRequest) -> RepoRef {
    let raw = req.match_info().get("id").unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    match decoded.parse::<i64>() {
        Ok(id) => RepoRef::Id(id),
        Err(_) => RepoRef::Path(decoded.into_owned()),
    }
}

fn key_id(req: &HttpRequest) -> Result<i64, GlError> {
    req.match_info()
        .get("key_id")
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(GlError::InvalidParam("key_id"))
}

// ---------- rendering ----------

#[derive(Serialize)]
struct KeyBody<'a> {
    id: i64,
    title: &'a str,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    key: &'a str,
    usage_type: &'static str,
    fingerprint: &'a str,
    fingerprint_sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    can_push: Option<bool>,
}

fn key_body(key: &DeployKey, can_push: Option<bool>) -> KeyBody<'_> {
    KeyBody {
        id: key.id,
        title: &key.title,
        created_at: iso_millis(key.created_at),
        expires_at: key.expires_at.map(iso_millis),
        last_used_at: key.last_used_at.map(iso_millis),
        key: &key.key_text,
        usage_type: "auth_and_signing",
        fingerprint: &key.fingerprint_md5,
        fingerprint_sha256: &key.fingerprint_sha256,
        can_push,
    }
}

fn linked_body(linked: &LinkedKey) -> KeyBody<'_> {
    key_body(&linked.key, Some(linked.can_push))
}

#[derive(Serialize)]
struct ProjectIdentity<'a> {
    id: i64,
    description: Option<&'a str>,
    name: &'a str,
    name_with_namespace: String,
    path: &'a str,
    path_with_namespace: &'a str,
    created_at: String,
}

fn identity(repo: &Repository) -> ProjectIdentity<'_> {
    ProjectIdentity {
        id: repo.id,
        description: None,
        name: &repo.name,
        name_with_namespace: repo.full_path.replace('/', " / "),
        path: &repo.name,
        path_with_namespace: &repo.full_path,
        created_at: iso_millis(repo.created_at),
    }
}

/// A 200 list with GitLab's pagination headers and an absolute `Link` on the client-visible base.
fn paged<T: Serialize>(
    req: &HttpRequest,
    state: &State,
    call: &Call,
    page: Pagination,
    total: u64,
    items: &[T],
) -> HttpResponse {
    let last = page.total_pages(total);
    let mut rels: Vec<(&str, u64)> = Vec::with_capacity(4);
    // Past the last page there is no previous page either, as Kaminari has it.
    let prev = (page.page > 1 && page.page <= last).then(|| page.page - 1);
    let next = (page.page < last).then_some(page.page + 1);
    if let Some(p) = prev {
        rels.push(("prev", p));
    }
    if let Some(n) = next {
        rels.push(("next", n));
    }
    rels.push(("first", 1));
    rels.push(("last", last));
    // Only list filters are carried into the links: credentials (`private_token`, `job_token`, …)
    // and `sudo` may ride in the query, and a URL handed back must never repeat them.
    let query: Vec<(String, String)> = call
        .params
        .text_pairs()
        .into_iter()
        .filter(|(k, _)| LINK_PARAMS.contains(&k.as_str()))
        .collect();
    let link = link_header(
        &base_url(req, state),
        req.path(),
        &query,
        page.per_page,
        &rels,
    );
    let mut res = super::json(StatusCode::OK, items);
    let headers = res.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(header::HeaderName::from_static(name), v);
        }
    };
    set("x-page", page.page.to_string());
    set("x-per-page", page.per_page.to_string());
    set(
        "x-next-page",
        next.map(|n| n.to_string()).unwrap_or_default(),
    );
    set(
        "x-prev-page",
        prev.map(|p| p.to_string()).unwrap_or_default(),
    );
    set("x-total", total.to_string());
    set("x-total-pages", last.to_string());
    set("link", link);
    res
}

// ---------- operations shared by v4 and v3 ----------

async fn op_list(
    req: &HttpRequest,
    state: &web::Data<State>,
) -> Result<(Call, Pagination, Paged<LinkedKey>), GlError> {
    let call = Call::query(req)?;
    let repo = project_ref(req);
    let (page, keys) = call
        .run(
            state,
            Need::Manage(repo.clone()),
            call.pagination(),
            move |core, who, page| Ok((page, core.list_keys(who, &repo, page.window())?)),
        )
        .await?;
    Ok((call, page, keys))
}

async fn op_get(req: &HttpRequest, state: &web::Data<State>) -> Result<LinkedKey, GlError> {
    let call = Call::query(req)?;
    let repo = project_ref(req);
    call.run(
        state,
        Need::Manage(repo.clone()),
        key_id(req),
        move |core, who, id| core.get_key(who, &repo, id),
    )
    .await
}

async fn op_create(
    req: &HttpRequest,
    state: &web::Data<State>,
    payload: web::Payload,
) -> Result<LinkedKey, GlError> {
    let call = Call::with_body(req, payload).await?;
    let repo = project_ref(req);
    let args = call.submission();
    call.run(
        state,
        Need::Manage(repo.clone()),
        args,
        move |core, who, submission| {
            core.add_key(who, &repo, &submission, Reuse::Join)
                .map(|(linked, _)| linked)
        },
    )
    .await
}

/// A JSON body on DELETE (gitbeaker sends `{}`) is read and ignored.
async fn op_delete(
    req: &HttpRequest,
    state: &web::Data<State>,
    payload: web::Payload,
) -> Result<LinkedKey, GlError> {
    let call = Call::with_body(req, payload).await?;
    let repo = project_ref(req);
    call.run(
        state,
        Need::Manage(repo.clone()),
        key_id(req),
        move |core, who, id| core.remove_key(who, &repo, id),
    )
    .await
    .map_err(|e| e.key_missing(DEPLOY_KEY_NOT_FOUND))
}

async fn op_enable(
    req: &HttpRequest,
    state: &web::Data<State>,
    payload: web::Payload,
) -> Result<DeployKey, GlError> {
    let call = Call::with_body(req, payload).await?;
    let repo = project_ref(req);
    call.run(
        state,
        Need::Manage(repo.clone()),
        key_id(req),
        move |core, who, id| core.enable_key(who, &repo, id),
    )
    .await
    .map_err(|e| e.key_missing(DEPLOY_KEY_NOT_FOUND))
}

// ---------- v4 handlers ----------

async fn openapi() -> HttpResponse {
    super::openapi(OPENAPI)
}

async fn not_found() -> Reply {
    Err(GlError::NoRoute)
}

async fn project(req: HttpRequest, state: web::Data<State>) -> Reply {
    let repo_ref = project_ref(&req);
    let call = Call::query(&req)?;
    let repo = call
        .run(&state, Need::Token, Ok(()), move |core, who, ()| {
            core.repository(who, &repo_ref)
        })
        .await?;
    let base = base_url(&req, &state);
    let authority = base.split_once("://").map(|(_, h)| h).unwrap_or(&base);
    // Drop the port; `[v6]:port` keeps its brackets.
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if !port.contains(']') => h,
        _ => authority,
    };
    let ns = &repo.namespace;
    Ok(super::json(
        StatusCode::OK,
        &json!({
            "id": repo.id,
            "description": null,
            "name": repo.name,
            "name_with_namespace": repo.full_path.replace('/', " / "),
            "path": repo.name,
            "path_with_namespace": repo.full_path,
            "created_at": iso_millis(repo.created_at),
            "default_branch": "main",
            "visibility": "private",
            "web_url": format!("{base}/{}", repo.full_path),
            "ssh_url_to_repo": format!("git@{host}:{}.git", repo.full_path),
            "http_url_to_repo": format!("{base}/{}.git", repo.full_path),
            "namespace": {
                "id": ns.id,
                "name": ns.name,
                "path": ns.name,
                "kind": "group",
                "full_path": ns.full_path,
                "parent_id": ns.parent_id,
                "web_url": format!("{base}/groups/{}", ns.full_path),
            },
        }),
    ))
}

async fn list(req: HttpRequest, state: web::Data<State>) -> Reply {
    let (call, page, keys) = op_list(&req, &state).await?;
    let items: Vec<KeyBody> = keys.items.iter().map(linked_body).collect();
    Ok(paged(&req, &state, &call, page, keys.total, &items))
}

async fn get(req: HttpRequest, state: web::Data<State>) -> Reply {
    let linked = op_get(&req, &state).await?;
    Ok(super::json(StatusCode::OK, &linked_body(&linked)))
}

async fn create(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let linked = op_create(&req, &state, payload).await?;
    Ok(super::json(StatusCode::CREATED, &linked_body(&linked)))
}

async fn update(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let call = Call::with_body(&req, payload).await?;
    let repo = project_ref(&req);
    let args = key_id(&req).and_then(|id| {
        let title = call.string("title")?;
        let can_push = call.boolean("can_push")?;
        if title.is_none() && can_push.is_none() {
            return Err(GlError::AtLeastOne);
        }
        Ok((id, title, can_push))
    });
    let linked = call
        .run(
            &state,
            Need::Manage(repo.clone()),
            args,
            move |core, who, (id, title, can_push)| {
                core.update_key(who, &repo, id, title.as_deref(), can_push)
            },
        )
        .await?;
    Ok(super::json(StatusCode::OK, &linked_body(&linked)))
}

async fn delete(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    op_delete(&req, &state, payload).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn enable(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let key = op_enable(&req, &state, payload).await?;
    Ok(super::json(StatusCode::CREATED, &key_body(&key, None)))
}

#[derive(Serialize)]
struct AdminKeyBody<'a> {
    #[serde(flatten)]
    key: KeyBody<'a>,
    projects_with_write_access: Vec<ProjectIdentity<'a>>,
    projects_with_readonly_access: Vec<ProjectIdentity<'a>>,
}

fn admin_body(item: &KeyWithRepos) -> AdminKeyBody<'_> {
    let (key, repos) = item;
    let side = |write: bool| {
        repos
            .iter()
            .filter(|(_, can_push)| *can_push == write)
            .map(|(repo, _)| identity(repo))
            .collect()
    };
    AdminKeyBody {
        key: key_body(key, None),
        projects_with_write_access: side(true),
        projects_with_readonly_access: side(false),
    }
}

async fn admin_list(req: HttpRequest, state: web::Data<State>) -> Reply {
    let call = Call::query(&req)?;
    let args = call
        .pagination()
        .and_then(|page| Ok((page, call.boolean("public")?.unwrap_or(false))));
    let (page, all) = call
        .run(
            &state,
            Need::Admin,
            args,
            |core, who, (page, public_only)| {
                Ok((page, core.all_keys(who, public_only, page.window())?))
            },
        )
        .await?;
    let items: Vec<AdminKeyBody> = all.items.iter().map(admin_body).collect();
    Ok(paged(&req, &state, &call, page, all.total, &items))
}

async fn admin_create(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let call = Call::with_body(&req, payload).await?;
    let args = call.submission();
    let key = call
        .run(&state, Need::Admin, args, |core, who, submission| {
            core.create_instance_key(who, &submission)
        })
        .await
        .map_err(GlError::top_level)?;
    Ok(super::json(StatusCode::CREATED, &key_body(&key, None)))
}

async fn key_by_fingerprint(req: HttpRequest, state: web::Data<State>) -> Reply {
    let call = Call::query(&req)?;
    let args = match call.string("fingerprint") {
        Ok(Some(fp)) if fingerprint_shaped(&fp) => Ok(fp),
        Ok(Some(_)) => Err(GlError::BadFingerprint),
        Ok(None) => Err(GlError::Missing(vec!["fingerprint"])),
        Err(e) => Err(e),
    };
    let (key, owner, links) = call
        .run(&state, Need::Admin, args, |core, who, fingerprint| {
            core.key_by_fingerprint(who, &fingerprint)
        })
        .await
        .map_err(|e| e.key_missing("404 Key Not Found"))?;
    let projects: Vec<Value> = links
        .iter()
        .map(|l| {
            json!({
                "id": l.id,
                "deploy_key_id": key.id,
                "project_id": l.repo.id,
                "can_push": l.can_push,
                "created_at": iso_millis(l.created_at),
                "updated_at": iso_millis(l.created_at),
            })
        })
        .collect();
    let mut body = serde_json::to_value(key_body(&key, None)).unwrap_or_default();
    if let Value::Object(map) = &mut body {
        map.insert(
            "user".into(),
            owner.map_or(Value::Null, |u| {
                json!({"id": u.id, "username": u.username, "name": u.username, "state": "active"})
            }),
        );
        map.insert("deploy_keys_projects".into(), Value::Array(projects));
    }
    Ok(super::json(StatusCode::OK, &body))
}

/// `SHA256:` and 43 base64 characters, or 16 colon-separated hex pairs (optionally `MD5:`-prefixed).
fn fingerprint_shaped(fp: &str) -> bool {
    if let Some(b64) = fp.strip_prefix("SHA256:") {
        return b64.len() == 43
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    }
    let hex = fp.strip_prefix("MD5:").unwrap_or(fp);
    hex.len() == 47
        && hex
            .split(':')
            .all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn user_keys(req: HttpRequest, state: web::Data<State>) -> Reply {
    let call = Call::query(&req)?;
    let raw = req.match_info().get("user").unwrap_or_default();
    let name = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned();
    let target = match name.parse::<i64>() {
        Ok(id) => UserRef::Id(id),
        Err(_) => UserRef::Name(name),
    };
    let (page, keys) = call
        .run(
            &state,
            Need::Token,
            call.pagination(),
            move |core, who, page| Ok((page, core.keys_of_user(who, &target, page.window())?)),
        )
        .await?;
    let items: Vec<KeyBody> = keys.items.iter().map(|k| key_body(k, None)).collect();
    Ok(paged(&req, &state, &call, page, keys.total, &items))
}

// ---------- legacy v3: the same operations, the old short entity ----------

#[derive(Serialize)]
struct V3Key<'a> {
    id: i64,
    title: &'a str,
    key: &'a str,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    can_push: Option<bool>,
}

fn v3_body(key: &DeployKey, can_push: Option<bool>) -> V3Key<'_> {
    V3Key {
        id: key.id,
        title: &key.title,
        key: &key.key_text,
        created_at: iso_millis(key.created_at),
        can_push,
    }
}

fn v3_linked(linked: &LinkedKey) -> V3Key<'_> {
    v3_body(&linked.key, Some(linked.can_push))
}

async fn v3_list(req: HttpRequest, state: web::Data<State>) -> Reply {
    let (call, page, keys) = op_list(&req, &state).await?;
    let items: Vec<V3Key> = keys.items.iter().map(v3_linked).collect();
    Ok(paged(&req, &state, &call, page, keys.total, &items))
}

async fn v3_get(req: HttpRequest, state: web::Data<State>) -> Reply {
    let linked = op_get(&req, &state).await?;
    Ok(super::json(StatusCode::OK, &v3_linked(&linked)))
}

async fn v3_create(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let linked = op_create(&req, &state, payload).await?;
    Ok(super::json(StatusCode::CREATED, &v3_linked(&linked)))
}

/// v3 answered DELETE (and `disable`) with 200 and the key that was removed.
async fn v3_delete(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let linked = op_delete(&req, &state, payload).await?;
    Ok(super::json(StatusCode::OK, &v3_linked(&linked)))
}

async fn v3_enable(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let key = op_enable(&req, &state, payload).await?;
    Ok(super::json(StatusCode::CREATED, &v3_body(&key, None)))
}
