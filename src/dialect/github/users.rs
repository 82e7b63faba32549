//! GitHub's `GET /user`: the token's user.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};

use super::auth::run;
use super::error::{DOCS_USER, Reply, gh_json};
use super::wire::user_body;
use crate::http::State;

pub(super) async fn user(req: HttpRequest, state: web::Data<State>) -> Reply {
    let user = run(&req, &state, DOCS_USER, |_, who| Ok(who.user.clone())).await?;
    Ok(gh_json(StatusCode::OK, &user_body(&user)))
}
