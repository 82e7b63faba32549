//! Rate limits, kept in this process: the failed-authentication ban per client address and the request budget per user.
//!
//! The ban is GitLab's (Rack::Attack's "failed authentication ban"): `ban_max_failures` failed
//! logins from one address within `ban_window` refuse that address, valid credentials included,
//! for `ban_duration`; a successful login clears the address's count, as on GitLab. The budget is
//! GitHub's: a fixed window per user that starts at the user's first request, `per_user`
//! requests in it, then refusals until it ends (the `reset` every dialect reports). A fixed
//! window, unlike a GCRA or token bucket (`governor`), has exactly the `limit`/`remaining`/
//! `reset` the vendors' headers promise, so what keygate reports is what it enforces.

mod address;
mod flags;
mod table;

pub use flags::RateFlags;

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServiceRequest;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use ipnet::IpNet;

use table::Table;

/// Users and addresses each table remembers at most: a few MiB, whatever an attacker sends.
const TABLE_CAP: usize = 100_000;

/// The limits, each turned off by a zero count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSettings {
    /// Requests per user per `window`; 0 turns budgets off.
    pub per_user: u64,
    pub window: Duration,
    /// Failed logins from one address within `ban_window` that ban it; 0 turns the ban off.
    pub ban_max_failures: u32,
    pub ban_window: Duration,
    pub ban_duration: Duration,
    /// Peers whose `X-Forwarded-For` names the client (a proxy in front of keygate).
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for RateSettings {
    /// GitHub's 5000 requests an hour, GitLab's ban (30 failures in 3 minutes, banned an hour).
    fn default() -> Self {
        RateSettings {
            per_user: 5000,
            window: Duration::from_secs(3600),
            ban_max_failures: 30,
            ban_window: Duration::from_secs(180),
            ban_duration: Duration::from_secs(3600),
            trusted_proxies: Vec::new(),
        }
    }
}

/// A user's budget as the vendors report it; `reset` is in epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: u64,
    pub remaining: u64,
    pub used: u64,
    pub reset: u64,
    /// Whole seconds until `reset`, at least 1: what `Retry-After` says.
    pub retry_after: u64,
    /// The window's length in seconds.
    pub window: u64,
}

struct Window {
    start_ms: u64,
    used: u64,
}

struct Failures {
    first_ms: u64,
    count: u32,
    banned_until_ms: u64,
}

