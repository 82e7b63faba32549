//! GitHub's view of the request budget (`http::rate`): the `X-RateLimit-*` headers and `GET /rate_limit`.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, web};
use serde::Serialize;
use serde_json::json;

use super::auth::{Spend, authorized};
use super::error::{DOCS_RATE_LIMIT, Reply, basic, gh_json};
use crate::http::State;
use crate::http::rate::{self, Budget};

/// The GitHub budget buckets keygate answers from. keygate keeps one budget per user, which
/// every bucket of `/rate_limit` reports (githubkit requires `search` there too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resource {
    Core,
    Graphql,
}

impl Resource {
    pub(super) fn name(self) -> &'static str {
        match self {
            Resource::Core => "core",
            Resource::Graphql => "graphql",
        }
    }
}

/// One bucket, in GitHub's field names.
#[derive(Serialize)]
struct Bucket {
    limit: u64,
    remaining: u64,
    reset: u64,
    used: u64,
}

fn bucket(b: Budget) -> Bucket {
    Bucket {
        limit: b.limit,
        remaining: b.remaining,
        reset: b.reset,
        used: b.used,
    }
}

/// The `X-RateLimit-*` headers of an answer from `resource`: the budget the request was counted
/// against, so none for a request that was not (no token, a bad one, or budgets turned off).
pub(super) fn headers(budget: Option<Budget>, resource: Resource) -> Vec<(&'static str, String)> {
    let Some(b) = budget else {
        return Vec::new();
    };
    vec![
        ("x-ratelimit-limit", b.limit.to_string()),
        ("x-ratelimit-remaining", b.remaining.to_string()),
        ("x-ratelimit-used", b.used.to_string()),
        ("x-ratelimit-reset", b.reset.to_string()),
        ("x-ratelimit-resource", resource.name().to_string()),
    ]
}

/// `GET /rate_limit`. Answered without a token as on GitHub (a token that is sent must be good),
/// and, as on GitHub, asking does not spend the budget. Without a token there is no one to
/// count against: the answer is the budget a user starts a window with. With budgets off it is
/// GitHub Enterprise's 404 `Rate limiting is not enabled.`
pub(super) async fn rate_limit(req: HttpRequest, state: web::Data<State>) -> Reply {
    let caller = rate::Caller::of(&req);
    let user = if req.headers().contains_key(header::AUTHORIZATION) {
        Some(
            authorized(&req, &state, DOCS_RATE_LIMIT, Spend::Nothing, |_, who| {
                Ok(who.user.id)
            })
            .await?,
        )
    } else {
        None
    };
    let Some(budget) = caller.look(user) else {
        let status = StatusCode::NOT_FOUND;
        return Ok(gh_json(
            status,
            &basic("Rate limiting is not enabled.", DOCS_RATE_LIMIT, status),
        ));
    };
    let core = bucket(budget);
    Ok(gh_json(
        StatusCode::OK,
        &json!({
            "resources": {
                "core": core,
                "graphql": bucket(budget),
                "search": bucket(budget),
            },
            // GitHub's deprecated mirror of `resources.core`, still read by older clients.
            "rate": core,
        }),
    ))
}
