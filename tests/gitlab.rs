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

const V4: &str = "/api/v4";

fn keys_path(project: impl std::fmt::Display) -> String {
    format!("{V4}/projects/{project}/deploy_keys")
}

/// Creates a key on a project and returns its JSON.
fn add(
    gw: &Gateway,
    token: &str,
    project: impl std::fmt::Display,
    key: &str,
    can_push: bool,
) -> serde_json::Value {
    gw.req("POST", &keys_path(project))
        .token(token)
        .json(&json!({"title": "k", "key": key, "can_push": can_push}))
        .send()
        .expect(201)
        .json()
}

fn count(gw: &Gateway, token: &str, project: impl std::fmt::Display) -> u64 {
    let res = gw
        .req("GET", &keys_path(project))
        .token(token)
        .send()
        .expect(200);
    res.header("x-total").unwrap().parse().unwrap()
}

#[test]
fn form_encoded_bodies_and_grape_booleans() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for (i, spelling) in ["True", "1", "yes", "t", "on"].iter().enumerate() {
        let key = fresh_key(&format!("k{i}"));
        let body = gw
            .req("POST", &keys_path(seed.widgets))
            .token(&seed.alice)
            .form(&[("title", "form"), ("key", &key), ("can_push", spelling)])
            .send()
            .expect(201)
            .json();
        assert_eq!(body["can_push"], true, "{spelling}");
    }
    let res = gw
        .req("POST", &keys_path(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"title": "x", "key": fresh_key("x"), "can_push": "maybe"}))
        .send()
        .expect(400);
    assert_eq!(res.json(), json!({"error": "can_push is invalid"}));
    assert_eq!(count(&gw, &seed.alice, seed.widgets), 5);
}

#[test]
fn missing_parameters_are_named_in_grape_order() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let res = gw
        .req("POST", &keys_path(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"unknown": 1}))
        .send()
        .expect(400);
    assert_eq!(
        res.json(),
        json!({"error": "key is missing, title is missing"})
    );
    contract.check("/projects/{id}/deploy_keys", "post", 400, &res.json());
    let res = gw
        .req("POST", &keys_path(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"key": fresh_key("x")}))
        .send()
        .expect(400);
    assert_eq!(res.json(), json!({"error": "title is missing"}));
    assert_eq!(count(&gw, &seed.alice, seed.widgets), 0);
}

#[test]
fn update_title_and_can_push() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let id = add(&gw, &seed.alice, seed.widgets, &fresh_key("u"), false)["id"]
        .as_i64()
        .unwrap();
    let path = format!("{}/{id}", keys_path(seed.widgets));
    let res = gw
        .req("PUT", &path)
        .token(&seed.alice)
        .json(&json!({"title": "renamed", "can_push": true}))
        .send()
        .expect(200);
    contract.check(
        "/projects/{id}/deploy_keys/{key_id}",
        "put",
        200,
        &res.json(),
    );
    let got = gw
        .req("GET", &path)
        .token(&seed.alice)
        .send()
        .expect(200)
        .json();
    assert_eq!(
        (got["title"].as_str(), got["can_push"].as_bool()),
        (Some("renamed"), Some(true))
    );

    let res = gw
        .req("PUT", &path)
        .token(&seed.alice)
        .json(&json!({}))
        .send()
        .expect(400);
    assert_eq!(
        res.json(),
        json!({"error": "title, can_push are missing, at least one parameter must be provided"})
    );
    let res = gw
        .req("PUT", &format!("{}/999999", keys_path(seed.widgets)))
        .token(&seed.alice)
        .json(&json!({"title": "x"}))
        .send()
        .expect(404);
    assert_eq!(res.json(), json!({"message": "404 Not found"}));
}

#[test]
fn shared_key_title_is_kept_when_another_project_uses_it() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let key = fresh_key("shared");
    let id = add(&gw, &seed.alice, seed.widgets, &key, false)["id"]
        .as_i64()
        .unwrap();
    add(&gw, &seed.alice, seed.cli_repo, &key, true);
    let path = format!("{}/{id}", keys_path(seed.widgets));
    let res = gw
        .req("PUT", &path)
        .token(&seed.alice)
        .json(&json!({"title": "mine now", "can_push": true}))
        .send()
        .expect(200)
        .json();
    // GitLab ignores the title silently when a non-admin shares the key with another project.
    assert_eq!(res["title"], "k");
    assert_eq!(res["can_push"], true);
    let res = gw
        .req("PUT", &path)
        .token(&seed.root)
        .json(&json!({"title": "admin may"}))
        .send()
        .expect(200)
        .json();
    assert_eq!(res["title"], "admin may");
}

#[test]
fn delete_then_get_and_delete_again() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let id = add(&gw, &seed.alice, seed.widgets, &fresh_key("d"), false)["id"]
        .as_i64()
        .unwrap();
    let path = format!("{}/{id}", keys_path(seed.widgets));
    // gitbeaker sends `{}` on DELETE; python-gitlab sends Content-Type json with no body.
    let res = gw
        .req("DELETE", &path)
        .token(&seed.alice)
        .json(&json!({}))
        .send()
        .expect(204);
    assert!(res.body.is_empty());
    let res = gw.req("GET", &path).token(&seed.alice).send().expect(404);
    assert_eq!(res.json(), json!({"message": "404 Not found"}));
    contract.check(
        "/projects/{id}/deploy_keys/{key_id}",
        "get",
        404,
        &res.json(),
    );
    let res = gw
        .req("DELETE", &path)
        .token(&seed.alice)
        .raw_body("application/json", Vec::new())
        .send()
        .expect(404);
    assert_eq!(res.json(), json!({"message": "404 Deploy key Not Found"}));
    let res = gw
        .req("GET", &format!("{}/abc", keys_path(seed.widgets)))
        .token(&seed.alice)
        .send()
        .expect(400);
    assert_eq!(res.json(), json!({"error": "key_id is invalid"}));
}

#[test]
fn delete_removes_orphaned_private_key_but_not_a_shared_one() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let key = fresh_key("orphan");
    let id = add(&gw, &seed.alice, seed.widgets, &key, false)["id"]
        .as_i64()
        .unwrap();
    add(&gw, &seed.alice, seed.cli_repo, &key, false);
    gw.req("DELETE", &format!("{}/{id}", keys_path(seed.widgets)))
        .token(&seed.alice)
        .send()
        .expect(204);
    // Still on the other project, with the same id.
    let left = gw
        .req("GET", &format!("{}/{id}", keys_path(seed.cli_repo)))
        .token(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(left.json()["id"], id);
    gw.req("DELETE", &format!("{}/{id}", keys_path(seed.cli_repo)))
        .token(&seed.alice)
        .send()
        .expect(204);
    // Now orphaned and private: gone from the instance, so enable cannot bring it back.
    let res = gw
        .req("POST", &format!("{}/{id}/enable", keys_path(seed.widgets)))
        .token(&seed.root)
        .send()
        .expect(404);
    assert_eq!(res.json(), json!({"message": "404 Deploy key Not Found"}));
    // Re-adding the same text makes a new key with a new id: a revoked id never comes back.
    let again = add(&gw, &seed.alice, seed.widgets, &key, false);
    assert_ne!(again["id"], id);
}

