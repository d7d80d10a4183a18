//! FOREIGN KEY constraints, as PostgreSQL enforces them.
//!
//! A write to a table that references others (the child) or is referenced (the parent)
//! reports its changed rows to [`after_write`]:
//! - a child row inserted, or updated to a new key, needs a parent row holding its key
//!   (unless a key column is NULL: MATCH SIMPLE). That is checked at the end of the
//!   statement, or at COMMIT for a constraint deferred (`DEFERRABLE INITIALLY DEFERRED`,
//!   `SET CONSTRAINTS`). The check locks the parent row shared, so the parent cannot be
//!   deleted until the child's transaction ends, and reads the newest committed state,
//!   as PostgreSQL's referential checks do.
//! - a parent row deleted, or updated to a new key, acts on the child rows holding the old
//!   key: CASCADE deletes them (or gives them the new key), SET NULL and SET DEFAULT update
//!   them, at once and recursively; NO ACTION and RESTRICT leave a check that no child row
//!   still holds the key, at the end of the statement (NO ACTION: or at COMMIT if deferred;
//!   a key inserted again meanwhile passes). The parent row's exclusive lock waits for every
//!   transaction whose check holds it shared, so a concurrent child insert is seen.
//!
//! A check reads the state it verifies when it runs (the child row must still hold the key,
//! the parent key must still be gone), so a check whose row a later statement, a savepoint
//! rollback or a READ COMMITTED re-run undid passes.

use std::collections::{HashMap, HashSet, VecDeque};

use duet_common::catalog::{ForeignKeyDef, RefAction};
use duet_common::codec::memcmp::{encode_tuple, prefix_end};
use duet_common::{Datum, Row, SqlType, TableDef, TableDefRef};
use duet_rowstore::{ReadView, Store, Transaction};

use crate::error::{PgError, Result, SqlState};
use crate::session::Session;

/// A row change a write reports.
pub(crate) enum Change {
    Inserted(Row),
    Updated(Row, Row),
    Deleted(Row),
}

/// A check a write leaves for the end of its statement or for COMMIT.
#[derive(Clone, Debug)]
enum Check {
    /// Rows of `table` holding `key` in the columns of its constraint `fk` need a row of
    /// the referenced table holding it.
    Referenced {
        table: String,
        fk: String,
        key: Vec<Datum>,
    },
    /// `key` left the referenced columns of `fk` (of table `child`): no row of `child` may
    /// still hold it, unless the key is back.
    Unreferenced {
        child: String,
        fk: String,
        key: Vec<Datum>,
    },
}

impl Check {
    /// Identifies the check among the pending ones (the same key is checked once).
    fn signature(&self) -> Vec<u8> {
        let (kind, table, fk, key) = match self {
            Check::Referenced { table, fk, key } => (b'r', table, fk, key),
            Check::Unreferenced { child, fk, key } => (b'u', child, fk, key),
        };
        let mut out = vec![kind];
        for part in [table, fk] {
            out.extend_from_slice(part.as_bytes());
            out.push(0);
        }
        out.extend(encode_tuple(key));
        out
    }
}

/// A session's pending foreign-key checks and its `SET CONSTRAINTS` modes.
#[derive(Default)]
pub(crate) struct FkState {
    /// Checks for the end of the running statement.
    immediate: Vec<Check>,
    immediate_seen: HashSet<Vec<u8>>,
    /// Checks for COMMIT.
    deferred: Vec<Check>,
    deferred_seen: HashSet<Vec<u8>>,
    /// `SET CONSTRAINTS ALL DEFERRED` (true) or `IMMEDIATE` in the open transaction.
    all: Option<bool>,
    /// `SET CONSTRAINTS name … DEFERRED|IMMEDIATE` in the open transaction.
    named: HashMap<String, bool>,
}

