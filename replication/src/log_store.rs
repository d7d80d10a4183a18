//! The Raft log and hard state in raft-engine, behind raft-rs's `Storage` trait.
//!
//! One raft-engine directory per node; one raft group (`GROUP`) today. Entries and the hard
//! state of one `Ready` are written in a single raft-engine batch (one fsync), which is what
//! makes group commit possible: every proposal collected into that `Ready` shares the write.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use raft_engine::{Config, Engine, LogBatch, MessageExt};

use crate::error::{Error, Result};
use crate::log_fs::{LogFaults, LogFileSystem, SyncFailure};
use crate::peer::SnapshotSource;

/// raft-engine through [`LogFileSystem`].
type LogEngine = Engine<LogFileSystem>;

/// The raft group every entry belongs to until sharding.
pub const GROUP: u64 = 1;

const HARD_STATE_KEY: &[u8] = b"hard_state";
const CONF_STATE_KEY: &[u8] = b"conf_state";
/// Index and term of the last entry removed by compaction (raft needs its term).
const TRUNCATED_KEY: &[u8] = b"truncated";
/// Payload bytes of recently appended entries kept in memory (see [`Cached::recent`]).
const RECENT_BYTES: usize = 64 << 20;

#[derive(Clone)]
struct EntryExt;

impl MessageExt for EntryExt {
    type Entry = Entry;
    fn index(e: &Entry) -> u64 {
        e.index
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Truncated {
    index: u64,
    term: u64,
}

/// A node's Raft log on raft-engine. Cheap to clone.
#[derive(Clone)]
pub struct LogStore {
    engine: Arc<LogEngine>,
    dir: String,
    state: Arc<RwLock<Cached>>,
    /// The index the peer's state machine has applied (a snapshot is taken there).
    applied: Arc<AtomicU64>,
    /// An entry is being applied beside the driver: the state is between two indexes, and
    /// no snapshot can be taken.
    applying: Arc<std::sync::atomic::AtomicBool>,
    snapshot_source: Arc<RwLock<Option<Arc<dyn SnapshotSource>>>>,
    /// The batch appends are encoded into, kept between them: raft-engine keeps its buffer
    /// (up to 8 MiB) across writes, where a new batch grew from 4 KiB by doubling for every
    /// large entry (a bulk load's reallocations and page faults).
    batch: Arc<Mutex<LogBatch>>,
    /// Set by a compaction: the purge thread deletes the files it made obsolete.
    purge_wanted: Arc<std::sync::atomic::AtomicBool>,
    /// A sync of the log failed (why): nothing is written to it any more (see
    /// [`Error::LogSync`]).
    sync_failed: SyncFailure,
}

/// Runs `write` on the log in `dir` unless a sync of it failed before (`failed` holds
/// why), catching the panic raft-engine raises when a sync fails (see
/// [`LogStore::guarded`]).
fn sync_guarded<T>(
    dir: &str,
    failed: &Mutex<Option<String>>,
    write: impl FnOnce() -> raft_engine::Result<T>,
) -> Result<T> {
    let refused = |message: String| Error::LogSync {
        dir: dir.to_string(),
        message,
    };
    if let Some(message) = failed.lock().clone() {
        return Err(refused(message));
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(write)) {
        Ok(result) => result.map_err(|source| Error::Log {
            dir: dir.to_string(),
            source,
        }),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "raft-engine stopped on a failed sync".into());
            tracing::error!(dir, error = %message, "a sync of the raft log failed; it takes no more writes");
            *failed.lock() = Some(message.clone());
            Err(refused(message))
        }
    }
}

/// How often the purge thread looks for work.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Default)]
struct Cached {
    hard_state: HardState,
    conf_state: ConfState,
    truncated: Truncated,
    /// The terms of the entries appended since the log was opened, as runs `(first index,
    /// term)` in index order; the last run reaches the last index. Raft asks for terms all
    /// the time, and raft-engine can only answer by reading and decoding the whole entry (a
    /// bulk load's entry is megabytes: 6% of a COPY's server CPU went there).
    terms: Vec<(u64, u64)>,
    /// The last entries appended, contiguous, up to [`RECENT_BYTES`] of payload (entry
    /// data is shared `Bytes`, so this holds no copy). Once raft has persisted an entry it
    /// drops its own copy and asks storage again to apply it and to send it to a follower
    /// or the learner; raft-engine can only answer by reading the entry back from its file
    /// and decoding it (as TiKV's entry cache, this answers recent reads from memory).
    recent: VecDeque<Entry>,
    recent_bytes: usize,
}

