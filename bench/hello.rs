//! Benchmark anchor: the cheapest JSON answer actix-web gives with keygate's server settings.
//!
//! usage: hello [--listen ADDR] [--workers N]   (127.0.0.1:0 and 0 = one worker per core, as keygate)
//!
//! Every request, whatever its path or headers, gets a small JSON object serialized anew, so the
//! figure holds HTTP parsing, routing to one handler, serde_json and the response write: the floor
//! under keygate's GitLab GET (bench/run.sh divides one by the other). Prints
//! `hello listening on http://HOST:PORT` on stderr, like `keygate serve`, for the scripts.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Serialize;

// The same values as src/server.rs: a different keep-alive or backlog would make the anchor
// measure a different server, not a cheaper handler.
const BACKLOG: u32 = 1024;
const KEEP_ALIVE: Duration = Duration::from_secs(5);
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Serialize)]
struct Hello {
    id: i64,
    message: &'static str,
}

async fn hello() -> HttpResponse {
    let body = serde_json::to_vec(&Hello {
        id: 500,
        message: "hello",
    })
    .expect("a fixed struct serializes");
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

fn usage() -> ! {
    eprintln!("usage: hello [--listen ADDR] [--workers N]");
    std::process::exit(2)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:0".to_string();
    let mut workers = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--listen" => listen = value,
            "--workers" => workers = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if workers == 0 {
        workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    }
    let server = HttpServer::new(|| App::new().default_service(web::to(hello)))
        .workers(workers)
        .backlog(BACKLOG)
        .keep_alive(KEEP_ALIVE)
        .client_request_timeout(HEADER_TIMEOUT)
        .client_disconnect_timeout(DISCONNECT_TIMEOUT)
        .bind(&listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("bound to no address"))?;
    eprintln!("hello listening on http://{addr}");
    server.run().await
}
