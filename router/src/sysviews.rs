//! DuetDB's system views, in the `duet` schema: `duet.cluster` (per member: its replicas,
//! addresses, state, whether it leads, how far it has the log), `duet.replicas` (per table: its column
//! replica, state, build progress, the learner's applied index against the leader's commit
//! index, lag, delta and stable sizes) and `duet.routing_log` (the router's recent
//! decisions with both costs, estimated and actual rows, actual time and regret) and
//! `duet.gc` (the row replica's MVCC garbage collection: safe point, its age, what was
//! removed) and `duet.stats` (per analyzed column: what ANALYZE found, as the router's
//! estimates use it). Rows are computed when the view is scanned.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// One row of `duet.replicas`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplicaRow {
    pub table_name: String,
    pub column_replica: bool,
    /// `available`, `building`, `none` (no column replica) or `down` (learner not running).
    pub state: String,
    pub progress: f64,
    pub applied_index: u64,
    pub commit_index: u64,
    pub lag_entries: u64,
    pub lag_ms: u64,
    pub delta_rows: u64,
    pub stable_rows: u64,
}

/// One row of `duet.cluster`: a member of the cluster (the one process, embedded).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberRow {
    pub member_id: u64,
    /// `row`, `column` or `row+column`.
    pub replicas: String,
    pub raft_addr: String,
    pub sql_addr: String,
    /// `up`, `down`, `catching up`, `snapshotting`, or `unknown` (asked of a member that
    /// does not lead: only the leader follows the others).
    pub state: String,
    pub leader: bool,
    pub term: u64,
    /// The row replica's last index (its applied index on the member asked, the index
    /// the leader knows is in its log for the others).
    pub applied_index: u64,
    pub commit_index: u64,
    pub lag_entries: u64,
    /// The column replica's last index the same way (NULL without one).
    pub column_index: Option<u64>,
    /// How long the oldest commit the column replica had not applied had been committed
    /// (0: caught up), when last known: this member's own, or another's as it answered
    /// its last status request (every 300 ms). NULL without a column replica or unknown.
    pub column_lag_ms: Option<u64>,
}

/// The one row of `duet.gc`: the row replica's MVCC garbage collection on this member.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GcRow {
    /// Versions older than this that a newer one at or below it shadows are removed.
    pub safe_point: u64,
    /// How long ago the safe point's version was current (NULL before the first one).
    pub safe_point_age_ms: Option<u64>,
    pub current_version: u64,
    /// `gc_life_time`: how long a replaced version stays readable.
    pub life_time_ms: u64,
    pub versions_removed: u64,
    pub tombstones_removed: u64,
    pub bytes_removed: u64,
}

/// Where the rows come from (the process's replicas).
pub trait ReplicaInfo: Send + Sync {
    fn replica_rows(&self) -> Vec<ReplicaRow>;
    /// This member's row replica's garbage collection (none without a row replica).
    fn gc_rows(&self) -> Vec<GcRow> {
        vec![]
    }
    /// The members of the cluster, as this process knows them.
    fn member_rows(&self) -> Vec<MemberRow> {
        vec![]
    }
    /// The byte budget of this member's column cache (none without a column replica).
    fn column_cache_size(&self) -> Option<u64> {
        None
    }
}

fn cluster_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Int64, false),
        Field::new("replicas", DataType::Utf8, false),
        Field::new("raft_addr", DataType::Utf8, false),
        Field::new("sql_addr", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("leader", DataType::Boolean, false),
        Field::new("term", DataType::Int64, false),
        Field::new("applied_index", DataType::Int64, false),
        Field::new("commit_index", DataType::Int64, false),
        Field::new("lag_entries", DataType::Int64, false),
        Field::new("column_index", DataType::Int64, true),
        Field::new("column_lag_ms", DataType::Int64, true),
    ]))
}

/// The rows of `duet.cluster`.
fn cluster_batch(info: &dyn ReplicaInfo, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let rows = info.member_rows();
    let int = |f: fn(&MemberRow) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| f(r).min(i64::MAX as u64) as i64),
        ))
    };
    let text = |f: fn(&MemberRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        int(|r| r.member_id),
        text(|r| &r.replicas),
        text(|r| &r.raft_addr),
        text(|r| &r.sql_addr),
        text(|r| &r.state),
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| r.leader).collect::<Vec<_>>(),
        )),
        int(|r| r.term),
        int(|r| r.applied_index),
        int(|r| r.commit_index),
        int(|r| r.lag_entries),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.column_index.map(|v| v as i64)),
        )),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.column_lag_ms.map(|v| v as i64)),
        )),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn replicas_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_replica", DataType::Boolean, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("progress", DataType::Float64, false),
        Field::new("applied_index", DataType::Int64, false),
        Field::new("commit_index", DataType::Int64, false),
        Field::new("lag_entries", DataType::Int64, false),
        Field::new("lag_ms", DataType::Int64, false),
        Field::new("delta_rows", DataType::Int64, false),
        Field::new("stable_rows", DataType::Int64, false),
    ]))
}

