//! `avg` of integers and `sum` of `bigint` are numeric.

use super::*;

/// `avg` of integers and `sum` of `bigint` are `numeric` in PostgreSQL (DataFusion: double
/// precision and a wrapping bigint). Before type coercion, their integer argument is cast
/// to a decimal: `numeric(38,16)` for `avg` (a result of 20 decimals, as PostgreSQL prints
/// an integer's average), `numeric(38,0)` for `sum`. Output names stay as they were.
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
    let target = match (name.as_str(), &arg_type) {
        ("avg", t) if is_int(t) => DataType::Decimal128(38, 16),
        // An average of numerics has at least 16 significant digits in PostgreSQL, as an
        // integer's: the same type (numeric(38,20)) when the values fit (dscale.rs
        // computes it as PostgreSQL does, from the sum and the count).
        ("avg", DataType::Decimal128(p, s)) if *s < 16 && (*p as i32 - *s as i32) <= 22 => {
            DataType::Decimal128(38, 16)
        }
        ("sum", DataType::Int64) => DataType::Decimal128(38, 0),
        _ => return Ok(Transformed::no(e)),
    };
    // The cast says what it widened (NumericCasts leaves a cast with metadata alone, and
    // dscale.rs sums the value at its own scale, even after the cast of a constant was
    // folded).
    let from = match &arg_type {
        DataType::Decimal128(_, s) => *s,
        _ => 0,
    };
    let field = Arc::new(
        datafusion::arrow::datatypes::Field::new("widened", target.clone(), true)
            .with_metadata([(super::dscale::WIDENED_FROM.to_string(), from.to_string())].into()),
    );
    let widen = |args: &mut Vec<Expr>| {
        args[0] = Expr::Cast(datafusion::logical_expr::Cast::new_from_field(
            Box::new(args[0].clone()),
            field.clone(),
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
