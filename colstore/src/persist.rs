//! Checkpoints of the column store: `manifest.json` (the log index it covers, every table's
//! definition, state and stable chunks) and one Arrow IPC file per stable chunk, the encoded
//! primary key first (`__key`), then the chunk's columns, then the display scales of its
//! unconstrained `numeric` columns (named by the column's position and
//! `duet_common::numeric::SUFFIX`; files written before scales were kept have none).
//!
//! Chunks are immutable and a compaction keeps the chunks its delta does not touch, so a
//! checkpoint writes only the chunks created since the last one; the others keep their
//! files. (Format 1 wrote one file per table with every chunk, so each checkpoint during a
//! bulk load rewrote the whole table.) Format 1 manifests are still read; their tables are
//! written as chunk files at the next checkpoint.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use arrow::ipc::CompressionType;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use datafusion::common::ScalarValue;
use duet_common::batch::table_schema;
use duet_common::numeric::SUFFIX;
use duet_common::{TableDef, TableDefRef};
use serde::{Deserialize, Serialize};

use crate::cache::ColumnCache;
use crate::error::{Error, Result};
use crate::table::{Chunk, ColumnRange, ReplicaState, Stable};

const MANIFEST: &str = "manifest.json";
/// 3: chunk files hold their zone map first and are LZ4-compressed.
const FORMAT: u32 = 3;
/// The oldest manifest format this build reads.
const OLDEST_FORMAT: u32 = 1;
const KEY_FIELD: &str = "__key";

/// One table in the manifest.
#[derive(Debug, Serialize, Deserialize)]
pub struct TableEntry {
    pub def: TableDef,
    /// `available`, `building` or `off`.
    pub state: String,
    pub stable_version: u64,
    /// Format 1: one file with every chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The stable layer's chunk files, in key order.
    #[serde(default)]
    pub chunks: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    index: u64,
    tables: Vec<TableEntry>,
}

/// A table as loaded from a checkpoint.
pub struct LoadedTable {
    pub def: TableDefRef,
    pub state: ReplicaState,
    pub stable_version: u64,
    pub stable: Arc<Stable>,
}

/// A whole checkpoint.
pub struct Loaded {
    pub index: u64,
    pub tables: Vec<LoadedTable>,
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Loads the last checkpoint in `dir` (an empty store if there is none): the chunks'
/// figures, not their arrays, which are read through `cache` when a scan needs them.
/// Chunk files a crash left half-written are removed.
pub fn load(dir: &Path, cache: &Arc<ColumnCache>) -> Result<Loaded> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with(".arrow.tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let path = dir.join(MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Loaded {
                index: 0,
                tables: vec![],
            })
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let m: Manifest = serde_json::from_slice(&text).map_err(|source| Error::Manifest {
        path: path.display().to_string(),
        source,
    })?;
    if !(OLDEST_FORMAT..=FORMAT).contains(&m.format) {
        return Err(Error::Corrupt(format!(
            "{} has format {}, this build reads {OLDEST_FORMAT} to {FORMAT}",
            path.display(),
            m.format
        )));
    }
    let mut tables = Vec::with_capacity(m.tables.len());
    for t in m.tables {
        let def = Arc::new(t.def);
        let state = match t.state.as_str() {
            "off" => ReplicaState::Off,
            "building" => ReplicaState::Building {
                from: m.index,
                progress: 0.0,
            },
            _ => ReplicaState::Available,
        };
        let mut chunks = Vec::new();
        if let Some(f) = &t.file {
            // Kept in memory, not as the chunks' file: it holds all of them.
            chunks.extend(read_chunks(&dir.join(f), &def)?);
        }
        for f in &t.chunks {
            chunks.push(open_chunk(dir, f, &def, cache)?);
        }
        let rows = chunks.iter().map(|c| c.rows()).sum();
        tables.push(LoadedTable {
            def,
            state,
            stable_version: t.stable_version,
            stable: Arc::new(Stable { chunks, rows }),
        });
    }
    Ok(Loaded {
        index: m.index,
        tables,
    })
}

/// Custom metadata of a chunk file whose first record batch is the chunk's zone map (its
/// min and max row) and second its rows: the null count of each column, comma-separated.
const NULLS_KEY: &str = "duet.zone.nulls";
/// … and the number of rows.
const ROWS_KEY: &str = "duet.rows";

