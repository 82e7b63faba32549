//! GitHub's `GET /repos/{owner}/{repo}`: just enough of a repository for clients (PyGithub's `get_repo`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};

use super::api_root;
use super::auth::run;
use super::error::{DOCS_REPO, Reply, gh_json};
use super::keys::repo_path;
use super::wire::repo_body;
use crate::core::RepoRef;
use crate::http::{State, base_url};

pub(super) async fn repository(req: HttpRequest, state: web::Data<State>) -> Reply {
    let path = RepoRef::Path(repo_path(&req));
    let (repo, role) = run(&req, &state, DOCS_REPO, move |core, who| {
        Ok(core.repository_role(who, &path)?)
    })
    .await?;
    Ok(gh_json(
        StatusCode::OK,
        &repo_body(
            &repo,
            role,
            &api_root(&req, &state),
            &base_url(&req, &state),
        ),
    ))
}
