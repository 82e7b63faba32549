//! Group commit: one writer connection commits the write requests that queue up behind each other in one transaction and one fsync.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ffi};

use super::deferred_audit::DeferredAudit;
use super::execute;
use crate::store::StoreError;

/// A batch takes no more requests than this, so a steady stream of writers cannot keep one
/// transaction (and the answers of its first members) open for ever.
pub const MAX_BATCH_REQUESTS: usize = 128;
/// Nor does it take new members once it is this old: the bound on the extra latency of its first.
pub const MAX_BATCH_AGE: Duration = Duration::from_millis(10);

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
struct Counters {
    batches: AtomicU64,
    requests: AtomicU64,
    failed_batches: AtomicU64,
    sizes: [AtomicU64; SIZE_BUCKETS],
}

impl Counters {
    fn committed(&self, members: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(members as u64, Ordering::Relaxed);
        let bucket = (usize::BITS - members.saturating_sub(1).leading_zeros()) as usize;
        self.sizes[bucket.min(SIZE_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        // For /-/metrics (docs/operations.md); a no-op when no recorder is installed.
        ::metrics::histogram!("keygate_store_batch_size").record(members as f64);
    }
}

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

/// Where a batch's members, once their requests have run, wait for its fate.
#[derive(Default)]
struct Batch {
    outcome: Mutex<Option<Outcome>>,
    decided: Condvar,
}

#[derive(Clone)]
enum Outcome {
    Committed,
    Failed(Failure),
}

/// Why a batch was lost, kept so that every member can be given its own `StoreError` (which is
/// not `Clone`): the same code maps to the same answer (busy is 503, anything else 500).
#[derive(Clone)]
struct Failure {
    code: ffi::Error,
    message: String,
}

impl Failure {
    fn of(err: &rusqlite::Error) -> Failure {
        let code = match err {
            rusqlite::Error::SqliteFailure(code, _) => *code,
            _ => ffi::Error::new(ffi::SQLITE_ERROR),
        };
        Failure {
            code,
            message: err.to_string(),
        }
    }

    fn other(message: &str) -> Failure {
        Failure {
            code: ffi::Error::new(ffi::SQLITE_ABORT),
            message: message.to_string(),
        }
    }

    fn to_store(&self) -> StoreError {
        StoreError::from(rusqlite::Error::SqliteFailure(
            self.code,
            Some(self.message.clone()),
        ))
    }
}

impl Batch {
    fn decide(&self, outcome: Outcome) {
        // Only an Option lives behind this lock, so a poisoned one holds nothing half-done.
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        self.decided.notify_all();
    }

    fn wait(&self) -> Outcome {
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

/// The batches a job of the writer thread wrote in, or read changes of: it is answered with
/// their fate.
#[derive(Default)]
pub(super) struct Joined(Vec<Arc<Batch>>);

impl Joined {
    fn join(&mut self, batch: &Arc<Batch>) {
        if !self.0.iter().any(|had| Arc::ptr_eq(had, batch)) {
            self.0.push(Arc::clone(batch));
        }
    }

    pub(super) fn absorb(&mut self, other: Joined) {
        for batch in &other.0 {
            self.join(batch);
        }
    }

    /// Waits for each batch to be decided: once the writer thread has settled, every one is.
    pub(super) fn outcome(&self) -> std::result::Result<(), StoreError> {
        for batch in &self.0 {
            if let Outcome::Failed(failure) = batch.wait() {
                return Err(failure.to_store());
            }
        }
        Ok(())
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
mod tests {
    use super::*;

    use std::sync::Barrier;

    type Job<'a> = Box<dyn FnOnce(&Connection) -> Result<(), StoreError> + Send + 'a>;

    /// A writer on a fresh database with one table `t (v TEXT UNIQUE)` and a reader to check it.
    fn writer(dir: &tempfile::TempDir) -> (Writer, Connection) {
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
             CREATE TABLE t (v TEXT UNIQUE);
             CREATE TABLE child (parent TEXT REFERENCES t (v));",
        )
        .unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        // No age bound to speak of: a test's threads may take longer than 10 ms to start.
        let w = Writer::with_bounds(conn, MAX_BATCH_REQUESTS, Duration::from_secs(60));
        (w, Connection::open(&path).unwrap())
    }

    fn rows(reader: &Connection) -> Vec<String> {
        let mut stmt = reader.prepare("SELECT v FROM t ORDER BY v").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn insert(conn: &Connection, v: &str) -> Result<(), StoreError> {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
        Ok(())
    }

    type Answer = std::thread::Result<Result<(), StoreError>>;

    /// Runs `first` on the writer and, while it still holds the writer, starts `rest` on threads
    /// of their own; `first` returns only once they all queue behind it, so all of them share its
    /// batch unless the writer's size bound splits it.
    fn in_one_batch(
        w: &Writer,
        first: impl FnOnce(&Connection) -> Result<(), StoreError> + Send,
        rest: Vec<Job<'_>>,
    ) -> Vec<Answer> {
        let n = rest.len();
        let inside = &Barrier::new(2);
        std::thread::scope(|s| {
            let leader = s.spawn(move || {
                w.run(move |conn| {
                    inside.wait();
                    while w.queued.load(Ordering::SeqCst) < n {
                        std::thread::yield_now();
                    }
                    first(conn)
                })
            });
            inside.wait();
            let followers: Vec<_> = rest
                .into_iter()
                .map(|f| s.spawn(move || w.run(move |tx| f(tx))))
                .collect();
            let mut answers = vec![leader.join()];
            answers.extend(followers.into_iter().map(|h| h.join()));
            answers
        })
    }

    /// `lead` and then `n` more inserts queued behind it, each of which must succeed.
    fn inserts_in_one_batch(w: &Writer, n: usize) {
        let rest = (0..n)
            .map(|i| Box::new(move |c: &Connection| insert(c, &format!("f{i}"))) as Job)
            .collect();
        for answer in in_one_batch(w, |c| insert(c, "lead"), rest) {
            answer.unwrap().unwrap();
        }
    }

    #[test]
    fn queued_writes_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir);
        inserts_in_one_batch(&w, 5);
        let stats = w.stats();
        assert_eq!((stats.batches, stats.requests), (1, 6), "{stats:?}");
        assert_eq!(stats.sizes[3], 1, "one batch of 5–8: {stats:?}");
        assert_eq!(rows(&reader).len(), 6);
    }

    #[test]
    fn a_request_that_journals_megabytes_commits() {
        // SQLite's unix VFS writes at most 0x1ffff bytes at once, and a sub-journal spilling to
        // its file writes one chunk of SQLITE_STMTJRNL_SPILL bytes: past that size, SQLITE_FULL.
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir);
        let fill = "x".repeat(200);
        w.run(|c| {
            for i in 0..20_000 {
                insert(c, &format!("{i:05}{fill}"))?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
        // Each of the ~1,000 pages is journaled in the request's savepoint: 4 MiB.
        w.run(|c| Ok::<_, StoreError>(c.execute_batch("UPDATE t SET v = 'y' || v")?))
            .unwrap();
        let first: String = reader
            .query_row("SELECT min(v) FROM t", [], |r| r.get(0))
            .unwrap();
        assert!(first.starts_with("y00000"), "{first}");
    }

    #[test]
    fn a_lone_write_commits_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir);
        w.run(|c| insert(c, "a")).unwrap();
        // Committed before run returned: another connection sees it.
        assert_eq!(rows(&reader), ["a"]);
        w.run(|c| insert(c, "b")).unwrap();
        let stats = w.stats();
        assert_eq!((stats.batches, stats.requests, stats.sizes[0]), (2, 2, 2));
    }

    #[test]
    fn a_refused_request_rolls_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir);
        w.run(|c| insert(c, "taken")).unwrap();
        let rest: Vec<Job> = vec![
            Box::new(|c| insert(c, "ok1")),
            // Its first row goes in, the second conflicts: the whole request is undone, not half.
            Box::new(|c| {
                insert(c, "half")?;
                insert(c, "taken")
            }),
            Box::new(|c| insert(c, "ok2")),
        ];
        let answers: Vec<_> = in_one_batch(&w, |c| insert(c, "lead"), rest)
            .into_iter()
            .map(|a| a.unwrap())
            .collect();
        assert!(answers[0].is_ok() && answers[1].is_ok() && answers[3].is_ok());
        assert!(
            matches!(&answers[2], Err(StoreError::Unique(what)) if what == "t.v"),
            "{:?}",
            answers[2]
        );
        assert_eq!(rows(&reader), ["lead", "ok1", "ok2", "taken"]);
        assert_eq!(w.stats().batches, 2);
    }

    #[test]
    fn a_write_alone_commits_the_open_batch_first_then_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir);
        let inside = &Barrier::new(2);
        let w = &w;
        std::thread::scope(|s| {
            let leader = s.spawn(move || {
                w.run(move |conn| {
                    inside.wait();
                    while w.queued.load(Ordering::SeqCst) < 1 {
                        std::thread::yield_now();
                    }
                    insert(conn, "batched")
                })
            });
            inside.wait();
            let alone = s.spawn(move || {
                w.run_alone(|conn| {
                    // No savepoint is open around it: that is the point of running alone.
                    let released = conn.execute_batch("RELEASE request");
                    assert!(released.is_err(), "a write alone runs in no savepoint");
                    insert(conn, "alone")
                })
            });
            leader.join().unwrap().unwrap();
            alone.join().unwrap().unwrap();
        });
        assert_eq!(rows(&reader), ["alone", "batched"]);
        let stats = w.stats();
        assert_eq!((stats.batches, stats.requests), (2, 2), "{stats:?}");
    }

