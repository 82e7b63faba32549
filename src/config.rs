//! Server settings, from CLI flags with `KEYGATE_*` environment fallbacks.

use std::path::PathBuf;
use std::time::Duration;

use crate::core::KeyPolicy;

/// How long a client may take to send a request body once its headers are in.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Settings {
    /// A SQLite file, or a `postgres://` URL (which may hold a password: log it redacted).
    pub db: PathBuf,
    /// `host:port`; port 0 asks the OS for a free port (tests).
    pub listen: String,
    /// The client-visible base URL (`https://keys.example.com`), used in `Link`, `url` and
    /// `Location`; when absent, built from the request's Host header.
    pub public_url: Option<String>,
    pub policy: KeyPolicy,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// The secret the SSH hosts present on `/internal/` routes; `None` means `internal.secret`
    /// beside the database. Created (mode 0600) on first start when missing.
    pub internal_secret_file: Option<PathBuf>,
    /// Open connections allowed at once, over all workers; `None` derives it from the process's
    /// open-file limit (see `http::limits::connection_budget`).
    pub max_connections: Option<usize>,
    /// Connections open at once from one client address; `None` is half of the connection
    /// budget, `Some(0)` no limit (behind a proxy, every client has the proxy's address).
    pub max_connections_per_ip: Option<usize>,
    /// Time allowed to receive a request body once its headers are complete (answered 408).
    pub body_timeout: Duration,
    /// How long audit events are kept; `None` keeps them forever. Pruned at start and hourly.
    pub audit_retention: Option<Duration>,
    /// Peers (socket addresses, never `X-Forwarded-For`) that may read `/-/metrics` on the main
    /// listener.
    pub metrics_allow: Vec<ipnet::IpNet>,
    /// A listener of its own for `/-/metrics` and the health checks; the main one then serves
    /// no metrics.
    pub metrics_listen: Option<String>,
    /// Serve HTTPS with this certificate and key instead of plain HTTP (see `http::tls`).
    pub tls: Option<TlsFiles>,
    /// The failed-authentication ban and the per-user request budget (`http::rate`).
    pub rate: crate::http::rate::RateSettings,
}

pub use crate::http::tls::TlsFiles;

impl Settings {
    /// The defaults `keygate serve` uses, on database `db`; fields added later get defaults here,
    /// so callers that only care about a few need not list them all.
    pub fn new(db: impl Into<PathBuf>) -> Settings {
        Settings {
            db: db.into(),
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            policy: KeyPolicy::default(),
            workers: 0,
            max_connections: None,
            max_connections_per_ip: None,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            internal_secret_file: None,
            tls: None,
            rate: crate::http::rate::RateSettings::default(),
            metrics_allow: crate::telemetry::default_metrics_allow(),
            metrics_listen: None,
            audit_retention: None,
        }
    }

    /// The internal secret's file: as configured, else beside a SQLite database, else (a
    /// PostgreSQL URL has no "beside") `internal.secret` in the working directory. Every gateway
    /// of one instance must hold the same secret; see docs/scale-out.md.
    pub fn internal_secret_path(&self) -> PathBuf {
        self.internal_secret_file.clone().unwrap_or_else(|| {
            if self.db.to_str().is_some_and(crate::store::is_postgres_url) {
                return PathBuf::from("internal.secret");
            }
            self.db
                .parent()
                .unwrap_or_else(|| std::path::Path::new("."))
                .join("internal.secret")
        })
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Nothing secret lives here today; listing fields by hand keeps it that way on purpose.
        f.debug_struct("Settings")
            .field("db", &crate::store::redact(&self.db.to_string_lossy()))
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("policy", &self.policy)
            .field("workers", &self.workers)
            .field("internal_secret_file", &self.internal_secret_file)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("body_timeout", &self.body_timeout)
            .field("tls", &self.tls)
            .field("metrics_allow", &self.metrics_allow)
            .field("metrics_listen", &self.metrics_listen)
            .field("audit_retention", &self.audit_retention)
            .finish()
    }
}
