//! The GitHub REST deploy-key API (bare and under `/api/v3`), as PyGithub and octokit expect it.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, Resource, ResponseError, Scope, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Value, json};

use super::iso_seconds;
use crate::core::{
    Core, Error, Field, Gate, KeyError, KeyPolicy, KeySubmission, LinkedKey, MAX_TITLE_CHARS,
    Missing, Principal, Problem, PublicKey, RepoRef, Repository, Reuse, Role, User,
};
use crate::http::{
    self, BodyError, Pagination, Params, State, base_url, blocking, link_header, request_id,
};

const OPENAPI: &str = include_str!("../../../dialects/github.yaml");
/// Where GitHub Enterprise Server mounts the API; clients are also given the bare host.
const PREFIX: &str = "/api/v3";
const DEFAULT_PER_PAGE: u32 = 30;
const MAX_PER_PAGE: u32 = 100;
/// The versions GitHub serves; the first is selected when a client names none.
const API_VERSIONS: [&str; 2] = ["2022-11-28", "2026-03-10"];

const DOCS_REST: &str = "https://docs.github.com/rest";
const DOCS_VERSIONS: &str = "https://docs.github.com/rest/about-the-rest-api/api-versions";
const DOCS_LIST: &str = "https://docs.github.com/rest/deploy-keys/deploy-keys#list-deploy-keys";
const DOCS_CREATE: &str =
    "https://docs.github.com/rest/deploy-keys/deploy-keys#create-a-deploy-key";
const DOCS_GET: &str = "https://docs.github.com/rest/deploy-keys/deploy-keys#get-a-deploy-key";
const DOCS_DELETE: &str =
    "https://docs.github.com/rest/deploy-keys/deploy-keys#delete-a-deploy-key";
const DOCS_REPO: &str = "https://docs.github.com/rest/repos/repos#get-a-repository";
const DOCS_USER: &str = "https://docs.github.com/rest/users/users#get-the-authenticated-user";

const INVALID_KEY: &str = "key is invalid. You must supply a key in OpenSSH public key format";

/// Mounts the API twice, under `/api/v3` (GHE base URL) and bare. Must run after the GitLab
/// dialect: its legacy `/api/v3/projects/...` scopes have to match before this catch-all scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            .wrap(from_fn(github_headers))
            .service(resource("").route(web::get().to(meta)))
            .service(resource("/").route(web::get().to(meta)))
            .service(resource("/openapi.yaml").route(web::get().to(openapi)))
            .service(resource("/user").route(web::get().to(user)))
            .service(repos())
            .default_service(web::to(no_route)),
    );
    cfg.service(repos().wrap(from_fn(github_headers)));
    cfg.service(
        resource("/user")
            .route(web::get().to(user))
            .wrap(from_fn(github_headers)),
    );
    cfg.service(
        resource("/")
            .route(web::get().to(meta))
            .wrap(from_fn(github_headers)),
    );
}

/// A resource whose other methods answer GitHub's 404 (as GitHub does, e.g. PATCH on a key)
/// rather than actix's empty 405.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(no_route))
}

fn repos() -> Scope {
    web::scope("/repos")
        .service(resource("/{owner}/{repo}").route(web::get().to(repository)))
        .service(
            resource("/{owner}/{repo}/keys")
                .route(web::get().to(list))
                .route(web::post().to(create)),
        )
        .service(
            resource("/{owner}/{repo}/keys/{key_id}")
                .route(web::get().to(get))
                .route(web::delete().to(delete)),
        )
        .default_service(web::to(no_route))
}

/// Refuses API versions GitHub does not serve, and stamps every GitHub answer (errors and
/// unknown routes included) with the headers clients read.
async fn github_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = request_id(req.request());
    let asked = req
        .headers()
        .get("x-github-api-version")
        .map(|v| v.to_str().unwrap_or_default().trim().to_string());
    let selected = match asked {
        None => API_VERSIONS[0],
        Some(v) => match API_VERSIONS.iter().find(|known| **known == v) {
            Some(known) => known,
            None => {
                let res = req.into_response(GhError::BadVersion(v).error_response());
                return Ok(stamp(res, &id, API_VERSIONS[0]));
            }
        },
    };
    let res = next.call(req).await?.map_into_boxed_body();
    Ok(stamp(res, &id, selected))
}

