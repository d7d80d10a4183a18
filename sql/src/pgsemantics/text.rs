//! A text value compared with a number is 42883, as PostgreSQL has no such operator
//! (`WHERE textcol = 5`); DataFusion cast the text and failed on the first value that was
//! not a number, or answered when all were.
//!
//! Casts to text print as PostgreSQL's output functions do: `CAST(0::real AS text)` is
//! `0` (Arrow: `0.0`), a timestamp is `2024-02-29 13:14:15` (Arrow: `2024-02-29T13:14:15`).
//! The wire sends such values right; a cast inside the query (`length(CAST(x AS text))`,
//! a comparison, a concatenation) now sees the same text.

use datafusion::arrow::datatypes::Field;
use datafusion::logical_expr::Cast;

use super::*;

/// Refuses `text <op> number` (before type coercion, which would insert the cast). A
/// string literal is PostgreSQL's untyped constant and stays legal (`intcol = '5'`).
#[derive(Debug, Default)]
pub struct TextNumberComparisons;

impl AnalyzerRule for TextNumberComparisons {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        check_nodes(plan, |node| {
            let schema = merge_schema(&node.inputs());
            node.apply_expressions(|e| {
                e.apply(|x| {
                    if let Expr::BinaryExpr(BinaryExpr { left, op, right }) = x {
                        if is_comparison(op) {
                            text_number_comparison(left, *op, right, &schema)?;
                        }
                    }
                    Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
                })
            })
            .map(|_| ())
        })
    }

    fn name(&self) -> &str {
        "duet_text_number_comparisons"
    }
}

fn text_number_comparison(
    left: &Expr,
    op: Operator,
    right: &Expr,
    schema: &datafusion::common::DFSchema,
) -> Result<()> {
    let typed_text = |e: &Expr, t: &DataType| is_string(t) && !matches!(e, Expr::Literal(..));
    let number = |t: &DataType| is_int(t) || is_float(t) || matches!(t, DataType::Decimal128(..));
    let (Ok(lt), Ok(rt)) = (left.get_type(schema), right.get_type(schema)) else {
        return Ok(());
    };
    if typed_text(left, &lt) && number(&rt) || number(&lt) && typed_text(right, &rt) {
        let pg = crate::error::PgError::new(
            duet_wire::SqlState::UndefinedFunction,
            format!(
                "operator does not exist: {} {op} {}",
                super::pg_type_name(&lt),
                super::pg_type_name(&rt)
            ),
        );
        return Err(DataFusionError::External(Box::new(
            crate::error::PgErrorBox(pg),
        )));
    }
    Ok(())
}

/// Casts of floats, timestamps, times, intervals and arrays to text, through `PgText`.
#[derive(Debug, Default)]
pub struct PgTextCasts;

fn needs_pg_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Float32
            | DataType::Float64
            | DataType::Timestamp(..)
            | DataType::Time64(_)
            | DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano)
            | DataType::List(_)
    )
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

impl AnalyzerRule for PgTextCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        retype_expressions(plan, |e, schema| {
            {
                e.transform_up(|e| {
                    let Expr::Cast(Cast { expr, field }) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    if !is_string(field.data_type()) {
                        return Ok(Transformed::no(e));
                    }
                    let Ok((_, from)) = expr.to_field(schema) else {
                        return Ok(Transformed::no(e));
                    };
                    if !needs_pg_text(from.data_type()) {
                        return Ok(if declares_type(&from) && field.metadata().is_empty() {
                            // A cast of a varchar(n) or char(n) column to text is text: a
                            // target field with a name takes no metadata from the source.
                            let text = Field::new("text", field.data_type().clone(), true);
                            Transformed::yes(Expr::Cast(Cast::new_from_field(
                                expr.clone(),
                                Arc::new(text),
                            )))
                        } else {
                            Transformed::no(e)
                        });
                    }
                    let udf = Arc::new(ScalarUDF::new_from_impl(PgText::default()));
                    let text =
                        Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![(**expr).clone()]));
                    // Utf8 out; a cast to another string type keeps its own.
                    Ok(Transformed::yes(if *field.data_type() == DataType::Utf8 {
                        text
                    } else {
                        Expr::Cast(Cast::new_from_field(Box::new(text), field.clone()))
                    }))
                })
            }
        })
    }

    fn name(&self) -> &str {
        "duet_pg_text_casts"
    }
}

/// Whether `field` carries the declared type of a `varchar(n)`, `char(n)` or `numeric(p,s)`
/// table column (see `duet_common::batch::PG_DECLARED_TYPE`).
fn declares_type(field: &Field) -> bool {
    use duet_common::batch::{BPCHAR_WIDTH, PG_DECLARED_TYPE};
    let m = field.metadata();
    m.contains_key(PG_DECLARED_TYPE) || m.contains_key(BPCHAR_WIDTH)
}

/// `duet_varchar(text, n)` and `duet_bpchar(text, n)`, the casts to `varchar(n)` and
/// `char(n)` (`statement::character_casts`): the value cut to `n` characters, as an explicit
/// cast in PostgreSQL does; a `char(n)` value also loses its trailing spaces (its stored
/// form; the wire pads it). The result field carries the declared type, so RowDescription
/// says `varchar` / `bpchar` with the length.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CharacterCast {
    signature: Signature,
    bpchar: bool,
}

