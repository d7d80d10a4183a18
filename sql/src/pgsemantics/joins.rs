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