#[test]
fn enable_on_a_second_project_by_path() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let id = add(&gw, &seed.alice, seed.widgets, &fresh_key("e"), true)["id"]
        .as_i64()
        .unwrap();
    let path = format!("{}/{id}/enable", keys_path("acme%2Ftools%2Fcli"));
    let res = gw
        .req("POST", &path)
        .token(&seed.alice)
        .json(&json!({}))
        .send()
        .expect(201);
    let body = res.json();
    contract.check(
        "/projects/{id}/deploy_keys/{key_id}/enable",
        "post",
        201,
        &body,
    );
    assert!(body.get("can_push").is_none());
    // Idempotent: a second enable changes nothing.
    gw.req("POST", &path).token(&seed.alice).send().expect(201);
    let listed = gw
        .req("GET", &keys_path(seed.cli_repo))
        .token(&seed.alice)
        .send()
        .expect(200)
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        (listed[0]["id"].as_i64(), listed[0]["can_push"].as_bool()),
        (Some(id), Some(false))
    );

    let res = gw
        .req(
            "POST",
            &format!("{}/424242/enable", keys_path(seed.widgets)),
        )
        .token(&seed.alice)
        .send()
        .expect(404);
    assert_eq!(res.json(), json!({"message": "404 Deploy key Not Found"}));
}

#[test]
fn enable_refuses_a_key_the_caller_cannot_access() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let id = add(&gw, &seed.root, seed.secret, &fresh_key("root's"), false)["id"]
        .as_i64()
        .unwrap();
    let res = gw
        .req("POST", &format!("{}/{id}/enable", keys_path(seed.widgets)))
        .token(&seed.alice)
        .send()
        .expect(404);
    assert_eq!(res.json(), json!({"message": "404 Deploy key Not Found"}));
    assert_eq!(count(&gw, &seed.alice, seed.widgets), 0);
}

#[test]
fn same_key_joins_or_returns_existing() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let key = fresh_key("join");
    let first = add(&gw, &seed.alice, seed.widgets, &key, false);
    let again = add(&gw, &seed.alice, seed.widgets, &key, true);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(
        again["can_push"], false,
        "an existing link is returned as it is"
    );
    assert_eq!(count(&gw, &seed.alice, seed.widgets), 1);
    let joined = add(&gw, &seed.alice, "acme%2Ftools%2Fcli", &key, true);
    assert_eq!(joined["id"], first["id"]);
    assert_eq!(joined["can_push"], true);
    assert_eq!(joined["fingerprint_sha256"], first["fingerprint_sha256"]);
}

#[test]
fn a_key_the_caller_cannot_access_is_already_taken() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let key = fresh_key("taken");
    add(&gw, &seed.root, seed.secret, &key, false);
    let res = gw
        .req("POST", &keys_path(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"title": "mine", "key": key}))
        .send()
        .expect(400);
    assert_eq!(
        res.json(),
        json!({"message": {"deploy_key.fingerprint_sha256": ["has already been taken"]}})
    );
    assert_eq!(count(&gw, &seed.alice, seed.widgets), 0);
}

/// Creates that arrive together are committed together (SQLite's group commit): each is
/// answered as if it had been alone, and a refused one among them fails alone, as it would later.
#[test]
fn concurrent_creates_all_commit_and_a_refused_one_among_them_fails_alone() {
    let gw = Gateway::start();
    let seed = gw.seed();
    // On a repository alice cannot see: hers is refused as already taken.
    let taken = fresh_key("taken");
    add(&gw, &seed.root, seed.secret, &taken, false);
    let twice = fresh_key("twice");
    let mut keys: Vec<String> = (0..16).map(|i| fresh_key(&format!("c{i}"))).collect();
    keys.insert(5, twice.clone());
    keys.insert(9, taken.clone());
    keys.push(twice.clone());
    let path = keys_path(seed.widgets);
    let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
        let sent: Vec<_> = keys
            .iter()
            .map(|key| {
                let (gw, path, token) = (&gw, &path, &seed.alice);
                s.spawn(move || {
                    let res = gw
                        .req("POST", path)
                        .token(token)
                        .json(&json!({"title": "c", "key": key}))
                        .send();
                    (res.status, res.json())
                })
            })
            .collect();
        sent.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids = Vec::new();
    let mut twice_ids = Vec::new();
    for ((status, body), key) in answers.iter().zip(&keys) {
        if *key == taken {
            assert_eq!(*status, 400, "{body}");
            assert_eq!(
                *body,
                json!({"message": {"deploy_key.fingerprint_sha256": ["has already been taken"]}})
            );
            continue;
        }
        assert_eq!(*status, 201, "{body}");
        let id = body["id"].as_i64().unwrap();
        if *key == twice {
            twice_ids.push(id);
        } else {
            ids.push(id);
        }
    }
    // The second of the pair joins the key the first created, committed or not yet.
    assert_eq!(twice_ids.len(), 2);
    assert_eq!(twice_ids[0], twice_ids[1]);
    ids.push(twice_ids[0]);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 17, "distinct ids");
    assert_eq!(count(&gw, &seed.alice, seed.widgets), 17);
}

fn refused(gw: &Gateway, seed: &common::Seed, body: serde_json::Value) -> serde_json::Value {
    let res = gw
        .req("POST", &keys_path(seed.widgets))
        .token(&seed.alice)
        .json(&body)
        .send()
        .expect(400);
    assert_eq!(res.header("content-type"), Some("application/json"));
    res.json()
}

