//! GitLab's view of the request budget (`http::rate`): the `RateLimit-*` headers, on every answer counted against one.

use std::time::{Duration, UNIX_EPOCH};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, HttpDate, TryIntoHeaderValue};
use actix_web::middleware::Next;

use crate::http::rate::{self, Budget};

/// The headers GitLab's throttle sends (`RateLimit-Observed` is the requests made in the window,
/// `RateLimit-ResetTime` the reset as an HTTP date). Numbers become header values directly: no
/// string to build and validate again, on every answer.
fn headers(b: Budget) -> [(&'static str, HeaderValue); 5] {
    let reset = HttpDate::from(UNIX_EPOCH + Duration::from_secs(b.reset));
    let date = reset
        .try_into_value()
        .unwrap_or_else(|_| HeaderValue::from_static(""));
    [
        ("ratelimit-limit", b.limit.into()),
        ("ratelimit-observed", b.used.into()),
        ("ratelimit-remaining", b.remaining.into()),
        ("ratelimit-reset", b.reset.into()),
        ("ratelimit-resettime", date),
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
            res.headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    Ok(res)
}
