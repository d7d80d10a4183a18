//! Arithmetic as PostgreSQL does it: checked integer `+ - *` and negation, float `/ %`
//! that fail on a zero divisor, numeric division to 20 rounded decimals, rounding casts to
//! integers.

use super::*;
use crate::error::{PgError, SqlState};

/// Integer `+ - *` that fail on overflow, float `/ %` that fail on a zero divisor, and
/// casts of numeric and float values to integers that round as PostgreSQL does.
#[derive(Debug, Default)]
pub struct CheckedIntegerArithmetic;

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

/// `CAST(x AS numeric)` of an integer or a numeric keeps the value's scale, as PostgreSQL's
/// does (`CAST(1 AS numeric)` is `1`, `CAST(2.50 AS numeric)` is `2.50`); DataFusion casts to
/// an unconstrained numeric with 10 decimals. Before type coercion, like the division.
/// (A declared `numeric(38,10)` is the same Arrow type and is kept as DataFusion has it only
/// for floats and text, whose PostgreSQL scale depends on the value.) A cast to
/// `numeric(p,s)` carries its typmod to RowDescription.
#[derive(Debug, Default)]
pub struct NumericCasts;

impl AnalyzerRule for NumericCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        use duet_common::types::DEFAULT_NUMERIC;
        let rewrite = |e: Expr, schema: &datafusion::common::DFSchema| {
            if let Expr::ScalarFunction(f) = &e {
                return Ok(round_places_literal(e.clone(), f, schema));
            }
            let Expr::Cast(cast) = &e else {
                return Ok(Transformed::no(e));
            };
            let DataType::Decimal128(p, s) = *cast.field.data_type() else {
                return Ok(Transformed::no(e));
            };
            if (p, s) != DEFAULT_NUMERIC {
                // `CAST(x AS numeric(p,s))` is reported with its typmod, as PostgreSQL does.
                if !cast.field.metadata().is_empty() {
                    return Ok(Transformed::no(e));
                }
                let ty = duet_common::SqlType::Numeric {
                    precision: p,
                    scale: s,
                };
                let field =
                    datafusion::arrow::datatypes::Field::new("numeric", ty.arrow_type(), true)
                        .with_metadata(
                            [
                                (
                                    duet_common::batch::PG_DECLARED_TYPE.to_string(),
                                    "numeric".to_string(),
                                ),
                                (
                                    duet_common::batch::PG_TYPMOD.to_string(),
                                    ty.pg_typmod().to_string(),
                                ),
                            ]
                            .into(),
                        );
                return Ok(Transformed::yes(Expr::Cast(
                    datafusion::logical_expr::Cast::new_from_field(
                        cast.expr.clone(),
                        Arc::new(field),
                    ),
                )));
            }
            // A numeric written as text keeps the scale it is written with, as in
            // PostgreSQL (`'1.50'::numeric` is 1.50); an exponent is written out.
            if let Expr::Literal(ScalarValue::Utf8(Some(text)), _) = cast.expr.as_ref() {
                let Some((plain, p, s)) = crate::types::numeric_literal(text) else {
                    return Ok(Transformed::no(e));
                };
                let field = Arc::new(
                    cast.field
                        .as_ref()
                        .clone()
                        .with_data_type(DataType::Decimal128(p, s)),
                );
                return Ok(Transformed::yes(Expr::Cast(
                    datafusion::logical_expr::Cast::new_from_field(
                        Box::new(Expr::Literal(ScalarValue::Utf8(Some(plain)), None)),
                        field,
                    ),
                )));
            }
            let target = match cast.expr.get_type(schema) {
                Ok(t) if is_int(&t) => DataType::Decimal128(DEFAULT_NUMERIC.0, 0),
                Ok(DataType::Decimal128(p, s)) => DataType::Decimal128(p, s),
                _ => return Ok(Transformed::no(e)),
            };
            let field = Arc::new(cast.field.as_ref().clone().with_data_type(target));
            Ok(Transformed::yes(Expr::Cast(
                datafusion::logical_expr::Cast::new_from_field(cast.expr.clone(), field),
            )))
        };
        // VALUES rows were cast to their column's type by DataFusion's planner; those
        // casts stay (the node's schema is fixed), with a text number's exponent written
        // out for Arrow's decimal parser.
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Values(_) => node.map_expressions(|e| {
                e.transform(|e| match &e {
                    Expr::Cast(cast)
                        if matches!(cast.field.data_type(), DataType::Decimal128(..)) =>
                    {
                        let Expr::Literal(ScalarValue::Utf8(Some(text)), _) = cast.expr.as_ref()
                        else {
                            return Ok(Transformed::no(e));
                        };
                        let Some(plain) = crate::types::positional_decimal(text) else {
                            return Ok(Transformed::no(e));
                        };
                        Ok(Transformed::yes(Expr::Cast(
                            datafusion::logical_expr::Cast::new_from_field(
                                Box::new(Expr::Literal(ScalarValue::Utf8(Some(plain)), None)),
                                cast.field.clone(),
                            ),
                        )))
                    }
                    _ => Ok(Transformed::no(e)),
                })
            }),
            node => super::retype_node(node, &rewrite),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_numeric_casts"
    }
}

