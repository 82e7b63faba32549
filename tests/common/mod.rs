//! Test harness: the real server on port 0 with a fresh database, seeded through the real CLI,
//! driven with raw HTTP, and response bodies checked against the dialect's OpenAPI document.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command};
use std::sync::mpsc;
use std::thread::JoinHandle;

use base64::Engine;
use keygate::auth::aksk::{self, SignedRequest};
use keygate::config::Settings;
use keygate::server::Application;
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::format_description;

/// What every test server starts with: a free port and two workers.
fn test_settings(db: PathBuf) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        workers: 2,
        ..Settings::new(db)
    }
}

/// Which store the suites run on: `KEYGATE_TEST_BACKEND=postgres` (with `KEYGATE_TEST_POSTGRES_URL`,
/// a database the tests may create schemas in) or SQLite, the default.
pub fn on_postgres() -> bool {
    std::env::var("KEYGATE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// True (and says so) when a test checks something only SQLite has: a PRAGMA, the file's mode,
/// another process holding the write lock. The caller returns early.
pub fn sqlite_only(what: &str) -> bool {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: {what} is SQLite's");
    }
    on_postgres()
}

/// The PostgreSQL server the tests use, from `KEYGATE_TEST_POSTGRES_URL`.
pub fn postgres_url() -> String {
    std::env::var("KEYGATE_TEST_POSTGRES_URL").expect(
        "KEYGATE_TEST_BACKEND=postgres needs KEYGATE_TEST_POSTGRES_URL (scripts/test.sh sets both)",
    )
}

/// A fresh, empty PostgreSQL schema of its own, dropped when this is dropped.
pub struct PgSchema {
    pub name: String,
    /// `KEYGATE_TEST_POSTGRES_URL` with `search_path` set to the schema: what `--db` gets.
    pub url: String,
}

impl PgSchema {
    pub fn create() -> PgSchema {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let base = postgres_url();
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).expect("random");
        let name = format!(
            "kg_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst),
            hex::encode(random)
        );
        let mut admin = postgres::Client::connect(&base, postgres::NoTls).expect("PostgreSQL up");
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        PgSchema { name, url }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&postgres_url(), postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// A database for one test in `dir`: a SQLite file there, or a fresh PostgreSQL schema.
pub fn fresh_db(dir: &Path) -> (PathBuf, Option<PgSchema>) {
    if on_postgres() {
        let schema = PgSchema::create();
        (PathBuf::from(&schema.url), Some(schema))
    } else {
        (dir.join("keygate.db"), None)
    }
}

pub struct Gateway {
    pub url: String,
    /// `http://127.0.0.1:PORT` of the `--metrics-listen` listener, when the settings ask for one.
    pub metrics_url: Option<String>,
    /// What `--db` gets: the SQLite file, or the PostgreSQL URL of this test's schema.
    pub db: PathBuf,
    dir: tempfile::TempDir,
    schema: Option<PgSchema>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Gateway {
    pub fn start() -> Gateway {
        Gateway::start_with(|_| {})
    }

    /// Starts a server whose settings `tweak` may change (public URL, key policy).
    pub fn start_with(tweak: impl FnOnce(&mut Settings)) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, schema) = fresh_db(dir.path());
        let mut settings = test_settings(db.clone());
        settings.internal_secret_file = Some(dir.path().join("internal.secret"));
        tweak(&mut settings);
        Gateway::launch(settings, dir, schema)
    }

    /// Starts a second server on this one's database (another gateway of the same instance).
    pub fn start_peer(&self) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(self.secret_path(), dir.path().join("internal.secret"))
            .expect("the first gateway wrote its internal secret");
        let mut settings = test_settings(self.db.clone());
        settings.internal_secret_file = Some(dir.path().join("internal.secret"));
        Gateway::launch(settings, dir, None)
    }

    fn launch(settings: Settings, dir: tempfile::TempDir, schema: Option<PgSchema>) -> Gateway {
        let db = settings.db.clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(settings).expect("server builds");
                tx.send((app.port(), app.scheme(), app.metrics_port(), app.handle()))
                    .expect("test alive");
                app.run().await.expect("server runs");
            })
        });
        let (port, scheme, metrics_port, handle) = rx.recv().expect("server started");
        Gateway {
            url: format!("{scheme}://127.0.0.1:{port}"),
            metrics_url: metrics_port.map(|p| format!("http://127.0.0.1:{p}")),
            db,
            dir,
            schema,
            handle,
            thread: Some(thread),
        }
    }

    /// Stops the server (as SIGTERM would) and starts a new one on the same database.
    pub fn restart(mut self) -> Gateway {
        self.shutdown();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let mut settings = test_settings(self.db.clone());
        settings.internal_secret_file = Some(dir.path().join("internal.secret"));
        Gateway::launch(settings, dir, self.schema.take())
    }

    /// `restart`, with settings `tweak` may change (a retention period, say).
    pub fn restart_with(mut self, tweak: impl FnOnce(&mut Settings)) -> Gateway {
        self.shutdown();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let mut settings = test_settings(self.db.clone());
        settings.internal_secret_file = Some(dir.path().join("internal.secret"));
        tweak(&mut settings);
        Gateway::launch(settings, dir, self.schema.take())
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            actix_web::rt::System::new().block_on(self.handle.stop(true));
            thread.join().expect("server thread ends");
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server, as an operator's SIGTERM would; the database stays.
    pub fn stop(&mut self) {
        self.shutdown();
    }

    fn secret_path(&self) -> PathBuf {
        self.dir.path().join("internal.secret")
    }

    /// The internal secret the gateway wrote on start (beside its SQLite database).
    pub fn internal_secret(&self) -> String {
        std::fs::read_to_string(self.secret_path())
            .expect("the gateway wrote its internal secret")
            .trim()
            .to_string()
    }

    /// Runs the real `keygate` binary on this database; panics unless it succeeds.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_raw(args);
        assert!(
            out.status.success(),
            "keygate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    }

    pub fn cli_raw(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_keygate"))
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .env("RUST_LOG", "error")
            .output()
            .expect("keygate runs")
    }

    /// The standard cast: root (admin), alice (maintainer), bob (reporter), carol (maintainer
    /// with a read-only token); repos acme/widgets, acme/tools/cli and other/secret.
    pub fn seed(&self) -> Seed {
        for (name, admin) in [
            ("root", true),
            ("alice", false),
            ("bob", false),
            ("carol", false),
        ] {
            let mut args = vec!["user", "add", name];
            if admin {
                args.push("--admin");
            }
            self.cli(&args);
        }
        let seed = Seed {
            root: self.cli(&["token", "add", "root"]),
            alice: self.cli(&["token", "add", "alice"]),
            bob: self.cli(&["token", "add", "bob"]),
            carol: self.cli(&["token", "add", "carol", "--read-only"]),
            widgets: self
                .cli(&["repo", "add", "acme/widgets"])
                .parse()
                .expect("id"),
            cli_repo: self
                .cli(&["repo", "add", "acme/tools/cli"])
                .parse()
                .expect("id"),
            secret: self
                .cli(&["repo", "add", "other/secret"])
                .parse()
                .expect("id"),
        };
        for (repo, user, role) in [
            ("acme/widgets", "alice", "maintainer"),
            ("acme/tools/cli", "alice", "maintainer"),
            ("acme/widgets", "bob", "reporter"),
            ("acme/widgets", "carol", "maintainer"),
        ] {
            self.cli(&["repo", "grant", repo, user, "--role", role]);
        }
        seed
    }

    pub fn req(&self, method: &str, path: &str) -> Req {
        Req {
            method: method.to_string(),
            url: format!("{}{path}", self.url),
            headers: Vec::new(),
            body: None,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub struct Seed {
    pub root: String,
    pub alice: String,
    pub bob: String,
    pub carol: String,
    pub widgets: i64,
    pub cli_repo: i64,
    pub secret: i64,
}

pub struct Req {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Req {
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// GitLab's header.
    pub fn token(self, token: &str) -> Req {
        self.header("PRIVATE-TOKEN", token)
    }

    pub fn json(self, body: &Value) -> Req {
        self.raw_body("application/json", serde_json::to_vec(body).expect("json"))
    }

    pub fn form(self, pairs: &[(&str, &str)]) -> Req {
        let body = serde_urlencoded::to_string(pairs).expect("form");
        self.raw_body("application/x-www-form-urlencoded", body.into_bytes())
    }

    pub fn raw_body(mut self, content_type: &str, body: Vec<u8>) -> Req {
        self.headers
            .push(("Content-Type".to_string(), content_type.to_string()));
        self.body = Some(body);
        self
    }

    /// Sends the same request to another server (a second process on the same database).
    pub fn retarget(mut self, from: &str, to: &str) -> Req {
        self.url = self.url.replacen(from, to, 1);
        self
    }

    pub fn send(self) -> Resp {
        self.try_send().expect("request completes")
    }

    /// Sends the request; `None` when no answer came (the server is gone, the connection broke).
    pub fn try_send(self) -> Option<Resp> {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .allow_non_standard_methods(true);
        if let Some(ca) = TRUSTED_CA.get() {
            config = config.tls_config(trusting(ca));
        }
        let agent: ureq::Agent = config.build().into();
        let mut builder = ureq::http::Request::builder()
            .method(self.method.as_str())
            .uri(&self.url);
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        let request = builder
            .body(self.body.unwrap_or_default())
            .expect("request builds");
        let mut res = agent.run(request).ok()?;
        let status = res.status().as_u16();
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = res.body_mut().read_to_string().unwrap_or_default();
        Some(Resp {
            status,
            headers,
            body,
        })
    }
}

/// The DER certificate of the CA an HTTPS test server's certificate chains to (tests/tls.rs
/// sets it); requests trust it alone.
pub static TRUSTED_CA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// ureq's TLS settings trusting `ca` and nothing else.
pub fn trusting(ca: &'static [u8]) -> ureq::tls::TlsConfig {
    ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[
            ureq::tls::Certificate::from_der(ca),
        ]))
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .build()
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status, printing the body when it differs.
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }
}

/// An OpenAPI 3.1 document from `dialects/`, used to check response bodies.
pub struct Contract {
    doc: Value,
}

impl Contract {
    pub fn load(name: &str) -> Contract {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("dialects")
            .join(name);
        let text = std::fs::read_to_string(&path).expect("contract readable");
        let doc: Value = serde_norway::from_str(&text).expect("contract is YAML");
        Contract { doc }
    }

    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Panics unless `body` matches the schema of `method path` answering `status`.
    pub fn check(&self, path: &str, method: &str, status: u16, body: &Value) {
        let schema = &self.doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]
            ["schema"];
        assert!(
            !schema.is_null(),
            "the contract has no JSON schema for {method} {path} {status}"
        );
        let root = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [schema],
            "components": self.doc["components"],
        });
        let validator = jsonschema::draft202012::new(&root).expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status} does not match the contract: {errors:#?}\nbody: {body}"
        );
    }
}

