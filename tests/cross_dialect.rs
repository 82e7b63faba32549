//! One key, every dialect: added through any API, seen with the same id and fingerprints through the others.

mod common;

use common::{Gateway, access_key, fresh_key, signed};
use serde_json::{Value, json};

struct Views<'a> {
    gw: &'a Gateway,
    token: &'a str,
    repo: i64,
    creds: common::Creds,
}

impl Views<'_> {
    fn gitlab(&self, id: i64) -> (u16, Value) {
        let res = self
            .gw
            .req(
                "GET",
                &format!("/api/v4/projects/{}/deploy_keys/{id}", self.repo),
            )
            .token(self.token)
            .send();
        (
            res.status,
            serde_json::from_str(&res.body).unwrap_or(Value::Null),
        )
    }

    fn github(&self, id: i64) -> (u16, Value) {
        let res = self
            .gw
            .req("GET", &format!("/api/v3/repos/acme/widgets/keys/{id}"))
            .header("Authorization", &format!("token {}", self.token))
            .send();
        (
            res.status,
            serde_json::from_str(&res.body).unwrap_or(Value::Null),
        )
    }

    /// The CodeArts v4 list item for `id`, if the key is on the repository.
    fn codearts(&self, id: i64) -> Option<Value> {
        let list = signed(
            self.gw,
            &self.creds,
            "GET",
            &format!(
                "/v4/repositories/{}/deploy-keys?limit=100&offset=0",
                self.repo
            ),
            None,
        )
        .send()
        .expect(200)
        .json();
        list.as_array()?.iter().find(|k| k["id"] == id).cloned()
    }
}

#[test]
fn one_key_seen_the_same_through_every_dialect() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let views = Views {
        gw: &gw,
        token: &seed.alice,
        repo: seed.widgets,
        creds: access_key(&gw, "alice"),
    };

    // Added through GitHub, read-only: GitLab shows the same id with can_push false.
    let github_key = fresh_key("from-github");
    let a = gw
        .req("POST", "/api/v3/repos/acme/widgets/keys")
        .header("Authorization", &format!("token {}", seed.alice))
        .json(&json!({"title": "gh", "key": github_key, "read_only": true}))
        .send()
        .expect(201)
        .json();
    let a_id = a["id"].as_i64().unwrap();
    let (status, gl) = views.gitlab(a_id);
    assert_eq!(status, 200);
    assert_eq!(
        (gl["id"].as_i64(), gl["can_push"].as_bool()),
        (Some(a_id), Some(false))
    );
    assert_eq!(gl["title"], "gh");
    // GitHub shows `type base64`; GitLab keeps the comment too.
    assert_eq!(gl["key"].as_str().unwrap(), github_key);
    assert_eq!(
        a["key"].as_str().unwrap(),
        github_key.rsplit_once(' ').unwrap().0
    );

    // Added through GitLab with push access: GitHub shows read_only false.
    let b = gw
        .req(
            "POST",
            &format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
        )
        .token(&seed.alice)
        .json(&json!({"title": "gl", "key": fresh_key("from-gitlab"), "can_push": true}))
        .send()
        .expect(201)
        .json();
    let b_id = b["id"].as_i64().unwrap();
    let (status, gh) = views.github(b_id);
    assert_eq!(status, 200);
    assert_eq!(
        (gh["id"].as_i64(), gh["read_only"].as_bool()),
        (Some(b_id), Some(false))
    );

    // Added through CodeArts: same id in GitLab and GitHub; MD5 in the v4 list equals GitLab's.
    let c = signed(
        &gw,
        &views.creds,
        "POST",
        &format!("/v2/repositories/{}/deploy-keys", seed.widgets),
        Some(&json!({"application": "ci", "can_push": true, "key": fresh_key("from-codearts"), "key_title": "ca"})),
    )
    .send()
    .expect(200)
    .json();
    let c_id: i64 = c["result"]["key_id"].as_str().unwrap().parse().unwrap();
    let (_, gl) = views.gitlab(c_id);
    let (_, gh) = views.github(c_id);
    assert_eq!(
        (gl["id"].as_i64(), gh["id"].as_i64()),
        (Some(c_id), Some(c_id))
    );
    assert_eq!(
        (gl["can_push"].as_bool(), gh["read_only"].as_bool()),
        (Some(true), Some(false))
    );
    for id in [a_id, b_id, c_id] {
        let (_, gl) = views.gitlab(id);
        let item = views.codearts(id).expect("listed through CodeArts");
        assert_eq!(item["fingerprint"], gl["fingerprint"], "key {id}");
        assert_eq!(item["title"], gl["title"], "key {id}");
    }

    // The same key on a second repository: GitLab joins it; GitHub's one-repository rule then refuses
    // the key anywhere, here on the repository that first had it.
    let joined = gw
        .req(
            "POST",
            &format!("/api/v4/projects/{}/deploy_keys", seed.cli_repo),
        )
        .token(&seed.alice)
        .json(&json!({"title": "again", "key": github_key}))
        .send()
        .expect(201)
        .json();
    assert_eq!(joined["id"], a_id);
    let refused = gw
        .req("POST", "/api/v3/repos/acme/widgets/keys")
        .header("Authorization", &format!("token {}", seed.alice))
        .json(&json!({"title": "dup", "key": github_key}))
        .send()
        .expect(422);
    assert_eq!(
        refused.json()["errors"][0]["message"],
        "key is already in use"
    );

    // A delete through any dialect removes the key from all of them.
    gw.req(
        "DELETE",
        &format!("/api/v4/projects/{}/deploy_keys/{a_id}", seed.widgets),
    )
    .token(&seed.alice)
    .send()
    .expect(204);
    assert_eq!(views.github(a_id).0, 404);
    assert!(views.codearts(a_id).is_none());

    gw.req("DELETE", &format!("/repos/acme/widgets/keys/{b_id}"))
        .header("Authorization", &format!("token {}", seed.alice))
        .send()
        .expect(204);
    assert_eq!(views.gitlab(b_id).0, 404);
    assert!(views.codearts(b_id).is_none());

    signed(
        &gw,
        &views.creds,
        "DELETE",
        &format!("/v4/repositories/{}/deploy-keys/{c_id}", seed.widgets),
        None,
    )
    .send()
    .expect(204);
    assert_eq!(views.gitlab(c_id).0, 404);
    assert_eq!(views.github(c_id).0, 404);
}