/// `round(numeric, n)` with a constant `n`: `n` becomes an `integer` constant, the type
/// `round` takes. DataFusion's `round` has the scale `n` when `n` is a constant, the
/// argument's scale otherwise; type coercion wrapped the `bigint` constant in a cast and
/// planned the scale of the argument, and evaluation then produced scale `n`
/// (`round(1.5, 0) - 1 < 7` failed comparing two decimal types).
///
/// `round(integer, n)` is `round(numeric, n)` in PostgreSQL (`round(1, 2)` is 1.00), the
/// only two-argument `round` it has: the integer is cast to numeric.
fn round_places_literal(
    e: Expr,
    f: &ScalarFunction,
    schema: &datafusion::common::DFSchema,
) -> Transformed<Expr> {
    let n = match f.args.as_slice() {
        [_, Expr::Literal(ScalarValue::Int64(Some(n)), _)] if f.func.name() == "round" => *n,
        _ => return Transformed::no(e),
    };
    let Ok(n) = i32::try_from(n) else {
        return Transformed::no(e);
    };
    let mut args = f.args.clone();
    args[1] = Expr::Literal(ScalarValue::Int32(Some(n)), None);
    // PostgreSQL's result has `n` decimals (`round(1.5, 2)` is 1.50); DataFusion's keeps
    // the argument's scale when that is smaller. Widening the argument's scale to `n` first
    // is exact.
    // Only where every value of the argument still fits (a bigint has 19 digits): past
    // that the result keeps fewer decimals, as before, rather than overflow.
    let places = u8::try_from(n).ok().filter(|&p| p <= 38);
    let widened = match (args[0].get_type(schema), places) {
        (Ok(t), Some(n)) if is_int(&t) && n <= 19 => Some(DataType::Decimal128(38, n as i8)),
        (Ok(t), _) if is_int(&t) => Some(DataType::Decimal128(38, 0)),
        (Ok(DataType::Decimal128(p, s)), Some(n)) if i16::from(n) > i16::from(s) => {
            let p = u16::from(p) + u16::from(n) - s.max(0) as u16;
            (p <= 38).then_some(DataType::Decimal128(p as u8, n as i8))
        }
        _ => None,
    };
    if let Some(t) = widened {
        args[0] = Expr::Cast(datafusion::logical_expr::Cast::new(
            Box::new(args[0].clone()),
            t,
        ));
    }
    Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
        f.func.clone(),
        args,
    )))
}

/// Numeric division through `NumericDiv`: `/` with a decimal operand and a decimal or
/// integer other one; and a product of decimals whose scales add up to more than 38
/// through `NumericMul`. Before type coercion, so everything above the quotient is coerced to
/// its real type (a rule after coercion left casts to DataFusion's quotient type above it,
/// which cut the decimals again).
#[derive(Debug, Default)]
pub struct NumericDivision;

