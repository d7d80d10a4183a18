//! RocksDB implementation of [`KvEngine`]: the engine the server runs on.

use std::path::Path;

use rocksdb::compaction_filter::{CompactionFilter, Decision};
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType as Compression, Direction,
    IteratorMode, Options, ReadOptions, SliceTransform, WriteOptions, DB,
};

use super::{FirstVisitor, KvEngine, WriteBatch, WriteOp};
use crate::error::{Error, Result};
use crate::gc::{GcStateRef, VersionFilter};
use duet_common::codec::key;

/// A RocksDB database in one directory. Catalog and data keys are in the default column
/// family; system keys (prefix `0x00`: the applied index and the allocators, rewritten by
/// every apply) are in the `meta` column family and are only read by [`KvEngine::get`].
///
/// Kept in the default family, the system keys made every flushed SST span from them to
/// the data it holds, so all of level 0 overlapped and a bulk load of ascending keys was
/// merged and rewritten by compaction instead of moved down as whole files.
pub struct RocksEngine {
    db: DB,
    gc: GcStateRef,
    block_cache: Cache,
    /// The block cache's budget (RocksDB's binding sets it but does not read it back).
    block_cache_bytes: std::sync::atomic::AtomicUsize,
}

/// Makes a [`VersionFilter`] for each compaction of the data family.
struct GcFilterFactory(GcStateRef);

const GC_FILTER: &std::ffi::CStr = c"duet.mvcc_gc";

impl CompactionFilterFactory for GcFilterFactory {
    type Filter = GcFilter;
    fn create(&mut self, context: CompactionFilterContext) -> GcFilter {
        GcFilter(VersionFilter::new(
            self.0.clone(),
            context.is_full_compaction,
        ))
    }
    fn name(&self) -> &std::ffi::CStr {
        GC_FILTER
    }
}

struct GcFilter(VersionFilter);

impl CompactionFilter for GcFilter {
    fn filter(&mut self, _level: u32, key: &[u8], value: &[u8]) -> Decision {
        if self.0.remove(key, value) {
            Decision::Remove
        } else {
            Decision::Keep
        }
    }
    fn name(&self) -> &std::ffi::CStr {
        GC_FILTER
    }
}

/// The column family of system keys.
const META_CF: &str = "meta";

fn engine_err(e: rocksdb::Error) -> Error {
    Error::engine(e)
}

impl RocksEngine {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        // Point reads seek to `user key ++ !version`. With the user key as the prefix, a
        // seek in prefix mode skips the memtable and every SST whose prefix bloom filter
        // says the key is absent (the layout of TiKV's write column family: a fixed 8-byte
        // version suffix, prefix bloom in the memtable and the SSTs, no whole-key filter
        // since whole keys are never looked up).
        opts.set_prefix_extractor(SliceTransform::create(
            "duet.user_key",
            user_key_of,
            Some(has_user_key),
        ));
        opts.set_memtable_prefix_bloom_ratio(0.1);
        // No compression in L0 to L2, which a load of the first few GB passes through: a
        // bulk load's memtable flushes spent 2 s of CPU in Snappy per GB, and a level whose
        // compression differs from the one above it cannot take that level's files by a
        // trivial move, so an ascending load gets rewritten (measured: LZ4 from L2 on cost
        // more in compactions than it saved in flushes). LZ4 in L3 and L4, Zstandard in the
        // two bottom levels, where most of a large database rests (TiKV's choice there).
        let (none, lz4, zstd) = (Compression::None, Compression::Lz4, Compression::Zstd);
        opts.set_compression_per_level(&[none, none, none, lz4, lz4, zstd, zstd]);
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_whole_key_filtering(false);
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES).map_err(engine_err)?;
        table.set_block_cache(&cache);
        opts.set_block_based_table_factory(&table);
        opts.create_missing_column_families(true);
        // Applies write without the WAL (see `write`), so the two families must be flushed
        // together: a memtable that fills flushes both at once.
        opts.set_atomic_flush(true);
        let gc = GcStateRef::default();
        let mut data_opts = opts.clone();
        data_opts.set_compaction_filter_factory(GcFilterFactory(gc.clone()));
        let meta = ColumnFamilyDescriptor::new(META_CF, Options::default());
        let data = ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, data_opts);
        let db = DB::open_cf_descriptors(&opts, path, [data, meta]).map_err(engine_err)?;
        Ok(Self {
            db,
            gc,
            block_cache: cache,
            block_cache_bytes: std::sync::atomic::AtomicUsize::new(BLOCK_CACHE_BYTES),
        })
    }

    fn meta(&self) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(META_CF)
            .ok_or_else(|| Error::Corrupt("column family meta is missing".into()))
    }

    /// Options of a range scan: total order (a prefix-mode seek would skip data of other
    /// user keys), bounded to `[start, end)`.
    fn bounded(start: &[u8], end: &[u8]) -> ReadOptions {
        let mut ro = Self::total_order();
        ro.set_iterate_lower_bound(start.to_vec());
        ro.set_iterate_upper_bound(end.to_vec());
        ro
    }

    /// Options of a seek within one user key: prefix mode, so the seek consults the prefix
    /// bloom filters, and the iterator turns invalid once it leaves the seek's user key
    /// (each seek sets that anew, so one iterator serves many keys).
    fn prefix_mode() -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_prefix_same_as_start(true);
        ro
    }

    fn total_order() -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_total_order_seek(true);
        ro
    }
}

