//! The column cache: stable chunks live in their checkpoint files and their columns are read
//! into memory through one cache with a byte budget (`--column-cache-size`), so the column
//! replica can be several times larger than the memory it may use. Zone maps, row counts
//! and key ranges stay in memory (in [`crate::table::Chunk`]), so pruning needs no I/O.
//!
//! An entry is one column of one chunk file (the keys are column 0), weighed by its Arrow
//! memory size; eviction is `quick_cache`'s (CLOCK-Pro-like, so one large scan does not
//! flush what other queries use). A scan asks for the columns it projects: the ones cached
//! are served, the others are read with one projected read of the file.
//!
//! A chunk file stays on disk while a chunk that names it is alive, even after a newer
//! checkpoint stopped naming it: a scan that took a snapshot before that checkpoint may
//! still need to read it ([`ChunkFile::retire`]).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use arrow::array::{Array, ArrayRef};
use arrow::ipc::reader::FileReader;
use parking_lot::Mutex;

use crate::error::{Error, Result};

/// Whether a read keeps the columns it loads from a file in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// Keep them (scans).
    Keep,
    /// Use what is cached but keep nothing new: a one-off reader, such as ANALYZE's sample,
    /// would evict what the queries use.
    Pass,
}

/// One column of one chunk file: (file id, column of the file).
type Key = (u64, u32);

#[derive(Clone)]
struct ArrayWeight;

impl quick_cache::Weighter<Key, ArrayRef> for ArrayWeight {
    fn weight(&self, _key: &Key, value: &ArrayRef) -> u64 {
        // Never 0: a weightless entry would never be evicted.
        value.get_array_memory_size().max(1) as u64
    }
}

/// Counters of the column cache (for /metrics and tests).
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Column reads served from memory.
    pub hits: AtomicU64,
    /// Column reads that went to the file.
    pub misses: AtomicU64,
    /// Bytes of Arrow arrays read from chunk files.
    pub bytes_loaded: AtomicU64,
    /// Projected file reads (one per chunk a scan found partly uncached).
    pub file_reads: AtomicU64,
    /// Of those, the ones a scan's read-ahead made.
    pub prefetches: AtomicU64,
}

/// What the cache holds now and may hold.
#[derive(Debug, Clone, Copy)]
pub struct CacheFigures {
    pub capacity: u64,
    pub bytes: u64,
    pub entries: u64,
    pub hits: u64,
    pub misses: u64,
    pub bytes_loaded: u64,
    pub file_reads: u64,
    pub prefetches: u64,
}

/// The byte-budgeted cache of chunk columns, shared by every table of a column store.
pub struct ColumnCache {
    capacity: AtomicU64,
    entries: quick_cache::sync::Cache<Key, ArrayRef, ArrayWeight>,
    next_file: AtomicU64,
    /// Files with a live chunk, by path: a checkpoint that stops naming one retires it
    /// rather than removing it.
    files: Mutex<HashMap<PathBuf, Weak<ChunkFile>>>,
    pub counters: CacheCounters,
}

impl std::fmt::Debug for ColumnCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnCache")
            .field("capacity", &self.capacity())
            .field("bytes", &self.entries.weight())
            .finish()
    }
}

/// The default budget: a quarter of the machine's memory, at least 256 MiB.
pub fn default_cache_bytes() -> u64 {
    let total = duet_common::fs::physical_memory().unwrap_or(4 << 30);
    (total / 4).max(256 << 20)
}

impl ColumnCache {
    /// A cache holding at most `capacity` bytes of Arrow arrays.
    pub fn new(capacity: u64) -> Arc<Self> {
        // quick_cache sizes its tables from an item estimate (a column of 65,536 rows weighs
        // about 256 KiB) and splits the budget among shards, each refusing an entry larger
        // than its share: few shards, so that a wide column (65,536 long strings) fits a
        // small budget's share.
        let estimated = (capacity / (256 << 10)).clamp(64, 1 << 20) as usize;
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(estimated)
            .weight_capacity(capacity)
            .shards(4)
            .build()
            .expect("valid cache options");
        Arc::new(Self {
            capacity: AtomicU64::new(capacity),
            entries: quick_cache::sync::Cache::with_options(
                options,
                ArrayWeight,
                quick_cache::DefaultHashBuilder::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            ),
            next_file: AtomicU64::new(1),
            files: Mutex::new(HashMap::new()),
            counters: CacheCounters::default(),
        })
    }

    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Changes the budget (evicting down to it).
    pub fn set_capacity(&self, bytes: u64) {
        self.capacity.store(bytes, Ordering::Relaxed);
        self.entries.set_capacity(bytes);
    }

