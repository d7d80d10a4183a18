//! Subqueries: always-nullable scalar subqueries, and the shapes DataFusion would answer
//! differently from PostgreSQL, refused with 0A000.

use super::*;

/// A scalar subquery may return no row, so its value may be NULL whatever its select list
/// says; DataFusion took the nullability of the select list (`SELECT 7 ...` is never
/// NULL) and folded `(SELECT 7 FROM t WHERE false) IS NULL` to false and
/// `coalesce((SELECT ...), d)` to the subquery. This wraps the subquery's column in
/// `duet_nullable`, an identity that is always nullable (and volatile, so no folding
/// sees through it). The column of a `NOT IN` subquery gets the same wrapper.
#[derive(Debug, Default)]
pub struct NullableScalarSubqueries;

impl AnalyzerRule for NullableScalarSubqueries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            node.map_expressions(|e| {
                e.transform_up(|e| match e {
                    // Also where the column is nullable now: the simplifier may fold it
                    // into a constant that is not (`(SELECT 1 + 14 FROM empty) IS NULL`
                    // became false once `1 + 14` was 15).
                    Expr::ScalarSubquery(sq)
                        if sq.subquery.schema().fields().len() == 1
                            && !returns_nullable_wrapper(&sq.subquery) =>
                    {
                        let plan = nullable_column(sq.subquery.as_ref().clone())?;
                        Ok(Transformed::yes(Expr::ScalarSubquery(
                            datafusion::logical_expr::Subquery {
                                subquery: Arc::new(plan),
                                outer_ref_columns: sq.outer_ref_columns,
                                spans: sq.spans,
                            },
                        )))
                    }
                    // `expr NOT IN (subquery)` is planned as a null-aware anti join only
                    // when a column it compares is nullable; DataFusion did not look at
                    // expressions, so `CASE WHEN k > 1 THEN NULL ELSE 5 END NOT IN (SELECT
                    // 7)` kept the row with NULL, where PostgreSQL's answer is NULL. The
                    // subquery's column is made nullable, which makes the join null-aware.
                    Expr::InSubquery(mut sq)
                        if sq.negated
                            && sq.subquery.subquery.schema().fields().len() == 1
                            && !sq.subquery.subquery.schema().field(0).is_nullable() =>
                    {
                        let inner = sq.subquery.subquery.as_ref().clone();
                        sq.subquery.subquery = Arc::new(nullable_column(inner)?);
                        Ok(Transformed::yes(Expr::InSubquery(sq)))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_nullable_scalar_subqueries"
    }
}

/// `inner` (one column) with its column through `duet_nullable`.
/// Whether `plan` is a projection of `duet_nullable(..)` (see [`nullable_column`]).
fn returns_nullable_wrapper(plan: &LogicalPlan) -> bool {
    let LogicalPlan::Projection(p) = plan else {
        return false;
    };
    matches!(p.expr.as_slice(), [e] if matches!(e.clone().unalias(), Expr::ScalarFunction(f) if f.func.name() == "duet_nullable"))
}

fn nullable_column(inner: LogicalPlan) -> Result<LogicalPlan> {
    let (qualifier, field) = inner.schema().qualified_field(0);
    let column = Expr::Column(datafusion::common::Column::new(
        qualifier.cloned(),
        field.name(),
    ));
    let wrapped = Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::new_from_impl(Identity::nullable())),
        vec![column],
    ))
    .alias(field.name());
    datafusion::logical_expr::LogicalPlanBuilder::from(inner)
        .project(vec![wrapped])?
        .build()
}

/// An identity function: its first argument unchanged.
/// - `duet_nullable(x)` reports the value nullable (see [`NullableScalarSubqueries`]) and is
///   volatile, so the simplifier does not fold it into a constant that cannot be NULL;
/// - `duet_typed(x, 'type')` gives `x` a name of its own (see
///   `statement::name_casts_in_aggregates`);
/// - `duet_plain(x)` drops the field's metadata (a declared type).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    name: &'static str,
    signature: Signature,
    nullable: bool,
    /// Whether the result keeps the argument's field metadata.
    metadata: bool,
}

