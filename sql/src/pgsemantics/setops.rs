//! EXCEPT and INTERSECT answer in the type both sides resolve to, as UNION does.
//!
//! DataFusion plans `a EXCEPT b` as an anti join (INTERSECT a semi join) of the two sides
//! on every column, NULLs equal, and answers with the left side's columns: `SELECT
//! real_col EXCEPT SELECT 1::float8` printed the `real` (`0.1`) where PostgreSQL prints the
//! `double precision` it resolves the two to (`0.10000000149011612`), and a `date` beside
//! a `timestamp` printed as a date. Before type coercion, [`SetOperationTypes`] casts both
//! sides of such a join to the common type (double precision where a float meets a
//! numeric, as [`super::FloatNumerics`] does for UNION).

use datafusion::common::Column;
use datafusion::logical_expr::binary::comparison_coercion;
use datafusion::logical_expr::{Join, JoinType, Projection};

use super::*;

/// See the module.
#[derive(Debug, Default)]
pub struct SetOperationTypes;

impl AnalyzerRule for SetOperationTypes {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        // What reads a retyped join is derived again.
        let retyped = std::cell::Cell::new(false);
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Join(j) if is_set_operation(&j) => {
                let t = common_types(j)?;
                retyped.set(retyped.get() || t.transformed);
                Ok(t)
            }
            node if retyped.get() => Ok(Transformed::yes(rebuild_schema(node)?)),
            node => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_set_operation_types"
    }
}

/// A join the planner made of EXCEPT or INTERSECT: semi or anti, NULLs equal, no filter,
/// and the i-th columns of the two sides paired, for every column of both.
fn is_set_operation(j: &Join) -> bool {
    let (left, right) = (j.left.schema(), j.right.schema());
    matches!(j.join_type, JoinType::LeftAnti | JoinType::LeftSemi)
        && j.null_equality == datafusion::common::NullEquality::NullEqualsNull
        && j.filter.is_none()
        && j.on.len() == left.fields().len()
        && j.on.len() == right.fields().len()
        && j.on.iter().enumerate().all(|(i, (l, r))| match (l, r) {
            (Expr::Column(l), Expr::Column(r)) => {
                left.index_of_column(l).ok() == Some(i) && right.index_of_column(r).ok() == Some(i)
            }
            _ => false,
        })
}

/// As [`super::FloatNumerics`] resolves them: a float beside a numeric, and `real` beside
/// an integer, are double precision; the rest as DataFusion compares them.
fn common_type(l: &DataType, r: &DataType) -> Option<DataType> {
    let pair = [l.clone(), r.clone()];
    if super::floats::mixed(pair.iter()) || super::floats::real_beside_exact(&pair) {
        return Some(DataType::Float64);
    }
    comparison_coercion(l, r)
}

fn common_types(j: Join) -> Result<Transformed<LogicalPlan>> {
    let (left, right) = (j.left.schema().clone(), j.right.schema().clone());
    let targets: Vec<Option<DataType>> = left
        .fields()
        .iter()
        .zip(right.fields())
        .map(|(l, r)| {
            if l.data_type() == r.data_type() || l.data_type().is_null() {
                return None;
            }
            common_type(l.data_type(), r.data_type())
        })
        .collect();
    // Only the left side's type shows in the answer; the right is coerced to it already.
    let changes = targets
        .iter()
        .zip(left.fields())
        .any(|(t, f)| t.as_ref().is_some_and(|t| t != f.data_type()));
    if !changes {
        return Ok(Transformed::no(LogicalPlan::Join(j)));
    }
    let cast_side = |side: Arc<LogicalPlan>| -> Result<Arc<LogicalPlan>> {
        let exprs = side
            .schema()
            .iter()
            .zip(&targets)
            .map(|((q, f), t)| {
                let col = Expr::Column(Column::new(q.cloned(), f.name()));
                match t {
                    Some(t) if t != f.data_type() => Expr::Cast(
                        datafusion::logical_expr::Cast::new(Box::new(col), t.clone()),
                    )
                    .alias_qualified(q.cloned(), f.name()),
                    _ => col,
                }
            })
            .collect();
        Ok(Arc::new(LogicalPlan::Projection(Projection::try_new(
            exprs, side,
        )?)))
    };
    let join = Join::try_new(
        cast_side(j.left)?,
        cast_side(j.right)?,
        j.on,
        j.filter,
        j.join_type,
        j.join_constraint,
        j.null_equality,
        j.null_aware,
    )?;
    Ok(Transformed::yes(LogicalPlan::Join(join)))
}