fn gc_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("safe_point", DataType::Int64, false),
        Field::new("safe_point_age_ms", DataType::Int64, true),
        Field::new("current_version", DataType::Int64, false),
        Field::new("life_time_ms", DataType::Int64, false),
        Field::new("versions_removed", DataType::Int64, false),
        Field::new("tombstones_removed", DataType::Int64, false),
        Field::new("bytes_removed", DataType::Int64, false),
    ]))
}

fn gc_batch(info: &dyn ReplicaInfo, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let rows = info.gc_rows();
    let int = |f: fn(&GcRow) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| f(r).min(i64::MAX as u64) as i64),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        int(|r| r.safe_point),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| {
            r.safe_point_age_ms.map(|v| v.min(i64::MAX as u64) as i64)
        }))),
        int(|r| r.current_version),
        int(|r| r.life_time_ms),
        int(|r| r.versions_removed),
        int(|r| r.tombstones_removed),
        int(|r| r.bytes_removed),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Computes a view's rows (as one batch of the given schema).
type RowsFn = Box<dyn Fn(&SchemaRef) -> DfResult<RecordBatch> + Send + Sync>;

/// A system view: its rows are computed by `rows` each time it is scanned.
pub struct ComputedView {
    name: &'static str,
    schema: SchemaRef,
    rows: RowsFn,
}

impl fmt::Debug for ComputedView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "duet.{}", self.name)
    }
}

#[async_trait]
impl TableProvider for ComputedView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = (self.rows)(&self.schema)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// The rows of `duet.replicas`.
fn replicas_batch(info: &dyn ReplicaInfo, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let rows = info.replica_rows();
    let int = |f: fn(&ReplicaRow) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| f(r).min(i64::MAX as u64) as i64),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.table_name.as_str()),
        )),
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| r.column_replica).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.state.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.progress),
        )),
        int(|r| r.applied_index),
        int(|r| r.commit_index),
        int(|r| r.lag_entries),
        int(|r| r.lag_ms),
        int(|r| r.delta_rows),
        int(|r| r.stable_rows),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn routing_log_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "at",
            DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("query", DataType::Utf8, false),
        Field::new("fingerprint", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("engine", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("est_rows", DataType::Float64, false),
        Field::new("cost_row_us", DataType::Float64, false),
        Field::new("cost_column_us", DataType::Float64, true),
        Field::new("actual_rows", DataType::Int64, true),
        Field::new("actual_us", DataType::Float64, true),
        Field::new("other_us", DataType::Float64, true),
        Field::new("regret_us", DataType::Float64, true),
    ]))
}

/// The rows of `duet.routing_log`, oldest first.
fn routing_log_batch(router: &crate::Router, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let rows = router.log.entries();
    let float = |f: fn(&crate::routing::RouteEntry) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from_iter(rows.iter().map(f)))
    };
    let text = |f: fn(&crate::routing::RouteEntry) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.id as i64),
        )),
        Arc::new(
            datafusion::arrow::array::TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.at_ms as i64),
            ),
        ),
        text(|r| &r.query),
        text(|r| &r.fingerprint),
        text(|r| &r.table),
        text(|r| r.engine.label()),
        text(|r| &r.reason),
        float(|r| Some(r.est_rows)),
        float(|r| Some(r.cost_row_us)),
        float(|r| r.cost_column_us),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.actual_rows.map(|v| v as i64)),
        )),
        float(|r| r.actual_us),
        float(|r| r.other_us),
        float(|r| r.regret_us),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn stats_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new(
            "analyzed_at",
            DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("table_rows", DataType::Float64, false),
        Field::new("rows_read", DataType::Float64, false),
        Field::new("null_frac", DataType::Float64, false),
        Field::new("n_distinct", DataType::Float64, false),
        Field::new("avg_width", DataType::Float64, false),
        Field::new("min_value", DataType::Utf8, true),
        Field::new("max_value", DataType::Utf8, true),
        Field::new("most_common_vals", DataType::Utf8, false),
        Field::new("most_common_freqs", DataType::Utf8, false),
        Field::new("histogram_buckets", DataType::Int64, false),
    ]))
}

