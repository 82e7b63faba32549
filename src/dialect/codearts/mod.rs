//! The Huawei Cloud CodeArts Repo deploy-key API (`/v1`, `/v2`, `/v4`), as the official SDKs call it.

mod call;
mod error;
mod keys;
mod wire;

use actix_web::{HttpResponse, Resource, web};

use error::{CaError, Reply};
use keys::{
    add, check_group, check_repository, delete, list_group, list_project, list_repository, remove,
    sync_submodules, unsync_submodules,
};

const OPENAPI: &str = include_str!("../../../dialects/codearts.yaml");

pub fn configure(cfg: &mut web::ServiceConfig) {
    // v1 spells the collection `deploy_keys`, v2 and v4 `deploy-keys`; v1 and v2 behave alike.
    for (version, collection) in [("/v1", "deploy_keys"), ("/v2", "deploy-keys")] {
        let keys = format!("/repositories/{{repository_id}}/{collection}");
        cfg.service(
            web::scope(version)
                .service(resource(&keys).post(add))
                .service(resource(&format!("{keys}/{{key_id}}")).delete(delete))
                .default_service(web::to(no_route)),
        );
    }
    let repo_keys = "/repositories/{repository_id}/deploy-keys";
    cfg.service(
        web::scope("/v4")
            .service(resource("/openapi.yaml").get(openapi))
            .service(resource(repo_keys).get(list_repository))
            // Before `{key_id}`, which would otherwise take `check-key` as an id.
            .service(resource(&format!("{repo_keys}/check-key")).post(check_repository))
            .service(resource(&format!("{repo_keys}/{{key_id}}")).delete(remove))
            .service(
                resource(&format!("{repo_keys}/{{key_id}}/submodules"))
                    .post(sync_submodules)
                    .delete(unsync_submodules),
            )
            .service(resource("/groups/{group_id}/deploy-keys").get(list_group))
            .service(resource("/groups/{group_id}/deploy-keys/check-key").post(check_group))
            .service(resource("/projects/{project_id}/deploy-keys").get(list_project))
            .default_service(web::to(no_route)),
    );
}

/// The 408 for a body that did not arrive in time on a CodeArts path: enveloped on v1 and v2.
pub fn body_timeout(path: &str) -> HttpResponse {
    let enveloped = ["/v1/", "/v2/"].iter().any(|p| path.starts_with(p));
    CaError::BodyTimeout.render(enveloped)
}

/// The answer to an address banned for failed logins (`dialect::banned`): the gateway's 429.
pub fn banned(left: u64) -> HttpResponse {
    CaError::Banned(left).render(false)
}

/// API Gateway matches an API on method and path together, so a known path with another method
/// is an unknown API too (404, not 405).
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(no_route))
}

async fn openapi() -> HttpResponse {
    super::openapi(OPENAPI)
}

async fn no_route() -> Reply {
    Err(CaError::NoRoute)
}
