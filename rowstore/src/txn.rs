//! Transactions. Reads see a snapshot plus the transaction's own writes (buffered here until
//! commit). Two isolation levels, as PostgreSQL has them:
//! - READ COMMITTED (the default): each statement reads a fresh snapshot. A row about to be
//!   written is locked first; if a transaction that committed after the statement's snapshot
//!   changed it, the statement fails with [`Error::StatementRestart`] and the SQL layer runs
//!   it again on a new snapshot, keeping its locks (so it acts on the newest version).
//! - REPEATABLE READ (snapshot isolation): one snapshot for the whole transaction; the same
//!   situation is a serialization failure ([`Error::WriteConflict`], 40001).
//!
//! Row locks are held until the transaction ends (see `lock.rs`). Commit still checks every
//! written key against the last snapshot (first committer wins), which covers the keys that
//! are not locked: index entries and the rows of large inserts.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::store::{PairVisitor, SnapshotPin, StoreRef, WriteSet};
use duet_common::catalog::{IndexDef, TableDef};
use duet_common::codec::key::{self, Key};
use duet_common::codec::memcmp::{self, prefix_end};
use duet_common::codec::row;
use duet_common::types::{Datum, Row};
use duet_common::version::Version;

/// A consistent read position: a snapshot version plus the (frozen) writes of the
/// transaction it came from. Cheap to clone; scans hold one for as long as they stream.
#[derive(Clone)]
pub struct ReadView {
    store: StoreRef,
    snapshot: Version,
    writes: Arc<WriteSet>,
    /// Keeps the snapshot registered as in use while any clone of the view lives.
    _pin: Arc<SnapshotPin>,
}

/// Isolation level of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    #[default]
    ReadCommitted,
    /// Snapshot isolation (also what SERIALIZABLE gets).
    RepeatableRead,
}

/// Inserts of at most this many rows lock their rows; larger ones (COPY, INSERT … SELECT)
/// rely on the commit check alone, so a bulk load does not fill the lock table.
pub const MAX_LOCKED_INSERT: usize = 1024;

/// A commit proposed by [`Transaction::commit_pipelined`] and not yet known to be applied.
pub struct PendingCommit {
    txn: Transaction,
    pending: Option<duet_replication::PendingProposal>,
}

impl PendingCommit {
    /// Blocks until the commit is applied here; returns its version.
    pub fn wait(self) -> Result<Version> {
        futures::executor::block_on(self.applied())
    }

    /// [`PendingCommit::wait`] without holding a thread. Dropping the future before it
    /// resolves ends the transaction (its row locks go) while the commit may still apply;
    /// callers run it to the end.
    pub async fn applied(self) -> Result<Version> {
        match self.pending {
            None => Ok(self.txn.view.snapshot),
            Some(p) => {
                let view = &self.txn.view;
                view.store.finish_txn(p, &view.writes).await
            }
        }
    }
}

/// Gives an inserted row's payload from its encoded primary key (see
/// [`Transaction::insert_keyed`]).
type RowPayload<'a> = dyn FnMut(&mut Transaction, &[u8]) -> Result<Vec<u8>> + 'a;

/// Where a statement started: its writes so far, to go back to when it restarts.
pub struct StatementMark {
    writes: Arc<WriteSet>,
}

/// A transaction (also used, one per statement, for autocommit). Reads go through its
/// [`ReadView`] (`Deref`); writes are buffered until [`Transaction::commit`].
pub struct Transaction {
    view: ReadView,
    id: crate::lock::TxnId,
    isolation: Isolation,
    /// Record keys this transaction has locked (released when it ends).
    locked: Vec<Key>,
    wait: crate::lock::LockWait,
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.locked.is_empty() {
            self.view.store.locks.release(self.id, &self.locked);
        }
    }
}

impl std::ops::Deref for Transaction {
    type Target = ReadView;
    fn deref(&self) -> &ReadView {
        &self.view
    }
}

impl std::fmt::Debug for ReadView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadView")
            .field("snapshot", &self.snapshot)
            .field("writes", &self.writes.len())
            .finish()
    }
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view.fmt(f)
    }
}

