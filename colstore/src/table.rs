//! One table's column data: an immutable **stable** layer of Arrow chunks sorted by primary
//! key, and a **delta** layer of versioned row changes newer than the stable layer.
//! Delta rows stay in the row format they were replicated in (slices of the log entry's
//! buffer, no copy), and are decoded straight into Arrow arrays when a scan or a merge
//! reads them.
//!
//! Reading at version `v` ([`ColumnTable::snapshot`]) takes, per key, the newest delta
//! version `<= v` if there is one (a deletion hides the key), else the stable row. The stable
//! layer holds each key's newest version `<= stable_version`, so a read needs
//! `v >= stable_version`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, BinaryArray, BooleanArray};
use arrow::compute::{filter_record_batch, interleave};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use bytes::Bytes;
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::Accumulator;
use duet_common::batch::{datums_to_array, decode_rows, scales_array, table_schema};
use duet_common::numeric::{companion_of, COMPANION_BASE};
use duet_common::types::unknown_scale;
use duet_common::{TableDef, TableDefRef};
use parking_lot::RwLock;

use crate::cache::{Caching, ChunkFile};
use crate::error::{Error, Result};

/// Rows per stable chunk.
pub const CHUNK_ROWS: usize = 65_536;

/// A column's value range within one chunk (a zone map entry).
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnRange {
    /// Smallest and largest non-null value (null scalars when the column is all NULL).
    pub min: ScalarValue,
    pub max: ScalarValue,
    pub nulls: usize,
}

/// The Arrow arrays of a chunk: its keys, columns and display scales.
#[derive(Debug)]
pub struct ChunkArrays {
    pub keys: BinaryArray,
    pub columns: Vec<ArrayRef>,
    /// In the order of [`Chunk::scaled`].
    pub scales: Vec<ArrayRef>,
}

/// A part of a chunk a reader asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Part {
    Keys,
    /// A column of the chunk (`< Chunk::width()`).
    Column(usize),
    /// The display scales of a column (one [`Chunk::has_scales`] says it has).
    Scales(usize),
}

/// A run of rows sorted by key. Its zone map, row count and key range always stay in
/// memory; its arrays are in memory until a checkpoint writes the chunk to its file, then
/// read through the column cache ([`crate::cache`]).
#[derive(Debug)]
pub struct Chunk {
    rows: usize,
    min_key: Bytes,
    max_key: Bytes,
    /// The table's columns when the chunk was written (a later `ADD COLUMN` is filled in at
    /// scan time from the column's `missing` value).
    schema: SchemaRef,
    /// Per column of the chunk: its min/max in this chunk, for pruning scans (issue #4).
    pub zone: Vec<ColumnRange>,
    /// The unconstrained `numeric` columns whose values' display scales the chunk holds.
    /// A column without (a chunk written before scales were kept) reads the fewest
    /// decimals that hold each value.
    scaled: Vec<usize>,
    /// The arrays, until the chunk is in a file.
    resident: RwLock<Option<Arc<ChunkArrays>>>,
    /// The checkpoint file holding this chunk, once one does (chunks are immutable, so a
    /// chunk is written once and later checkpoints name the same file).
    file: OnceLock<(String, Arc<ChunkFile>)>,
}

impl Chunk {
    /// A chunk in memory, with its zone map computed.
    pub fn new(keys: BinaryArray, batch: RecordBatch) -> Result<Chunk> {
        let zone = batch
            .columns()
            .iter()
            .map(zone_of)
            .collect::<Result<Vec<_>>>()?;
        Ok(Chunk {
            rows: keys.len(),
            min_key: Bytes::copy_from_slice(keys.value(0)),
            max_key: Bytes::copy_from_slice(keys.value(keys.len() - 1)),
            schema: batch.schema(),
            zone,
            scaled: Vec::new(),
            resident: RwLock::new(Some(Arc::new(ChunkArrays {
                keys,
                columns: batch.columns().to_vec(),
                scales: Vec::new(),
            }))),
            file: OnceLock::new(),
        })
    }

    /// This chunk with the display scales `scales` ((column, Int32 array) pairs).
    pub fn with_scales(mut self, scales: Vec<(usize, ArrayRef)>) -> Chunk {
        self.scaled = scales.iter().map(|(c, _)| *c).collect();
        let arrays = self
            .resident
            .get_mut()
            .take()
            .expect("a new chunk is in memory");
        let arrays = Arc::into_inner(arrays).expect("a new chunk's arrays are its own");
        *self.resident.get_mut() = Some(Arc::new(ChunkArrays {
            scales: scales.into_iter().map(|(_, a)| a).collect(),
            ..arrays
        }));
        self
    }

