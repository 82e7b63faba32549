//! The CodeArts Repo dialect over raw HTTP, every request signed with SDK-HMAC-SHA256 as the SDK does.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{
    Contract, Creds, Gateway, Resp, Seed, access_key, authorization, fixture, fresh_key, sdk_date,
    signed, signed_at, signed_with_token,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// The fixture ed25519 key and its MD5 as `ssh-keygen -E md5 -l` prints it (fixtures/keys/manifest.tsv).
const ED25519_MD5: &str = "3f:69:09:24:c8:53:ef:ec:e1:4f:9c:1e:34:0f:23:c1";

/// The seeded cast plus an access key for each user.
struct World {
    gw: Gateway,
    seed: Seed,
    root: Creds,
    alice: Creds,
    bob: Creds,
    contract: Contract,
    /// Requests sent through `World::send`.
    sent: std::sync::atomic::AtomicU64,
    /// The X-Sdk-Date (Unix seconds) of the last request `World::send` signed.
    last_date: std::sync::Mutex<i64>,
}

fn world() -> World {
    let gw = Gateway::start();
    let seed = gw.seed();
    World {
        root: access_key(&gw, "root"),
        alice: access_key(&gw, "alice"),
        bob: access_key(&gw, "bob"),
        seed,
        gw,
        contract: Contract::load("codearts.yaml"),
        sent: std::sync::atomic::AtomicU64::new(0),
        last_date: std::sync::Mutex::new(i64::MAX),
    }
}

fn add_body(title: &str, key: &str, can_push: bool) -> Value {
    json!({"application": "ci", "can_push": can_push, "key": key, "key_title": title})
}

fn v2_keys(repo: i64) -> String {
    format!("/v2/repositories/{repo}/deploy-keys")
}

fn v4_keys(repo: i64) -> String {
    format!("/v4/repositories/{repo}/deploy-keys")
}

impl World {
    /// Signs and sends a request. Each call is dated a second earlier than the one before (well
    /// inside the 15 minutes allowed), so two identical calls are two requests, not a replay.
    fn send(&self, creds: &Creds, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let back = self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Strictly before the previous request's date: stepping back one second per request
        // alone gives two requests the same date (so the same signature, refused as a replay)
        // whenever the clock ticks over a second between them.
        let at = {
            let mut last = self.last_date.lock().unwrap();
            let at = (OffsetDateTime::now_utc().unix_timestamp() - back as i64).min(*last - 1);
            *last = at;
            at
        };
        let date = sdk_date(OffsetDateTime::from_unix_timestamp(at).unwrap());
        let body = body.map(|b| serde_json::to_vec(b).unwrap());
        let res = signed_at(&self.gw, creds, method, path, body, &date).send();
        assert!(
            res.header("x-request-id").is_some_and(|id| id.len() == 32),
            "{method} {path}: no X-Request-Id"
        );
        res
    }

    /// Adds a key through v2 and returns its id.
    fn add(&self, creds: &Creds, repo: i64, key: &str, can_push: bool) -> i64 {
        let res = self
            .send(
                creds,
                "POST",
                &v2_keys(repo),
                Some(&add_body("k", key, can_push)),
            )
            .expect(200);
        res.json()["result"]["key_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The ids listed by v4 (first page of 100) and `X-Total`.
    fn list(&self, creds: &Creds, path: &str) -> (Vec<i64>, u64) {
        let res = self
            .send(creds, "GET", &format!("{path}?limit=100"), None)
            .expect(200);
        let body = res.json();
        let ids = body
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_i64().unwrap())
            .collect();
        (ids, res.header("x-total").unwrap().parse().unwrap())
    }

    fn check(&self, creds: &Creds, path: &str, key: &str) -> bool {
        let res = self
            .send(creds, "POST", path, Some(&json!({ "key": key })))
            .expect(200);
        self.contract
            .check(&contract_path(path), "post", 200, &res.json());
        res.json()["exists"].as_bool().unwrap()
    }
}

/// The contract's template for a concrete path (`/v4/groups/3/…` → `/v4/groups/{group_id}/…`).
fn contract_path(path: &str) -> String {
    let path = path.split('?').next().unwrap();
    let mut out = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let before = if i > 0 { segments[i - 1] } else { "" };
        let template = match before {
            "repositories" => "{repository_id}",
            "groups" => "{group_id}",
            "projects" => "{project_id}",
            "deploy-keys" | "deploy_keys" if *segment != "check-key" => "{key_id}",
            _ => segment,
        };
        out.push(template.to_string());
    }
    out.join("/")
}

/// Asserts the v4 error body, its code and status, and that the contract allows it.
fn v4_error(
    contract: &Contract,
    method: &str,
    path: &str,
    res: Resp,
    status: u16,
    code: &str,
) -> String {
    let res = res.expect(status);
    let body = res.json();
    assert_eq!(body["error_code"], code, "{body}");
    contract.check(&contract_path(path), &method.to_lowercase(), status, &body);
    body["error_msg"].as_str().unwrap().to_string()
}

/// Asserts the v1/v2 error envelope, its code and status, and that the contract allows it.
fn v2_error(
    contract: &Contract,
    method: &str,
    path: &str,
    res: Resp,
    status: u16,
    code: &str,
) -> String {
    let res = res.expect(status);
    let body = res.json();
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["result"], Value::Null, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    contract.check(&contract_path(path), &method.to_lowercase(), status, &body);
    body["error"]["message"].as_str().unwrap().to_string()
}

// ---------- the CLI ----------

