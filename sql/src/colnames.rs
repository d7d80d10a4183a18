//! Output column names as PostgreSQL gives them (`FigureColname` in PostgreSQL's
//! `parse_target.c`): a column's name for a column, a function's or aggregate's name for a
//! call (`count`, `abs`), `coalesce`, `nullif`, `exists`, `case`, the type name for a cast
//! of something nameless (`int4`, `text`, `timestamp` for `TIMESTAMP '...'`), the first
//! column's name for a scalar subquery, and `?column?` for everything else (operators,
//! literals, comparisons). DataFusion would name them after the expression's text
//! (`max(t.b)`, `Int64(1) + t.a`).
//!
//! Each unaliased select-list item gets its PostgreSQL name as an alias, at every query
//! level (a derived table's columns are named the same way, so `d.max` finds them). A
//! name repeated in one select list becomes `__duet_dup<n>_<name>`, which the wire layer
//! sends as `<name>`: PostgreSQL allows repeats, DataFusion does not.

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    CastKind, DataType, Expr, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr,
    Statement, TrimWhereField, VisitMut, VisitorMut,
};

pub use duet_wire::encode::{output_name, DUPLICATE_PREFIX};

/// PostgreSQL's name for a nameless output column.
pub const NO_NAME: &str = "?column?";

/// How good a name is: a real one (column, function) beats a fallback (a cast's type name,
/// `case`), which beats none.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    None,
    Fallback,
    Real,
}

/// Names every select list of `stmt` as PostgreSQL would.
pub fn name_outputs(stmt: &mut Statement) {
    struct Namer;
    impl VisitorMut for Namer {
        type Break = ();
        fn post_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            name_set_expr(&mut q.body);
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Namer);
}

fn name_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => name_items(&mut select.projection),
        SetExpr::SetOperation { left, right, .. } => {
            name_set_expr(left);
            name_set_expr(right);
        }
        SetExpr::Query(q) => name_set_expr(&mut q.body),
        _ => {}
    }
}

fn ident_name(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_lowercase()
    }
}

fn name_items(items: &mut [SelectItem]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in items.iter_mut() {
        let (name, plain_column) = match item {
            SelectItem::ExprWithAlias { alias, .. } => (ident_name(alias), true),
            SelectItem::UnnamedExpr(e @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_))) => {
                (figure(e).0.unwrap_or_default(), true)
            }
            SelectItem::UnnamedExpr(e) => {
                (figure(e).0.unwrap_or_else(|| NO_NAME.to_string()), false)
            }
            _ => continue,
        };
        let n = seen.entry(name.clone()).or_insert(0);
        *n += 1;
        // A first column reference or alias already has its name; everything else is aliased.
        if *n == 1 && plain_column {
            continue;
        }
        let alias = if *n == 1 {
            Ident::with_quote('"', name)
        } else {
            Ident::with_quote('"', format!("{DUPLICATE_PREFIX}{n}_{name}"))
        };
        *item = match std::mem::replace(item, SelectItem::Wildcard(Default::default())) {
            SelectItem::ExprWithAlias { expr, .. } | SelectItem::UnnamedExpr(expr) => {
                SelectItem::ExprWithAlias { expr, alias }
            }
            other => other,
        };
    }
}

fn last_part(name: &ObjectName) -> Option<String> {
    match name.0.last()? {
        ObjectNamePart::Identifier(i) => Some(ident_name(i)),
        _ => None,
    }
}

