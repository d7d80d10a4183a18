//! PostgreSQL's per-value numeric scale on plans of fixed-scale decimals.
//!
//! A PostgreSQL numeric prints as many decimals as the value carries (its display scale):
//! `avg` and `/` choose them by the size of the result (16 significant digits), and `CASE`,
//! `COALESCE` or `UNION` of `1.5` and `2.25` keep each value's own (`1.5`, `2.25`). An Arrow
//! decimal column has one scale. Where the two differ, the optimized plan gets a
//! *companion* column beside the value: its display scale row by row (an `Int32` named
//! after the value with [`SUFFIX`]), computed from the operands' own scales by PostgreSQL's
//! rules (`+ -`: the larger, `*`: the sum, `/`: `select_div_scale`, `sum`: the largest,
//! `min`/`max`: the chosen value's; `avg` is a sum over a count since `NumericAverages`;
//! DISTINCT and GROUP BY: the first met). Companions
//! pass through filters, sorts, joins and aliases as any column does; the query's last
//! projection tags each with [`DISPLAY_SCALE_OF`] and the wire prints the value with it.
//! A cast of such a value to text (`x::text`, `x || 'a'`) prints it the same way.
//! A scan of an unconstrained `numeric` column reads its stored companion (the scale each
//! value was written with) through a provider that exposes it on request only
//! ([`scan_companions`]); a float or a text cast to numeric gets the scale of its
//! PostgreSQL text ([`InputScale`]).
//!
//! Runs once on the optimized plan, before the physical planner, so no optimizer rule
//! sees or prunes the companions. A node it does not know, and everything below it, keeps
//! the type's scale, as does a correlated subquery inside an expression: the value is
//! right, its trailing zeros may differ (`known::numeric_scale_only` in the differential
//! tester).

use datafusion::common::{Column, DFSchema};
use datafusion::functions_aggregate::min_max::max_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, Alias, Case, FieldMetadata};
use datafusion::logical_expr::{Aggregate, Distinct, Filter, Projection, SortExpr, Union, Values};

use super::arith::NumericDivScale;
use super::*;
use duet_common::numeric::DISPLAY_SCALE_OF;

pub use duet_common::numeric::SUFFIX;

fn companion(name: &str) -> String {
    format!("{name}{SUFFIX}")
}

fn int32(v: i32) -> Expr {
    Expr::Literal(ScalarValue::Int32(Some(v)), None)
}

fn type_scale(t: &DataType) -> Option<i32> {
    match t {
        DataType::Decimal128(_, s) => Some(*s as i32),
        t if is_int(t) => Some(0),
        _ => None,
    }
}

/// `plan` with the companions its result needs, the last projection tagging them for the
/// wire. Plans that are not queries are returned as they are.
pub fn with_display_scales(plan: LogicalPlan) -> Result<LogicalPlan> {
    if !is_query(&plan) || !has_numerics(&plan)? {
        return Ok(plan);
    }
    let width = plan.schema().fields().len();
    let original = plan.schema().clone();
    let plan = rewrite_plan(plan)?;
    if plan.schema().fields().len() == width {
        return Ok(plan);
    }
    let schema = plan.schema().clone();
    let mut exprs: Vec<Expr> = original
        .iter()
        .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
        .collect();
    for (i, (q, f)) in original.iter().enumerate() {
        let c = Column::new(q.cloned(), companion(f.name()));
        if schema.has_column(&c) {
            let tag = FieldMetadata::from(std::collections::BTreeMap::from([(
                DISPLAY_SCALE_OF.to_string(),
                i.to_string(),
            )]));
            exprs.push(Expr::Column(c).alias_with_metadata(format!("{SUFFIX}{i}"), Some(tag)));
        }
    }
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(plan),
    )?))
}