#[test]
fn access_keys_are_printed_once_listed_without_secrets_and_revocable() {
    let w = world();
    let line = w.gw.cli(&["access-key", "add", "alice"]);
    let (ak, sk) = line.split_once(' ').unwrap();
    assert_eq!(ak.len(), 20, "{line}");
    assert!(
        ak.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    assert_eq!(sk.len(), 40, "{line}");
    assert!(sk.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(!line.contains('\n'));

    let listed = w.gw.cli(&["access-key", "list", "alice"]);
    assert_eq!(listed, format!("{}\n{ak}", w.alice.ak));
    assert!(!listed.contains(sk) && !listed.contains(&w.alice.sk));
    assert_eq!(w.gw.cli(&["access-key", "list", "carol"]), "");

    let second = Creds {
        ak: ak.into(),
        sk: sk.into(),
    };
    let path = v4_keys(w.seed.widgets);
    w.send(&second, "GET", &path, None).expect(200);
    w.gw.cli(&["access-key", "revoke", ak]);
    let res = w.send(&second, "GET", &path, None);
    v4_error(&w.contract, "GET", &path, res, 401, "APIGW.0301");
    // The user's other key is untouched.
    w.send(&w.alice, "GET", &path, None).expect(200);

    let out = w.gw.cli_raw(&["access-key", "revoke", ak]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "keygate: no such access key"
    );
    let out = w.gw.cli_raw(&["access-key", "add", "nobody"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "keygate: no such user"
    );
}

#[test]
fn removing_a_user_removes_their_access_keys() {
    let w = world();
    let path = v4_keys(w.seed.widgets);
    w.send(&w.bob, "GET", &path, None).expect(403);
    w.gw.cli(&["user", "remove", "bob"]);
    let res = w.send(&w.bob, "GET", &path, None);
    v4_error(&w.contract, "GET", &path, res, 401, "APIGW.0301");
}

#[test]
fn group_list_prints_ids_and_project_ids() {
    let w = world();
    let listed = w.gw.cli(&["group", "list"]);
    let rows: Vec<Vec<&str>> = listed.lines().map(|l| l.split(' ').collect()).collect();
    let paths: Vec<&str> = rows.iter().map(|r| r[2]).collect();
    assert_eq!(paths, ["acme", "acme/tools", "other"]);
    for row in &rows {
        assert!(row[0].parse::<i64>().is_ok(), "{listed}");
        if row[2].contains('/') {
            assert_eq!(row[1], "-", "subgroups are not projects: {listed}");
        } else {
            assert_eq!(row[1].len(), 32, "{listed}");
            assert!(
                row[1]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
    }
}

// ---------- v1 / v2 ----------

#[test]
fn v2_add_then_list_through_v4_then_delete() {
    let w = world();
    let key = fixture("ed25519.pub");
    let path = v2_keys(w.seed.widgets);
    let res = w
        .send(
            &w.alice,
            "POST",
            &path,
            Some(&add_body("ci key", &key, true)),
        )
        .expect(200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body = res.json();
    w.contract.check(
        "/v2/repositories/{repository_id}/deploy-keys",
        "post",
        200,
        &body,
    );
    let result = &body["result"];
    assert_eq!(body["status"], "success");
    assert_eq!(result["key_title"], "ci key");
    assert_eq!(result["can_push"], true);
    assert_eq!(result["key"], key.trim());
    let id: i64 = result["key_id"].as_str().unwrap().parse().unwrap();

    let list_path = v4_keys(w.seed.widgets);
    let res = w.send(&w.alice, "GET", &list_path, None).expect(200);
    assert_eq!(res.header("x-total"), Some("1"));
    let listed = res.json();
    w.contract.check(
        "/v4/repositories/{repository_id}/deploy-keys",
        "get",
        200,
        &listed,
    );
    assert_eq!(
        listed,
        json!([{"id": id, "title": "ci key", "fingerprint": ED25519_MD5, "created_at": result["created_at"]}])
    );

    let del = format!("{path}/{id}");
    let res = w.send(&w.alice, "DELETE", &del, None).expect(200);
    assert_eq!(res.json(), json!({"result": true, "status": "success"}));
    w.contract.check(
        "/v2/repositories/{repository_id}/deploy-keys/{key_id}",
        "delete",
        200,
        &res.json(),
    );
    let res = w.send(&w.alice, "GET", &list_path, None).expect(200);
    assert_eq!(res.json(), json!([]));
    assert_eq!(res.header("x-total"), Some("0"));

    let res = w.send(&w.alice, "DELETE", &del, None);
    v2_error(&w.contract, "DELETE", &del, res, 404, "CH.00402002");
}

#[test]
fn v1_uses_underscores_and_behaves_like_v2() {
    let w = world();
    let path = format!("/v1/repositories/{}/deploy_keys", w.seed.widgets);
    let res = w
        .send(
            &w.alice,
            "POST",
            &path,
            Some(&add_body("v1", &fresh_key("v1"), false)),
        )
        .expect(200);
    w.contract.check(
        "/v1/repositories/{repository_id}/deploy_keys",
        "post",
        200,
        &res.json(),
    );
    let id = res.json()["result"]["key_id"].as_str().unwrap().to_string();
    assert_eq!(res.json()["result"]["can_push"], false);

    // v1's spelling is not v2's, and the other way round.
    for wrong in [
        format!("/v1/repositories/{}/deploy-keys", w.seed.widgets),
        format!("/v2/repositories/{}/deploy_keys", w.seed.widgets),
    ] {
        let res = w.send(
            &w.alice,
            "POST",
            &wrong,
            Some(&add_body("x", &fresh_key("x"), false)),
        );
        let body = res.expect(404).json();
        assert_eq!(body["error_code"], "APIGW.0101", "{wrong}: {body}");
    }

    let del = format!("{path}/{id}");
    let res = w.send(&w.alice, "DELETE", &del, None).expect(200);
    assert_eq!(res.json(), json!({"result": true, "status": "success"}));
    w.contract.check(
        "/v1/repositories/{repository_id}/deploy_keys/{key_id}",
        "delete",
        200,
        &res.json(),
    );
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)), (vec![], 0));
}

#[test]
fn the_same_repository_and_key_ids_as_gitlab() {
    let w = world();
    let key = fresh_key("shared@ids");
    let id = w.add(&w.alice, w.seed.widgets, &key, true);
    let gitlab =
        w.gw.req(
            "GET",
            &format!("/api/v4/projects/acme%2Fwidgets/deploy_keys/{id}"),
        )
        .token(&w.seed.alice)
        .send()
        .expect(200)
        .json();
    let listed = w
        .send(&w.alice, "GET", &v4_keys(w.seed.widgets), None)
        .expect(200)
        .json();
    assert_eq!(gitlab["id"], id);
    assert_eq!(gitlab["fingerprint"], listed[0]["fingerprint"]);
    assert_eq!(gitlab["can_push"], true);
    // And a key added through GitLab is removed through CodeArts.
    let gl_id =
        w.gw.req(
            "POST",
            &format!("/api/v4/projects/{}/deploy_keys", w.seed.widgets),
        )
        .token(&w.seed.alice)
        .json(&json!({"title": "gl", "key": fresh_key("gl")}))
        .send()
        .expect(201)
        .json()["id"]
            .as_i64()
            .unwrap();
    w.send(
        &w.alice,
        "DELETE",
        &format!("{}/{gl_id}", v4_keys(w.seed.widgets)),
        None,
    )
    .expect(204);
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)), (vec![id], 1));
}

#[test]
fn a_duplicate_is_refused_and_a_key_from_another_repository_is_shared() {
    let w = world();
    let path = v2_keys(w.seed.widgets);
    let id = w.add(&w.alice, w.seed.widgets, &fixture("ed25519.pub"), false);
    // The same key with another comment is the same key.
    for text in [
        fixture("ed25519.pub"),
        fixture("spaced-comment-ed25519.pub"),
    ] {
        let res = w.send(
            &w.alice,
            "POST",
            &path,
            Some(&add_body("again", &text, true)),
        );
        let msg = v2_error(&w.contract, "POST", &path, res, 400, "CH.00402001");
        assert_eq!(msg, "The deploy key already exists in this repository.");
    }
    let (ids, _) = w.list(&w.alice, &v4_keys(w.seed.widgets));
    assert_eq!(ids, [id]);

    // On another repository alice maintains, the key is shared: same id, that repository's can_push.
    let res = w
        .send(
            &w.alice,
            "POST",
            &v2_keys(w.seed.cli_repo),
            Some(&add_body("other title", &fixture("ed25519.pub"), true)),
        )
        .expect(200);
    let result = &res.json()["result"];
    assert_eq!(result["key_id"], id.to_string());
    assert_eq!(result["key_title"], "k", "a shared key keeps its title");
    assert_eq!(result["can_push"], true);

    // A key alice has never had access to cannot be reached through someone else's repository.
    let secret_key = fresh_key("secret");
    w.add(&w.root, w.seed.secret, &secret_key, false);
    let res = w.send(
        &w.alice,
        "POST",
        &path,
        Some(&add_body("steal", &secret_key, false)),
    );
    v2_error(&w.contract, "POST", &path, res, 400, "CH.00402005");
}

