//! PostgreSQL types that one Arrow type stands for (`oid` and `integer` are both `Int32`),
//! kept apart where results are built from them, so RowDescription says what PostgreSQL
//! says. A field names its PostgreSQL type in metadata (`PG_DECLARED_TYPE`, or
//! datafusion-pg-catalog's `pg.oid_alias` on catalog columns); DataFusion keeps a field's
//! metadata through columns, aliases and casts, and drops it in aggregates and CASE:
//!
//! - [`PgAggregate`]: `array_agg` of `oid` values is `oid[]`, as in PostgreSQL (and `avg`
//!   takes an interval, which [`super::NumericAverages`] divides as PostgreSQL does);
//! - [`CaseDeclaredTypes`]: a CASE whose results all have one declared type has it.
//!
//! asyncpg decodes `oid[]` with a built-in codec and has to look every other array type up
//! with a query whose `attrtypoids` column is `array_agg(atttypid)` under a CASE: described
//! as `int4[]`, that lookup needed itself, and asyncpg recursed until it failed.

use std::collections::BTreeMap;

use datafusion::common::metadata::FieldMetadata;
use std::fmt::Debug;

use datafusion::arrow::datatypes::{Field, FieldRef};
use datafusion::logical_expr::expr::{
    AggregateFunction, AggregateFunctionParams, Alias, WindowFunctionParams,
};
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, ReversedUDAF,
    SetMonotonicity, StatisticsArgs,
};

use super::*;
use duet_common::batch::PG_DECLARED_TYPE;

/// datafusion-pg-catalog's metadata key on its `oid` and `reg*` columns.
const OID_ALIAS: &str = datafusion_pg_catalog::pg_catalog::oid_field::OID_ALIAS_KEY;

/// The PostgreSQL type `field` declares, if it declares one.
fn declared_type(field: &Field) -> Option<&str> {
    let m = field.metadata();
    m.get(PG_DECLARED_TYPE)
        .or_else(|| m.get(OID_ALIAS))
        .map(String::as_str)
}

/// DataFusion's `array_agg` and `avg`, wrapped: `array_agg`'s result is `oid[]` when it
/// aggregates `oid` values; `avg` also takes an `interval` (its own signature), which
/// [`super::NumericAverages`] rewrites to a sum and a count before anything runs it — an
/// interval average it left (one with ORDER BY, or under grouping sets) is refused. The
/// rest is DataFusion's.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgAggregate {
    inner: Arc<AggregateUDF>,
    /// `avg`'s signature with intervals; `None`: the inner one.
    signature: Option<Signature>,
}

impl PgAggregate {
    /// The `array_agg` to register in place of DataFusion's.
    pub fn udaf() -> AggregateUDF {
        Self::wrap(datafusion::functions_aggregate::array_agg::array_agg_udaf())
    }

    /// The `avg` to register in place of DataFusion's.
    pub fn avg() -> AggregateUDF {
        use datafusion::logical_expr::TypeSignature;
        let inner = datafusion::functions_aggregate::average::avg_udaf();
        let interval = TypeSignature::Exact(vec![DataType::Interval(
            datafusion::arrow::datatypes::IntervalUnit::MonthDayNano,
        )]);
        let forms = match &inner.signature().type_signature {
            TypeSignature::OneOf(forms) => forms.iter().cloned().chain([interval]).collect(),
            other => vec![other.clone(), interval],
        };
        let signature = Signature::one_of(forms, inner.signature().volatility);
        AggregateUDF::new_from_impl(Self {
            inner,
            signature: Some(signature),
        })
    }

    fn wrap(inner: Arc<AggregateUDF>) -> AggregateUDF {
        AggregateUDF::new_from_impl(Self {
            inner,
            signature: None,
        })
    }

    fn wrap_impl(inner: Arc<dyn AggregateUDFImpl>) -> Arc<dyn AggregateUDFImpl> {
        Arc::new(Self {
            inner: Arc::new(AggregateUDF::new_from_shared_impl(inner)),
            signature: None,
        })
    }

    fn imp(&self) -> &dyn AggregateUDFImpl {
        self.inner.inner().as_ref()
    }

    /// Whether this is `avg` of an interval (which DataFusion cannot compute).
    fn interval_average<'a>(&self, mut types: impl Iterator<Item = &'a DataType>) -> bool {
        self.signature.is_some() && types.any(|t| matches!(t, DataType::Interval(_)))
    }

    fn refuse_interval_average() -> DataFusionError {
        DataFusionError::NotImplemented(
            "avg of an interval with ORDER BY or under grouping sets".into(),
        )
    }
}

#[warn(clippy::missing_trait_methods)]
impl AggregateUDFImpl for PgAggregate {
    fn name(&self) -> &str {
        self.imp().name()
    }

