//! Reading a GitLab request (parameters, token, pagination) and running it on the core in one hop.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::error::GlError;
use crate::core::{Core, Error, Gate, GroupRef, KeyRange, KeySubmission, Principal, RepoRef};
use crate::dialect::{json, json_bytes, parse_time};
use crate::http::{self, Pagination, Params, State, base_url, link_header, rate};

/// GitLab counts a list no further than this: above it `X-Total`, `X-Total-Pages` and
/// `rel="last"` are left out (Kaminari's `without_count`), and counting on would cost O(n).
pub(super) const COUNT_LIMIT: u64 = 10_000;
const DEFAULT_PER_PAGE: u32 = 20;
/// Query parameters a `Link` URL keeps besides `page` and `per_page`.
const LINK_PARAMS: [&str; 6] = [
    "public",
    "username",
    "created_after",
    "created_before",
    "entity_type",
    "entity_id",
];
const MAX_PER_PAGE: u32 = 100;

/// A parsed request: its parameters and the caller's token (not yet checked).
pub(super) struct Call {
    params: Params,
    token: Option<String>,
    /// Whether the route changes anything: a read-only token is refused before anything else.
    write: bool,
    request_id: String,
    /// The raw query string: how deep a list page goes decides where a read runs.
    query: String,
    /// Counts failed logins and spends the user's budget (`http::rate`).
    caller: std::sync::Arc<rate::Caller>,
    /// For the audit trail; only a request that may change something has one.
    origin: Option<std::sync::Arc<crate::core::Origin>>,
}

/// A keyset page as GitLab's `pagination=keyset` asks for it: ids past a cursor, one way.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keyset {
    /// Everything but `public_only`, which the route sets.
    pub(super) range: KeyRange,
    pub(super) per_page: u32,
}

/// What a route needs beyond a valid token (owned, to cross into the blocking pool).
pub(super) enum Need {
    Token,
    Admin,
    Manage(RepoRef),
}

