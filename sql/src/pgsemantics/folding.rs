//! Errors PostgreSQL raises while folding constants at plan time.

use super::*;

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
                fold_errors(pg_folded(e)?.as_ref())?;
                Ok(TreeNodeRecursion::Continue)
            })
            .map(|_| ())
        })
    }

    fn name(&self) -> &str {
        "duet_constant_folding_errors"
    }
}

/// Functions PostgreSQL marks STABLE (their text depends on settings) that DataFusion
/// folds: PostgreSQL does not fold a call of one, only its arguments.
const STABLE: &[&str] = &[
    "concat",
    "concat_ws",
    "format",
    "to_char",
    "array_to_string",
    "to_json",
    "to_jsonb",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
];

/// Whether PostgreSQL would fold `e` to a constant: no columns, aggregates, windows,
/// subqueries, parameters, volatile functions or the stable ones above.
pub(super) fn is_constant(e: &Expr) -> bool {
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
        ) || matches!(x, Expr::ScalarFunction(f) if f.func.signature().volatility == Volatility::Volatile
            || STABLE.contains(&f.func.name())))
    })
    .unwrap_or(false)
}

/// Evaluates a constant expression on one row of nothing; `None` if it is constant NULL.
fn eval_constant(e: &Expr) -> Result<Option<ScalarValue>> {
    let schema = datafusion::common::DFSchema::empty();
    let props = datafusion::execution::context::ExecutionProps::new();
    // DataFusion evaluates some functions (coalesce, nvl) only in the form its simplifier
    // gives them; the simplifier keeps a failing constant as it is, for the evaluation
    // below to raise.
    let simplifier = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(
        datafusion::logical_expr::simplify::SimplifyContext::default(),
    );
    let simplified = simplifier.simplify(e.clone());
    let e = simplified.as_ref().unwrap_or(e);
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

/// `e` as PostgreSQL's folding leaves it for the parts that decide what else is constant:
/// a COALESCE whose first argument is a non-null constant is that constant, so `1e10 /
/// coalesce(0::float8, x)` is a constant division by zero there (22012), where DataFusion
/// sees a column. Only the check uses this form; the plan keeps its own.
fn pg_folded(e: &Expr) -> Result<std::borrow::Cow<'_, Expr>> {
    let coalesce = |x: &Expr| matches!(x, Expr::ScalarFunction(f) if f.func.name() == "coalesce");
    if !e.exists(|x| Ok(coalesce(x)))? {
        return Ok(std::borrow::Cow::Borrowed(e));
    }
    e.clone()
        .transform_up(|e| match e {
            Expr::ScalarFunction(f)
                if f.func.name() == "coalesce"
                    && f.args.first().is_some_and(|a| {
                        is_constant(a) && eval_constant(a).is_ok_and(|v| v.is_some())
                    }) =>
            {
                Ok(Transformed::yes(
                    f.args.into_iter().next().expect("checked above"),
                ))
            }
            e => Ok(Transformed::no(e)),
        })
        .map(|t| std::borrow::Cow::Owned(t.data))
}