    /// A chunk whose arrays are in `file` (named `name` in manifests), known by its
    /// figures only.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn in_file(
        name: String,
        file: Arc<ChunkFile>,
        rows: usize,
        key_range: (Bytes, Bytes),
        schema: SchemaRef,
        zone: Vec<ColumnRange>,
        scaled: Vec<usize>,
    ) -> Chunk {
        Chunk {
            rows,
            min_key: key_range.0,
            max_key: key_range.1,
            schema,
            zone,
            scaled,
            resident: RwLock::new(None),
            file: OnceLock::from((name, file)),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn min_key(&self) -> &[u8] {
        &self.min_key
    }
    pub fn max_key(&self) -> &[u8] {
        &self.max_key
    }
    /// Columns the chunk has (the table's width when it was written).
    pub fn width(&self) -> usize {
        self.schema.fields().len()
    }
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
    /// The columns whose display scales the chunk holds, in file order.
    pub fn scaled(&self) -> &[usize] {
        &self.scaled
    }
    pub fn has_scales(&self, column: usize) -> bool {
        self.scaled.contains(&column)
    }
    /// The name of the file holding the chunk, once written.
    pub fn file_name(&self) -> Option<&str> {
        self.file.get().map(|(n, _)| n.as_str())
    }
    /// Marks the chunk's file as named by the manifest being written: kept even if a
    /// checkpoint that did not name it retired it (see [`ChunkFile::retire`]).
    pub(crate) fn keep_file(&self) {
        if let Some((_, f)) = self.file.get() {
            f.keep();
        }
    }

    /// Whether the chunk's arrays are held in memory outside the cache (not yet written).
    pub fn is_resident(&self) -> bool {
        self.resident.read().is_some()
    }

    /// Where the display scales of column `c` are among the chunk's scales.
    fn scales_position(&self, c: usize) -> Result<usize> {
        self.scaled
            .iter()
            .position(|s| *s == c)
            .ok_or_else(|| Error::Internal(format!("chunk has no scales of column {c}")))
    }

    /// How many columns the chunk's file has: the keys, the columns, the scales.
    pub(crate) fn file_columns(&self) -> usize {
        1 + self.width() + self.scaled.len()
    }

    /// The position of `part` in the chunk's file (the keys, the columns, the scales).
    fn file_column(&self, part: Part) -> Result<u32> {
        let pos = match part {
            Part::Keys => 0,
            Part::Column(c) => 1 + c,
            Part::Scales(c) => 1 + self.width() + self.scales_position(c)?,
        };
        Ok(pos as u32)
    }

    /// The arrays of `parts`, in that order: from memory, or from the file through the
    /// cache (the ones not cached with one read).
    pub fn read(&self, parts: &[Part]) -> Result<Vec<ArrayRef>> {
        self.read_as(parts, Caching::Keep)
    }

    /// [`Self::read`], keeping what it loads from the file in the cache or not.
    pub fn read_as(&self, parts: &[Part], caching: Caching) -> Result<Vec<ArrayRef>> {
        if let Some(a) = self.resident.read().as_ref() {
            return parts
                .iter()
                .map(|p| {
                    Ok(match *p {
                        Part::Keys => Arc::new(a.keys.clone()) as ArrayRef,
                        Part::Column(c) => a.columns[c].clone(),
                        Part::Scales(c) => a.scales[self.scales_position(c)?].clone(),
                    })
                })
                .collect();
        }
        let (_, file) = self
            .file
            .get()
            .ok_or_else(|| Error::Internal("a chunk neither in memory nor in a file".into()))?;
        let columns = parts
            .iter()
            .map(|p| self.file_column(*p))
            .collect::<Result<Vec<u32>>>()?;
        file.read_as(&columns, caching)
    }

    /// Reads `parts` into the cache if the chunk is in a file and they are not cached.
    pub fn prefetch(&self, parts: &[Part]) -> Result<()> {
        if self.resident.read().is_some() {
            return Ok(());
        }
        match self.file.get() {
            Some((_, file)) => {
                let columns = parts
                    .iter()
                    .map(|p| self.file_column(*p))
                    .collect::<Result<Vec<u32>>>()?;
                file.prefetch(&columns)
            }
            None => Ok(()),
        }
    }

    /// The chunk's encoded primary keys.
    pub fn keys(&self) -> Result<BinaryArray> {
        as_keys(&self.read(&[Part::Keys])?[0])
    }

    /// All of the chunk's arrays.
    pub fn arrays(&self) -> Result<Arc<ChunkArrays>> {
        if let Some(a) = self.resident.read().as_ref() {
            return Ok(a.clone());
        }
        let mut parts = vec![Part::Keys];
        parts.extend((0..self.width()).map(Part::Column));
        parts.extend(self.scaled.iter().map(|c| Part::Scales(*c)));
        let mut read = self.read(&parts)?.into_iter();
        let keys = as_keys(&read.next().expect("keys read"))?;
        let columns = read.by_ref().take(self.width()).collect();
        Ok(Arc::new(ChunkArrays {
            keys,
            columns,
            scales: read.collect(),
        }))
    }

    /// Records that the chunk is now in `file` (named `name`): its arrays move from memory
    /// into the cache, which may evict them.
    pub(crate) fn written_to(&self, name: String, file: Arc<ChunkFile>) {
        if self.file.set((name, file)).is_err() {
            return;
        }
        let (_, file) = self.file.get().expect("set above");
        if let Some(a) = self.resident.write().take() {
            // In the file's order: keys, columns, scales.
            let arrays = std::iter::once(Arc::new(a.keys.clone()) as ArrayRef)
                .chain(a.columns.iter().cloned())
                .chain(a.scales.iter().cloned());
            file.warm((0u32..).zip(arrays));
        }
    }
}

/// `a` as the encoded keys of a chunk.
fn as_keys(a: &ArrayRef) -> Result<BinaryArray> {
    a.as_any()
        .downcast_ref::<BinaryArray>()
        .cloned()
        .ok_or_else(|| Error::Corrupt("chunk keys are not binary".into()))
}

/// A column's zone map entry: its min, max and NULL count.
pub fn zone_of(col: &ArrayRef) -> Result<ColumnRange> {
    let zone_map = |source| Error::ZoneMap { source };
    let mut lo = MinAccumulator::try_new(col.data_type()).map_err(zone_map)?;
    let mut hi = MaxAccumulator::try_new(col.data_type()).map_err(zone_map)?;
    lo.update_batch(std::slice::from_ref(col))
        .and_then(|_| hi.update_batch(std::slice::from_ref(col)))
        .map_err(zone_map)?;
    Ok(ColumnRange {
        min: lo.evaluate().map_err(zone_map)?,
        max: hi.evaluate().map_err(zone_map)?,
        nulls: col.null_count(),
    })
}

/// The immutable layer.
#[derive(Debug, Default)]
pub struct Stable {
    pub chunks: Vec<Arc<Chunk>>,
    pub rows: usize,
}

/// Whether a table's column replica can serve reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplicaState {
    /// The table has no column replica (`SET COLUMNAR REPLICA 0`).
    Off,
    /// Being built from a snapshot of the row data at `from`; progress 0..1.
    Building {
        from: u64,
        progress: f64,
    },
    Available,
}

