//! What every dialect shares over HTTP: handler state, request ids and logging, parsing, paging, base URLs, limits, TLS.

mod body;
pub mod limits;
mod origin;
mod page;
pub mod rate;
pub mod tls;

pub use body::{BodyError, MAX_BODY_BYTES, Params, read_body};
pub use origin::origin;
pub use page::{Pagination, link_header};

use std::time::Instant;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, web};

use crate::core::{Core, Error};
use crate::store::{Job, StoreError};

/// What every handler can reach.
pub struct State {
    pub core: Core,
    pub public_url: Option<String>,
    /// What the SSH hosts present on `/internal/` routes.
    pub internal_secret: crate::auth::internal::InternalSecret,
}

/// The id of the request being served, also sent back in `X-Request-Id`.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// A request's id, and what its log line needs: method, path (never the query, where tokens may
/// travel), status, latency and id.
pub struct RequestLog {
    started: Instant,
    id: [u8; 32],
    /// Only when the line will be written: the copy costs more than the rest of this.
    logged: Option<(Method, String)>,
}

impl RequestLog {
    /// Gives the request its id.
    pub fn start(req: &ServiceRequest) -> RequestLog {
        // An id only has to tell requests apart in logs, not be unguessable: a per-thread
        // generator spares a system call per request.
        let mut id = [0u8; 32];
        hex::encode_to_slice(fastrand::u128(..).to_be_bytes(), &mut id)
            .expect("16 bytes are 32 hex digits");
        let log = RequestLog {
            started: Instant::now(),
            id,
            logged: log::log_enabled!(log::Level::Info)
                .then(|| (req.method().clone(), req.path().to_string())),
        };
        req.extensions_mut()
            .insert(RequestId(log.id_str().to_owned()));
        log
    }

    fn id_str(&self) -> &str {
        std::str::from_utf8(&self.id).expect("hex digits are ASCII")
    }

    /// Sends the id back in `X-Request-Id` and logs the line.
    pub fn finish<B>(self, res: &mut ServiceResponse<B>) {
        res.headers_mut().insert(
            HeaderName::from_static("x-request-id"),
            HeaderValue::from_bytes(&self.id).expect("hex digits make a header value"),
        );
        if let Some((method, path)) = &self.logged {
            let (status, ms, id) = (
                res.status().as_u16(),
                self.started.elapsed().as_secs_f64() * 1000.0,
                self.id_str(),
            );
            // The key-values are for `--log-format json`; the text line shows only the message.
            log::info!(
                method = method.as_str(), path = path.as_str(), status = status,
                latency_ms = (ms * 1000.0).round() / 1000.0, request_id = id;
                "{method} {path} {status} {ms:.1}ms id={id}"
            );
        }
    }
}

pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// The token in `Authorization: <scheme> <token>` when the scheme is one of `schemes` (any case).
pub fn authorization_token(req: &HttpRequest, schemes: &[&str]) -> Option<String> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (schemes.iter().any(|s| scheme.eq_ignore_ascii_case(s)) && !token.is_empty())
        .then(|| token.to_string())
}

/// The user and password of `Authorization: Basic base64(user:password)` (scheme in any case).
/// `None` when the header is not Basic or its value is not base64 of UTF-8 text with a colon.
pub fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    use base64::Engine;
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// `scheme://host[:port]` as the client sees this server, without a trailing slash: `--public-url`
/// when set, else `https://` (when this server speaks TLS) or `http://` and the request's Host header. Forwarding headers (`X-Forwarded-Host`,
/// `Forwarded`) are ignored on purpose: any client can send them, and these URLs are followed by
/// clients with their credentials. Behind a proxy, set `--public-url`.
pub fn base_url(req: &HttpRequest, state: &State) -> String {
    if let Some(url) = &state.public_url {
        return url.clone();
    }
    let host = req
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(is_host_byte))
        .map(str::to_string)
        .unwrap_or_else(|| req.app_config().host().to_string());
    // `secure` is whether this listener speaks TLS, never what a header claims.
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// Letters, digits and the punctuation of `host`, `host:port` and `[v6]:port`; nothing that could
/// end a URL or a `Link` entry.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
}

