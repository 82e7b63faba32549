//! GitHub's informational routes: the API root's URL index, `GET /meta` and the served contract.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::error::{Reply, gh_json};
use super::{OPENAPI, api_root};
use crate::dialect;
use crate::http::State;

/// The GitHub Enterprise Server release whose REST description keygate's deploy-key routes
/// follow (ghes-3.19; 3.17 has the same deploy-key schema), reported where GHES reports its own.
const INSTALLED_VERSION: &str = "3.19.0";

pub(super) async fn openapi() -> HttpResponse {
    dialect::openapi(OPENAPI)
}

/// The API root's index of URL templates, answered without a token as GitHub does.
pub(super) async fn root(req: HttpRequest, state: web::Data<State>) -> Reply {
    let root = api_root(&req, &state);
    Ok(gh_json(
        StatusCode::OK,
        &json!({
            "current_user_url": format!("{root}/user"),
            "repository_url": format!("{root}/repos/{{owner}}/{{repo}}"),
        }),
    ))
}

/// `GET /meta` in its GitHub Enterprise Server form, without a token as on GitHub. Passwords are
/// never verifiable: keygate authenticates tokens only (Basic carries a token, not a password). The
/// address lists GitHub publishes (`hooks`, `git`, `web`...) are left out: keygate cannot know the
/// addresses of the hosts in front of it, and every list is optional in GitHub's schema.
pub(super) async fn meta() -> Reply {
    Ok(gh_json(
        StatusCode::OK,
        &json!({
            "verifiable_password_authentication": false,
            "installed_version": INSTALLED_VERSION,
        }),
    ))
}
