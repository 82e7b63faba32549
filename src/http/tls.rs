//! HTTPS: the rustls server configuration, and a certificate that SIGHUP replaces without dropping connections.

use std::any::Any;
use std::sync::{Arc, RwLock};

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::rt::net::TcpStream;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// PEM files of the server's certificate chain (leaf first) and its private key, read at start
/// and again on each SIGHUP.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// The certificate every new handshake gets. A reload swaps the `Arc`; connections already
/// established keep the session they negotiated and never look here again.
pub struct ReloadableCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("ReloadableCert")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

impl ReloadableCert {
    /// Reads both files again. On any error the certificate in use stays and the error is
    /// logged: a half-written or mismatched pair must not take HTTPS down.
    pub fn reload(&self) {
        match load(&self.files, &self.provider) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                log::info!(
                    "TLS certificate reloaded from {}",
                    self.files.cert.display()
                );
            }
            Err(e) => log::error!("TLS certificate not reloaded, the old one stays in use: {e}"),
        }
    }
}

/// The server configuration for `files`: TLS 1.3 and 1.2 only (rustls has nothing older), and
/// the certificate behind a resolver that `ReloadableCert::reload` updates. actix adds the ALPN
/// protocols (`h2`, `http/1.1`) itself.
pub fn server_config(files: &TlsFiles) -> std::io::Result<(ServerConfig, Arc<ReloadableCert>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = load(files, &provider).map_err(std::io::Error::other)?;
    let cert = Arc::new(ReloadableCert {
        files: files.clone(),
        provider: provider.clone(),
        current: RwLock::new(Arc::new(key)),
    });
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(cert.clone());
    Ok((config, cert))
}

/// Reloads `cert` on every SIGHUP (`systemctl reload`), for as long as the server runs. Must be
/// called from within the actix system, before the first SIGHUP can arrive (its default action
/// ends the process).
pub fn reload_on_sighup(cert: Arc<ReloadableCert>) -> std::io::Result<()> {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    actix_web::rt::spawn(async move {
        while hangups.recv().await.is_some() {
            cert.reload();
        }
    });
    Ok(())
}

/// The chain and key in `files`, checked to belong together. Errors name the file, never its
/// content.
fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let cert_file = files.cert.display();
    let key_file = files.key.display();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {cert_file}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {cert_file}: no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("--tls-key {key_file}: {e}"))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("--tls-cert {cert_file} with --tls-key {key_file}: {e}"))
}

/// The TCP connection under `conn`, as actix's `on_connect` hands it: plain, or inside TLS.
pub fn tcp_stream(conn: &dyn Any) -> Option<&TcpStream> {
    conn.downcast_ref::<TcpStream>().or_else(|| {
        conn.downcast_ref::<TlsStream<TcpStream>>()
            .map(|tls| tls.get_ref().0)
    })
}