#[test]
fn invalid_keys_get_model_errors_and_nothing_is_stored() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let cases = [
        (
            "broken-base64.pub",
            json!({"deploy_key.key": ["is invalid"], "deploy_key.fingerprint_sha256": ["cannot be generated"]}),
        ),
        (
            "truncated.pub",
            json!({"deploy_key.key": ["is invalid"], "deploy_key.fingerprint_sha256": ["cannot be generated"]}),
        ),
        (
            "mismatched-type.pub",
            json!({"deploy_key.key": ["is invalid"], "deploy_key.fingerprint_sha256": ["cannot be generated"]}),
        ),
        (
            "dsa-1024.pub",
            json!({"deploy_key.key": ["type is forbidden. Must be RSA, ECDSA, ED25519, ECDSA_SK, or ED25519_SK"]}),
        ),
        (
            "rsa-1024.pub",
            json!({"deploy_key.key": ["must be at least 2048 bits"]}),
        ),
    ];
    for (file, expected) in cases {
        let body = refused(
            &gw,
            &seed,
            json!({"title": "t", "key": common::fixture(file)}),
        );
        assert_eq!(body["message"], expected, "{file}");
        contract.check("/projects/{id}/deploy_keys", "post", 400, &body);
    }
    let body = refused(&gw, &seed, json!({"title": "t", "key": "x".repeat(5001)}));
    assert_eq!(
        body["message"]["deploy_key.key"],
        json!(["is too long (maximum is 5000 characters)"])
    );
    let body = refused(&gw, &seed, json!({"title": "t", "key": ""}));
    assert_eq!(body["message"]["deploy_key.key"], json!(["can't be blank"]));
    let body = refused(
        &gw,
        &seed,
        json!({"title": "t".repeat(256), "key": fresh_key("x")}),
    );
    assert_eq!(
        body["message"],
        json!({"deploy_key.title": ["is too long (maximum is 255 characters)"]})
    );
    let body = refused(&gw, &seed, json!({"title": " ", "key": fresh_key("x")}));
    assert_eq!(
        body["message"],
        json!({"deploy_key.title": ["can't be blank"]})
    );
    let body = refused(
        &gw,
        &seed,
        json!({"title": "t", "key": fresh_key("x"), "expires_at": "2001-01-01T00:00:00Z"}),
    );
    assert_eq!(body["message"], json!({"deploy_key.key": ["has expired"]}));
    let res = gw
        .req("POST", &keys_path(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"title": "t", "key": fresh_key("x"), "expires_at": "soon"}))
        .send()
        .expect(400);
    assert_eq!(res.json(), json!({"error": "expires_at is invalid"}));
    assert_eq!(count(&gw, &seed.alice, seed.widgets), 0);
}

#[test]
fn titles_with_control_characters_are_refused() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for title in ["a\u{0}b", "line\nINFO forged log line", "\u{1b}[31mred"] {
        let body = refused(&gw, &seed, json!({"title": title, "key": fresh_key("t")}));
        assert_eq!(
            body["message"],
            json!({"deploy_key.title": ["is invalid (expected text without control, line-separator or bidirectional-control characters)"]}),
            "{title:?}"
        );
    }
    assert_eq!(count(&gw, &seed.alice, seed.widgets), 0);
}

#[test]
fn private_keys_are_refused_by_name_and_never_echoed() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for file in [
        "private-openssh-ed25519.key",
        "private-pem-rsa.key",
        "private-pkcs8.key",
    ] {
        let secret = common::fixture(file);
        let res = gw
            .req("POST", &keys_path(seed.widgets))
            .token(&seed.alice)
            .json(&json!({"title": "oops", "key": secret}))
            .send()
            .expect(400);
        let message = res.json()["message"]["deploy_key.key"][0]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains("private key"), "{message}");
        for line in secret
            .lines()
            .filter(|l| l.len() > 20 && !l.starts_with("-----"))
        {
            assert!(
                !res.body.contains(line),
                "{file}: response echoes key material"
            );
        }
    }
    assert_eq!(count(&gw, &seed.alice, seed.widgets), 0);
}

#[test]
fn expires_at_is_kept_and_shown() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let body = gw
        .req("POST", &keys_path(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"title": "t", "key": fresh_key("x"), "expires_at": "2099-01-02T03:04:05Z"}))
        .send()
        .expect(201)
        .json();
    assert_eq!(body["expires_at"], "2099-01-02T03:04:05.000Z");
    assert_eq!(body["last_used_at"], serde_json::Value::Null);
}

#[test]
fn authentication_variants() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let path = keys_path(seed.widgets);
    let ok = |req: common::Req| req.send().expect(200);
    ok(gw.req("GET", &path).token(&seed.alice));
    ok(gw
        .req("GET", &path)
        .header("Authorization", &format!("Bearer {}", seed.alice)));
    ok(gw.req("GET", &format!("{path}?private_token={}", seed.alice)));
    ok(gw.req("GET", &format!("{path}?access_token={}", seed.alice)));
    let unauthorized = json!({"message": "401 Unauthorized"});
    for req in [
        gw.req("GET", &path),
        gw.req("GET", &path).token("kgt_wrong"),
        gw.req("GET", &path).header("JOB-TOKEN", &seed.alice),
        gw.req("GET", &path)
            .header("Authorization", &format!("token {}", seed.alice)),
        gw.req("POST", &path).json(&json!({})),
    ] {
        let res = req.send().expect(401);
        assert_eq!(res.json(), unauthorized);
    }
    let expired = gw.cli(&["token", "add", "alice", "--expires-at", "2001-01-01"]);
    gw.req("GET", &path).token(&expired).send().expect(401);
}

#[test]
fn permissions_reporter_read_only_and_strangers() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let path = keys_path(seed.widgets);
    let res = gw.req("GET", &path).token(&seed.bob).send().expect(403);
    assert_eq!(res.json(), json!({"message": "403 Forbidden"}));
    // A read-only token reads, but never writes.
    gw.req("GET", &path).token(&seed.carol).send().expect(200);
    let res = gw
        .req("POST", &path)
        .token(&seed.carol)
        .json(&json!({"title": "t", "key": fresh_key("x")}))
        .send()
        .expect(403);
    assert_eq!(res.json()["error"], "insufficient_scope");
    contract.check("/projects/{id}/deploy_keys", "post", 403, &res.json());
    // Not a member, or no such project: the same 404.
    for project in [
        seed.secret.to_string(),
        "other%2Fsecret".into(),
        "987654".into(),
        "no%2Fsuch".into(),
    ] {
        let res = gw
            .req("GET", &keys_path(&project))
            .token(&seed.alice)
            .send()
            .expect(404);
        assert_eq!(res.json(), json!({"message": "404 Project Not Found"}));
    }
    assert_eq!(count(&gw, &seed.root, seed.widgets), 0);
}

#[test]
fn project_object_by_id_and_by_path() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let by_path = gw
        .req("GET", &format!("{V4}/projects/acme%2Ftools%2Fcli"))
        .token(&seed.alice)
        .send()
        .expect(200)
        .json();
    contract.check("/projects/{id}", "get", 200, &by_path);
    assert_eq!(by_path["id"], seed.cli_repo);
    assert_eq!(by_path["path_with_namespace"], "acme/tools/cli");
    assert_eq!(by_path["namespace"]["full_path"], "acme/tools");
    let by_id = gw
        .req("GET", &format!("{V4}/projects/{}", seed.cli_repo))
        .token(&seed.bob)
        .send();
    // bob is not a member of acme/tools/cli.
    assert_eq!(by_id.status, 404);
    let upper = gw
        .req("GET", &format!("{V4}/projects/ACME%2FWidgets"))
        .token(&seed.bob)
        .send()
        .expect(200);
    assert_eq!(
        upper.json()["id"],
        seed.widgets,
        "path lookup is case-insensitive"
    );
}

