//! The GitLab v4 deploy-key API (and the legacy v3 `keys` routes), as python-gitlab and gitbeaker expect it.

mod call;
mod error;
mod keys;
mod projects;
mod users;
mod v3;
mod wire;

use actix_web::{HttpResponse, web};

use error::GlError;
use keys::{
    admin_create, admin_list, create, delete, enable, get, key_by_fingerprint, list, update,
    user_keys,
};
use projects::project;
use users::{me, metadata, user, users};
use v3::{v3_create, v3_delete, v3_enable, v3_get, v3_list};

const OPENAPI: &str = include_str!("../../../dialects/gitlab.yaml");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v4")
            .route("/openapi.yaml", web::get().to(openapi))
            .route("/deploy_keys", web::get().to(admin_list))
            .route("/deploy_keys", web::post().to(admin_create))
            .route("/keys", web::get().to(key_by_fingerprint))
            .route("/projects/{id}", web::get().to(project))
            .route("/projects/{id}/deploy_keys", web::get().to(list))
            .route("/projects/{id}/deploy_keys", web::post().to(create))
            .route("/projects/{id}/deploy_keys/{key_id}", web::get().to(get))
            .route("/projects/{id}/deploy_keys/{key_id}", web::put().to(update))
            .route(
                "/projects/{id}/deploy_keys/{key_id}",
                web::delete().to(delete),
            )
            .route(
                "/projects/{id}/deploy_keys/{key_id}/enable",
                web::post().to(enable),
            )
            .route(
                "/users/{user}/project_deploy_keys",
                web::get().to(user_keys),
            )
            .route("/user", web::get().to(me))
            .route("/users", web::get().to(users))
            .route("/users/{id}", web::get().to(user))
            .route("/version", web::get().to(metadata))
            .route("/metadata", web::get().to(metadata))
            .default_service(web::to(not_found)),
    );
    // GitLab 8.x-10.x served every route under both names; old scripts still use `keys`.
    for legacy in [
        "/api/v3/projects/{id}/keys",
        "/api/v3/projects/{id}/deploy_keys",
    ] {
        cfg.service(
            web::scope(legacy)
                .route("", web::get().to(v3_list))
                .route("", web::post().to(v3_create))
                .route("/{key_id}", web::get().to(v3_get))
                .route("/{key_id}", web::delete().to(v3_delete))
                .route("/{key_id}/enable", web::post().to(v3_enable))
                .route("/{key_id}/disable", web::delete().to(v3_delete)),
        );
    }
}

async fn openapi() -> HttpResponse {
    super::openapi(OPENAPI)
}

async fn not_found() -> error::Reply {
    Err(GlError::NoRoute)
}
