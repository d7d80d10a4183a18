//! A set-returning function in FROM that reads a column of an item to its left
//! (`FROM t, jsonb_array_elements(t.doc) e`, `FROM t, generate_series(1, t.n) g`): PostgreSQL
//! runs it once per row of `t` (functions in FROM are implicitly LATERAL). DataFusion plans
//! it as a join with a subquery over outer references, which its physical planner refuses.
//! This rule unnests per row instead: the subquery's chain of projections, filters and
//! unnests is replayed over the left input itself, carrying the left columns through, and
//! the subquery's outputs keep their alias (`e.value`).

use super::*;
use datafusion::logical_expr::{
    EmptyRelation, Filter, Join, JoinType, LogicalPlanBuilder, Projection, SubqueryAlias,
};

/// See the module.
#[derive(Debug, Default)]
pub struct LateralFunctions;

impl AnalyzerRule for LateralFunctions {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Join(join) = &node else {
                return Ok(Transformed::no(node));
            };
            match per_row(join) {
                Some(rewritten) => Ok(Transformed::yes(rewritten)),
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_lateral_functions"
    }
}

/// `left ⋈ alias(subquery over left's columns)` as the subquery's chain over `left`, or
/// `None` when the join is not of that shape (or the rewrite does not type).
fn per_row(join: &Join) -> Option<LogicalPlan> {
    if join.join_type != JoinType::Inner || !join.on.is_empty() {
        return None;
    }
    let LogicalPlan::SubqueryAlias(SubqueryAlias { input, alias, .. }) = join.right.as_ref() else {
        return None;
    };
    let LogicalPlan::Subquery(sq) = input.as_ref() else {
        return None;
    };
    if sq.outer_ref_columns.is_empty() {
        return None;
    }
    let left = join.left.as_ref();
    let carried: Vec<Expr> = left
        .schema()
        .iter()
        .map(|(q, f)| Expr::Column(datafusion::common::Column::new(q.cloned(), f.name())))
        .collect();
    let chain = replay(sq.subquery.as_ref(), left, &carried).ok()??;
    // The left columns as they were, then the subquery's outputs under its alias.
    let mut exprs = carried.clone();
    for f in sq.subquery.schema().fields() {
        exprs.push(
            Expr::Column(datafusion::common::Column::new_unqualified(f.name()))
                .alias_qualified(Some(alias.clone()), f.name()),
        );
    }
    let mut plan = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(chain)).ok()?);
    if let Some(filter) = &join.filter {
        plan = LogicalPlan::Filter(Filter::try_new(filter.clone(), Arc::new(plan)).ok()?);
    }
    Some(plan)
}

/// `plan` (projections, filters and unnests over one empty row) run over `left` instead,
/// every projection carrying `carried` (left's columns) through; `None` for another shape.
fn replay(plan: &LogicalPlan, left: &LogicalPlan, carried: &[Expr]) -> Result<Option<LogicalPlan>> {
    Ok(Some(match plan {
        LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: true,
            ..
        }) => left.clone(),
        LogicalPlan::Projection(p) => {
            let Some(input) = replay(&p.input, left, carried)? else {
                return Ok(None);
            };
            let mut exprs = carried.to_vec();
            for e in &p.expr {
                exprs.push(inner_columns(e.clone())?);
            }
            LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(input))?)
        }
        LogicalPlan::Filter(f) => {
            let Some(input) = replay(&f.input, left, carried)? else {
                return Ok(None);
            };
            LogicalPlan::Filter(Filter::try_new(
                inner_columns(f.predicate.clone())?,
                Arc::new(input),
            )?)
        }
        LogicalPlan::Unnest(u) => {
            if u.list_type_columns.iter().any(|(_, l)| l.depth != 1) {
                return Ok(None);
            }
            let Some(input) = replay(&u.input, left, carried)? else {
                return Ok(None);
            };
            LogicalPlanBuilder::from(input)
                .unnest_columns_with_options(u.exec_columns.clone(), u.options.clone())?
                .build()?
        }
        _ => return Ok(None),
    }))
}

/// `e` with its outer references read as columns of the input.
fn inner_columns(e: Expr) -> Result<Expr> {
    e.transform_up(|e| match e {
        Expr::OuterReferenceColumn(_, c) => Ok(Transformed::yes(Expr::Column(c))),
        e => Ok(Transformed::no(e)),
    })
    .map(|t| t.data)
}

/// No key survives an unnest: DataFusion's `Unnest` keeps its input's functional
/// dependencies, although it repeats each input row once per element, so `SELECT id,
/// generate_series(1, 3) FROM t ORDER BY id, 2` lost its second sort key (`id` being
/// the primary key "determined" it) and came back unsorted within each id. This rule
/// clears them on every unnest and rebuilds the schemas above; it runs as an analyzer rule
/// and again as an optimizer rule right before `eliminate_duplicated_expr` (the rule that
/// drops such keys), as optimizer rules rebuild unnests with the dependencies.
#[derive(Debug, Default)]
pub struct UnnestKeys;

impl UnnestKeys {
    fn clear(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
        if !plan.exists(|n| Ok(matches!(n, LogicalPlan::Unnest(_))))? {
            return Ok(Transformed::no(plan));
        }
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Unnest(mut u) => {
                let schema = u.schema.as_ref().clone().with_functional_dependencies(
                    datafusion::common::FunctionalDependencies::empty(),
                )?;
                u.schema = Arc::new(schema);
                Ok(Transformed::yes(LogicalPlan::Unnest(u)))
            }
            node => Ok(Transformed::yes(node.recompute_schema()?)),
        })
    }
}

impl AnalyzerRule for UnnestKeys {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        Self::clear(plan).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_unnest_keys"
    }
}

impl datafusion::optimizer::OptimizerRule for UnnestKeys {
    fn name(&self) -> &str {
        "duet_unnest_keys"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        Self::clear(plan)
    }
}
