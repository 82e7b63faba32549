//! Group commit: one writer connection commits the write requests that queue up behind each other in one transaction and one fsync.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ffi};

mod batch;

pub use batch::BatchStats;
pub(super) use batch::Joined;
use batch::{Batch, Counters, Failure, Outcome};

use super::deferred_audit::DeferredAudit;
use super::execute;
use crate::store::StoreError;

/// A batch takes no more requests than this, so a steady stream of writers cannot keep one
/// transaction (and the answers of its first members) open for ever.
pub const MAX_BATCH_REQUESTS: usize = 128;
/// Nor does it take new members once it is this old: the bound on the extra latency of its first.
pub const MAX_BATCH_AGE: Duration = Duration::from_millis(10);

/// The one connection every write of this process goes through, and the batch it has open.
pub struct Writer {
    state: Mutex<State>,
    /// Threads that asked for `state` and do not hold it yet. A member leaves its batch open only
    /// while this is non-zero: one of them is then certain to take the lock after it, and to
    /// either join and commit the batch or hand it on again.
    queued: AtomicUsize,
    counters: Counters,
    max_requests: usize,
    max_age: Duration,
}

struct State {
    conn: Connection,
    /// The audit records of the open transaction, inserted just before its COMMIT.
    audit: DeferredAudit,
    open: Option<Open>,
    /// When BEGIN last gave up on busy_timeout because another process held the write lock.
    busy_at: Option<Instant>,
}

/// The writer connection as a write sees it, inside the writer's transaction.
pub struct Tx<'a> {
    pub conn: &'a Connection,
    pub audit: &'a DeferredAudit,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl State {
    fn tx(&self) -> Tx<'_> {
        Tx {
            conn: &self.conn,
            audit: &self.audit,
        }
    }
}

/// The transaction in progress: BEGIN IMMEDIATE has run, COMMIT has not.
struct Open {
    batch: Arc<Batch>,
    members: usize,
    began: Instant,
}

impl Open {
    fn now() -> Open {
        Open {
            batch: Arc::default(),
            members: 0,
            began: Instant::now(),
        }
    }
}

thread_local! {
    /// The writer whose request this thread is running, if any (its address).
    static WRITING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The writer's lock. Should our own code panic while holding it (a request's panic is caught
/// before it gets here), the open batch is failed on the way out, so no member waits for ever.
struct Held<'a> {
    writer: &'a Writer,
    state: MutexGuard<'a, State>,
    /// A write made by a destructor while its thread unwinds is no panic of ours.
    unwinding_before: bool,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.unwinding_before {
            self.writer
                .abandon(&mut self.state, "the writer panicked mid-batch");
        }
    }
}

impl Writer {
    /// `conn` must be a connection of its own (not one of the read pool's), set up like them.
    pub fn new(conn: Connection) -> Writer {
        Writer::with_bounds(conn, MAX_BATCH_REQUESTS, MAX_BATCH_AGE)
    }

    fn with_bounds(conn: Connection, max_requests: usize, max_age: Duration) -> Writer {
        Writer {
            state: Mutex::new(State {
                conn,
                audit: DeferredAudit::default(),
                open: None,
                busy_at: None,
            }),
            queued: AtomicUsize::new(0),
            counters: Counters::default(),
            max_requests,
            max_age,
        }
    }

    pub fn stats(&self) -> BatchStats {
        let c = &self.counters;
        BatchStats {
            batches: c.batches.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
            sizes: std::array::from_fn(|i| c.sizes[i].load(Ordering::Relaxed)),
        }
    }

