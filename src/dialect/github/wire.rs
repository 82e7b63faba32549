//! GitHub's REST wire types, declared once: the deploy key, the repository, the user, node ids.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Value, json};

use crate::core::{LinkedKey, Repository, Role, User};
use crate::dialect::iso_seconds;

#[derive(Serialize)]
pub(super) struct KeyBody<'a> {
    id: i64,
    key: &'a str,
    pub(super) url: String,
    title: &'a str,
    verified: bool,
    created_at: String,
    read_only: bool,
    added_by: Option<&'a str>,
    last_used: Option<String>,
    enabled: bool,
}

/// `keys_url` is the repository's `/keys` URL on the client's API root.
pub(super) fn key_body<'a>(linked: &'a LinkedKey, keys_url: &str) -> KeyBody<'a> {
    KeyBody {
        id: linked.key.id,
        key: bare_key(&linked.key.key_text),
        url: format!("{keys_url}/{}", linked.key.id),
        title: &linked.key.title,
        verified: true,
        created_at: iso_seconds(linked.linked_at),
        read_only: !linked.can_push,
        added_by: linked.added_by.as_deref(),
        last_used: linked.key.last_used_at.map(iso_seconds),
        enabled: true,
    }
}

/// GitHub shows `type base64`, without the comment keygate keeps for GitLab.
pub(super) fn bare_key(text: &str) -> &str {
    text.match_indices(' ')
        .nth(1)
        .map_or(text, |(at, _)| &text[..at])
}

/// GitHub's legacy global node id, also the GraphQL `id` (GitHub's REST `node_id` and GraphQL
/// `id` are the same value): base64 of `<len>:<Type><id>`, stable for as long as the row lives: base64 of `<len>:<Type><id>`.
pub(super) fn node_id(kind: &str, id: i64) -> String {
    STANDARD.encode(format!("{:03}:{kind}{id}", kind.len()))
}

pub(super) fn repo_body(repo: &Repository, role: Option<Role>, root: &str, web: &str) -> Value {
    // Maintainers (and instance admins, who have no role) administer the repository on GitHub's
    // terms; a reporter reads and triages.
    let admin = role != Some(Role::Reporter);
    let url = format!("{root}/repos/{}", repo.full_path);
    let ns = &repo.namespace;
    json!({
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_path,
        "owner": {
            "login": ns.name,
            "id": ns.id,
            "node_id": node_id("Organization", ns.id),
            "type": "Organization",
            "site_admin": false,
        },
        "private": true,
        "visibility": "private",
        "description": null,
        "fork": false,
        "archived": false,
        "disabled": false,
        "default_branch": "main",
        "html_url": format!("{web}/{}", repo.full_path),
        "url": url,
        "keys_url": format!("{url}/keys{{/key_id}}"),
        "created_at": iso_seconds(repo.created_at),
        "updated_at": iso_seconds(repo.created_at),
        "permissions": {
            "admin": admin,
            "maintain": admin,
            "push": admin,
            "triage": true,
            "pull": true,
        },
    })
}

pub(super) fn user_body(user: &User) -> Value {
    json!({
        "login": user.username,
        "id": user.id,
        "node_id": node_id("User", user.id),
        "type": "User",
        "site_admin": user.admin,
        "created_at": iso_seconds(user.created_at),
    })
}
