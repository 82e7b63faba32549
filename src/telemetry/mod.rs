//! Prometheus metrics and health checks: the process-wide recorder, the metric names, and what the layers above the store record.

mod requests;
mod routes;

pub use requests::{Observed, dialect_of, off_limits};
pub use routes::not_found;
pub use routes::{Listeners, configure};

use std::sync::OnceLock;
use std::time::Duration;

use ipnet::IpNet;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request counts by dialect, route template, method and status class.
pub const REQUESTS: &str = "keygate_http_requests_total";
/// Time from the request's arrival at the middleware to its response head.
pub const LATENCY: &str = "keygate_http_request_duration_seconds";
/// The SSH door's decisions, by stage, outcome and reason.
pub const SSH_DECISIONS: &str = "keygate_ssh_decisions_total";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Group commit takes at most 128 requests a batch (`store::sqlite::group_commit`).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
/// Histograms keep their samples until upkeep folds them into buckets; without a scrape they
/// would otherwise grow for ever.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Who may read `/-/metrics` on the main listener by default: this host only.
pub fn default_metrics_allow() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// A `--metrics-allow` value: a CIDR block, or one address (a /32 or /128).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither a CIDR block nor an address"))
}

/// The process's recorder, installed on first use. It is global because the store records
/// through the `metrics` facade (the store knows nothing of HTTP); one process serves one
/// instance, so one registry is the whole truth about it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LATENCY.to_string()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("keygate_store_batch_size".to_string()),
                    BATCH_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            log::warn!("another metrics recorder is installed: /-/metrics will stay empty");
        }
        describe();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(err) = spawned {
            log::warn!("metrics upkeep thread did not start: {err}");
        }
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS,
        "HTTP requests answered, by dialect, route template, method and status class."
    );
    describe_histogram!(
        LATENCY,
        Unit::Seconds,
        "Time to answer an HTTP request (to the response head), by dialect and route template."
    );
    describe_counter!(
        "keygate_store_transactions_total",
        "Transactions asked of the store, by backend and kind (read or write)."
    );
    describe_counter!(
        "keygate_store_busy_total",
        "Store operations answered busy (503 with Retry-After to the client)."
    );
    describe_counter!(
        "keygate_store_retries_total",
        "PostgreSQL write transactions run again after a serialization failure."
    );
    describe_histogram!(
        "keygate_store_batch_size",
        "Write requests committed together by one SQLite group-commit batch (one fsync)."
    );
    describe_counter!(
        "keygate_store_failed_batches_total",
        "SQLite group-commit batches whose transaction was lost; every member got a store error."
    );
    describe_counter!(
        SSH_DECISIONS,
        "SSH door decisions: stage (login, access), outcome (allow, deny) and reason."
    );
    describe_gauge!("keygate_users", "Users, counted at scrape time.");
    describe_gauge!(
        "keygate_repositories",
        "Repositories, counted at scrape time."
    );
    describe_gauge!(
        "keygate_deploy_keys",
        "Deploy keys, counted at scrape time."
    );
}

/// Stage 1 of the SSH door: a key offered to sshd was accepted, or is no active deploy key.
pub fn ssh_login(accepted: bool) {
    let counter = if accepted {
        metrics::counter!(SSH_DECISIONS, "stage" => "login", "outcome" => "allow", "reason" => "none")
    } else {
        metrics::counter!(SSH_DECISIONS, "stage" => "login", "outcome" => "deny", "reason" => "no_key")
    };
    counter.increment(1);
}

/// Stage 2: a git command on a repository was allowed, or denied for `reason`
/// (`SshDenial::as_str`, a fixed set).
pub fn ssh_access(denied: Option<&'static str>) {
    let counter = match denied {
        None => {
            metrics::counter!(SSH_DECISIONS, "stage" => "access", "outcome" => "allow", "reason" => "none")
        }
        Some(reason) => {
            metrics::counter!(SSH_DECISIONS, "stage" => "access", "outcome" => "deny", "reason" => reason)
        }
    };
    counter.increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_scrape_by_default() {
        let allowed = default_metrics_allow();
        let may = |ip: &str| {
            allowed
                .iter()
                .any(|n| n.contains(&ip.parse::<std::net::IpAddr>().unwrap()))
        };
        assert!(may("127.0.0.1") && may("127.255.0.9") && may("::1"));
        assert!(!may("10.0.0.1") && !may("192.168.1.1") && !may("::2") && !may("0.0.0.0"));
    }
}
