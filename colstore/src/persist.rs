//! Checkpoints of the column store: `manifest.json` (the log index it covers, every table's
//! definition, state and stable file) and one Arrow IPC file per table's stable layer, each
//! chunk one record batch, the encoded primary key first (`__key`).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, BinaryArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use duet_rowstore::batch::table_schema;
use duet_rowstore::{TableDef, TableDefRef};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::table::{chunk_column, Chunk, ReplicaState, Stable};

const MANIFEST: &str = "manifest.json";
const FORMAT: u32 = 1;
const KEY_FIELD: &str = "__key";

/// One table in the manifest.
#[derive(Debug, Serialize, Deserialize)]
pub struct TableEntry {
    pub def: TableDef,
    /// `available`, `building` or `off`.
    pub state: String,
    pub stable_version: u64,
    pub file: Option<String>,
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
    pub file: Option<String>,
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
    let m: Manifest = serde_json::from_slice(&text)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
    if m.format != FORMAT {
        return Err(Error::Corrupt(format!(
            "{} has format {}, this build reads {FORMAT}",
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
        let stable = match &t.file {
            Some(f) => Arc::new(read_stable(&dir.join(f), &def)?),
            None => Arc::new(Stable::default()),
        };
        tables.push(LoadedTable {
            def,
            state,
            stable_version: t.stable_version,
            stable,
            file: t.file,
        });
    }
    Ok(Loaded {
        index: m.index,
        tables,
    })
}

fn read_stable(path: &Path, def: &TableDef) -> Result<Stable> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = FileReader::try_new(file, None)?;
    let schema = table_schema(def, None);
    let mut chunks = Vec::new();
    let mut rows = 0;
    for batch in reader {
        let batch = batch?;
        let keys = batch
            .column(0)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| Error::Corrupt(format!("{}: key column", path.display())))?
            .clone();
        let columns = batch.columns()[1..].to_vec();
        // Older files may lack columns added since (they read their `missing` value).
        if columns.len() > schema.fields().len() {
            return Err(Error::Corrupt(format!(
                "{}: {} columns, table {} has {}",
                path.display(),
                columns.len(),
                def.name,
                schema.fields().len()
            )));
        }
        rows += keys.len();
        let fields: Vec<usize> = (0..columns.len()).collect();
        let batch = RecordBatch::try_new(Arc::new(schema.project(&fields)?), columns)?;
        chunks.push(Arc::new(Chunk::new(keys, batch)?));
    }
    Ok(Stable { chunks, rows })
}

/// Writes `stable` of `def` (table generation `gen`) to a new file; returns its name. Names
/// are never reused, so the file a current manifest names is never overwritten.
pub fn write_stable(
    dir: &Path,
    def: &TableDef,
    stable: &Stable,
    index: u64,
    gen: u64,
) -> Result<String> {
    let name = format!("t{}-s{}-{index}-g{gen}.arrow", def.id, def.storage_id);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    let base = table_schema(def, None);
    let mut fields = vec![Arc::new(Field::new(KEY_FIELD, DataType::Binary, false))];
    fields.extend(base.fields().iter().cloned());
    let schema = Arc::new(Schema::new(fields));
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = FileWriter::try_new(file, &schema)?;
    for chunk in &stable.chunks {
        let mut columns = vec![Arc::new(chunk.keys.clone()) as Arc<dyn Array>];
        for c in 0..def.columns.len() {
            columns.push(chunk_column(def, chunk, c)?);
        }
        w.write(&RecordBatch::try_new(schema.clone(), columns)?)?;
    }
    w.finish()?;
    let file = w.into_inner()?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(name)
}

/// Atomically replaces the manifest, then removes files it no longer names.
pub fn write_manifest(dir: &Path, index: u64, tables: &[TableEntry]) -> Result<()> {
    let m = ManifestRef {
        format: FORMAT,
        index,
        tables,
    };
    let bytes = serde_json::to_vec(&m).map_err(|e| Error::Internal(e.to_string()))?;
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    let path = dir.join(MANIFEST);
    {
        use std::io::Write;
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    sync_dir(dir)?;
    let keep: std::collections::HashSet<&str> =
        tables.iter().filter_map(|t| t.file.as_deref()).collect();
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
