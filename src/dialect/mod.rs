//! The wire dialects: each adapter parses its vendor's requests, makes one core call and
//! renders the result or error in that vendor's shape.

pub mod codearts;
pub mod github;
pub mod gitlab;
pub mod internal;

use actix_web::{HttpResponse, http::StatusCode, web};
use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;

/// Mounts every dialect's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    gitlab::configure(cfg);
    github::configure(cfg);
    codearts::configure(cfg);
    internal::configure(cfg);
    cfg.default_service(web::to(|| async {
        json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "404 Not Found"}),
        )
    }));
}

/// The dialect whose path this is, for answers given before routing (408, banned address).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    GitLab,
    GitHub,
    CodeArts,
    None,
}

/// By the prefixes each dialect mounts, as the metrics label requests (one list of them).
fn owner(path: &str) -> Owner {
    match crate::telemetry::dialect_of(path) {
        "gitlab" => Owner::GitLab,
        "github" => Owner::GitHub,
        "codearts" => Owner::CodeArts,
        _ => Owner::None,
    }
}

/// The 408 for a request body that did not arrive in time (`http::limits::await_body`), in
/// the error shape of the dialect whose path it is. It is answered before any handler runs, so it
/// is chosen from the path alone. CodeArts renders its own (it has a code catalogue); the GitLab
/// and GitHub bodies belong in their error modules once those are split out.
pub fn body_timeout(path: &str) -> HttpResponse {
    let body = match owner(path) {
        Owner::GitLab => serde_json::json!({"message": "408 Request Timeout"}),
        Owner::GitHub => serde_json::json!({
            "message": "Request Timeout",
            "documentation_url": "https://docs.github.com/rest",
            "status": "408",
        }),
        Owner::CodeArts => return codearts::body_timeout(path),
        Owner::None => serde_json::json!({"error": "408 Request Timeout"}),
    };
    json(StatusCode::REQUEST_TIMEOUT, &body)
}

/// The answer to an address banned for failed logins (`http::rate`), before any credential is
/// read: GitLab's Rack::Attack `403 Forbidden` in plain text with no headers, GitHub's 403 in
/// its JSON shape, CodeArts' API Gateway throttling 429. `left` is the ban's remaining seconds.
pub fn banned(path: &str, left: u64) -> HttpResponse {
    match owner(path) {
        Owner::GitLab => HttpResponse::Forbidden()
            .content_type("text/plain")
            .body("Forbidden\n"),
        Owner::CodeArts => codearts::banned(left),
        // No `Retry-After`: PyGithub's GithubRetry would sleep out an hour's ban and try again.
        Owner::GitHub | Owner::None => json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({
                "message": "Too many failed authentication attempts from this address. Try again later.",
                "documentation_url": "https://docs.github.com/rest",
                "status": "403",
            }),
        ),
    }
}

/// A dialect's OpenAPI document, as its `openapi.yaml` route serves it.
pub fn openapi(doc: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(doc)
}

/// Every dialect's "busy" answer carries `Retry-After: 1`: python-gitlab and gitbeaker wait and retry.
pub fn with_retry_after(mut res: HttpResponse) -> HttpResponse {
    if res.status() == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from_static("1"),
        );
    }
    res
}

/// A JSON response with exactly `application/json` (some clients parse nothing else).
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> HttpResponse {
    // One key is 400 to 700 bytes: room for it up front spares the growing a small buffer takes.
    let mut out = Vec::with_capacity(1024);
    if sonic_rs::to_writer(&mut out, body).is_err() {
        out = b"{}".to_vec();
    }
    json_bytes(status, out)
}

/// A JSON response whose body is already rendered (`gitlab::wire::key_json`).
pub fn json_bytes(status: StatusCode, body: impl Into<actix_web::web::Bytes>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::HeaderValue::from_static("application/json"),
        ))
        .body(body.into())
}

fn datetime(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2024-10-03T01:32:21.992Z` (GitLab).
pub fn iso_millis(ms: i64) -> String {
    // humantime writes the digits straight into a buffer: `time`'s interpreted format
    // description was a sixth of the CPU of a list page (three timestamps per key).
    match system_time(ms) {
        Some(at) => humantime::format_rfc3339_millis(at).to_string(),
        None => formatted(
            ms,
            format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ),
        ),
    }
}

/// `2014-12-10T15:53:42Z` (GitHub).
pub fn iso_seconds(ms: i64) -> String {
    match system_time(ms) {
        Some(at) => humantime::format_rfc3339_seconds(at).to_string(),
        None => formatted(
            ms,
            format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"),
        ),
    }
}

/// A GitLab timestamp (`iso_millis`) that serializes without a heap allocation: a list page
/// writes three per key, and allocating each was a tenth of the page's CPU.
#[derive(Clone, Copy, Debug)]
pub struct IsoMillis(pub i64);

impl Serialize for IsoMillis {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use std::fmt::Write;
        let Some(at) = system_time(self.0) else {
            return serializer.serialize_str(&iso_millis(self.0));
        };
        // 24 bytes: `2024-10-03T01:32:21.992Z`.
        let mut text = arrayvec::ArrayString::<24>::new();
        write!(text, "{}", humantime::format_rfc3339_millis(at))
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

/// The instant, when humantime can write it: from 1970 through the year 9999.
fn system_time(ms: i64) -> Option<std::time::SystemTime> {
    const END_OF_9999_MS: i64 = 253_402_300_800_000;
    let ms = u64::try_from(ms)
        .ok()
        .filter(|&ms| ms < END_OF_9999_MS as u64)?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

fn formatted(ms: i64, format: &[time::format_description::BorrowedFormatItem<'_>]) -> String {
    datetime(ms).format(format).unwrap_or_default()
}

/// Parses an ISO 8601 date or date-time (`2099-01-02`, `2099-01-02T03:04:05Z`, with offset or
/// fraction) into milliseconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    let text = text.trim();
    let at = OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .ok()
        .or_else(|| {
            time::Date::parse(text, format_description!("[year]-[month]-[day]"))
                .ok()
                .map(|d| d.midnight().assume_utc())
        })?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MILLIS: &[time::format_description::BorrowedFormatItem<'_>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    const SECONDS: &[time::format_description::BorrowedFormatItem<'_>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

    /// humantime and `time` write the same text, day boundaries, leap days and the last
    /// millisecond of 9999 included; instants outside humantime's range still format.
    #[test]
    fn timestamps_read_as_the_time_crate_writes_them() {
        let mut at = 0i64;
        let mut checked = 0;
        while at < 253_402_300_800_000 {
            for ms in [at, at + 999, at - 1] {
                assert_eq!(iso_millis(ms), formatted(ms, MILLIS), "{ms}");
                assert_eq!(iso_seconds(ms), formatted(ms, SECONDS), "{ms}");
                checked += 1;
            }
            // A stride of about 37 days and an odd number of milliseconds walks times of day and days
            // of the month.
            at += 3_187_678_913;
        }
        assert!(checked > 200_000);
        assert_eq!(iso_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso_seconds(253_402_300_799_999), "9999-12-31T23:59:59Z");
        assert_eq!(iso_millis(-1), "1969-12-31T23:59:59.999Z");
        for ms in [
            0,
            951_782_400_123,
            253_402_300_799_999,
            253_402_300_800_000,
            -1,
        ] {
            let json = sonic_rs::to_string(&IsoMillis(ms)).unwrap();
            assert_eq!(json, format!("\"{}\"", iso_millis(ms)), "{ms}");
        }
    }
}
