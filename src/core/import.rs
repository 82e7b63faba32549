//! Many deploy keys at once: an `authorized_keys` file read into keys and refusals, imported into
//! one repository in a few large transactions, and the keys that may log in, for an export.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::audit::{Actor, Change, event};
use super::key::option_names;
use super::{
    Core, DeployKey, Error, KeyError, Missing, PublicKey, Repository, Result, check_title,
};
use crate::store::{AuditEvent, Db, NewKey, now_ms};

/// Keys written per transaction: one commit (one fsync) per chunk instead of per key, and a
/// chunk small enough that a PostgreSQL retry or the SQLite writer's other callers wait little.
pub const IMPORT_CHUNK: usize = 1000;

/// Keys read per page when listing the keys that may log in.
const LOGIN_PAGE: u32 = 1000;

/// A line that holds an acceptable public key.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// 1-based, as editors number lines.
    pub line: usize,
    pub key: PublicKey,
}

/// Lines `first..=last` that hold no importable key, and why. Never the text itself: it may be
/// a private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub first: usize,
    pub last: usize,
    pub reason: String,
}

/// What a file holds: the keys to import, in file order, and the lines refused.
#[derive(Debug, Default)]
pub struct KeyFile {
    pub keys: Vec<Candidate>,
    pub refused: Vec<Refusal>,
}

/// What an import changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Keys new to the instance.
    pub created: usize,
    /// Keys already on the instance, now attached to the repository as well.
    pub joined: usize,
    /// Keys already attached to the repository (or listed twice): left as they were.
    pub present: usize,
}

impl Core {
    /// Reads `authorized_keys` text: blank lines and `#` comments are skipped, options are
    /// dropped (keygate's own forced command replaces them), and every other line must hold a
    /// public key that passes this instance's policy. A pasted private key is refused once, as
    /// the block of lines it spans.
    pub fn read_authorized_keys(&self, text: &str) -> KeyFile {
        let mut file = KeyFile::default();
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .peekable();
        while let Some((number, line)) = lines.next() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if begins_private_block(line) {
                let mut last = number;
                if !ends_private_block(line) {
                    while let Some((next_number, next)) =
                        lines.next_if(|(_, next)| inside_private_block(next))
                    {
                        last = next_number;
                        if ends_private_block(next) {
                            break;
                        }
                    }
                }
                file.refused.push(Refusal {
                    first: number,
                    last,
                    reason: KeyError::Private.to_string(),
                });
                continue;
            }
            let refuse = |reason: String| Refusal {
                first: number,
                last: number,
                reason,
            };
            // Dropping this option would turn a CA that vouches for certificates into a key that
            // logs in itself.
            if option_names(line).iter().any(|o| o == "cert-authority") {
                file.refused.push(refuse(
                    "a cert-authority line trusts certificates, which keygate does not accept"
                        .into(),
                ));
                continue;
            }
            match PublicKey::parse(line, &self.policy) {
                Ok(key) => file.keys.push(Candidate { line: number, key }),
                Err(err) => file.refused.push(refuse(err.to_string())),
            }
        }
        file
    }

    /// Attaches `keys` to the repository at `path`, as `add_key` does for one (a key already on
    /// the instance joins; one already on the repository is left alone, its `can_push` too), in
    /// transactions of `IMPORT_CHUNK` keys. `progress` learns how many keys are done after each.
    /// A run that stops half-way keeps its finished chunks; running it again completes it.
    pub fn import_keys(
        &self,
        path: &str,
        keys: &[Candidate],
        can_push: bool,
        mut progress: impl FnMut(usize),
    ) -> Result<Imported> {
        let repo_id = self
            .store
            .read(|db| db.repo_by_path(path))?
            .ok_or(Error::NotFound(Missing::Repository))?
            .id;
        let mut total = Imported::default();
        let mut done = 0;
        for chunk in keys.chunks(IMPORT_CHUNK) {
            // Counted inside the closure: on PostgreSQL it may run again after a retry.
            let counts = self.store.write_alone(|db| {
                let repo = db
                    .repo_by_id(repo_id)?
                    .ok_or(Error::NotFound(Missing::Repository))?;
                import_chunk(db, &repo, chunk, can_push)
            })?;
            total.created += counts.created;
            total.joined += counts.joined;
            total.present += counts.present;
            done += chunk.len();
            progress(done);
        }
        Ok(total)
    }

    /// Calls `each` with every deploy key that may log in (attached to the repository at `path`,
    /// or to any repository) and has not expired, in id order, a page at a time.
    pub fn login_keys<E: From<Error>>(
        &self,
        path: Option<&str>,
        mut each: impl FnMut(&DeployKey) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let repo_id = match path {
            Some(path) => Some(
                self.store
                    .read(|db| db.repo_by_path(path))
                    .map_err(Error::from)?
                    .ok_or(Error::NotFound(Missing::Repository))?
                    .id,
            ),
            None => None,
        };
        let mut after = 0;
        loop {
            let page = self
                .store
                .read(|db| db.login_keys(repo_id, after, LOGIN_PAGE))
                .map_err(Error::from)?;
            let now = now_ms();
            for key in &page {
                if key.expires_at.is_none_or(|at| at > now) {
                    each(key)?;
                }
            }
            match page.last() {
                Some(last) if page.len() == LOGIN_PAGE as usize => after = last.id,
                _ => return Ok(()),
            }
        }
    }
}

