//! A batch's fate and what the writer counts: where members wait for the COMMIT, why a batch was lost, and the stats.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::ffi;

use crate::store::StoreError;

/// Buckets of `BatchStats::sizes`: 1, 2, 3–4, 5–8, …, 65–128 requests.
pub const SIZE_BUCKETS: usize = 8;

/// What the writer has committed since the store was opened (cheap to read: a few atomics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Committed batches: one transaction and one fsync each.
    pub batches: u64,
    /// Requests answered from committed batches (a member whose own change was refused and
    /// rolled back to its savepoint counts too: it was answered after that fsync).
    pub requests: u64,
    /// Batches whose transaction was lost (a failed COMMIT, or an error that ended it): each of
    /// their members was answered with a store error.
    pub failed_batches: u64,
    /// `sizes[i]`: committed batches of more than 2^(i-1) and at most 2^i requests.
    pub sizes: [u64; SIZE_BUCKETS],
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) batches: AtomicU64,
    pub(super) requests: AtomicU64,
    pub(super) failed_batches: AtomicU64,
    pub(super) sizes: [AtomicU64; SIZE_BUCKETS],
}

impl Counters {
    pub(super) fn committed(&self, members: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(members as u64, Ordering::Relaxed);
        let bucket = (usize::BITS - members.saturating_sub(1).leading_zeros()) as usize;
        self.sizes[bucket.min(SIZE_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        // For /-/metrics (docs/operations.md); a no-op when no recorder is installed.
        ::metrics::histogram!("keygate_store_batch_size").record(members as f64);
    }
}

/// Where a batch's members, once their requests have run, wait for its fate.
#[derive(Default)]
pub(super) struct Batch {
    outcome: Mutex<Option<Outcome>>,
    decided: Condvar,
}

#[derive(Clone)]
pub(super) enum Outcome {
    Committed,
    Failed(Failure),
}

/// Why a batch was lost, kept so that every member can be given its own `StoreError` (which is
/// not `Clone`): the same code maps to the same answer (busy is 503, anything else 500).
#[derive(Clone)]
pub(super) struct Failure {
    code: ffi::Error,
    pub(super) message: String,
}

impl Failure {
    pub(super) fn of(err: &rusqlite::Error) -> Failure {
        let code = match err {
            rusqlite::Error::SqliteFailure(code, _) => *code,
            _ => ffi::Error::new(ffi::SQLITE_ERROR),
        };
        Failure {
            code,
            message: err.to_string(),
        }
    }

    pub(super) fn other(message: &str) -> Failure {
        Failure {
            code: ffi::Error::new(ffi::SQLITE_ABORT),
            message: message.to_string(),
        }
    }

    pub(super) fn to_store(&self) -> StoreError {
        StoreError::from(rusqlite::Error::SqliteFailure(
            self.code,
            Some(self.message.clone()),
        ))
    }
}

impl Batch {
    pub(super) fn decide(&self, outcome: Outcome) {
        // Only an Option lives behind this lock, so a poisoned one holds nothing half-done.
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        self.decided.notify_all();
    }

    pub(super) fn wait(&self) -> Outcome {
        let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(decided) = outcome.as_ref() {
                return decided.clone();
            }
            outcome = self
                .decided
                .wait(outcome)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The batches a job of the writer thread wrote in, or read changes of: it is answered with
/// their fate.
#[derive(Default)]
pub(in crate::store::sqlite) struct Joined(Vec<Arc<Batch>>);

impl Joined {
    pub(super) fn join(&mut self, batch: &Arc<Batch>) {
        if !self.0.iter().any(|had| Arc::ptr_eq(had, batch)) {
            self.0.push(Arc::clone(batch));
        }
    }

    pub(in crate::store::sqlite) fn absorb(&mut self, other: Joined) {
        for batch in &other.0 {
            self.join(batch);
        }
    }

    /// Waits for each batch to be decided: once the writer thread has settled, every one is.
    pub(in crate::store::sqlite) fn outcome(&self) -> std::result::Result<(), StoreError> {
        for batch in &self.0 {
            if let Outcome::Failed(failure) = batch.wait() {
                return Err(failure.to_store());
            }
        }
        Ok(())
    }
}
