//! Numerics beside floats are floats, as in PostgreSQL.
//!
//! PostgreSQL casts `numeric` to `double precision` where the two meet: a comparison
//! (`float8 = numeric` is `float8 = float8`), an IN list, BETWEEN, and the result of a
//! UNION, VALUES, CASE, COALESCE, GREATEST or LEAST that mixes them is `double precision`.
//! DataFusion makes them `Decimal128(30, 15)`, which rounds the float to 15 decimals
//! (`1/3::float8 = 0.333333333333333` was true) and cannot hold large floats (`1e300`).
//! Before type coercion, [`FloatNumerics`] casts the numeric side to `Float64` there.
//! Likewise `real` meets an integer or a numeric as `double precision` in PostgreSQL (`1 +
//! 1e10::real` is `10000000001`, a float8; `real + real` stays `real`), where DataFusion
//! computed in `Float32` (`1e+10`): both operands of the arithmetic or comparison are cast
//! to `Float64`; so are the arguments of the functions PostgreSQL has only for double
//! precision (`floor`, `sqrt`, …). A
//! statement that is only a VALUES list (an INSERT's source) is left as it is: PostgreSQL
//! assigns each of its values to the target column without a common type.

use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::expr::{Case, InList};
use datafusion::logical_expr::{Between, BinaryExpr, Operator, Projection, Union, Values};

use super::*;

/// See the module.
#[derive(Debug, Default)]
pub struct FloatNumerics;

fn float(e: Expr) -> Expr {
    Expr::Cast(datafusion::logical_expr::Cast::new(
        Box::new(e),
        DataType::Float64,
    ))
}

fn type_of(e: &Expr, schema: &DFSchema) -> Option<DataType> {
    e.get_type(schema).ok()
}

/// Whether `types` mix a float with a numeric.
pub(super) fn mixed<'a>(types: impl Iterator<Item = &'a DataType> + Clone) -> bool {
    types.clone().any(is_float)
        && types
            .into_iter()
            .any(|t| matches!(t, DataType::Decimal128(..)))
}

/// `e` as a float if it is a numeric.
fn floated(e: Expr, schema: &DFSchema) -> Expr {
    match type_of(&e, schema) {
        Some(DataType::Decimal128(..)) => float(e),
        _ => e,
    }
}

fn all_floated(es: Vec<Expr>, schema: &DFSchema) -> Vec<Expr> {
    es.into_iter().map(|e| floated(e, schema)).collect()
}

/// Whether a `real` meets an integer or a numeric in `types` (two operands).
pub(super) fn real_beside_exact(types: &[DataType]) -> bool {
    let exact = |t: &DataType| is_int(t) || matches!(t, DataType::Decimal128(..));
    match types {
        [a, b] => (a == &DataType::Float32 && exact(b)) || (b == &DataType::Float32 && exact(a)),
        _ => false,
    }
}

fn rewrite(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let types =
        |es: &[&Expr]| -> Vec<DataType> { es.iter().filter_map(|e| type_of(e, schema)).collect() };
    Ok(match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if (is_comparison(&op)
                || matches!(
                    op,
                    Operator::Plus
                        | Operator::Minus
                        | Operator::Multiply
                        | Operator::Divide
                        | Operator::Modulo
                        | Operator::IsDistinctFrom
                        | Operator::IsNotDistinctFrom
                ))
                && real_beside_exact(&types(&[&left, &right])) =>
        {
            Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(float(*left)),
                op,
                Box::new(float(*right)),
            )))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if (is_comparison(&op)
                || matches!(op, Operator::IsDistinctFrom | Operator::IsNotDistinctFrom))
                && mixed(types(&[&left, &right]).iter()) =>
        {
            Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(floated(*left, schema)),
                op,
                Box::new(floated(*right, schema)),
            )))
        }
        Expr::InList(l)
            if mixed(types(&l.list.iter().chain([l.expr.as_ref()]).collect::<Vec<_>>()).iter()) =>
        {
            Transformed::yes(Expr::InList(InList::new(
                Box::new(floated(*l.expr, schema)),
                all_floated(l.list, schema),
                l.negated,
            )))
        }
        Expr::Between(b) if mixed(types(&[&b.expr, &b.low, &b.high]).iter()) => {
            Transformed::yes(Expr::Between(Between::new(
                Box::new(floated(*b.expr, schema)),
                b.negated,
                Box::new(floated(*b.low, schema)),
                Box::new(floated(*b.high, schema)),
            )))
        }
        Expr::Case(c)
            if mixed(
                types(
                    &c.when_then_expr
                        .iter()
                        .map(|(_, t)| t.as_ref())
                        .chain(c.else_expr.as_deref())
                        .collect::<Vec<_>>(),
                )
                .iter(),
            ) =>
        {
            Transformed::yes(Expr::Case(Case {
                expr: c.expr,
                when_then_expr: c
                    .when_then_expr
                    .into_iter()
                    .map(|(w, t)| (w, Box::new(floated(*t, schema))))
                    .collect(),
                else_expr: c.else_expr.map(|x| Box::new(floated(*x, schema))),
            }))
        }
        Expr::ScalarFunction(f)
            if matches!(f.func.name(), "coalesce" | "greatest" | "least" | "nullif")
                && mixed(types(&f.args.iter().collect::<Vec<_>>()).iter()) =>
        {
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                f.func,
                all_floated(f.args, schema),
            )))
        }
        // PostgreSQL has these only for double precision: a `real` argument is widened
        // (`floor(0.1::real)` is a float8, and so is a CASE mixing it with the `real`).
        Expr::ScalarFunction(f)
            if FLOAT8_ONLY.contains(&f.func.name())
                && f.args
                    .iter()
                    .any(|a| type_of(a, schema) == Some(DataType::Float32)) =>
        {
            let args = f
                .args
                .into_iter()
                .map(|a| match type_of(&a, schema) {
                    Some(DataType::Float32) => float(a),
                    _ => a,
                })
                .collect();
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(f.func, args)))
        }
        e => Transformed::no(e),
    })
}