/// A fixture file's text.
pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/keys")
        .join(name);
    std::fs::read_to_string(path).expect("fixture readable")
}

/// A new, valid ed25519 public key with the given comment. The 32 bytes are random, which is
/// all an ed25519 public key is.
pub fn fresh_key(comment: &str) -> String {
    let mut blob = Vec::with_capacity(51);
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    blob.extend_from_slice(&keygate::auth::random_bytes::<32>());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&blob);
    format!("ssh-ed25519 {b64} {comment}")
}

/// Adds `public` as a deploy key of repository `repo` through the GitLab API, with the token
/// of a user who may (a maintainer's); returns its id.
pub fn add_key(
    gw: &Gateway,
    token: &str,
    repo: i64,
    public: &str,
    can_push: bool,
    expires_at: Option<&str>,
) -> i64 {
    let mut body = serde_json::json!({"title": "deploy", "key": public, "can_push": can_push});
    if let Some(at) = expires_at {
        body["expires_at"] = serde_json::json!(at);
    }
    gw.req("POST", &format!("/api/v4/projects/{repo}/deploy_keys"))
        .token(token)
        .json(&body)
        .send()
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap()
}

/// Parses a `Link` header into rel -> URL.
pub fn links(header: &str) -> HashMap<String, String> {
    header
        .split(", ")
        .filter_map(|part| {
            let (url, rel) = part.split_once("; ")?;
            let url = url.strip_prefix('<')?.strip_suffix('>')?;
            let rel = rel.strip_prefix("rel=\"")?.strip_suffix('"')?;
            Some((rel.to_string(), url.to_string()))
        })
        .collect()
}

