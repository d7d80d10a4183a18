//! [`ColumnScanExec`]: a DataFusion leaf reading one table's column replica at a version.
//!
//! At planning time the scan's filter ([`ScanFilter`]) is turned into a zone-map test
//! (DataFusion's `PruningPredicate` over each chunk's min/max/null counts) and the chunks
//! that cannot hold a matching row are dropped. Partition `p` of `n` reads the kept chunks
//! `p, p + n, …`; partition 0 also reads the delta. Each chunk is read as Arrow arrays with
//! no per-row work unless delta keys fall into its key range (then one merge of sorted keys
//! gives a visibility mask); the filter is evaluated on the arrays and ANDed with that mask.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use arrow::array::{ArrayRef, UInt64Array};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::stats::Precision;
use datafusion::common::{Column, ColumnStatistics, ScalarValue, Statistics};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;

use crate::table::{Chunk, TableSnapshot};
use duet_common::filter::ScanFilter;
use duet_common::scan::{batch_stream, leaf_properties, Estimates, ScanObserver};

/// Fraction of rows a filter is assumed to keep when statistics say no more (DataFusion's
/// own default for `FilterExec`, `default_filter_selectivity` = 20).
const FILTER_SELECTIVITY: f64 = 0.2;

/// Rows per batch of delta output.
const DELTA_BATCH_ROWS: usize = 8192;

/// Scan of a column replica at a fixed version.
#[derive(Debug)]
pub struct ColumnScanExec {
    snapshot: TableSnapshot,
    version: u64,
    filter: ScanFilter,
    /// Stable chunks that may hold matching rows (indexes into `snapshot.stable.chunks`).
    chunks: Arc<Vec<usize>>,
    schema: SchemaRef,
    limit: Option<usize>,
    partitions: usize,
    props: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    observer: Option<Arc<dyn ScanObserver>>,
    estimates: Option<Estimates>,
}

impl ColumnScanExec {
    pub fn new(
        snapshot: TableSnapshot,
        version: u64,
        filter: ScanFilter,
        limit: Option<usize>,
        partitions: usize,
    ) -> Self {
        let schema = filter.output_schema.clone();
        let chunks = prune(&snapshot, &filter);
        let partitions = partitions.clamp(1, chunks.len().max(1));
        let props = leaf_properties(&schema, partitions);
        Self {
            snapshot,
            version,
            filter,
            chunks: Arc::new(chunks),
            schema,
            limit,
            partitions,
            props,
            metrics: ExecutionPlanMetricsSet::new(),
            observer: None,
            estimates: None,
        }
    }

    /// Reports this scan's work to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn ScanObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Reports `estimates` to DataFusion instead of the zone maps' row count.
    pub fn with_estimates(mut self, estimates: Estimates) -> Self {
        self.estimates = Some(estimates);
        self
    }

    /// Output partitions.
    pub fn partitions(&self) -> usize {
        self.partitions
    }

    /// Rows of the stable chunks kept after pruning, and of the delta.
    pub fn rows_to_read(&self) -> (usize, usize) {
        let stable: usize = self
            .chunks
            .iter()
            .map(|&i| self.snapshot.stable.chunks[i].rows())
            .sum();
        (stable, self.snapshot.delta_rows.len())
    }

    /// Rows in the chunks kept after pruning, plus the delta's.
    fn rows_read(&self) -> usize {
        let stable: usize = self
            .chunks
            .iter()
            .map(|&i| self.snapshot.stable.chunks[i].rows())
            .sum();
        stable + self.snapshot.delta_rows.len()
    }
}

/// The chunks of `snapshot` whose zone maps do not rule out `filter`.
fn prune(snapshot: &TableSnapshot, filter: &ScanFilter) -> Vec<usize> {
    let all: Vec<usize> = (0..snapshot.stable.chunks.len()).collect();
    let Some(predicate) = &filter.pruning else {
        return all;
    };
    let Some(pp) = PruningPredicateBuilder::new()
        .with_file_schema(filter.read_schema.clone())
        .build(predicate.clone())
    else {
        return all;
    };
    let stats = ZoneMaps { snapshot };
    match pp.prune(&stats) {
        Ok(keep) => all.into_iter().filter(|&i| keep[i]).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "zone-map pruning failed; reading every chunk");
            all
        }
    }
}

