//! The CodeArts deploy-key routes: v1/v2 add and delete, v4 lists, checks, removal and submodule sync.

use actix_web::{HttpRequest, HttpResponse, web};

use super::call::{Body, Call, group_id, key_id, project_id, repository, window};
use super::error::{CaError, Enveloped, Reply};
use super::wire::{self, KeyResult, codearts_time, listed, success};
use crate::core::{Added, Conflict, DeployKey, Error};
use crate::http::State;

// ---------- v1 / v2 handlers ----------

pub(super) async fn add(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Result<HttpResponse, Enveloped> {
    add_key(req, state, payload).await.map_err(Enveloped)
}

async fn add_key(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = repository(&req).and_then(|repo| {
        let body = Body::parse(&call.body)?;
        let (submission, application) = body.add_request()?;
        Ok((repo, (state.core.parse_submission(submission), application)))
    });
    let linked = call
        .run(
            &state,
            args,
            |core, who, (repo, (submission, application))| {
                match core.add_key_with_application(who, &repo, &submission, &application) {
                    // CodeArts refuses a key the repository has already (the same key elsewhere is
                    // shared instead, keeping its id and title).
                    Ok((_, Added::Existing)) => Err(Error::Conflict(Conflict::KeyOnRepository)),
                    Ok((linked, _)) => Ok(linked),
                    // The same signed add again: with the key still there (a retry whose answer was
                    // lost, say) it is the usual duplicate; gone, it stays gone.
                    Err(Error::Conflict(Conflict::RequestUsed))
                        if core.repo_has_key(who, &repo, &submission.submission.key)? =>
                    {
                        Err(Error::Conflict(Conflict::KeyOnRepository))
                    }
                    Err(err) => Err(err),
                }
            },
        )
        .await?;
    Ok(success(KeyResult {
        key_id: linked.key.id.to_string(),
        key_title: &linked.key.title,
        key: &linked.key.key_text,
        can_push: linked.can_push,
        created_at: codearts_time(linked.key.created_at),
    }))
}

pub(super) async fn delete(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Result<HttpResponse, Enveloped> {
    remove_key(&req, &state, payload)
        .await
        // A JSON boolean: the SDK casts with bool(), which makes the string "false" true.
        .map(|()| success(true))
        .map_err(Enveloped)
}

async fn remove_key(
    req: &HttpRequest,
    state: &State,
    payload: web::Payload,
) -> Result<(), CaError> {
    let call = Call::read(req, payload).await?;
    let args = repository(req).and_then(|repo| Ok((repo, key_id(req)?)));
    call.run(state, args, |core, who, (repo, id)| {
        core.remove_key(who, &repo, id).map(drop)
    })
    .await
}

// ---------- v4 handlers ----------

pub(super) async fn remove(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    remove_key(&req, &state, payload).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(super) async fn list_repository(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = repository(&req).and_then(|repo| Ok((repo, window(&req)?)));
    let page = call
        .run(&state, args, |core, who, (repo, window)| {
            core.list_keys(who, &repo, window)
        })
        .await?;
    let keys: Vec<DeployKey> = page.items.into_iter().map(|l| l.key).collect();
    Ok(listed(&keys, page.total))
}

pub(super) async fn list_group(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = group_id(&req).and_then(|id| Ok((id, window(&req)?)));
    let page = call
        .run(&state, args, |core, who, (id, window)| {
            core.group_keys(who, id, window)
        })
        .await?;
    Ok(listed(&page.items, page.total))
}

pub(super) async fn list_project(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = project_id(&req).and_then(|id| Ok((id, window(&req)?)));
    let page = call
        .run(&state, args, |core, who, (id, window)| {
            core.project_keys(who, &id, window)
        })
        .await
        .map_err(CaError::for_project)?;
    Ok(listed(&page.items, page.total))
}

pub(super) async fn check_repository(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args =
        repository(&req).and_then(|repo| Ok((repo, Body::parse(&call.body)?.check_request()?)));
    let exists = call
        .run(&state, args, |core, who, (repo, key)| {
            core.repo_has_key(who, &repo, &key)
        })
        .await?;
    Ok(wire::exists(exists))
}

pub(super) async fn check_group(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = group_id(&req).and_then(|id| Ok((id, Body::parse(&call.body)?.check_request()?)));
    let exists = call
        .run(&state, args, |core, who, (id, key)| {
            core.group_has_key(who, id, &key)
        })
        .await?;
    Ok(wire::exists(exists))
}

pub(super) async fn sync_submodules(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = repository(&req).and_then(|repo| Ok((repo, key_id(&req)?)));
    call.run(&state, args, |core, who, (repo, id)| {
        core.sync_key_to_submodules(who, &repo, id)
    })
    .await?;
    // The SDK's response model has no fields; an empty body is what CodeArts sends.
    Ok(HttpResponse::Ok().finish())
}

pub(super) async fn unsync_submodules(
    req: HttpRequest,
    state: web::Data<State>,
    payload: web::Payload,
) -> Reply {
    let call = Call::read(&req, payload).await?;
    let args = repository(&req).and_then(|repo| Ok((repo, key_id(&req)?)));
    call.run(&state, args, |core, who, (repo, id)| {
        core.remove_key_from_submodules(who, &repo, id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