/// Whether any node of `plan` (subqueries too) has a decimal column, or a numeric
/// quotient, product, constant scale, decimal cast or literal in an expression: else no companion can arise,
/// and the plan is left as it is (no node rebuilt for a query without numerics).
fn has_numerics(plan: &LogicalPlan) -> Result<bool> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = false;
    let decimal = |f: &Arc<datafusion::arrow::datatypes::Field>| {
        matches!(f.data_type(), DataType::Decimal128(..))
    };
    plan.apply_with_subqueries(|node| {
        found = node.schema().fields().iter().any(decimal)
            // A scan's own filters may read decimal columns it does not return.
            || matches!(node, LogicalPlan::TableScan(t)
                if !t.filters.is_empty() && t.source.schema().fields().iter().any(decimal));
        if !found {
            node.apply_expressions(|e| {
                // A decimal inside an expression whose result is not one (`'a' || 1.50`).
                found = e.exists(|x| {
                    Ok(match x {
                        Expr::ScalarFunction(f) => matches!(
                            f.func.name(),
                            "numeric_div" | "numeric_mul" | "duet_display_scale"
                        ),
                        Expr::Cast(c) => matches!(c.field.data_type(), DataType::Decimal128(..)),
                        Expr::Literal(v, _) => matches!(v, ScalarValue::Decimal128(..)),
                        _ => false,
                    })
                })?;
                Ok(if found {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })?;
        }
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(found)
}

fn is_query(plan: &LogicalPlan) -> bool {
    matches!(
        plan,
        LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::Values(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::TableScan(_)
    )
}

/// A subquery's plan inside an expression of `plan` rewritten as any query is (its scans'
/// companions, its casts of numerics to text printing the values' scales), its output kept
/// to its own columns: `(SELECT count(*) FROM t WHERE length(x::text) = 5)` counted the
/// stored decimals.
fn subquery_scales(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.map_subqueries(|sq| {
        let LogicalPlan::Subquery(mut s) = sq else {
            return Ok(Transformed::no(sq));
        };
        let inner = Arc::unwrap_or_clone(s.subquery);
        let width = inner.schema().fields().len();
        let original = inner.schema().clone();
        let rewritten = rewrite_plan(inner)?;
        s.subquery = Arc::new(if rewritten.schema().fields().len() == width {
            rewritten
        } else {
            let exprs = original
                .iter()
                .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
                .collect::<Vec<_>>();
            LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(rewritten))?)
        });
        Ok(Transformed::yes(LogicalPlan::Subquery(s)))
    })
    .map(|t| t.data)
}

/// `plan` whose output also holds a companion for each decimal column whose display scale
/// varies by row (or differs from its type's).
fn rewrite_plan(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = subquery_scales(plan)?;
    match plan {
        LogicalPlan::Projection(p) => {
            let input = rewrite_plan(Arc::unwrap_or_clone(p.input))?;
            let in_schema = input.schema().clone();
            let mut exprs = Vec::with_capacity(p.expr.len());
            let mut companions = Vec::new();
            for (e, (q, f)) in p.expr.into_iter().zip(p.schema.iter()) {
                let e = keep_name(rewrite_expr(e.clone(), &in_schema)?, &e, q, f.name());
                if let Some(d) = display_scale(&e, &in_schema)? {
                    companions.push(d.alias_qualified(q.cloned(), companion(f.name())));
                }
                exprs.push(e);
            }
            exprs.extend(companions);
            Ok(LogicalPlan::Projection(Projection::try_new(
                exprs,
                Arc::new(input),
            )?))
        }
        LogicalPlan::Filter(f) => {
            let input = rewrite_plan(Arc::unwrap_or_clone(f.input))?;
            let predicate = rewrite_expr(f.predicate, input.schema())?;
            Ok(LogicalPlan::Filter(Filter::try_new(
                predicate,
                Arc::new(input),
            )?))
        }
        LogicalPlan::Aggregate(a) => rewrite_aggregate(a),
        LogicalPlan::Union(u) => rewrite_union(u),
        LogicalPlan::Distinct(Distinct::All(input)) => {
            let width = input.schema().fields().len();
            let input = rewrite_plan(Arc::unwrap_or_clone(input))?;
            if input.schema().fields().len() == width {
                return Ok(LogicalPlan::Distinct(Distinct::All(Arc::new(input))));
            }
            // Distinct values, each with the scale of the first row met (PostgreSQL keeps
            // the first of equal values it meets).
            let schema = input.schema().clone();
            let (mut keys, mut scales) = (Vec::new(), Vec::new());
            for (q, f) in schema.iter() {
                let c = Expr::Column(Column::new(q.cloned(), f.name()));
                if f.name().ends_with(SUFFIX) {
                    scales.push(first_of(c).alias_qualified(q.cloned(), f.name()));
                } else {
                    keys.push(c);
                }
            }
            Ok(LogicalPlan::Aggregate(Aggregate::try_new(
                Arc::new(input),
                keys,
                scales,
            )?))
        }
        LogicalPlan::Values(v) => rewrite_values(v),
        LogicalPlan::Window(w) => rewrite_window(w),
        LogicalPlan::TableScan(scan) => scan_companions(scan),
        LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Join(_)
        | LogicalPlan::Repartition(_) => {
            let exprs = plan.expressions();
            let inputs = plan
                .inputs()
                .into_iter()
                .map(|i| rewrite_plan(i.clone()))
                .collect::<Result<Vec<_>>>()?;
            // A sort key or join condition casting a numeric to text prints it with its
            // scale, as in a projection (`ON length(x::text) = 1`).
            let schema = merge_schema(&inputs.iter().collect::<Vec<_>>());
            let exprs = exprs
                .into_iter()
                .map(|e| rewrite_expr(e, &schema))
                .collect::<Result<Vec<_>>>()?;
            plan.with_new_exprs(exprs, inputs)
        }
        other => Ok(other),
    }
}

/// A scan of a table with unconstrained `numeric` columns reading, beside each such
/// column it reads, its companion: the display scale each value was written with (`1.50`
/// keeps two decimals). The table's provider exposes them on request only, so no `*`
/// and no optimizer rule ever sees them.
fn scan_companions(scan: datafusion::logical_expr::TableScan) -> Result<LogicalPlan> {
    use crate::scaled_rows::ScaledRows;
    use datafusion::catalog::TableProvider;
    use datafusion::datasource::{provider_as_source, source_as_provider};
    use duet_router::provider::RowTableProvider;
    let provider = source_as_provider(&scan.source).ok();
    let wide: Option<Arc<dyn TableProvider>> = provider.as_ref().and_then(|p| {
        if let Some(t) = p.downcast_ref::<RowTableProvider>() {
            return t
                .with_companions()
                .map(|t| Arc::new(t) as Arc<dyn TableProvider>);
        }
        p.downcast_ref::<ScaledRows>()
            .and_then(ScaledRows::with_companions)
            .map(|t| Arc::new(t) as Arc<dyn TableProvider>)
    });
    let Some(wide) = wide else {
        return Ok(LogicalPlan::TableScan(scan));
    };
    let narrow = scan.source.schema();
    let projection = scan
        .projection
        .clone()
        .unwrap_or_else(|| (0..narrow.fields().len()).collect());
    let wide_schema = wide.schema();
    let mut extended = projection.clone();
    for &p in &projection {
        if let Ok(i) = wide_schema.index_of(&companion(narrow.field(p).name())) {
            extended.push(i);
        }
    }
    // Filters the scan evaluates itself that print such a value as text read its scale.
    let scope = DFSchema::try_from_qualified_schema(scan.table_name.clone(), wide_schema.as_ref())?;
    let filters = scan
        .filters
        .iter()
        .map(|f| rewrite_expr(f.clone(), &scope))
        .collect::<Result<Vec<_>>>()?;
    if extended.len() == projection.len() && filters == scan.filters {
        return Ok(LogicalPlan::TableScan(scan));
    }
    Ok(LogicalPlan::TableScan(
        datafusion::logical_expr::TableScanBuilder::new(scan.table_name, provider_as_source(wide))
            .with_projection(Some(extended))
            .with_filters(filters)
            .with_fetch(scan.fetch)
            .with_statistics_requests(scan.statistics_requests)
            .build()?,
    ))
}

/// The first value of `e` in a group, as PostgreSQL keeps the first of equal keys.
fn first_of(e: Expr) -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(
        datafusion::functions_aggregate::first_last::first_value_udaf(),
        vec![e],
        false,
        None,
        vec![],
        None,
    ))
}