/// Versions of one key in the delta, oldest first: the row in the row format (see
/// `duet_common::codec::row`), or `None` for a deletion.
type Versions = Vec<(u64, Option<Bytes>)>;

/// A key and its newest delta row at some version (`None`: deleted).
pub type Change = (Bytes, Option<Bytes>);

/// A fresh generation number (see [`ColumnTable::gen`]).
pub fn next_gen() -> u64 {
    static GEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    GEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// One table of the column replica.
#[derive(Debug)]
pub struct ColumnTable {
    /// Changes whenever the stable layer or the definition does (part of new chunk files'
    /// names).
    pub gen: u64,
    pub def: TableDefRef,
    pub state: ReplicaState,
    pub stable: Arc<Stable>,
    pub stable_version: u64,
    pub delta: BTreeMap<Bytes, Versions>,
    /// Number of versions in `delta`.
    pub delta_versions: usize,
}

/// What a scan reads: the stable chunks and the delta resolved at the read version.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    pub def: TableDefRef,
    pub stable: Arc<Stable>,
    /// Keys with a delta version `<= v`, ascending, and that version's row (`None`: deleted).
    pub delta_keys: Arc<Vec<Bytes>>,
    pub delta_rows: Arc<Vec<Option<Bytes>>>,
}

impl ColumnTable {
    pub fn new(def: TableDefRef, state: ReplicaState, stable_version: u64) -> Self {
        Self {
            gen: next_gen(),
            def,
            state,
            stable: Arc::new(Stable::default()),
            stable_version,
            delta: BTreeMap::new(),
            delta_versions: 0,
        }
    }

    /// Records the change of `key` at `version` (versions arrive in increasing order):
    /// `row` in the row format, or `None` for a deletion.
    pub fn write(&mut self, key: Bytes, version: u64, row: Option<Bytes>) {
        self.delta.entry(key).or_default().push((version, row));
        self.delta_versions += 1;
    }

    /// The data a read at `version` sees. `None` if the stable layer is already past it.
    pub fn snapshot(&self, version: u64) -> Option<TableSnapshot> {
        if version < self.stable_version {
            return None;
        }
        let mut keys = Vec::new();
        let mut rows = Vec::new();
        for (k, versions) in &self.delta {
            // Versions are ascending: the last one <= version wins.
            let newest = versions.iter().rev().find(|(v, _)| *v <= version);
            if let Some((_, row)) = newest {
                keys.push(k.clone());
                rows.push(row.clone());
            }
        }
        Some(TableSnapshot {
            def: self.def.clone(),
            stable: self.stable.clone(),
            delta_keys: Arc::new(keys),
            delta_rows: Arc::new(rows),
        })
    }

    /// Drops the delta versions `<= upto` that a new stable layer (built at `upto`) now holds.
    pub fn fold(&mut self, stable: Arc<Stable>, upto: u64) {
        self.gen = next_gen();
        self.stable = stable;
        self.stable_version = upto;
        let mut removed = 0;
        self.delta.retain(|_, versions| {
            let before = versions.len();
            versions.retain(|(v, _)| *v > upto);
            removed += before - versions.len();
            !versions.is_empty()
        });
        self.delta_versions -= removed;
    }
}

/// How an output column of a chunk is made.
enum Out {
    /// Read part `n` of the parts asked for.
    Part(usize),
    /// The display scales of decimal column (part `n`), for a chunk that kept none.
    ScalesOf(usize),
    /// A column the chunk predates: its `missing` value, or the scales of it.
    Missing(usize),
}