impl AnalyzerRule for NumericDivision {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        retype_expressions(plan, |e, schema| {
            // `CAST(x / y AS numeric)` keeps the quotient: `NumericCasts` typed that cast
            // with DataFusion's quotient, whose decimals it cut. (A declared
            // `numeric(p,s)` carries its typmod and stays.)
            if let Expr::Cast(c) = &e {
                let plain = matches!(c.field.data_type(), DataType::Decimal128(..))
                    && c.field.metadata().is_empty();
                if plain
                    && matches!(c.expr.as_ref(), Expr::ScalarFunction(f) if f.func.name() == "numeric_div")
                {
                    return Ok(Transformed::yes((*c.expr).clone()));
                }
            }
            let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
                return Ok(Transformed::no(e));
            };
            if !matches!(op, Operator::Divide | Operator::Multiply) {
                return Ok(Transformed::no(e));
            }
            let (Ok(lt), Ok(rt)) = (left.get_type(schema), right.get_type(schema)) else {
                return Ok(Transformed::no(e));
            };
            let decimal = |t: &DataType| matches!(t, DataType::Decimal128(..));
            let numeric = |t: &DataType| decimal(t) || is_int(t);
            if !(numeric(&lt) && numeric(&rt) && (decimal(&lt) || decimal(&rt))) {
                return Ok(Transformed::no(e));
            }
            let udf = if *op == Operator::Multiply {
                return wide_product(e, schema);
            } else {
                Arc::new(ScalarUDF::new_from_impl(NumericDiv::default()))
            };
            Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(udf, vec![(**left).clone(), (**right).clone()]),
            )))
        })
    }

    fn name(&self) -> &str {
        "duet_numeric_division"
    }
}

/// `args[0] op args[1]`: the names of a function that replaces the operator.
fn as_operator(args: &[Expr], op: Operator) -> Expr {
    Expr::BinaryExpr(BinaryExpr::new(
        Box::new(args[0].clone()),
        op,
        Box::new(args[1].clone()),
    ))
}

/// Decimals of a numeric quotient's Arrow type: 20, or more if an operand has more.
/// PostgreSQL rounds each quotient to its own scale (`duet_common::numeric::
/// div_display_scale`: 16 significant digits, no fewer decimals than an operand shows),
/// which is at most 20 for every quotient from 0.0001 up; a smaller quotient fits only if
/// its digits past these end in zeros (else 0A000).
fn numeric_div_scale(s1: i8, s2: i8) -> i8 {
    s1.max(s2).max(20)
}

/// Numeric division as PostgreSQL computes it: `x / y` rounded half away from zero at
/// PostgreSQL's scale for these two values (`div_display_scale`), held at
/// [`numeric_div_scale`] decimals. DataFusion's decimal division kept as few as 4 decimals
/// and truncated (`(2 / x) + x` answered -3.1388000000 for -3.13888888888888888889). A
/// quotient beyond 10^18 does not fit numeric(38,20) and raises 22003. Named as the `/` it
/// replaces.
///
/// `numeric_div(x, y)` takes each operand's display scale from its type;
/// `numeric_div(x, y, dx, dy)` is given them (values whose scale varies by row, see
/// `dscale.rs`). [`NumericDivScale`] is the quotient's display scale.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct NumericDiv {
    signature: Signature,
}

impl Default for NumericDiv {
    fn default() -> Self {
        // Stable, not immutable: DataFusion folds immutable calls of constants into a
        // decimal literal of the type's scale, and the quotient's own scale is lost.
        Self {
            signature: Signature::variadic_any(Volatility::Stable),
        }
    }
}

fn decimal_scale(t: &DataType) -> i8 {
    match t {
        DataType::Decimal128(_, s) => *s,
        _ => 0,
    }
}

/// One row of a numeric division: the operands (unscaled, with their Arrow scales) and
/// their display scales.
struct DivRow {
    x: i128,
    sx: i8,
    dx: i32,
    y: i128,
    sy: i8,
    dy: i32,
}

