//! INSERT, UPDATE and DELETE. The rows to write are computed by DataFusion (VALUES or a
//! query for INSERT; a SELECT over the target table for UPDATE and DELETE, whose scan also
//! yields each row's encoded primary key), cast to the column types with PostgreSQL's
//! assignment rules, and written into the session transaction.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, BinaryArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::SchemaProvider;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::common::collect;
use duet_common::{Datum, Row, TableDef};
use duet_router::provider::KEY_COLUMN;
use duet_rowstore::Transaction;
use sqlparser::ast::{
    AssignmentTarget, CharacterLength, DataType as AstType, ExactNumberInfo, Expr, FromTable,
    Ident, Insert, SelectItem, SetExpr, Statement, TableFactor, TableObject, TableWithJoins,
    TimezoneInfo, UpdateTableFromKind,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::error::{PgError, Result, SqlState};
use crate::ident::{ident_name, quote, table_name};
use crate::on_conflict::Conflicts;
use crate::session::{bind, Outcome, Session, DML_SCHEMA, SCRATCH_SCHEMA};
use crate::types::{assign_columns, assign_in};

const RETURNING_TABLE: &str = "__duet_returning";

/// Runs INSERT/UPDATE/DELETE inside `txn`, then the foreign-key checks it leaves for the
/// end of the statement.
pub async fn execute(
    session: &mut Session,
    txn: &mut Transaction,
    stmt: Statement,
    params: &ParamValues,
) -> Result<Outcome> {
    let mark = session.fk.deferred_mark();
    let result = match execute_statement(session, txn, stmt, params).await {
        Ok(out) => crate::foreign_key::end_statement(session, txn).map(|()| out),
        Err(e) => Err(e),
    };
    if result.is_err() {
        session.fk.statement_failed(mark);
    }
    result
}

async fn execute_statement(
    session: &mut Session,
    txn: &mut Transaction,
    stmt: Statement,
    params: &ParamValues,
) -> Result<Outcome> {
    match stmt {
        Statement::Insert(ins) => insert(session, txn, ins, params).await,
        Statement::Update(upd) => {
            let (table, alias) = target_of(&upd.table)?;
            let from = match upd.from {
                None => vec![],
                Some(UpdateTableFromKind::AfterSet(f))
                | Some(UpdateTableFromKind::BeforeSet(f)) => f,
            };
            let mut sets = Vec::with_capacity(upd.assignments.len());
            for a in upd.assignments {
                match a.target {
                    AssignmentTarget::ColumnName(n) => {
                        let col =
                            n.0.last()
                                .and_then(|p| p.as_ident())
                                .map(ident_name)
                                .unwrap_or_default();
                        sets.push((col, a.value));
                    }
                    AssignmentTarget::Tuple(_) => {
                        return Err(PgError::unsupported("UPDATE … SET (a, b) = …"))
                    }
                }
            }
            update(
                session,
                txn,
                &table,
                &alias,
                sets,
                from,
                upd.selection,
                upd.returning,
                params,
            )
            .await
        }
        Statement::Delete(del) => {
            let tables = match del.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            let [target] = tables.as_slice() else {
                return Err(PgError::unsupported("DELETE from several tables"));
            };
            let (table, alias) = target_of(target)?;
            delete(
                session,
                txn,
                &table,
                &alias,
                del.using.unwrap_or_default(),
                del.selection,
                del.returning,
                params,
            )
            .await
        }
        other => Err(PgError::new(
            SqlState::InternalError,
            format!("not a DML statement: {other}"),
        )),
    }
}

fn target_of(t: &TableWithJoins) -> Result<(String, String)> {
    if !t.joins.is_empty() {
        return Err(PgError::unsupported("JOIN in the target of UPDATE/DELETE"));
    }
    match &t.relation {
        TableFactor::Table { name, alias, .. } => {
            let table = table_name(name)?;
            let alias = alias
                .as_ref()
                .map(|a| ident_name(&a.name))
                .unwrap_or_else(|| table.clone());
            Ok((table, alias))
        }
        other => Err(PgError::unsupported(format!("DML target {other}"))),
    }
}

pub(crate) fn parse_one(sql: &str) -> Result<Statement> {
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql)?;
    match stmts.len() {
        1 => Ok(stmts.remove(0)),
        _ => Err(PgError::new(
            SqlState::InternalError,
            "generated SQL is not one statement",
        )),
    }
}

