//! The group-commit writer on a scratch table: batching, a member's refusal or panic, a lost batch, the bounds.

use super::super::column;
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
    column(reader, "SELECT v FROM t ORDER BY v")
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
