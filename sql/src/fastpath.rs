//! The OLTP fast path: statements that address one row by its whole primary key never
//! enter DataFusion.
//!
//! Recognised shapes (anything else, and any value the fast path cannot convert exactly as
//! the general path would, goes the general way):
//! - `SELECT col [AS name], … | * FROM t [alias] WHERE pk1 = v1 AND pk2 = v2 …`;
//! - `UPDATE t SET c = v | c = c2 + v | c = c2 - v | c = v + c2, … WHERE <whole pk> = …`;
//! - `DELETE FROM t WHERE <whole pk> = …`;
//! - `INSERT INTO t [(cols)] VALUES (v, …), …` where every omitted column has no default.
//!
//! A value `v` is a parameter (`$n`), a literal (number, string, boolean, NULL), or
//! `CURRENT_TIMESTAMP` / `now()` for a timestamp column. A statement is recognised once per
//! prepared statement ([`FastPlan::recognize`]; simple-query statements each time, which is
//! a walk of the parsed tree), bound to its parameters ([`FastPlan::bind`]), and run against
//! the row store at the transaction's snapshot ([`crate::session::Session`]).
//! Binding refuses (and the statement goes the general way) when a parameter does not fit
//! its column exactly, so the general path reports every error with its own SQLSTATE.

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use duet_common::{Datum, Row, SqlType, TableDefRef};
use duet_rowstore::Store;
use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Expr, FromTable, FunctionArguments, GroupByExpr, ObjectName,
    ObjectNamePart, Query, Select, SelectFlavor, SelectItem, SetExpr, Statement, TableFactor,
    TableObject, TableWithJoins, UnaryOperator, Value,
};

use crate::ident::{ident_name, table_name};

/// A value in a fast-path statement.
#[derive(Debug, Clone)]
enum Operand {
    /// `$n` (0-based here).
    Param(usize),
    /// A literal, already of its column's type.
    Const(Datum),
    /// `CURRENT_TIMESTAMP` / `now()` for a timestamp column.
    Now,
}

/// Width of an integer operand (PostgreSQL's int2/int4/int8), for `c2 ± v`'s result type.
fn int_width(ty: &SqlType) -> Option<u8> {
    match ty {
        SqlType::Int16 => Some(2),
        SqlType::Int32 => Some(4),
        SqlType::Int64 => Some(8),
        _ => None,
    }
}

fn fits(v: i128, width: u8) -> bool {
    match width {
        2 => i16::try_from(v).is_ok(),
        4 => i32::try_from(v).is_ok(),
        _ => i64::try_from(v).is_ok(),
    }
}

/// `SET c = …`.
#[derive(Debug, Clone)]
enum Assign {
    Value(Operand),
    /// `c2 + v` (or `c2 - v` with `negate`): integer columns only.
    Add {
        column: usize,
        operand: Operand,
        negate: bool,
    },
}

#[derive(Debug, Clone)]
enum Op {
    Select {
        key: Vec<Operand>,
        /// Positions read: the output columns, then the companions (display scales) of
        /// those that are unconstrained numerics.
        columns: Vec<usize>,
        /// The result's columns, as Describe reports them.
        schema: SchemaRef,
        /// The result batch's schema: `schema` and the companions, tagged for the wire.
        output: SchemaRef,
    },
    Update {
        key: Vec<Operand>,
        sets: Vec<(usize, Assign)>,
    },
    Delete {
        key: Vec<Operand>,
    },
    /// Per row, one operand per column (`None`: NULL, an omitted column without default).
    Insert {
        rows: Vec<Vec<Option<Operand>>>,
    },
}

/// A recognised statement.
#[derive(Debug, Clone)]
pub struct FastPlan {
    pub def: TableDefRef,
    op: Op,
}

/// A fast-path statement bound to its parameters.
#[derive(Debug)]
pub enum Bound {
    /// Read the row at `pk` (encoded) and return `columns` of it.
    Select {
        pk: Option<Vec<u8>>,
        columns: Vec<usize>,
        schema: SchemaRef,
    },
    /// Update the row at `pk` (`None`: a NULL key, no row).
    Update {
        pk: Option<Vec<u8>>,
        plan: Update,
    },
    Delete {
        pk: Option<Vec<u8>>,
    },
    Insert {
        rows: Vec<Row>,
    },
}