/// The parts of `chunk` that output columns `projection` (and the keys, if `with_keys`)
/// need, and how each output column is made of them; the keys, if asked for, are part 0.
fn plan_columns(chunk: &Chunk, projection: &[usize], with_keys: bool) -> (Vec<Part>, Vec<Out>) {
    let mut parts: Vec<Part> = Vec::new();
    let mut part = |p: Part| match parts.iter().position(|q| *q == p) {
        Some(n) => n,
        None => {
            parts.push(p);
            parts.len() - 1
        }
    };
    if with_keys {
        part(Part::Keys);
    }
    let outs: Vec<Out> = projection
        .iter()
        .map(|&c| match companion_of(c) {
            Some(v) if chunk.has_scales(v) => Out::Part(part(Part::Scales(v))),
            Some(v) if v < chunk.width() => Out::ScalesOf(part(Part::Column(v))),
            Some(_) => Out::Missing(c),
            None if c < chunk.width() => Out::Part(part(Part::Column(c))),
            None => Out::Missing(c),
        })
        .collect();
    (parts, outs)
}

/// Reads what output columns `projection` of `chunk` need into the column cache, if the
/// chunk is in a file and they are not cached (a scan's read-ahead).
pub(crate) fn prefetch_columns(chunk: &Chunk, projection: &[usize]) -> Result<()> {
    let (parts, _) = plan_columns(chunk, projection, false);
    chunk.prefetch(&parts)
}

/// Output columns `projection` of `chunk` for a table now defined as `def` (a companion
/// position reads the display scales of its column), and the chunk's keys if `with_keys`:
/// the parts needed are read at once (one file read for those not cached).
pub(crate) fn chunk_columns(
    def: &TableDef,
    chunk: &Chunk,
    projection: &[usize],
    with_keys: bool,
) -> Result<(Option<BinaryArray>, Vec<ArrayRef>)> {
    chunk_columns_as(def, chunk, projection, with_keys, Caching::Keep)
}