/// RocksDB's block cache by default (uncompressed blocks of SST files; `--block-cache-size`).
/// Reads past it go to the operating system's page cache.
pub const BLOCK_CACHE_BYTES: usize = 256 << 20;

/// [`KvEngine::first_of_keys`] seeks one by one up to this many keys.
const PREFIX_SEEKS_UP_TO: usize = 64;

/// The first pair in `[start, end)`, where `start` is a versioned key and `end` at most the
/// end of its user key, read with a prefix-mode iterator.
fn seek_in_key<'a>(
    it: &'a mut rocksdb::DBRawIterator<'_>,
    start: &[u8],
    end: &[u8],
) -> Result<Option<(&'a [u8], &'a [u8])>> {
    if start >= end {
        return Ok(None);
    }
    debug_assert!(has_user_key(start));
    it.seek(start);
    if !it.valid() {
        it.status().map_err(engine_err)?;
        return Ok(None);
    }
    Ok(match (it.key(), it.value()) {
        (Some(k), Some(v)) if k < end => Some((k, v)),
        _ => None,
    })
}

/// Whether `key` is a versioned key (catalog or data: prefix byte, user key, 8-byte
/// version); system keys are not.
fn has_user_key(key: &[u8]) -> bool {
    key.len() > key::VERSION_LEN + 1 && key[0] != key::SYSTEM_PREFIX
}

/// Whether `key` is a system key (kept in the meta column family).
fn is_system(key: &[u8]) -> bool {
    key.first() == Some(&key::SYSTEM_PREFIX)
}

/// The user key of a versioned key: the key without its version suffix. RocksDB also
/// calls this on keys outside the domain (it must not panic there): they are their own
/// prefix.
fn user_key_of(key: &[u8]) -> &[u8] {
    match has_user_key(key) {
        true => &key[..key.len() - key::VERSION_LEN],
        false => key,
    }
}

