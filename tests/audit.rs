//! The audit trail through the real surfaces: every kind of change leaves one record in its own
//! transaction (a refused one none), with actor, origin and target, read back with `keygate
//! audit list` and GitLab's audit events API.

mod common;

use common::{Gateway, access_key, fresh_key, signed};
use serde_json::{Value, json};

/// Every record, oldest first, as `keygate audit list --json` prints them.
fn events(gw: &Gateway, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "list", "--json"];
    all.extend_from_slice(args);
    gw.cli(&all)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn actions(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

/// The records made after the first `skip`.
fn since(gw: &Gateway, skip: usize) -> Vec<Value> {
    events(gw, &[]).split_off(skip)
}

fn gl_keys(repo: i64) -> String {
    format!("/api/v4/projects/{repo}/deploy_keys")
}

#[test]
fn the_cli_records_every_operator_change_with_the_os_user() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let all = events(&gw, &[]);
    let kinds = actions(&all);
    assert_eq!(kinds.iter().filter(|a| *a == "user.add").count(), 4);
    assert_eq!(kinds.iter().filter(|a| *a == "token.issue").count(), 4);
    assert_eq!(kinds.iter().filter(|a| *a == "repository.add").count(), 3);
    assert_eq!(kinds.iter().filter(|a| *a == "role.grant").count(), 4);
    let grant = all.iter().find(|e| e["action"] == "role.grant").unwrap();
    assert_eq!(grant["actor"]["kind"], "cli");
    assert_eq!(grant["dialect"], "cli");
    let whoami = std::process::Command::new("whoami").output().unwrap();
    assert_eq!(
        grant["actor"]["name"],
        String::from_utf8_lossy(&whoami.stdout).trim(),
        "the OS user running the command"
    );
    assert_eq!(grant["repo_path"], "acme/widgets");
    assert_eq!(grant["repo_id"], seed.widgets);
    assert_eq!(grant["user_name"], "alice");
    assert_eq!(grant["details"]["after"]["role"], "maintainer");
    assert_eq!(grant["details"]["before"]["role"], Value::Null);

    let n = all.len();
    gw.cli(&[
        "repo",
        "grant",
        "acme/widgets",
        "bob",
        "--role",
        "maintainer",
    ]);
    let tokens = gw.cli(&["token", "list", "bob"]);
    let token_id = tokens.split(' ').next().unwrap().to_string();
    gw.cli(&["token", "revoke", &token_id]);
    let creds = access_key(&gw, "bob");
    gw.cli(&["access-key", "revoke", &creds.ak]);
    gw.cli(&["repo", "revoke", "acme/widgets", "bob"]);
    gw.cli(&["user", "add", "dave"]);
    gw.cli(&["user", "remove", "dave"]);
    gw.cli(&["repo", "add", "gone/repo"]);
    gw.cli(&["repo", "remove", "gone/repo"]);
    let new = since(&gw, n);
    assert_eq!(
        actions(&new),
        [
            "role.grant",
            "token.revoke",
            "access_key.issue",
            "access_key.revoke",
            "role.revoke",
            "user.add",
            "user.remove",
            "repository.add",
            "repository.remove"
        ]
    );
    assert_eq!(new[0]["details"]["before"]["role"], "reporter");
    assert_eq!(new[0]["details"]["after"]["role"], "maintainer");
    assert_eq!(
        new[1]["details"]["token_id"],
        token_id.parse::<i64>().unwrap()
    );
    assert_eq!(new[1]["user_name"], "bob");
    assert_eq!(new[2]["details"]["access_key"], creds.ak);
    assert_eq!(new[4]["details"]["before"]["role"], "maintainer");
    // The removed repository's records still name it, and `--repo` finds them by that path.
    let gone = events(&gw, &["--repo", "GONE/repo"]);
    assert_eq!(actions(&gone), ["repository.add", "repository.remove"]);

    // Changes that change nothing record nothing; refused ones neither.
    let n = events(&gw, &[]).len();
    gw.cli(&["repo", "revoke", "acme/widgets", "bob"]);
    gw.cli(&[
        "repo",
        "grant",
        "acme/widgets",
        "alice",
        "--role",
        "maintainer",
    ]);
    assert!(!gw.cli_raw(&["user", "add", "alice"]).status.success());
    assert!(!gw.cli_raw(&["token", "revoke", "99999"]).status.success());
    assert!(
        !gw.cli_raw(&["repo", "add", "acme/widgets"])
            .status
            .success()
    );
    assert_eq!(events(&gw, &[]).len(), n, "{:?}", since(&gw, n));
}

