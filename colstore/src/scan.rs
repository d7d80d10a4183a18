//! [`ColumnScanExec`]: a DataFusion leaf reading one table's column replica at a version.
//! Partition `p` of `n` reads stable chunks `p, p + n, …`; partition 0 also reads the delta.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

use crate::table::TableSnapshot;

/// Rows per batch of delta output.
const DELTA_BATCH_ROWS: usize = 8192;

/// Scan of a column replica at a fixed version.
#[derive(Debug)]
pub struct ColumnScanExec {
    snapshot: TableSnapshot,
    version: u64,
    projection: Vec<usize>,
    schema: SchemaRef,
    limit: Option<usize>,
    partitions: usize,
    props: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl ColumnScanExec {
    pub fn new(
        snapshot: TableSnapshot,
        version: u64,
        projection: Vec<usize>,
        limit: Option<usize>,
        partitions: usize,
    ) -> Self {
        let schema = snapshot.schema(&projection);
        let partitions = partitions.clamp(1, snapshot.stable.chunks.len().max(1));
        let props = leaf_properties(&schema, partitions);
        Self {
            snapshot,
            version,
            projection,
            schema,
            limit,
            partitions,
            props,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for ColumnScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let cols: Vec<&str> = self
            .projection
            .iter()
            .map(|&i| self.snapshot.def.columns[i].name.as_str())
            .collect();
        write!(
            f,
            "ColumnScan: table={}, engine=column, version={}, chunks={}, delta_keys={}, \
             projection=[{}]",
            self.snapshot.def.name,
            self.version,
            self.snapshot.stable.chunks.len(),
            self.snapshot.delta_keys.len(),
            cols.join(", ")
        )?;
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ColumnScanExec {
    fn name(&self) -> &str {
        "ColumnScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let chunks: Vec<usize> = (0..self.snapshot.stable.chunks.len())
            .filter(|i| i % self.partitions == partition)
            .collect();
        let state = State {
            snapshot: self.snapshot.clone(),
            projection: self.projection.clone(),
            chunks: chunks.into_iter(),
            delta: if partition == 0 {
                Some(Vec::new())
            } else {
                None
            },
            delta_started: false,
            remaining: self.limit,
        };
        Ok(batch_stream(
            self.schema.clone(),
            state,
            BaselineMetrics::new(&self.metrics, partition),
            State::next,
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

struct State {
    snapshot: TableSnapshot,
    projection: Vec<usize>,
    chunks: std::vec::IntoIter<usize>,
    /// Delta batches still to emit (partition 0 only).
    delta: Option<Vec<RecordBatch>>,
    delta_started: bool,
    remaining: Option<usize>,
}

/// Plan properties of a bounded, incrementally emitting scan with `partitions` partitions.
pub fn leaf_properties(schema: &SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema.clone()),
        Partitioning::UnknownPartitioning(partitions),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

/// The stream of a leaf plan: calls `next` on `state` until it returns `None` or an error
/// (which ends the stream), timing each call as the plan's compute time and counting rows.
pub fn batch_stream<S: Send + 'static>(
    schema: SchemaRef,
    state: S,
    metrics: BaselineMetrics,
    next: fn(&mut S) -> DfResult<Option<RecordBatch>>,
) -> SendableRecordBatchStream {
    let stream = futures::stream::unfold(
        (state, metrics, false),
        move |(mut st, metrics, done)| async move {
            if done {
                return None;
            }
            let timer = metrics.elapsed_compute().timer();
            let out = next(&mut st);
            timer.done();
            match out {
                Ok(Some(b)) => {
                    metrics.record_output(b.num_rows());
                    Some((Ok(b), (st, metrics, false)))
                }
                Ok(None) => {
                    metrics.done();
                    None
                }
                Err(e) => Some((Err(e), (st, metrics, true))),
            }
        },
    );
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

fn col_err(e: crate::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl State {
    fn next(&mut self) -> DfResult<Option<RecordBatch>> {
        loop {
            if self.remaining == Some(0) {
                return Ok(None);
            }
            let batch = if let Some(i) = self.chunks.next() {
                self.snapshot
                    .scan_chunk(i, &self.projection)
                    .map_err(col_err)?
            } else if let Some(pending) = self.delta.as_mut() {
                if !self.delta_started {
                    self.delta_started = true;
                    let mut all = self
                        .snapshot
                        .scan_delta(&self.projection, DELTA_BATCH_ROWS)
                        .map_err(col_err)?;
                    all.reverse();
                    *pending = all;
                }
                match pending.pop() {
                    Some(b) => b,
                    None => return Ok(None),
                }
            } else {
                return Ok(None);
            };
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = match &mut self.remaining {
                Some(r) if batch.num_rows() > *r => {
                    let b = batch.slice(0, *r);
                    *r = 0;
                    b
                }
                Some(r) => {
                    *r -= batch.num_rows();
                    batch
                }
                None => batch,
            };
            return Ok(Some(batch));
        }
    }
}
