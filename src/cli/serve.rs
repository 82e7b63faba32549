//! `keygate serve`: its flags, turned into `Settings`, and the server run until stopped.

use std::path::PathBuf;

use clap::Args;

use crate::config::Settings;
use crate::core::KeyPolicy;
use crate::server::Application;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "KEYGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Base URL clients use to reach keygate (for Link, url and Location), e.g. https://keys.example.com
    #[arg(long, env = "KEYGATE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Smallest RSA key accepted, in bits.
    #[arg(long, env = "KEYGATE_MIN_RSA_BITS", default_value_t = 2048)]
    min_rsa_bits: u32,
    /// Accept ssh-dss (DSA) keys, which OpenSSH has disabled by default since 7.0.
    #[arg(long, env = "KEYGATE_ALLOW_DSA")]
    allow_dsa: bool,
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "KEYGATE_WORKERS", default_value_t = 0)]
    workers: usize,
    /// The secret SSH hosts present on /internal/ routes (created 0600 when missing) [default:
    /// internal.secret beside the database]
    #[arg(long, env = "KEYGATE_INTERNAL_SECRET_FILE")]
    internal_secret_file: Option<PathBuf>,
    /// Most connections open at once, over all workers; default and ceiling: the open-file limit
    /// (ulimit -n) less 128 descriptors kept for the database and the server itself.
    #[arg(long, env = "KEYGATE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Most connections open at once from one client address (0: no limit, e.g. behind a proxy,
    /// where every client has the proxy's address) [default: half of --max-connections]
    #[arg(long, env = "KEYGATE_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// Days audit events are kept, pruned at start and hourly (0: forever).
    #[arg(
        long,
        env = "KEYGATE_AUDIT_RETENTION_DAYS",
        value_name = "DAYS",
        default_value_t = 0
    )]
    audit_retention_days: u64,
    #[command(flatten)]
    rate: crate::http::rate::RateFlags,
    /// Seconds a client may take to send a request body once its headers are in (then 408).
    #[arg(long, env = "KEYGATE_BODY_TIMEOUT", value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_timeout: u64,
    /// Serve HTTPS with this PEM certificate chain (leaf first); SIGHUP reloads it and the key.
    #[arg(long, env = "KEYGATE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "KEYGATE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Peers allowed GET /-/metrics on the main listener (CIDR blocks or addresses; the socket's
    /// peer, never X-Forwarded-For) [default: 127.0.0.0/8 ::1/128]
    #[arg(long, env = "KEYGATE_METRICS_ALLOW", value_name = "CIDR", num_args = 1..,
          value_delimiter = ',', value_parser = crate::telemetry::parse_cidr)]
    metrics_allow: Option<Vec<ipnet::IpNet>>,
    /// Serve /-/metrics and the health checks on this address of their own, to anyone who
    /// reaches it; the main listener then serves no metrics.
    #[arg(long, env = "KEYGATE_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<String>,
}

#[actix_web::main]
pub async fn run(db: PathBuf, args: ServeArgs) -> std::io::Result<()> {
    let settings = Settings {
        listen: args.listen,
        public_url: args.public_url,
        policy: KeyPolicy {
            min_rsa_bits: args.min_rsa_bits,
            allow_dsa: args.allow_dsa,
        },
        workers: args.workers,
        internal_secret_file: args.internal_secret_file,
        max_connections: args
            .max_connections
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        body_timeout: std::time::Duration::from_secs(args.body_timeout),
        max_connections_per_ip: args.max_connections_per_ip,
        rate: args.rate.settings(),
        audit_retention: (args.audit_retention_days > 0).then(|| {
            std::time::Duration::from_secs(args.audit_retention_days.saturating_mul(86_400))
        }),
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| crate::config::TlsFiles { cert, key }),
        metrics_allow: args
            .metrics_allow
            .unwrap_or_else(crate::telemetry::default_metrics_allow),
        metrics_listen: args.metrics_listen,
        ..Settings::new(db)
    };
    let app = Application::build(settings.clone())?;
    // Tests and scripts wait for this exact line to learn the port.
    let host = settings
        .listen
        .rsplit_once(':')
        .map_or("127.0.0.1", |(h, _)| h);
    super::logging::announce(&format!(
        "keygate listening on {}://{host}:{}",
        app.scheme(),
        app.port()
    ));
    app.run().await?;
    log::info!("keygate stopped");
    Ok(())
}
