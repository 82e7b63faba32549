//! Two gateways on one PostgreSQL database: what one writes the other serves at once, racing
//! creates make one key, and killing one gateway loses no acknowledged write. Needs
//! KEYGATE_TEST_POSTGRES_URL (scripts/test.sh provides it); skipped without.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Gateway, PgSchema, Seed, access_key, fresh_key, signed};
use serde_json::json;

/// One PostgreSQL schema, gateway A on it (seeded), and gateway B started on the same schema.
struct Pair {
    a: Gateway,
    b: Gateway,
    seed: Seed,
    url: String,
    _schema: PgSchema,
}

fn pair() -> Option<Pair> {
    if std::env::var_os("KEYGATE_TEST_POSTGRES_URL").is_none() {
        eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is unset (scripts/test.sh sets it)");
        return None;
    }
    let schema = PgSchema::create();
    let url = schema.url.clone();
    let a = Gateway::start_with(|s| s.db = PathBuf::from(&url));
    let seed = a.seed();
    let b = a.start_peer();
    assert_ne!(a.url, b.url, "each gateway on its own port");
    Some(Pair {
        a,
        b,
        seed,
        url,
        _schema: schema,
    })
}

fn gitlab_keys(seed: &Seed) -> String {
    format!("/api/v4/projects/{}/deploy_keys", seed.widgets)
}

#[test]
fn a_key_added_on_one_gateway_is_the_same_key_through_every_dialect_on_the_other() {
    let Some(p) = pair() else { return };
    let added =
        p.a.req("POST", &gitlab_keys(&p.seed))
            .token(&p.seed.alice)
            .json(&json!({"title": "from-a", "key": fresh_key("a"), "can_push": true}))
            .send()
            .expect(201)
            .json();
    let id = added["id"].as_i64().unwrap();
    let on_b =
        p.b.req("GET", &format!("{}/{id}", gitlab_keys(&p.seed)))
            .token(&p.seed.alice)
            .send()
            .expect(200)
            .json();
    assert_eq!(on_b["fingerprint"], added["fingerprint"]);
    assert_eq!(on_b["fingerprint_sha256"], added["fingerprint_sha256"]);
    let github =
        p.b.req("GET", &format!("/api/v3/repos/acme/widgets/keys/{id}"))
            .header("Authorization", &format!("token {}", p.seed.alice))
            .send()
            .expect(200)
            .json();
    assert_eq!(github["id"], id);
    assert_eq!(github["read_only"], false);
    assert_eq!(
        github["key"].as_str().unwrap(),
        added["key"].as_str().unwrap().rsplit_once(' ').unwrap().0
    );
    let creds = access_key(&p.b, "alice");
    let listed = signed(
        &p.b,
        &creds,
        "GET",
        &format!(
            "/v4/repositories/{}/deploy-keys?limit=100&offset=0",
            p.seed.widgets
        ),
        None,
    )
    .send()
    .expect(200)
    .json();
    let item = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .expect("CodeArts on B lists the key A stored");
    assert_eq!(item["fingerprint"], added["fingerprint"]);
    assert_eq!(item["title"], "from-a");
}

fn authorized_keys(gw: &Gateway, secret: &Path, kind: &str, b64: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args([
            "ssh",
            "authorized-keys",
            "--gateway",
            &gw.url,
            "--secret-file",
        ])
        .arg(secret)
        .args(["--git-root", "/srv/git", "git", kind, b64])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_key_revoked_on_b_is_refused_by_the_ssh_door_of_a_at_once() {
    let Some(p) = pair() else { return };
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, p.a.internal_secret()).unwrap();
    let public = fresh_key("door");
    let mut words = public.split_whitespace();
    let (kind, b64) = (words.next().unwrap(), words.next().unwrap());
    let id =
        p.b.req("POST", &gitlab_keys(&p.seed))
            .token(&p.seed.alice)
            .json(&json!({"title": "door", "key": public}))
            .send()
            .expect(201)
            .json()["id"]
            .as_i64()
            .unwrap();
    assert!(
        authorized_keys(&p.a, &secret, kind, b64).contains(&format!("key-{id}")),
        "A's door lets in the key B added"
    );
    p.b.req("DELETE", &format!("/repos/acme/widgets/keys/{id}"))
        .header("Authorization", &format!("token {}", p.seed.alice))
        .send()
        .expect(204);
    assert_eq!(
        authorized_keys(&p.a, &secret, kind, b64),
        "",
        "revoked on B, refused by A"
    );
}

#[test]
fn sixty_four_racing_creates_of_one_key_on_two_gateways_make_one_key_and_no_500() {
    let Some(p) = pair() else { return };
    let p = Arc::new(p);
    let key = Arc::new(fresh_key("race"));
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let (p, key) = (p.clone(), key.clone());
            std::thread::spawn(move || {
                let gw = if i % 2 == 0 { &p.a } else { &p.b };
                let res = gw
                    .req("POST", &gitlab_keys(&p.seed))
                    .token(&p.seed.alice)
                    .json(&json!({"title": format!("race {i}"), "key": *key}))
                    .send();
                (
                    res.status,
                    res.json()["id"].as_i64(),
                    res.header("retry-after").map(String::from),
                )
            })
        })
        .collect();
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut ids = Vec::new();
    for (status, id, retry_after) in &answers {
        match status {
            201 => ids.push(id.expect("an id")),
            // Only when every retry lost its race; told when to come back, never a 500.
            503 => assert!(retry_after.is_some(), "a 503 says when to retry"),
            other => panic!("unexpected status {other}: {answers:?}"),
        }
    }
    assert!(!ids.is_empty());
    assert!(ids.iter().all(|id| *id == ids[0]), "one key: {ids:?}");
    let listed =
        p.b.req("GET", &gitlab_keys(&p.seed))
            .token(&p.seed.alice)
            .send()
            .expect(200)
            .json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let busy = answers.iter().filter(|a| a.0 == 503).count();
    eprintln!(
        "64 racing creates: {} answered 201, {busy} answered 503",
        ids.len()
    );
}