/// The SQL type that declares a parameter of Arrow type `dt` (for typed planning).
fn ast_type_for(dt: &DataType) -> AstType {
    match dt {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => AstType::SmallInt(None),
        DataType::Int32 | DataType::UInt16 => AstType::Int(None),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => AstType::BigInt(None),
        DataType::Float16 | DataType::Float32 => AstType::Real,
        DataType::Float64 => AstType::DoublePrecision,
        DataType::Decimal128(p, s) => {
            AstType::Numeric(ExactNumberInfo::PrecisionAndScale(*p as u64, *s as i64))
        }
        DataType::Boolean => AstType::Boolean,
        DataType::Date32 | DataType::Date64 => AstType::Date,
        DataType::Timestamp(_, None) => AstType::Timestamp(None, TimezoneInfo::None),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => AstType::Bytea,
        _ => AstType::Varchar(None::<CharacterLength>),
    }
}

/// Plans `stmt` with its placeholders typed by the bound values, binds them and collects
/// the result. DataFusion cannot type a bare `$1` in a VALUES list or a projection; typing
/// the placeholders through a PREPARE wrapper lets it.
pub(crate) async fn run_collect(
    session: &mut Session,
    stmt: Statement,
    params: &ParamValues,
) -> Result<Vec<RecordBatch>> {
    let list = match params {
        ParamValues::List(l) => l.clone(),
        ParamValues::Map(_) => vec![],
    };
    let plan = if list.is_empty() {
        session.plan(stmt).await?
    } else {
        let data_types = list
            .iter()
            .map(|p| ast_type_for(&p.value.data_type()))
            .collect();
        let prepare = Statement::Prepare {
            name: Ident::new("__duet_dml"),
            data_types,
            statement: Box::new(stmt),
        };
        match session.plan(prepare).await? {
            LogicalPlan::Statement(datafusion::logical_expr::Statement::Prepare(p)) => {
                Arc::unwrap_or_clone(p.input)
            }
            other => other,
        }
    };
    let plan = bind(plan, params)?;
    let stream = session.execute_query_plan(plan).await?;
    Ok(collect(stream).await?)
}

/// Evaluates a constant SQL expression (a column DEFAULT) as a value of `ty`.
pub async fn eval_const(
    session: &mut Session,
    expr_sql: &str,
    ty: &duet_common::SqlType,
    column: &str,
) -> Result<Datum> {
    session.publish_view();
    let stmt = parse_one(&format!("SELECT {expr_sql}"))?;
    let batches = run_collect(session, stmt, &ParamValues::List(vec![])).await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| PgError::new(SqlState::InternalError, "constant produced no row"))?;
    let mut d = assign_in(batch.column(0), ty, column, &session.time_zone())?;
    if ty.is_unconstrained_numeric() {
        let companion = crate::types::companion_columns(batch.schema().as_ref())[0];
        crate::types::keep_scales(
            &mut d,
            batch.column(0),
            companion.map(|k| batch.column(k)),
            ty,
        );
    }
    Ok(d.swap_remove(0))
}

pub(crate) async fn defaults(
    session: &mut Session,
    def: &TableDef,
    needed: &[usize],
) -> Result<Vec<Datum>> {
    let mut out = vec![Datum::Null; def.columns.len()];
    for &c in needed {
        if let Some(e) = &def.columns[c].default_expr {
            // A sequence default differs per row: `SequenceDefaults` fills it.
            if crate::sequence::nextval_target(e).is_none() {
                out[c] = eval_const(session, e, &def.columns[c].ty, &def.columns[c].name).await?;
            }
        }
    }
    Ok(out)
}

/// The columns of a table whose default is `nextval(...)` (serial and identity columns),
/// filled with a new value for each row that takes the default.
pub(crate) struct SequenceDefaults {
    columns: Vec<(usize, String, bool)>,
}