/// The stable chunks' zone maps as DataFusion's pruning statistics (one container per
/// chunk). A chunk written before an `ADD COLUMN` has no range for the new column: unknown.
struct ZoneMaps<'a> {
    snapshot: &'a TableSnapshot,
}

impl ZoneMaps<'_> {
    fn column(&self, column: &Column) -> Option<usize> {
        self.snapshot
            .def
            .columns
            .iter()
            .position(|c| c.name == column.name)
    }

    fn per_chunk(
        &self,
        column: &Column,
        f: impl Fn(&Chunk, usize) -> Option<ScalarValue>,
    ) -> Option<ArrayRef> {
        let c = self.column(column)?;
        let ty = self.snapshot.def.columns[c].ty.arrow_type();
        let values: Vec<ScalarValue> = self
            .snapshot
            .stable
            .chunks
            .iter()
            .map(|ch| {
                f(ch, c)
                    .filter(|v| v.data_type() == ty)
                    .unwrap_or(ScalarValue::try_from(&ty).unwrap_or(ScalarValue::Null))
            })
            .collect();
        ScalarValue::iter_to_array(values).ok()
    }
}

impl PruningStatistics for ZoneMaps<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.per_chunk(column, |ch, c| ch.zone.get(c).map(|z| z.min.clone()))
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.per_chunk(column, |ch, c| ch.zone.get(c).map(|z| z.max.clone()))
    }

    fn num_containers(&self) -> usize {
        self.snapshot.stable.chunks.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let c = self.column(column)?;
        Some(Arc::new(
            self.snapshot
                .stable
                .chunks
                .iter()
                .map(|ch| ch.zone.get(c).map(|z| z.nulls as u64))
                .collect::<UInt64Array>(),
        ))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(Arc::new(
            self.snapshot
                .stable
                .chunks
                .iter()
                .map(|ch| Some(ch.rows() as u64))
                .collect::<UInt64Array>(),
        ))
    }

    fn contained(
        &self,
        _column: &Column,
        _values: &std::collections::HashSet<ScalarValue>,
    ) -> Option<arrow::array::BooleanArray> {
        None
    }
}