/// An aggregate of `e` with `f`'s FILTER.
fn aggregate_like(
    f: &AggregateFunction,
    func: Arc<datafusion::logical_expr::AggregateUDF>,
    e: Expr,
    order_by: Vec<SortExpr>,
) -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(
        func,
        vec![e],
        false,
        f.params.filter.clone(),
        order_by,
        None,
    ))
}

fn rewrite_aggregate(a: Aggregate) -> Result<LogicalPlan> {
    use datafusion::functions_aggregate::first_last;
    let input = rewrite_plan(Arc::unwrap_or_clone(a.input))?;
    let schema = input.schema().clone();
    let out = a.schema.clone();
    let grouping_sets = a
        .group_expr
        .iter()
        .any(|g| matches!(g, Expr::GroupingSet(_)));
    let mut group = Vec::with_capacity(a.group_expr.len());
    let mut extra = Vec::new();
    if grouping_sets {
        // ROLLUP, CUBE, GROUPING SETS: the keys lead the output, in the order of the
        // set's distinct expressions; a rolled-up key is NULL, its scale unused.
        if let [Expr::GroupingSet(set)] = a.group_expr.as_slice() {
            for (i, g) in set.distinct_expr().into_iter().enumerate() {
                let (q, f) = out.qualified_field(i);
                if let Some(d) = display_scale(g, &schema)? {
                    extra.push(first_of(d).alias_qualified(q.cloned(), companion(f.name())));
                }
            }
        }
    }
    for (i, g) in a.group_expr.into_iter().enumerate() {
        if grouping_sets {
            group.push(g);
            continue;
        }
        let (q, f) = out.qualified_field(i);
        let g = keep_name(rewrite_expr(g.clone(), &schema)?, &g, q, f.name());
        if let Some(d) = display_scale(&g, &schema)? {
            extra.push(first_of(d).alias_qualified(q.cloned(), companion(f.name())));
        }
        group.push(g);
    }
    let first_aggr = out.fields().len() - a.aggr_expr.len();
    let mut aggr = Vec::with_capacity(a.aggr_expr.len());
    for (j, e) in a.aggr_expr.into_iter().enumerate() {
        let (q, field) = out.qualified_field(first_aggr + j);
        let name = field.name().clone();
        let inner = match &e {
            Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
            e => e,
        };
        let Expr::AggregateFunction(f) = inner else {
            aggr.push(e);
            continue;
        };
        let Some(arg) = f.params.args.first() else {
            aggr.push(e);
            continue;
        };
        let fname = f.func.name().to_string();
        match fname.as_str() {
            "sum" | "min" | "max" => {
                let arg = rewrite_expr(arg.clone(), &schema)?;
                if let Some(d) = display_scale(&arg, &schema)? {
                    let scale = match fname.as_str() {
                        "sum" => aggregate_like(f, max_udaf(), d, vec![]),
                        // The scale of the value chosen.
                        m => aggregate_like(
                            f,
                            first_last::first_value_udaf(),
                            d,
                            vec![SortExpr::new(arg.clone(), m == "min", false)],
                        ),
                    };
                    extra.push(scale.alias_qualified(q.cloned(), companion(&name)));
                }
                let mut f = f.clone();
                f.params.args[0] = arg;
                aggr.push(Expr::AggregateFunction(f).alias_qualified(q.cloned(), &name));
            }
            // A row's value (DISTINCT ON is first_value since the optimizer): the same
            // row's scale.
            "first_value" | "last_value" => {
                let arg = rewrite_expr(arg.clone(), &schema)?;
                if let Some(d) = display_scale(&arg, &schema)? {
                    let scale = aggregate_like(f, f.func.clone(), d, f.params.order_by.clone());
                    extra.push(scale.alias_qualified(q.cloned(), companion(&name)));
                }
                let mut f = f.clone();
                f.params.args[0] = arg;
                aggr.push(Expr::AggregateFunction(f).alias_qualified(q.cloned(), &name));
            }
            // Other aggregates: their arguments' casts of numerics to text print the
            // values' scales (`string_agg(x::text, ',')`).
            _ => {
                let mut f = f.clone();
                f.params.args = f
                    .params
                    .args
                    .into_iter()
                    .map(|a| rewrite_expr(a, &schema))
                    .collect::<Result<_>>()?;
                aggr.push(Expr::AggregateFunction(f).alias_qualified(q.cloned(), &name));
            }
        }
    }
    aggr.extend(extra);
    Ok(LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::new(input),
        group,
        aggr,
    )?))
}

