//! [`Store`]: MVCC over a [`KvEngine`], the catalog, and the commit path.
//!
//! Commit protocol (today, single node): under the commit lock, check every written key for a
//! version newer than the transaction's snapshot (first committer wins), take the next
//! version, write the batch with `sync` (durable before the client hears COMMIT), then publish
//! the version to readers. Readers never lock: a read at version `v` only looks at versions
//! `<= v`, and `v` is only published after its batch is fully written.
//!
//! TODO(duet): the commit lock is a global section; issue #3 replaces it with Raft proposals
//! (group commit) and per-key latches.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::catalog::{Catalog, ColumnDef, IndexDef, TableDef, TableDefRef, CATALOG_FORMAT};
use crate::codec::key::{self, Key, LIVE, TOMBSTONE};
use crate::codec::memcmp::{self, prefix_end};
use crate::codec::row;
use crate::engine::{KvEngineRef, WriteBatch};
use crate::error::{Error, Result};
use crate::mvcc::Version;
use crate::types::{Datum, Row};

/// Visits `(key, value)` pairs; returns `Ok(false)` to stop.
pub type PairVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// Writes of one transaction: user key → new payload (`None` deletes).
pub type WriteSet = BTreeMap<Key, Option<Vec<u8>>>;

const VERSION_KEY: &str = "version";
const NEXT_ID_KEY: &str = "next_id";
const NEXT_ROWID_KEY: &str = "next_rowid";

/// Options of the row store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// fsync every commit before acknowledging it. Turning this off loses the last commits
    /// on a power failure (not on a process crash).
    pub sync_commits: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { sync_commits: true }
    }
}

/// The row store of one node.
pub struct Store {
    engine: KvEngineRef,
    options: StoreOptions,
    /// Highest version whose batch is fully written; new snapshots read at it.
    visible: AtomicU64,
    commit_lock: Mutex<()>,
    catalog: RwLock<Catalog>,
    next_id: AtomicU32,
    next_rowid: AtomicU64,
}

/// Shared handle to the store.
pub type StoreRef = Arc<Store>;

fn read_u64(engine: &KvEngineRef, name: &str) -> Result<Option<u64>> {
    match engine.get(&key::system_key(name))? {
        None => Ok(None),
        Some(b) => {
            Ok(Some(u64::from_be_bytes(b.as_slice().try_into().map_err(
                |_| Error::Corrupt(format!("system key {name}")),
            )?)))
        }
    }
}

impl Store {
    /// Opens the store on `engine`, loading the catalog and counters.
    pub fn open(engine: KvEngineRef, options: StoreOptions) -> Result<StoreRef> {
        let version = read_u64(&engine, VERSION_KEY)?.unwrap_or(0);
        let next_id = read_u64(&engine, NEXT_ID_KEY)?.unwrap_or(1) as u32;
        let next_rowid = read_u64(&engine, NEXT_ROWID_KEY)?.unwrap_or(1);
        let store = Store {
            engine,
            options,
            visible: AtomicU64::new(version),
            commit_lock: Mutex::new(()),
            catalog: RwLock::new(Catalog::default()),
            next_id: AtomicU32::new(next_id),
            next_rowid: AtomicU64::new(next_rowid),
        };
        let (start, end) = key::catalog_range();
        let mut catalog = Catalog::default();
        store.scan_versions(&start, &end, Version::MAX, &mut |_, payload| {
            match TableDef::from_bytes(payload) {
                Ok(def) => {
                    catalog.put(Arc::new(def));
                    Ok(true)
                }
                Err(e) => Err(e),
            }
        })?;
        *store.catalog.write() = catalog;
        tracing::info!(
            version,
            tables = store.catalog.read().tables().count(),
            "row store opened"
        );
        Ok(Arc::new(store))
    }

    /// The newest published version.
    pub fn current_version(&self) -> Version {
        Version::new(self.visible.load(Ordering::Acquire))
    }

    /// Flushes the engine (clean shutdown).
    pub fn flush(&self) -> Result<()> {
        self.engine.flush()
    }

    /// The table called `name`, as of now.
    pub fn table(&self, name: &str) -> Option<TableDefRef> {
        self.catalog.read().get(name)
    }

    /// All tables.
    pub fn tables(&self) -> Vec<TableDefRef> {
        let mut t: Vec<_> = self.catalog.read().tables().cloned().collect();
        t.sort_by(|a, b| a.name.cmp(&b.name));
        t
    }

    /// Allocates a fresh hidden row id.
    pub fn alloc_rowid(&self) -> i64 {
        self.next_rowid.fetch_add(1, Ordering::Relaxed) as i64
    }

