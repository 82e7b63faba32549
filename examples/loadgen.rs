//! Closed-loop HTTP load generator for keygate's benchmarks: N keep-alive clients for D seconds.
//!
//! usage: loadgen URL TOKEN SCENARIO [--clients N] [--seconds D]
//! scenarios: gitlab-list, gitlab-get, github-list, create-delete; `seed` adds --count keys to project 1;
//! `repeat --path P --count N` sends exactly N identical GETs of P (with `PRIVATE-TOKEN: TOKEN`) on one
//! keep-alive connection, one at a time, each must be 200: a fixed workload for bench/callgrind.sh.
//! `repeat-write --path P --count N` does the same for writes: N requests on one connection,
//! alternately a POST of a fresh ed25519 key to the GitLab collection P (must be 201) and the
//! DELETE of the key just created (must be 204); N must be even.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;

struct Options {
    url: String,
    token: String,
    scenario: String,
    clients: usize,
    seconds: u64,
    count: u64,
    path: String,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let positional: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || !args[i - 1].starts_with("--")))
        .map(|(_, a)| a)
        .collect();
    if positional.len() < 3 {
        eprintln!("usage: loadgen URL TOKEN SCENARIO [--clients N] [--seconds D]");
        std::process::exit(2);
    }
    Options {
        url: positional[0].trim_end_matches('/').to_string(),
        token: positional[1].clone(),
        scenario: positional[2].clone(),
        clients: flag("--clients", 16) as usize,
        seconds: flag("--seconds", 10),
        count: flag("--count", 1000),
        path: args
            .iter()
            .position(|a| a == "--path")
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_default(),
    }
}

fn fresh_key() -> String {
    let mut blob = Vec::with_capacity(51);
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).expect("random");
    blob.extend_from_slice(&random);
    format!(
        "ssh-ed25519 {} bench",
        base64::engine::general_purpose::STANDARD.encode(&blob)
    )
}

/// Runs one iteration of the scenario; returns how many requests it made, or the first bad status.
fn iteration(agent: &ureq::Agent, o: &Options, n: u64) -> Result<u32, String> {
    let auth = format!("token {}", o.token);
    let check = |status: u16, want: u16, what: &str| {
        if status == want {
            Ok(())
        } else {
            Err(format!("{what}: HTTP {status}"))
        }
    };
    match o.scenario.as_str() {
        "gitlab-list" => {
            let page = n % 50 + 1;
            let res = agent
                .get(format!(
                    "{}/api/v4/projects/1/deploy_keys?page={page}",
                    o.url
                ))
                .header("PRIVATE-TOKEN", &o.token)
                .call()
                .map_err(|e| e.to_string())?;
            check(res.status().as_u16(), 200, "list")?;
            Ok(1)
        }
        "gitlab-get" => {
            let id = n % 1000 + 1;
            let mut res = agent
                .get(format!("{}/api/v4/projects/1/deploy_keys/{id}", o.url))
                .header("PRIVATE-TOKEN", &o.token)
                .call()
                .map_err(|e| e.to_string())?;
            let _ = res.body_mut().read_to_string();
            check(res.status().as_u16(), 200, "get")?;
            Ok(1)
        }
        "github-list" => {
            let page = n % 34 + 1;
            let mut res = agent
                .get(format!(
                    "{}/api/v3/repos/acme/widgets/keys?page={page}",
                    o.url
                ))
                .header("Authorization", &auth)
                .call()
                .map_err(|e| e.to_string())?;
            let _ = res.body_mut().read_to_string();
            check(res.status().as_u16(), 200, "github list")?;
            Ok(1)
        }
        "create-delete" => {
            let body = serde_json::json!({"title": "bench", "key": fresh_key()});
            let mut res = agent
                .post(format!("{}/api/v4/projects/2/deploy_keys", o.url))
                .header("PRIVATE-TOKEN", &o.token)
                .send_json(&body)
                .map_err(|e| e.to_string())?;
            check(res.status().as_u16(), 201, "create")?;
            let created: serde_json::Value =
                res.body_mut().read_json().map_err(|e| e.to_string())?;
            let id = created["id"].as_i64().unwrap_or_default();
            let mut res = agent
                .delete(format!("{}/api/v4/projects/2/deploy_keys/{id}", o.url))
                .header("PRIVATE-TOKEN", &o.token)
                .call()
                .map_err(|e| e.to_string())?;
            let _ = res.body_mut().read_to_string();
            check(res.status().as_u16(), 204, "delete")?;
            Ok(2)
        }
        other => Err(format!("unknown scenario {other}")),
    }
}