// ---- CodeArts: access keys and requests signed as huaweicloudsdkcore signs them ----

/// An AK/SK pair as `keygate access-key add` prints it.
#[derive(Clone)]
pub struct Creds {
    pub ak: String,
    pub sk: String,
}

pub fn access_key(gw: &Gateway, user: &str) -> Creds {
    let line = gw.cli(&["access-key", "add", user]);
    let (ak, sk) = line.split_once(' ').expect("`AK SK`");
    Creds {
        ak: ak.into(),
        sk: sk.into(),
    }
}

pub fn sdk_date(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year][month][day]T[hour][minute][second]Z"
    ))
    .unwrap()
}

/// The `Authorization` value huaweicloudsdkcore's Signer puts on a request: `Content-Type`,
/// `Host`, `X-Sdk-Date` and any `extra` headers signed, the body hashed, made with keygate's own
/// primitives.
pub fn authorization(
    gw: &Gateway,
    creds: &Creds,
    method: &str,
    path: &str,
    body: &[u8],
    date: &str,
    extra: &[(&str, &str)],
) -> String {
    let (raw_path, raw_query) = path.split_once('?').unwrap_or((path, ""));
    let host = gw.url.split_once("://").map_or(gw.url.as_str(), |(_, h)| h);
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Host", host),
        ("X-Sdk-Date", date),
    ];
    headers.extend_from_slice(extra);
    let request = SignedRequest {
        method,
        raw_path,
        raw_query,
        headers: &headers,
        body,
    };
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.sort();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let canonical = aksk::canonical_request(&request, &names).unwrap();
    let signature = aksk::sign(creds.sk.as_bytes(), &aksk::string_to_sign(date, &canonical));
    format!(
        "SDK-HMAC-SHA256 Access={}, SignedHeaders={}, Signature={signature}",
        creds.ak,
        names.join(";")
    )
}

