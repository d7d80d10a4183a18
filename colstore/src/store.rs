//! [`ColumnStore`]: every table's column data on one learner, the state machine that feeds it
//! from the Raft log ([`LearnerStateMachine`]), background compaction and checkpoints.
//!
//! Durability: the delta layer lives in memory and is made durable by the learner's own
//! raft-engine log, which is compacted only up to the last **checkpoint** (manifest + one
//! Arrow IPC file per table, written after each compaction folded the delta into the stable
//! layer). A restart loads the checkpoint and replays the learner's log after it, so it never
//! needs the whole log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use duet_common::codec::key;
use duet_common::codec::row::is_row;
use duet_common::command::CommandRef;
use duet_common::source::RowSource;
use duet_common::{TableDef, TableDefRef};
use duet_replication::{PeerStatus, StateMachine, StateMachineError};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::cache::ColumnCache;
use crate::error::{Error, Result};
use crate::persist;
use crate::table::{
    chunks_from_rows, merge, ColumnTable, ReplicaState, Stable, TableSnapshot, CHUNK_ROWS,
};

/// The default [`ColumnStoreOptions::max_delta_versions`]: ten compactions' worth.
pub const MAX_DELTA_VERSIONS: usize = 2_000_000;

/// Tuning of the column store.
#[derive(Debug, Clone)]
pub struct ColumnStoreOptions {
    /// Fold the delta into the stable layer once it holds this many versions …
    pub compact_delta_versions: usize,
    /// … or once the oldest unfolded change is this old.
    pub compact_interval: Duration,
    /// The most versions the delta may hold: at it, applying waits for a compaction (the
    /// learner falls behind, and says so, rather than grow without bound while readers keep
    /// old versions from being folded).
    pub max_delta_versions: usize,
    /// The cache stable chunks are read through ([`crate::cache`]); one a process keeps
    /// across restarts of its learner, so that a file a new store drops is kept while a
    /// chunk of the old one still reads it.
    pub cache: Arc<ColumnCache>,
}

impl Default for ColumnStoreOptions {
    fn default() -> Self {
        Self {
            compact_delta_versions: 200_000,
            compact_interval: Duration::from_secs(5),
            max_delta_versions: MAX_DELTA_VERSIONS,
            cache: ColumnCache::new(crate::cache::default_cache_bytes()),
        }
    }
}

#[derive(Default)]
struct Tables {
    by_id: HashMap<u32, Arc<RwLock<ColumnTable>>>,
    by_storage: HashMap<u32, u32>,
}

/// Per-table figures for `duet.replicas` and metrics.
#[derive(Debug, Clone)]
pub struct TableStatus {
    pub table: String,
    pub replicated: bool,
    pub state: &'static str,
    pub progress: f64,
    pub stable_rows: usize,
    pub delta_versions: usize,
    pub stable_version: u64,
}

/// Counters of the learner (for metrics and benchmarks).
#[derive(Debug, Default)]
pub struct ColumnCounters {
    /// Row changes converted into the delta.
    pub rows_applied: AtomicU64,
    /// Time spent applying entries, in nanoseconds.
    pub apply_nanos: AtomicU64,
    pub compactions: AtomicU64,
    /// Time spent folding deltas into stable chunks, in nanoseconds, and versions folded.
    pub compact_nanos: AtomicU64,
    pub versions_folded: AtomicU64,
    pub checkpoints: AtomicU64,
    pub builds: AtomicU64,
    /// Times applying waited for a compaction because the delta was full, and how long
    /// (nanoseconds).
    pub delta_full_waits: AtomicU64,
    pub delta_full_nanos: AtomicU64,
}

