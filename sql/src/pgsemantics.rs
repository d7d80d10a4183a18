//! Analyzer rules that give DataFusion plans PostgreSQL's semantics where they differ.
//!
//! [`CheckedIntegerArithmetic`] (after type coercion): `+`, `-` and `*` on integers raise
//! 22003 on overflow, as in PostgreSQL, instead of wrapping around. The replacement function
//! keeps the operator's column name, so nothing that refers to the column by name changes.
//!
//! [`BpcharLiterals`]: a string literal compared with a `char(n)` column (`=`, `<>`, `<`,
//! …, `IN`) loses its trailing spaces, as PostgreSQL coerces it to `bpchar`. `char(n)` values
//! are stored without them (see `duet_common::batch::BPCHAR_WIDTH`).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// Integer `+ - *` that fail on overflow.
#[derive(Debug, Default)]
pub struct CheckedIntegerArithmetic;

fn is_int(t: &DataType) -> bool {
    matches!(t, DataType::Int16 | DataType::Int32 | DataType::Int64)
}

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = merge_schema(&node.inputs());
            node.map_expressions(|e| {
                e.transform_up(|e| {
                    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    let op = *op;
                    if !matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply) {
                        return Ok(Transformed::no(e));
                    }
                    let (Ok(lt), Ok(rt)) = (left.get_type(&schema), right.get_type(&schema)) else {
                        return Ok(Transformed::no(e));
                    };
                    if !(is_int(&lt) && lt == rt) {
                        return Ok(Transformed::no(e));
                    }
                    let udf = Arc::new(ScalarUDF::new_from_impl(CheckedOp::new(op)));
                    match e {
                        Expr::BinaryExpr(BinaryExpr { left, right, .. }) => Ok(Transformed::yes(
                            Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![*left, *right])),
                        )),
                        other => Ok(Transformed::no(other)),
                    }
                })
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_checked_integer_arithmetic"
    }
}

/// Trailing spaces off string literals compared with `char(n)` columns.
#[derive(Debug, Default)]
pub struct BpcharLiterals;

fn is_bpchar(e: &Expr, schema: &datafusion::common::DFSchema) -> bool {
    match e {
        Expr::Column(_) => e
            .to_field(schema)
            .is_ok_and(|(_, f)| f.metadata().contains_key(duet_common::batch::BPCHAR_WIDTH)),
        _ => false,
    }
}

fn trim_literal(e: Expr) -> Expr {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), m) => Expr::Literal(
            ScalarValue::Utf8(Some(s.trim_end_matches(' ').to_string())),
            m,
        ),
        Expr::Literal(ScalarValue::Utf8View(Some(s)), m) => Expr::Literal(
            ScalarValue::Utf8View(Some(s.trim_end_matches(' ').to_string())),
            m,
        ),
        other => other,
    }
}

impl AnalyzerRule for BpcharLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = merge_schema(&node.inputs());
            node.map_expressions(|e| {
                e.transform_up(|e| match e {
                    Expr::BinaryExpr(BinaryExpr { left, op, right })
                        if matches!(
                            op,
                            Operator::Eq
                                | Operator::NotEq
                                | Operator::Lt
                                | Operator::LtEq
                                | Operator::Gt
                                | Operator::GtEq
                                | Operator::IsDistinctFrom
                                | Operator::IsNotDistinctFrom
                        ) =>
                    {
                        if is_bpchar(&left, &schema) {
                            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                                left,
                                op,
                                Box::new(trim_literal(*right)),
                            ))))
                        } else if is_bpchar(&right, &schema) {
                            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                                Box::new(trim_literal(*left)),
                                op,
                                right,
                            ))))
                        } else {
                            Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                                left,
                                op,
                                right,
                            })))
                        }
                    }
                    Expr::InList(mut l) if is_bpchar(&l.expr, &schema) => {
                        l.list = l.list.into_iter().map(trim_literal).collect();
                        Ok(Transformed::yes(Expr::InList(l)))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_bpchar_literals"
    }
}

/// One checked operator as a scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedOp {
    op: Operator,
    name: &'static str,
    signature: Signature,
}