/// The SET list of a bound UPDATE, applied to the row it finds.
#[derive(Debug)]
pub struct Update {
    sets: Vec<(usize, BoundAssign)>,
}

#[derive(Debug)]
enum BoundAssign {
    Value(Datum),
    Add {
        column: usize,
        value: Datum,
        /// Width of the value's type (for the result type of `c2 + v`).
        width: u8,
        negate: bool,
    },
}

impl Update {
    /// The new row, or `None` when the result cannot be computed here exactly (integer
    /// overflow, a NULL into a NOT NULL column): the general path then reports the error.
    pub fn apply(&self, def: &duet_common::TableDef, old: &Row) -> Option<Row> {
        let mut new = old.clone();
        for (target, a) in &self.sets {
            let ty = &def.columns[*target].ty;
            let v = match a {
                BoundAssign::Value(d) => d.clone(),
                BoundAssign::Add {
                    column,
                    value,
                    width,
                    negate,
                } => match (&old[*column], value) {
                    (Datum::Int(a), Datum::Int(b)) => {
                        let w = int_width(&def.columns[*column].ty)?.max(*width);
                        let r = if *negate {
                            *a as i128 - *b as i128
                        } else {
                            *a as i128 + *b as i128
                        };
                        if !fits(r, w) || !fits(r, int_width(ty)?) {
                            return None;
                        }
                        Datum::Int(r as i64)
                    }
                    (Datum::Null, _) | (_, Datum::Null) => Datum::Null,
                    _ => return None,
                },
            };
            if v.is_null() && def.not_null(*target) {
                return None;
            }
            new[*target] = v;
        }
        Some(new)
    }
}

/// A literal converted to a column's type exactly as PostgreSQL would assign or compare it.
fn literal(v: &Value, negative: bool, ty: &SqlType) -> Option<Datum> {
    match (v, ty) {
        (Value::Null, _) if !negative => Some(Datum::Null),
        (Value::Number(s, _), _) => {
            let s = if negative { format!("-{s}") } else { s.clone() };
            match ty {
                SqlType::Int16 | SqlType::Int32 | SqlType::Int64 => {
                    let v: i64 = s.parse().ok()?;
                    fits(v as i128, int_width(ty)?).then_some(Datum::Int(v))
                }
                SqlType::Float64 => s.parse().ok().map(Datum::Float),
                _ => None,
            }
        }
        (Value::SingleQuotedString(s), SqlType::Text | SqlType::Varchar(_)) if !negative => {
            text_datum(s, ty)
        }
        (Value::Boolean(b), SqlType::Bool) if !negative => Some(Datum::Bool(*b)),
        _ => None,
    }
}

fn text_datum(s: &str, ty: &SqlType) -> Option<Datum> {
    match ty {
        SqlType::Text | SqlType::Varchar(None) => Some(Datum::Text(s.to_string())),
        SqlType::Varchar(Some(n)) if s.chars().count() <= *n as usize => {
            Some(Datum::Text(s.to_string()))
        }
        _ => None,
    }
}

/// A parameter's value converted to a column's type; `None` when that is not exact.
fn param_datum(v: &ScalarValue, ty: &SqlType) -> Option<Datum> {
    if v.is_null() {
        return Some(Datum::Null);
    }
    match ty {
        SqlType::Int16 | SqlType::Int32 | SqlType::Int64 => {
            let (i, _) = param_int(v)?;
            fits(i as i128, int_width(ty)?).then_some(Datum::Int(i))
        }
        SqlType::Text | SqlType::Varchar(_) => match v {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)) => text_datum(s, ty),
            _ => None,
        },
        SqlType::Bool => match v {
            ScalarValue::Boolean(Some(b)) => Some(Datum::Bool(*b)),
            _ => None,
        },
        SqlType::Float64 => match v {
            ScalarValue::Float64(Some(f)) => Some(Datum::Float(*f)),
            ScalarValue::Float32(Some(f)) => Some(Datum::Float(*f as f64)),
            _ => None,
        },
        SqlType::Timestamp => match v {
            ScalarValue::TimestampMicrosecond(Some(t), None) => Some(Datum::Timestamp(*t)),
            _ => None,
        },
        _ => None,
    }
}

