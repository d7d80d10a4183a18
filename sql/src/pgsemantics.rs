//! Analyzer rules that give DataFusion plans PostgreSQL's semantics where they differ.
//!
//! [`CheckedIntegerArithmetic`] (after type coercion): `+`, `-` and `*` on integers raise
//! 22003 on overflow, as in PostgreSQL, instead of wrapping around. The replacement function
//! keeps the operator's column name, so nothing that refers to the column by name changes.
//! The same rule makes float `/` and `%` raise 22012 on a zero divisor, and rounds numeric
//! and float values cast to integers (Arrow's cast truncates).
//!
//! [`ConstantFoldingErrors`]: a constant subexpression that fails (`1 / 0`) fails the
//! statement at plan time, as in PostgreSQL, even where no row reaches it.
//!
//! [`InSubqueryNulls`]: `x IN (subquery)` where NULL and false would differ is refused.
//!
//! [`OuterLevelAggregates`]: an aggregate of only outer columns inside a subquery is
//! refused (0A000); PostgreSQL computes it at the outer level.
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

/// Integer `+ - *` that fail on overflow, float `/ %` that fail on a zero divisor, and
/// casts of numeric and float values to integers that round as PostgreSQL does.
#[derive(Debug, Default)]
pub struct CheckedIntegerArithmetic;

fn is_int(t: &DataType) -> bool {
    matches!(t, DataType::Int16 | DataType::Int32 | DataType::Int64)
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float32 | DataType::Float64)
}

/// PostgreSQL rounds when it casts to an integer (numeric: half away from zero, as its
/// `round`; float: half to even, as `rint`); Arrow's cast truncates. The value is rounded
/// first, then cast (which still fails on overflow).
fn round_before_integer_cast(
    e: Expr,
    cast: &datafusion::logical_expr::Cast,
    schema: &datafusion::common::DFSchema,
) -> Transformed<Expr> {
    if !is_int(cast.field.data_type()) {
        return Transformed::no(e);
    }
    let Ok(from) = cast.expr.get_type(schema) else {
        return Transformed::no(e);
    };
    let rounded = match from {
        DataType::Decimal128(..) => {
            datafusion::functions::math::expr_fn::round(vec![(*cast.expr).clone()])
        }
        DataType::Float32 | DataType::Float64 => Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(RoundHalfEven::default())),
            vec![(*cast.expr).clone()],
        )),
        _ => return Transformed::no(e),
    };
    Transformed::yes(Expr::Cast(datafusion::logical_expr::Cast::new_from_field(
        Box::new(rounded),
        cast.field.clone(),
    )))
}

/// Decimals of a numeric quotient: at least 20 (PostgreSQL divides to at least 16
/// significant digits, and prints an integer quotient below 1 with 20 decimals), and no
/// fewer than either operand has.
fn numeric_div_scale(s1: i8, s2: i8) -> i8 {
    s1.max(s2).max(20)
}

/// Numeric division as PostgreSQL computes it: rounded half away from zero at
/// [`numeric_div_scale`] decimals. DataFusion's decimal division kept as few as 4 decimals
/// and truncated (`(2 / x) + x` answered -3.1388000000 for -3.13888888888888888889). A
/// quotient beyond 10^18 does not fit numeric(38,20) and raises 22003. Named as the `/` it
/// replaces.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericDiv {
    signature: Signature,
}