impl Identity {
    /// `duet_nullable`.
    pub fn nullable() -> Self {
        Self {
            name: "duet_nullable",
            signature: Signature::any(1, Volatility::Volatile),
            nullable: true,
            metadata: true,
        }
    }

    /// `duet_typed`.
    pub fn typed() -> Self {
        Self {
            name: "duet_typed",
            signature: Signature::any(2, Volatility::Immutable),
            nullable: false,
            metadata: true,
        }
    }

    /// `duet_plain`: the value without its field's metadata (see `pgsemantics::
    /// plain_union_inputs`).
    pub fn plain() -> Self {
        Self {
            name: "duet_plain",
            signature: Signature::any(1, Volatility::Immutable),
            nullable: false,
            metadata: false,
        }
    }
}

impl ScalarUDFImpl for Identity {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let mut field = args.arg_fields[0].as_ref().clone().with_name(self.name);
        if !self.metadata {
            field = field.with_metadata(Default::default());
        }
        Ok(Arc::new(if self.nullable {
            field.with_nullable(true)
        } else {
            field
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args[0].clone())
    }
}

/// Refuses an aggregate in a subquery whose arguments are all outer-query columns
/// (`SELECT (SELECT count(t.x) FROM u) FROM t`): PostgreSQL evaluates it as an aggregate
/// of the outer query, which DataFusion does not, so it would answer differently.
#[derive(Debug, Default)]
pub struct OuterLevelAggregates;

impl AnalyzerRule for OuterLevelAggregates {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        check_nodes(plan, |node| {
            let LogicalPlan::Aggregate(agg) = node else {
                return Ok(());
            };
            for e in &agg.aggr_expr {
                let (mut outer, mut local) = (false, false);
                e.apply(|x| {
                    match x {
                        Expr::OuterReferenceColumn(..) => outer = true,
                        Expr::Column(_) => local = true,
                        _ => {}
                    }
                    Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
                })?;
                if outer && !local {
                    return Err(DataFusionError::NotImplemented(format!(
                        "an aggregate of only outer-query columns in a subquery ({}): \
                         PostgreSQL computes it in the outer query",
                        e.schema_name()
                    )));
                }
            }
            Ok(())
        })
    }

    fn name(&self) -> &str {
        "duet_outer_level_aggregates"
    }
}

/// Refuses `x IN (subquery)` where its NULL would matter. DataFusion answers an IN
/// subquery by a join that yields `false` where SQL's answer is NULL (no match, and `x` or
/// a subquery row is NULL). In a WHERE or HAVING predicate reached only through AND and OR,
/// NULL and false both drop the row, so that is safe; so is `NOT IN` as a whole conjunct,
/// which DataFusion plans as a null-aware anti join. Anywhere else (under NOT, in a
/// comparison, `IS NULL`, CASE, or NOT IN under OR) the answer could differ from
/// PostgreSQL's, and the statement is refused with 0A000.
#[derive(Debug, Default)]
pub struct InSubqueryNulls;

impl AnalyzerRule for InSubqueryNulls {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        check_nodes(plan, |node| match node {
            LogicalPlan::Filter(f) => {
                check_in_subqueries(&f.predicate, true, &merge_schema(&node.inputs()))
            }
            // A join condition drops (or does not match) a pair on NULL and false alike.
            LogicalPlan::Join(j) => match &j.filter {
                Some(f) => check_in_subqueries(f, true, &merge_schema(&node.inputs())),
                None => Ok(()),
            },
            _ => Ok(()),
        })
    }

    fn name(&self) -> &str {
        "duet_in_subquery_nulls"
    }
}

/// Refuses a subquery in the HAVING clause of an aggregate without GROUP BY: DataFusion's
/// plan for it kept the one row whatever the condition said (and counted nothing):
/// `SELECT count(*) FROM t HAVING (SELECT false)` answered `0` where PostgreSQL returns no
/// row. With GROUP BY the same condition is planned right.
#[derive(Debug, Default)]
pub struct GlobalHavingSubqueries;

