//! Subqueries DataFusion could not decorrelate, evaluated as PostgreSQL's executor does:
//! once per outer row (a SubPlan). DataFusion turns a correlated subquery into a join when
//! its shape allows; where it does not (a correlation by `<>` or `<`, an `EXISTS` or
//! `IN` in a select list, a subquery under `OR`, with `LIMIT`), the expression stayed a
//! subquery and the physical planner refused it ("Physical plan does not support logical
//! expression ScalarSubquery"). psql's `\d TABLE` sends two such queries.
//!
//! The last optimizer rule, [`CorrelatedSubqueries`], replaces each subquery left in a
//! projection or a filter by `duet_subquery(outer columns…)`, an asynchronous function that
//! holds the subquery's plan. For each distinct combination of the outer values in a batch
//! it binds them into the plan as literals, plans that (it may decorrelate now, or be
//! evaluated the same way one level down), runs it and answers from its rows: a scalar
//! subquery's one value (NULL for no row, 21000 for two), `EXISTS`'s whether there is a
//! row, `x IN (…)` by SQL's three-valued rules. The subquery's tables read the statement's
//! snapshot: the read view in the session's slot when the statement was optimized.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Weak;

use datafusion::arrow::array::{new_empty_array, Array};
use datafusion::arrow::datatypes::FieldRef;
use datafusion::common::{Column, DFSchema};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::async_udf::AsyncScalarUDF;
use datafusion::logical_expr::expr::{Exists, InSubquery};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{lit, LogicalPlanBuilder, Subquery};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use duet_router::provider::RowTableProvider;
use duet_router::ViewSlot;
use parking_lot::RwLock;

use super::*;

/// What a subquery expression asks of the subquery's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `(SELECT x …)`: its one value.
    Scalar,
    /// `[NOT] EXISTS (…)`.
    Exists { negated: bool },
    /// `probe [NOT] IN (SELECT x …)`; the probe is the function's first argument.
    In { negated: bool },
}

/// Replaces the subqueries DataFusion left in projections and filters by
/// [`SubqueryFunction`] (see the module's documentation).
///
/// The rule runs twice: first, before DataFusion's decorrelation, for the subqueries that
/// read the outer row inside a relation of their FROM (`(SELECT count(*) FROM
/// unnest(t.a))`, psql's `\d+`) or from a subquery nested in them: DataFusion judges
/// correlation by filters only and joined the first as if it were uncorrelated, leaving
/// the outer reference where no plan can execute it, and turned the second's reference
/// into a column of the middle level (42P01). Then, last, for whatever decorrelation left.
#[derive(Debug)]
pub struct CorrelatedSubqueries {
    state: Weak<RwLock<SessionState>>,
    view: ViewSlot,
    early: bool,
}

impl CorrelatedSubqueries {
    pub fn new(state: Weak<RwLock<SessionState>>, view: ViewSlot) -> Self {
        Self {
            state,
            view,
            early: false,
        }
    }

    /// The instance that runs before decorrelation (see above).
    pub fn early(state: Weak<RwLock<SessionState>>, view: ViewSlot) -> Self {
        Self {
            state,
            view,
            early: true,
        }
    }

