//! PostgreSQL's array input syntax: text cast to an array type (`'{1,2,3}'::int[]`,
//! `'{"a b",NULL,c}'::varchar[]`, `'{t,f}'::bool[]`), as drivers and ORMs send arrays
//! (Django's bulk inserts unnest such literals). Arrow's cast would make the whole text one
//! element; the casts go through [`ArrayInput`] instead, which reads PostgreSQL's format
//! and converts the elements with the same input rules as a cast of each element (dates
//! and timestamps through `datetime.rs`, the session's `TimeZone` for timestamptz).
//! One-dimensional arrays; a multidimensional literal or explicit bounds are 0A000.

use std::sync::Arc;

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, StringArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::error::{PgError, Result, SqlState};

fn malformed(s: &str, why: &str) -> PgError {
    PgError::new(
        SqlState::InvalidTextRepresentation,
        format!("malformed array literal: \"{s}\""),
    )
    .with_detail(why.to_string())
}

/// The elements of a one-dimensional array literal (`None`: an unquoted NULL).
pub fn parse_array_text(s: &str) -> Result<Vec<Option<String>>> {
    let t = s.trim();
    if t.starts_with('[') {
        return Err(PgError::unsupported("array bounds in an array literal"));
    }
    let inner = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| {
            malformed(
                s,
                "Array value must start with \"{\" or dimension information.",
            )
        })?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        let mut quoted = false;
        match chars.peek() {
            Some('"') => {
                quoted = true;
                chars.next();
                loop {
                    match chars.next() {
                        None => return Err(malformed(s, "Unexpected end of input.")),
                        Some('\\') => match chars.next() {
                            Some(c) => value.push(c),
                            None => return Err(malformed(s, "Unexpected end of input.")),
                        },
                        Some('"') => break,
                        Some(c) => value.push(c),
                    }
                }
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            Some('{') => return Err(PgError::unsupported("multidimensional arrays")),
            _ => {
                let mut trailing = 0usize;
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    if c == '{' || c == '}' || c == '"' {
                        return Err(malformed(s, &format!("Unexpected \"{c}\" character.")));
                    }
                    chars.next();
                    if c == '\\' {
                        match chars.next() {
                            Some(e) => value.push(e),
                            None => return Err(malformed(s, "Unexpected end of input.")),
                        }
                        trailing = 0;
                    } else {
                        value.push(c);
                        trailing = if c.is_whitespace() { trailing + 1 } else { 0 };
                    }
                }
                value.truncate(value.len() - trailing);
                if value.is_empty() {
                    return Err(malformed(s, "Unexpected \",\" character."));
                }
            }
        }
        out.push((quoted || !value.eq_ignore_ascii_case("null")).then_some(value));
        match chars.next() {
            None => return Ok(out),
            Some(',') => continue,
            Some(c) => return Err(malformed(s, &format!("Unexpected \"{c}\" character."))),
        }
    }
}

/// Text elements converted to `ty` as a cast of each would convert them.
fn elements_as(values: &StringArray, ty: &DataType, zone: &Tz) -> Result<ArrayRef> {
    use datafusion::arrow::datatypes::TimeUnit;
    Ok(match ty {
        DataType::Utf8 => Arc::new(values.clone()),
        DataType::Date32 => crate::datetime::strings_to_dates(values)?,
        DataType::Time64(unit) => crate::datetime::strings_to_times(values, *unit)?,
        DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano) => {
            crate::datetime::strings_to_intervals(values)?
        }
        DataType::Timestamp(unit, None) => crate::datetime::strings_to_timestamps(values, *unit)?,
        DataType::Timestamp(unit, Some(tz)) => {
            let utc = crate::datetime::strings_to_timestamptz(values, TimeUnit::Microsecond, zone)?;
            cast_with_options(
                &utc,
                &DataType::Timestamp(*unit, Some(tz.clone())),
                &CastOptions::default(),
            )
            .map_err(|e| crate::error::from_datafusion(e.into()))?
        }
        other => {
            let opts = CastOptions {
                safe: false,
                ..CastOptions::default()
            };
            let trimmed: StringArray = values.iter().map(|v| v.map(str::trim)).collect();
            cast_with_options(&trimmed, other, &opts).map_err(|_| {
                // PostgreSQL names the first element that is not of the type.
                let bad = trimmed
                    .iter()
                    .flatten()
                    .find(|v| {
                        cast_with_options(&StringArray::from(vec![*v]), other, &opts).is_err()
                    })
                    .unwrap_or_default();
                PgError::new(
                    SqlState::InvalidTextRepresentation,
                    format!(
                        "invalid input syntax for type {}: \"{bad}\"",
                        pg_type_name(other)
                    ),
                )
            })?
        }
    })
}