impl FkState {
    /// Whether `fk`'s checks wait for COMMIT now.
    fn is_deferred(&self, fk: &ForeignKeyDef) -> bool {
        fk.deferrable
            && self
                .named
                .get(&fk.name)
                .copied()
                .or(self.all)
                .unwrap_or(fk.initially_deferred)
    }

    fn add(&mut self, check: Check, deferred: bool) {
        let sig = check.signature();
        if deferred {
            if self.deferred_seen.insert(sig) {
                self.deferred.push(check);
            }
        } else if self.immediate_seen.insert(sig) {
            self.immediate.push(check);
        }
    }

    /// The transaction ended: nothing is pending, the modes are the constraints' own.
    pub(crate) fn reset(&mut self) {
        *self = FkState::default();
    }

    /// How many deferred checks are pending (to go back to when a statement fails).
    pub(crate) fn deferred_mark(&self) -> usize {
        self.deferred.len()
    }

    /// A statement failed: its checks are dropped.
    pub(crate) fn statement_failed(&mut self, mark: usize) {
        self.immediate.clear();
        self.immediate_seen.clear();
        for c in self.deferred.drain(mark..) {
            self.deferred_seen.remove(&c.signature());
        }
    }

    pub(crate) fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }
}

/// The constraints that reference table `parent`, with the tables that hold them.
fn referencing(store: &Store, parent: &str) -> Vec<(TableDefRef, ForeignKeyDef)> {
    let mut out = Vec::new();
    for t in store.tables() {
        for fk in &t.foreign_keys {
            if fk.ref_table == parent {
                out.push((t.clone(), fk.clone()));
            }
        }
    }
    out
}

/// Whether a constraint references table `table`.
pub(crate) fn is_referenced(store: &Store, table: &str) -> bool {
    store
        .tables()
        .iter()
        .any(|t| t.foreign_keys.iter().any(|f| f.ref_table == table))
}

/// Whether writes to `def` involve foreign keys (the fast paths leave them to DML).
pub(crate) fn involved(store: &Store, def: &TableDef) -> bool {
    !def.foreign_keys.is_empty() || is_referenced(store, &def.name)
}

/// The values of `row` in `cols`, or `None` if one is NULL (MATCH SIMPLE: no check).
fn key_of(row: &Row, cols: &[usize]) -> Option<Vec<Datum>> {
    let key: Vec<Datum> = cols.iter().map(|&c| row[c].clone()).collect();
    (!key.iter().any(Datum::is_null)).then_some(key)
}

fn same_values(row: &Row, cols: &[usize], key: &[Datum]) -> bool {
    cols.iter().zip(key).all(|(&c, k)| row[c] == *k)
}

/// PostgreSQL's `Key (a, b)=(1, 2)` of a constraint's detail.
fn describe(def: &TableDef, cols: &[usize], key: &[Datum]) -> String {
    let names: Vec<&str> = cols.iter().map(|&c| def.columns[c].name.as_str()).collect();
    let values: Vec<String> = key.iter().map(Datum::to_string).collect();
    format!("Key ({})=({})", names.join(", "), values.join(", "))
}

/// Rows of `table` (as `view` sees them) holding `key` in `cols`, with their encoded
/// primary keys; at most one if `first`. Reads the range of a primary key or index that
/// starts with `cols`, else the whole table.
fn rows_holding(
    view: &ReadView,
    table: &TableDef,
    cols: &[usize],
    key: &[Datum],
    first: bool,
) -> Result<Vec<(Vec<u8>, Row)>> {
    let mut out = Vec::new();
    let prefix_of = |lead: &[usize]| -> Option<Vec<u8>> {
        (lead.len() >= cols.len() && lead[..cols.len()] == *cols).then(|| encode_tuple(key))
    };
    if let Some(start) = (!table.has_hidden_rowid())
        .then(|| prefix_of(&table.primary_key))
        .flatten()
    {
        let end = prefix_end(&start);
        view.scan_rows(table, Some(&start), Some(&end), &mut |pk, row| {
            if same_values(&row, cols, key) {
                out.push((pk.to_vec(), row));
            }
            Ok(!first || out.is_empty())
        })?;
        return Ok(out);
    }
    if let Some((index, start)) = table
        .indexes
        .iter()
        .find_map(|i| prefix_of(&i.columns).map(|s| (i, s)))
    {
        let end = prefix_end(&start);
        let mut pks = Vec::new();
        view.scan_index(table, index, Some(&start), Some(&end), &mut |_, pk| {
            pks.push(pk.to_vec());
            Ok(true)
        })?;
        for pk in pks {
            if let Some(row) = view.get_row(table, &pk)? {
                if same_values(&row, cols, key) {
                    out.push((pk, row));
                    if first {
                        break;
                    }
                }
            }
        }
        return Ok(out);
    }
    view.scan_rows(table, None, None, &mut |pk, row| {
        if same_values(&row, cols, key) {
            out.push((pk.to_vec(), row));
        }
        Ok(!first || out.is_empty())
    })?;
    Ok(out)
}

