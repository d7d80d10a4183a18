//! The row cache: the newest committed version of recently read rows, in memory.
//!
//! A point read in RocksDB creates an iterator and seeks it (memtable skiplist, then SST
//! blocks) because a row's versions share its user key; that was 40% of the server's CPU
//! in pgbench's select-only script. The cache maps a user key to its newest committed
//! version and payload; a read at snapshot `s` uses an entry whose version is `<= s` (it is
//! then the newest version `<= s`), and goes to the engine otherwise.
//!
//! Entries are kept exact by the apply path, not by expiry:
//! - applying a command updates the entries of the keys it writes, and adds the others while
//!   the shard has room (an apply never evicts: a bulk load fills an empty cache but does
//!   not push out what readers use); a command that removes ranges, or a snapshot, empties
//!   the cache;
//! - a reader adds an entry only for what it read at the newest published version, and only
//!   if no apply began since it looked (`seq`, even while no apply runs, odd during one;
//!   checked under the shard's lock, which the apply takes after making `seq` odd).
//!
//! Shards bound contention; each shard evicts in insertion order past its byte budget.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

const SHARDS: usize = 64;
/// Bytes counted per entry on top of key and payload (map slot, queue slot, allocations).
const ENTRY_OVERHEAD: usize = 64;

/// What the cache knows of a key: its newest version and payload (`None`: deleted or never
/// written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cached {
    pub version: u64,
    pub payload: Option<Arc<[u8]>>,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Box<[u8]>, Cached, ahash::RandomState>,
    order: VecDeque<Box<[u8]>>,
    bytes: usize,
}

impl Shard {
    fn cost(key: &[u8], c: &Cached) -> usize {
        2 * key.len() + c.payload.as_ref().map_or(0, |p| p.len()) + ENTRY_OVERHEAD
    }

    /// Drops the oldest entries until the shard holds at most `budget` bytes.
    fn evict_to(&mut self, budget: usize) {
        while self.bytes > budget {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(c) = self.map.remove(&old) {
                self.bytes -= Shard::cost(&old, &c);
            }
        }
    }
}

/// See the module documentation.
pub struct RowCache {
    shards: Vec<Mutex<Shard>>,
    shard_budget: std::sync::atomic::AtomicUsize,
    seq: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A reader's ticket to fill the cache (see [`RowCache::ticket`]).
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64);

impl RowCache {
    /// A cache of about `budget` bytes (0: disabled).
    pub fn new(budget: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_budget: std::sync::atomic::AtomicUsize::new(budget / SHARDS),
            seq: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        // FNV-1a: keys are short and this runs per point read (the maps inside use a seeded
        // hash of their own, so the two do not correlate).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in key {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        &self.shards[(h % SHARDS as u64) as usize]
    }

    pub fn enabled(&self) -> bool {
        self.shard_budget() > 0
    }

    fn shard_budget(&self) -> usize {
        self.shard_budget.load(Ordering::Relaxed)
    }

    /// The byte budget.
    pub fn budget(&self) -> usize {
        self.shard_budget() * SHARDS
    }

    /// Changes the byte budget (0: disabled); a smaller one evicts the oldest entries now.
    pub fn set_budget(&self, budget: usize) {
        let per_shard = budget / SHARDS;
        self.shard_budget.store(per_shard, Ordering::Relaxed);
        for shard in &self.shards {
            shard.lock().evict_to(per_shard);
        }
    }

    /// The entry of `key` if it answers a read at `snapshot`.
    pub fn get(&self, key: &[u8], snapshot: u64) -> Option<Cached> {
        if !self.enabled() {
            return None;
        }
        let found = self
            .shard(key)
            .lock()
            .map
            .get(key)
            .filter(|c| c.version <= snapshot)
            .cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Taken by a reader before it reads the engine; `None` while an apply runs.
    pub fn ticket(&self) -> Option<Ticket> {
        let s = self.seq.load(Ordering::SeqCst);
        (self.enabled() && s.is_multiple_of(2)).then_some(Ticket(s))
    }

    /// Adds what a reader read, under `ticket`: `entry` must be the newest version of `key`
    /// as of the ticket (read at the newest published version, taken after the ticket).
    /// Dropped if an apply began since.
    pub fn fill(&self, ticket: Ticket, key: &[u8], entry: Cached) {
        let mut shard = self.shard(key).lock();
        if self.seq.load(Ordering::SeqCst) != ticket.0 || shard.map.contains_key(key) {
            return;
        }
        shard.bytes += Shard::cost(key, &entry);
        shard.map.insert(key.into(), entry);
        shard.order.push_back(key.into());
        shard.evict_to(self.shard_budget());
    }

    /// Brackets an apply: readers' fills started before it are refused until it ends.
    pub fn begin_apply(&self) -> ApplyGuard<'_> {
        self.seq.fetch_add(1, Ordering::SeqCst);
        ApplyGuard(self)
    }

    /// `(hits, misses)` since start.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Bytes held (keys and entries, as the budget counts them).
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes).sum()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An apply in progress (see [`RowCache::begin_apply`]).
pub struct ApplyGuard<'a>(&'a RowCache);

