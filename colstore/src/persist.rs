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

use arrow::array::{Array, BinaryArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use duet_common::batch::table_schema;
use duet_common::numeric::SUFFIX;
use duet_common::{TableDef, TableDefRef};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::table::{Chunk, ReplicaState, Stable};

const MANIFEST: &str = "manifest.json";
const FORMAT: u32 = 2;
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

/// Loads the last checkpoint in `dir` (an empty store if there is none).
pub fn load(dir: &Path) -> Result<Loaded> {
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
            // Not remembered as the chunks' file: it holds all of them.
            chunks.extend(read_chunks(&dir.join(f), &def)?);
        }
        for f in &t.chunks {
            for chunk in read_chunks(&dir.join(f), &def)? {
                let _ = chunk.file.set(f.clone());
                chunks.push(chunk);
            }
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

/// The chunks in an Arrow IPC file, one per record batch.
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
        let file_schema = batch.schema();
        let mut columns = Vec::new();
        let mut scales = Vec::new();
        for (f, a) in file_schema.fields().iter().zip(batch.columns()).skip(1) {
            match f.name().strip_suffix(SUFFIX) {
                Some(c) => {
                    let c = c.parse::<usize>().map_err(|_| {
                        Error::Corrupt(format!("{}: field {}", path.display(), f.name()))
                    })?;
                    scales.push((c, a.clone()));
                }
                None => columns.push(a.clone()),
            }
        }
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
/// writing the chunks no checkpoint has written yet. Names are never reused, so a file a
/// current manifest names is never overwritten.
pub fn write_chunks(
    dir: &Path,
    def: &TableDef,
    stable: &Stable,
    index: u64,
    gen: u64,
) -> Result<Vec<String>> {
    let mut names = Vec::with_capacity(stable.chunks.len());
    let mut wrote = false;
    for (pos, chunk) in stable.chunks.iter().enumerate() {
        if let Some(name) = chunk.file.get() {
            names.push(name.clone());
            continue;
        }
        let stem = format!("t{}-s{}-{index}-g{gen}-c{pos}", def.id, def.storage_id);
        let mut name = format!("{stem}.arrow");
        let mut n = 0;
        while dir.join(&name).exists() {
            n += 1;
            name = format!("{stem}-{n}.arrow");
        }
        write_chunk(&dir.join(&name), chunk)?;
        names.push(chunk.file.get_or_init(|| name).clone());
        wrote = true;
    }
    if wrote {
        // The new names are durable before a manifest names them.
        sync_dir(dir)?;
    }
    Ok(names)
}

/// Writes one chunk (its keys, then its columns) to `path`, durably.
fn write_chunk(path: &Path, chunk: &Chunk) -> Result<()> {
    let mut fields = vec![Arc::new(Field::new(KEY_FIELD, DataType::Binary, false))];
    fields.extend(chunk.batch.schema().fields().iter().cloned());
    for (c, a) in &chunk.scales {
        fields.push(Arc::new(Field::new(
            format!("{c}{SUFFIX}"),
            a.data_type().clone(),
            true,
        )));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut columns = vec![Arc::new(chunk.keys.clone()) as Arc<dyn Array>];
    columns.extend(chunk.batch.columns().iter().cloned());
    columns.extend(chunk.scales.iter().map(|(_, a)| a.clone()));
    let tmp = path.with_extension("arrow.tmp");
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = FileWriter::try_new(file, &schema)?;
    w.write(&RecordBatch::try_new(schema, columns)?)?;
    w.finish()?;
    let file = w.into_inner()?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// Atomically replaces the manifest, then removes files it no longer names.
pub fn write_manifest(dir: &Path, index: u64, tables: &[TableEntry]) -> Result<()> {
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
            if name.ends_with(".arrow") && !keep.contains(name.as_str()) {
                let _ = std::fs::remove_file(e.path());
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
    use crate::table::{merge, ColumnTable, CHUNK_ROWS};

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

    /// The loaded table's chunks hold the same keys and columns as `stable`'s.
    fn assert_same(loaded: &Stable, stable: &Stable) {
        assert_eq!(loaded.rows, stable.rows);
        assert_eq!(loaded.chunks.len(), stable.chunks.len());
        for (a, b) in loaded.chunks.iter().zip(&stable.chunks) {
            assert_eq!(a.keys, b.keys);
            assert_eq!(a.batch.columns(), b.batch.columns());
        }
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
                        vec![crate::table::chunk_column(&d, ch, proj[0]).unwrap()],
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
        let files = write_chunks(dir.path(), &d, &t.stable, 2, t.gen).unwrap();
        write_manifest(dir.path(), 2, &[entry(&t, None, files)]).unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_same(&loaded.tables[0].stable, &t.stable);
        assert_eq!(
            scales(&loaded.tables[0].stable, None),
            (0..80).map(want).collect::<Vec<_>>()
        );
    }

    #[test]
    fn checkpoints_write_only_new_chunks_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(def());
        let mut t = ColumnTable::new(d.clone(), ReplicaState::Available, 0);
        let full = 2 * CHUNK_ROWS as i64;
        for i in 0..full {
            t.write(key(i), 1, Some(row(i, "a")));
        }
        fold(&mut t, 1);
        let first = write_chunks(dir.path(), &d, &t.stable, 1, t.gen).unwrap();
        assert_eq!(first.len(), 2);

        // An append after the last key keeps both full chunks and their files.
        for i in full..full + 1000 {
            t.write(key(i), 2, Some(row(i, "b")));
        }
        fold(&mut t, 2);
        let second = write_chunks(dir.path(), &d, &t.stable, 2, t.gen).unwrap();
        assert_eq!(second.len(), 3);
        assert_eq!(second[..2], first[..]);
        assert_eq!(arrow_files(dir.path()), 3);

        write_manifest(dir.path(), 2, &[entry(&t, None, second.clone())]).unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.index, 2);
        assert_same(&loaded.tables[0].stable, &t.stable);
        // Loaded chunks know their files: checkpointing them again writes nothing.
        let again = write_chunks(dir.path(), &d, &loaded.tables[0].stable, 3, 99).unwrap();
        assert_eq!(again, second);
        assert_eq!(arrow_files(dir.path()), 3);

        // A change inside the first chunk replaces it; the manifest drops the old file.
        t.write(key(5), 3, None);
        fold(&mut t, 3);
        let third = write_chunks(dir.path(), &d, &t.stable, 3, t.gen).unwrap();
        assert_ne!(third[0], second[0]);
        assert_eq!(third[1..], second[1..]);
        write_manifest(dir.path(), 3, &[entry(&t, None, third)]).unwrap();
        assert_eq!(arrow_files(dir.path()), 3);
        assert_same(&load(dir.path()).unwrap().tables[0].stable, &t.stable);
    }

    #[test]
    fn a_format_1_checkpoint_loads_and_is_written_again_as_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(def());
        let mut t = ColumnTable::new(d.clone(), ReplicaState::Available, 0);
        for i in 0..CHUNK_ROWS as i64 + 10 {
            t.write(key(i), 1, Some(row(i, "a")));
        }
        fold(&mut t, 1);
        assert_eq!(t.stable.chunks.len(), 2);
        // Format 1: one file, one record batch per chunk.
        let schema = {
            let mut fields = vec![Arc::new(Field::new(KEY_FIELD, DataType::Binary, false))];
            fields.extend(t.stable.chunks[0].batch.schema().fields().iter().cloned());
            Arc::new(Schema::new(fields))
        };
        let file = File::create(dir.path().join("t1-s2-1-g1.arrow")).unwrap();
        let mut w = FileWriter::try_new(file, &schema).unwrap();
        for c in &t.stable.chunks {
            let mut columns = vec![Arc::new(c.keys.clone()) as Arc<dyn Array>];
            columns.extend(c.batch.columns().iter().cloned());
            w.write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
                .unwrap();
        }
        w.finish().unwrap();
        let manifest = serde_json::json!({
            "format": 1,
            "index": 1,
            "tables": [{
                "def": &*d,
                "state": "available",
                "stable_version": 1,
                "file": "t1-s2-1-g1.arrow",
            }],
        });
        std::fs::write(dir.path().join(MANIFEST), manifest.to_string()).unwrap();

        let loaded = load(dir.path()).unwrap();
        let stable = &loaded.tables[0].stable;
        assert_same(stable, &t.stable);
        let chunks = write_chunks(dir.path(), &d, stable, 2, 1).unwrap();
        assert_eq!(chunks.len(), 2);
        let entry = TableEntry {
            chunks,
            ..entry(&t, None, vec![])
        };
        write_manifest(dir.path(), 2, &[entry]).unwrap();
        assert_eq!(arrow_files(dir.path()), 2, "the format 1 file is removed");
        assert_same(&load(dir.path()).unwrap().tables[0].stable, &t.stable);
    }
}
