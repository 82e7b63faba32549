//! GitLab's audit events API: the instance's (admins), a project's (maintainers) and a group's.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use serde_json::{Value, json};

use super::call::{COUNT_LIMIT, Call, Need, group_ref, project_ref};
use super::error::{GlError, Reply};
use crate::core::{AuditEvent, AuditFilter, AuditScope, RepoRef};
use crate::dialect::{iso_millis, json as json_response, parse_time};
use crate::http::State;

/// `created_after` / `created_before` (inclusive, ISO 8601), and on the instance list
/// `entity_type` + `entity_id`.
fn filter(call: &Call, instance: bool) -> Result<AuditFilter, GlError> {
    let time = |name: &'static str| -> Result<Option<i64>, GlError> {
        match call.string(name)? {
            None => Ok(None),
            Some(t) if t.trim().is_empty() => Ok(None),
            Some(t) => parse_time(&t).map(Some).ok_or(GlError::InvalidParam(name)),
        }
    };
    let mut filter = AuditFilter {
        since: time("created_after")?,
        until: time("created_before")?,
        ..AuditFilter::default()
    };
    if instance {
        let id = match call.string("entity_id")? {
            None => None,
            Some(t) => Some(
                t.trim()
                    .parse::<i64>()
                    .map_err(|_| GlError::InvalidParam("entity_id"))?,
            ),
        };
        match (call.string("entity_type")?.as_deref(), id) {
            (None, _) => {}
            (Some("Project"), Some(id)) => filter.repo_id = Some(id),
            (Some("User"), Some(id)) => filter.user_id = Some(id),
            (Some("Project" | "User" | "Group" | "Gitlab::Audit::InstanceScope"), _) => {}
            (Some(_), _) => return Err(GlError::NotAValue("entity_type")),
        }
    }
    Ok(filter)
}

fn event_id(req: &HttpRequest) -> Result<i64, GlError> {
    req.match_info()
        .get("event_id")
        .and_then(|s| s.parse().ok())
        .ok_or(GlError::InvalidParam("id"))
}

/// An `AuditEvent` entity: GitLab's fields, and keygate's record in `details` beside them.
fn body(e: &AuditEvent) -> Value {
    let (entity_type, entity_id, entity_path) = match (e.repo_id, e.user_id) {
        (Some(repo), _) => ("Project", repo, e.repo_path.clone()),
        (None, Some(user)) => ("User", user, e.user_name.clone()),
        (None, None) => ("Gitlab::Audit::InstanceScope", 0, None),
    };
    let (target_type, target_id, target_details) = if let Some(key) = e.key_id {
        ("DeployKey", json!(key), e.fingerprint.clone())
    } else if let Some(user) = e.user_id {
        ("User", json!(user), e.user_name.clone())
    } else if let Some(repo) = e.repo_id {
        ("Project", json!(repo), e.repo_path.clone())
    } else {
        ("AuditEvent", Value::Null, None)
    };
    let author_name = match e.actor_kind.as_str() {
        "user" => e.actor_name.clone(),
        kind => format!("{kind}:{}", e.actor_name),
    };
    let mut details = json!({
        "author_name": author_name,
        "author_class": if e.actor_kind == "user" { "User" } else { "Keygate::Operator" },
        "target_id": target_id,
        "target_type": target_type,
        "target_details": target_details,
        "custom_message": e.action,
        "ip_address": e.client_addr,
        "entity_path": entity_path,
        "fingerprint": e.fingerprint,
        "request_id": e.request_id,
        "dialect": e.dialect,
        "method": e.method,
        "route": e.route,
    });
    if let (Value::Object(out), Ok(Value::Object(stored))) =
        (&mut details, serde_json::from_str::<Value>(&e.details))
    {
        out.extend(stored);
    }
    json!({
        "id": e.id,
        "author_id": e.actor_id.unwrap_or(-1),
        "entity_id": entity_id,
        "entity_type": entity_type,
        "event_name": e.action,
        "details": details,
        "created_at": iso_millis(e.created_at),
    })
}

async fn list(req: HttpRequest, state: web::Data<State>, scope: AuditScope, need: Need) -> Reply {
    let call = Call::query(&req)?;
    let args = call
        .pagination()
        .and_then(|page| Ok((page, filter(&call, matches!(scope, AuditScope::Instance))?)));
    let (page, events) = call
        .run(&state, need, args, move |core, who, (page, filter)| {
            let count_to = page.count_to(COUNT_LIMIT);
            Ok((
                page,
                core.audit_events(who, &scope, filter, page.window(), count_to)?,
            ))
        })
        .await?;
    let items: Vec<Value> = events.items.iter().map(body).collect();
    Ok(super::call::paged(
        &req,
        &state,
        &call,
        page,
        events.total,
        &items,
    ))
}

async fn one(req: HttpRequest, state: web::Data<State>, scope: AuditScope, need: Need) -> Reply {
    let call = Call::query(&req)?;
    let event = call
        .run(&state, need, event_id(&req), move |core, who, id| {
            core.audit_event(who, &scope, id)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &body(&event)))
}

fn group_scope(req: &HttpRequest) -> AuditScope {
    AuditScope::Group(group_ref(req))
}

pub(super) async fn instance_list(req: HttpRequest, state: web::Data<State>) -> Reply {
    list(req, state, AuditScope::Instance, Need::Admin).await
}

pub(super) async fn instance_get(req: HttpRequest, state: web::Data<State>) -> Reply {
    one(req, state, AuditScope::Instance, Need::Admin).await
}

pub(super) async fn project_list(req: HttpRequest, state: web::Data<State>) -> Reply {
    let repo: RepoRef = project_ref(&req);
    list(
        req,
        state,
        AuditScope::Project(repo.clone()),
        Need::Manage(repo),
    )
    .await
}

pub(super) async fn project_get(req: HttpRequest, state: web::Data<State>) -> Reply {
    let repo: RepoRef = project_ref(&req);
    one(
        req,
        state,
        AuditScope::Project(repo.clone()),
        Need::Manage(repo),
    )
    .await
}

pub(super) async fn group_list(req: HttpRequest, state: web::Data<State>) -> Reply {
    let scope = group_scope(&req);
    list(req, state, scope, Need::Token).await
}

pub(super) async fn group_get(req: HttpRequest, state: web::Data<State>) -> Reply {
    let scope = group_scope(&req);
    one(req, state, scope, Need::Token).await
}