#[test]
fn deploy_key_changes_record_actor_origin_target_and_before_after() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let n = events(&gw, &[]).len();
    let key = fresh_key("ci@host");
    let res = gw
        .req("POST", &gl_keys(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"title": "ci", "key": key, "can_push": false}))
        .send()
        .expect(201);
    let request_id = res.header("x-request-id").unwrap().to_string();
    let created = res.json();
    let id = created["id"].as_i64().unwrap();
    let fingerprint = created["fingerprint_sha256"].as_str().unwrap().to_string();
    let new = since(&gw, n);
    assert_eq!(actions(&new), ["deploy_key.create"]);
    let e = &new[0];
    assert_eq!(e["actor"]["kind"], "user");
    assert_eq!(e["actor"]["name"], "alice");
    assert_eq!(e["dialect"], "gitlab");
    assert_eq!(e["method"], "POST");
    assert_eq!(e["route"], "/api/v4/projects/{id}/deploy_keys");
    assert_eq!(e["request_id"], request_id.as_str());
    assert_eq!(e["client_addr"], "127.0.0.1");
    assert_eq!(e["repo_id"], seed.widgets);
    assert_eq!(e["repo_path"], "acme/widgets");
    assert_eq!(e["key_id"], id);
    assert_eq!(e["fingerprint"], fingerprint.as_str());
    assert_eq!(e["details"]["after"]["title"], "ci");

    // Join (the same key on another repository of hers), update, enable, delete.
    gw.req("POST", &gl_keys(seed.cli_repo))
        .token(&seed.alice)
        .json(&json!({"title": "ci", "key": key}))
        .send()
        .expect(201);
    gw.req("PUT", &format!("{}/{id}", gl_keys(seed.widgets)))
        .token(&seed.alice)
        .json(&json!({"can_push": true}))
        .send()
        .expect(200);
    gw.req("DELETE", &format!("{}/{id}", gl_keys(seed.cli_repo)))
        .token(&seed.alice)
        .send()
        .expect(204);
    gw.req("POST", &format!("{}/{id}/enable", gl_keys(seed.cli_repo)))
        .token(&seed.alice)
        .send()
        .expect(201);
    let new = since(&gw, n + 1);
    assert_eq!(
        actions(&new),
        [
            "deploy_key.join",
            "deploy_key.update",
            "deploy_key.delete",
            "deploy_key.enable"
        ]
    );
    assert_eq!(new[0]["repo_path"], "acme/tools/cli");
    assert_eq!(new[1]["details"]["before"]["can_push"], false);
    assert_eq!(new[1]["details"]["after"]["can_push"], true);
    assert_eq!(
        new[1]["route"],
        "/api/v4/projects/{id}/deploy_keys/{key_id}"
    );
    assert_eq!(new[1]["method"], "PUT");
    assert_eq!(new[2]["details"]["key_deleted"], false);
    assert_eq!(
        new[3]["route"],
        "/api/v4/projects/{id}/deploy_keys/{key_id}/enable"
    );
    for e in &new {
        assert_eq!(e["key_id"], id);
        assert_eq!(e["fingerprint"], fingerprint.as_str());
    }

    // An update that changes nothing, and a GitHub create, delete.
    let n = events(&gw, &[]).len();
    gw.req("PUT", &format!("{}/{id}", gl_keys(seed.widgets)))
        .token(&seed.alice)
        .json(&json!({"can_push": true}))
        .send()
        .expect(200);
    assert_eq!(events(&gw, &[]).len(), n, "no change, no record");
    let other = fresh_key("gh");
    let res = gw
        .req("POST", "/repos/acme/widgets/keys")
        .header("Authorization", &format!("token {}", seed.alice))
        .json(&json!({"title": "gh", "key": other}))
        .send()
        .expect(201);
    let gh_id = res.json()["id"].as_i64().unwrap();
    gw.req("DELETE", &format!("/repos/acme/widgets/keys/{gh_id}"))
        .header("Authorization", &format!("token {}", seed.alice))
        .send()
        .expect(204);
    let new = since(&gw, n);
    assert_eq!(actions(&new), ["deploy_key.create", "deploy_key.delete"]);
    assert_eq!(new[0]["dialect"], "github");
    assert_eq!(new[0]["route"], "/repos/{owner}/{repo}/keys");
    assert_eq!(new[1]["details"]["key_deleted"], true);
}

