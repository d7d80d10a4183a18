//! CHECK constraints: every row an INSERT, UPDATE or COPY writes is tested against each of
//! its table's conditions; a row that makes one false (NULL passes, as in PostgreSQL) fails
//! the statement with 23514. A condition is SQL text over the table's columns, planned and
//! evaluated by DataFusion over the statement's new rows in one batch.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::common::DFSchema;
use duet_common::{Datum, Row, TableDef};

use crate::error::{from_datafusion, PgError, Result, SqlState};
use crate::session::Session;

/// 23514 unless every row of `rows` (full rows of `def`) satisfies each CHECK of `def`.
pub(crate) fn check_rows(session: &Session, def: &TableDef, rows: &[Row]) -> Result<()> {
    if def.checks.is_empty() || rows.is_empty() {
        return Ok(());
    }
    let all: Vec<usize> = (0..def.columns.len()).collect();
    let batch = duet_common::batch::rows_to_batch(def, &all, rows).map_err(PgError::from)?;
    for (check, physical) in def.checks.iter().zip(plan_checks(session, def)?) {
        let value = physical
            .evaluate(&batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(from_datafusion)?;
        let Some(ok) = value.as_boolean_opt() else {
            return Err(PgError::new(
                SqlState::DatatypeMismatch,
                format!("check constraint \"{}\" is not boolean", check.name),
            ));
        };
        if let Some(i) = (0..ok.len()).find(|&i| ok.is_valid(i) && !ok.value(i)) {
            let values: Vec<String> = rows[i]
                .iter()
                .map(|d| match d {
                    Datum::Null => "null".to_string(),
                    d => d.to_string(),
                })
                .collect();
            return Err(PgError::new(
                SqlState::CheckViolation,
                format!(
                    "new row for relation \"{}\" violates check constraint \"{}\"",
                    def.name, check.name
                ),
            )
            .with_detail(format!("Failing row contains ({}).", values.join(", "))));
        }
    }
    Ok(())
}

/// The CHECK conditions of `def`, planned over its columns (an error for a condition
/// that names no column of the table or is not boolean).
pub(crate) fn plan_checks(
    session: &Session,
    def: &TableDef,
) -> Result<Vec<std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>>> {
    let schema = duet_common::batch::table_schema(def, None);
    let schema = DFSchema::try_from(schema.as_ref().clone()).map_err(from_datafusion)?;
    let ctx = session.context();
    def.checks
        .iter()
        .map(|check| {
            let expr = ctx
                .parse_sql_expr(&check.expr, &schema)
                .map_err(from_datafusion)?;
            ctx.create_physical_expr(expr, &schema)
                .map_err(from_datafusion)
        })
        .collect()
}

/// PostgreSQL's name for an unnamed CHECK on `table`: `table_col_check` when it reads one
/// column, else `table_check`, with a number added until it is free among `taken`.
pub(crate) fn default_name(
    table: &str,
    columns: &[String],
    taken: &[duet_common::catalog::CheckDef],
) -> String {
    let base = match columns {
        [one] => format!("{table}_{one}_check"),
        _ => format!("{table}_check"),
    };
    let mut name = base.clone();
    let mut n = 0;
    while taken.iter().any(|c| c.name == name) {
        n += 1;
        name = format!("{base}{n}");
    }
    name
}

/// The table columns `expr` reads (by name, in `def`'s order).
pub(crate) fn columns_read(def: &TableDef, expr: &sqlparser::ast::Expr) -> Vec<String> {
    let mut names = Vec::new();
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        if let sqlparser::ast::Expr::Identifier(i) = e {
            let n = crate::ident::ident_name(i);
            if def.column_index(&n).is_some() && !names.contains(&n) {
                names.push(n);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    names
}