#[test]
fn pagination_headers_and_links() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for i in 0..45 {
        add(
            &gw,
            &seed.alice,
            seed.widgets,
            &fresh_key(&format!("p{i}")),
            false,
        );
    }
    let path = keys_path("acme%2Fwidgets");
    let res = gw.req("GET", &path).token(&seed.alice).send().expect(200);
    assert_eq!(res.json().as_array().unwrap().len(), 20);
    for (h, v) in [
        ("x-page", "1"),
        ("x-per-page", "20"),
        ("x-next-page", "2"),
        ("x-prev-page", ""),
        ("x-total", "45"),
        ("x-total-pages", "3"),
    ] {
        assert_eq!(res.header(h), Some(v), "{h}");
    }
    let link = res.header("link").unwrap();
    let rels: Vec<&str> = link
        .split(", ")
        .map(|p| p.split("rel=").nth(1).unwrap())
        .collect();
    assert_eq!(rels, ["\"next\"", "\"first\"", "\"last\""]);
    let l = links(link);
    assert_eq!(l["next"], format!("{}{path}?page=2&per_page=20", gw.url));
    assert_eq!(l["last"], format!("{}{path}?page=3&per_page=20", gw.url));

    // Follow next links to the end: every key exactly once.
    let mut seen = std::collections::HashSet::new();
    let mut url = Some(format!("{}{path}", gw.url));
    while let Some(u) = url {
        let res = gw
            .req("GET", u.strip_prefix(&gw.url).unwrap())
            .token(&seed.alice)
            .send()
            .expect(200);
        for k in res.json().as_array().unwrap() {
            assert!(seen.insert(k["id"].as_i64().unwrap()));
        }
        url = links(res.header("link").unwrap()).get("next").cloned();
    }
    assert_eq!(seen.len(), 45);

    let res = gw
        .req("GET", &format!("{path}?page=2&per_page=20"))
        .token(&seed.alice)
        .send();
    assert_eq!(
        (res.header("x-prev-page"), res.header("x-next-page")),
        (Some("1"), Some("3"))
    );
    let res = gw
        .req("GET", &format!("{path}?per_page=1000"))
        .token(&seed.alice)
        .send();
    assert_eq!(res.header("x-per-page"), Some("100"));
    assert_eq!(res.json().as_array().unwrap().len(), 45);
    let res = gw
        .req("GET", &format!("{path}?page=9"))
        .token(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(res.body, "[]");
    let res = gw
        .req("GET", &format!("{path}?page=two"))
        .token(&seed.alice)
        .send()
        .expect(400);
    assert_eq!(res.json(), json!({"error": "page is invalid"}));
    // Credentials in the query are never copied into the links; only list filters are.
    for credential in ["private_token", "access_token"] {
        let res = gw
            .req(
                "GET",
                &format!(
                    "{path}?{credential}={}&job_token=JOBSECRET&sudo=bob&id=x",
                    seed.alice
                ),
            )
            .send()
            .expect(200);
        let link = res.header("link").unwrap();
        for leaked in [seed.alice.as_str(), credential, "JOBSECRET", "sudo", "id=x"] {
            assert!(!link.contains(leaked), "{leaked} in {link}");
        }
    }
    // Past the last page there is no previous page.
    let res = gw
        .req("GET", &format!("{path}?page=9"))
        .token(&seed.alice)
        .send();
    assert_eq!(res.header("x-prev-page"), Some(""));
    assert!(!res.header("link").unwrap().contains("rel=\"prev\""));
}

#[test]
fn links_ignore_forwarding_headers_and_keep_list_filters() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for i in 0..3 {
        gw.req("POST", &format!("{V4}/deploy_keys"))
            .token(&seed.root)
            .json(&json!({"title": "t", "key": fresh_key(&format!("f{i}"))}))
            .send()
            .expect(201);
    }
    let res = gw
        .req("GET", &format!("{V4}/deploy_keys?public=true&per_page=1"))
        .token(&seed.root)
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "host=\"a>; rel=x\"")
        .send()
        .expect(200);
    let next = links(res.header("link").unwrap())["next"].clone();
    assert_eq!(
        next,
        format!("{}{V4}/deploy_keys?page=2&per_page=1&public=true", gw.url)
    );
}

#[test]
fn errors_come_in_gitlab_order_auth_then_project_then_parameters() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let bad_body = json!({"title": ""});
    // No or bad token: 401 whatever else is wrong.
    for token in [None, Some("kgt_wrong")] {
        let mut req = gw.req("POST", &keys_path("no%2Fsuch")).json(&bad_body);
        if let Some(t) = token {
            req = req.token(t);
        }
        req.send().expect(401);
        let mut req = gw.req("GET", &format!("{}/abc?page=x", keys_path("no%2Fsuch")));
        if let Some(t) = token {
            req = req.token(t);
        }
        req.send().expect(401);
    }
    // A project the caller cannot see: 404 before the body is judged.
    let res = gw
        .req("POST", &keys_path(seed.secret))
        .token(&seed.alice)
        .json(&bad_body)
        .send()
        .expect(404);
    assert_eq!(res.json(), json!({"message": "404 Project Not Found"}));
    let res = gw
        .req("POST", &keys_path(seed.secret))
        .token(&seed.alice)
        .json(&json!({"title": "t", "key": "garbage"}))
        .send()
        .expect(404);
    assert_eq!(res.json(), json!({"message": "404 Project Not Found"}));
    // A reporter: 403 before the body is judged; a non-admin on admin routes likewise.
    gw.req("POST", &keys_path(seed.widgets))
        .token(&seed.bob)
        .json(&bad_body)
        .send()
        .expect(403);
    gw.req("POST", &format!("{V4}/deploy_keys"))
        .token(&seed.alice)
        .json(&json!({}))
        .send()
        .expect(403);
    gw.req("GET", &format!("{V4}/keys"))
        .token(&seed.alice)
        .send()
        .expect(403);
    // A read-only token on a write: 403 before anything else.
    let res = gw
        .req("PUT", &format!("{}/abc", keys_path("no%2Fsuch")))
        .token(&seed.carol)
        .json(&bad_body)
        .send()
        .expect(403);
    assert_eq!(res.json()["error"], "insufficient_scope");
    // Only then the parameters.
    gw.req("POST", &keys_path(seed.widgets))
        .token(&seed.alice)
        .json(&bad_body)
        .send()
        .expect(400);
}

