//! Times a command run once per sample key, process start included: wall-time percentiles and the child's CPU.
//!
//! usage: spawntime --name NAME --sample FILE --runs N [--warmup W] [--fail-status S] [--expect-stdout]
//!                  -- PROGRAM ARG...
//!
//! Each run takes the next line of FILE (`SHA256:… type base64`, as `examples/seed.rs` writes it) and
//! replaces `{type}`, `{b64}` and `{fp}` in the arguments. A run fails the benchmark when it exits
//! with status S (255 is ssh's own failure) or, with `--expect-stdout`, prints nothing (stage 1 printing
//! nothing means the key was refused). Prints
//! `NAME: p50 X ms p99 Y ms (mean, max, runs; child CPU per run)`.

use std::process::{Command, Stdio};
use std::time::Instant;

struct Options {
    name: String,
    sample: String,
    runs: usize,
    warmup: usize,
    fail_status: Option<i32>,
    expect_stdout: bool,
    command: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: spawntime --name NAME --sample FILE --runs N [--warmup W] [--fail-status S] \
         [--expect-stdout] -- PROGRAM ARG..."
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        name: "run".into(),
        sample: String::new(),
        runs: 100,
        warmup: 5,
        fail_status: None,
        expect_stdout: false,
        command: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--name" => o.name = value(),
            "--sample" => o.sample = value(),
            "--runs" => o.runs = value().parse().unwrap_or_else(|_| usage()),
            "--warmup" => o.warmup = value().parse().unwrap_or_else(|_| usage()),
            "--fail-status" => o.fail_status = Some(value().parse().unwrap_or_else(|_| usage())),
            "--expect-stdout" => o.expect_stdout = true,
            "--" => {
                o.command = args.collect();
                break;
            }
            _ => usage(),
        }
    }
    if o.command.is_empty() || o.sample.is_empty() || o.runs == 0 {
        usage();
    }
    o
}

/// Runs one command; returns wall seconds and the child's user+system CPU seconds.
fn run_once(o: &Options, fields: &[&str]) -> (f64, f64) {
    let fill = |arg: &String| {
        arg.replace("{fp}", fields[0])
            .replace("{type}", fields[1])
            .replace("{b64}", fields[2])
    };
    let args: Vec<String> = o.command.iter().map(fill).collect();
    let started = Instant::now();
    let child = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter for wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // wait4 rather than Child::wait: it also reports the child's CPU time. Output is small and
    // fits the pipe buffers, so it is read after the exit.
    // SAFETY: the pid is our own unreaped child; status and usage are valid pointers.
    let reaped = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(reaped, child.id() as i32, "wait4 failed");
    let output = {
        use std::io::Read;
        let (mut out, mut err) = (String::new(), String::new());
        let mut child = child;
        if let Some(mut s) = child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(mut s) = child.stderr.take() {
            let _ = s.read_to_string(&mut err);
        }
        // Already reaped: keep Child's drop from doing anything further.
        std::mem::forget(child);
        (out, err)
    };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let failed = o.fail_status == Some(code) || code == -1;
    if failed || (o.expect_stdout && output.0.trim().is_empty()) {
        eprintln!(
            "{}: run failed (exit {code}) for key {}: {}\nstdout: {}",
            o.name,
            fields[0],
            output.1.trim(),
            output.0.trim()
        );
        std::process::exit(1);
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (wall, seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

fn main() {
    let o = options();
    let text = std::fs::read_to_string(&o.sample).unwrap_or_else(|e| panic!("{}: {e}", o.sample));
    let keys: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect();
    assert!(!keys.is_empty(), "{}: no keys", o.sample);
    for i in 0..o.warmup {
        run_once(&o, &keys[i % keys.len()]);
    }
    let mut walls = Vec::with_capacity(o.runs);
    let mut cpu = 0.0;
    for i in 0..o.runs {
        let (wall, used) = run_once(&o, &keys[(i * 7919) % keys.len()]);
        walls.push(wall * 1000.0);
        cpu += used;
    }
    walls.sort_by(f64::total_cmp);
    // Nearest rank: p99 of 500 runs is the 495th.
    let pct = |p: f64| walls[((walls.len() as f64 * p).ceil() as usize).clamp(1, walls.len()) - 1];
    println!(
        "{}: p50 {:.2} ms p99 {:.2} ms (mean {:.2} ms, max {:.2} ms, {} runs; child CPU {:.2} ms/run)",
        o.name,
        pct(0.50),
        pct(0.99),
        walls.iter().sum::<f64>() / walls.len() as f64,
        walls[walls.len() - 1],
        walls.len(),
        cpu * 1000.0 / o.runs as f64
    );
}
