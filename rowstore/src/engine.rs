//! The key-value engine seam. The row store talks to storage only through [`KvEngine`];
//! [`rocks::RocksEngine`] is what the server runs on, [`memory::MemoryEngine`] (a `BTreeMap`)
//! serves tests. Only `engine/rocks.rs` imports `rocksdb`.
//!
//! Write batches are an engine-neutral list of operations ([`WriteBatch`]) rather than a
//! per-engine type: the same batch is what a transaction hands to replication as the payload
//! of a log entry, so it has to be plain, serialisable data.

pub mod memory;
pub mod rocks;

use std::sync::Arc;

use crate::error::Result;

/// One mutation inside a [`WriteBatch`], borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp<'a> {
    Put {
        key: &'a [u8],
        value: &'a [u8],
    },
    Delete {
        key: &'a [u8],
    },
    /// Deletes every key in `[start, end)`.
    DeleteRange {
        start: &'a [u8],
        end: &'a [u8],
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Put,
    Delete,
    DeleteRange,
}

/// An atomic group of mutations. Keys and values sit back to back in one buffer (a bulk
/// apply writes each row's bytes once, with no allocation per row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    data: Vec<u8>,
    /// Per operation: its kind and where its first and second byte strings end in `data`
    /// (the first starts where the previous operation ended; `Delete` has an empty second).
    ops: Vec<(OpKind, usize, usize)>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `ops` operations of `bytes` key and value bytes in all.
    pub fn with_capacity(ops: usize, bytes: usize) -> Self {
        Self {
            data: Vec::with_capacity(bytes),
            ops: Vec::with_capacity(ops),
        }
    }

    fn push(&mut self, kind: OpKind, first: &[&[u8]], second: &[&[u8]]) {
        for p in first {
            self.data.extend_from_slice(p);
        }
        let mid = self.data.len();
        for p in second {
            self.data.extend_from_slice(p);
        }
        self.ops.push((kind, mid, self.data.len()));
    }

    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(OpKind::Put, &[key.as_ref()], &[value.as_ref()]);
    }

    /// A put whose key and value are the concatenations of their parts.
    pub fn put_parts(&mut self, key: &[&[u8]], value: &[&[u8]]) {
        self.push(OpKind::Put, key, value);
    }

    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.push(OpKind::Delete, &[key.as_ref()], &[]);
    }

    pub fn delete_range(&mut self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) {
        self.push(OpKind::DeleteRange, &[start.as_ref()], &[end.as_ref()]);
    }

    /// The operations in the order they were added.
    pub fn ops(&self) -> impl Iterator<Item = WriteOp<'_>> + '_ {
        let mut from = 0;
        self.ops.iter().map(move |&(kind, mid, end)| {
            let (a, b) = (&self.data[from..mid], &self.data[mid..end]);
            from = end;
            match kind {
                OpKind::Put => WriteOp::Put { key: a, value: b },
                OpKind::Delete => WriteOp::Delete { key: a },
                OpKind::DeleteRange => WriteOp::DeleteRange { start: a, end: b },
            }
        })
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Receives, for range `i`, its first pair (see [`KvEngine::first_in_each`]).
pub type FirstVisitor<'a> = dyn FnMut(usize, Option<(&[u8], &[u8])>) + 'a;

/// Ordered key-value storage with atomic batches.
pub trait KvEngine: Send + Sync + 'static {
    /// Point read of the latest value.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Applies `batch` atomically; with `sync` the write is on stable storage (fsync'd WAL)
    /// before this returns. Without `sync` it may be lost in a crash (RocksDB skips its WAL)
    /// until the next [`KvEngine::flush`]: the caller keeps another durable copy (the Raft
    /// log) until then.
    fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()>;
    /// Calls `f` on each pair in `[start, end)` in key order until it returns `false`.
    fn scan(&self, start: &[u8], end: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool)
        -> Result<()>;
    /// Calls `f` on each pair in `[start, end)` in reverse key order until it returns `false`.
    fn scan_rev(
        &self,
        start: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>;
    /// Calls `f` with the first pair in `[start, end)` if there is one, where `start` is a
    /// versioned key (user key ++ version) and `end` is at most the end of its user key:
    /// one version of one key, which an engine may find with a prefix filter.
    fn first_of_key(
        &self,
        start: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        self.scan(start, end, &mut |k, v| {
            f(k, v);
            false
        })
    }
    /// [`KvEngine::first_in_each`] where every range is one versioned key's versions, as
    /// for [`KvEngine::first_of_key`]: an engine may use prefix filters for each.
    fn first_of_keys(&self, ranges: &[(Vec<u8>, Vec<u8>)], f: &mut FirstVisitor<'_>) -> Result<()> {
        self.first_in_each(ranges, f)
    }
    /// Flushes memtables: every write before it is on stable storage.
    fn flush(&self) -> Result<()>;
    /// What the engine holds in memory now, by pool (bytes): for /metrics.
    fn memory_usage(&self) -> Vec<(&'static str, u64)> {
        vec![]
    }
    /// The byte budget of the engine's block cache, if it has one.
    fn block_cache_size(&self) -> Option<usize> {
        None
    }
    /// Changes the byte budget of the engine's block cache (nothing without one).
    fn set_block_cache_size(&self, _bytes: usize) {}
    /// MVCC garbage collection's shared state, if this engine drops garbage while it
    /// compacts (see [`crate::gc`]).
    fn gc_state(&self) -> Option<crate::gc::GcStateRef> {
        None
    }
    /// Compacts `[start, end)` now (everything with `None`s), so garbage collection runs
    /// over it at once.
    fn compact_range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<()> {
        let _ = (start, end);
        Ok(())
    }
    /// For each range `i` of `ranges` (in ascending order for speed), calls `f(i, pair)`
    /// with the first pair in `[start, end)`, or `None` if there is none. Engines serve all
    /// ranges with one iterator; this default seeks each range on its own.
    fn first_in_each(&self, ranges: &[(Vec<u8>, Vec<u8>)], f: &mut FirstVisitor<'_>) -> Result<()> {
        for (i, (start, end)) in ranges.iter().enumerate() {
            let mut found = false;
            self.scan(start, end, &mut |k, v| {
                found = true;
                f(i, Some((k, v)));
                false
            })?;
            if !found {
                f(i, None);
            }
        }
        Ok(())
    }
}

/// Shared handle to an engine.
pub type KvEngineRef = Arc<dyn KvEngine>;

#[cfg(test)]
pub(crate) mod conformance {
    //! One suite every engine must pass.
    use super::*;

    pub fn run(engine: &dyn KvEngine) {
        let mut b = WriteBatch::new();
        b.put(b"a", b"1");
        b.put(b"b", b"2");
        b.put(b"c", b"3");
        b.put(b"d", b"4");
        engine.write(&b, true).unwrap();
        assert_eq!(engine.get(b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(engine.get(b"x").unwrap(), None);

        let mut seen = vec![];
        engine
            .scan(b"b", b"d", &mut |k, v| {
                seen.push((k.to_vec(), v.to_vec()));
                true
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![
                (b"b".to_vec(), b"2".to_vec()),
                (b"c".to_vec(), b"3".to_vec())
            ]
        );

        let mut rev = vec![];
        engine
            .scan_rev(b"a", b"d", &mut |k, _| {
                rev.push(k.to_vec());
                true
            })
            .unwrap();
        assert_eq!(rev, vec![b"c".to_vec(), b"b".to_vec(), b"a".to_vec()]);

        let mut first = vec![];
        engine
            .scan(b"a", b"z", &mut |k, _| {
                first.push(k.to_vec());
                false
            })
            .unwrap();
        assert_eq!(first, vec![b"a".to_vec()]);

        let ranges: Vec<(Vec<u8>, Vec<u8>)> = [
            ("a", "b"),
            ("bb", "c"),
            ("c", "z"),
            ("x", "z"),
            ("d", "c"),
            ("ca", "cz"),
            ("cb", "e"),
            ("dd", "zz"),
        ]
        .iter()
        .map(|(s, e)| (s.as_bytes().to_vec(), e.as_bytes().to_vec()))
        .collect();
        let mut firsts = vec![];
        engine
            .first_in_each(&ranges, &mut |i, p| {
                firsts.push((i, p.map(|(k, v)| (k.to_vec(), v.to_vec()))))
            })
            .unwrap();
        assert_eq!(
            firsts,
            vec![
                (0, Some((b"a".to_vec(), b"1".to_vec()))),
                (1, None),
                (2, Some((b"c".to_vec(), b"3".to_vec()))),
                (3, None),
                (4, None),
                (5, None),
                (6, Some((b"d".to_vec(), b"4".to_vec()))),
                (7, None),
            ]
        );

        let mut b = WriteBatch::new();
        b.delete(b"a");
        b.delete_range(b"b", b"d");
        engine.write(&b, false).unwrap();
        let mut rest = vec![];
        engine
            .scan(b"", b"\xff", &mut |k, _| {
                rest.push(k.to_vec());
                true
            })
            .unwrap();
        assert_eq!(rest, vec![b"d".to_vec()]);

        versions(engine);
        // Again from SST files (RocksDB: the prefix bloom filters there, not the memtable's).
        engine.flush().unwrap();
        versions(engine);
    }

    /// `first_of_key` over versioned data keys: the newest version at or below the seek,
    /// never a neighbouring key's.
    fn versions(engine: &dyn KvEngine) {
        use duet_common::codec::key::{Key, DATA_PREFIX};
        use duet_common::codec::memcmp::prefix_end;
        use duet_common::version::Version;
        let key = |s: &str| Key::from_raw([&[DATA_PREFIX][..], s.as_bytes()].concat());
        let (k1, k2, k3) = (key("t1"), key("t2"), key("t3"));
        let mut b = WriteBatch::new();
        for (k, v) in [(&k1, 5), (&k1, 10), (&k3, 7)] {
            b.put(k.at_version(Version::new(v)), format!("{v}").into_bytes());
        }
        engine.write(&b, true).unwrap();
        let first = |k: &Key, at: u64| {
            let mut out = None;
            engine
                .first_of_key(
                    &k.at_version(Version::new(at)),
                    &prefix_end(k.as_bytes()),
                    &mut |_, v| out = Some(String::from_utf8(v.to_vec()).unwrap()),
                )
                .unwrap();
            out
        };
        assert_eq!(first(&k1, 20).as_deref(), Some("10"));
        assert_eq!(first(&k1, 10).as_deref(), Some("10"));
        assert_eq!(first(&k1, 7).as_deref(), Some("5"));
        assert_eq!(first(&k1, 3), None);
        assert_eq!(first(&k2, 100), None);
        assert_eq!(first(&k3, 6), None);
        assert_eq!(first(&k3, 8).as_deref(), Some("7"));

        // Several keys at once: a few (RocksDB: prefix seeks), and many (total order).
        let asks = [
            (&k1, 20, Some("10")),
            (&k2, 100, None),
            (&k3, 6, None),
            (&k3, 8, Some("7")),
        ];
        for copies in [1, 20] {
            let wanted: Vec<_> = (0..copies).flat_map(|_| asks.iter()).collect();
            let ranges: Vec<(Vec<u8>, Vec<u8>)> = wanted
                .iter()
                .map(|(k, at, _)| (k.at_version(Version::new(*at)), prefix_end(k.as_bytes())))
                .collect();
            let mut got = vec![None; ranges.len()];
            engine
                .first_of_keys(&ranges, &mut |i, p| {
                    got[i] = p.map(|(_, v)| String::from_utf8(v.to_vec()).unwrap())
                })
                .unwrap();
            let want: Vec<Option<String>> =
                wanted.iter().map(|(_, _, v)| v.map(String::from)).collect();
            assert_eq!(got, want, "{} keys", ranges.len());
        }
    }
}
