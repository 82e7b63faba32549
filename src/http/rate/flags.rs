//! The `keygate serve` flags of the rate limits (flattened into the CLI), with `KEYGATE_*` fallbacks.

use std::time::Duration;

use ipnet::IpNet;

use super::RateSettings;

#[derive(clap::Args, Debug, Clone)]
pub struct RateFlags {
    /// Requests each user may make per --rate-limit-window (0: no budget; no X-RateLimit-* or
    /// RateLimit-* headers, and GitHub's /rate_limit answers 404)
    #[arg(long, env = "KEYGATE_RATE_LIMIT_PER_USER", default_value_t = 5000)]
    pub rate_limit_per_user: u64,
    /// Seconds of a user's budget window, from its first request
    #[arg(long, env = "KEYGATE_RATE_LIMIT_WINDOW", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_limit_window: u64,
    /// Failed authentications from one address within --auth-ban-window that ban it (0: no ban)
    #[arg(long, env = "KEYGATE_AUTH_BAN_MAX_FAILURES", default_value_t = 30)]
    pub auth_ban_max_failures: u32,
    /// Seconds within which failed authentications are counted
    #[arg(long, env = "KEYGATE_AUTH_BAN_WINDOW", default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..))]
    pub auth_ban_window: u64,
    /// Seconds a banned address is refused, valid credentials included
    #[arg(long, env = "KEYGATE_AUTH_BAN_DURATION", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub auth_ban_duration: u64,
    /// Proxies (CIDR or address, comma-separated) whose X-Forwarded-For names the client; from
    /// any other peer the socket address is the client [default: none]
    #[arg(long, env = "KEYGATE_TRUSTED_PROXIES", value_delimiter = ',', num_args = 1.., value_parser = parse_net)]
    pub trusted_proxies: Vec<IpNet>,
}

/// `10.0.0.0/8`, or a single address (`10.0.0.1`, `::1`) as its own network.
fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR network or an IP address"))
}

impl RateFlags {
    pub fn settings(&self) -> RateSettings {
        RateSettings {
            per_user: self.rate_limit_per_user,
            window: Duration::from_secs(self.rate_limit_window),
            ban_max_failures: self.auth_ban_max_failures,
            ban_window: Duration::from_secs(self.auth_ban_window),
            ban_duration: Duration::from_secs(self.auth_ban_duration),
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}
