//! [`Store`]: MVCC over a [`KvEngine`], the catalog, and the commit path.
//!
//! Commit protocol: latch the written keys (in memory; a key latched by a commit in flight is
//! a conflict), check every written key for a version newer than the transaction's snapshot
//! (first committer wins), encode the writes as one [`Command`] and propose it to Raft. The
//! row replica's state machine ([`crate::replica::RowStateMachine`]) applies committed
//! commands with [`Store::apply_command`] at version = the entry's index, then publishes
//! that version to readers and releases the latches; the committer hears back after that.
//! Readers never lock: a read at version `v` only looks at versions `<= v`, and `v` is only
//! published after its batch is fully written.
//!
//! DDL takes the gate exclusively: it waits for the commits already proposed (a barrier
//! entry), reads what it needs, proposes its command. Commits share the gate only while they
//! check and propose, never while they wait for the log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use duet_replication::{PendingProposal, Proposer};

use parking_lot::{Mutex, RwLock};

use crate::engine::{KvEngineRef, WriteBatch};
use crate::error::{Error, Result};
use crate::gc::{GcStateRef, GcStats};
use duet_common::catalog::{
    Catalog, ColumnDef, IndexDef, RoleDef, TableDef, TableDefRef, CATALOG_FORMAT,
};
use duet_common::codec::key::{self, Key, LIVE, TOMBSTONE};
use duet_common::codec::memcmp::{self, prefix_end};
use duet_common::codec::row;
use duet_common::command::{encode_parts, Command, CommandRef};
use duet_common::fs::DiskGuard;
use duet_common::types::Row;
use duet_common::version::Version;

/// Visits `(key, value)` pairs; returns `Ok(false)` to stop.
pub type PairVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// Writes of one transaction: user key → new payload (`None` deletes).
pub type WriteSet = BTreeMap<Key, Option<Vec<u8>>>;

/// Commit checks of up to this many keys look in the row cache first.
const CACHED_CHECKS_UP_TO: usize = 1024;

/// The latches of commits in flight, as hashes of their keys (with a count: keys of one
/// commit may share a hash). Two keys with the same hash make a needless write conflict,
/// at odds of about one in 2^64 per pair; in exchange a bulk commit latches its keys
/// without copying them.
#[derive(Default)]
struct Latches {
    held: HashMap<u64, u32, ahash::RandomState>,
    hasher: ahash::RandomState,
}