#[test]
fn a_refused_change_leaves_no_record() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let key = fresh_key("a");
    gw.req("POST", &gl_keys(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"title": "a", "key": key}))
        .send()
        .expect(201);
    let n = events(&gw, &[]).len();
    // A conflict (root's key elsewhere, alice may not join it), a bad title, a reporter, a
    // read-only token, a missing key: none changes anything, none is recorded.
    let root_key = fresh_key("root");
    gw.req("POST", &gl_keys(seed.secret))
        .token(&seed.root)
        .json(&json!({"title": "r", "key": root_key}))
        .send()
        .expect(201);
    let n = n + 1;
    gw.req("POST", &gl_keys(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"title": "r", "key": root_key}))
        .send()
        .expect(400);
    gw.req("POST", &gl_keys(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"title": "bad\u{1b}[31m", "key": fresh_key("b")}))
        .send()
        .expect(400);
    gw.req("POST", &gl_keys(seed.widgets))
        .token(&seed.bob)
        .json(&json!({"title": "b", "key": fresh_key("b")}))
        .send()
        .expect(403);
    gw.req("POST", &gl_keys(seed.widgets))
        .token(&seed.carol)
        .json(&json!({"title": "c", "key": fresh_key("c")}))
        .send()
        .expect(403);
    gw.req("DELETE", &format!("{}/99999", gl_keys(seed.widgets)))
        .token(&seed.alice)
        .send()
        .expect(404);
    // CodeArts: the label is judged after the link is made; refusing it rolls back both.
    gw.req(
        "POST",
        &format!("/v2/repositories/{}/deploy-keys", seed.widgets),
    )
    .header("X-Auth-Token", &seed.alice)
    .json(
        &json!({"key_title": "x", "key": fresh_key("x"), "can_push": false,
                      "application": "bad\u{7}"}),
    )
    .send()
    .expect(400);
    assert_eq!(events(&gw, &[]).len(), n, "{:?}", since(&gw, n));
}

#[test]
fn submodule_sync_and_unsync_are_recorded_per_submodule_and_a_replay_records_nothing() {
    let gw = Gateway::start();
    let seed = gw.seed();
    gw.cli(&["repo", "submodule", "add", "acme/widgets", "acme/tools/cli"]);
    let creds = access_key(&gw, "alice");
    let created = gw
        .req("POST", &gl_keys(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"title": "s", "key": fresh_key("s"), "can_push": true}))
        .send()
        .expect(201)
        .json();
    let id = created["id"].as_i64().unwrap();
    let n = events(&gw, &[]).len();
    let path = format!(
        "/v4/repositories/{}/deploy-keys/{id}/submodules",
        seed.widgets
    );
    let sync = signed(&gw, &creds, "POST", &path, None);
    let replay = signed(&gw, &creds, "POST", &path, None);
    sync.send().expect(200);
    let new = since(&gw, n);
    assert_eq!(actions(&new), ["deploy_key.sync"]);
    assert_eq!(new[0]["repo_path"], "acme/tools/cli");
    assert_eq!(new[0]["details"]["parent"], "acme/widgets");
    assert_eq!(new[0]["details"]["after"]["can_push"], true);
    assert_eq!(new[0]["dialect"], "codearts");
    assert_eq!(new[0]["key_id"], id);
    // The very same signed bytes again: refused, and nothing recorded.
    assert_ne!(replay.send().status, 200);
    assert_eq!(events(&gw, &[]).len(), n + 1);
    gw.req("DELETE", &path)
        .header("X-Auth-Token", &seed.alice)
        .send()
        .expect(204);
    let new = since(&gw, n + 1);
    assert_eq!(actions(&new), ["deploy_key.unsync"]);
    assert_eq!(new[0]["details"]["before"]["can_push"], true);
    assert_eq!(new[0]["repo_path"], "acme/tools/cli");
}