/// Window functions of numerics: a sum's scale is the largest in the frame; `min`, `max`,
/// `first_value`, `last_value`, `nth_value`, `lag` and `lead` give the chosen row's.
fn rewrite_window(w: datafusion::logical_expr::Window) -> Result<LogicalPlan> {
    use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionDefinition};
    let input = rewrite_plan(Arc::unwrap_or_clone(w.input))?;
    let schema = input.schema().clone();
    let out = w.schema.clone();
    let first = out.fields().len() - w.window_expr.len();
    let over = |wf: &WindowFunction, f: Arc<datafusion::logical_expr::AggregateUDF>, arg: Expr| {
        let mut params = wf.params.clone();
        params.args = vec![arg];
        Expr::WindowFunction(Box::new(WindowFunction {
            fun: WindowFunctionDefinition::AggregateUDF(f),
            params,
        }))
    };
    let mut exprs = Vec::new();
    let mut extra = Vec::new();
    // (qualifier, key column, companion) of each min/max whose scale is read from a key.
    let mut keys = Vec::new();
    for (j, e) in w.window_expr.into_iter().enumerate() {
        let (q, field) = out.qualified_field(first + j);
        let name = field.name().clone();
        let inner = match &e {
            Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
            e => e,
        };
        let Expr::WindowFunction(wf) = inner else {
            exprs.push(e);
            continue;
        };
        // The arguments' casts of numerics to text print the values' scales
        // (`max(right(x::text, 1)) OVER ()`), as in aggregates.
        let mut args_rewritten = wf.as_ref().clone();
        args_rewritten.params.args = args_rewritten
            .params
            .args
            .into_iter()
            .map(|a| rewrite_expr(a, &schema))
            .collect::<Result<_>>()?;
        let wf = wf.as_ref().clone();
        let wf = &wf;
        let e = keep_name(Expr::WindowFunction(Box::new(args_rewritten)), &e, q, &name);
        let Some(arg) = wf.params.args.first() else {
            exprs.push(e);
            continue;
        };
        let Some(d) = display_scale(&rewrite_expr(arg.clone(), &schema)?, &schema)? else {
            exprs.push(e);
            continue;
        };
        match (&wf.fun, wf.fun.name()) {
            // The largest scale in the frame (an average is a sum over a count since
            // `NumericAverages`).
            (WindowFunctionDefinition::AggregateUDF(_), "sum") => {
                extra.push(over(wf, max_udaf(), d).alias_qualified(q.cloned(), companion(&name)));
            }
            // The chosen value's: the same aggregate over keys ordered by the value, then
            // its scale (`ScaleKey`), read back from the chosen key above the window.
            (WindowFunctionDefinition::AggregateUDF(f), "min" | "max") => {
                let key = Expr::ScalarFunction(ScalarFunction::new_udf(
                    Arc::new(ScalarUDF::new_from_impl(ScaleKey::default())),
                    vec![arg.clone(), d],
                ));
                let key_name = format!("{name}\u{1f}key");
                keys.push((q.cloned(), key_name.clone(), companion(&name)));
                extra.push(over(wf, f.clone(), key).alias_qualified(q.cloned(), key_name));
            }
            // A row's value: the same row's scale (a default's own where it is used).
            (_, "first_value" | "last_value" | "nth_value" | "lag" | "lead") => {
                let mut scales = wf.clone();
                scales.params.args[0] = d;
                if let Some(default) = scales.params.args.get(2).cloned() {
                    scales.params.args[2] =
                        scale_or_type(display_scale(&default, &schema)?, &default, &schema)?;
                }
                extra.push(
                    Expr::WindowFunction(Box::new(scales))
                        .alias_qualified(q.cloned(), companion(&name)),
                );
            }
            _ => {}
        }
        exprs.push(e);
    }
    exprs.extend(extra);
    let window = LogicalPlan::Window(datafusion::logical_expr::Window::try_new(
        exprs,
        Arc::new(input),
    )?);
    if keys.is_empty() {
        return Ok(window);
    }
    // The keys' scales in place of the keys.
    let mut columns = Vec::new();
    for (q, f) in window.schema().iter() {
        let c = Expr::Column(Column::new(q.cloned(), f.name()));
        match keys.iter().find(|(_, k, _)| k == f.name()) {
            Some((kq, _, comp)) => columns.push(
                Expr::ScalarFunction(ScalarFunction::new_udf(
                    Arc::new(ScalarUDF::new_from_impl(ScaleOfKey::default())),
                    vec![c],
                ))
                .alias_qualified(kq.clone(), comp),
            ),
            None => columns.push(c),
        }
    }
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(window),
    )?))
}

/// `duet_scale_key(x, scale)`: the numeric `x` and its display scale as one
/// `Decimal256(76, s + 3)` (`s` the scale of `x`'s type) ordered by `x`, then by the scale
/// (the last three digits): `min`/`max` of keys choose the value `min`/`max` of `x` would,
/// and [`ScaleOfKey`] reads its scale back.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ScaleKey {
    signature: Signature,
}