    fn aliases(&self) -> &[String] {
        self.imp().aliases()
    }

    fn signature(&self) -> &Signature {
        self.signature
            .as_ref()
            .unwrap_or_else(|| self.imp().signature())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if self.interval_average(arg_types.iter()) {
            return Ok(arg_types[0].clone());
        }
        self.imp().return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        if self.interval_average(arg_fields.iter().map(|f| f.data_type())) {
            return Ok(Arc::new(Field::new(
                self.name(),
                arg_fields[0].data_type().clone(),
                true,
            )));
        }
        let field = self.imp().return_field(arg_fields)?;
        // datafusion-pg-catalog tags some catalog columns that are `oid` in PostgreSQL
        // (`pg_attribute.atttypid`, `attrelid`) with the alias they resolve names by
        // (`regtype`, `regclass`); their aggregate is `oid[]` in PostgreSQL.
        let oids = arg_fields.first().is_some_and(|f| {
            declared_type(f) == Some("oid")
                || f.metadata()
                    .get(OID_ALIAS)
                    .is_some_and(|k| k.starts_with("reg"))
        });
        if !oids {
            return Ok(field);
        }
        let mut metadata = field.metadata().clone();
        metadata.insert(PG_DECLARED_TYPE.to_string(), "oid[]".to_string());
        Ok(Arc::new(field.as_ref().clone().with_metadata(metadata)))
    }

    fn is_nullable(&self) -> bool {
        self.imp().is_nullable()
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if self.interval_average(acc_args.expr_fields.iter().map(|f| f.data_type())) {
            return Err(Self::refuse_interval_average());
        }
        self.imp().accumulator(acc_args)
    }

    fn schema_name(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.imp().schema_name(params)
    }

    fn human_display(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.imp().human_display(params)
    }

    fn window_function_schema_name(&self, params: &WindowFunctionParams) -> Result<String> {
        self.imp().window_function_schema_name(params)
    }

    fn display_name(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.imp().display_name(params)
    }

    fn window_function_display_name(&self, params: &WindowFunctionParams) -> Result<String> {
        self.imp().window_function_display_name(params)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if self.interval_average(args.input_fields.iter().map(|f| f.data_type())) {
            return Err(Self::refuse_interval_average());
        }
        self.imp().state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !self.interval_average(args.expr_fields.iter().map(|f| f.data_type()))
            && self.imp().groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.imp().create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.imp().create_sliding_accumulator(args)
    }

    fn with_beneficial_ordering(
        self: Arc<Self>,
        beneficial_ordering: bool,
    ) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        Ok(Arc::clone(self.inner.inner())
            .with_beneficial_ordering(beneficial_ordering)?
            .map(Self::wrap_impl))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.imp().order_sensitivity()
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        self.imp().simplify()
    }

    fn simplify_expr_op_literal(
        &self,
        agg_function: &AggregateFunction,
        arg: &Expr,
        op: Operator,
        lit: &Expr,
        arg_is_left: bool,
    ) -> Result<Option<Expr>> {
        self.imp()
            .simplify_expr_op_literal(agg_function, arg, op, lit, arg_is_left)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        match self.imp().reverse_expr() {
            ReversedUDAF::Reversed(udf) => ReversedUDAF::Reversed(Arc::new(Self::wrap(udf))),
            other => other,
        }
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.imp().coerce_types(arg_types)
    }

    fn is_descending(&self) -> Option<bool> {
        self.imp().is_descending()
    }

    fn value_from_stats(&self, statistics_args: &StatisticsArgs) -> Option<ScalarValue> {
        self.imp().value_from_stats(statistics_args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.imp().default_value(data_type)
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.imp().supports_null_handling_clause()
    }

    fn supports_within_group_clause(&self) -> bool {
        self.imp().supports_within_group_clause()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.imp().set_monotonicity(data_type)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.imp().documentation()
    }
}

/// `e` without its alias.
fn unaliased(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
        e => e,
    }
}

/// A projected CASE whose results (NULL aside) all declare one PostgreSQL type, in the same
/// metadata, reports that type, as PostgreSQL's CASE has its branches' common type and
/// typmod. The metadata goes on the CASE's alias (its output name stays).
#[derive(Debug, Default)]
pub struct CaseDeclaredTypes;

/// `NULL`, or `NULL` cast to another type (as type coercion leaves a CASE's `ELSE NULL`).
fn is_null_literal(e: &Expr) -> bool {
    match e {
        Expr::Literal(v, _) => v.is_null(),
        Expr::Cast(c) => is_null_literal(&c.expr),
        _ => false,
    }
}