impl Latches {
    /// Latches `keys` unless one of them is latched already (then nothing is latched).
    fn acquire<'a>(&mut self, keys: impl Iterator<Item = &'a [u8]> + Clone) -> bool {
        if keys
            .clone()
            .any(|k| self.held.contains_key(&self.hasher.hash_one(k)))
        {
            return false;
        }
        for k in keys {
            *self.held.entry(self.hasher.hash_one(k)).or_default() += 1;
        }
        true
    }

    /// Releases `keys` (keys not latched are ignored).
    fn release<'a>(&mut self, keys: impl Iterator<Item = &'a [u8]>) {
        for k in keys {
            let h = self.hasher.hash_one(k);
            if let Some(n) = self.held.get_mut(&h) {
                *n -= 1;
                if *n == 0 {
                    self.held.remove(&h);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

const VERSION_KEY: &str = "version";
/// The garbage-collection safe point (local to this replica, not replicated).
const GC_SAFE_POINT_KEY: &str = "gc_safe_point";
/// The default `gc_life_time`: versions current within it are kept for readers this
/// replica does not know of (PostgreSQL-style grace).
pub const GC_LIFE_TIME: Duration = Duration::from_secs(600);
/// The least `gc_life_time`: a read that pins nothing (an autocommit point read) finishes
/// well within it.
pub const GC_LIFE_TIME_MIN: Duration = Duration::from_secs(1);
/// An apply of a small command slower than this is logged (it runs on the Raft thread).
const SLOW_APPLY: Duration = Duration::from_millis(50);
/// How often the background thread advances the safe point.
const GC_TICK: Duration = Duration::from_secs(1);
const NEXT_ID_KEY: &str = "next_id";
const NEXT_ROWID_KEY: &str = "next_rowid";
const FORMAT_KEY: &str = "format";
/// Bytes of the row cache by default (see [`crate::rowcache`]; `--row-cache-size`).
pub const ROW_CACHE_BYTES: usize = 256 << 20;
/// Format 2: versions are Raft indexes and the store is a state machine of the log.
const DATA_FORMAT: u64 = 3;

/// The row store of one node.
pub struct Store {
    engine: KvEngineRef,
    /// Highest version whose batch is fully written; new snapshots read at it.
    visible: AtomicU64,
    /// Shared by a commit while it checks and proposes; exclusive for a DDL statement.
    ddl_gate: RwLock<()>,
    /// Keys written by commits proposed but not yet applied (per-key latches).
    latches: Mutex<Latches>,
    /// Row locks held by open transactions until they end.
    pub(crate) locks: crate::lock::LockTable,
    next_txn: AtomicU64,
    proposer: OnceLock<Proposer>,
    /// The free-space reserve of the data directory's disk: writes are refused (53100)
    /// before they reach the log while the disk is below it.
    disk: OnceLock<Arc<DiskGuard>>,
    /// Snapshots in use by open transactions and running scans: version → count.
    pins: Mutex<BTreeMap<u64, usize>>,
    catalog: RwLock<Catalog>,
    /// Bumped whenever the catalog changes (DDL applied, snapshot restored).
    catalog_generation: AtomicU64,
    next_id: AtomicU32,
    next_rowid: AtomicU64,
    /// Rows written (inserted, updated or deleted) per storage id since the process started,
    /// counted as commands are applied; the router uses it to know when statistics are stale.
    changes: Mutex<HashMap<u32, u64>>,
    /// Newest versions of recently read rows (point reads skip the engine).
    row_cache: crate::rowcache::RowCache,
    /// MVCC garbage collection: the safe point (shared with the engine's compaction filter),
    /// the grace period, and the version current at each tick within it.
    gc: GcStateRef,
    gc_life_ms: AtomicU64,
    gc_history: Mutex<VecDeque<(Instant, u64)>>,
}

/// Shared handle to the store.
pub type StoreRef = Arc<Store>;

/// Garbage collection's figures (see [`Store::gc_report`]).
#[derive(Debug, Clone, Copy)]
pub struct GcReport {
    pub stats: GcStats,
    pub current_version: u64,
    pub life_time: Duration,
    /// How long ago the safe point's version was the current one.
    pub safe_point_age: Option<Duration>,
}

/// A snapshot registered as in use (see [`Store::pin`]).
pub struct SnapshotPin {
    store: StoreRef,
    version: Version,
}

impl SnapshotPin {
    pub fn version(&self) -> Version {
        self.version
    }
}

impl Drop for SnapshotPin {
    fn drop(&mut self) {
        self.store.unpin_version(self.version.get());
    }
}

fn read_u64(engine: &KvEngineRef, name: &str) -> Result<Option<u64>> {
    match engine.get(&key::system_key(name))? {
        None => Ok(None),
        Some(b) => {
            Ok(Some(u64::from_be_bytes(b.as_slice().try_into().map_err(
                |_| Error::Corrupt(format!("system key {name}")),
            )?)))
        }
    }
}

impl Store {
    /// Opens the store on `engine`, loading the catalog and counters.
    pub fn open(engine: KvEngineRef) -> Result<StoreRef> {
        let version = read_u64(&engine, VERSION_KEY)?.unwrap_or(0);
        match read_u64(&engine, FORMAT_KEY)? {
            Some(DATA_FORMAT) => {}
            None if version == 0 => {}
            found => {
                return Err(Error::Corrupt(format!(
                    "data directory has row-store format {}, this build reads {DATA_FORMAT} \
                     (format 1 predates replication, format 2 stores char(n) padded: dump and reload it)",
                    found.unwrap_or(1)
                )))
            }
        }
        let next_id = read_u64(&engine, NEXT_ID_KEY)?.unwrap_or(1) as u32;
        let next_rowid = read_u64(&engine, NEXT_ROWID_KEY)?.unwrap_or(1);
        let engine_gc = engine.gc_state().unwrap_or_default();
        let store = Store {
            engine,
            visible: AtomicU64::new(version),
            ddl_gate: RwLock::new(()),
            latches: Mutex::new(Latches::default()),
            locks: crate::lock::LockTable::default(),
            next_txn: AtomicU64::new(1),
            changes: Mutex::new(HashMap::new()),
            proposer: OnceLock::new(),
            disk: OnceLock::new(),
            pins: Mutex::new(BTreeMap::new()),
            catalog: RwLock::new(Catalog::default()),
            catalog_generation: AtomicU64::new(0),
            next_id: AtomicU32::new(next_id),
            next_rowid: AtomicU64::new(next_rowid),
            row_cache: crate::rowcache::RowCache::new(ROW_CACHE_BYTES),
            gc: engine_gc,
            gc_life_ms: AtomicU64::new(GC_LIFE_TIME.as_millis() as u64),
            gc_history: Mutex::new(VecDeque::new()),
        };
        store
            .gc
            .advance(read_u64(&store.engine, GC_SAFE_POINT_KEY)?.unwrap_or(0));
        let (start, end) = key::catalog_range();
        let mut catalog = Catalog::default();
        store.scan_versions(&start, &end, Version::MAX, &mut |k, payload| {
            catalog.apply(k, Some(payload))?;
            Ok(true)
        })?;
        *store.catalog.write() = catalog;
        tracing::info!(
            version,
            tables = store.catalog.read().tables().count(),
            "row store opened"
        );
        let store = Arc::new(store);
        store
            .gc_history
            .lock()
            .push_back((Instant::now(), store.current_version().get()));
        Self::start_gc(&store)?;
        Ok(store)
    }

    // ---------------------------------------------------------------- garbage collection

    /// Advances the safe point every [`GC_TICK`] until the store is dropped.
    fn start_gc(store: &StoreRef) -> Result<()> {
        let weak: Weak<Store> = Arc::downgrade(store);
        std::thread::Builder::new()
            .name("row-gc".into())
            .spawn(move || loop {
                std::thread::sleep(GC_TICK);
                let Some(store) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = store.gc_tick() {
                    tracing::warn!(error = %e, "advancing the garbage-collection safe point failed");
                }
            })
            .map(|_| ())
            .map_err(|e| Error::Internal(format!("cannot start the garbage-collection thread: {e}")))
    }

    /// How long a version stays readable after a newer one replaced it, for readers this
    /// replica does not know of (at least [`GC_LIFE_TIME_MIN`]).
    pub fn set_gc_life_time(&self, life: Duration) {
        let life = life.max(GC_LIFE_TIME_MIN);
        self.gc_life_ms
            .store(life.as_millis() as u64, Ordering::Relaxed);
    }

    /// Any grace period, even none (tests whose readers all pin their snapshots).
    #[cfg(test)]
    pub(crate) fn set_gc_life_time_unchecked(&self, life: Duration) {
        self.gc_life_ms
            .store(life.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn gc_life_time(&self) -> Duration {
        Duration::from_millis(self.gc_life_ms.load(Ordering::Relaxed))
    }

    /// Moves the safe point up to the oldest of: the pinned snapshots and the version that
    /// was current `gc_life_time` ago (see [`crate::gc`]); keeps it in the meta family.
    pub fn gc_tick(&self) -> Result<GcStats> {
        let now = Instant::now();
        let life = self.gc_life_time();
        let aged = {
            let mut h = self.gc_history.lock();
            h.push_back((now, self.current_version().get()));
            // Keep the newest sample at least `life` old, and everything after it.
            while h.len() >= 2 && now.duration_since(h[1].0) >= life {
                h.pop_front();
            }
            h.front()
                .filter(|(at, _)| now.duration_since(*at) >= life)
                .map(|(_, v)| *v)
        };
        let Some(aged) = aged else {
            return Ok(self.gc.stats());
        };
        let before = self.gc.safe_point();
        // Under the pins' lock: a reader pins at a version the safe point has not passed.
        let after = {
            let pins = self.pins.lock();
            let oldest = pins.keys().next().copied().unwrap_or(u64::MAX);
            self.gc.advance(aged.min(oldest))
        };
        if after > before {
            let mut b = WriteBatch::new();
            b.put(key::system_key(GC_SAFE_POINT_KEY), after.to_be_bytes());
            self.engine.write(&b, false)?;
        }
        Ok(self.gc.stats())
    }

    /// What garbage collection has done.
    pub fn gc_stats(&self) -> GcStats {
        self.gc.stats()
    }

    /// Garbage collection as `duet.gc` and /metrics show it.
    pub fn gc_report(&self) -> GcReport {
        let stats = self.gc.stats();
        let now = Instant::now();
        // How long ago the safe point's version was current (at least; the history keeps
        // only the grace period).
        let safe_point_age = (stats.safe_point > 0)
            .then(|| {
                let h = self.gc_history.lock();
                h.iter()
                    .find(|(_, v)| *v >= stats.safe_point)
                    .or(h.front())
                    .map(|(at, _)| now.duration_since(*at))
            })
            .flatten();
        GcReport {
            stats,
            current_version: self.current_version().get(),
            life_time: self.gc_life_time(),
            safe_point_age,
        }
    }

    /// Garbage-collects `[start, end)` now (everything with `None`s): the safe point
    /// advances, then the engine compacts the range through its filter (PostgreSQL's
    /// VACUUM reclaims dead rows the same way, on demand).
    pub fn vacuum(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<GcStats> {
        self.gc_tick()?;
        self.engine.compact_range(start, end)?;
        Ok(self.gc.stats())
    }

    /// Registers a read at `version` (older than the current one) until
    /// [`Store::unpin_version`]; [`Error::SnapshotTooOld`] if garbage collection passed it.
    pub(crate) fn pin_version(&self, version: u64) -> Result<()> {
        let mut pins = self.pins.lock();
        let safe_point = self.gc.safe_point();
        if version < safe_point {
            return Err(Error::SnapshotTooOld {
                version,
                safe_point,
            });
        }
        *pins.entry(version).or_default() += 1;
        Ok(())
    }

    pub(crate) fn unpin_version(&self, version: u64) {
        let mut pins = self.pins.lock();
        if let Some(n) = pins.get_mut(&version) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&version);
            }
        }
    }

    /// The newest published version.
    pub fn current_version(&self) -> Version {
        Version::new(self.visible.load(Ordering::Acquire))
    }

    /// Registers a read at the current version until the returned pin is dropped.
    pub(crate) fn next_txn_id(&self) -> u64 {
        self.next_txn.fetch_add(1, Ordering::Relaxed)
    }

    /// Row locks held by open transactions.
    pub fn locks_held(&self) -> usize {
        self.locks.held()
    }

    pub fn pin(self: &Arc<Self>) -> SnapshotPin {
        let mut pins = self.pins.lock();
        let version = self.current_version();
        *pins.entry(version.get()).or_default() += 1;
        SnapshotPin {
            store: self.clone(),
            version,
        }
    }

    /// The oldest version a reader may still ask for: the oldest pinned snapshot, or the
    /// current version when none is. Anything that drops old versions (the column
    /// replica's compaction) keeps what is newer than this.
    pub fn oldest_read_version(&self) -> Version {
        let pins = self.pins.lock();
        match pins.keys().next() {
            Some(v) => Version::new(*v),
            None => self.current_version(),
        }
    }

    /// Flushes the engine (clean shutdown).
    pub fn flush(&self) -> Result<()> {
        self.engine.flush()
    }

    /// Changes whenever any table definition does (for caches of what a text means).
    pub fn catalog_generation(&self) -> u64 {
        self.catalog_generation.load(Ordering::Acquire)
    }

    /// The table called `name`, as of now.
    pub fn table(&self, name: &str) -> Option<TableDefRef> {
        self.catalog.read().get(name)
    }

    /// All tables.
    pub fn tables(&self) -> Vec<TableDefRef> {
        let mut t: Vec<_> = self.catalog.read().tables().cloned().collect();
        t.sort_by(|a, b| a.name.cmp(&b.name));
        t
    }

    /// Allocates a fresh hidden row id.
    pub fn alloc_rowid(&self) -> i64 {
        self.next_rowid.fetch_add(1, Ordering::Relaxed) as i64
    }

    fn alloc_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    // ---------------------------------------------------------------- MVCC reads

    /// Newest payload of `key` at `version` (`None` if absent or deleted).
    pub fn get(&self, key: &Key, version: Version) -> Result<Option<Vec<u8>>> {
        if let Some(c) = self.row_cache.get(key.as_bytes(), version.get()) {
            return Ok(c.payload.map(|p| p.to_vec()));
        }
        // What a read at the newest version finds is the key's newest version: the cache
        // may keep it (unless an apply starts meanwhile, which the ticket detects).
        let ticket = self
            .row_cache
            .ticket()
            .filter(|_| version.get() == self.visible.load(Ordering::Acquire));
        let mut found = None;
        let mut found_version = 0;
        let start = key.at_version(version);
        let end = prefix_end(key.as_bytes());
        self.engine.first_of_key(&start, &end, &mut |k, v| {
            found_version = key::split_version(k).map_or(0, |(_, v)| v.get());
            if v.first() == Some(&LIVE) {
                found = Some(v[1..].to_vec());
            }
        })?;
        if let Some(t) = ticket {
            self.row_cache.fill(
                t,
                key.as_bytes(),
                crate::rowcache::Cached {
                    version: found_version,
                    payload: found.as_deref().map(Arc::from),
                },
            );
        }
        Ok(found)
    }

    /// `(hits, misses)` of the row cache since start.
    /// The byte budgets of the row cache and the row store's block cache (`--row-cache-size`,
    /// `--block-cache-size`).
    pub fn cache_budgets(&self) -> (u64, u64) {
        (
            self.row_cache.budget() as u64,
            self.engine.block_cache_size().unwrap_or(0) as u64,
        )
    }

    /// Changes the row cache's byte budget (0: no row cache).
    pub fn set_row_cache_size(&self, bytes: u64) {
        self.row_cache.set_budget(bytes as usize);
    }

    /// Changes the block cache's byte budget.
    pub fn set_block_cache_size(&self, bytes: u64) {
        self.engine.set_block_cache_size(bytes as usize);
    }

    pub fn row_cache_stats(&self) -> (u64, u64) {
        self.row_cache.stats()
    }

    /// What the row replica holds in memory now, by pool (bytes): the row cache and the
    /// engine's (RocksDB: block cache, memtables, table readers).
    pub fn memory_usage(&self) -> Vec<(&'static str, u64)> {
        let mut out = vec![("row_cache", self.row_cache.bytes() as u64)];
        out.extend(self.engine.memory_usage());
        out
    }

    /// Whether each of `keys` (ascending for speed) has a live payload at `version`, read
    /// with one engine iterator.
    pub fn exists_many<'a>(
        &self,
        keys: impl Iterator<Item = &'a Key>,
        version: Version,
    ) -> Result<Vec<bool>> {
        let ranges: Vec<(Vec<u8>, Vec<u8>)> = keys
            .map(|k| (k.at_version(version), prefix_end(k.as_bytes())))
            .collect();
        let mut out = vec![false; ranges.len()];
        self.engine.first_of_keys(&ranges, &mut |i, pair| {
            out[i] = pair.is_some_and(|(_, v)| v.first() == Some(&LIVE));
        })?;
        Ok(out)
    }

    /// Newest committed version of each of `keys` (ascending), for conflict checks: from
    /// the row cache where it holds the key (its entries follow every apply), else read.
    pub(crate) fn latest_versions<'a>(
        &self,
        keys: impl Iterator<Item = &'a Key>,
    ) -> Result<Vec<Option<Version>>> {
        let keys: Vec<&Key> = keys.collect();
        // A bulk write's keys are mostly not cached, and the ordered read answers a run of
        // absent keys with one seek: the cache is only asked for a few keys.
        let ask_cache = keys.len() <= CACHED_CHECKS_UP_TO;
        let mut out = Vec::with_capacity(keys.len());
        let mut ranges: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut uncached = Vec::new();
        for k in keys {
            let cached = match ask_cache {
                true => self.row_cache.get(k.as_bytes(), u64::MAX),
                false => None,
            };
            match cached {
                Some(c) => out.push((c.version > 0).then(|| Version::new(c.version))),
                None => {
                    uncached.push(out.len());
                    out.push(None);
                    ranges.push((k.at_version(Version::MAX), prefix_end(k.as_bytes())));
                }
            }
        }
        if !ranges.is_empty() {
            self.engine.first_of_keys(&ranges, &mut |i, pair| {
                out[uncached[i]] = pair.and_then(|(k, _)| key::split_version(k).map(|(_, v)| v));
            })?;
        }
        Ok(out)
    }

    /// Visits, in key order, the newest live payload `<= version` of every user key in
    /// `[start, end)`. `f` returns `Ok(false)` to stop.
    pub fn scan_versions(
        &self,
        start: &[u8],
        end: &[u8],
        version: Version,
        f: &mut PairVisitor<'_>,
    ) -> Result<()> {
        let mut decided: Vec<u8> = Vec::new();
        let mut have_decided = false;
        let mut err = None;
        self.engine.scan(start, end, &mut |k, v| {
            let Some((user, ver)) = key::split_version(k) else {
                err = Some(Error::Corrupt("data key without version".into()));
                return false;
            };
            if have_decided && user == decided.as_slice() {
                return true;
            }
            if ver > version {
                return true;
            }
            decided.clear();
            decided.extend_from_slice(user);
            have_decided = true;
            if v.first() == Some(&TOMBSTONE) {
                return true;
            }
            match f(user, &v[1..]) {
                Ok(go) => go,
                Err(e) => {
                    err = Some(e);
                    false
                }
            }
        })?;
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    // ---------------------------------------------------------------- commit

    /// Connects the commit path to the Raft peer whose state machine applies to this store.
    pub fn attach(&self, proposer: Proposer) {
        let _ = self.proposer.set(proposer);
    }

    /// Guards writes with `guard`: each is refused with [`Error::DiskFull`] while its disk
    /// has less than the reserve free. Set once, when the node opens.
    pub fn set_disk_guard(&self, guard: Arc<DiskGuard>) {
        let _ = self.disk.set(guard);
    }

    /// The disk guard, if one is set.
    pub fn disk_guard(&self) -> Option<&Arc<DiskGuard>> {
        self.disk.get()
    }

    /// Refuses a write of `bytes` while the disk is below its reserve (a write that `frees`
    /// space, below a quarter of it).
    fn admit_write(&self, bytes: usize, frees: bool) -> Result<()> {
        match self.disk.get() {
            Some(g) => g.admit(bytes as u64, frees).map_err(Error::DiskFull),
            None => Ok(()),
        }
    }

    fn proposer(&self) -> Result<&Proposer> {
        self.proposer
            .get()
            .ok_or_else(|| Error::Internal("the row store is not attached to a raft peer".into()))
    }

    /// Proposes `cmd` and waits until this node has applied it; returns its version.
    fn replicate(&self, cmd: &Command) -> Result<Version> {
        // A barrier, or a DROP or TRUNCATE (ranges removed, a few catalog keys written),
        // gives space back.
        let frees = cmd.is_empty() || (!cmd.delete_ranges.is_empty() && cmd.writes.len() <= 16);
        let data = cmd.encode();
        self.admit_write(data.len(), frees)?;
        let pending = self.proposer()?.propose(data).map_err(Error::replication)?;
        Self::await_applied(pending)
    }

    fn await_applied(pending: PendingProposal) -> Result<Version> {
        pending.wait().map(Version::new).map_err(Error::replication)
    }

    fn counters(&self, mut cmd: Command) -> Command {
        cmd.next_id = self.next_id.load(Ordering::Relaxed) as u64;
        cmd.next_rowid = self.next_rowid.load(Ordering::Relaxed);
        cmd
    }

    /// Proposes a transaction's writes (see [`crate::txn::Transaction::commit`]): latch the
    /// written keys (a key latched by a commit in flight is a conflict), check that no key has
    /// a version newer than `snapshot` (first committer wins), propose one entry.
    /// [`Store::finish_txn`] then waits until it is applied here; the entry's index is the
    /// commit version.
    pub(crate) fn propose_txn(
        &self,
        snapshot: Version,
        writes: &WriteSet,
    ) -> Result<PendingProposal> {
        let _gate = self.ddl_gate.read();
        if !self
            .latches
            .lock()
            .acquire(writes.keys().map(Key::as_bytes))
        {
            return Err(Error::WriteConflict);
        }
        // A commit that released its latches has written RocksDB first, so checking
        // after latching sees it.
        match self.latest_versions(writes.keys()) {
            Ok(versions) => {
                if versions.iter().any(|v| v.is_some_and(|v| v > snapshot)) {
                    self.release_latches(writes);
                    return Err(Error::WriteConflict);
                }
            }
            Err(e) => {
                self.release_latches(writes);
                return Err(e);
            }
        }
        let data = encode_parts(
            writes.iter().map(|(k, v)| (k.as_bytes(), v.as_deref())),
            &[],
            self.next_id.load(Ordering::Relaxed) as u64,
            self.next_rowid.load(Ordering::Relaxed),
            false,
        );
        match self
            .admit_write(data.len(), false)
            .and_then(|()| self.proposer())
            .and_then(|p| p.propose(data).map_err(Error::replication))
        {
            Ok(p) => Ok(p),
            Err(e) => {
                self.release_latches(writes);
                Err(e)
            }
        }
    }

    /// Resolves when a proposal of [`Store::propose_txn`] is applied here.
    pub(crate) async fn finish_txn(
        &self,
        pending: PendingProposal,
        writes: &WriteSet,
    ) -> Result<Version> {
        let r = pending
            .applied()
            .await
            .map(Version::new)
            .map_err(Error::replication);
        if r.is_err() {
            // Applying releases the latches; a failed proposal must too.
            self.release_latches(writes);
        }
        r
    }

    fn release_latches(&self, writes: &WriteSet) {
        self.latches
            .lock()
            .release(writes.keys().map(Key::as_bytes));
    }

    /// Runs a DDL statement exclusively: no commit proposes while it runs, and every commit
    /// proposed before it is applied before `f` reads. `f` returns the command to replicate.
    fn ddl<T>(&self, f: impl FnOnce() -> Result<(Command, T)>) -> Result<T> {
        let _gate = self.ddl_gate.write();
        // A barrier: once this empty entry is applied, so is everything before it.
        self.replicate(&Command::default())?;
        let (cmd, out) = f()?;
        if !cmd.is_empty() {
            self.replicate(&self.counters(cmd))?;
        }
        Ok(out)
    }

    fn catalog_write(def: &TableDef) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
        Ok((key::catalog_key(def.id).into_bytes(), Some(def.to_bytes()?)))
    }

    // ---------------------------------------------------------------- apply

    /// Applies a replicated command at `index` (the row replica's state machine). Written
    /// without fsync and without RocksDB's WAL: the Raft log is durable and is compacted only
    /// past a memtable flush ([`Store::sync`]), and the applied index is in the same batch,
    /// so a crash replays exactly what is missing.
    pub fn apply_command(&self, index: u64, cmd: &CommandRef<'_>) -> Result<()> {
        let started = Instant::now();
        let r = self.apply_command_timed(index, cmd);
        let took = started.elapsed();
        if took >= SLOW_APPLY && cmd.writes.len() < 10_000 {
            tracing::warn!(
                index,
                took_ms = took.as_millis() as u64,
                writes = cmd.writes.len(),
                delete_ranges = cmd.delete_ranges.len(),
                "slow apply of a small command"
            );
        }
        r
    }

    fn apply_command_timed(&self, index: u64, cmd: &CommandRef<'_>) -> Result<()> {
        // Until the version is published, fills of the row cache are refused.
        let cache = self.row_cache.begin_apply();
        let bytes: usize = cmd
            .writes
            .iter()
            .map(|(k, v)| k.len() + key::VERSION_LEN + 1 + v.map_or(0, <[u8]>::len))
            .sum();
        let mut batch = WriteBatch::with_capacity(cmd.writes.len() + 8, bytes + 256);
        if cmd.snapshot {
            batch.delete_range([key::CATALOG_PREFIX], [key::DATA_PREFIX + 1]);
        }
        for (start, end) in &cmd.delete_ranges {
            batch.delete_range(start, end);
        }
        let version = (u64::MAX - index).to_be_bytes();
        for (k, v) in &cmd.writes {
            match v {
                Some(p) => batch.put_parts(&[k, &version], &[&[LIVE], p]),
                None => batch.put_parts(&[k, &version], &[&[TOMBSTONE]]),
            }
        }
        let next_id = (self.next_id.load(Ordering::Relaxed) as u64).max(cmd.next_id);
        let next_rowid = self.next_rowid.load(Ordering::Relaxed).max(cmd.next_rowid);
        batch.put(key::system_key(VERSION_KEY), index.to_be_bytes());
        batch.put(key::system_key(NEXT_ID_KEY), next_id.to_be_bytes());
        batch.put(key::system_key(NEXT_ROWID_KEY), next_rowid.to_be_bytes());
        batch.put(key::system_key(FORMAT_KEY), DATA_FORMAT.to_be_bytes());
        let t = Instant::now();
        self.engine.write(&batch, false)?;
        if t.elapsed() >= SLOW_APPLY {
            tracing::warn!(
                index,
                took_ms = t.elapsed().as_millis() as u64,
                "slow RocksDB write of an apply"
            );
        }
        let t = Instant::now();
        if cmd.snapshot || !cmd.delete_ranges.is_empty() {
            cache.clear();
        }
        if t.elapsed() >= SLOW_APPLY {
            tracing::warn!(
                index,
                took_ms = t.elapsed().as_millis() as u64,
                "slow row cache clear of an apply"
            );
        }
        for (k, v) in &cmd.writes {
            // Only rows are read by key; index and catalog entries are not worth room.
            let add = key::record_storage_id(k).is_some();
            cache.written(k, index, v.as_deref(), add);
        }
        let catalog_changes: Vec<_> = cmd
            .writes
            .iter()
            .filter(|(k, _)| k.first() == Some(&key::CATALOG_PREFIX))
            .collect();
        if cmd.snapshot || !catalog_changes.is_empty() {
            let mut cat = self.catalog.write();
            self.catalog_generation.fetch_add(1, Ordering::AcqRel);
            if cmd.snapshot {
                *cat = Catalog::default();
            }
            for (k, v) in catalog_changes {
                cat.apply(k, v.as_deref())?;
            }
        }
        self.next_id.fetch_max(next_id as u32, Ordering::Relaxed);
        self.next_rowid.fetch_max(next_rowid, Ordering::Relaxed);
        self.visible.store(index, Ordering::Release);
        drop(cache);
        // After the version is visible: whoever sees the count can read the rows it counts.
        self.count_changes(cmd);
        if !cmd.writes.is_empty() {
            let mut latches = self.latches.lock();
            if !latches.is_empty() {
                latches.release(cmd.writes.iter().map(|(k, _)| *k));
            }
        }
        Ok(())
    }

    fn count_changes(&self, cmd: &CommandRef<'_>) {
        let mut current: Option<(u32, u64)> = None;
        let mut changes = self.changes.lock();
        for id in cmd
            .writes
            .iter()
            .filter_map(|(k, _)| key::record_storage_id(k))
        {
            match &mut current {
                Some((cur, n)) if *cur == id => *n += 1,
                _ => {
                    if let Some((cur, n)) = current.take() {
                        *changes.entry(cur).or_default() += n;
                    }
                    current = Some((id, 1));
                }
            }
        }
        if let Some((cur, n)) = current {
            *changes.entry(cur).or_default() += n;
        }
    }

    /// Rows of storage `storage_id` written since the process started.
    pub fn changes(&self, storage_id: u32) -> u64 {
        self.changes.lock().get(&storage_id).copied().unwrap_or(0)
    }

    /// Everything at the current version as one snapshot command (catalog, rows, indexes).
    pub fn dump(&self) -> Result<Command> {
        let mut writes = Vec::new();
        self.scan_versions(
            &[key::CATALOG_PREFIX],
            &[key::DATA_PREFIX + 1],
            self.current_version(),
            &mut |k, v| {
                writes.push((k.to_vec(), Some(v.to_vec())));
                Ok(true)
            },
        )?;
        Ok(self.counters(Command {
            writes,
            snapshot: true,
            ..Default::default()
        }))
    }

    /// Makes applied commands durable (before the log under them is compacted).
    pub fn sync(&self) -> Result<()> {
        self.engine.flush()
    }

    // ---------------------------------------------------------------- DDL

    /// Creates a table. `def.id`, `storage_id` and index ids are assigned here.
    pub fn create_table(&self, mut def: TableDef) -> Result<TableDefRef> {
        let name = def.name.clone();
        self.ddl(|| {
            if self.table(&def.name).is_some() {
                return Err(Error::TableExists(def.name));
            }
            def.format = CATALOG_FORMAT;
            def.id = self.alloc_id();
            def.storage_id = self.alloc_id();
            for idx in &mut def.indexes {
                idx.id = self.alloc_id();
            }
            let cmd = Command {
                writes: vec![Self::catalog_write(&def)?],
                ..Default::default()
            };
            Ok((cmd, ()))
        })?;
        self.table(&name)
            .ok_or_else(|| Error::Internal("created table is missing".into()))
    }

    /// Whether any view exists (statements are searched for view names only then).
    pub fn has_views(&self) -> bool {
        self.catalog.read().tables().any(|t| t.view.is_some())
    }

    /// A role by name (the bootstrap superuser always exists).
    pub fn role(&self, name: &str) -> Option<Arc<RoleDef>> {
        self.catalog.read().role(name)
    }

    /// Every role, by name.
    pub fn roles(&self) -> Vec<Arc<RoleDef>> {
        self.catalog.read().roles()
    }

    /// Creates a role; its id is assigned here.
    pub fn create_role(&self, mut def: RoleDef) -> Result<()> {
        self.ddl(|| {
            if self.role(&def.name).is_some() {
                return Err(Error::RoleExists(def.name));
            }
            def.id = self.alloc_id();
            Ok((Self::role_command(None, &def)?, ()))
        })
    }

    /// Changes a role: `change` edits its definition (and may refuse); a new name moves it.
    pub fn alter_role(
        &self,
        name: &str,
        change: impl FnOnce(&mut RoleDef) -> Result<()>,
    ) -> Result<()> {
        self.ddl(|| {
            let old = self
                .role(name)
                .ok_or_else(|| Error::RoleNotFound(name.into()))?;
            let mut def = (*old).clone();
            change(&mut def)?;
            if def.name != old.name && self.role(&def.name).is_some() {
                return Err(Error::RoleExists(def.name));
            }
            Ok((Self::role_command(Some(&old.name), &def)?, ()))
        })
    }

    /// Drops a role.
    pub fn drop_role(&self, name: &str) -> Result<()> {
        self.ddl(|| {
            if self.role(name).is_none() {
                return Err(Error::RoleNotFound(name.into()));
            }
            let cmd = Command {
                writes: vec![(key::role_key(name).into_bytes(), None)],
                ..Default::default()
            };
            Ok((cmd, ()))
        })
    }

    /// The writes that store `def`, removing it under `old_name` when renamed.
    fn role_command(old_name: Option<&str>, def: &RoleDef) -> Result<Command> {
        let mut writes = Vec::new();
        if let Some(old) = old_name.filter(|old| *old != def.name) {
            writes.push((key::role_key(old).into_bytes(), None));
        }
        writes.push((key::role_key(&def.name).into_bytes(), Some(def.to_bytes()?)));
        Ok(Command {
            writes,
            ..Default::default()
        })
    }

    /// Drops a table and its data.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        self.ddl(|| {
            let def = self
                .table(name)
                .ok_or_else(|| Error::TableNotFound(name.into()))?;
            let prefix = key::storage_prefix(def.storage_id);
            let cmd = Command {
                writes: vec![(key::catalog_key(def.id).into_bytes(), None)],
                delete_ranges: vec![(prefix.clone(), prefix_end(&prefix))],
                ..Default::default()
            };
            Ok((cmd, ()))
        })
    }

    /// Removes every row: the table moves to a new, empty storage id.
    pub fn truncate(&self, name: &str) -> Result<()> {
        self.ddl(|| {
            let def = self
                .table(name)
                .ok_or_else(|| Error::TableNotFound(name.into()))?;
            let mut new = (*def).clone();
            new.storage_id = self.alloc_id();
            let prefix = key::storage_prefix(def.storage_id);
            let cmd = Command {
                writes: vec![Self::catalog_write(&new)?],
                delete_ranges: vec![(prefix.clone(), prefix_end(&prefix))],
                ..Default::default()
            };
            Ok((cmd, ()))
        })
    }

    /// Adds (`true`) or removes the table's column replica. Returns false if it already was
    /// so. The learner builds a new replica from the row data at this entry's version.
    pub fn set_columnar(&self, table: &str, on: bool) -> Result<bool> {
        self.ddl(|| {
            let def = self
                .table(table)
                .ok_or_else(|| Error::TableNotFound(table.into()))?;
            if def.columnar == on {
                return Ok((Command::default(), false));
            }
            let mut new = (*def).clone();
            new.columnar = on;
            let cmd = Command {
                writes: vec![Self::catalog_write(&new)?],
                ..Default::default()
            };
            Ok((cmd, true))
        })
    }

    /// Changes table `table`'s definition with `f` (a constraint added or dropped), as one
    /// catalog entry through the log.
    pub fn alter_table_def(
        &self,
        table: &str,
        f: impl FnOnce(&mut TableDef) -> Result<()>,
    ) -> Result<()> {
        self.ddl(|| {
            let def = self
                .table(table)
                .ok_or_else(|| Error::TableNotFound(table.into()))?;
            let mut new = (*def).clone();
            f(&mut new)?;
            let cmd = Command {
                writes: vec![Self::catalog_write(&new)?],
                ..Default::default()
            };
            Ok((cmd, ()))
        })
    }

    /// Adds a column; existing rows read `column.missing`.
    pub fn add_column(&self, table: &str, column: ColumnDef) -> Result<()> {
        self.ddl(|| self.add_column_cmd(table, column))
    }

    fn add_column_cmd(&self, table: &str, column: ColumnDef) -> Result<(Command, ())> {
        let def = self
            .table(table)
            .ok_or_else(|| Error::TableNotFound(table.into()))?;
        if def.column_index(&column.name).is_some() {
            return Err(Error::ColumnExists {
                table: table.into(),
                column: column.name,
            });
        }
        if !column.nullable && column.missing.is_null() && self.has_rows(&def)? {
            return Err(Error::NotNullViolation {
                table: table.into(),
                column: column.name,
            });
        }
        let mut new = (*def).clone();
        new.columns.push(column);
        let cmd = Command {
            writes: vec![Self::catalog_write(&new)?],
            ..Default::default()
        };
        Ok((cmd, ()))
    }

    fn has_rows(&self, def: &TableDef) -> Result<bool> {
        let prefix = key::record_prefix(def.storage_id);
        let mut any = false;
        self.scan_versions(
            &prefix,
            &prefix_end(&prefix),
            self.current_version(),
            &mut |_, _| {
                any = true;
                Ok(false)
            },
        )?;
        Ok(any)
    }

    /// All live rows of `def` at the current version, with their user keys.
    fn all_rows(&self, def: &TableDef) -> Result<Vec<(Vec<u8>, Row)>> {
        let prefix = key::record_prefix(def.storage_id);
        let types = def.types();
        let mut rows = Vec::new();
        self.scan_versions(
            &prefix,
            &prefix_end(&prefix),
            self.current_version(),
            &mut |k, v| {
                let r = row::decode_row(v, &types, &|i| def.columns[i].missing.clone())?;
                rows.push((k[prefix.len()..].to_vec(), r));
                Ok(true)
            },
        )?;
        Ok(rows)
    }

    fn index_entries(
        def: &TableDef,
        idx: &IndexDef,
        rows: &[(Vec<u8>, Row)],
        out: &mut WriteSet,
    ) -> Result<()> {
        for (pk, r) in rows {
            let (tuple, has_null) = def.index_tuple(idx, r);
            let unique_key = idx.unique && !has_null;
            let k = key::index_key(
                def.storage_id,
                idx.id,
                &tuple,
                if unique_key { None } else { Some(pk) },
            );
            if unique_key && out.contains_key(&k) {
                return Err(Error::UniqueViolation {
                    constraint: idx.name.clone(),
                    detail: "duplicate values exist".into(),
                });
            }
            out.insert(k, Some(pk.clone()));
        }
        Ok(())
    }

    /// Creates an index and fills it from the existing rows.
    pub fn create_index(&self, table: &str, index: IndexDef, if_not_exists: bool) -> Result<()> {
        self.ddl(|| self.create_index_cmd(table, index, if_not_exists))
    }

    fn create_index_cmd(
        &self,
        table: &str,
        mut index: IndexDef,
        if_not_exists: bool,
    ) -> Result<(Command, ())> {
        let def = self
            .table(table)
            .ok_or_else(|| Error::TableNotFound(table.into()))?;
        if self.catalog.read().table_of_index(&index.name).is_some()
            || self.table(&index.name).is_some()
        {
            if if_not_exists {
                return Ok((Command::default(), ()));
            }
            return Err(Error::TableExists(index.name));
        }
        index.id = self.alloc_id();
        let rows = self.all_rows(&def)?;
        let mut writes = WriteSet::new();
        Self::index_entries(&def, &index, &rows, &mut writes)?;
        let mut new = (*def).clone();
        new.indexes.push(index);
        let mut cmd = Self::write_set_command(writes);
        cmd.writes.push(Self::catalog_write(&new)?);
        Ok((cmd, ()))
    }

    fn write_set_command(writes: WriteSet) -> Command {
        Command {
            writes: writes
                .into_iter()
                .map(|(k, v)| (k.into_bytes(), v))
                .collect(),
            ..Default::default()
        }
    }

    /// Drops index `name`. Returns false if no such index.
    pub fn drop_index(&self, name: &str) -> Result<bool> {
        self.ddl(|| {
            let Some(def) = self.catalog.read().table_of_index(name) else {
                return Ok((Command::default(), false));
            };
            let mut new = (*def).clone();
            let Some(pos) = new.indexes.iter().position(|i| i.name == name) else {
                return Ok((Command::default(), false));
            };
            let idx = new.indexes.remove(pos);
            let prefix = key::index_prefix(def.storage_id, idx.id);
            let cmd = Command {
                writes: vec![Self::catalog_write(&new)?],
                delete_ranges: vec![(prefix.clone(), prefix_end(&prefix))],
                ..Default::default()
            };
            Ok((cmd, true))
        })
    }

    /// Gives a hidden-rowid table a primary key: rows are rewritten under their new keys in a
    /// fresh storage id (indexes rebuilt), after checking NOT NULL and uniqueness.
    /// Drops column `column` of `table`: the rows are written again without it under a new
    /// storage id (the learner rebuilds the column replica from them), indexes on it go,
    /// the positions of later columns move down in the table's keys, indexes and foreign
    /// keys and in the foreign keys of other tables that reference it. A column in the
    /// primary key or referenced by another table's foreign key is the caller's to refuse.
    pub fn drop_column(&self, table: &str, column: usize) -> Result<()> {
        self.ddl(|| self.drop_column_cmd(table, column))
    }

    fn drop_column_cmd(&self, table: &str, column: usize) -> Result<(Command, ())> {
        let def = self
            .table(table)
            .ok_or_else(|| Error::TableNotFound(table.into()))?;
        if column >= def.columns.len() || def.primary_key.contains(&column) {
            return Err(Error::InvalidDefinition(format!(
                "cannot drop column {column} of \"{table}\""
            )));
        }
        let shift = |c: usize| if c > column { c - 1 } else { c };
        let rows = self.all_rows(&def)?;
        let mut new = (*def).clone();
        new.columns.remove(column);
        new.primary_key = new.primary_key.iter().map(|&c| shift(c)).collect();
        new.indexes.retain(|i| !i.columns.contains(&column));
        for i in &mut new.indexes {
            i.columns = i.columns.iter().map(|&c| shift(c)).collect();
        }
        new.foreign_keys.retain(|f| !f.columns.contains(&column));
        for f in &mut new.foreign_keys {
            f.columns = f.columns.iter().map(|&c| shift(c)).collect();
            if f.ref_table == table {
                f.ref_columns = f.ref_columns.iter().map(|&c| shift(c)).collect();
            }
        }
        let mut cmd = self.rewrite_cmd(&def, &mut new, rows, |r| {
            r.remove(column);
        })?;
        // Other tables' foreign keys into this one name its columns by position.
        for other in self.tables() {
            if other.name == table || !other.foreign_keys.iter().any(|f| f.ref_table == table) {
                continue;
            }
            let mut o = (*other).clone();
            for f in &mut o.foreign_keys {
                if f.ref_table == table {
                    f.ref_columns = f.ref_columns.iter().map(|&c| shift(c)).collect();
                }
            }
            cmd.writes.push(Self::catalog_write(&o)?);
        }
        Ok((cmd, ()))
    }

    /// The command that moves table `def`'s rows (each changed by `change`) to a new storage
    /// id under definition `new` (given that id here), rebuilds its indexes there and drops
    /// the old data. The learner rebuilds the column replica from the rows it carries.
    fn rewrite_cmd(
        &self,
        def: &TableDef,
        new: &mut TableDef,
        rows: Vec<(Vec<u8>, Row)>,
        change: impl Fn(&mut Row),
    ) -> Result<Command> {
        new.storage_id = self.alloc_id();
        let mut writes = WriteSet::new();
        let mut kept = Vec::with_capacity(rows.len());
        for (pk, mut r) in rows {
            change(&mut r);
            writes.insert(
                key::record_key(new.storage_id, &pk),
                Some(row::encode_row(&r)),
            );
            kept.push((pk, r));
        }
        for idx in &new.indexes {
            Self::index_entries(new, idx, &kept, &mut writes)?;
        }
        let prefix = key::storage_prefix(def.storage_id);
        let mut cmd = Self::write_set_command(writes);
        cmd.writes.push(Self::catalog_write(new)?);
        cmd.delete_ranges
            .push((prefix.clone(), prefix_end(&prefix)));
        Ok(cmd)
    }

    /// Renames table `from` to `to`, and the references to it: foreign keys (its own
    /// self-references and other tables') and the sequences owned by its columns.
    pub fn rename_table(&self, from: &str, to: &str) -> Result<()> {
        self.ddl(|| {
            let def = self
                .table(from)
                .ok_or_else(|| Error::TableNotFound(from.into()))?;
            if self.table(to).is_some() {
                return Err(Error::TableExists(to.into()));
            }
            let mut cmd = Command::default();
            for t in self.tables() {
                let mut o = (*t).clone();
                let mut changed = t.id == def.id;
                if changed {
                    o.name = to.into();
                }
                for f in &mut o.foreign_keys {
                    if f.ref_table == from {
                        f.ref_table = to.into();
                        changed = true;
                    }
                }
                if let Some((owner, _)) = o.sequence.as_mut().and_then(|s| s.owned_by.as_mut()) {
                    if owner == from {
                        *owner = to.into();
                        changed = true;
                    }
                }
                if changed {
                    cmd.writes.push(Self::catalog_write(&o)?);
                }
            }
            Ok((cmd, ()))
        })
    }

    /// Renames column `column` of `table` to `to`; `checks` are its CHECK constraints with
    /// the column renamed in them. The rows move to a new storage id (their payloads are
    /// positional and unchanged) so the learner rebuilds the column replica under the new
    /// name; a sequence owned by the column follows it.
    pub fn rename_column(
        &self,
        table: &str,
        column: usize,
        to: &str,
        checks: Vec<duet_common::catalog::CheckDef>,
    ) -> Result<()> {
        self.ddl(|| {
            let def = self
                .table(table)
                .ok_or_else(|| Error::TableNotFound(table.into()))?;
            if def.column_index(to).is_some() {
                return Err(Error::ColumnExists {
                    table: table.into(),
                    column: to.into(),
                });
            }
            let from = def.columns[column].name.clone();
            let rows = self.all_rows(&def)?;
            let mut new = (*def).clone();
            new.columns[column].name = to.into();
            new.checks = checks;
            let mut cmd = self.rewrite_cmd(&def, &mut new, rows, |_| {})?;
            for t in self.tables() {
                let owned = t
                    .sequence
                    .as_ref()
                    .and_then(|s| s.owned_by.as_ref())
                    .is_some_and(|(o, c)| o == table && *c == from);
                if owned {
                    let mut o = (*t).clone();
                    if let Some((_, c)) = o.sequence.as_mut().and_then(|s| s.owned_by.as_mut()) {
                        *c = to.into();
                    }
                    cmd.writes.push(Self::catalog_write(&o)?);
                }
            }
            Ok((cmd, ()))
        })
    }

    pub fn add_primary_key(&self, table: &str, columns: Vec<usize>, name: String) -> Result<()> {
        self.ddl(|| self.add_primary_key_cmd(table, columns, name))
    }

    fn add_primary_key_cmd(
        &self,
        table: &str,
        columns: Vec<usize>,
        name: String,
    ) -> Result<(Command, ())> {
        let def = self
            .table(table)
            .ok_or_else(|| Error::TableNotFound(table.into()))?;
        if !def.primary_key.is_empty() {
            return Err(Error::InvalidDefinition(format!(
                "multiple primary keys for table \"{table}\" are not allowed"
            )));
        }
        let rows = self.all_rows(&def)?;
        let mut new = (*def).clone();
        new.primary_key = columns.clone();
        new.pk_name = name.clone();
        for &c in &columns {
            new.columns[c].nullable = false;
        }
        new.storage_id = self.alloc_id();
        let mut writes = WriteSet::new();
        let mut rekeyed = Vec::with_capacity(rows.len());
        for (_, r) in rows {
            for &c in &columns {
                if r[c].is_null() {
                    return Err(Error::NotNullViolation {
                        table: table.into(),
                        column: new.columns[c].name.clone(),
                    });
                }
            }
            let pk = memcmp::encode_tuple(&new.pk_of(&r));
            let k = key::record_key(new.storage_id, &pk);
            if writes.contains_key(&k) {
                return Err(Error::UniqueViolation {
                    constraint: name,
                    detail: "duplicate values exist".into(),
                });
            }
            writes.insert(k, Some(row::encode_row(&r)));
            rekeyed.push((pk, r));
        }
        for idx in &new.indexes {
            Self::index_entries(&new, idx, &rekeyed, &mut writes)?;
        }
        let prefix = key::storage_prefix(def.storage_id);
        let mut cmd = Self::write_set_command(writes);
        cmd.writes.push(Self::catalog_write(&new)?);
        cmd.delete_ranges
            .push((prefix.clone(), prefix_end(&prefix)));
        Ok((cmd, ()))
    }
}

#[cfg(test)]
mod latch_tests {
    use super::Latches;

    #[test]
    fn latches_conflict_per_key_and_release_once() {
        let mut l = Latches::default();
        let ab: [&[u8]; 2] = [b"a", b"b"];
        assert!(l.acquire(ab.iter().copied()));
        // Any key in common: refused, and nothing of it is latched.
        assert!(!l.acquire([&b"c"[..], b"b"].iter().copied()));
        assert!(l.acquire([&b"c"[..]].iter().copied()));
        l.release([&b"c"[..]].iter().copied());
        l.release(ab.iter().copied());
        assert!(l.is_empty());
        // Releasing what is not held changes nothing.
        assert!(l.acquire([&b"x"[..]].iter().copied()));
        l.release([&b"y"[..], b"x", b"x"].iter().copied());
        assert!(l.is_empty());
    }
}
