//! Rewrites and checks of the parsed statement, before DataFusion plans it.

use super::*;

/// Everything done to a statement before DataFusion plans it, in order: PostgreSQL's output
/// names first (read from the statement as written: `1`, not `CAST(1 AS INT)`), then the
/// rewrites below, then the refusals.
pub fn rewrite_statement(stmt: &mut sqlparser::ast::Statement) -> Result<()> {
    crate::colnames::name_outputs(stmt);
    lateral_functions_as_functions(stmt);
    crate::jsonb_sets::rewrite(stmt)?;
    name_casts_in_aggregates(stmt);
    having_without_aggregates(stmt);
    datetime_literals(stmt)?;
    positional_numbers(stmt);
    name_set_returning_functions(stmt);
    expand_select_list_series(stmt);
    interval_products(stmt);
    character_casts(stmt);
    type_integer_literals(stmt);
    refuse_multiset_set_operations(stmt)
}

/// `FROM t, LATERAL f(t.x)` is `FROM t, f(t.x)`: PostgreSQL's functions in FROM are lateral
/// with or without the keyword, and the rewrites of set-returning functions (and
/// `LateralFunctions`) read the plain form.
fn lateral_functions_as_functions(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{TableFactor, TableFunctionArgs, VisitMut, VisitorMut};
    struct Plain;
    impl VisitorMut for Plain {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> std::ops::ControlFlow<()> {
            if let TableFactor::Function {
                lateral: true,
                name,
                args,
                with_ordinality,
                alias,
            } = t
            {
                *t = TableFactor::Table {
                    name: name.clone(),
                    alias: alias.clone(),
                    args: Some(TableFunctionArgs {
                        args: std::mem::take(args),
                        settings: None,
                    }),
                    with_hints: vec![],
                    version: None,
                    with_ordinality: *with_ordinality,
                    partitions: vec![],
                    json_path: None,
                    sample: None,
                    index_hints: vec![],
                };
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Plain);
}

/// Aggregate functions by name (the statement rewrites tell them from other calls).
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "bool_and",
    "bool_or",
    "every",
    "string_agg",
    "array_agg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "bit_and",
    "bit_or",
    "median",
];
/// The name of an aggregate call (not a window function), lower case.
fn aggregate_name(e: &sqlparser::ast::Expr) -> Option<String> {
    use sqlparser::ast::Expr;
    let Expr::Function(f) = e else { return None };
    let name = function_name(f)?.to_ascii_lowercase();
    (AGGREGATES.contains(&name.as_str()) && f.over.is_none()).then_some(name)
}

/// Calls `f` on each expression (nested ones included) of a select's list and HAVING.
fn visit_select_outputs(s: &sqlparser::ast::Select, mut f: impl FnMut(&sqlparser::ast::Expr)) {
    let mut each = |e: &sqlparser::ast::Expr| {
        f(e);
        std::ops::ControlFlow::<()>::Continue(())
    };
    for item in &s.projection {
        let _ = sqlparser::ast::visit_expressions(item, &mut each);
    }
    if let Some(h) = &s.having {
        let _ = sqlparser::ast::visit_expressions(h, &mut each);
    }
}

/// A select with HAVING but without GROUP BY or any aggregate (`SELECT 1 FROM t HAVING
/// NULL`) is one group to PostgreSQL: one row or none. DataFusion refused it (42803); the
/// condition gets `AND count(1) >= 0`, which makes the select an aggregate without
/// changing what HAVING says.
fn having_without_aggregates(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{BinaryOperator, Expr, GroupByExpr};
    for_each_select(stmt, |s| {
        let grouped = !matches!(&s.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
        let mut aggregated = false;
        visit_select_outputs(s, |e| aggregated |= aggregate_name(e).is_some());
        let Some(having) = s.having.take() else {
            return;
        };
        s.having = Some(if grouped || aggregated {
            having
        } else {
            let count = call_function(
                "count",
                vec![Expr::value(sqlparser::ast::Value::Number(
                    "1".into(),
                    false,
                ))],
            );
            Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(having))),
                op: BinaryOperator::And,
                right: Box::new(Expr::BinaryOp {
                    left: Box::new(count),
                    op: BinaryOperator::GtEq,
                    right: Box::new(Expr::value(sqlparser::ast::Value::Number(
                        "0".into(),
                        false,
                    ))),
                }),
            }
        });
    });
}