    pub fn figures(&self) -> CacheFigures {
        let c = &self.counters;
        CacheFigures {
            capacity: self.capacity(),
            bytes: self.entries.weight(),
            entries: self.entries.len() as u64,
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            bytes_loaded: c.bytes_loaded.load(Ordering::Relaxed),
            file_reads: c.file_reads.load(Ordering::Relaxed),
            prefetches: c.prefetches.load(Ordering::Relaxed),
        }
    }

    /// The chunk file at `path`, whose chunk is record batch `batch` of the file, of
    /// `columns` columns (the same handle while a chunk holds it).
    pub fn file(self: &Arc<Self>, path: &Path, batch: usize, columns: usize) -> Arc<ChunkFile> {
        let mut files = self.files.lock();
        if let Some(f) = files.get(path).and_then(Weak::upgrade) {
            return f;
        }
        let f = Arc::new(ChunkFile {
            id: self.next_file.fetch_add(1, Ordering::Relaxed),
            path: path.to_path_buf(),
            batch,
            columns: columns as u32,
            retired: AtomicBool::new(false),
            cache: Arc::downgrade(self),
        });
        files.insert(path.to_path_buf(), Arc::downgrade(&f));
        if files.len() > 1024 && files.len().is_power_of_two() {
            files.retain(|_, f| f.strong_count() > 0);
        }
        f
    }