/// [`describe_key`] of a primary key from its encoding.
fn describe_pk(def: &TableDef, pk: &[u8]) -> String {
    let mut rest = pk;
    let mut values = Vec::with_capacity(def.primary_key.len());
    for ty in def.pk_types() {
        match memcmp::decode_datum(rest, ty) {
            Ok((d, r)) => {
                values.push(d.to_string());
                rest = r;
            }
            Err(_) => values.push("?".into()),
        }
    }
    describe_values(def, &def.primary_key, &values)
}

fn describe_key(def: &TableDef, cols: &[usize], row: &Row) -> String {
    let vals: Vec<String> = cols.iter().map(|&c| row[c].to_string()).collect();
    describe_values(def, cols, &vals)
}

/// PostgreSQL's detail of a unique violation: columns `cols` hold `vals`.
fn describe_values(def: &TableDef, cols: &[usize], vals: &[String]) -> String {
    let names: Vec<&str> = cols.iter().map(|&c| def.columns[c].name.as_str()).collect();
    format!(
        "Key ({})=({}) already exists.",
        names.join(", "),
        vals.join(", ")
    )
}

impl ReadView {
    /// The version this view reads at.
    pub fn snapshot(&self) -> Version {
        self.snapshot
    }

    /// The store this view reads from.
    pub fn store(&self) -> &StoreRef {
        &self.store
    }

