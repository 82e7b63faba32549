//! GitLab's wire bodies, declared once and shared by the v4 and v3 routes.

use serde::Serialize;

use crate::core::{DeployKey, KeyWithRepos, LinkedKey, Repository, User};
use crate::dialect::{IsoMillis, iso_millis};

#[derive(Serialize)]
pub(super) struct KeyBody<'a> {
    id: i64,
    title: &'a str,
    created_at: IsoMillis,
    expires_at: Option<IsoMillis>,
    last_used_at: Option<IsoMillis>,
    key: &'a str,
    usage_type: &'static str,
    fingerprint: &'a str,
    fingerprint_sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    can_push: Option<bool>,
}

pub(super) fn key_body(key: &DeployKey, can_push: Option<bool>) -> KeyBody<'_> {
    KeyBody {
        id: key.id,
        title: &key.title,
        created_at: IsoMillis(key.created_at),
        expires_at: key.expires_at.map(IsoMillis),
        last_used_at: key.last_used_at.map(IsoMillis),
        key: &key.key_text,
        usage_type: "auth_and_signing",
        fingerprint: &key.fingerprint_md5,
        fingerprint_sha256: &key.fingerprint_sha256,
        can_push,
    }
}

pub(super) fn linked_body(linked: &LinkedKey) -> KeyBody<'_> {
    key_body(&linked.key, Some(linked.can_push))
}

#[derive(Serialize)]
pub(super) struct ProjectIdentity<'a> {
    id: i64,
    description: Option<&'a str>,
    name: &'a str,
    name_with_namespace: String,
    path: &'a str,
    path_with_namespace: &'a str,
    created_at: String,
}

fn identity(repo: &Repository) -> ProjectIdentity<'_> {
    ProjectIdentity {
        id: repo.id,
        description: None,
        name: &repo.name,
        name_with_namespace: repo.full_path.replace('/', " / "),
        path: &repo.name,
        path_with_namespace: &repo.full_path,
        created_at: iso_millis(repo.created_at),
    }
}

#[derive(Serialize)]
pub(super) struct AdminKeyBody<'a> {
    #[serde(flatten)]
    key: KeyBody<'a>,
    projects_with_write_access: Vec<ProjectIdentity<'a>>,
    projects_with_readonly_access: Vec<ProjectIdentity<'a>>,
}

pub(super) fn admin_body(item: &KeyWithRepos) -> AdminKeyBody<'_> {
    let (key, repos) = item;
    let side = |write: bool| {
        repos
            .iter()
            .filter(|(_, can_push)| *can_push == write)
            .map(|(repo, _)| identity(repo))
            .collect()
    };
    AdminKeyBody {
        key: key_body(key, None),
        projects_with_write_access: side(true),
        projects_with_readonly_access: side(false),
    }
}

#[derive(Serialize)]
pub(super) struct V3Key<'a> {
    id: i64,
    title: &'a str,
    key: &'a str,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    can_push: Option<bool>,
}

pub(super) fn v3_body(key: &DeployKey, can_push: Option<bool>) -> V3Key<'_> {
    V3Key {
        id: key.id,
        title: &key.title,
        key: &key.key_text,
        created_at: iso_millis(key.created_at),
        can_push,
    }
}

pub(super) fn v3_linked(linked: &LinkedKey) -> V3Key<'_> {
    v3_body(&linked.key, Some(linked.can_push))
}

/// A user's public fields (GitLab's `UserBasic` plus `created_at` and `bot`); `is_admin` only for
/// an admin's eyes, as GitLab's `UserWithAdmin` entity has it.
#[derive(Serialize)]
pub(super) struct UserBody<'a> {
    id: i64,
    username: &'a str,
    /// keygate keeps no display name; GitLab clients expect one.
    name: &'a str,
    state: &'static str,
    locked: bool,
    avatar_url: Option<&'a str>,
    web_url: String,
    created_at: String,
    bot: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_admin: Option<bool>,
}

/// `base` is the client-visible base URL; `admin_view` says whether the caller is an admin.
pub(super) fn user_body<'a>(user: &'a User, base: &str, admin_view: bool) -> UserBody<'a> {
    UserBody {
        id: user.id,
        username: &user.username,
        name: &user.username,
        state: "active",
        locked: false,
        avatar_url: None,
        web_url: format!("{base}/{}", user.username),
        created_at: iso_millis(user.created_at),
        bot: false,
        is_admin: admin_view.then_some(user.admin),
    }
}

/// `GET /version` and `GET /metadata` (the same body since GitLab 15.5).
#[derive(Serialize)]
pub(super) struct Metadata {
    pub(super) version: &'static str,
    pub(super) revision: &'static str,
    pub(super) kas: Kas,
    pub(super) enterprise: bool,
}

/// The Kubernetes agent server: keygate has none, reported as a GitLab without KAS reports it.
#[derive(Serialize)]
pub(super) struct Kas {
    pub(super) enabled: bool,
    #[serde(rename = "externalUrl")]
    pub(super) external_url: Option<String>,
    #[serde(rename = "externalK8sProxyUrl")]
    pub(super) external_k8s_proxy_url: Option<String>,
    pub(super) version: Option<String>,
}
