//! Hostile text and hostile keys through every dialect's HTTP surface: refused (or, for a key
//! comment, dropped) the same way everywhere, and nothing of them stored.

mod common;

use common::{Creds, Gateway, Seed, access_key, fixture, fresh_key, signed};
use serde_json::{Value, json};

/// Characters the core's text rule refuses: terminal escapes, BEL, NUL, DEL, C1, line and
/// paragraph separators, bidi overrides and isolates.
const HOSTILE: [&str; 9] = [
    "ci\u{1b}]0;x\u{7}",
    "nul\u{0}",
    "del\u{7f}",
    "csi\u{9b}2J",
    "line\u{2028}break",
    "para\u{2029}break",
    "txt.\u{202e}exe",
    "lre\u{202a}x",
    "iso\u{2066}x\u{2069}",
];

struct World {
    gw: Gateway,
    seed: Seed,
    alice: Creds,
}

fn world() -> World {
    let gw = Gateway::start();
    let seed = gw.seed();
    let alice = access_key(&gw, "alice");
    World { gw, seed, alice }
}

impl World {
    fn gitlab_add(&self, title: &str, key: &str) -> common::Resp {
        self.gw
            .req(
                "POST",
                &format!("/api/v4/projects/{}/deploy_keys", self.seed.widgets),
            )
            .token(&self.seed.alice)
            .json(&json!({"title": title, "key": key}))
            .send()
    }

    fn github_add(&self, title: &str, key: &str) -> common::Resp {
        self.gw
            .req("POST", "/api/v3/repos/acme/widgets/keys")
            .header("Authorization", &format!("token {}", self.seed.alice))
            .json(&json!({"title": title, "key": key, "read_only": true}))
            .send()
    }

    fn codearts_add(&self, title: &str, key: &str, application: &str) -> common::Resp {
        let body =
            json!({"application": application, "can_push": false, "key": key, "key_title": title});
        signed(
            &self.gw,
            &self.alice,
            "POST",
            &format!("/v2/repositories/{}/deploy-keys", self.seed.widgets),
            Some(&body),
        )
        .send()
    }

    /// The keys on acme/widgets, as GitLab lists them.
    fn stored(&self) -> Vec<Value> {
        self.gw
            .req(
                "GET",
                &format!("/api/v4/projects/{}/deploy_keys", self.seed.widgets),
            )
            .token(&self.seed.alice)
            .send()
            .expect(200)
            .json()
            .as_array()
            .unwrap()
            .clone()
    }
}

#[test]
fn hostile_titles_are_refused_in_every_dialect_and_nothing_is_stored() {
    let w = world();
    for title in HOSTILE {
        let key = fresh_key("k");
        let res = w.gitlab_add(title, &key).expect(400);
        assert_eq!(
            res.json()["message"]["deploy_key.title"][0],
            "is invalid (expected text without control, line-separator or bidirectional-control characters)",
            "{title:?}"
        );

        let res = w.github_add(title, &key).expect(422);
        let body = res.json();
        assert_eq!(body["message"], "Validation Failed", "{title:?}");
        assert_eq!(body["errors"][0]["field"], "title", "{title:?}");

        let res = w.codearts_add(title, &key, "ci").expect(400);
        let body = res.json();
        assert_eq!(body["error"]["code"], "CH.00100001", "{title:?}");
        assert_eq!(
            body["error"]["message"],
            "key_title must be text without control, line-separator or bidirectional-control characters.",
            "{title:?}"
        );
    }
    assert_eq!(w.stored(), Vec::<Value>::new());
}

#[test]
fn a_hostile_title_cannot_be_set_by_an_update_either() {
    let w = world();
    let created = w.gitlab_add("fine", &fresh_key("k")).expect(201).json();
    let path = format!(
        "/api/v4/projects/{}/deploy_keys/{}",
        w.seed.widgets, created["id"]
    );
    for title in HOSTILE {
        w.gw.req("PUT", &path)
            .token(&w.seed.alice)
            .json(&json!({ "title": title }))
            .send()
            .expect(400);
    }
    assert_eq!(w.stored()[0]["title"], "fine");
}

