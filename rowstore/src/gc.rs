//! MVCC garbage collection of the row replica (TiKV's GC compaction filter is the model).
//!
//! Every commit writes new versions (`user key ++ !version`) and nothing overwrites them, so
//! an updated row keeps all its versions, and a deleted one its versions and a tombstone. A
//! **safe point** is the oldest version any reader may still ask for: no reader reads below
//! it, so of a user key's versions at or below it only the newest matters (what a read at the
//! safe point sees); the older ones are garbage, and so is that newest one if it is a
//! tombstone (a read sees nothing either way).
//!
//! The safe point ([`Store::gc_tick`](crate::store::Store::gc_tick)) is the oldest of: the
//! snapshots pinned on this replica (open transactions, running scans, scans other members
//! run here), and the version that was current `gc_life_time` ago (a PostgreSQL-style grace
//! for readers this replica does not know of). It only moves forward and is kept in the
//! meta column family, so a restart does not lower it. A read below it fails with 72000
//! `snapshot_too_old`.
//!
//! Garbage is dropped while RocksDB compacts ([`VersionFilter`], installed as a compaction
//! filter): compaction reads keys in order, so the filter sees a user key's versions newest
//! first and drops those below the first one at or under the safe point. A tombstone is
//! dropped only in a compaction of every file (`is_full_compaction`): elsewhere an older
//! version of its key may sit in a level the compaction does not read, and would come
//! back. `VACUUM` compacts a table's ranges, so it runs the filter at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use duet_common::codec::key::{self, TOMBSTONE};

/// The safe point and what garbage collection removed, shared by the store (which advances
/// the safe point) and the engine's compaction filter (which reads it).
#[derive(Debug, Default)]
pub struct GcState {
    safe_point: AtomicU64,
    versions_removed: AtomicU64,
    tombstones_removed: AtomicU64,
    bytes_removed: AtomicU64,
}

/// Shared [`GcState`].
pub type GcStateRef = Arc<GcState>;

/// What garbage collection has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    pub safe_point: u64,
    /// Versions shadowed by a newer one at or below the safe point, removed.
    pub versions_removed: u64,
    /// Deletion markers removed (with every version under them).
    pub tombstones_removed: u64,
    /// Bytes of keys and values removed.
    pub bytes_removed: u64,
}

impl GcState {
    pub fn safe_point(&self) -> u64 {
        self.safe_point.load(Ordering::Acquire)
    }

    /// Moves the safe point to `v` if that is forward; the safe point after.
    pub fn advance(&self, v: u64) -> u64 {
        self.safe_point.fetch_max(v, Ordering::AcqRel).max(v)
    }

    pub fn stats(&self) -> GcStats {
        GcStats {
            safe_point: self.safe_point(),
            versions_removed: self.versions_removed.load(Ordering::Relaxed),
            tombstones_removed: self.tombstones_removed.load(Ordering::Relaxed),
            bytes_removed: self.bytes_removed.load(Ordering::Relaxed),
        }
    }
}

/// The decisions of one compaction: feed it the compaction's keys in order.
pub struct VersionFilter {
    state: GcStateRef,
    /// The safe point when the compaction began (it only grows: an older one is safe).
    safe_point: u64,
    /// The compaction reads every file: nothing older hides below it.
    full: bool,
    /// The user key of the last versioned key seen, and whether one of its versions at or
    /// below the safe point was seen (everything older of it is garbage).
    current: Vec<u8>,
    shadowed: bool,
}

impl VersionFilter {
    pub fn new(state: GcStateRef, full: bool) -> Self {
        let safe_point = state.safe_point();
        Self {
            state,
            safe_point,
            full,
            current: Vec::new(),
            shadowed: false,
        }
    }

