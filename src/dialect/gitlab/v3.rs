//! The legacy v3 routes (GitLab 8.x-10.x): the v4 operations rendered with the old short entity.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};

use super::call::paged;
use super::error::Reply;
use super::keys::{op_create, op_delete, op_enable, op_get, op_list};
use super::wire::{V3Key, v3_body, v3_linked};
use crate::dialect::json;
use crate::http::State;

pub(super) async fn v3_list(req: HttpRequest, state: web::Data<State>) -> Reply {
    let (call, page, keys) = op_list(&req, &state).await?;
    let items: Vec<V3Key> = keys.items.iter().map(v3_linked).collect();
    Ok(paged(&req, &state, &call, page, keys.total, &items))
}

pub(super) async fn v3_get(req: HttpRequest, state: web::Data<State>) -> Reply {
    let linked = op_get(&req, &state).await?;
    Ok(json(StatusCode::OK, &v3_linked(&linked)))
}

pub(super) async fn v3_create(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let linked = op_create(&req, &state, payload).await?;
    Ok(json(StatusCode::CREATED, &v3_linked(&linked)))
}

/// v3 answered DELETE (and `disable`) with 200 and the key that was removed.
pub(super) async fn v3_delete(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let linked = op_delete(&req, &state, payload, false).await?;
    Ok(json(StatusCode::OK, &v3_linked(&linked)))
}

pub(super) async fn v3_enable(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let key = op_enable(&req, &state, payload).await?;
    Ok(json(StatusCode::CREATED, &v3_body(&key, None)))
}
