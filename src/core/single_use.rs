//! Signed requests that may change something once only: their signatures are claimed in the
//! same transaction as the change they authorise.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Conflict, Core, Error, Result};
use crate::store::Db;

/// How long a used signature is remembered. It can verify for 15 minutes either side of the
/// verifying gateway's clock, and with several gateways the one that purges may run ahead of the
/// one that verifies: two hours tolerate clocks some 90 minutes apart (keep them on NTP anyway).
const SIGNATURE_MEMORY_MS: i64 = 2 * 60 * 60 * 1000;

/// The signature of a request that changes something. A captured request stays valid for the
/// whole signing window, so without this a replay could bring back a key revoked since, or
/// detach a key attached again since.
pub struct SingleUse {
    signature: String,
    until: i64,
    spent: AtomicBool,
}

impl SingleUse {
    /// `signature` must identify the request: the access key and the HMAC it was signed with.
    pub fn new(signature: String) -> SingleUse {
        SingleUse {
            signature,
            until: crate::store::now_ms() + SIGNATURE_MEMORY_MS,
            spent: AtomicBool::new(false),
        }
    }
}

impl std::fmt::Debug for SingleUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A signature is no secret, but it is a credential for its 15 minutes: keep it out of logs.
        f.debug_struct("SingleUse")
            .field("spent", &self.spent.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Core {
    /// This core, with every change it makes claiming `request`'s signature first, in the same
    /// transaction. A second use of the signature is refused with `Conflict::RequestUsed`.
    pub fn single_use(&self, request: SingleUse) -> Core {
        Core {
            single_use: Some(Arc::new(request)),
            ..self.clone()
        }
    }

    /// The write transaction of an operation a caller asked for. Under `single_use`, the claim
    /// commits with the change, and also with a refusal (a 404, 403 or conflict): a refused
    /// request replayed later, once the state has changed, must still change nothing. A busy or
    /// failed store rolls the claim back with everything else, so the client's retry of the very
    /// same bytes is served. `f` may run more than once (see `Store::write`).
    pub(super) fn write<T>(&self, mut f: impl FnMut(&Db) -> Result<T>) -> Result<T> {
        let Some(once) = self
            .single_use
            .as_ref()
            .filter(|once| !once.spent.load(Ordering::SeqCst))
        else {
            return self.store.write(f);
        };
        let outcome = self.store.write(|db| {
            if !db.claim_signature(&once.signature, once.until)? {
                return Err(Error::Conflict(Conflict::RequestUsed));
            }
            match db.savepoint(&mut f) {
                Err(err @ (Error::Busy | Error::Internal(_))) => Err(err),
                answered => Ok(answered),
            }
        })?;
        once.spent.store(true, Ordering::SeqCst);
        outcome
    }
}