    /// `e`, if it is a subquery this instance evaluates per outer row, as
    /// `duet_subquery(…)`: its outer columns must be columns of `schema`.
    fn replace(&self, e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let subquery = match &e {
            Expr::ScalarSubquery(sq) => sq,
            Expr::Exists(Exists { subquery, .. })
            | Expr::InSubquery(InSubquery { subquery, .. }) => subquery,
            _ => return Ok(Transformed::no(e)),
        };
        let resolvable = subquery
            .outer_ref_columns
            .iter()
            .all(|r| matches!(r, Expr::OuterReferenceColumn(_, c) if schema.has_column(c)));
        if !resolvable {
            return Ok(Transformed::no(e));
        }
        let outer = outer_columns(&subquery.subquery, schema)?;
        let take = if self.early {
            // This row read in a relation of the subquery's FROM, or by a subquery nested
            // in it: DataFusion's decorrelation joins the first as if uncorrelated and
            // turned the second's reference into a column of the wrong level.
            reads_outer_in_from(&subquery.subquery)
                || reads_outer_in_recursive_query(&subquery.subquery)
                || outer.iter().any(|(_, _, nested)| *nested)
        } else {
            // An uncorrelated scalar subquery is DataFusion's to run. One DataFusion still
            // lists outer references for is correlated to it, even where its optimizer
            // emptied the plan of them (psql's `\d TABLE` trigger query), and fails.
            !outer.is_empty()
                || !subquery.outer_ref_columns.is_empty()
                || !matches!(e, Expr::ScalarSubquery(_))
        };
        if !take {
            return Ok(Transformed::no(e));
        }
        let outer: Vec<(Column, FieldRef)> = outer.into_iter().map(|(c, f, _)| (c, f)).collect();
        let plan = subquery.subquery.clone();
        let (kind, probe) = match e {
            Expr::Exists(Exists { negated, .. }) => (Kind::Exists { negated }, None),
            Expr::InSubquery(InSubquery { expr, negated, .. }) => {
                (Kind::In { negated }, Some(*expr))
            }
            _ => (Kind::Scalar, None),
        };
        let mut args: Vec<Expr> = probe.into_iter().collect();
        args.extend(outer.iter().map(|(c, _)| Expr::Column(c.clone())));
        // The guard (see [`guard_case_branches`]): every row runs (1), unless a CASE says.
        args.push(lit(1i32));
        let f = SubqueryFunction::new(
            plan,
            kind,
            outer,
            self.state.clone(),
            self.view.lock().clone(),
        );
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(
                Arc::new(AsyncScalarUDF::new(Arc::new(f)).into_scalar_udf()),
                args,
            ),
        )))
    }
}

/// The columns of `schema` that `plan` reads as outer references, with whether a subquery
/// nested in `plan` reads it (all are bound together).
fn outer_columns(plan: &LogicalPlan, schema: &DFSchema) -> Result<Vec<(Column, FieldRef, bool)>> {
    let mut out: Vec<(Column, FieldRef, bool)> = vec![];
    map_outer_refs(plan.clone(), &[], &mut |f, c, depth| {
        if schema.has_column(&c) {
            match out.iter_mut().find(|(k, _, _)| *k == c) {
                Some(found) => found.2 |= depth > 0,
                None => out.push((c.clone(), f.clone(), depth > 0)),
            }
        }
        Ok(Transformed::no(Expr::OuterReferenceColumn(f, c)))
    })?;
    Ok(out)
}

/// `plan` with `f` applied to each outer reference that may read the row of the query
/// `plan` is a subquery of, with its depth: in `plan` itself (0), or in a subquery nested
/// in it, where a column of a level in between (the row of the node holding that
/// subquery, as SQL scopes names) shadows it. Nested subqueries then list the outer
/// references left, and a FROM relation left with none is an ordinary one.
fn map_outer_refs(
    plan: LogicalPlan,
    between: &[Arc<DFSchema>],
    f: &mut dyn FnMut(FieldRef, Column, usize) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    plan.transform_up(|node| {
        let node = match node {
            LogicalPlan::Subquery(s) if s.subquery.all_out_ref_exprs().is_empty() => {
                Arc::unwrap_or_clone(s.subquery)
            }
            other => other,
        };
        let holds_subquery = node
            .expressions()
            .iter()
            .any(|e| e.exists(|x| Ok(is_subquery(x))).unwrap_or(false));
        let scopes: Vec<Arc<DFSchema>> = if holds_subquery {
            let mut s = between.to_vec();
            s.push(Arc::new(merge_schema(&node.inputs())));
            s
        } else {
            vec![]
        };
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let name = names.save(&e);
            e.transform_up(|x| {
                Ok(match x {
                    Expr::OuterReferenceColumn(fld, c)
                        if !between.iter().any(|s| s.has_column(&c)) =>
                    {
                        f(fld, c, between.len())?
                    }
                    Expr::ScalarSubquery(sq) => {
                        Transformed::yes(Expr::ScalarSubquery(nested(sq, &scopes, f)?))
                    }
                    Expr::Exists(Exists { subquery, negated }) => {
                        Transformed::yes(Expr::Exists(Exists {
                            subquery: nested(subquery, &scopes, f)?,
                            negated,
                        }))
                    }
                    Expr::InSubquery(mut i) => {
                        i.subquery = nested(i.subquery, &scopes, f)?;
                        Transformed::yes(Expr::InSubquery(i))
                    }
                    other => Transformed::no(other),
                })
            })
            .map(|t| t.update_data(|e| name.restore(e)))
        })
    })
}