/// A keep-alive client that hands every status back, so a scenario can say which one it got.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Adds `count` keys to project 1 through the GitLab API, one request each.
fn seed(o: &Options) {
    let agent = agent();
    for i in 0..o.count {
        let body = serde_json::json!({"title": format!("seed-{i}"), "key": fresh_key(), "can_push": i % 2 == 0});
        let res = agent
            .post(format!("{}/api/v4/projects/1/deploy_keys", o.url))
            .header("PRIVATE-TOKEN", &o.token)
            .send_json(&body)
            .expect("seed request");
        assert_eq!(res.status().as_u16(), 201, "seeding key {i}");
    }
}

/// Sends `count` identical GETs of `path`, one at a time on one connection.
fn repeat(o: &Options) {
    let agent = agent();
    for i in 0..o.count {
        let mut res = agent
            .get(format!("{}{}", o.url, o.path))
            .header("PRIVATE-TOKEN", &o.token)
            .call()
            .expect("repeat request");
        let _ = res.body_mut().read_to_string();
        assert_eq!(res.status().as_u16(), 200, "request {i} of {}", o.path);
    }
}

/// Sends `count` writes on one connection, one at a time: a create of a fresh key on the GitLab
/// collection `path`, then the delete of that key, and so on; the database ends as it began
/// (but for the audit trail), so two runs of different lengths differ only in their writes.
fn repeat_write(o: &Options) {
    assert!(
        o.count.is_multiple_of(2),
        "repeat-write: --count must be even"
    );
    let agent = agent();
    let collection = format!("{}{}", o.url, o.path);
    for i in 0..o.count / 2 {
        let body = serde_json::json!({"title": "bench", "key": fresh_key()});
        let mut res = agent
            .post(&collection)
            .header("PRIVATE-TOKEN", &o.token)
            .send_json(&body)
            .expect("create request");
        assert_eq!(res.status().as_u16(), 201, "create {i} on {}", o.path);
        let created: serde_json::Value = res.body_mut().read_json().expect("created key");
        let id = created["id"].as_i64().expect("an id");
        let mut res = agent
            .delete(format!("{collection}/{id}"))
            .header("PRIVATE-TOKEN", &o.token)
            .call()
            .expect("delete request");
        let _ = res.body_mut().read_to_string();
        assert_eq!(res.status().as_u16(), 204, "delete {i} of {}/{id}", o.path);
    }
}

fn main() {
    let o = Arc::new(options());
    match o.scenario.as_str() {
        "seed" => return seed(&o),
        "repeat" => return repeat(&o),
        "repeat-write" => return repeat_write(&o),
        _ => {}
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..o.clients)
        .map(|c| {
            let (o, stop) = (o.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut latencies: Vec<u32> = Vec::with_capacity(100_000);
                let mut requests = 0u64;
                let mut n = c as u64 * 7919;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match iteration(&agent, &o, n) {
                        Ok(made) => requests += u64::from(made),
                        Err(e) => return Err(e),
                    }
                    latencies.push(t.elapsed().as_micros() as u32);
                    n += 1;
                }
                Ok((requests, latencies))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(o.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0u64;
    let mut all: Vec<u32> = Vec::new();
    for w in workers {
        match w.join().expect("worker") {
            Ok((requests, lat)) => {
                total += requests;
                all.extend(lat);
            }
            Err(e) => {
                eprintln!("loadgen: {e}");
                std::process::exit(1);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "{}: {} clients, {:.1}s, {} requests, {:.0} req/s, iteration p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        o.scenario,
        o.clients,
        elapsed,
        total,
        total as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        all.last().copied().unwrap_or(0) as f64 / 1000.0
    );
}
