//! `GET /projects/:id`: just enough of a project for clients to turn a path into an id.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use serde_json::json;

use super::call::{Call, Need, project_ref};
use super::error::Reply;
use crate::dialect::{iso_millis, json as json_response};
use crate::http::{State, base_url};

pub(super) async fn project(req: HttpRequest, state: web::Data<State>) -> Reply {
    let repo_ref = project_ref(&req);
    let call = Call::query(&req)?;
    let repo = call
        .run(&state, Need::Token, Ok(()), move |core, who, ()| {
            core.repository(who, &repo_ref)
        })
        .await?;
    let base = base_url(&req, &state);
    let authority = base.split_once("://").map(|(_, h)| h).unwrap_or(&base);
    // Drop the port; `[v6]:port` keeps its brackets.
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if !port.contains(']') => h,
        _ => authority,
    };
    let ns = &repo.namespace;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": repo.id,
            "description": null,
            "name": repo.name,
            "name_with_namespace": repo.full_path.replace('/', " / "),
            "path": repo.name,
            "path_with_namespace": repo.full_path,
            "created_at": iso_millis(repo.created_at),
            "default_branch": "main",
            "visibility": "private",
            "web_url": format!("{base}/{}", repo.full_path),
            "ssh_url_to_repo": format!("git@{host}:{}.git", repo.full_path),
            "http_url_to_repo": format!("{base}/{}.git", repo.full_path),
            "namespace": {
                "id": ns.id,
                "name": ns.name,
                "path": ns.name,
                "kind": "group",
                "full_path": ns.full_path,
                "parent_id": ns.parent_id,
                "web_url": format!("{base}/groups/{}", ns.full_path),
            },
        }),
    ))
}
