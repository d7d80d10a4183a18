//! [`RowScanExec`]: a DataFusion leaf that streams a row-table scan out of RocksDB in
//! batches, reading at the session transaction's snapshot (with its own writes).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use duet_common::batch::datums_to_array;
use duet_common::codec::memcmp::prefix_end;
use duet_common::{Row, TableDefRef};
use duet_rowstore::ReadView;

use crate::keyrange::{Access, KeyRange, ScanRanges};
use datafusion::common::Statistics;
use duet_common::filter::ScanFilter;
use duet_common::scan::{Estimates, ScanObserver};

/// Rows per output batch (and per visit to the storage engine).
pub const BATCH_ROWS: usize = 4096;

/// Scan of one row table.
#[derive(Debug)]
pub struct RowScanExec {
    view: ReadView,
    def: TableDefRef,
    ranges: ScanRanges,
    /// Columns read (storage positions: `def.columns.len()` is the key column, and
    /// `numeric::COMPANION_BASE + c` the display scales of column `c`), the filter
    /// evaluated on them, and the output projection.
    filter: ScanFilter,
    schema: SchemaRef,
    limit: Option<usize>,
    props: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// Why the column replica was asked for but not used.
    fallback: Option<String>,
    observer: Option<Arc<dyn ScanObserver>>,
    estimates: Option<Estimates>,
}

impl RowScanExec {
    pub fn new(
        view: ReadView,
        def: TableDefRef,
        ranges: ScanRanges,
        filter: ScanFilter,
        limit: Option<usize>,
    ) -> Self {
        let schema = filter.output_schema.clone();
        let props = duet_common::scan::leaf_properties(&schema, 1);
        Self {
            view,
            def,
            ranges,
            filter,
            schema,
            limit,
            props,
            metrics: ExecutionPlanMetricsSet::new(),
            fallback: None,
            observer: None,
            estimates: None,
        }
    }

    /// Reports the router's `estimates` to DataFusion (row count, distinct values).
    pub fn with_estimates(mut self, estimates: Estimates) -> Self {
        self.estimates = Some(estimates);
        self
    }

    /// Reports this scan's work to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn ScanObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Records why this scan reads the row replica although the column one was asked for.
    pub fn with_fallback(mut self, why: Option<String>) -> Self {
        self.fallback = why;
        self
    }

    /// How the scan reaches its rows (for tests and EXPLAIN).
    pub fn ranges(&self) -> &ScanRanges {
        &self.ranges
    }
}

impl DisplayAs for RowScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let cols: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        write!(
            f,
            "RowScan: table={}, engine=row, access={}, ranges={}, projection=[{}]",
            self.def.name,
            self.ranges.describe(),
            self.ranges.ranges.len(),
            cols.join(", ")
        )?;
        if self.filter.is_some() {
            write!(f, ", filter=[{}]", self.filter.display())?;
        }
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        if let Some(why) = &self.fallback {
            write!(f, ", fallback=\"{why}\"")?;
        }
        if let Some(o) = &self.observer {
            write!(f, ", {}", o.describe())?;
        }
        Ok(())
    }
}

impl ExecutionPlan for RowScanExec {
    fn name(&self) -> &str {
        "RowScanExec"
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
        let state = ScanState {
            view: self.view.clone(),
            def: self.def.clone(),
            access: self.ranges.access.clone(),
            ranges: self.ranges.ranges.iter().cloned().collect(),
            filter: self.filter.clone(),
            remaining: self.limit,
        };
        Ok(duet_common::scan::batch_stream(
            self.schema.clone(),
            state,
            BaselineMetrics::new(&self.metrics, partition),
            ScanState::next_batch,
            self.observer.clone(),
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    /// The router's estimates, when it made some; otherwise unknown.
    fn partition_statistics(&self, _partition: Option<usize>) -> DfResult<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema);
        if let Some(e) = &self.estimates {
            e.apply(&mut stats, 1.0);
        }
        Ok(Arc::new(stats))
    }
}

struct ScanState {
    view: ReadView,
    def: TableDefRef,
    access: Access,
    ranges: VecDeque<KeyRange>,
    filter: ScanFilter,
    remaining: Option<usize>,
}

fn storage_err(e: impl Into<duet_rowstore::Error>) -> DataFusionError {
    DataFusionError::External(Box::new(e.into()))
}

impl ScanState {
    fn next_batch(&mut self) -> DfResult<Option<RecordBatch>> {
        loop {
            if self.remaining == Some(0) {
                return Ok(None);
            }
            let Some(range) = self.ranges.front().cloned() else {
                return Ok(None);
            };
            // With a filter, a limit counts the rows that pass it, not the rows read.
            let want = match self.remaining {
                Some(r) if !self.filter.is_some() => r.min(BATCH_ROWS),
                _ => BATCH_ROWS,
            };
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let mut rows: Vec<Row> = Vec::new();
            let mut resume: Option<Vec<u8>> = None;
            {
                let txn = &self.view;
                match &self.access {
                    Access::PrimaryKey => {
                        txn.scan_rows(
                            &self.def,
                            Some(&range.start),
                            range.end.as_deref(),
                            &mut |pk, row| {
                                keys.push(pk.to_vec());
                                rows.push(row);
                                if rows.len() >= want {
                                    resume = Some(prefix_end(pk));
                                    return Ok(false);
                                }
                                Ok(true)
                            },
                        )
                        .map_err(storage_err)?;
                    }
                    Access::Index(idx) => {
                        let mut pks = Vec::new();
                        txn.scan_index(
                            &self.def,
                            idx,
                            Some(&range.start),
                            range.end.as_deref(),
                            &mut |entry, pk| {
                                pks.push(pk.to_vec());
                                if pks.len() >= want {
                                    resume = Some(prefix_end(entry));
                                    return Ok(false);
                                }
                                Ok(true)
                            },
                        )
                        .map_err(storage_err)?;
                        for pk in pks {
                            if let Some(row) = txn.get_row(&self.def, &pk).map_err(storage_err)? {
                                keys.push(pk);
                                rows.push(row);
                            }
                        }
                    }
                }
            }
            match resume {
                Some(r) => {
                    if let Some(front) = self.ranges.front_mut() {
                        front.start = r;
                    }
                }
                None => {
                    self.ranges.pop_front();
                }
            }
            if rows.is_empty() {
                continue;
            }
            let mut batch = self.filter.apply(self.build(&keys, &rows)?, None)?;
            if batch.num_rows() == 0 {
                continue;
            }
            if let Some(rem) = self.remaining.as_mut() {
                if batch.num_rows() > *rem {
                    batch = batch.slice(0, *rem);
                }
                *rem -= batch.num_rows();
            }
            return Ok(Some(batch));
        }
    }

    fn build(&self, keys: &[Vec<u8>], rows: &[Row]) -> DfResult<RecordBatch> {
        let ncols = self.def.columns.len();
        let columns = self
            .filter
            .read
            .iter()
            .map(|&c| -> DfResult<ArrayRef> {
                if c == ncols {
                    Ok(Arc::new(BinaryArray::from_iter_values(keys.iter())))
                } else if let Some(c) = duet_common::numeric::companion_of(c) {
                    Ok(Arc::new(duet_common::batch::scales_array(
                        rows.iter().map(|r| &r[c]),
                    )))
                } else {
                    datums_to_array(&self.def.columns[c].ty, rows.iter().map(|r| &r[c]))
                        .map_err(storage_err)
                }
            })
            .collect::<DfResult<Vec<_>>>()?;
        Ok(RecordBatch::try_new_with_options(
            self.filter.read_schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )?)
    }
}
