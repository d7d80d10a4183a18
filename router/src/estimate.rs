//! The router: estimates a scan's rows and both replicas' costs from the table's statistics,
//! and keeps what every process-wide part of routing needs (statistics, calibration, the
//! routing log).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use duet_colstore::store::LagHistogram;
use duet_common::{SqlType, TableDef};
use duet_rowstore::StoreRef;
use futures::StreamExt;
use parking_lot::RwLock;

use crate::cost::{Calibrator, ColumnWork, CostParts, RowWork};
use crate::keyrange::{Access, ScanKind, ScanRanges};
use crate::routing::{Replica, RouteRecord, RoutingLog, Sample};
use crate::stats::{StatsStore, TableStats};

/// Rows assumed for a table the router knows nothing about.
pub const DEFAULT_TABLE_ROWS: f64 = 1000.0;

/// Bytes of a value of `ty` when no statistics say better.
pub fn default_width(ty: &SqlType) -> f64 {
    match ty {
        SqlType::Bool => 1.0,
        SqlType::Int16 => 2.0,
        SqlType::Int32 | SqlType::Float32 | SqlType::Date => 4.0,
        SqlType::Int64
        | SqlType::Float64
        | SqlType::Timestamp
        | SqlType::TimestampTz
        | SqlType::Time => 8.0,
        SqlType::Numeric { .. } | SqlType::Interval => 16.0,
        SqlType::Array(_) => 40.0,
        SqlType::Char(n) => *n as f64 + 4.0,
        SqlType::Varchar(Some(n)) => (*n as f64 / 2.0).min(32.0) + 4.0,
        SqlType::Text | SqlType::Varchar(None) => 20.0,
        SqlType::Bytea => 32.0,
        SqlType::Uuid => 36.0,
        SqlType::Json | SqlType::Jsonb => 64.0,
    }
}

/// Bytes of data (not buffer capacity) of an Arrow array.
pub fn data_bytes(a: &dyn Array) -> u64 {
    match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            let o = s.value_offsets();
            (o[o.len() - 1] - o[0]) as u64 + 4 * s.len() as u64
        }
        DataType::LargeUtf8 => {
            let s = a.as_string::<i64>();
            let o = s.value_offsets();
            (o[o.len() - 1] - o[0]) as u64 + 8 * s.len() as u64
        }
        DataType::Utf8View => {
            let s = a.as_string_view();
            s.views().iter().map(|v| (*v as u32) as u64 + 4).sum()
        }
        DataType::Binary => {
            let s = a.as_binary::<i32>();
            let o = s.value_offsets();
            (o[o.len() - 1] - o[0]) as u64 + 4 * s.len() as u64
        }
        t => t.primitive_width().unwrap_or(8) as u64 * a.len() as u64,
    }
}

/// What the router expects of one scan.
#[derive(Debug, Clone)]
pub struct ScanEstimate {
    /// Rows in the table.
    pub table_rows: f64,
    /// Rows the scan returns (after its filters and limit).
    pub out_rows: f64,
    pub row: RowWork,
    /// Fraction of rows all filters keep.
    pub selectivity: f64,
    /// Bytes per row of the columns a column scan reads.
    pub read_bytes: f64,
    /// Filter conditions a scan evaluates on each row it reads.
    pub filter_terms: f64,
}

/// The process's router.
pub struct Router {
    pub stats: StatsStore,
    pub calibrator: Calibrator,
    pub log: RoutingLog,
    store: StoreRef,
    lag: RwLock<Option<Arc<LagHistogram>>>,
    next_id: AtomicU64,
    rng: AtomicU64,
    /// `ANALYZE` runs again on its own once this fraction of a table's rows has changed.
    pub autoanalyze_fraction: f64,
}

/// Shared handle.
pub type RouterRef = Arc<Router>;

