//! The internal routes the SSH door asks (`/internal/ssh/…`): never public, refused without the
//! shared secret, and left out of every OpenAPI document (see docs/ssh.md).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::core::{Error, GitAccess, SshDenial};
use crate::http::{self, State, blocking};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/internal")
            .route("/ssh/authorized-key", web::get().to(authorized_key))
            .route("/ssh/access", web::post().to(access))
            .default_service(web::to(|| async {
                super::json(StatusCode::NOT_FOUND, &json!({"message": "404 Not Found"}))
            })),
    );
}

fn message(status: StatusCode, text: &str) -> HttpResponse {
    super::with_retry_after(super::json(status, &json!({ "message": text })))
}

/// The secret, from `Authorization: Bearer …`, compared in constant time; `Some` is the refusal
/// to send. Refusals are logged without what was offered.
fn refusal(req: &HttpRequest, state: &State) -> Option<HttpResponse> {
    let offered = http::authorization_token(req, &["bearer"]).unwrap_or_default();
    if state.internal_secret.matches(&offered) {
        return None;
    }
    log::warn!(
        "internal {}: refused, {} (request {})",
        req.path(),
        if offered.is_empty() {
            "no secret"
        } else {
            "wrong secret"
        },
        http::request_id(req)
    );
    Some(message(StatusCode::UNAUTHORIZED, "401 Unauthorized"))
}

fn store_failure(req_id: &str, err: &Error) -> HttpResponse {
    match err {
        Error::Busy => message(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable"),
        other => {
            http::log_internal(req_id, other);
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error",
            )
        }
    }
}

/// `SHA256:` and 43 unpadded base64 characters, as keygate stores fingerprints.
fn sha256_fingerprint(text: &str) -> bool {
    text.strip_prefix("SHA256:").is_some_and(|b64| {
        b64.len() == 43
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    })
}

/// Stage 1: may the key with this fingerprint log in at all? 200 with its id, or 404.
async fn authorized_key(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(refused) = refusal(&req, &state) {
        return refused;
    }
    let req_id = http::request_id(&req);
    let fingerprint = http::Params::from_query(req.query_string())
        .ok()
        .and_then(|p| p.string("fingerprint").ok().flatten())
        .filter(|fp| sha256_fingerprint(fp));
    let Some(fingerprint) = fingerprint else {
        return message(
            StatusCode::BAD_REQUEST,
            "fingerprint must be SHA256: and 43 base64 characters",
        );
    };
    let core = state.core.clone();
    let lookup = {
        let fingerprint = fingerprint.clone();
        http::reading(&state.core, "", move || core.ssh_login_key(&fingerprint)).await
    };
    match lookup {
        Ok(Some(key)) => {
            crate::telemetry::ssh_login(true);
            log::info!("ssh login key={} accepted (request {req_id})", key.id);
            super::json(StatusCode::OK, &json!({"id": key.id}))
        }
        Ok(None) => {
            crate::telemetry::ssh_login(false);
            log::info!("ssh login {fingerprint}: no active deploy key (request {req_id})");
            message(StatusCode::NOT_FOUND, "404 Key Not Found")
        }
        Err(err) => store_failure(&req_id, &err),
    }
}

#[derive(Deserialize)]
struct AccessRequest {
    key_id: i64,
    repository: String,
    action: String,
}

/// What users read when the door stays shut: GitLab's words where GitLab has them.
fn denial_text(denial: SshDenial) -> &'static str {
    match denial {
        SshDenial::KeyMissing => "The deploy key you are authenticating with no longer exists.",
        SshDenial::KeyExpired => "Your SSH key has expired.",
        SshDenial::NotFound => {
            "The project you were looking for could not be found or you don't have permission to view it."
        }
        SshDenial::ReadOnly => "This deploy key does not have write access to this project.",
    }
}

/// Stage 2: may key `key_id` run `action` on `repository`? 200 with the repository as stored,
/// or 403 with the reason and the words to show.
async fn access(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> HttpResponse {
    if let Some(refused) = refusal(&req, &state) {
        return refused;
    }
    let req_id = http::request_id(&req);
    let body = match http::read_body(payload).await {
        Ok(body) => body,
        Err(err) => return message(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    let Ok(ask) = serde_json::from_slice::<AccessRequest>(&body) else {
        return message(
            StatusCode::BAD_REQUEST,
            "expected {\"key_id\": N, \"repository\": \"path\", \"action\": \"git-upload-pack\"}",
        );
    };
    let kind = match ask.action.as_str() {
        "git-upload-pack" | "git-upload-archive" => GitAccess::Read,
        "git-receive-pack" => GitAccess::Push,
        _ => return message(StatusCode::BAD_REQUEST, "unknown action"),
    };
    // The path reached the SSH side from the client; it is logged escaped and looked up as data.
    if ask.repository.is_empty()
        || ask.repository.len() > 1024
        || ask.repository.chars().any(char::is_control)
    {
        return message(StatusCode::BAD_REQUEST, "repository is not a path");
    }
    let core = state.core.clone();
    let (key_id, path) = (ask.key_id, ask.repository.clone());
    let verdict = blocking(move || core.ssh_access(key_id, &path, kind)).await;
    match verdict {
        Ok(Ok(grant)) => {
            crate::telemetry::ssh_access(None);
            log::info!(
                "ssh allow key={} repo={} verb={} (request {req_id})",
                grant.key_id,
                grant.repository.full_path,
                ask.action
            );
            super::json(
                StatusCode::OK,
                &json!({
                    "allowed": true,
                    "key_id": grant.key_id,
                    "can_push": grant.can_push,
                    "repository": {"id": grant.repository.id, "path": grant.repository.full_path},
                }),
            )
        }
        Ok(Err(denial)) => {
            crate::telemetry::ssh_access(Some(denial.as_str()));
            log::info!(
                "ssh deny key={} repo={:?} verb={} reason={} (request {req_id})",
                ask.key_id,
                ask.repository,
                ask.action,
                denial.as_str()
            );
            super::json(
                StatusCode::FORBIDDEN,
                &json!({"allowed": false, "reason": denial.as_str(), "message": denial_text(denial)}),
            )
        }
        Err(err) => store_failure(&req_id, &err),
    }
}
