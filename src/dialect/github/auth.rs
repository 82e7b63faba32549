//! Who is calling (GitHub's `token X`, `Bearer X`, Basic with the token as password), in one blocking hop.

use actix_web::HttpRequest;
use actix_web::http::{Method, header};

use super::error::GhError;
use crate::core::{Core, Error, Principal};
use crate::http::{self, State, rate, request_id};

/// What `curl -u TOKEN:x-oauth-basic` sends: GitHub's old spelling of "the token is the username".
const OAUTH_BASIC: &str = "x-oauth-basic";

/// The token the caller presents, if any. With Basic, the password is the token and the username
/// is ignored, as GitHub does for tokens (`curl -u name:TOKEN`); a token sent as the username with
/// an empty or `x-oauth-basic` password is taken too.
pub(super) fn token(req: &HttpRequest) -> Option<String> {
    if let Some(token) = http::authorization_token(req, &["token", "bearer"]) {
        return Some(token);
    }
    let (user, password) = http::basic_credentials(req)?;
    let token = if password.is_empty() || password == OAUTH_BASIC {
        user
    } else {
        password
    };
    (!token.is_empty()).then_some(token)
}

/// Authenticates the caller and runs `op` on the blocking pool, in one hop; errors are pointed at
/// the operation's documentation.
pub(super) async fn run<T, F>(
    req: &HttpRequest,
    state: &State,
    docs: &'static str,
    op: F,
) -> Result<T, GhError>
where
    F: FnOnce(&Core, &Principal) -> Result<T, GhError> + Send + 'static,
    T: Send + 'static,
{
    authorized(req, state, docs, Spend::One, op).await
}

/// Whether a request spends the caller's budget: every one does but `GET /rate_limit`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Spend {
    One,
    Nothing,
}

/// `run`, with the budget spent or only looked at (`Caller::look` then records it for the headers).
pub(super) async fn authorized<T, F>(
    req: &HttpRequest,
    state: &State,
    docs: &'static str,
    spend: Spend,
    op: F,
) -> Result<T, GhError>
where
    F: FnOnce(&Core, &Principal) -> Result<T, GhError> + Send + 'static,
    T: Send + 'static,
{
    if !req.headers().contains_key(header::AUTHORIZATION) {
        return Err(GhError::NoToken);
    }
    let token = token(req);
    let core = state.core.clone();
    let caller = rate::Caller::of(req);
    let reads = matches!(*req.method(), Method::GET | Method::HEAD);
    let origin = (!reads).then(|| http::origin(req, "github"));
    let work = move || {
        // A header that carries no usable token is a failed login, as GitHub treats it.
        let who = token
            .ok_or(Error::Unauthorized)
            .and_then(|t| core.authenticate_token(&t))
            .map(|who| who.from_origin(origin));
        let who = match who {
            Err(Error::Unauthorized) => {
                caller.failed();
                Err(GhError::from(Error::Unauthorized))
            }
            Err(other) => Err(GhError::from(other)),
            Ok(who) if spend == Spend::Nothing => {
                caller.look(Some(who.user.id));
                Ok(who)
            }
            Ok(who) => match caller.authenticated(who.user.id) {
                Ok(()) => Ok(who),
                Err(budget) => Err(GhError::RateLimited {
                    user: who.user.id,
                    retry_after: budget.retry_after,
                }),
            },
        };
        Ok(who.and_then(|who| op(&core, &who)))
    };
    let outcome = if reads {
        http::reading(&state.core, req.query_string(), work).await
    } else {
        http::writing(&state.core, work).await
    }
    .map_err(GhError::from)
    .and_then(|inner| inner);
    outcome.map_err(|err| {
        if let GhError::Core {
            err: internal @ Error::Internal(_),
            ..
        } = &err
        {
            http::log_internal(&request_id(req), internal);
        }
        err.with_docs(docs)
    })
}
