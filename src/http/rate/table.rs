//! The limiter's bounded, sharded in-process tables: request windows per user and failed logins per address.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Mutex;

/// Locks taken by unrelated requests rarely meet: a request locks one shard for one hash lookup.
const SHARDS: usize = 16;

/// A map split over `SHARDS` mutexes, each holding at most `cap / SHARDS` entries. When a shard
/// is full, the entries `stale` calls dead are dropped, and if none are, the one `victim` ranks
/// lowest: many addresses can cost an attacker's own entries, never unbounded memory.
pub(super) struct Table<K, V> {
    shards: Vec<Mutex<HashMap<K, V>>>,
    per_shard: usize,
    hasher: RandomState,
}

impl<K: Hash + Eq + Copy, V> Table<K, V> {
    pub(super) fn new(cap: usize) -> Table<K, V> {
        Table {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: (cap / SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &K) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A panic while holding the lock leaves counters, not broken invariants.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the entry for `key`, made by `fresh` if absent (after making room).
    pub(super) fn with<R>(
        &self,
        key: K,
        fresh: impl FnOnce() -> V,
        stale: impl Fn(&V) -> bool,
        victim: impl Fn(&V) -> u64,
        f: impl FnOnce(&mut V) -> R,
    ) -> R {
        let mut shard = self.shard(&key);
        if !shard.contains_key(&key) && shard.len() >= self.per_shard {
            shard.retain(|_, v| !stale(v));
            if shard.len() >= self.per_shard
                && let Some(k) = shard.iter().min_by_key(|(_, v)| victim(v)).map(|(k, _)| *k)
            {
                shard.remove(&k);
            }
        }
        f(shard.entry(key).or_insert_with(fresh))
    }

    /// Runs `f` on the entry for `key` if there is one; `f` answering `true` removes it.
    pub(super) fn existing<R>(&self, key: &K, f: impl FnOnce(&mut V) -> (R, bool)) -> Option<R> {
        let mut shard = self.shard(key);
        let entry = shard.get_mut(key)?;
        let (result, remove) = f(entry);
        if remove {
            shard.remove(key);
        }
        Some(result)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_evicts_instead_of_growing() {
        let table: Table<u32, u64> = Table::new(SHARDS * 4);
        for key in 0..10_000u32 {
            table.with(key, || u64::from(key), |_| false, |v| *v, |_| ());
        }
        assert!(table.len() <= SHARDS * 4, "{} entries", table.len());
        // The newest key is always kept: it was inserted after making room.
        assert_eq!(table.existing(&9_999, |v| (*v, false)), Some(9_999));
    }

    #[test]
    fn stale_entries_go_first() {
        let table: Table<u32, u64> = Table::new(SHARDS * 2);
        table.with(1, || 1, |_| false, |v| *v, |_| ());
        for key in 2..200u32 {
            // Everything but key 1 is stale: key 1 survives although it ranks lowest.
            table.with(key, || 100, |v| *v == 100, |v| *v, |_| ());
        }
        assert_eq!(table.existing(&1, |v| (*v, false)), Some(1));
    }
}