    /// Runs `f` in its own SAVEPOINT inside the writer's current batch and answers once that
    /// batch is durable. `f`'s error (or panic) undoes `f`'s changes only; a lost batch answers
    /// every member with a store error, whatever its own request returned.
    pub fn run<T, E>(
        &self,
        f: impl FnOnce(&Tx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let held = self.enter().map_err(E::from)?;
        let (mut held, ran) = self.member(held, f)?;
        let open = held.state.open.as_mut().expect("a batch is open");
        open.members += 1;
        let company_coming = self.queued.load(Ordering::SeqCst) > 0
            && open.members < self.max_requests
            && open.began.elapsed() < self.max_age;
        let outcome = if company_coming {
            let batch = Arc::clone(&open.batch);
            drop(held);
            batch.wait()
        } else {
            let outcome = self.commit(&mut held.state);
            drop(held);
            outcome
        };

        match (ran, outcome) {
            (Some(Err(panic)), _) => panic::resume_unwind(panic),
            (Some(Ok(answer)), Outcome::Committed) => answer,
            (_, Outcome::Failed(failure)) => Err(failure.to_store().into()),
            (None, Outcome::Committed) => unreachable!("a member that did not run has an error"),
        }
    }

    /// Runs `f` in a transaction of its own, once the batch open before it has committed: for
    /// large writes (an import chunk). Inside a batch `f` would run in `SAVEPOINT request`, and
    /// SQLite empties its sub-journal only when no savepoint is open: every page each statement
    /// of `f` touched would stay in it (13 per imported key), spilled to a temporary file past
    /// 64 KiB, one `pwrite` per page. With no savepoint open, each statement's journal is
    /// emptied as the statement ends.
    pub fn run_alone<T, E>(
        &self,
        f: impl FnOnce(&Tx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut held = self.enter().map_err(E::from)?;
        if held
            .state
            .open
            .as_ref()
            .is_some_and(|open| open.members > 0)
        {
            // Its members are waiting for this COMMIT; they are answered by it.
            self.commit(&mut held.state);
            self.begin(&held.state).map_err(|err| E::from(err.into()))?;
            held.state.open = Some(Open::now());
        }
        WRITING.set(self as *const Writer as usize);
        let ran = panic::catch_unwind(AssertUnwindSafe(|| f(&held.state.tx())));
        WRITING.set(0);
        let state = &mut held.state;
        match ran {
            Ok(Ok(answer)) if !state.conn.is_autocommit() => {
                state.open.as_mut().expect("a batch is open").members = 1;
                match self.commit(state) {
                    Outcome::Committed => Ok(answer),
                    Outcome::Failed(failure) => Err(failure.to_store().into()),
                }
            }
            Ok(Ok(_)) => {
                // A statement error ended the transaction, yet `f` went on as if it had not.
                self.fail(
                    state,
                    Failure::other("an error rolled back the transaction"),
                );
                Err(Failure::other("an error rolled back the transaction")
                    .to_store()
                    .into())
            }
            Ok(Err(err)) => {
                self.roll_back_alone(state);
                Err(err)
            }
            Err(panic) => {
                self.roll_back_alone(state);
                drop(held);
                panic::resume_unwind(panic)
            }
        }
    }

    /// Runs `f` in its own SAVEPOINT in `held`'s open batch. When that costs the transaction (or
    /// leaves it in a state we cannot vouch for), the whole batch is failed here, nothing in it
    /// durable, and `Err` carries this member's answer.
    fn member<'w, T, E>(
        &'w self,
        mut held: Held<'w>,
        f: impl FnOnce(&Tx) -> std::result::Result<T, E>,
    ) -> std::result::Result<(Held<'w>, Ran<T, E>), E>
    where
        E: From<StoreError>,
    {
        WRITING.set(self as *const Writer as usize);
        let (ran, control) = run_member(&held.state.tx(), f);
        WRITING.set(0);
        let Err(lost) = control else {
            return Ok((held, ran));
        };
        let failure = Failure::of(&lost);
        // Its batch-mates, and a job's own earlier writes in the batch, are lost with it.
        self.fail(&mut held.state, failure.clone());
        drop(held);
        match ran {
            Some(Err(panic)) => panic::resume_unwind(panic),
            // Its own error is the better answer: most likely it is what ended the transaction.
            Some(Ok(Err(err))) => Err(err),
            _ => Err(failure.to_store().into()),
        }
    }

    /// `run` for a job of the writer thread (writer_thread.rs): `f` runs in its own SAVEPOINT
    /// in the open batch and its answer is returned at once, the batch noted in `joined`. The
    /// writer thread commits that batch (or finds it decided) before the job's client is answered.
    pub(super) fn run_deferred<T, E>(
        &self,
        arrived: Instant,
        joined: &mut Joined,
        f: impl FnOnce(&Tx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let held = self.enter_at(arrived).map_err(E::from)?;
        let (mut held, ran) = self.member(held, f)?;
        let open = held.state.open.as_mut().expect("a batch is open");
        open.members += 1;
        joined.join(&open.batch);
        drop(held);
        match ran {
            Some(Ok(answer)) => answer,
            Some(Err(panic)) => panic::resume_unwind(panic),
            None => unreachable!("a member that did not run has an error"),
        }
    }

    /// A read of a job of the writer thread: on the writer connection, inside the open batch, so
    /// that it sees the job's own writes before they commit. Having seen batch-mates' changes
    /// too, the job is answered only with that batch's fate.
    pub(super) fn read_deferred<T>(
        &self,
        arrived: Instant,
        joined: &mut Joined,
        f: impl FnOnce(&Connection) -> T,
    ) -> std::result::Result<T, StoreError> {
        let mut held = self.enter_at(arrived)?;
        let ran = panic::catch_unwind(AssertUnwindSafe(|| f(&held.state.conn)));
        if held.state.conn.is_autocommit() {
            self.fail(
                &mut held.state,
                Failure::other("an error rolled back the batch's transaction"),
            );
        } else if let Some(open) = held.state.open.as_ref().filter(|open| open.members > 0) {
            joined.join(&open.batch);
        }
        drop(held);
        Ok(ran.unwrap_or_else(|panic| panic::resume_unwind(panic)))
    }

    /// Ends the writer thread's run of jobs: commits the open batch, the one fsync for them all.
    pub(super) fn settle(&self) {
        let mut held = self.lock();
        let state = &mut held.state;
        match state.open.as_ref().map(|open| open.members) {
            None => {}
            // Only reads ran in it: there is nothing to make durable.
            Some(0) => {
                let open = state.open.take().expect("a batch is open");
                if !state.conn.is_autocommit() {
                    let _ = execute(&state.conn, "ROLLBACK");
                }
                open.batch.decide(Outcome::Committed);
            }
            Some(_) => {
                self.commit(state);
            }
        }
    }

    /// The bounds of a batch: at most this many requests, taking new ones for this long.
    pub(super) fn bounds(&self) -> (usize, Duration) {
        (self.max_requests, self.max_age)
    }

    /// Takes the writer for a request on this thread, with a transaction open (the batch's, or
    /// a new one).
    fn enter(&self) -> std::result::Result<Held<'_>, StoreError> {
        self.enter_at(Instant::now())
    }

    /// `enter` for a request that arrived at `arrived` (a job may have waited in the writer
    /// thread's queue behind a BEGIN that waited out busy_timeout).
    fn enter_at(&self, arrived: Instant) -> std::result::Result<Held<'_>, StoreError> {
        if WRITING.get() == self as *const Writer as usize {
            // A write from inside a write of the same store would wait for itself for ever (the
            // mutex is not reentrant); before group commit it waited 5 s for its own lock.
            log::error!("a store write was started inside another write on the same thread");
            return Err(StoreError::Busy);
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut held = self.lock();
        // Decremented only once the lock is ours: see `queued`.
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if held.state.open.is_none() {
            if held.state.busy_at.is_some_and(|at| at > arrived) {
                // It waited behind a BEGIN that waited out busy_timeout: answer busy now, rather
                // than every queued request waiting out its own 5 s one after another.
                return Err(StoreError::Busy);
            }
            if let Err(err) = self.begin(&held.state) {
                let err = StoreError::from(err);
                if matches!(err, StoreError::Busy) {
                    held.state.busy_at = Some(Instant::now());
                }
                return Err(err);
            }
            held.state.open = Some(Open::now());
        }
        Ok(held)
    }

    /// Ends a transaction of `run_alone` that is not to be kept: nobody else is in it.
    fn roll_back_alone(&self, state: &mut State) {
        state.open = None;
        if !state.conn.is_autocommit() {
            let _ = state.conn.execute_batch("ROLLBACK");
        }
    }

    fn lock(&self) -> Held<'_> {
        let state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => {
                let mut state = poisoned.into_inner();
                self.state.clear_poison();
                self.abandon(&mut state, "the writer panicked mid-batch");
                state
            }
        };
        Held {
            writer: self,
            state,
            unwinding_before: std::thread::panicking(),
        }
    }

