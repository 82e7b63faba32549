//! The SSH side's client of the gateway's internal routes: every decision is the gateway's.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::auth::internal::InternalSecret;

/// sshd waits for stage 1 before it answers the client; a hung gateway must not hang logins.
/// Each phase is bounded on its own rather than with one overall timeout: with an overall one,
/// ureq resolves the address on a thread of its own even for `127.0.0.1`, which costs every
/// login a thread start. Name resolution is left to the system resolver's own timeouts.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The internal routes' requests and answers are a few hundred bytes. ureq's default buffers
/// (128 KiB each way, zeroed when the first request is made) cost stage 1, a process per login,
/// ~60 page faults and ~0.1 ms of its ~1.7 ms (docs/benchmarks.md, "SSH door").
const BUFFER_BYTES: usize = 16 * 1024;

/// Why the gateway gave no verdict. Each one shuts the door: it never fails open.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("cannot reach the keygate gateway at {0}")]
    Unreachable(String),
    #[error("the keygate gateway refused this host's internal secret (check --secret-file)")]
    BadSecret,
    #[error("the keygate gateway answered {0}")]
    Failed(u16),
}

/// The gateway's answer about a git command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed { repository_id: i64, path: String },
    Denied { message: String },
}

pub struct Gateway {
    base: String,
    secret: InternalSecret,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct LoginKey {
    id: i64,
}

#[derive(Deserialize)]
struct Access {
    allowed: bool,
    #[serde(default)]
    message: String,
    repository: Option<AccessRepository>,
}

#[derive(Deserialize)]
struct AccessRepository {
    id: i64,
    path: String,
}

/// TLS to the gateway trusting the system's CA certificates, or the file in `SSL_CERT_FILE` (or
/// the directory in `SSL_CERT_DIR`) when set, as OpenSSL-based clients do. An unreadable store
/// leaves no root, so the gateway is unreachable: the door stays shut.
fn system_trust() -> ureq::tls::TlsConfig {
    let found = rustls_native_certs::load_native_certs();
    let roots: Vec<ureq::tls::Certificate<'static>> = found
        .certs
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
        .collect();
    ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .build()
}

impl Gateway {
    pub fn new(base: &str, secret: InternalSecret) -> Gateway {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(TIMEOUT))
            .timeout_send_request(Some(TIMEOUT))
            .timeout_send_body(Some(TIMEOUT))
            .timeout_recv_response(Some(TIMEOUT))
            .timeout_recv_body(Some(TIMEOUT))
            .input_buffer_size(BUFFER_BYTES)
            .output_buffer_size(BUFFER_BYTES);
        // Only an https gateway pays for reading the system's CA certificates.
        let agent = if base.starts_with("https://") {
            agent.tls_config(system_trust())
        } else {
            agent
        }
        .build()
        .into();
        Gateway {
            base: base.trim_end_matches('/').to_string(),
            secret,
            agent,
        }
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.secret.expose())
    }

    fn unreachable(&self) -> Unavailable {
        Unavailable::Unreachable(self.base.clone())
    }

    /// The id of the active deploy key with this fingerprint, or `None` (unknown, expired,
    /// attached to no repository).
    pub fn login_key(&self, fingerprint_sha256: &str) -> Result<Option<i64>, Unavailable> {
        let query: String = percent_encoding::utf8_percent_encode(
            fingerprint_sha256,
            percent_encoding::NON_ALPHANUMERIC,
        )
        .collect();
        let mut res = self
            .agent
            .get(format!(
                "{}/internal/ssh/authorized-key?fingerprint={query}",
                self.base
            ))
            .header("Authorization", &self.bearer())
            .call()
            .map_err(|_| self.unreachable())?;
        match res.status().as_u16() {
            200 => res
                .body_mut()
                .read_json::<LoginKey>()
                .map(|k| Some(k.id))
                .map_err(|_| Unavailable::Failed(200)),
            404 => Ok(None),
            401 => Err(Unavailable::BadSecret),
            other => Err(Unavailable::Failed(other)),
        }
    }

    /// Whether key `key_id` may run `action` (`git-upload-pack`, …) on the repository at `path`.
    pub fn access(&self, key_id: i64, path: &str, action: &str) -> Result<Verdict, Unavailable> {
        let mut res = self
            .agent
            .post(format!("{}/internal/ssh/access", self.base))
            .header("Authorization", &self.bearer())
            .send_json(json!({"key_id": key_id, "repository": path, "action": action}))
            .map_err(|_| self.unreachable())?;
        let status = res.status().as_u16();
        if status == 401 {
            return Err(Unavailable::BadSecret);
        }
        if status != 200 && status != 403 {
            return Err(Unavailable::Failed(status));
        }
        let answer: Access = res
            .body_mut()
            .read_json()
            .map_err(|_| Unavailable::Failed(status))?;
        match (status, answer.allowed, answer.repository) {
            (200, true, Some(repo)) => Ok(Verdict::Allowed {
                repository_id: repo.id,
                path: repo.path,
            }),
            (403, false, _) if !answer.message.is_empty() => Ok(Verdict::Denied {
                message: answer.message,
            }),
            _ => Err(Unavailable::Failed(status)),
        }
    }
}
