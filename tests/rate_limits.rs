//! Rate limits through the real server: per-user budgets in each dialect's headers and refusals,
//! GitHub's `/rate_limit`, the failed-authentication ban per client address, and limits off.

mod common;

use std::time::Duration;

use common::{Creds, Gateway, Req, Resp, Seed, access_key, signed};
use keygate::config::Settings;
use serde_json::Value;

fn gh(req: Req, token: &str) -> Req {
    req.header("Authorization", &format!("token {token}"))
}

fn num(res: &Resp, name: &str) -> u64 {
    res.header(name)
        .unwrap_or_else(|| panic!("{name} missing: {:?}", res.headers))
        .parse()
        .unwrap()
}

fn budget(per_user: u64) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| s.rate.per_user = per_user
}

/// A server whose clients are told apart by `X-Forwarded-For`: the test talks from 127.0.0.1,
/// which is made a trusted proxy.
fn behind_proxy(max_failures: u32, ban: Duration) -> Gateway {
    Gateway::start_with(|s| {
        s.rate.ban_max_failures = max_failures;
        s.rate.ban_duration = ban;
        s.rate.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
}

fn from(req: Req, client: &str) -> Req {
    req.header("X-Forwarded-For", client)
}

fn user_id(gw: &Gateway, token: &str) -> i64 {
    gh(gw.req("GET", "/user"), token).send().expect(200).json()["id"]
        .as_i64()
        .unwrap()
}

// ---------- budgets ----------

#[test]
fn github_counts_each_request_and_refuses_the_one_past_the_budget() {
    let gw = Gateway::start_with(budget(3));
    let seed = gw.seed();
    let alice = user_id(&gw, &seed.alice);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The /user above spent one.
    for (path, used) in [("/api/v3/user", 2), ("/repos/acme/widgets/keys", 3)] {
        let res = gh(gw.req("GET", path), &seed.alice).send().expect(200);
        assert_eq!(num(&res, "x-ratelimit-limit"), 3);
        assert_eq!(num(&res, "x-ratelimit-used"), used);
        assert_eq!(num(&res, "x-ratelimit-remaining"), 3 - used);
        assert!(num(&res, "x-ratelimit-reset") > now);
        assert_eq!(res.header("x-ratelimit-resource"), Some("core"));
    }
    let refused = gh(gw.req("GET", "/repos/acme/widgets/keys"), &seed.alice)
        .send()
        .expect(403);
    let body = refused.json();
    assert_eq!(
        body["message"],
        format!("API rate limit exceeded for user ID {alice}.")
    );
    assert!(
        body["documentation_url"]
            .as_str()
            .unwrap()
            .contains("rate-limits")
    );
    assert_eq!(num(&refused, "x-ratelimit-remaining"), 0);
    assert_eq!(num(&refused, "x-ratelimit-used"), 3);
    let wait = num(&refused, "retry-after");
    assert!((1..=3600).contains(&wait), "retry-after {wait}");
    // A refused write changes nothing.
    gh(gw.req("POST", "/repos/acme/widgets/keys"), &seed.alice)
        .json(&serde_json::json!({"title": "t", "key": common::fresh_key("t")}))
        .send()
        .expect(403);
    assert_eq!(
        gh(gw.req("GET", "/repos/acme/widgets/keys"), &seed.root)
            .send()
            .expect(200)
            .json(),
        Value::Array(vec![]),
        "root has a budget of his own, and nothing was stored"
    );
    // One budget per user, whichever dialect spends it.
    gw.req("GET", "/api/v4/user")
        .token(&seed.alice)
        .send()
        .expect(429);
    // Asking for the budget still works once it is spent, and tells the truth.
    let overview = gh(gw.req("GET", "/rate_limit"), &seed.alice)
        .send()
        .expect(200)
        .json();
    let core = &overview["resources"]["core"];
    assert_eq!(
        (core["used"].as_u64(), core["remaining"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(
        core["reset"].as_u64(),
        Some(num(&refused, "x-ratelimit-reset"))
    );
}

#[test]
fn rate_limit_follows_real_requests_and_costs_nothing() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for prefix in ["", "/api/v3"] {
        let look = || {
            let res = gh(gw.req("GET", &format!("{prefix}/rate_limit")), &seed.alice)
                .send()
                .expect(200);
            let core = res.json()["resources"]["core"].clone();
            assert_eq!(num(&res, "x-ratelimit-remaining"), core["remaining"]);
            core
        };
        let first = look();
        assert_eq!(look(), first, "looking twice spends nothing");
        gh(gw.req("GET", &format!("{prefix}/user")), &seed.alice)
            .send()
            .expect(200);
        gw.req("GET", "/api/v4/user")
            .token(&seed.alice)
            .send()
            .expect(200);
        let after = look();
        assert_eq!(
            after["used"].as_u64().unwrap(),
            first["used"].as_u64().unwrap() + 2
        );
        assert_eq!(
            after["remaining"].as_u64().unwrap(),
            first["remaining"].as_u64().unwrap() - 2
        );
        assert_eq!(after["limit"], 5000, "GitHub's budget by default");
    }
}

#[test]
fn a_spent_budget_refills_when_its_window_ends() {
    let gw = Gateway::start_with(|s| {
        s.rate.per_user = 1;
        s.rate.window = Duration::from_secs(1);
    });
    let seed = gw.seed();
    // The window may turn between two requests on a slow machine: go on until one is refused.
    let refused = (0..20)
        .map(|_| gh(gw.req("GET", "/user"), &seed.alice).send())
        .find(|res| res.status == 403)
        .expect("one request in a one-request window is refused");
    std::thread::sleep(Duration::from_secs(num(&refused, "retry-after")));
    gh(gw.req("GET", "/user"), &seed.alice).send().expect(200);
}

#[test]
fn gitlab_reports_its_ratelimit_headers_and_answers_retry_later() {
    let gw = Gateway::start_with(budget(2));
    let seed = gw.seed();
    let first = gw
        .req("GET", "/api/v4/user")
        .token(&seed.alice)
        .send()
        .expect(200);
    let second = gw
        .req("GET", &format!("/api/v3/projects/{}/keys", seed.widgets))
        .token(&seed.alice)
        .send()
        .expect(200);
    for (res, observed) in [(&first, 1), (&second, 2)] {
        assert_eq!(num(res, "ratelimit-limit"), 2);
        assert_eq!(num(res, "ratelimit-observed"), observed);
        assert_eq!(num(res, "ratelimit-remaining"), 2 - observed);
        assert!(res.header("ratelimit-resettime").unwrap().ends_with(" GMT"));
    }
    let refused = gw
        .req(
            "GET",
            &format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
        )
        .token(&seed.alice)
        .send()
        .expect(429);
    assert_eq!(refused.body, "Retry later\n");
    assert!(
        refused
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(num(&refused, "ratelimit-remaining"), 0);
    assert_eq!(num(&refused, "ratelimit-observed"), 2);
    assert_eq!(
        num(&refused, "ratelimit-reset"),
        num(&first, "ratelimit-reset")
    );
    assert!(num(&refused, "retry-after") >= 1);
    // A write past the budget stores nothing.
    gw.req(
        "POST",
        &format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
    )
    .token(&seed.alice)
    .form(&[("title", "t"), ("key", &common::fresh_key("t"))])
    .send()
    .expect(429);
    let keys = gw
        .req(
            "GET",
            &format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
        )
        .token(&seed.root)
        .send()
        .expect(200);
    assert_eq!(keys.json(), Value::Array(vec![]));
}

#[test]
fn codearts_answers_429_in_its_gateway_error_body() {
    let gw = Gateway::start_with(budget(1));
    let seed = gw.seed();
    let creds = access_key(&gw, "alice");
    let path = format!("/v4/repositories/{}/deploy-keys", seed.widgets);
    signed(&gw, &creds, "GET", &path, None).send().expect(200);
    for req in [
        signed(&gw, &creds, "GET", &path, None),
        gw.req("GET", &path).header("X-Auth-Token", &seed.alice),
        signed(
            &gw,
            &creds,
            "POST",
            &format!("/v1/repositories/{}/deploy_keys", seed.widgets),
            Some(&serde_json::json!({"key": common::fresh_key("c"), "key_title": "c"})),
        ),
    ] {
        let res = req.send().expect(429);
        let body = res.json();
        assert_eq!(body["error_code"], "APIGW.0308");
        assert!(
            body["error_msg"]
                .as_str()
                .unwrap()
                .starts_with("The throttling threshold has been reached"),
            "{body}"
        );
        assert!(num(&res, "retry-after") >= 1);
    }
}

// ---------- the failed-authentication ban ----------

fn bad_github(gw: &Gateway, client: &str) {
    from(gh(gw.req("GET", "/user"), "kgt_wrong"), client)
        .send()
        .expect(401);
}

fn good_github(gw: &Gateway, seed: &Seed, client: &str) -> Resp {
    from(gh(gw.req("GET", "/user"), &seed.alice), client).send()
}

#[test]
fn failed_logins_from_one_address_ban_it_in_every_dialect() {
    let gw = behind_proxy(4, Duration::from_secs(3600));
    let seed = gw.seed();
    let creds = access_key(&gw, "alice");
    let wrong_sk = Creds {
        ak: creds.ak.clone(),
        sk: "0".repeat(creds.sk.len()),
    };
    let path = format!("/v4/repositories/{}/deploy-keys", seed.widgets);
    let attacker = "203.0.113.7";
    // Requests without credentials are not failed logins.
    for _ in 0..6 {
        from(gw.req("GET", "/user"), attacker).send().expect(401);
        from(gw.req("GET", "/api/v4/user"), attacker)
            .send()
            .expect(401);
    }
    good_github(&gw, &seed, attacker).expect(200);
    // Failures of every kind count together: GitHub and GitLab tokens, CodeArts signatures.
    bad_github(&gw, attacker);
    from(gw.req("GET", "/api/v4/user").token("kgt_wrong"), attacker)
        .send()
        .expect(401);
    from(signed(&gw, &wrong_sk, "GET", &path, None), attacker)
        .send()
        .expect(401);
    // The fourth failure is answered as usual and bans the address.
    bad_github(&gw, attacker);
    let refused = good_github(&gw, &seed, attacker).expect(403);
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("failed authentication"),
        "{}",
        refused.body
    );
    // No Retry-After: a client would sleep out the hour and try again.
    assert_eq!(refused.header("retry-after"), None);
    let gl = from(gw.req("GET", "/api/v4/user").token(&seed.alice), attacker)
        .send()
        .expect(403);
    assert_eq!(gl.body, "Forbidden\n");
    let ca = from(signed(&gw, &creds, "GET", &path, None), attacker)
        .send()
        .expect(429);
    assert_eq!(ca.json()["error_code"], "APIGW.0308");
    assert!(num(&ca, "retry-after") > 3000);
    // Anyone else is served as before.
    good_github(&gw, &seed, "203.0.113.8").expect(200);
    good_github(&gw, &seed, "2001:db8:1::5").expect(200);
}

#[test]
fn a_successful_login_forgives_earlier_failures() {
    let gw = behind_proxy(3, Duration::from_secs(3600));
    let seed = gw.seed();
    let client = "198.51.100.1";
    for _ in 0..3 {
        bad_github(&gw, client);
        bad_github(&gw, client);
        good_github(&gw, &seed, client).expect(200);
    }
}

#[test]
fn an_ipv6_client_is_banned_with_its_slash_64() {
    let gw = behind_proxy(2, Duration::from_secs(3600));
    let seed = gw.seed();
    bad_github(&gw, "2001:db8:aa:bb::1");
    bad_github(&gw, "2001:db8:aa:bb::2");
    good_github(&gw, &seed, "2001:db8:aa:bb:ffff::3").expect(403);
    good_github(&gw, &seed, "2001:db8:aa:bc::1").expect(200);
}

#[test]
fn a_ban_ends_after_its_duration() {
    let gw = behind_proxy(1, Duration::from_secs(1));
    let seed = gw.seed();
    bad_github(&gw, "192.0.2.9");
    good_github(&gw, &seed, "192.0.2.9").expect(403);
    std::thread::sleep(Duration::from_millis(1100));
    good_github(&gw, &seed, "192.0.2.9").expect(200);
}

#[test]
fn an_untrusted_peer_cannot_choose_its_address() {
    // No trusted proxy: 127.0.0.1 is the client, whatever X-Forwarded-For says.
    let gw = Gateway::start_with(|s| s.rate.ban_max_failures = 3);
    let seed = gw.seed();
    for client in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        bad_github(&gw, client);
    }
    good_github(&gw, &seed, "10.0.0.4").expect(403);
    good_github(&gw, &seed, "127.0.0.2").expect(403);
}

#[test]
fn failures_older_than_the_window_are_forgotten() {
    let gw = Gateway::start_with(|s| {
        s.rate.ban_max_failures = 2;
        s.rate.ban_window = Duration::from_millis(1500);
        s.rate.ban_duration = Duration::from_secs(3600);
        s.rate.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    });
    let seed = gw.seed();
    // One failure, then one more after the window: never two within it.
    bad_github(&gw, "192.0.2.60");
    std::thread::sleep(Duration::from_millis(1700));
    bad_github(&gw, "192.0.2.60");
    good_github(&gw, &seed, "192.0.2.60").expect(200);
    // Two within the window ban the address.
    bad_github(&gw, "192.0.2.61");
    bad_github(&gw, "192.0.2.61");
    good_github(&gw, &seed, "192.0.2.61").expect(403);
}

#[test]
fn a_trusted_proxy_speaks_only_for_the_hop_it_saw() {
    let gw = behind_proxy(2, Duration::from_secs(3600));
    let seed = gw.seed();
    // The client wrote the left entries itself; the proxy appended the address it saw.
    bad_github(&gw, "1.1.1.1, 192.0.2.50");
    bad_github(&gw, "2.2.2.2, 192.0.2.50");
    good_github(&gw, &seed, "3.3.3.3, 192.0.2.50").expect(403);
    good_github(&gw, &seed, "192.0.2.51").expect(200);
}

// ---------- off ----------

#[test]
fn limits_turned_off_throttle_nothing() {
    let gw = Gateway::start_with(|s| {
        s.rate.per_user = 0;
        s.rate.ban_max_failures = 0;
    });
    let seed = gw.seed();
    for _ in 0..40 {
        bad_github(&gw, "ignored");
    }
    for _ in 0..10 {
        let res = good_github(&gw, &seed, "ignored").expect(200);
        assert_eq!(res.header("x-ratelimit-limit"), None);
        let gl = gw
            .req("GET", "/api/v4/user")
            .token(&seed.alice)
            .send()
            .expect(200);
        assert_eq!(gl.header("ratelimit-limit"), None);
    }
    let res = gh(gw.req("GET", "/rate_limit"), &seed.alice)
        .send()
        .expect(404);
    assert_eq!(res.json()["message"], "Rate limiting is not enabled.");
}

#[test]
fn the_ssh_hosts_door_is_exempt() {
    // An SSH host carries every git user's traffic: a ban of its address must not stop them.
    let gw = Gateway::start_with(|s| s.rate.ban_max_failures = 1);
    let seed = gw.seed();
    bad_github(&gw, "");
    good_github(&gw, &seed, "").expect(403);
    let secret = gw.internal_secret();
    let res = gw
        .req("GET", "/internal/ssh/authorized-key?fingerprint=nonsense")
        .header("Authorization", &format!("Bearer {secret}"))
        .send();
    assert_eq!(res.status, 400, "answered, not refused: {}", res.body);
    // Nor do wrong secrets there count as failed logins.
    let gw = Gateway::start_with(|s| s.rate.ban_max_failures = 1);
    let seed = gw.seed();
    for _ in 0..3 {
        gw.req("GET", "/internal/ssh/authorized-key?fingerprint=x")
            .header("Authorization", "Bearer wrong")
            .send()
            .expect(401);
    }
    good_github(&gw, &seed, "").expect(200);
}