impl SequenceDefaults {
    pub(crate) fn of(session: &Session, def: &TableDef) -> Self {
        let columns = def
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let seq = crate::sequence::nextval_target(c.default_expr.as_deref()?)?;
                let always = session
                    .store()
                    .table(&seq)
                    .and_then(|s| s.sequence.clone())
                    .and_then(|s| s.identity)
                    .is_some_and(|k| k == "always");
                Some((i, seq, always))
            })
            .collect();
        Self { columns }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Only the columns not among `given` (the ones a COPY's input leaves out).
    pub(crate) fn without(mut self, given: &[usize]) -> Self {
        self.columns.retain(|(c, _, _)| !given.contains(c));
        self
    }

    /// 428C9 if a value is given for a `GENERATED ALWAYS` identity column.
    pub(crate) fn check_explicit(&self, def: &TableDef, target: &[usize]) -> Result<()> {
        for (c, _, always) in &self.columns {
            if *always && target.contains(c) {
                let name = &def.columns[*c].name;
                return Err(PgError::new(
                    SqlState::GeneratedAlways,
                    format!("cannot insert a non-DEFAULT value into column \"{name}\""),
                )
                .with_detail(format!(
                    "Column \"{name}\" is an identity column defined as GENERATED ALWAYS."
                )));
            }
        }
        Ok(())
    }

    /// Gives `row` its next sequence values where `defaulted(column)` says it takes the
    /// default.
    pub(crate) fn fill(
        &self,
        session: &Session,
        row: &mut [Datum],
        defaulted: impl Fn(usize) -> bool,
    ) -> Result<()> {
        for (c, seq, _) in &self.columns {
            if defaulted(*c) {
                row[*c] = Datum::Int(session.sequences.nextval(seq)?);
            }
        }
        Ok(())
    }
}

/// The SQL type a value assigned to a float column is cast to (`None` for other columns).
fn float_type(ty: &duet_common::SqlType) -> Option<sqlparser::ast::DataType> {
    match ty {
        duet_common::SqlType::Float64 => Some(sqlparser::ast::DataType::DoublePrecision),
        duet_common::SqlType::Float32 => Some(sqlparser::ast::DataType::Real),
        _ => None,
    }
}