    fn alloc_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    // ---------------------------------------------------------------- MVCC reads

    /// Newest payload of `key` at `version` (`None` if absent or deleted).
    pub fn get(&self, key: &Key, version: Version) -> Result<Option<Vec<u8>>> {
        let mut found = None;
        let start = key.at_version(version);
        let end = prefix_end(key.as_bytes());
        self.engine.scan(&start, &end, &mut |_, v| {
            if v.first() == Some(&LIVE) {
                found = Some(v[1..].to_vec());
            }
            false
        })?;
        Ok(found)
    }

    /// Newest committed version of `key` at all (for conflict checks).
    fn latest_version(&self, key: &Key) -> Result<Option<Version>> {
        let mut found = None;
        let start = key.at_version(Version::MAX);
        let end = prefix_end(key.as_bytes());
        self.engine.scan(&start, &end, &mut |k, _| {
            found = key::split_version(k).map(|(_, v)| v);
            false
        })?;
        Ok(found)
    }

    /// Visits, in key order, the newest live payload `<= version` of every user key in
    /// `[start, end)`. `f` returns `Ok(false)` to stop.
    pub fn scan_versions(
        &self,
        start: &[u8],
        end: &[u8],
        version: Version,
        f: &mut PairVisitor<'_>,
    ) -> Result<()> {
        let mut decided: Vec<u8> = Vec::new();
        let mut have_decided = false;
        let mut err = None;
        self.engine.scan(start, end, &mut |k, v| {
            let Some((user, ver)) = key::split_version(k) else {
                err = Some(Error::Corrupt("data key without version".into()));
                return false;
            };
            if have_decided && user == decided.as_slice() {
                return true;
            }
            if ver > version {
                return true;
            }
            decided.clear();
            decided.extend_from_slice(user);
            have_decided = true;
            if v.first() == Some(&TOMBSTONE) {
                return true;
            }
            match f(user, &v[1..]) {
                Ok(go) => go,
                Err(e) => {
                    err = Some(e);
                    false
                }
            }
        })?;
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    // ---------------------------------------------------------------- commit

    /// Commits `writes` read at `snapshot` (`None`: no conflict check, used by DDL under the
    /// commit lock). `extra` carries unversioned operations; `catalog` the definitions this
    /// batch creates (`Ok`) or drops (`Err(name)`).
    fn commit_locked(
        &self,
        snapshot: Option<Version>,
        writes: &WriteSet,
        extra: WriteBatch,
        catalog: Vec<std::result::Result<TableDefRef, (u32, String)>>,
    ) -> Result<Version> {
        if let Some(snap) = snapshot {
            for k in writes.keys() {
                if let Some(v) = self.latest_version(k)? {
                    if v > snap {
                        return Err(Error::WriteConflict);
                    }
                }
            }
        }
        let version = self.current_version().next();
        let mut batch = extra;
        for (k, v) in writes {
            let mut value = Vec::with_capacity(v.as_ref().map_or(1, |p| p.len() + 1));
            match v {
                Some(p) => {
                    value.push(LIVE);
                    value.extend_from_slice(p);
                }
                None => value.push(TOMBSTONE),
            }
            batch.put(k.at_version(version), value);
        }
        for c in &catalog {
            match c {
                Ok(def) => {
                    let mut value = vec![LIVE];
                    value.extend_from_slice(&def.to_bytes()?);
                    batch.put(key::catalog_key(def.id).at_version(version), value);
                }
                Err((id, _)) => {
                    batch.put(key::catalog_key(*id).at_version(version), vec![TOMBSTONE])
                }
            }
        }
        batch.put(
            key::system_key(VERSION_KEY),
            version.get().to_be_bytes().to_vec(),
        );
        batch.put(
            key::system_key(NEXT_ID_KEY),
            (self.next_id.load(Ordering::Relaxed) as u64)
                .to_be_bytes()
                .to_vec(),
        );
        batch.put(
            key::system_key(NEXT_ROWID_KEY),
            self.next_rowid
                .load(Ordering::Relaxed)
                .to_be_bytes()
                .to_vec(),
        );
        self.engine.write(&batch, self.options.sync_commits)?;
        if !catalog.is_empty() {
            let mut cat = self.catalog.write();
            for c in catalog {
                match c {
                    Ok(def) => {
                        // A rename would leave the old name behind; we never rename.
                        cat.put(def)
                    }
                    Err((_, name)) => {
                        cat.remove(&name);
                    }
                }
            }
        }
        self.visible.store(version.get(), Ordering::Release);
        Ok(version)
    }

    /// Commits a transaction's writes (see [`crate::txn::Transaction::commit`]).
    pub(crate) fn commit_txn(&self, snapshot: Version, writes: &WriteSet) -> Result<Version> {
        let _guard = self.commit_lock.lock();
        self.commit_locked(Some(snapshot), writes, WriteBatch::new(), vec![])
    }

    // ---------------------------------------------------------------- DDL

    /// Creates a table. `def.id`, `storage_id` and index ids are assigned here.
    pub fn create_table(&self, mut def: TableDef) -> Result<TableDefRef> {
        let _guard = self.commit_lock.lock();
        if self.table(&def.name).is_some() {
            return Err(Error::TableExists(def.name));
        }
        def.format = CATALOG_FORMAT;
        def.id = self.alloc_id();
        def.storage_id = self.alloc_id();
        for idx in &mut def.indexes {
            idx.id = self.alloc_id();
        }
        let def = Arc::new(def);
        self.commit_locked(
            None,
            &WriteSet::new(),
            WriteBatch::new(),
            vec![Ok(def.clone())],
        )?;
        Ok(def)
    }

    /// Drops a table and its data.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        let _guard = self.commit_lock.lock();
        let def = self
            .table(name)
            .ok_or_else(|| Error::TableNotFound(name.into()))?;
        let mut extra = WriteBatch::new();
        let prefix = key::storage_prefix(def.storage_id);
        extra.delete_range(prefix.clone(), prefix_end(&prefix));
        self.commit_locked(
            None,
            &WriteSet::new(),
            extra,
            vec![Err((def.id, def.name.clone()))],
        )?;
        Ok(())
    }