#[test]
fn the_application_is_kept_with_the_link() {
    let w = world();
    let body = json!({"application": "release-bot", "can_push": false, "key": fresh_key("app"), "key_title": "t"});
    let id: i64 = w
        .send(&w.alice, "POST", &v2_keys(w.seed.widgets), Some(&body))
        .expect(200)
        .json()["result"]["key_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let store = keygate::store::Store::open(&w.gw.db).unwrap();
    let label = |repo: i64| store.read(|db| db.link_application(repo, id)).unwrap();
    assert_eq!(label(w.seed.widgets).as_deref(), Some("release-bot"));
    // It goes with the link, whichever dialect removes it.
    w.gw.req(
        "DELETE",
        &format!("/api/v4/projects/{}/deploy_keys/{id}", w.seed.widgets),
    )
    .token(&w.seed.alice)
    .send()
    .expect(204);
    assert_eq!(label(w.seed.widgets), None);
}

#[test]
fn every_add_field_is_required_and_strictly_typed() {
    let w = world();
    let path = v2_keys(w.seed.widgets);
    let key = fresh_key("typed");
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({}),
            "key_title, key, can_push, application are missing.",
        ),
        (
            json!({"key": key, "can_push": false, "application": "a"}),
            "key_title is missing.",
        ),
        (
            json!({"key_title": "t", "key": key, "application": "a"}),
            "can_push is missing.",
        ),
        (
            json!({"key_title": "t", "key": key, "can_push": false}),
            "application is missing.",
        ),
        (
            json!({"key_title": "t", "key": key, "can_push": null, "application": "a"}),
            "can_push is missing.",
        ),
        (
            json!({"key_title": "t", "key": key, "can_push": "true", "application": "a"}),
            "can_push must be a boolean.",
        ),
        (
            json!({"key_title": "t", "key": key, "can_push": 1, "application": "a"}),
            "can_push must be a boolean.",
        ),
        (
            json!({"key_title": 7, "key": key, "can_push": false, "application": "a"}),
            "key_title must be a string.",
        ),
        (
            json!({"key_title": "t", "key": ["x"], "can_push": false, "application": "a"}),
            "key must be a string.",
        ),
        (
            json!({"key_title": "t", "key": key, "can_push": false, "application": false}),
            "application must be a string.",
        ),
        (
            json!({"key_title": "t", "key": key, "can_push": false, "application": "a".repeat(256)}),
            "application is too long (maximum is 255 characters).",
        ),
        (
            json!({"key_title": "  ", "key": key, "can_push": false, "application": "a"}),
            "key_title must not be blank.",
        ),
        (
            json!({"key_title": "é".repeat(256), "key": key, "can_push": false, "application": "a"}),
            "key_title is too long (maximum is 255 characters).",
        ),
    ];
    for (body, message) in cases {
        let res = w.send(&w.alice, "POST", &path, Some(&body));
        assert_eq!(
            v2_error(&w.contract, "POST", &path, res, 400, "CH.00100001"),
            message,
            "{body}"
        );
    }
    for raw in [&b"not json"[..], b"[1, 2]", b"\"text\""] {
        let res = signed_at(
            &w.gw,
            &w.alice,
            "POST",
            &path,
            Some(raw.to_vec()),
            &sdk_date(OffsetDateTime::now_utc()),
        )
        .send();
        let msg = v2_error(&w.contract, "POST", &path, res, 400, "CH.00100001");
        assert_eq!(msg, "The request body must be a JSON object.");
    }
    // 255 characters (not bytes) and an empty application are fine.
    let ok =
        json!({"key_title": "é".repeat(255), "key": key, "can_push": false, "application": ""});
    w.send(&w.alice, "POST", &path, Some(&ok)).expect(200);
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)).1, 1);
}

#[test]
fn invalid_private_weak_and_forbidden_keys_have_their_own_codes() {
    let w = world();
    let path = v2_keys(w.seed.widgets);
    let cases = [
        ("not-a-key.pub", "CH.00100002"),
        ("broken-base64.pub", "CH.00100002"),
        ("truncated.pub", "CH.00100002"),
        ("empty.pub", "CH.00100002"),
        ("mismatched-type.pub", "CH.00100002"),
        ("private-openssh-ed25519.key", "CH.00100003"),
        ("private-pem-rsa.key", "CH.00100003"),
        ("private-pkcs8.key", "CH.00100003"),
        ("rsa-1024.pub", "CH.00100004"),
        ("dsa-1024.pub", "CH.00100005"),
    ];
    for (file, code) in cases {
        let text = fixture(file);
        let res = w.send(&w.alice, "POST", &path, Some(&add_body(file, &text, false)));
        let msg = v2_error(&w.contract, "POST", &path, res, 400, code);
        // The message never carries key material back.
        for line in text.lines().filter(|l| l.len() > 20) {
            assert!(!msg.contains(line.trim()), "{file}: echoed key text");
        }
        if let Some(blob) = text.split_whitespace().nth(1).filter(|b| b.len() > 20) {
            assert!(!msg.contains(blob), "{file}: echoed key text");
        }
    }
    let res = w.send(
        &w.alice,
        "POST",
        &path,
        Some(&add_body("long", &"A".repeat(5001), false)),
    );
    v2_error(&w.contract, "POST", &path, res, 400, "CH.00100002");
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)).1, 0);

    // The same codes on v4 check-key, flat.
    let check = format!("{}/check-key", v4_keys(w.seed.widgets));
    let res = w.send(
        &w.alice,
        "POST",
        &check,
        Some(&json!({"key": fixture("private-pkcs8.key")})),
    );
    v4_error(&w.contract, "POST", &check, res, 400, "CH.00100003");
    let res = w.send(
        &w.alice,
        "POST",
        &check,
        Some(&json!({"key": fixture("rsa-1024.pub")})),
    );
    v4_error(&w.contract, "POST", &check, res, 400, "CH.00100004");
}

#[test]
fn a_body_over_64_kib_is_413() {
    let w = world();
    let path = v2_keys(w.seed.widgets);
    let body = add_body("big", &"A".repeat(70 * 1024), false);
    let res = w.send(&w.alice, "POST", &path, Some(&body));
    v2_error(&w.contract, "POST", &path, res, 413, "CH.00100006");
}

// ---------- v4 lists ----------

#[test]
fn repository_list_pages_with_offset_and_limit() {
    let w = world();
    let ids: Vec<i64> = (0..5)
        .map(|i| {
            w.add(
                &w.alice,
                w.seed.widgets,
                &fresh_key(&format!("p{i}")),
                false,
            )
        })
        .collect();
    let base = v4_keys(w.seed.widgets);
    let page = |query: &str| {
        let res = w
            .send(&w.alice, "GET", &format!("{base}{query}"), None)
            .expect(200);
        let body = res.json();
        w.contract.check(
            "/v4/repositories/{repository_id}/deploy-keys",
            "get",
            200,
            &body,
        );
        let got: Vec<i64> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_i64().unwrap())
            .collect();
        assert_eq!(res.header("x-total"), Some("5"), "{query}");
        got
    };
    assert_eq!(page(""), ids);
    assert_eq!(page("?offset=0&limit=2"), ids[..2]);
    // The SDK sorts its query; a client that does not must verify just the same.
    assert_eq!(page("?offset=2&limit=2"), ids[2..4]);
    assert_eq!(page("?limit=2&offset=4"), ids[4..]);
    assert_eq!(page("?limit=100&offset=5"), Vec::<i64>::new());
    assert_eq!(page("?offset=2147483647"), Vec::<i64>::new());
    assert_eq!(page("?limit=1"), ids[..1]);

    for (query, message) in [
        ("?limit=0", "limit must be an integer from 1 to 100."),
        ("?limit=101", "limit must be an integer from 1 to 100."),
        ("?limit=ten", "limit must be an integer from 1 to 100."),
        (
            "?offset=-1",
            "offset must be an integer from 0 to 2147483647.",
        ),
        (
            "?offset=2147483648",
            "offset must be an integer from 0 to 2147483647.",
        ),
        (
            "?offset=",
            "offset must be an integer from 0 to 2147483647.",
        ),
    ] {
        let path = format!("{base}{query}");
        let res = w.send(&w.alice, "GET", &path, None);
        assert_eq!(
            v4_error(&w.contract, "GET", &path, res, 400, "CH.00100001"),
            message,
            "{query}"
        );
    }
}

#[test]
fn twenty_keys_by_default() {
    let w = world();
    for i in 0..21 {
        w.add(&w.root, w.seed.widgets, &fresh_key(&format!("d{i}")), false);
    }
    let res = w
        .send(&w.alice, "GET", &v4_keys(w.seed.widgets), None)
        .expect(200);
    assert_eq!(res.json().as_array().unwrap().len(), 20);
    assert_eq!(res.header("x-total"), Some("21"));
}

