//! The Huawei Cloud CodeArts Repo deploy-key API (`/v1`, `/v2`, `/v4`), as the official SDKs call it.

use actix_web::web;

pub fn configure(_cfg: &mut web::ServiceConfig) {}