    /// Removes every row: the table moves to a new, empty storage id.
    pub fn truncate(&self, name: &str) -> Result<()> {
        let _guard = self.commit_lock.lock();
        let def = self
            .table(name)
            .ok_or_else(|| Error::TableNotFound(name.into()))?;
        let mut new = (*def).clone();
        new.storage_id = self.alloc_id();
        let mut extra = WriteBatch::new();
        let prefix = key::storage_prefix(def.storage_id);
        extra.delete_range(prefix.clone(), prefix_end(&prefix));
        self.commit_locked(None, &WriteSet::new(), extra, vec![Ok(Arc::new(new))])?;
        Ok(())
    }

    /// Adds a column; existing rows read `column.missing`.
    pub fn add_column(&self, table: &str, column: ColumnDef) -> Result<()> {
        let _guard = self.commit_lock.lock();
        let def = self
            .table(table)
            .ok_or_else(|| Error::TableNotFound(table.into()))?;
        if def.column_index(&column.name).is_some() {
            return Err(Error::ColumnExists {
                table: table.into(),
                column: column.name,
            });
        }
        if !column.nullable && column.missing.is_null() && self.has_rows(&def)? {
            return Err(Error::NotNullViolation {
                table: table.into(),
                column: column.name,
            });
        }
        let mut new = (*def).clone();
        new.columns.push(column);
        self.commit_locked(
            None,
            &WriteSet::new(),
            WriteBatch::new(),
            vec![Ok(Arc::new(new))],
        )?;
        Ok(())
    }

    fn has_rows(&self, def: &TableDef) -> Result<bool> {
        let prefix = key::record_prefix(def.storage_id);
        let mut any = false;
        self.scan_versions(
            &prefix,
            &prefix_end(&prefix),
            self.current_version(),
            &mut |_, _| {
                any = true;
                Ok(false)
            },
        )?;
        Ok(any)
    }

    /// All live rows of `def` at the current version, with their user keys.
    fn all_rows(&self, def: &TableDef) -> Result<Vec<(Vec<u8>, Row)>> {
        let prefix = key::record_prefix(def.storage_id);
        let types = def.types();
        let mut rows = Vec::new();
        self.scan_versions(
            &prefix,
            &prefix_end(&prefix),
            self.current_version(),
            &mut |k, v| {
                let r = row::decode_row(v, &types, &|i| def.columns[i].missing.clone())?;
                rows.push((k[prefix.len()..].to_vec(), r));
                Ok(true)
            },
        )?;
        Ok(rows)
    }

    fn index_entries(
        def: &TableDef,
        idx: &IndexDef,
        rows: &[(Vec<u8>, Row)],
        out: &mut WriteSet,
    ) -> Result<()> {
        for (pk, r) in rows {
            let (tuple, has_null) = def.index_tuple(idx, r);
            let unique_key = idx.unique && !has_null;
            let k = key::index_key(
                def.storage_id,
                idx.id,
                &tuple,
                if unique_key { None } else { Some(pk) },
            );
            if unique_key && out.contains_key(&k) {
                return Err(Error::UniqueViolation {
                    constraint: idx.name.clone(),
                    detail: "duplicate values exist".into(),
                });
            }
            out.insert(k, Some(pk.clone()));
        }
        Ok(())
    }