impl CharacterCast {
    pub fn varchar() -> Self {
        Self::new(false)
    }

    pub fn bpchar() -> Self {
        Self::new(true)
    }

    fn new(bpchar: bool) -> Self {
        Self {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Int64],
                Volatility::Immutable,
            ),
            bpchar,
        }
    }
}

impl ScalarUDFImpl for CharacterCast {
    fn name(&self) -> &str {
        if self.bpchar {
            "duet_bpchar"
        } else {
            "duet_varchar"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        use duet_common::batch::{BPCHAR_WIDTH, PG_DECLARED_TYPE, PG_TYPMOD};
        let n = match args.scalar_arguments.get(1) {
            Some(Some(ScalarValue::Int64(Some(n)))) => *n,
            _ => {
                return Err(DataFusionError::Plan(format!(
                    "{} needs a constant length",
                    self.name()
                )))
            }
        };
        let metadata: std::collections::HashMap<String, String> = if self.bpchar {
            [(BPCHAR_WIDTH.to_string(), n.to_string())].into()
        } else {
            let typmod = if n < 0 { -1 } else { n + 4 };
            [
                (PG_DECLARED_TYPE.to_string(), "varchar".to_string()),
                (PG_TYPMOD.to_string(), typmod.to_string()),
            ]
            .into()
        };
        let nullable = args.arg_fields.first().is_none_or(|f| f.is_nullable());
        Ok(Arc::new(
            Field::new(self.name(), DataType::Utf8, nullable).with_metadata(metadata),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, StringArray};
        let n = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(n)))) => *n,
            _ => -1,
        };
        let (arrays, scalar) = arg_arrays(&args)?;
        let cut = |s: &str| -> String {
            let s = match usize::try_from(n)
                .ok()
                .and_then(|n| s.char_indices().nth(n))
            {
                Some((end, _)) => &s[..end],
                None => s,
            };
            if self.bpchar {
                s.trim_end_matches(' ').to_string()
            } else {
                s.to_string()
            }
        };
        let out: StringArray = arrays[0]
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(cut))
            .collect();
        columnar(Arc::new(out), scalar)
    }
}

/// `concat` and `concat_ws` arguments as PostgreSQL writes them (before type coercion,
/// which would cast them to text the way Arrow does; a cast the user wrote stays).
#[derive(Debug, Default)]
pub struct ConcatArguments;

impl AnalyzerRule for ConcatArguments {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        retype_expressions(plan, |e, schema| match &e {
            Expr::ScalarFunction(f) if matches!(f.func.name(), "concat" | "concat_ws") => {
                concat_arguments(e, schema)
            }
            _ => Ok(Transformed::no(e)),
        })
    }

    fn name(&self) -> &str {
        "duet_concat_arguments"
    }
}

/// `concat` and `concat_ws` write their arguments with PostgreSQL's output functions:
/// a boolean as `t`/`f` (DataFusion: `true`), floats and timestamps as [`PgText`].
fn concat_arguments(e: Expr, schema: &datafusion::common::DFSchema) -> Result<Transformed<Expr>> {
    let Expr::ScalarFunction(mut f) = e else {
        return Ok(Transformed::no(e));
    };
    let mut changed = false;
    for a in f.args.iter_mut() {
        let Ok(t) = a.get_type(schema) else { continue };
        let text = if t == DataType::Boolean {
            // NULL matches neither arm and stays NULL, which concat skips.
            let lit = |v: &str| Box::new(Expr::Literal(ScalarValue::Utf8(Some(v.into())), None));
            Expr::Case(datafusion::logical_expr::expr::Case::new(
                None,
                vec![
                    (Box::new(a.clone()), lit("t")),
                    (Box::new(Expr::Not(Box::new(a.clone()))), lit("f")),
                ],
                None,
            ))
        } else if needs_pg_text(&t) {
            Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(ScalarUDF::new_from_impl(PgText::default())),
                vec![a.clone()],
            ))
        } else {
            continue;
        };
        *a = text;
        changed = true;
    }
    let e = Expr::ScalarFunction(f);
    Ok(if changed {
        Transformed::yes(e)
    } else {
        Transformed::no(e)
    })
}

/// A float's or timestamp's text as PostgreSQL's output function writes it; named as the
/// cast it replaces.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgText {
    signature: Signature,
}

impl Default for PgText {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PgText {
    fn name(&self) -> &str {
        "pg_text"
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(
            Expr::Cast(Cast::new(Box::new(args[0].clone()), DataType::Utf8))
                .schema_name()
                .to_string(),
        )
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = arg_arrays(&args)?;
        let out = duet_wire::encode::pg_text_array(&arrays[0])
            .or_else(|| duet_wire::encode::pg_array_text(&arrays[0]))
            .ok_or_else(|| {
                DataFusionError::Internal(format!("pg_text of {}", arrays[0].data_type()))
            })?;
        columnar(out, scalar)
    }
}
