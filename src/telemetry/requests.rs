//! Counts and times every request by dialect, route template, method and status class.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{HttpRequest, web};
use metrics::{Counter, Histogram};

use super::{LATENCY, REQUESTS, routes::Listeners};

/// The route label of a path that no route matched: never the path itself, which may hold ids
/// and encoded names (and would let any client mint new series).
pub const UNMATCHED: &str = "unmatched";

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One route's handles, registered once per worker thread: later requests only bump atomics.
struct Handles {
    dialect: &'static str,
    route: Cow<'static, str>,
    method: &'static str,
    by_class: [OnceCell<Counter>; 5],
    latency: Histogram,
}

type Key = (u8, &'static str, Cow<'static, str>);

thread_local! {
    /// Bounded by the routes mounted times the methods: route labels are templates, not paths
    /// (so no client picks the keys, and a fast hasher serves).
    static HANDLES: RefCell<foldhash::HashMap<Key, Rc<Handles>>> = RefCell::new(foldhash::HashMap::default());
}

/// A request being counted and timed, from before its body is awaited (so a 408 is counted) to
/// its answer.
pub struct Observed {
    started: Instant,
    method: u8,
    /// Kept for an error no answer was made of (a middleware's `Err`, which carries no request).
    dialect: &'static str,
}

/// On a `--metrics-listen` listener, everything but `/-/` routes is answered 404 (`not_found`).
pub fn off_limits(req: &ServiceRequest) -> bool {
    req.app_data::<web::Data<Listeners>>()
        .is_some_and(|listeners| listeners.refuses_api(req))
}

impl Observed {
    pub fn start(req: &ServiceRequest) -> Observed {
        Observed {
            started: Instant::now(),
            method: method_index(req.method()),
            dialect: dialect_of(req.path()),
        }
    }

    pub fn finish<B>(self, res: &Result<ServiceResponse<B>, actix_web::Error>) {
        // After routing: actix then knows the matched resource and names its pattern without
        // running the route patterns again, as it must before (a tenth of a GET's instructions).
        let (handles, status) = match res {
            Ok(res) => (handles_for(res.request(), self.method), res.status()),
            Err(err) => (
                handles_of(self.method, self.dialect, Cow::Borrowed(UNMATCHED)),
                err.as_response_error().status_code(),
            ),
        };
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        handles.by_class[class]
            .get_or_init(|| {
                metrics::counter!(
                    REQUESTS,
                    "dialect" => handles.dialect,
                    "route" => handles.route.clone(),
                    "method" => handles.method,
                    "status" => CLASSES[class],
                )
            })
            .increment(1);
        handles.latency.record(self.started.elapsed().as_secs_f64());
    }
}

fn handles_for(req: &HttpRequest, method: u8) -> Rc<Handles> {
    let (dialect, route) = match req.match_pattern() {
        Some(pattern) => (dialect_of(&pattern), Cow::Owned(pattern)),
        None => (dialect_of(req.path()), Cow::Borrowed(UNMATCHED)),
    };
    handles_of(method, dialect, route)
}

fn handles_of(method: u8, dialect: &'static str, route: Cow<'static, str>) -> Rc<Handles> {
    let key: Key = (method, dialect, route);
    HANDLES.with(|cache| {
        if let Some(found) = cache.borrow().get(&key) {
            return Rc::clone(found);
        }
        let route = key.2.clone();
        let handles = Rc::new(Handles {
            dialect,
            latency: metrics::histogram!(LATENCY, "dialect" => dialect, "route" => route.clone()),
            route,
            method: METHODS[usize::from(method)],
            by_class: Default::default(),
        });
        cache.borrow_mut().insert(key, Rc::clone(&handles));
        handles
    })
}

fn method_index(method: &Method) -> u8 {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        // Clients may send any token as a method: one label for all of them.
        _ => 7,
    }
}

/// Which dialect a path (or a route template) belongs to, by the prefixes each one mounts.
pub fn dialect_of(path: &str) -> &'static str {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/api/v4") || under("/api/v3/projects") {
        "gitlab"
    } else if [
        "/api/v3",
        "/repos",
        "/user",
        "/meta",
        "/rate_limit",
        "/graphql",
        "/api/graphql",
    ]
    .iter()
    .any(|prefix| under(prefix))
        || path == "/"
    {
        "github"
    } else if under("/v1") || under("/v2") || under("/v4") {
        "codearts"
    } else if under("/internal") {
        "internal"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::dialect_of;

    #[test]
    fn every_dialect_is_told_by_its_prefix() {
        assert_eq!(dialect_of("/api/v4/projects/{id}/deploy_keys"), "gitlab");
        assert_eq!(dialect_of("/api/v3/projects/{id}/keys"), "gitlab");
        assert_eq!(dialect_of("/api/v3/repos/{owner}/{repo}/keys"), "github");
        assert_eq!(dialect_of("/repos/{owner}/{repo}/keys"), "github");
        assert_eq!(dialect_of("/v2/projects/{id}/deploy-keys"), "codearts");
        assert_eq!(dialect_of("/internal/ssh/access"), "internal");
        assert_eq!(dialect_of("/"), "github");
        assert_eq!(dialect_of("/-/metrics"), "other");
        assert_eq!(dialect_of("/users-and-more"), "other");
        assert_eq!(dialect_of("/api/v4x"), "other");
    }
}