/// An integer parameter and the width of its type.
fn param_int(v: &ScalarValue) -> Option<(i64, u8)> {
    match v {
        ScalarValue::Int8(Some(i)) => Some((*i as i64, 2)),
        ScalarValue::Int16(Some(i)) => Some((*i as i64, 2)),
        ScalarValue::Int32(Some(i)) => Some((*i as i64, 4)),
        ScalarValue::Int64(Some(i)) => Some((*i, 8)),
        _ => None,
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn operand(e: &Expr, ty: &SqlType) -> Option<Operand> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => {
                let n: usize = p.strip_prefix('$')?.parse().ok()?;
                (n >= 1).then(|| Operand::Param(n - 1))
            }
            other => literal(other, false, ty).map(Operand::Const),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match &**expr {
            Expr::Value(v) => literal(&v.value, true, ty).map(Operand::Const),
            _ => None,
        },
        Expr::Nested(inner) => operand(inner, ty),
        Expr::Function(f) if matches!(ty, SqlType::Timestamp) => {
            let name = f.name.to_string().to_ascii_lowercase();
            let no_args = match &f.args {
                FunctionArguments::None => true,
                FunctionArguments::List(l) => l.args.is_empty() && l.clauses.is_empty(),
                FunctionArguments::Subquery(_) => false,
            };
            let plain = f.filter.is_none()
                && f.over.is_none()
                && f.within_group.is_empty()
                && matches!(f.parameters, FunctionArguments::None);
            (plain
                && no_args
                && (name == "current_timestamp" || name == "now" || name == "localtimestamp"))
                .then_some(Operand::Now)
        }
        _ => None,
    }
}

/// The single identifier of a plain table name (`t`, `public.t`), as a user table of the
/// store. Names PostgreSQL would look up in pg_catalog first are left to the general path.
fn user_table(name: &ObjectName, store: &Store) -> Option<TableDefRef> {
    let t = table_name(name).ok()?;
    if t.starts_with("pg_") {
        return None;
    }
    // A sequence is left to the general path too (which refuses writes to it).
    store.table(&t).filter(|d| d.has_rows())
}

/// `t [AS alias]` with nothing else; returns the table and the name columns may be
/// qualified with.
fn single_table(from: &[TableWithJoins], store: &Store) -> Option<(TableDefRef, String)> {
    let [TableWithJoins { relation, joins }] = from else {
        return None;
    };
    if !joins.is_empty() {
        return None;
    }
    let TableFactor::Table {
        name,
        alias,
        args,
        with_hints,
        version,
        with_ordinality,
        partitions,
        json_path,
        sample,
        index_hints,
    } = relation
    else {
        return None;
    };
    if args.is_some()
        || !with_hints.is_empty()
        || version.is_some()
        || *with_ordinality
        || !partitions.is_empty()
        || json_path.is_some()
        || sample.is_some()
        || !index_hints.is_empty()
    {
        return None;
    }
    let def = user_table(name, store)?;
    let qualifier = match alias {
        Some(a) if !a.columns.is_empty() => return None,
        Some(a) => ident_name(&a.name),
        None => def.name.clone(),
    };
    Some((def, qualifier))
}

/// A column reference `c` or `q.c` (q the table's name or alias).
fn column_ref(e: &Expr, def: &duet_common::TableDef, qualifier: &str) -> Option<usize> {
    match e {
        Expr::Identifier(i) => def.column_index(&ident_name(i)),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [q, c] if ident_name(q) == qualifier => def.column_index(&ident_name(c)),
            _ => None,
        },
        Expr::Nested(inner) => column_ref(inner, def, qualifier),
        _ => None,
    }
}