impl AnalyzerRule for GlobalHavingSubqueries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        check_nodes(plan, |node| {
            let LogicalPlan::Filter(f) = node else {
                return Ok(());
            };
            let global =
                matches!(f.input.as_ref(), LogicalPlan::Aggregate(a) if a.group_expr.is_empty());
            let subquery = f.predicate.exists(|x| {
                Ok(matches!(
                    x,
                    Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
                ))
            })?;
            if global && subquery {
                return Err(DataFusionError::NotImplemented(
                    "a subquery in HAVING of an aggregate without GROUP BY".into(),
                ));
            }
            Ok(())
        })
    }

    fn name(&self) -> &str {
        "duet_global_having_subqueries"
    }
}

/// Whether `e` reads a column of its own query: DataFusion's null-aware anti join (the
/// plan that gives NOT IN its NULL semantics) is used only then; `5 NOT IN (subquery)`
/// lost the NULLs of the subquery.
/// That is judged after simplification, as the optimizer will see it: `(NULL < f) NOT IN
/// (...)` is `NULL NOT IN (...)`, which DataFusion answered as if the NULL were not there.
fn reads_a_column(e: &Expr, schema: &datafusion::common::DFSchema) -> bool {
    let context = datafusion::logical_expr::simplify::SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .build();
    let simplified = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(context)
        .simplify(e.clone());
    simplified
        .as_ref()
        .unwrap_or(e)
        .exists(|x| Ok(matches!(x, Expr::Column(_))))
        .unwrap_or(false)
}

/// Whether DataFusion's null-aware anti join answers `x NOT IN (subquery)` exactly: it
/// decides on NULLs over the whole subquery, not per outer row, so a correlated subquery
/// is answered right only where neither `x` nor the subquery's column can be NULL. (`NULL
/// NOT IN (SELECT … WHERE outer.b)` is true where `outer.b` is NULL — no rows — and
/// DataFusion dropped the row because other outer rows had some.)
fn anti_join_exact(
    s: &datafusion::logical_expr::expr::InSubquery,
    schema: &datafusion::common::DFSchema,
) -> bool {
    s.subquery.outer_ref_columns.is_empty()
        || (!s.expr.nullable(schema).unwrap_or(true) && !column_nullable(&s.subquery.subquery))
}

/// Whether a subquery's (first) column can be NULL, seen through the `duet_nullable` that
/// `NullableScalarSubqueries` puts on every subquery's column.
fn column_nullable(plan: &LogicalPlan) -> bool {
    if let LogicalPlan::Projection(p) = plan {
        let first = p.expr.first().map(|e| match e {
            Expr::Alias(a) => a.expr.as_ref(),
            e => e,
        });
        if let Some(Expr::ScalarFunction(f)) = first {
            if f.func.name() == "duet_nullable" {
                return f
                    .args
                    .first()
                    .is_none_or(|a| a.nullable(p.input.schema()).unwrap_or(true));
            }
        }
    }
    plan.schema()
        .fields()
        .first()
        .is_none_or(|f| f.is_nullable())
}

fn correlated_not_in() -> DataFusionError {
    DataFusionError::NotImplemented(
        "NOT IN (correlated subquery) where the value or the subquery's column can be NULL".into(),
    )
}

/// `conjunct`: `e` is a whole conjunct of the predicate (reached through AND only).
fn check_in_subqueries(
    e: &Expr,
    conjunct: bool,
    schema: &datafusion::common::DFSchema,
) -> Result<()> {
    use datafusion::logical_expr::expr::InSubquery;
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            check_in_subqueries(left, conjunct, schema)?;
            check_in_subqueries(right, conjunct, schema)
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            check_in_subqueries(left, false, schema)?;
            check_in_subqueries(right, false, schema)
        }
        Expr::InSubquery(s @ InSubquery { negated: true, .. })
            if conjunct && reads_a_column(&s.expr, schema) && !anti_join_exact(s, schema) =>
        {
            Err(correlated_not_in())
        }
        Expr::Not(inner)
            if conjunct
                && matches!(inner.as_ref(), Expr::InSubquery(s) if !s.negated
                    && reads_a_column(&s.expr, schema) && !anti_join_exact(s, schema)) =>
        {
            Err(correlated_not_in())
        }
        Expr::InSubquery(InSubquery { expr, negated, .. })
            if !negated || conjunct && reads_a_column(expr, schema) =>
        {
            check_in_subqueries(expr, false, schema)
        }
        Expr::Not(inner)
            if conjunct
                && matches!(inner.as_ref(), Expr::InSubquery(s) if !s.negated && reads_a_column(&s.expr, schema)) =>
        {
            Ok(())
        }
        other => {
            let nested = other.exists(|x| Ok(matches!(x, Expr::InSubquery(_))))?;
            if nested {
                return Err(DataFusionError::NotImplemented(
                    "IN (subquery) under NOT, in a comparison, IS NULL, CASE or other \
                     expression where its NULL result matters"
                        .into(),
                ));
            }
            Ok(())
        }
    }
}

