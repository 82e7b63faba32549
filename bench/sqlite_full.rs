//! Benchmark anchor: how many durable single-row commits raw SQLite makes on this disk.
//!
//! usage: sqlite_full --db PATH [--threads 16,1] [--seconds D]
//!
//! For each thread count T (in turn, on the same file), T threads each open their own connection
//! with keygate's durability settings (WAL, `synchronous=FULL`, a 5 s busy timeout) and loop
//! `BEGIN IMMEDIATE; INSERT one row; COMMIT` for D seconds. One line per count:
//! `sqlite-full: T thread(s), D s, N inserts, B busy, R inserts/s` (B: BEGINs refused after the 5 s). A keygate create or delete is one such
//! transaction plus the HTTP and key work around it, so bench/run.sh sets create-delete against this.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

fn usage() -> ! {
    eprintln!("usage: sqlite_full --db PATH [--threads 16,1] [--seconds D]");
    std::process::exit(2)
}

/// A writer's connection, as keygate's pool opens them. WAL is a property of the file, set once in
/// `main`: switching it from 16 fresh connections at once would race for the exclusive lock.
fn open(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy_timeout");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("synchronous=FULL");
    conn
}

/// Inserts and busy refusals with `threads` writers for `seconds`, and the time it took.
fn run(path: &Path, threads: usize, seconds: f64) -> (u64, u64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    // About the size of a deploy key's text, so the WAL grows by what keygate writes per key.
    let body: Arc<str> = "x".repeat(100).into();
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (path, stop, body) = (path.to_path_buf(), stop.clone(), body.clone());
            std::thread::spawn(move || {
                let mut conn = open(&path);
                let (mut inserts, mut busy) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    // When the disk stalls a commit past the busy timeout, keygate answers 503
                    // and carries on; so does the anchor, and says how often.
                    let tx = match conn
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    {
                        Ok(tx) => tx,
                        Err(e)
                            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) =>
                        {
                            busy += 1;
                            continue;
                        }
                        Err(e) => panic!("BEGIN IMMEDIATE: {e}"),
                    };
                    tx.execute("INSERT INTO t (body) VALUES (?1)", [&*body])
                        .expect("INSERT");
                    tx.commit().expect("COMMIT");
                    inserts += 1;
                }
                (inserts, busy)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let (inserts, busy) = workers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .fold((0, 0), |(i, b), (wi, wb)| (i + wi, b + wb));
    (inserts, busy, started.elapsed().as_secs_f64())
}

fn main() {
    let mut db = None;
    let mut threads = vec![16usize, 1];
    let mut seconds = 10.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--db" => db = Some(PathBuf::from(value)),
            "--threads" => {
                threads = value
                    .split(',')
                    .map(|t| t.parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--seconds" => seconds = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let db = db.unwrap_or_else(|| usage());
    let setup = open(&db);
    setup
        .pragma_update(None, "journal_mode", "WAL")
        .expect("journal_mode=WAL");
    setup
        .execute_batch("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .expect("create table");
    drop(setup);
    for t in threads {
        let (inserts, busy, elapsed) = run(&db, t.max(1), seconds);
        println!(
            "sqlite-full: {} thread(s), {elapsed:.1} s, {inserts} inserts, {busy} busy, {:.0} inserts/s",
            t.max(1),
            inserts as f64 / elapsed
        );
    }
}
