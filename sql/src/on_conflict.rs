//! `INSERT … ON CONFLICT`: which proposed rows conflict with a stored row (or an earlier
//! row of the same statement) on a unique constraint, and what happens to them — DO NOTHING
//! drops them, DO UPDATE updates the stored row with `SET … [WHERE …]`, where `excluded`
//! names the proposed row.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::SchemaProvider;
use datafusion::common::ParamValues;
use duet_common::{Datum, Row, TableDef, TableDefRef};
use duet_rowstore::Transaction;
use sqlparser::ast::{AssignmentTarget, DoUpdate, Expr, Ident};

use crate::error::{PgError, Result, SqlState};
use crate::ident::{ident_name, quote, table_name};
use crate::session::{Session, SCRATCH_SCHEMA};
use crate::types::assign_columns;

/// `ON CONFLICT [target] DO NOTHING`: drops the rows whose key in one of the target's
/// unique constraints (all of them without a target) is already stored or came earlier in
/// the same statement. A row holding NULL in a key's columns does not conflict on it. A
/// conflicting row inserted by a transaction still running is waited for by the insert's
/// row lock and then reported as 23505 (PostgreSQL would skip it).
pub(crate) struct Conflicts {
    /// Column sets of the constraints checked, with the unique index behind each (`None`:
    /// the primary key).
    keys: Vec<(Vec<usize>, Option<duet_common::IndexDef>)>,
    /// Encoded keys of this statement's rows so far, per constraint.
    seen: Vec<HashSet<Vec<u8>>>,
}

impl Conflicts {
    pub(crate) fn new(
        def: &TableDef,
        target: Option<&sqlparser::ast::ConflictTarget>,
    ) -> Result<Self> {
        use sqlparser::ast::ConflictTarget;
        let mut all: Vec<(Vec<usize>, Option<duet_common::IndexDef>)> = Vec::new();
        if !def.primary_key.is_empty() {
            all.push((def.primary_key.clone(), None));
        }
        for idx in def.indexes.iter().filter(|i| i.unique) {
            all.push((idx.columns.clone(), Some(idx.clone())));
        }
        let keys = match target {
            None => all,
            Some(ConflictTarget::Columns(cols)) => {
                let mut want = Vec::with_capacity(cols.len());
                for c in cols {
                    let name = ident_name(c);
                    want.push(def.column_index(&name).ok_or_else(|| {
                        PgError::new(
                            SqlState::UndefinedColumn,
                            format!("column \"{name}\" does not exist"),
                        )
                    })?);
                }
                want.sort_unstable();
                let found: Vec<_> = all
                    .into_iter()
                    .filter(|(k, _)| {
                        let mut k = k.clone();
                        k.sort_unstable();
                        k == want
                    })
                    .collect();
                if found.is_empty() {
                    return Err(PgError::new(
                        SqlState::InvalidColumnReference,
                        "there is no unique or exclusion constraint matching the ON CONFLICT specification",
                    ));
                }
                found
            }
            Some(ConflictTarget::OnConstraint(name)) => {
                let name = table_name(name)?;
                let found: Vec<_> = all
                    .into_iter()
                    .filter(|(_, idx)| match idx {
                        None => def.pk_name == name,
                        Some(i) => i.name == name,
                    })
                    .collect();
                if found.is_empty() {
                    return Err(PgError::new(
                        SqlState::UndefinedObject,
                        format!(
                            "constraint \"{name}\" for table \"{}\" does not exist",
                            def.name
                        ),
                    ));
                }
                found
            }
        };
        let seen = vec![HashSet::new(); keys.len()];
        Ok(Self { keys, seen })
    }

    /// The rows of `rows` that conflict with nothing.
    pub(crate) fn keep(
        &mut self,
        txn: &Transaction,
        def: &TableDef,
        rows: Vec<Row>,
    ) -> Result<Vec<Row>> {
        let mut out = Vec::with_capacity(rows.len());
        'rows: for row in rows {
            let mut encoded = Vec::with_capacity(self.keys.len());
            for (k, (cols, index)) in self.keys.iter().enumerate() {
                let datums: Vec<Datum> = cols.iter().map(|&c| row[c].clone()).collect();
                if datums.iter().any(Datum::is_null) {
                    encoded.push(None);
                    continue;
                }
                let key = duet_common::codec::memcmp::encode_tuple(&datums);
                if self.seen[k].contains(&key) {
                    continue 'rows;
                }
                let stored = stored_row(txn, def, index.as_ref(), &key)?.is_some();
                if stored {
                    continue 'rows;
                }
                encoded.push(Some(key));
            }
            for (k, key) in encoded.into_iter().enumerate() {
                if let Some(key) = key {
                    self.seen[k].insert(key);
                }
            }
            out.push(row);
        }
        Ok(out)
    }
}