#[test]
fn a_hostile_codearts_application_is_refused_and_nothing_is_stored() {
    let w = world();
    for application in HOSTILE {
        let res = w
            .codearts_add("t", &fresh_key("k"), application)
            .expect(400);
        let body = res.json();
        assert_eq!(body["error"]["code"], "CH.00100001", "{application:?}");
        assert_eq!(body["error"]["message"], "application is invalid.");
    }
    assert_eq!(w.stored(), Vec::<Value>::new());
    // Also when the key is already on the repository, where the label would be ignored.
    let key = fresh_key("k");
    w.codearts_add("t", &key, "ci").expect(200);
    w.codearts_add("t", &key, HOSTILE[0]).expect(400);
    let store = keygate::store::Store::open(&w.gw.db).unwrap();
    let id = w.stored()[0]["id"].as_i64().unwrap();
    let label = store
        .read(|db| db.link_application(w.seed.widgets, id))
        .unwrap();
    assert_eq!(label.as_deref(), Some("ci"));
}

#[test]
fn a_hostile_key_comment_is_dropped_in_every_dialect() {
    let w = world();
    let mut echoed = Vec::new();
    for (i, comment) in HOSTILE.iter().enumerate() {
        // A comment is one token: the separators split it, so only the part before them is at
        // stake; what matters is that nothing hostile is stored or echoed.
        let key = fresh_key(comment);
        let bare = key.split(' ').take(2).collect::<Vec<_>>().join(" ");
        let got = match i % 3 {
            0 => w.gitlab_add("t", &key).expect(201).json()["key"].clone(),
            1 => w.github_add("t", &key).expect(201).json()["key"].clone(),
            _ => w.codearts_add("t", &key, "ci").expect(200).json()["result"]["key"].clone(),
        };
        let got = got.as_str().unwrap().to_string();
        assert!(
            got == bare || got.starts_with(&format!("{bare} ")),
            "{comment:?}: {got:?}"
        );
        echoed.push(got);
    }
    let stored: Vec<String> = w
        .stored()
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored.len(), HOSTILE.len());
    for text in echoed.iter().chain(&stored) {
        assert!(keygate::core::text::is_safe(text), "{text:?}");
    }
    // The escape-sequence comment of the issue is dropped whole, not trimmed to something else.
    assert_eq!(echoed[0].split(' ').count(), 2, "{:?}", echoed[0]);
    // A clean comment is still kept.
    let key = fresh_key("ci@host");
    assert_eq!(w.gitlab_add("t", &key).expect(201).json()["key"], key);
}

#[test]
fn off_curve_ecdsa_keys_are_refused_in_every_dialect_and_nothing_is_stored() {
    let w = world();
    for file in [
        "ecdsa-256-off-curve.pub",
        "ecdsa-384-off-curve.pub",
        "ecdsa-521-off-curve.pub",
    ] {
        let key = fixture(file);
        let res = w.gitlab_add("t", &key).expect(400);
        assert_eq!(
            res.json()["message"]["deploy_key.key"][0],
            "is invalid",
            "{file}"
        );
        let res = w.github_add("t", &key).expect(422);
        assert_eq!(res.json()["errors"][0]["field"], "key", "{file}");
        let res = w.codearts_add("t", &key, "ci").expect(400);
        assert_eq!(res.json()["error"]["code"], "CH.00100002", "{file}");
    }
    assert_eq!(w.stored(), Vec::<Value>::new());
}

#[test]
fn an_ed25519_key_of_the_wrong_length_is_refused() {
    use base64::Engine;
    let w = world();
    for len in [0usize, 31, 33, 64] {
        let mut blob = Vec::new();
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&(len as u32).to_be_bytes());
        blob.extend(std::iter::repeat_n(7u8, len));
        let key = format!(
            "ssh-ed25519 {} short",
            base64::engine::general_purpose::STANDARD.encode(&blob)
        );
        let res = w.gitlab_add("t", &key).expect(400);
        assert_eq!(
            res.json()["message"]["deploy_key.key"][0],
            "is invalid",
            "{len}"
        );
    }
    assert_eq!(w.stored(), Vec::<Value>::new());
}
