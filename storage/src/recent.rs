//! Recent client ids: which `cid`s each sender used lately, so that a send retried with the
//! same `cid` within the window stores one message.
//!
//! A send with a `cid` writes one row of [`RECENT_CIDS`](crate::tables::RECENT_CIDS), keyed by
//! when the server stored it: `(at_ms, tenant, sender, cid)` → `(conversation, seq)`. The
//! rows of one commit are neighbours at the end of the table, so a batch of sends dirties one
//! leaf of it; a key led by the sender (the table of earlier versions) put each send on a
//! leaf of its own and grew forever. Rows older than the window are removed as sends go on, with their entries.
//!
//! A lookup by `(tenant, sender, cid)` needs the time that leads the row's key. This index,
//! kept by the Writer thread, maps a keyed hash of the three to it. It is a hint: every hit
//! is confirmed by reading the row, so an entry whose row was never committed (an aborted
//! batch) or was pruned finds nothing and costs one read. What must never be is a row
//! without its entry: the index is built from the table when the Writer starts (so the first
//! send after a restart does not wait for it) and built again after its transaction applied
//! rows it did not write (a cluster copy following the log). Two triples with the same 64-bit hash (keyed per process, so not chosen by a
//! client) keep the newer's time: the older `cid` would be forgotten early.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::time::Duration;

use redb::ReadableTable;

use crate::Result;

/// The key of a `RECENT_CIDS` row: `(stored at ms, tenant, sender, cid)`.
type RowKey = (u64, &'static str, u64, &'static str);
/// The value of a `RECENT_CIDS` row: `(conversation, seq)`.
type RowValue = (&'static str, u64);

/// How many expired rows one prune removes at most, so a backlog (after a long stop) costs
/// many small steps instead of one long commit.
pub(crate) const PRUNE_MAX: usize = 1024;

/// The index maps hashes that are already uniform: no second hashing.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The Writer's index of recent client ids; see the module doc.
pub(crate) struct RecentCids {
    window_ms: u64,
    keys: RandomState,
    at: HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
    built: bool,
    /// When expired rows are next looked for, ms since the epoch.
    next_prune: u64,
}

impl RecentCids {
    /// An index not built yet, for a window of `window` (at least 1 ms).
    pub(crate) fn new(window: Duration) -> RecentCids {
        RecentCids {
            window_ms: (window.as_millis() as u64).max(1),
            keys: RandomState::new(),
            at: HashMap::default(),
            built: false,
            next_prune: 0,
        }
    }

    /// The index's key of a sender's `cid`.
    pub(crate) fn key(&self, tenant: &str, sender: u64, cid: &str) -> u64 {
        self.keys.hash_one((tenant, sender, cid))
    }

    /// Rows stored before this time are expired at `now`.
    pub(crate) fn cutoff(&self, now: u64) -> u64 {
        now.saturating_sub(self.window_ms)
    }

    /// Whether the index holds every row of the table it was built from.
    pub(crate) fn is_built(&self) -> bool {
        self.built
    }

    /// Replaces the index with the rows of `table` (the whole of `RECENT_CIDS`).
    pub(crate) fn rebuild(&mut self, table: &impl ReadableTable<RowKey, RowValue>) -> Result<()> {
        self.at.clear();
        for entry in table.iter()? {
            let (key, _) = entry?;
            let (at, tenant, sender, cid) = key.value();
            let key = self.key(tenant, sender, cid);
            self.note(key, at);
        }
        self.at.shrink_to_fit();
        self.built = true;
        Ok(())
    }

    /// The table changed behind the index's back: build it again before the next lookup.
    pub(crate) fn invalidate(&mut self) {
        self.built = false;
    }

    /// When the row of `key` was stored, if the index knows it.
    pub(crate) fn get(&self, key: u64) -> Option<u64> {
        self.at.get(&key).copied()
    }

    /// A row stored at `at` for `key`; the newest time wins.
    pub(crate) fn note(&mut self, key: u64, at: u64) {
        let slot = self.at.entry(key).or_insert(at);
        *slot = (*slot).max(at);
    }

    /// Whether expired rows should be looked for at `now`; if so, the next look is set for
    /// a sixtieth of the window later (at least 1 s or the window, at most 60 s).
    pub(crate) fn prune_due(&mut self, now: u64) -> bool {
        if now < self.next_prune {
            return false;
        }
        let every = (self.window_ms / 60).clamp(self.window_ms.min(1_000), 60_000);
        self.next_prune = now + every;
        true
    }

    /// A prune found more expired rows than it removed: look again at the next note, so
    /// a backlog goes [`PRUNE_MAX`] rows a commit.
    pub(crate) fn prune_again(&mut self) {
        self.next_prune = 0;
    }

    /// Forgets `key`'s entry if it is that of the row stored at `at` (which was removed).
    pub(crate) fn forget(&mut self, key: u64, at: u64) {
        if self.at.get(&key) == Some(&at) {
            self.at.remove(&key);
        }
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_time_of_a_key_wins_and_a_removed_row_takes_its_entry() {
        let mut r = RecentCids::new(Duration::from_secs(10));
        let (a, b) = (r.key("t", 1, "c1"), r.key("t", 2, "c1"));
        assert_ne!(a, b, "the sender is part of the key");
        assert_eq!(a, r.key("t", 1, "c1"));
        r.note(a, 5_000);
        r.note(a, 4_000);
        r.note(b, 20_000);
        assert_eq!(r.get(a), Some(5_000));
        r.forget(a, 4_000);
        assert_eq!(
            r.get(a),
            Some(5_000),
            "a row stored earlier than the entry's says nothing"
        );
        r.forget(a, 5_000);
        assert_eq!((r.get(a), r.get(b)), (None, Some(20_000)));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn prunes_come_at_most_once_a_sixtieth_of_the_window() {
        let mut r = RecentCids::new(Duration::from_secs(600));
        assert!(r.prune_due(1_000_000));
        assert!(!r.prune_due(1_009_999));
        assert!(r.prune_due(1_010_000));
        r.prune_again();
        assert!(r.prune_due(1_010_001));
    }
}