/// The stored row (with its encoded primary key) whose key in a unique constraint is
/// `key` (encoded): the primary key when `index` is `None`.
fn stored_row(
    txn: &Transaction,
    def: &TableDef,
    index: Option<&duet_common::IndexDef>,
    key: &[u8],
) -> Result<Option<(Vec<u8>, Row)>> {
    let pk = match index {
        None => key.to_vec(),
        Some(idx) => {
            let end = duet_common::codec::memcmp::prefix_end(key);
            let mut found = None;
            txn.scan_index(def, idx, Some(key), Some(&end), &mut |_, pk| {
                found = Some(pk.to_vec());
                Ok(false)
            })?;
            match found {
                Some(pk) => pk,
                None => return Ok(None),
            }
        }
    };
    Ok(txn.get_row(def, &pk)?.map(|row| (pk, row)))
}

/// A proposed row that conflicts with a stored one: the stored row's encoded primary key,
/// the stored row, the proposed row.
pub(crate) type Conflict = (Vec<u8>, Row, Row);

impl Conflicts {
    /// DO UPDATE: splits `rows` into those to insert and those that conflict with a stored
    /// row. Two rows of one statement with the same key are 21000, as in PostgreSQL (the
    /// command would affect a row a second time).
    pub(crate) fn split(
        &mut self,
        txn: &Transaction,
        def: &TableDef,
        rows: Vec<Row>,
    ) -> Result<(Vec<Row>, Vec<Conflict>)> {
        let (cols, index) = &self.keys[0];
        let mut insert = Vec::new();
        let mut conflicts = Vec::new();
        for row in rows {
            let datums: Vec<Datum> = cols.iter().map(|&c| row[c].clone()).collect();
            if datums.iter().any(Datum::is_null) {
                insert.push(row);
                continue;
            }
            let key = duet_common::codec::memcmp::encode_tuple(&datums);
            if !self.seen[0].insert(key.clone()) {
                return Err(PgError::new(
                    SqlState::CardinalityViolation,
                    "ON CONFLICT DO UPDATE command cannot affect row a second time",
                )
                .with_hint(
                    "Ensure that no rows proposed for insertion within the same command have duplicate constrained values.",
                ));
            }
            match stored_row(txn, def, index.as_ref(), &key)? {
                Some((pk, stored)) => conflicts.push((pk, stored, row)),
                None => insert.push(row),
            }
        }
        Ok((insert, conflicts))
    }
}

/// The name the proposed row's column `i` has in the DO UPDATE expressions once
/// `excluded.col` is rewritten.
fn excluded_column(i: usize) -> String {
    format!("__duet_excluded_{i}")
}