/// A gateway as its own process, on the pair's database, so it can be killed with SIGKILL.
fn spawn_gateway(db: &str, secret: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--db",
            db,
        ])
        .arg("--internal-secret-file")
        .arg(secret)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("keygate starts");
    let (url, _, lines) = common::listening(&mut child);
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

#[test]
fn a_storm_on_both_gateways_then_sigkill_of_one_loses_no_acknowledged_write() {
    let Some(p) = pair() else { return };
    let secret = p.a.dir().join("internal.secret");
    let (mut child, killed_url) = spawn_gateway(&p.url, &secret);
    let p = Arc::new(p);
    let stop = Arc::new(AtomicBool::new(false));
    // Ids whose create was answered 201 and not deleted since; ids whose delete was answered 204.
    let live = Arc::new(Mutex::new(Vec::new()));
    let gone = Arc::new(Mutex::new(Vec::new()));
    // Every answer given must be the success or a 503 to retry: never a 500 or another error.
    let wrong = Arc::new(Mutex::new(Vec::new()));
    let check = |wrong: &Mutex<Vec<String>>, what: &str, res: &common::Resp, ok: u16| {
        let busy = res.status == 503 && res.header("retry-after").is_some();
        if res.status != ok && !busy {
            wrong
                .lock()
                .unwrap()
                .push(format!("{what}: {} {}", res.status, res.body));
        }
    };
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (p, stop, live, gone) = (p.clone(), stop.clone(), live.clone(), gone.clone());
            let wrong = wrong.clone();
            let killed_url = killed_url.clone();
            std::thread::spawn(move || {
                let target = if w % 2 == 0 {
                    killed_url.as_str()
                } else {
                    p.b.url.as_str()
                };
                let path = gitlab_keys(&p.seed);
                let mut mine: Vec<i64> = Vec::new();
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let created =
                        p.b.req("POST", &path)
                            .retarget(&p.b.url, target)
                            .token(&p.seed.alice)
                            .json(&json!({"title": format!("w{w}-{i}"), "key": fresh_key("storm")}))
                            .try_send();
                    let Some(created) = created else { break };
                    check(&wrong, "create", &created, 201);
                    if created.status == 201 {
                        let id = created.json()["id"].as_i64().unwrap();
                        live.lock().unwrap().push(id);
                        mine.push(id);
                    }
                    if i % 2 == 1 && !mine.is_empty() {
                        let id = mine.remove(0);
                        let deleted =
                            p.b.req("DELETE", &format!("{path}/{id}"))
                                .retarget(&p.b.url, target)
                                .token(&p.seed.alice)
                                .try_send();
                        // A delete left unanswered may or may not have happened: the key
                        // leaves the set of acknowledged live keys either way.
                        live.lock().unwrap().retain(|x| *x != id);
                        let Some(deleted) = deleted else { break };
                        check(&wrong, "delete", &deleted, 204);
                        if deleted.status == 204 {
                            gone.lock().unwrap().push(id);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let wrong = wrong.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "answers that were neither success nor 503: {wrong:?}"
    );
    let (live, gone) = (live.lock().unwrap().clone(), gone.lock().unwrap().clone());
    assert!(
        live.len() >= 4 && gone.len() >= 4,
        "a storm: {} live, {} gone",
        live.len(),
        gone.len()
    );
    // Read back through the survivor, and through a gateway started afresh.
    let fresh = p.a.start_peer();
    for gw in [&p.b, &fresh] {
        for id in &live {
            gw.req("GET", &format!("{}/{id}", gitlab_keys(&p.seed)))
                .token(&p.seed.alice)
                .send()
                .expect(200);
        }
        for id in &gone {
            gw.req("GET", &format!("{}/{id}", gitlab_keys(&p.seed)))
                .token(&p.seed.alice)
                .send()
                .expect(404);
        }
    }
    eprintln!(
        "storm: {} acknowledged keys kept, {} acknowledged deletes stayed deleted",
        live.len(),
        gone.len()
    );
}

#[test]
fn the_password_of_a_database_url_is_never_logged() {
    let Some(p) = pair() else { return };
    // The test cluster trusts loopback, so any password connects; a base URL with its own keeps it.
    let (scheme, rest) = p.url.split_once("://").unwrap();
    let Some((user, host)) = rest.split_once('@').filter(|(user, _)| !user.contains(':')) else {
        eprintln!("skipped: the base URL carries a password of its own");
        return;
    };
    let with_password = format!("{scheme}://{user}:hunter2pw@{host}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &with_password])
        .arg("--internal-secret-file")
        .arg(p.a.dir().join("internal.secret"))
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, read, lines) = common::listening(&mut child);
    let mut log: String = read.iter().map(|l| format!("{l}\n")).collect();
    p.b.req("GET", &gitlab_keys(&p.seed))
        .retarget(&p.b.url, &url)
        .token(&p.seed.alice)
        .send()
        .expect(200);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    for line in lines.map_while(Result::ok) {
        log.push_str(&line);
        log.push('\n');
    }
    child.wait().unwrap();
    assert!(log.contains(":***@"), "the URL is logged redacted:\n{log}");
    assert!(!log.contains("hunter2pw"), "{log}");
    // Nor when the database cannot be reached and the CLI reports why.
    let unreachable = format!(
        "postgres://kg:hunter2pw@127.0.0.1:{}/x",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["--db", &unreachable, "user", "list"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("hunter2pw"), "{stderr}");
}