#[test]
fn read_only_tokens_cannot_write_through_any_route() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let key = add(&gw, &seed.alice, seed.widgets, &fresh_key("ro"), false);
    let id = key["id"].as_i64().unwrap();
    let w = seed.widgets;
    let c = seed.cli_repo;
    let body = json!({"title": "t", "key": fresh_key("ro2"), "can_push": true});
    let writes = [
        ("POST", keys_path(w)),
        ("PUT", format!("{}/{id}", keys_path(w))),
        ("DELETE", format!("{}/{id}", keys_path(w))),
        ("POST", format!("{}/{id}/enable", keys_path(c))),
        ("POST", format!("{V4}/deploy_keys")),
        ("POST", format!("/api/v3/projects/{w}/keys")),
        ("DELETE", format!("/api/v3/projects/{w}/keys/{id}")),
        (
            "POST",
            format!("/api/v3/projects/{c}/deploy_keys/{id}/enable"),
        ),
        (
            "DELETE",
            format!("/api/v3/projects/{w}/deploy_keys/{id}/disable"),
        ),
    ];
    // carol maintains acme/widgets; give her the rest too, so only the scope can refuse her.
    gw.cli(&[
        "repo",
        "grant",
        "acme/tools/cli",
        "carol",
        "--role",
        "maintainer",
    ]);
    let carol_admin = gw.cli(&["token", "add", "root", "--read-only"]);
    for (method, path) in writes {
        let token = if path.ends_with("/api/v4/deploy_keys") {
            &carol_admin
        } else {
            &seed.carol
        };
        let res = gw.req(method, &path).token(token).json(&body).send();
        assert_eq!(res.status, 403, "{method} {path}: {}", res.body);
        assert_eq!(res.json()["error"], "insufficient_scope", "{method} {path}");
    }
    let after = gw
        .req("GET", &format!("{}/{id}", keys_path(w)))
        .token(&seed.alice)
        .send()
        .expect(200)
        .json();
    assert_eq!(after, key, "nothing changed");
    assert_eq!(count(&gw, &seed.alice, c), 0);
}

#[test]
fn reposting_an_existing_key_ignores_the_other_fields() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let key = fresh_key("again");
    let first = add(&gw, &seed.alice, seed.widgets, &key, false);
    let again = gw
        .req("POST", &keys_path(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"title": "", "key": key, "expires_at": "2001-01-01"}))
        .send()
        .expect(201)
        .json();
    assert_eq!(again, first);
}

#[test]
fn a_key_on_a_maintained_repository_may_be_joined_by_another_maintainer() {
    let gw = Gateway::start();
    let seed = gw.seed();
    // carol adds a key to acme/widgets, which alice maintains too: alice may reuse it elsewhere.
    let key = fresh_key("carols");
    let carols_token = gw.cli(&["token", "add", "carol"]);
    let first = add(&gw, &carols_token, seed.widgets, &key, false);
    let joined = add(&gw, &seed.alice, seed.cli_repo, &key, true);
    assert_eq!(joined["id"], first["id"]);
    // A non-admin cannot retitle a public key, even when it is on one project only.
    let public = gw
        .req("POST", &format!("{V4}/deploy_keys"))
        .token(&seed.root)
        .json(&json!({"title": "fleet", "key": fresh_key("fleet")}))
        .send()
        .expect(201)
        .json();
    let pid = public["id"].as_i64().unwrap();
    gw.req("POST", &format!("{}/{pid}/enable", keys_path(seed.widgets)))
        .token(&seed.alice)
        .send()
        .expect(201);
    let res = gw
        .req("PUT", &format!("{}/{pid}", keys_path(seed.widgets)))
        .token(&seed.alice)
        .json(&json!({"title": "mine"}))
        .send()
        .expect(200)
        .json();
    assert_eq!(res["title"], "fleet");
}

#[test]
fn empty_list_has_one_page() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let res = gw
        .req("GET", &keys_path(seed.widgets))
        .token(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(res.body, "[]");
    assert_eq!(res.header("x-total-pages"), Some("1"));
    assert_eq!(res.header("x-total"), Some("0"));
}

#[test]
fn links_use_the_public_url() {
    let gw = Gateway::start_with(|s| s.public_url = Some("https://keys.example.com/".into()));
    let seed = gw.seed();
    for i in 0..3 {
        add(
            &gw,
            &seed.alice,
            seed.widgets,
            &fresh_key(&format!("p{i}")),
            false,
        );
    }
    let res = gw
        .req("GET", &format!("{}?per_page=2", keys_path(seed.widgets)))
        .token(&seed.alice)
        .send();
    let next = links(res.header("link").unwrap())["next"].clone();
    assert_eq!(
        next,
        format!(
            "https://keys.example.com{}?page=2&per_page=2",
            keys_path(seed.widgets)
        )
    );
}

#[test]
fn admin_instance_keys() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let key = fresh_key("instance");
    let res = gw
        .req("POST", &format!("{V4}/deploy_keys"))
        .token(&seed.root)
        .json(&json!({"title": "fleet", "key": key}))
        .send()
        .expect(201);
    contract.check("/deploy_keys", "post", 201, &res.json());
    let public_id = res.json()["id"].as_i64().unwrap();
    let res = gw
        .req("POST", &format!("{V4}/deploy_keys"))
        .token(&seed.root)
        .json(&json!({"title": "again", "key": key}))
        .send()
        .expect(400);
    assert_eq!(
        res.json(),
        json!({"message": {"fingerprint_sha256": ["has already been taken"]}})
    );
    gw.req("POST", &format!("{V4}/deploy_keys"))
        .token(&seed.alice)
        .json(&json!({"title": "nope", "key": fresh_key("n")}))
        .send()
        .expect(403);

    // Anyone may attach a public key, by text (join) or by enable.
    let joined = add(&gw, &seed.alice, seed.widgets, &key, true);
    assert_eq!(joined["id"], public_id);
    add(
        &gw,
        &seed.alice,
        seed.cli_repo,
        &fresh_key("private"),
        false,
    );

    let all = gw
        .req("GET", &format!("{V4}/deploy_keys"))
        .token(&seed.root)
        .send()
        .expect(200)
        .json();
    contract.check("/deploy_keys", "get", 200, &all);
    assert_eq!(all.as_array().unwrap().len(), 2);
    let fleet = all
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == public_id)
        .unwrap();
    assert_eq!(
        fleet["projects_with_write_access"][0]["path_with_namespace"],
        "acme/widgets"
    );
    assert_eq!(fleet["projects_with_readonly_access"], json!([]));
    let public = gw
        .req("GET", &format!("{V4}/deploy_keys?public=True"))
        .token(&seed.root)
        .send()
        .expect(200)
        .json();
    assert_eq!(public.as_array().unwrap().len(), 1);
    assert_eq!(public[0]["id"], public_id);
    let res = gw
        .req("GET", &format!("{V4}/deploy_keys"))
        .token(&seed.alice)
        .send()
        .expect(403);
    assert_eq!(res.json(), json!({"message": "403 Forbidden"}));

    // Deleting a public key's last link keeps the key.
    gw.req(
        "DELETE",
        &format!("{}/{public_id}", keys_path(seed.widgets)),
    )
    .token(&seed.alice)
    .send()
    .expect(204);
    let all = gw
        .req("GET", &format!("{V4}/deploy_keys?public=true"))
        .token(&seed.root)
        .send()
        .json();
    assert_eq!(all[0]["id"], public_id);
}