#[test]
fn no_record_holds_a_token_a_secret_key_or_key_material() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let creds = access_key(&gw, "alice");
    let key = fresh_key("m@host");
    let material = key.split(' ').nth(1).unwrap().to_string();
    let created = gw
        .req("POST", &gl_keys(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"title": "m", "key": key}))
        .send()
        .expect(201)
        .json();
    let instance_key = fresh_key("instance");
    gw.req("POST", "/api/v4/deploy_keys")
        .token(&seed.root)
        .json(&json!({"title": "i", "key": instance_key}))
        .send()
        .expect(201);
    gw.cli(&["access-key", "revoke", &creds.ak]);
    let text = gw.cli(&["audit", "list", "--json"]);
    let plain = gw.cli(&["audit", "list"]);
    for secret in [
        seed.root.as_str(),
        seed.alice.as_str(),
        seed.bob.as_str(),
        seed.carol.as_str(),
        creds.sk.as_str(),
        material.as_str(),
        instance_key.split(' ').nth(1).unwrap(),
    ] {
        assert!(!text.contains(secret), "a secret in the audit trail");
        assert!(!plain.contains(secret), "a secret in the audit trail");
    }
    let fingerprint = created["fingerprint_sha256"].as_str().unwrap();
    assert!(text.contains(fingerprint) && plain.contains(fingerprint));
    assert!(text.contains(&creds.ak), "the AK names the pair");
}

#[test]
fn audit_list_filters_by_repository_and_date_and_prints_lines() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let all = events(&gw, &[]);
    let widgets = events(&gw, &["--repo", "acme/widgets"]);
    assert!(!widgets.is_empty());
    assert!(widgets.iter().all(|e| e["repo_path"] == "acme/widgets"));
    assert_eq!(widgets[0]["action"], "repository.add");
    assert_eq!(widgets[0]["repo_id"], seed.widgets);
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert_eq!(events(&gw, &["--since", "2999-01-01"]).len(), 0);
    assert_eq!(events(&gw, &["--since", "2000-01-01"]).len(), all.len());
    let last = all.last().unwrap()["created_at"]
        .as_str()
        .unwrap()
        .to_string();
    let from_last = events(&gw, &["--since", &last]);
    assert!(!from_last.is_empty() && from_last.len() < all.len());
    let plain = gw.cli(&["audit", "list", "--repo", "acme/tools/cli"]);
    let first = plain.lines().next().unwrap();
    let fields: Vec<&str> = first.split(' ').collect();
    assert!(fields[0].ends_with('Z'), "{first}");
    assert!(fields[1].starts_with("cli:"), "{first}");
    assert_eq!(fields[2], "repository.add");
    assert_eq!(fields[3], "acme/tools/cli");
    let bad = gw.cli_raw(&["audit", "list", "--since", "yesterday"]);
    assert!(!bad.status.success());
}