#[test]
fn group_and_project_lists_cover_subgroups_once_per_key() {
    let w = world();
    let shared = fresh_key("shared");
    let a = w.add(&w.alice, w.seed.widgets, &shared, false);
    assert_eq!(w.add(&w.alice, w.seed.cli_repo, &shared, true), a);
    let b = w.add(&w.alice, w.seed.cli_repo, &fresh_key("cli-only"), false);
    let c = w.add(&w.root, w.seed.secret, &fresh_key("secret"), false);

    let groups = w.gw.cli(&["group", "list"]);
    let row = |path: &str| -> (i64, String) {
        let line = groups
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap();
        let parts: Vec<&str> = line.split(' ').collect();
        (parts[0].parse().unwrap(), parts[1].to_string())
    };
    let (acme, acme_uuid) = row("acme");
    let (tools, _) = row("acme/tools");
    let (other, other_uuid) = row("other");

    let group = |id: i64| format!("/v4/groups/{id}/deploy-keys");
    let project = |uuid: &str| format!("/v4/projects/{uuid}/deploy-keys");
    assert_eq!(w.list(&w.alice, &group(acme)), (vec![a, b], 2));
    assert_eq!(w.list(&w.alice, &group(tools)), (vec![a, b], 2));
    assert_eq!(w.list(&w.alice, &project(&acme_uuid)), (vec![a, b], 2));
    assert_eq!(
        w.list(&w.alice, &project(&acme_uuid.to_uppercase())),
        (vec![a, b], 2)
    );
    assert_eq!(w.list(&w.root, &group(other)), (vec![c], 1));
    assert_eq!(w.list(&w.root, &project(&other_uuid)), (vec![c], 1));

    let res = w
        .send(
            &w.alice,
            "GET",
            &format!("{}?offset=1&limit=1", group(acme)),
            None,
        )
        .expect(200);
    w.contract
        .check("/v4/groups/{group_id}/deploy-keys", "get", 200, &res.json());
    assert_eq!(res.json()[0]["id"], b);
    assert_eq!(res.header("x-total"), Some("2"));
    let res = w
        .send(
            &w.root,
            "GET",
            &format!("{}?limit=1", project(&other_uuid)),
            None,
        )
        .expect(200);
    w.contract.check(
        "/v4/projects/{project_id}/deploy-keys",
        "get",
        200,
        &res.json(),
    );

    // bob only reports on acme/widgets: he sees the group but may not list its keys.
    let res = w.send(&w.bob, "GET", &group(acme), None);
    v4_error(&w.contract, "GET", &group(acme), res, 403, "CH.004403");
    // alice has no role anywhere in `other`: it does not exist for her.
    let res = w.send(&w.alice, "GET", &group(other), None);
    v4_error(&w.contract, "GET", &group(other), res, 404, "CH.00402003");
    let res = w.send(&w.alice, "GET", &project(&other_uuid), None);
    v4_error(
        &w.contract,
        "GET",
        &project(&other_uuid),
        res,
        404,
        "CH.00402004",
    );
    let res = w.send(&w.root, "GET", &group(999), None);
    v4_error(&w.contract, "GET", &group(999), res, 404, "CH.00402003");
    let missing = project(&"0".repeat(32));
    let res = w.send(&w.root, "GET", &missing, None);
    v4_error(&w.contract, "GET", &missing, res, 404, "CH.00402004");
    // A subgroup has an id of its own but is not a project.
    let tools_uuid = keygate::store::Store::open(&w.gw.db)
        .unwrap()
        .read(|db| db.namespace_by_id(tools))
        .unwrap()
        .unwrap()
        .uuid;
    let res = w.send(&w.root, "GET", &project(&tools_uuid), None);
    v4_error(
        &w.contract,
        "GET",
        &project(&tools_uuid),
        res,
        404,
        "CH.00402004",
    );

    for bad in [
        "not-hex",
        "0123456789abcdef0123456789abcde",
        "g123456789abcdef0123456789abcdef",
    ] {
        let path = project(bad);
        let res = w.send(&w.root, "GET", &path, None);
        assert_eq!(
            v4_error(&w.contract, "GET", &path, res, 400, "CH.00100001"),
            "project_id must be 32 hexadecimal digits."
        );
    }
    for bad in ["0", "abc", "-1"] {
        let path = format!("/v4/groups/{bad}/deploy-keys");
        let res = w.send(&w.root, "GET", &path, None);
        assert_eq!(
            v4_error(&w.contract, "GET", &path, res, 400, "CH.00100001"),
            "group_id must be a positive integer."
        );
    }
}

#[test]
fn a_group_list_shows_only_repositories_the_caller_maintains() {
    let w = world();
    let mine = w.add(&w.alice, w.seed.widgets, &fresh_key("mine"), false);
    // A repository in acme where alice is only a reporter.
    w.gw.cli(&["repo", "add", "acme/reported"]);
    w.gw.cli(&[
        "repo",
        "grant",
        "acme/reported",
        "alice",
        "--role",
        "reporter",
    ]);
    let reported: i64 =
        w.gw.cli(&["repo", "list"])
            .lines()
            .find(|l| l.ends_with(" acme/reported"))
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
    let hidden_key = fresh_key("hidden");
    let hidden = w.add(&w.root, reported, &hidden_key, false);
    let acme = "/v4/groups/1/deploy-keys";
    assert_eq!(w.list(&w.alice, acme), (vec![mine], 1));
    assert_eq!(w.list(&w.root, acme), (vec![mine, hidden], 2));
    // check-key covers the same repositories.
    let check = "/v4/groups/1/deploy-keys/check-key";
    assert!(!w.check(&w.alice, check, &hidden_key));
    assert!(w.check(&w.root, check, &hidden_key));
}

// ---------- v4 remove, check, submodules ----------

#[test]
fn v4_remove_answers_204_then_404() {
    let w = world();
    let id = w.add(&w.alice, w.seed.widgets, &fresh_key("rm"), false);
    let path = format!("{}/{id}", v4_keys(w.seed.widgets));
    let res = w.send(&w.alice, "DELETE", &path, None).expect(204);
    assert_eq!(res.body, "");
    let res = w.send(&w.alice, "DELETE", &path, None);
    assert_eq!(
        v4_error(&w.contract, "DELETE", &path, res, 404, "CH.00402002"),
        "The deploy key does not exist in the repository."
    );
    for bad in ["abc", "0", "-3", "1.5"] {
        let path = format!("{}/{bad}", v4_keys(w.seed.widgets));
        let res = w.send(&w.alice, "DELETE", &path, None);
        assert_eq!(
            v4_error(&w.contract, "DELETE", &path, res, 400, "CH.00100001"),
            "key_id must be a positive integer."
        );
    }
    // The key is gone from the instance, not only from the repository.
    w.gw.req(
        "GET",
        &format!("/api/v4/projects/{}/deploy_keys/{id}", w.seed.widgets),
    )
    .token(&w.seed.root)
    .send()
    .expect(404);
}

#[test]
fn check_key_compares_fingerprints() {
    let w = world();
    w.add(&w.alice, w.seed.cli_repo, &fixture("ed25519.pub"), false);
    let repo_check = |repo: i64| format!("{}/check-key", v4_keys(repo));
    assert!(w.check(
        &w.alice,
        &repo_check(w.seed.cli_repo),
        &fixture("ed25519.pub")
    ));
    // Another comment, options in front, wrapped over lines: the same key.
    for variant in [
        "spaced-comment-ed25519.pub",
        "options-ed25519.pub",
        "wrapped-ed25519.pub",
    ] {
        assert!(
            w.check(&w.alice, &repo_check(w.seed.cli_repo), &fixture(variant)),
            "{variant}"
        );
    }
    assert!(!w.check(
        &w.alice,
        &repo_check(w.seed.widgets),
        &fixture("ed25519.pub")
    ));
    assert!(!w.check(&w.alice, &repo_check(w.seed.cli_repo), &fresh_key("never")));

    // The group of the repository, and its parent group, have it; `other` does not.
    assert!(w.check(
        &w.alice,
        "/v4/groups/1/deploy-keys/check-key",
        &fixture("ed25519.pub")
    ));
    assert!(w.check(
        &w.alice,
        "/v4/groups/2/deploy-keys/check-key",
        &fixture("ed25519.pub")
    ));
    assert!(!w.check(
        &w.root,
        "/v4/groups/3/deploy-keys/check-key",
        &fixture("ed25519.pub")
    ));

    let path = repo_check(w.seed.widgets);
    for (body, code, message) in [
        (json!({}), "CH.00100001", "key is missing."),
        (json!({"key": 5}), "CH.00100001", "key must be a string."),
        (
            json!({"key": "ssh-ed25519 AAAA"}),
            "CH.00100002",
            "Invalid deploy key: key is not a valid OpenSSH public key.",
        ),
        (
            json!({"key": ""}),
            "CH.00100002",
            "Invalid deploy key: key is blank.",
        ),
    ] {
        let res = w.send(&w.alice, "POST", &path, Some(&body));
        assert_eq!(
            v4_error(&w.contract, "POST", &path, res, 400, code),
            message,
            "{body}"
        );
    }
    // A reporter may not ask; a stranger is told nothing exists.
    let res = w.send(&w.bob, "POST", &path, Some(&json!({"key": fresh_key("x")})));
    v4_error(&w.contract, "POST", &path, res, 403, "CH.004403");
    // Permission comes before the key: even a pasted private key is not commented on.
    let path = repo_check(w.seed.secret);
    let private = json!({"key": fixture("private-pkcs8.key")});
    let res = w.send(&w.alice, "POST", &path, Some(&private));
    v4_error(&w.contract, "POST", &path, res, 404, "CH.00402000");
    let path = "/v4/groups/3/deploy-keys/check-key";
    let res = w.send(&w.alice, "POST", path, Some(&private));
    v4_error(&w.contract, "POST", path, res, 404, "CH.00402003");
}

