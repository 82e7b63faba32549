//! The deploy-key routes of v4 (project, instance, fingerprint and per-user), and the operations v3 reuses.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::http::header::{Header, IfUnmodifiedSince};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::call::{COUNT_LIMIT, Call, Need, key_id, keyset_paged, paged, paged_body, project_ref};
use super::error::{DEPLOY_KEY_NOT_FOUND, GlError, Reply};
use super::wire::{AdminKeyBody, KeyBody, admin_body, key_body, key_json, keys_json, linked_body};
use crate::core::{DeployKey, LinkedKey, Paged, Reuse, UserRef};
use crate::dialect::{iso_millis, json as json_response, json_bytes};
use crate::http::{Pagination, State};

pub(super) async fn op_list(
    req: &HttpRequest,
    state: &web::Data<State>,
) -> Result<(Call, Pagination, Paged<LinkedKey>), GlError> {
    let call = Call::query(req)?;
    let repo = project_ref(req);
    let (page, keys) = call
        .run(
            state,
            Need::Manage(repo.clone()),
            call.pagination(),
            move |core, who, page| {
                let count_to = page.count_to(COUNT_LIMIT);
                Ok((
                    page,
                    core.list_keys_counted_to(who, &repo, page.window(), count_to)?,
                ))
            },
        )
        .await?;
    Ok((call, page, keys))
}

pub(super) async fn op_get(
    req: &HttpRequest,
    state: &web::Data<State>,
) -> Result<LinkedKey, GlError> {
    let call = Call::query(req)?;
    let repo = project_ref(req);
    call.run(
        state,
        Need::Manage(repo.clone()),
        key_id(req),
        move |core, who, id| core.get_key(who, &repo, id),
    )
    .await
}

pub(super) async fn op_create(
    req: &HttpRequest,
    state: &web::Data<State>,
    payload: web::Payload,
) -> Result<LinkedKey, GlError> {
    let call = Call::with_body(req, payload).await?;
    let repo = project_ref(req);
    let args = call.submission().map(|s| state.core.parse_submission(s));
    call.run(
        state,
        Need::Manage(repo.clone()),
        args,
        move |core, who, submission| {
            core.add_key(who, &repo, &submission, Reuse::Join)
                .map(|(linked, _)| linked)
        },
    )
    .await
}

/// A JSON body on DELETE (gitbeaker sends `{}`) is read and ignored. `conditional`: honour
/// `If-Unmodified-Since` (v4 does; v3 never did).
pub(super) async fn op_delete(
    req: &HttpRequest,
    state: &web::Data<State>,
    payload: web::Payload,
    conditional: bool,
) -> Result<LinkedKey, GlError> {
    let call = Call::with_body(req, payload).await?;
    let repo = project_ref(req);
    let since = conditional.then(|| unmodified_since(req)).flatten();
    call.run(
        state,
        Need::Manage(repo.clone()),
        key_id(req),
        move |core, who, id| core.remove_key_unchanged_since(who, &repo, id, since),
    )
    .await
    .map_err(|e| e.key_missing(DEPLOY_KEY_NOT_FOUND))
}

/// `If-Unmodified-Since` in milliseconds since the epoch. A header that is not an HTTP-date is
/// ignored, as RFC 9110 says; a date before 1970 is older than anything stored.
fn unmodified_since(req: &HttpRequest) -> Option<i64> {
    let IfUnmodifiedSince(date) = IfUnmodifiedSince::parse(req).ok()?;
    let at = SystemTime::from(date);
    Some(match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    })
}

pub(super) async fn op_enable(
    req: &HttpRequest,
    state: &web::Data<State>,
    payload: web::Payload,
) -> Result<DeployKey, GlError> {
    let call = Call::with_body(req, payload).await?;
    let repo = project_ref(req);
    call.run(
        state,
        Need::Manage(repo.clone()),
        key_id(req),
        move |core, who, id| core.enable_key(who, &repo, id),
    )
    .await
    .map_err(|e| e.key_missing(DEPLOY_KEY_NOT_FOUND))
}

pub(super) async fn list(req: HttpRequest, state: web::Data<State>) -> Reply {
    let (call, page, keys) = op_list(&req, &state).await?;
    let body = keys_json(keys.items.iter().map(|l| (&l.key, Some(l.can_push))));
    Ok(paged_body(&req, &state, &call, page, keys.total, body))
}

pub(super) async fn get(req: HttpRequest, state: web::Data<State>) -> Reply {
    let linked = op_get(&req, &state).await?;
    Ok(json_bytes(
        StatusCode::OK,
        key_json(&linked.key, Some(linked.can_push)),
    ))
}

pub(super) async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let linked = op_create(&req, &state, payload).await?;
    Ok(json_response(StatusCode::CREATED, &linked_body(&linked)))
}

pub(super) async fn update(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::with_body(&req, payload).await?;
    let repo = project_ref(&req);
    let args = key_id(&req).and_then(|id| {
        let title = call.string("title")?;
        let can_push = call.boolean("can_push")?;
        if title.is_none() && can_push.is_none() {
            return Err(GlError::AtLeastOne);
        }
        Ok((id, title, can_push))
    });
    let linked = call
        .run(
            &state,
            Need::Manage(repo.clone()),
            args,
            move |core, who, (id, title, can_push)| {
                core.update_key(who, &repo, id, title.as_deref(), can_push)
            },
        )
        .await?;
    Ok(json_response(StatusCode::OK, &linked_body(&linked)))
}

