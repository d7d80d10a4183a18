//! Plumbing both replicas' DataFusion leaves share (the row scan in `duet-router`, the column
//! scan in `duet-colstore`): plan properties of a leaf, a timed batch stream that reports to
//! an observer, and the router's estimates a leaf passes to DataFusion.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::stats::Precision;
use datafusion::common::{Result as DfResult, Statistics};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::BaselineMetrics;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{Partitioning, PlanProperties};

/// What the router expects a scan to return: rows after its filters and limit, and the
/// distinct values of each output column (from ANALYZE). DataFusion uses them to order and
/// size joins.
#[derive(Debug, Clone, Default)]
pub struct Estimates {
    pub rows: f64,
    /// One per output column; `None` where unknown.
    pub distinct: Vec<Option<f64>>,
}

impl Estimates {
    /// Overrides the row count and distinct counts of `stats` (all inexact); `share` is the
    /// fraction of the scan one partition holds.
    pub fn apply(&self, stats: &mut Statistics, share: f64) {
        let rows = (self.rows * share).ceil().max(0.0) as usize;
        stats.num_rows = Precision::Inexact(rows);
        for (c, d) in stats.column_statistics.iter_mut().zip(&self.distinct) {
            if let Some(d) = d {
                c.distinct_count =
                    Precision::Inexact((d.min(self.rows).ceil() as usize).min(rows.max(1)));
            }
        }
    }
}

/// Someone who wants to know what a scan did (the router's routing log): it adds text to
/// the scan's EXPLAIN line and hears, once per partition stream, how many rows the stream
/// produced and how long its work took.
pub trait ScanObserver: Send + Sync + fmt::Debug {
    /// Text appended to the scan's line in EXPLAIN.
    fn describe(&self) -> String;
    /// A partition stream ended or was dropped after `rows` rows and `elapsed` of work.
    fn partition_done(&self, rows: u64, elapsed: std::time::Duration);
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

/// A partition stream's metrics and its observer, who hears the stream's output rows and
/// compute time (from those metrics) when the stream ends or is dropped.
struct Report {
    metrics: BaselineMetrics,
    observer: Option<Arc<dyn ScanObserver>>,
}

impl Drop for Report {
    fn drop(&mut self) {
        if let Some(o) = self.observer.take() {
            o.partition_done(
                self.metrics.output_rows().value() as u64,
                std::time::Duration::from_nanos(self.metrics.elapsed_compute().value() as u64),
            );
        }
    }
}

/// The stream of a leaf plan: calls `next` on `state` until it returns `None` or an error
/// (which ends the stream), timing each call as the plan's compute time and counting rows;
/// `observer` hears the totals when the stream ends or is dropped.
pub fn batch_stream<S: Send + 'static>(
    schema: SchemaRef,
    state: S,
    metrics: BaselineMetrics,
    next: fn(&mut S) -> DfResult<Option<RecordBatch>>,
    observer: Option<Arc<dyn ScanObserver>>,
) -> SendableRecordBatchStream {
    let report = Report { metrics, observer };
    let stream = futures::stream::unfold(
        (state, report, false),
        move |(mut st, report, done)| async move {
            if done {
                return None;
            }
            let timer = report.metrics.elapsed_compute().timer();
            let out = next(&mut st);
            timer.done();
            match out {
                Ok(Some(b)) => {
                    report.metrics.record_output(b.num_rows());
                    Some((Ok(b), (st, report, false)))
                }
                Ok(None) => {
                    report.metrics.done();
                    None
                }
                Err(e) => Some((Err(e), (st, report, true))),
            }
        },
    );
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}