    /// Whether the transaction had written anything when the view was taken.
    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }

    pub(crate) fn get_raw(&self, key: &Key) -> Result<Option<Vec<u8>>> {
        if let Some(w) = self.writes.get(key) {
            return Ok(w.clone());
        }
        self.store.get(key, self.snapshot)
    }

    /// Visits the live payloads of `[start, end)` as this transaction sees them.
    pub fn scan_raw(&self, start: &[u8], end: &[u8], f: &mut PairVisitor<'_>) -> Result<()> {
        let mut pending = self
            .writes
            .range(Key::from_raw(start.to_vec())..Key::from_raw(end.to_vec()))
            .peekable();
        let mut stopped = false;
        self.store
            .scan_versions(start, end, self.snapshot, &mut |k, v| {
                while let Some((wk, wv)) = pending.peek() {
                    if wk.as_bytes() >= k {
                        break;
                    }
                    if let Some(p) = wv {
                        if !f(wk.as_bytes(), p)? {
                            stopped = true;
                            return Ok(false);
                        }
                    }
                    pending.next();
                }
                if let Some((wk, wv)) = pending.peek() {
                    if wk.as_bytes() == k {
                        let go = match wv {
                            Some(p) => f(k, p)?,
                            None => true,
                        };
                        pending.next();
                        if !go {
                            stopped = true;
                        }
                        return Ok(go);
                    }
                }
                let go = f(k, v)?;
                stopped = !go;
                Ok(go)
            })?;
        if !stopped {
            for (wk, wv) in pending {
                if let Some(p) = wv {
                    if !f(wk.as_bytes(), p)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// The row with encoded primary key `pk`.
    pub fn get_row(&self, def: &TableDef, pk: &[u8]) -> Result<Option<Row>> {
        decode_found(def, self.get_raw(&key::record_key(def.storage_id, pk))?)
    }

    /// Visits rows whose encoded primary key is in `[start, end)` (`None` = unbounded),
    /// in key order, as `(encoded pk, row)`.
    pub fn scan_rows(
        &self,
        def: &TableDef,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], Row) -> Result<bool>,
    ) -> Result<()> {
        let prefix = key::record_prefix(def.storage_id);
        let lo = [prefix.as_slice(), start.unwrap_or(&[])].concat();
        let hi = match end {
            Some(e) => [prefix.as_slice(), e].concat(),
            None => prefix_end(&prefix),
        };
        let types = def.types();
        let plen = prefix.len();
        self.scan_raw(&lo, &hi, &mut |k, v| {
            let r = row::decode_row(v, &types, &|i| def.columns[i].missing.clone())?;
            f(&k[plen..], r)
        })
    }

    /// Visits index entries whose index tuple is in `[start, end)` (encoded; `None` =
    /// unbounded) as `(entry key after the index prefix, encoded primary key)`.
    pub fn scan_index(
        &self,
        def: &TableDef,
        index: &IndexDef,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        f: &mut PairVisitor<'_>,
    ) -> Result<()> {
        let prefix = key::index_prefix(def.storage_id, index.id);
        let lo = [prefix.as_slice(), start.unwrap_or(&[])].concat();
        let hi = match end {
            Some(e) => [prefix.as_slice(), e].concat(),
            None => prefix_end(&prefix),
        };
        let plen = prefix.len();
        self.scan_raw(&lo, &hi, &mut |k, pk| f(&k[plen..], pk))
    }
}

/// The newest committed version of the row with encoded primary key `pk`, read outside any
/// transaction (an autocommit point read). No snapshot is pinned: one read finishes at the
/// version it started at, and the row replica keeps every version (pins only hold back the
/// column replica's compaction, which this read does not touch).
pub fn read_row_now(store: &StoreRef, def: &TableDef, pk: &[u8]) -> Result<Option<Row>> {
    let key = key::record_key(def.storage_id, pk);
    decode_found(def, store.get(&key, store.current_version())?)
}

/// The row of a payload a point read found.
fn decode_found(def: &TableDef, payload: Option<Vec<u8>>) -> Result<Option<Row>> {
    Ok(payload.map(|p| def.decode_row(&p)).transpose()?)
}

impl Transaction {
    /// Starts a READ COMMITTED transaction at the store's current version.
    pub fn begin(store: &StoreRef) -> Self {
        Self::begin_with(store, Isolation::ReadCommitted)
    }

    /// Starts a transaction at the store's current version.
    pub fn begin_with(store: &StoreRef, isolation: Isolation) -> Self {
        let pin = store.pin();
        Self {
            view: ReadView {
                snapshot: pin.version(),
                store: store.clone(),
                writes: Arc::new(WriteSet::new()),
                _pin: Arc::new(pin),
            },
            id: store.next_txn_id(),
            isolation,
            locked: Vec::new(),
            wait: crate::lock::LockWait::default(),
        }
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// SET TRANSACTION ISOLATION LEVEL inside the block.
    pub fn set_isolation(&mut self, level: Isolation) {
        self.isolation = level;
    }

    /// What may end this transaction's waits for row locks (set per statement).
    pub fn set_lock_wait(&mut self, wait: crate::lock::LockWait) {
        self.wait = wait;
    }

    /// A statement starts: under READ COMMITTED it reads the newest committed state.
    /// Returns the mark to restart it from.
    pub fn begin_statement(&mut self) -> StatementMark {
        if self.isolation == Isolation::ReadCommitted {
            self.refresh_snapshot();
        }
        StatementMark {
            writes: self.view.writes.clone(),
        }
    }

    /// The transaction's writes as they are now, to go back to (a savepoint).
    pub fn savepoint(&self) -> StatementMark {
        StatementMark {
            writes: self.view.writes.clone(),
        }
    }

    /// Drops the writes made since `mark` (ROLLBACK TO SAVEPOINT). The snapshot stays; so do
    /// the row locks taken since, until the transaction ends (PostgreSQL releases them).
    pub fn rollback_to(&mut self, mark: &StatementMark) {
        self.view.writes = mark.writes.clone();
    }

    /// Undoes the writes of the statement begun at `mark` and moves to a fresh snapshot,
    /// keeping the locks (READ COMMITTED's re-run after [`Error::StatementRestart`]).
    pub fn restart_statement(&mut self, mark: &StatementMark) {
        self.view.writes = mark.writes.clone();
        self.refresh_snapshot();
    }

    fn refresh_snapshot(&mut self) {
        let current = self.view.store.current_version();
        if current != self.view.snapshot {
            let pin = self.view.store.pin();
            self.view.snapshot = pin.version();
            self.view._pin = Arc::new(pin);
        }
    }

    /// Locks the row at record key `rk` (waiting for its holder to end), then checks that no
    /// transaction committed a change to it after this statement's snapshot.
    fn lock_row(&mut self, rk: &Key) -> Result<()> {
        if !self.view.store.locks.acquire(self.id, rk, &self.wait)? {
            return Ok(());
        }
        self.locked.push(rk.clone());
        let latest = self.view.store.latest_versions(std::iter::once(rk))?;
        if latest[0].is_some_and(|v| v > self.view.snapshot) {
            return Err(match self.isolation {
                Isolation::ReadCommitted => Error::StatementRestart,
                Isolation::RepeatableRead => Error::WriteConflict,
            });
        }
        Ok(())
    }

    /// Locks the rows at encoded primary keys `pks` as a write would (SELECT … FOR UPDATE):
    /// waits for their holders, and fails like a write when one changed after the snapshot.
    pub fn lock_rows<'a>(
        &mut self,
        def: &TableDef,
        pks: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<()> {
        for pk in pks {
            self.lock_row(&key::record_key(def.storage_id, pk))?;
        }
        Ok(())
    }

    /// A read view of the transaction as it is now (its writes so far included).
    pub fn view(&self) -> ReadView {
        self.view.clone()
    }

    /// The transaction's writes over the newest committed state rather than its snapshot:
    /// what a foreign-key check reads (as PostgreSQL's referential checks do, it must see
    /// rows committed after the snapshot, once their writers' locks are gone).
    pub fn latest_view(&self) -> ReadView {
        let pin = self.view.store.pin();
        ReadView {
            snapshot: pin.version(),
            store: self.view.store.clone(),
            writes: self.view.writes.clone(),
            _pin: Arc::new(pin),
        }
    }

    /// Locks the row at encoded primary key `pk` shared (PostgreSQL's `FOR KEY SHARE`):
    /// waits while a writer holds it; writers of it wait until this transaction ends.
    pub fn lock_row_shared(&mut self, def: &TableDef, pk: &[u8]) -> Result<()> {
        let rk = key::record_key(def.storage_id, pk);
        if self
            .view
            .store
            .locks
            .acquire_shared(self.id, &rk, &self.wait)?
        {
            self.locked.push(rk);
        }
        Ok(())
    }

    /// Commits; returns the commit version (the snapshot if nothing was written).
    pub fn commit(self) -> Result<Version> {
        self.commit_pipelined()?.wait()
    }

    /// Proposes the commit and returns without waiting for it (a bulk load goes on with its
    /// next batch meanwhile). The transaction's locks and snapshot are held until
    /// [`PendingCommit::wait`].
    pub fn commit_pipelined(self) -> Result<PendingCommit> {
        let pending = if self.view.writes.is_empty() {
            None
        } else {
            Some(
                self.view
                    .store
                    .propose_txn(self.view.snapshot, &self.view.writes)?,
            )
        };
        Ok(PendingCommit { txn: self, pending })
    }

    fn writes_mut(&mut self) -> &mut WriteSet {
        Arc::make_mut(&mut self.view.writes)
    }

    fn check_not_null(def: &TableDef, row: &Row) -> Result<()> {
        for (i, c) in def.columns.iter().enumerate() {
            if def.not_null(i) && row.get(i).is_none_or(Datum::is_null) {
                return Err(Error::NotNullViolation {
                    table: def.name.clone(),
                    column: c.name.clone(),
                });
            }
        }
        if row.len() != def.columns.len() {
            return Err(Error::Internal(format!(
                "row has {} values, table {} has {} columns",
                row.len(),
                def.name,
                def.columns.len()
            )));
        }
        Ok(())
    }

    fn index_key_of(def: &TableDef, idx: &IndexDef, row: &Row, pk: &[u8]) -> (Key, bool) {
        let (tuple, has_null) = def.index_tuple(idx, row);
        let unique = idx.unique && !has_null;
        (
            key::index_key(
                def.storage_id,
                idx.id,
                &tuple,
                if unique { None } else { Some(pk) },
            ),
            unique,
        )
    }

    fn add_index_entries(&mut self, def: &TableDef, row: &Row, pk: &[u8]) -> Result<()> {
        for idx in &def.indexes {
            let (k, unique) = Self::index_key_of(def, idx, row, pk);
            if unique && self.get_raw(&k)?.is_some() {
                return Err(Error::UniqueViolation {
                    constraint: idx.name.clone(),
                    detail: describe_key(def, &idx.columns, row),
                });
            }
            self.writes_mut().insert(k, Some(pk.to_vec()));
        }
        Ok(())
    }

    fn remove_index_entries(&mut self, def: &TableDef, row: &Row, pk: &[u8]) {
        for idx in &def.indexes {
            let (k, _) = Self::index_key_of(def, idx, row, pk);
            self.writes_mut().insert(k, None);
        }
    }

    /// Inserts a full row (one datum per column, already of the column types).
    pub fn insert(&mut self, def: &TableDef, row: Row) -> Result<()> {
        self.insert_many(def, vec![row])
    }

    /// Inserts `rows` as [`Transaction::insert`] would one by one, with the primary-key
    /// checks against stored data done in one ordered pass (COPY, multi-row INSERT).
    pub fn insert_many(&mut self, def: &TableDef, rows: Vec<Row>) -> Result<()> {
        for row in &rows {
            Self::check_not_null(def, row)?;
        }
        let pks = if def.has_hidden_rowid() {
            self.fresh_rowid_keys(rows.len())
        } else {
            rows.iter()
                .map(|row| memcmp::encode_tuple(&def.pk_of(row)))
                .collect()
        };
        let mut rows = rows.into_iter();
        self.insert_keyed(def, pks, &mut |txn, pk| {
            let row = rows
                .next()
                .ok_or_else(|| Error::Internal("rows ran out".into()))?;
            txn.add_index_entries(def, &row, pk)?;
            Ok(row::encode_row(&row))
        })
    }

    /// Inserts rows already in the row format (see [`duet_common::batch::encode_rows`]) with
    /// their encoded primary keys (`None`: the table has no primary key, each row gets a
    /// row id), as [`Transaction::insert_many`] would insert them. For tables without
    /// secondary indexes; NOT NULL is the caller's to check.
    pub fn insert_encoded(
        &mut self,
        def: &TableDef,
        pks: Option<Vec<Vec<u8>>>,
        rows: Vec<Vec<u8>>,
    ) -> Result<()> {
        if !def.indexes.is_empty() {
            return Err(Error::Internal(format!(
                "encoded insert into {}, which has indexes",
                def.name
            )));
        }
        let pks = match pks {
            // Keys given for a table without a primary key are row ids the caller chose
            // (a sequence's one row).
            Some(pks) if pks.len() == rows.len() => pks,
            None if def.has_hidden_rowid() => self.fresh_rowid_keys(rows.len()),
            _ => return Err(Error::Internal("encoded insert: keys do not fit".into())),
        };
        let mut rows = rows.into_iter();
        self.insert_keyed(def, pks, &mut |_, _| {
            rows.next()
                .ok_or_else(|| Error::Internal("rows ran out".into()))
        })
    }

    /// `n` newly allocated row ids, as keys of a table without a primary key.
    fn fresh_rowid_keys(&self, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| memcmp::encode_tuple(&[Datum::Int(self.view.store.alloc_rowid())]))
            .collect()
    }

    /// The checks and writes of an insert of rows with encoded primary keys `pks`: rows of
    /// a table with a primary key are locked (up to [`MAX_LOCKED_INSERT`]) and looked up in
    /// key order; then, in input order, a key that exists is a unique violation and
    /// `payload(txn, pk)` gives the next row's payload (writing its index entries).
    fn insert_keyed(
        &mut self,
        def: &TableDef,
        pks: Vec<Vec<u8>>,
        payload: &mut RowPayload<'_>,
    ) -> Result<()> {
        let keyed: Vec<(Vec<u8>, Key)> = pks
            .into_iter()
            .map(|pk| {
                let rk = key::record_key(def.storage_id, &pk);
                (pk, rk)
            })
            .collect();
        let mut stored = vec![false; keyed.len()];
        // A fresh row id is in no stored row and no other transaction's: only primary keys
        // are locked and looked up, in key order.
        if !def.has_hidden_rowid() {
            let mut order: Vec<usize> = (0..keyed.len()).collect();
            order.sort_by(|&a, &b| keyed[a].1.cmp(&keyed[b].1));
            if keyed.len() <= MAX_LOCKED_INSERT {
                for &i in &order {
                    self.lock_row(&keyed[i].1)?;
                }
            }
            let found = self
                .store
                .exists_many(order.iter().map(|&i| &keyed[i].1), self.snapshot)?;
            for (&i, f) in order.iter().zip(found) {
                stored[i] = f;
            }
        }
        for ((pk, rk), stored) in keyed.into_iter().zip(stored) {
            // This transaction's own writes decide where they exist (a deleted key may be
            // inserted again; a key written earlier, in this batch too, is a duplicate).
            let exists = match self.writes.get(&rk) {
                Some(w) => w.is_some(),
                None => stored,
            };
            if exists {
                return Err(Error::UniqueViolation {
                    constraint: def.pk_name.clone(),
                    detail: describe_pk(def, &pk),
                });
            }
            let value = payload(self, &pk)?;
            self.writes_mut().insert(rk, Some(value));
        }
        Ok(())
    }

    /// Deletes the row with encoded primary key `pk`; returns the old row.
    pub fn delete(&mut self, def: &TableDef, pk: &[u8]) -> Result<Option<Row>> {
        self.lock_row(&key::record_key(def.storage_id, pk))?;
        let Some(old) = self.get_row(def, pk)? else {
            return Ok(None);
        };
        self.remove_index_entries(def, &old, pk);
        self.writes_mut()
            .insert(key::record_key(def.storage_id, pk), None);
        Ok(Some(old))
    }

    /// Replaces the row at encoded primary key `old_pk` with `new_row` (which may have a
    /// different primary key).
    pub fn update(&mut self, def: &TableDef, old_pk: &[u8], new_row: Row) -> Result<()> {
        self.lock_row(&key::record_key(def.storage_id, old_pk))?;
        let Some(old) = self.get_row(def, old_pk)? else {
            return Err(Error::Internal(
                "updated row vanished within its transaction".into(),
            ));
        };
        self.replace(def, old_pk, &old, new_row)
    }

    /// [`Transaction::update`] of a row the caller has just read (`old`, as this transaction
    /// sees it at `old_pk`), without reading it again. The row is locked here: if it changed
    /// after the read's snapshot, this fails as [`Transaction::update`] does.
    pub fn replace(
        &mut self,
        def: &TableDef,
        old_pk: &[u8],
        old: &Row,
        new_row: Row,
    ) -> Result<()> {
        self.lock_row(&key::record_key(def.storage_id, old_pk))?;
        Self::check_not_null(def, &new_row)?;
        let new_pk = if def.has_hidden_rowid() {
            old_pk.to_vec()
        } else {
            memcmp::encode_tuple(&def.pk_of(&new_row))
        };
        self.remove_index_entries(def, old, old_pk);
        if new_pk != old_pk {
            let nk = key::record_key(def.storage_id, &new_pk);
            self.lock_row(&nk)?;
            if self.get_raw(&nk)?.is_some() {
                return Err(Error::UniqueViolation {
                    constraint: def.pk_name.clone(),
                    detail: describe_key(def, &def.primary_key, &new_row),
                });
            }
            self.writes_mut()
                .insert(key::record_key(def.storage_id, old_pk), None);
        }
        self.add_index_entries(def, &new_row, &new_pk)?;
        self.writes_mut().insert(
            key::record_key(def.storage_id, &new_pk),
            Some(row::encode_row(&new_row)),
        );
        Ok(())
    }
}
