//! Where a request that may change something came from, for the audit trail.

use std::sync::Arc;

use actix_web::HttpRequest;

use crate::core::Origin;

/// The request's dialect, method, route template, request id and client address. Built only for
/// changes (the caller decides), so reads make no allocation for it.
pub fn origin(req: &HttpRequest, dialect: &'static str) -> Arc<Origin> {
    Arc::new(Origin {
        dialect,
        method: req.method().as_str().to_string(),
        // The template, not the path: names in a path are the record's target fields.
        route: req.match_pattern().unwrap_or_default(),
        request_id: super::request_id(req),
        // The address the limits count against: behind a trusted proxy, the client it forwards.
        client_addr: super::rate::Caller::of(req)
            .client()
            .or_else(|| req.peer_addr().map(|a| a.ip()))
            .map(|ip| ip.to_string()),
    })
}