#[test]
fn retention_prunes_old_events_and_records_the_pruning() {
    let gw = Gateway::start();
    gw.seed();
    let before = events(&gw, &[]).len();
    assert!(before > 10);
    // Keep a millisecond: everything from before the restart is older than that.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let gw = gw.restart_with(|s| s.audit_retention = Some(std::time::Duration::from_millis(1)));
    let mut left = events(&gw, &[]);
    for _ in 0..200 {
        if !left.is_empty() && left.len() < before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
        left = events(&gw, &[]);
    }
    assert_eq!(actions(&left), ["audit.prune"]);
    assert_eq!(left[0]["details"]["count"], before as i64);
    assert_eq!(left[0]["actor"]["kind"], "system");
    assert!(left[0]["details"]["cutoff"].as_i64().unwrap() > 0);
}

#[test]
fn gitlab_audit_events_api_with_permissions_dates_and_pages() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = common::Contract::load("gitlab.yaml");
    let created = gw
        .req("POST", &gl_keys(seed.widgets))
        .token(&seed.alice)
        .json(&json!({"title": "api", "key": fresh_key("api")}))
        .send()
        .expect(201);
    let key_id = created.json()["id"].as_i64().unwrap();

    // Instance list: admins only, newest first, GitLab's pagination.
    gw.req("GET", "/api/v4/audit_events").send().expect(401);
    let denied = gw
        .req("GET", "/api/v4/audit_events")
        .token(&seed.alice)
        .send()
        .expect(403);
    assert_eq!(denied.json()["message"], "403 Forbidden");
    let all = gw
        .req("GET", "/api/v4/audit_events?per_page=5")
        .token(&seed.root)
        .send()
        .expect(200);
    contract.check("/audit_events", "get", 200, &all.json());
    let total: usize = all.header("x-total").unwrap().parse().unwrap();
    assert_eq!(total, events(&gw, &[]).len());
    assert_eq!(all.header("x-per-page"), Some("5"));
    assert!(common::links(all.header("link").unwrap()).contains_key("next"));
    let newest = &all.json()[0];
    assert_eq!(newest["event_name"], "deploy_key.create");
    assert_eq!(newest["entity_type"], "Project");
    assert_eq!(newest["entity_id"], seed.widgets);
    assert_eq!(newest["details"]["target_type"], "DeployKey");
    assert_eq!(newest["details"]["target_id"], key_id);
    assert_eq!(newest["details"]["author_name"], "alice");
    assert_eq!(newest["details"]["ip_address"], "127.0.0.1");
    assert_eq!(newest["details"]["entity_path"], "acme/widgets");
    let page2 = gw
        .req("GET", "/api/v4/audit_events?per_page=5&page=2")
        .token(&seed.root)
        .send()
        .expect(200)
        .json();
    assert!(page2[0]["id"].as_i64() < all.json()[4]["id"].as_i64());

    // One event by id.
    let id = newest["id"].as_i64().unwrap();
    let one = gw
        .req("GET", &format!("/api/v4/audit_events/{id}"))
        .token(&seed.root)
        .send()
        .expect(200);
    contract.check("/audit_events/{event_id}", "get", 200, &one.json());
    assert_eq!(&one.json(), newest);
    gw.req("GET", "/api/v4/audit_events/999999")
        .token(&seed.root)
        .send()
        .expect(404);

    // Dates: inclusive bounds, bad dates 400 in GitLab's shape.
    let future = gw
        .req(
            "GET",
            "/api/v4/audit_events?created_after=2999-01-01T00:00:00Z",
        )
        .token(&seed.root)
        .send()
        .expect(200);
    assert_eq!(future.json().as_array().unwrap().len(), 0);
    assert_eq!(future.header("x-total"), Some("0"));
    let past = gw
        .req("GET", "/api/v4/audit_events?created_before=2000-01-01")
        .token(&seed.root)
        .send()
        .expect(200);
    assert_eq!(past.json().as_array().unwrap().len(), 0);
    let at = newest["created_at"].as_str().unwrap();
    let exact = gw
        .req(
            "GET",
            &format!("/api/v4/audit_events?created_after={at}&created_before={at}"),
        )
        .token(&seed.root)
        .send()
        .expect(200)
        .json();
    assert!(exact.as_array().unwrap().iter().any(|e| e["id"] == id));
    let bad = gw
        .req("GET", "/api/v4/audit_events?created_after=yesterday")
        .token(&seed.root)
        .send()
        .expect(400);
    contract.check("/audit_events", "get", 400, &bad.json());
    assert_eq!(bad.json()["error"], "created_after is invalid");

    // Project list: maintainers; a reporter is forbidden, a stranger finds nothing.
    let project = format!("/api/v4/projects/{}/audit_events", seed.widgets);
    let mine = gw
        .req("GET", &project)
        .token(&seed.alice)
        .send()
        .expect(200);
    contract.check("/projects/{id}/audit_events", "get", 200, &mine.json());
    let mine = mine.json();
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|e| e["entity_id"] == seed.widgets)
    );
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_name"] == "repository.add")
    );
    gw.req("GET", &project).token(&seed.bob).send().expect(403);
    gw.req(
        "GET",
        &format!("/api/v4/projects/{}/audit_events", seed.secret),
    )
    .token(&seed.alice)
    .send()
    .expect(404);
    gw.req("GET", &format!("{project}/{id}"))
        .token(&seed.alice)
        .send()
        .expect(200);
    let elsewhere = mine.as_array().unwrap().len();
    assert!(elsewhere > 0);
    let secret_event = events(&gw, &["--repo", "other/secret"])[0]["id"]
        .as_i64()
        .unwrap();
    gw.req("GET", &format!("{project}/{secret_event}"))
        .token(&seed.alice)
        .send()
        .expect(404);

    // Group list: what the caller maintains under the group (all of it for an admin).
    let acme = gw.cli(&["group", "list"]);
    let acme_id = acme
        .lines()
        .find(|l| l.ends_with(" acme"))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    let group = format!("/api/v4/groups/{acme_id}/audit_events?per_page=100");
    let seen = gw.req("GET", &group).token(&seed.alice).send().expect(200);
    contract.check("/groups/{id}/audit_events", "get", 200, &seen.json());
    let paths: Vec<String> = seen
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["entity_path"].as_str().unwrap().to_string())
        .collect();
    assert!(paths.contains(&"acme/widgets".to_string()));
    assert!(paths.contains(&"acme/tools/cli".to_string()));
    assert!(paths.iter().all(|p| p.starts_with("acme/")));
    gw.req("GET", &group).token(&seed.bob).send().expect(403);
    gw.req("GET", "/api/v4/groups/99999/audit_events")
        .token(&seed.root)
        .send()
        .expect(404);
}

