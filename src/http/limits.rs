//! Limits that keep slow or numerous clients from exhausting the server: open connections and body time.

use std::any::Any;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::{HttpResponse, dev::Extensions, web};
use futures_util::StreamExt;

use super::body::MAX_BODY_BYTES;

/// File descriptors kept back from client connections: stdio, the listener, each worker's poller,
/// the SQLite pool and writer (a database, WAL and shared-memory file per connection) and some
/// slack. Each worker's read session is counted apart (`server.rs`).
pub const RESERVED_FDS: u64 = 128;
/// Fewest connections ever allowed, however low the open-file limit.
const MIN_CONNECTIONS: usize = 16;
/// Ceiling when the open-file limit is very high or unlimited.
const MAX_DEFAULT_CONNECTIONS: usize = 25_000;

/// The process's soft `RLIMIT_NOFILE`, or `None` if it is unlimited or cannot be read.
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is handed, which lives on this stack frame.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    // rlim_t is u64 on Linux but not on every Unix.
    #[allow(clippy::unnecessary_cast)]
    let soft = limit.rlim_cur as u64;
    (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(soft)
}

/// How many connections may be open at once over all workers: `requested`, but never more than
/// the open-file limit leaves after `RESERVED_FDS` (past that, accept() fails with EMFILE and the
/// database cannot open its files either, so every client suffers, not just the extra ones).
pub fn connection_budget(requested: Option<usize>, fd_limit: Option<u64>) -> usize {
    let ceiling = fd_limit.map_or(MAX_DEFAULT_CONNECTIONS, |fds| {
        (fds.saturating_sub(RESERVED_FDS) as usize).clamp(MIN_CONNECTIONS, MAX_DEFAULT_CONNECTIONS)
    });
    requested.map_or(ceiling, |n| n.clamp(1, ceiling))
}

/// The time a request body may take to arrive, and how to answer when it does not.
#[derive(Clone, Copy)]
pub struct BodyDeadline {
    pub timeout: Duration,
    /// Renders the 408 in the shape of the dialect that owns the request's path.
    pub render: fn(&str) -> HttpResponse,
}

/// Reads the request body (up to one byte past the cap) before any handler runs, and answers 408
/// and closes the connection if it has not arrived within the deadline. actix bounds only the
/// time to receive the headers; without this a client that sends `Content-Length: 1000` and one
/// byte holds a connection and a file descriptor for ever. Reading here rather than in each
/// handler bounds every route alike, including those that never read a body. `Err` is the 408.
pub async fn await_body(mut req: ServiceRequest) -> Result<ServiceRequest, ServiceResponse> {
    let Some(deadline) = req
        .app_data::<web::Data<BodyDeadline>>()
        .map(|d| *d.get_ref())
    else {
        return Ok(req);
    };
    // No Content-Length and no chunked body (most reads): nothing can be slow to arrive.
    if matches!(req.parts().1, Payload::None) {
        return Ok(req);
    }
    let payload = std::mem::replace(req.parts_mut().1, Payload::None);
    match actix_web::rt::time::timeout(deadline.timeout, prefetch(payload)).await {
        Ok(chunks) => {
            // The handler reads the same chunks, errors included, so its own size cap and error
            // answers are unchanged.
            req.set_payload(Payload::Stream {
                payload: Box::pin(futures_util::stream::iter(chunks)),
            });
            Ok(req)
        }
        Err(_) => {
            let mut res = (deadline.render)(req.path());
            // The rest of the body may still arrive: the connection cannot carry another request.
            res.head_mut().set_connection_type(ConnectionType::Close);
            Err(req.into_response(res))
        }
    }
}

/// The body's chunks, stopping after an error or once past `MAX_BODY_BYTES` (the handler refuses
/// it then, without the rest being read).
async fn prefetch(mut payload: Payload) -> Vec<Result<web::Bytes, PayloadError>> {
    let mut chunks = Vec::new();
    let mut size = 0;
    while let Some(chunk) = payload.next().await {
        let stop = match &chunk {
            Ok(bytes) => {
                size += bytes.len();
                size > MAX_BODY_BYTES
            }
            Err(_) => true,
        };
        chunks.push(chunk);
        if stop {
            break;
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_stays_under_the_open_file_limit() {
        assert_eq!(connection_budget(None, Some(512)), 384);
        assert_eq!(connection_budget(Some(100), Some(512)), 100);
        // Asking for more than the descriptors allow is clamped, not obeyed.
        assert_eq!(connection_budget(Some(10_000), Some(512)), 384);
        assert_eq!(connection_budget(None, Some(64)), MIN_CONNECTIONS);
        assert_eq!(connection_budget(None, None), MAX_DEFAULT_CONNECTIONS);
        assert_eq!(connection_budget(Some(0), None), 1);
    }
}

/// Connections open at once from each client address, so that one address cannot hold every
/// slot the budget allows: past its share, a new connection from that address is shut at once,
/// before it costs a request, and other addresses keep being served.
#[derive(Clone)]
pub struct PeerConnections {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection's place in its address's count, given back when actix drops the
/// connection (and the extensions that hold this with it).
struct PeerSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl PeerConnections {
    /// `limit` 0 turns the check off (behind a proxy every client shares the proxy's address).
    pub fn new(limit: usize) -> PeerConnections {
        PeerConnections {
            limit,
            open: Arc::default(),
        }
    }

    /// The default share: half the budget, so an address that takes all it may still leaves
    /// the other half to everyone else.
    pub fn default_limit(budget: usize) -> usize {
        (budget / 2).max(1)
    }

    /// actix's `on_connect` hook: counts the connection against its address, or shuts it.
    pub fn on_connect(&self, conn: &dyn Any, extensions: &mut Extensions) {
        if self.limit == 0 {
            return;
        }
        let Some(stream) = super::tls::tcp_stream(conn) else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        let ip = peer.ip().to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            drop(open);
            // Debug only: under attack a line per refused connection would flood the log.
            log::debug!("connection from {ip} refused: {} already open", self.limit);
            let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
            return;
        }
        *count += 1;
        drop(open);
        extensions.insert(PeerSlot {
            ip,
            open: self.open.clone(),
        });
    }
}
