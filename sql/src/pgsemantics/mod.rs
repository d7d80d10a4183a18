//! PostgreSQL's semantics on DataFusion's plans, where the two differ. Each difference
//! was found by a test against PostgreSQL (most by the differential tester, TESTING.md).
//!
//! - `statement`: before planning, integer literals become `integer` where PostgreSQL
//!   types them so, `= ANY (subquery)` becomes `IN`, and `INTERSECT ALL` / `EXCEPT ALL` are
//!   refused; `generate_series` and `unnest` in FROM name their column as PostgreSQL does.
//! - `aggregates` (first analyzer rules, before type coercion): `avg` is its sum over its
//!   count with numeric division, as PostgreSQL computes it; `sum` of `bigint` is numeric.
//! - `dscale`: PostgreSQL's per-value numeric display scales, carried beside the values
//!   after the optimizer, and kept for constants through the optimizer's folding.
//! - `arith` (after type coercion): checked integer `+ - *` and negation (22003), float
//!   `/ %` by zero (22012), numeric division rounded at PostgreSQL's scale per quotient,
//!   products of decimals past 38 decimals, casts to integers that round. Replacement functions keep the operator's column name, so nothing that refers
//!   to the column by name changes.
//! - `bpchar`: a string literal compared with a `char(n)` column loses its trailing
//!   spaces, as PostgreSQL coerces it to `bpchar` (`char(n)` values are stored without
//!   them, see `duet_common::batch::BPCHAR_WIDTH`).
//! - `subqueries`: scalar subqueries are nullable; an IN subquery whose NULL matters, an
//!   aggregate of only outer columns in a subquery and a subquery in HAVING without GROUP
//!   BY are refused with 0A000.
//! - `folding`: a failing constant (`1 / 0`) fails the statement at plan time, as in
//!   PostgreSQL, even where no row reaches it.
//! - `text`: `text = number` is 42883 (before type coercion); casts of floats and
//!   timestamps to text print as PostgreSQL's do.
//! - `joins`: a literal on the null-extended side of an outer join is not a constant
//!   above it (DataFusion dropped a sort on it).
//! - `functions`: `pg_sleep`, `pg_typeof`.
//! - `setops`: EXCEPT and INTERSECT answer in the type both sides resolve to.
//! - `topk` (a physical rule): a partitioned TopK sorts by the whole key of its merge, as
//!   its partitions share one dynamic filter.
//! - `apply` (the last optimizer rule): a subquery DataFusion could not decorrelate runs
//!   once per distinct outer row.

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

mod aggregates;
mod apply;
mod arith;
mod bpchar;
mod declared;
pub(crate) mod dscale;
mod floats;
mod folding;
mod functions;
mod joins;
mod lateral;
mod setops;
mod statement;
mod subqueries;
mod text;
mod topk;

pub use aggregates::{NumericAverages, NumericIntegerAggregates};
pub use apply::CorrelatedSubqueries;
pub use arith::{
    CheckedIntegerArithmetic, IntervalScale, NullifFirstArgumentType, NumericCasts, NumericDivision,
};
pub use bpchar::BpcharLiterals;
pub use declared::{CaseDeclaredTypes, PgAggregate, RecursiveTermMetadata};
pub use dscale::{with_display_scales, ConstantDisplayScales};
pub use floats::FloatNumerics;
pub use folding::{ConstantFoldingErrors, LazyBooleanCase};
pub use functions::{
    pg_type_name, AdvisoryUnlockAll, NoComment, PgSleep, PgTypeOf, Refused, ToRegtype,
};
pub use joins::{joins_over_raising_conditions, OuterJoinConstants};
pub use lateral::{LateralFunctions, UnnestKeys};
pub use setops::SetOperationTypes;
pub(crate) use statement::{call_function, function_name};
pub use statement::{quantified_subqueries_as_in, rewrite_statement};
pub use subqueries::{
    single_distinct_would_differ, GlobalAggregateConstants, GlobalAggregateFilters,
    GlobalHavingSubqueries, Identity, InListNulls, InSubqueryNulls, NullableScalarSubqueries,
    OuterLevelAggregates, SingleRowScalarSubqueries,
};
pub use text::{CharacterCast, ConcatArguments, PgTextCasts, TextNumberComparisons};
pub use topk::PartitionedTopKKeys;

