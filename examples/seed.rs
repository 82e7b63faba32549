//! Seeds a keygate database with N distinct ed25519 deploy keys, fast, through the store's own insert path.
//!
//! usage: seed --db PATH --keys N [--repos R] [--add-key FILE.pub ...] [--sample-out FILE [--sample K]]
//!             [--authorized-keys-out FILE]
//!
//! Keys are random 32-byte ed25519 points (keygate's parser accepts them; nobody holds their private
//! halves), parsed by `PublicKey::parse` so text and fingerprints are exactly what keygate stores,
//! and attached round-robin to R repositories `bench/repo-1..R` (100), in transactions of 20,000
//! keys, in fingerprint order (see `random_points`).
//! `--add-key` puts real public keys (from `ssh-keygen`) in as the last keys of the N, so a
//! benchmark can log in with them; in `--authorized-keys-out` they are the last lines too (the
//! worst case for sshd's linear scan). `--sample-out` writes K keys as `SHA256:… type base64`,
//! spread over the whole id range (the added keys among them).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use base64::Engine;
use keygate::core::{Core, KeyPolicy, PublicKey};
use keygate::store::{NewKey, Store, StoreError, now_ms};
use sha2::{Digest, Sha256};

const BATCH: usize = 20_000;

struct Options {
    db: PathBuf,
    keys: usize,
    repos: usize,
    add_keys: Vec<PathBuf>,
    sample_out: Option<PathBuf>,
    sample: usize,
    authorized_keys_out: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: seed --db PATH --keys N [--repos R] [--add-key FILE.pub ...] \
         [--sample-out FILE [--sample K]] [--authorized-keys-out FILE]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        db: PathBuf::new(),
        keys: 0,
        repos: 100,
        add_keys: Vec::new(),
        sample_out: None,
        sample: 1000,
        authorized_keys_out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        let number = |v: &str| -> usize {
            // 1e6 and 1000000 both work.
            v.parse::<usize>()
                .ok()
                .or_else(|| v.parse::<f64>().ok().map(|f| f as usize))
                .unwrap_or_else(|| usage())
        };
        match flag.as_str() {
            "--db" => o.db = value.into(),
            "--keys" => o.keys = number(&value),
            "--repos" => o.repos = number(&value).max(1),
            "--add-key" => o.add_keys.push(value.into()),
            "--sample-out" => o.sample_out = Some(value.into()),
            "--sample" => o.sample = number(&value),
            "--authorized-keys-out" => o.authorized_keys_out = Some(value.into()),
            _ => usage(),
        }
    }
    if o.db.as_os_str().is_empty() || o.keys < o.add_keys.len() {
        usage();
    }
    o
}

/// The SSH wire blob of the ed25519 public key `point`.
fn blob(point: &[u8; 32]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(51);
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    blob.extend_from_slice(point);
    blob
}

/// A seeded key as `ssh-ed25519 BASE64 seed-SEQ`.
fn random_key(seq: usize, point: &[u8; 32]) -> String {
    format!(
        "ssh-ed25519 {} seed-{seq}",
        base64::engine::general_purpose::STANDARD.encode(blob(point))
    )
}

/// `count` distinct random ed25519 points, ordered by the SHA256 fingerprint of their key. Inserted
/// in that order, the fingerprint's unique index grows at its end instead of at random pages, which
/// keeps SQLite's small page cache from spilling on every insert (about twice as fast at 10^6).
/// The order only speeds the inserts up: what is stored comes from `PublicKey::parse`.
fn random_points(count: usize) -> Vec<[u8; 32]> {
    let mut random = vec![0u8; 32 * count];
    getrandom::fill(&mut random).expect("random");
    let mut points: Vec<([u8; 43], [u8; 32])> = random
        .chunks_exact(32)
        .map(|point| {
            let point: [u8; 32] = point.try_into().expect("32 bytes");
            let mut fingerprint = [0u8; 43];
            base64::engine::general_purpose::STANDARD_NO_PAD
                .encode_slice(Sha256::digest(blob(&point)), &mut fingerprint)
                .expect("43 characters");
            (fingerprint, point)
        })
        .collect();
    points.sort_unstable();
    points.dedup_by(|a, b| a.0 == b.0);
    assert_eq!(points.len(), count, "random points collided");
    points.into_iter().map(|(_, point)| point).collect()
}