fn stamp(mut res: ServiceResponse<BoxBody>, id: &str, version: &str) -> ServiceResponse<BoxBody> {
    // keygate does not rate-limit; a full budget keeps clients that pace themselves from waiting.
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() + 3600);
    let headers = res.headers_mut();
    for (name, value) in [
        ("x-github-request-id", id.to_string()),
        ("x-github-api-version-selected", version.to_string()),
        ("x-github-media-type", "github.v3; format=json".to_string()),
        ("x-ratelimit-limit", "5000".to_string()),
        ("x-ratelimit-remaining", "4999".to_string()),
        ("x-ratelimit-used", "1".to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-resource", "core".to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    res
}

// ---------- errors ----------

/// Every failure a GitHub route can answer, rendered as GitHub words it.
#[derive(Debug)]
enum GhError {
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
    Body(BodyError),
    NoRoute,
    BadVersion(String),
}

impl GhError {
    fn with_docs(self, docs: &'static str) -> GhError {
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
        GhError::Body(err)
    }
}

impl std::fmt::Display for GhError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

fn basic(message: &str, docs: &str, status: StatusCode) -> Value {
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
            GhError::Body(BodyError::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            GhError::Body(_) | GhError::BadVersion(_) => StatusCode::BAD_REQUEST,
            GhError::NoRoute => StatusCode::NOT_FOUND,
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
            GhError::Body(BodyError::TooLarge) => basic("Payload Too Large", DOCS_CREATE, status),
            GhError::Body(_) => basic("Problems parsing JSON", DOCS_CREATE, status),
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
        };
        super::with_retry_after(gh_json(status, &body))
    }
}

/// GitHub's `application/json; charset=utf-8` (octokit parses JSON only under a JSON type).
fn gh_json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> HttpResponse {
    let mut res = super::json(status, body);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    res
}

type Reply = Result<HttpResponse, GhError>;

// ---------- request parsing ----------

/// Authenticates the caller (`token X` or `Bearer X`, any case) and runs `op` on the blocking
/// pool, in one hop; errors are pointed at the operation's documentation.
async fn run<T, F>(
    req: &HttpRequest,
    state: &State,
    docs: &'static str,
    op: F,
) -> Result<T, GhError>
where
    F: FnOnce(&Core, &Principal) -> Result<T, GhError> + Send + 'static,
    T: Send + 'static,
{
    if !req.headers().contains_key(header::AUTHORIZATION) {
        return Err(GhError::NoToken);
    }
    let token = http::authorization_token(req, &["token", "bearer"]);
    let core = state.core.clone();
    let outcome = blocking(move || {
        // A header that carries no usable token is a failed login, as GitHub treats it.
        let who = token
            .ok_or(Error::Unauthorized)
            .and_then(|t| core.authenticate_token(&t));
        Ok(who.map_err(GhError::from).and_then(|who| op(&core, &who)))
    })
    .await
    .map_err(GhError::from)
    .and_then(|inner| inner);
    outcome.map_err(|err| {
        if let GhError::Core {
            err: internal @ Error::Internal(_),
            ..
        } = &err
        {
            http::log_internal(&request_id(req), internal);
        }
        err.with_docs(docs)
    })
}

/// `{owner}/{repo}`: GitHub has exactly two levels, so nested repositories are out of reach.
fn repo_path(req: &HttpRequest) -> String {
    let info = req.match_info();
    format!(
        "{}/{}",
        info.get("owner").unwrap_or_default(),
        info.get("repo").unwrap_or_default()
    )
}

fn key_id(req: &HttpRequest, docs: &'static str) -> Result<i64, GhError> {
    req.match_info()
        .get("key_id")
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(GhError::Core {
            err: Error::NotFound(Missing::Key),
            docs,
        })
}

/// The API root as this client reached it: `--public-url` or its Host, plus `/api/v3` when
/// the request came through that prefix, so URLs we hand out keep working for that client.
fn api_root(req: &HttpRequest, state: &State) -> String {
    let path = req.path();
    let through_prefix = path
        .strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    format!(
        "{}{}",
        base_url(req, state),
        if through_prefix { PREFIX } else { "" }
    )
}

/// The create body. GitHub reads it as JSON whatever its Content-Type and takes nothing from
/// the query, and it checks JSON types strictly (no `"true"` for `true`).
fn submission(policy: &KeyPolicy, body: &[u8]) -> Result<KeySubmission, GhError> {
    let params = Params::parse("", None, body)?;
    let key = match params.raw("key") {
        None => return Err(GhError::MissingField("key")),
        Some(Value::String(key)) => key.clone(),
        Some(_) => return Err(wrong_type("key", "string")),
    };
    let title = match params.raw("title") {
        None => None,
        Some(Value::String(title)) => Some(title.clone()),
        Some(_) => return Err(wrong_type("title", "string")),
    };
    let read_only = match params.raw("read_only") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(wrong_type("read_only", "boolean")),
    };
    let title = title
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| default_title(&key, policy));
    Ok(KeySubmission {
        title,
        key,
        can_push: !read_only,
        expires_at: None,
    })
}