    #[test]
    fn a_refused_write_alone_keeps_nothing_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir);
        w.run(|c| insert(c, "taken")).unwrap();
        let refused = w.run_alone(|c| {
            insert(c, "half")?;
            insert(c, "taken")
        });
        assert!(matches!(refused, Err(StoreError::Unique(_))), "{refused:?}");
        let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
            w.run_alone(|c| -> Result<(), StoreError> {
                insert(c, "panicked").unwrap();
                panic!("a bug in an import");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(rows(&reader), ["taken"]);
        w.run(|c| insert(c, "later")).unwrap();
        w.run_alone(|c| insert(c, "alone")).unwrap();
        assert_eq!(rows(&reader), ["alone", "later", "taken"]);
    }

    #[test]
    fn a_panicking_request_loses_nobody_elses_write() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir);
        let rest: Vec<Job> = vec![
            Box::new(|c| insert(c, "before")),
            Box::new(|c| {
                insert(c, "panicked").unwrap();
                panic!("a bug in one handler");
            }),
            Box::new(|c| insert(c, "after")),
        ];
        let answers = in_one_batch(&w, |c| insert(c, "lead"), rest);
        assert!(answers[2].is_err(), "the panic reaches its own caller");
        for i in [0, 1, 3] {
            answers[i].as_ref().unwrap().as_ref().unwrap();
        }
        assert_eq!(rows(&reader), ["after", "before", "lead"]);
        // The writer goes on: not poisoned, no transaction left open.
        w.run(|c| insert(c, "later")).unwrap();
        assert_eq!(rows(&reader).len(), 4);
    }

    #[test]
    fn an_error_that_ends_the_transaction_fails_the_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir);
        w.run(|c| insert(c, "taken")).unwrap();
        // One follower only: a batch-mate queued behind the breaker would start a batch of its own.
        let rest: Vec<Job> = vec![
            // ON CONFLICT ROLLBACK ends the transaction, as SQLITE_FULL or an I/O error would.
            Box::new(|c| {
                c.execute("INSERT OR ROLLBACK INTO t (v) VALUES ('taken')", [])?;
                Ok(())
            }),
        ];
        for answer in in_one_batch(&w, |c| insert(c, "lead"), rest) {
            assert!(
                answer.unwrap().is_err(),
                "no member of a lost batch succeeds"
            );
        }
        assert_eq!(rows(&reader), ["taken"]);
        assert_eq!(w.stats().failed_batches, 1);
        w.run(|c| insert(c, "later")).unwrap();
        assert_eq!(rows(&reader), ["later", "taken"]);
    }

    #[test]
    fn a_failed_commit_fails_every_member() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir);
        let rest: Vec<Job> = vec![
            Box::new(|c| insert(c, "mate")),
            // A deferred foreign key is checked by COMMIT alone: this request's own statements
            // all succeed, and the batch's COMMIT fails.
            Box::new(|c| {
                c.execute_batch(
                    "PRAGMA defer_foreign_keys = ON; INSERT INTO child (parent) VALUES (99);",
                )?;
                Ok(())
            }),
        ];
        for answer in in_one_batch(&w, |c| insert(c, "lead"), rest) {
            match answer.unwrap() {
                Err(StoreError::Sqlite(_)) => {}
                other => panic!("every member learns the commit failed: {other:?}"),
            }
        }
        assert!(rows(&reader).is_empty());
        let stats = w.stats();
        assert_eq!((stats.batches, stats.failed_batches), (0, 1));
        w.run(|c| insert(c, "later")).unwrap();
        assert_eq!(rows(&reader), ["later"]);
    }

    #[test]
    fn a_batch_closes_at_its_size_bound() {
        let dir = tempfile::tempdir().unwrap();
        let (_, reader) = writer(&dir);
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        let w = Writer::with_bounds(conn, 2, Duration::from_secs(60));
        inserts_in_one_batch(&w, 3);
        let stats = w.stats();
        assert_eq!((stats.batches, stats.requests, stats.sizes[1]), (2, 4, 2));
        assert_eq!(rows(&reader).len(), 4);
    }

    #[test]
    fn a_write_inside_a_write_is_refused_not_deadlocked() {
        let dir = tempfile::tempdir().unwrap();
        let (w, reader) = writer(&dir);
        let inner = w.run(|c| {
            insert(c, "outer")?;
            Ok::<_, StoreError>(w.run(|c| insert(c, "inner")))
        });
        assert!(matches!(inner, Ok(Err(StoreError::Busy))), "{inner:?}");
        assert_eq!(rows(&reader), ["outer"]);
    }

    #[test]
    fn another_process_holding_the_lock_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _reader) = writer(&dir);
        let other = Connection::open(dir.path().join("w.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        w.state
            .lock()
            .unwrap()
            .conn
            .busy_timeout(Duration::from_millis(50))
            .unwrap();
        assert!(matches!(w.run(|c| insert(c, "x")), Err(StoreError::Busy)));
        // Those queued behind a BEGIN that timed out are answered at once, not 50 ms each in turn.
        let started = Instant::now();
        let answers: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| w.run(|c| insert(c, "y"))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(answers.iter().all(|a| matches!(a, Err(StoreError::Busy))));
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        other.execute_batch("ROLLBACK").unwrap();
        w.run(|c| insert(c, "x")).unwrap();
    }
}
