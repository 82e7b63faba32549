//! The GitHub dialect's route table: REST (bare and under `/api/v3`) and GraphQL, as GitHub's clients expect.

mod auth;
mod error;
mod graphql;
mod keys;
mod meta;
mod rate_limit;
mod repos;
mod users;
mod wire;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, Resource, ResponseError, Scope, web};

use error::{GhError, Reply};
use rate_limit::Resource as Bucket;

use crate::http::{State, base_url, request_id};

const OPENAPI: &str = include_str!("../../../dialects/github.yaml");
/// Where GitHub Enterprise Server mounts the REST API; clients are also given the bare host.
const PREFIX: &str = "/api/v3";
/// Where GitHub Enterprise Server serves GraphQL: beside `/api/v3`, not under it.
const GRAPHQL_GHES: &str = "/api/graphql";
/// github.com's GraphQL path, for clients given the bare base URL.
const GRAPHQL_BARE: &str = "/graphql";
const DEFAULT_PER_PAGE: u32 = 30;
const MAX_PER_PAGE: u32 = 100;
/// The versions GitHub serves; the first is selected when a client names none.
const API_VERSIONS: [&str; 2] = ["2022-11-28", "2026-03-10"];

/// Mounts the API twice, under `/api/v3` (GHE base URL) and bare, and GraphQL at both of
/// GitHub's paths. Must run after the GitLab dialect: its legacy `/api/v3/projects/...` scopes
/// have to match before this catch-all scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            .wrap(from_fn(github_headers))
            .service(resource("").route(web::get().to(meta::root)))
            .service(resource("/").route(web::get().to(meta::root)))
            .service(resource("/openapi.yaml").route(web::get().to(meta::openapi)))
            .service(resource("/meta").route(web::get().to(meta::meta)))
            .service(resource("/rate_limit").route(web::get().to(rate_limit::rate_limit)))
            .service(resource("/user").route(web::get().to(users::user)))
            .service(repos())
            .default_service(web::to(no_route)),
    );
    cfg.service(repos().wrap(from_fn(github_headers)));
    for (path, route) in [
        ("/", web::get().to(meta::root)),
        ("/meta", web::get().to(meta::meta)),
        ("/rate_limit", web::get().to(rate_limit::rate_limit)),
        ("/user", web::get().to(users::user)),
        (GRAPHQL_GHES, web::post().to(graphql::graphql)),
        (GRAPHQL_BARE, web::post().to(graphql::graphql)),
    ] {
        cfg.service(resource(path).route(route).wrap(from_fn(github_headers)));
    }
}

/// A resource whose other methods answer GitHub's 404 (as GitHub does, e.g. PATCH on a key)
/// rather than actix's empty 405.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(no_route))
}

fn repos() -> Scope {
    web::scope("/repos")
        .service(resource("/{owner}/{repo}").route(web::get().to(repos::repository)))
        .service(
            resource("/{owner}/{repo}/keys")
                .route(web::get().to(keys::list))
                .route(web::post().to(keys::create)),
        )
        .service(
            resource("/{owner}/{repo}/keys/{key_id}")
                .route(web::get().to(keys::get))
                .route(web::delete().to(keys::delete)),
        )
        .default_service(web::to(no_route))
}

async fn no_route() -> Reply {
    Err(GhError::NoRoute)
}

/// Refuses API versions GitHub does not serve, and stamps every GitHub answer (errors and
/// unknown routes included) with the headers clients read.
async fn github_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = request_id(req.request());
    let bucket = match req.path() {
        GRAPHQL_GHES | GRAPHQL_BARE => Bucket::Graphql,
        _ => Bucket::Core,
    };
    let asked = req
        .headers()
        .get(HeaderName::from_static("x-github-api-version"))
        .map(|v| v.to_str().unwrap_or_default().trim().to_string());
    let selected = match asked {
        None => API_VERSIONS[0],
        Some(v) => match API_VERSIONS.iter().find(|known| **known == v) {
            Some(known) => known,
            None => {
                let res = req.into_response(GhError::BadVersion(v).error_response());
                return Ok(stamp(res, &id, API_VERSIONS[0], bucket));
            }
        },
    };
    let res = next.call(req).await?.map_into_boxed_body();
    Ok(stamp(res, &id, selected, bucket))
}

fn stamp(
    mut res: ServiceResponse<BoxBody>,
    id: &str,
    version: &str,
    bucket: Bucket,
) -> ServiceResponse<BoxBody> {
    let budget = crate::http::rate::budget_of(res.request());
    let headers = res.headers_mut();
    let fixed = [
        ("x-github-request-id", id.to_string()),
        ("x-github-api-version-selected", version.to_string()),
        ("x-github-media-type", "github.v3; format=json".to_string()),
    ];
    for (name, value) in fixed.into_iter().chain(rate_limit::headers(budget, bucket)) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    res
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
