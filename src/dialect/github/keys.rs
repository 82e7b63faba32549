//! GitHub's deploy-key routes: list, get, create, delete on `/repos/{owner}/{repo}/keys`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::api_root;
use super::auth::run;
use super::error::{DOCS_CREATE, DOCS_DELETE, DOCS_GET, DOCS_LIST, GhError, Reply, gh_json};
use super::wire::{KeyBody, key_body};
use super::{DEFAULT_PER_PAGE, MAX_PER_PAGE};
use crate::core::{
    Error, Gate, KeyPolicy, KeySubmission, MAX_TITLE_CHARS, Missing, PublicKey, RepoRef, Reuse,
};
use crate::http::{self, Pagination, Params, State, base_url, link_header};

/// `{owner}/{repo}`: GitHub has exactly two levels, so nested repositories are out of reach.
pub(super) fn repo_path(req: &HttpRequest) -> String {
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

pub(super) async fn list(req: HttpRequest, state: web::Data<State>) -> Reply {
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

pub(super) async fn get(req: HttpRequest, state: web::Data<State>) -> Reply {
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

pub(super) async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let body = http::read_body(payload).await;
    let path = repo_path(&req);
    let repo = RepoRef::Path(path.clone());
    // Read and parsed here, off the writer thread; judged only once the caller may write.
    let core = &state.core;
    let submitted =
        body.map(|body| submission(core.policy(), &body).map(|s| core.parse_submission(s)));
    let (linked, _) = run(&req, &state, DOCS_CREATE, move |core, who| {
        // Who may write here is settled before the body is looked at, so an unknown repository
        // is a 404 and a reporter a 403 whatever they sent, as on GitHub.
        core.preflight(who, true, Gate::Manage(&repo))?;
        let submission = submitted??;
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

pub(super) async fn delete(req: HttpRequest, state: web::Data<State>) -> Reply {
    let repo = RepoRef::Path(repo_path(&req));
    let id = key_id(&req, DOCS_DELETE)?;
    run(&req, &state, DOCS_DELETE, move |core, who| {
        core.remove_key(who, &repo, id)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