fn is_int(t: &DataType) -> bool {
    matches!(t, DataType::Int16 | DataType::Int32 | DataType::Int64)
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float32 | DataType::Float64)
}

/// A function's arguments as arrays, and whether all were scalars: then each is one row
/// (a batch may have none, as over an empty input, and the scalar result is still needed).
pub(crate) fn arg_arrays(args: &ScalarFunctionArgs) -> Result<(Vec<ArrayRef>, bool)> {
    let scalar = args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let n = if scalar { 1 } else { args.number_rows };
    let arrays = args
        .args
        .iter()
        .map(|a| a.to_array(n))
        .collect::<Result<_>>()?;
    Ok((arrays, scalar))
}

/// A function's result: one value when every argument was a scalar, else the array.
pub(crate) fn columnar(out: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

/// A strict function (NULL in, NULL out) with a NULL constant argument is that NULL, its
/// other arguments unevaluated, as PostgreSQL folds it while planning: `(1 % x) * NULL` is
/// NULL even where `x` is 0. DataFusion does so for its operators, not for the functions
/// that replace them here; their `simplify` calls this.
fn strict_null(
    f: &dyn ScalarUDFImpl,
    args: Vec<Expr>,
    info: &datafusion::logical_expr::simplify::SimplifyContext,
) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
    use datafusion::logical_expr::simplify::ExprSimplifyResult;
    let null_arg = args
        .iter()
        .any(|a| matches!(a, Expr::Literal(v, _) if v.is_null()));
    if !null_arg {
        return Ok(ExprSimplifyResult::Original(args));
    }
    let types: Result<Vec<DataType>> = args
        .iter()
        .map(|a| a.get_type(info.schema().as_ref()))
        .collect();
    match types.and_then(|t| f.return_type(&t)) {
        Ok(t) => Ok(ExprSimplifyResult::Simplified(Expr::Literal(
            ScalarValue::try_from(&t)?,
            None,
        ))),
        Err(_) => Ok(ExprSimplifyResult::Original(args)),
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

/// One of DataFusion's optimizer rules, not applied to a plan on which `skip` says it would
/// answer differently from PostgreSQL.
#[derive(Debug)]
pub struct GuardedRule {
    pub inner: Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>,
    pub skip: fn(&LogicalPlan) -> Result<bool>,
}

impl datafusion::optimizer::OptimizerRule for GuardedRule {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn apply_order(&self) -> Option<datafusion::optimizer::ApplyOrder> {
        self.inner.apply_order()
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if (self.skip)(&plan)? {
            return Ok(Transformed::no(plan));
        }
        self.inner.rewrite(plan, config)
    }
}

/// `= <> < <= > >=`.
pub(crate) fn is_comparison(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    )
}

/// Rewrites every expression of every node (and subquery) bottom-up with `f`, given the
/// node's input schema; output names are kept and schemas recomputed. For the rules that
/// run before type coercion and change a type (coercion then fits everything above).
pub(crate) fn retype_expressions(
    plan: LogicalPlan,
    f: impl Fn(Expr, &datafusion::common::DFSchema) -> Result<Transformed<Expr>>,
) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| retype_node(node, &f))
        .map(|t| t.data)
}

/// [`retype_expressions`] on one node.
pub(crate) fn retype_node(
    node: LogicalPlan,
    f: &impl Fn(Expr, &datafusion::common::DFSchema) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    let schema = merge_schema(&node.inputs());
    let names = NamePreserver::new(&node);
    node.map_expressions(|e| {
        let name = names.save(&e);
        e.transform_up(|e| f(e, &schema))
            .map(|t| t.update_data(|e| name.restore(e)))
    })?
    .map_data(rebuild_schema)
}