/// A request signed as the SDK signs it, dated `date`, with `extra` headers sent and signed.
pub fn signed_with(
    gw: &Gateway,
    creds: &Creds,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    date: &str,
    extra: &[(&str, &str)],
) -> Req {
    let body = body.unwrap_or_default();
    let mut req = gw.req(method, path).header("X-Sdk-Date", date).header(
        "Authorization",
        &authorization(gw, creds, method, path, &body, date, extra),
    );
    for (name, value) in extra {
        req = req.header(name, value);
    }
    if body.is_empty() {
        req.header("Content-Type", "application/json")
    } else {
        req.raw_body("application/json", body)
    }
}

/// A request signed as the SDK signs it, dated `date`.
pub fn signed_at(
    gw: &Gateway,
    creds: &Creds,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    date: &str,
) -> Req {
    signed_with(gw, creds, method, path, body, date, &[])
}

/// A request signed now, as the SDK signs it, with an `X-Auth-Token` sent and signed beside it.
pub fn signed_with_token(
    gw: &Gateway,
    creds: &Creds,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: &str,
) -> Req {
    let body = body.map(|b| serde_json::to_vec(b).unwrap());
    let date = sdk_date(OffsetDateTime::now_utc());
    signed_with(
        gw,
        creds,
        method,
        path,
        body,
        &date,
        &[("X-Auth-Token", token)],
    )
}

pub fn signed(gw: &Gateway, creds: &Creds, method: &str, path: &str, body: Option<&Value>) -> Req {
    let body = body.map(|b| serde_json::to_vec(b).unwrap());
    signed_at(
        gw,
        creds,
        method,
        path,
        body,
        &sdk_date(OffsetDateTime::now_utc()),
    )
}

/// Reads a `keygate serve` child's stderr up to the line announcing its address (in text or
/// JSON logs): the address, every line read (that one included), and the rest of stderr, which
/// the caller must keep reading or drain, since a full pipe would stall the server.
pub fn listening(child: &mut Child) -> (String, Vec<String>, Lines<BufReader<ChildStderr>>) {
    const ANNOUNCE: &str = "keygate listening on ";
    let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let mut read = Vec::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("serve exited before listening: {read:?}"))
            .expect("stderr is text");
        read.push(line.clone());
        if let Some(at) = line.find(ANNOUNCE) {
            let url = line[at + ANNOUNCE.len()..].split('"').next().unwrap();
            return (url.to_string(), read, lines);
        }
    }
}