/// [`map_outer_refs`] on a subquery nested one level further, `scopes` the levels in
/// between; the subquery then lists the outer references left in it.
fn nested(
    sq: Subquery,
    scopes: &[Arc<DFSchema>],
    f: &mut dyn FnMut(FieldRef, Column, usize) -> Result<Transformed<Expr>>,
) -> Result<Subquery> {
    let plan = map_outer_refs(Arc::unwrap_or_clone(sq.subquery), scopes, f)?.data;
    let outer_ref_columns = plan.all_out_ref_exprs();
    Ok(Subquery {
        subquery: Arc::new(plan),
        outer_ref_columns,
        spans: sq.spans,
    })
}

/// Whether a relation in `plan`'s FROM (a derived table, a function of the outer row)
/// reads an outer column.
fn reads_outer_in_from(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(matches!(node, LogicalPlan::Subquery(s) if !s.subquery.all_out_ref_exprs().is_empty()))
    })
    .unwrap_or(false)
}

/// Whether a recursive query in `plan` reads an outer column (asyncpg's lookup of a
/// domain's base type). DataFusion cannot decorrelate it, and leaves every other subquery
/// of the same expression list correlated too, each then run per row.
fn reads_outer_in_recursive_query(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(matches!(node, LogicalPlan::RecursiveQuery(_)) && !node.all_out_ref_exprs().is_empty())
    })
    .unwrap_or(false)
}

impl OptimizerRule for CorrelatedSubqueries {
    fn name(&self) -> &str {
        if self.early {
            "duet_lateral_subqueries"
        } else {
            "duet_correlated_subqueries"
        }
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        // The outer plan only: a subquery's own plan is optimized (with this rule) when it
        // runs, its outer values bound.
        plan.transform_up(|node| {
            if !matches!(node, LogicalPlan::Projection(_) | LogicalPlan::Filter(_)) {
                return Ok(Transformed::no(node));
            }
            let has_subquery = node
                .expressions()
                .iter()
                .any(|e| e.exists(|x| Ok(is_subquery(x))).unwrap_or(false));
            if !has_subquery {
                return Ok(Transformed::no(node));
            }
            super::retype_node(node, &|e, schema| self.replace(e, schema))?
                .transform_data(|node| super::retype_node(node, &|e, _| Ok(guard_case_branches(e))))
        })
    }
}

/// Whether `f` is a call of a [`SubqueryFunction`].
fn is_subquery_call(f: &ScalarFunction) -> bool {
    f.func.name() == "duet_subquery"
}