/// A WHERE clause that is exactly `pk1 = v1 AND …` over the whole primary key, each key
/// column once; the operands in key order.
fn key_of(
    selection: Option<&Expr>,
    def: &duet_common::TableDef,
    qualifier: &str,
) -> Option<Vec<Operand>> {
    if def.primary_key.is_empty() {
        return None;
    }
    let mut found: Vec<Option<Operand>> = vec![None; def.primary_key.len()];
    let mut conjuncts = vec![selection?];
    while let Some(e) = conjuncts.pop() {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                conjuncts.push(left);
                conjuncts.push(right);
            }
            Expr::Nested(inner) => conjuncts.push(inner),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                let (col, val) = match column_ref(left, def, qualifier) {
                    Some(c) => (c, right),
                    None => (column_ref(right, def, qualifier)?, left),
                };
                let pos = def.primary_key.iter().position(|&k| k == col)?;
                let ty = &def.columns[col].ty;
                // char(n) compares ignoring trailing blanks: left to the general path.
                if !matches!(
                    ty,
                    SqlType::Int16
                        | SqlType::Int32
                        | SqlType::Int64
                        | SqlType::Text
                        | SqlType::Varchar(_)
                        | SqlType::Bool
                ) || found[pos].is_some()
                {
                    return None;
                }
                found[pos] = Some(operand(val, ty)?);
            }
            _ => return None,
        }
    }
    found.into_iter().collect()
}

/// A plain `SELECT … FROM t WHERE <pk>`: the table, the output columns and names.
fn recognize_select(q: &Query, store: &Store) -> Option<FastPlan> {
    let Query {
        with,
        body,
        order_by,
        limit_clause,
        fetch,
        locks,
        for_clause,
        settings,
        format_clause,
        pipe_operators,
    } = q;
    if with.is_some()
        || order_by.is_some()
        || limit_clause.is_some()
        || fetch.is_some()
        || !locks.is_empty()
        || for_clause.is_some()
        || settings.is_some()
        || format_clause.is_some()
        || !pipe_operators.is_empty()
    {
        return None;
    }
    let SetExpr::Select(select) = &**body else {
        return None;
    };
    let Select {
        select_token: _,
        optimizer_hints,
        distinct,
        select_modifiers,
        top,
        top_before_distinct: _,
        projection,
        exclude,
        into,
        from,
        lateral_views,
        prewhere,
        selection,
        connect_by,
        group_by,
        cluster_by,
        distribute_by,
        sort_by,
        having,
        named_window,
        qualify,
        window_before_qualify: _,
        value_table_mode,
        flavor,
    } = &**select;
    let no_group =
        matches!(group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if !optimizer_hints.is_empty()
        || distinct.is_some()
        || select_modifiers.is_some()
        || top.is_some()
        || exclude.is_some()
        || into.is_some()
        || !lateral_views.is_empty()
        || prewhere.is_some()
        || !connect_by.is_empty()
        || !no_group
        || !cluster_by.is_empty()
        || !distribute_by.is_empty()
        || !sort_by.is_empty()
        || having.is_some()
        || !named_window.is_empty()
        || qualify.is_some()
        || value_table_mode.is_some()
        || !matches!(flavor, SelectFlavor::Standard)
    {
        return None;
    }
    let (def, qualifier) = single_table(from, store)?;
    let mut columns = Vec::new();
    let mut names = Vec::new();
    for item in projection {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let c = column_ref(e, &def, &qualifier)?;
                columns.push(c);
                names.push(def.columns[c].name.clone());
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                columns.push(column_ref(expr, &def, &qualifier)?);
                names.push(ident_name(alias));
            }
            SelectItem::Wildcard(opts) if opts.to_string().is_empty() => {
                for (i, c) in def.columns.iter().enumerate() {
                    columns.push(i);
                    names.push(c.name.clone());
                }
            }
            _ => return None,
        }
    }
    // Repeated output names get DataFusion-specific aliases on the general path.
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != names.len() || columns.is_empty() {
        return None;
    }
    let key = key_of(selection.as_ref(), &def, &qualifier)?;
    let base = duet_common::batch::table_schema(&def, Some(&columns));
    let fields: Vec<Field> = base
        .fields()
        .iter()
        .zip(&names)
        .map(|(f, n)| Field::clone(f).with_name(n.as_str()))
        .collect();
    let schema = Arc::new(Schema::new(fields.clone()));
    // Unconstrained numerics print with each value's display scale (its companion).
    let mut output = fields;
    for i in 0..columns.len() {
        let c = columns[i];
        if def.columns[c].ty.is_unconstrained_numeric() {
            columns.push(duet_common::numeric::COMPANION_BASE + c);
            output.push(
                Field::new(
                    format!("{}{i}", duet_common::numeric::SUFFIX),
                    datafusion::arrow::datatypes::DataType::Int32,
                    true,
                )
                .with_metadata(
                    [(
                        duet_common::numeric::DISPLAY_SCALE_OF.to_string(),
                        i.to_string(),
                    )]
                    .into(),
                ),
            );
        }
    }
    let output = Arc::new(Schema::new(output));
    Some(FastPlan {
        def,
        op: Op::Select {
            key,
            columns,
            schema,
            output,
        },
    })
}