/// Whether a row of `parent` holds `key` in `cols`, in the newest committed state plus
/// this transaction's writes. With `lock`, the row found is locked shared first (so it
/// stays until this transaction ends) and read again.
fn parent_exists(
    txn: &mut Transaction,
    parent: &TableDef,
    cols: &[usize],
    key: &[Datum],
    lock: bool,
) -> Result<bool> {
    let mut sorted_pk = parent.primary_key.clone();
    sorted_pk.sort_unstable();
    let mut sorted = cols.to_vec();
    sorted.sort_unstable();
    if !parent.has_hidden_rowid() && sorted_pk == sorted {
        let pk_values: Vec<Datum> = parent
            .primary_key
            .iter()
            .map(|p| key[cols.iter().position(|c| c == p).unwrap_or(0)].clone())
            .collect();
        let pk = encode_tuple(&pk_values);
        if lock {
            txn.lock_row_shared(parent, &pk)?;
        }
        return Ok(txn.latest_view().get_row(parent, &pk)?.is_some());
    }
    // A unique constraint: find the row, lock it, and look again (it may have changed
    // between the two reads).
    for _ in 0..3 {
        let found = rows_holding(&txn.latest_view(), parent, cols, key, true)?;
        let Some((pk, _)) = found.into_iter().next() else {
            return Ok(false);
        };
        if !lock {
            return Ok(true);
        }
        txn.lock_row_shared(parent, &pk)?;
        if let Some(row) = txn.latest_view().get_row(parent, &pk)? {
            if same_values(&row, cols, key) {
                return Ok(true);
            }
        }
    }
    Err(PgError::new(
        SqlState::SerializationFailure,
        format!(
            "could not serialize access due to concurrent update of \"{}\"",
            parent.name
        ),
    ))
}

/// The constraint `fk` of table `table` with both of its tables, as they are now; `None`
/// if any was dropped since (a check then has nothing left to check).
fn resolve(
    store: &Store,
    table: &str,
    fk: &str,
) -> Option<(TableDefRef, ForeignKeyDef, TableDefRef)> {
    let child = store.table(table)?;
    let fk = child.foreign_keys.iter().find(|f| f.name == fk)?.clone();
    let parent = store.table(&fk.ref_table)?;
    Some((child, fk, parent))
}

/// 23503 for a child key without its referenced row.
fn not_present(child: &TableDef, fk: &ForeignKeyDef, key: &[Datum], parent: &str) -> PgError {
    PgError::new(
        SqlState::ForeignKeyViolation,
        format!(
            "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
            child.name, fk.name
        ),
    )
    .with_detail(format!(
        "{} is not present in table \"{parent}\".",
        describe(child, &fk.columns, key)
    ))
}