/// An expression's output name and how good it is.
fn figure(e: &Expr) -> (Option<String>, Strength) {
    let real = |s: &str| (Some(s.to_string()), Strength::Real);
    match e {
        Expr::Identifier(i) => (Some(ident_name(i)), Strength::Real),
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => (Some(ident_name(i)), Strength::Real),
            None => (None, Strength::None),
        },
        Expr::Nested(inner) => figure(inner),
        Expr::Collate { expr, .. } => figure(expr),
        Expr::Function(f) => (last_part(&f.name), Strength::Real),
        Expr::Cast {
            expr,
            data_type,
            kind,
            ..
        } => {
            let inner = figure(expr);
            // TRY_CAST and friends are not PostgreSQL; name them as DataFusion does.
            if inner.1 == Strength::Real || !matches!(kind, CastKind::Cast | CastKind::DoubleColon)
            {
                inner
            } else {
                (Some(type_name(data_type)), Strength::Fallback)
            }
        }
        Expr::TypedString(t) => (Some(type_name(&t.data_type)), Strength::Fallback),
        Expr::Case { else_result, .. } => {
            let inner = else_result
                .as_deref()
                .map_or((None, Strength::None), figure);
            if inner.1 == Strength::Real {
                inner
            } else {
                (Some("case".into()), Strength::Fallback)
            }
        }
        // `NOT EXISTS (…)` is an operator expression to PostgreSQL: `?column?`.
        Expr::Exists { negated: false, .. } => real("exists"),
        Expr::Subquery(q) => first_output_name(q),
        Expr::Array(_) => real("array"),
        // A subscript (`a[1]`, `t.a[1]`) is named after what it subscripts: the last field
        // named before it, else the root.
        Expr::CompoundFieldAccess { root, access_chain } => {
            use sqlparser::ast::AccessExpr;
            let mut name = figure(root);
            for access in access_chain {
                match access {
                    AccessExpr::Dot(Expr::Identifier(field)) => {
                        name = real(&ident_name(field));
                    }
                    AccessExpr::Subscript(_) => {}
                    AccessExpr::Dot(_) => return (None, Strength::None),
                }
            }
            name
        }
        Expr::Tuple(_) => real("row"),
        // `INTERVAL '…'` is a typed constant: a cast in PostgreSQL's grammar.
        Expr::Interval(_) => (Some("interval".into()), Strength::Fallback),
        Expr::Extract { .. } => real("extract"),
        Expr::Ceil { .. } => real("ceil"),
        Expr::Floor { .. } => real("floor"),
        Expr::Position { .. } => real("position"),
        Expr::Overlay { .. } => real("overlay"),
        Expr::AtTimeZone { .. } => real("timezone"),
        Expr::Substring { shorthand, .. } => real(if *shorthand { "substr" } else { "substring" }),
        Expr::Trim { trim_where, .. } => real(match trim_where {
            Some(TrimWhereField::Leading) => "ltrim",
            Some(TrimWhereField::Trailing) => "rtrim",
            _ => "btrim",
        }),
        _ => (None, Strength::None),
    }
}

/// The name of a scalar subquery's column: its first select item's.
fn first_output_name(q: &Query) -> (Option<String>, Strength) {
    let mut body = q.body.as_ref();
    loop {
        match body {
            SetExpr::Select(s) => {
                return match s.projection.first() {
                    Some(SelectItem::ExprWithAlias { alias, .. }) => (
                        Some(output_name(&ident_name(alias)).to_string()),
                        Strength::Real,
                    ),
                    Some(SelectItem::UnnamedExpr(e)) => (
                        Some(figure(e).0.unwrap_or_else(|| NO_NAME.into())),
                        Strength::Real,
                    ),
                    _ => (None, Strength::None),
                }
            }
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(q) => body = &q.body,
            _ => return (None, Strength::None),
        }
    }
}

