//! The GitLab v4 dialect over raw HTTP: every route, header and error of the contract.

mod common;

use common::{Contract, Gateway, fresh_key, links};
use serde_json::json;

#[test]
fn create_list_get_through_encoded_path() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let key = fresh_key("ci@host");
    let created = gw
        .req("POST", "/api/v4/projects/acme%2Fwidgets/deploy_keys")
        .token(&seed.alice)
        .json(&json!({"title": "ci", "key": key, "can_push": true}))
        .send()
        .expect(201);
    assert_eq!(created.header("content-type"), Some("application/json"));
    let body = created.json();
    contract.check("/projects/{id}/deploy_keys", "post", 201, &body);
    assert_eq!(body["can_push"], true);
    let id = body["id"].as_i64().unwrap();

    let listed = gw
        .req(
            "GET",
            &format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
        )
        .token(&seed.alice)
        .send()
        .expect(200);
    contract.check("/projects/{id}/deploy_keys", "get", 200, &listed.json());
    assert_eq!(listed.json()[0]["id"], id);
    let link = links(listed.header("link").unwrap());
    assert!(link.contains_key("first") && link.contains_key("last"));
    assert!(!link.contains_key("next"));
}