/// The chunk in file `name` of `dir`: with a zone map in the file (format 3), only its
/// footer and zone map are read; an older file is read whole and its arrays go to the cache.
fn open_chunk(
    dir: &Path,
    name: &str,
    def: &TableDef,
    cache: &Arc<ColumnCache>,
) -> Result<Arc<Chunk>> {
    let path = dir.join(name);
    let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let mut reader = FileReader::try_new(std::io::BufReader::new(file), None)?;
    let meta = reader.custom_metadata().clone();
    let (Some(nulls), Some(rows)) = (meta.get(NULLS_KEY), meta.get(ROWS_KEY)) else {
        drop(reader);
        let mut chunks = read_chunks(&path, def)?;
        if chunks.len() != 1 {
            return Err(Error::Corrupt(format!(
                "{}: {} chunks",
                path.display(),
                chunks.len()
            )));
        }
        let chunk = chunks.pop().expect("one chunk");
        chunk.written_to(name.to_string(), cache.file(&path, 0, chunk.file_columns()));
        return Ok(chunk);
    };
    let corrupt = |what: &str| Error::Corrupt(format!("{}: {what}", path.display()));
    let rows: usize = rows.parse().map_err(|_| corrupt("row count"))?;
    let nulls: Vec<usize> = if nulls.is_empty() {
        vec![]
    } else {
        nulls
            .split(',')
            .map(|n| n.parse().map_err(|_| corrupt("null counts")))
            .collect::<Result<_>>()?
    };
    let zone = reader.next().ok_or_else(|| corrupt("no zone map"))??;
    let (columns, scaled) = split_fields(&path, &zone)?;
    let schema = table_schema(def, None);
    if columns.len() > schema.fields().len() || nulls.len() != columns.len() || zone.num_rows() != 2
    {
        return Err(corrupt("zone map does not fit the table"));
    }
    let keys = zone
        .column(0)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .ok_or_else(|| corrupt("key column"))?;
    let key_range = (
        Bytes::copy_from_slice(keys.value(0)),
        Bytes::copy_from_slice(keys.value(1)),
    );
    let ranges = columns
        .iter()
        .zip(nulls)
        .map(|(&c, nulls)| {
            let a = zone.column(c);
            Ok(ColumnRange {
                min: ScalarValue::try_from_array(a, 0).map_err(|e| corrupt(&e.to_string()))?,
                max: ScalarValue::try_from_array(a, 1).map_err(|e| corrupt(&e.to_string()))?,
                nulls,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let width = columns.len();
    let fields: Vec<usize> = (0..width).collect();
    let handle = cache.file(&path, 1, 1 + width + scaled.len());
    Ok(Arc::new(Chunk::in_file(
        name.to_string(),
        handle,
        rows,
        key_range,
        Arc::new(schema.project(&fields)?),
        ranges,
        scaled.into_iter().map(|(c, _)| c).collect(),
    )))
}

/// Where a chunk file's fields go: the positions of its columns (after the key), and of its
/// display scales as (column, position) pairs.
type Fields = (Vec<usize>, Vec<(usize, usize)>);

/// The [`Fields`] of a chunk file's record batch.
fn split_fields(path: &Path, batch: &RecordBatch) -> Result<Fields> {
    let mut columns = Vec::new();
    let mut scales = Vec::new();
    for (i, f) in batch.schema().fields().iter().enumerate().skip(1) {
        match f.name().strip_suffix(SUFFIX) {
            Some(c) => {
                let c = c.parse::<usize>().map_err(|_| {
                    Error::Corrupt(format!("{}: field {}", path.display(), f.name()))
                })?;
                scales.push((c, i));
            }
            None => columns.push(i),
        }
    }
    Ok((columns, scales))
}

/// The chunks in an Arrow IPC file written before zone maps were kept in files (formats 1
/// and 2), one per record batch, read whole.
fn read_chunks(path: &Path, def: &TableDef) -> Result<Vec<Arc<Chunk>>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = FileReader::try_new(file, None)?;
    let schema = table_schema(def, None);
    let mut chunks = Vec::new();
    for batch in reader {
        let batch = batch?;
        let keys = batch
            .column(0)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| Error::Corrupt(format!("{}: key column", path.display())))?
            .clone();
        let (positions, scaled) = split_fields(path, &batch)?;
        let columns: Vec<ArrayRef> = positions.iter().map(|&i| batch.column(i).clone()).collect();
        let scales: Vec<(usize, ArrayRef)> = scaled
            .into_iter()
            .map(|(c, i)| (c, batch.column(i).clone()))
            .collect();
        // Chunks written before an ADD COLUMN lack it (they read its `missing` value).
        if columns.len() > schema.fields().len() {
            return Err(Error::Corrupt(format!(
                "{}: {} columns, table {} has {}",
                path.display(),
                columns.len(),
                def.name,
                schema.fields().len()
            )));
        }
        let fields: Vec<usize> = (0..columns.len()).collect();
        let batch = RecordBatch::try_new(Arc::new(schema.project(&fields)?), columns)?;
        chunks.push(Arc::new(Chunk::new(keys, batch)?.with_scales(scales)));
    }
    Ok(chunks)
}

/// The files of `stable`'s chunks (table `def`, generation `gen`, checkpoint `index`),
/// writing the chunks no checkpoint has written yet; those then leave memory for `cache`.
/// Names are never reused, so a file a current manifest names is never overwritten.
pub fn write_chunks(
    dir: &Path,
    def: &TableDef,
    stable: &Stable,
    index: u64,
    gen: u64,
    cache: &Arc<ColumnCache>,
) -> Result<Vec<String>> {
    let mut names = Vec::with_capacity(stable.chunks.len());
    let mut written = Vec::new();
    for (pos, chunk) in stable.chunks.iter().enumerate() {
        if let Some(name) = chunk.file_name() {
            // Before the manifest naming it is written: a file retired by a checkpoint that
            // ran while a build was writing it must stay.
            chunk.keep_file();
            names.push(name.to_string());
            continue;
        }
        let stem = format!("t{}-s{}-{index}-g{gen}-c{pos}", def.id, def.storage_id);
        let mut name = format!("{stem}.arrow");
        let mut n = 0;
        while dir.join(&name).exists() {
            n += 1;
            name = format!("{stem}-{n}.arrow");
        }
        // Known to the cache before the file exists: a checkpoint of another thread (a
        // build writes its chunks outside checkpoints) that finds the file unnamed keeps it
        // while this chunk lives.
        let handle = cache.file(&dir.join(&name), 1, chunk.file_columns());
        write_chunk(&dir.join(&name), chunk)?;
        names.push(name.clone());
        written.push((chunk, name, handle));
    }
    if !written.is_empty() {
        // The new names are durable before a manifest names them.
        sync_dir(dir)?;
    }
    for (chunk, name, handle) in written {
        chunk.written_to(name, handle);
    }
    Ok(names)
}

/// Writes one chunk to `path`, durably, LZ4-compressed: its zone map (a record batch of
/// the smallest and largest key and value of each column), then its rows (keys, columns,
/// display scales).
fn write_chunk(path: &Path, chunk: &Chunk) -> Result<()> {
    let arrays = chunk.arrays()?;
    // Nullable: the zone map of a column holds NULL where the column is all NULL.
    let mut fields = vec![Arc::new(Field::new(KEY_FIELD, DataType::Binary, false))];
    fields.extend(
        chunk
            .schema()
            .fields()
            .iter()
            .map(|f| Arc::new(f.as_ref().clone().with_nullable(true))),
    );
    for (c, a) in chunk.scaled().iter().zip(&arrays.scales) {
        fields.push(Arc::new(Field::new(
            format!("{c}{SUFFIX}"),
            a.data_type().clone(),
            true,
        )));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut zone = vec![Arc::new(BinaryArray::from_iter_values([
        chunk.min_key(),
        chunk.max_key(),
    ])) as ArrayRef];
    for (range, field) in chunk.zone.iter().zip(chunk.schema().fields()) {
        let a = ScalarValue::iter_to_array([range.min.clone(), range.max.clone()])
            .map_err(|source| Error::ZoneMap { source })?;
        zone.push(if a.data_type() == field.data_type() {
            a
        } else {
            arrow::compute::cast(&a, field.data_type())?
        });
    }
    zone.extend(
        arrays
            .scales
            .iter()
            .map(|a| arrow::array::new_null_array(a.data_type(), 2)),
    );
    let mut rows = vec![Arc::new(arrays.keys.clone()) as ArrayRef];
    rows.extend(arrays.columns.iter().cloned());
    rows.extend(arrays.scales.iter().cloned());
    let nulls: Vec<String> = chunk.zone.iter().map(|z| z.nulls.to_string()).collect();

    let tmp = path.with_extension("arrow.tmp");
    let written = (|| {
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let options =
            IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME))?;
        let mut w =
            FileWriter::try_new_with_options(std::io::BufWriter::new(file), &schema, options)?;
        w.write_metadata(NULLS_KEY, nulls.join(","));
        w.write_metadata(ROWS_KEY, chunk.rows().to_string());
        w.write(&RecordBatch::try_new(schema.clone(), zone)?)?;
        w.write(&RecordBatch::try_new(schema.clone(), rows)?)?;
        w.finish()?;
        let file = w
            .into_inner()?
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Atomically replaces the manifest, then removes files it no longer names (a file a live
/// chunk still names goes when that chunk does, see [`ColumnCache::remove_file`]).
pub fn write_manifest(
    dir: &Path,
    index: u64,
    tables: &[TableEntry],
    cache: &ColumnCache,
) -> Result<()> {
    let m = ManifestRef {
        format: FORMAT,
        index,
        tables,
    };
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    let path = dir.join(MANIFEST);
    let bytes = serde_json::to_vec(&m).map_err(|source| Error::Manifest {
        path: path.display().to_string(),
        source,
    })?;
    {
        use std::io::Write;
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    sync_dir(dir)?;
    let keep: std::collections::HashSet<&str> = tables
        .iter()
        .flat_map(|t| t.file.iter().chain(&t.chunks))
        .map(String::as_str)
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.ends_with(".arrow") {
                continue;
            }
            if keep.contains(name.as_str()) {
                cache.keep_file(&e.path());
            } else {
                cache.remove_file(&e.path());
            }
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct ManifestRef<'a> {
    format: u32,
    index: u64,
    tables: &'a [TableEntry],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::tests::{def, key, row};
    use crate::table::{merge, ColumnTable, Part, CHUNK_ROWS};

    fn arrow_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".arrow")
            })
            .count()
    }

    fn entry(t: &ColumnTable, file: Option<String>, chunks: Vec<String>) -> TableEntry {
        TableEntry {
            def: (*t.def).clone(),
            state: "available".into(),
            stable_version: t.stable_version,
            file,
            chunks,
        }
    }

    fn fold(t: &mut ColumnTable, version: u64) {
        let changes = t.snapshot(version).unwrap().changes();
        let stable = merge(&t.def, &t.stable, &changes).unwrap();
        t.fold(Arc::new(stable), version);
    }

    /// The loaded table's chunks hold the same keys, columns and zone maps as `stable`'s.
    fn assert_same(loaded: &Stable, stable: &Stable) {
        assert_eq!(loaded.rows, stable.rows);
        assert_eq!(loaded.chunks.len(), stable.chunks.len());
        for (a, b) in loaded.chunks.iter().zip(&stable.chunks) {
            let (a, b) = (a.arrays().unwrap(), b.arrays().unwrap());
            assert_eq!(a.keys, b.keys);
            assert_eq!(a.columns, b.columns);
            assert_eq!(a.scales, b.scales);
        }
        for (a, b) in loaded.chunks.iter().zip(&stable.chunks) {
            assert_eq!(a.zone, b.zone);
            assert_eq!((a.min_key(), a.max_key()), (b.min_key(), b.max_key()));
            assert_eq!(a.rows(), b.rows());
        }
    }

    /// A cache of 1 byte: every read goes to the file.
    fn no_cache() -> Arc<ColumnCache> {
        ColumnCache::new(1)
    }

    /// The display scales of an unconstrained numeric column survive the delta, a merge
    /// into chunks, a merge of a chunk with new rows, and a checkpoint; rows written
    /// without scales read the fewest decimals that hold them.
    #[test]
    fn display_scales_survive_merges_and_checkpoints() {
        use duet_common::codec::row::encode_row;
        use duet_common::numeric::COMPANION_BASE;
        use duet_common::{Datum, SqlType};
        let dir = tempfile::tempdir().unwrap();
        let cache = no_cache();
        let mut d = def();
        d.columns[1].ty = SqlType::Numeric {
            precision: 38,
            scale: 10,
        };
        let d = Arc::new(d);
        let value = |i: i64| match i % 3 {
            0 => Datum::Numeric(15_000_000_000, (i % 7) as u8),
            1 => Datum::Decimal(25_000_000_000),
            _ => Datum::Null,
        };
        let want = |i: i64| match i % 3 {
            0 => Some((i % 7) as i32),
            1 => Some(1),
            _ => None,
        };
        let mut t = ColumnTable::new(d.clone(), ReplicaState::Available, 0);
        let write = |t: &mut ColumnTable, i: i64, v: u64| {
            t.write(
                key(i),
                v,
                Some(encode_row(&[Datum::Int(i), value(i)]).into()),
            )
        };
        let scales = |stable: &Stable, delta: Option<&ColumnTable>| -> Vec<Option<i32>> {
            let proj = [COMPANION_BASE + 1];
            let mut out = Vec::new();
            let mut take = |b: &RecordBatch| {
                let a = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int32Array>();
                out.extend(a.unwrap().iter());
            };
            for ch in &stable.chunks {
                take(
                    &RecordBatch::try_new(
                        table_schema(&d, Some(&proj)),
                        crate::table::chunk_columns(&d, ch, &proj, false).unwrap().1,
                    )
                    .unwrap(),
                );
            }
            if let Some(t) = delta {
                for b in t
                    .snapshot(u64::MAX)
                    .unwrap()
                    .scan_delta(&proj, 100)
                    .unwrap()
                {
                    take(&b);
                }
            }
            out
        };
        for i in 0..50 {
            write(&mut t, i, 1);
        }
        assert_eq!(
            scales(&t.stable, Some(&t)),
            (0..50).map(want).collect::<Vec<_>>()
        );
        fold(&mut t, 1);
        assert_eq!(
            scales(&t.stable, None),
            (0..50).map(want).collect::<Vec<_>>()
        );
        for i in 50..80 {
            write(&mut t, i, 2);
        }
        fold(&mut t, 2);
        assert_eq!(
            scales(&t.stable, None),
            (0..80).map(want).collect::<Vec<_>>()
        );
        let files = write_chunks(dir.path(), &d, &t.stable, 2, t.gen, &cache).unwrap();
        write_manifest(dir.path(), 2, &[entry(&t, None, files)], &cache).unwrap();
        let loaded = load(dir.path(), &cache).unwrap();
        assert_same(&loaded.tables[0].stable, &t.stable);
        assert_eq!(
            scales(&loaded.tables[0].stable, None),
            (0..80).map(want).collect::<Vec<_>>()
        );
    }

    #[test]
    fn checkpoints_write_only_new_chunks_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = no_cache();
        let d = Arc::new(def());
        let mut t = ColumnTable::new(d.clone(), ReplicaState::Available, 0);
        let full = 2 * CHUNK_ROWS as i64;
        for i in 0..full {
            t.write(key(i), 1, Some(row(i, "a")));
        }
        fold(&mut t, 1);
        let first = write_chunks(dir.path(), &d, &t.stable, 1, t.gen, &cache).unwrap();
        assert_eq!(first.len(), 2);

        // An append after the last key keeps both full chunks and their files.
        for i in full..full + 1000 {
            t.write(key(i), 2, Some(row(i, "b")));
        }
        fold(&mut t, 2);
        let second = write_chunks(dir.path(), &d, &t.stable, 2, t.gen, &cache).unwrap();
        assert_eq!(second.len(), 3);
        assert_eq!(second[..2], first[..]);
        assert_eq!(arrow_files(dir.path()), 3);

        write_manifest(dir.path(), 2, &[entry(&t, None, second.clone())], &cache).unwrap();
        let loaded = load(dir.path(), &cache).unwrap();
        assert_eq!(loaded.index, 2);
        assert_same(&loaded.tables[0].stable, &t.stable);
        // Loaded chunks know their files: checkpointing them again writes nothing.
        let again = write_chunks(dir.path(), &d, &loaded.tables[0].stable, 3, 99, &cache).unwrap();
        assert_eq!(again, second);
        assert_eq!(arrow_files(dir.path()), 3);

        // A change inside the first chunk replaces it; the manifest drops the old file, but
        // only once no chunk holds it: a reader of the loaded chunks still reads them.
        let before = t.stable.clone();
        t.write(key(5), 3, None);
        fold(&mut t, 3);
        let third = write_chunks(dir.path(), &d, &t.stable, 3, t.gen, &cache).unwrap();
        assert_ne!(third[0], second[0]);
        assert_eq!(third[1..], second[1..]);
        write_manifest(dir.path(), 3, &[entry(&t, None, third)], &cache).unwrap();
        assert_eq!(arrow_files(dir.path()), 4);
        assert_same(&loaded.tables[0].stable, &before);
        drop((loaded, before));
        assert_eq!(arrow_files(dir.path()), 3);
        assert_same(
            &load(dir.path(), &cache).unwrap().tables[0].stable,
            &t.stable,
        );
    }

    /// A table of two chunks (65,546 rows) folded at version 1.
    fn two_chunks() -> (Arc<TableDef>, ColumnTable) {
        let d = Arc::new(def());
        let mut t = ColumnTable::new(d.clone(), ReplicaState::Available, 0);
        for i in 0..CHUNK_ROWS as i64 + 10 {
            t.write(key(i), 1, Some(row(i, "a")));
        }
        fold(&mut t, 1);
        assert_eq!(t.stable.chunks.len(), 2);
        (d, t)
    }

    /// Writes `chunks` as the files of formats 1 and 2 were: uncompressed, no zone map, one
    /// record batch (keys, then columns) per chunk.
    fn write_old_file(path: &Path, chunks: &[Arc<Chunk>]) {
        let mut fields = vec![Arc::new(Field::new(KEY_FIELD, DataType::Binary, false))];
        fields.extend(chunks[0].schema().fields().iter().cloned());
        let schema = Arc::new(Schema::new(fields));
        let mut w = FileWriter::try_new(File::create(path).unwrap(), &schema).unwrap();
        for c in chunks {
            let a = c.arrays().unwrap();
            let mut columns = vec![Arc::new(a.keys.clone()) as Arc<dyn Array>];
            columns.extend(a.columns.iter().cloned());
            w.write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
                .unwrap();
        }
        w.finish().unwrap();
    }

    /// Writes a manifest of format `format` naming table `d` with `files`.
    fn write_old_manifest(dir: &Path, format: u32, d: &TableDef, files: serde_json::Value) {
        let mut table = serde_json::json!({
            "def": d,
            "state": "available",
            "stable_version": 1,
        });
        let key = if format == 1 { "file" } else { "chunks" };
        table[key] = files;
        let manifest = serde_json::json!({ "format": format, "index": 1, "tables": [table] });
        std::fs::write(dir.join(MANIFEST), manifest.to_string()).unwrap();
    }

    /// A column LZ4 cannot shrink is stored raw, and Arrow reads it as a slice of the whole
    /// record batch; the cache keeps a copy of its own bytes instead.
    #[test]
    fn a_column_read_from_a_file_holds_only_its_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ColumnCache::new(1 << 30);
        let d = Arc::new(def());
        let mut t = ColumnTable::new(d.clone(), ReplicaState::Available, 0);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t.write(
                key(i),
                1,
                Some(row(i, &format!("{x:016x}{:016x}", x.rotate_left(29)))),
            );
        }
        fold(&mut t, 1);
        let files = write_chunks(dir.path(), &d, &t.stable, 1, t.gen, &cache).unwrap();
        write_manifest(dir.path(), 1, &[entry(&t, None, files)], &cache).unwrap();
        let fresh = ColumnCache::new(1 << 30);
        let loaded = load(dir.path(), &fresh).unwrap();
        let chunk = &loaded.tables[0].stable.chunks[0];
        for part in [Part::Keys, Part::Column(0), Part::Column(1)] {
            let a = chunk.read(&[part]).unwrap().remove(0);
            let own = a.to_data().get_slice_memory_size().unwrap();
            assert!(
                a.get_array_memory_size() <= own + own / 4 + 4096,
                "{part:?}: {} bytes held for {own} of its own",
                a.get_array_memory_size()
            );
        }
        assert_eq!(fresh.figures().file_reads, 3);
    }

    /// A build writes its chunks before a manifest names them; a checkpoint that runs then
    /// retires the files (a live chunk holds them). Once a checkpoint names them again they
    /// stay, even if the table goes before that manifest is written: the manifest on disk
    /// names them.
    #[test]
    fn a_retired_file_a_manifest_names_again_stays() {
        let dir = tempfile::tempdir().unwrap();
        let cache = no_cache();
        let (d, t) = two_chunks();
        let built = write_chunks(dir.path(), &d, &t.stable, 1, 1, &cache).unwrap();
        write_manifest(dir.path(), 1, &[], &cache).unwrap();
        assert_eq!(arrow_files(dir.path()), 2, "live chunks keep their files");
        let named = write_chunks(dir.path(), &d, &t.stable, 2, t.gen, &cache).unwrap();
        assert_eq!(named, built);
        let entry = entry(&t, None, named);
        drop(t);
        write_manifest(dir.path(), 2, &[entry], &cache).unwrap();
        assert_eq!(arrow_files(dir.path()), 2);
        let loaded = load(dir.path(), &cache).unwrap();
        assert_eq!(loaded.tables[0].stable.rows, CHUNK_ROWS + 10);
        assert_eq!(loaded.tables[0].stable.chunks[1].keys().unwrap().len(), 10);
    }

    /// Format 2 chunk files (one record batch of rows, no zone map, uncompressed) load,
    /// and are read through the cache like the others.
    #[test]
    fn a_format_2_checkpoint_loads_and_reads_through_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = no_cache();
        let (d, t) = two_chunks();
        let mut names = Vec::new();
        for (n, c) in t.stable.chunks.iter().enumerate() {
            let name = format!("t1-s2-1-g1-c{n}.arrow");
            write_old_file(&dir.path().join(&name), std::slice::from_ref(c));
            names.push(name);
        }
        write_old_manifest(dir.path(), 2, &d, serde_json::json!(names));
        let loaded = load(dir.path(), &cache).unwrap();
        let stable = &loaded.tables[0].stable;
        assert!(stable.chunks.iter().all(|c| !c.is_resident()));
        assert_same(stable, &t.stable);
        assert!(cache.figures().file_reads > 0);
        // Named by the next checkpoint as they are.
        assert_eq!(
            write_chunks(dir.path(), &d, stable, 2, 1, &cache).unwrap(),
            names
        );
    }

    #[test]
    fn a_passing_read_uses_the_cache_but_keeps_nothing_new() {
        use crate::cache::Caching;
        use crate::table::Part;
        let dir = tempfile::tempdir().unwrap();
        let cache = no_cache();
        let (d, t) = two_chunks();
        let chunks = write_chunks(dir.path(), &d, &t.stable, 2, 1, &cache).unwrap();
        let entry = TableEntry {
            chunks,
            ..entry(&t, None, vec![])
        };
        write_manifest(dir.path(), 2, &[entry], &cache).unwrap();
        let fresh = ColumnCache::new(64 << 20);
        let loaded = load(dir.path(), &fresh).unwrap();
        let chunk = &loaded.tables[0].stable.chunks[0];
        assert!(!chunk.is_resident());
        assert_eq!(fresh.figures().entries, 0);
        let parts = [Part::Keys, Part::Column(1)];
        let passing = chunk.read_as(&parts, Caching::Pass).unwrap();
        assert_eq!(fresh.figures().entries, 0, "a passing read keeps nothing");
        let kept = chunk.read(&parts).unwrap();
        assert_eq!(fresh.figures().entries, 2);
        for (a, b) in passing.iter().zip(&kept) {
            assert_eq!(a.to_data(), b.to_data());
        }
        // What is cached serves a passing read.
        let reads = fresh.figures().file_reads;
        chunk.read_as(&parts, Caching::Pass).unwrap();
        assert_eq!(fresh.figures().file_reads, reads);
    }

    #[test]
    fn a_format_1_checkpoint_loads_and_is_written_again_as_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let cache = no_cache();
        let (d, t) = two_chunks();
        // Format 1: one file, one record batch per chunk.
        write_old_file(&dir.path().join("t1-s2-1-g1.arrow"), &t.stable.chunks);
        write_old_manifest(dir.path(), 1, &d, serde_json::json!("t1-s2-1-g1.arrow"));

        let loaded = load(dir.path(), &cache).unwrap();
        let stable = &loaded.tables[0].stable;
        assert_same(stable, &t.stable);
        let chunks = write_chunks(dir.path(), &d, stable, 2, 1, &cache).unwrap();
        assert_eq!(chunks.len(), 2);
        let entry = TableEntry {
            chunks,
            ..entry(&t, None, vec![])
        };
        write_manifest(dir.path(), 2, &[entry], &cache).unwrap();
        assert_eq!(arrow_files(dir.path()), 2, "the format 1 file is removed");
        assert_same(
            &load(dir.path(), &cache).unwrap().tables[0].stable,
            &t.stable,
        );
    }
}
