//! Filters evaluated inside a table scan (both replicas' scans use this).
//!
//! DataFusion hands a table provider the WHERE conjuncts that mention only that table.
//! Those that are deterministic and self-contained ([`evaluable`]) the scan evaluates
//! itself, exactly, on each batch it reads (so DataFusion drops its own `FilterExec`); the
//! column scan also uses them to skip whole chunks by their zone maps (`scan.rs`). The scan
//! reads the union of the output columns and the columns the filter needs, evaluates the
//! filter, and projects to the output.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray};
use arrow::compute::kernels::boolean::and;
use arrow::compute::{filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result as DfResult};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, Volatility};
use datafusion::physical_expr::PhysicalExpr;

/// Whether a scan may evaluate `e` itself in place of DataFusion: no subqueries, no
/// parameters left unbound, no volatile functions (evaluating `random()` twice would change
/// the answer), nothing but row-local expressions.
pub fn evaluable(e: &Expr) -> bool {
    !e.exists(|n| {
        Ok(match n {
            Expr::ScalarSubquery(_)
            | Expr::Exists(_)
            | Expr::InSubquery(_)
            | Expr::Placeholder(_)
            | Expr::OuterReferenceColumn(..)
            | Expr::AggregateFunction(_)
            | Expr::WindowFunction(_)
            | Expr::Unnest(_) => true,
            Expr::ScalarFunction(f) => f.func.signature().volatility == Volatility::Volatile,
            _ => false,
        })
    })
    .unwrap_or(false)
}

/// Whether every cast in `e` keeps the order of its values (a larger input never gives a
/// smaller output), so a predicate on the cast can be tested on a column's min and max.
/// DataFusion's pruning takes any cast but one to or from text as such, and
/// `CAST(ts AS time)` is not: a chunk of timestamps from 00:00 to 23:00 has times its
/// bounds' times (00:00:00 and 23:00:00) do not bracket the way a filter on them assumes
/// (found by the differential tester: `CAST(c0 AS time) NOT BETWEEN …` dropped rows).
pub fn order_preserving_casts(e: &Expr, schema: &DFSchema) -> bool {
    use arrow::datatypes::DataType as T;
    let numeric = |t: &T| t.is_integer() || t.is_floating() || t.is_decimal();
    let instant = |t: &T| matches!(t, T::Date32 | T::Date64 | T::Timestamp(..));
    !e.exists(|n| {
        let (inner, to) = match n {
            Expr::Cast(c) => (&c.expr, c.field.data_type()),
            Expr::TryCast(c) => (&c.expr, c.field.data_type()),
            _ => return Ok(false),
        };
        let Ok(from) = datafusion::logical_expr::ExprSchemable::get_type(inner.as_ref(), schema)
        else {
            return Ok(true);
        };
        let keeps = from == *to
            || (numeric(&from) && numeric(to))
            || (instant(&from) && instant(to))
            || (from.is_string() && to.is_string());
        Ok(!keeps)
    })
    .unwrap_or(false)
}

/// The filter of one scan, planned against the columns the scan reads.
#[derive(Debug, Clone)]
pub struct ScanFilter {
    /// Columns the scan reads (positions in the provider's schema), ascending.
    pub read: Vec<usize>,
    /// Schema of a batch of `read`.
    pub read_schema: SchemaRef,
    /// The conjunction of the evaluable filters over `read_schema`; `None` = no filter.
    pub predicate: Option<Arc<dyn PhysicalExpr>>,
    /// The same, as DataFusion expressions over unqualified column names (for display).
    pub exprs: Vec<Expr>,
    /// The conjunction of the filters a chunk's zone map (each column's min and max) can
    /// rule out: those whose casts keep order ([`order_preserving_casts`]).
    pub pruning: Option<Arc<dyn PhysicalExpr>>,
    /// For each output column, its position in `read`.
    output: Vec<usize>,
    /// Schema of the output (`projection`).
    pub output_schema: SchemaRef,
}