/// A constant in the select list of an aggregate without GROUP BY
/// (`SELECT 1 AS b, count(*) FROM t`) goes through `duet_nullable`, which is volatile:
/// DataFusion pushed a condition on it (`WHERE b > 1` over such a derived table or CTE) below
/// the aggregate, as for a grouping column, where it emptied the input and the aggregate
/// still answered its one row (`1 | 0`), where PostgreSQL returns none. A filter on a
/// volatile expression stays above it.
#[derive(Debug, Default)]
pub struct GlobalAggregateConstants;

impl AnalyzerRule for GlobalAggregateConstants {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Projection(p) = &node else {
                return Ok(Transformed::no(node));
            };
            let global =
                matches!(p.input.as_ref(), LogicalPlan::Aggregate(a) if a.group_expr.is_empty());
            let constant = |e: &Expr| {
                !e.exists(|x| {
                    Ok(matches!(
                        x,
                        Expr::Column(_)
                            | Expr::OuterReferenceColumn(..)
                            | Expr::ScalarSubquery(_)
                            | Expr::Placeholder(_)
                    ))
                })
                .unwrap_or(true)
            };
            if !global || !p.expr.iter().any(constant) {
                return Ok(Transformed::no(node));
            }
            let names = datafusion::logical_expr::expr_rewriter::NamePreserver::new(&node);
            node.map_expressions(|e| {
                if !constant(&e) {
                    return Ok(Transformed::no(e));
                }
                let name = names.save(&e);
                let wrapped = Expr::ScalarFunction(ScalarFunction::new_udf(
                    Arc::new(ScalarUDF::new_from_impl(Identity::nullable())),
                    vec![e],
                ));
                Ok(Transformed::yes(name.restore(wrapped)))
            })?
            .map_data(|p| p.recompute_schema())
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_global_aggregate_constants"
    }
}

/// An optimizer rule, before DataFusion's filter push-down: every aggregate without GROUP
/// BY gets a `LIMIT` that keeps its one row above it, a node filters are not pushed
/// through. No condition may go below such an aggregate (it has no grouping column to
/// test), yet DataFusion pushed those without columns (`NULL`, which the simplifier makes
/// of `CASE WHEN bool_or(x) THEN false END`), or on columns it had found constant, below
/// it — through projections, aliases, other filters and joins: the input emptied and the
/// aggregate still answered its one row, where PostgreSQL's HAVING or outer WHERE removes
/// it (`SELECT … FROM (SELECT min(x) FROM t) d JOIN u ON true WHERE u.c LIKE 'a' AND NULL`
/// kept every row of `u`).
#[derive(Debug, Default)]
pub struct GlobalAggregateFilters;

/// The barrier: `LIMIT i64::MAX`, which DataFusion keeps (only `LIMIT 0` and a limit
/// without a count are removed).
fn is_barrier(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Limit(l) if l.skip.is_none()
        && matches!(l.fetch.as_deref(), Some(Expr::Literal(ScalarValue::Int64(Some(i64::MAX)), _))))
}

impl datafusion::optimizer::OptimizerRule for GlobalAggregateFilters {
    fn name(&self) -> &str {
        "duet_global_aggregate_filters"
    }