#[test]
fn keys_by_fingerprint() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let key = add(&gw, &seed.alice, seed.widgets, &fresh_key("fp"), true);
    for fp in [
        key["fingerprint"].as_str().unwrap(),
        key["fingerprint_sha256"].as_str().unwrap(),
    ] {
        let q: String = url_encode(fp);
        let res = gw
            .req("GET", &format!("{V4}/keys?fingerprint={q}"))
            .token(&seed.root)
            .send()
            .expect(200);
        let body = res.json();
        contract.check("/keys", "get", 200, &body);
        assert_eq!(body["id"], key["id"]);
        assert_eq!(body["user"]["username"], "alice");
        assert_eq!(body["deploy_keys_projects"][0]["project_id"], seed.widgets);
        assert_eq!(body["deploy_keys_projects"][0]["can_push"], true);
    }
    let md5 = url_encode(key["fingerprint"].as_str().unwrap());
    gw.req("GET", &format!("{V4}/keys?fingerprint={md5}"))
        .token(&seed.alice)
        .send()
        .expect(403);
    let unknown = url_encode("SHA256:nUhzNyftwADy8AH3wFY31tAKs7HufskYTte2aXo1lCg");
    let res = gw
        .req("GET", &format!("{V4}/keys?fingerprint={unknown}"))
        .token(&seed.root)
        .send()
        .expect(404);
    assert_eq!(res.json(), json!({"message": "404 Key Not Found"}));
    contract.check("/keys", "get", 404, &res.json());
    let res = gw
        .req("GET", &format!("{V4}/keys?fingerprint=SHA256%3Anope"))
        .token(&seed.root)
        .send()
        .expect(400);
    assert_eq!(res.json(), json!({"message": "Failed to return the key"}));
    let res = gw
        .req("GET", &format!("{V4}/keys"))
        .token(&seed.root)
        .send()
        .expect(400);
    assert_eq!(res.json(), json!({"error": "fingerprint is missing"}));
}

fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[test]
fn user_project_deploy_keys() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let key = add(&gw, &seed.alice, seed.widgets, &fresh_key("u"), false);
    add(&gw, &seed.alice, seed.cli_repo, &fresh_key("v"), false);
    // carol maintains acme/widgets with alice, not acme/tools/cli.
    let res = gw
        .req("GET", &format!("{V4}/users/alice/project_deploy_keys"))
        .token(&seed.carol)
        .send()
        .expect(200);
    contract.check(
        "/users/{id_or_username}/project_deploy_keys",
        "get",
        200,
        &res.json(),
    );
    let ids: Vec<_> = res
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].clone())
        .collect();
    assert_eq!(ids, vec![key["id"].clone()]);
    let by_root = gw
        .req("GET", &format!("{V4}/users/alice/project_deploy_keys"))
        .token(&seed.root)
        .send();
    assert_eq!(by_root.json().as_array().unwrap().len(), 2);
    let res = gw
        .req("GET", &format!("{V4}/users/alice/project_deploy_keys"))
        .token(&seed.bob)
        .send()
        .expect(403);
    assert_eq!(
        res.json(),
        json!({"message": "403 Forbidden - No common authorized project found"})
    );
    let res = gw
        .req("GET", &format!("{V4}/users/nobody/project_deploy_keys"))
        .token(&seed.bob)
        .send()
        .expect(404);
    assert_eq!(res.json(), json!({"message": "404 User Not Found"}));
}

#[test]
fn legacy_v3_keys_routes() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    for base in ["keys", "deploy_keys"] {
        let path = format!("/api/v3/projects/{}/{base}", seed.widgets);
        let created = gw
            .req("POST", &path)
            .token(&seed.alice)
            .json(&json!({"title": "old", "key": fresh_key(base)}))
            .send()
            .expect(201)
            .json();
        let id = created["id"].as_i64().unwrap();
        contract.check("/projects/{id}/keys", "post", 201, &created);
        assert_eq!(created["title"], "old");
        assert!(
            created.get("fingerprint").is_none(),
            "v3 entity is the old short one"
        );
        let listed = gw
            .req("GET", &path)
            .token(&seed.alice)
            .send()
            .expect(200)
            .json();
        assert_eq!(listed.as_array().unwrap().len(), 1);
        gw.req("GET", &format!("{path}/{id}"))
            .token(&seed.alice)
            .send()
            .expect(200);
        let cli_path = format!("/api/v3/projects/{}/{base}", seed.cli_repo);
        gw.req("POST", &format!("{cli_path}/{id}/enable"))
            .token(&seed.alice)
            .send()
            .expect(201);
        let disabled = gw
            .req("DELETE", &format!("{cli_path}/{id}/disable"))
            .token(&seed.alice)
            .send()
            .expect(200);
        assert_eq!(disabled.json()["id"], id);
        let deleted = gw
            .req("DELETE", &format!("{path}/{id}"))
            .token(&seed.alice)
            .send()
            .expect(200);
        assert_eq!(deleted.json()["id"], id);
        contract.check(
            "/projects/{id}/keys/{key_id}",
            "delete",
            200,
            &deleted.json(),
        );
        gw.req("GET", &format!("{path}/{id}"))
            .token(&seed.alice)
            .send()
            .expect(404);
    }
}

#[test]
fn bad_bodies_unknown_routes_and_the_contract() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let path = keys_path(seed.widgets);
    let res = gw
        .req("POST", &path)
        .token(&seed.alice)
        .raw_body("application/json", b"{not json".to_vec())
        .send()
        .expect(400);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert!(res.json()["error"].is_string());
    let huge = vec![b'a'; 70 * 1024];
    let res = gw
        .req("POST", &path)
        .token(&seed.alice)
        .raw_body("application/json", huge)
        .send()
        .expect(413);
    assert_eq!(
        res.json(),
        json!({"message": "413 Request Entity Too Large"})
    );
    let res = gw
        .req("GET", "/api/v4/nothing/here")
        .token(&seed.alice)
        .send()
        .expect(404);
    assert_eq!(res.json(), json!({"error": "404 Not Found"}));
    let res = gw
        .req("GET", "/api/v4/projects/1/keys")
        .token(&seed.alice)
        .send()
        .expect(404);
    assert_eq!(
        res.json(),
        json!({"error": "404 Not Found"}),
        "v4 never had /keys"
    );
    let served = gw.req("GET", "/api/v4/openapi.yaml").send().expect(200);
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dialects/gitlab.yaml"))
            .unwrap();
    assert_eq!(served.body, file);
    assert!(res.header("x-request-id").is_some_and(|id| id.len() == 32));
    assert_eq!(count(&gw, &seed.alice, seed.widgets), 0);
}