/// PostgreSQL's name of the type whose values an Arrow type holds (for messages).
fn pg_type_name(ty: &DataType) -> String {
    match ty {
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal128(..) => "numeric".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Binary => "bytea".into(),
        other => other.to_string(),
    }
}

/// The list array of `strings` read as array literals with elements of `field`'s type.
pub(crate) fn strings_to_lists(
    strings: &dyn Array,
    field: &FieldRef,
    zone: &Tz,
) -> Result<ArrayRef> {
    let strings = strings
        .as_string_opt::<i32>()
        .ok_or_else(|| PgError::new(SqlState::InternalError, "array input: not utf8"))?;
    let mut offsets = vec![0i32];
    let mut elements: Vec<Option<String>> = Vec::new();
    let mut valid = Vec::with_capacity(strings.len());
    for s in strings.iter() {
        match s {
            Some(s) => {
                elements.extend(parse_array_text(s)?);
                valid.push(true);
            }
            None => valid.push(false),
        }
        offsets.push(elements.len() as i32);
    }
    let values: StringArray = elements.into_iter().collect();
    let values = elements_as(&values, field.data_type(), zone)?;
    let nulls = valid.iter().any(|v| !v).then(|| valid.into());
    ListArray::try_new(
        field.clone(),
        OffsetBuffer::new(offsets.into()),
        values,
        nulls,
    )
    .map(|a| Arc::new(a) as ArrayRef)
    .map_err(|e| crate::error::from_datafusion(e.into()))
}

/// Plans the array operators DataFusion leaves unplanned: `a && b` (overlap) as
/// `array_has_any`, and `@>`, `<@`, `&&` with an array literal written as text (`a @>
/// '{2}'`, where DataFusion finds no common type) with the text read as an array of the
/// other side's type. (DataFusion's own planner, which runs first, takes `@>` and `<@` of
/// two arrays.)
#[derive(Debug)]
pub struct ArrayPlanner;

impl datafusion::logical_expr::planner::ExprPlanner for ArrayPlanner {
    fn plan_binary_op(
        &self,
        expr: datafusion::logical_expr::planner::RawBinaryExpr,
        schema: &datafusion::common::DFSchema,
    ) -> datafusion::common::Result<
        datafusion::logical_expr::planner::PlannerResult<
            datafusion::logical_expr::planner::RawBinaryExpr,
        >,
    > {
        use datafusion::functions_nested::expr_fn::{array_has_all, array_has_any};
        use datafusion::logical_expr::planner::PlannerResult;
        use datafusion::logical_expr::{Cast, Expr, ExprSchemable};
        use sqlparser::ast::BinaryOperator;
        if !matches!(
            expr.op,
            BinaryOperator::AtArrow | BinaryOperator::ArrowAt | BinaryOperator::PGOverlap
        ) {
            return Ok(PlannerResult::Original(expr));
        }
        // An untyped parameter on one side has the other side's array type, as
        // PostgreSQL infers it (`a @> $1`).
        let untyped = |e: &Expr| matches!(e, Expr::Placeholder(p) if p.field.is_none());
        let typed_as = |e: Expr, other: &Expr| -> Expr {
            match (e, other.to_field(schema)) {
                (Expr::Placeholder(p), Ok((_, field))) if p.field.is_none() => {
                    Expr::Placeholder(datafusion::logical_expr::expr::Placeholder {
                        id: p.id,
                        field: Some(field),
                    })
                }
                (e, _) => e,
            }
        };
        let mut expr = expr;
        if untyped(&expr.right) {
            expr.right = typed_as(expr.right, &expr.left);
        } else if untyped(&expr.left) {
            expr.left = typed_as(expr.left, &expr.right);
        }
        let (Ok(lt), Ok(rt)) = (expr.left.get_type(schema), expr.right.get_type(schema)) else {
            return Ok(PlannerResult::Original(expr));
        };
        let list = |t: &DataType| matches!(t, DataType::List(_));
        let text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View);
        let cast = |e: Expr, to: &DataType| Expr::Cast(Cast::new(Box::new(e), to.clone()));
        let (l, r) = if list(&lt) && list(&rt) {
            (expr.left, expr.right)
        } else if list(&lt) && text(&rt) {
            (expr.left, cast(expr.right, &lt))
        } else if text(&lt) && list(&rt) {
            (cast(expr.left, &rt), expr.right)
        } else {
            return Ok(PlannerResult::Original(expr));
        };
        Ok(PlannerResult::Planned(match expr.op {
            BinaryOperator::AtArrow => array_has_all(l, r),
            BinaryOperator::ArrowAt => array_has_all(r, l),
            _ => array_has_any(l, r),
        }))
    }
}