impl Router {
    /// A router whose statistics and calibration are kept in `dir` (in memory if `None`).
    pub fn open(store: StoreRef, dir: Option<&Path>) -> std::io::Result<RouterRef> {
        let (stats, calibrator) = match dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (StatsStore::open(d)?, Calibrator::open(d)?)
            }
            None => (StatsStore::in_memory(), Calibrator::in_memory()),
        };
        Ok(Arc::new(Router {
            stats,
            calibrator,
            log: RoutingLog::default(),
            store,
            lag: RwLock::new(None),
            next_id: AtomicU64::new(1),
            rng: AtomicU64::new(0x2545_f491_4f6c_dd1d),
            autoanalyze_fraction: 0.1,
        }))
    }

    /// Where the learner's lag is measured (used to expect a wait for it).
    pub fn set_lag(&self, lag: Option<Arc<LagHistogram>>) {
        *self.lag.write() = lag;
    }

    pub fn store(&self) -> &StoreRef {
        &self.store
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A uniform number in [0, 1) (xorshift; sampling only).
    pub(crate) fn random(&self) -> f64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The expected wait for the learner when it has not reached the read version yet
    /// (median measured lag), microseconds.
    pub fn expected_lag_us(&self) -> f64 {
        self.lag
            .read()
            .as_ref()
            .and_then(|l| l.quantile(0.5))
            .map_or(1000.0, |s| s * 1e6)
    }

    /// The statistics of `def`, if they describe its current storage.
    pub fn table_stats(&self, def: &TableDef) -> Option<Arc<TableStats>> {
        self.stats
            .get(def.id)
            .filter(|s| s.storage_id == def.storage_id)
    }

    /// Rows changed in `def` since it was last analyzed, and whether it should be analyzed
    /// again (never analyzed, truncated since, or changed by more than
    /// [`Router::autoanalyze_fraction`] of its rows).
    pub fn staleness(&self, def: &TableDef) -> (u64, bool) {
        let now = self.store.changes(def.storage_id);
        match self.table_stats(def) {
            None => (now, now > 0),
            Some(s) => {
                // The change counter restarts with the process.
                let since = if now >= s.changes_at_analyze {
                    now - s.changes_at_analyze
                } else {
                    now
                };
                (since, since as f64 > self.analyze_threshold(def))
            }
        }
    }

    /// How many changed rows make `def`'s statistics stale: [`Router::autoanalyze_fraction`]
    /// of its rows at the last `ANALYZE`, at least 50.
    pub fn analyze_threshold(&self, def: &TableDef) -> f64 {
        self.table_stats(def)
            .map_or(0.0, |s| s.row_count * self.autoanalyze_fraction)
            .max(50.0)
    }

    /// Estimates a scan of `def` reading columns `read` with `filters`, through `ranges`.
    #[allow(clippy::too_many_arguments)] // the scan's own arguments, as DataFusion gives them
    pub fn estimate(
        &self,
        def: &TableDef,
        table_rows: f64,
        stats: Option<&TableStats>,
        read: &[usize],
        filters: &[Expr],
        ranges: &ScanRanges,
        limit: Option<usize>,
    ) -> ScanEstimate {
        let empty;
        let stats = match stats {
            Some(s) => s,
            None => {
                empty = TableStats {
                    table_id: def.id,
                    storage_id: def.storage_id,
                    table: def.name.clone(),
                    row_count: table_rows,
                    analyzed_at_ms: 0,
                    changes_at_analyze: 0,
                    rows_read: 0.0,
                    columns: Default::default(),
                };
                &empty
            }
        };
        let width = |c: usize| -> f64 {
            def.columns.get(c).map_or(8.0, |col| {
                stats
                    .columns
                    .get(&col.name)
                    .map(|s| s.avg_width)
                    .filter(|w| *w > 0.0)
                    .unwrap_or_else(|| default_width(&col.ty))
            })
        };
        let selectivity = stats.selectivity(filters);
        // Filters on the columns of the access path decide how many rows it reads.
        let on_columns = |cols: &[usize]| -> f64 {
            let names: HashSet<&str> = cols
                .iter()
                .filter_map(|&c| def.columns.get(c).map(|d| d.name.as_str()))
                .collect();
            let mine: Vec<Expr> = filters
                .iter()
                .filter(|f| {
                    let refs = f.column_refs();
                    !refs.is_empty() && refs.iter().all(|c| names.contains(c.name.as_str()))
                })
                .cloned()
                .collect();
            stats.selectivity(&mine)
        };
        let seeks = ranges.ranges.len() as f64;
        let (mut rows_read, key_sel) = match &ranges.access {
            _ if ranges.ranges.is_empty() => (0.0, 0.0),
            _ if ranges.kind == ScanKind::PkPoints => (
                seeks.min(table_rows),
                (seeks / table_rows.max(1.0)).min(1.0),
            ),
            _ if ranges.kind == ScanKind::PkRange => {
                let s = on_columns(&def.primary_key);
                (table_rows * s, s)
            }
            Access::Index(idx) => {
                let s = on_columns(&idx.columns);
                (table_rows * s, s)
            }
            Access::PrimaryKey => (table_rows, 1.0),
        };
        let residual = if key_sel > 0.0 {
            (selectivity / key_sel).min(1.0)
        } else {
            1.0
        };
        let mut out_rows = (table_rows * selectivity).min(rows_read * residual.max(0.0));
        if let Some(l) = limit {
            let l = l as f64;
            rows_read = rows_read.min(l / residual.max(1e-9));
            out_rows = out_rows.min(l);
        }
        let index_lookups = if matches!(ranges.access, Access::Index(_)) {
            rows_read
        } else {
            0.0
        };
        let filter_terms = filters
            .iter()
            .map(|f| datafusion::logical_expr::utils::split_conjunction(f).len())
            .sum::<usize>() as f64;
        ScanEstimate {
            table_rows,
            out_rows,
            row: RowWork {
                seeks,
                rows_read,
                row_bytes: (0..def.columns.len()).map(width).sum(),
                index_lookups,
                filter_terms,
            },
            filter_terms,
            selectivity,
            read_bytes: read
                .iter()
                .filter(|&&c| c < def.columns.len())
                .map(|&c| width(c))
                .sum(),
        }
    }

    /// The calibrated cost of a row scan.
    pub fn row_cost(&self, w: &RowWork) -> (CostParts, f64) {
        let parts = self.calibrator.constants.row(w);
        (parts, self.calibrator.scales(Replica::Row).apply(&parts))
    }

    /// The calibrated cost of a column scan.
    pub fn column_cost(&self, w: &ColumnWork) -> (CostParts, f64) {
        let parts = self.calibrator.constants.column(w);
        (parts, self.calibrator.scales(Replica::Column).apply(&parts))
    }

    /// Logs a statement the SQL layer ran on its fast path: one primary-key point read or
    /// write on the row replica, no scan plan. Its cost is the row model's point read; it
    /// does not calibrate (it is not a scan the model chose).
    pub fn log_fast_path(
        &self,
        query: Arc<str>,
        table: &str,
        reason: String,
        rows: u64,
        elapsed: std::time::Duration,
    ) {
        let (parts, cost) = self.row_cost(&RowWork {
            seeks: 1.0,
            rows_read: 1.0,
            ..RowWork::default()
        });
        let timing = crate::routing::ScanTiming::new(1, std::time::Duration::ZERO);
        timing.add(rows, elapsed);
        self.log.push(Arc::new(RouteRecord::new(
            self.next_id(),
            query,
            table.to_string(),
            Replica::Row,
            reason,
            1.0,
            cost,
            None,
            parts,
            timing,
            std::sync::Weak::new(),
        )));
    }

    /// The least a column scan can cost (its start-up).
    pub fn column_floor(&self) -> f64 {
        self.calibrator.constants.col_startup_us * self.calibrator.scales(Replica::Column).fixed
    }

    /// Called when every partition of a routed scan has reported: calibrates, and runs the
    /// sampled scan of the other replica, if any.
    pub(crate) fn scan_finished(&self, r: &RouteRecord, sample: Option<Sample>) {
        if let Some((_, us)) = r.actual() {
            self.calibrator.observe(r.replica, r.parts, us);
        }
        let Some(sample) = sample else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(run_to_end(sample.plan));
    }
}

/// Runs every partition of `plan` and discards the rows (a sampled scan reports its own
/// time through its observer).
async fn run_to_end(plan: Arc<dyn ExecutionPlan>) {
    let ctx = Arc::new(TaskContext::default());
    for p in 0..plan.properties().partitioning.partition_count() {
        match plan.execute(p, ctx.clone()) {
            Ok(mut s) => {
                while let Some(b) = s.next().await {
                    if b.is_err() {
                        break;
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "sampled scan failed"),
        }
    }
}