fn is_default_keyword(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

async fn insert(
    session: &mut Session,
    txn: &mut Transaction,
    ins: Insert,
    params: &ParamValues,
) -> Result<Outcome> {
    let TableObject::TableName(name) = &ins.table else {
        return Err(PgError::unsupported("INSERT into a table function"));
    };
    let table = table_name(name)?;
    let def = session.table(&table)?;
    let (mut on_conflict, do_update) = match &ins.on {
        None => (None, None),
        Some(sqlparser::ast::OnInsert::OnConflict(oc)) => {
            let update = match &oc.action {
                sqlparser::ast::OnConflictAction::DoNothing => None,
                sqlparser::ast::OnConflictAction::DoUpdate(u) => {
                    if oc.conflict_target.is_none() {
                        return Err(PgError::new(
                            SqlState::SyntaxError,
                            "ON CONFLICT DO UPDATE requires inference specification or constraint name",
                        ));
                    }
                    Some(u.clone())
                }
            };
            let conflicts = Conflicts::new(&def, oc.conflict_target.as_ref())?;
            (Some(conflicts), update)
        }
        Some(other) => return Err(PgError::unsupported(format!("INSERT … {other}"))),
    };
    let alias = ins
        .table_alias
        .as_ref()
        .map(|a| ident_name(&a.alias))
        .unwrap_or_else(|| table.clone());
    let mut target: Vec<usize> = Vec::new();
    for c in &ins.columns {
        let cname =
            c.0.last()
                .and_then(|p| p.as_ident())
                .map(ident_name)
                .unwrap_or_default();
        let pos = def.column_index(&cname).ok_or_else(|| {
            PgError::new(
                SqlState::UndefinedColumn,
                format!("column \"{cname}\" of relation \"{table}\" does not exist"),
            )
        })?;
        if target.contains(&pos) {
            return Err(PgError::new(
                SqlState::DuplicateColumn,
                format!("column \"{cname}\" specified more than once"),
            ));
        }
        target.push(pos);
    }
    let explicit = !target.is_empty();
    if !explicit {
        target = (0..def.columns.len()).collect();
    }

    // VALUES items written as DEFAULT become NULL in the query and take the default after.
    let mut default_cells: HashSet<(usize, usize)> = HashSet::new();
    let mut source = ins.source;
    if let Some(q) = source.as_mut() {
        if let SetExpr::Values(values) = q.body.as_mut() {
            for (r, row) in values.rows.iter_mut().enumerate() {
                for (c, item) in row.content.iter_mut().enumerate() {
                    if is_default_keyword(item) {
                        default_cells.insert((r, c));
                        *item = Expr::value(sqlparser::ast::Value::Null);
                    } else if let Some(float) =
                        target.get(c).and_then(|&t| float_type(&def.columns[t].ty))
                    {
                        // PostgreSQL assigns each value to its column: a float column's
                        // values are floats, not first a common numeric type of the rows.
                        *item = Expr::Cast {
                            kind: sqlparser::ast::CastKind::Cast,
                            expr: Box::new(std::mem::replace(
                                item,
                                Expr::value(sqlparser::ast::Value::Null),
                            )),
                            data_type: float,
                            array: false,
                            format: None,
                        };
                    }
                }
            }
        }
    }

    let default_values = source.is_none();
    let batches = match source {
        None => vec![],
        Some(q) => {
            session.set_view(Some(txn.view()));
            run_collect(session, Statement::Query(q), params).await?
        }
    };
    let width = batches
        .first()
        .map(|b| crate::types::visible_width(b.schema().as_ref()));
    if let Some(w) = width {
        if w > target.len() {
            return Err(PgError::new(
                SqlState::SyntaxError,
                "INSERT has more expressions than target columns",
            ));
        }
        if w < target.len() {
            if explicit {
                return Err(PgError::new(
                    SqlState::SyntaxError,
                    "INSERT has more target columns than expressions",
                ));
            }
            target.truncate(w);
        }
    }
    let unassigned: Vec<usize> = (0..def.columns.len())
        .filter(|c| default_values || !target.contains(c) || !default_cells.is_empty())
        .collect();
    let base = defaults(session, &def, &unassigned).await?;
    let sequences = SequenceDefaults::of(session, &def);
    if !default_values {
        // Columns some row gives a value (not the DEFAULT keyword).
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let explicit_cols: Vec<usize> = target
            .iter()
            .enumerate()
            .filter(|(j, _)| (0..rows).any(|r| !default_cells.contains(&(r, *j))))
            .map(|(_, &c)| c)
            .collect();
        sequences.check_explicit(&def, &explicit_cols)?;
    }

    let mut inserted: Vec<Row> = Vec::new();
    let mut count = 0usize;
    let with_fk = crate::foreign_key::involved(session.store(), &def);
    let mut fk_rows: Vec<Row> = Vec::new();
    let mut fk_updates = Vec::new();
    let mut row_no = 0usize;
    if default_values {
        // INSERT … DEFAULT VALUES: one row of defaults.
        let mut row = base.clone();
        sequences.fill(session, &mut row, |_| true)?;
        crate::check::check_rows(session, &def, std::slice::from_ref(&row))?;
        txn.insert(&def, row.clone())?;
        if with_fk {
            fk_rows.push(row.clone());
        }
        if ins.returning.is_some() {
            inserted.push(row);
        }
        count = 1;
    }
    let zone = session.time_zone();
    for batch in &batches {
        let cols = assign_columns(batch, 0, &def, &target, &zone)?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        #[allow(clippy::needless_range_loop)] // `i` indexes every column of `cols`
        for i in 0..batch.num_rows() {
            let mut row = base.clone();
            for (j, &c) in target.iter().enumerate() {
                if !default_cells.contains(&(row_no, j)) {
                    row[c] = cols[j][i].clone();
                }
            }
            if !sequences.is_empty() {
                sequences.fill(session, &mut row, |c| {
                    match target.iter().position(|&t| t == c) {
                        Some(j) => default_cells.contains(&(row_no, j)),
                        None => true,
                    }
                })?;
            }
            rows.push(row);
            row_no += 1;
        }
        crate::check::check_rows(session, &def, &rows)?;
        let mut conflicts = Vec::new();
        if let Some(c) = on_conflict.as_mut() {
            match &do_update {
                None => rows = c.keep(txn, &def, rows)?,
                Some(_) => (rows, conflicts) = c.split(txn, &def, rows)?,
            }
        }
        count += rows.len();
        if ins.returning.is_some() {
            inserted.extend(rows.iter().cloned());
        }
        if with_fk {
            fk_rows.extend(rows.iter().cloned());
        }
        txn.insert_many(&def, rows)?;
        if let Some(action) = &do_update {
            let updated = crate::on_conflict::update_conflicts(
                session, txn, &def, &alias, action, conflicts, params,
            )
            .await?;
            count += updated.len();
            for (old, new) in updated {
                if ins.returning.is_some() {
                    inserted.push(new.clone());
                }
                if with_fk {
                    fk_updates.push(crate::foreign_key::Change::Updated(old, new));
                }
            }
        }
    }
    if with_fk {
        let mut changes: Vec<_> = fk_rows
            .into_iter()
            .map(crate::foreign_key::Change::Inserted)
            .collect();
        changes.append(&mut fk_updates);
        crate::foreign_key::after_write(session, txn, &def, changes).await?;
    }
    match ins.returning {
        Some(items) => {
            returning(
                session,
                &def,
                &alias,
                &inserted,
                &items,
                "INSERT 0".to_string(),
            )
            .await
        }
        None => Ok(Outcome::Command(format!("INSERT 0 {count}"))),
    }
}

/// Reads the target rows: every column, then the key, then `extra` expressions.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn read_targets(
    session: &mut Session,
    txn: &Transaction,
    table: &str,
    alias: &str,
    extra: &[Expr],
    from: &[TableWithJoins],
    selection: Option<&Expr>,
    params: &ParamValues,
) -> Result<Vec<RecordBatch>> {
    let mut sql = format!("SELECT {}.*", quote(alias));
    for (i, e) in extra.iter().enumerate() {
        sql.push_str(&format!(", ({e}) AS \"__duet_new_{i}\""));
    }
    sql.push_str(&format!(
        " FROM {DML_SCHEMA}.{} AS {}",
        quote(table),
        quote(alias)
    ));
    for f in from {
        sql.push_str(&format!(", {f}"));
    }
    if let Some(w) = selection {
        sql.push_str(&format!(" WHERE {w}"));
    }
    let stmt = parse_one(&sql)?;
    session.set_view(Some(txn.view()));
    run_collect(session, stmt, params).await
}