/// The rows of `numeric_div`'s arguments (`None` where one is NULL), and whether all were
/// scalars.
fn division_rows(args: &ScalarFunctionArgs) -> Result<(Vec<Option<DivRow>>, bool)> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Decimal128Type, Int32Type};
    let (arrays, scalar) = arg_arrays(args)?;
    // An integer operand is a decimal of scale 0.
    let as_decimal = |a: &ArrayRef| -> Result<ArrayRef> {
        let s = decimal_scale(a.data_type());
        Ok(datafusion::arrow::compute::cast(
            a,
            &DataType::Decimal128(38, s),
        )?)
    };
    let a = as_decimal(&arrays[0])?;
    let b = as_decimal(&arrays[1])?;
    let (sx, sy) = (decimal_scale(a.data_type()), decimal_scale(b.data_type()));
    let scales = |i: usize| -> Result<Option<ArrayRef>> {
        arrays
            .get(i)
            .map(|d| Ok(datafusion::arrow::compute::cast(d, &DataType::Int32)?))
            .transpose()
    };
    let (da, db) = (scales(2)?, scales(3)?);
    let (a, b) = (
        a.as_primitive::<Decimal128Type>(),
        b.as_primitive::<Decimal128Type>(),
    );
    let scale_at = |d: &Option<ArrayRef>, i: usize, own: i8| -> Option<i32> {
        match d {
            None => Some(own as i32),
            Some(d) => {
                let d = d.as_primitive::<Int32Type>();
                (!d.is_null(i)).then(|| d.value(i))
            }
        }
    };
    let rows = (0..a.len())
        .map(|i| {
            if a.is_null(i) || b.is_null(i) {
                return None;
            }
            Some(DivRow {
                x: a.value(i),
                sx,
                dx: scale_at(&da, i, sx)?,
                y: b.value(i),
                sy,
                dy: scale_at(&db, i, sy)?,
            })
        })
        .collect();
    Ok((rows, scalar))
}

impl ScalarUDFImpl for NumericDiv {
    fn name(&self) -> &str {
        "numeric_div"
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(as_operator(args, Operator::Divide)
            .schema_name()
            .to_string())
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        Ok(as_operator(args, Operator::Divide).to_string())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn simplify(
        &self,
        args: Vec<Expr>,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        strict_null(self, args, info)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !matches!(arg_types.len(), 2 | 4) {
            return Err(DataFusionError::Plan(
                "numeric_div takes two or four arguments".into(),
            ));
        }
        let s = numeric_div_scale(decimal_scale(&arg_types[0]), decimal_scale(&arg_types[1]));
        Ok(DataType::Decimal128(38, s))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::Decimal128Array;
        use datafusion::arrow::datatypes::i256;
        let (rows, scalar) = division_rows(&args)?;
        let scale = match args.return_field.data_type() {
            DataType::Decimal128(_, s) => *s,
            _ => 20,
        };
        let overflow = || {
            DataFusionError::ArrowError(
                Box::new(datafusion::arrow::error::ArrowError::ArithmeticOverflow(
                    "numeric field overflow".into(),
                )),
                None,
            )
        };
        let too_small = || {
            DataFusionError::External(Box::new(crate::error::PgErrorBox(
                crate::error::PgError::unsupported(format!(
                    "a numeric quotient with more than {scale} decimal places"
                )),
            )))
        };
        let ten = |n: u32| i256::from_i128(10).checked_pow(n);
        let limit = i256::from_i128(10).wrapping_pow(38);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(DivRow {
                x,
                sx,
                dx,
                y,
                sy,
                dy,
            }) = row
            else {
                out.push(None);
                continue;
            };
            if y == 0 {
                return Err(DataFusionError::ArrowError(
                    Box::new(datafusion::arrow::error::ArrowError::DivideByZero),
                    None,
                ));
            }
            if x == 0 {
                out.push(Some(0));
                continue;
            }
            let rscale = duet_common::numeric::div_display_scale(x, sx, dx, y, sy, dy);
            // x / y at `rscale` decimals = x * 10^k / y (unscaled), k = rscale + sy - sx.
            let k = rscale + sy as i32 - sx as i32;
            let (mut num, mut den) = (i256::from_i128(x), i256::from_i128(y));
            if k >= 0 {
                num = num
                    .checked_mul(ten(k as u32).ok_or_else(too_small)?)
                    .ok_or_else(too_small)?;
            } else {
                den = den
                    .checked_mul(ten((-k) as u32).ok_or_else(overflow)?)
                    .ok_or_else(overflow)?;
            }
            let mut q = num.checked_div(den).ok_or_else(overflow)?;
            let r = num.checked_rem(den).ok_or_else(overflow)?;
            // Half away from zero: |2r| >= |den| moves q one step away from zero.
            let twice = r
                .wrapping_abs()
                .checked_mul(i256::from_i128(2))
                .ok_or_else(overflow)?;
            if twice >= den.wrapping_abs() {
                let step = if num.is_negative() != den.is_negative() {
                    i256::from_i128(-1)
                } else {
                    i256::from_i128(1)
                };
                q = q.checked_add(step).ok_or_else(overflow)?;
            }
            // Held at `scale` decimals.
            let shift = scale as i32 - rscale;
            if shift >= 0 {
                q = q
                    .checked_mul(ten(shift as u32).ok_or_else(overflow)?)
                    .ok_or_else(overflow)?;
            } else {
                let unit = ten((-shift) as u32).ok_or_else(too_small)?;
                if q.checked_rem(unit) != Some(i256::ZERO) {
                    return Err(too_small());
                }
                q = q.checked_div(unit).ok_or_else(too_small)?;
            }
            if q.wrapping_abs() >= limit {
                return Err(overflow());
            }
            out.push(Some(q.to_i128().ok_or_else(overflow)?));
        }
        let out: ArrayRef =
            Arc::new(Decimal128Array::from(out).with_precision_and_scale(38, scale)?);
        columnar(out, scalar)
    }
}