fn stat_text(v: &crate::stats::StatValue) -> String {
    match v {
        crate::stats::StatValue::Num(n) => n.to_string(),
        crate::stats::StatValue::Str(s) => s.clone(),
    }
}

/// The rows of `duet.stats`: every column of every table with statistics, in table and
/// column order. Values are as the statistics keep them (dates as days since 1970,
/// timestamps as microseconds, decimals and booleans as numbers).
fn stats_batch(router: &crate::Router, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let mut tables: Vec<_> = router
        .store()
        .tables()
        .into_iter()
        .filter(|t| t.view.is_none())
        .filter_map(|def| router.table_stats(&def).map(|s| (def, s)))
        .collect();
    tables.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let rows: Vec<_> = tables
        .iter()
        .flat_map(|(def, stats)| {
            def.columns.iter().filter_map(move |c| {
                stats
                    .columns
                    .get(&c.name)
                    .map(|cs| (stats.as_ref(), c.name.as_str(), cs))
            })
        })
        .collect();
    let text = |f: &dyn Fn(&crate::stats::ColumnStats) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from_iter(rows.iter().map(|(_, _, c)| f(c))))
    };
    let float = |f: &dyn Fn(&crate::stats::TableStats, &crate::stats::ColumnStats) -> f64| {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(t, _, c)| f(t, c)),
        )) as ArrayRef
    };
    let list = |items: Vec<String>| format!("{{{}}}", items.join(","));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(t, _, _)| t.table.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, n, _)| *n),
        )),
        Arc::new(
            datafusion::arrow::array::TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|(t, _, _)| t.analyzed_at_ms as i64),
            ),
        ),
        float(&|t, _| t.row_count),
        float(&|t, _| t.rows_read),
        float(&|_, c| c.null_frac),
        float(&|_, c| c.ndv),
        float(&|_, c| c.avg_width),
        text(&|c| c.min.as_ref().map(stat_text)),
        text(&|c| c.max.as_ref().map(stat_text)),
        text(&|c| Some(list(c.mcv.iter().map(|(v, _)| stat_text(v)).collect()))),
        text(&|c| Some(list(c.mcv.iter().map(|(_, f)| format!("{f:.4}")).collect()))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter()
                .map(|(_, _, c)| c.histogram.len().saturating_sub(1) as i64),
        )),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The `duet` schema.
pub struct SystemSchema {
    replicas: Arc<ComputedView>,
    cluster: Arc<ComputedView>,
    routing_log: Arc<ComputedView>,
    gc: Arc<ComputedView>,
    stats: Arc<ComputedView>,
}

impl fmt::Debug for SystemSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("duet schema")
    }
}

impl SystemSchema {
    /// The schema's name.
    pub const NAME: &'static str = "duet";

    pub fn new(info: Arc<dyn ReplicaInfo>, router: crate::RouterRef) -> Self {
        let members = info.clone();
        let gc_info = info.clone();
        let stats_router = router.clone();
        Self {
            stats: Arc::new(ComputedView {
                name: "stats",
                schema: stats_schema(),
                rows: Box::new(move |schema| stats_batch(&stats_router, schema)),
            }),
            gc: Arc::new(ComputedView {
                name: "gc",
                schema: gc_schema(),
                rows: Box::new(move |schema| gc_batch(gc_info.as_ref(), schema)),
            }),
            replicas: Arc::new(ComputedView {
                name: "replicas",
                schema: replicas_schema(),
                rows: Box::new(move |schema| replicas_batch(info.as_ref(), schema)),
            }),
            cluster: Arc::new(ComputedView {
                name: "cluster",
                schema: cluster_schema(),
                rows: Box::new(move |schema| cluster_batch(members.as_ref(), schema)),
            }),
            routing_log: Arc::new(ComputedView {
                name: "routing_log",
                schema: routing_log_schema(),
                rows: Box::new(move |schema| routing_log_batch(&router, schema)),
            }),
        }
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        vec![
            "cluster".into(),
            "gc".into(),
            "replicas".into(),
            "routing_log".into(),
            "stats".into(),
        ]
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(match name {
            "replicas" => Some(self.replicas.clone() as Arc<dyn TableProvider>),
            "cluster" => Some(self.cluster.clone() as Arc<dyn TableProvider>),
            "routing_log" => Some(self.routing_log.clone() as Arc<dyn TableProvider>),
            "gc" => Some(self.gc.clone() as Arc<dyn TableProvider>),
            "stats" => Some(self.stats.clone() as Arc<dyn TableProvider>),
            _ => None,
        })
    }

    fn table_exist(&self, name: &str) -> bool {
        matches!(
            name,
            "cluster" | "gc" | "replicas" | "routing_log" | "stats"
        )
    }
}