impl Default for ScaleKey {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ScaleKey {
    fn name(&self) -> &str {
        "duet_scale_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(DataType::Decimal128(_, s)) => Ok(DataType::Decimal256(76, s + 3)),
            other => datafusion::common::plan_err!("duet_scale_key of {other:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, Decimal256Array};
        use datafusion::arrow::datatypes::{i256, Decimal128Type, Int32Type};
        let rows = args.number_rows;
        let values = args.args[0].to_array(rows)?;
        let scales =
            datafusion::arrow::compute::cast(&args.args[1].to_array(rows)?, &DataType::Int32)?;
        let (values, scales) = (
            values.as_primitive::<Decimal128Type>(),
            scales.as_primitive::<Int32Type>(),
        );
        let thousand = i256::from_i128(1000);
        let keys: Decimal256Array = values
            .iter()
            .zip(scales.iter())
            .map(|(v, d)| {
                v.map(|v| {
                    i256::from_i128(v)
                        .wrapping_mul(thousand)
                        .wrapping_add(i256::from_i128(i128::from(d.unwrap_or(0).clamp(0, 999))))
                })
            })
            .collect();
        let DataType::Decimal256(p, s) = args.return_field.data_type().clone() else {
            return datafusion::common::exec_err!("duet_scale_key: not a Decimal256");
        };
        Ok(ColumnarValue::Array(Arc::new(
            keys.with_precision_and_scale(p, s)?,
        )))
    }
}

/// `duet_scale_of_key(key)`: the display scale a [`ScaleKey`] holds.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ScaleOfKey {
    signature: Signature,
}

impl Default for ScaleOfKey {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ScaleOfKey {
    fn name(&self) -> &str {
        "duet_scale_of_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, Int32Array};
        use datafusion::arrow::datatypes::{i256, Decimal256Type};
        let keys = args.args[0].to_array(args.number_rows)?;
        let thousand = i256::from_i128(1000);
        let out: Int32Array = keys
            .as_primitive::<Decimal256Type>()
            .iter()
            .map(|k| {
                k.map(|k| {
                    let r = k.wrapping_rem(thousand);
                    let r = if r < i256::ZERO {
                        r.wrapping_add(thousand)
                    } else {
                        r
                    };
                    r.as_i128() as i32
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

fn rewrite_union(u: Union) -> Result<LogicalPlan> {
    let width = u.schema.fields().len();
    // Each input with its columns before companions were added (joins put them between).
    let inputs = u
        .inputs
        .into_iter()
        .map(|i| {
            let columns: Vec<Column> = i
                .schema()
                .iter()
                .map(|(q, f)| Column::new(q.cloned(), f.name()))
                .collect();
            Ok((rewrite_plan(Arc::unwrap_or_clone(i))?, columns))
        })
        .collect::<Result<Vec<_>>>()?;
    // A union column has a companion if any input has one for it.
    let has = |(p, columns): &(LogicalPlan, Vec<Column>), i: usize| {
        let c = &columns[i];
        p.schema()
            .has_column(&Column::new(c.relation.clone(), companion(&c.name)))
    };
    let needed: Vec<usize> = (0..width)
        .filter(|&i| inputs.iter().any(|p| has(p, i)))
        .collect();
    if needed.is_empty() {
        let inputs = inputs
            .into_iter()
            .map(|(p, columns)| only(p, columns))
            .collect::<Result<Vec<_>>>()?;
        return Ok(LogicalPlan::Union(Union::try_new_with_loose_types(inputs)?));
    }
    let (out_q, out_names): (Vec<_>, Vec<_>) = u
        .schema
        .iter()
        .map(|(q, f)| (q.cloned(), f.name().clone()))
        .unzip();
    let inputs = inputs
        .into_iter()
        .map(|(p, columns)| {
            let schema = p.schema().clone();
            let mut exprs: Vec<Expr> = columns.iter().cloned().map(Expr::Column).collect();
            for &i in &needed {
                let v = &columns[i];
                let c = Column::new(v.relation.clone(), companion(&v.name));
                let d = if schema.has_column(&c) {
                    Expr::Column(c)
                } else {
                    let t = schema.qualified_field_from_column(v)?.1.data_type();
                    int32(type_scale(t).unwrap_or(0))
                };
                exprs.push(d.alias_qualified(out_q[i].clone(), companion(&out_names[i])));
            }
            Ok(Arc::new(LogicalPlan::Projection(Projection::try_new(
                exprs,
                Arc::new(p),
            )?)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LogicalPlan::Union(Union::try_new_with_loose_types(inputs)?))
}

/// `plan` with only `columns` (its companions dropped).
fn only(plan: LogicalPlan, columns: Vec<Column>) -> Result<Arc<LogicalPlan>> {
    if plan.schema().fields().len() == columns.len() {
        return Ok(Arc::new(plan));
    }
    let exprs = columns.into_iter().map(Expr::Column).collect();
    Ok(Arc::new(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(plan),
    )?)))
}

fn rewrite_values(v: Values) -> Result<LogicalPlan> {
    let empty = DFSchema::empty();
    let width = v.schema.fields().len();
    let mut needed = Vec::new();
    for i in 0..width {
        let DataType::Decimal128(_, own) = *v.schema.field(i).data_type() else {
            continue;
        };
        let own = own as i32;
        let scales = v
            .values
            .iter()
            .map(|row| Ok(display_scale(&row[i], &empty)?.unwrap_or_else(|| int32(own))))
            .collect::<Result<Vec<_>>>()?;
        if scales.iter().any(|d| *d != int32(own)) {
            needed.push((i, scales));
        }
    }
    if needed.is_empty() {
        return Ok(LogicalPlan::Values(v));
    }
    let mut fields: Vec<_> = v
        .schema
        .iter()
        .map(|(q, f)| (q.cloned(), f.clone()))
        .collect();
    for (i, _) in &needed {
        let name = companion(v.schema.field(*i).name());
        fields.push((
            None,
            Arc::new(datafusion::arrow::datatypes::Field::new(
                name,
                DataType::Int32,
                true,
            )),
        ));
    }
    let values = v
        .values
        .into_iter()
        .enumerate()
        .map(|(r, mut row)| {
            row.extend(needed.iter().map(|(_, scales)| scales[r].clone()));
            row
        })
        .collect();
    let schema = DFSchema::new_with_metadata(fields, v.schema.metadata().clone())?;
    Ok(LogicalPlan::Values(Values {
        schema: Arc::new(schema),
        values,
    }))
}

/// `new` named as `old` was (`q.name`) if rewriting changed it: parents refer to it by name.
fn keep_name(
    new: Expr,
    old: &Expr,
    q: Option<&datafusion::common::TableReference>,
    name: &str,
) -> Expr {
    if new == *old {
        new
    } else {
        new.unalias().alias_qualified(q.cloned(), name)
    }
}

/// `e` with each division of values whose scale varies by row given those scales, and
/// each cast of such a value to text printing it with its scale.
fn rewrite_expr(e: Expr, schema: &DFSchema) -> Result<Expr> {
    e.transform_up(|e| match &e {
        Expr::ScalarFunction(f) if f.func.name() == "numeric_div" && f.args.len() == 2 => {
            let (a, b) = (
                display_scale(&f.args[0], schema)?,
                display_scale(&f.args[1], schema)?,
            );
            if a.is_none() && b.is_none() {
                return Ok(Transformed::no(e));
            }
            let mut args = f.args.clone();
            args.push(scale_or_type(a, &f.args[0], schema)?);
            args.push(scale_or_type(b, &f.args[1], schema)?);
            Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(f.func.clone(), args),
            )))
        }
        Expr::Cast(c)
            if matches!(
                c.field.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) =>
        {
            if !matches!(c.expr.get_type(schema)?, DataType::Decimal128(..)) {
                return Ok(Transformed::no(e));
            }
            let Some(d) = display_scale(&c.expr, schema)? else {
                return Ok(Transformed::no(e));
            };
            let text = Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(ScalarUDF::new_from_impl(NumericText::default())),
                vec![(*c.expr).clone(), d],
            ));
            Ok(Transformed::yes(Expr::Cast(
                datafusion::logical_expr::Cast::new_from_field(Box::new(text), c.field.clone()),
            )))
        }
        _ => Ok(Transformed::no(e)),
    })
    .map(|t| t.data)
}

fn scale_or_type(d: Option<Expr>, e: &Expr, schema: &DFSchema) -> Result<Expr> {
    Ok(match d {
        Some(d) => d,
        None => int32(type_scale(&e.get_type(schema)?).unwrap_or(0)),
    })
}

/// The display scale of `e` (evaluated over `schema`, whose companions it may read) where
/// it is not the scale of `e`'s type; `None` where that type's scale is PostgreSQL's (or
/// where it cannot tell: the type's scale is then shown, as before).
fn display_scale(e: &Expr, schema: &DFSchema) -> Result<Option<Expr>> {
    let Ok(ty) = e.get_type(schema) else {
        return Ok(None);
    };
    let Some(own) = type_scale(&ty) else {
        return Ok(None);
    };
    let d = match scale_expr(e, schema)? {
        Some(Expr::Literal(ScalarValue::Int32(Some(v)), _)) if v == own => None,
        d => d,
    };
    Ok(d)
}

/// [`display_scale`] without the check against the type.
fn scale_expr(e: &Expr, schema: &DFSchema) -> Result<Option<Expr>> {
    let of = |e: &Expr| -> Result<Expr> {
        let d = scale_expr(e, schema)?;
        scale_or_type(d, e, schema)
    };
    Ok(match e {
        Expr::Alias(a) => scale_expr(&a.expr, schema)?,
        Expr::Column(c) => {
            let comp = Column::new(c.relation.clone(), companion(&c.name));
            schema.has_column(&comp).then_some(Expr::Column(comp))
        }
        Expr::Cast(c) => {
            let from = c.expr.get_type(schema)?;
            match (&from, c.field.data_type()) {
                // A declared numeric(p,s) rounds to s.
                (_, DataType::Decimal128(..))
                    if c.field
                        .metadata()
                        .contains_key(duet_common::batch::PG_TYPMOD) =>
                {
                    None
                }
                // A coercion keeps the value and so its scale; a cast to fewer decimals
                // (DataFusion's to an unconstrained numeric) cuts it there.
                (DataType::Decimal128(_, from), DataType::Decimal128(_, to)) if to < from => {
                    let d = of(&c.expr)?;
                    let to = int32(*to as i32);
                    Some(Expr::Case(Case {
                        expr: None,
                        when_then_expr: vec![(Box::new(d.clone().gt(to.clone())), Box::new(to))],
                        else_expr: Some(Box::new(d)),
                    }))
                }
                (DataType::Decimal128(..), DataType::Decimal128(..)) => Some(of(&c.expr)?),
                (t, DataType::Decimal128(..)) if is_int(t) || t.is_unsigned_integer() => {
                    Some(int32(0))
                }
                (
                    DataType::Float32
                    | DataType::Float64
                    | DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View,
                    DataType::Decimal128(..),
                ) => Some(input_scale((*c.expr).clone())),
                _ => None,
            }
        }
        Expr::Negative(x) => Some(of(x)?),
        // An uncorrelated scalar subquery's scale: a second subquery over the same plan,
        // answering its companion (it runs once more; DataFusion keeps such subqueries as
        // expressions). The plan was rewritten already ([`subquery_scales`]), its
        // companions projected away above it.
        Expr::ScalarSubquery(sq) if sq.outer_ref_columns.is_empty() => {
            let plan = sq.subquery.as_ref().clone();
            let Some((q, f)) = plan
                .schema()
                .iter()
                .next()
                .map(|(q, f)| (q.cloned(), f.clone()))
            else {
                return Ok(None);
            };
            let c = Column::new(q, companion(f.name()));
            let plan = match plan {
                LogicalPlan::Projection(p) if p.input.schema().has_column(&c) => {
                    Arc::unwrap_or_clone(p.input)
                }
                plan => plan,
            };
            if !plan.schema().has_column(&c) {
                return Ok(None);
            }
            let scales = LogicalPlan::Projection(Projection::try_new(
                vec![Expr::Column(c)],
                Arc::new(plan),
            )?);
            Some(Expr::ScalarSubquery(datafusion::logical_expr::Subquery {
                subquery: Arc::new(scales),
                outer_ref_columns: vec![],
                spans: sq.spans.clone(),
            }))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Plus | Operator::Minus | Operator::Modulo => {
                let (l, r) = (scale_expr(left, schema)?, scale_expr(right, schema)?);
                if l.is_none() && r.is_none() {
                    None
                } else {
                    Some(larger(of(left)?, of(right)?))
                }
            }
            Operator::Multiply => {
                let (l, r) = (scale_expr(left, schema)?, scale_expr(right, schema)?);
                if l.is_none() && r.is_none() {
                    None
                } else {
                    Some(of(left)? + of(right)?)
                }
            }
            _ => None,
        },
        Expr::Case(c) => {
            let branches = c
                .when_then_expr
                .iter()
                .map(|(_, t)| t.as_ref())
                .chain(c.else_expr.as_deref());
            if !scales_vary(branches, schema)? {
                return Ok(None);
            }
            Some(Expr::Case(Case {
                expr: c.expr.clone(),
                when_then_expr: c
                    .when_then_expr
                    .iter()
                    .map(|(w, t)| Ok((w.clone(), Box::new(of(t)?))))
                    .collect::<Result<_>>()?,
                else_expr: c
                    .else_expr
                    .as_ref()
                    .map(|x| of(x).map(Box::new))
                    .transpose()?,
            }))
        }
        Expr::ScalarFunction(f) => match f.func.name() {
            "duet_display_scale" => Some(f.args[1].clone()),
            // No decimals (`round(x, n)` has the type of its n decimals).
            "trunc" | "round" | "ceil" | "floor" if f.args.len() == 1 => Some(int32(0)),
            // `round(x, n)` and `trunc(x, n)` of a numeric: n decimals, none for n < 0.
            "trunc" | "round"
                if f.args.len() == 2
                    && matches!(f.args[0].get_type(schema)?, DataType::Decimal128(..)) =>
            {
                let n = Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(f.args[1].clone()),
                    DataType::Int32,
                ));
                Some(larger(n, int32(0)))
            }
            // The sum of the operands' scales, as `*`.
            "numeric_mul" if f.args.len() == 2 => Some(of(&f.args[0])? + of(&f.args[1])?),
            "numeric_div" => Some(Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(ScalarUDF::new_from_impl(NumericDivScale::default())),
                f.args.clone(),
            ))),
            "int_neg" | "abs" | "duet_nullable" | "duet_typed" | "duet_plain"
            | "duet_single_value" | "nullif"
                if !f.args.is_empty() =>
            {
                scale_expr(&f.args[0], schema)?
            }
            // The scale of the first argument equal to the result (PostgreSQL keeps the
            // first of equal values).
            "greatest" | "least" => {
                if !scales_vary(f.args.iter(), schema)? {
                    return Ok(None);
                }
                let mut when_then = Vec::new();
                for a in &f.args {
                    when_then.push((Box::new(a.clone().eq(e.clone())), Box::new(of(a)?)));
                }
                Some(Expr::Case(Case {
                    expr: None,
                    when_then_expr: when_then,
                    else_expr: None,
                }))
            }
            "coalesce" => {
                if !scales_vary(f.args.iter(), schema)? {
                    return Ok(None);
                }
                // The scale of the first argument that is not NULL.
                let mut when_then = Vec::new();
                for a in &f.args {
                    when_then.push((
                        Box::new(Expr::IsNotNull(Box::new(a.clone()))),
                        Box::new(of(a)?),
                    ));
                }
                Some(Expr::Case(Case {
                    expr: None,
                    when_then_expr: when_then,
                    else_expr: None,
                }))
            }
            _ => None,
        },
        _ => None,
    })
}