    fn apply_order(&self) -> Option<datafusion::optimizer::ApplyOrder> {
        Some(datafusion::optimizer::ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if is_barrier(&plan) {
            // Two barriers meet where a projection between them was removed: one is enough.
            return Ok(match plan {
                LogicalPlan::Limit(l) if is_barrier(&l.input) => {
                    Transformed::yes(Arc::unwrap_or_clone(l.input))
                }
                plan => Transformed::no(plan),
            });
        }
        // A correlated subquery's aggregate is left to the decorrelation, which reads
        // `Projection → Aggregate` and would not see through the barrier.
        let correlated = |p: &LogicalPlan| {
            p.exists(|n| {
                Ok(n.expressions().iter().any(|e| {
                    e.exists(|e| Ok(matches!(e, Expr::OuterReferenceColumn(..))))
                        .unwrap_or(true)
                }))
            })
            .unwrap_or(true)
        };
        let global = |p: &LogicalPlan| {
            matches!(p, LogicalPlan::Aggregate(a) if a.group_expr.is_empty()) && !correlated(p)
        };
        if !plan.inputs().into_iter().any(global) {
            return Ok(Transformed::no(plan));
        }
        plan.map_children(|child| {
            if !global(&child) {
                return Ok(Transformed::no(child));
            }
            Ok(Transformed::yes(LogicalPlan::Limit(
                datafusion::logical_expr::Limit {
                    skip: None,
                    fetch: Some(Box::new(Expr::Literal(
                        ScalarValue::Int64(Some(i64::MAX)),
                        None,
                    ))),
                    input: Arc::new(child),
                },
            )))
        })
    }
}

/// A correlated scalar subquery without an aggregate (`SELECT c.id, (SELECT p.name FROM p
/// WHERE p.id = c.pid) FROM c`), which DataFusion refuses ("must be aggregated"): its rows
/// are collected per outer row with `array_agg`, and `duet_single_value` gives PostgreSQL's
/// answer from them — NULL for none, the value for one, 21000 for more (raised only for an
/// outer row that has them, as PostgreSQL raises it). Subqueries with LIMIT, or already
/// aggregated, are left as they are.
#[derive(Debug, Default)]
pub struct SingleRowScalarSubqueries;

impl AnalyzerRule for SingleRowScalarSubqueries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        use datafusion::logical_expr::expr_rewriter::NamePreserver;
        plan.transform_up_with_subqueries(|node| {
            let names = NamePreserver::new(&node);
            node.map_expressions(|e| {
                let name = names.save(&e);
                e.transform_up(|e| match e {
                    Expr::ScalarSubquery(sq) if !sq.outer_ref_columns.is_empty() => {
                        decorrelatable(sq)
                    }
                    other => Ok(Transformed::no(other)),
                })
                .map(|t| t.update_data(|e| name.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_single_row_scalar_subqueries"
    }
}

/// A correlated scalar subquery written so DataFusion can decorrelate it: conditions on
/// the outer row alone move out of it (`(SELECT x … WHERE outer_cond AND …)` is
/// `CASE WHEN outer_cond THEN (SELECT x … WHERE …) END`), a select list that reads the
/// outer row is computed outside it from a struct of the inner columns it reads
/// (`(SELECT f(inner, outer) …)` is `CASE WHEN r IS NOT NULL THEN f(r.c0, outer) END` with
/// `r = (SELECT named_struct('c0', inner) …)`), and a subquery that is not one row by
/// its shape collects its rows ([`collect_rows`]).
fn decorrelatable(sq: datafusion::logical_expr::Subquery) -> Result<Transformed<Expr>> {
    let conditions = pull_outer_conditions(&sq.subquery)?;
    let (plan, conditions) = match conditions {
        Some((plan, c)) => (plan, c),
        None => (sq.subquery.as_ref().clone(), vec![]),
    };
    let lifted = lift_outer_outputs(&plan)?;
    if conditions.is_empty() && lifted.is_none() {
        return collect_rows(sq);
    }
    let (plan, template) = match lifted {
        Some((plan, template)) => (plan, Some(template)),
        None => (plan, None),
    };
    let outer_ref_columns = plan.all_out_ref_exprs();
    let subquery = datafusion::logical_expr::Subquery {
        subquery: Arc::new(plan),
        outer_ref_columns,
        spans: sq.spans,
    };
    let mut value = if subquery.outer_ref_columns.is_empty() {
        Expr::ScalarSubquery(subquery)
    } else {
        collect_rows(subquery)?.data
    };
    if let Some(template) = template {
        let row = value;
        let computed = template
            .transform(|x| match x {
                Expr::Column(c) if c.name == ROW_PLACEHOLDER => Ok(Transformed::yes(row.clone())),
                other => Ok(Transformed::no(other)),
            })?
            .data;
        value = datafusion::logical_expr::when(row.clone().is_not_null(), computed).end()?;
    }
    if let Some(condition) = datafusion::logical_expr::utils::conjunction(conditions) {
        value = datafusion::logical_expr::when(condition, value).end()?;
    }
    Ok(Transformed::yes(value))
}

/// Stands for the subquery's struct in the expression [`lift_outer_outputs`] returns.
const ROW_PLACEHOLDER: &str = "__duet_subquery_row";

/// For a subquery whose one output reads the outer row: the subquery returning a struct of
/// the inner columns that output reads instead, and the output as an expression of the
/// outer query over that struct (a column named [`ROW_PLACEHOLDER`]).
fn lift_outer_outputs(plan: &LogicalPlan) -> Result<Option<(LogicalPlan, Expr)>> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let LogicalPlan::Projection(p) = plan else {
        return Ok(None);
    };
    if p.expr.len() != 1 || !p.expr[0].contains_outer() {
        return Ok(None);
    }
    let output = p.expr[0].clone().unalias();
    let mut columns: Vec<datafusion::common::Column> = vec![];
    output.apply(|x| {
        if let Expr::Column(c) = x {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let mut fields: Vec<Expr> = columns
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            [
                datafusion::prelude::lit(format!("c{i}")),
                Expr::Column(c.clone()),
            ]
        })
        .collect();
    if fields.is_empty() {
        fields = vec![
            datafusion::prelude::lit("c"),
            datafusion::prelude::lit(true),
        ];
    }
    // Nullable (`duet_nullable`): the subquery may have no row (its value is then NULL),
    // and DataFusion takes a scalar subquery's nullability from its column's, so `r IS NOT
    // NULL` of a struct that cannot be NULL was simplified to true and the outer row's
    // value was answered for a subquery with no row (found by the differential tester).
    let row = Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::new_from_impl(Identity::nullable())),
        vec![datafusion::functions::core::expr_fn::named_struct(fields)],
    ))
    .alias("__duet_row");
    let projection = datafusion::logical_expr::Projection::try_new(vec![row], p.input.clone())?;
    let placeholder = Expr::Column(datafusion::common::Column::from_name(ROW_PLACEHOLDER));
    let template = output
        .transform(|x| match x {
            Expr::Column(c) => {
                let i = columns.iter().position(|k| *k == c).unwrap_or_default();
                Ok(Transformed::yes(
                    datafusion::functions::core::expr_fn::get_field(
                        placeholder.clone(),
                        format!("c{i}"),
                    ),
                ))
            }
            Expr::OuterReferenceColumn(_, c) => Ok(Transformed::yes(Expr::Column(c))),
            other => Ok(Transformed::no(other)),
        })?
        .data;
    Ok(Some((LogicalPlan::Projection(projection), template)))
}

/// Splits the conditions of a correlated subquery's filter that read only the outer row
/// (DataFusion cannot decorrelate those) from the subquery: the subquery without them,
/// and them as expressions of the outer query. `None` if there are none.
fn pull_outer_conditions(plan: &LogicalPlan) -> Result<Option<(LogicalPlan, Vec<Expr>)>> {
    match plan {
        LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {
            let Some((child, outer)) = pull_outer_conditions(plan.inputs()[0])? else {
                return Ok(None);
            };
            let rebuilt = plan.with_new_exprs(plan.expressions(), vec![child])?;
            Ok(Some((rebuilt, outer)))
        }
        LogicalPlan::Filter(f) => {
            let (outer, inner): (Vec<Expr>, Vec<Expr>) =
                datafusion::logical_expr::utils::split_conjunction_owned(f.predicate.clone())
                    .into_iter()
                    .partition(|e| {
                        e.contains_outer()
                            && !e
                                .exists(|x| Ok(matches!(x, Expr::Column(_))))
                                .unwrap_or(true)
                    });
            if outer.is_empty() {
                return Ok(None);
            }
            let rest = match datafusion::logical_expr::utils::conjunction(inner) {
                Some(p) => LogicalPlan::Filter(datafusion::logical_expr::Filter::try_new(
                    p,
                    f.input.clone(),
                )?),
                None => f.input.as_ref().clone(),
            };
            let outer = outer
                .into_iter()
                .map(|e| {
                    e.transform(|x| match x {
                        Expr::OuterReferenceColumn(_, c) => Ok(Transformed::yes(Expr::Column(c))),
                        other => Ok(Transformed::no(other)),
                    })
                    .map(|t| t.data)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Some((rest, outer)))
        }
        _ => Ok(None),
    }
}

/// A correlated scalar subquery DataFusion cannot decorrelate as it is (see
/// [`needs_collecting`]) as `duet_single_value` of its rows collected into a list.
fn collect_rows(sq: datafusion::logical_expr::Subquery) -> Result<Transformed<Expr>> {
    if sq.subquery.schema().fields().len() != 1 || !needs_collecting(&sq.subquery) {
        return Ok(Transformed::no(Expr::ScalarSubquery(sq)));
    }
    let inner = sq.subquery.as_ref().clone();
    let (qualifier, field) = inner.schema().qualified_field(0);
    let column = Expr::Column(datafusion::common::Column::new(
        qualifier.cloned(),
        field.name(),
    ));
    let collected = datafusion::logical_expr::LogicalPlanBuilder::from(inner)
        .aggregate(
            Vec::<Expr>::new(),
            vec![
                datafusion::functions_aggregate::array_agg::array_agg(column).alias("__duet_rows"),
            ],
        )?
        .build()?;
    let subquery = Expr::ScalarSubquery(datafusion::logical_expr::Subquery {
        subquery: Arc::new(collected),
        outer_ref_columns: sq.outer_ref_columns,
        spans: sq.spans,
    });
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(SingleValue::default())),
            vec![subquery],
        ),
    )))
}