impl Cached {
    /// The term of entry `idx` if the runs know it (`idx` must be at most the last index).
    fn known_term(&self, idx: u64) -> Option<u64> {
        let at = self.terms.partition_point(|&(start, _)| start <= idx);
        at.checked_sub(1).map(|i| self.terms[i].1)
    }

    /// Entries `entries` were appended (replacing everything from their first index on).
    fn appended(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let keep = self
            .terms
            .partition_point(|&(start, _)| start < first.index);
        self.terms.truncate(keep);
        for e in entries {
            if self.terms.last().map(|&(_, t)| t) != Some(e.term) {
                self.terms.push((e.index, e.term));
            }
        }
        while self.recent.back().is_some_and(|e| e.index >= first.index) {
            self.pop_recent_back();
        }
        if self
            .recent
            .back()
            .is_some_and(|e| e.index + 1 != first.index)
        {
            self.clear_recent();
        }
        for e in entries {
            self.recent_bytes += e.data.len();
            self.recent.push_back(e.clone());
        }
        while self.recent_bytes > RECENT_BYTES && self.recent.len() > 1 {
            self.pop_recent_front();
        }
    }

    /// Entries before `first` are gone.
    fn compacted(&mut self, first: u64) {
        let covering = self.terms.partition_point(|&(start, _)| start <= first);
        if covering > 1 {
            self.terms.drain(..covering - 1);
        }
        while self.recent.front().is_some_and(|e| e.index < first) {
            self.pop_recent_front();
        }
    }

    /// Entries `[low, high)` if they are all in memory.
    fn recent_entries(&self, low: u64, high: u64) -> Option<Vec<Entry>> {
        let first = self.recent.front()?.index;
        let last = self.recent.back()?.index;
        if low < first || high > last + 1 || low >= high {
            return None;
        }
        let from = (low - first) as usize;
        Some(
            self.recent
                .range(from..from + (high - low) as usize)
                .cloned()
                .collect(),
        )
    }

    fn pop_recent_front(&mut self) {
        if let Some(e) = self.recent.pop_front() {
            self.recent_bytes -= e.data.len();
        }
    }

    fn pop_recent_back(&mut self) {
        if let Some(e) = self.recent.pop_back() {
            self.recent_bytes -= e.data.len();
        }
    }

    fn clear_recent(&mut self) {
        self.recent.clear();
        self.recent_bytes = 0;
    }
}

/// See `Config::purge_threshold` in [`LogStore::open`] (4 of raft-engine's 128 MB files).
const PURGE_THRESHOLD_MB: u64 = 512;

