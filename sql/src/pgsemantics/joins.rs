//! Constants below an outer join are not constants above it: the join fills the
//! null-extended side with NULLs. DataFusion's physical optimizer kept a literal column's
//! constant-ness through the join and dropped the sort on it, so `ORDER BY d.k NULLS FIRST`
//! over `t LEFT JOIN (SELECT 5 AS k ...) d` put the 5 first.

use super::subqueries::Identity;
use super::*;

/// Wraps every constant projected on the null-extended side of an outer join in
/// `duet_nullable`, which no optimizer treats as a constant.
#[derive(Debug, Default)]
pub struct OuterJoinConstants;

impl AnalyzerRule for OuterJoinConstants {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        use datafusion::logical_expr::JoinType;
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Join(mut join) = node else {
                return Ok(Transformed::no(node));
            };
            let (left, right) = match join.join_type {
                JoinType::Left => (false, true),
                JoinType::Right => (true, false),
                JoinType::Full => (true, true),
                _ => return Ok(Transformed::no(LogicalPlan::Join(join))),
            };
            let mut changed = false;
            if left {
                let t = unconstant(join.left.as_ref().clone())?;
                changed |= t.transformed;
                join.left = Arc::new(t.data);
            }
            if right {
                let t = unconstant(join.right.as_ref().clone())?;
                changed |= t.transformed;
                join.right = Arc::new(t.data);
            }
            let node = LogicalPlan::Join(join);
            if changed {
                Ok(Transformed::yes(node.recompute_schema()?))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_outer_join_constants"
    }
}

/// Every projection of `plan` with its constants wrapped (names kept).
fn unconstant(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    plan.transform_up(|node| {
        if !matches!(node, LogicalPlan::Projection(_)) {
            return Ok(Transformed::no(node));
        }
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let name = names.save(&e);
            let inner = match &e {
                Expr::Alias(a) => a.expr.as_ref(),
                other => other,
            };
            // A literal, or a cast of one (`CAST(5 AS INT)`): any constant.
            if !super::folding::is_constant(inner) {
                return Ok(Transformed::no(e));
            }
            let wrapped = Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(ScalarUDF::new_from_impl(Identity::nullable())),
                vec![inner.clone()],
            ));
            Ok(Transformed::yes(name.restore(wrapped)))
        })?
        .map_data(|p| p.recompute_schema())
    })
}

/// Where DataFusion's `eliminate_join` is not applied ([`super::GuardedRule`]): it removes
/// a LEFT JOIN whose right side is unused below a DISTINCT (and turns an inner join into a
/// semi join that stops at the first match); PostgreSQL removes a join only when the other
/// side is provably unique, and otherwise evaluates the condition for every pair, so
/// `SELECT DISTINCT 1 FROM a LEFT JOIN b ON (-2147483648 - b.x) > 0` raises 22003 there. A
/// plan with a join that evaluates (or sits above) a condition that can raise keeps its
/// joins as written.
pub fn joins_over_raising_conditions(plan: &LogicalPlan) -> Result<bool> {
    plan.exists(|node| {
        Ok(matches!(node, LogicalPlan::Join(_)) && node.exists(|n| Ok(raising_condition(n)))?)
    })
}

/// Whether `node` evaluates a condition that can raise an error: a join's, a filter's or
/// one pushed into a scan (the filter push-down moves a LEFT JOIN's condition on its
/// right side into that side, where the join's removal would drop it).
fn raising_condition(node: &LogicalPlan) -> bool {
    match node {
        LogicalPlan::Join(join) => join
            .filter
            .iter()
            .chain(join.on.iter().flat_map(|(l, r)| [l, r]))
            .any(may_raise),
        LogicalPlan::Filter(filter) => may_raise(&filter.predicate),
        LogicalPlan::TableScan(scan) => scan.filters.iter().any(may_raise),
        _ => false,
    }
}

/// Whether evaluating `e` can raise an error: anything beyond columns, constants,
/// comparisons, boolean logic and null tests (a function, a cast, arithmetic, CASE).
pub(super) fn may_raise(e: &Expr) -> bool {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    e.exists(|e| {
        Ok(match e {
            Expr::Column(_)
            | Expr::Literal(..)
            | Expr::Alias(_)
            | Expr::Not(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsUnknown(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNotFalse(_)
            | Expr::IsNotUnknown(_)
            | Expr::Between(_)
            | Expr::InList(_)
            | Expr::TryCast(_) => false,
            Expr::BinaryExpr(BinaryExpr { op, .. }) => {
                !(super::is_comparison(op)
                    || matches!(
                        op,
                        Operator::And
                            | Operator::Or
                            | Operator::IsDistinctFrom
                            | Operator::IsNotDistinctFrom
                    ))
            }
            _ => true,
        })
    })
    .unwrap_or(true)
}