/// DO UPDATE: evaluates `SET …` and `WHERE …` over each conflict (the stored row under the
/// target's name or alias, the proposed one as `excluded`) and updates the stored rows the
/// WHERE keeps. Returns the pairs (old, new) of the rows updated.
pub(crate) async fn update_conflicts(
    session: &mut Session,
    txn: &mut Transaction,
    def: &TableDefRef,
    alias: &str,
    action: &DoUpdate,
    conflicts: Vec<Conflict>,
    params: &ParamValues,
) -> Result<Vec<(Row, Row)>> {
    if conflicts.is_empty() {
        return Ok(Vec::new());
    }
    let mut targets = Vec::with_capacity(action.assignments.len());
    let mut items: Vec<String> = Vec::new();
    for a in &action.assignments {
        let AssignmentTarget::ColumnName(n) = &a.target else {
            return Err(PgError::unsupported("ON CONFLICT DO UPDATE SET (a, b) = …"));
        };
        let col =
            n.0.last()
                .and_then(|p| p.as_ident())
                .map(ident_name)
                .unwrap_or_default();
        let pos = def.column_index(&col).ok_or_else(|| {
            PgError::new(
                SqlState::UndefinedColumn,
                format!(
                    "column \"{col}\" of relation \"{}\" does not exist",
                    def.name
                ),
            )
        })?;
        if targets.contains(&pos) {
            return Err(PgError::new(
                SqlState::SyntaxError,
                format!("multiple assignments to same column \"{col}\""),
            ));
        }
        targets.push(pos);
        items.push(excluded_refs(def, &a.value).to_string());
    }
    if let Some(w) = &action.selection {
        items.push(format!("({}) IS TRUE", excluded_refs(def, w)));
    }
    // One batch: the stored rows' columns, then the proposed rows' under their new names.
    // Each part's companions (display scales of unconstrained numerics) go last.
    let width = def.columns.len();
    let stored: Vec<Row> = conflicts.iter().map(|(_, s, _)| s.clone()).collect();
    let proposed: Vec<Row> = conflicts.iter().map(|(_, _, p)| p.clone()).collect();
    let a = crate::scaled_rows::batch_with_companions(def, &stored)?;
    let b = crate::scaled_rows::batch_with_companions(def, &proposed)?;
    let scaled = def.scaled_columns();
    let mut fields: Vec<Arc<Field>> = a.schema().fields()[..width].to_vec();
    let mut columns = a.columns()[..width].to_vec();
    for (i, f) in b.schema().fields()[..width].iter().enumerate() {
        fields.push(Arc::new(f.as_ref().clone().with_name(excluded_column(i))));
    }
    columns.extend(b.columns()[..width].iter().cloned());
    fields.extend(a.schema().fields()[width..].iter().cloned());
    columns.extend(a.columns()[width..].iter().cloned());
    for (k, &c) in scaled.iter().enumerate() {
        let name = format!("{}{}", excluded_column(c), duet_common::numeric::SUFFIX);
        fields.push(Arc::new(
            b.schema().field(width + k).clone().with_name(name),
        ));
        columns.push(b.column(width + k).clone());
    }
    let schema = Arc::new(Schema::new(fields));
    let batch =
        RecordBatch::try_new(schema, columns).map_err(datafusion::error::DataFusionError::from)?;
    const TABLE: &str = "__duet_conflicts";
    let mem = crate::scaled_rows::ScaledRows::new(batch)?;
    session
        .scratch()
        .register_table(TABLE.to_string(), Arc::new(mem))?;
    let sql = format!(
        "SELECT {} FROM {SCRATCH_SCHEMA}.{TABLE} AS {}",
        items.join(", "),
        quote(alias)
    );
    let result = match crate::dml::parse_one(&sql) {
        Ok(stmt) => crate::dml::run_collect(session, stmt, params).await,
        Err(e) => Err(e),
    };
    session.scratch().deregister_table(TABLE)?;
    let batches = result?;
    let mut updated = Vec::new();
    let mut at = 0usize;
    let zone = session.time_zone();
    for out in &batches {
        let values = assign_columns(out, 0, def, &targets, &zone)?;
        let keep = action
            .selection
            .as_ref()
            .map(|_| out.column(targets.len()).as_boolean().clone());
        for i in 0..out.num_rows() {
            let (pk, old, _) = &conflicts[at + i];
            if keep.as_ref().is_some_and(|k| !k.is_valid(i) || !k.value(i)) {
                continue;
            }
            let mut new = old.clone();
            for (j, &c) in targets.iter().enumerate() {
                new[c] = values[j][i].clone();
            }
            crate::check::check_rows(session, def, std::slice::from_ref(&new))?;
            txn.update(def, pk, new.clone())?;
            updated.push((old.clone(), new));
        }
        at += out.num_rows();
    }
    Ok(updated)
}

/// `expr` with `excluded.col` written as the proposed row's column name in the scratch
/// table.
fn excluded_refs(def: &TableDef, expr: &Expr) -> Expr {
    let mut e = expr.clone();
    let _ = sqlparser::ast::visit_expressions_mut(&mut e, |e| {
        if let Expr::CompoundIdentifier(parts) = e {
            if let [rel, col] = parts.as_slice() {
                if ident_name(rel) == "excluded" {
                    if let Some(i) = def.column_index(&ident_name(col)) {
                        *e = Expr::Identifier(Ident::new(excluded_column(i)));
                    }
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    e
}
