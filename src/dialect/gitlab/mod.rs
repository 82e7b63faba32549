//! The GitLab v4 deploy-key API (and the legacy v3 `keys` routes), as python-gitlab and gitbeaker expect it.

mod audit;
mod call;
mod error;
mod keys;
mod projects;
mod rate;
mod users;
mod v3;
mod wire;

use actix_web::middleware::from_fn;
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
    // One resource per path, the deploy-key paths first: actix tries the patterns in order, and
    // each dynamic one is a regex run. Other methods on a known path answer the same 404 as an
    // unknown path (`resource`), as before the routes were grouped.
    cfg.service(
        web::scope("/api/v4")
            .wrap(from_fn(rate::stamp))
            .service(
                resource("/projects/{id}/deploy_keys/{key_id}")
                    .route(web::get().to(get))
                    .route(web::put().to(update))
                    .route(web::delete().to(delete)),
            )
            .service(
                resource("/projects/{id}/deploy_keys")
                    .route(web::get().to(list))
                    .route(web::post().to(create)),
            )
            .service(
                resource("/projects/{id}/deploy_keys/{key_id}/enable")
                    .route(web::post().to(enable)),
            )
            .service(
                resource("/deploy_keys")
                    .route(web::get().to(admin_list))
                    .route(web::post().to(admin_create)),
            )
            .service(resource("/keys").route(web::get().to(key_by_fingerprint)))
            .service(resource("/audit_events").route(web::get().to(audit::instance_list)))
            .service(resource("/audit_events/{event_id}").route(web::get().to(audit::instance_get)))
            .service(
                resource("/projects/{id}/audit_events").route(web::get().to(audit::project_list)),
            )
            .service(
                resource("/projects/{id}/audit_events/{event_id}")
                    .route(web::get().to(audit::project_get)),
            )
            .service(resource("/groups/{id}/audit_events").route(web::get().to(audit::group_list)))
            .service(
                resource("/groups/{id}/audit_events/{event_id}")
                    .route(web::get().to(audit::group_get)),
            )
            .service(resource("/projects/{id}").route(web::get().to(project)))
            .service(resource("/users/{user}/project_deploy_keys").route(web::get().to(user_keys)))
            .service(resource("/user").route(web::get().to(me)))
            .service(resource("/users").route(web::get().to(users)))
            .service(resource("/users/{id}").route(web::get().to(user)))
            .service(resource("/version").route(web::get().to(metadata)))
            .service(resource("/metadata").route(web::get().to(metadata)))
            .service(resource("/openapi.yaml").route(web::get().to(openapi)))
            .default_service(web::to(not_found)),
    );
    // GitLab 8.x-10.x served every route under both names; old scripts still use `keys`.
    for legacy in [
        "/api/v3/projects/{id}/keys",
        "/api/v3/projects/{id}/deploy_keys",
    ] {
        cfg.service(
            web::scope(legacy)
                .wrap(from_fn(rate::stamp))
                .route("", web::get().to(v3_list))
                .route("", web::post().to(v3_create))
                .route("/{key_id}", web::get().to(v3_get))
                .route("/{key_id}", web::delete().to(v3_delete))
                .route("/{key_id}/enable", web::post().to(v3_enable))
                .route("/{key_id}/disable", web::delete().to(v3_delete)),
        );
    }
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(not_found))
}

async fn openapi() -> HttpResponse {
    super::openapi(OPENAPI)
}

async fn not_found() -> error::Reply {
    Err(GlError::NoRoute)
}