/// `array_length(a, dim)`, `array_upper(a, dim)` and `array_lower(a, dim)` of a
/// one-dimensional array as PostgreSQL answers them: NULL for an empty array or another
/// dimension than 1 (DataFusion's `array_length` said 0 for `'{}'`), `integer` results.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArrayBound {
    name: &'static str,
    signature: Signature,
}

impl ArrayBound {
    pub const NAMES: [&'static str; 3] = ["array_length", "array_upper", "array_lower"];

    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ArrayBound {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        if !matches!(arg_types[0], DataType::List(_) | DataType::Null) {
            return Err(DataFusionError::Plan(format!(
                "function {}({}, integer) does not exist",
                self.name, arg_types[0]
            )));
        }
        Ok(DataType::Int32)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        use datafusion::arrow::array::Int32Array;
        use datafusion::arrow::datatypes::Int64Type;
        let (arrays, scalar) = crate::pgsemantics::arg_arrays(&args)?;
        let dims = datafusion::arrow::compute::cast(&arrays[1], &DataType::Int64)?;
        let dims = dims.as_primitive::<Int64Type>();
        let out: Int32Array = match arrays[0].as_list_opt::<i32>() {
            None => (0..arrays[0].len()).map(|_| None).collect(),
            Some(lists) => (0..lists.len())
                .map(|i| {
                    if lists.is_null(i) || dims.is_null(i) || dims.value(i) != 1 {
                        return None;
                    }
                    let len = lists.value_length(i);
                    match (len, self.name) {
                        (0, _) => None,
                        (_, "array_lower") => Some(1),
                        (len, _) => Some(len),
                    }
                })
                .collect(),
        };
        crate::pgsemantics::columnar(Arc::new(out), scalar)
    }
}

/// `duet_array_in(text)`: a cast of text to an array type, through PostgreSQL's format.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArrayInput {
    signature: Signature,
    field: FieldRef,
    /// The session's `TimeZone`, for timestamptz elements written without a zone.
    zone: String,
}

impl ScalarUDFImpl for ArrayInput {
    fn name(&self) -> &str {
        "duet_array_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::List(self.field.clone()))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "duet_array_in takes one argument".into(),
            ));
        };
        crate::datetime::on_strings(arg, args.number_rows, |strings| {
            let zone = crate::datetime::zone_of(&self.zone).unwrap_or_else(crate::types::utc);
            strings_to_lists(strings, &self.field, &zone)
        })
    }
}

/// Casts of text to a list type go through [`ArrayInput`]. After type coercion.
#[derive(Debug, Default)]
pub struct ArrayInputCasts;

impl AnalyzerRule for ArrayInputCasts {
    fn analyze(
        &self,
        plan: LogicalPlan,
        config: &ConfigOptions,
    ) -> datafusion::common::Result<LogicalPlan> {
        crate::datetime::replace_text_casts(plan, config, |target, zone| {
            let DataType::List(item) = target else {
                return None;
            };
            Some(ScalarUDF::new_from_impl(ArrayInput {
                signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
                field: item.clone(),
                zone: zone.to_string(),
            }))
        })
    }

    fn name(&self) -> &str {
        "duet_array_input_casts"
    }
}