    /// Removes the chunk file at `path` now, or, if a live chunk still names it, once the
    /// last such chunk is dropped.
    pub fn remove_file(&self, path: &Path) {
        let live = self.files.lock().get(path).and_then(Weak::upgrade);
        match live {
            Some(f) => f.retire(),
            None => {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// A manifest names the file at `path` (again): it is not to be removed.
    pub fn keep_file(&self, path: &Path) {
        // Upgraded under the lock, used after it: dropping the last handle takes the lock.
        let live = self.files.lock().get(path).and_then(Weak::upgrade);
        if let Some(f) = live {
            f.keep();
        }
    }

    fn insert(&self, file: u64, column: u32, array: ArrayRef) {
        self.entries.insert((file, column), array);
    }
}

/// A chunk's checkpoint file, read through the cache.
#[derive(Debug)]
pub struct ChunkFile {
    id: u64,
    path: PathBuf,
    /// Which record batch of the file holds the chunk's rows.
    batch: usize,
    /// Columns in the file (for dropping its cache entries with it).
    columns: u32,
    /// No manifest names the file any more: removed when the last chunk holding it goes.
    retired: AtomicBool,
    cache: Weak<ColumnCache>,
}

impl ChunkFile {
    /// Marks the file for removal once no chunk holds it.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Undoes [`ChunkFile::retire`]: a manifest about to be written names the file.
    pub fn keep(&self) {
        self.retired.store(false, Ordering::Release);
    }

    /// Puts arrays the caller already has (a chunk just written) in the cache.
    pub fn warm(&self, columns: impl IntoIterator<Item = (u32, ArrayRef)>) {
        if let Some(cache) = self.cache.upgrade() {
            for (c, a) in columns {
                cache.insert(self.id, c, a);
            }
        }
    }

    /// Columns `columns` of the file (positions in the file's schema), in that order: from
    /// the cache, the missing ones with one projected read of the file.
    pub fn read(&self, columns: &[u32]) -> Result<Vec<ArrayRef>> {
        self.read_as(columns, Caching::Keep)
    }

    /// [`Self::read`], keeping what it loads from the file in the cache or not.
    pub fn read_as(&self, columns: &[u32], caching: Caching) -> Result<Vec<ArrayRef>> {
        let Some(cache) = self.cache.upgrade() else {
            return self.read_file(columns);
        };
        let mut out: Vec<Option<ArrayRef>> = columns
            .iter()
            .map(|c| cache.entries.get(&(self.id, *c)))
            .collect();
        let missing: Vec<u32> = columns
            .iter()
            .zip(&out)
            .filter(|(_, a)| a.is_none())
            .map(|(c, _)| *c)
            .collect();
        let c = &cache.counters;
        c.hits
            .fetch_add((columns.len() - missing.len()) as u64, Ordering::Relaxed);
        c.misses.fetch_add(missing.len() as u64, Ordering::Relaxed);
        for (col, array) in self.load(&cache, missing, caching)? {
            for (slot, want) in out.iter_mut().zip(columns) {
                if *want == col && slot.is_none() {
                    *slot = Some(array.clone());
                }
            }
        }
        Ok(out.into_iter().map(|a| a.expect("read above")).collect())
    }

    /// Reads those of `columns` that are not cached into the cache (counted as neither hits
    /// nor misses: the read the scan makes later is).
    pub fn prefetch(&self, columns: &[u32]) -> Result<()> {
        let Some(cache) = self.cache.upgrade() else {
            return Ok(());
        };
        let missing: Vec<u32> = columns
            .iter()
            .copied()
            .filter(|c| !cache.entries.contains_key(&(self.id, *c)))
            .collect();
        if !missing.is_empty() {
            cache.counters.prefetches.fetch_add(1, Ordering::Relaxed);
            self.load(&cache, missing, Caching::Keep)?;
        }
        Ok(())
    }

    /// Reads `missing` (any order, repeats allowed) with one projected read of the file and
    /// puts them in `cache` unless `caching` says not to; nothing when it is empty.
    fn load(
        &self,
        cache: &ColumnCache,
        mut missing: Vec<u32>,
        caching: Caching,
    ) -> Result<Vec<(u32, ArrayRef)>> {
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        missing.sort_unstable();
        missing.dedup();
        let c = &cache.counters;
        c.file_reads.fetch_add(1, Ordering::Relaxed);
        let read = self.read_file(&missing)?;
        let loaded: Vec<(u32, ArrayRef)> = missing.into_iter().zip(read).collect();
        for (col, array) in &loaded {
            c.bytes_loaded
                .fetch_add(array.get_array_memory_size() as u64, Ordering::Relaxed);
            if caching == Caching::Keep {
                cache.insert(self.id, *col, array.clone());
            }
        }
        Ok(loaded)
    }

    /// Columns `columns` (ascending) of the chunk's record batch, read from the file.
    fn read_file(&self, columns: &[u32]) -> Result<Vec<ArrayRef>> {
        let io = |e| Error::io(&self.path, e);
        let file = File::open(&self.path).map_err(io)?;
        let projection = columns.iter().map(|c| *c as usize).collect();
        let mut reader = FileReader::try_new(std::io::BufReader::new(file), Some(projection))?;
        reader.set_index(self.batch)?;
        let batch = reader
            .next()
            .ok_or_else(|| Error::Corrupt(format!("{}: no record batch", self.path.display())))??;
        // The projection comes back in the file's order, which is `columns`'s order.
        let out = batch.columns();
        if out.len() != columns.len() {
            return Err(Error::Corrupt(format!(
                "{}: read {} columns, wanted {}",
                self.path.display(),
                out.len(),
                columns.len()
            )));
        }
        Ok(out.iter().cloned().map(compact).collect())
    }
}

/// `array`, or a copy of it that holds only its own bytes. Arrow IPC stores a buffer that
/// LZ4 does not shrink uncompressed, and reads it as a slice of the whole record batch's
/// body: cached as it is, one such column would keep the body of every column read with it
/// in memory (and weigh that much).
fn compact(array: ArrayRef) -> ArrayRef {
    let data = array.to_data();
    let own = data.get_slice_memory_size().unwrap_or(usize::MAX);
    if array.get_array_memory_size() <= own.saturating_add(own / 4).saturating_add(4096) {
        return array;
    }
    let mut copy = arrow::array::MutableArrayData::new(vec![&data], false, data.len());
    match copy.try_extend(0, 0, data.len()) {
        Ok(()) => arrow::array::make_array(copy.freeze()),
        Err(_) => array,
    }
}

impl Drop for ChunkFile {
    fn drop(&mut self) {
        if self.retired.load(Ordering::Acquire) {
            let _ = std::fs::remove_file(&self.path);
        }
        if let Some(cache) = self.cache.upgrade() {
            for c in 0..self.columns {
                cache.entries.remove(&(self.id, c));
            }
            let mut files = cache.files.lock();
            if files.get(&self.path).is_some_and(|f| f.strong_count() == 0) {
                files.remove(&self.path);
            }
        }
    }
}