impl ApplyGuard<'_> {
    /// `key` now has `payload` at `version`: its entry is updated, or added while the shard
    /// has room (an apply never evicts, so a bulk load fills an empty cache, as a freshly
    /// loaded table sits in PostgreSQL's buffers and the OS cache, but cannot push out
    /// what readers use).
    /// `add: false` only updates (keys point reads never ask for).
    pub fn written(&self, key: &[u8], version: u64, payload: Option<&[u8]>, add: bool) {
        if !self.0.enabled() {
            return;
        }
        let mut shard = self.0.shard(key).lock();
        let entry = Cached {
            version,
            payload: payload.map(Arc::from),
        };
        match shard.map.get_mut(key) {
            Some(c) => {
                let before = Shard::cost(key, c);
                *c = entry;
                let after = Shard::cost(key, c);
                shard.bytes = shard.bytes + after - before;
            }
            None if add => {
                let cost = Shard::cost(key, &entry);
                if shard.bytes + cost <= self.0.shard_budget() {
                    shard.bytes += cost;
                    shard.map.insert(key.into(), entry);
                    shard.order.push_back(key.into());
                }
            }
            None => {}
        }
    }

    /// Everything may have changed (ranges removed, a snapshot restored).
    pub fn clear(&self) {
        let mut old = Vec::with_capacity(self.0.shards.len());
        for s in &self.0.shards {
            let mut s = s.lock();
            let hasher = s.map.hasher().clone();
            old.push((
                std::mem::replace(&mut s.map, HashMap::with_hasher(hasher)),
                std::mem::take(&mut s.order),
            ));
            s.bytes = 0;
        }
        // Freeing a full cache (a million rows) took 1-2 s, on the Raft thread that applies
        // a DROP or a table rewrite: empty at once, freed beside.
        let _ = std::thread::Builder::new()
            .name("row-cache-free".into())
            .spawn(move || drop(old));
    }
}

impl Drop for ApplyGuard<'_> {
    fn drop(&mut self) {
        self.0.seq.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u64, payload: &[u8]) -> Cached {
        Cached {
            version,
            payload: Some(Arc::from(payload)),
        }
    }

    #[test]
    fn answers_only_snapshots_at_or_after_the_entry() {
        let c = RowCache::new(1 << 20);
        let t = c.ticket().unwrap();
        c.fill(t, b"k", entry(5, b"v5"));
        assert_eq!(c.get(b"k", 5), Some(entry(5, b"v5")));
        assert_eq!(c.get(b"k", 9), Some(entry(5, b"v5")));
        assert_eq!(c.get(b"k", 4), None, "an older snapshot reads the engine");
        let a = c.begin_apply();
        a.written(b"k", 7, None, true);
        a.written(b"other", 7, Some(b"x"), true);
        a.written(b"index", 7, Some(b"x"), false);
        drop(a);
        assert_eq!(
            c.get(b"k", 8),
            Some(Cached {
                version: 7,
                payload: None
            })
        );
        assert_eq!(c.get(b"k", 6), None);
        assert_eq!(
            c.get(b"other", 8),
            Some(entry(7, b"x")),
            "applies add keys while there is room"
        );
        assert_eq!(c.get(b"index", 8), None, "unless told not to");
        assert_eq!(c.stats(), (4, 3));
    }

    #[test]
    fn a_fill_racing_an_apply_is_refused() {
        let c = RowCache::new(1 << 20);
        // Ticket taken, then an apply starts (and even ends) before the fill.
        let t = c.ticket().unwrap();
        let a = c.begin_apply();
        assert!(c.ticket().is_none(), "no tickets during an apply");
        c.fill(t, b"k", entry(1, b"old"));
        assert!(c.is_empty());
        drop(a);
        c.fill(t, b"k", entry(1, b"old"));
        assert!(c.is_empty(), "the apply may have written k after the read");
        let t = c.ticket().unwrap();
        c.fill(t, b"k", entry(2, b"new"));
        assert_eq!(c.get(b"k", 2), Some(entry(2, b"new")));
        let a = c.begin_apply();
        a.clear();
        drop(a);
        assert!(c.is_empty());
    }

    #[test]
    fn a_smaller_budget_evicts_at_once_and_zero_turns_it_off() {
        let c = RowCache::new(SHARDS * 10_000);
        for i in 0..1_000u32 {
            let t = c.ticket().unwrap();
            c.fill(t, &i.to_be_bytes(), entry(1, &[0u8; 100]));
        }
        let full = c.bytes();
        assert!(full > SHARDS * 1_000, "{full}");
        c.set_budget(SHARDS * 1_000);
        assert_eq!(c.budget(), SHARDS * 1_000);
        assert!(c.bytes() <= SHARDS * 1_000, "{}", c.bytes());
        assert!(c.get(&999u32.to_be_bytes(), 1).is_some(), "the newest stay");
        c.set_budget(0);
        assert!(!c.enabled());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn stays_within_its_budget_evicting_the_oldest() {
        let c = RowCache::new(SHARDS * 1000);
        for i in 0..10_000u32 {
            let t = c.ticket().unwrap();
            c.fill(t, &i.to_be_bytes(), entry(1, &[0u8; 100]));
        }
        let held = c.len();
        assert!(held > 0 && held < 10_000, "{held}");
        for s in &c.shards {
            let s = s.lock();
            assert!(s.bytes <= c.shard_budget());
            assert_eq!(s.map.len(), s.order.len());
        }
        // The newest key is still there, the first one is not.
        assert!(c.get(&9_999u32.to_be_bytes(), 1).is_some());
        assert!(c.get(&0u32.to_be_bytes(), 1).is_none());
        // Applies add nothing to a full cache, and evict nothing.
        let a = c.begin_apply();
        for i in 10_000..20_000u32 {
            a.written(&i.to_be_bytes(), 2, Some(&[1u8; 100]), true);
        }
        drop(a);
        assert_eq!(c.len(), held);
        assert!(c.get(&9_999u32.to_be_bytes(), 1).is_some());
        assert!(!RowCache::new(0).enabled());
    }
}