/// `ARRAY(SELECT e FROM … [WHERE …] [ORDER BY …])` — an array of a subquery's rows — as
/// `COALESCE((SELECT array_agg(e [ORDER BY …]) FROM … [WHERE …]), make_array())`: the
/// same elements in the same order, and an empty array for no rows (DataFusion has no
/// ARRAY(subquery)). A subquery with several columns, GROUP BY, HAVING, DISTINCT, LIMIT,
/// set operations or a WITH clause is left as it is (and refused when planned).
pub fn rewrite_array_subqueries(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{Expr, FunctionArguments, SelectItem, SetExpr, VisitMut, VisitorMut};
    struct Arrays;
    fn is_array_of_subquery(e: &Expr) -> bool {
        matches!(e, Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("array")
            && matches!(f.args, FunctionArguments::Subquery(_)))
    }
    impl VisitorMut for Arrays {
        type Break = ();
        // A select item that is `ARRAY(subquery)` keeps PostgreSQL's name for it, `array`,
        // through the rewrite below.
        fn pre_visit_query(&mut self, q: &mut sqlparser::ast::Query) -> std::ops::ControlFlow<()> {
            if let SetExpr::Select(s) = q.body.as_mut() {
                for item in &mut s.projection {
                    if let SelectItem::UnnamedExpr(e) = item {
                        if is_array_of_subquery(e) {
                            *item = SelectItem::ExprWithAlias {
                                expr: e.clone(),
                                alias: sqlparser::ast::Ident::new("array"),
                            };
                        }
                    }
                }
            }
            std::ops::ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
            if let Expr::Function(f) = e {
                if f.name.to_string().eq_ignore_ascii_case("array") {
                    if let FunctionArguments::Subquery(q) = &f.args {
                        if let Some(agg) = array_of_subquery(q) {
                            *e = agg;
                        }
                    }
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Arrays);
}

fn array_of_subquery(q: &sqlparser::ast::Query) -> Option<sqlparser::ast::Expr> {
    use sqlparser::ast::{
        Expr, FunctionArgumentClause, FunctionArguments, GroupByExpr, OrderByKind, SelectItem,
        SetExpr, Statement,
    };
    if q.with.is_some() || q.limit_clause.is_some() || q.fetch.is_some() || !q.locks.is_empty() {
        return None;
    }
    let SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    let plain_group =
        matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if select.projection.len() != 1
        || !plain_group
        || select.having.is_some()
        || select.distinct.is_some()
    {
        return None;
    }
    let (element, alias) = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) => (e.clone(), None),
        SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
        _ => return None,
    };
    let mut order = match &q.order_by {
        None => vec![],
        Some(o) => match &o.kind {
            OrderByKind::Expressions(exprs) => exprs.clone(),
            OrderByKind::All(_) => return None,
        },
    };
    // ORDER BY 1 and ORDER BY the output's alias name the element (in the aggregate they
    // would be a constant and a column of the FROM).
    for o in &mut order {
        match &o.expr {
            Expr::Value(v) if matches!(&v.value, sqlparser::ast::Value::Number(n, _) if n == "1") => {
                o.expr = element.clone()
            }
            Expr::Value(_) => return None,
            Expr::Identifier(i)
                if alias.as_ref().is_some_and(|a| {
                    crate::ident::ident_name(a) == crate::ident::ident_name(i)
                }) =>
            {
                o.expr = element.clone()
            }
            _ => {}
        }
    }
    let parse = |sql: &str| -> Option<Expr> {
        match sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
            .ok()?
            .pop()?
        {
            Statement::Query(q) => match *q.body {
                SetExpr::Select(s) => match s.projection.into_iter().next()? {
                    SelectItem::UnnamedExpr(e) => Some(e),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        }
    };
    let mut agg = parse("SELECT array_agg(duet_element ORDER BY duet_key)")?;
    if let Expr::Function(f) = &mut agg {
        if let FunctionArguments::List(list) = &mut f.args {
            if let Some(sqlparser::ast::FunctionArg::Unnamed(
                sqlparser::ast::FunctionArgExpr::Expr(x),
            )) = list.args.first_mut()
            {
                *x = element;
            }
            list.clauses
                .retain(|c| !matches!(c, FunctionArgumentClause::OrderBy(_)));
            if !order.is_empty() {
                list.clauses.push(FunctionArgumentClause::OrderBy(order));
            }
        }
    }
    let mut inner = q.clone();
    inner.order_by = None;
    if let SetExpr::Select(s) = inner.body.as_mut() {
        s.projection = vec![SelectItem::UnnamedExpr(agg)];
    }
    let mut out = parse("SELECT coalesce((SELECT 1), make_array())")?;
    if let Expr::Function(f) = &mut out {
        if let FunctionArguments::List(list) = &mut f.args {
            if let Some(sqlparser::ast::FunctionArg::Unnamed(
                sqlparser::ast::FunctionArgExpr::Expr(Expr::Subquery(sub)),
            )) = list.args.first_mut()
            {
                **sub = inner;
                return Some(out);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse_array_text;

    fn els(s: &str) -> Vec<Option<String>> {
        parse_array_text(s).unwrap()
    }

    #[test]
    fn postgresql_array_literals() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(els("{}"), Vec::<Option<String>>::new());
        assert_eq!(els("{1,2,3}"), vec![s("1"), s("2"), s("3")]);
        assert_eq!(
            els(r#"{"a b", NULL, "NULL", c d ,"q\"x",e\,f}"#),
            vec![s("a b"), None, s("NULL"), s("c d"), s("q\"x"), s("e,f")]
        );
        assert!(parse_array_text("1,2").is_err());
        assert!(parse_array_text("{1,,2}").is_err());
        assert!(parse_array_text("{{1},{2}}").is_err());
        assert!(parse_array_text(r#"{"open}"#).is_err());
    }
}
