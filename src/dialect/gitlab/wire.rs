//! GitLab's wire bodies, declared once and shared by the v4 and v3 routes.

use std::cell::RefCell;

use actix_web::web::Bytes;
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

/// Keys rendered before, most kept per worker: the memo holds more rows than this, and a list
/// page holds 20.
const RENDERED_CAP: usize = 1024;
/// And at most this much JSON: a key's text may be 5000 characters, kept twice (row and JSON).
const RENDERED_BYTES: usize = 1 << 20;

#[derive(Default)]
struct Rendered {
    keys: foldhash::HashMap<(i64, Option<bool>), (DeployKey, Bytes)>,
    bytes: usize,
}

thread_local! {
    /// Rendering a key's JSON cost more than everything else a GET or a list page of keys did;
    /// the same keys come back request after request. Each copy is kept with the row it was made
    /// from, and reused only while the row is equal field by field (its text is shared with the
    /// memo's rows, so that mostly compares pointers): what goes out is what rendering anew
    /// would send.
    static RENDERED: RefCell<Rendered> = RefCell::default();
}

/// `key_body(key, can_push)` as JSON.
pub(super) fn key_json(key: &DeployKey, can_push: Option<bool>) -> Bytes {
    RENDERED.with(|rendered| {
        let mut rendered = rendered.borrow_mut();
        let slot = (key.id, can_push);
        if let Some((row, json)) = rendered.keys.get(&slot)
            && row == key
        {
            return json.clone();
        }
        let json = Bytes::from(
            sonic_rs::to_vec(&key_body(key, can_push)).unwrap_or_else(|_| b"{}".to_vec()),
        );
        if rendered.keys.len() >= RENDERED_CAP || rendered.bytes + json.len() > RENDERED_BYTES {
            *rendered = Rendered::default();
        }
        rendered.bytes += json.len();
        if let Some((_, replaced)) = rendered.keys.insert(slot, (key.clone(), json.clone())) {
            rendered.bytes -= replaced.len();
        }
        json
    })
}

/// A JSON array of `key_json`s.
pub(super) fn keys_json<'a>(
    keys: impl ExactSizeIterator<Item = (&'a DeployKey, Option<bool>)>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + keys.len() * 640);
    out.push(b'[');
    for (i, (key, can_push)) in keys.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&key_json(key, can_push));
    }
    out.push(b']');
    out
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

#[cfg(test)]
mod tests {
    use super::{DeployKey, RENDERED, RENDERED_BYTES, key_body, key_json, keys_json};

    fn key(id: i64, title: &str, last_used_at: Option<i64>) -> DeployKey {
        DeployKey {
            id,
            fingerprint_sha256: "SHA256:abc".into(),
            fingerprint_md5: "aa:bb".into(),
            key_text: "ssh-ed25519 AAAA".into(),
            kind: "ssh-ed25519".into(),
            bits: 256,
            title: title.into(),
            public: false,
            owner_id: None,
            expires_at: None,
            last_used_at,
            created_at: 1_700_000_000_000,
        }
    }

    fn fresh(key: &DeployKey, can_push: Option<bool>) -> Vec<u8> {
        sonic_rs::to_vec(&key_body(key, can_push)).unwrap()
    }

    /// A kept copy is sent only for an equal row: a changed title, a use of the key or another
    /// `can_push` renders anew, and every answer is what rendering anew gives.
    #[test]
    fn a_kept_rendering_is_only_ever_that_of_an_equal_row() {
        let first = key(7_000_001, "deploy", None);
        assert_eq!(
            &key_json(&first, Some(true))[..],
            &fresh(&first, Some(true))[..]
        );
        assert_eq!(
            &key_json(&first, Some(true))[..],
            &fresh(&first, Some(true))[..]
        );
        let renamed = key(7_000_001, "renamed", None);
        assert_eq!(
            &key_json(&renamed, Some(true))[..],
            &fresh(&renamed, Some(true))[..]
        );
        let used = key(7_000_001, "renamed", Some(1_800_000_000_000));
        assert_eq!(
            &key_json(&used, Some(true))[..],
            &fresh(&used, Some(true))[..]
        );
        assert_eq!(
            &key_json(&used, Some(false))[..],
            &fresh(&used, Some(false))[..]
        );
        assert_eq!(&key_json(&used, None)[..], &fresh(&used, None)[..]);
        assert_ne!(fresh(&first, Some(true)), fresh(&used, Some(true)));
    }

    #[test]
    fn a_list_is_the_array_of_its_keys() {
        let (a, b) = (key(7_000_002, "a", None), key(7_000_003, "b", Some(5)));
        let listed = keys_json([(&a, Some(true)), (&b, Some(false))].into_iter());
        let expected =
            sonic_rs::to_vec(&[key_body(&a, Some(true)), key_body(&b, Some(false))]).unwrap();
        assert_eq!(listed, expected);
        assert_eq!(keys_json(std::iter::empty()), b"[]");
    }

    /// Long key texts fill the copies by size before by count: what a worker keeps stays bounded.
    #[test]
    fn the_kept_renderings_are_bounded_in_bytes() {
        let text = "A".repeat(4000);
        for id in 0..400 {
            let mut long = key(7_100_000 + id, "long", None);
            long.key_text = text.as_str().into();
            assert_eq!(&key_json(&long, None)[..], &fresh(&long, None)[..]);
            let kept = RENDERED.with(|r| r.borrow().bytes);
            assert!(kept <= RENDERED_BYTES, "{kept} bytes kept");
        }
        let kept = RENDERED.with(|r| r.borrow().keys.len());
        assert!(kept < 400, "emptied on the way: {kept} kept");
    }
}