/// Calls `f` on the SELECT of every query in `stmt` (subqueries too) whose body is one.
fn for_each_select(
    stmt: &mut sqlparser::ast::Statement,
    f: impl FnMut(&mut sqlparser::ast::Select),
) {
    use sqlparser::ast::{SetExpr, VisitMut, VisitorMut};
    struct Selects<F>(F);
    impl<F: FnMut(&mut sqlparser::ast::Select)> VisitorMut for Selects<F> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut sqlparser::ast::Query) -> std::ops::ControlFlow<()> {
            if let SetExpr::Select(s) = q.body.as_mut() {
                (self.0)(s);
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Selects(f));
}

/// Aggregates PostgreSQL computes over casts of the same column, `max(id)` and
/// `max(id::bigint)`, DataFusion names alike (a cast takes its operand's name) and then
/// refuses the query for a duplicate field name. Where two aggregate calls of one select
/// differ only in casts, each cast in their arguments is wrapped in `duet_typed(cast,
/// 'type')`, which returns it unchanged under a name of its own.
fn name_casts_in_aggregates(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::Expr;
    fn without_casts(e: &Expr) -> String {
        let mut e = e.clone();
        let _ = sqlparser::ast::visit_expressions_mut(&mut e, |x| {
            while let Expr::Cast { expr, .. } = x {
                *x = (**expr).clone();
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        e.to_string()
    }
    for_each_select(stmt, |s| {
        // The aggregate calls of this select level, by their name without casts.
        let mut seen: std::collections::HashMap<String, std::collections::HashSet<String>> =
            Default::default();
        visit_select_outputs(s, |e| {
            if aggregate_name(e).is_some() {
                seen.entry(without_casts(e))
                    .or_default()
                    .insert(e.to_string());
            }
        });
        let clashing: std::collections::HashSet<String> = seen
            .into_iter()
            .filter(|(_, texts)| texts.len() > 1)
            .map(|(key, _)| key)
            .collect();
        if clashing.is_empty() {
            return;
        }
        let wrap = |e: &mut Expr| {
            if aggregate_name(e).is_some() && clashing.contains(&without_casts(e)) {
                let Expr::Function(f) = e else { return };
                let _ = sqlparser::ast::visit_expressions_mut(&mut f.args, |x| {
                    if let Expr::Cast { data_type, .. } = x {
                        let label = Expr::value(sqlparser::ast::Value::SingleQuotedString(
                            data_type.to_string(),
                        ));
                        *x = call_function("duet_typed", vec![x.clone(), label]);
                    }
                    std::ops::ControlFlow::<()>::Continue(())
                });
            }
        };
        let each = |e: &mut Expr| {
            wrap(e);
            std::ops::ControlFlow::<()>::Continue(())
        };
        for item in &mut s.projection {
            let _ = sqlparser::ast::visit_expressions_mut(item, each);
        }
        if let Some(h) = &mut s.having {
            let _ = sqlparser::ast::visit_expressions_mut(h, each);
        }
    });
}

/// `INTERSECT ALL` and `EXCEPT ALL` are refused: DataFusion answers them as a semi and an
/// anti join, which keep every copy of a row (or none) instead of min(m, n) and m - n copies.
fn refuse_multiset_set_operations(stmt: &sqlparser::ast::Statement) -> Result<()> {
    use sqlparser::ast::{SetExpr, SetOperator, SetQuantifier, Visit, Visitor};
    struct Find(Option<&'static str>);
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_query(&mut self, q: &sqlparser::ast::Query) -> std::ops::ControlFlow<()> {
            fn walk(b: &SetExpr, found: &mut Option<&'static str>) {
                if let SetExpr::SetOperation {
                    op,
                    set_quantifier,
                    left,
                    right,
                } = b
                {
                    if matches!(set_quantifier, SetQuantifier::All) {
                        match op {
                            SetOperator::Intersect => *found = Some("INTERSECT ALL"),
                            SetOperator::Except | SetOperator::Minus => *found = Some("EXCEPT ALL"),
                            _ => {}
                        }
                    }
                    walk(left, found);
                    walk(right, found);
                }
            }
            walk(&q.body, &mut self.0);
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut f = Find(None);
    let _ = stmt.visit(&mut f);
    match f.0 {
        Some(what) => Err(DataFusionError::NotImplemented(format!(
            "{what} is not supported"
        ))),
        None => Ok(()),
    }
}

/// `x = ANY (subquery)` is `x IN (subquery)` and `x <> ALL (subquery)` is
/// `x NOT IN (subquery)`, NULLs included; DataFusion plans the IN forms (it reads the
/// quantified ones as array functions and fails).
pub fn quantified_subqueries_as_in(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{BinaryOperator as B, Expr as E};
    let _ = sqlparser::ast::visit_expressions_mut(stmt, |e| {
        let negated = match e {
            E::AnyOp {
                compare_op: B::Eq,
                right,
                ..
            } if matches!(right.as_ref(), E::Subquery(_)) => false,
            E::AllOp {
                compare_op: B::NotEq,
                right,
                ..
            } if matches!(right.as_ref(), E::Subquery(_)) => true,
            _ => return std::ops::ControlFlow::<()>::Continue(()),
        };
        if let E::AnyOp { left, right, .. } | E::AllOp { left, right, .. } =
            std::mem::replace(e, E::value(sqlparser::ast::Value::Null))
        {
            if let E::Subquery(subquery) = *right {
                *e = E::InSubquery {
                    expr: left,
                    subquery,
                    negated,
                };
            }
        }
        std::ops::ControlFlow::Continue(())
    });
}

/// A number written with an exponent is a `numeric` in PostgreSQL (`7e2` is 700,
/// `1.5e-9` is 0.0000000015); DataFusion reads `7e2` as a decimal of negative scale, which
/// its casts and output reject. Such a literal is written out in positional notation, and
/// one without a fraction is cast to numeric (`700` alone would be an integer).
fn positional_numbers(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{CastKind, DataType, ExactNumberInfo, Expr, Value};
    let _ = sqlparser::ast::visit_expressions_mut(stmt, |e| {
        let Expr::Value(v) = e else {
            return std::ops::ControlFlow::<()>::Continue(());
        };
        let Value::Number(text, _) = &mut v.value else {
            return std::ops::ControlFlow::Continue(());
        };
        if let Some(plain) = crate::types::positional_decimal(text) {
            let integral = !plain.contains('.');
            *text = plain;
            if integral {
                *e = Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(e.clone()),
                    data_type: DataType::Numeric(ExactNumberInfo::None),
                    array: false,
                    format: None,
                };
            }
        }
        std::ops::ControlFlow::Continue(())
    });
}

/// PostgreSQL types an integer literal that fits in 32 bits as `integer`; DataFusion types
/// every integer literal as `bigint`. Where a literal is an operand (arithmetic, comparison,
/// IN list, BETWEEN, a CASE result, an argument of a function whose type follows it's such
/// as `abs`) or a select-list item, this makes it an explicit `integer`, so `int_col + 1`
/// stays `integer` and `SELECT 1` is int4 as in PostgreSQL. Positions (`ORDER BY 1`),
/// LIMIT/OFFSET and other functions' arguments keep DataFusion's typing (some of
/// DataFusion's functions take only `bigint`).
fn type_integer_literals(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{BinaryOperator as B, Expr as E, VisitMut};
    let _ = sqlparser::ast::visit_expressions_mut(stmt, |e| {
        match e {
            E::BinaryOp {
                left,
                op:
                    B::Plus
                    | B::Minus
                    | B::Multiply
                    | B::Divide
                    | B::Modulo
                    | B::Eq
                    | B::NotEq
                    | B::Lt
                    | B::LtEq
                    | B::Gt
                    | B::GtEq,
                right,
            } => {
                narrow(left);
                narrow(right);
            }
            E::InList { list, .. } => list.iter_mut().for_each(narrow),
            // A CASE's result type follows its branches': `CASE ... THEN 100 ELSE int4col`
            // is integer.
            E::Case {
                conditions,
                else_result,
                ..
            } => {
                conditions.iter_mut().for_each(|c| narrow(&mut c.result));
                if let Some(e) = else_result {
                    narrow(e);
                }
            }
            E::Between { low, high, .. } => {
                narrow(low);
                narrow(high);
            }
            // Functions whose PostgreSQL result type follows an integer argument's
            // (`abs(-2147483648)` overflows int4).
            E::Function(f)
                if function_name(f).is_some_and(|n| {
                    [
                        "abs",
                        "coalesce",
                        "nullif",
                        "greatest",
                        "least",
                        "min",
                        "max",
                        "sum",
                        "pg_typeof",
                    ]
                    .iter()
                    .any(|known| n.eq_ignore_ascii_case(known))
                }) =>
            {
                if let sqlparser::ast::FunctionArguments::List(list) = &mut f.args {
                    for a in &mut list.args {
                        if let sqlparser::ast::FunctionArg::Unnamed(
                            sqlparser::ast::FunctionArgExpr::Expr(e),
                        ) = a
                        {
                            narrow(e);
                        }
                    }
                }
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    // An INSERT's own VALUES rows take their columns' types (and the fast path reads them
    // as written).
    let skip = match &*stmt {
        sqlparser::ast::Statement::Insert(i) => i
            .source
            .as_ref()
            .map_or(std::ptr::null(), |q| q.body.as_ref() as *const _),
        _ => std::ptr::null(),
    };
    let _ = stmt.visit(&mut SelectItems { skip });
}

/// Narrows the select items and VALUES rows of every query but the one at `skip`.
struct SelectItems {
    skip: *const sqlparser::ast::SetExpr,
}

impl sqlparser::ast::VisitorMut for SelectItems {
    type Break = ();

    fn post_visit_query(&mut self, q: &mut sqlparser::ast::Query) -> std::ops::ControlFlow<()> {
        let values = !std::ptr::eq(q.body.as_ref(), self.skip);
        narrow_items(&mut q.body, values);
        std::ops::ControlFlow::Continue(())
    }
}

/// The select items of every branch of a set operation (`SELECT 1 UNION SELECT 2`), and
/// with `values` the rows of a VALUES list (`VALUES (1)` is `integer`).
fn narrow_items(body: &mut sqlparser::ast::SetExpr, values: bool) {
    use sqlparser::ast::{SelectItem, SetExpr};
    match body {
        SetExpr::Select(select) => {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item
                {
                    narrow(e);
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            narrow_items(left, values);
            narrow_items(right, values);
        }
        SetExpr::Values(v) if values => v
            .rows
            .iter_mut()
            .flat_map(|r| r.content.iter_mut())
            .for_each(narrow),
        _ => {}
    }
}

fn narrow(e: &mut sqlparser::ast::Expr) {
    use sqlparser::ast::{CastKind, DataType as T, Expr as E, Value};
    // PostgreSQL's grammar folds a minus sign into the constant, through parentheses:
    // `-2147483648` and `- (- 5)` are integers.
    let literal = constant_integer(e)
        .filter(|v| i32::try_from(*v).is_ok())
        .map(|v| v.to_string());
    if let Some(text) = literal {
        let inner = E::value(Value::Number(text, false));
        *e = E::Cast {
            kind: CastKind::Cast,
            expr: Box::new(inner),
            data_type: T::Int(None),
            array: false,
            format: None,
        };
    }
}

/// The value of an integer literal under any parentheses and signs, if `e` is one.
fn constant_integer(e: &sqlparser::ast::Expr) -> Option<i64> {
    use sqlparser::ast::{Expr as E, UnaryOperator, Value};
    match e {
        E::Value(v) => match &v.value {
            Value::Number(n, false) => n.parse().ok(),
            _ => None,
        },
        E::Nested(inner) => constant_integer(inner),
        E::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => constant_integer(expr)?.checked_neg(),
        E::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => constant_integer(expr),
        _ => None,
    }
}

/// A one-column set-returning function in FROM (`generate_series`, `unnest`) names its
/// column as PostgreSQL does: after the alias (`FROM generate_series(1, 3) g` has a column
/// `g`), else after the function (`generate_series`). DataFusion named it `value`, so
/// `SELECT g FROM generate_series(1, 3) g` failed.
fn name_set_returning_functions(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{
        Ident, ObjectNamePart, TableAlias, TableAliasColumnDef, TableFactor, VisitMut, VisitorMut,
    };
    struct Namer;
    impl VisitorMut for Namer {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> std::ops::ControlFlow<()> {
            let (function, alias) = match t {
                TableFactor::Table {
                    name,
                    args: Some(_),
                    alias,
                    ..
                } => match name.0.last() {
                    Some(ObjectNamePart::Identifier(i)) => (i.value.to_ascii_lowercase(), alias),
                    _ => return std::ops::ControlFlow::Continue(()),
                },
                TableFactor::UNNEST {
                    alias,
                    array_exprs,
                    with_offset: false,
                    with_ordinality: false,
                    ..
                } if array_exprs.len() == 1 => ("unnest".to_string(), alias),
                _ => return std::ops::ControlFlow::Continue(()),
            };
            if function != "generate_series" && function != "unnest" {
                return std::ops::ControlFlow::Continue(());
            }
            match alias {
                Some(a) if a.columns.is_empty() => {
                    a.columns = vec![TableAliasColumnDef {
                        name: a.name.clone(),
                        data_type: None,
                    }];
                }
                None => {
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: Ident::new(&function),
                        columns: vec![TableAliasColumnDef::from_name(&function)],
                        at: None,
                    });
                }
                Some(_) => {}
            }
            std::ops::ControlFlow::Continue(())
        }

        /// `generate_series` of a column (of the outer row: `(SELECT sum(x) FROM
        /// generate_series(1, t.n) g(x))`) is `unnest` of the list DataFusion's scalar
        /// `generate_series` makes: its table function takes constants only.
        fn post_visit_table_factor(&mut self, t: &mut TableFactor) -> std::ops::ControlFlow<()> {
            use sqlparser::ast::Expr;
            let TableFactor::Table {
                name,
                args: Some(args),
                alias,
                with_ordinality: false,
                ..
            } = t
            else {
                return std::ops::ControlFlow::Continue(());
            };
            let is_series = matches!(name.0.last(),
                Some(ObjectNamePart::Identifier(i)) if i.value.eq_ignore_ascii_case("generate_series"));
            let Some(exprs) = crate::system_catalog::plain_args(&args.args) else {
                return std::ops::ControlFlow::Continue(());
            };
            let mut reads_column = false;
            let _ = sqlparser::ast::visit_expressions(&exprs, |e| {
                if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                    reads_column = true;
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            if !is_series || !reads_column {
                return std::ops::ControlFlow::Continue(());
            }
            *t = TableFactor::UNNEST {
                alias: alias.clone(),
                array_exprs: vec![super::call_function("generate_series", exprs)],
                with_offset: false,
                with_offset_alias: None,
                with_ordinality: false,
            };
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Namer);
}

/// `SELECT generate_series(1, 3)` returns three rows in PostgreSQL; DataFusion's
/// `generate_series` in a select list is one array. A select item that is a call of it
/// (aliased or not) becomes `unnest(generate_series(...))`, which DataFusion expands into
/// rows (several such items run in lockstep, the shorter padded with NULLs, as in
/// PostgreSQL since 10).
fn expand_select_list_series(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{Expr, SelectItem, SetExpr, VisitMut, VisitorMut};
    fn is_series(e: &Expr) -> bool {
        matches!(e, Expr::Function(f)
            if function_name(f).is_some_and(|n| n.eq_ignore_ascii_case("generate_series")))
    }
    struct Expand;
    impl VisitorMut for Expand {
        type Break = ();
        fn post_visit_query(&mut self, q: &mut sqlparser::ast::Query) -> std::ops::ControlFlow<()> {
            if let SetExpr::Select(select) = q.body.as_mut() {
                for item in &mut select.projection {
                    if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } =
                        item
                    {
                        if is_series(e) {
                            let call =
                                std::mem::replace(e, Expr::value(sqlparser::ast::Value::Null));
                            *e = call_function("unnest", vec![call]);
                        }
                    }
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Expand);
}

/// `n * INTERVAL '...'` and `INTERVAL '...' * n` become `duet_interval_mul(interval, n)`
/// (`arith::IntervalScale`): DataFusion's planner cannot type that product.
fn interval_products(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{BinaryOperator, Expr};
    let _ = sqlparser::ast::visit_expressions_mut(stmt, |e| {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Multiply,
            right,
        } = e
        {
            let interval = |x: &Expr| matches!(x, Expr::Interval(_));
            let args = if interval(left) {
                Some((left.as_ref().clone(), right.as_ref().clone()))
            } else if interval(right) {
                Some((right.as_ref().clone(), left.as_ref().clone()))
            } else {
                None
            };
            if let Some((i, n)) = args {
                *e = call_function("duet_interval_mul", vec![i, n]);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// `CAST(x AS varchar(n))` and `CAST(x AS char(n))` become `duet_varchar(CAST(x AS text),
/// n)` and `duet_bpchar(...)` (`text::CharacterCast`): DataFusion casts both to plain text
/// and kept every character, where PostgreSQL cuts the value to `n`. A bare `varchar` keeps
/// the whole value (`n` = -1) but is still reported as `varchar`; a bare `char` is `char(1)`.
/// Casts to `uuid`, `json` and `jsonb` become their input functions (`duet_uuid(CAST(x AS
/// text))`, see `crate::jsonb`).
fn character_casts(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{CastKind, CharacterLength, DataType, Expr, Value};
    let _ = sqlparser::ast::visit_expressions_mut(stmt, |e| {
        let Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon,
            expr,
            data_type,
            ..
        } = e
        else {
            return std::ops::ControlFlow::<()>::Continue(());
        };
        let length = |l: &Option<CharacterLength>, default: i64| match l {
            Some(CharacterLength::IntegerLength { length, .. }) => *length as i64,
            _ => default,
        };
        let (function, n) = match data_type {
            DataType::Varchar(l) | DataType::CharacterVarying(l) | DataType::CharVarying(l) => {
                ("duet_varchar", Some(length(l, -1)))
            }
            DataType::Char(l) | DataType::Character(l) => ("duet_bpchar", Some(length(l, 1))),
            // The input functions of the types stored as canonical text (crate::jsonb).
            DataType::Uuid => ("duet_uuid", None),
            DataType::JSON => ("duet_json", None),
            DataType::JSONB => ("duet_jsonb", None),
            _ => return std::ops::ControlFlow::Continue(()),
        };
        let text = Expr::Cast {
            kind: CastKind::Cast,
            expr: expr.clone(),
            data_type: DataType::Text,
            array: false,
            format: None,
        };
        let mut args = vec![text];
        args.extend(n.map(|n| Expr::value(Value::Number(n.to_string(), false))));
        *e = call_function(function, args);
        std::ops::ControlFlow::Continue(())
    });
}

/// Date and timestamp constants (`TIMESTAMP '2024-01-31 10:00'`, `'1/31/2024'::date`) are
/// read with PostgreSQL's input syntax (`crate::datetime`) and rewritten in ISO form, which
/// DataFusion reads: in the arguments of a table function such as `generate_series`, it
/// evaluates them while planning, before any analyzer rule. An untyped string as the step of
/// `generate_series` is an interval, as PostgreSQL resolves it.
fn datetime_literals(stmt: &mut sqlparser::ast::Statement) -> Result<()> {
    use crate::error::{PgError, SqlState};
    use sqlparser::ast::{
        DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Interval, TableFactor,
        TimezoneInfo, Value, VisitMut, VisitorMut,
    };
    fn canonical(ty: &DataType, text: &mut String) -> crate::error::Result<()> {
        match ty {
            DataType::Date => {
                let days = crate::datetime::parse_date(text)?;
                *text = crate::datetime::date_text(days)
                    .ok_or_else(|| PgError::new(SqlState::InternalError, "date out of range"))?;
            }
            DataType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
                let micros = crate::datetime::parse_timestamp(text)?;
                *text = crate::datetime::timestamp_text(micros).ok_or_else(|| {
                    PgError::new(SqlState::InternalError, "timestamp out of range")
                })?;
            }
            DataType::Time(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
                *text = duet_wire::encode::pg_time_text(crate::datetime::parse_time(text)?);
            }
            DataType::Interval { .. } => interval_text(text)?,
            _ => {}
        }
        Ok(())
    }
    /// An interval in the units DataFusion's own reader takes, read by PostgreSQL's rules.
    fn interval_text(text: &mut String) -> crate::error::Result<()> {
        let (months, days, micros) = crate::datetime::parse_interval(text)?;
        *text = format!("{months} months {days} days {micros} microseconds");
        Ok(())
    }
    fn step_as_interval(args: &mut [FunctionArg]) {
        if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(step))) = args.get_mut(2) {
            if matches!(step, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_))) {
                *step = Expr::Interval(Interval {
                    value: Box::new(step.clone()),
                    leading_field: None,
                    leading_precision: None,
                    last_field: None,
                    fractional_seconds_precision: None,
                });
            }
        }
    }
    struct Literals(Option<PgError>);
    impl VisitorMut for Literals {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> std::ops::ControlFlow<()> {
            if let TableFactor::Table {
                name,
                args: Some(args),
                ..
            } = t
            {
                if name
                    .0
                    .last()
                    .is_some_and(|p| p.to_string().eq_ignore_ascii_case("generate_series"))
                {
                    step_as_interval(&mut args.args);
                }
            }
            std::ops::ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
            // `- INTERVAL '…'`: DataFusion negates an interval literal by putting a `-`
            // before its text, which negates only the first field of the canonical text
            // below (`- INTERVAL '36 hours'` was 36:00:00). The literal is negated here.
            if let Expr::UnaryOp {
                op: sqlparser::ast::UnaryOperator::Minus,
                expr,
            } = e
            {
                if let Expr::Interval(Interval {
                    value,
                    leading_field: None,
                    last_field: None,
                    ..
                }) = expr.as_mut()
                {
                    if let Expr::Value(v) = value.as_mut() {
                        if let Value::SingleQuotedString(text) = &mut v.value {
                            match crate::datetime::parse_interval(text) {
                                Ok((months, days, micros)) => {
                                    *text = format!(
                                        "{} months {} days {} microseconds",
                                        -i64::from(months),
                                        -i64::from(days),
                                        -i128::from(micros)
                                    );
                                    *e = expr.as_ref().clone();
                                }
                                Err(err) => {
                                    self.0 = Some(err);
                                    return std::ops::ControlFlow::Break(());
                                }
                            }
                        }
                    }
                }
            }
            let result = match e {
                Expr::TypedString(ts) => match &mut ts.value.value {
                    Value::SingleQuotedString(text) => canonical(&ts.data_type, text),
                    _ => Ok(()),
                },
                Expr::Interval(Interval {
                    value,
                    leading_field: None,
                    last_field: None,
                    ..
                }) => match value.as_mut() {
                    Expr::Value(v) => match &mut v.value {
                        Value::SingleQuotedString(text) => interval_text(text),
                        _ => Ok(()),
                    },
                    _ => Ok(()),
                },
                Expr::Cast {
                    expr, data_type, ..
                } => match expr.as_mut() {
                    Expr::Value(v) => match &mut v.value {
                        Value::SingleQuotedString(text) => canonical(data_type, text),
                        _ => Ok(()),
                    },
                    _ => Ok(()),
                },
                Expr::Function(f)
                    if function_name(f)
                        .is_some_and(|n| n.eq_ignore_ascii_case("generate_series")) =>
                {
                    if let FunctionArguments::List(l) = &mut f.args {
                        step_as_interval(&mut l.args);
                    }
                    Ok(())
                }
                _ => Ok(()),
            };
            match result {
                Ok(()) => std::ops::ControlFlow::Continue(()),
                Err(err) => {
                    self.0 = Some(err);
                    std::ops::ControlFlow::Break(())
                }
            }
        }
    }
    let mut v = Literals(None);
    let _ = stmt.visit(&mut v);
    v.0.map_or(Ok(()), |e| {
        Err(DataFusionError::External(Box::new(
            crate::error::PgErrorBox(e),
        )))
    })
}

/// A function's own name (the last part of a qualified one).
pub(crate) fn function_name(f: &sqlparser::ast::Function) -> Option<&str> {
    match f.name.0.last()? {
        sqlparser::ast::ObjectNamePart::Identifier(i) => Some(&i.value),
        _ => None,
    }
}

/// `name(args)`, as the parser would give it.
pub(crate) fn call_function(name: &str, args: Vec<sqlparser::ast::Expr>) -> sqlparser::ast::Expr {
    use sqlparser::ast::{
        Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
        Ident, ObjectName, ObjectNamePart,
    };
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(sql: &str) -> String {
        let mut s =
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0);
        type_integer_literals(&mut s);
        s.to_string()
    }

    #[test]
    fn operands_and_select_items_become_int4_but_positions_and_limits_do_not() {
        assert_eq!(rewrite("SELECT 1"), "SELECT CAST(1 AS INT)");
        assert_eq!(
            rewrite("SELECT a + 1 FROM t WHERE b = 5000000000 ORDER BY 1 LIMIT 10"),
            "SELECT a + CAST(1 AS INT) FROM t WHERE b = 5000000000 ORDER BY 1 LIMIT 10"
        );
        assert_eq!(
            rewrite("SELECT lag(x, 1) OVER () FROM t WHERE x IN (1, 2)"),
            "SELECT lag(x, 1) OVER () FROM t WHERE x IN (CAST(1 AS INT), CAST(2 AS INT))"
        );
    }

    #[test]
    fn equality_any_and_inequality_all_become_in() {
        let mut s = sqlparser::parser::Parser::parse_sql(
            &sqlparser::dialect::PostgreSqlDialect {},
            "SELECT x FROM a WHERE x = ANY (SELECT y FROM b) AND x <> ALL (SELECT y FROM b) \
             AND x > ANY (SELECT y FROM b)",
        )
        .unwrap()
        .remove(0);
        quantified_subqueries_as_in(&mut s);
        assert_eq!(
            s.to_string(),
            "SELECT x FROM a WHERE x IN (SELECT y FROM b) AND x NOT IN (SELECT y FROM b) \
             AND x > ANY(SELECT y FROM b)"
        );
    }
}