/// The tables and settings, shared by every worker (`web::Data`), and how a banned address is
/// answered: a dialect's shape chosen from the path, given the seconds the ban has left.
pub struct Limiter {
    settings: RateSettings,
    budgets: Table<i64, Window>,
    failures: Table<IpAddr, Failures>,
    refuse: fn(&str, u64) -> HttpResponse,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Limiter {
    pub fn new(settings: RateSettings, refuse: fn(&str, u64) -> HttpResponse) -> Limiter {
        Limiter {
            settings,
            budgets: Table::new(TABLE_CAP),
            failures: Table::new(TABLE_CAP),
            refuse,
        }
    }

    pub fn budgets_on(&self) -> bool {
        self.settings.per_user > 0
    }

    fn report(&self, start_ms: u64, used: u64, now: u64) -> Budget {
        let end = start_ms.saturating_add(ms(self.settings.window));
        Budget {
            limit: self.settings.per_user,
            remaining: self.settings.per_user.saturating_sub(used),
            used,
            reset: end.div_ceil(1000),
            retry_after: end.saturating_sub(now).div_ceil(1000).max(1),
            window: self.settings.window.as_secs(),
        }
    }

    /// Counts one request against `user`: `Ok` with what is left, `Err` when nothing was.
    fn spend(&self, user: i64, spend: bool) -> Option<Result<Budget, Budget>> {
        if !self.budgets_on() {
            return None;
        }
        let now = now_ms();
        let window = ms(self.settings.window);
        let limit = self.settings.per_user;
        Some(self.budgets.with(
            user,
            || Window {
                start_ms: now,
                used: 0,
            },
            |w| now >= w.start_ms.saturating_add(window),
            |w| w.start_ms,
            |w| {
                if now >= w.start_ms.saturating_add(window) {
                    *w = Window {
                        start_ms: now,
                        used: 0,
                    };
                }
                if !spend {
                    return Ok(self.report(w.start_ms, w.used, now));
                }
                if w.used >= limit {
                    return Err(self.report(w.start_ms, w.used, now));
                }
                w.used += 1;
                Ok(self.report(w.start_ms, w.used, now))
            },
        ))
    }

    /// Seconds left of `ip`'s ban, if it is banned.
    fn banned(&self, ip: IpAddr) -> Option<u64> {
        if self.settings.ban_max_failures == 0 {
            return None;
        }
        let now = now_ms();
        let window = ms(self.settings.ban_window);
        self.failures
            .existing(&address::subject(ip), |f| {
                let left = (f.banned_until_ms > now)
                    .then(|| (f.banned_until_ms - now).div_ceil(1000).max(1));
                let stale = left.is_none() && now >= f.first_ms.saturating_add(window);
                (left, stale)
            })
            .flatten()
    }

    fn failed(&self, ip: IpAddr) {
        let max = self.settings.ban_max_failures;
        if max == 0 {
            return;
        }
        let now = now_ms();
        let window = ms(self.settings.ban_window);
        let subject = address::subject(ip);
        let fresh = || Failures {
            first_ms: now,
            count: 0,
            banned_until_ms: 0,
        };
        let banned = self.failures.with(
            subject,
            fresh,
            |f| f.banned_until_ms <= now && now >= f.first_ms.saturating_add(window),
            // Bans are the last thing to forget.
            |f| {
                if f.banned_until_ms > now {
                    u64::MAX
                } else {
                    u64::from(f.count)
                }
            },
            |f| {
                if f.banned_until_ms > now {
                    return false;
                }
                if now >= f.first_ms.saturating_add(window) {
                    *f = fresh();
                }
                f.count += 1;
                if f.count < max {
                    return false;
                }
                *f = Failures {
                    banned_until_ms: now.saturating_add(ms(self.settings.ban_duration)),
                    ..fresh()
                };
                true
            },
        );
        if banned {
            log::warn!(
                "client address {subject} banned for {}s: {max} failed authentications within {}s",
                self.settings.ban_duration.as_secs(),
                self.settings.ban_window.as_secs()
            );
        }
    }

    /// A successful login forgets the address's failures (not a ban in force).
    fn succeeded(&self, ip: IpAddr) {
        if self.settings.ban_max_failures == 0 {
            return;
        }
        let now = now_ms();
        self.failures
            .existing(&address::subject(ip), |f| ((), f.banned_until_ms <= now));
    }
}

/// One request's caller as the limits see it: its address, and the budget its user was found
/// to have, which the dialect's headers then report.
pub struct Caller {
    ip: Option<IpAddr>,
    limiter: Option<web::Data<Limiter>>,
    budget: OnceLock<Budget>,
}

impl Caller {
    /// The caller `guard` attached to the request; one under no limit when there is none
    /// (routes the limits exempt, or an app built without a `Limiter`).
    pub fn of(req: &HttpRequest) -> Arc<Caller> {
        req.extensions()
            .get::<Arc<Caller>>()
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(Caller {
                    ip: None,
                    limiter: None,
                    budget: OnceLock::new(),
                })
            })
    }

    /// The client's address as the limits resolved it (a trusted proxy's `X-Forwarded-For`
    /// honoured); `None` on routes the limits exempt.
    pub fn client(&self) -> Option<IpAddr> {
        self.ip
    }

    /// Credentials were presented and were wrong: one more failure for this address.
    pub fn failed(&self) {
        if let (Some(limiter), Some(ip)) = (&self.limiter, self.ip) {
            limiter.failed(ip);
        }
    }

    /// `user` logged in: clears the address's failures and spends one request of the user's
    /// budget; `Err` with the spent budget when it is exhausted (the request must not run).
    pub fn authenticated(&self, user: i64) -> Result<(), Budget> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if let Some(ip) = self.ip {
            limiter.succeeded(ip);
        }
        match limiter.spend(user, true) {
            None => Ok(()),
            Some(Ok(budget)) => {
                let _ = self.budget.set(budget);
                Ok(())
            }
            Some(Err(budget)) => {
                let _ = self.budget.set(budget);
                Err(budget)
            }
        }
    }

    /// `user`'s budget, without spending any (GitHub's `/rate_limit`); `None` when budgets are off.
    pub fn look(&self, user: Option<i64>) -> Option<Budget> {
        let limiter = self.limiter.as_ref()?;
        let budget = match user {
            Some(user) => limiter.spend(user, false)?.unwrap_or_else(|b| b),
            // No one to count against: what a user starts a window with.
            None => limiter
                .budgets_on()
                .then(|| limiter.report(now_ms(), 0, now_ms()))?,
        };
        let _ = self.budget.set(budget);
        Some(budget)
    }

    pub fn budgets_on(&self) -> bool {
        self.limiter.as_ref().is_some_and(|l| l.budgets_on())
    }

    /// The budget this request was counted against, if any.
    pub fn budget(&self) -> Option<Budget> {
        self.budget.get().copied()
    }
}

