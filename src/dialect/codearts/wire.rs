//! CodeArts' response bodies: the v1/v2 `Key` in its success envelope and the v4 `DeployKeyDto` lists.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::json;

use crate::core::DeployKey;
use crate::dialect::iso_millis;

/// `2025-06-14T20:30:10.000+08:00` is the documented form; keygate answers in UTC.
pub(super) fn codearts_time(ms: i64) -> String {
    let utc = iso_millis(ms);
    format!("{}+00:00", utc.trim_end_matches('Z'))
}

/// The v1/v2 `Key` model. `key_id` is a string there, although it is the same number v4 sends.
#[derive(Serialize)]
pub(super) struct KeyResult<'a> {
    pub(super) key_id: String,
    pub(super) key_title: &'a str,
    pub(super) key: &'a str,
    pub(super) can_push: bool,
    pub(super) created_at: String,
}

/// The v4 `DeployKeyDto`.
#[derive(Serialize)]
struct KeyItem<'a> {
    id: i64,
    title: &'a str,
    fingerprint: &'a str,
    created_at: String,
}

fn item(key: &DeployKey) -> KeyItem<'_> {
    KeyItem {
        id: key.id,
        title: &key.title,
        fingerprint: &key.fingerprint_md5,
        created_at: codearts_time(key.created_at),
    }
}

pub(super) fn success<T: Serialize>(result: T) -> HttpResponse {
    crate::dialect::json(
        StatusCode::OK,
        &json!({"result": result, "status": "success"}),
    )
}

/// A 200 array with the total in `X-Total`, the only paging header the SDK reads.
pub(super) fn listed(items: &[DeployKey], total: u64) -> HttpResponse {
    let body: Vec<KeyItem> = items.iter().map(item).collect();
    let mut res = crate::dialect::json(StatusCode::OK, &body);
    res.headers_mut()
        .insert(HeaderName::from_static("x-total"), HeaderValue::from(total));
    res
}

/// check-key's answer: `{"exists": bool}`.
pub(super) fn exists(found: bool) -> HttpResponse {
    crate::dialect::json(StatusCode::OK, &json!({ "exists": found }))
}