/// Whether DataFusion would refuse `plan` as a correlated scalar subquery: not an
/// aggregate under projections, aliases and sorts, and not limited to one row.
fn needs_collecting(plan: &LogicalPlan) -> bool {
    if plan.max_rows().is_some_and(|m| m <= 1) {
        return false;
    }
    let mut p = plan;
    loop {
        match p {
            LogicalPlan::Projection(x) => p = x.input.as_ref(),
            LogicalPlan::SubqueryAlias(x) => p = x.input.as_ref(),
            LogicalPlan::Sort(x) if x.fetch.is_none() => p = x.input.as_ref(),
            LogicalPlan::Aggregate(_) | LogicalPlan::Limit(_) | LogicalPlan::Sort(_) => {
                return false
            }
            LogicalPlan::Filter(f) => {
                return !matches!(f.input.as_ref(), LogicalPlan::Aggregate(_))
            }
            _ => return true,
        }
    }
}

/// `duet_single_value(list)`: the one element of a scalar subquery's collected rows, NULL
/// for none, 21000 for more.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct SingleValue {
    signature: Signature,
}

impl Default for SingleValue {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SingleValue {
    fn name(&self) -> &str {
        "duet_single_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match &arg_types[0] {
            DataType::List(f) | DataType::LargeList(f) => Ok(f.data_type().clone()),
            other => Err(DataFusionError::Internal(format!(
                "duet_single_value of {other}"
            ))),
        }
    }