/// Runs one check against the state as it is now.
fn verify(store: &Store, txn: &mut Transaction, check: &Check) -> Result<()> {
    match check {
        Check::Referenced { table, fk, key } => {
            let Some((child, fk, parent)) = resolve(store, table, fk) else {
                return Ok(());
            };
            if parent_exists(txn, &parent, &fk.ref_columns, key, true)?
                || rows_holding(&txn.view(), &child, &fk.columns, key, true)?.is_empty()
            {
                return Ok(());
            }
            Err(not_present(&child, &fk, key, &parent.name))
        }
        Check::Unreferenced { child, fk, key } => {
            let Some((child, fk, parent)) = resolve(store, child, fk) else {
                return Ok(());
            };
            if parent_exists(txn, &parent, &fk.ref_columns, key, false)?
                || rows_holding(&txn.latest_view(), &child, &fk.columns, key, true)?.is_empty()
            {
                return Ok(());
            }
            Err(PgError::new(
                SqlState::ForeignKeyViolation,
                format!(
                    "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
                    parent.name, fk.name, child.name
                ),
            )
            .with_detail(format!(
                "{} is still referenced from table \"{}\".",
                describe(&parent, &fk.ref_columns, key),
                child.name
            )))
        }
    }
}

/// Reports the rows a statement changed in `def`: leaves the checks they need and carries
/// out the referential actions on the rows referencing them (recursively).
pub(crate) async fn after_write(
    session: &mut Session,
    txn: &mut Transaction,
    def: &TableDefRef,
    changes: Vec<Change>,
) -> Result<()> {
    let store = session.store().clone();
    let mut work: VecDeque<(TableDefRef, Change)> =
        changes.into_iter().map(|c| (def.clone(), c)).collect();
    let mut parents_of: HashMap<String, Vec<(TableDefRef, ForeignKeyDef)>> = HashMap::new();
    while let Some((table, change)) = work.pop_front() {
        for fk in &table.foreign_keys {
            let new = match &change {
                Change::Inserted(n) => n,
                Change::Updated(o, n) if !same_key(o, n, &fk.columns) => n,
                _ => continue,
            };
            if let Some(key) = key_of(new, &fk.columns) {
                let deferred = session.fk.is_deferred(fk);
                session.fk.add(
                    Check::Referenced {
                        table: table.name.clone(),
                        fk: fk.name.clone(),
                        key,
                    },
                    deferred,
                );
            }
        }
        let (old, new) = match &change {
            Change::Inserted(_) => continue,
            Change::Updated(o, n) => (o, Some(n)),
            Change::Deleted(o) => (o, None),
        };
        let children = parents_of
            .entry(table.name.clone())
            .or_insert_with(|| referencing(&store, &table.name))
            .clone();
        for (child, fk) in children {
            if new.is_some_and(|n| same_key(old, n, &fk.ref_columns)) {
                continue;
            }
            let Some(key) = key_of(old, &fk.ref_columns) else {
                continue;
            };
            let action = match new {
                None => fk.on_delete,
                Some(_) => fk.on_update,
            };
            if matches!(action, RefAction::NoAction | RefAction::Restrict) {
                let deferred = action == RefAction::NoAction && session.fk.is_deferred(&fk);
                session.fk.add(
                    Check::Unreferenced {
                        child: child.name.clone(),
                        fk: fk.name.clone(),
                        key,
                    },
                    deferred,
                );
                continue;
            }
            // The child table as it is now (an earlier action may have changed its
            // definition's Arc only, never its shape, within a statement).
            let child = store.table(&child.name).unwrap_or(child);
            let defaults = if action == RefAction::SetDefault {
                crate::dml::defaults(session, &child, &fk.columns).await?
            } else {
                Vec::new()
            };
            let rows = rows_holding(&txn.latest_view(), &child, &fk.columns, &key, false)?;
            for (pk, row) in rows {
                if action == RefAction::Cascade && new.is_none() {
                    if let Some(gone) = txn.delete(&child, &pk)? {
                        work.push_back((child.clone(), Change::Deleted(gone)));
                    }
                    continue;
                }
                let mut changed = row.clone();
                for (i, &c) in fk.columns.iter().enumerate() {
                    changed[c] = match (action, new) {
                        (RefAction::Cascade, Some(n)) => n[fk.ref_columns[i]].clone(),
                        (RefAction::SetDefault, _) => defaults[c].clone(),
                        _ => Datum::Null,
                    };
                }
                crate::check::check_rows(session, &child, std::slice::from_ref(&changed))?;
                txn.update(&child, &pk, changed.clone())?;
                // The default may be the very key that went: then it is still referenced
                // (PostgreSQL checks as NO ACTION would after SET DEFAULT).
                if action == RefAction::SetDefault {
                    session.fk.add(
                        Check::Unreferenced {
                            child: child.name.clone(),
                            fk: fk.name.clone(),
                            key: key.clone(),
                        },
                        false,
                    );
                }
                work.push_back((child.clone(), Change::Updated(row, changed)));
            }
        }
    }
    Ok(())
}

