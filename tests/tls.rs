//! HTTPS: every dialect over TLS with a throwaway CA, https URLs, ALPN h2, no TLS 1.1, limits,
//! and a SIGHUP that swaps the certificate without dropping connections.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use common::{Gateway, TRUSTED_CA, access_key, fresh_key, links, signed};
use keygate::config::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;

/// The throwaway CA every test here trusts, made once per test binary.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

fn pki() -> &'static Pki {
    static PKI: std::sync::OnceLock<Pki> = std::sync::OnceLock::new();
    PKI.get_or_init(|| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "keygate test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TRUSTED_CA.set(ca.der().to_vec()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { ca, dir }
    })
}

/// A server certificate for 127.0.0.1 and localhost, signed by the CA.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Pki {
    fn issue(&self, name: &str) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Leaf {
    /// Writes the pair where the server reads it.
    fn install(&self, files: &TlsFiles) {
        std::fs::write(&files.cert, &self.cert_pem).unwrap();
        std::fs::write(&files.key, &self.key_pem).unwrap();
    }
}

fn files_in(dir: &Path) -> TlsFiles {
    TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

/// An in-process gateway serving HTTPS with a fresh certificate.
fn tls_gateway(tweak: impl FnOnce(&mut keygate::config::Settings)) -> (Gateway, tempfile::TempDir) {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let files = files_in(dir.path());
    pki.issue("keygate").install(&files);
    let gw = Gateway::start_with(|s| {
        s.tls = Some(files);
        tweak(s);
    });
    assert!(gw.url.starts_with("https://127.0.0.1:"), "{}", gw.url);
    (gw, dir)
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// A TLS connection of our own (rustls, trusting only the test CA), to see the certificate it
/// got and to keep it open across requests.
struct Conn {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    port: u16,
}

/// A rustls client trusting only the test CA, offering `alpn` (none: HTTP/1.1 is assumed).
fn client_config(alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(
            TRUSTED_CA.get().unwrap().clone(),
        ))
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

impl Conn {
    fn open(port: u16) -> std::io::Result<Conn> {
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(client_config(&[]), name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(Conn { tls, port })
    }

    /// The leaf certificate the server presented on this connection.
    fn leaf(&self) -> Vec<u8> {
        self.tls.conn.peer_certificates().unwrap()[0].to_vec()
    }

    /// One keep-alive request on this connection: its status and body.
    fn get(&mut self, path: &str) -> std::io::Result<(u16, String)> {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json\r\n\r\n",
            self.port
        );
        self.tls.write_all(head.as_bytes())?;
        self.tls.flush()?;
        let mut reader = BufReader::new(&mut self.tls);
        let mut status_line = String::new();
        if reader.read_line(&mut status_line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("status line {status_line:?}")))?;
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        Ok((status, String::from_utf8(body).unwrap()))
    }
}

#[test]
fn every_dialect_works_over_https_and_builds_https_urls() {
    let (gw, _dir) = tls_gateway(|_| {});
    let seed = gw.seed();
    let base = gw.url.clone();

    // GitHub: url and Location of a new key, the repository's url, Link.
    for n in 0..2 {
        let res = gw
            .req("POST", "/api/v3/repos/acme/widgets/keys")
            .header("Authorization", &format!("token {}", seed.alice))
            .json(&json!({"title": format!("k{n}"), "key": fresh_key("gh")}))
            .send()
            .expect(201);
        let url = res.json()["url"].as_str().unwrap().to_string();
        assert!(
            url.starts_with(&format!("{base}/api/v3/repos/acme/widgets/keys/")),
            "{url}"
        );
        assert_eq!(res.header("location"), Some(url.as_str()));
    }
    let res = gw
        .req("GET", "/api/v3/repos/acme/widgets/keys?per_page=1")
        .header("Authorization", &format!("token {}", seed.alice))
        .send()
        .expect(200);
    let next = &links(res.header("link").expect("a Link"))["next"];
    assert_eq!(
        next,
        &format!("{base}/api/v3/repos/acme/widgets/keys?page=2&per_page=1")
    );
    let root = gw.req("GET", "/api/v3").send().expect(200).json();
    assert_eq!(root["current_user_url"], format!("{base}/api/v3/user"));

    // GitLab: a key added and listed, with an https Link.
    for n in 0..2 {
        gw.req(
            "POST",
            &format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
        )
        .token(&seed.alice)
        .json(&json!({"title": format!("g{n}"), "key": fresh_key("gl")}))
        .send()
        .expect(201);
    }
    let path = format!("/api/v4/projects/{}/deploy_keys", seed.widgets);
    let res = gw
        .req("GET", &format!("{path}?per_page=1"))
        .token(&seed.alice)
        .send()
        .expect(200);
    let next = &links(res.header("link").expect("a Link"))["next"];
    assert!(next.starts_with(&format!("{base}{path}?")), "{next}");

    // CodeArts: an SDK-HMAC signed add and list (the signature covers the Host header).
    let creds = access_key(&gw, "alice");
    let key = fresh_key("ca");
    let body = json!({"application": "ci", "key_title": "c", "key": key, "can_push": false});
    let path = format!("/v2/repositories/{}/deploy-keys", seed.widgets);
    let res = signed(&gw, &creds, "POST", &path, Some(&body))
        .send()
        .expect(200);
    assert_eq!(res.json()["status"], "success");
    let path = format!("/v4/repositories/{}/deploy-keys", seed.widgets);
    let res = signed(&gw, &creds, "GET", &path, None).send().expect(200);
    assert_eq!(res.json().as_array().unwrap().len(), 5, "{}", res.body);
}

#[test]
fn the_public_url_still_wins_over_https() {
    let (gw, _dir) = tls_gateway(|s| s.public_url = Some("https://keys.example.com".into()));
    let root = gw.req("GET", "/api/v3").send().expect(200).json();
    assert_eq!(
        root["current_user_url"],
        "https://keys.example.com/api/v3/user"
    );
}

/// `curl ARGS URL` (with the machine's CA bundle variables out of the way, trusting the test CA):
/// the HTTP version, the status and the body.
fn curl(url: &str, args: &[&str]) -> (String, u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_version} %{http_code}"])
        .args(args)
        .arg("--cacert")
        .arg(pki().ca_pem())
        .arg(url)
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .output()
        .expect("curl runs (scripts/test.sh installs it)");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "curl {args:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, tail) = stdout.rsplit_once('\n').unwrap();
    let (version, status) = tail.split_once(' ').unwrap();
    (
        version.to_string(),
        status.parse().unwrap(),
        body.to_string(),
    )
}

