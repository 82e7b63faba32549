//! The GitHub REST deploy-key API (bare and under `/api/v3`), as PyGithub and octokit expect it.

use actix_web::web;

pub fn configure(_cfg: &mut web::ServiceConfig) {}