fn same_key(a: &Row, b: &Row, cols: &[usize]) -> bool {
    cols.iter().all(|&c| a[c] == b[c])
}

/// The rows a COPY inserted into `def`: each needs its referenced rows now (COPY does not
/// defer; the constraints are checked batch by batch).
pub(crate) fn check_inserted(
    store: &Store,
    txn: &mut Transaction,
    def: &TableDef,
    rows: &[Row],
) -> Result<()> {
    let mut state = FkState::default();
    for fk in &def.foreign_keys {
        for row in rows {
            if let Some(key) = key_of(row, &fk.columns) {
                state.add(
                    Check::Referenced {
                        table: def.name.clone(),
                        fk: fk.name.clone(),
                        key,
                    },
                    false,
                );
            }
        }
    }
    for check in &state.immediate {
        verify(store, txn, check)?;
    }
    Ok(())
}

/// The end of a statement: its immediate checks run.
pub(crate) fn end_statement(session: &mut Session, txn: &mut Transaction) -> Result<()> {
    if session.fk.immediate.is_empty() {
        return Ok(());
    }
    let checks = std::mem::take(&mut session.fk.immediate);
    session.fk.immediate_seen.clear();
    let store = session.store().clone();
    for check in &checks {
        verify(&store, txn, check)?;
    }
    Ok(())
}

/// COMMIT: the deferred checks run (the transaction rolls back if one fails).
pub(crate) fn before_commit(session: &mut Session, txn: &mut Transaction) -> Result<()> {
    let checks = std::mem::take(&mut session.fk.deferred);
    session.fk.reset();
    let store = session.store().clone();
    for check in &checks {
        verify(&store, txn, check)?;
    }
    Ok(())
}

/// `SET CONSTRAINTS {ALL | name, …} {DEFERRED | IMMEDIATE}`. Constraints made immediate
/// have their pending checks run now (PostgreSQL does the same).
pub(crate) fn set_constraints(
    session: &mut Session,
    txn: Option<&mut Transaction>,
    names: Option<Vec<String>>,
    deferred: bool,
) -> Result<()> {
    let store = session.store().clone();
    match &names {
        None => {
            session.fk.all = Some(deferred);
            session.fk.named.clear();
        }
        Some(list) => {
            for name in list {
                let known = store
                    .tables()
                    .iter()
                    .any(|t| t.foreign_keys.iter().any(|f| f.name == *name));
                if !known {
                    return Err(PgError::new(
                        SqlState::UndefinedObject,
                        format!("constraint \"{name}\" does not exist"),
                    ));
                }
                session.fk.named.insert(name.clone(), deferred);
            }
        }
    }
    if deferred {
        return Ok(());
    }
    let Some(txn) = txn else {
        return Ok(());
    };
    let names_of = |c: &Check| match c {
        Check::Referenced { fk, .. } | Check::Unreferenced { fk, .. } => fk.clone(),
    };
    let (now, later): (Vec<Check>, Vec<Check>) = std::mem::take(&mut session.fk.deferred)
        .into_iter()
        .partition(|c| names.as_ref().is_none_or(|l| l.contains(&names_of(c))));
    session.fk.deferred_seen = later.iter().map(Check::signature).collect();
    session.fk.deferred = later;
    for check in &now {
        verify(&store, txn, check)?;
    }
    Ok(())
}

