//! `/-/metrics`, `/-/liveness` and `/-/readiness` on a live server: labels, counts, gauges, who may
//! scrape on which listener, promtool's verdict, and readiness following the store.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::{Gateway, access_key, add_key, fresh_key, signed};
use serde_json::json;

/// One scrape: every sample line, keyed by its name and labels as written.
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    fn of(base: &str) -> Scrape {
        let res = ureq::get(&format!("{base}/-/metrics"))
            .call()
            .expect("scrape answers 200");
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = res.into_body().read_to_string().expect("text");
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect();
        Scrape { text, samples }
    }

    /// The value of the series `name{labels}` whose labels include every `want` pair (0 when
    /// absent: a counter never bumped is not rendered).
    fn value(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(series, _)| {
                let (n, labels) = series.split_once('{').unwrap_or((series, ""));
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

fn requests(s: &Scrape, dialect: &str, route: &str, method: &str, status: &str) -> f64 {
    s.value(
        "keygate_http_requests_total",
        &[
            ("dialect", dialect),
            ("route", route),
            ("method", method),
            ("status", status),
        ],
    )
}

#[test]
fn a_scrape_counts_every_dialect_by_route_template_and_never_the_raw_path() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let keys = format!("/api/v4/projects/{}/deploy_keys", seed.widgets);
    let key = gw
        .req("POST", &keys)
        .token(&seed.alice)
        .json(&json!({"title": "m", "key": fresh_key("m")}))
        .send()
        .expect(201)
        .json();
    let key_id = key["id"].as_i64().unwrap();
    // An id and a name that appear nowhere else: the scrape must not hold them.
    gw.req("GET", &format!("{keys}/987654321"))
        .token(&seed.alice)
        .send()
        .expect(404);
    gw.req("GET", "/api/v4/no-such-route/secret-name-4242")
        .send()
        .expect(404);
    gw.req("GET", "/repos/acme/widgets/keys")
        .header("Authorization", &format!("token {}", seed.alice))
        .send()
        .expect(200);
    let creds = access_key(&gw, "alice");
    let codearts = format!("/v4/repositories/{}/deploy-keys", seed.widgets);
    signed(&gw, &creds, "GET", &codearts, None)
        .send()
        .expect(200);

    // The SSH door: one login accepted, one refused, one push on a missing key refused.
    let secret = format!("Bearer {}", gw.internal_secret());
    let fingerprint = key["fingerprint_sha256"].as_str().unwrap().to_string();
    let lookup = |fp: &str| {
        format!(
            "/internal/ssh/authorized-key?fingerprint={}",
            percent_encoding::utf8_percent_encode(fp, percent_encoding::NON_ALPHANUMERIC)
        )
    };
    gw.req("GET", &lookup(&fingerprint))
        .header("Authorization", &secret)
        .send()
        .expect(200);
    let unknown = format!("SHA256:{}", "A".repeat(43));
    gw.req("GET", &lookup(&unknown))
        .header("Authorization", &secret)
        .send()
        .expect(404);
    gw.req("POST", "/internal/ssh/access")
        .header("Authorization", &secret)
        .json(&json!({"key_id": key_id + 1000, "repository": "acme/widgets", "action": "git-receive-pack"}))
        .send()
        .expect(403);

    let first = Scrape::of(&gw.url);
    let template = "/api/v4/projects/{id}/deploy_keys/{key_id}";
    assert_eq!(
        requests(&first, "gitlab", template, "GET", "4xx"),
        1.0,
        "{}",
        first.text
    );
    assert_eq!(
        requests(
            &first,
            "gitlab",
            "/api/v4/projects/{id}/deploy_keys",
            "POST",
            "2xx"
        ),
        1.0
    );
    assert_eq!(requests(&first, "gitlab", "unmatched", "GET", "4xx"), 1.0);
    assert_eq!(
        requests(&first, "github", "/repos/{owner}/{repo}/keys", "GET", "2xx"),
        1.0
    );
    assert_eq!(
        requests(
            &first,
            "codearts",
            "/v4/repositories/{repository_id}/deploy-keys",
            "GET",
            "2xx"
        ),
        1.0
    );
    assert_eq!(
        requests(
            &first,
            "internal",
            "/internal/ssh/authorized-key",
            "GET",
            "2xx"
        ),
        1.0
    );
    for raw in ["987654321", "secret-name-4242", "acme/widgets"] {
        assert!(
            !first.text.contains(&format!("\"{raw}")) && !first.text.contains(&format!("/{raw}")),
            "{raw} leaked into the scrape"
        );
    }
    let door = |s: &Scrape, stage: &str, outcome: &str, reason: &str| {
        s.value(
            "keygate_ssh_decisions_total",
            &[("stage", stage), ("outcome", outcome), ("reason", reason)],
        )
    };
    assert!(
        door(&first, "login", "allow", "none") >= 1.0,
        "{}",
        first.text
    );
    assert!(door(&first, "login", "deny", "no_key") >= 1.0);
    assert!(door(&first, "access", "deny", "key_missing") >= 1.0);
    // The latency histogram, per route, with its buckets.
    let latency = [("dialect", "gitlab"), ("route", template)];
    assert!(first.value("keygate_http_request_duration_seconds_count", &latency) >= 1.0);
    assert!(
        first.value(
            "keygate_http_request_duration_seconds_bucket",
            &[("route", template), ("le", "+Inf")]
        ) >= 1.0
    );
    assert!(
        first
            .text
            .contains("# TYPE keygate_http_request_duration_seconds histogram")
    );
    // The store: transactions of both kinds; on SQLite a batch per write.
    let backend = if common::on_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    for kind in ["read", "write"] {
        assert!(
            first.value(
                "keygate_store_transactions_total",
                &[("backend", backend), ("kind", kind)]
            ) >= 1.0,
            "{kind}"
        );
    }
    if !common::on_postgres() {
        assert!(first.value("keygate_store_batch_size_count", &[]) >= 1.0);
        assert!(first.value("keygate_store_batch_size_bucket", &[("le", "1")]) >= 1.0);
    }
    // Gauges are this instance's counts.
    assert_eq!(first.value("keygate_users", &[]), 4.0);
    assert_eq!(first.value("keygate_repositories", &[]), 3.0);
    assert_eq!(first.value("keygate_deploy_keys", &[]), 1.0);

    // Counts go up; gauges follow the store.
    gw.req("GET", &format!("{keys}/{key_id}"))
        .token(&seed.alice)
        .send()
        .expect(200);
    gw.req("POST", &keys)
        .token(&seed.alice)
        .json(&json!({"title": "n", "key": fresh_key("n")}))
        .send()
        .expect(201);
    gw.cli(&["repo", "add", "acme/more"]);
    let second = Scrape::of(&gw.url);
    assert_eq!(requests(&second, "gitlab", template, "GET", "2xx"), 1.0);
    assert_eq!(
        requests(
            &second,
            "gitlab",
            "/api/v4/projects/{id}/deploy_keys",
            "POST",
            "2xx"
        ),
        2.0
    );
    assert!(requests(&second, "other", "/-/metrics", "GET", "2xx") >= 1.0);
    assert!(
        second.value("keygate_store_transactions_total", &[("kind", "write")])
            > first.value("keygate_store_transactions_total", &[("kind", "write")])
    );
    assert_eq!(second.value("keygate_deploy_keys", &[]), 2.0);
    assert_eq!(second.value("keygate_repositories", &[]), 4.0);
}

/// Paths outside every dialect, which routing sends to the default 404: whatever a client puts
/// in them (a scanner's guesses, ids), one series per method, never one per path.
#[test]
fn a_path_no_route_matches_is_counted_as_unmatched_and_never_by_its_path() {
    let gw = Gateway::start();
    let before = Scrape::of(&gw.url);
    for path in [
        "/random/abc123",
        "/random/abc123/deeper/zq7",
        "/wp-login-x9y8.php",
    ] {
        gw.req("GET", path).send().expect(404);
    }
    gw.req("POST", "/random/abc123")
        .json(&json!({}))
        .send()
        .expect(404);
    let after = Scrape::of(&gw.url);
    let unmatched = |s: &Scrape, method: &str| requests(s, "other", "unmatched", method, "4xx");
    assert_eq!(
        unmatched(&after, "GET") - unmatched(&before, "GET"),
        3.0,
        "{}",
        after.text
    );
    assert_eq!(unmatched(&after, "POST") - unmatched(&before, "POST"), 1.0);
    let latency = [("dialect", "other"), ("route", "unmatched")];
    assert!(
        after.value("keygate_http_request_duration_seconds_count", &latency)
            - before.value("keygate_http_request_duration_seconds_count", &latency)
            >= 4.0
    );
    for raw in ["random", "abc123", "zq7", "wp-login"] {
        assert!(!after.text.contains(raw), "{raw} leaked into the scrape");
    }
}

#[test]
fn promtool_accepts_a_live_scrape() {
    let gw = Gateway::start();
    let seed = gw.seed();
    // Routes no other test here counts, as the tests share one process and so one registry.
    gw.req("GET", "/api/v4/user")
        .token(&seed.alice)
        .send()
        .expect(200);
    gw.req("GET", "/repos/acme/widgets").send();
    let scrape = Scrape::of(&gw.url);
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(child) => child,
        Err(err) => {
            // scripts/test.sh installs it and sets KEYGATE_TEST_PROMTOOL=require: CI never skips.
            assert!(
                std::env::var("KEYGATE_TEST_PROMTOOL").as_deref() != Ok("require"),
                "promtool is required: {err}"
            );
            eprintln!("skipped: no promtool ({err}); Debian's `prometheus` package has it");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        scrape.text
    );
}

#[test]
fn peers_outside_metrics_allow_get_404_and_health_checks_stay_open() {
    let gw = Gateway::start_with(|s| {
        s.metrics_allow = vec![keygate::telemetry::parse_cidr("10.0.0.0/8").unwrap()]
    });
    let refused = gw.req("GET", "/-/metrics").send().expect(404);
    assert!(!refused.body.contains("keygate_"), "{}", refused.body);
    // A forwarding header names an allowed address: it changes nothing.
    gw.req("GET", "/-/metrics")
        .header("X-Forwarded-For", "10.1.2.3")
        .send()
        .expect(404);
    let live = gw.req("GET", "/-/liveness").send().expect(200).json();
    assert_eq!(live, json!({"status": "ok"}));
    let ready = gw.req("GET", "/-/readiness").send().expect(200).json();
    assert_eq!(ready["status"], "ok");
    // Allowed by address, the same peer scrapes.
    let allowed = Gateway::start_with(|s| {
        s.metrics_allow = vec![keygate::telemetry::parse_cidr("127.0.0.1").unwrap()]
    });
    Scrape::of(&allowed.url);
}

#[test]
fn metrics_listen_serves_metrics_and_health_apart_from_the_api() {
    let gw = Gateway::start_with(|s| s.metrics_listen = Some("127.0.0.1:0".into()));
    let seed = gw.seed();
    let metrics = gw.metrics_url.clone().expect("a metrics listener");
    let project = format!("/api/v4/projects/{}", seed.widgets);
    gw.req("GET", &project)
        .token(&seed.alice)
        .send()
        .expect(200);
    // The main listener no longer serves metrics, even to loopback; health checks stay.
    gw.req("GET", "/-/metrics").send().expect(404);
    gw.req("GET", "/-/liveness").send().expect(200);
    let scrape = Scrape::of(&metrics);
    assert_eq!(
        requests(&scrape, "gitlab", "/api/v4/projects/{id}", "GET", "2xx"),
        1.0,
        "{}",
        scrape.text
    );
    // The metrics listener serves no API, nor with a doubled slash.
    for path in [project.clone(), format!("/{project}")] {
        let api = ureq::get(&format!("{metrics}{path}"))
            .header("PRIVATE-TOKEN", &seed.alice)
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        assert_eq!(api.status().as_u16(), 404, "{path}");
    }
    // A doubled slash is merged before routing, so it is a `/-/` route all the same.
    for health in ["/-/liveness", "/-/readiness", "//-/liveness"] {
        let res = ureq::get(&format!("{metrics}{health}")).call().unwrap();
        assert_eq!(res.status().as_u16(), 200, "{health}");
    }
}

#[test]
fn a_busy_answer_is_counted() {
    if common::sqlite_only("another process holding SQLite's write lock") {
        return;
    }
    let gw = Gateway::start();
    let seed = gw.seed();
    let before = Scrape::of(&gw.url).value("keygate_store_busy_total", &[]);
    // Another process holds the write lock past the busy timeout: the write is answered 503.
    let holder = rusqlite::Connection::open(&gw.db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    gw.req(
        "POST",
        &format!("/api/v4/projects/{}/deploy_keys", seed.cli_repo),
    )
    .token(&seed.alice)
    .json(&json!({"title": "b", "key": fresh_key("b")}))
    .send()
    .expect(503);
    holder.execute_batch("ROLLBACK").unwrap();
    let after = Scrape::of(&gw.url);
    assert!(
        after.value("keygate_store_busy_total", &[]) > before,
        "{}",
        after.text
    );
    assert!(
        requests(
            &after,
            "gitlab",
            "/api/v4/projects/{id}/deploy_keys",
            "POST",
            "5xx"
        ) >= 1.0
    );
}

#[test]
fn a_body_that_never_arrives_is_counted_with_its_408() {
    use std::io::Read;
    let gw = Gateway::start_with(|s| s.body_timeout = std::time::Duration::from_secs(1));
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    stalled
        .write_all(
            b"PUT /api/v4/projects/1/deploy_keys/2 HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
    let mut answer = String::new();
    stalled.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let scrape = Scrape::of(&gw.url);
    assert!(
        requests(
            &scrape,
            "gitlab",
            "/api/v4/projects/{id}/deploy_keys/{key_id}",
            "PUT",
            "4xx"
        ) >= 1.0,
        "{}",
        scrape.text
    );
}

/// Readiness on SQLite while the database file is not there, then while another file (a copy,
/// as a restore moved into place would be) sits at its path: the gateway's open connections
/// still answer, but from a file nothing else will ever see again. 200 once it is back.
#[test]
fn readiness_fails_while_the_sqlite_file_is_gone_or_replaced() {
    if common::sqlite_only("the database file") {
        return;
    }
    let gw = Gateway::start();
    let ready = gw.req("GET", "/-/readiness").send().expect(200).json();
    assert_eq!(
        ready,
        json!({"status": "ok", "db_check": [{"status": "ok"}]})
    );
    let aside = gw.dir().join("aside.db");
    std::fs::rename(&gw.db, &aside).unwrap();
    let gone = gw.req("GET", "/-/readiness").send();
    std::fs::copy(&aside, &gw.db).unwrap();
    let replaced = gw.req("GET", "/-/readiness").send();
    // Put back before any assertion, so a failure still leaves the server its own file.
    std::fs::rename(&aside, &gw.db).unwrap();
    let live = gw.req("GET", "/-/liveness").send();
    for (what, res) in [("gone", &gone), ("replaced", &replaced)] {
        assert_eq!(res.status, 503, "{what}: {}", res.body);
        let body = res.json();
        assert_eq!(body["status"], "failed", "{what}: {body}");
        assert_eq!(body["db_check"][0]["status"], "failed", "{what}: {body}");
    }
    assert_eq!(live.status, 200, "liveness does not ask the store");
    gw.req("GET", "/-/readiness").send().expect(200);
}

#[test]
fn every_reason_the_ssh_door_gives_is_counted() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let secret = format!("Bearer {}", gw.internal_secret());
    let add = |can_push: bool, expires_at: Option<&str>| {
        add_key(
            &gw,
            &seed.alice,
            seed.widgets,
            &fresh_key("door@host"),
            can_push,
            expires_at,
        )
    };
    let access = |key_id: i64, repository: &str, action: &str, status: u16| {
        gw.req("POST", "/internal/ssh/access")
            .header("Authorization", &secret)
            .json(&json!({"key_id": key_id, "repository": repository, "action": action}))
            .send()
            .expect(status);
    };
    // One recorder serves every gateway of this test process: count what this test adds.
    let before = Scrape::of(&gw.url);
    let read_only = add(false, None);
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let expiring = add(
        true,
        Some(
            &soon
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        ),
    );
    access(read_only, "acme/widgets", "git-upload-pack", 200);
    access(read_only, "acme/widgets", "git-receive-pack", 403);
    access(read_only, "acme/no-such-repo", "git-upload-pack", 403);
    std::thread::sleep((soon - time::OffsetDateTime::now_utc()).unsigned_abs());
    std::thread::sleep(std::time::Duration::from_millis(300));
    access(expiring, "acme/widgets", "git-upload-pack", 403);

    let after = Scrape::of(&gw.url);
    let door = |outcome: &str, reason: &str| {
        let labels = [
            ("stage", "access"),
            ("outcome", outcome),
            ("reason", reason),
        ];
        after.value("keygate_ssh_decisions_total", &labels)
            - before.value("keygate_ssh_decisions_total", &labels)
    };
    assert_eq!(door("allow", "none"), 1.0, "{}", after.text);
    assert_eq!(door("deny", "read_only"), 1.0);
    assert_eq!(door("deny", "not_found"), 1.0);
    assert_eq!(door("deny", "key_expired"), 1.0);
}

/// Concurrent write requests on SQLite share commits (the writer thread): fewer batches than
/// requests, every acknowledged key there for a GET at once, and a request refused in a shared
/// batch (the same key twice) refused alone, with its dialect's answer and nothing stored.
#[test]
fn concurrent_writes_share_batches_and_a_refused_one_stays_its_own() {
    if common::sqlite_only("group commit batches") {
        return;
    }
    let gw = Gateway::start();
    let seed = gw.seed();
    let keys = format!("/api/v4/projects/{}/deploy_keys", seed.widgets);
    let taken = fresh_key("taken");
    add_key(&gw, &seed.root, seed.secret, &taken, false, None);
    let before = Scrape::of(&gw.url);
    let (threads, each) = (16, 6);
    let created: Vec<(String, i64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (gw, keys, token, taken) = (&gw, &keys, &seed.alice, &taken);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..each {
                        let public = fresh_key(&format!("k{t}-{i}"));
                        let body = json!({"title": format!("k{t}-{i}"), "key": public});
                        let id = gw.req("POST", keys).token(token).json(&body).send();
                        let id = id.expect(201).json()["id"].as_i64().unwrap();
                        if i % 3 == 0 {
                            // Refused inside its write, in a batch shared with the others: GitLab's
                            // 400, never a 5xx, and nothing stored.
                            let body = json!({"title": "theirs", "key": taken});
                            let refused = gw.req("POST", keys).token(token).json(&body).send();
                            assert_eq!(refused.status, 400, "{}", refused.body);
                            assert_eq!(
                                refused.json(),
                                json!({"message": {"deploy_key.fingerprint_sha256": ["has already been taken"]}})
                            );
                        }
                        mine.push((public, id));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let after = Scrape::of(&gw.url);
    let writes = (threads * each + threads * each / 3) as f64;
    let delta = |name: &str| after.value(name, &[]) - before.value(name, &[]);
    // Each committed batch records its size: the sizes add up to the requests.
    assert_eq!(
        delta("keygate_store_batch_size_sum"),
        writes,
        "{}",
        after.text
    );
    let batches = delta("keygate_store_batch_size_count");
    assert!(batches < writes, "{batches} commits for {writes} writes");
    for (public, id) in &created {
        let got = gw
            .req("GET", &format!("{keys}/{id}"))
            .token(&seed.alice)
            .send()
            .expect(200)
            .json();
        let blob = public.split(' ').nth(1).unwrap();
        assert!(got["key"].as_str().unwrap().contains(blob), "{got}");
    }
    let listed = gw
        .req("GET", &format!("{keys}?per_page=100"))
        .token(&seed.alice)
        .send()
        .expect(200)
        .json();
    assert_eq!(listed.as_array().unwrap().len(), created.len());
}