/// `a * b` of two decimals whose scales add up to more than 38 as [`NumericMul`]
/// (DataFusion's product has no type then); anything else as it is.
pub(crate) fn wide_product(
    e: Expr,
    schema: &datafusion::common::DFSchema,
) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Multiply,
        right,
    }) = &e
    else {
        return Ok(Transformed::no(e));
    };
    // An untyped NULL operand is coerced to the other operand's type.
    let (s1, s2) = match (left.get_type(schema), right.get_type(schema)) {
        (Ok(DataType::Decimal128(_, s1)), Ok(DataType::Decimal128(_, s2))) => (s1, s2),
        (Ok(DataType::Decimal128(_, s)), Ok(DataType::Null))
        | (Ok(DataType::Null), Ok(DataType::Decimal128(_, s))) => (s, s),
        _ => return Ok(Transformed::no(e)),
    };
    if s1 as i32 + s2 as i32 <= 38 {
        return Ok(Transformed::no(e));
    }
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(NumericMul::default())),
            vec![(**left).clone(), (**right).clone()],
        ),
    )))
}

/// Decimals of a product whose operands' scales add up to more than Arrow's 38 (the
/// product of two averages): 20 are held; the display scale is still the sum (dscale.rs).
const WIDE_PRODUCT_SCALE: i8 = 20;

/// The exact product of two decimals whose scales add up to more than 38, where
/// DataFusion's multiplication has no type: held at [`WIDE_PRODUCT_SCALE`] decimals. A
/// product with digits past these is refused (0A000) rather than rounded; one past 10^18
/// raises 22003. Named as the `*` it replaces.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct NumericMul {
    signature: Signature,
}

impl Default for NumericMul {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for NumericMul {
    fn name(&self) -> &str {
        "numeric_mul"
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(as_operator(args, Operator::Multiply)
            .schema_name()
            .to_string())
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        Ok(as_operator(args, Operator::Multiply).to_string())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn simplify(
        &self,
        args: Vec<Expr>,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        strict_null(self, args, info)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(38, WIDE_PRODUCT_SCALE))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::Decimal128Array;
        use datafusion::arrow::datatypes::i256;
        let (rows, scalar) = division_rows(&args)?;
        let overflow = || {
            DataFusionError::ArrowError(
                Box::new(datafusion::arrow::error::ArrowError::ArithmeticOverflow(
                    "numeric field overflow".into(),
                )),
                None,
            )
        };
        let too_fine = || {
            DataFusionError::External(Box::new(crate::error::PgErrorBox(
                crate::error::PgError::unsupported(format!(
                    "a numeric product with more than {WIDE_PRODUCT_SCALE} decimal places"
                )),
            )))
        };
        let limit = i256::from_i128(10).wrapping_pow(38);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(r) = row else {
                out.push(None);
                continue;
            };
            let p = i256::from_i128(r.x)
                .checked_mul(i256::from_i128(r.y))
                .ok_or_else(overflow)?;
            // The exact product has sx + sy decimals; keep WIDE_PRODUCT_SCALE of them.
            let shift = r.sx as i32 + r.sy as i32 - WIDE_PRODUCT_SCALE as i32;
            let q = if shift >= 0 {
                let unit = i256::from_i128(10)
                    .checked_pow(shift as u32)
                    .ok_or_else(too_fine)?;
                if p.checked_rem(unit) != Some(i256::ZERO) {
                    return Err(too_fine());
                }
                p.checked_div(unit).ok_or_else(overflow)?
            } else {
                p.checked_mul(
                    i256::from_i128(10)
                        .checked_pow((-shift) as u32)
                        .ok_or_else(overflow)?,
                )
                .ok_or_else(overflow)?
            };
            if q.wrapping_abs() >= limit {
                return Err(overflow());
            }
            out.push(Some(q.to_i128().ok_or_else(overflow)?));
        }
        let out: ArrayRef =
            Arc::new(Decimal128Array::from(out).with_precision_and_scale(38, WIDE_PRODUCT_SCALE)?);
        columnar(out, scalar)
    }
}