#[test]
fn sync_to_submodules_links_with_the_same_permission_and_removal_unlinks() {
    let w = world();
    w.gw.cli(&["repo", "submodule", "add", "acme/widgets", "acme/tools/cli"]);
    w.gw.cli(&["repo", "submodule", "add", "acme/widgets", "acme/tools/cli"]);
    assert_eq!(
        w.gw.cli(&["repo", "submodule", "list", "acme/widgets"]),
        format!("{} acme/tools/cli", w.seed.cli_repo)
    );
    let key = fresh_key("sync");
    let id = w.add(&w.alice, w.seed.widgets, &key, true);
    let sync = format!("{}/{id}/submodules", v4_keys(w.seed.widgets));

    let res = w.send(&w.alice, "POST", &sync, None).expect(200);
    assert_eq!(res.body, "");
    // `can_push` of the key on the submodule, through the GitLab dialect; None if not there.
    let on_child = || {
        let res =
            w.gw.req(
                "GET",
                &format!("/api/v4/projects/{}/deploy_keys/{id}", w.seed.cli_repo),
            )
            .token(&w.seed.alice)
            .send();
        (res.status == 200).then(|| res.json()["can_push"].as_bool().unwrap())
    };
    assert_eq!(on_child(), Some(true));
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.cli_repo)), (vec![id], 1));
    // Syncing again (a second later: the same bytes in the same second are a replay) changes
    // nothing; a changed permission on the parent is carried over.
    let later = |seconds| sdk_date(OffsetDateTime::now_utc() + time::Duration::seconds(seconds));
    signed_at(&w.gw, &w.alice, "POST", &sync, None, &later(1))
        .send()
        .expect(200);
    w.gw.req(
        "PUT",
        &format!("/api/v4/projects/{}/deploy_keys/{id}", w.seed.widgets),
    )
    .token(&w.seed.alice)
    .json(&json!({"can_push": false}))
    .send()
    .expect(200);
    signed_at(&w.gw, &w.alice, "POST", &sync, None, &later(2))
        .send()
        .expect(200);
    assert_eq!(on_child(), Some(false));

    let res = w.send(&w.alice, "DELETE", &sync, None).expect(204);
    assert_eq!(res.body, "");
    assert_eq!(on_child(), None);
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)), (vec![id], 1));
    // Removing twice is harmless.
    w.send(&w.alice, "DELETE", &sync, None).expect(204);

    // A key the parent does not have.
    let other = w.add(&w.alice, w.seed.cli_repo, &fresh_key("child-only"), false);
    let path = format!("{}/{other}/submodules", v4_keys(w.seed.widgets));
    let res = w.send(&w.alice, "POST", &path, None);
    v4_error(&w.contract, "POST", &path, res, 404, "CH.00402002");
    let res = w.send(&w.alice, "DELETE", &path, None);
    v4_error(&w.contract, "DELETE", &path, res, 404, "CH.00402002");
    // A reporter on the parent.
    let res = w.send(&w.bob, "POST", &sync, None);
    v4_error(&w.contract, "POST", &sync, res, 403, "CH.004403");
}

#[test]
fn sync_is_all_or_nothing_when_a_submodule_is_not_the_callers() {
    let w = world();
    w.gw.cli(&["repo", "submodule", "add", "acme/widgets", "acme/tools/cli"]);
    w.gw.cli(&["repo", "submodule", "add", "acme/widgets", "other/secret"]);
    let id = w.add(&w.alice, w.seed.widgets, &fresh_key("partial"), false);
    let sync = format!("{}/{id}/submodules", v4_keys(w.seed.widgets));
    let res = w.send(&w.alice, "POST", &sync, None);
    v4_error(&w.contract, "POST", &sync, res, 403, "CH.004403");
    // acme/tools/cli, which alice could manage, did not get the key either.
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.cli_repo)).1, 0);
    // An admin may; then alice may not remove it from other/secret either.
    w.send(&w.root, "POST", &sync, None).expect(200);
    assert_eq!(w.list(&w.root, &v4_keys(w.seed.secret)), (vec![id], 1));
    let res = w.send(&w.alice, "DELETE", &sync, None);
    v4_error(&w.contract, "DELETE", &sync, res, 403, "CH.004403");
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.cli_repo)), (vec![id], 1));

    // Without the submodule declaration, alice's sync goes through.
    w.gw.cli(&[
        "repo",
        "submodule",
        "remove",
        "acme/widgets",
        "other/secret",
    ]);
    w.send(&w.alice, "DELETE", &sync, None).expect(204);
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.cli_repo)).1, 0);
    assert_eq!(
        w.list(&w.root, &v4_keys(w.seed.secret)).1,
        1,
        "undeclared: untouched"
    );
}