/// `:id` of the group routes is GitLab's either-or: the numeric id or the URL-encoded full path
/// (any case), and a group that is not there is GitLab's `404 Group Not Found`.
#[test]
fn gitlab_group_audit_events_take_the_url_encoded_path() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = common::Contract::load("gitlab.yaml");
    let entity_paths = |path: &str| -> Vec<String> {
        let res = gw.req("GET", path).token(&seed.alice).send().expect(200);
        contract.check("/groups/{id}/audit_events", "get", 200, &res.json());
        res.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["details"]["entity_path"].as_str().unwrap().to_string())
            .collect()
    };
    let sub = entity_paths("/api/v4/groups/acme%2Ftools/audit_events?per_page=100");
    assert!(sub.contains(&"acme/tools/cli".to_string()), "{sub:?}");
    assert!(sub.iter().all(|p| p.starts_with("acme/tools/")), "{sub:?}");
    assert_eq!(
        entity_paths("/api/v4/groups/ACME%2FTools/audit_events?per_page=100"),
        sub
    );
    let top = entity_paths("/api/v4/groups/acme/audit_events?per_page=100");
    assert!(top.contains(&"acme/widgets".to_string()), "{top:?}");
    let acme_id = gw
        .cli(&["group", "list"])
        .lines()
        .find(|l| l.ends_with(" acme"))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    assert_eq!(
        entity_paths(&format!(
            "/api/v4/groups/{acme_id}/audit_events?per_page=100"
        )),
        top
    );

    // One event by path: the subgroup's own, and not one from beside it.
    let cli_event = events(&gw, &["--repo", "acme/tools/cli"])[0]["id"].clone();
    let widgets_event = events(&gw, &["--repo", "acme/widgets"])[0]["id"].clone();
    let one = gw
        .req(
            "GET",
            &format!("/api/v4/groups/acme%2Ftools/audit_events/{cli_event}"),
        )
        .token(&seed.alice)
        .send()
        .expect(200);
    contract.check(
        "/groups/{id}/audit_events/{event_id}",
        "get",
        200,
        &one.json(),
    );
    assert_eq!(one.json()["id"], cli_event);
    gw.req(
        "GET",
        &format!("/api/v4/groups/acme%2Ftools/audit_events/{widgets_event}"),
    )
    .token(&seed.alice)
    .send()
    .expect(404);
    // bob only reports on acme/widgets: a path, like an id, is forbidden to him.
    gw.req("GET", "/api/v4/groups/acme/audit_events")
        .token(&seed.bob)
        .send()
        .expect(403);

    for missing in [
        "/api/v4/groups/no%2Fsuch/audit_events",
        "/api/v4/groups/99999/audit_events",
        "/api/v4/groups/no%2Fsuch/audit_events/1",
        // The group exists, but alice has no role under it: the same answer, nothing confirmed.
        "/api/v4/groups/other/audit_events",
    ] {
        let res = gw.req("GET", missing).token(&seed.alice).send().expect(404);
        assert_eq!(
            res.json(),
            json!({"message": "404 Group Not Found"}),
            "{missing}"
        );
    }
    let res = gw
        .req("GET", "/api/v4/groups/no%2Fsuch/audit_events")
        .token(&seed.root)
        .send()
        .expect(404);
    contract.check("/groups/{id}/audit_events", "get", 404, &res.json());
    assert_eq!(res.json(), json!({"message": "404 Group Not Found"}));
}