pub(super) async fn delete(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    op_delete(&req, &state, payload, true).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(super) async fn enable(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let key = op_enable(&req, &state, payload).await?;
    Ok(json_response(StatusCode::CREATED, &key_body(&key, None)))
}

/// `GET /deploy_keys`: pages by number, or by id with `pagination=keyset` (GitLab's way through a
/// large instance: no `OFFSET` walk and no count).
pub(super) async fn admin_list(req: HttpRequest, state: web::Data<State>) -> Reply {
    let call = Call::query(&req)?;
    let args = call.pagination().and_then(|page| {
        Ok((
            page,
            call.keyset()?,
            call.boolean("public")?.unwrap_or(false),
        ))
    });
    // A keyset page is never counted: `total` is `None` exactly when `keyset` is `Some`.
    let (page, keyset, keys, total) = call
        .run(
            &state,
            Need::Admin,
            args,
            |core, who, (page, keyset, public_only)| {
                Ok(match keyset {
                    Some(mut keyset) => {
                        keyset.range.public_only = public_only;
                        let keys = core.keys_in_range(who, keyset.range, keyset.per_page)?;
                        (page, Some(keyset), keys, None)
                    }
                    None => {
                        let count_to = page.count_to(COUNT_LIMIT);
                        let all = core.all_keys(who, public_only, page.window(), count_to)?;
                        (page, None, all.items, Some(all.total))
                    }
                })
            },
        )
        .await?;
    let items: Vec<AdminKeyBody> = keys.iter().map(admin_body).collect();
    Ok(match (keyset, total) {
        (Some(keyset), _) => {
            let last_id = keys.last().map(|(key, _)| key.id);
            keyset_paged(&req, &state, &call, keyset, last_id, &items)
        }
        (None, total) => paged(&req, &state, &call, page, total.unwrap_or(0), &items),
    })
}

pub(super) async fn admin_create(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::with_body(&req, payload).await?;
    let args = call.submission();
    let key = call
        .run(&state, Need::Admin, args, |core, who, submission| {
            core.create_instance_key(who, &submission)
        })
        .await
        .map_err(GlError::top_level)?;
    Ok(json_response(StatusCode::CREATED, &key_body(&key, None)))
}

pub(super) async fn key_by_fingerprint(req: HttpRequest, state: web::Data<State>) -> Reply {
    let call = Call::query(&req)?;
    let args = match call.string("fingerprint") {
        Ok(Some(fp)) => canonical_fingerprint(&fp).ok_or(GlError::BadFingerprint),
        Ok(None) => Err(GlError::Missing(vec!["fingerprint"])),
        Err(e) => Err(e),
    };
    let (key, owner, links) = call
        .run(&state, Need::Admin, args, |core, who, fingerprint| {
            core.key_by_fingerprint(who, &fingerprint)
        })
        .await
        .map_err(|e| e.key_missing("404 Key Not Found"))?;
    let projects: Vec<Value> = links
        .iter()
        .map(|l| {
            json!({
                "id": l.id,
                "deploy_key_id": key.id,
                "project_id": l.repo.id,
                "can_push": l.can_push,
                "created_at": iso_millis(l.created_at),
                "updated_at": iso_millis(l.updated_at),
            })
        })
        .collect();
    let mut body = serde_json::to_value(key_body(&key, None)).unwrap_or_default();
    if let Value::Object(map) = &mut body {
        map.insert(
            "user".into(),
            owner.map_or(Value::Null, |u| {
                json!({"id": u.id, "username": u.username, "name": u.username, "state": "active"})
            }),
        );
        map.insert("deploy_keys_projects".into(), Value::Array(projects));
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// A fingerprint as the store keeps it: `SHA256:` and 43 base64 characters, or 16 lower-case
/// colon-separated hex pairs. The `sha256:` prefix is taken in any case (GitLab's finder matches
/// it case-insensitively and clients lower-case it); an `MD5:` prefix, as `ssh-keygen -E md5`
/// prints it, likewise. The base64 itself is case-sensitive and is left alone.
fn canonical_fingerprint(fp: &str) -> Option<String> {
    if let Some(b64) = strip_prefix_ignore_case(fp, "sha256:") {
        let shaped = b64.len() == 43
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
        return shaped.then(|| format!("SHA256:{b64}"));
    }
    let hex = strip_prefix_ignore_case(fp, "md5:").unwrap_or(fp);
    let shaped = hex.len() == 47
        && hex
            .split(':')
            .all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()));
    shaped.then(|| hex.to_ascii_lowercase())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

pub(super) async fn user_keys(req: HttpRequest, state: web::Data<State>) -> Reply {
    let call = Call::query(&req)?;
    let raw = req.match_info().get("user").unwrap_or_default();
    let name = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned();
    let target = match name.parse::<i64>() {
        Ok(id) => UserRef::Id(id),
        Err(_) => UserRef::Name(name),
    };
    let (page, keys) = call
        .run(
            &state,
            Need::Token,
            call.pagination(),
            move |core, who, page| Ok((page, core.keys_of_user(who, &target, page.window())?)),
        )
        .await?;
    let items: Vec<KeyBody> = keys.items.iter().map(|k| key_body(k, None)).collect();
    Ok(paged(&req, &state, &call, page, keys.total, &items))
}