#[test]
fn submodule_cli_refuses_self_and_unknown_repositories() {
    let w = world();
    let out =
        w.gw.cli_raw(&["repo", "submodule", "add", "acme/widgets", "acme/widgets"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "keygate: a repository cannot be its own submodule"
    );
    let out =
        w.gw.cli_raw(&["repo", "submodule", "add", "acme/widgets", "no/such"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "keygate: no such repository"
    );
    assert_eq!(w.gw.cli(&["repo", "submodule", "list", "acme/widgets"]), "");
    // Deleting a child repository drops the declaration with it.
    w.gw.cli(&["repo", "submodule", "add", "acme/widgets", "other/secret"]);
    w.gw.cli(&["repo", "remove", "other/secret"]);
    assert_eq!(w.gw.cli(&["repo", "submodule", "list", "acme/widgets"]), "");
}

// ---------- authentication ----------

#[test]
fn a_bad_signature_is_apigw_0301_on_every_version() {
    let w = world();
    let list = v4_keys(w.seed.widgets);
    let add = v2_keys(w.seed.widgets);
    let wrong_sk = Creds {
        ak: w.alice.ak.clone(),
        sk: format!("{}x", w.alice.sk),
    };
    let unknown_ak = Creds {
        ak: "AAAAAAAAAAAAAAAAAAAA".into(),
        sk: w.alice.sk.clone(),
    };
    for creds in [&wrong_sk, &unknown_ak] {
        let res = w.send(creds, "GET", &list, None);
        let msg = v4_error(&w.contract, "GET", &list, res, 401, "APIGW.0301");
        assert_eq!(
            msg,
            "Incorrect IAM authentication information: verify aksk signature fail"
        );
        // API Gateway's errors are flat even where the service would envelope.
        let res = w.send(
            creds,
            "POST",
            &add,
            Some(&add_body("x", &fresh_key("x"), false)),
        );
        let body = res.expect(401).json();
        assert_eq!(body["error_code"], "APIGW.0301");
        w.contract.check(
            "/v2/repositories/{repository_id}/deploy-keys",
            "post",
            401,
            &body,
        );
    }

    let now = OffsetDateTime::now_utc();
    let minute = time::Duration::minutes(1);
    for (offset, ok) in [(-16, false), (16, false), (-14, true), (14, true)] {
        let date = sdk_date(now + minute * offset);
        let res = signed_at(&w.gw, &w.alice, "GET", &list, None, &date).send();
        assert_eq!(res.status, if ok { 200 } else { 401 }, "{offset} minutes");
    }

    // Whatever is signed may not change on the way: the body, the query, the method.
    let date = sdk_date(now);
    let body = serde_json::to_vec(&add_body("t", &fresh_key("t"), false)).unwrap();
    let signature = authorization(&w.gw, &w.alice, "POST", &add, &body, &date, &[]);
    let send = |sent: Vec<u8>| {
        w.gw.req("POST", &add)
            .header("X-Sdk-Date", &date)
            .header("Authorization", &signature)
            .raw_body("application/json", sent)
            .send()
            .status
    };
    let other_title = String::from_utf8(body.clone())
        .unwrap()
        .replace("\"key_title\":\"t\"", "\"key_title\":\"u\"");
    assert_ne!(other_title.as_bytes(), body);
    assert_eq!(send(other_title.into_bytes()), 401);
    assert_eq!(send(body), 200, "the untouched request verifies");
    let req = signed_at(
        &w.gw,
        &w.alice,
        "GET",
        &format!("{list}?limit=1"),
        None,
        &date,
    );
    assert_eq!(req.retarget("limit=1", "limit=2").send().status, 401);
    // Garbled or foreign Authorization values.
    for value in [
        "SDK-HMAC-SHA256 Access=X".to_string(),
        "Bearer kgt_0000".to_string(),
        format!(
            "SDK-HMAC-SHA256 Access={}, SignedHeaders=content-type, Signature={}",
            w.alice.ak,
            "0".repeat(64)
        ),
    ] {
        let res =
            w.gw.req("GET", &list)
                .header("X-Sdk-Date", &date)
                .header("Authorization", &value)
                .send();
        assert_eq!(
            res.expect(401).json()["error_code"],
            "APIGW.0301",
            "{value}"
        );
    }
    assert_eq!(
        w.list(&w.alice, &list).1,
        1,
        "only the untouched request added its key"
    );
}

#[test]
fn no_credentials_is_401_in_each_versions_shape() {
    let w = world();
    let list = v4_keys(w.seed.widgets);
    let res = w.gw.req("GET", &list).send();
    let msg = v4_error(&w.contract, "GET", &list, res, 401, "DEV.00000001");
    assert!(msg.contains("SDK-HMAC-SHA256"), "{msg}");
    let add = v2_keys(w.seed.widgets);
    let res =
        w.gw.req("POST", &add)
            .json(&add_body("x", &fresh_key("x"), false))
            .send();
    v2_error(&w.contract, "POST", &add, res, 401, "DEV.00000001");
    // Authentication comes before parameter checks.
    let res =
        w.gw.req("GET", "/v4/repositories/0/deploy-keys?limit=0")
            .send();
    assert_eq!(res.expect(401).json()["error_code"], "DEV.00000001");
}

#[test]
fn x_auth_token_alone_or_beside_a_signature() {
    let w = world();
    let list = v4_keys(w.seed.widgets);
    let add = v2_keys(w.seed.widgets);
    // Alone.
    w.gw.req("GET", &list)
        .header("X-Auth-Token", &w.seed.alice)
        .send()
        .expect(200);
    w.gw.req("POST", &add)
        .header("X-Auth-Token", &w.seed.alice)
        .json(&add_body("tok", &fresh_key("tok"), false))
        .send()
        .expect(200);
    let res =
        w.gw.req("GET", &list)
            .header("X-Auth-Token", "kgt_not-a-token")
            .send();
    assert_eq!(
        v4_error(&w.contract, "GET", &list, res, 401, "DEV.00000003"),
        "Authentication information expired or invalid."
    );
    let res =
        w.gw.req("POST", &add)
            .header("X-Auth-Token", "kgt_not-a-token")
            .json(&add_body("x", &fresh_key("x"), false))
            .send();
    v2_error(&w.contract, "POST", &add, res, 401, "DEV.00000003");

    // Beside a signature of the same user; both must be valid.
    signed_with_token(&w.gw, &w.alice, "GET", &list, None, &w.seed.alice)
        .send()
        .expect(200);
    let res = signed_with_token(&w.gw, &w.alice, "GET", &list, None, "kgt_not-a-token").send();
    v4_error(&w.contract, "GET", &list, res, 401, "DEV.00000003");
    let wrong_sk = Creds {
        ak: w.alice.ak.clone(),
        sk: "wrong".into(),
    };
    let res = signed_with_token(&w.gw, &wrong_sk, "GET", &list, None, &w.seed.alice).send();
    v4_error(&w.contract, "GET", &list, res, 401, "APIGW.0301");
    // A token beside a signature must be signed too, or it could be stripped to widen the call.
    let res = signed(&w.gw, &w.alice, "GET", &list, None)
        .header("X-Auth-Token", &w.seed.alice)
        .send();
    v4_error(&w.contract, "GET", &list, res, 401, "APIGW.0301");
    // Two users at once is refused even though both could read the list.
    let res = signed_with_token(&w.gw, &w.alice, "GET", &list, None, &w.seed.root).send();
    v4_error(&w.contract, "GET", &list, res, 401, "DEV.00000004");

    // A read-only token reads, and keeps a signed request of its user read-only.
    w.gw.req("GET", &list)
        .header("X-Auth-Token", &w.seed.carol)
        .send()
        .expect(200);
    let carol = access_key(&w.gw, "carol");
    let body = add_body("ro", &fresh_key("ro"), false);
    w.send(&carol, "GET", &list, None).expect(200);
    let res = signed_with_token(&w.gw, &carol, "POST", &add, Some(&body), &w.seed.carol).send();
    let msg = v2_error(&w.contract, "POST", &add, res, 403, "CH.004403");
    assert!(msg.contains("read-only"), "{msg}");
    // check-key only reads, so a read-only token may use it.
    let check = format!("{list}/check-key");
    w.gw.req("POST", &check)
        .header("X-Auth-Token", &w.seed.carol)
        .json(&json!({"key": fresh_key("c")}))
        .send()
        .expect(200);
    // The access key alone carries carol's full rights.
    w.send(&carol, "POST", &add, Some(&body)).expect(200);
}

#[test]
fn a_replayed_add_or_sync_cannot_bring_a_revoked_key_back() {
    let w = world();
    let key = fresh_key("replayed");
    let body = serde_json::to_vec(&add_body("r", &key, true)).unwrap();
    let date = sdk_date(OffsetDateTime::now_utc());
    let add = v2_keys(w.seed.widgets);
    let captured = || signed_at(&w.gw, &w.alice, "POST", &add, Some(body.clone()), &date);
    let id: i64 = captured().send().expect(200).json()["result"]["key_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // The same bytes while the key is there (a retry, say): the usual duplicate answer.
    let res = captured().send();
    v2_error(&w.contract, "POST", &add, res, 400, "CH.00402001");
    w.send(
        &w.alice,
        "DELETE",
        &format!("{}/{id}", v4_keys(w.seed.widgets)),
        None,
    )
    .expect(204);
    // The same bytes again, well inside the 15 minutes the signature stays valid: refused as a
    // used request, never as a bad signature (which would send the user hunting for a wrong SK).
    let res = captured().send();
    let msg = v2_error(&w.contract, "POST", &add, res, 409, "DEV.00000005");
    assert!(
        msg.contains("used before") && msg.contains("Sign it again"),
        "{msg}"
    );
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)), (vec![], 0));

    // A replayed sync cannot re-attach a key removed from the submodules either.
    w.gw.cli(&["repo", "submodule", "add", "acme/widgets", "acme/tools/cli"]);
    let id = w.add(&w.alice, w.seed.widgets, &fresh_key("synced"), false);
    let sync = format!("{}/{id}/submodules", v4_keys(w.seed.widgets));
    let date = sdk_date(OffsetDateTime::now_utc());
    signed_at(&w.gw, &w.alice, "POST", &sync, None, &date)
        .send()
        .expect(200);
    w.send(&w.alice, "DELETE", &sync, None).expect(204);
    let res = signed_at(&w.gw, &w.alice, "POST", &sync, None, &date).send();
    v4_error(&w.contract, "POST", &sync, res, 409, "DEV.00000005");
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.cli_repo)), (vec![], 0));
}