#[test]
fn behind_a_trusted_proxy_the_record_names_the_client_it_forwards() {
    let key = fresh_key("ci@proxied");
    let post = |gw: &Gateway, seed: &common::Seed, key: &str| {
        gw.req("POST", &gl_keys(seed.widgets))
            .token(&seed.alice)
            .header("X-Forwarded-For", "198.51.100.9, 203.0.113.7")
            .json(&json!({"title": "ci", "key": key}))
            .send()
            .expect(201);
        events(gw, &[]).pop().unwrap()
    };
    let gw =
        Gateway::start_with(|s| s.rate.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]);
    let seed = gw.seed();
    // The proxy appended the address it saw; what the client wrote left of it proves nothing.
    assert_eq!(post(&gw, &seed, &key)["client_addr"], "203.0.113.7");

    // From a peer no one trusts, the header is the client's own claim: the socket counts.
    let gw = Gateway::start();
    let seed = gw.seed();
    assert_eq!(post(&gw, &seed, &key)["client_addr"], "127.0.0.1");
}

#[test]
fn no_route_changes_or_deletes_a_record() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let all = events(&gw, &[]);
    let id = all.last().unwrap()["id"].as_i64().unwrap();
    let paths = [
        format!("/api/v4/audit_events/{id}"),
        "/api/v4/audit_events".to_string(),
        format!("/api/v4/projects/{}/audit_events/{id}", seed.widgets),
        format!("/api/v4/projects/{}/audit_events", seed.widgets),
        format!("/api/v4/groups/acme/audit_events/{id}"),
    ];
    for path in &paths {
        for method in ["DELETE", "PUT", "PATCH", "POST"] {
            let res = gw
                .req(method, path)
                .token(&seed.root)
                .json(&json!({"action": "nothing.happened", "details": {}}))
                .send();
            assert_eq!(res.status, 404, "{method} {path}");
        }
    }
    assert_eq!(events(&gw, &[]), all, "every record as it was");
}

