//! Slow and numerous clients: a stalled body gets 408, and stalled connections cannot starve others.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Gateway, fresh_key};
use serde_json::{Value, json};

/// The real binary under `ulimit -n FDS`, serving `db`; killed when dropped, even if a test fails.
struct Server {
    child: Child,
    addr: SocketAddr,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn spawn(db: &std::path::Path, fds: u32, extra: &[&str]) -> Server {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {fds} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_keygate"))
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2", "--db"])
            .arg(db)
            .args(extra)
            .env("RUST_LOG", "warn")
            // On PostgreSQL the internal secret goes to the working directory: keep it out of the tree.
            .current_dir(std::env::temp_dir())
            .stderr(Stdio::piped())
            .spawn()
            .expect("keygate starts");
        let (url, _, lines) = common::listening(&mut child);
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = url
            .trim_start_matches("http://")
            .parse()
            .expect("host:port");
        Server {
            child,
            addr,
            url,
            log,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection that sent complete headers announcing 1000 bytes of body, and then one byte.
fn stalled(addr: SocketAddr, path: &str) -> Option<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).ok()?;
    Some(stream)
}

/// Everything the server sends on `stream` until it closes it, waiting at most `limit` in all.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match stream.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A reset after the answer (or instead of it) is the server closing too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&out).into_owned());
            }
            Err(_) => return None,
        }
    }
}

fn body_of(response: &str) -> Value {
    let (_, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// A whole request sent from another loopback address (127.0.0.2), as a second client machine
/// would; returns the status line and everything after it.
fn from_another_address(addr: SocketAddr, request: &str) -> std::io::Result<String> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(2))?;
    let mut stream: TcpStream = socket.into();
    stream.write_all(request.as_bytes())?;
    read_until_closed(&mut stream, Duration::from_secs(10))
        .ok_or_else(|| std::io::Error::other("no answer"))
}

#[test]
fn six_hundred_stalled_bodies_do_not_starve_a_legitimate_client() {
    let gw = Gateway::start();
    let seed = gw.seed();
    // The default body timeout (10 s): the legitimate client must not wait for it.
    let server = Server::spawn(&gw.db, 512, &[]);
    let path = format!("/api/v4/projects/{}/deploy_keys", seed.widgets);

    let started = Instant::now();
    let mut held: Vec<TcpStream> = (0..600)
        .filter_map(|_| stalled(server.addr, &path))
        .collect();
    assert!(
        held.len() >= 500,
        "only {} stalled connections opened",
        held.len()
    );

    // A real client on another address, while all 600 are still held: one address gets at most
    // half of the connection budget, so the other half is free for everyone else.
    let body = json!({"title": "legit", "key": fresh_key("legit")}).to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nPRIVATE-TOKEN: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        seed.alice,
        body.len()
    );
    let asked = Instant::now();
    let answer = from_another_address(server.addr, &request)
        .expect("a legitimate request is answered while 600 stalled connections are held");
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "answered only after {:?}, as the stalled bodies timed out",
        asked.elapsed()
    );

    // Every stalled connection gets its 408 (or is closed), none is held past its deadline.
    let mut timeouts = 0;
    for stream in &mut held {
        let response = read_until_closed(stream, Duration::from_secs(15))
            .expect("a stalled connection is answered or closed");
        if response.starts_with("HTTP/1.1 408 ") {
            timeouts += 1;
            assert!(response.to_ascii_lowercase().contains("connection: close"));
        } else {
            assert!(response.is_empty(), "{response}");
        }
    }
    assert!(timeouts > 0, "no stalled connection was answered 408");
    assert!(started.elapsed() < Duration::from_secs(45));
    let log = server.log.lock().unwrap().clone();
    assert!(!log.contains("Too many open files"), "{log}");

    // Nothing was half-stored from the stalled bodies: only the legitimate key is there.
    let listed = gw
        .req("GET", &path)
        .retarget(&gw.url, &server.url)
        .token(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(listed.header("x-total"), Some("1"));
}

#[test]
fn a_stalled_body_is_answered_408_in_each_dialects_shape() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let server = Server::spawn(&gw.db, 1024, &["--body-timeout", "1"]);
    let cases = [
        (
            format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
            json!({"message": "408 Request Timeout"}),
        ),
        (
            "/api/v3/repos/acme/widgets/keys".to_string(),
            json!({"message": "Request Timeout", "documentation_url": "https://docs.github.com/rest", "status": "408"}),
        ),
        (
            "/repos/acme/widgets/keys".to_string(),
            json!({"message": "Request Timeout", "documentation_url": "https://docs.github.com/rest", "status": "408"}),
        ),
        (
            format!("/v4/repositories/{}/deploy-keys/check-key", seed.widgets),
            json!({"error_code": "CH.00000408", "error_msg": "The request body was not received in time."}),
        ),
        (
            format!("/v2/repositories/{}/deploy-keys", seed.widgets),
            json!({"status": "failed", "result": null,
                   "error": {"code": "CH.00000408", "message": "The request body was not received in time."}}),
        ),
        (
            "/nowhere".to_string(),
            json!({"error": "408 Request Timeout"}),
        ),
    ];
    for (path, expected) in cases {
        let started = Instant::now();
        let mut stream = stalled(server.addr, &path).expect("connects");
        let response = read_until_closed(&mut stream, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{path}: no answer"));
        assert!(response.starts_with("HTTP/1.1 408 "), "{path}: {response}");
        assert!(started.elapsed() >= Duration::from_millis(900), "{path}");
        assert!(
            response.contains("content-type: application/json"),
            "{response}"
        );
        assert!(response.contains("x-request-id: "), "{response}");
        assert_eq!(body_of(&response), expected, "{path}");
    }
}

#[test]
fn a_slow_but_steady_body_within_the_deadline_is_served() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let server = Server::spawn(&gw.db, 1024, &["--body-timeout", "3"]);
    let path = format!("/api/v4/projects/{}/deploy_keys", seed.widgets);
    let body = serde_json::to_string(&json!({"title": "slow", "key": fresh_key("slow")})).unwrap();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nPRIVATE-TOKEN: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        seed.alice,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(first.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stream.write_all(rest.as_bytes()).unwrap();
    let response = read_until_closed(&mut stream, Duration::from_secs(10)).expect("answered");
    assert!(response.starts_with("HTTP/1.1 201 "), "{response}");
}