impl CheckedOp {
    fn new(op: Operator) -> Self {
        let name = match op {
            Operator::Plus => "int_add",
            Operator::Minus => "int_sub",
            _ => "int_mul",
        };
        Self {
            op,
            name,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl CheckedOp {
    fn as_binary(&self, args: &[Expr]) -> Result<Expr> {
        match args {
            [l, r] => Ok(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(l.clone()),
                self.op,
                Box::new(r.clone()),
            ))),
            _ => Err(DataFusionError::Internal(format!(
                "{} takes two arguments",
                self.name
            ))),
        }
    }
}

impl ScalarUDFImpl for CheckedOp {
    fn name(&self) -> &str {
        self.name
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(self.as_binary(args)?.schema_name().to_string())
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        Ok(self.as_binary(args)?.to_string())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<Result<_>>()?;
        let (l, r) = (&arrays[0], &arrays[1]);
        let out = match self.op {
            Operator::Plus => numeric::add(l, r),
            Operator::Minus => numeric::sub(l, r),
            _ => numeric::mul(l, r),
        };
        let out = out.map_err(|e| {
            let ty = match l.data_type() {
                DataType::Int16 => "smallint",
                DataType::Int32 => "integer",
                _ => "bigint",
            };
            match e {
                datafusion::arrow::error::ArrowError::ArithmeticOverflow(_) => {
                    DataFusionError::ArrowError(
                        Box::new(datafusion::arrow::error::ArrowError::ArithmeticOverflow(
                            format!("{ty} out of range"),
                        )),
                        None,
                    )
                }
                other => DataFusionError::ArrowError(Box::new(other), None),
            }
        })?;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

pub use duet_wire::encode::{output_name, DUPLICATE_PREFIX};

/// PostgreSQL lets a select list repeat an output name (`SELECT k, k`, `SELECT a AS x, b AS
/// x`, `SELECT count(*), count(*)`); DataFusion requires unique names. Each repeat of a
/// name in the top-level select list gets the alias `__duet_dup<n>_<name>`, which
/// [`output_name`] turns back into `<name>` for the client. The name of an unaliased item
/// is its last identifier for a column reference and its SQL text otherwise (how
/// DataFusion names most expressions); a repeat this does not recognise still gets
/// DataFusion's error, as before.
pub fn alias_duplicate_outputs(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{Expr, Ident, SelectItem, SetExpr, Statement};
    let Statement::Query(q) = stmt else { return };
    let SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for item in select.projection.iter_mut() {
        let name = match item {
            SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => i.value.to_ascii_lowercase(),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => parts
                .last()
                .map(|i| i.value.to_ascii_lowercase())
                .unwrap_or_default(),
            SelectItem::UnnamedExpr(e) => e.to_string(),
            _ => continue,
        };
        let n = seen.entry(name.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            continue;
        }
        let alias = Ident::with_quote('"', format!("{DUPLICATE_PREFIX}{n}_{name}"));
        *item = match std::mem::replace(item, SelectItem::Wildcard(Default::default())) {
            SelectItem::ExprWithAlias { expr, .. } | SelectItem::UnnamedExpr(expr) => {
                SelectItem::ExprWithAlias { expr, alias }
            }
            other => other,
        };
    }
}

/// PostgreSQL types an integer literal that fits in 32 bits as `integer`; DataFusion types
/// every integer literal as `bigint`. Where a literal is an operand (arithmetic, comparison,
/// IN list, BETWEEN) or a select-list item, this makes it an explicit `integer`, so
/// `int_col + 1` stays `integer` and `SELECT 1` is int4 as in PostgreSQL. Positions
/// (`ORDER BY 1`), LIMIT/OFFSET and function arguments keep DataFusion's typing.
pub fn type_integer_literals(stmt: &mut sqlparser::ast::Statement) {
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
            E::Between { low, high, .. } => {
                narrow(low);
                narrow(high);
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    let _ = stmt.visit(&mut SelectItems);
}

struct SelectItems;

impl sqlparser::ast::VisitorMut for SelectItems {
    type Break = ();

    fn post_visit_query(&mut self, q: &mut sqlparser::ast::Query) -> std::ops::ControlFlow<()> {
        if let sqlparser::ast::SetExpr::Select(select) = q.body.as_mut() {
            for item in &mut select.projection {
                if let sqlparser::ast::SelectItem::UnnamedExpr(e)
                | sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. } = item
                {
                    narrow(e);
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

fn narrow(e: &mut sqlparser::ast::Expr) {
    use sqlparser::ast::{CastKind, DataType as T, Expr as E, Value};
    let fits = match e {
        E::Value(v) => matches!(&v.value, Value::Number(n, false) if n.parse::<i32>().is_ok()),
        _ => false,
    };
    if fits {
        let inner = std::mem::replace(e, E::value(Value::Null));
        *e = E::Cast {
            kind: CastKind::Cast,
            expr: Box::new(inner),
            data_type: T::Int(None),
            array: false,
            format: None,
        };
    }
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
}

/// `pg_sleep(seconds)`: waits that long, once per row (as PostgreSQL calls it per row), on
/// a timer rather than a thread, so a CancelRequest or `statement_timeout` ends it at once
/// (the query's stream is dropped). NULL, zero, negative or NaN: no wait. Returns NULL of type
/// `unknown` (PostgreSQL's is `void`; both print as an empty value).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgSleep {
    signature: Signature,
}

impl Default for PgSleep {
    fn default() -> Self {
        Self {
            signature: Signature::uniform(1, vec![DataType::Float64], Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for PgSleep {
    fn name(&self) -> &str {
        "pg_sleep"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Null)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::Internal(
            "pg_sleep runs only asynchronously".into(),
        ))
    }
}

#[async_trait::async_trait]
impl AsyncScalarUDFImpl for PgSleep {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Float64Type;
        let rows = args.number_rows;
        let [seconds] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "pg_sleep takes one argument".into(),
            ));
        };
        let seconds = seconds.to_array(rows)?;
        for s in seconds.as_primitive::<Float64Type>().iter().flatten() {
            if s > 0.0 {
                // Past Duration's range (or infinite): until cancelled, as in PostgreSQL.
                let d = Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX);
                tokio::time::sleep(d).await;
            }
        }
        // An array of the batch's length: DataFusion widens a scalar answer of an async
        // function to one row only.
        Ok(ColumnarValue::Array(Arc::new(
            datafusion::arrow::array::NullArray::new(rows),
        )))
    }
}

/// `pg_typeof(x)`: the PostgreSQL name of the argument's type.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgTypeOf {
    signature: Signature,
}

impl Default for PgTypeOf {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// PostgreSQL's name for an Arrow type as DuetDB maps it.
pub fn pg_type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Int16 | DataType::Int8 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64 => "bigint",
        DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric",
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "text",
        DataType::Boolean => "boolean",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(_, None) => "timestamp without time zone",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea",
        DataType::Null => "unknown",
        _ => "unknown",
    }
}

impl ScalarUDFImpl for PgTypeOf {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = args
            .args
            .first()
            .map(|a| pg_type_name(&a.data_type()))
            .unwrap_or("unknown");
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            name.to_string(),
        ))))
    }
}
