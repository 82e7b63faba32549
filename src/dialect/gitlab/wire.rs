//! GitLab's wire bodies, declared once and shared by the v4 and v3 routes.

use serde::Serialize;

use crate::core::{DeployKey, KeyWithRepos, LinkedKey, Repository};
use crate::dialect::iso_millis;

#[derive(Serialize)]
pub(super) struct KeyBody<'a> {
    id: i64,
    title: &'a str,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
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
        created_at: iso_millis(key.created_at),
        expires_at: key.expires_at.map(iso_millis),
        last_used_at: key.last_used_at.map(iso_millis),
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