impl Call {
    pub(super) fn read(req: &HttpRequest, body: &[u8]) -> Result<Call, GlError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let params = Params::parse(req.query_string(), content_type, body)?;
        // A `HeaderName`, not a `&str`: looking up by text parses (and allocates) the name anew.
        let header = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let token = header(header::HeaderName::from_static("private-token"))
            .or_else(|| http::authorization_token(req, &["bearer"]))
            .or_else(|| params.string("private_token").ok().flatten())
            .or_else(|| params.string("access_token").ok().flatten());
        let write = !matches!(*req.method(), Method::GET | Method::HEAD);
        Ok(Call {
            params,
            token,
            write,
            origin: write.then(|| http::origin(req, "gitlab")),
            request_id: http::request_id(req),
            query: req.query_string().to_string(),
            caller: rate::Caller::of(req),
        })
    }

    pub(super) fn query(req: &HttpRequest) -> Result<Call, GlError> {
        Call::read(req, b"")
    }

    pub(super) async fn with_body(
        req: &HttpRequest,
        payload: web::Payload,
    ) -> Result<Call, GlError> {
        let body = http::read_body(payload).await?;
        Call::read(req, &body)
    }

    pub(super) fn pagination(&self) -> Result<Pagination, GlError> {
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

    /// `Some` when the client asked for `pagination=keyset`. GitLab orders a keyset list by id only
    /// (405 otherwise), newest first unless `sort=asc`; the cursor is `id_after` ascending and
    /// `id_before` descending, and either bound may be given as a filter.
    pub(super) fn keyset(&self) -> Result<Option<Keyset>, GlError> {
        if self.string("pagination")?.as_deref() != Some("keyset") {
            return Ok(None);
        }
        if self.string("order_by")?.is_some_and(|o| o != "id") {
            return Err(GlError::KeysetUnavailable);
        }
        let descending = match self.string("sort")?.as_deref() {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(_) => return Err(GlError::NotAValue("sort")),
        };
        let bound = |name: &'static str| {
            self.params
                .integer(name)
                .map_err(|_| GlError::InvalidParam(name))
        };
        Ok(Some(Keyset {
            range: KeyRange {
                public_only: false,
                after: bound("id_after")?,
                before: bound("id_before")?,
                descending,
            },
            per_page: self.pagination()?.per_page,
        }))
    }

    /// The list filters a `Link` URL carries: never credentials (`private_token`, `job_token`, …)
    /// or `sudo`, which may ride in the query too, and a URL handed back must not repeat.
    fn link_query(&self, keep: &[&str]) -> Vec<(String, String)> {
        self.params
            .text_pairs()
            .into_iter()
            .filter(|(k, _)| LINK_PARAMS.contains(&k.as_str()) || keep.contains(&k.as_str()))
            .collect()
    }

    pub(super) fn string(&self, name: &'static str) -> Result<Option<String>, GlError> {
        self.params
            .string(name)
            .map_err(|_| GlError::InvalidParam(name))
    }

    pub(super) fn boolean(&self, name: &'static str) -> Result<Option<bool>, GlError> {
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
    pub(super) fn submission(&self) -> Result<KeySubmission, GlError> {
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
    pub(super) async fn run<A, T, F>(
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
        let caller = self.caller.clone();
        let origin = self.origin.clone();
        let work = move || {
            let who = match core.authenticate_token(token.as_deref().ok_or(Error::Unauthorized)?) {
                Err(Error::Unauthorized) => {
                    caller.failed();
                    return Err(Error::Unauthorized);
                }
                other => other?.from_origin(origin),
            };
            if let Err(budget) = caller.authenticated(who.user.id) {
                return Ok(Err(GlError::RateLimited(budget)));
            }
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
        };
        let outcome = if write {
            http::writing(&state.core, work).await
        } else {
            http::reading(&state.core, &self.query, work).await
        };
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
/// GitLab names projects and groups alike.
fn id_or_path<T>(req: &HttpRequest, id: fn(i64) -> T, path: fn(String) -> T) -> T {
    let raw = req.match_info().get("id").unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    match decoded.parse::<i64>() {
        Ok(n) => id(n),
        Err(_) => path(decoded.into_owned()),
    }
}

pub(super) fn project_ref(req: &HttpRequest) -> RepoRef {
    id_or_path(req, RepoRef::Id, RepoRef::Path)
}

pub(super) fn group_ref(req: &HttpRequest) -> GroupRef {
    id_or_path(req, GroupRef::Id, GroupRef::Path)
}

pub(super) fn key_id(req: &HttpRequest) -> Result<i64, GlError> {
    req.match_info()
        .get("key_id")
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(GlError::InvalidParam("key_id"))
}

/// A 200 list with GitLab's pagination headers and an absolute `Link` on the client-visible base.
/// `total` is counted to at least `page.count_to(COUNT_LIMIT)`: above `COUNT_LIMIT` the totals
/// and `rel="last"` are left out, and whether a next page exists is still known.
pub(super) fn paged<T: Serialize>(
    req: &HttpRequest,
    state: &State,
    call: &Call,
    page: Pagination,
    total: u64,
    items: &[T],
) -> HttpResponse {
    let mut body = Vec::with_capacity(1024);
    if sonic_rs::to_writer(&mut body, items).is_err() {
        body = b"[]".to_vec();
    }
    paged_body(req, state, call, page, total, body)
}

/// `paged`, with the items already rendered as a JSON array.
pub(super) fn paged_body(
    req: &HttpRequest,
    state: &State,
    call: &Call,
    page: Pagination,
    total: u64,
    body: Vec<u8>,
) -> HttpResponse {
    let counted = total <= COUNT_LIMIT;
    let last = page.total_pages(total);
    let mut rels: Vec<(&str, u64)> = Vec::with_capacity(4);
    // Past the last page there is no previous page either, as Kaminari has it. A total counted
    // only to `count_to` still reaches past this page, so both hold above `COUNT_LIMIT` too.
    let prev = (page.page > 1 && page.page <= last).then(|| page.page - 1);
    let next = (page.page < last).then_some(page.page + 1);
    if let Some(p) = prev {
        rels.push(("prev", p));
    }
    if let Some(n) = next {
        rels.push(("next", n));
    }
    rels.push(("first", 1));
    if counted {
        rels.push(("last", last));
    }
    let link = link_header(
        &base_url(req, state),
        req.path(),
        &call.link_query(&[]),
        page.per_page,
        &rels,
    );
    let mut res = json_bytes(StatusCode::OK, body);
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
    if counted {
        set("x-total", total.to_string());
        set("x-total-pages", last.to_string());
    }
    set("link", link);
    res
}

/// A 200 keyset page as GitLab answers it: no `X-*` headers, only an absolute `Link` with
/// `rel="next"`, whose cursor is the last id of this page. A page shorter than `per_page` is the
/// end of the walk and has no `Link` at all (nor has an empty one, which a full last page leads
/// to). `last_id` is that of the page's last row, if any.
pub(super) fn keyset_paged<T: Serialize>(
    req: &HttpRequest,
    state: &State,
    call: &Call,
    keyset: Keyset,
    last_id: Option<i64>,
    items: &[T],
) -> HttpResponse {
    let mut res = json(StatusCode::OK, items);
    let Some(last_id) = last_id.filter(|_| items.len() >= keyset.per_page as usize) else {
        return res;
    };
    let (cursor, other) = if keyset.range.descending {
        ("id_before", "id_after")
    } else {
        ("id_after", "id_before")
    };
    let mut pairs = call.link_query(&["pagination", "order_by", "sort", other]);
    pairs.push((cursor.to_string(), last_id.to_string()));
    pairs.push(("per_page".to_string(), keyset.per_page.to_string()));
    // Rails' `to_query` sorts the parameters; clients follow the URL as it is.
    pairs.sort();
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let link = format!(
        "<{}{}?{query}>; rel=\"next\"",
        base_url(req, state),
        req.path()
    );
    if let Ok(v) = HeaderValue::from_str(&link) {
        res.headers_mut().insert(header::LINK, v);
    }
    res
}
