//! `avg` of integers and `sum` of `bigint` are numeric.

use super::*;

/// `avg` of integers and `sum` of `bigint` are `numeric` in PostgreSQL (DataFusion: double
/// precision and a wrapping bigint). Before type coercion, their integer argument is cast
/// to a decimal: `numeric(38,0)` for `sum`, `numeric(38,16)` for an `avg` that
/// [`NumericAverages`] left (one with ORDER BY). Output names stay as they were.
#[derive(Debug, Default)]
pub struct NumericIntegerAggregates;

impl AnalyzerRule for NumericIntegerAggregates {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        // Aggregate and window functions appear only in Aggregate and Window nodes. A
        // product of two such averages has more than 38 decimals: `NumericMul` (or the
        // rebuilt schema above would have no type for it).
        retype_expressions(plan, |e, schema| {
            widen_integer_aggregate(e, schema)?
                .transform_data(|e| super::arith::wide_product(e, schema))
        })
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
    if let Some(sum) = CheckedSum::of(&arg_type).filter(|_| name == "sum") {
        let checked = Arc::new(datafusion::logical_expr::AggregateUDF::new_from_impl(sum));
        let mut e = e;
        match &mut e {
            Expr::AggregateFunction(f) => f.func = checked,
            Expr::WindowFunction(w) => w.fun = WindowFunctionDefinition::AggregateUDF(checked),
            _ => {}
        }
        return Ok(Transformed::yes(e));
    }
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

/// `avg` of integers and numerics as PostgreSQL computes it: the sum divided by the count
/// with numeric division (`numeric.c`'s `numeric_avg` and `int8_avg` call `numeric_div`),
/// so an average has PostgreSQL's value and scale (16 significant digits, at least the
/// argument's decimals) wherever it is used: in a subquery, an `INSERT … SELECT`, a
/// comparison. An Aggregate's `avg(x)` becomes `sum(x)` and `count(x)` (with its DISTINCT and
/// FILTER) and a projection above divides them under the average's name; a window's
/// likewise over the same window. The first analyzer rule after the scalar-subquery one,
/// before type coercion: `NumericDivision` then turns the `/` into `numeric_div`.
#[derive(Debug, Default)]
pub struct NumericAverages;

impl AnalyzerRule for NumericAverages {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let node = match node {
                LogicalPlan::Aggregate(a) => average_aggregate(a)?,
                LogicalPlan::Window(w) => average_window(w)?,
                node => node,
            };
            super::rebuild_schema(node).map(Transformed::yes)
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_numeric_averages"
    }
}

/// The argument of an average PostgreSQL divides as numeric: an integer (whose sum is
/// made numeric above the aggregate, see [`divide_above`]) or a numeric; `None` for
/// other types.
fn average_argument(arg: &Expr, schema: &datafusion::common::DFSchema) -> Option<Expr> {
    match arg.get_type(schema).ok()? {
        t if is_int(&t) => Some(arg.clone()),
        DataType::Decimal128(..) => Some(arg.clone()),
        // PostgreSQL's `interval_avg` is the sum by `interval_div` (DataFusion has no
        // average of intervals).
        DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano) => {
            Some(arg.clone())
        }
        _ => None,
    }
}

fn helper_names(name: &str) -> (String, String) {
    (format!("{name}\u{1f}sum"), format!("{name}\u{1f}count"))
}

/// `sum / count` under the average's name; an integer sum as numeric(38,0), an interval
/// sum divided by `duet_interval_div`.
fn quotient(name: &str, schema: &datafusion::common::DFSchema) -> Expr {
    let (sum, count) = helper_names(name);
    let column = Expr::Column(datafusion::common::Column::new_unqualified(sum));
    let count = Expr::Column(datafusion::common::Column::new_unqualified(count));
    let sum = match column.get_type(schema) {
        Ok(t) if is_int(&t) => Expr::Cast(datafusion::logical_expr::Cast::new(
            Box::new(column),
            DataType::Decimal128(38, 0),
        )),
        Ok(DataType::Interval(_)) => {
            return Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(ScalarUDF::new_from_impl(
                    super::arith::IntervalScale::divide(),
                )),
                vec![column, count],
            ))
            .alias(name)
        }
        _ => column,
    };
    Expr::BinaryExpr(BinaryExpr::new(
        Box::new(sum),
        Operator::Divide,
        Box::new(count),
    ))
    .alias(name)
}