impl DisplayAs for ColumnScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let cols: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        write!(
            f,
            "ColumnScan: table={}, engine=column, version={}, chunks={}/{}, delta_keys={}, \
             projection=[{}]",
            self.snapshot.def.name,
            self.version,
            self.chunks.len(),
            self.snapshot.stable.chunks.len(),
            self.snapshot.delta_keys.len(),
            cols.join(", ")
        )?;
        if self.filter.is_some() {
            write!(f, ", filter=[{}]", self.filter.display())?;
        }
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        if let Some(o) = &self.observer {
            write!(f, ", {}", o.describe())?;
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
        let chunks: Vec<usize> = self
            .chunks
            .iter()
            .enumerate()
            .filter(|(n, _)| n % self.partitions == partition)
            .map(|(_, &i)| i)
            .collect();
        let state = State {
            snapshot: self.snapshot.clone(),
            filter: self.filter.clone(),
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
            self.observer.clone(),
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    /// Row count and per-column min/max/nulls from the zone maps of the kept chunks, all
    /// inexact (the delta and the filter change them); with a filter, rows are scaled by
    /// [`FILTER_SELECTIVITY`]. DataFusion uses them to order joins.
    fn partition_statistics(&self, partition: Option<usize>) -> DfResult<Arc<Statistics>> {
        let mut rows = self.rows_read() as f64;
        if self.filter.is_some() {
            rows *= FILTER_SELECTIVITY;
        }
        if partition.is_some() {
            rows /= self.partitions as f64;
        }
        let rows = rows.ceil() as usize;
        let rows = self.limit.map_or(rows, |l| rows.min(l));
        let chunks: Vec<&Chunk> = self
            .chunks
            .iter()
            .map(|&i| self.snapshot.stable.chunks[i].as_ref())
            .collect();
        let column_statistics = self
            .schema
            .fields()
            .iter()
            .map(|field| {
                let Some(c) = self
                    .snapshot
                    .def
                    .columns
                    .iter()
                    .position(|c| &c.name == field.name())
                else {
                    return ColumnStatistics::new_unknown();
                };
                let ranges: Option<Vec<_>> = chunks.iter().map(|ch| ch.zone.get(c)).collect();
                match ranges {
                    Some(r) if !r.is_empty() && self.snapshot.delta_rows.is_empty() => {
                        let fold = |pick: fn(&crate::table::ColumnRange) -> &ScalarValue,
                                    want_min: bool| {
                            r.iter().map(|z| pick(z)).filter(|v| !v.is_null()).fold(
                                None::<ScalarValue>,
                                |acc, v| match acc {
                                    None => Some(v.clone()),
                                    Some(a) => {
                                        let better = if want_min { v < &a } else { v > &a };
                                        Some(if better { v.clone() } else { a })
                                    }
                                },
                            )
                        };
                        let mut s = ColumnStatistics::new_unknown();
                        if let Some(v) = fold(|z| &z.min, true) {
                            s.min_value = Precision::Inexact(v);
                        }
                        if let Some(v) = fold(|z| &z.max, false) {
                            s.max_value = Precision::Inexact(v);
                        }
                        s.null_count = Precision::Inexact(r.iter().map(|z| z.nulls).sum());
                        s
                    }
                    _ => ColumnStatistics::new_unknown(),
                }
            })
            .collect();
        let mut stats = Statistics {
            num_rows: Precision::Inexact(rows),
            total_byte_size: Precision::Absent,
            column_statistics,
        };
        if let Some(e) = &self.estimates {
            let share = if partition.is_some() {
                1.0 / self.partitions as f64
            } else {
                1.0
            };
            e.apply(&mut stats, share);
        }
        Ok(Arc::new(stats))
    }
}

struct State {
    snapshot: TableSnapshot,
    filter: ScanFilter,
    chunks: std::vec::IntoIter<usize>,
    /// Delta batches still to emit (partition 0 only).
    delta: Option<Vec<RecordBatch>>,
    delta_started: bool,
    remaining: Option<usize>,
}

/// Reads chunk `i`'s columns that `projection` needs into the column cache on a blocking
/// thread while the scan works on the chunk before it (chunks in files only: the others are
/// in memory).
fn read_ahead(snapshot: &TableSnapshot, i: usize, projection: &[usize]) {
    let chunk = &snapshot.stable.chunks[i];
    if chunk.is_resident() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (chunk, projection) = (chunk.clone(), projection.to_vec());
    drop(runtime.spawn_blocking(move || {
        if let Err(e) = crate::table::prefetch_columns(&chunk, &projection) {
            tracing::debug!(error = %e, "column read-ahead failed; the scan reads the chunk itself");
        }
    }));
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
                if let Some(&next) = self.chunks.as_slice().first() {
                    read_ahead(&self.snapshot, next, &self.filter.read);
                }
                let (batch, visible) = self
                    .snapshot
                    .chunk_with_visibility(i, &self.filter.read)
                    .map_err(col_err)?;
                self.filter.apply(batch, visible)?
            } else if let Some(pending) = self.delta.as_mut() {
                if !self.delta_started {
                    self.delta_started = true;
                    let mut all = self
                        .snapshot
                        .scan_delta(&self.filter.read, DELTA_BATCH_ROWS)
                        .map_err(col_err)?;
                    all.reverse();
                    *pending = all;
                }
                match pending.pop() {
                    Some(b) => self.filter.apply(b, None)?,
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