#[test]
fn alpn_offers_http2_and_http1() {
    let (gw, _dir) = tls_gateway(|_| {});
    let seed = gw.seed();
    let url = format!("{}/api/v3", gw.url);
    assert_eq!(curl(&url, &["--http2"]).0, "2");
    assert_eq!(curl(&url, &["--http1.1"]).0, "1.1");
    // A request with a body over HTTP/2, through the body deadline and into the store.
    let url = format!("{}/api/v4/projects/{}/deploy_keys", gw.url, seed.widgets);
    let body = json!({"title": "h2", "key": fresh_key("h2")}).to_string();
    let token = format!("PRIVATE-TOKEN: {}", seed.alice);
    let header = [
        "--http2",
        "-H",
        &token,
        "-H",
        "Content-Type: application/json",
    ];
    let (version, status, answer) = curl(&url, &[&header[..], &["--data", &body]].concat());
    assert_eq!((version.as_str(), status), ("2", 201), "{answer}");
    let (_, status, listed) = curl(&url, &header);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&listed).unwrap()[0]["title"],
        "h2"
    );
}

/// `openssl s_client` limited to one protocol version; SECLEVEL=0 so that OpenSSL's own side
/// would offer TLS 1.1 (it refuses to by default), leaving the decision to the server.
fn s_client(port: u16, version: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args([version, "-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile"])
        .arg(pki().ca_pem())
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs (scripts/test.sh installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn tls_1_2_is_the_oldest_version_accepted() {
    let (gw, _dir) = tls_gateway(|_| {});
    let port = port_of(&gw.url);
    let (ok, text) = s_client(port, "-tls1_2");
    assert!(ok && text.contains("Protocol  : TLSv1.2"), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    for old in ["-tls1_1", "-tls1"] {
        let (ok, text) = s_client(port, old);
        assert!(!ok, "{old} was accepted: {text}");
        // rustls has no TLS 1.1 to offer: it refuses the hello with an alert.
        assert!(
            text.contains("alert handshake failure") || text.contains("alert protocol version"),
            "{old}: {text}"
        );
        assert!(text.contains("Cipher is (NONE)"), "{old}: {text}");
    }
}

#[test]
fn per_address_limit_and_body_timeout_hold_over_tls() {
    let (gw, _dir) = tls_gateway(|s| {
        s.max_connections_per_ip = Some(1);
        s.body_timeout = Duration::from_secs(1);
    });
    let port = port_of(&gw.url);
    let mut first = Conn::open(port).unwrap();
    assert_eq!(first.get("/api/v3").unwrap().0, 200);
    // The second connection from this address is shut once its handshake is done.
    let refused = Conn::open(port).and_then(|mut c| c.get("/api/v3"));
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(first.get("/api/v3").unwrap().0, 200);
    // A body that never arrives: 408 in GitLab's shape, on the first connection.
    let head = format!(
        "POST /api/v4/projects/1/deploy_keys HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    first.tls.write_all(head.as_bytes()).unwrap();
    first.tls.flush().unwrap();
    // The server closes after the 408; what arrived before is kept whatever the close was.
    let mut answer = Vec::new();
    let _ = first.tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// What an HTTP/2 stream (ALPN h2, nothing else offered) got for `POST path` whose headers
/// announce 1000 bytes of body and whose body stops after one: status, headers and body. The
/// request stream stays open, never ended, until the whole answer is in; then the connection
/// must still answer another request.
fn h2_stalled_post(port: u16, path: &str) -> (u16, http::HeaderMap, String) {
    actix_web::rt::System::new().block_on(async {
        let tcp = actix_web::rt::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(client_config(&[b"h2"]))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (client, connection) = h2::client::handshake(tls).await.unwrap();
        actix_web::rt::spawn(async move {
            let _ = connection.await;
        });
        let mut client = client.ready().await.unwrap();
        let request = http::Request::post(format!("https://127.0.0.1:{port}{path}"))
            .header("content-type", "application/json")
            .header("content-length", "1000")
            .body(())
            .unwrap();
        let (response, mut upload) = client.send_request(request, false).unwrap();
        upload.send_data(Bytes::from_static(b"{"), false).unwrap();
        // A server that never answers fails the test instead of hanging it.
        let response = actix_web::rt::time::timeout(Duration::from_secs(10), response)
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer over HTTP/2 in 10 s"))
            .unwrap();
        let (head, mut body) = response.into_parts();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            match chunk {
                Ok(chunk) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    bytes.extend_from_slice(&chunk);
                }
                // RFC 9113 8.1: after a complete answer the server may stop an unfinished upload
                // with RST_STREAM(NO_ERROR); h2 reports it even when the response ended first.
                Err(e) if e.reason() == Some(h2::Reason::NO_ERROR) => break,
                Err(e) => panic!("{path}: {e} after {} bytes of body", bytes.len()),
            }
        }
        drop(upload);
        // Only the stream ends: the connection, which may carry other requests, still serves.
        let next = http::Request::get(format!("https://127.0.0.1:{port}/api/v3"))
            .body(())
            .unwrap();
        let (next, _) = client
            .ready()
            .await
            .unwrap()
            .send_request(next, true)
            .unwrap();
        assert_eq!(next.await.unwrap().status(), 200, "{path}: after the 408");
        (
            head.status.as_u16(),
            head.headers,
            String::from_utf8(bytes).unwrap(),
        )
    })
}

#[test]
fn a_stalled_body_is_answered_408_over_http2() {
    let (gw, _dir) = tls_gateway(|s| s.body_timeout = Duration::from_secs(1));
    let cases = [
        (
            "/api/v4/projects/1/deploy_keys",
            json!({"message": "408 Request Timeout"}),
        ),
        (
            "/api/v3/repos/acme/widgets/keys",
            json!({"message": "Request Timeout", "documentation_url": "https://docs.github.com/rest", "status": "408"}),
        ),
        (
            "/v4/repositories/1/deploy-keys/check-key",
            json!({"error_code": "CH.00000408", "error_msg": "The request body was not received in time."}),
        ),
    ];
    for (path, expected) in cases {
        let started = Instant::now();
        let (status, headers, body) = h2_stalled_post(port_of(&gw.url), path);
        assert_eq!(status, 408, "{path}: {body}");
        assert!(started.elapsed() >= Duration::from_millis(900), "{path}");
        assert_eq!(headers["content-type"], "application/json", "{path}");
        // The reset did not cut the answer short.
        assert_eq!(headers["content-length"], body.len().to_string(), "{path}");
        assert!(headers.contains_key("x-request-id"), "{path}");
        // HTTP/2 forbids connection-specific headers: the close HTTP/1.1 gets must not leak in.
        assert!(!headers.contains_key("connection"), "{path}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, expected, "{path}");
    }
}

/// The real binary serving HTTPS, killed when dropped.
struct Served {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Served {
    fn spawn(db: &Path, files: &TlsFiles) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1", "--db"])
            .arg(db)
            .env("KEYGATE_TLS_CERT", &files.cert)
            .env("KEYGATE_TLS_KEY", &files.key)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("keygate starts");
        let (url, _, lines) = common::listening(&mut child);
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Served {
            child,
            port: port_of(&url),
            log,
        }
    }

    fn hangup(&self) {
        // SAFETY: kill only sends a signal to the child we started.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(rc, 0);
    }

    /// Waits until the log holds `what` `times` times.
    fn wait_log(&self, what: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.log.lock().unwrap().matches(what).count() < times {
            assert!(
                Instant::now() < deadline,
                "no {what:?} in: {}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_swaps_the_certificate_and_keeps_open_connections() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let files = files_in(dir.path());
    let (a, b) = (pki.issue("a"), pki.issue("b"));
    a.install(&files);
    let server = Served::spawn(&dir.path().join("keygate.db"), &files);

    let mut old = Conn::open(server.port).unwrap();
    assert_eq!(old.leaf(), a.der);
    assert_eq!(old.get("/api/v3").unwrap().0, 200);

    b.install(&files);
    server.hangup();
    server.wait_log("TLS certificate reloaded", 1);
    let mut new = Conn::open(server.port).unwrap();
    assert_eq!(
        new.leaf(),
        b.der,
        "a handshake after SIGHUP gets the new certificate"
    );
    assert_eq!(new.get("/api/v3").unwrap().0, 200);
    // The connection made before the reload was not dropped, and keeps its session.
    assert_eq!(old.get("/api/v3").unwrap().0, 200);
    assert_eq!(old.leaf(), a.der);

    // A half-written certificate, then a key of another certificate: both refused, B stays.
    std::fs::write(&files.cert, &b.cert_pem[..b.cert_pem.len() / 2]).unwrap();
    server.hangup();
    server.wait_log("TLS certificate not reloaded", 1);
    let c = pki.issue("c");
    std::fs::write(&files.cert, &c.cert_pem).unwrap();
    std::fs::write(&files.key, &b.key_pem).unwrap();
    server.hangup();
    server.wait_log("TLS certificate not reloaded", 2);
    let mut after = Conn::open(server.port).unwrap();
    assert_eq!(after.leaf(), b.der);
    assert_eq!(after.get("/api/v3").unwrap().0, 200);
    let log = server.log.lock().unwrap().clone();
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}

#[test]
fn a_missing_or_mismatched_certificate_stops_the_start() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let files = files_in(dir.path());
    let serve = |files: &TlsFiles| {
        Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("keygate.db"))
            .arg("--tls-cert")
            .arg(&files.cert)
            .arg("--tls-key")
            .arg(&files.key)
            .output()
            .unwrap()
    };
    let out = serve(&files);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--tls-cert") && err.contains("cert.pem"),
        "{err}"
    );

    let (a, b) = (pki.issue("a"), pki.issue("b"));
    std::fs::write(&files.cert, &a.cert_pem).unwrap();
    std::fs::write(&files.key, &b.key_pem).unwrap();
    let out = serve(&files);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--tls-key"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");

    // One without the other is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["serve", "--tls-cert"])
        .arg(&files.cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

/// `keygate ssh authorized-keys` against an https gateway, trusting `ca` (or the system store).
fn door(gw: &Gateway, secret: &Path, ca: Option<&Path>, key: &str) -> std::process::Output {
    let mut words = key.split_whitespace();
    let (kind, b64) = (words.next().unwrap(), words.next().unwrap());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keygate"));
    cmd.args([
        "ssh",
        "authorized-keys",
        "--gateway",
        &gw.url,
        "--secret-file",
    ])
    .arg(secret)
    .args(["--git-root", "/srv/git", "git", kind, b64])
    .env_remove("SSL_CERT_DIR")
    .env_remove("KEYGATE_GATEWAY_URL");
    match ca {
        Some(ca) => cmd.env("SSL_CERT_FILE", ca),
        None => cmd.env_remove("SSL_CERT_FILE"),
    };
    cmd.output().unwrap()
}

#[test]
fn the_ssh_door_reaches_an_https_gateway_trusting_ssl_cert_file() {
    let (gw, dir) = tls_gateway(|_| {});
    let seed = gw.seed();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, gw.internal_secret()).unwrap();
    let key = fresh_key("door");
    let id = gw
        .req(
            "POST",
            &format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
        )
        .token(&seed.alice)
        .json(&json!({"title": "t", "key": key}))
        .send()
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    let out = door(&gw, &secret, Some(&pki().ca_pem()), &key);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains(&format!("key-{id}\",restrict ")),
        "{printed}"
    );
    // The system store does not hold the test CA: no verdict, so nothing is printed and the door fails.
    let out = door(&gw, &secret, None, &key);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the keygate gateway"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
