//! The one middleware in front of every route: request id and log line, the ban check, metrics and the body deadline.
//!
//! One `from_fn` rather than one per concern: each layer of actix middleware boxes a future and
//! the service call under it, which cost a GET more than the work of all four.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::http::{RequestLog, limits, rate};
use crate::telemetry;

pub async fn front(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let log = RequestLog::start(&req);
    let mut res = admitted(req, next).await?;
    log.finish(&mut res);
    Ok(res)
}

async fn admitted(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Before the body is read: a banned address costs no more than its headers. Its refusals
    // stay out of the request metrics, as do the metrics listener's 404s: neither was routed.
    if let Some(refusal) = rate::admit(&req) {
        return Ok(req.into_response(refusal));
    }
    if telemetry::off_limits(&req) {
        return Ok(req.into_response(telemetry::not_found()));
    }
    let observed = telemetry::Observed::start(&req);
    let res = match limits::await_body(req).await {
        Ok(req) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body),
        Err(timed_out) => Ok(timed_out),
    };
    observed.finish(&res);
    res
}