/// A key shared by two repositories keeps its id when it is attached again, so a captured
/// DELETE names the new link too: replayed, it must change nothing.
#[test]
fn a_replayed_delete_cannot_detach_a_key_attached_again() {
    let w = world();
    let key = fresh_key("shared");
    let id = w.add(&w.alice, w.seed.widgets, &key, false);
    assert_eq!(w.add(&w.alice, w.seed.cli_repo, &key, false), id);
    let date = sdk_date(OffsetDateTime::now_utc());
    for path in [
        format!("{}/{id}", v4_keys(w.seed.widgets)),
        format!("{}/{id}", v2_keys(w.seed.widgets)),
        format!("/v1/repositories/{}/deploy_keys/{id}", w.seed.widgets),
    ] {
        let captured = || signed_at(&w.gw, &w.alice, "DELETE", &path, None, &date);
        let first = captured().send();
        assert!(first.status == 204 || first.status == 200, "{}", first.body);
        assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)), (vec![], 0));
        // Attached again a moment later, with a new signature: the same id.
        signed(
            &w.gw,
            &w.alice,
            "POST",
            &v2_keys(w.seed.widgets),
            Some(&add_body("again", &key, false)),
        )
        .send()
        .expect(200);
        assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)), (vec![id], 1));
        let res = captured().send();
        if path.starts_with("/v4") {
            v4_error(&w.contract, "DELETE", &path, res, 409, "DEV.00000005");
        } else {
            v2_error(&w.contract, "DELETE", &path, res, 409, "DEV.00000005");
        }
        assert_eq!(
            w.list(&w.alice, &v4_keys(w.seed.widgets)),
            (vec![id], 1),
            "{path}"
        );
        // Let the next signature differ from the ones used here.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }

    // Removing from submodules, replayed after a new sync, leaves the submodules alone.
    w.gw.cli(&["repo", "submodule", "add", "acme/widgets", "acme/tools/cli"]);
    let unsync = format!("{}/{id}/submodules", v4_keys(w.seed.widgets));
    let date = sdk_date(OffsetDateTime::now_utc());
    signed_at(&w.gw, &w.alice, "DELETE", &unsync, None, &date)
        .send()
        .expect(204);
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.cli_repo)), (vec![], 0));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    w.send(&w.alice, "POST", &unsync, None).expect(200);
    let res = signed_at(&w.gw, &w.alice, "DELETE", &unsync, None, &date).send();
    v4_error(&w.contract, "DELETE", &unsync, res, 409, "DEV.00000005");
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.cli_repo)), (vec![id], 1));
}

/// The verifier reads the signature's hex in either case; a replay that only re-spells it is
/// still the same request and must change nothing.
#[test]
fn a_replay_with_the_signature_in_another_case_changes_nothing() {
    let w = world();
    let key = fresh_key("respelled");
    let add = v2_keys(w.seed.widgets);
    let body = serde_json::to_vec(&add_body("r", &key, false)).unwrap();
    let date = sdk_date(OffsetDateTime::now_utc());
    let auth = authorization(&w.gw, &w.alice, "POST", &add, &body, &date, &[]);
    let respelled = |auth: &str, upper: bool| -> String {
        let (head, signature) = auth.rsplit_once("Signature=").unwrap();
        let signature: String = signature
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if upper || i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        assert_ne!(signature, auth.rsplit_once("Signature=").unwrap().1);
        format!("{head}Signature={signature}")
    };
    let send = |method: &str, path: &str, auth: &str, body: Option<Vec<u8>>| {
        let req =
            w.gw.req(method, path)
                .header("X-Sdk-Date", &date)
                .header("Authorization", auth);
        match body {
            Some(body) => req.raw_body("application/json", body),
            None => req.header("Content-Type", "application/json"),
        }
        .send()
    };
    let id: i64 = send("POST", &add, &auth, Some(body.clone()))
        .expect(200)
        .json()["result"]["key_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    w.send(
        &w.alice,
        "DELETE",
        &format!("{}/{id}", v4_keys(w.seed.widgets)),
        None,
    )
    .expect(204);
    for upper in [true, false] {
        let res = send("POST", &add, &respelled(&auth, upper), Some(body.clone()));
        v2_error(&w.contract, "POST", &add, res, 409, "DEV.00000005");
    }
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)), (vec![], 0));

    // The same for a DELETE replayed after the key was attached again (shared with another
    // repository, the key keeps its id).
    let id = w.add(&w.alice, w.seed.cli_repo, &key, false);
    assert_eq!(w.add(&w.alice, w.seed.widgets, &key, false), id);
    let path = format!("{}/{id}", v4_keys(w.seed.widgets));
    let auth = authorization(&w.gw, &w.alice, "DELETE", &path, b"", &date, &[]);
    send("DELETE", &path, &auth, None).expect(204);
    assert_eq!(w.add(&w.alice, w.seed.widgets, &key, false), id);
    for upper in [true, false] {
        let res = send("DELETE", &path, &respelled(&auth, upper), None);
        v4_error(&w.contract, "DELETE", &path, res, 409, "DEV.00000005");
    }
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)), (vec![id], 1));
}

/// A refused request is answered, so it is used up: replayed once the state has changed, a
/// DELETE that found nothing must not detach what was attached since.
#[test]
fn a_refused_signed_request_cannot_succeed_when_replayed_later() {
    let w = world();
    let key = fresh_key("later");
    let id = w.add(&w.alice, w.seed.cli_repo, &key, false);
    let path = format!("{}/{id}", v4_keys(w.seed.widgets));
    let date = sdk_date(OffsetDateTime::now_utc());
    let captured = || signed_at(&w.gw, &w.alice, "DELETE", &path, None, &date);
    let res = captured().send();
    v4_error(&w.contract, "DELETE", &path, res, 404, "CH.00402002");
    assert_eq!(w.add(&w.alice, w.seed.widgets, &key, false), id);
    let res = captured().send();
    v4_error(&w.contract, "DELETE", &path, res, 409, "DEV.00000005");
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)), (vec![id], 1));
}

/// A change the store could not make (503) used nothing up: the client's retry of the very
/// same bytes, once the database is free, is served.
#[test]
fn a_signed_change_answered_busy_can_be_retried_with_the_same_bytes() {
    if common::sqlite_only("another process holding the write lock") {
        return;
    }
    let w = world();
    let body = serde_json::to_vec(&add_body("busy", &fresh_key("busy"), false)).unwrap();
    let add = v2_keys(w.seed.widgets);
    let date = sdk_date(OffsetDateTime::now_utc());
    let captured = || signed_at(&w.gw, &w.alice, "POST", &add, Some(body.clone()), &date);
    // Another process holds the write lock for longer than keygate waits for it.
    let blocker = rusqlite::Connection::open(&w.gw.db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let res = captured().send();
    blocker.execute_batch("ROLLBACK").unwrap();
    let res = res.expect(503);
    assert_eq!(res.header("retry-after"), Some("1"));
    assert_eq!(res.json()["error"]["code"], "CH.00000503");
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)), (vec![], 0));
    let res = captured().send().expect(200);
    let id: i64 = res.json()["result"]["key_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)), (vec![id], 1));
}

#[test]
fn unsigned_payloads_with_a_body_are_refused() {
    let w = world();
    let add = v2_keys(w.seed.widgets);
    let body = serde_json::to_vec(&add_body("u", &fresh_key("u"), false)).unwrap();
    let date = sdk_date(OffsetDateTime::now_utc());
    // Signed over an empty body with UNSIGNED-PAYLOAD, then sent with a body.
    let res = signed_at(&w.gw, &w.alice, "POST", &add, None, &date)
        .header("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD")
        .raw_body("application/json", body)
        .send();
    v4_error(&w.contract, "POST", &add, res, 401, "APIGW.0301");
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.widgets)), (vec![], 0));
}

#[test]
fn read_only_tokens_cannot_change_anything_through_codearts() {
    let w = world();
    let id = w.add(&w.alice, w.seed.widgets, &fresh_key("keep"), false);
    w.gw.cli(&["repo", "submodule", "add", "acme/widgets", "acme/tools/cli"]);
    let widgets = w.seed.widgets;
    let writes = [
        (
            "POST",
            v2_keys(widgets),
            Some(add_body("x", &fresh_key("x"), false)),
        ),
        (
            "POST",
            format!("/v1/repositories/{widgets}/deploy_keys"),
            Some(add_body("y", &fresh_key("y"), false)),
        ),
        ("DELETE", format!("{}/{id}", v2_keys(widgets)), None),
        (
            "DELETE",
            format!("/v1/repositories/{widgets}/deploy_keys/{id}"),
            None,
        ),
        ("DELETE", format!("{}/{id}", v4_keys(widgets)), None),
        (
            "POST",
            format!("{}/{id}/submodules", v4_keys(widgets)),
            None,
        ),
        (
            "DELETE",
            format!("{}/{id}/submodules", v4_keys(widgets)),
            None,
        ),
    ];
    for (method, path, body) in writes {
        let res =
            w.gw.req(method, &path)
                .header("X-Auth-Token", &w.seed.carol)
                .json(&body.unwrap_or(json!({})))
                .send();
        assert_eq!(res.status, 403, "{method} {path}: {}", res.body);
        assert!(
            res.body.contains("CH.004403"),
            "{method} {path}: {}",
            res.body
        );
    }
    assert_eq!(w.list(&w.alice, &v4_keys(widgets)), (vec![id], 1));
    assert_eq!(w.list(&w.alice, &v4_keys(w.seed.cli_repo)), (vec![], 0));
}