/// The budget `req` was counted against, for a dialect's response headers.
pub fn budget_of(req: &HttpRequest) -> Option<Budget> {
    req.extensions()
        .get::<Arc<Caller>>()
        .and_then(|c| c.budget())
}

/// Paths the limits leave alone: the SSH hosts' door carries every git user's traffic, and its
/// secret is a random 256-bit value no one guesses by trying.
fn exempt(path: &str) -> bool {
    path.starts_with("/internal/")
}

/// Finds the client's address, refuses it while banned (before any credential is looked at:
/// `Some` is the refusal) and attaches the `Caller` the dialects count failures and budgets
/// through.
pub fn admit(req: &ServiceRequest) -> Option<HttpResponse> {
    let limiter = req.app_data::<web::Data<Limiter>>()?;
    if exempt(req.path()) {
        return None;
    }
    let ip = address::client(
        req.peer_addr().map(|a| a.ip()),
        req.headers(),
        &limiter.settings.trusted_proxies,
    );
    if let Some(left) = ip.and_then(|ip| limiter.banned(ip)) {
        return Some((limiter.refuse)(req.path(), left));
    }
    req.extensions_mut().insert(Arc::new(Caller {
        ip,
        limiter: Some(limiter.clone()),
        budget: OnceLock::new(),
    }));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_user: u64, ban: u32) -> Limiter {
        Limiter::new(
            RateSettings {
                per_user,
                ban_max_failures: ban,
                ..RateSettings::default()
            },
            |_, _| HttpResponse::Forbidden().finish(),
        )
    }

    #[test]
    fn a_budget_counts_down_to_a_refusal() {
        let l = limiter(2, 0);
        assert_eq!(l.spend(7, true).unwrap().unwrap().remaining, 1);
        assert_eq!(
            l.spend(7, false).unwrap().unwrap().remaining,
            1,
            "looking is free"
        );
        assert_eq!(l.spend(7, true).unwrap().unwrap().remaining, 0);
        let refused = l.spend(7, true).unwrap().unwrap_err();
        assert_eq!((refused.used, refused.remaining), (2, 0));
        assert!(refused.retry_after >= 1 && refused.retry_after <= 3600);
        assert_eq!(l.spend(8, true).unwrap().unwrap().remaining, 1, "per user");
        assert!(limiter(0, 0).spend(7, true).is_none(), "0 is off");
    }

    #[test]
    fn failures_ban_an_address_and_a_login_forgives_them() {
        let l = limiter(0, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        l.failed(a);
        l.failed(a);
        l.succeeded(a);
        l.failed(a);
        l.failed(a);
        assert_eq!(l.banned(a), None, "the login reset the count");
        l.failed(a);
        assert!(l.banned(a).is_some_and(|left| left <= 3600));
        assert_eq!(l.banned("10.0.0.2".parse().unwrap()), None);
        l.succeeded(a);
        assert!(
            l.banned(a).is_some(),
            "a ban in force is not lifted by a login"
        );
    }
}