/// A CASE evaluates a branch's result only for the rows that take the branch, as
/// PostgreSQL's executor does; a subquery run per row would otherwise run for every row
/// (asyncpg's type lookup has three under `CASE WHEN t.typtype = 'c'` and took a minute
/// over all of pg_type). Each `duet_subquery` in a branch's result gets the branch's
/// condition as a guard: rows that do not take the branch are not run, and answer NULL,
/// which the CASE never returns.
fn guard_case_branches(e: Expr) -> Transformed<Expr> {
    let Expr::Case(case) = e else {
        return Transformed::no(e);
    };
    // A condition that holds a subquery stays unguarded (a guard is evaluated beside the
    // asynchronous functions, not after them), and so does a volatile one (the guard would
    // evaluate it a second time, and might disagree with the CASE).
    let unsuitable = |x: &Expr| {
        x.exists(|y| {
            Ok(is_subquery(y) || matches!(y, Expr::ScalarFunction(f) if is_subquery_call(f)))
        })
        .unwrap_or(true)
            || x.is_volatile()
    };
    let conditions: Vec<&Expr> = case
        .when_then_expr
        .iter()
        .map(|(w, _)| w.as_ref())
        .collect();
    if conditions.iter().any(|c| unsuitable(c)) || case.expr.as_deref().is_some_and(unsuitable) {
        return Transformed::no(Expr::Case(case));
    }
    // The guard of the branch `taken` (the ELSE for `None`) is itself a CASE over the same
    // conditions, so each is evaluated only for the rows the CASE evaluates it for (`WHEN x
    // = 0 THEN … WHEN 100 / x > 1 THEN …` divides no zero). It answers 1 (run) or 0, not a
    // boolean: the simplifier turns a CASE of booleans into ANDs and ORs, which evaluate
    // every condition on every row.
    let guard_of = |taken: Option<usize>| {
        Expr::Case(datafusion::logical_expr::Case {
            expr: case.expr.clone(),
            when_then_expr: conditions
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        Box::new((*c).clone()),
                        Box::new(lit(i32::from(Some(i) == taken))),
                    )
                })
                .collect(),
            else_expr: Some(Box::new(lit(i32::from(taken.is_none())))),
        })
    };
    let mut changed = false;
    let mut guard = |result: Expr, condition: Expr| {
        let t = result
            .transform_up(|x| match x {
                Expr::ScalarFunction(mut f) if is_subquery_call(&f) => {
                    let last = f.args.pop().expect("a guard argument");
                    f.args.push(match last {
                        Expr::Literal(ScalarValue::Int32(Some(1)), _) => condition.clone(),
                        // Guarded by this CASE already (the rule meets a CASE twice).
                        last if last == condition => last,
                        // An inner CASE's guard, evaluated where this one runs.
                        last => Expr::Case(datafusion::logical_expr::Case {
                            expr: None,
                            when_then_expr: vec![(
                                Box::new(condition.clone().eq(lit(1i32))),
                                Box::new(last),
                            )],
                            else_expr: Some(Box::new(lit(0i32))),
                        }),
                    });
                    Ok(Transformed::yes(Expr::ScalarFunction(f)))
                }
                other => Ok(Transformed::no(other)),
            })
            .expect("the rewrite does not fail");
        changed |= t.transformed;
        t.data
    };
    let guards: Vec<Expr> = (0..conditions.len()).map(|i| guard_of(Some(i))).collect();
    let else_guard = guard_of(None);
    let mut case = case;
    for (i, (_, then)) in case.when_then_expr.iter_mut().enumerate() {
        **then = guard(then.as_ref().clone(), guards[i].clone());
    }
    if let Some(otherwise) = case.else_expr.as_mut() {
        **otherwise = guard(otherwise.as_ref().clone(), else_guard);
    }
    Transformed::new_transformed(Expr::Case(case), changed)
}

fn is_subquery(e: &Expr) -> bool {
    matches!(
        e,
        Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
    )
}

/// `duet_subquery(probe?, outer columns…, guard)`: one subquery evaluated per distinct
/// outer row (see the module), for the rows whose guard is true.
#[derive(Debug)]
pub struct SubqueryFunction {
    plan: Arc<LogicalPlan>,
    kind: Kind,
    /// The outer columns the plan reads, in the order of the arguments after the probe.
    outer: Vec<(Column, FieldRef)>,
    state: Weak<RwLock<SessionState>>,
    /// The statement's read view: the one in the session's slot when it was optimized
    /// (`None` for a subquery nested in one run per row, whose tables are pinned to it
    /// already). The subquery's scans read at it (see [`SubqueryFunction::bind`]).
    view: Option<duet_rowstore::ReadView>,
    signature: Signature,
}