/// Whether the values `choices` may answer (CASE branches, COALESCE arguments) differ in
/// display scale: one varies by row, or they were of different scales before being cast
/// to one type (each keeps its own).
fn scales_vary<'a>(choices: impl Iterator<Item = &'a Expr>, schema: &DFSchema) -> Result<bool> {
    let mut seen = None;
    for e in choices {
        if scale_expr(e, schema)?.is_some() {
            return Ok(true);
        }
        let own = e.get_type(schema).ok().and_then(|t| type_scale(&t));
        if *seen.get_or_insert(own) != own {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The larger of two scales (NULL if either is: so is the value).
fn larger(a: Expr, b: Expr) -> Expr {
    Expr::Case(Case {
        expr: None,
        when_then_expr: vec![(Box::new(a.clone().gt_eq(b.clone())), Box::new(a))],
        else_expr: Some(Box::new(b)),
    })
}

/// A numeric value as text with its display scale (`numeric_text(x, scale)`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct NumericText {
    signature: Signature,
}

impl Default for NumericText {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for NumericText {
    fn name(&self) -> &str {
        "numeric_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::{Decimal128Type, Int32Type};
        let (arrays, scalar) = arg_arrays(&args)?;
        let Some(values) = arrays[0].as_primitive_opt::<Decimal128Type>() else {
            return Err(DataFusionError::Plan("numeric_text takes a decimal".into()));
        };
        let scales = datafusion::arrow::compute::cast(&arrays[1], &DataType::Int32)?;
        let out =
            duet_common::numeric::numeric_texts(values, Some(scales.as_primitive::<Int32Type>()));
        columnar(Arc::new(out), scalar)
    }
}

/// The display scales of constants, kept from the optimizer's folding: in a projection or
/// a VALUES row, a constant quotient (`10 / 4.0`, 2.5000000000000000) and a decimal literal
/// cast to more decimals (`1.5` beside `2.25` in a CASE, a COALESCE or a UNION) become
/// `duet_display_scale(value, scale)`, which the optimizer does not fold (it is volatile)
/// and [`display_scale`] reads. The last analyzer rule but the schema rebuild.
#[derive(Debug, Default)]
pub struct ConstantDisplayScales;

impl AnalyzerRule for ConstantDisplayScales {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Projection(_)
            | LogicalPlan::Values(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Window(_) => {
                let constants = constant_row(&node);
                let projection = matches!(node, LogicalPlan::Projection(_));
                retype_node(node, &|e, schema| {
                    constant_scale(e, schema, &constants, projection)
                })
            }
            node => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_constant_display_scales"
    }
}

/// The columns of a projection's input that are constants of a projection there
/// (`SELECT 7 …` as a UNION branch, which the union's coercion casts above it), with their
/// expressions.
fn constant_row(node: &LogicalPlan) -> Vec<(Column, Expr)> {
    let LogicalPlan::Projection(p) = node else {
        return vec![];
    };
    let LogicalPlan::Projection(q) = p.input.as_ref() else {
        return vec![];
    };
    q.schema
        .columns()
        .into_iter()
        .zip(q.expr.iter().map(|e| e.clone().unalias()))
        .filter(|(_, e)| super::folding::is_constant(e))
        .collect()
}

fn scaled(value: Expr, scale: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::new_from_impl(DisplayScale::default())),
        vec![value, scale],
    ))
}