/// One chunk in one transaction: a few queries for the whole chunk (one round trip each on
/// PostgreSQL), not a few per key. The admin CLI is the actor of every record.
fn import_chunk(
    db: &Db,
    repo: &Repository,
    chunk: &[Candidate],
    can_push: bool,
) -> Result<Imported> {
    let mut counts = Imported::default();
    // A key listed twice is imported once; its later lines find it present.
    let mut seen = HashSet::with_capacity(chunk.len());
    let firsts: Vec<&Candidate> = chunk
        .iter()
        .filter(|c| seen.insert(c.key.sha256()))
        .collect();
    counts.present += chunk.len() - firsts.len();
    let fingerprints: Vec<&str> = firsts.iter().map(|c| c.key.sha256()).collect();
    let existing = by_fingerprint(db.keys_by_sha256_many(&fingerprints)?);
    let existing_ids: Vec<i64> = existing.values().map(|k| k.id).collect();
    let linked: HashSet<i64> = db
        .linked_key_ids(repo.id, &existing_ids)?
        .into_iter()
        .collect();
    let (mut joining, mut fresh) = (Vec::new(), Vec::new());
    for candidate in firsts {
        match existing.get(candidate.key.sha256()) {
            Some(key) if linked.contains(&key.id) => counts.present += 1,
            Some(key) => joining.push((candidate, key)),
            None => fresh.push(candidate),
        }
    }

    let titles: Vec<String> = fresh.iter().map(|c| title_of(c)).collect();
    let texts: Vec<String> = fresh.iter().map(|c| c.key.text()).collect();
    let now = now_ms();
    let new: Vec<NewKey> = fresh
        .iter()
        .zip(titles.iter().zip(&texts))
        .map(|(c, (title, text))| NewKey {
            fingerprint_sha256: c.key.sha256(),
            fingerprint_md5: c.key.md5(),
            key_text: text,
            kind: c.key.kind(),
            bits: c.key.bits(),
            title,
            public: false,
            owner_id: None,
            expires_at: None,
            created_at: now,
        })
        .collect();
    db.insert_keys(&new)?;
    let fresh_fingerprints: Vec<&str> = fresh.iter().map(|c| c.key.sha256()).collect();
    let created = by_fingerprint(db.keys_by_sha256_many(&fresh_fingerprints)?);
    if created.len() != fresh.len() {
        return Err(Error::Internal(
            "imported keys vanished inside their transaction".into(),
        ));
    }
    let created: Vec<(&Candidate, &DeployKey)> = fresh
        .iter()
        .map(|c| (*c, &created[c.key.sha256()]))
        .collect();

    let ids: Vec<i64> = joining
        .iter()
        .chain(&created)
        .map(|(_, key)| key.id)
        .collect();
    db.insert_links(repo.id, &ids, can_push, None)?;

    let mut events: Vec<(usize, AuditEvent)> = Vec::with_capacity(ids.len());
    for (candidate, key) in &joining {
        let details = json!({"after": {"can_push": can_push}, "import_line": candidate.line});
        events.push((
            candidate.line,
            import_event("deploy_key.join", repo, key, details),
        ));
    }
    for (candidate, key) in &created {
        let details = json!({
            "after": {"title": key.title, "can_push": can_push, "expires_at": key.expires_at},
            "import_line": candidate.line,
        });
        events.push((
            candidate.line,
            import_event("deploy_key.create", repo, key, details),
        ));
    }
    // In file order, as the keys were read.
    events.sort_unstable_by_key(|(line, _)| *line);
    let events: Vec<AuditEvent> = events.into_iter().map(|(_, e)| e).collect();
    db.insert_audit_events(events)?;

    counts.joined += joining.len();
    counts.created += created.len();
    Ok(counts)
}

fn by_fingerprint(keys: Vec<DeployKey>) -> HashMap<crate::store::Text, DeployKey> {
    keys.into_iter()
        .map(|k| (k.fingerprint_sha256.clone(), k))
        .collect()
}

fn import_event(
    action: &'static str,
    repo: &Repository,
    key: &DeployKey,
    details: Value,
) -> AuditEvent {
    event(Actor::Cli, Change::on_key(action, Some(repo), key, details))
}

/// The key's comment, as `ssh-keygen -C` set it, when it makes a valid title.
fn title_of(candidate: &Candidate) -> String {
    match candidate.key.comment() {
        Some(comment) if check_title(comment).is_ok() => comment.to_string(),
        _ => format!("imported line {}", candidate.line),
    }
}

/// `-----BEGIN … PRIVATE KEY-----` (OpenSSH, PEM, PKCS#8) or a PuTTY key file's first line.
fn begins_private_block(line: &str) -> bool {
    (line.starts_with("-----BEGIN ") && line.contains("PRIVATE KEY"))
        || line.starts_with("PuTTY-User-Key-File-")
}

fn ends_private_block(line: &str) -> bool {
    line.contains("-----END ") || line.starts_with("Private-MAC:")
}

/// A line a private key block is made of: base64, a `Header: value` line (PEM's `Proc-Type:`,
/// PuTTY's `Encryption:`), or its end. Anything else ends a block whose end was cut off.
fn inside_private_block(line: &str) -> bool {
    let base64 = !line.is_empty()
        && line
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    let header = line.split_once(": ").is_some_and(|(name, _)| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    base64 || header || ends_private_block(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_blocks_end_at_their_end_line_or_where_they_were_cut_off() {
        assert!(begins_private_block("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(begins_private_block("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(begins_private_block("PuTTY-User-Key-File-3: ssh-ed25519"));
        assert!(!begins_private_block("-----BEGIN PUBLIC KEY-----"));
        assert!(inside_private_block(
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ=="
        ));
        assert!(inside_private_block("Proc-Type: 4,ENCRYPTED"));
        assert!(inside_private_block("-----END OPENSSH PRIVATE KEY-----"));
        assert!(!inside_private_block("ssh-ed25519 AAAAC3Nza comment"));
        assert!(!inside_private_block("no-pty ssh-ed25519 AAAAC3Nza"));
        assert!(ends_private_block("Private-MAC: 0123abcd"));
    }
}
