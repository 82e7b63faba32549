//! Startup: opens the store, mounts every dialect and serves until stopped; used by `main` and the tests alike.

use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{NormalizePath, TrailingSlash, from_fn};
use actix_web::{App, HttpServer, web};

use crate::auth::internal::InternalSecret;
use crate::config::Settings;
use crate::core::Core;
use crate::dialect;
use crate::http::limits::{self, BodyDeadline};
use crate::http::rate;
use crate::http::{State, tls};
use crate::store::Store;
use crate::telemetry;

/// Connections waiting to be accepted. Waiting ones hold no descriptor of ours; past this the
/// kernel refuses new ones, which clients see at once instead of hanging.
const BACKLOG: u32 = 1024;
/// An idle connection between two requests is closed after this.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Time to receive a request's headers (actix answers 408 past it).
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client gets to read the end of a response before its connection is dropped.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Application {
    port: u16,
    tls: bool,
    /// The `--metrics-listen` listener's port, when there is one.
    metrics_port: Option<u16>,
    server: Server,
}

impl Application {
    /// Opens the store, binds the listener and builds the server; `run` then serves until stopped.
    pub fn build(settings: Settings) -> std::io::Result<Application> {
        // Before the store opens, so that its first transactions are counted.
        crate::telemetry::handle();
        let store = Store::open(&settings.db).map_err(std::io::Error::other)?;
        let core = Core::new(store, settings.policy.clone());
        if let Some(keep) = settings.audit_retention {
            prune_every_hour(core.clone(), keep);
        }
        let internal_secret = InternalSecret::read_or_create(&settings.internal_secret_path())?;
        let state = web::Data::new(State {
            core,
            public_url: settings
                .public_url
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_string()),
            internal_secret,
        });
        let deadline = web::Data::new(BodyDeadline {
            timeout: settings.body_timeout,
            render: dialect::body_timeout,
        });
        let limiter = web::Data::new(rate::Limiter::new(settings.rate.clone(), dialect::banned));
        let workers = match settings.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        // Each worker's read session holds a database and a WAL descriptor of its own, beyond
        // the pool's and the writer's that RESERVED_FDS counts.
        let fd_limit = limits::open_file_limit().map(|l| l.saturating_sub(2 * workers as u64));
        let budget = limits::connection_budget(settings.max_connections, fd_limit);
        if settings.max_connections.is_some_and(|asked| asked > budget) {
            log::warn!(
                "--max-connections lowered to {budget}: the open-file limit ({}) leaves no more",
                fd_limit.unwrap_or_default()
            );
        }
        // actix counts per worker; rounding down keeps the total within the budget.
        let per_worker = (budget / workers).max(1);
        let per_ip = settings
            .max_connections_per_ip
            .unwrap_or_else(|| limits::PeerConnections::default_limit(budget));
        let peers = limits::PeerConnections::new(per_ip);
        let listeners = web::Data::new(telemetry::Listeners::new(
            settings.metrics_allow.clone(),
            settings.metrics_listen.is_some(),
        ));
        let app_listeners = listeners.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(deadline.clone())
                .app_data(limiter.clone())
                .app_data(app_listeners.clone())
                // Inside: routing and the handlers see `//` merged, the log line sees the path as
                // the client sent it (octokit's `/api/v3//repos/…`, say).
                .wrap(NormalizePath::new(TrailingSlash::MergeOnly))
                .wrap(from_fn(crate::front::front))
                .configure(telemetry::configure)
                .configure(dialect::configure)
        })
        .on_connect(move |conn, extensions| peers.on_connect(conn, extensions))
        .workers(workers)
        .max_connections(per_worker)
        .backlog(BACKLOG)
        .keep_alive(KEEP_ALIVE)
        .client_request_timeout(HEADER_TIMEOUT)
        .client_disconnect_timeout(DISCONNECT_TIMEOUT);
        let server = match &settings.tls {
            Some(files) => {
                let (config, cert) = tls::server_config(files)?;
                tls::reload_on_sighup(cert)?;
                server.bind_rustls_0_23(&settings.listen, config)?
            }
            None => server.bind(&settings.listen)?,
        };
        let main_addrs = server.addrs().len();
        let server = match &settings.metrics_listen {
            Some(addr) => server.bind(addr)?,
            None => server,
        };
        let metrics_addrs = server.addrs().split_off(main_addrs);
        let metrics_port = metrics_addrs.first().map(|a| a.port());
        if let Some(port) = metrics_port {
            log::info!("metrics and health checks on port {port}");
        }
        listeners.bound(metrics_addrs);
        let port = server
            .addrs()
            .first()
            .map(|a| a.port())
            .ok_or_else(|| std::io::Error::other("bound to no address"))?;
        log::info!(
            "serving with {workers} workers, at most {} connections ({} per address), body timeout {:?}",
            per_worker * workers,
            if per_ip == 0 {
                "no limit".to_string()
            } else {
                per_ip.to_string()
            },
            settings.body_timeout
        );
        Ok(Application {
            port,
            tls: settings.tls.is_some(),
            metrics_port,
            server: server.run(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// Serves until SIGINT/SIGTERM (actix stops gracefully on both) or the handle stops it.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// Prunes events older than `keep` now and then every hour, off the async workers, for as
/// long as the server runs. Every gateway may do it: a second prune finds nothing and records
/// nothing.
fn prune_every_hour(core: Core, keep: std::time::Duration) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let core = core.clone();
            let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
            let pruned = actix_web::web::block(move || {
                core.prune_audit(crate::store::now_ms().saturating_sub(keep_ms))
            })
            .await;
            match pruned {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => log::info!("audit: pruned {n} events older than {keep:?}"),
                Ok(Err(err)) => log::warn!("audit: pruning failed: {err}"),
                Err(err) => log::warn!("audit: pruning did not run: {err}"),
            }
        }
    });
}