/// Whether `e` is a constant zero (through casts and kept scales).
fn zero(e: &Expr) -> bool {
    match e {
        Expr::Literal(v, _) => {
            !v.is_null() && ScalarValue::new_zero(&v.data_type()).is_ok_and(|z| &z == v)
        }
        Expr::Cast(c) => zero(&c.expr),
        Expr::ScalarFunction(f) if f.func.name() == "duet_display_scale" => zero(&f.args[0]),
        _ => false,
    }
}

/// Whether `e` is a constant once the display scales kept on its parts are set aside.
fn constant_value(e: &Expr) -> bool {
    e.clone()
        .transform_up(|x| match &x {
            Expr::ScalarFunction(f) if f.func.name() == "duet_display_scale" => {
                Ok(Transformed::yes(f.args[0].clone()))
            }
            _ => Ok(Transformed::no(x)),
        })
        .is_ok_and(|t| super::folding::is_constant(&t.data))
}

/// `e` with the scale folding would lose kept (`scaled`): a constant quotient, `round` or
/// `trunc` to a constant number of decimals (in a projection, of any value: the optimizer
/// folds `round(0 * count(NULL), 1)` once it knows the count), a cast to a decimal of a
/// constant, or of a column that is a constant of the node's input (`constants`, see
/// [`constant_row`]), and arithmetic, CASE and COALESCE over constants whose scale is not
/// their type's (`0.0 * coalesce(1.125, -0.5)` is `0.0000`).
fn constant_scale(
    e: Expr,
    schema: &DFSchema,
    constants: &[(Column, Expr)],
    projection: bool,
) -> Result<Transformed<Expr>> {
    match &e {
        Expr::ScalarFunction(f)
            if f.func.name() == "numeric_div"
                && f.args.len() == 2
                && f.args.iter().all(constant_value) =>
        {
            let mut args = f.args.clone();
            let scales = (
                display_scale(&f.args[0], schema)?,
                display_scale(&f.args[1], schema)?,
            );
            if scales.0.is_some() || scales.1.is_some() {
                args.push(scale_or_type(scales.0, &f.args[0], schema)?);
                args.push(scale_or_type(scales.1, &f.args[1], schema)?);
            }
            let scale = Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(ScalarUDF::new_from_impl(NumericDivScale::default())),
                args.clone(),
            ));
            let value = Expr::ScalarFunction(ScalarFunction::new_udf(f.func.clone(), args));
            Ok(Transformed::yes(scaled(value, scale)))
        }
        // `round(x, n)` and `trunc(x, n)` have n decimals, which folding would lose.
        Expr::ScalarFunction(f)
            if matches!(f.func.name(), "round" | "trunc")
                && f.args.len() == 2
                && constant_value(&f.args[1])
                && (projection || constant_value(&f.args[0]))
                && matches!(f.args[0].get_type(schema)?, DataType::Decimal128(..)) =>
        {
            let Some(scale) = scale_expr(&e, schema)? else {
                return Ok(Transformed::no(e));
            };
            Ok(Transformed::yes(scaled(e, scale)))
        }
        // DataFusion folds `0.0 * x` (x never NULL) to the zero literal, of the literal's
        // scale; PostgreSQL's product has both operands' (`0.0 * 1.50` is `0.000`).
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Multiply,
            right,
        }) if (zero(left) || zero(right))
            && matches!(e.get_type(schema), Ok(DataType::Decimal128(..))) =>
        {
            let scale = scale_or_type(scale_expr(&e, schema)?, &e, schema)?;
            Ok(Transformed::yes(scaled(e, scale)))
        }
        Expr::BinaryExpr(_) | Expr::Case(_) | Expr::Negative(_) | Expr::ScalarFunction(_)
            if !matches!(&e, Expr::ScalarFunction(f) if f.func.name() == "duet_display_scale")
                && matches!(e.get_type(schema), Ok(DataType::Decimal128(..)))
                && constant_value(&e) =>
        {
            match display_scale(&e, schema)? {
                Some(scale) => Ok(Transformed::yes(scaled(e, scale))),
                None => Ok(Transformed::no(e)),
            }
        }
        Expr::Cast(c)
            if !c
                .field
                .metadata()
                .contains_key(duet_common::batch::PG_TYPMOD) =>
        {
            let DataType::Decimal128(_, to) = c.field.data_type() else {
                return Ok(Transformed::no(e));
            };
            // The constant the cast reads: its input, or what a column of it stands for.
            let constant = match c.expr.as_ref() {
                Expr::Column(col) => constants.iter().find(|(k, _)| k == col).map(|(_, v)| v),
                x if super::folding::is_constant(x) => Some(x),
                _ => None,
            };
            let Some(constant) =
                constant.filter(|v| !matches!(v, Expr::Literal(v, _) if v.is_null()))
            else {
                return Ok(Transformed::no(e));
            };
            let from = match c.expr.get_type(schema)? {
                DataType::Decimal128(_, from) => from,
                t if is_int(&t) || t.is_unsigned_integer() => 0,
                DataType::Float32
                | DataType::Float64
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View => {
                    let scale = input_scale(constant.clone());
                    return Ok(Transformed::yes(scaled(e, scale)));
                }
                _ => return Ok(Transformed::no(e)),
            };
            if from == *to {
                return Ok(Transformed::no(e));
            }
            Ok(Transformed::yes(scaled(e, int32(from as i32))))
        }
        _ => Ok(Transformed::no(e)),
    }
}

/// `duet_display_scale(value, scale)`: the value, whose display scale is `scale`.
/// Volatile so that constant folding keeps it (see [`ConstantDisplayScales`]).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct DisplayScale {
    signature: Signature,
}

impl Default for DisplayScale {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for DisplayScale {
    fn name(&self) -> &str {
        "duet_display_scale"
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(args[0].schema_name().to_string())
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        Ok(args[0].to_string())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args[0].clone())
    }
}

/// `duet_input_scale(x)`: the display scale PostgreSQL gives the float or text `x`
/// converted to numeric (`numeric::float_scale`: 0.1 has 1 decimal, however a decimal type
/// holds it; text its written decimals, `types::input_scale`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct InputScale {
    signature: Signature,
}

impl Default for InputScale {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// The display scale of the float or text `e` converted to numeric.
fn input_scale(e: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::new_from_impl(InputScale::default())),
        vec![e],
    ))
}

impl ScalarUDFImpl for InputScale {
    fn name(&self) -> &str {
        "duet_input_scale"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values = args.args[0].to_array(args.number_rows)?;
        let out = crate::types::text_or_float_scales(&values).ok_or_else(|| {
            DataFusionError::Internal(format!("duet_input_scale of {}", values.data_type()))
        })?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