/// The metadata every non-NULL result of `case` declares, if they agree on one.
fn common_declared(
    case: &datafusion::logical_expr::Case,
    schema: &datafusion::common::DFSchema,
) -> Option<BTreeMap<String, String>> {
    let mut results = case
        .when_then_expr
        .iter()
        .map(|(_, then)| then.as_ref())
        .chain(case.else_expr.as_deref())
        .filter(|e| !is_null_literal(e));
    let first = results.next()?.to_field(schema).ok()?.1;
    declared_type(&first)?;
    let metadata: BTreeMap<String, String> = first
        .metadata()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for e in results {
        let f = e.to_field(schema).ok()?.1;
        let same = f.metadata().len() == metadata.len()
            && f.metadata().iter().all(|(k, v)| metadata.get(k) == Some(v));
        if !same {
            return None;
        }
    }
    Some(metadata)
}

impl AnalyzerRule for CaseDeclaredTypes {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Projection(p) = &node else {
                return Ok(Transformed::no(node));
            };
            if !p.expr.iter().any(|e| matches!(unaliased(e), Expr::Case(_))) {
                return Ok(Transformed::no(node));
            }
            let schema = merge_schema(&[p.input.as_ref()]);
            let mut changed = false;
            let mut exprs = Vec::with_capacity(p.expr.len());
            for (i, e) in p.expr.iter().enumerate() {
                let inner = unaliased(e);
                let declared = match inner {
                    Expr::Case(case) => common_declared(case, &schema),
                    _ => None,
                };
                let Some(metadata) = declared else {
                    exprs.push(e.clone());
                    continue;
                };
                changed = true;
                // On the alias: a function around the CASE would hide its subqueries
                // from DataFusion's decorrelation.
                let (qualifier, field) = p.schema.qualified_field(i);
                exprs.push(inner.clone().alias_qualified_with_metadata(
                    qualifier.cloned(),
                    field.name(),
                    Some(FieldMetadata::from(metadata)),
                ));
            }
            if !changed {
                return Ok(Transformed::no(node));
            }
            let LogicalPlan::Projection(p) = node else {
                unreachable!("matched above")
            };
            Ok(Transformed::yes(LogicalPlan::Projection(
                datafusion::logical_expr::Projection::try_new(exprs, p.input)?,
            )))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_case_declared_types"
    }
}

/// DataFusion builds a recursive query only when its recursive term's fields carry the
/// same metadata as its static term's: a declared type on one side only (`array_agg(oid)`
/// in the static term, `NULL::oid[]` in the recursive one) failed the query. Each term is
/// projected so that both declare what either declares (the static term's wins where
/// they disagree).
#[derive(Debug, Default)]
pub struct RecursiveTermMetadata;

/// `plan` with `metadata[i]` added to its `i`th field where it lacks some of it.
fn with_metadata(
    plan: Arc<LogicalPlan>,
    metadata: &[BTreeMap<String, String>],
) -> Result<Arc<LogicalPlan>> {
    let schema = plan.schema().clone();
    let lacking = schema
        .fields()
        .iter()
        .zip(metadata)
        .any(|(f, m)| m.iter().any(|(k, v)| f.metadata().get(k) != Some(v)));
    if !lacking {
        return Ok(plan);
    }
    let exprs = schema
        .iter()
        .zip(metadata)
        .map(|((qualifier, field), m)| {
            Expr::Column(datafusion::common::Column::new(
                qualifier.cloned(),
                field.name(),
            ))
            .alias_qualified_with_metadata(
                qualifier.cloned(),
                field.name(),
                (!m.is_empty()).then(|| FieldMetadata::from(m.clone())),
            )
        })
        .collect();
    Ok(Arc::new(LogicalPlan::Projection(
        datafusion::logical_expr::Projection::try_new(exprs, plan)?,
    )))
}

impl AnalyzerRule for RecursiveTermMetadata {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        use datafusion::logical_expr::RecursiveQuery;
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::RecursiveQuery(q) = &node else {
                return Ok(Transformed::no(node));
            };
            let fields = q
                .static_term
                .schema()
                .fields()
                .iter()
                .zip(q.recursive_term.schema().fields());
            if fields.clone().all(|(s, r)| s.metadata() == r.metadata()) {
                return Ok(Transformed::no(node));
            }
            let metadata: Vec<BTreeMap<String, String>> = fields
                .map(|(s, r)| {
                    let mut m: BTreeMap<String, String> =
                        r.metadata().clone().into_iter().collect();
                    m.extend(s.metadata().clone());
                    m
                })
                .collect();
            let LogicalPlan::RecursiveQuery(q) = node else {
                unreachable!("matched above")
            };
            Ok(Transformed::yes(LogicalPlan::RecursiveQuery(
                RecursiveQuery::try_new(
                    q.name,
                    with_metadata(q.static_term, &metadata)?,
                    with_metadata(q.recursive_term, &metadata)?,
                    q.is_distinct,
                )?,
            )))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_recursive_term_metadata"
    }
}
