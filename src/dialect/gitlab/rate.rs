//! GitLab's view of the request budget (`http::rate`): the `RateLimit-*` headers, on every answer counted against one.

use std::cell::RefCell;
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
    let [limit, reset, date] = WINDOW
        .with(|window| {
            let mut window = window.borrow_mut();
            if window
                .as_ref()
                .is_none_or(|(key, _)| *key != (b.limit, b.reset))
            {
                let date = HttpDate::from(UNIX_EPOCH + Duration::from_secs(b.reset))
                    .try_into_value()
                    .unwrap_or_else(|_| HeaderValue::from_static(""));
                *window = Some(((b.limit, b.reset), [b.limit.into(), b.reset.into(), date]));
            }
            window.as_ref().map(|(_, values)| values.clone())
        })
        .expect("filled above");
    [
        ("ratelimit-limit", limit),
        ("ratelimit-observed", b.used.into()),
        ("ratelimit-remaining", b.remaining.into()),
        ("ratelimit-reset", reset),
        ("ratelimit-resettime", date),
    ]
}

thread_local! {
    /// The values that stay the same for a whole window (the limit, the reset and its date),
    /// made once per window and worker rather than on every answer.
    static WINDOW: RefCell<Option<Window>> = const { RefCell::new(None) };
}

/// (limit, reset) and their header values with the reset's date.
type Window = ((u64, u64), [HeaderValue; 3]);

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