/// A projection over `node` giving `out`'s columns in order, the averages (`names`)
/// computed from their sums and counts.
fn divide_above(
    node: LogicalPlan,
    out: &datafusion::common::DFSchema,
    names: &[String],
) -> Result<LogicalPlan> {
    let exprs = out
        .iter()
        .map(|(q, f)| {
            if q.is_none() && names.contains(f.name()) {
                quotient(f.name(), node.schema())
            } else {
                Expr::Column(datafusion::common::Column::new(q.cloned(), f.name()))
            }
        })
        .collect::<Vec<_>>();
    Ok(LogicalPlan::Projection(
        datafusion::logical_expr::Projection::try_new(exprs, Arc::new(node))?,
    ))
}

fn average_aggregate(a: datafusion::logical_expr::Aggregate) -> Result<LogicalPlan> {
    use datafusion::functions_aggregate::{count::count_udaf, sum::sum_udaf};
    use datafusion::logical_expr::expr::AggregateFunction;
    if a.group_expr
        .iter()
        .any(|g| matches!(g, Expr::GroupingSet(_)))
    {
        return Ok(LogicalPlan::Aggregate(a));
    }
    let schema = a.input.schema().clone();
    let first = a.schema.fields().len() - a.aggr_expr.len();
    let mut aggr = Vec::with_capacity(a.aggr_expr.len() + 1);
    let mut names = Vec::new();
    for (j, e) in a.aggr_expr.iter().enumerate() {
        let (q, field) = a.schema.qualified_field(first + j);
        let inner = match e {
            Expr::Alias(al) => al.expr.as_ref(),
            e => e,
        };
        let rewritten = match inner {
            Expr::AggregateFunction(f)
                if q.is_none()
                    && f.func.name() == "avg"
                    && f.params.order_by.is_empty()
                    && f.params.args.len() == 1 =>
            {
                average_argument(&f.params.args[0], &schema)
            }
            _ => None,
        };
        let (Some(arg), Expr::AggregateFunction(f)) = (rewritten, inner) else {
            aggr.push(e.clone());
            continue;
        };
        let name = field.name().clone();
        let (sum, count) = helper_names(&name);
        let of = |func, arg: Expr| {
            Expr::AggregateFunction(AggregateFunction::new_udf(
                func,
                vec![arg],
                f.params.distinct,
                f.params.filter.clone(),
                vec![],
                None,
            ))
        };
        aggr.push(of(sum_udaf(), arg.clone()).alias(sum));
        aggr.push(of(count_udaf(), f.params.args[0].clone()).alias(count));
        names.push(name);
    }
    if names.is_empty() {
        return Ok(LogicalPlan::Aggregate(a));
    }
    let out = a.schema.clone();
    let node = LogicalPlan::Aggregate(datafusion::logical_expr::Aggregate::try_new(
        a.input,
        a.group_expr,
        aggr,
    )?);
    divide_above(node, &out, &names)
}

fn average_window(w: datafusion::logical_expr::Window) -> Result<LogicalPlan> {
    use datafusion::functions_aggregate::{count::count_udaf, sum::sum_udaf};
    use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionDefinition};
    let schema = w.input.schema().clone();
    let first = w.schema.fields().len() - w.window_expr.len();
    let mut exprs = Vec::with_capacity(w.window_expr.len() + 1);
    let mut names = Vec::new();
    for (j, e) in w.window_expr.iter().enumerate() {
        let (q, field) = w.schema.qualified_field(first + j);
        let inner = match e {
            Expr::Alias(al) => al.expr.as_ref(),
            e => e,
        };
        let rewritten = match inner {
            Expr::WindowFunction(wf) => match &wf.fun {
                WindowFunctionDefinition::AggregateUDF(f)
                    if q.is_none()
                        && f.name() == "avg"
                        && !wf.params.distinct
                        && wf.params.args.len() == 1 =>
                {
                    average_argument(&wf.params.args[0], &schema)
                }
                _ => None,
            },
            _ => None,
        };
        let (Some(arg), Expr::WindowFunction(wf)) = (rewritten, inner) else {
            exprs.push(e.clone());
            continue;
        };
        let name = field.name().clone();
        let (sum, count) = helper_names(&name);
        let over = |f, arg: Expr| {
            let mut params = wf.params.clone();
            params.args = vec![arg];
            Expr::WindowFunction(Box::new(WindowFunction {
                fun: WindowFunctionDefinition::AggregateUDF(f),
                params,
            }))
        };
        exprs.push(over(sum_udaf(), arg.clone()).alias(sum));
        exprs.push(over(count_udaf(), wf.params.args[0].clone()).alias(count));
        names.push(name);
    }
    if names.is_empty() {
        return Ok(LogicalPlan::Window(w));
    }
    let out = w.schema.clone();
    let node = LogicalPlan::Window(datafusion::logical_expr::Window::try_new(exprs, w.input)?);
    divide_above(node, &out, &names)
}