impl LogStore {
    /// Opens (creating) the log in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with_faults(dir, Arc::default())
    }

    /// Opens (creating) the log in `dir`, its writes subject to `faults`.
    pub fn open_with_faults(dir: &Path, faults: Arc<LogFaults>) -> Result<Self> {
        let dir_s = dir.display().to_string();
        std::fs::create_dir_all(dir).map_err(|e| Error::Log {
            dir: dir_s.clone(),
            source: raft_engine::Error::Io(e),
        })?;
        let cfg = Config {
            dir: dir_s.clone(),
            // No LZ4 on log batches: a bulk load's batches are large, the voter and the
            // learner each compressed every one (and the learner decompressed it to apply),
            // and the log is purged once applied. Off, a COPY of 600k lineitem rows took
            // about 16% less server CPU and 14% less time (BENCHMARKS.md); the log files are
            // larger until purged. Batches already compressed are still read.
            batch_compression_threshold: raft_engine::ReadableSize(0),
            // raft-engine deletes compacted log files only once the log passes this size
            // (10 GB by default): an SF1 load left 2.5 GB of applied, compacted log behind.
            purge_threshold: raft_engine::ReadableSize::mb(PURGE_THRESHOLD_MB),
            ..Default::default()
        };
        remove_headerless_tail(dir).map_err(|e| Error::Log {
            dir: dir_s.clone(),
            source: raft_engine::Error::Io(e),
        })?;
        let sync_failed = SyncFailure::default();
        let fs = Arc::new(LogFileSystem::new(faults, sync_failed.clone()));
        let engine = Engine::open_with_file_system(cfg, fs).map_err(|source| Error::Log {
            dir: dir_s.clone(),
            source,
        })?;
        let log_err = |source| Error::Log {
            dir: dir_s.clone(),
            source,
        };
        let hard_state: HardState = engine
            .get_message(GROUP, HARD_STATE_KEY)
            .map_err(log_err)?
            .unwrap_or_default();
        let conf_state: ConfState = engine
            .get_message(GROUP, CONF_STATE_KEY)
            .map_err(log_err)?
            .unwrap_or_default();
        let truncated = match engine.get(GROUP, TRUNCATED_KEY) {
            Some(b) if b.len() == 16 => Truncated {
                index: u64::from_be_bytes(
                    b[..8]
                        .try_into()
                        .map_err(|_| Error::Corrupt("truncated".into()))?,
                ),
                term: u64::from_be_bytes(
                    b[8..]
                        .try_into()
                        .map_err(|_| Error::Corrupt("truncated".into()))?,
                ),
            },
            Some(_) => return Err(Error::Corrupt("truncated index".into())),
            None => Truncated::default(),
        };
        let engine = Arc::new(engine);
        let purge_wanted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        Self::start_purge(&engine, &purge_wanted, &sync_failed, &dir_s)?;
        Ok(Self {
            purge_wanted,
            sync_failed,
            engine,
            dir: dir_s,
            state: Arc::new(RwLock::new(Cached {
                hard_state,
                conf_state,
                truncated,
                ..Cached::default()
            })),
            applied: Arc::new(AtomicU64::new(0)),
            applying: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            snapshot_source: Arc::new(RwLock::new(None)),
            batch: Arc::new(Mutex::new(LogBatch::default())),
        })
    }

    /// Purges the log's obsolete files beside the Raft thread (TiKV purges in a background
    /// worker too): a purge may rewrite the entries that keep old files alive, and with a
    /// bulk load's hundreds of megabytes in the log that took seconds on the Raft thread,
    /// longer than an election timeout. Ends when the engine is dropped.
    fn start_purge(
        engine: &Arc<LogEngine>,
        wanted: &Arc<std::sync::atomic::AtomicBool>,
        sync_failed: &SyncFailure,
        dir: &str,
    ) -> Result<()> {
        let engine = Arc::downgrade(engine);
        let wanted = wanted.clone();
        let sync_failed = sync_failed.clone();
        let dir = dir.to_string();
        std::thread::Builder::new()
            .name("raft-purge".into())
            .spawn(move || loop {
                std::thread::sleep(PURGE_EVERY);
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                if wanted.swap(false, Ordering::AcqRel) {
                    // A purge rewrites and syncs what keeps old files alive.
                    let purged = sync_guarded(&dir, &sync_failed, || engine.purge_expired_files());
                    if let Err(e) = purged {
                        tracing::warn!(dir = %dir, error = %e, "purging the raft log failed");
                    }
                }
            })
            .map(|_| ())
            .map_err(|source| Error::Spawn { source })
    }

    fn err(&self, source: raft_engine::Error) -> Error {
        Error::Log {
            dir: self.dir.clone(),
            source,
        }
    }

    /// Runs `write` (a raft-engine call that may sync the log), unless a sync failed
    /// before. raft-engine panics when a sync fails (it cannot tell what reached the disk);
    /// the panic is caught here and turned into [`Error::LogSync`], for this call and every
    /// later one, so the peer stops taking writes instead of the process dying.
    fn guarded<T>(&self, write: impl FnOnce() -> raft_engine::Result<T>) -> Result<T> {
        sync_guarded(&self.dir, &self.sync_failed, write)
    }

    /// Persists `entries` (overwriting any conflicting suffix) and the hard state in one
    /// write; with `sync` it is on disk when this returns.
    pub fn append(
        &self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        sync: bool,
    ) -> Result<()> {
        let mut batch = self.batch.lock();
        let written = (|| {
            if !entries.is_empty() {
                batch
                    .add_entries::<EntryExt>(GROUP, entries)
                    .map_err(|e| self.err(e))?;
            }
            if let Some(hs) = hard_state {
                batch
                    .put_message(GROUP, HARD_STATE_KEY.to_vec(), hs)
                    .map_err(|e| self.err(e))?;
            }
            if !batch.is_empty() {
                self.guarded(|| self.engine.write(&mut batch, sync))?;
            }
            Ok::<_, Error>(())
        })();
        if let Err(e) = written {
            // What a failed write left in the batch must not go out with the next one.
            *batch = LogBatch::default();
            return Err(e);
        }
        drop(batch);
        let mut state = self.state.write();
        state.appended(entries);
        if let Some(hs) = hard_state {
            state.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Free bytes on the log's filesystem, if it can be asked.
    pub fn available_space(&self) -> Option<u64> {
        fs2::available_space(&self.dir).ok()
    }

    /// Makes every write so far durable.
    pub fn sync(&self) -> Result<()> {
        self.guarded(|| self.engine.sync())
    }

    /// Records the commit index without other hard-state changes.
    pub fn set_commit(&self, commit: u64) -> Result<()> {
        let mut hs = self.state.read().hard_state.clone();
        hs.commit = commit;
        self.append(&[], Some(&hs), false)
    }

    /// Persists the membership.
    pub fn set_conf_state(&self, cs: &ConfState) -> Result<()> {
        let mut batch = LogBatch::default();
        batch
            .put_message(GROUP, CONF_STATE_KEY.to_vec(), cs)
            .map_err(|e| self.err(e))?;
        self.engine
            .write(&mut batch, true)
            .map_err(|e| self.err(e))?;
        self.state.write().conf_state = cs.clone();
        Ok(())
    }

    /// Whether an entry is being applied beside the driver (see [`LogStore::applying`]).
    pub fn set_applying(&self, applying: bool) {
        self.applying.store(applying, Ordering::Release);
    }

    /// Records what the state machine has applied (where a snapshot would be taken).
    pub fn set_applied(&self, index: u64) {
        self.applied.store(index, Ordering::Release);
    }

    /// Where snapshots come from when a replica is behind the compacted log.
    pub fn set_snapshot_source(&self, source: Arc<dyn SnapshotSource>) {
        *self.snapshot_source.write() = Some(source);
    }

    /// Replaces the log by `snap`: every entry goes, the log restarts after the snapshot's
    /// index with its membership.
    pub fn apply_snapshot(&self, snap: &Snapshot) -> Result<()> {
        let meta = snap.get_metadata();
        let mut hs = self.hard_state();
        hs.commit = hs.commit.max(meta.index);
        hs.term = hs.term.max(meta.term);
        let mut batch = LogBatch::default();
        batch.add_command(GROUP, raft_engine::Command::Clean);
        self.engine
            .write(&mut batch, true)
            .map_err(|e| self.err(e))?;
        let mut batch = LogBatch::default();
        let mut t = meta.index.to_be_bytes().to_vec();
        t.extend_from_slice(&meta.term.to_be_bytes());
        batch
            .put(GROUP, TRUNCATED_KEY.to_vec(), t)
            .map_err(|e| self.err(e))?;
        batch
            .put_message(GROUP, HARD_STATE_KEY.to_vec(), &hs)
            .map_err(|e| self.err(e))?;
        batch
            .put_message(GROUP, CONF_STATE_KEY.to_vec(), meta.get_conf_state())
            .map_err(|e| self.err(e))?;
        self.engine
            .write(&mut batch, true)
            .map_err(|e| self.err(e))?;
        let mut s = self.state.write();
        s.truncated = Truncated {
            index: meta.index,
            term: meta.term,
        };
        s.hard_state = hs;
        s.conf_state = meta.get_conf_state().clone();
        s.terms.clear();
        s.clear_recent();
        Ok(())
    }

    /// Last index in the log (the snapshot's index when it is empty).
    pub fn last_index(&self) -> u64 {
        self.last()
    }

    /// Drops entries before `index` (every replica has applied them).
    pub fn compact_to(&self, index: u64) -> Result<()> {
        let last = self.last();
        if index <= self.first() || index > last + 1 {
            return Ok(());
        }
        let term = self.term_of(index - 1)?;
        let mut batch = LogBatch::default();
        let mut t = (index - 1).to_be_bytes().to_vec();
        t.extend_from_slice(&term.to_be_bytes());
        batch
            .put(GROUP, TRUNCATED_KEY.to_vec(), t)
            .map_err(|e| self.err(e))?;
        self.engine
            .write(&mut batch, true)
            .map_err(|e| self.err(e))?;
        self.engine.compact_to(GROUP, index);
        // compact_to only marks entries obsolete; files go when purged.
        self.purge_wanted.store(true, Ordering::Release);
        let mut state = self.state.write();
        state.truncated = Truncated {
            index: index - 1,
            term,
        };
        state.compacted(index);
        Ok(())
    }

    fn first(&self) -> u64 {
        self.engine
            .first_index(GROUP)
            .unwrap_or(self.state.read().truncated.index + 1)
    }

    fn last(&self) -> u64 {
        self.engine
            .last_index(GROUP)
            .unwrap_or(self.state.read().truncated.index)
    }

    fn term_of(&self, idx: u64) -> Result<u64> {
        {
            let state = self.state.read();
            if idx == state.truncated.index {
                return Ok(state.truncated.term);
            }
            if let Some(term) = state.known_term(idx) {
                return Ok(term);
            }
        }
        match self
            .engine
            .get_entry::<EntryExt>(GROUP, idx)
            .map_err(|e| self.err(e))?
        {
            Some(e) => Ok(e.term),
            None => Err(Error::Raft(raft::Error::Store(StorageError::Unavailable))),
        }
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> HardState {
        self.state.read().hard_state.clone()
    }

    /// Entries `[low, high)` (for tests and replay).
    pub fn read_entries(&self, low: u64, high: u64) -> Result<Vec<Entry>> {
        self.read_entries_bounded(low, high, None)
    }

    /// Entries `[low, high)`, stopping before `max_bytes` of them (at least one entry).
    pub fn read_entries_bounded(
        &self,
        low: u64,
        high: u64,
        max_bytes: Option<usize>,
    ) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.engine
            .fetch_entries_to::<EntryExt>(GROUP, low, high, max_bytes, &mut out)
            .map_err(|e| self.err(e))?;
        if out.is_empty() && low < high {
            self.engine
                .fetch_entries_to::<EntryExt>(GROUP, low, low + 1, None, &mut out)
                .map_err(|e| self.err(e))?;
        }
        Ok(out)
    }
}

/// The shortest header raft-engine writes at the start of a log file (its 53-byte magic
/// and an 8-byte version; version 2 adds 8 more).
const LOG_FILE_HEADER_MIN: u64 = 61;

/// Removes the files at the end of each of raft-engine's queues in `dir` that are too short
/// to hold a header. raft-engine creates a file and then writes its header; when that write
/// fails (a full disk: raft-engine rotates to a new file on ENOSPC) the empty file stays,
/// and its recovery then fails on it, so the log could not be opened again. Such a file
/// holds no entry.
fn remove_headerless_tail(dir: &Path) -> std::io::Result<()> {
    for suffix in ["raftlog", "rewrite"] {
        let mut files: Vec<(u64, std::path::PathBuf, u64)> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(suffix) {
                continue;
            }
            let Some(seq) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            files.push((seq, path, entry.metadata()?.len()));
        }
        files.sort();
        while let Some((_, path, len)) = files.last() {
            if *len >= LOG_FILE_HEADER_MIN {
                break;
            }
            tracing::warn!(
                file = %path.display(),
                bytes = len,
                "removing a raft log file without a header (left by a write that failed)"
            );
            std::fs::remove_file(path)?;
            files.pop();
        }
    }
    Ok(())
}