impl SubqueryFunction {
    fn new(
        plan: Arc<LogicalPlan>,
        kind: Kind,
        outer: Vec<(Column, FieldRef)>,
        state: Weak<RwLock<SessionState>>,
        view: Option<duet_rowstore::ReadView>,
    ) -> Self {
        Self {
            plan,
            kind,
            outer,
            state,
            view,
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::VariadicAny,
                    datafusion::logical_expr::TypeSignature::Nullary,
                ],
                Volatility::Volatile,
            ),
        }
    }

    /// The subquery with `values` in place of its outer columns (see [`map_outer_refs`]).
    fn bind(&self, values: &[ScalarValue]) -> Result<LogicalPlan> {
        let plan = map_outer_refs(self.plan.as_ref().clone(), &[], &mut |f, c, _| {
            Ok(match self.outer.iter().position(|(k, _)| *k == c) {
                Some(i) => Transformed::yes(Expr::Literal(values[i].cast_to(f.data_type())?, None)),
                None => Transformed::no(Expr::OuterReferenceColumn(f, c)),
            })
        })?
        .data;
        // Tables read at the statement's snapshot, not through the session's slot: that
        // is empty by the time a result streams, and a sort above starts reading while the
        // statement is still ending. Nested subqueries' tables too: a subquery replaced
        // while this one is optimized (per row, the slot empty) finds them pinned already.
        let plan = match &self.view {
            Some(view) => {
                plan.transform_up_with_subqueries(|node| match node {
                    LogicalPlan::TableScan(mut scan) => {
                        let provider = datafusion::datasource::source_as_provider(&scan.source)?;
                        match provider.downcast_ref::<RowTableProvider>() {
                            Some(row) => {
                                scan.source = datafusion::datasource::provider_as_source(Arc::new(
                                    row.at_view(view.clone()),
                                ));
                                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
                            }
                            None => Ok(Transformed::no(LogicalPlan::TableScan(scan))),
                        }
                    }
                    other => Ok(Transformed::no(other)),
                })?
                .data
            }
            None => plan,
        };
        let limit = match self.kind {
            Kind::Scalar => Some(2),
            Kind::Exists { .. } => Some(1),
            Kind::In { .. } => None,
        };
        match limit {
            Some(n) => LogicalPlanBuilder::from(plan).limit(0, Some(n))?.build(),
            None => Ok(plan),
        }
    }

    /// The values of the subquery's first column for the outer row `values`.
    async fn rows(&self, state: &SessionState, values: &[ScalarValue]) -> Result<Vec<ScalarValue>> {
        let plan = self.bind(values)?;
        let optimized = state.optimizer().optimize(plan, state, |_, _| {})?;
        // Casts of numerics to text inside it print the values' scales, as in any query
        // (its first column, the answer, stays first).
        let optimized = super::with_display_scales(optimized)?;
        let physical = state
            .query_planner()
            .create_physical_plan(&optimized, state)
            .await?;
        let batches = datafusion::physical_plan::collect(physical, state.task_ctx()).await?;
        let mut out = vec![];
        for b in batches {
            let Some(col) = b.columns().first() else {
                // EXISTS over a plan with no columns: one entry per row.
                out.extend(std::iter::repeat_n(ScalarValue::Null, b.num_rows()));
                continue;
            };
            for i in 0..col.len() {
                out.push(ScalarValue::try_from_array(col, i)?);
            }
        }
        Ok(out)
    }
}

impl PartialEq for SubqueryFunction {
    fn eq(&self, other: &Self) -> bool {
        self.plan == other.plan && self.kind == other.kind && self.outer == other.outer
    }
}