// ---- the caller, users, version and metadata ----

#[test]
fn current_user_for_every_valid_token_and_401_otherwise() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    // carol's token is read_api: reading who she is must still work.
    for (token, name) in [(&seed.carol, "carol"), (&seed.alice, "alice")] {
        let me = gw
            .req("GET", &format!("{V4}/user"))
            .token(token)
            .send()
            .expect(200)
            .json();
        contract.check("/user", "get", 200, &me);
        assert_eq!(me["username"], name);
        assert_eq!(me["state"], "active");
        assert_eq!(me["web_url"], format!("{}/{name}", gw.url));
        assert!(
            me.get("is_admin").is_none(),
            "non-admins never see is_admin: {me}"
        );
    }
    let root = gw
        .req("GET", &format!("{V4}/user"))
        .header("Authorization", &format!("Bearer {}", seed.root))
        .send()
        .expect(200)
        .json();
    contract.check("/user", "get", 200, &root);
    assert_eq!(
        (root["username"].as_str(), root["is_admin"].as_bool()),
        (Some("root"), Some(true))
    );
    for req in [
        gw.req("GET", &format!("{V4}/user")),
        gw.req("GET", &format!("{V4}/user"))
            .token("glpat-not-a-token"),
    ] {
        let res = req.send().expect(401);
        assert_eq!(res.json(), json!({"message": "401 Unauthorized"}));
        contract.check("/user", "get", 401, &res.json());
    }
}

#[test]
fn current_user_id_is_the_id_users_routes_take() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let key = add(&gw, &seed.alice, seed.widgets, &fresh_key("mine"), false);
    let me = gw
        .req("GET", &format!("{V4}/user"))
        .token(&seed.alice)
        .send()
        .expect(200)
        .json();
    let id = me["id"].as_i64().unwrap();
    let keys = gw
        .req("GET", &format!("{V4}/users/{id}/project_deploy_keys"))
        .token(&seed.carol)
        .send()
        .expect(200)
        .json();
    assert_eq!(keys[0]["id"], key["id"]);
    let user = gw
        .req("GET", &format!("{V4}/users/{id}"))
        .token(&seed.alice)
        .send()
        .expect(200)
        .json();
    assert_eq!(user["username"], "alice");
    assert_eq!(user["created_at"], me["created_at"]);
}

#[test]
fn users_by_id_and_by_username() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let alice_id = gw
        .req("GET", &format!("{V4}/user"))
        .token(&seed.alice)
        .send()
        .json()["id"]
        .as_i64()
        .unwrap();
    // bob shares nothing with root, and still sees root's public fields (as on GitLab).
    let root_id = gw
        .req("GET", &format!("{V4}/user"))
        .token(&seed.root)
        .send()
        .json()["id"]
        .as_i64()
        .unwrap();
    let seen = gw
        .req("GET", &format!("{V4}/users/{root_id}"))
        .token(&seed.bob)
        .send()
        .expect(200)
        .json();
    contract.check("/users/{id}", "get", 200, &seen);
    assert_eq!(seen["username"], "root");
    assert!(
        seen.get("is_admin").is_none(),
        "a non-admin is not told who is admin"
    );
    let by_admin = gw
        .req("GET", &format!("{V4}/users/{alice_id}"))
        .token(&seed.root)
        .send()
        .expect(200)
        .json();
    contract.check("/users/{id}", "get", 200, &by_admin);
    assert_eq!(by_admin["is_admin"], false);

    let res = gw
        .req("GET", &format!("{V4}/users/999999"))
        .token(&seed.bob)
        .send()
        .expect(404);
    assert_eq!(res.json(), json!({"message": "404 User Not Found"}));
    contract.check("/users/{id}", "get", 404, &res.json());
    let res = gw
        .req("GET", &format!("{V4}/users/alice"))
        .token(&seed.bob)
        .send()
        .expect(400);
    assert_eq!(res.json(), json!({"error": "id is invalid"}));
    gw.req("GET", &format!("{V4}/users/{alice_id}"))
        .send()
        .expect(401);

    // Usernames match in any case, as on GitLab.
    let res = gw
        .req("GET", &format!("{V4}/users?username=ALICE"))
        .token(&seed.carol)
        .send()
        .expect(200);
    contract.check("/users", "get", 200, &res.json());
    let found = res.json();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["id"], alice_id);
    assert_eq!(res.header("x-total"), Some("1"));
    assert_eq!(res.header("x-total-pages"), Some("1"));
    let link = links(res.header("link").unwrap());
    assert!(link["first"].contains("username=ALICE"), "{link:?}");
    assert!(!link.contains_key("next"));

    let res = gw
        .req("GET", &format!("{V4}/users?username=nobody"))
        .token(&seed.carol)
        .send()
        .expect(200);
    assert_eq!(res.json(), json!([]));
    assert_eq!(res.header("x-total"), Some("0"));
    assert_eq!(res.header("x-total-pages"), Some("1"));

    let all = gw
        .req("GET", &format!("{V4}/users?per_page=3"))
        .token(&seed.bob)
        .send()
        .expect(200);
    contract.check("/users", "get", 200, &all.json());
    assert_eq!(all.json().as_array().unwrap().len(), 3);
    assert_eq!(all.header("x-total"), Some("4"));
    assert_eq!(all.header("x-next-page"), Some("2"));
    gw.req("GET", &format!("{V4}/users?username=alice"))
        .send()
        .expect(401);
}

#[test]
fn version_and_metadata() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let mut bodies = Vec::new();
    for path in ["/version", "/metadata"] {
        let res = gw
            .req("GET", &format!("{V4}{path}"))
            .token(&seed.carol)
            .send()
            .expect(200);
        let body = res.json();
        contract.check(path, "get", 200, &body);
        let major: u32 = body["version"]
            .as_str()
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(major, 17, "{body}");
        assert_eq!(body["kas"]["enabled"], false);
        assert_eq!(body["enterprise"], false);
        let res = gw.req("GET", &format!("{V4}{path}")).send().expect(401);
        assert_eq!(res.json(), json!({"message": "401 Unauthorized"}));
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1], "GitLab answers both with one body");
}

// ---- DELETE with If-Unmodified-Since ----

fn http_date(at: time::OffsetDateTime) -> String {
    at.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap()
}