fn wrong_type(field: &'static str, expected: &'static str) -> GhError {
    GhError::WrongType { field, expected }
}

/// GitHub names a key sent without a title after the key's comment; keygate falls back to the
/// key type when there is no comment.
fn default_title(key: &str, policy: &KeyPolicy) -> String {
    let Ok(parsed) = PublicKey::parse(key, policy) else {
        // The core refuses this key with its reason; the title is never looked at.
        return "deploy key".to_string();
    };
    let text = parsed.text();
    let comment = text
        .strip_prefix(&parsed.bare_text())
        .map(str::trim)
        .filter(|c| !c.is_empty());
    match comment {
        Some(c) => c.chars().take(MAX_TITLE_CHARS).collect(),
        None => parsed.kind().to_string(),
    }
}

// ---------- rendering ----------

#[derive(Serialize)]
struct KeyBody<'a> {
    id: i64,
    key: &'a str,
    url: String,
    title: &'a str,
    verified: bool,
    created_at: String,
    read_only: bool,
    added_by: Option<&'a str>,
    last_used: Option<String>,
    enabled: bool,
}

/// `keys_url` is the repository's `/keys` URL on the client's API root.
fn key_body<'a>(linked: &'a LinkedKey, keys_url: &str) -> KeyBody<'a> {
    let text = &linked.key.key_text;
    // GitHub shows `type base64`, without the comment keygate keeps for GitLab.
    let bare = text
        .match_indices(' ')
        .nth(1)
        .map_or(text.as_str(), |(at, _)| &text[..at]);
    KeyBody {
        id: linked.key.id,
        key: bare,
        url: format!("{keys_url}/{}", linked.key.id),
        title: &linked.key.title,
        verified: true,
        created_at: iso_seconds(linked.linked_at),
        read_only: !linked.can_push,
        added_by: linked.added_by.as_deref(),
        last_used: linked.key.last_used_at.map(iso_seconds),
        enabled: true,
    }
}

/// GitHub's legacy global node id: base64 of `<len>:<Type><id>`.
fn node_id(kind: &str, id: i64) -> String {
    STANDARD.encode(format!("{:03}:{kind}{id}", kind.len()))
}

fn repo_body(repo: &Repository, role: Option<Role>, root: &str, web: &str) -> Value {
    // Maintainers (and instance admins, who have no role) administer the repository on GitHub's
    // terms; a reporter reads and triages.
    let admin = role != Some(Role::Reporter);
    let url = format!("{root}/repos/{}", repo.full_path);
    let ns = &repo.namespace;
    json!({
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_path,
        "owner": {
            "login": ns.name,
            "id": ns.id,
            "node_id": node_id("Organization", ns.id),
            "type": "Organization",
            "site_admin": false,
        },
        "private": true,
        "visibility": "private",
        "description": null,
        "fork": false,
        "archived": false,
        "disabled": false,
        "default_branch": "main",
        "html_url": format!("{web}/{}", repo.full_path),
        "url": url,
        "keys_url": format!("{url}/keys{{/key_id}}"),
        "created_at": iso_seconds(repo.created_at),
        "updated_at": iso_seconds(repo.created_at),
        "permissions": {
            "admin": admin,
            "maintain": admin,
            "push": admin,
            "triage": true,
            "pull": true,
        },
    })
}

fn user_body(user: &User) -> Value {
    json!({
        "login": user.username,
        "id": user.id,
        "node_id": node_id("User", user.id),
        "type": "User",
        "site_admin": user.admin,
        "created_at": iso_seconds(user.created_at),
    })
}

/// GitHub's rels in GitHub's order; `None` when the request is for the only page there is.
fn pagination_link(
    req: &HttpRequest,
    state: &State,
    params: &Params,
    page: Pagination,
    total: u64,
) -> Option<String> {
    let last = page.total_pages(total);
    let mut rels: Vec<(&str, u64)> = Vec::with_capacity(4);
    if page.page > 1 {
        rels.push(("prev", (page.page - 1).min(last)));
    }
    if page.page < last {
        rels.push(("next", page.page + 1));
        rels.push(("last", last));
    }
    if page.page > 1 {
        rels.push(("first", 1));
    }
    if rels.is_empty() {
        return None;
    }
    // GitHub no longer takes tokens in the query; one sent there anyway is not copied into links.
    let query: Vec<(String, String)> = params
        .text_pairs()
        .into_iter()
        .filter(|(k, _)| k != "access_token")
        .collect();
    Some(link_header(
        &base_url(req, state),
        req.path(),
        &query,
        page.per_page,
        &rels,
    ))
}

