//! The writer thread: the server's writes queue up for it and run one after another on the writer connection, answered once their batch is durable.
//!
//! Before it, each write request ran on a thread of actix's blocking pool and the threads handed
//! the writer's lock to each other, one wake-up per request on the batch's critical path: on 2
//! cores the hand-offs, not the fsync, set the pace (docs/benchmarks.md). Here one thread runs
//! the whole batch without a hand-off, while the next batch queues up behind its fsync.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::group_commit::{Joined, Writer};
use crate::store::StoreError;

/// What a job says once its batch is decided: `Ok` when everything it wrote is durable.
pub type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A write request's whole work (authentication included), run on the writer thread. Its writes
/// and reads go to the writer connection; what it returns is called after the batch's COMMIT.
pub type Job = Box<dyn FnOnce() -> Done + Send>;

struct Queued {
    job: Job,
    arrived: Instant,
}

/// The sending end of the writer thread's queue. Dropping it stops the thread once the jobs
/// already queued are answered, and waits for that (so the connection is closed when the store is).
pub struct Queue {
    tx: Option<mpsc::Sender<Queued>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Queue {
    pub fn start(writer: Arc<Writer>) -> std::io::Result<Queue> {
        let (tx, rx) = mpsc::channel::<Queued>();
        let thread = std::thread::Builder::new()
            .name("keygate-writer".into())
            .spawn(move || {
                let mut company = false;
                while let Some(first) = next_job(&rx, company) {
                    company = run_batch(&writer, &rx, first) > 1;
                }
            })?;
        Ok(Queue {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `job`; `Err(job)` when the thread is gone (it never stops while the queue lives).
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        let tx = self.tx.as_ref().expect("the queue is open");
        tx.send(Queued {
            job,
            arrived: Instant::now(),
        })
        .map_err(|mpsc::SendError(queued)| queued.job)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            // The last handle on the store can be dropped by a job on the thread itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// The job running on this thread: which writer's thread it is, when the job was queued, and
/// the batches it has joined so far.
struct Context {
    writer: usize,
    arrived: Instant,
    joined: Joined,
}

thread_local! {
    static JOB: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// How long the writer thread, after a batch of more than one job, keeps looking for the next job
/// (yielding its core between looks) before it sleeps. The clients it has just answered send
/// their next writes within about this time; sleeping and being woken for each cost more than
/// the looks, and left the writer idle a fifth of the time on 2 cores (docs/benchmarks.md).
const LINGER: Duration = Duration::from_micros(400);

/// The next job, waiting for it as long as it takes; `None` once the queue is closed. After a
/// batch that had company (`company`), it looks for one for `LINGER` before it sleeps.
fn next_job(rx: &mpsc::Receiver<Queued>, company: bool) -> Option<Queued> {
    if company {
        let since = Instant::now();
        loop {
            match rx.try_recv() {
                Ok(queued) => return Some(queued),
                Err(mpsc::TryRecvError::Disconnected) => return None,
                Err(mpsc::TryRecvError::Empty) if since.elapsed() < LINGER => {
                    std::thread::yield_now()
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
    }
    rx.recv().ok()
}

/// Runs jobs from `first` on until the queue is empty or the batch is full or old, then commits
/// them all at once and answers each. Returns how many jobs it ran.
fn run_batch(writer: &Writer, rx: &mpsc::Receiver<Queued>, first: Queued) -> usize {
    let (max_requests, max_age) = writer.bounds();
    let began = Instant::now();
    let mut ran: Vec<(Option<Done>, Joined)> = Vec::new();
    let mut next = Some(first);
    while let Some(queued) = next {
        JOB.set(Some(Context {
            writer: writer as *const Writer as usize,
            arrived: queued.arrived,
            joined: Joined::default(),
        }));
        // A job catches its own panics; should one slip through, its client's answer channel
        // is dropped (a 500) and the thread goes on with the rest.
        let done = panic::catch_unwind(AssertUnwindSafe(queued.job)).ok();
        let joined = JOB.take().map(|c| c.joined).unwrap_or_default();
        ran.push((done, joined));
        if ran.len() >= max_requests || began.elapsed() >= max_age {
            break;
        }
        next = rx.try_recv().ok();
    }
    writer.settle();
    let jobs = ran.len();
    for (done, joined) in ran {
        if let Some(done) = done {
            done(joined.outcome());
        }
    }
    jobs
}

/// The running job's context, when this thread is `writer`'s and runs a job. What it joined
/// is taken out for the store call and put back, with what the call joined, on drop.
pub(super) struct InJob {
    pub arrived: Instant,
    pub joined: Joined,
}

pub(super) fn in_job(writer: &Writer) -> Option<InJob> {
    let addr = writer as *const Writer as usize;
    JOB.with_borrow_mut(|context| match context {
        Some(c) if c.writer == addr => Some(InJob {
            arrived: c.arrived,
            joined: std::mem::take(&mut c.joined),
        }),
        _ => None,
    })
}

impl Drop for InJob {
    fn drop(&mut self) {
        let joined = std::mem::take(&mut self.joined);
        JOB.with_borrow_mut(|context| {
            if let Some(c) = context {
                c.joined.absorb(joined);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::column;
    use super::*;

    use std::sync::Mutex;
    use std::time::Duration;

    use rusqlite::Connection;

    /// A writer thread on a fresh database with one table `t (v TEXT UNIQUE)`, and its path.
    fn queue(dir: &tempfile::TempDir) -> (Arc<Writer>, Queue, std::path::PathBuf) {
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE t (v TEXT UNIQUE);",
        )
        .unwrap();
        conn.busy_timeout(Duration::from_millis(200)).unwrap();
        let writer = Arc::new(Writer::new(conn));
        let queue = Queue::start(Arc::clone(&writer)).unwrap();
        (writer, queue, path)
    }

    fn rows(path: &std::path::Path) -> Vec<String> {
        let reader = Connection::open(path).unwrap();
        column(&reader, "SELECT v FROM t ORDER BY v")
    }

    /// What `SqliteStore::write` does in a job.
    fn write(
        writer: &Writer,
        f: impl FnOnce(&Connection) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut job = in_job(writer).expect("on the writer thread, in a job");
        writer.run_deferred(job.arrived, &mut job.joined, |tx| f(tx))
    }

    fn insert(conn: &Connection, v: &str) -> Result<(), StoreError> {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
        Ok(())
    }

    /// What each job was answered: its own result, then its batch's, with the rows another
    /// connection saw when it was answered.
    type Answers = Arc<
        Mutex<
            Vec<(
                String,
                Result<(), StoreError>,
                Result<(), StoreError>,
                Vec<String>,
            )>,
        >,
    >;

    fn job(
        writer: &Arc<Writer>,
        path: &std::path::Path,
        answers: &Answers,
        name: &str,
        f: impl FnOnce(&Writer) -> Result<(), StoreError> + Send + 'static,
    ) -> Job {
        let (writer, path, answers, name) = (
            Arc::clone(writer),
            path.to_path_buf(),
            Arc::clone(answers),
            name.to_string(),
        );
        Box::new(move || {
            let own = f(&writer);
            Box::new(move |durable| {
                let seen = rows(&path);
                answers.lock().unwrap().push((name, own, durable, seen));
            })
        })
    }

    /// Holds the writer thread in a job until the returned sender is dropped, so that the jobs
    /// submitted meanwhile queue up behind it.
    fn hold(queue: &Queue) -> mpsc::Sender<()> {
        let (tx, rx) = mpsc::channel::<()>();
        let (started, wait_started) = mpsc::channel();
        queue
            .submit(Box::new(move || {
                started.send(()).unwrap();
                let _ = rx.recv();
                Box::new(|_| {})
            }))
            .map_err(|_| ())
            .unwrap();
        wait_started.recv().unwrap();
        tx
    }

    /// Queues `n` jobs, each inserting its own row `v0`, `v1`, ...
    fn queue_inserts(
        writer: &Arc<Writer>,
        queue: &Queue,
        path: &std::path::Path,
        answers: &Answers,
        n: usize,
    ) {
        for i in 0..n {
            let v = format!("v{i}");
            let j = job(writer, path, answers, &v.clone(), move |w| {
                write(w, |c| insert(c, &v))
            });
            queue.submit(j).map_err(|_| ()).unwrap();
        }
    }

    fn wait_for(answers: &Answers, n: usize) {
        while answers.lock().unwrap().len() < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn queued_jobs_share_one_commit_and_are_answered_once_it_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, queue, path) = queue(&dir);
        let answers = Answers::default();
        let gate = hold(&queue);
        queue_inserts(&writer, &queue, &path, &answers, 5);
        drop(gate);
        wait_for(&answers, 5);
        let stats = writer.stats();
        assert_eq!((stats.batches, stats.requests), (1, 5), "{stats:?}");
        for (name, own, durable, seen) in answers.lock().unwrap().iter() {
            assert!(
                own.is_ok() && durable.is_ok(),
                "{name}: {own:?} {durable:?}"
            );
            // Another connection already sees every row of the batch when any job is answered.
            assert_eq!(
                seen.len(),
                5,
                "{name} was answered before its commit: {seen:?}"
            );
        }
    }

    #[test]
    fn a_refused_job_rolls_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, queue, path) = queue(&dir);
        let answers = Answers::default();
        let gate = hold(&queue);
        let jobs = [
            job(&writer, &path, &answers, "a", |w| {
                write(w, |c| insert(c, "a"))
            }),
            job(&writer, &path, &answers, "half", |w| {
                write(w, |c| {
                    insert(c, "half")?;
                    insert(c, "a")
                })
            }),
            job(&writer, &path, &answers, "b", |w| {
                write(w, |c| insert(c, "b"))
            }),
        ];
        for j in jobs {
            queue.submit(j).map_err(|_| ()).unwrap();
        }
        drop(gate);
        wait_for(&answers, 3);
        assert_eq!(rows(&path), ["a", "b"]);
        let answers = answers.lock().unwrap();
        let half = answers.iter().find(|a| a.0 == "half").unwrap();
        assert!(half.1.is_err(), "its own conflict is its answer");
        assert!(half.2.is_ok(), "its batch committed: {:?}", half.2);
        assert_eq!(writer.stats().batches, 1);
    }

    #[test]
    fn a_lost_batch_fails_every_job_that_joined_it_and_the_next_batch_starts_clean() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, queue, path) = queue(&dir);
        let answers = Answers::default();
        let gate = hold(&queue);
        let jobs = [
            job(&writer, &path, &answers, "before", |w| {
                write(w, |c| insert(c, "before"))
            }),
            job(&writer, &path, &answers, "reader", |w| {
                let mut job = in_job(w).unwrap();
                w.read_deferred(job.arrived, &mut job.joined, |c| {
                    c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                })?
                .map(|_| ())
                .map_err(StoreError::from)
            }),
            // Ends the whole transaction: the rows of its batch-mates are gone with it.
            job(&writer, &path, &answers, "breaker", |w| {
                write(w, |c| {
                    c.execute_batch("ROLLBACK")?;
                    Ok(())
                })
            }),
            job(&writer, &path, &answers, "after", |w| {
                write(w, |c| insert(c, "after"))
            }),
        ];
        for j in jobs {
            queue.submit(j).map_err(|_| ()).unwrap();
        }
        drop(gate);
        wait_for(&answers, 4);
        assert_eq!(rows(&path), ["after"]);
        let answers = answers.lock().unwrap();
        // What its client is told: the batch's fate, else its own answer (as http::writing).
        let fate = |name: &str| {
            let (_, own, durable, _) = answers.iter().find(|a| a.0 == name).unwrap();
            durable.as_ref().and(own.as_ref())
        };
        assert!(
            fate("before").is_err(),
            "its row was lost, yet it was told durable"
        );
        assert!(fate("reader").is_err(), "it read a row that was then lost");
        assert!(fate("breaker").is_err());
        assert!(fate("after").is_ok(), "{:?}", fate("after"));
        assert_eq!(writer.stats().failed_batches, 1);
    }

    #[test]
    fn a_job_reads_its_own_write_before_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, queue, path) = queue(&dir);
        let answers = Answers::default();
        let j = job(&writer, &path, &answers, "rw", |w| {
            write(w, |c| insert(c, "mine"))?;
            let mut job = in_job(w).unwrap();
            let n = w.read_deferred(job.arrived, &mut job.joined, |c| {
                c.query_row("SELECT count(*) FROM t WHERE v = 'mine'", [], |r| {
                    r.get::<_, i64>(0)
                })
            })??;
            assert_eq!(n, 1, "the job's read did not see its own write");
            Ok(())
        });
        queue.submit(j).map_err(|_| ()).unwrap();
        wait_for(&answers, 1);
        let answers = answers.lock().unwrap();
        assert!(
            answers[0].1.is_ok() && answers[0].2.is_ok(),
            "{:?}",
            answers[0]
        );
        assert_eq!(answers[0].3, ["mine"]);
    }

    #[test]
    fn a_job_that_only_reads_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, queue, path) = queue(&dir);
        let answers = Answers::default();
        let j = job(&writer, &path, &answers, "r", |w| {
            let mut job = in_job(w).unwrap();
            w.read_deferred(job.arrived, &mut job.joined, |_| ())
        });
        queue.submit(j).map_err(|_| ()).unwrap();
        wait_for(&answers, 1);
        assert!(answers.lock().unwrap()[0].2.is_ok());
        assert_eq!(writer.stats().batches, 0);
    }

    #[test]
    fn a_panicking_job_does_not_stop_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, queue, path) = queue(&dir);
        let answers = Answers::default();
        let gate = hold(&queue);
        let boom = job(&writer, &path, &answers, "boom", |w| {
            write(w, |c| insert(c, "boom"))?;
            panic!("a job's own bug")
        });
        queue.submit(boom).map_err(|_| ()).unwrap();
        let ok = job(&writer, &path, &answers, "ok", |w| {
            write(w, |c| insert(c, "ok"))
        });
        queue.submit(ok).map_err(|_| ()).unwrap();
        drop(gate);
        wait_for(&answers, 1);
        let answers = answers.lock().unwrap();
        assert_eq!(answers.len(), 1, "the panicking job has no answer to give");
        assert!(answers[0].2.is_ok(), "{:?}", answers[0]);
    }

    #[test]
    fn jobs_queued_behind_a_busy_begin_are_answered_busy_without_waiting_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, queue, path) = queue(&dir);
        // Another process holds the write lock past the writer's busy_timeout.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let answers = Answers::default();
        let gate = hold(&queue);
        for name in ["first", "second"] {
            let j = job(&writer, &path, &answers, name, move |w| {
                write(w, |c| insert(c, name))
            });
            queue.submit(j).map_err(|_| ()).unwrap();
        }
        drop(gate);
        wait_for(&answers, 2);
        other.execute_batch("ROLLBACK").unwrap();
        for (name, own, _, _) in answers.lock().unwrap().iter() {
            assert!(matches!(own, Err(StoreError::Busy)), "{name}: {own:?}");
        }
        // Queued after the lock was given up, a job is served.
        let answers = Answers::default();
        let j = job(&writer, &path, &answers, "later", |w| {
            write(w, |c| insert(c, "later"))
        });
        queue.submit(j).map_err(|_| ()).unwrap();
        wait_for(&answers, 1);
        assert!(answers.lock().unwrap()[0].1.is_ok());
        assert_eq!(rows(&path), ["later"]);
    }

    #[test]
    fn dropping_the_queue_answers_what_was_queued_first() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, queue, path) = queue(&dir);
        let answers = Answers::default();
        let gate = hold(&queue);
        queue_inserts(&writer, &queue, &path, &answers, 3);
        drop(gate);
        drop(queue);
        // The drop waited for the thread: every queued job was answered and committed.
        assert_eq!(answers.lock().unwrap().len(), 3);
        assert_eq!(rows(&path).len(), 3);
    }
}