/// Makes every insert into the audit table fail, in the gateway's own database.
fn refuse_audit_inserts(gw: &Gateway, refuse: bool) {
    let db = gw.db.to_str().unwrap();
    if common::on_postgres() {
        let mut client = postgres::Client::connect(db, postgres::NoTls).unwrap();
        let sql = if refuse {
            "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ \
             LANGUAGE plpgsql; CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_audit();"
        } else {
            "DROP TRIGGER refuse_audit ON audit_events; DROP FUNCTION refuse_audit();"
        };
        client.batch_execute(sql).unwrap();
    } else {
        let conn = rusqlite::Connection::open(db).unwrap();
        let sql = if refuse {
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
             BEGIN SELECT RAISE(ABORT, 'refused'); END;"
        } else {
            "DROP TRIGGER refuse_audit;"
        };
        conn.execute_batch(sql).unwrap();
    }
}

#[test]
fn a_change_whose_record_cannot_be_written_is_not_made() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let before = events(&gw, &[]);
    let key = fresh_key("ci@unrecorded");
    let create = || {
        gw.req("POST", &gl_keys(seed.widgets))
            .token(&seed.alice)
            .json(&json!({"title": "ci", "key": key}))
            .send()
    };
    let keys = || {
        gw.req("GET", &gl_keys(seed.widgets))
            .token(&seed.alice)
            .send()
            .expect(200)
            .json()
    };
    refuse_audit_inserts(&gw, true);
    let refused = create();
    assert!(refused.status >= 500, "{}", refused.status);
    assert_eq!(keys(), json!([]), "the key went with its record");
    assert_eq!(events(&gw, &[]), before);

    refuse_audit_inserts(&gw, false);
    create().expect(201);
    assert_eq!(keys().as_array().unwrap().len(), 1);
    assert_eq!(actions(&since(&gw, before.len())), ["deploy_key.create"]);
}

#[test]
fn codearts_and_instance_keys_are_recorded_too() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let creds = access_key(&gw, "alice");
    let n = events(&gw, &[]).len();
    let path = format!("/v2/repositories/{}/deploy-keys", seed.widgets);
    let body = json!({"application": "ci", "can_push": true, "key": fresh_key("ca@host"), "key_title": "ca"});
    let added = signed(&gw, &creds, "POST", &path, Some(&body))
        .send()
        .expect(200);
    let id: i64 = added.json()["result"]["key_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    signed(&gw, &creds, "DELETE", &format!("{path}/{id}"), None)
        .send()
        .expect(200);
    let new = since(&gw, n);
    assert_eq!(actions(&new), ["deploy_key.create", "deploy_key.delete"]);
    for e in &new {
        assert_eq!(e["dialect"], "codearts");
        assert_eq!(e["actor"]["name"], "alice");
        assert_eq!(e["repo_path"], "acme/widgets");
        assert_eq!(e["key_id"], id);
    }
    assert_eq!(
        new[0]["route"],
        "/v2/repositories/{repository_id}/deploy-keys"
    );
    assert_eq!(new[0]["details"]["after"]["can_push"], true);
    assert_eq!(
        new[1]["route"],
        "/v2/repositories/{repository_id}/deploy-keys/{key_id}"
    );

    // An instance-wide key, made by an admin, belongs to no repository.
    let n = events(&gw, &[]).len();
    let key = gw
        .req("POST", "/api/v4/deploy_keys")
        .token(&seed.root)
        .json(&json!({"title": "everywhere", "key": fresh_key("inst@host")}))
        .send()
        .expect(201)
        .json();
    let new = since(&gw, n);
    assert_eq!(actions(&new), ["deploy_key.create"]);
    assert_eq!(new[0]["key_id"], key["id"]);
    assert_eq!(new[0]["repo_id"], Value::Null);
    assert_eq!(new[0]["details"]["after"]["public"], true);
    assert_eq!(new[0]["route"], "/api/v4/deploy_keys");
}