    fn begin(&self, state: &State) -> rusqlite::Result<()> {
        let conn = &state.conn;
        // What an ended transaction held (a lost batch, a write alone rolled back) went with it.
        state.audit.clear();
        if !conn.is_autocommit() {
            // Left open by a ROLLBACK that failed: start from a clean slate, not inside it.
            let _ = conn.execute_batch("ROLLBACK");
        }
        // IMMEDIATE takes the write lock up front, so another process's writer queues on
        // busy_timeout instead of failing with SQLITE_BUSY when a read transaction upgrades.
        execute(conn, "BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// COMMIT is the batch's one fsync (synchronous=FULL). The audit records of the batch go in
    /// just before it, in the same transaction.
    fn commit(&self, state: &mut State) -> Outcome {
        let open = state.open.take().expect("a batch is open");
        let committed = state
            .audit
            .insert_all(&state.conn)
            .and_then(|()| execute(&state.conn, "COMMIT"));
        let outcome = match committed {
            Ok(_) => {
                self.counters.committed(open.members);
                Outcome::Committed
            }
            Err(err) => {
                log::warn!("group commit of {} requests failed: {err}", open.members);
                if !state.conn.is_autocommit() {
                    let _ = state.conn.execute_batch("ROLLBACK");
                }
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                ::metrics::counter!("keygate_store_failed_batches_total").increment(1);
                Outcome::Failed(Failure::of(&err))
            }
        };
        open.batch.decide(outcome.clone());
        outcome
    }

    /// Rolls the open transaction back and answers every member of its batch with `failure`.
    fn fail(&self, state: &mut State, failure: Failure) {
        log::warn!("group commit batch lost: {}", failure.message);
        if !state.conn.is_autocommit() {
            let _ = state.conn.execute_batch("ROLLBACK");
        }
        if let Some(open) = state.open.take() {
            self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            open.batch.decide(Outcome::Failed(failure));
        }
    }

    fn abandon(&self, state: &mut State, why: &str) {
        if state.open.is_some() || !state.conn.is_autocommit() {
            self.fail(state, Failure::other(why));
        }
    }
}

/// The request's answer (`None` when it could not start) or its panic, and whether the batch's
/// transaction is still sound after it.
type Ran<T, E> = Option<std::thread::Result<std::result::Result<T, E>>>;

fn run_member<T, E>(
    tx: &Tx,
    f: impl FnOnce(&Tx) -> std::result::Result<T, E>,
) -> (Ran<T, E>, rusqlite::Result<()>) {
    let conn = tx.conn;
    // Not `change`: the core's own savepoints (Db::savepoint) nest inside this one.
    if let Err(err) = execute(conn, "SAVEPOINT request") {
        return (None, Err(err));
    }
    let mark = tx.audit.mark();
    let ran = panic::catch_unwind(AssertUnwindSafe(|| f(tx)));
    if conn.is_autocommit() {
        // A statement error (SQLITE_FULL, IOERR, an OR ROLLBACK conflict, …) rolled back the whole
        // transaction, batch-mates' changes with it.
        let ended = rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ABORT),
            Some("an error rolled back the batch's transaction".into()),
        );
        return (Some(ran), Err(ended));
    }
    let control = match &ran {
        Ok(Ok(_)) => execute(conn, "RELEASE request"),
        _ => {
            tx.audit.rewind(mark);
            execute(conn, "ROLLBACK TO request").and_then(|()| execute(conn, "RELEASE request"))
        }
    };
    (Some(ran), control)
}

#[cfg(test)]
mod tests;