// ---------- handlers ----------

async fn openapi() -> HttpResponse {
    super::openapi(OPENAPI)
}

async fn no_route() -> Reply {
    Err(GhError::NoRoute)
}

/// The API root's index of URL templates, answered without a token as GitHub does.
async fn meta(req: HttpRequest, state: web::Data<State>) -> Reply {
    let root = api_root(&req, &state);
    Ok(gh_json(
        StatusCode::OK,
        &json!({
            "current_user_url": format!("{root}/user"),
            "repository_url": format!("{root}/repos/{{owner}}/{{repo}}"),
        }),
    ))
}

async fn user(req: HttpRequest, state: web::Data<State>) -> Reply {
    let user = run(&req, &state, DOCS_USER, |_, who| Ok(who.user.clone())).await?;
    Ok(gh_json(StatusCode::OK, &user_body(&user)))
}

async fn repository(req: HttpRequest, state: web::Data<State>) -> Reply {
    let path = RepoRef::Path(repo_path(&req));
    let (repo, role) = run(&req, &state, DOCS_REPO, move |core, who| {
        Ok(core.repository_role(who, &path)?)
    })
    .await?;
    Ok(gh_json(
        StatusCode::OK,
        &repo_body(
            &repo,
            role,
            &api_root(&req, &state),
            &base_url(&req, &state),
        ),
    ))
}

async fn list(req: HttpRequest, state: web::Data<State>) -> Reply {
    // GitHub ignores paging parameters it cannot read rather than failing the request.
    let params = Params::from_query(req.query_string()).unwrap_or_default();
    let page = Pagination::new(
        params.integer("page").ok().flatten(),
        params.integer("per_page").ok().flatten(),
        DEFAULT_PER_PAGE,
        MAX_PER_PAGE,
    );
    let path = repo_path(&req);
    let repo = RepoRef::Path(path.clone());
    let keys = run(&req, &state, DOCS_LIST, move |core, who| {
        Ok(core.list_keys(who, &repo, page.window())?)
    })
    .await?;
    let keys_url = format!("{}/repos/{path}/keys", api_root(&req, &state));
    let items: Vec<KeyBody> = keys.items.iter().map(|k| key_body(k, &keys_url)).collect();
    let mut res = gh_json(StatusCode::OK, &items);
    if let Some(link) = pagination_link(&req, &state, &params, page, keys.total)
        && let Ok(value) = HeaderValue::from_str(&link)
    {
        res.headers_mut().insert(header::LINK, value);
    }
    Ok(res)
}

async fn get(req: HttpRequest, state: web::Data<State>) -> Reply {
    let path = repo_path(&req);
    let id = key_id(&req, DOCS_GET)?;
    let repo = RepoRef::Path(path.clone());
    let linked = run(&req, &state, DOCS_GET, move |core, who| {
        Ok(core.get_key(who, &repo, id)?)
    })
    .await?;
    let keys_url = format!("{}/repos/{path}/keys", api_root(&req, &state));
    Ok(gh_json(StatusCode::OK, &key_body(&linked, &keys_url)))
}

async fn create(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let body = http::read_body(payload).await;
    let path = repo_path(&req);
    let repo = RepoRef::Path(path.clone());
    let (linked, _) = run(&req, &state, DOCS_CREATE, move |core, who| {
        // Who may write here is settled before the body is looked at, so an unknown repository
        // is a 404 and a reporter a 403 whatever they sent, as on GitHub.
        core.preflight(who, true, Gate::Manage(&repo))?;
        let submission = submission(core.policy(), &body?)?;
        Ok(core.add_key(who, &repo, &submission, Reuse::Exclusive)?)
    })
    .await?;
    let keys_url = format!("{}/repos/{path}/keys", api_root(&req, &state));
    let body = key_body(&linked, &keys_url);
    let location = HeaderValue::from_str(&body.url);
    let mut res = gh_json(StatusCode::CREATED, &body);
    if let Ok(location) = location {
        res.headers_mut().insert(header::LOCATION, location);
    }
    Ok(res)
}

async fn delete(req: HttpRequest, state: web::Data<State>) -> Reply {
    let repo = RepoRef::Path(repo_path(&req));
    let id = key_id(&req, DOCS_DELETE)?;
    run(&req, &state, DOCS_DELETE, move |core, who| {
        core.remove_key(who, &repo, id)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
