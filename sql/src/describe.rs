//! Describe for the extended protocol: the types of a statement's parameters and the
//! columns it returns, worked out before it runs (DataFusion plans a query; DML takes its
//! parameters' types from the target columns and its WHERE clause, and its RETURNING
//! columns from a plan over the table's rows).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use duet_common::TableDef;
use sqlparser::ast::{Delete, Expr, Insert, SetExpr, Statement, Update, Value};

use crate::connection::parse_sql;
use crate::error::PgError;
use crate::ident::{ident_name, quote, table_name};
use crate::session::{Session, DML_SCHEMA};

/// A statement's parameter types (`None`: unknown) and result columns (`None`: no rows). A
/// parameter's field carries its declared type where the Arrow type does not say it (a
/// uuid, json or jsonb parameter, see `duet_common::batch::column_field`).
pub type Description = (Vec<Option<FieldRef>>, Option<SchemaRef>);

/// The field of a parameter of a column's type `ty`.
pub(crate) fn param_field(ty: &duet_common::SqlType) -> FieldRef {
    Arc::new(duet_common::batch::column_field("", ty, true))
}

fn placeholder_index(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()),
            _ => None,
        },
        _ => None,
    }
}

/// The highest `$n` in `stmt`.
pub fn max_placeholder(stmt: &Statement) -> usize {
    let mut max = 0;
    let _ = sqlparser::ast::visit_expressions(stmt, |e| {
        if let Some(i) = placeholder_index(e) {
            max = max.max(i);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    max
}

/// `$n::type` and `CAST($n AS type)`: the parameter has the type it is cast to, as
/// PostgreSQL infers it (asyncpg sends an int for `$1::int` only if ParameterDescription
/// says int4). The first cast of a parameter decides.
fn cast_placeholder_types(stmt: &Statement, out: &mut [Option<FieldRef>]) {
    let _ = sqlparser::ast::visit_expressions(stmt, |e| {
        if let Expr::Cast {
            expr, data_type, ..
        } = e
        {
            if let Some(i) = placeholder_index(expr) {
                let ty = oid_param_field(data_type)
                    .ok_or(())
                    .or_else(|()| crate::types::column_type(data_type).map(|t| param_field(&t)));
                if let (Some(slot), Ok(ty)) = (i.checked_sub(1).and_then(|i| out.get_mut(i)), ty) {
                    if slot.is_none() {
                        *slot = Some(ty);
                    }
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// The field of a parameter cast to `oid` or `oid[]` (not column types in DuetDB): an
/// `Int32` or a list of them that declares the type, as PostgreSQL describes it (asyncpg
/// sends its type lookups an `oid[]`).
fn oid_param_field(ty: &sqlparser::ast::DataType) -> Option<FieldRef> {
    use datafusion::arrow::datatypes::{DataType, Field};
    use sqlparser::ast::{ArrayElemTypeDef, DataType as Ast};
    let is_oid = |t: &Ast| matches!(t, Ast::Custom(name, args) if args.is_empty() && name.to_string().eq_ignore_ascii_case("oid"));
    let (data_type, declared) = match ty {
        t if is_oid(t) => (DataType::Int32, "oid"),
        Ast::Array(ArrayElemTypeDef::SquareBracket(elem, None)) if is_oid(elem) => (
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
            "oid[]",
        ),
        _ => return None,
    };
    Some(Arc::new(
        Field::new("", data_type, true).with_metadata(
            [(
                duet_common::batch::PG_DECLARED_TYPE.to_string(),
                declared.to_string(),
            )]
            .into(),
        ),
    ))
}

fn merge_plan_types(out: &mut [Option<FieldRef>], found: HashMap<String, Option<FieldRef>>) {
    for (k, v) in found {
        if let Some(i) = k.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            if i >= 1 && i <= out.len() && out[i - 1].is_none() {
                out[i - 1] = v;
            }
        }
    }
}

/// Empties a session's view slot when dropped.
struct UnpinView(duet_router::ViewSlot);

impl Drop for UnpinView {
    fn drop(&mut self) {
        *self.0.lock() = None;
    }
}

/// Types of the placeholders in a DML statement's WHERE clause, as DataFusion infers them
/// when the clause filters the target table (best effort: unknown stays unknown).
async fn infer_where_params(
    session: &Session,
    table: &str,
    alias: &str,
    selection: Option<&str>,
    types: &mut [Option<FieldRef>],
) {
    let Some(w) = selection else { return };
    let sql = format!(
        "SELECT 1 FROM {DML_SCHEMA}.{} AS {} WHERE {w}",
        quote(table),
        quote(alias)
    );
    let Ok(mut stmts) = parse_sql(&sql) else {
        return;
    };
    if stmts.len() != 1 {
        return;
    }
    if let Ok(plan) = session.plan(stmts.remove(0)).await {
        if let Ok(found) = plan.get_parameter_fields() {
            merge_plan_types(types, found);
        }
    }
}

async fn returning_schema(
    session: &mut Session,
    def: &duet_common::TableDef,
    alias: &str,
    items: Option<&[sqlparser::ast::SelectItem]>,
) -> Result<Option<SchemaRef>, PgError> {
    let Some(items) = items else { return Ok(None) };
    let schema = duet_common::batch::table_schema(def, None);
    let rows = datafusion::datasource::MemTable::try_new(schema, vec![vec![]])?;
    let plan = crate::dml::plan_over_rows(session, Arc::new(rows), alias, items).await?;
    Ok(Some(Arc::new(plan.schema().as_arrow().clone())))
}

/// Describes `stmt` on `session` (its transaction's snapshot, released afterwards).
pub async fn describe(session: &mut Session, stmt: &Statement) -> Result<Description, PgError> {
    let mut types: Vec<Option<FieldRef>> = vec![None; max_placeholder(stmt)];
    cast_placeholder_types(stmt, &mut types);
    session.publish_view();
    // Planning for Describe must not leave the snapshot pinned afterwards.
    let _unpin = UnpinView(session.view_slot().clone());
    let schema = match stmt {
        Statement::Query(q) if crate::session::set_config_call(q).is_some() => Some(Arc::new(
            Schema::new(vec![Field::new("set_config", DataType::Utf8, true)]),
        )),
        Statement::Fetch { name, .. } => Some(session.cursor_schema(name)?),
        Statement::Query(_) | Statement::Explain { .. } => {
            // `set_config` calls are planned as the values they return.
            let mut stmt = stmt.clone();
            crate::colnames::name_outputs(&mut stmt);
            crate::session::take_set_config_calls(&mut stmt);
            let plan = session.plan(stmt).await?;
            merge_plan_types(&mut types, plan.get_parameter_fields()?);
            Some(session.result_schema(plan))
        }
        Statement::ShowVariable { variable } => {
            let key = crate::session::setting_name(
                &variable
                    .iter()
                    .map(|i| i.value.to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            let name = crate::session::shown_name(&key).to_string();
            Some(Arc::new(Schema::new(vec![Field::new(
                name,
                DataType::Utf8,
                true,
            )])))
        }
        Statement::Insert(ins) => describe_insert(session, ins, &mut types).await?,
        Statement::Update(upd) => describe_update(session, upd, &mut types).await?,
        Statement::Delete(del) => describe_delete(session, del, &mut types).await?,
        _ => None,
    };
    Ok((types, schema))
}

/// The table a DML statement names, if it exists.
fn target(
    session: &Session,
    name: &sqlparser::ast::ObjectName,
) -> Result<Option<Arc<TableDef>>, PgError> {
    Ok(session.store().table(&table_name(name)?))
}

/// `INSERT`: each `$n` in VALUES takes its target column's type.
async fn describe_insert(
    session: &mut Session,
    ins: &Insert,
    types: &mut [Option<FieldRef>],
) -> Result<Option<SchemaRef>, PgError> {
    let sqlparser::ast::TableObject::TableName(name) = &ins.table else {
        return Ok(None);
    };
    let Some(def) = target(session, name)? else {
        return Ok(None);
    };
    let positions: Vec<usize> = if ins.columns.is_empty() {
        (0..def.columns.len()).collect()
    } else {
        ins.columns
            .iter()
            .filter_map(|c| {
                c.0.last()
                    .and_then(|p| p.as_ident())
                    .and_then(|i| def.column_index(&ident_name(i)))
            })
            .collect()
    };
    if let Some(SetExpr::Values(values)) = ins.source.as_ref().map(|q| q.body.as_ref()) {
        for row in &values.rows {
            for (j, item) in row.content.iter().enumerate() {
                if let (Some(p), Some(&c)) = (placeholder_index(item), positions.get(j)) {
                    if p >= 1 && p <= types.len() {
                        types[p - 1] = Some(param_field(&def.columns[c].ty));
                    }
                }
            }
        }
    }
    let alias = ins
        .table_alias
        .as_ref()
        .map(|a| ident_name(&a.alias))
        .unwrap_or_else(|| def.name.clone());
    returning_schema(session, &def, &alias, ins.returning.as_deref()).await
}

/// `UPDATE`: a `$n` assigned to a column takes its type; the others are typed from the
/// WHERE clause and the assignments read as comparisons.
async fn describe_update(
    session: &mut Session,
    upd: &Update,
    types: &mut [Option<FieldRef>],
) -> Result<Option<SchemaRef>, PgError> {
    let sqlparser::ast::TableFactor::Table { name, alias, .. } = &upd.table.relation else {
        return Ok(None);
    };
    let Some(def) = target(session, name)? else {
        return Ok(None);
    };
    let alias = alias
        .as_ref()
        .map(|a| ident_name(&a.name))
        .unwrap_or_else(|| def.name.clone());
    for a in &upd.assignments {
        if let (sqlparser::ast::AssignmentTarget::ColumnName(c), Some(p)) =
            (&a.target, placeholder_index(&a.value))
        {
            let pos =
                c.0.last()
                    .and_then(|p| p.as_ident())
                    .and_then(|i| def.column_index(&ident_name(i)));
            if let Some(pos) = pos {
                if p >= 1 && p <= types.len() {
                    types[p - 1] = Some(param_field(&def.columns[pos].ty));
                }
            }
        }
    }
    // `SET a = a + $1`: the assignment as a comparison lets DataFusion type `$1` like `a`
    // (pgbench's tpcb-like sends exactly this).
    let mut conditions: Vec<String> = upd
        .assignments
        .iter()
        .filter_map(|a| match &a.target {
            sqlparser::ast::AssignmentTarget::ColumnName(c)
                if placeholder_index(&a.value).is_none() =>
            {
                Some(format!("{c} = ({})", a.value))
            }
            _ => None,
        })
        .collect();
    conditions.extend(upd.selection.as_ref().map(|w| format!("({w})")));
    let condition = conditions.join(" AND ");
    infer_where_params(
        session,
        &def.name,
        &alias,
        (!condition.is_empty()).then_some(condition.as_str()),
        types,
    )
    .await;
    returning_schema(session, &def, &alias, upd.returning.as_deref()).await
}

/// `DELETE`: parameters typed from the WHERE clause.
async fn describe_delete(
    session: &mut Session,
    del: &Delete,
    types: &mut [Option<FieldRef>],
) -> Result<Option<SchemaRef>, PgError> {
    let tables = match &del.from {
        sqlparser::ast::FromTable::WithFromKeyword(t)
        | sqlparser::ast::FromTable::WithoutKeyword(t) => t,
    };
    let Some(sqlparser::ast::TableFactor::Table { name, alias, .. }) =
        tables.first().map(|t| &t.relation)
    else {
        return Ok(None);
    };
    let Some(def) = target(session, name)? else {
        return Ok(None);
    };
    let alias = alias
        .as_ref()
        .map(|a| ident_name(&a.name))
        .unwrap_or_else(|| def.name.clone());
    let condition = del.selection.as_ref().map(|w| w.to_string());
    infer_where_params(session, &def.name, &alias, condition.as_deref(), types).await;
    returning_schema(session, &def, &alias, del.returning.as_deref()).await
}