/// The link's `updated_at`, as the admin fingerprint lookup shows it.
fn link_updated_at(gw: &Gateway, root: &str, key: &serde_json::Value) -> time::OffsetDateTime {
    let fp = url_encode(key["fingerprint_sha256"].as_str().unwrap());
    let body = gw
        .req("GET", &format!("{V4}/keys?fingerprint={fp}"))
        .token(root)
        .send()
        .expect(200)
        .json();
    let text = body["deploy_keys_projects"][0]["updated_at"]
        .as_str()
        .unwrap();
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

#[test]
fn delete_with_an_older_if_unmodified_since_is_412_and_keeps_the_key() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("gitlab.yaml");
    let key = add(&gw, &seed.alice, seed.widgets, &fresh_key("cond"), false);
    let path = format!("{}/{}", keys_path(seed.widgets), key["id"]);
    let created = link_updated_at(&gw, &seed.root, &key);
    let older = http_date(created - time::Duration::seconds(1));
    let res = gw
        .req("DELETE", &path)
        .token(&seed.alice)
        .header("If-Unmodified-Since", &older)
        .send()
        .expect(412);
    assert_eq!(res.json(), json!({"message": "412 Precondition Failed"}));
    contract.check(
        "/projects/{id}/deploy_keys/{key_id}",
        "delete",
        412,
        &res.json(),
    );
    gw.req("GET", &path).token(&seed.alice).send().expect(200);

    // A change of can_push moves the link's clock: the creation second is now too old.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    gw.req("PUT", &path)
        .token(&seed.alice)
        .json(&json!({"can_push": true}))
        .send()
        .expect(200);
    let changed = link_updated_at(&gw, &seed.root, &key);
    assert!(changed.unix_timestamp() > created.unix_timestamp());
    gw.req("DELETE", &path)
        .token(&seed.alice)
        .header("If-Unmodified-Since", &http_date(created))
        .send()
        .expect(412);
    // A title change does not touch the link (GitLab's title lives on the key row).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    gw.req("PUT", &path)
        .token(&seed.alice)
        .json(&json!({"title": "renamed", "can_push": true}))
        .send()
        .expect(200);
    assert_eq!(link_updated_at(&gw, &seed.root, &key), changed);
    gw.req("GET", &path).token(&seed.alice).send().expect(200);

    // The very second of the last change is not older than it: the delete goes through.
    gw.req("DELETE", &path)
        .token(&seed.alice)
        .header("If-Unmodified-Since", &http_date(changed))
        .send()
        .expect(204);
    gw.req("GET", &path).token(&seed.alice).send().expect(404);
}

#[test]
fn delete_with_a_newer_or_unreadable_if_unmodified_since_deletes() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let later = http_date(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    for header in [later.as_str(), "not a date", "1700000000", ""] {
        let key = add(&gw, &seed.alice, seed.widgets, &fresh_key("c"), false);
        let path = format!("{}/{}", keys_path(seed.widgets), key["id"]);
        gw.req("DELETE", &path)
            .token(&seed.alice)
            .header("If-Unmodified-Since", header)
            .send()
            .expect(204);
        gw.req("GET", &path).token(&seed.alice).send().expect(404);
    }
    // A date long before any change still only applies to a key that is there.
    let res = gw
        .req("DELETE", &format!("{}/999999", keys_path(seed.widgets)))
        .token(&seed.alice)
        .header("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")
        .send()
        .expect(404);
    assert_eq!(res.json(), json!({"message": "404 Deploy key Not Found"}));
    assert_eq!(count(&gw, &seed.alice, seed.widgets), 0);
}

#[test]
fn fingerprint_prefixes_in_any_case() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let key = add(&gw, &seed.alice, seed.widgets, &fresh_key("fp"), true);
    let sha = key["fingerprint_sha256"].as_str().unwrap();
    let b64 = sha.strip_prefix("SHA256:").unwrap();
    let md5 = key["fingerprint"].as_str().unwrap();
    for fp in [
        format!("sha256:{b64}"),
        format!("Sha256:{b64}"),
        format!("SHA256:{b64}"),
        format!("md5:{md5}"),
        format!("MD5:{}", md5.to_ascii_uppercase()),
        md5.to_ascii_uppercase(),
    ] {
        let res = gw
            .req("GET", &format!("{V4}/keys?fingerprint={}", url_encode(&fp)))
            .token(&seed.root)
            .send();
        assert_eq!(res.status, 200, "{fp}: {}", res.body);
        assert_eq!(res.json()["id"], key["id"], "{fp}");
    }
    // Only the prefix is case-blind: base64 is not.
    let flipped: String = b64
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    gw.req(
        "GET",
        &format!(
            "{V4}/keys?fingerprint={}",
            url_encode(&format!("sha256:{flipped}"))
        ),
    )
    .token(&seed.root)
    .send()
    .expect(404);
}

/// A create answers with the row it stored, built from what it wrote rather than read back: the
/// GET that follows shows exactly the same key, for a maintainer and for an admin who is no member.
#[test]
fn a_created_key_is_answered_exactly_as_it_is_stored() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for (who, token, can_push) in [("alice", &seed.alice, true), ("root", &seed.root, false)] {
        let created = gw
            .req("POST", &keys_path(seed.widgets))
            .token(token)
            .json(&json!({
                "title": format!("exact {who}"),
                "key": fresh_key(&format!("exact-{who}")),
                "can_push": can_push,
                "expires_at": "2099-01-02T03:04:05Z",
            }))
            .send()
            .expect(201)
            .json();
        assert_eq!(created["can_push"], can_push);
        assert!(created["expires_at"].is_string(), "{created}");
        assert!(created["created_at"].is_string(), "{created}");
        let id = created["id"].as_i64().unwrap();
        let got = gw
            .req("GET", &format!("{}/{id}", keys_path(seed.widgets)))
            .token(token)
            .send()
            .expect(200)
            .json();
        assert_eq!(created, got, "{who}");
    }
}

/// The key is parsed where the request arrives, before its write queues for the writer, but
/// judged only once the caller may manage the project: a reporter and a stranger who paste a
/// private key hear 403 and 404, as on GitLab, and only a maintainer hears what is wrong with it.
#[test]
fn a_bad_key_is_judged_only_after_the_caller_may_manage_the_project() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let body = json!({"title": "t", "key": common::fixture("private-openssh-ed25519.key")});
    let post = |token: &str, project: i64| {
        gw.req("POST", &keys_path(project))
            .token(token)
            .json(&body)
            .send()
    };
    let res = post(&seed.bob, seed.widgets).expect(403);
    assert_eq!(res.json(), json!({"message": "403 Forbidden"}));
    let res = post(&seed.alice, seed.secret).expect(404);
    assert_eq!(res.json(), json!({"message": "404 Project Not Found"}));
    let res = post(&seed.alice, seed.widgets).expect(400);
    assert!(
        res.json()["message"].to_string().contains("private key"),
        "{}",
        res.json()
    );
    assert_eq!(count(&gw, &seed.root, seed.widgets), 0);
}
