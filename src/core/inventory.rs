//! What the operator's gauges and readiness probe ask of the store: counts of users, repositories and keys, and whether it can serve at all.

use super::{Core, Result};

/// How many of each the instance holds, read in one snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub users: u64,
    pub repositories: u64,
    pub keys: u64,
}

impl Core {
    /// The counts behind the `/-/metrics` gauges. On SQLite the key count is read from the
    /// counter table the triggers keep; the others (and every count on PostgreSQL) walk an index.
    pub fn inventory(&self) -> Result<Inventory> {
        self.store.read(|db| {
            Ok(Inventory {
                users: db.count_users(None)?,
                repositories: db.count_repos()?,
                keys: db.count_keys(false, u64::MAX)?,
            })
        })
    }

    /// Whether the store can serve (`Store::ping`).
    pub fn ping(&self) -> Result<()> {
        Ok(self.store.ping()?)
    }
}