/// `p` with its schema derived again from its inputs and expressions. DataFusion keeps a
/// union's schema while its inputs keep their width, so a rewrite below that changed a
/// field (a cast that no longer carries a column's declared type, a constant made
/// nullable) left the union, and what reads it, with the old one: the physical planner
/// then refused the plan ("Physical input schema should be the same…", found by the
/// differential tester). A union's schema is derived anew.
pub(super) fn rebuild_schema(p: LogicalPlan) -> Result<LogicalPlan> {
    match p {
        LogicalPlan::Union(u) => {
            let inputs = plain_union_inputs(u.inputs)?;
            datafusion::logical_expr::Union::try_new(inputs.clone())
                .or_else(|_| datafusion::logical_expr::Union::try_new_with_loose_types(inputs))
                .map(LogicalPlan::Union)
        }
        p => p.recompute_schema(),
    }
}

/// A union's inputs whose fields at one position declare different PostgreSQL types (a
/// `varchar(5)` and a `char(3)` column: the metadata of `duet_common::batch::column_field`)
/// pass that column through `duet_plain`, so the union's column declares none: DataFusion's
/// logical union dropped the conflicting metadata and its physical one merged it, and the
/// physical planner refused the plan (XX000). PostgreSQL's union has its first input's
/// type: where that is `text` or `varchar`, a `char(n)` value loses its padding, as DuetDB
/// stores it; where it is a `char(n)` (a `bpchar`, compared without trailing blanks and
/// printed with each value's own padding), the union is refused (0A000).
fn plain_union_inputs(inputs: Vec<Arc<LogicalPlan>>) -> Result<Vec<Arc<LogicalPlan>>> {
    let Some(first) = inputs.first() else {
        return Ok(inputs);
    };
    let width = first.schema().fields().len();
    let conflicting: Vec<bool> = (0..width)
        .map(|i| {
            let m = first.schema().field(i).metadata();
            inputs.iter().any(|p| {
                p.schema()
                    .fields()
                    .get(i)
                    .is_some_and(|f| f.metadata() != m)
            })
        })
        .collect();
    if !conflicting.contains(&true) {
        return Ok(inputs);
    }
    let bpchar = |i: usize| {
        first
            .schema()
            .field(i)
            .metadata()
            .contains_key(duet_common::batch::BPCHAR_WIDTH)
    };
    if (0..width).any(|i| conflicting[i] && bpchar(i)) {
        return Err(DataFusionError::External(Box::new(
            crate::error::PgErrorBox(crate::error::PgError::unsupported(
                "a UNION, INTERSECT or EXCEPT of a char(n) column with another type",
            )),
        )));
    }
    let plain = Arc::new(ScalarUDF::new_from_impl(Identity::plain()));
    inputs
        .into_iter()
        .map(|p| {
            let exprs = p
                .schema()
                .iter()
                .enumerate()
                .map(|(i, (q, f))| {
                    let col = Expr::Column(datafusion::common::Column::new(q.cloned(), f.name()));
                    if !conflicting[i] || f.metadata().is_empty() {
                        return col;
                    }
                    Expr::ScalarFunction(ScalarFunction::new_udf(plain.clone(), vec![col]))
                        .alias_qualified(q.cloned(), f.name())
                })
                .collect::<Vec<_>>();
            Ok(Arc::new(LogicalPlan::Projection(
                datafusion::logical_expr::Projection::try_new(exprs, p)?,
            )))
        })
        .collect()
}

/// The last analyzer rule: every node's schema derived again bottom-up ([`rebuild_schema`]),
/// for the rules that change expressions without [`retype_node`]
/// (`GlobalAggregateConstants` makes a constant nullable under a union).
#[derive(Debug, Default)]
pub struct RebuildSchemas;

impl AnalyzerRule for RebuildSchemas {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| rebuild_schema(p).map(Transformed::yes))
            .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_rebuild_schemas"
    }
}

/// Also the last optimizer rule: DataFusion's simplifier replaces an expression by one of
/// its operands (`CASE WHEN true THEN c ELSE 'a' END` by `c`), whose field may differ in
/// metadata or nullability, and keeps the union above with the old schema; the physical
/// planner then refused the plan (XX000, found by the differential tester).
impl datafusion::optimizer::OptimizerRule for RebuildSchemas {
    fn name(&self) -> &str {
        "duet_rebuild_schemas"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let before = plan.schema().clone();
        let plan = plan
            .transform_up_with_subqueries(|p| rebuild_schema(p).map(Transformed::yes))?
            .data;
        let changed = plan.schema() != &before;
        Ok(Transformed::new_transformed(plan, changed))
    }
}
