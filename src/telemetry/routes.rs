//! `/-/metrics`, `/-/liveness` and `/-/readiness`: who may read them on which listener, and what they answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use actix_web::dev::ServiceRequest;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use ipnet::IpNet;
use serde_json::json;

use crate::core::Inventory;
use crate::http::{State, blocking};

/// How long readiness waits for the store before it calls it unreachable.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Which listener is which, and who may read metrics on the main one.
pub struct Listeners {
    /// Peers allowed `/-/metrics` on the main listener (`--metrics-allow`).
    allow: Vec<IpNet>,
    /// The `--metrics-listen` listener's bound addresses, once bound; `None` without one.
    metrics: Option<OnceLock<Vec<SocketAddr>>>,
}

impl Listeners {
    pub fn new(allow: Vec<IpNet>, separate: bool) -> Listeners {
        Listeners {
            allow,
            metrics: separate.then(OnceLock::new),
        }
    }

    /// Records where the metrics listener was bound (port 0 becomes a real port only then).
    pub fn bound(&self, addrs: Vec<SocketAddr>) {
        if let Some(cell) = &self.metrics {
            let _ = cell.set(addrs);
        }
    }

    fn on_metrics_listener(&self, req: &HttpRequest) -> bool {
        let local = req.app_config().local_addr();
        self.metrics
            .as_ref()
            .and_then(OnceLock::get)
            .is_some_and(|addrs| addrs.contains(&local))
    }

    /// A request on the metrics listener for anything but `/-/` routes.
    pub fn refuses_api(&self, req: &ServiceRequest) -> bool {
        self.metrics.is_some()
            // Before NormalizePath: `//-/health` is a `/-/` route too.
            && !req.path().trim_start_matches('/').starts_with("-/")
            && self.on_metrics_listener(req.request())
    }

    /// With a metrics listener, metrics are served there only, to whoever reaches it (its
    /// address is the control); without one, on the main listener to allowed peers. The peer is
    /// the socket's: `X-Forwarded-For` is anyone's to write.
    fn may_scrape(&self, req: &HttpRequest) -> bool {
        if self.metrics.is_some() {
            return self.on_metrics_listener(req);
        }
        req.peer_addr()
            .map(|peer| canonical(peer.ip()))
            .is_some_and(|ip| self.allow.iter().any(|net| net.contains(&ip)))
    }
}

/// `::ffff:127.0.0.1` (a v4 client on a dual-stack listener) is `127.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/-/metrics", web::get().to(scrape))
        .route("/-/liveness", web::get().to(liveness))
        .route("/-/readiness", web::get().to(readiness));
}

/// What a refused scrape gets: the same 404 as a path that does not exist, as GitLab answers
/// peers outside its monitoring whitelist.
pub fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("application/json")
        .body(r#"{"error":"404 Not Found"}"#)
}

async fn scrape(
    req: HttpRequest,
    state: web::Data<State>,
    listeners: web::Data<Listeners>,
) -> HttpResponse {
    if !listeners.may_scrape(&req) {
        return not_found();
    }
    let core = state.core.clone();
    let counted = blocking(move || core.inventory()).await;
    let inventory = match counted {
        Ok(inventory) => Some(inventory),
        Err(err) => {
            // The rest is still worth a scrape; the gauges keep their last counts.
            log::warn!("metrics: cannot count users, repositories and keys: {err}");
            None
        }
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(render(inventory))
}

/// The recorder's text with this store's gauges. Gauges are process-wide, as is the recorder;
/// the lock keeps one scrape's counts from being rendered into another's answer when two
/// servers share a process (the tests).
fn render(inventory: Option<Inventory>) -> String {
    static SCRAPE: Mutex<()> = Mutex::new(());
    let handle = super::handle();
    let _one_at_a_time = SCRAPE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(counts) = inventory {
        metrics::gauge!("keygate_users").set(counts.users as f64);
        metrics::gauge!("keygate_repositories").set(counts.repositories as f64);
        metrics::gauge!("keygate_deploy_keys").set(counts.keys as f64);
    }
    handle.render()
}

/// The process is up and answering: nothing else is asked (a restart would not fix the store).
async fn liveness() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the store can serve (`Store::ping`) within `READY_TIMEOUT`; 503 otherwise, in
/// GitLab's shape (`status`, and one entry per check).
async fn readiness(state: web::Data<State>) -> HttpResponse {
    let core = state.core.clone();
    let asked = actix_web::rt::time::timeout(READY_TIMEOUT, blocking(move || core.ping())).await;
    let failure = match asked {
        Ok(Ok(())) => None,
        Ok(Err(err)) => {
            log::warn!("readiness: the store failed: {err}");
            Some("the database did not answer")
        }
        Err(_) => Some("the database did not answer in time"),
    };
    match failure {
        None => HttpResponse::Ok().json(json!({"status": "ok", "db_check": [{"status": "ok"}]})),
        Some(message) => HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE).json(json!({
            "status": "failed",
            "db_check": [{"status": "failed", "message": message}],
        })),
    }
}