    /// Always nullable: a subquery may have no row for an outer row (the decorrelating join
    /// then gives NULL), whatever the collected column says.
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let ty = self.return_type(&[args.arg_fields[0].data_type().clone()])?;
        Ok(Arc::new(datafusion::arrow::datatypes::Field::new(
            self.name(),
            ty,
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, UInt32Array};
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let lists = args.args[0].to_array(if scalar { 1 } else { args.number_rows })?;
        let lists = lists.as_list::<i32>();
        let offsets = lists.value_offsets();
        let mut take = Vec::with_capacity(lists.len());
        for i in 0..lists.len() {
            let (start, end) = (offsets[i] as u32, offsets[i + 1] as u32);
            take.push(match end - start {
                _ if lists.is_null(i) => None,
                0 => None,
                1 => Some(start),
                _ => {
                    return Err(DataFusionError::Execution(
                        "scalar subquery returned more than one row".into(),
                    ))
                }
            });
        }
        let out = datafusion::arrow::compute::take(
            lists.values().as_ref(),
            &UInt32Array::from(take),
            None,
        )?;
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

/// `x [NOT] IN (e1, e2, …)` whose list holds an expression over columns: DataFusion
/// ignored a NULL such an element yields (`'a' IN (CASE WHEN c THEN '' END, '')` was false
/// where PostgreSQL's answer is NULL). PostgreSQL defines the list as `x = e1 OR x = e2 …`
/// (`x <> e1 AND …` for NOT IN); the list is written that way, unless `x` is volatile (it
/// must be evaluated once). Lists of constants stay as they are: DataFusion answers them
/// right (a constant element is folded to a literal). Before type coercion.
#[derive(Debug, Default)]
pub struct InListNulls;

impl AnalyzerRule for InListNulls {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        use datafusion::logical_expr::expr::InList;
        use datafusion::logical_expr::{BinaryExpr, Operator};
        retype_expressions(plan, |e, _schema| match e {
            Expr::InList(InList {
                expr,
                list,
                negated,
            }) if !list.is_empty()
                && list.iter().any(|i| !i.column_refs().is_empty())
                && !expr.is_volatile() =>
            {
                let (cmp, join) = if negated {
                    (Operator::NotEq, Operator::And)
                } else {
                    (Operator::Eq, Operator::Or)
                };
                let tests: Vec<Expr> = list
                    .into_iter()
                    .map(|item| {
                        Expr::BinaryExpr(BinaryExpr::new(expr.clone(), cmp, Box::new(item)))
                    })
                    .collect();
                Ok(Transformed::yes(balanced(tests, join)))
            }
            other => Ok(Transformed::no(other)),
        })
    }

    fn name(&self) -> &str {
        "duet_in_list_nulls"
    }
}

/// `items` joined by `op` as a balanced tree (a long list stays shallow).
fn balanced(mut items: Vec<Expr>, op: datafusion::logical_expr::Operator) -> Expr {
    use datafusion::logical_expr::BinaryExpr;
    if items.len() == 1 {
        return items.remove(0);
    }
    let right = items.split_off(items.len() / 2);
    Expr::BinaryExpr(BinaryExpr::new(
        Box::new(balanced(items, op)),
        op,
        Box::new(balanced(right, op)),
    ))
}

/// Where DataFusion's `single_distinct_aggregation_to_group_by` is not applied
/// ([`super::GuardedRule`]): on an aggregate whose GROUP BY keys share a column name
/// (`GROUP BY a1.c0, a2.c0`): its rewrite regroups the outer aggregate by name and kept only
/// one of them (`bool_and(DISTINCT …)` over a self join gave one group per `a1.c0` instead
/// of one per pair; found by the differential tester); nor on a DISTINCT aggregate of an
/// expression other than a column (see below). Such an aggregate keeps DataFusion's
/// distinct accumulators.
pub fn single_distinct_would_differ(plan: &LogicalPlan) -> Result<bool> {
    let LogicalPlan::Aggregate(agg) = plan else {
        return Ok(false);
    };
    let mut names = std::collections::HashSet::new();
    let repeated = agg.group_expr.iter().any(|g| {
        let name = match g {
            Expr::Column(c) => c.name.clone(),
            other => other.schema_name().to_string(),
        };
        !names.insert(name)
    });
    // A distinct argument that is not a column (`sum(DISTINCT c0::bigint)`, and the cast
    // `avg` of an integer gets) became a group key whose nullability the physical plan
    // disagreed with (XX000).
    let computed = agg.aggr_expr.iter().any(|e| {
        matches!(e, Expr::AggregateFunction(f) if f.params.distinct
            && f.params.args.iter().any(|a| !matches!(a, Expr::Column(_))))
    });
    Ok(repeated || computed)
}