fn main() {
    let o = options();
    let started = Instant::now();
    let store = Store::open(&o.db).unwrap_or_else(|e| panic!("{}: {e}", o.db.display()));
    let core = Core::new(store.clone(), KeyPolicy::default());
    let (owner, repo_ids) = setup(&store, &core, o.repos);

    let added: Vec<PublicKey> = o
        .add_keys
        .iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            PublicKey::parse(&text, &KeyPolicy::default())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect();
    let random_count = o.keys - added.len();
    // Which sequence numbers go to the sample: evenly spread, and every added key.
    let stride = (o.keys / o.sample.max(1)).max(1);
    let mut sample: Vec<(String, String)> = Vec::new();
    let mut authorized = o.authorized_keys_out.as_ref().map(|path| {
        BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
    });

    let points = random_points(random_count);
    let mut seq = 0usize;
    while seq < o.keys {
        let end = (seq + BATCH).min(o.keys);
        let keys: Vec<PublicKey> = (seq..end)
            .map(|i| {
                if i >= random_count {
                    added[i - random_count].clone()
                } else {
                    PublicKey::parse(&random_key(i, &points[i]), &KeyPolicy::default())
                        .expect("a random ed25519 point parses")
                }
            })
            .collect();
        store
            .write(|db| {
                let now = now_ms();
                for (offset, key) in keys.iter().enumerate() {
                    let i = seq + offset;
                    let text = key.text();
                    let id = db.insert_key(&NewKey {
                        fingerprint_sha256: key.sha256(),
                        fingerprint_md5: key.md5(),
                        key_text: &text,
                        kind: key.kind(),
                        bits: key.bits(),
                        title: "seed",
                        public: false,
                        owner_id: Some(owner),
                        expires_at: None,
                        created_at: now,
                    })?;
                    db.insert_link(
                        repo_ids[i % repo_ids.len()],
                        id,
                        i.is_multiple_of(2),
                        Some(owner),
                        now,
                    )?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap_or_else(|e| panic!("inserting keys {seq}..{end}: {e}"));
        for (offset, key) in keys.iter().enumerate() {
            let i = seq + offset;
            if i.is_multiple_of(stride) || i >= random_count {
                sample.push((key.sha256().to_string(), key.bare_text()));
            }
            if let Some(out) = authorized.as_mut() {
                writeln!(out, "{}", key.text()).expect("write authorized_keys");
            }
        }
        seq = end;
    }
    if let Some(mut out) = authorized {
        out.flush().expect("write authorized_keys");
    }
    // Leave the database as a server finds it after a quiet spell: the last connection to close
    // checkpoints the WAL into the database and removes it.
    drop(core);
    drop(store);
    if let Some(path) = &o.sample_out {
        let mut out = BufWriter::new(
            std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        );
        for (sha256, line) in &sample {
            writeln!(out, "{sha256} {line}").expect("write sample");
        }
        out.flush().expect("write sample");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {} keys ({} added) on {} repositories in {secs:.1} s ({:.0} keys/s), sample of {}",
        o.keys,
        added.len(),
        repo_ids.len(),
        o.keys as f64 / secs,
        sample.len()
    );
}

/// The owner of the seeded keys and the repositories they go on, created if missing.
fn setup(store: &Store, core: &Core, repos: usize) -> (i64, Vec<i64>) {
    let owner = match store.read(|db| db.user_by_name("seed")) {
        Ok(Some(user)) => user.id,
        Ok(None) => core.add_user("seed", true).expect("add user seed"),
        Err(e) => panic!("{e}"),
    };
    let ids = (1..=repos)
        .map(|r| {
            let path = format!("bench/repo-{r}");
            match store.read(|db| db.repo_by_path(&path)) {
                Ok(Some(repo)) => repo.id,
                Ok(None) => core.add_repo(&path, None).expect("add repo"),
                Err(e) => panic!("{e}"),
            }
        })
        .collect();
    (owner, ids)
}