/// Runs blocking core work (SQLite) off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    web::block(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))?
}

/// Runs core work that writes. On SQLite it is queued for the store's writer thread, which runs
/// it together with the writes queued behind it and commits them with one fsync; the answer
/// comes once its batch is durable (a lost batch answers with the store's error instead).
/// Elsewhere it runs off the async workers like `blocking`.
pub async fn writing<T, F>(core: &Core, f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        // On the writer thread a panic would take every queued request with it.
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err(Error::Internal("a write panicked".to_string())));
        Box::new(move |durable: Result<(), StoreError>| {
            // The client may have gone; its answer has nowhere to go, and the write stands.
            let _ = tx.send(durable.map_err(Error::from).and(answer));
        })
    });
    if let Err(job) = core.submit(job) {
        blocking(move || {
            job()(Ok(()));
            Ok(())
        })
        .await?;
    }
    rx.await
        .map_err(|_| Error::Internal("the writer dropped a request".to_string()))?
}

/// Runs core work that only reads, in one read session: on SQLite right on the async worker (a
/// hop to the blocking pool and back cost more than the reads themselves), elsewhere off it like
/// `blocking`.
///
/// Only bounded work runs on the worker: a page deeper than `INLINE_DEPTH` rows (an OFFSET walk
/// in proportion to the depth) goes to the blocking pool, so that no client can stall the other
/// clients of a worker with it.
pub async fn reading<T, F>(core: &Core, query: &str, f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    if core.reads_inline() && !deep_page(query) {
        // As on the blocking pool, a panic is a 500 with a log line, not a dropped connection.
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| core.read_session(f)))
            .unwrap_or_else(|_| Err(Error::Internal("a read panicked".to_string())));
    }
    let core = core.clone();
    blocking(move || core.read_session(f)).await
}

/// Rows a page may skip and still be read on the async worker.
const INLINE_DEPTH: u64 = 10_000;

/// Whether the query asks for a page past `INLINE_DEPTH` rows, in any dialect's terms: `page`
/// and `per_page` (GitLab, GitHub) or `offset` (CodeArts). Unparsable values count as shallow:
/// the dialect refuses them before any list is read.
fn deep_page(query: &str) -> bool {
    let mut page = 1u64;
    let mut per_page = 100u64;
    let mut offset = 0u64;
    for (name, value) in form_urlencoded_pairs(query) {
        let value = value.parse::<u64>().ok();
        match (name.as_str(), value) {
            ("page", Some(v)) => page = v,
            ("per_page", Some(v)) => per_page = v.min(100),
            ("offset", Some(v)) => offset = v,
            _ => {}
        }
    }
    page.saturating_sub(1)
        .saturating_mul(per_page)
        .saturating_add(offset)
        > INLINE_DEPTH
}

fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
}

/// Logs an internal error with its request id; clients only ever see a generic message.
pub fn log_internal(req_id: &str, err: &Error) {
    log::error!("request {req_id}: {err}");
}

#[cfg(test)]
mod tests {
    use super::deep_page;

    #[test]
    fn pages_past_ten_thousand_rows_leave_the_worker() {
        assert!(!deep_page(""));
        assert!(!deep_page("page=2&per_page=100"));
        assert!(!deep_page("page=101&per_page=100"));
        assert!(deep_page("page=102&per_page=100"));
        assert!(deep_page("page=600"), "per_page defaults to the largest");
        assert!(!deep_page("page=501&per_page=20"));
        assert!(deep_page("page=502&per_page=20"));
        assert!(deep_page("offset=10001&limit=20"));
        assert!(
            !deep_page("offset=abc&page=-1"),
            "refused later by the dialect"
        );
        assert!(
            !deep_page("page=99999999999999999999999&per_page=100"),
            "too big: refused later"
        );
    }
}