pub(crate) fn keys_of(batch: &RecordBatch, key_col: usize) -> Result<&BinaryArray> {
    batch
        .column(key_col)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .ok_or_else(|| {
            PgError::new(
                SqlState::InternalError,
                format!("{KEY_COLUMN} is not binary"),
            )
        })
}

#[allow(clippy::too_many_arguments)]
async fn update(
    session: &mut Session,
    txn: &mut Transaction,
    table: &str,
    alias: &str,
    sets: Vec<(String, Expr)>,
    from: Vec<TableWithJoins>,
    selection: Option<Expr>,
    returning_items: Option<Vec<SelectItem>>,
    params: &ParamValues,
) -> Result<Outcome> {
    let def = session.table(table)?;
    let mut targets = Vec::with_capacity(sets.len());
    for (col, _) in &sets {
        let pos = def.column_index(col).ok_or_else(|| {
            PgError::new(
                SqlState::UndefinedColumn,
                format!("column \"{col}\" of relation \"{table}\" does not exist"),
            )
        })?;
        targets.push(pos);
    }
    let exprs: Vec<Expr> = sets.into_iter().map(|(_, e)| e).collect();
    let batches = read_targets(
        session,
        txn,
        table,
        alias,
        &exprs,
        &from,
        selection.as_ref(),
        params,
    )
    .await?;
    let ncols = def.columns.len();
    let types = def.types();
    let zone = session.time_zone();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut updated = Vec::new();
    let with_fk = crate::foreign_key::involved(session.store(), &def);
    let mut fk_changes = Vec::new();
    for batch in &batches {
        let keys = keys_of(batch, ncols)?;
        // The stored values, unconstrained numerics with their display scales.
        let companions = crate::types::companion_columns(batch.schema().as_ref());
        let old_cols: Vec<Vec<Datum>> = (0..ncols)
            .map(|c| {
                let mut datums =
                    duet_common::batch::array_to_datums(batch.column(c).as_ref(), types[c])?;
                if let Some(k) = companions[c] {
                    if let Some(s) = batch.column(k).as_any().downcast_ref() {
                        duet_common::batch::with_scales(&mut datums, s);
                    }
                }
                Ok(datums)
            })
            .collect::<Result<_>>()?;
        let new_cols = assign_columns(batch, ncols + 1, &def, &targets, &zone)?;
        let mut changes: Vec<(&[u8], Row)> = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let key = keys.value(i);
            // UPDATE … FROM may join a row more than once; PostgreSQL updates it once.
            if !seen.insert(key.to_vec()) {
                continue;
            }
            let old: Row = old_cols.iter().map(|c| c[i].clone()).collect();
            let mut row = old.clone();
            for (j, &c) in targets.iter().enumerate() {
                row[c] = new_cols[j][i].clone();
            }
            if with_fk {
                fk_changes.push(crate::foreign_key::Change::Updated(old, row.clone()));
            }
            changes.push((key, row));
        }
        if !def.checks.is_empty() {
            let rows: Vec<Row> = changes.iter().map(|(_, r)| r.clone()).collect();
            crate::check::check_rows(session, &def, &rows)?;
        }
        for (key, row) in changes {
            txn.update(&def, key, row.clone())?;
            if returning_items.is_some() {
                updated.push(row);
            }
        }
    }
    if with_fk {
        crate::foreign_key::after_write(session, txn, &def, fk_changes).await?;
    }
    let n = seen.len();
    match returning_items {
        Some(items) => returning(session, &def, alias, &updated, &items, "UPDATE".into()).await,
        None => Ok(Outcome::Command(format!("UPDATE {n}"))),
    }
}