/// `sum` where DataFusion's differs from PostgreSQL's, by argument type:
///
/// - `real`: as PostgreSQL's `float4pl` adds, in `real`, one value after another, a finite
///   sum that overflows failing with 22003 (DataFusion adds in double precision and answers
///   a double);
/// - `interval`: each field added checked, months and days as `integer`s, the time as
///   nanoseconds in a 64-bit integer (±292 years; PostgreSQL's microseconds reach
///   ±292,000), a sum past them failing with 22008 `interval out of range` (DataFusion's
///   sum wrapped around: a sum of many large intervals came out negative).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CheckedSum {
    ty: DataType,
    signature: Signature,
}

impl CheckedSum {
    /// The sum of `ty` values, if this one replaces DataFusion's for it.
    pub fn of(ty: &DataType) -> Option<Self> {
        matches!(
            ty,
            DataType::Float32
                | DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano)
        )
        .then(|| Self {
            ty: ty.clone(),
            signature: Signature::exact(vec![ty.clone()], Volatility::Immutable),
        })
    }
}

impl datafusion::logical_expr::AggregateUDFImpl for CheckedSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.ty.clone())
    }

    fn accumulator(
        &self,
        _args: datafusion::logical_expr::function::AccumulatorArgs,
    ) -> Result<Box<dyn datafusion::logical_expr::Accumulator>> {
        Ok(match self.ty {
            DataType::Float32 => Box::<RealSumAccumulator>::default(),
            _ => Box::<IntervalSumAccumulator>::default(),
        })
    }

    fn state_fields(
        &self,
        args: datafusion::logical_expr::function::StateFieldsArgs,
    ) -> Result<Vec<datafusion::arrow::datatypes::FieldRef>> {
        Ok(vec![Arc::new(datafusion::arrow::datatypes::Field::new(
            format!("{}[sum]", args.name),
            self.ty.clone(),
            true,
        ))])
    }
}

#[derive(Debug, Default)]
struct RealSumAccumulator {
    sum: Option<f32>,
}

impl RealSumAccumulator {
    /// Adds (`sign` 1) or takes away (-1, a sliding window frame's leaving rows:
    /// PostgreSQL sums each frame anew; the two agree to `real`'s precision) `values`.
    fn add(&mut self, values: &ArrayRef, sign: f32) -> Result<()> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Float32Type;
        for v in values.as_primitive::<Float32Type>().iter().flatten() {
            let sum = self.sum.unwrap_or(0.0);
            let next = sum + sign * v;
            if next.is_infinite() && !sum.is_infinite() && !v.is_infinite() {
                return Err(crate::jsonb::pg_error(crate::error::PgError::new(
                    crate::error::SqlState::NumericValueOutOfRange,
                    "value out of range: overflow",
                )));
            }
            self.sum = Some(next);
        }
        Ok(())
    }
}

impl datafusion::logical_expr::Accumulator for RealSumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], 1.0)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.add(&states[0], 1.0)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], -1.0)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Float32(self.sum)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float32(self.sum))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[derive(Debug, Default)]
struct IntervalSumAccumulator {
    sum: Option<datafusion::arrow::datatypes::IntervalMonthDayNano>,
}

impl IntervalSumAccumulator {
    fn add(&mut self, values: &ArrayRef, sign: i32) -> Result<()> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::{IntervalMonthDayNano, IntervalMonthDayNanoType};
        for v in values
            .as_primitive::<IntervalMonthDayNanoType>()
            .iter()
            .flatten()
        {
            let s = self.sum.unwrap_or(IntervalMonthDayNano::ZERO);
            let next = (|| {
                Some(IntervalMonthDayNano::new(
                    s.months.checked_add(v.months.checked_mul(sign)?)?,
                    s.days.checked_add(v.days.checked_mul(sign)?)?,
                    s.nanoseconds
                        .checked_add(v.nanoseconds.checked_mul(i64::from(sign))?)?,
                ))
            })()
            .ok_or_else(|| {
                crate::jsonb::pg_error(crate::error::PgError::new(
                    crate::error::SqlState::DatetimeFieldOverflow,
                    "interval out of range",
                ))
            })?;
            self.sum = Some(next);
        }
        Ok(())
    }
}

impl datafusion::logical_expr::Accumulator for IntervalSumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], 1)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.add(&states[0], 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::IntervalMonthDayNano(self.sum)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::IntervalMonthDayNano(self.sum))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}