fn fold_errors(e: &Expr) -> Result<()> {
    match e {
        Expr::Alias(a) => return fold_errors(&a.expr),
        // A literal cannot fail; most constants are one, and evaluating costs planning time.
        Expr::Literal(..) => return Ok(()),
        _ => {}
    }
    let lazy = match e {
        Expr::Case(_) => true,
        Expr::BinaryExpr(b) => matches!(b.op, Operator::And | Operator::Or),
        Expr::ScalarFunction(f) => f.func.name() == "coalesce",
        _ => false,
    };
    if !lazy && is_constant(e) {
        // PostgreSQL folds bottom-up: an operand's error comes first, even where the whole
        // would be NULL or decided without it (`(10 / 0) + NULL`, `true IN (true, 1 / 0 = 1)`;
        // DataFusion's simplifier answers those without evaluating the operand).
        use datafusion::common::tree_node::TreeNodeRecursion;
        e.apply_children(|c| {
            fold_errors(c)?;
            Ok(TreeNodeRecursion::Continue)
        })?;
        return eval_constant(e).map(|_| ());
    }
    match e {
        Expr::Case(case) => {
            if let Some(operand) = &case.expr {
                fold_errors(operand)?;
            }
            // Each condition reached is folded (its operands first: `(3 * -2147483648) <=
            // NULL` raises though DataFusion's simplifier makes it NULL); a constant true
            // one ends the CASE, a constant false or NULL one drops its result unfolded.
            for (when, then) in &case.when_then_expr {
                fold_errors(when)?;
                if is_constant(when) && case.expr.is_none() {
                    match eval_constant(when)? {
                        Some(ScalarValue::Boolean(Some(true))) => return fold_errors(then),
                        _ => continue,
                    }
                }
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
            fold_errors(left)?;
            if is_constant(left) && eval_constant(left)? == Some(decides) {
                return Ok(());
            }
            fold_errors(right)
        }
        Expr::ScalarFunction(f) if f.func.name() == "coalesce" => {
            for a in &f.args {
                fold_errors(a)?;
                if is_constant(a) && eval_constant(a)?.is_some() {
                    return Ok(());
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

/// A boolean CASE stays a CASE. DataFusion's simplifier turns one into AND/OR (`CASE WHEN a
/// THEN NULL WHEN b THEN true END` becomes `… OR (NOT a AND b …)`), which evaluates every
/// condition on every row; PostgreSQL's CASE evaluates a condition only where the ones
/// before it failed, so `WHERE CASE WHEN c2 THEN NULL WHEN 2 < -2147483648 / c0 THEN true
/// END` raised 22003 where PostgreSQL answers (found by the differential tester). A boolean
/// CASE whose later conditions or results can raise computes in `Int8` (1, 0, NULL) and is
/// cast back to boolean, which the simplifier leaves as it is.
#[derive(Debug, Default)]
pub struct LazyBooleanCase;

impl AnalyzerRule for LazyBooleanCase {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        use datafusion::common::tree_node::TreeNodeRecursion;
        // Most statements have no CASE: no pass over them.
        let mut case = false;
        plan.apply_with_subqueries(|node| {
            case = node
                .expressions()
                .iter()
                .any(|e| e.exists(|x| Ok(matches!(x, Expr::Case(_)))).unwrap_or(true));
            Ok(if case {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })?;
        if !case {
            return Ok(plan);
        }
        super::retype_expressions(plan, |e, schema| {
            let Expr::Case(case) = &e else {
                return Ok(Transformed::no(e));
            };
            let boolean = case
                .when_then_expr
                .first()
                .is_some_and(|(_, then)| then.get_type(schema).ok() == Some(DataType::Boolean));
            let raising = case
                .when_then_expr
                .iter()
                .enumerate()
                .any(|(i, (when, then))| {
                    (i > 0 && super::joins::may_raise(when)) || super::joins::may_raise(then)
                })
                || case
                    .else_expr
                    .as_deref()
                    .is_some_and(super::joins::may_raise);
            if case.expr.is_some() || !boolean || !raising {
                return Ok(Transformed::no(e));
            }
            let Expr::Case(case) = e else {
                unreachable!("matched above")
            };
            let int = |e: Box<Expr>| {
                Box::new(Expr::Cast(datafusion::logical_expr::Cast::new(
                    e,
                    DataType::Int8,
                )))
            };
            let lazy = datafusion::logical_expr::Case {
                expr: None,
                when_then_expr: case
                    .when_then_expr
                    .into_iter()
                    .map(|(w, t)| (w, int(t)))
                    .collect(),
                else_expr: case.else_expr.map(int),
            };
            Ok(Transformed::yes(Expr::Cast(
                datafusion::logical_expr::Cast::new(Box::new(Expr::Case(lazy)), DataType::Boolean),
            )))
        })
    }

    fn name(&self) -> &str {
        "duet_lazy_boolean_case"
    }
}
