//! GitLab's view of the request budget (`http::rate`): the `RateLimit-*` headers, on every answer counted against one.

use std::time::{Duration, UNIX_EPOCH};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, HttpDate};
use actix_web::middleware::Next;

use crate::http::rate::{self, Budget};

/// The headers GitLab's throttle sends (`RateLimit-Observed` is the requests made in the window,
/// `RateLimit-ResetTime` the reset as an HTTP date).
fn headers(b: Budget) -> [(&'static str, String); 5] {
    let reset = HttpDate::from(UNIX_EPOCH + Duration::from_secs(b.reset));
    [
        ("ratelimit-limit", b.limit.to_string()),
        ("ratelimit-observed", b.used.to_string()),
        ("ratelimit-remaining", b.remaining.to_string()),
        ("ratelimit-reset", b.reset.to_string()),
        ("ratelimit-resettime", reset.to_string()),
    ]
}

/// Stamps the budget the request was counted against, if any, on its answer (a 429 included).
pub(super) async fn stamp(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let mut res = next.call(req).await?.map_into_boxed_body();
    if let Some(budget) = rate::budget_of(res.request()) {
        for (name, value) in headers(budget) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                res.headers_mut()
                    .insert(HeaderName::from_static(name), value);
            }
        }
    }
    Ok(res)
}