/// The name PostgreSQL gives a type in a cast's column name (its internal name: `int4`,
/// `float8`, `bpchar`).
fn type_name(t: &DataType) -> String {
    use sqlparser::ast::TimezoneInfo;
    match t {
        DataType::SmallInt(_) | DataType::Int2(_) => "int2".into(),
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => "int4".into(),
        DataType::BigInt(_) | DataType::Int8(_) => "int8".into(),
        DataType::Real | DataType::Float4 => "float4".into(),
        DataType::DoublePrecision | DataType::Float8 | DataType::Double(_) => "float8".into(),
        DataType::Float(info) => match info {
            sqlparser::ast::ExactNumberInfo::Precision(p)
            | sqlparser::ast::ExactNumberInfo::PrecisionAndScale(p, _)
                if *p <= 24 =>
            {
                "float4".into()
            }
            _ => "float8".into(),
        },
        DataType::Numeric(_) | DataType::Decimal(_) | DataType::Dec(_) => "numeric".into(),
        DataType::Varchar(_) | DataType::CharacterVarying(_) | DataType::CharVarying(_) => {
            "varchar".into()
        }
        DataType::Char(_) | DataType::Character(_) => "bpchar".into(),
        DataType::Bool | DataType::Boolean => "bool".into(),
        DataType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => {
            "timestamptz".into()
        }
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Time(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => "timetz".into(),
        DataType::Time(..) => "time".into(),
        DataType::Interval { .. } => "interval".into(),
        DataType::Custom(name, _) => last_part(name).unwrap_or_else(|| t.to_string()),
        other => other.to_string().to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;

    /// The output names of `sql`'s top-level select list after naming.
    fn names(sql: &str) -> Vec<String> {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        name_outputs(&mut stmt);
        let Statement::Query(q) = stmt else { panic!() };
        let SetExpr::Select(s) = *q.body else {
            panic!()
        };
        s.projection
            .iter()
            .map(|i| match i {
                SelectItem::ExprWithAlias { alias, .. } => {
                    output_name(&ident_name(alias)).to_string()
                }
                SelectItem::UnnamedExpr(e) => format!("unaliased {e}"),
                other => other.to_string(),
            })
            .collect()
    }

    /// Each expected name was checked with PostgreSQL 15 (`psql -c` on the same text).
    #[test]
    fn names_follow_postgresql() {
        assert_eq!(
            names("SELECT max(t.b), count(*), abs(-1), 1 + 1, 1, 'x', NULL FROM t"),
            ["max", "count", "abs", "?column?", "?column?", "?column?", "?column?"]
        );
        assert_eq!(
            names(
                "SELECT CAST(t.a AS text), CAST(t.a + 1 AS bigint), (1 + 2)::numeric, \
                 DATE '2024-01-01', TIMESTAMP '2024-01-01 00:00:00', CAST(abs(1) AS real)"
            ),
            ["a", "int8", "numeric", "date", "timestamp", "abs"]
        );
        // PostgreSQL 15: `exists`, and `?column?` for NOT EXISTS (an operator expression).
        assert_eq!(
            names("SELECT EXISTS (SELECT 1), NOT EXISTS (SELECT 1)"),
            ["exists", "?column?"]
        );
        assert_eq!(
            names(
                "SELECT CASE WHEN true THEN 1 END, CASE WHEN true THEN 1 ELSE t.b END, \
                 coalesce(1, 2), nullif(1, 2), EXISTS (SELECT 1), (SELECT max(x) FROM u), \
                 (SELECT 1), t.a IN (1), trim(' a '), substr('ab', 1), substring('ab', 1), \
                 upper('a') AS Big, \"Quoted\""
            ),
            [
                "case",
                "b",
                "coalesce",
                "nullif",
                "exists",
                "max",
                "?column?",
                "?column?",
                "btrim",
                "substr",
                "substring",
                "big",
                "unaliased \"Quoted\""
            ]
        );
    }

    #[test]
    fn repeated_names_stay_legal() {
        let mut stmt = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT t.a, u.a, count(*), count(*), 1 + 1, 2 + 2 FROM t, u",
        )
        .unwrap()
        .remove(0);
        name_outputs(&mut stmt);
        assert_eq!(
            stmt.to_string(),
            "SELECT t.a, u.a AS \"__duet_dup2_a\", count(*) AS \"count\", \
             count(*) AS \"__duet_dup2_count\", 1 + 1 AS \"?column?\", \
             2 + 2 AS \"__duet_dup2_?column?\" FROM t, u"
        );
    }

    #[test]
    fn derived_tables_and_subqueries_are_named_too() {
        let mut stmt = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT d.max FROM (SELECT max(x) FROM u) AS d",
        )
        .unwrap()
        .remove(0);
        name_outputs(&mut stmt);
        assert_eq!(
            stmt.to_string(),
            "SELECT d.max FROM (SELECT max(x) AS \"max\" FROM u) AS d"
        );
    }
}