/// Whether the key columns of the two sides can be compared value by value: the same
/// type, or both integers, or both strings without blank padding.
fn compatible(a: &SqlType, b: &SqlType) -> bool {
    use SqlType as T;
    let int = |t: &T| matches!(t, T::Int16 | T::Int32 | T::Int64);
    let text = |t: &T| matches!(t, T::Text | T::Varchar(_));
    a == b || (int(a) && int(b)) || (text(a) && text(b))
}

/// A FOREIGN KEY clause of table `child` (being created or altered), resolved: the
/// referenced table (`child` itself for a self-reference) must have a primary key or
/// unique constraint on exactly the referenced columns, with compatible types.
pub(crate) fn define(
    store: &Store,
    child: &TableDef,
    fk: &sqlparser::ast::ForeignKeyConstraint,
    inline_column: Option<usize>,
) -> Result<ForeignKeyDef> {
    use crate::ident::{ident_name, table_name};
    let ref_name = table_name(&fk.foreign_table)?;
    let parent: TableDefRef = if ref_name == child.name {
        std::sync::Arc::new(child.clone())
    } else {
        store.table(&ref_name).ok_or_else(|| {
            PgError::new(
                SqlState::UndefinedTable,
                format!("relation \"{ref_name}\" does not exist"),
            )
        })?
    };
    if parent.sequence.is_some() {
        return Err(PgError::new(
            SqlState::WrongObjectType,
            format!("referenced relation \"{ref_name}\" is not a table"),
        ));
    }
    let column = |def: &TableDef, i: &sqlparser::ast::Ident| {
        let n = ident_name(i);
        def.column_index(&n).ok_or_else(|| {
            PgError::new(
                SqlState::UndefinedColumn,
                format!("column \"{n}\" referenced in foreign key constraint does not exist"),
            )
        })
    };
    let columns: Vec<usize> = match inline_column {
        Some(c) => vec![c],
        None => fk
            .columns
            .iter()
            .map(|i| column(child, i))
            .collect::<Result<_>>()?,
    };
    let ref_columns: Vec<usize> = if fk.referred_columns.is_empty() {
        if parent.has_hidden_rowid() {
            return Err(PgError::new(
                SqlState::InvalidForeignKey,
                format!("there is no primary key for referenced table \"{ref_name}\""),
            ));
        }
        parent.primary_key.clone()
    } else {
        fk.referred_columns
            .iter()
            .map(|i| column(&parent, i))
            .collect::<Result<_>>()?
    };
    if columns.len() != ref_columns.len() {
        return Err(PgError::new(
            SqlState::InvalidForeignKey,
            "number of referencing and referenced columns for foreign key disagree",
        ));
    }
    let mut wanted = ref_columns.clone();
    wanted.sort_unstable();
    let sorted = |cols: &[usize]| {
        let mut c = cols.to_vec();
        c.sort_unstable();
        c
    };
    let unique = (!parent.has_hidden_rowid() && sorted(&parent.primary_key) == wanted)
        || parent
            .indexes
            .iter()
            .any(|i| i.unique && sorted(&i.columns) == wanted);
    if !unique {
        return Err(PgError::new(
            SqlState::InvalidForeignKey,
            format!(
                "there is no unique constraint matching given keys for referenced table \"{ref_name}\""
            ),
        ));
    }
    let name = match &fk.name {
        Some(n) => ident_name(n),
        None => {
            let names: Vec<&str> = columns
                .iter()
                .map(|&c| child.columns[c].name.as_str())
                .collect();
            let base = format!("{}_{}_fkey", child.name, names.join("_"));
            let mut name = base.clone();
            let mut n = 0;
            while child.foreign_keys.iter().any(|f| f.name == name) {
                n += 1;
                name = format!("{base}{n}");
            }
            name
        }
    };
    if child.foreign_keys.iter().any(|f| f.name == name)
        || child.checks.iter().any(|c| c.name == name)
    {
        return Err(PgError::new(
            SqlState::DuplicateObject,
            format!(
                "constraint \"{name}\" for relation \"{}\" already exists",
                child.name
            ),
        ));
    }
    for (&c, &r) in columns.iter().zip(&ref_columns) {
        let (a, b) = (&child.columns[c], &parent.columns[r]);
        if !compatible(&a.ty, &b.ty) {
            return Err(PgError::new(
                SqlState::DatatypeMismatch,
                format!("foreign key constraint \"{name}\" cannot be implemented"),
            )
            .with_detail(format!(
                "Key columns \"{}\" and \"{}\" are of incompatible types: {} and {}.",
                a.name,
                b.name,
                a.ty.pg_name(),
                b.ty.pg_name()
            )));
        }
    }
    let action = |a: &Option<sqlparser::ast::ReferentialAction>| {
        use sqlparser::ast::ReferentialAction as A;
        match a {
            None | Some(A::NoAction) => RefAction::NoAction,
            Some(A::Restrict) => RefAction::Restrict,
            Some(A::Cascade) => RefAction::Cascade,
            Some(A::SetNull) => RefAction::SetNull,
            Some(A::SetDefault) => RefAction::SetDefault,
        }
    };
    if matches!(
        fk.match_kind,
        Some(sqlparser::ast::ConstraintReferenceMatchKind::Partial)
    ) {
        return Err(PgError::unsupported("MATCH PARTIAL"));
    }
    if matches!(
        fk.match_kind,
        Some(sqlparser::ast::ConstraintReferenceMatchKind::Full)
    ) && columns.len() > 1
    {
        return Err(PgError::unsupported("MATCH FULL on several columns"));
    }
    let (deferrable, initially_deferred) = match &fk.characteristics {
        None => (false, false),
        Some(ch) => {
            let initially = matches!(
                ch.initially,
                Some(sqlparser::ast::DeferrableInitial::Deferred)
            );
            let deferrable = ch.deferrable.unwrap_or(initially);
            if initially && !deferrable {
                return Err(PgError::new(
                    SqlState::SyntaxError,
                    "constraint declared INITIALLY DEFERRED must be DEFERRABLE",
                ));
            }
            (deferrable, initially)
        }
    };
    Ok(ForeignKeyDef {
        name,
        columns,
        ref_table: ref_name,
        ref_columns,
        on_delete: action(&fk.on_delete),
        on_update: action(&fk.on_update),
        deferrable,
        initially_deferred,
    })
}

/// `ALTER TABLE … ADD FOREIGN KEY`: 23503 if a stored row of `child` has no referenced row.
pub(crate) fn validate_existing(
    store: &Store,
    txn: &mut Transaction,
    child: &TableDef,
    fk: &ForeignKeyDef,
) -> Result<()> {
    let mut keys: Vec<Vec<Datum>> = Vec::new();
    let mut seen = HashSet::new();
    txn.view().scan_rows(child, None, None, &mut |_, row| {
        if let Some(k) = key_of(&row, &fk.columns) {
            if seen.insert(encode_tuple(&k)) {
                keys.push(k);
            }
        }
        Ok(true)
    })?;
    let parent = if fk.ref_table == child.name {
        std::sync::Arc::new(child.clone())
    } else {
        store.table(&fk.ref_table).ok_or_else(|| {
            PgError::new(
                SqlState::UndefinedTable,
                format!("relation \"{}\" does not exist", fk.ref_table),
            )
        })?
    };
    for key in keys {
        if !parent_exists(txn, &parent, &fk.ref_columns, &key, true)? {
            return Err(not_present(child, fk, &key, &parent.name));
        }
    }
    Ok(())
}
