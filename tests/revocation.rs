//! Revocations count at the very next request on every worker, whoever commits them: the CLI (another process), another gateway, or this one.
//!
//! Each check first sends the same request over `ROUNDS` connections, which the server spreads over
//! its workers, so every worker has served it (and, on SQLite, remembered its rows) just before the
//! change. Then every one of the same requests must see the change.

mod common;

use common::{Gateway, Seed, fresh_key};
use serde_json::json;

const ROUNDS: usize = 8;

fn gitlab_get(gw: &Gateway, token: &str, id: i64, status: u16) {
    for _ in 0..ROUNDS {
        gw.req("GET", &format!("/api/v4/projects/1/deploy_keys/{id}"))
            .token(token)
            .send()
            .expect(status);
    }
}

fn github_get(gw: &Gateway, token: &str, id: i64, status: u16) {
    for _ in 0..ROUNDS {
        gw.req("GET", &format!("/repos/acme/widgets/keys/{id}"))
            .header("Authorization", &format!("token {token}"))
            .send()
            .expect(status);
    }
}

fn gitlab_list_ids(gw: &Gateway, token: &str) -> Vec<Vec<i64>> {
    (0..ROUNDS)
        .map(|_| {
            gw.req("GET", "/api/v4/projects/1/deploy_keys?per_page=20")
                .token(token)
                .send()
                .expect(200)
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_i64().unwrap())
                .collect()
        })
        .collect()
}

fn add_key(gw: &Gateway, seed: &Seed) -> i64 {
    assert_eq!(seed.widgets, 1);
    common::add_key(gw, &seed.alice, seed.widgets, &fresh_key("ci"), false, None)
}

#[test]
fn a_token_revoked_by_the_cli_is_refused_by_every_worker_at_once() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let id = add_key(&gw, &seed);
    gitlab_get(&gw, &seed.alice, id, 200);
    github_get(&gw, &seed.alice, id, 200);
    let listed = gw.cli(&["token", "list", "alice"]);
    let token_id = listed.split_whitespace().next().unwrap();
    gw.cli(&["token", "revoke", token_id]);
    gitlab_get(&gw, &seed.alice, id, 401);
    github_get(&gw, &seed.alice, id, 401);
}

#[test]
fn a_role_taken_away_by_the_cli_counts_on_every_worker_at_once() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let id = add_key(&gw, &seed);
    gitlab_get(&gw, &seed.alice, id, 200);
    gw.cli(&["repo", "revoke", "acme/widgets", "alice"]);
    gitlab_get(&gw, &seed.alice, id, 404);
    github_get(&gw, &seed.alice, id, 404);
}

#[test]
fn a_key_deleted_on_another_gateway_is_gone_from_every_worker_of_this_one() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let kept = add_key(&gw, &seed);
    let id = add_key(&gw, &seed);
    gitlab_get(&gw, &seed.alice, id, 200);
    for ids in gitlab_list_ids(&gw, &seed.alice) {
        assert_eq!(ids, [kept, id]);
    }
    let peer = gw.start_peer();
    peer.req("DELETE", &format!("/api/v4/projects/1/deploy_keys/{id}"))
        .token(&seed.alice)
        .send()
        .expect(204);
    gitlab_get(&gw, &seed.alice, id, 404);
    github_get(&gw, &seed.alice, id, 404);
    for ids in gitlab_list_ids(&gw, &seed.alice) {
        assert_eq!(ids, [kept]);
    }
    let total = gw
        .req("GET", "/api/v4/projects/1/deploy_keys")
        .token(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(total.header("x-total"), Some("1"));
}

#[test]
fn a_repository_removed_by_the_cli_is_gone_from_every_worker_at_once() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let id = add_key(&gw, &seed);
    gitlab_get(&gw, &seed.root, id, 200);
    gw.cli(&["repo", "remove", "acme/widgets"]);
    gitlab_get(&gw, &seed.root, id, 404);
    github_get(&gw, &seed.root, id, 404);
}

#[test]
fn a_change_made_through_this_gateway_is_seen_by_its_next_read_on_every_worker() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let id = add_key(&gw, &seed);
    gitlab_get(&gw, &seed.alice, id, 200);
    gw.req("PUT", &format!("/api/v4/projects/1/deploy_keys/{id}"))
        .token(&seed.alice)
        .json(&json!({"can_push": true, "title": "renamed"}))
        .send()
        .expect(200);
    for _ in 0..ROUNDS {
        let key = gw
            .req("GET", &format!("/api/v4/projects/1/deploy_keys/{id}"))
            .token(&seed.alice)
            .send()
            .expect(200)
            .json();
        assert_eq!(
            (key["title"].as_str(), key["can_push"].as_bool()),
            (Some("renamed"), Some(true))
        );
    }
}