/// The display scale PostgreSQL gives a numeric quotient, row by row (the arguments of
/// [`NumericDiv`]); NULL where the quotient is NULL or the divisor zero.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct NumericDivScale {
    signature: Signature,
}

impl Default for NumericDivScale {
    fn default() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for NumericDivScale {
    fn name(&self) -> &str {
        "numeric_div_scale"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::Int32Array;
        let (rows, scalar) = division_rows(&args)?;
        let out: Int32Array = rows
            .into_iter()
            .map(|row| {
                let r = row?;
                (r.y != 0).then(|| {
                    duet_common::numeric::div_display_scale(r.x, r.sx, r.dx, r.y, r.sy, r.dy)
                })
            })
            .collect();
        columnar(Arc::new(out), scalar)
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

    fn simplify(
        &self,
        args: Vec<Expr>,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        strict_null(self, args, info)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = arg_arrays(&args)?;
        let a = &arrays[0];
        let out = numeric::neg(a).map_err(|e| int_error(e, a.data_type()))?;
        columnar(out, scalar)
    }
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
        let (arrays, scalar) = arg_arrays(&args)?;
        let a = &arrays[0];
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
        retype_expressions(plan, |e, schema| {
            {
                e.transform_up(|e| {
                    if let Expr::Cast(c) = &e {
                        return Ok(round_before_integer_cast(e.clone(), c, schema));
                    }
                    if let Expr::Negative(inner) = &e {
                        if inner.get_type(schema).is_ok_and(|t| is_int(&t)) {
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
                    let (Ok(lt), Ok(rt)) = (left.get_type(schema), right.get_type(schema)) else {
                        return Ok(Transformed::no(e));
                    };
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
            }
        })
    }

    fn name(&self) -> &str {
        "duet_checked_integer_arithmetic"
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

    fn simplify(
        &self,
        args: Vec<Expr>,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        strict_null(self, args, info)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = arg_arrays(&args)?;
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

/// An interval times or divided by a number (`duet_interval_mul`, `duet_interval_div`;
/// the statement rewrite writes the first for `n * INTERVAL '...'`, the planner both for a
/// column's interval: DataFusion cannot plan these), as PostgreSQL's `interval_mul` does
/// it: each field scaled, a month's fraction carried to days (30 a month) and a day's to
/// microseconds, rounded to the microsecond.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntervalScale {
    signature: Signature,
    divide: bool,
}

impl Default for IntervalScale {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
            divide: false,
        }
    }
}

impl IntervalScale {
    /// `duet_interval_div`.
    pub fn divide() -> Self {
        Self {
            divide: true,
            ..Self::default()
        }
    }
}

/// `interval * factor` by PostgreSQL's `interval_mul`; `None` if out of range.
fn scale_interval(
    i: datafusion::arrow::datatypes::IntervalMonthDayNano,
    factor: f64,
) -> Option<datafusion::arrow::datatypes::IntervalMonthDayNano> {
    let round6 = |x: f64| (x * 1e6).round() / 1e6;
    let months_f = f64::from(i.months) * factor;
    let days_f = f64::from(i.days) * factor;
    let in_i32 = |x: f64| (x.is_finite() && x.abs() < 2_147_483_648.0).then_some(x as i32);
    let months = in_i32(months_f)?;
    let mut days = in_i32(days_f)?;
    let month_remainder_days = round6((months_f - f64::from(months)) * 30.0);
    let mut sec_remainder = round6(
        (days_f - f64::from(days) + month_remainder_days - month_remainder_days.trunc()) * 86400.0,
    );
    if sec_remainder.abs() >= 86400.0 {
        let carry = (sec_remainder / 86400.0).trunc();
        days = days.checked_add(carry as i32)?;
        sec_remainder -= carry * 86400.0;
    }
    days = days.checked_add(month_remainder_days as i32)?;
    let micros = ((i.nanoseconds / 1000) as f64 * factor + sec_remainder * 1e6).round();
    if !micros.is_finite() || micros.abs() >= 9.2e18 {
        return None;
    }
    Some(datafusion::arrow::datatypes::IntervalMonthDayNano {
        months,
        days,
        nanoseconds: (micros as i64).checked_mul(1000)?,
    })
}

impl ScalarUDFImpl for IntervalScale {
    fn name(&self) -> &str {
        if self.divide {
            "duet_interval_div"
        } else {
            "duet_interval_mul"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn simplify(
        &self,
        args: Vec<Expr>,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        strict_null(self, args, info)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !arg_types[1].is_numeric() && arg_types[1] != DataType::Null {
            return Err(DataFusionError::Plan(format!(
                "operator does not exist: interval {} {}",
                if self.divide { "/" } else { "*" },
                super::pg_type_name(&arg_types[1])
            )));
        }
        Ok(DataType::Interval(
            datafusion::arrow::datatypes::IntervalUnit::MonthDayNano,
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, IntervalMonthDayNanoArray};
        use datafusion::arrow::datatypes::{Float64Type, IntervalMonthDayNanoType, IntervalUnit};
        let (arrays, scalar) = arg_arrays(&args)?;
        let interval = datafusion::arrow::compute::cast(
            &arrays[0],
            &DataType::Interval(IntervalUnit::MonthDayNano),
        )?;
        let factor = datafusion::arrow::compute::cast(&arrays[1], &DataType::Float64)?;
        let error = |state: SqlState, msg: &str| {
            DataFusionError::External(Box::new(crate::error::PgErrorBox(PgError::new(state, msg))))
        };
        let mut out = Vec::with_capacity(interval.len());
        for (i, k) in interval
            .as_primitive::<IntervalMonthDayNanoType>()
            .iter()
            .zip(factor.as_primitive::<Float64Type>().iter())
        {
            let (Some(i), Some(k)) = (i, k) else {
                out.push(None);
                continue;
            };
            let k = if self.divide {
                if k == 0.0 {
                    return Err(error(SqlState::DivisionByZero, "division by zero"));
                }
                1.0 / k
            } else {
                k
            };
            let v = scale_interval(i, k)
                .ok_or_else(|| error(SqlState::DatetimeFieldOverflow, "interval out of range"))?;
            out.push(Some(v));
        }
        columnar(Arc::new(IntervalMonthDayNanoArray::from(out)), scalar)
    }
}

/// `nullif(a, b)` has `a`'s type in PostgreSQL (`nullif(integer, bigint)` is an integer, so
/// `10 * nullif(-2147483648, count(*))` overflows, 22003); DataFusion's is the type both
/// are coerced to. Before type coercion, so the operators above are typed with `a`'s
/// type: a nullif of a narrower integer than its second argument is cast back to it (the
/// value is `a`'s or NULL, so the cast cannot fail).
#[derive(Debug, Default)]
pub struct NullifFirstArgumentType;

impl AnalyzerRule for NullifFirstArgumentType {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        retype_expressions(plan, |e, schema| {
            let Expr::ScalarFunction(f) = &e else {
                return Ok(Transformed::no(e));
            };
            if f.func.name() != "nullif" || f.args.len() != 2 {
                return Ok(Transformed::no(e));
            }
            let (Ok(a), Ok(b)) = (f.args[0].get_type(schema), f.args[1].get_type(schema)) else {
                return Ok(Transformed::no(e));
            };
            let width = |t: &DataType| match t {
                DataType::Int16 => 2,
                DataType::Int32 => 4,
                DataType::Int64 => 8,
                _ => 0,
            };
            if width(&a) == 0 || width(&b) <= width(&a) {
                return Ok(Transformed::no(e));
            }
            Ok(Transformed::yes(Expr::Cast(
                datafusion::logical_expr::Cast::new(Box::new(e.clone()), a),
            )))
        })
    }

    fn name(&self) -> &str {
        "duet_nullif_first_argument_type"
    }
}