/// [`chunk_columns`], keeping what it reads from the file in the cache or not.
fn chunk_columns_as(
    def: &TableDef,
    chunk: &Chunk,
    projection: &[usize],
    with_keys: bool,
    caching: Caching,
) -> Result<(Option<BinaryArray>, Vec<ArrayRef>)> {
    let (parts, outs) = plan_columns(chunk, projection, with_keys);
    let keys_at = with_keys.then_some(0);
    let read = chunk.read_as(&parts, caching)?;
    let keys = keys_at.map(|n| as_keys(&read[n])).transpose()?;
    let columns = outs
        .into_iter()
        .map(|o| match o {
            Out::Part(n) => Ok(read[n].clone()),
            Out::ScalesOf(n) => {
                let values = read[n]
                    .as_any()
                    .downcast_ref::<arrow::array::Decimal128Array>()
                    .ok_or_else(|| {
                        Error::Internal("scales of a column that is not a decimal".into())
                    })?;
                let scales: arrow::array::Int32Array = values
                    .iter()
                    .map(|v| v.map(|v| i32::from(unknown_scale(v))))
                    .collect();
                Ok(Arc::new(scales) as ArrayRef)
            }
            Out::Missing(c) => match companion_of(c) {
                Some(v) => Ok(Arc::new(scales_array(std::iter::repeat_n(
                    &def.columns[v].missing,
                    chunk.rows(),
                ))) as ArrayRef),
                None => datums_to_array(
                    &def.columns[c].ty,
                    std::iter::repeat_n(&def.columns[c].missing, chunk.rows()),
                )
                .map_err(Error::from),
            },
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((keys, columns))
}

impl TableSnapshot {
    /// Arrow schema of the projected columns.
    pub fn schema(&self, projection: &[usize]) -> SchemaRef {
        table_schema(&self.def, Some(projection))
    }

    /// Delta keys that fall inside `chunk`'s key range, as a range of indexes.
    fn delta_range(&self, chunk: &Chunk) -> std::ops::Range<usize> {
        let keys = &self.delta_keys;
        let lo = keys.partition_point(|k| &k[..] < chunk.min_key());
        let hi = keys.partition_point(|k| &k[..] <= chunk.max_key());
        lo..hi
    }

    /// Chunk `i` at the read version, projected: the chunk as it is when no delta key falls
    /// in its range, else filtered by a merge of its sorted keys with the delta's.
    pub fn scan_chunk(&self, i: usize, projection: &[usize]) -> Result<RecordBatch> {
        let (batch, visible) = self.chunk_with_visibility(i, projection)?;
        Ok(match visible {
            Some(v) => filter_record_batch(&batch, &v)?,
            None => batch,
        })
    }

    /// Chunk `i`, projected, unfiltered, and which of its rows the read version sees: `None`
    /// when all of them (no delta key falls in the chunk's key range, the common case),
    /// else the mask from one merge of the chunk's sorted keys with the delta's.
    pub fn chunk_with_visibility(
        &self,
        i: usize,
        projection: &[usize],
    ) -> Result<(RecordBatch, Option<BooleanArray>)> {
        self.chunk_with_visibility_as(i, projection, Caching::Keep)
    }

    /// [`Self::chunk_with_visibility`], keeping what it reads from the chunk's file in the
    /// column cache or not (a one-off reader: [`Caching::Pass`]).
    pub fn chunk_with_visibility_as(
        &self,
        i: usize,
        projection: &[usize],
        caching: Caching,
    ) -> Result<(RecordBatch, Option<BooleanArray>)> {
        let chunk = &self.stable.chunks[i];
        let range = self.delta_range(chunk);
        let (keys, columns) =
            chunk_columns_as(&self.def, chunk, projection, !range.is_empty(), caching)?;
        let batch = RecordBatch::try_new_with_options(
            self.schema(projection),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(chunk.rows())),
        )?;
        let Some(keys) = keys else {
            return Ok((batch, None));
        };
        let shadow = &self.delta_keys[range];
        let mut keep = Vec::with_capacity(chunk.rows());
        let mut d = 0;
        for r in 0..chunk.rows() {
            let k = keys.value(r);
            while d < shadow.len() && &shadow[d][..] < k {
                d += 1;
            }
            keep.push(!(d < shadow.len() && &shadow[d][..] == k));
        }
        Ok((batch, Some(BooleanArray::from(keep))))
    }

    /// The delta's live rows at the read version, projected, in batches of `batch_rows`.
    pub fn scan_delta(&self, projection: &[usize], batch_rows: usize) -> Result<Vec<RecordBatch>> {
        let live: Vec<&[u8]> = self.delta_rows.iter().flatten().map(|r| &r[..]).collect();
        live.chunks(batch_rows.max(1))
            .map(|rows| {
                let columns = decode_rows(&self.def, projection, rows.iter().copied())?;
                Ok(RecordBatch::try_new_with_options(
                    self.schema(projection),
                    columns,
                    &RecordBatchOptions::new().with_row_count(Some(rows.len())),
                )?)
            })
            .collect()
    }

    /// The delta at the read version as `(key, newest row or None if deleted)`, key order.
    pub fn changes(&self) -> Vec<Change> {
        self.delta_keys
            .iter()
            .cloned()
            .zip(self.delta_rows.iter().cloned())
            .collect()
    }

    /// Live rows at the read version: stable rows minus shadowed ones, plus delta rows.
    pub fn live_rows(&self) -> Result<usize> {
        let shadowed: usize = self
            .stable
            .chunks
            .iter()
            .map(|c| {
                let r = self.delta_range(c);
                if r.is_empty() {
                    return Ok(0);
                }
                let keys = c.keys()?;
                let mut n = 0;
                let mut d = r.start;
                for i in 0..c.rows() {
                    let k = keys.value(i);
                    while d < r.end && &self.delta_keys[d][..] < k {
                        d += 1;
                    }
                    if d < r.end && &self.delta_keys[d][..] == k {
                        n += 1;
                    }
                }
                Ok(n)
            })
            .sum::<Result<usize>>()?;
        Ok(self.stable.rows - shadowed + self.delta_rows.iter().filter(|r| r.is_some()).count())
    }
}

/// Builds chunks from `(key, row in the row format)` pairs sorted by key.
pub fn chunks_from_rows<K: AsRef<[u8]>, R: AsRef<[u8]>>(
    def: &TableDef,
    rows: &[(K, R)],
) -> Result<Vec<Arc<Chunk>>> {
    let source = Source::of_rows(def, rows.iter().map(|(k, r)| (k.as_ref(), r.as_ref())))?;
    let runs: Vec<(usize, usize)> = (0..rows.len()).map(|r| (0, r)).collect();
    runs.chunks(CHUNK_ROWS)
        .map(|part| {
            Ok(Arc::new(chunk_from_sources(
                def,
                std::slice::from_ref(&source),
                part,
            )?))
        })
        .collect()
}

/// Rows a merge copies from: an existing chunk, or the delta's live rows, as arrays of
/// the table's current width.
struct Source {
    keys: ArrayRef,
    columns: Vec<ArrayRef>,
    /// The display scales of the table's unconstrained numeric columns, in the order of
    /// `TableDef::scaled_columns`.
    scales: Vec<ArrayRef>,
}

impl Source {
    /// `(key, row in the row format)` pairs as arrays; a row written before an `ADD
    /// COLUMN` lacks it and reads the column's `missing` value.
    fn of_rows<'a>(
        def: &TableDef,
        rows: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Source> {
        let (keys, rows): (Vec<&[u8]>, Vec<&[u8]>) = rows.unzip();
        let width = def.columns.len();
        let mut all: Vec<usize> = (0..width).collect();
        all.extend(def.scaled_columns().iter().map(|c| COMPANION_BASE + c));
        let mut columns = decode_rows(def, &all, rows.into_iter())?;
        let scales = columns.split_off(width);
        Ok(Source {
            keys: Arc::new(BinaryArray::from_iter_values(keys)),
            columns,
            scales,
        })
    }

    /// A source of no rows with the same columns (what a merge keeps of a chunk it has
    /// copied everything from: the positions of sources must not move).
    fn emptied(&self) -> Source {
        let empty = |a: &ArrayRef| arrow::array::new_empty_array(a.data_type());
        Source {
            keys: empty(&self.keys),
            columns: self.columns.iter().map(empty).collect(),
            scales: self.scales.iter().map(empty).collect(),
        }
    }

    fn of_chunk(def: &TableDef, chunk: &Chunk) -> Result<Source> {
        let width = def.columns.len();
        let mut all: Vec<usize> = (0..width).collect();
        all.extend(def.scaled_columns().iter().map(|c| COMPANION_BASE + c));
        let (keys, mut columns) = chunk_columns(def, chunk, &all, true)?;
        let scales = columns.split_off(width);
        Ok(Source {
            keys: Arc::new(keys.expect("keys asked for")),
            columns,
            scales,
        })
    }
}

/// Builds one chunk from `rows`, each `(source, row)`, in that order: a slice when they are
/// one run of one source, else one `interleave` per column.
fn chunk_from_sources(
    def: &TableDef,
    sources: &[Source],
    rows: &[(usize, usize)],
) -> Result<Chunk> {
    let (first_src, first_row) = rows[0];
    let one_run = rows
        .iter()
        .enumerate()
        .all(|(i, &(s, r))| s == first_src && r == first_row + i);
    let pick = |arrays: Vec<&dyn Array>| -> Result<ArrayRef> {
        if one_run {
            Ok(arrays[first_src].slice(first_row, rows.len()))
        } else {
            Ok(interleave(&arrays, rows)?)
        }
    };
    let keys = pick(sources.iter().map(|s| s.keys.as_ref()).collect())?;
    let keys = keys
        .as_any()
        .downcast_ref::<BinaryArray>()
        .ok_or_else(|| Error::Internal("chunk keys are not binary".into()))?
        .clone();
    let columns = (0..def.columns.len())
        .map(|c| pick(sources.iter().map(|s| s.columns[c].as_ref()).collect()))
        .collect::<Result<Vec<_>>>()?;
    let scales = def
        .scaled_columns()
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            Ok((
                c,
                pick(sources.iter().map(|s| s.scales[i].as_ref()).collect())?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let batch = RecordBatch::try_new_with_options(
        table_schema(def, None),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )?;
    Ok(Chunk::new(keys, batch)?.with_scales(scales))
}

/// A new stable layer: `stable` with the changes of `delta` (key-sorted, each key's newest
/// version, `None` deleted) merged in. Chunks no change falls into are kept as they are;
/// the others, and runs of new keys between chunks, are rewritten; a small trailing chunk is
/// merged with what follows so appends do not leave many tiny chunks.
///
/// Vectorized: the delta's live rows become one set of arrays, the merge itself only lists
/// `(source, row)` pairs in key order, and each new chunk is copied column by column from
/// the old chunks and the delta arrays (Arrow's `interleave`); no row is materialised.
pub fn merge(def: &TableDef, stable: &Stable, delta: &[Change]) -> Result<Stable> {
    // Source 0: the delta's live rows; `delta_row[j]` is change j's row in it.
    let mut delta_row = Vec::with_capacity(delta.len());
    let mut live = 0;
    for (_, r) in delta {
        delta_row.push(live);
        live += usize::from(r.is_some());
    }
    let live_rows = delta
        .iter()
        .filter_map(|(k, r)| r.as_deref().map(|r| (&k[..], r)));
    let mut sources = vec![Source::of_rows(def, live_rows)?];
    let from_delta = |j: usize| (0, delta_row[j]);

    let mut out: Vec<Arc<Chunk>> = Vec::with_capacity(stable.chunks.len() + 1);
    let mut pending: Vec<(usize, usize)> = Vec::new();
    // Makes chunks of the pending rows: all of them, or (`all` false) only full ones, the
    // rest staying pending. The chunks no pending row comes from any more are let go, so a
    // merge holds the delta and a few chunks, not every chunk the delta touches.
    let emit = |out: &mut Vec<Arc<Chunk>>,
                sources: &mut Vec<Source>,
                pending: &mut Vec<(usize, usize)>,
                all: bool|
     -> Result<()> {
        if pending.is_empty() || (!all && pending.len() < CHUNK_ROWS) {
            return Ok(());
        }
        if let Some(last) = out.pop_if(|last| last.rows() < CHUNK_ROWS / 2) {
            sources.push(Source::of_chunk(def, &last)?);
            let s = sources.len() - 1;
            pending.splice(0..0, (0..last.rows()).map(|r| (s, r)));
        }
        let take = if all {
            pending.len()
        } else {
            pending.len() / CHUNK_ROWS * CHUNK_ROWS
        };
        for part in pending[..take].chunks(CHUNK_ROWS) {
            out.push(Arc::new(chunk_from_sources(def, sources, part)?));
        }
        pending.drain(..take);
        let mut used = vec![false; sources.len()];
        for (s, _) in pending.iter() {
            used[*s] = true;
        }
        for (n, source) in sources.iter_mut().enumerate().skip(1) {
            if !used[n] && !source.keys.is_empty() {
                *source = source.emptied();
            }
        }
        Ok(())
    };
    let mut d = 0;
    for chunk in &stable.chunks {
        while d < delta.len() && &delta[d].0[..] < chunk.min_key() {
            if delta[d].1.is_some() {
                pending.push(from_delta(d));
            }
            d += 1;
        }
        let start = d;
        while d < delta.len() && &delta[d].0[..] <= chunk.max_key() {
            d += 1;
        }
        if start == d {
            emit(&mut out, &mut sources, &mut pending, true)?;
            out.push(chunk.clone());
            continue;
        }
        let source = Source::of_chunk(def, chunk)?;
        let keys = as_keys(&source.keys)?;
        sources.push(source);
        let s = sources.len() - 1;
        let (mut i, mut j) = (0, start);
        while i < chunk.rows() || j < d {
            let take_old = j >= d || (i < chunk.rows() && keys.value(i) < &delta[j].0[..]);
            if take_old {
                pending.push((s, i));
                i += 1;
                continue;
            }
            if i < chunk.rows() && keys.value(i) == &delta[j].0[..] {
                i += 1;
            }
            if delta[j].1.is_some() {
                pending.push(from_delta(j));
            }
            j += 1;
        }
        emit(&mut out, &mut sources, &mut pending, false)?;
    }
    for (j, (_, row)) in delta.iter().enumerate().skip(d) {
        if row.is_some() {
            pending.push(from_delta(j));
        }
    }
    emit(&mut out, &mut sources, &mut pending, true)?;
    let rows = out.iter().map(|c| c.rows()).sum();
    Ok(Stable { chunks: out, rows })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use duet_common::batch::array_to_datums;
    use duet_common::catalog::{ColumnDef, CATALOG_FORMAT};
    use duet_common::codec::memcmp::encode_tuple;
    use duet_common::codec::row::encode_row;
    use duet_common::{Datum, SqlType};

    pub(crate) fn def() -> TableDef {
        let col = |n: &str, ty| ColumnDef {
            name: n.into(),
            ty,
            nullable: true,
            default_expr: None,
            missing: Datum::Null,
        };
        TableDef {
            format: CATALOG_FORMAT,
            id: 1,
            name: "t".into(),
            storage_id: 2,
            columns: vec![col("k", SqlType::Int64), col("v", SqlType::Text)],
            primary_key: vec![0],
            pk_name: "t_pkey".into(),
            indexes: vec![],
            columnar: true,
            sequence: None,
            checks: vec![],
            foreign_keys: vec![],
            view: None,
        }
    }

    pub(crate) fn key(i: i64) -> Bytes {
        encode_tuple(&[Datum::Int(i)]).into()
    }

    pub(crate) fn row(i: i64, v: &str) -> Bytes {
        encode_row(&[Datum::Int(i), Datum::Text(v.into())]).into()
    }

    /// Every live row at `version`, sorted by key, via the scan path.
    fn read(t: &ColumnTable, version: u64) -> Vec<(i64, String)> {
        let snap = t.snapshot(version).expect("readable");
        let proj = [0, 1];
        let mut batches: Vec<RecordBatch> = (0..snap.stable.chunks.len())
            .map(|i| snap.scan_chunk(i, &proj).unwrap())
            .collect();
        batches.extend(snap.scan_delta(&proj, 3).unwrap());
        let mut out = Vec::new();
        for b in batches {
            let k = array_to_datums(b.column(0).as_ref(), &SqlType::Int64).unwrap();
            let v = array_to_datums(b.column(1).as_ref(), &SqlType::Text).unwrap();
            for (k, v) in k.into_iter().zip(v) {
                match (k, v) {
                    (Datum::Int(k), Datum::Text(v)) => out.push((k, v)),
                    other => panic!("{other:?}"),
                }
            }
        }
        out.sort();
        assert_eq!(snap.live_rows().unwrap(), out.len());
        out
    }

    #[test]
    fn reads_see_the_newest_version_at_or_below_theirs_before_and_after_folding() {
        let d = Arc::new(def());
        let mut t = ColumnTable::new(d.clone(), ReplicaState::Available, 0);
        for i in 0..10 {
            t.write(key(i), 1, Some(row(i, "a")));
        }
        t.write(key(3), 2, Some(row(3, "b")));
        t.write(key(4), 2, None);
        t.write(key(20), 3, Some(row(20, "c")));
        let at1: Vec<_> = (0..10).map(|i| (i, "a".to_string())).collect();
        assert_eq!(read(&t, 1), at1);
        let mut at3 = at1.clone();
        at3[3].1 = "b".into();
        at3.remove(4);
        at3.push((20, "c".into()));
        assert_eq!(read(&t, 3), at3);

        // Fold versions <= 2 into the stable layer; reads at >= 2 are unchanged.
        let changes = t.snapshot(2).unwrap().changes();
        let stable = merge(&d, &t.stable, &changes).unwrap();
        t.fold(Arc::new(stable), 2);
        assert_eq!(t.delta_versions, 1);
        assert_eq!(read(&t, 3), at3);
        assert!(t.snapshot(1).is_none(), "version 1 was folded away");

        // Later changes land in the existing chunk's range: the chunk is filtered on read,
        // then rewritten by the next fold.
        t.write(key(0), 4, None);
        t.write(key(5), 4, Some(row(5, "d")));
        let mut at4 = at3.clone();
        at4.remove(0);
        at4.iter_mut().find(|r| r.0 == 5).unwrap().1 = "d".into();
        assert_eq!(read(&t, 4), at4);
        let changes = t.snapshot(4).unwrap().changes();
        let stable = merge(&d, &t.stable, &changes).unwrap();
        t.fold(Arc::new(stable), 4);
        assert_eq!(t.delta_versions, 0);
        assert_eq!(read(&t, 4), at4);
        assert_eq!(t.stable.rows, at4.len());
        // Each chunk knows its columns' ranges.
        let zone = &t.stable.chunks[0].zone;
        assert_eq!(zone[0].min, ScalarValue::Int64(Some(1)));
        assert_eq!(zone[0].max, ScalarValue::Int64(Some(20)));
        assert_eq!(zone[1].min, ScalarValue::Utf8(Some("a".into())));
        assert_eq!(zone[1].max, ScalarValue::Utf8(Some("d".into())));
        assert_eq!(zone[1].nulls, 0);
    }

    #[test]
    fn added_columns_read_their_missing_value_from_old_chunks() {
        let d = Arc::new(def());
        let mut t = ColumnTable::new(d.clone(), ReplicaState::Available, 0);
        t.write(key(1), 1, Some(row(1, "a")));
        let changes = t.snapshot(1).unwrap().changes();
        t.fold(Arc::new(merge(&d, &t.stable, &changes).unwrap()), 1);
        let mut d2 = def();
        d2.columns.push(ColumnDef {
            name: "x".into(),
            ty: SqlType::Int32,
            nullable: true,
            default_expr: None,
            missing: Datum::Int(7),
        });
        t.def = Arc::new(d2);
        let snap = t.snapshot(1).unwrap();
        let b = snap.scan_chunk(0, &[2]).unwrap();
        assert_eq!(
            array_to_datums(b.column(0).as_ref(), &SqlType::Int32).unwrap(),
            vec![Datum::Int(7)]
        );
        // A delta row replicated before the ADD COLUMN (two columns) reads it as missing,
        // when scanned and when merged; a row written after has its own value.
        t.write(key(2), 2, Some(row(2, "b")));
        let with_x = encode_row(&[Datum::Int(3), Datum::Text("c".into()), Datum::Null]);
        t.write(key(3), 2, Some(with_x.into()));
        let snap = t.snapshot(2).unwrap();
        let b = &snap.scan_delta(&[2, 0], 10).unwrap()[0];
        assert_eq!(
            array_to_datums(b.column(0).as_ref(), &SqlType::Int32).unwrap(),
            vec![Datum::Int(7), Datum::Null]
        );
        let d2 = t.def.clone();
        t.fold(Arc::new(merge(&d2, &t.stable, &snap.changes()).unwrap()), 2);
        let b = t.snapshot(2).unwrap().scan_chunk(0, &[2]).unwrap();
        assert_eq!(
            array_to_datums(b.column(0).as_ref(), &SqlType::Int32).unwrap(),
            vec![Datum::Int(7), Datum::Int(7), Datum::Null]
        );
    }

    /// Folds of random inserts, updates and deletes over several chunks equal a plain map of
    /// the same changes, and leave sorted, non-overlapping chunks.
    #[test]
    fn merges_over_many_chunks_equal_a_model() {
        let d = Arc::new(def());
        let mut t = ColumnTable::new(d.clone(), ReplicaState::Available, 0);
        let mut model = BTreeMap::new();
        for i in (0..150_000i64).step_by(2) {
            t.write(key(i), 1, Some(row(i, "init")));
            model.insert(i, "init".to_string());
        }
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut version = 1;
        for round in 0..6 {
            let changes = t.snapshot(version).unwrap().changes();
            t.fold(Arc::new(merge(&d, &t.stable, &changes).unwrap()), version);
            assert_eq!(
                read(&t, version),
                model
                    .iter()
                    .map(|(k, v)| (*k, v.clone()))
                    .collect::<Vec<_>>(),
                "after fold {round}"
            );
            let chunks = &t.stable.chunks;
            for (i, c) in chunks.iter().enumerate() {
                assert!(c.rows() > 0 && c.rows() <= CHUNK_ROWS);
                let keys = c.keys().unwrap();
                assert!((1..c.rows()).all(|r| keys.value(r - 1) < keys.value(r)));
                if i > 0 {
                    assert!(chunks[i - 1].max_key() < c.min_key());
                }
            }
            assert_eq!(t.stable.rows, model.len());
            version += 1;
            // Round 3 deletes most of the keys below 100 000 (small chunks get merged).
            let ops = if round == 3 { 60_000 } else { 4_000 };
            for _ in 0..ops {
                let k = next(if round == 3 { 100_000 } else { 200_000 }) as i64;
                let op = if round == 3 { 0 } else { next(3) };
                if op == 0 {
                    t.write(key(k), version, None);
                    model.remove(&k);
                } else {
                    let v = format!("r{round}-{k}");
                    t.write(key(k), version, Some(row(k, &v)));
                    model.insert(k, v);
                }
                if next(500) == 0 {
                    version += 1;
                }
            }
        }
    }
}