#[test]
fn a_bad_body_is_judged_only_after_the_caller_may_manage_the_repository() {
    let w = world();
    let junk = json!({"nonsense": 1});
    // A reporter: 403, not the 400 the body deserves.
    let add = v2_keys(w.seed.widgets);
    let res = w.send(&w.bob, "POST", &add, Some(&junk));
    v2_error(&w.contract, "POST", &add, res, 403, "CH.004403");
    // A repository the caller cannot see: 404.
    let add = v2_keys(w.seed.secret);
    let res = w.send(&w.alice, "POST", &add, Some(&junk));
    v2_error(&w.contract, "POST", &add, res, 404, "CH.00402000");
    // The caller may manage it: now the body.
    let add = v2_keys(w.seed.widgets);
    let res = w.send(&w.alice, "POST", &add, Some(&junk));
    v2_error(&w.contract, "POST", &add, res, 400, "CH.00100001");
}

// ---------- permissions, ids and routes ----------

#[test]
fn reporters_are_forbidden_and_strangers_see_nothing() {
    let w = world();
    let id = w.add(&w.alice, w.seed.widgets, &fresh_key("perm"), false);
    let widgets = w.seed.widgets;
    let routes = [
        ("GET", v4_keys(widgets), None),
        ("DELETE", format!("{}/{id}", v4_keys(widgets)), None),
        (
            "POST",
            format!("{}/{id}/submodules", v4_keys(widgets)),
            None,
        ),
        (
            "DELETE",
            format!("{}/{id}/submodules", v4_keys(widgets)),
            None,
        ),
    ];
    for (method, path, body) in &routes {
        let res = w.send(&w.bob, method, path, body.as_ref());
        v4_error(&w.contract, method, path, res, 403, "CH.004403");
    }
    let add = v2_keys(widgets);
    let res = w.send(
        &w.bob,
        "POST",
        &add,
        Some(&add_body("b", &fresh_key("b"), false)),
    );
    let msg = v2_error(&w.contract, "POST", &add, res, 403, "CH.004403");
    assert_eq!(
        msg,
        "Insufficient permissions. Apply for the required permissions and try again."
    );
    let del = format!("/v1/repositories/{widgets}/deploy_keys/{id}");
    let res = w.send(&w.bob, "DELETE", &del, None);
    v2_error(&w.contract, "DELETE", &del, res, 403, "CH.004403");

    // other/secret is invisible to alice: 404, the same as a repository that does not exist.
    for repo in [w.seed.secret, 999_999] {
        let path = v4_keys(repo);
        let res = w.send(&w.alice, "GET", &path, None);
        assert_eq!(
            v4_error(&w.contract, "GET", &path, res, 404, "CH.00402000"),
            "The repository does not exist. Check and try again."
        );
        let path = v2_keys(repo);
        let res = w.send(
            &w.alice,
            "POST",
            &path,
            Some(&add_body("s", &fresh_key("s"), false)),
        );
        v2_error(&w.contract, "POST", &path, res, 404, "CH.00402000");
        let path = format!("{}/{id}", v2_keys(repo));
        let res = w.send(&w.alice, "DELETE", &path, None);
        v2_error(&w.contract, "DELETE", &path, res, 404, "CH.00402000");
    }
    // The admin may do everything.
    w.send(&w.root, "GET", &v4_keys(w.seed.secret), None)
        .expect(200);
    w.send(
        &w.root,
        "DELETE",
        &format!("{}/{id}", v4_keys(widgets)),
        None,
    )
    .expect(204);
}

#[test]
fn repository_ids_out_of_range_are_400() {
    let w = world();
    for bad in ["0", "2147483648", "acme%2Fwidgets", "-1"] {
        let path = format!("/v4/repositories/{bad}/deploy-keys");
        let res = w.send(&w.alice, "GET", &path, None);
        assert_eq!(
            v4_error(&w.contract, "GET", &path, res, 400, "CH.00100001"),
            "repository_id must be an integer from 1 to 2147483647."
        );
        let path = format!("/v2/repositories/{bad}/deploy-keys");
        let res = w.send(
            &w.alice,
            "POST",
            &path,
            Some(&add_body("x", &fresh_key("x"), false)),
        );
        v2_error(&w.contract, "POST", &path, res, 400, "CH.00100001");
    }
    let path = format!("/v2/repositories/{}/deploy-keys/x", w.seed.widgets);
    let res = w.send(&w.alice, "DELETE", &path, None);
    v2_error(&w.contract, "DELETE", &path, res, 400, "CH.00100001");
}

#[test]
fn unknown_apis_are_apigw_0101_without_authentication() {
    let w = world();
    for (method, path) in [
        ("GET", "/v4/nothing"),
        ("GET", "/v2/repositories/1/deploy-keys"),
        ("PUT", "/v4/repositories/1/deploy-keys/1"),
        ("GET", "/v4/repositories/1/deploy-keys/1"),
        ("DELETE", "/v4/repositories/1/deploy-keys/check-key"),
        (
            "POST",
            "/v4/projects/0123456789abcdef0123456789abcdef/deploy-keys",
        ),
        ("GET", "/v1/repositories/1/deploy_keys"),
        ("GET", "/v3/projects"),
    ] {
        let res = w.gw.req(method, path).send();
        assert!(res.header("x-request-id").is_some());
        let body = res.expect(404).json();
        if path.starts_with("/v3") {
            // Outside the CodeArts prefixes: the gateway's generic 404.
            assert_ne!(body["error_code"], "APIGW.0101");
            continue;
        }
        assert_eq!(body["error_code"], "APIGW.0101", "{method} {path}: {body}");
        assert_eq!(
            body["error_msg"],
            "The API does not exist or has not been published in the environment."
        );
    }
}

#[test]
fn the_contract_is_served() {
    let w = world();
    let res = w.gw.req("GET", "/v4/openapi.yaml").send().expect(200);
    assert_eq!(res.header("content-type"), Some("application/yaml"));
    let served: Value = serde_norway::from_str(&res.body).unwrap();
    assert_eq!(&served, w.contract.doc());
    assert_eq!(served["openapi"], "3.1.0");
}

/// Every error code the dialect can send, the contract's catalogue and the docs' table agree.
#[test]
fn the_error_catalogue_is_the_same_in_code_contract_and_docs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let codes_in = |text: &str| -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for prefix in ["\"CH.", "\"APIGW.", "\"DEV.", "`CH.", "`APIGW.", "`DEV."] {
            for (at, _) in text.match_indices(prefix) {
                let code: String = text[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                    .collect();
                // `APIGW.*` in prose is a family, not a code.
                if code.ends_with(|c: char| c.is_ascii_digit()) {
                    found.insert(code);
                }
            }
        }
        found
    };
    let mut source = String::new();
    for file in std::fs::read_dir(root.join("src/dialect/codearts")).unwrap() {
        source.push_str(&std::fs::read_to_string(file.unwrap().path()).unwrap());
    }
    let in_code = codes_in(&source);
    let contract = Contract::load("codearts.yaml");
    let in_contract: BTreeSet<String> =
        contract.doc()["components"]["schemas"]["ErrorCode"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["const"].as_str().unwrap().to_string())
            .collect();
    let docs = std::fs::read_to_string(root.join("docs/codearts.md")).unwrap();
    let in_docs = codes_in(&docs);
    assert_eq!(in_code.len(), 23, "{in_code:?}");
    assert_eq!(in_code, in_contract);
    assert_eq!(in_code, in_docs);
}