fn recognize_update(u: &sqlparser::ast::Update, store: &Store) -> Option<FastPlan> {
    let sqlparser::ast::Update {
        update_token: _,
        optimizer_hints,
        table,
        assignments,
        from,
        selection,
        returning,
        output,
        or,
        order_by,
        limit,
    } = u;
    if !optimizer_hints.is_empty()
        || from.is_some()
        || returning.is_some()
        || output.is_some()
        || or.is_some()
        || !order_by.is_empty()
        || limit.is_some()
    {
        return None;
    }
    let (def, qualifier) = single_table(std::slice::from_ref(table), store)?;
    // CHECK and FOREIGN KEY constraints are enforced by the general path.
    if !def.checks.is_empty() || crate::foreign_key::involved(store, &def) {
        return None;
    }
    let key = key_of(selection.as_ref(), &def, &qualifier)?;
    let mut sets: Vec<(usize, Assign)> = Vec::new();
    for a in assignments {
        let AssignmentTarget::ColumnName(name) = &a.target else {
            return None;
        };
        let [ObjectNamePart::Identifier(id)] = name.0.as_slice() else {
            return None;
        };
        let target = def.column_index(&ident_name(id))?;
        if def.primary_key.contains(&target) || sets.iter().any(|(t, _)| *t == target) {
            return None;
        }
        let ty = &def.columns[target].ty;
        let assign = match operand(&a.value, ty) {
            Some(o) => Assign::Value(o),
            None => {
                let Expr::BinaryOp { left, op, right } = &a.value else {
                    return None;
                };
                int_width(ty)?;
                let negate = match op {
                    BinaryOperator::Plus => false,
                    BinaryOperator::Minus => true,
                    _ => return None,
                };
                let (column, value) = match column_ref(left, &def, &qualifier) {
                    Some(c) => (c, right),
                    None if !negate => (column_ref(right, &def, &qualifier)?, left),
                    None => return None,
                };
                // The operand is typed as an int8 literal or by its parameter's type.
                let operand = operand(value, &SqlType::Int64)?;
                if matches!(operand, Operand::Now) {
                    return None;
                }
                int_width(&def.columns[column].ty)?;
                Assign::Add {
                    column,
                    operand,
                    negate,
                }
            }
        };
        sets.push((target, assign));
    }
    if sets.is_empty() {
        return None;
    }
    Some(FastPlan {
        def,
        op: Op::Update { key, sets },
    })
}

