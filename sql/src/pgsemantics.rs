//! Analyzer rules that give DataFusion plans PostgreSQL's semantics where they differ.
//!
//! [`CheckedIntegerArithmetic`] (after type coercion): `+`, `-` and `*` on integers raise
//! 22003 on overflow, as in PostgreSQL, instead of wrapping around. The replacement function
//! keeps the operator's column name, so nothing that refers to the column by name changes.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result, ScalarValue};
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
