//! RocksDB implementation of [`KvEngine`]: the engine the server runs on.

use std::path::Path;

use rocksdb::{Direction, IteratorMode, Options, ReadOptions, WriteOptions, DB};

use super::{FirstVisitor, KvEngine, WriteBatch, WriteOp};
use crate::error::{Error, Result};

/// A RocksDB database in one directory, default column family.
pub struct RocksEngine {
    db: DB,
}

fn engine_err(e: rocksdb::Error) -> Error {
    Error::Engine(e.into_string())
}

impl RocksEngine {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        let db = DB::open(&opts, path).map_err(engine_err)?;
        Ok(Self { db })
    }

    fn bounded(start: &[u8], end: &[u8]) -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(start.to_vec());
        ro.set_iterate_upper_bound(end.to_vec());
        ro
    }
}

impl KvEngine for RocksEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(key).map_err(engine_err)
    }

    fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            match op {
                WriteOp::Put { key, value } => wb.put(key, value),
                WriteOp::Delete { key } => wb.delete(key),
                WriteOp::DeleteRange { start, end } => wb.delete_range(start, end),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
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
        let mut it = self.db.raw_iterator();
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

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(engine_err)
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
}