    /// Whether the pair is garbage.
    pub fn remove(&mut self, engine_key: &[u8], value: &[u8]) -> bool {
        if self.safe_point == 0 || engine_key.first() == Some(&key::SYSTEM_PREFIX) {
            return false;
        }
        let Some((user, version)) = key::split_version(engine_key) else {
            return false;
        };
        if user != self.current.as_slice() {
            self.current.clear();
            self.current.extend_from_slice(user);
            self.shadowed = false;
        }
        if version.get() > self.safe_point {
            return false;
        }
        let bytes = (engine_key.len() + value.len()) as u64;
        if self.shadowed {
            self.state.versions_removed.fetch_add(1, Ordering::Relaxed);
            self.state.bytes_removed.fetch_add(bytes, Ordering::Relaxed);
            return true;
        }
        // The version a read at the safe point sees: kept, unless it is a tombstone no
        // older version can hide under.
        self.shadowed = true;
        if self.full && value.first() == Some(&TOMBSTONE) {
            self.state
                .tombstones_removed
                .fetch_add(1, Ordering::Relaxed);
            self.state.bytes_removed.fetch_add(bytes, Ordering::Relaxed);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duet_common::codec::key::LIVE;

    fn versioned(user: &[u8], version: u64) -> Vec<u8> {
        let mut k = user.to_vec();
        k.extend_from_slice(&(u64::MAX - version).to_be_bytes());
        k
    }

    /// Runs a compaction over `pairs` (sorted as RocksDB sorts them); what it keeps.
    fn compact(state: &GcStateRef, full: bool, pairs: &[(&[u8], u64, u8)]) -> Vec<(Vec<u8>, u64)> {
        let mut f = VersionFilter::new(state.clone(), full);
        let mut keys: Vec<(Vec<u8>, u64, u8)> = pairs
            .iter()
            .map(|(u, v, b)| (versioned(u, *v), *v, *b))
            .collect();
        keys.sort();
        keys.into_iter()
            .filter(|(k, _, b)| !f.remove(k, &[*b, 7, 7]))
            .map(|(k, v, _)| (k[..k.len() - 8].to_vec(), v))
            .collect()
    }

    #[test]
    fn versions_under_the_newest_one_at_the_safe_point_go() {
        let state = GcStateRef::default();
        let pairs: &[(&[u8], u64, u8)] = &[
            (b"\x02a", 3, LIVE),
            (b"\x02a", 5, LIVE),
            (b"\x02a", 9, LIVE),
            (b"\x02a", 12, LIVE),
            (b"\x02b", 2, LIVE),
            (b"\x02b", 4, TOMBSTONE),
            (b"\x02c", 11, LIVE),
        ];
        // No safe point yet: everything stays.
        assert_eq!(compact(&state, true, pairs).len(), 7);
        assert_eq!(state.advance(10), 10);
        assert_eq!(state.advance(4), 10, "the safe point never goes back");
        let kept = compact(&state, false, pairs);
        assert_eq!(
            kept,
            vec![
                (b"\x02a".to_vec(), 12),
                (b"\x02a".to_vec(), 9),
                (b"\x02b".to_vec(), 4),
                (b"\x02c".to_vec(), 11),
            ],
            "a's 5 and 3 are shadowed by 9; b's tombstone stays outside a full compaction"
        );
        let s = state.stats();
        assert_eq!((s.versions_removed, s.tombstones_removed), (3, 0));
        assert_eq!(s.bytes_removed, 3 * (2 + 8 + 3));
        // A full compaction drops the tombstone and what it shadows.
        let kept = compact(&state, true, pairs);
        assert_eq!(
            kept,
            vec![
                (b"\x02a".to_vec(), 12),
                (b"\x02a".to_vec(), 9),
                (b"\x02c".to_vec(), 11),
            ]
        );
        assert_eq!(state.stats().tombstones_removed, 1);
    }

    #[test]
    fn a_newer_version_in_another_compaction_shadows_nothing_here() {
        // This compaction holds only a's old versions (its newest is in another level):
        // the newest of them at the safe point stays.
        let state = GcStateRef::default();
        state.advance(100);
        let kept = compact(&state, false, &[(b"\x02a", 3, LIVE), (b"\x02a", 5, LIVE)]);
        assert_eq!(kept, vec![(b"\x02a".to_vec(), 5)]);
    }
}