#[allow(clippy::too_many_arguments)]
async fn delete(
    session: &mut Session,
    txn: &mut Transaction,
    table: &str,
    alias: &str,
    using: Vec<TableWithJoins>,
    selection: Option<Expr>,
    returning_items: Option<Vec<SelectItem>>,
    params: &ParamValues,
) -> Result<Outcome> {
    let def = session.table(table)?;
    let batches = read_targets(
        session,
        txn,
        table,
        alias,
        &[],
        &using,
        selection.as_ref(),
        params,
    )
    .await?;
    let ncols = def.columns.len();
    let mut deleted = Vec::new();
    let mut n = 0usize;
    let with_fk = crate::foreign_key::involved(session.store(), &def);
    let mut fk_changes = Vec::new();
    for batch in &batches {
        let keys = keys_of(batch, ncols)?;
        for i in 0..batch.num_rows() {
            if let Some(old) = txn.delete(&def, keys.value(i))? {
                n += 1;
                if with_fk {
                    fk_changes.push(crate::foreign_key::Change::Deleted(old.clone()));
                }
                if returning_items.is_some() {
                    deleted.push(old);
                }
            }
        }
    }
    if with_fk {
        crate::foreign_key::after_write(session, txn, &def, fk_changes).await?;
    }
    match returning_items {
        Some(items) => returning(session, &def, alias, &deleted, &items, "DELETE".into()).await,
        None => Ok(Outcome::Command(format!("DELETE {n}"))),
    }
}

/// Evaluates a RETURNING list over the written rows.
async fn returning(
    session: &mut Session,
    def: &TableDef,
    alias: &str,
    rows: &[Row],
    items: &[SelectItem],
    tag: String,
) -> Result<Outcome> {
    let batch = crate::scaled_rows::batch_with_companions(def, rows)?;
    let rows = Arc::new(crate::scaled_rows::ScaledRows::new(batch)?);
    let plan = plan_over_rows(session, rows, alias, items).await?;
    // The result keeps its numerics' display scales (companion columns, for the wire).
    let stream = session.execute_query_plan(plan).await?;
    let schema = stream.schema();
    let batches = collect(stream).await?;
    Ok(Outcome::Batches {
        schema,
        batches,
        tag,
    })
}

/// Plans `SELECT <items> FROM <rows> AS <alias>`: the rows (with the table's schema) are a
/// scratch table for the duration of planning. RETURNING runs the plan; Describe only
/// needs its schema.
pub(crate) async fn plan_over_rows(
    session: &mut Session,
    rows: Arc<dyn datafusion::catalog::TableProvider>,
    alias: &str,
    items: &[SelectItem],
) -> Result<LogicalPlan> {
    session
        .scratch()
        .register_table(RETURNING_TABLE.to_string(), rows)?;
    let list: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    let sql = format!(
        "SELECT {} FROM {SCRATCH_SCHEMA}.{RETURNING_TABLE} AS {}",
        list.join(", "),
        quote(alias)
    );
    let planned = match parse_one(&sql) {
        Ok(stmt) => session.plan(stmt).await,
        Err(e) => Err(e),
    };
    // The plan holds the table itself, so it stays valid after the name is gone.
    session.scratch().deregister_table(RETURNING_TABLE)?;
    planned
}