impl Default for NumericDiv {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

fn decimal_scale(t: &DataType) -> i8 {
    match t {
        DataType::Decimal128(_, s) => *s,
        _ => 0,
    }
}

impl ScalarUDFImpl for NumericDiv {
    fn name(&self) -> &str {
        "numeric_div"
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(Expr::BinaryExpr(BinaryExpr::new(
            Box::new(args[0].clone()),
            Operator::Divide,
            Box::new(args[1].clone()),
        ))
        .schema_name()
        .to_string())
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        Ok(Expr::BinaryExpr(BinaryExpr::new(
            Box::new(args[0].clone()),
            Operator::Divide,
            Box::new(args[1].clone()),
        ))
        .to_string())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let s = numeric_div_scale(decimal_scale(&arg_types[0]), decimal_scale(&arg_types[1]));
        Ok(DataType::Decimal128(38, s))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, Decimal128Array};
        use datafusion::arrow::datatypes::{i256, Decimal128Type};
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if scalar { 1 } else { args.number_rows };
        let a = args.args[0].to_array(n)?;
        let b = args.args[1].to_array(n)?;
        let (s1, s2) = (decimal_scale(a.data_type()), decimal_scale(b.data_type()));
        let scale = numeric_div_scale(s1, s2);
        // x / y at `scale` decimals = x * 10^(scale + s2 - s1) / y (unscaled integers).
        let shift = (scale as i32 + s2 as i32 - s1 as i32).max(0) as u32;
        let factor = i256::from_i128(10).checked_pow(shift);
        let limit = i256::from_i128(10).checked_pow(38);
        let overflow = || {
            DataFusionError::ArrowError(
                Box::new(datafusion::arrow::error::ArrowError::ArithmeticOverflow(
                    "numeric field overflow".into(),
                )),
                None,
            )
        };
        let (a, b) = (
            a.as_primitive::<Decimal128Type>(),
            b.as_primitive::<Decimal128Type>(),
        );
        let mut out = Vec::with_capacity(n);
        for (x, y) in a.iter().zip(b.iter()) {
            let (Some(x), Some(y)) = (x, y) else {
                out.push(None);
                continue;
            };
            if y == 0 {
                return Err(DataFusionError::ArrowError(
                    Box::new(datafusion::arrow::error::ArrowError::DivideByZero),
                    None,
                ));
            }
            let (y, factor, limit) = (i256::from_i128(y), factor.ok_or_else(overflow)?, limit);
            let num = i256::from_i128(x)
                .checked_mul(factor)
                .ok_or_else(overflow)?;
            let mut q = num.checked_div(y).ok_or_else(overflow)?;
            let r = num.checked_rem(y).ok_or_else(overflow)?;
            // Half away from zero: |2r| >= |y| moves q one step away from zero.
            let twice = r
                .wrapping_abs()
                .checked_mul(i256::from_i128(2))
                .ok_or_else(overflow)?;
            if twice >= y.wrapping_abs() {
                let step = if num.is_negative() != y.is_negative() {
                    i256::from_i128(-1)
                } else {
                    i256::from_i128(1)
                };
                q = q.checked_add(step).ok_or_else(overflow)?;
            }
            if limit.is_some_and(|l| q.wrapping_abs() >= l) {
                return Err(overflow());
            }
            out.push(Some(q.to_i128().ok_or_else(overflow)?));
        }
        let out: ArrayRef =
            Arc::new(Decimal128Array::from(out).with_precision_and_scale(38, scale)?);
        columnar(out, scalar)
    }
}

/// Integer negation that fails on overflow (`-(-9223372036854775808)`); named as the
/// `-x` it replaces.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedNeg {
    signature: Signature,
}