fn recognize_delete(d: &sqlparser::ast::Delete, store: &Store) -> Option<FastPlan> {
    let sqlparser::ast::Delete {
        delete_token: _,
        optimizer_hints,
        tables,
        from,
        using,
        selection,
        returning,
        output,
        order_by,
        limit,
    } = d;
    if !optimizer_hints.is_empty()
        || !tables.is_empty()
        || using.is_some()
        || returning.is_some()
        || output.is_some()
        || !order_by.is_empty()
        || limit.is_some()
    {
        return None;
    }
    let FromTable::WithFromKeyword(from) = from else {
        return None;
    };
    let (def, qualifier) = single_table(from, store)?;
    if crate::foreign_key::is_referenced(store, &def.name) {
        return None;
    }
    let key = key_of(selection.as_ref(), &def, &qualifier)?;
    Some(FastPlan {
        def,
        op: Op::Delete { key },
    })
}

fn recognize_insert(i: &sqlparser::ast::Insert, store: &Store) -> Option<FastPlan> {
    let sqlparser::ast::Insert {
        insert_token: _,
        optimizer_hints,
        or,
        ignore,
        into,
        table,
        table_alias,
        columns,
        overwrite,
        source,
        assignments,
        partitioned,
        after_columns,
        has_table_keyword,
        on,
        returning,
        output,
        replace_into,
        priority,
        insert_alias,
        settings,
        format_clause,
        multi_table_insert_type,
        multi_table_into_clauses,
        multi_table_when_clauses,
        multi_table_else_clause,
    } = i;
    if !optimizer_hints.is_empty()
        || or.is_some()
        || *ignore
        || !*into
        || table_alias.is_some()
        || *overwrite
        || !assignments.is_empty()
        || partitioned.is_some()
        || !after_columns.is_empty()
        || *has_table_keyword
        || on.is_some()
        || returning.is_some()
        || output.is_some()
        || *replace_into
        || priority.is_some()
        || insert_alias.is_some()
        || settings.is_some()
        || format_clause.is_some()
        || multi_table_insert_type.is_some()
        || !multi_table_into_clauses.is_empty()
        || !multi_table_when_clauses.is_empty()
        || multi_table_else_clause.is_some()
    {
        return None;
    }
    let TableObject::TableName(name) = table else {
        return None;
    };
    let def = user_table(name, store)?;
    let source = source.as_deref()?;
    let Query {
        with: None,
        body,
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks,
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators,
    } = source
    else {
        return None;
    };
    if !locks.is_empty() || !pipe_operators.is_empty() {
        return None;
    }
    let SetExpr::Values(values) = &**body else {
        return None;
    };
    if values.explicit_row || values.value_keyword {
        return None;
    }
    let targets: Vec<usize> = if columns.is_empty() {
        (0..def.columns.len()).collect()
    } else {
        let mut t = Vec::with_capacity(columns.len());
        for c in columns {
            let [ObjectNamePart::Identifier(id)] = c.0.as_slice() else {
                return None;
            };
            let i = def.column_index(&ident_name(id))?;
            if t.contains(&i) {
                return None;
            }
            t.push(i);
        }
        t
    };
    // Omitted columns get NULL; a default is computed by the general path, which also
    // refuses a value for a GENERATED ALWAYS identity column and checks CHECK and FOREIGN
    // KEY constraints.
    if !def.checks.is_empty() || !def.foreign_keys.is_empty() {
        return None;
    }
    if (0..def.columns.len()).any(|c| {
        def.columns[c]
            .default_expr
            .as_deref()
            .is_some_and(|d| !targets.contains(&c) || crate::sequence::nextval_target(d).is_some())
    }) {
        return None;
    }
    let mut rows = Vec::with_capacity(values.rows.len());
    for r in &values.rows {
        if r.content.len() != targets.len() {
            return None;
        }
        let mut row: Vec<Option<Operand>> = vec![None; def.columns.len()];
        for (&c, e) in targets.iter().zip(&r.content) {
            row[c] = Some(operand(e, &def.columns[c].ty)?);
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return None;
    }
    Some(FastPlan {
        def,
        op: Op::Insert { rows },
    })
}

fn param(params: &ParamValues, i: usize) -> Option<&ScalarValue> {
    match params {
        ParamValues::List(l) => l.get(i).map(|p| &p.value),
        ParamValues::Map(_) => None,
    }
}

impl FastPlan {
    /// The fast-path plan of `stmt`, if it has one of the recognised shapes.
    pub fn recognize(stmt: &Statement, store: &Store) -> Option<FastPlan> {
        match stmt {
            Statement::Query(q) => recognize_select(q, store),
            Statement::Update(u) => recognize_update(u, store),
            Statement::Delete(d) => recognize_delete(d, store),
            Statement::Insert(i) => recognize_insert(i, store),
            _ => None,
        }
    }

    /// Whether the table is still the one the plan was made for (no DDL since).
    pub fn is_current(&self, store: &Store) -> bool {
        store
            .table(&self.def.name)
            .is_some_and(|d| Arc::ptr_eq(&d, &self.def))
    }

    pub fn is_query(&self) -> bool {
        matches!(self.op, Op::Select { .. })
    }

    fn value(&self, o: &Operand, ty: &SqlType, params: &ParamValues) -> Option<Datum> {
        match o {
            Operand::Param(i) => param_datum(param(params, *i)?, ty),
            Operand::Const(d) => Some(d.clone()),
            Operand::Now => Some(Datum::Timestamp(now_micros())),
        }
    }

    /// The encoded primary key (`Some(None)` when a key value is NULL: no row matches).
    fn key(&self, key: &[Operand], params: &ParamValues) -> Option<Option<Vec<u8>>> {
        let mut datums = Vec::with_capacity(key.len());
        for (o, &c) in key.iter().zip(&self.def.primary_key) {
            let d = self.value(o, &self.def.columns[c].ty, params)?;
            if d.is_null() {
                return Some(None);
            }
            datums.push(d);
        }
        Some(Some(duet_common::codec::memcmp::encode_tuple(&datums)))
    }

    /// Binds the parameters; `None` sends the statement the general way.
    pub fn bind(&self, params: &ParamValues) -> Option<Bound> {
        Some(match &self.op {
            Op::Select {
                key,
                columns,
                output,
                ..
            } => Bound::Select {
                pk: self.key(key, params)?,
                columns: columns.clone(),
                schema: output.clone(),
            },
            Op::Update { key, sets } => {
                let mut bound = Vec::with_capacity(sets.len());
                for (target, a) in sets {
                    let ty = &self.def.columns[*target].ty;
                    bound.push((
                        *target,
                        match a {
                            Assign::Value(o) => BoundAssign::Value(self.value(o, ty, params)?),
                            Assign::Add {
                                column,
                                operand,
                                negate,
                            } => {
                                let (value, width) = match operand {
                                    Operand::Param(i) => {
                                        let p = param(params, *i)?;
                                        if p.is_null() {
                                            (Datum::Null, 8)
                                        } else {
                                            let (v, w) = param_int(p)?;
                                            (Datum::Int(v), w)
                                        }
                                    }
                                    Operand::Const(Datum::Int(v)) => {
                                        (Datum::Int(*v), if fits(*v as i128, 4) { 4 } else { 8 })
                                    }
                                    Operand::Const(Datum::Null) => (Datum::Null, 8),
                                    _ => return None,
                                };
                                BoundAssign::Add {
                                    column: *column,
                                    value,
                                    width,
                                    negate: *negate,
                                }
                            }
                        },
                    ));
                }
                Bound::Update {
                    pk: self.key(key, params)?,
                    plan: Update { sets: bound },
                }
            }
            Op::Delete { key } => Bound::Delete {
                pk: self.key(key, params)?,
            },
            Op::Insert { rows } => {
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let mut row = Vec::with_capacity(r.len());
                    for (c, o) in r.iter().enumerate() {
                        row.push(match o {
                            Some(o) => self.value(o, &self.def.columns[c].ty, params)?,
                            None => Datum::Null,
                        });
                    }
                    out.push(row);
                }
                Bound::Insert { rows: out }
            }
        })
    }

    /// What Describe reports for the statement, without planning it: the type of each of
    /// its `n` parameters (its column's, as DataFusion infers it on the general path) and
    /// the result schema. `None` if a parameter is used nowhere the fast path can type it.
    pub fn describe_types(&self, n: usize) -> Option<crate::describe::Description> {
        let mut types: Vec<Option<datafusion::arrow::datatypes::FieldRef>> = vec![None; n];
        let def = &self.def;
        let mut note = |o: &Operand, col: usize| {
            if let Operand::Param(i) = o {
                if let Some(t) = types.get_mut(*i) {
                    *t = Some(crate::describe::param_field(&def.columns[col].ty));
                }
            }
        };
        let key = |key: &[Operand], note: &mut dyn FnMut(&Operand, usize)| {
            for (o, &c) in key.iter().zip(&def.primary_key) {
                note(o, c);
            }
        };
        let schema = match &self.op {
            Op::Select { key: k, schema, .. } => {
                key(k, &mut note);
                Some(schema.clone())
            }
            Op::Update { key: k, sets } => {
                key(k, &mut note);
                for (target, a) in sets {
                    match a {
                        Assign::Value(o) => note(o, *target),
                        // `c = c2 + $1`: typed like `c2`.
                        Assign::Add {
                            column, operand, ..
                        } => note(operand, *column),
                    }
                }
                None
            }
            Op::Delete { key: k } => {
                key(k, &mut note);
                None
            }
            Op::Insert { rows } => {
                for r in rows {
                    for (c, o) in r.iter().enumerate() {
                        if let Some(o) = o {
                            note(o, c);
                        }
                    }
                }
                None
            }
        };
        types.iter().all(Option::is_some).then_some((types, schema))
    }

    /// Why the statement ran on the row replica, as the routing log and EXPLAIN say it.
    pub fn reason(&self) -> &'static str {
        match self.op {
            Op::Select { .. } => "pk point lookup (fast path)",
            Op::Update { .. } => "pk point update (fast path)",
            Op::Delete { .. } => "pk point delete (fast path)",
            Op::Insert { .. } => "insert (fast path)",
        }
    }

    /// The EXPLAIN line of the plan.
    pub fn describe(&self) -> String {
        let def = &self.def;
        let show = |o: &Operand| match o {
            Operand::Param(i) => format!("${}", i + 1),
            Operand::Const(Datum::Text(s)) => format!("'{}'", s.replace('\'', "''")),
            Operand::Const(d) => d.to_string(),
            Operand::Now => "now()".into(),
        };
        let key = |key: &[Operand]| {
            key.iter()
                .zip(&def.primary_key)
                .map(|(o, &c)| format!("{} = {}", def.columns[c].name, show(o)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = String::new();
        match &self.op {
            Op::Select { key: k, schema, .. } => {
                let cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                let _ = write!(
                    s,
                    "PointLookup: table={}, engine=row (fast path), key=[{}], projection=[{}]",
                    def.name,
                    key(k),
                    cols.join(", ")
                );
            }
            Op::Update { key: k, sets } => {
                let sets: Vec<String> = sets
                    .iter()
                    .map(|(t, a)| {
                        let rhs = match a {
                            Assign::Value(o) => show(o),
                            Assign::Add {
                                column,
                                operand,
                                negate,
                            } => format!(
                                "{} {} {}",
                                def.columns[*column].name,
                                if *negate { "-" } else { "+" },
                                show(operand)
                            ),
                        };
                        format!("{} = {rhs}", def.columns[*t].name)
                    })
                    .collect();
                let _ = write!(
                    s,
                    "PointUpdate: table={}, engine=row (fast path), key=[{}], set=[{}]",
                    def.name,
                    key(k),
                    sets.join(", ")
                );
            }
            Op::Delete { key: k } => {
                let _ = write!(
                    s,
                    "PointDelete: table={}, engine=row (fast path), key=[{}]",
                    def.name,
                    key(k)
                );
            }
            Op::Insert { rows } => {
                let _ = write!(
                    s,
                    "Insert: table={}, engine=row (fast path), rows={}",
                    def.name,
                    rows.len()
                );
            }
        }
        let _ = write!(s, ", route=[reason={}]", self.reason());
        s
    }
}

mod shape;
#[cfg(test)]
mod tests;

pub use shape::{literal_shape, parse_if_fast};
