//! A worker's memo of rows it read in earlier sessions, kept only while no connection has committed since.
//!
//! Every request authenticates and finds its repository again; on an unchanged database those
//! lookups return what they returned the request before. The WAL index's header
//! (`wal_index.rs`) changes whenever any connection, of this process or another, commits. So
//! the memo is tagged with the header read as its rows' session began (before that session's
//! snapshot), and emptied at the start of every session that finds another header: a
//! revocation committed anywhere counts at the very next request, as without it. Rows a session
//! reads are kept under the tag it began with; had something committed in between, the header
//! already differs and the next session empties them.
//! Only rows are kept: expiry and every other rule that depends on the clock run on each request.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::hash::Hash;

use super::wal_index::Header;
use super::{LinkedKey, Repository, Role, Token, User};

/// Entries a table holds before it is emptied, so that a stream of unknown tokens or of
/// different pages bounds a worker's memory instead of growing it.
const CAP: usize = 512;

#[cfg(test)]
thread_local! {
    /// Reads the memo did not answer, on this thread (session.rs's tests).
    pub(super) static MISSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Rows of one kind, by the arguments of the statement that read them.
/// Keyed by ids and token hashes (SHA-256 digests no client can aim), so a fast seeded hasher
/// serves; a table is bounded by `CAP` anyway.
pub(super) struct Table<K, V>(foldhash::HashMap<K, V>);

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table(foldhash::HashMap::default())
    }
}

#[derive(Default)]
pub(super) struct Memo {
    /// The WAL-index header as the session that read these rows began; `None` while nothing
    /// may be kept (the header could not be read, or the session wrote).
    version: Option<Header>,
    pub(super) tokens: Table<Vec<u8>, Option<(Token, User)>>,
    pub(super) repos_by_id: Table<i64, Option<Repository>>,
    pub(super) repos_by_path: Table<String, Option<Repository>>,
    pub(super) roles: Table<(i64, i64), Option<Role>>,
    pub(super) linked: Table<(i64, i64), Option<LinkedKey>>,
    pub(super) pages: Table<(i64, u64, u32), Vec<LinkedKey>>,
    pub(super) link_counts: Table<i64, u64>,
}

impl Memo {
    /// Called as a session starts, with the header read before its snapshot.
    pub(super) fn validate(&mut self, version: Option<Header>) {
        if version.is_none() || version != self.version {
            *self = Memo {
                version,
                ..Memo::default()
            };
        }
    }

    /// Forgets everything until the next session: this one's snapshot changed under it.
    pub(super) fn invalidate(&mut self) {
        self.validate(None);
    }

    /// Whether rows may be served and kept: the header was read and nothing since changed it
    /// in this session's view.
    pub(super) fn version(&self) -> Option<&Header> {
        self.version.as_ref()
    }
}

/// `read()`'s rows for `key`: from the memo when it has them, else read and kept. Without a memo
/// (a pooled read, the writer) or while it keeps nothing, just `read()`.
pub(super) fn memoized<K, Q, V, E>(
    memo: Option<&RefCell<Memo>>,
    table: fn(&mut Memo) -> &mut Table<K, V>,
    key: &Q,
    read: impl FnOnce() -> Result<V, E>,
) -> Result<V, E>
where
    K: Borrow<Q> + Hash + Eq,
    Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
    V: Clone,
{
    let Some(memo) = memo else {
        return read();
    };
    {
        let mut memo = memo.borrow_mut();
        if memo.version.is_none() {
            drop(memo);
            return read();
        }
        if let Some(hit) = table(&mut memo).0.get(key) {
            return Ok(hit.clone());
        }
    }
    #[cfg(test)]
    MISSES.with(|m| m.set(m.get() + 1));
    let value = read()?;
    let mut memo = memo.borrow_mut();
    // The read may have found the database changed under the session (`Local::begin`).
    if memo.version.is_none() {
        return Ok(value);
    }
    let rows = &mut table(&mut memo).0;
    if rows.len() >= CAP {
        rows.clear();
    }
    rows.insert(key.to_owned(), value.clone());
    Ok(value)
}