/// Functions PostgreSQL defines for `double precision` and not for `real`.
const FLOAT8_ONLY: &[&str] = &[
    "ceil", "ceiling", "floor", "round", "trunc", "sign", "sqrt", "cbrt", "exp", "ln", "log",
    "log10", "power", "pow", "sin", "cos", "tan", "cot", "asin", "acos", "atan", "atan2", "sinh",
    "cosh", "tanh", "asinh", "acosh", "atanh", "degrees", "radians",
];

/// A UNION whose column mixes floats and numerics: each branch's numeric cast to a float.
fn float_union(u: Union) -> Result<Transformed<LogicalPlan>> {
    let width = u.schema.fields().len();
    let columns: Vec<usize> = (0..width)
        .filter(|&i| {
            mixed(
                u.inputs
                    .iter()
                    .map(|p| p.schema().field(i).data_type())
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
        })
        .collect();
    if columns.is_empty() {
        return Ok(Transformed::no(LogicalPlan::Union(u)));
    }
    let inputs = u
        .inputs
        .into_iter()
        .map(|input| {
            let exprs = input
                .schema()
                .iter()
                .enumerate()
                .map(|(i, (q, f))| {
                    let c = Expr::Column(Column::new(q.cloned(), f.name()));
                    if columns.contains(&i) && matches!(f.data_type(), DataType::Decimal128(..)) {
                        float(c).alias_qualified(q.cloned(), f.name())
                    } else {
                        c
                    }
                })
                .collect();
            Ok(Arc::new(LogicalPlan::Projection(Projection::try_new(
                exprs, input,
            )?)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Transformed::yes(LogicalPlan::Union(
        Union::try_new_with_loose_types(inputs)?,
    )))
}

/// VALUES whose column the planner made numeric from floats and numerics: a float column.
fn float_values(v: Values) -> Result<Transformed<LogicalPlan>> {
    let schema = v.schema.clone();
    let empty = DFSchema::empty();
    let width = schema.fields().len();
    let floated_columns: Vec<usize> = (0..width)
        .filter(|&i| {
            matches!(schema.field(i).data_type(), DataType::Decimal128(..))
                && v.values.iter().any(|row| {
                    matches!(&row[i], Expr::Cast(c)
                        if type_of(&c.expr, &empty).is_some_and(|t| is_float(&t)))
                })
        })
        .collect();
    if floated_columns.is_empty() {
        return Ok(Transformed::no(LogicalPlan::Values(v)));
    }
    let rows: Vec<Vec<Expr>> = v
        .values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .enumerate()
                .map(|(i, e)| {
                    if !floated_columns.contains(&i) {
                        return e;
                    }
                    match e {
                        Expr::Cast(c) if type_of(&c.expr, &empty).is_some_and(|t| is_float(&t)) => {
                            float(*c.expr)
                        }
                        e => float(e),
                    }
                })
                .collect()
        })
        .collect();
    let fields: Vec<_> = schema
        .iter()
        .enumerate()
        .map(|(i, (q, f))| {
            let f = if floated_columns.contains(&i) {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Float64))
            } else {
                f.clone()
            };
            (q.cloned(), f)
        })
        .collect();
    let schema = DFSchema::new_with_metadata(fields, schema.metadata().clone())?;
    Ok(Transformed::yes(LogicalPlan::Values(Values {
        schema: Arc::new(schema),
        values: rows,
    })))
}

impl AnalyzerRule for FloatNumerics {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        // A statement that is a VALUES list is an INSERT's source (or a bare VALUES): there
        // PostgreSQL assigns each value to its column as it is, with no common type.
        if matches!(plan, LogicalPlan::Values(_)) {
            return Ok(plan);
        }
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Union(u) => float_union(u),
            LogicalPlan::Values(v) => float_values(v),
            node => retype_node(node, &rewrite),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_float_numerics"
    }
}
