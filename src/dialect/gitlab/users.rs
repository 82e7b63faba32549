//! `/user`, `/users`, `/version` and `/metadata`: who the caller is and which GitLab keygate speaks for.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};

use super::call::{Call, Need, paged};
use super::error::{GlError, Reply};
use super::wire::{Kas, Metadata, UserBody, user_body};
use crate::core::UserRef;
use crate::dialect::json;
use crate::http::{State, base_url};

/// The GitLab release whose deploy-key API keygate matches: 17.5 added the admin
/// `POST /deploy_keys`, the newest route served here. See docs/gitlab.md for why not 18.
const GITLAB_VERSION: &str = "17.5.0";
/// GitLab puts a commit here; keygate names itself, so nobody mistakes it for a GitLab build.
const REVISION: &str = concat!("keygate-", env!("CARGO_PKG_VERSION"));

/// `GET /user`: the caller, with `is_admin` for admins only (GitLab's `UserWithAdmin`).
pub(super) async fn me(req: HttpRequest, state: web::Data<State>) -> Reply {
    let call = Call::query(&req)?;
    let user = call
        .run(&state, Need::Token, Ok(()), |_, who, ()| {
            Ok(who.user.clone())
        })
        .await?;
    let base = base_url(&req, &state);
    Ok(json(StatusCode::OK, &user_body(&user, &base, user.admin)))
}

/// `GET /users/:id`: any authenticated user sees a user's public fields.
pub(super) async fn user(req: HttpRequest, state: web::Data<State>) -> Reply {
    let call = Call::query(&req)?;
    // Grape declares `id` an Integer here; usernames go through `GET /users?username=`.
    let id = req
        .match_info()
        .get("id")
        .and_then(|raw| raw.parse::<i64>().ok())
        .ok_or(GlError::InvalidParam("id"));
    let (user, admin_view) = call
        .run(&state, Need::Token, id, |core, who, id| {
            Ok((core.user(who, &UserRef::Id(id))?, who.user.admin))
        })
        .await?;
    let base = base_url(&req, &state);
    Ok(json(StatusCode::OK, &user_body(&user, &base, admin_view)))
}

/// `GET /users` (`username=` narrows it to that user, or to nobody): a paged list.
pub(super) async fn users(req: HttpRequest, state: web::Data<State>) -> Reply {
    let call = Call::query(&req)?;
    let args = call
        .pagination()
        .and_then(|page| Ok((page, call.string("username")?)));
    let (page, found, admin_view) = call
        .run(&state, Need::Token, args, |core, who, (page, username)| {
            let found = core.users_named(who, username.as_deref(), page.window())?;
            Ok((page, found, who.user.admin))
        })
        .await?;
    let base = base_url(&req, &state);
    let items: Vec<UserBody> = found
        .items
        .iter()
        .map(|u| user_body(u, &base, admin_view))
        .collect();
    Ok(paged(&req, &state, &call, page, found.total, &items))
}

/// `GET /version` and `GET /metadata`: a valid token is needed, as on GitLab.
pub(super) async fn metadata(req: HttpRequest, state: web::Data<State>) -> Reply {
    let call = Call::query(&req)?;
    call.run(&state, Need::Token, Ok(()), |_, _, ()| Ok(()))
        .await?;
    let body = Metadata {
        version: GITLAB_VERSION,
        revision: REVISION,
        kas: Kas {
            enabled: false,
            external_url: None,
            external_k8s_proxy_url: None,
            version: None,
        },
        enterprise: false,
    };
    Ok(json(StatusCode::OK, &body))
}