impl ScanFilter {
    /// Plans `filters` (those DataFusion pushed down; the non-evaluable ones are ignored
    /// here) for a scan of `schema` projected to `projection`.
    pub fn new(
        state: &dyn Session,
        schema: &SchemaRef,
        projection: &[usize],
        filters: &[Expr],
    ) -> DfResult<Self> {
        let exprs: Vec<Expr> = filters
            .iter()
            .filter(|f| evaluable(f))
            .map(|f| unqualify(f.clone()))
            .collect::<DfResult<_>>()?;
        let mut read: Vec<usize> = projection.to_vec();
        for e in &exprs {
            for c in e.column_refs() {
                if let Ok(i) = schema.index_of(&c.name) {
                    read.push(i);
                }
            }
        }
        read.sort_unstable();
        read.dedup();
        let read_schema = Arc::new(schema.project(&read)?);
        let output = projection
            .iter()
            .map(|p| read.binary_search(p).expect("projection is part of read"))
            .collect();
        Self::from_parts(state, read, read_schema, exprs, output)
    }

    /// The filter of the columns `read` (whose batches have `read_schema`), evaluating
    /// `exprs` (over `read_schema`'s unqualified names) and keeping the columns at `output`
    /// (positions in `read`): how a member serving another member's scan rebuilds the
    /// filter that member planned ([`ScanFilter::output_positions`]).
    pub fn from_parts(
        state: &dyn Session,
        read: Vec<usize>,
        read_schema: SchemaRef,
        exprs: Vec<Expr>,
        output: Vec<usize>,
    ) -> DfResult<Self> {
        if let Some(bad) = output.iter().find(|&&o| o >= read.len()) {
            return Err(datafusion::error::DataFusionError::Plan(format!(
                "output column {bad} is not among the {} columns read",
                read.len()
            )));
        }
        let df_schema = DFSchema::try_from(read_schema.as_ref().clone())?;
        let predicate = match conjunction(exprs.clone()) {
            Some(e) => Some(state.create_physical_expr(e, &df_schema)?),
            None => None,
        };
        let prunable = exprs
            .iter()
            .filter(|e| order_preserving_casts(e, &df_schema))
            .cloned();
        let pruning = match conjunction(prunable) {
            Some(e) => Some(state.create_physical_expr(e, &df_schema)?),
            None => None,
        };
        let output_schema = Arc::new(read_schema.project(&output)?);
        Ok(Self {
            read,
            read_schema,
            predicate,
            exprs,
            pruning,
            output,
            output_schema,
        })
    }

    /// For each output column, its position in `read`.
    pub fn output_positions(&self) -> &[usize] {
        &self.output
    }

    /// The rows of `batch` (columns `read`) that pass the filter and `keep` (a mask from
    /// the caller, e.g. MVCC visibility), projected to the output columns.
    pub fn apply(&self, batch: RecordBatch, keep: Option<BooleanArray>) -> DfResult<RecordBatch> {
        let mask = match &self.predicate {
            Some(p) => {
                let v = p.evaluate(&batch)?.into_array(batch.num_rows())?;
                let b = v
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| {
                        datafusion::error::DataFusionError::Internal(
                            "scan filter is not boolean".into(),
                        )
                    })?
                    .clone();
                let b = if b.null_count() > 0 {
                    prep_null_mask_filter(&b)
                } else {
                    b
                };
                Some(match keep {
                    Some(k) => and(&b, &k)?,
                    None => b,
                })
            }
            None => keep,
        };
        let batch = match mask {
            Some(m) if m.true_count() < m.len() => filter_record_batch(&batch, &m)?,
            _ => batch,
        };
        Ok(batch
            .project(&self.output)?
            .with_schema(self.output_schema.clone())?)
    }

    /// Whether the scan evaluates a filter.
    pub fn is_some(&self) -> bool {
        self.predicate.is_some()
    }

    /// The filter for EXPLAIN.
    pub fn display(&self) -> String {
        self.exprs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

/// `e` with table qualifiers dropped from its columns: a scan's filters name only its
/// table's columns, and the scan resolves them against its own (unqualified) schema.
fn unqualify(e: Expr) -> DfResult<Expr> {
    e.transform_up(|n| match n {
        Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
            Column::new_unqualified(c.name),
        ))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}