    /// Creates an index and fills it from the existing rows.
    pub fn create_index(
        &self,
        table: &str,
        mut index: IndexDef,
        if_not_exists: bool,
    ) -> Result<()> {
        let _guard = self.commit_lock.lock();
        let def = self
            .table(table)
            .ok_or_else(|| Error::TableNotFound(table.into()))?;
        if self.catalog.read().table_of_index(&index.name).is_some()
            || self.table(&index.name).is_some()
        {
            if if_not_exists {
                return Ok(());
            }
            return Err(Error::TableExists(index.name));
        }
        index.id = self.alloc_id();
        let rows = self.all_rows(&def)?;
        let mut writes = WriteSet::new();
        Self::index_entries(&def, &index, &rows, &mut writes)?;
        let mut new = (*def).clone();
        new.indexes.push(index);
        self.commit_locked(None, &writes, WriteBatch::new(), vec![Ok(Arc::new(new))])?;
        Ok(())
    }

    /// Drops index `name`. Returns false if no such index.
    pub fn drop_index(&self, name: &str) -> Result<bool> {
        let _guard = self.commit_lock.lock();
        let Some(def) = self.catalog.read().table_of_index(name) else {
            return Ok(false);
        };
        let mut new = (*def).clone();
        let Some(pos) = new.indexes.iter().position(|i| i.name == name) else {
            return Ok(false);
        };
        let idx = new.indexes.remove(pos);
        let mut extra = WriteBatch::new();
        let prefix = key::index_prefix(def.storage_id, idx.id);
        extra.delete_range(prefix.clone(), prefix_end(&prefix));
        self.commit_locked(None, &WriteSet::new(), extra, vec![Ok(Arc::new(new))])?;
        Ok(true)
    }

    /// Gives a hidden-rowid table a primary key: rows are rewritten under their new keys in a
    /// fresh storage id (indexes rebuilt), after checking NOT NULL and uniqueness.
    pub fn add_primary_key(&self, table: &str, columns: Vec<usize>, name: String) -> Result<()> {
        let _guard = self.commit_lock.lock();
        let def = self
            .table(table)
            .ok_or_else(|| Error::TableNotFound(table.into()))?;
        if !def.primary_key.is_empty() {
            return Err(Error::InvalidDefinition(format!(
                "multiple primary keys for table \"{table}\" are not allowed"
            )));
        }
        let rows = self.all_rows(&def)?;
        let mut new = (*def).clone();
        new.primary_key = columns.clone();
        new.pk_name = name.clone();
        for &c in &columns {
            new.columns[c].nullable = false;
        }
        new.storage_id = self.alloc_id();
        let mut writes = WriteSet::new();
        let mut rekeyed = Vec::with_capacity(rows.len());
        for (_, r) in rows {
            for &c in &columns {
                if r[c].is_null() {
                    return Err(Error::NotNullViolation {
                        table: table.into(),
                        column: new.columns[c].name.clone(),
                    });
                }
            }
            let pk = memcmp::encode_tuple(&new.pk_of(&r));
            let k = key::record_key(new.storage_id, &pk);
            if writes.contains_key(&k) {
                return Err(Error::UniqueViolation {
                    constraint: name,
                    detail: "duplicate values exist".into(),
                });
            }
            writes.insert(k, Some(row::encode_row(&r)));
            rekeyed.push((pk, r));
        }
        for idx in &new.indexes {
            Self::index_entries(&new, idx, &rekeyed, &mut writes)?;
        }
        let mut extra = WriteBatch::new();
        let prefix = key::storage_prefix(def.storage_id);
        extra.delete_range(prefix.clone(), prefix_end(&prefix));
        self.commit_locked(None, &writes, extra, vec![Ok(Arc::new(new))])?;
        Ok(())
    }

    /// Decodes a stored row of `def`; columns the row predates read their `missing` value.
    pub fn decode_row(def: &TableDef, payload: &[u8]) -> Result<Row> {
        row::decode_row(payload, &def.types(), &|i| def.columns[i].missing.clone())
    }

    /// Decodes a record's user key (after the record prefix) into key datums.
    pub fn decode_pk(def: &TableDef, encoded: &[u8]) -> Result<Vec<Datum>> {
        memcmp::decode_tuple(encoded, &def.pk_types())
    }
}