impl KvEngine for RocksEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if !is_system(key) {
            return self.db.get(key).map_err(engine_err);
        }
        match self.db.get_cf(self.meta()?, key).map_err(engine_err)? {
            Some(v) => Ok(Some(v)),
            // Databases written before the meta family kept system keys with the data.
            None => self.db.get(key).map_err(engine_err),
        }
    }

    fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()> {
        let meta = self.meta()?;
        let mut wb = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            match op {
                WriteOp::Put { key, value } if is_system(key) => wb.put_cf(meta, key, value),
                WriteOp::Put { key, value } => wb.put(key, value),
                WriteOp::Delete { key } if is_system(key) => wb.delete_cf(meta, key),
                WriteOp::Delete { key } => wb.delete(key),
                WriteOp::DeleteRange { start, end } => {
                    if is_system(start) {
                        return Err(Error::Internal(
                            "a range removal starting at system keys".into(),
                        ));
                    }
                    wb.delete_range(start, end)
                }
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        // Unsynced writes are Raft applies: the Raft log makes them durable, and the log is
        // compacted only past what a memtable flush has made durable (`Store::sync`), so
        // RocksDB's own WAL would be a second copy of every write.
        wo.disable_wal(!sync);
        self.db.write_opt(wb, &wo).map_err(engine_err)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        let iter = self.db.iterator_opt(
            IteratorMode::From(start, Direction::Forward),
            Self::bounded(start, end),
        );
        for item in iter {
            let (k, v) = item.map_err(engine_err)?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn first_in_each(&self, ranges: &[(Vec<u8>, Vec<u8>)], f: &mut FirstVisitor<'_>) -> Result<()> {
        // One iterator for every seek: creating one per key (with its bounds) was most of
        // the cost of checking a large write set. And a seek that landed at `e` answers
        // every later range starting in `[its start, e]` without seeking again: there is
        // nothing between. Keys appended past a table's end (a bulk load) then cost one
        // seek per batch instead of one per key.
        let mut it = self.db.raw_iterator_opt(Self::total_order());
        // The last seek: its target and the first pair at or after it (None: end of data).
        type Landed = Option<(Vec<u8>, Vec<u8>)>;
        let mut last: Option<(&[u8], Landed)> = None;
        for (i, (start, end)) in ranges.iter().enumerate() {
            if start >= end {
                f(i, None);
                continue;
            }
            let known = match &last {
                Some((from, landed)) if start.as_slice() >= *from => match landed {
                    None => Some(None),
                    Some((k, v)) if k.as_slice() >= start.as_slice() => Some(Some((k, v))),
                    Some(_) => None,
                },
                _ => None,
            };
            if let Some(landed) = known {
                match landed {
                    Some((k, v)) if k.as_slice() < end.as_slice() => f(i, Some((k, v))),
                    _ => f(i, None),
                }
                continue;
            }
            it.seek(start);
            let landed = match (it.key(), it.value()) {
                (Some(k), Some(v)) => Some((k.to_vec(), v.to_vec())),
                _ => {
                    it.status().map_err(engine_err)?;
                    None
                }
            };
            match &landed {
                Some((k, v)) if k.as_slice() < end.as_slice() => f(i, Some((k, v))),
                _ => f(i, None),
            }
            last = Some((start.as_slice(), landed));
        }
        Ok(())
    }

    fn first_of_key(
        &self,
        start: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        let mut it = self.db.raw_iterator_opt(Self::prefix_mode());
        if let Some((k, v)) = seek_in_key(&mut it, start, end)? {
            f(k, v);
        }
        Ok(())
    }

    fn first_of_keys(&self, ranges: &[(Vec<u8>, Vec<u8>)], f: &mut FirstVisitor<'_>) -> Result<()> {
        // Many keys (a bulk insert's uniqueness or commit check) are cheaper in total order,
        // where one seek can answer a run of absent keys; a few (an OLTP transaction's) are
        // cheaper one by one with the filters.
        if ranges.len() > PREFIX_SEEKS_UP_TO {
            return self.first_in_each(ranges, f);
        }
        let mut it = self.db.raw_iterator_opt(Self::prefix_mode());
        for (i, (start, end)) in ranges.iter().enumerate() {
            f(i, seek_in_key(&mut it, start, end)?);
        }
        Ok(())
    }

    fn scan_rev(
        &self,
        start: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        let iter = self
            .db
            .iterator_opt(IteratorMode::End, Self::bounded(start, end));
        for item in iter {
            let (k, v) = item.map_err(engine_err)?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn gc_state(&self) -> Option<GcStateRef> {
        Some(self.gc.clone())
    }

    fn compact_range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<()> {
        self.db.compact_range(start, end);
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        // Data first, then the applied index: a crash between leaves the index behind the
        // data, and replaying the log rewrites what is already there. (RocksDB 7.8's C API
        // cannot flush both families in one call; applies do not run during a flush, which
        // the Raft thread does between them.)
        self.db.flush().map_err(engine_err)?;
        self.db.flush_cf(self.meta()?).map_err(engine_err)
    }

    fn memory_usage(&self) -> Vec<(&'static str, u64)> {
        // Summed over both families (RocksDB's properties are per family).
        let sum = |name: &str| -> u64 {
            let data = self.db.property_int_value(name).ok().flatten();
            let meta = self
                .meta()
                .ok()
                .and_then(|cf| self.db.property_int_value_cf(cf, name).ok().flatten());
            data.unwrap_or(0) + meta.unwrap_or(0)
        };
        vec![
            ("block_cache", self.block_cache.get_usage() as u64),
            ("memtables", sum("rocksdb.cur-size-all-mem-tables")),
            ("table_readers", sum("rocksdb.estimate-table-readers-mem")),
        ]
    }

    fn block_cache_size(&self) -> Option<usize> {
        Some(
            self.block_cache_bytes
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    fn set_block_cache_size(&self, bytes: usize) {
        // The handle shares the cache: setting the clone's capacity sets the cache's.
        self.block_cache.clone().set_capacity(bytes);
        self.block_cache_bytes
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conformance() {
        let dir = std::env::temp_dir().join(format!("duet-rocks-conf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let engine = super::RocksEngine::open(&dir).unwrap();
            super::super::conformance::run(&engine);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn system_keys_live_in_the_meta_family_and_old_databases_still_read() {
        use super::super::{KvEngine, WriteBatch};
        use super::key;
        let dir = tempfile::tempdir().unwrap();
        let version = key::system_key("version");
        let legacy = key::system_key("legacy");
        {
            let engine = super::RocksEngine::open(dir.path()).unwrap();
            let mut b = WriteBatch::new();
            b.put(&version, b"7");
            b.put(b"\x02data", b"row");
            engine.write(&b, false).unwrap();
            // As a build before the meta family wrote it: with the data.
            engine.db.put(&legacy, b"old").unwrap();
            engine.db.put(&version, b"stale").unwrap();
            let meta = engine.meta().unwrap();
            assert_eq!(
                engine.db.get_cf(meta, &version).unwrap(),
                Some(b"7".to_vec())
            );
            assert_eq!(engine.db.get(b"\x02data").unwrap(), Some(b"row".to_vec()));
            engine.flush().unwrap();
        }
        let engine = super::RocksEngine::open(dir.path()).unwrap();
        assert_eq!(engine.get(&version).unwrap(), Some(b"7".to_vec()));
        assert_eq!(engine.get(&legacy).unwrap(), Some(b"old".to_vec()));
        assert_eq!(engine.get(b"\x02data").unwrap(), Some(b"row".to_vec()));
        let mut b = WriteBatch::new();
        b.delete_range(key::system_key(""), b"\x01");
        assert!(engine.write(&b, false).is_err());
    }
}