impl Eq for SubqueryFunction {}

impl Hash for SubqueryFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.plan.hash(state);
        self.kind.hash(state);
    }
}

impl ScalarUDFImpl for SubqueryFunction {
    fn name(&self) -> &str {
        "duet_subquery"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Scalar => self.plan.schema().field(0).data_type().clone(),
            _ => DataType::Boolean,
        })
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::Internal(
            "duet_subquery runs only asynchronously".into(),
        ))
    }
}

#[async_trait::async_trait]
impl AsyncScalarUDFImpl for SubqueryFunction {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let mut arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        // The last argument is the guard: a row where it is not 1 is not run.
        let guard = arrays.pop();
        let guard = guard.as_ref().and_then(|g| {
            g.as_any()
                .downcast_ref::<datafusion::arrow::array::Int32Array>()
        });
        let unused = ScalarValue::try_from(&self.return_type(&[])?)?;
        let state = self
            .state
            .upgrade()
            .ok_or_else(|| DataFusionError::Execution("the session has ended".into()))?
            .read()
            .clone();
        let (probe, outer) = match self.kind {
            Kind::In { .. } => (arrays.first(), &arrays[1.min(arrays.len())..]),
            _ => (None, &arrays[..]),
        };
        let mut cache: HashMap<Vec<ScalarValue>, Arc<Vec<ScalarValue>>> = HashMap::new();
        let mut out: Vec<ScalarValue> = Vec::with_capacity(rows);
        for r in 0..rows {
            if guard.is_some_and(|g| !(g.is_valid(r) && g.value(r) == 1)) {
                out.push(unused.clone());
                continue;
            }
            let key = outer
                .iter()
                .map(|a| ScalarValue::try_from_array(a, r))
                .collect::<Result<Vec<_>>>()?;
            let found = match cache.get(&key) {
                Some(v) => v.clone(),
                None => {
                    let v = Arc::new(self.rows(&state, &key).await?);
                    cache.insert(key, v.clone());
                    v
                }
            };
            out.push(match self.kind {
                Kind::Scalar => match found.len() {
                    0 => ScalarValue::try_from(self.plan.schema().field(0).data_type())?,
                    1 => found[0].clone(),
                    _ => {
                        return Err(DataFusionError::Execution(
                            "Scalar subquery returned more than one row".into(),
                        ))
                    }
                },
                Kind::Exists { negated } => ScalarValue::Boolean(Some(found.is_empty() == negated)),
                Kind::In { negated } => {
                    let probe = match probe {
                        Some(p) => ScalarValue::try_from_array(p, r)?,
                        None => ScalarValue::Null,
                    };
                    let answer = in_rows(&probe, &found);
                    ScalarValue::Boolean(answer.map(|a| a != negated))
                }
            });
        }
        if out.is_empty() {
            let t = self.return_type(&[])?;
            return Ok(ColumnarValue::Array(new_empty_array(&t)));
        }
        let array = ScalarValue::iter_to_array(out)?;
        // A subquery over no table answers NULL typed as Null: give it the declared type.
        let t = self.return_type(&[])?;
        let array = if array.data_type() != &t {
            datafusion::arrow::compute::cast(&array, &t)?
        } else {
            array
        };
        Ok(ColumnarValue::Array(array))
    }
}

/// `probe IN (rows)` by SQL's rules: true on an equal row; otherwise NULL if the probe or
/// any row is NULL (and there are rows), false if not.
fn in_rows(probe: &ScalarValue, rows: &[ScalarValue]) -> Option<bool> {
    if rows.is_empty() {
        return Some(false);
    }
    if probe.is_null() {
        return None;
    }
    let mut saw_null = false;
    for v in rows {
        if v.is_null() {
            saw_null = true;
        } else if v == probe || v.cast_to(&probe.data_type()).is_ok_and(|v| v == *probe) {
            return Some(true);
        }
    }
    (!saw_null).then_some(false)
}