impl Default for CheckedNeg {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CheckedNeg {
    fn name(&self) -> &str {
        "int_neg"
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(Expr::Negative(Box::new(args[0].clone()))
            .schema_name()
            .to_string())
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        Ok(Expr::Negative(Box::new(args[0].clone())).to_string())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let a = args.args[0].to_array(if scalar { 1 } else { args.number_rows })?;
        let out = numeric::neg(&a).map_err(|e| int_error(e, a.data_type()))?;
        columnar(out, scalar)
    }
}

/// A function's result: one value when every argument was a scalar, else the array.
fn columnar(out: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

/// An Arrow arithmetic error on integers of type `t`, overflow worded as PostgreSQL's
/// (`integer out of range`).
fn int_error(e: datafusion::arrow::error::ArrowError, t: &DataType) -> DataFusionError {
    use datafusion::arrow::error::ArrowError;
    let e = match e {
        ArrowError::ArithmeticOverflow(_) => {
            let ty = match t {
                DataType::Int16 => "smallint",
                DataType::Int32 => "integer",
                _ => "bigint",
            };
            ArrowError::ArithmeticOverflow(format!("{ty} out of range"))
        }
        other => other,
    };
    DataFusionError::ArrowError(Box::new(e), None)
}

/// `rint`: a float rounded to the nearest integer, ties to even.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RoundHalfEven {
    signature: Signature,
}

impl Default for RoundHalfEven {
    fn default() -> Self {
        Self {
            signature: Signature::uniform(
                1,
                vec![DataType::Float32, DataType::Float64],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for RoundHalfEven {
    fn name(&self) -> &str {
        "rint"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::{Float32Type, Float64Type};
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let a = args.args[0].to_array(if scalar { 1 } else { args.number_rows })?;
        let out: ArrayRef = match a.data_type() {
            DataType::Float32 => Arc::new(
                a.as_primitive::<Float32Type>()
                    .unary::<_, Float32Type>(f32::round_ties_even),
            ) as ArrayRef,
            _ => Arc::new(
                a.as_primitive::<Float64Type>()
                    .unary::<_, Float64Type>(f64::round_ties_even),
            ) as ArrayRef,
        };
        columnar(out, scalar)
    }
}

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = merge_schema(&node.inputs());
            node.map_expressions(|e| {
                e.transform_up(|e| {
                    if let Expr::Cast(c) = &e {
                        return Ok(round_before_integer_cast(e.clone(), c, &schema));
                    }
                    if let Expr::Negative(inner) = &e {
                        if inner.get_type(&schema).is_ok_and(|t| is_int(&t)) {
                            let udf = Arc::new(ScalarUDF::new_from_impl(CheckedNeg::default()));
                            return Ok(Transformed::yes(Expr::ScalarFunction(
                                ScalarFunction::new_udf(udf, vec![(**inner).clone()]),
                            )));
                        }
                        return Ok(Transformed::no(e));
                    }
                    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    let op = *op;
                    let (Ok(lt), Ok(rt)) = (left.get_type(&schema), right.get_type(&schema)) else {
                        return Ok(Transformed::no(e));
                    };
                    if op == Operator::Divide
                        && matches!(lt, DataType::Decimal128(..))
                        && matches!(rt, DataType::Decimal128(..))
                    {
                        let udf = Arc::new(ScalarUDF::new_from_impl(NumericDiv::default()));
                        return match e {
                            Expr::BinaryExpr(BinaryExpr { left, right, .. }) => {
                                Ok(Transformed::yes(Expr::ScalarFunction(
                                    ScalarFunction::new_udf(udf, vec![*left, *right]),
                                )))
                            }
                            other => Ok(Transformed::no(other)),
                        };
                    }
                    let checked = match op {
                        Operator::Plus | Operator::Minus | Operator::Multiply => {
                            is_int(&lt) && lt == rt
                        }
                        // Floats divide by zero into infinity or NaN; PostgreSQL raises 22012.
                        Operator::Divide | Operator::Modulo => is_float(&lt) && lt == rt,
                        _ => false,
                    };
                    if !checked {
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

/// `avg` of integers and `sum` of `bigint` are `numeric` in PostgreSQL (DataFusion: double
/// precision and a wrapping bigint). Before type coercion, their integer argument is cast
/// to a decimal: `numeric(38,16)` for `avg` (a result of 20 decimals, as PostgreSQL prints
/// an integer's average), `numeric(38,0)` for `sum`. Output names stay as they were.
#[derive(Debug, Default)]
pub struct NumericIntegerAggregates;

impl AnalyzerRule for NumericIntegerAggregates {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        use datafusion::logical_expr::expr_rewriter::NamePreserver;
        plan.transform_up_with_subqueries(|node| {
            if !matches!(node, LogicalPlan::Aggregate(_) | LogicalPlan::Window(_)) {
                return Ok(Transformed::no(node));
            }
            let schema = merge_schema(&node.inputs());
            let names = NamePreserver::new(&node);
            node.map_expressions(|e| {
                let name = names.save(&e);
                e.transform_up(|e| widen_integer_aggregate(e, &schema))
                    .map(|t| t.update_data(|e| name.restore(e)))
            })?
            .map_data(|p| p.recompute_schema())
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_numeric_integer_aggregates"
    }
}

fn widen_integer_aggregate(
    e: Expr,
    schema: &datafusion::common::DFSchema,
) -> Result<Transformed<Expr>> {
    use datafusion::logical_expr::expr::WindowFunctionDefinition;
    let (name, args) = match &e {
        Expr::AggregateFunction(f) => (f.func.name().to_string(), &f.params.args),
        Expr::WindowFunction(w) => match &w.fun {
            WindowFunctionDefinition::AggregateUDF(f) => (f.name().to_string(), &w.params.args),
            _ => return Ok(Transformed::no(e)),
        },
        _ => return Ok(Transformed::no(e)),
    };
    let Some(arg_type) = args.first().and_then(|a| a.get_type(schema).ok()) else {
        return Ok(Transformed::no(e));
    };
    let target = match (name.as_str(), &arg_type) {
        ("avg", t) if is_int(t) => DataType::Decimal128(38, 16),
        ("sum", DataType::Int64) => DataType::Decimal128(38, 0),
        _ => return Ok(Transformed::no(e)),
    };
    let widen = |args: &mut Vec<Expr>| {
        args[0] = Expr::Cast(datafusion::logical_expr::Cast::new(
            Box::new(args[0].clone()),
            target.clone(),
        ));
    };
    let mut e = e;
    match &mut e {
        Expr::AggregateFunction(f) => widen(&mut f.params.args),
        Expr::WindowFunction(w) => widen(&mut w.params.args),
        _ => {}
    }
    Ok(Transformed::yes(e))
}

/// A scalar subquery may return no row, so its value may be NULL whatever its select list
/// says; DataFusion took the nullability of the select list (`SELECT 7 ...` is never
/// NULL) and folded `(SELECT 7 FROM t WHERE false) IS NULL` to false and
/// `coalesce((SELECT ...), d)` to the subquery. This wraps the subquery's column in
/// `duet_nullable`, an identity that is always nullable (and volatile, so no folding
/// sees through it).
#[derive(Debug, Default)]
pub struct NullableScalarSubqueries;

impl AnalyzerRule for NullableScalarSubqueries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            node.map_expressions(|e| {
                e.transform_up(|e| match e {
                    Expr::ScalarSubquery(sq)
                        if sq.subquery.schema().fields().len() == 1
                            && !sq.subquery.schema().field(0).is_nullable() =>
                    {
                        let inner = sq.subquery.as_ref().clone();
                        let (qualifier, field) = inner.schema().qualified_field(0);
                        let column = Expr::Column(datafusion::common::Column::new(
                            qualifier.cloned(),
                            field.name(),
                        ));
                        let wrapped = Expr::ScalarFunction(ScalarFunction::new_udf(
                            Arc::new(ScalarUDF::new_from_impl(Nullable::default())),
                            vec![column],
                        ))
                        .alias(field.name());
                        let plan = datafusion::logical_expr::LogicalPlanBuilder::from(inner)
                            .project(vec![wrapped])?
                            .build()?;
                        Ok(Transformed::yes(Expr::ScalarSubquery(
                            datafusion::logical_expr::Subquery {
                                subquery: Arc::new(plan),
                                outer_ref_columns: sq.outer_ref_columns,
                                spans: sq.spans,
                            },
                        )))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_nullable_scalar_subqueries"
    }
}

/// The identity, reported nullable (see [`NullableScalarSubqueries`]).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Nullable {
    signature: Signature,
}

impl Default for Nullable {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for Nullable {
    fn name(&self) -> &str {
        "duet_nullable"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        Ok(Arc::new(
            args.arg_fields[0].as_ref().clone().with_nullable(true),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args[0].clone())
    }
}

/// Runs `check` on every node of `plan` and of its subqueries; returns the plan unchanged.
fn check_nodes(
    plan: LogicalPlan,
    mut check: impl FnMut(&LogicalPlan) -> Result<()>,
) -> Result<LogicalPlan> {
    plan.apply_with_subqueries(|node| {
        check(node)?;
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    Ok(plan)
}

/// Refuses an aggregate in a subquery whose arguments are all outer-query columns
/// (`SELECT (SELECT count(t.x) FROM u) FROM t`): PostgreSQL evaluates it as an aggregate
/// of the outer query, which DataFusion does not, so it would answer differently.
#[derive(Debug, Default)]
pub struct OuterLevelAggregates;

impl AnalyzerRule for OuterLevelAggregates {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        check_nodes(plan, |node| {
            let LogicalPlan::Aggregate(agg) = node else {
                return Ok(());
            };
            for e in &agg.aggr_expr {
                let (mut outer, mut local) = (false, false);
                e.apply(|x| {
                    match x {
                        Expr::OuterReferenceColumn(..) => outer = true,
                        Expr::Column(_) => local = true,
                        _ => {}
                    }
                    Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
                })?;
                if outer && !local {
                    return Err(DataFusionError::NotImplemented(format!(
                        "an aggregate of only outer-query columns in a subquery ({}): \
                         PostgreSQL computes it in the outer query",
                        e.schema_name()
                    )));
                }
            }
            Ok(())
        })
    }

    fn name(&self) -> &str {
        "duet_outer_level_aggregates"
    }
}

/// Refuses `x IN (subquery)` where its NULL would matter. DataFusion answers an IN
/// subquery by a join that yields `false` where SQL's answer is NULL (no match, and `x` or
/// a subquery row is NULL). In a WHERE or HAVING predicate reached only through AND and OR,
/// NULL and false both drop the row, so that is safe; so is `NOT IN` as a whole conjunct,
/// which DataFusion plans as a null-aware anti join. Anywhere else (under NOT, in a
/// comparison, `IS NULL`, CASE, or NOT IN under OR) the answer could differ from
/// PostgreSQL's, and the statement is refused with 0A000.
#[derive(Debug, Default)]
pub struct InSubqueryNulls;

impl AnalyzerRule for InSubqueryNulls {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        check_nodes(plan, |node| match node {
            LogicalPlan::Filter(f) => check_in_subqueries(&f.predicate, true),
            _ => Ok(()),
        })
    }

    fn name(&self) -> &str {
        "duet_in_subquery_nulls"
    }
}

/// Refuses a subquery in the HAVING clause of an aggregate without GROUP BY: DataFusion's
/// plan for it kept the one row whatever the condition said (and counted nothing):
/// `SELECT count(*) FROM t HAVING (SELECT false)` answered `0` where PostgreSQL returns no
/// row. With GROUP BY the same condition is planned right.
#[derive(Debug, Default)]
pub struct GlobalHavingSubqueries;

impl AnalyzerRule for GlobalHavingSubqueries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        check_nodes(plan, |node| {
            let LogicalPlan::Filter(f) = node else {
                return Ok(());
            };
            let global =
                matches!(f.input.as_ref(), LogicalPlan::Aggregate(a) if a.group_expr.is_empty());
            let subquery = f.predicate.exists(|x| {
                Ok(matches!(
                    x,
                    Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
                ))
            })?;
            if global && subquery {
                return Err(DataFusionError::NotImplemented(
                    "a subquery in HAVING of an aggregate without GROUP BY".into(),
                ));
            }
            Ok(())
        })
    }

    fn name(&self) -> &str {
        "duet_global_having_subqueries"
    }
}

/// `INTERSECT ALL` and `EXCEPT ALL` are refused: DataFusion answers them as a semi and an
/// anti join, which keep every copy of a row (or none) instead of min(m, n) and m - n copies.
pub fn refuse_multiset_set_operations(stmt: &sqlparser::ast::Statement) -> Result<()> {
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

/// Whether `e` reads a column of its own query: DataFusion's null-aware anti join (the
/// plan that gives NOT IN its NULL semantics) is used only then; `5 NOT IN (subquery)`
/// lost the NULLs of the subquery.
fn reads_a_column(e: &Expr) -> bool {
    e.exists(|x| Ok(matches!(x, Expr::Column(_))))
        .unwrap_or(false)
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

/// `conjunct`: `e` is a whole conjunct of the predicate (reached through AND only).
fn check_in_subqueries(e: &Expr, conjunct: bool) -> Result<()> {
    use datafusion::logical_expr::expr::InSubquery;
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            check_in_subqueries(left, conjunct)?;
            check_in_subqueries(right, conjunct)
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            check_in_subqueries(left, false)?;
            check_in_subqueries(right, false)
        }
        Expr::InSubquery(InSubquery { expr, negated, .. })
            if !negated || conjunct && reads_a_column(expr) =>
        {
            check_in_subqueries(expr, false)
        }
        Expr::Not(inner)
            if conjunct
                && matches!(inner.as_ref(), Expr::InSubquery(s) if !s.negated && reads_a_column(&s.expr)) =>
        {
            Ok(())
        }
        other => {
            let nested = other.exists(|x| Ok(matches!(x, Expr::InSubquery(_))))?;
            if nested {
                return Err(DataFusionError::NotImplemented(
                    "IN (subquery) under NOT, in a comparison, IS NULL, CASE or other \
                     expression where its NULL result matters"
                        .into(),
                ));
            }
            Ok(())
        }
    }
}

/// Raises the errors PostgreSQL raises while folding constants at plan time: a constant
/// subexpression (`1 / 0`, `2147483647 + 1`, `abs(-2147483648)`) fails the statement even
/// where no row ever evaluates it (an empty table, `WHERE false`). DataFusion's own
/// folding keeps such an expression for run time, so without this DuetDB answered where
/// PostgreSQL refuses. The walk follows PostgreSQL's `eval_const_expressions`: CASE arms
/// after a constant-true condition or under a constant-false one, AND/OR operands after a
/// deciding constant, and COALESCE arguments after a non-null constant are not folded.
#[derive(Debug, Default)]
pub struct ConstantFoldingErrors;

impl AnalyzerRule for ConstantFoldingErrors {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        use datafusion::common::tree_node::TreeNodeRecursion;
        check_nodes(plan, |node| {
            node.apply_expressions(|e| {
                fold_errors(e)?;
                Ok(TreeNodeRecursion::Continue)
            })
            .map(|_| ())
        })
    }

    fn name(&self) -> &str {
        "duet_constant_folding_errors"
    }
}

/// Whether PostgreSQL would fold `e` to a constant: no columns, aggregates, windows,
/// subqueries, parameters or volatile functions.
fn is_constant(e: &Expr) -> bool {
    !e.exists(|x| {
        Ok(matches!(
            x,
            Expr::Column(_)
                | Expr::OuterReferenceColumn(..)
                | Expr::AggregateFunction(_)
                | Expr::WindowFunction(_)
                | Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::Placeholder(_)
                | Expr::ScalarVariable(..)
        ) || matches!(x, Expr::ScalarFunction(f) if f.func.signature().volatility == Volatility::Volatile))
    })
    .unwrap_or(false)
}

/// Evaluates a constant expression on one row of nothing; `None` if it is constant NULL.
fn eval_constant(e: &Expr) -> Result<Option<ScalarValue>> {
    let schema = datafusion::common::DFSchema::empty();
    let props = datafusion::execution::context::ExecutionProps::new();
    // What DataFusion cannot turn into a physical expression is left to the planner.
    let ctx =
        datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext::default();
    let Ok(phys) = datafusion::physical_expr::create_physical_expr(e, &schema, &props, &ctx) else {
        return Ok(None);
    };
    let batch = datafusion::arrow::record_batch::RecordBatch::try_new_with_options(
        Arc::new(datafusion::arrow::datatypes::Schema::empty()),
        vec![],
        &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let v = match phys.evaluate(&batch) {
        Ok(ColumnarValue::Scalar(v)) => v,
        Ok(ColumnarValue::Array(a)) => ScalarValue::try_from_array(&a, 0)?,
        Err(e) => {
            // Only a data exception (22xxx: division by zero, overflow, a bad cast) is
            // PostgreSQL's error; anything else (an expression DataFusion evaluates only
            // after its own simplification) is left for run time.
            let pg = crate::error::from_datafusion(e);
            if pg.state.code().starts_with("22") {
                return Err(DataFusionError::External(Box::new(
                    crate::error::PgErrorBox(pg),
                )));
            }
            return Ok(None);
        }
    };
    Ok((!v.is_null()).then_some(v))
}

fn fold_errors(e: &Expr) -> Result<()> {
    if let Expr::Alias(a) = e {
        return fold_errors(&a.expr);
    }
    let lazy = match e {
        Expr::Case(_) => true,
        Expr::BinaryExpr(b) => matches!(b.op, Operator::And | Operator::Or),
        Expr::ScalarFunction(f) => f.func.name() == "coalesce",
        _ => false,
    };
    if !lazy && is_constant(e) {
        return eval_constant(e).map(|_| ());
    }
    match e {
        Expr::Case(case) => {
            if let Some(operand) = &case.expr {
                fold_errors(operand)?;
            }
            for (when, then) in &case.when_then_expr {
                if is_constant(when) && case.expr.is_none() {
                    match eval_constant(when)? {
                        Some(ScalarValue::Boolean(Some(true))) => return fold_errors(then),
                        _ => continue,
                    }
                }
                fold_errors(when)?;
                fold_errors(then)?;
            }
            match &case.else_expr {
                Some(e) => fold_errors(e),
                None => Ok(()),
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::And | Operator::Or) =>
        {
            let decides = ScalarValue::Boolean(Some(*op == Operator::Or));
            if is_constant(left) && eval_constant(left)? == Some(decides) {
                return Ok(());
            }
            fold_errors(left)?;
            fold_errors(right)
        }
        Expr::ScalarFunction(f) if f.func.name() == "coalesce" => {
            for a in &f.args {
                if is_constant(a) {
                    if eval_constant(a)?.is_some() {
                        return Ok(());
                    }
                } else {
                    fold_errors(a)?;
                }
            }
            Ok(())
        }
        other => {
            use datafusion::common::tree_node::TreeNodeRecursion;
            other.apply_children(|c| {
                fold_errors(c)?;
                Ok(TreeNodeRecursion::Continue)
            })?;
            Ok(())
        }
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
            Operator::Divide => "float_div",
            Operator::Modulo => "float_mod",
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
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        // Two scalars are computed once, on one row: a batch may have none (an empty input),
        // and the scalar result is still needed.
        let n = if all_scalar { 1 } else { args.number_rows };
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<Result<_>>()?;
        let (l, r) = (&arrays[0], &arrays[1]);
        if matches!(self.op, Operator::Divide | Operator::Modulo) {
            use datafusion::arrow::array::AsArray;
            use datafusion::arrow::datatypes::{Float32Type, Float64Type};
            // A NULL divisor divides to NULL; only a real zero is an error.
            let zero = match r.data_type() {
                DataType::Float32 => r
                    .as_primitive::<Float32Type>()
                    .iter()
                    .any(|v| v == Some(0.0)),
                _ => r
                    .as_primitive::<Float64Type>()
                    .iter()
                    .any(|v| v == Some(0.0)),
            };
            if zero {
                return Err(DataFusionError::ArrowError(
                    Box::new(datafusion::arrow::error::ArrowError::DivideByZero),
                    None,
                ));
            }
        }
        let out = match self.op {
            Operator::Plus => numeric::add(l, r),
            Operator::Minus => numeric::sub(l, r),
            Operator::Divide => numeric::div(l, r),
            Operator::Modulo => numeric::rem(l, r),
            _ => numeric::mul(l, r),
        };
        let out = out.map_err(|e| int_error(e, l.data_type()))?;
        columnar(out, all_scalar)
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
            // Functions whose PostgreSQL result type follows an integer argument's
            // (`abs(-2147483648)` overflows int4).
            E::Function(f)
                if [
                    "abs", "coalesce", "nullif", "greatest", "least", "min", "max", "sum",
                ]
                .iter()
                .any(|n| f.name.to_string().eq_ignore_ascii_case(n)) =>
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
    let _ = stmt.visit(&mut SelectItems);
}

struct SelectItems;

impl sqlparser::ast::VisitorMut for SelectItems {
    type Break = ();

    fn post_visit_query(&mut self, q: &mut sqlparser::ast::Query) -> std::ops::ControlFlow<()> {
        narrow_items(&mut q.body);
        std::ops::ControlFlow::Continue(())
    }
}

/// The select items of every branch of a set operation (`SELECT 1 UNION SELECT 2`).
fn narrow_items(body: &mut sqlparser::ast::SetExpr) {
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
            narrow_items(left);
            narrow_items(right);
        }
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

#[cfg(test)]
mod quantified_tests {
    #[test]
    fn equality_any_and_inequality_all_become_in() {
        let mut s = sqlparser::parser::Parser::parse_sql(
            &sqlparser::dialect::PostgreSqlDialect {},
            "SELECT x FROM a WHERE x = ANY (SELECT y FROM b) AND x <> ALL (SELECT y FROM b) \
             AND x > ANY (SELECT y FROM b)",
        )
        .unwrap()
        .remove(0);
        super::quantified_subqueries_as_in(&mut s);
        assert_eq!(
            s.to_string(),
            "SELECT x FROM a WHERE x IN (SELECT y FROM b) AND x NOT IN (SELECT y FROM b) \
             AND x > ANY(SELECT y FROM b)"
        );
    }
}