/// The column replica of one learner.
pub struct ColumnStore {
    dir: PathBuf,
    options: ColumnStoreOptions,
    tables: RwLock<Tables>,
    applied: AtomicU64,
    applied_tx: tokio::sync::watch::Sender<u64>,
    checkpoint: AtomicU64,
    compact_lock: Mutex<()>,
    wake: (Mutex<bool>, Condvar),
    /// Notified after each compaction (what a full delta waits for).
    folded: (Mutex<()>, Condvar),
    /// [`ColumnStoreOptions::max_delta_versions`], changeable while running.
    max_delta_versions: std::sync::atomic::AtomicUsize,
    /// The delta's versions as last counted (after an apply that wrote rows, after a
    /// compaction): never below the truth for long, so an apply checks it instead of
    /// locking every table to count.
    delta_seen: std::sync::atomic::AtomicUsize,
    stopped: AtomicBool,
    last_fold: Mutex<Instant>,
    source: RwLock<Option<Arc<dyn RowSource>>>,
    cache: Arc<ColumnCache>,
    pub counters: ColumnCounters,
}

/// Shared handle.
pub type ColumnStoreRef = Arc<ColumnStore>;

impl ColumnStore {
    /// Opens the column store in `dir`, loading its last checkpoint, and starts background
    /// compaction. Builds of column replicas read from `source`.
    pub fn open(
        dir: &Path,
        options: ColumnStoreOptions,
        source: Arc<dyn RowSource>,
    ) -> Result<ColumnStoreRef> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let cache = options.cache.clone();
        let loaded = persist::load(dir, &cache)?;
        let (tx, _) = tokio::sync::watch::channel(loaded.index);
        let max_delta_versions = options.max_delta_versions.into();
        let store = Arc::new(ColumnStore {
            dir: dir.to_path_buf(),
            options,
            tables: RwLock::new(Tables::default()),
            applied: AtomicU64::new(loaded.index),
            applied_tx: tx,
            checkpoint: AtomicU64::new(loaded.index),
            compact_lock: Mutex::new(()),
            wake: (Mutex::new(false), Condvar::new()),
            folded: (Mutex::new(()), Condvar::new()),
            max_delta_versions,
            delta_seen: 0.into(),
            stopped: AtomicBool::new(false),
            last_fold: Mutex::new(Instant::now()),
            source: RwLock::new(Some(source)),
            cache,
            counters: ColumnCounters::default(),
        });
        let mut rebuild = Vec::new();
        {
            let mut tables = store.tables.write();
            for t in loaded.tables {
                let id = t.def.id;
                tables.by_storage.insert(t.def.storage_id, id);
                let mut ct = ColumnTable::new(t.def.clone(), t.state, t.stable_version);
                ct.stable = t.stable;
                if let ReplicaState::Building { .. } = t.state {
                    // The delta of an interrupted build was not kept: start again from the
                    // row data at the checkpoint.
                    ct.state = ReplicaState::Building {
                        from: loaded.index,
                        progress: 0.0,
                    };
                    rebuild.push((id, t.def.clone()));
                }
                tables.by_id.insert(id, Arc::new(RwLock::new(ct)));
            }
        }
        for (id, def) in rebuild {
            store.start_build(id, def, loaded.index);
        }
        let weak = Arc::downgrade(&store);
        std::thread::Builder::new()
            .name("colstore-compact".into())
            .spawn(move || compaction_loop(weak))
            .map_err(|e| Error::io(dir, e))?;
        tracing::info!(index = loaded.index, "column store opened");
        Ok(store)
    }

    /// Stops background work (builds finish on their own).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let (m, c) = &self.wake;
        *m.lock() = true;
        c.notify_all();
        // Wait for a compaction in progress: it writes files a restarted store will use.
        drop(self.compact_lock.lock());
    }

    /// Highest log index applied.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// The cache stable chunks are read through.
    pub fn cache(&self) -> &Arc<ColumnCache> {
        &self.cache
    }

    /// Index of the last checkpoint (what a restart starts from).
    pub fn checkpoint_index(&self) -> u64 {
        self.checkpoint.load(Ordering::Acquire)
    }

    /// Waits until `index` is applied; false on timeout.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut rx = self.applied_tx.subscribe();
        let reached = async move { rx.wait_for(|a| *a >= index).await.is_ok() };
        tokio::time::timeout(timeout, reached)
            .await
            .unwrap_or(false)
    }

    /// Rows of table `table_id`'s available column replica: its stable layer's, and the
    /// versions waiting in its delta. `None` if it has no available replica.
    pub fn row_counts(&self, table_id: u32) -> Option<(u64, u64)> {
        let t = self.table(table_id)?;
        let t = t.read();
        matches!(t.state, ReplicaState::Available)
            .then(|| (t.stable.rows as u64, t.delta_versions as u64))
    }

    /// Every table whose column replica is available: its id and [`Self::row_counts`].
    pub fn available(&self) -> Vec<(u32, u64, u64)> {
        let tables: Vec<_> = self.tables.read().by_id.values().cloned().collect();
        tables
            .iter()
            .filter_map(|t| {
                let t = t.read();
                matches!(t.state, ReplicaState::Available)
                    .then(|| (t.def.id, t.stable.rows as u64, t.delta_versions as u64))
            })
            .collect()
    }

    fn table(&self, id: u32) -> Option<Arc<RwLock<ColumnTable>>> {
        self.tables.read().by_id.get(&id).cloned()
    }

    /// The data of table `def` as of `version`, if this replica can serve it: the table has a
    /// column replica that is available, with the same definition, and its stable layer is
    /// not newer than `version`. Otherwise the reason it cannot.
    pub fn snapshot(
        &self,
        def: &TableDef,
        version: u64,
    ) -> std::result::Result<TableSnapshot, String> {
        let Some(t) = self.table(def.id) else {
            return Err("the table has no column replica".into());
        };
        let t = t.read();
        match t.state {
            ReplicaState::Off => return Err("the table has no column replica".into()),
            ReplicaState::Building { progress, .. } => {
                return Err(format!(
                    "the column replica is being built ({:.0}%)",
                    progress * 100.0
                ))
            }
            ReplicaState::Available => {}
        }
        if t.def.storage_id != def.storage_id || t.def.columns != def.columns {
            return Err("the column replica has a different definition of the table".into());
        }
        t.snapshot(version).ok_or_else(|| {
            format!(
                "the snapshot (version {version}) is older than the column replica's stable \
                 layer (version {})",
                t.stable_version
            )
        })
    }

    /// Figures of every table.
    pub fn status(&self) -> Vec<TableStatus> {
        let tables: Vec<_> = self.tables.read().by_id.values().cloned().collect();
        let mut out: Vec<TableStatus> = tables
            .iter()
            .map(|t| {
                let t = t.read();
                let (replicated, state, progress) = match t.state {
                    ReplicaState::Off => (false, "none", 0.0),
                    ReplicaState::Building { progress, .. } => (true, "building", progress),
                    ReplicaState::Available => (true, "available", 1.0),
                };
                TableStatus {
                    table: t.def.name.clone(),
                    replicated,
                    state,
                    progress,
                    stable_rows: t.stable.rows,
                    delta_versions: t.delta_versions,
                    stable_version: t.stable_version,
                }
            })
            .collect();
        out.sort_by(|a, b| a.table.cmp(&b.table));
        out
    }

    // ------------------------------------------------------------------ apply

    fn set_applied(&self, index: u64) {
        self.applied.store(index, Ordering::Release);
        self.applied_tx.send_replace(index);
    }

    /// Log entry `index` carries no command (a new leader's first entry): the replica is
    /// as of `index` without a change.
    pub fn skip(&self, index: u64) {
        if index > self.applied() {
            self.set_applied(index);
        }
    }

    /// Applies log entry `index`, whose payload `data` is a command (`CommandRef`). Delta
    /// rows keep slices of `data`.
    pub fn apply(self: &Arc<Self>, index: u64, data: &Bytes) -> Result<()> {
        self.wait_for_room();
        let started = Instant::now();
        let cmd = CommandRef::decode(data)?;
        if cmd.snapshot {
            return self.restore(index, data, &cmd);
        }
        for (k, v) in &cmd.writes {
            // Roles are the row replica's business (logins); the column replica keeps tables.
            if k.first() == Some(&key::CATALOG_PREFIX) && key::role_name(k).is_none() {
                let id = key::catalog_id(k).ok_or_else(|| Error::Corrupt("catalog key".into()))?;
                match v {
                    Some(payload) => self.put_def(index, Arc::new(TableDef::from_bytes(payload)?)),
                    None => self.drop_table(id),
                }
            }
        }
        // A command's keys are sorted and lead with the storage id, so one table's records
        // come in runs: look the table up and lock it once per run, not per row.
        let mut rows = 0u64;
        let mut i = 0;
        let writes = &cmd.writes;
        while i < writes.len() {
            let Some((storage_id, _)) = record_parts(writes[i].0) else {
                i += 1;
                continue;
            };
            let end = i + writes[i..]
                .iter()
                .take_while(|(k, _)| record_parts(k).map(|(s, _)| s) == Some(storage_id))
                .count();
            let table = {
                let tables = self.tables.read();
                tables
                    .by_storage
                    .get(&storage_id)
                    .and_then(|id| tables.by_id.get(id))
                    .cloned()
            };
            if let Some(table) = table {
                let mut t = table.write();
                if t.state != ReplicaState::Off {
                    for (k, v) in &writes[i..end] {
                        let row = match v {
                            Some(p) if is_row(p) => Some(data.slice_ref(p)),
                            Some(_) => return Err(Error::Corrupt("row: unknown format".into())),
                            None => None,
                        };
                        t.write(data.slice_ref(&k[6..]), index, row);
                    }
                    rows += (end - i) as u64;
                }
            }
            i = end;
        }
        self.set_applied(index);
        self.counters
            .rows_applied
            .fetch_add(rows, Ordering::Relaxed);
        self.counters
            .apply_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if rows > 0 {
            let pending = self.delta_versions();
            self.delta_seen.store(pending, Ordering::Relaxed);
            if pending >= self.options.compact_delta_versions {
                self.wake();
            }
        }
        Ok(())
    }

    /// Sets [`ColumnStoreOptions::max_delta_versions`].
    pub fn set_max_delta_versions(&self, versions: usize) {
        self.max_delta_versions.store(versions, Ordering::Relaxed);
        self.notify_folded();
    }

    /// Wakes an apply waiting for room in the delta.
    fn notify_folded(&self) {
        let (m, c) = &self.folded;
        let _g = m.lock();
        c.notify_all();
    }

    /// While the delta holds [`ColumnStoreOptions::max_delta_versions`] or more, wakes the
    /// compaction and waits for it (or for the store to stop): the learner falls behind
    /// instead of holding ever more versions in memory.
    fn wait_for_room(&self) {
        let max = || self.max_delta_versions.load(Ordering::Relaxed);
        if self.delta_seen.load(Ordering::Relaxed) < max() {
            return;
        }
        let pending = self.delta_versions();
        self.delta_seen.store(pending, Ordering::Relaxed);
        if pending < max() {
            return;
        }
        let started = Instant::now();
        self.counters
            .delta_full_waits
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!("the column delta is full: applying waits for a compaction");
        while !self.stopped.load(Ordering::Acquire) && self.delta_versions() >= max() {
            self.wake();
            let (m, c) = &self.folded;
            let mut g = m.lock();
            c.wait_for(&mut g, Duration::from_millis(200));
        }
        self.counters
            .delta_full_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    fn delta_versions(&self) -> usize {
        let tables: Vec<_> = self.tables.read().by_id.values().cloned().collect();
        tables.iter().map(|t| t.read().delta_versions).sum()
    }

    fn wake(&self) {
        let (m, c) = &self.wake;
        *m.lock() = true;
        c.notify_all();
    }

    fn put_def(self: &Arc<Self>, index: u64, def: TableDefRef) {
        let existing = self.table(def.id);
        let mut tables = self.tables.write();
        let Some(t) = existing else {
            let state = if def.columnar {
                ReplicaState::Available
            } else {
                ReplicaState::Off
            };
            tables.by_storage.insert(def.storage_id, def.id);
            tables.by_id.insert(
                def.id,
                Arc::new(RwLock::new(ColumnTable::new(def, state, 0))),
            );
            return;
        };
        let mut g = t.write();
        let old = g.def.clone();
        if old.storage_id != def.storage_id {
            tables.by_storage.remove(&old.storage_id);
            tables.by_storage.insert(def.storage_id, def.id);
        }
        drop(tables);
        let was_on = g.state != ReplicaState::Off;
        if !def.columnar {
            *g = ColumnTable::new(def, ReplicaState::Off, 0);
        } else if !was_on {
            // SET COLUMNAR REPLICA 1: build from the row data at this entry; later entries
            // land in the delta meanwhile.
            *g = ColumnTable::new(
                def.clone(),
                ReplicaState::Building {
                    from: index,
                    progress: 0.0,
                },
                index,
            );
            drop(g);
            self.start_build(def.id, def, index);
        } else if old.storage_id != def.storage_id {
            // TRUNCATE or ADD PRIMARY KEY: the rows moved to a new storage id; the entry
            // itself carries any rows the table now has.
            *g = ColumnTable::new(def, ReplicaState::Available, 0);
        } else {
            g.def = def;
            g.gen = crate::table::next_gen();
        }
    }

    fn drop_table(&self, id: u32) {
        let mut tables = self.tables.write();
        if let Some(t) = tables.by_id.remove(&id) {
            let sid = t.read().def.storage_id;
            tables.by_storage.remove(&sid);
        }
    }

    /// Replaces everything by a snapshot of the row replica taken at `index` (`cmd`, decoded
    /// from `data`).
    fn restore(&self, index: u64, data: &Bytes, cmd: &CommandRef<'_>) -> Result<()> {
        // No compaction may checkpoint an older index over this one.
        let _one = self.compact_lock.lock();
        let mut defs: Vec<TableDefRef> = Vec::new();
        for (k, v) in &cmd.writes {
            if k.first() == Some(&key::CATALOG_PREFIX) && key::role_name(k).is_none() {
                if let Some(p) = v {
                    defs.push(Arc::new(TableDef::from_bytes(p)?));
                }
            }
        }
        let by_storage: HashMap<u32, TableDefRef> =
            defs.iter().map(|d| (d.storage_id, d.clone())).collect();
        let mut rows: HashMap<u32, Vec<(Bytes, Bytes)>> = HashMap::new();
        for (k, v) in &cmd.writes {
            let (Some((sid, pk)), Some(p)) = (record_parts(k), v) else {
                continue;
            };
            if by_storage.get(&sid).is_some_and(|d| d.columnar) {
                rows.entry(sid)
                    .or_default()
                    .push((data.slice_ref(pk), data.slice_ref(p)));
            }
        }
        let mut fresh = Tables::default();
        for def in defs {
            let mut t = if def.columnar {
                ColumnTable::new(def.clone(), ReplicaState::Available, index)
            } else {
                ColumnTable::new(def.clone(), ReplicaState::Off, index)
            };
            if let Some(r) = rows.get(&def.storage_id) {
                let chunks = chunks_from_rows(&def, r)?;
                t.stable = Arc::new(Stable {
                    rows: r.len(),
                    chunks,
                });
            }
            fresh.by_storage.insert(def.storage_id, def.id);
            fresh.by_id.insert(def.id, Arc::new(RwLock::new(t)));
        }
        *self.tables.write() = fresh;
        self.set_applied(index);
        // The learner's log now starts after `index`: the checkpoint must too.
        self.checkpoint_now(index)?;
        tracing::info!(index, "column store restored from a snapshot");
        Ok(())
    }

    // ------------------------------------------------------------------ build

    fn start_build(self: &Arc<Self>, id: u32, def: TableDefRef, from: u64) {
        let Some(source) = self.source.read().clone() else {
            return;
        };
        let weak = Arc::downgrade(self);
        let name = def.name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("colstore-build-{id}"))
            .spawn(move || loop {
                let Err(e) = build(weak.clone(), source.clone(), id, def.clone(), from) else {
                    return;
                };
                // A full disk, a voter that did not answer: tried again while the table is
                // still to be built from `from`, rather than left building for good.
                tracing::error!(table = %name, error = %e, "column replica build failed; trying again in 5 s");
                std::thread::sleep(BUILD_RETRY);
                let Some(store) = weak.upgrade() else { return };
                let waiting = !store.stopped.load(Ordering::Acquire)
                    && store.table(id).is_some_and(|t| {
                        matches!(t.read().state, ReplicaState::Building { from: f, .. } if f == from)
                    });
                if !waiting {
                    return;
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a column replica build");
        }
    }

    // ------------------------------------------------------------------ compaction

    /// Folds every table's delta up to the applied index into its stable layer, then writes
    /// a checkpoint. Returns the checkpoint index.
    pub fn compact(&self) -> Result<u64> {
        let _one = self.compact_lock.lock();
        if self.stopped.load(Ordering::Acquire) {
            return Ok(self.checkpoint_index());
        }
        let started = Instant::now();
        let mut folded = 0u64;
        // Fold no further than the oldest snapshot a reader holds (or may take next), so a
        // running transaction can still read the column replica.
        let oldest = self
            .source
            .read()
            .as_ref()
            .map_or(u64::MAX, |s| s.oldest_read_version());
        let upto = self.applied().min(oldest);
        let tables: Vec<_> = self.tables.read().by_id.values().cloned().collect();
        for t in tables {
            let (def, stable, changes) = {
                let g = t.read();
                if g.state != ReplicaState::Available || g.delta.is_empty() {
                    continue;
                }
                let Some(snap) = g.snapshot(upto) else {
                    continue;
                };
                (g.def.clone(), g.stable.clone(), snap.changes())
            };
            if changes.is_empty() {
                continue;
            }
            let merged = Arc::new(merge(&def, &stable, &changes)?);
            let mut g = t.write();
            if Arc::ptr_eq(&g.stable, &stable)
                && g.def.storage_id == def.storage_id
                && g.state == ReplicaState::Available
            {
                let before = g.delta_versions;
                g.fold(merged, upto);
                folded += (before - g.delta_versions) as u64;
            }
        }
        *self.last_fold.lock() = Instant::now();
        self.counters.compactions.fetch_add(1, Ordering::Relaxed);
        self.counters
            .versions_folded
            .fetch_add(folded, Ordering::Relaxed);
        self.counters
            .compact_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.delta_seen
            .store(self.delta_versions(), Ordering::Relaxed);
        self.notify_folded();
        self.checkpoint_now(upto)?;
        Ok(upto)
    }

    /// Writes the manifest and the stable files that changed; the state written is that of
    /// `index` plus possibly later changes that replaying the log after `index` redoes.
    fn checkpoint_now(&self, index: u64) -> Result<()> {
        if index < self.checkpoint_index() {
            // A restore moved the checkpoint past this (older) compaction point.
            return Ok(());
        }
        let tables: Vec<_> = self.tables.read().by_id.values().cloned().collect();
        let mut entries = Vec::new();
        // The stable layers written, held until the manifest naming their files is: a table
        // dropped meanwhile must not take files the manifest names with it.
        let mut held = Vec::with_capacity(tables.len());
        for t in &tables {
            // Files are written outside the table's lock: the learner keeps applying.
            let (def, state, stable_version, stable, gen) = {
                let g = t.read();
                (
                    g.def.clone(),
                    g.state,
                    g.stable_version,
                    g.stable.clone(),
                    g.gen,
                )
            };
            let chunks = match state {
                ReplicaState::Available => {
                    persist::write_chunks(&self.dir, &def, &stable, index, gen, &self.cache)?
                }
                _ => Vec::new(),
            };
            held.push(stable);
            entries.push(persist::TableEntry {
                def: (*def).clone(),
                state: match state {
                    ReplicaState::Off => "off".into(),
                    ReplicaState::Building { .. } => "building".into(),
                    ReplicaState::Available => "available".into(),
                },
                stable_version,
                file: None,
                chunks,
            });
        }
        persist::write_manifest(&self.dir, index, &entries, &self.cache)?;
        drop(held);
        self.checkpoint.store(index, Ordering::Release);
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// `(storage id, encoded pk)` of a record key.
fn record_parts(k: &[u8]) -> Option<(u32, &[u8])> {
    if k.len() < 6 || k[0] != key::DATA_PREFIX || k[5] != key::RECORD_TAG {
        return None;
    }
    Some((u32::from_be_bytes([k[1], k[2], k[3], k[4]]), &k[6..]))
}

fn build(
    weak: Weak<ColumnStore>,
    source: Arc<dyn RowSource>,
    id: u32,
    def: TableDefRef,
    from: u64,
) -> Result<()> {
    if !source.wait_version(from, Duration::from_secs(600)) {
        return Err(Error::Internal(format!(
            "the row replica never reached version {from}"
        )));
    }
    let mut total = 0usize;
    source.scan_table(&def, from, &mut |_, _| {
        total += 1;
        true
    })?;
    let still_building = |store: &ColumnStore, progress: f64| -> bool {
        let Some(t) = store.table(id) else {
            return false;
        };
        let mut g = t.write();
        match g.state {
            ReplicaState::Building { from: f, .. } if f == from => {
                g.state = ReplicaState::Building { from, progress };
                true
            }
            _ => false,
        }
    };
    // Rows become chunks CHUNK_ROWS at a time, each written to its file at once and left
    // to the cache, so a build holds one chunk's rows in memory, not the table's.
    let mut pending: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(CHUNK_ROWS.min(total));
    let mut chunks = Vec::new();
    let mut rows = 0usize;
    let mut cancelled = false;
    let mut failed = None;
    let mut flush = |pending: &mut Vec<(Vec<u8>, Vec<u8>)>| -> Result<bool> {
        let Some(store) = weak
            .upgrade()
            .filter(|s| !s.stopped.load(Ordering::Acquire))
        else {
            return Ok(false);
        };
        let made = chunks_from_rows(&def, pending)?;
        let stable = Stable {
            rows: pending.len(),
            chunks: made,
        };
        persist::write_chunks(
            &store.dir,
            &def,
            &stable,
            from,
            crate::table::next_gen(),
            &store.cache,
        )?;
        chunks.extend(stable.chunks);
        pending.clear();
        Ok(true)
    };
    source.scan_table(&def, from, &mut |k, v| {
        pending.push((k.to_vec(), v.to_vec()));
        rows += 1;
        if pending.len() == CHUNK_ROWS {
            match flush(&mut pending) {
                Ok(true) => {}
                Ok(false) => {
                    cancelled = true;
                    return false;
                }
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            }
        }
        if rows.is_multiple_of(10_000) {
            let Some(store) = weak.upgrade() else {
                cancelled = true;
                return false;
            };
            let progress = 0.99 * rows as f64 / total.max(1) as f64;
            if !still_building(&store, progress.min(0.99)) {
                cancelled = true;
                return false;
            }
        }
        true
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if cancelled {
        return Ok(());
    }
    if !pending.is_empty() && !flush(&mut pending)? {
        return Ok(());
    }
    let Some(store) = weak.upgrade() else {
        return Ok(());
    };
    let Some(t) = store.table(id) else {
        return Ok(());
    };
    // Not while a compaction runs: it would checkpoint this table as available at its own
    // index without the delta between `from` and that index.
    let _one = store.compact_lock.lock();
    let mut g = t.write();
    if !matches!(g.state, ReplicaState::Building { from: f, .. } if f == from) {
        return Ok(());
    }
    g.gen = crate::table::next_gen();
    g.stable = Arc::new(Stable { rows, chunks });
    g.stable_version = from;
    g.state = ReplicaState::Available;
    drop(g);
    store.counters.builds.fetch_add(1, Ordering::Relaxed);
    tracing::info!(table = %def.name, rows, from, "column replica built");
    Ok(())
}

/// How long a failed column replica build waits before it starts again.
const BUILD_RETRY: Duration = Duration::from_secs(5);

/// A delta at least this large is folded as soon as the log has been idle for one wake-up
/// period (500 ms), not at the next interval: the tail of a bulk load.
const FOLD_WHEN_IDLE: usize = 10_000;

fn compaction_loop(weak: Weak<ColumnStore>) {
    let mut applied_before = 0;
    loop {
        let Some(store) = weak.upgrade() else {
            return;
        };
        if store.stopped.load(Ordering::Acquire) {
            return;
        }
        {
            let (m, c) = &store.wake;
            let mut woken = m.lock();
            if !*woken {
                c.wait_for(&mut woken, Duration::from_millis(500));
            }
            *woken = false;
        }
        if store.stopped.load(Ordering::Acquire) {
            return;
        }
        let pending = store.delta_versions();
        let applied = store.applied();
        let idle = applied == applied_before;
        applied_before = applied;
        let due = pending >= store.options.compact_delta_versions
            || pending >= store.max_delta_versions.load(Ordering::Relaxed)
            || (idle && pending >= FOLD_WHEN_IDLE)
            || (pending > 0 && store.last_fold.lock().elapsed() >= store.options.compact_interval);
        if due {
            if let Err(e) = store.compact() {
                tracing::error!(error = %e, "column store compaction failed");
            }
        }
    }
}

/// The learner's state machine: applies the log to a [`ColumnStore`].
pub struct LearnerStateMachine {
    store: ColumnStoreRef,
    leader: Option<Arc<PeerStatus>>,
    lag: Arc<LagHistogram>,
}

impl LearnerStateMachine {
    /// `leader`, when in the same process, lets the learner measure how long after commit
    /// each entry became visible here.
    pub fn new(
        store: ColumnStoreRef,
        leader: Option<Arc<PeerStatus>>,
        lag: Arc<LagHistogram>,
    ) -> Self {
        Self { store, leader, lag }
    }
}

impl StateMachine for LearnerStateMachine {
    fn apply(&mut self, index: u64, data: &Bytes) -> std::result::Result<(), StateMachineError> {
        self.store.apply(index, data)?;
        if let Some(at) = self.leader.as_ref().and_then(|l| l.committed_at(index)) {
            self.lag.record(at.elapsed());
        }
        Ok(())
    }

    fn skip(&mut self, index: u64) {
        self.store.skip(index);
    }

    fn applied_index(&self) -> u64 {
        self.store.applied()
    }

    fn persist(&mut self) -> std::result::Result<u64, StateMachineError> {
        Ok(self.store.checkpoint_index())
    }

    fn restore(&mut self, index: u64, data: &[u8]) -> std::result::Result<(), StateMachineError> {
        let cmd = CommandRef::decode(data)?;
        if !cmd.snapshot {
            return Err(format!("entry {index} is not a snapshot").into());
        }
        Ok(self.store.apply(index, &Bytes::copy_from_slice(data))?)
    }
}

/// Commit-to-learner-visibility latencies in quarter-octave buckets (bucket `i` holds values
/// up to 2^((i+1)/4) µs, so a quantile is known within ~19%), from 1 µs to ~17 minutes.
#[derive(Debug)]
pub struct LagHistogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

const LAG_BUCKETS: usize = 120;

impl Default for LagHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..LAG_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl LagHistogram {
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let b = if us <= 1 {
            0
        } else {
            ((4.0 * (us as f64).log2()).ceil() as usize).saturating_sub(1)
        };
        self.buckets[b.min(LAG_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(us, Ordering::Relaxed);
    }

    /// `(upper bound in seconds, cumulative count)` per bucket, and the total count and sum
    /// in seconds (Prometheus histogram shape).
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut cum = 0;
        let mut out = Vec::with_capacity(LAG_BUCKETS);
        for (i, b) in self.buckets.iter().enumerate() {
            cum += b.load(Ordering::Relaxed);
            out.push((2f64.powf((i + 1) as f64 / 4.0) / 1e6, cum));
        }
        (
            out,
            self.count.load(Ordering::Relaxed),
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }

    /// The `q` quantile (upper bound of its bucket), in seconds.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let (buckets, count, _) = self.snapshot();
        if count == 0 {
            return None;
        }
        let target = (q * count as f64).ceil().max(1.0) as u64;
        buckets.iter().find(|(_, c)| *c >= target).map(|(b, _)| *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_quantiles_land_in_the_right_bucket() {
        let h = LagHistogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        assert!((0.050..0.050 * 1.2).contains(&p50), "p50 {p50}");
        assert!((0.099..0.099 * 1.2).contains(&p99), "p99 {p99}");
        let (buckets, count, sum) = h.snapshot();
        assert_eq!(count, 100);
        assert!((sum - 5.05).abs() < 1e-9);
        assert_eq!(buckets.last().unwrap().1, 100);
    }
}
