//! GitHub's rate-limit budget, the one source of the `X-RateLimit-*` headers and of `GET /rate_limit`.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, web};
use serde::Serialize;
use serde_json::json;

use super::auth::run;
use super::error::{DOCS_RATE_LIMIT, Reply, gh_json};
use crate::http::State;

/// keygate enforces no limit yet. It reports a full budget so that clients which pace themselves
/// (octokit's throttling plugin, PyGithub's) never wait; a real limiter would change only `budget`.
const LIMIT: u64 = 5000;
/// GitHub counts the request being answered; one used keeps `used + remaining == limit`.
const USED: u64 = 1;
/// GitHub's window is an hour.
const WINDOW_SECS: u64 = 3600;

/// GitHub's budget buckets that keygate serves or clients expect (githubkit requires `search`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resource {
    Core,
    Graphql,
    Search,
}

impl Resource {
    pub(super) fn name(self) -> &'static str {
        match self {
            Resource::Core => "core",
            Resource::Graphql => "graphql",
            Resource::Search => "search",
        }
    }
}

/// One bucket, in GitHub's field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) struct Budget {
    pub(super) limit: u64,
    pub(super) remaining: u64,
    pub(super) reset: u64,
    pub(super) used: u64,
}

/// The caller's budget in `resource` now. Today every bucket is the same full budget; `reset` is
/// the end of the current hour, so two answers in the same hour agree to the second.
pub(super) fn budget(_resource: Resource) -> Budget {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Budget {
        limit: LIMIT,
        remaining: LIMIT - USED,
        reset: (now / WINDOW_SECS + 1) * WINDOW_SECS,
        used: USED,
    }
}

/// The `X-RateLimit-*` headers GitHub sends with every answer from `resource`.
pub(super) fn headers(resource: Resource) -> [(&'static str, String); 5] {
    let b = budget(resource);
    [
        ("x-ratelimit-limit", b.limit.to_string()),
        ("x-ratelimit-remaining", b.remaining.to_string()),
        ("x-ratelimit-used", b.used.to_string()),
        ("x-ratelimit-reset", b.reset.to_string()),
        ("x-ratelimit-resource", resource.name().to_string()),
    ]
}

/// `GET /rate_limit`. Answered without a token as on GitHub (a token that is sent must be good),
/// and, as on GitHub, asking does not spend the budget.
pub(super) async fn rate_limit(req: HttpRequest, state: web::Data<State>) -> Reply {
    if req.headers().contains_key(header::AUTHORIZATION) {
        run(&req, &state, DOCS_RATE_LIMIT, |_, _| Ok(())).await?;
    }
    let core = budget(Resource::Core);
    Ok(gh_json(
        StatusCode::OK,
        &json!({
            "resources": {
                "core": core,
                "graphql": budget(Resource::Graphql),
                "search": budget(Resource::Search),
            },
            // GitHub's deprecated mirror of `resources.core`, still read by older clients.
            "rate": core,
        }),
    ))
}