fn store_err(e: Error) -> raft::Error {
    match e {
        Error::Raft(r) => r,
        other => raft::Error::Store(StorageError::Other(Box::new(other))),
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let s = self.state.read();
        Ok(RaftState {
            hard_state: s.hard_state.clone(),
            conf_state: s.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into();
        if let Some(mut out) = self.state.read().recent_entries(low, high) {
            raft::util::limit_size(&mut out, max_size);
            return Ok(out);
        }
        let mut out = Vec::with_capacity((high - low) as usize);
        let max = max_size.map(|m| m as usize);
        self.engine
            .fetch_entries_to::<EntryExt>(GROUP, low, high, max, &mut out)
            .map_err(|e| store_err(self.err(e)))?;
        // raft-rs expects at least one entry even if it alone exceeds max_size.
        if out.is_empty() && low < high {
            self.engine
                .fetch_entries_to::<EntryExt>(GROUP, low, low + 1, None, &mut out)
                .map_err(|e| store_err(self.err(e)))?;
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let t = self.state.read().truncated;
        if idx == t.index {
            return Ok(t.term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        self.term_of(idx).map_err(store_err)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, _request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let Some(source) = self.snapshot_source.read().clone() else {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        };
        // Raft asks again later.
        if self.applying.load(Ordering::Acquire) {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let index = self.applied.load(Ordering::Acquire);
        let term = raft::Storage::term(self, index)?;
        let data = source.build().map_err(|source| {
            raft::Error::Store(StorageError::Other(Box::new(Error::Snapshot { source })))
        })?;
        tracing::info!(index, to, bytes = data.len(), "built a snapshot");
        let mut snap = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.state.read().conf_state.clone());
        Ok(snap)
    }
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("dir", &self.dir).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
        (from..=to)
            .map(|index| Entry {
                index,
                term,
                data: vec![index as u8; 64].into(),
                ..Default::default()
            })
            .collect()
    }

    /// Every answer of the term runs equals the term stored in the entry itself, and every
    /// range raft can ask for comes back as stored, from memory or not.
    fn check(log: &LogStore) {
        let (first, last) = (log.first(), log.last());
        let stored = log.read_entries(first, last + 1).unwrap();
        assert!(!stored.is_empty());
        for e in &stored {
            assert_eq!(log.term_of(e.index).unwrap(), e.term, "entry {}", e.index);
            let s = log.state.read();
            if s.terms.first().is_some_and(|&(start, _)| start <= e.index) {
                assert_eq!(s.known_term(e.index), Some(e.term), "run of {}", e.index);
            }
        }
        let ctx = || GetEntriesContext::empty(false);
        for low in first..=last {
            for high in low + 1..=last + 1 {
                let want = &stored[(low - first) as usize..(high - first) as usize];
                let got = raft::Storage::entries(log, low, high, None, ctx()).unwrap();
                assert_eq!(got, want, "entries [{low}, {high})");
                // A size limit keeps the first entry and what fits after it.
                let one = raft::Storage::entries(log, low, high, Some(1), ctx()).unwrap();
                assert_eq!(one, &want[..1], "entries [{low}, {high}) limited");
            }
        }
    }

    #[test]
    fn term_runs_follow_appends_overwrites_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        log.append(&entries(1, 10, 1), None, false).unwrap();
        log.append(&entries(11, 20, 2), None, false).unwrap();
        check(&log);
        // A new leader overwrites a suffix: 15.. now have term 3, and 21.. are gone.
        log.append(&entries(15, 17, 3), None, false).unwrap();
        assert_eq!(log.last(), 17);
        check(&log);
        assert_eq!(log.term_of(14).unwrap(), 2);
        assert_eq!(log.term_of(15).unwrap(), 3);
        log.append(&entries(18, 25, 3), None, false).unwrap();
        log.compact_to(16).unwrap();
        assert_eq!(log.first(), 16);
        assert_eq!(log.term_of(15).unwrap(), 3, "the truncated entry's term");
        check(&log);
        assert_eq!(log.state.read().terms, vec![(15, 3)]);
        let recent: Vec<u64> = log.state.read().recent.iter().map(|e| e.index).collect();
        assert_eq!(
            recent,
            (16..=25).collect::<Vec<_>>(),
            "the entries in memory"
        );
        // Reopened, the runs and the entries in memory are empty; answers come from disk.
        drop(log);
        let log = LogStore::open(dir.path()).unwrap();
        assert!(log.state.read().terms.is_empty());
        assert!(log.state.read().recent.is_empty());
        check(&log);
        assert_eq!(log.term_of(20).unwrap(), 3);
        log.append(&entries(26, 27, 4), None, false).unwrap();
        assert_eq!(log.term_of(25).unwrap(), 3);
        assert_eq!(log.term_of(26).unwrap(), 4);
        // Appended after a gap in memory: only the new entries are kept, the rest is read.
        check(&log);
        assert_eq!(log.state.read().recent.len(), 2);
    }

    /// Entries past the memory budget are dropped from memory, oldest first, and still read
    /// back from disk.
    #[test]
    fn entries_in_memory_stay_within_their_budget() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let big = |index| Entry {
            index,
            term: 1,
            data: vec![index as u8; RECENT_BYTES / 3].into(),
            ..Default::default()
        };
        for i in 1..=5 {
            log.append(&[big(i)], None, false).unwrap();
        }
        {
            let s = log.state.read();
            let kept: Vec<u64> = s.recent.iter().map(|e| e.index).collect();
            assert_eq!(kept, vec![3, 4, 5]);
            assert_eq!(s.recent_bytes, 3 * (RECENT_BYTES / 3));
        }
        let ctx = GetEntriesContext::empty(false);
        let all = raft::Storage::entries(&log, 1, 6, None, ctx).unwrap();
        assert_eq!(all, (1..=5).map(big).collect::<Vec<_>>());
    }

    fn large(from: u64, to: u64) -> Vec<Entry> {
        (from..=to)
            .map(|index| Entry {
                index,
                term: 1,
                data: vec![index as u8; 512 << 10].into(),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn a_log_whose_writes_failed_for_want_of_space_opens_again_whole() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(LogFaults::default());
        {
            let log = LogStore::open_with_faults(dir.path(), faults.clone()).unwrap();
            log.append(&entries(1, 10, 1), None, true).unwrap();
            faults.set_no_space(true);
            for _ in 0..3 {
                let e = log.append(&entries(11, 12, 1), None, true).unwrap_err();
                assert!(e.is_exhausted_resource(), "{e}");
            }
            faults.set_no_space(false);
            // Written where the failed writes were not (raft-engine truncated them).
            log.append(&large(11, 20), None, true).unwrap();
        }
        // raft-engine moved on to new files it could not write a header into (the state
        // that also needs a zero tail before them to keep the log from opening is the next
        // test's).
        let headerless = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.metadata().unwrap().len() < LOG_FILE_HEADER_MIN)
            .filter(|e| e.path().extension().is_some_and(|x| x == "raftlog"))
            .count();
        assert!(headerless > 0, "the failed writes left no empty file");
        let mut want = entries(1, 10, 1);
        want.extend(large(11, 20));
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.read_entries(1, 21).unwrap(), want);
        log.append(&entries(21, 22, 1), None, true).unwrap();
        drop(log);
        want.extend(entries(21, 22, 1));
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.read_entries(1, 23).unwrap(), want);
    }

    #[test]
    fn an_empty_file_after_a_preallocated_one_does_not_keep_the_log_from_opening() {
        // What a full disk left behind (seen on a tmpfs): the file written last ends in the
        // zeros of space allocated ahead, and after it an empty file whose header could not
        // be written. raft-engine tolerates a zero tail only in the last file.
        let dir = tempfile::tempdir().unwrap();
        {
            let log = LogStore::open(dir.path()).unwrap();
            log.append(&entries(1, 10, 1), None, true).unwrap();
        }
        let last = dir.path().join("0000000000000001.raftlog");
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap();
        f.set_len(f.metadata().unwrap().len() + (1 << 20)).unwrap();
        std::fs::File::create(dir.path().join("0000000000000002.raftlog")).unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.read_entries(1, 11).unwrap(), entries(1, 10, 1));
        log.append(&entries(11, 12, 1), None, true).unwrap();
        drop(log);
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.read_entries(1, 13).unwrap(), entries(1, 12, 1));
    }
}
