//! DataFusion catalog objects over the row store: one [`RowTableProvider`] per table,
//! resolved on each lookup from the store's catalog so DDL is visible at once.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use duet_colstore::filter::ScanFilter;
use duet_rowstore::batch::table_schema;
use duet_rowstore::{StoreRef, TableDefRef};

use crate::cost::ColumnWork;
use crate::decide::DEFAULT_TABLE_ROWS;
use crate::keyrange::{plan_ranges, ScanKind};
use crate::routing::{
    Engine, Fallback, Replica, RouteHook, RouteRecord, Sample, SampleObserver, ScanTiming,
    MAX_SAMPLE_COST_US,
};
use crate::row_scan::RowScanExec;
use crate::ScanContext;

/// Name of the extra column (encoded primary key) that DML scans carry to address rows.
pub const KEY_COLUMN: &str = "__duet_key";

/// A row-store table as DataFusion sees it.
pub struct RowTableProvider {
    def: TableDefRef,
    ctx: ScanContext,
    expose_key: bool,
    schema: SchemaRef,
}

impl fmt::Debug for RowTableProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowTableProvider")
            .field("table", &self.def.name)
            .finish()
    }
}

impl RowTableProvider {
    /// A provider for `def` that reads through the session's `ctx`.
    /// With `expose_key`, the schema ends with [`KEY_COLUMN`] (binary) and scans always read
    /// the row replica (DML addresses rows by their keys).
    pub fn new(def: TableDefRef, ctx: ScanContext, expose_key: bool) -> Self {
        let base = table_schema(&def, None);
        let schema = if expose_key {
            let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(KEY_COLUMN, DataType::Binary, false));
            Arc::new(Schema::new(fields))
        } else {
            base
        };
        Self {
            def,
            ctx,
            expose_key,
            schema,
        }
    }

    /// A column-replica scan at `view`'s snapshot, or why there cannot be one.
    async fn column_scan(
        &self,
        view: &duet_rowstore::ReadView,
        filter: &ScanFilter,
        limit: Option<usize>,
        partitions: usize,
    ) -> Result<duet_colstore::ColumnScanExec, (Fallback, String)> {
        if view.has_writes() {
            return Err((
                Fallback::UncommittedWrites,
                "the transaction has uncommitted writes, which only the row replica holds".into(),
            ));
        }
        let Some(columns) = self.ctx.columns.get() else {
            return Err((
                Fallback::ReplicaDown,
                "the column replica is not running".into(),
            ));
        };
        // Both replicas read the same snapshot: the version the row replica would read,
        // which the leader has committed; the learner must have applied it.
        let version = view.snapshot().get();
        let wait = self.ctx.route.settings.lock().learner_wait;
        if !columns.wait_applied(version, wait).await {
            return Err((
                Fallback::WaitTimeout,
                format!(
                    "the learner did not reach version {version} within {} ms (it is at {})",
                    wait.as_millis(),
                    columns.applied()
                ),
            ));
        }
        self.column_scan_now(view, filter, limit, partitions)
            .map_err(|why| (Fallback::NotAvailable, why))
    }

    /// The table definition this provider was resolved with.
    pub fn def(&self) -> &TableDefRef {
        &self.def
    }
}

#[async_trait]
impl TableProvider for RowTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters narrow the key ranges. Those a scan can evaluate itself it does, exactly
        // (`ScanFilter`); DataFusion evaluates the others above the scan.
        Ok(filters
            .iter()
            .map(|f| {
                if duet_colstore::filter::evaluable(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = projection.cloned().unwrap_or(all);
        let filter = ScanFilter::new(state, &self.schema, &projection, filters)?;
        let ranges = plan_ranges(&self.def, filters);
        let view = self.ctx.view.lock().clone().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "table {} scanned outside a transaction",
                self.def.name
            ))
        })?;
        if self.expose_key {
            // DML addresses rows by key: always the row replica, and not a routing decision.
            return Ok(Arc::new(RowScanExec::new(
                view,
                self.def.clone(),
                ranges,
                filter,
                limit,
            )));
        }
        let partitions = state.config().target_partitions();
        self.route(view, ranges, filter, filters, limit, partitions)
            .await
    }
}

/// What the router settled on before building the scan.
enum Want {
    Row(String),
    Column(String),
    Cost,
}

impl RowTableProvider {
    /// Chooses the replica of one scan (hint, then session setting, then cost), builds the
    /// scan, and records the decision in the routing log.
    async fn route(
        &self,
        view: duet_rowstore::ReadView,
        ranges: crate::keyrange::ScanRanges,
        filter: ScanFilter,
        filters: &[Expr],
        limit: Option<usize>,
        partitions: usize,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let router = &self.ctx.router;
        let settings = self.ctx.route.settings.lock().clone();
        let statement = self.ctx.route.statement.lock().clone();
        let columns = self.ctx.columns.get();
        let column_possible = self.def.columnar && columns.is_some();

        let mut want = Want::Cost;
        match statement.hints.for_table(&self.def.name) {
            Some(Engine::Row) => want = Want::Row("hint".into()),
            Some(Engine::Column) if column_possible => want = Want::Column("hint".into()),
            Some(Engine::Column) => self.notice(format!(
                "hint engine(column) for table \"{}\" is ignored: {}",
                self.def.name,
                if self.def.columnar {
                    "the column replica is not running"
                } else {
                    "the table has no column replica"
                }
            )),
            Some(Engine::Auto) | None => {}
        }
        if matches!(want, Want::Cost) {
            want = match settings.engine {
                Engine::Row => Want::Row("session setting".into()),
                Engine::Column => Want::Column("session setting".into()),
                Engine::Auto => Want::Cost,
            };
        }

        // Estimates (always: EXPLAIN and the log show both costs).
        let stats = router.table_stats(&self.def);
        let counts = columns.as_ref().and_then(|c| c.row_counts(self.def.id));
        let table_rows = match (counts, &stats) {
            (Some((stable, delta)), _) => (stable + delta) as f64,
            (None, Some(s)) => s.row_count,
            (None, None) => DEFAULT_TABLE_ROWS,
        };
        let est = router.estimate(
            &self.def,
            table_rows,
            stats.as_deref(),
            &filter.read,
            filters,
            &ranges,
            limit,
        );
        let (row_parts, row_cost) = router.row_cost(&est.row);
        let version = view.snapshot().get();
        let learner_ready = columns.as_ref().is_some_and(|c| c.applied() >= version);
        let column_work = |stable_rows: f64, delta_rows: f64, parts: usize, wait: f64| {
            let limited = |r: f64| match limit {
                Some(l) => r.min(l as f64 / est.selectivity.max(1e-9)),
                None => r,
            };
            ColumnWork {
                rows: limited(stable_rows),
                read_bytes: est.read_bytes,
                delta_rows,
                partitions: parts as f64,
                filter_terms: est.filter_terms,
                lag_wait_us: wait,
            }
        };
        let wait = if learner_ready {
            0.0
        } else {
            router.expected_lag_us()
        };
        // A built column scan knows the rows it will read after pruning.
        let built_cost = |plan: &duet_colstore::ColumnScanExec| {
            let (stable, delta) = plan.rows_to_read();
            router.column_cost(&column_work(
                stable as f64,
                delta as f64,
                plan.partitions(),
                0.0,
            ))
        };
        let (stable_rows, delta_rows) =
            counts.map_or((table_rows, 0.0), |(s, d)| (s as f64, d as f64));
        let mut column_estimate = column_possible
            .then(|| router.column_cost(&column_work(stable_rows, delta_rows, partitions, wait)));

        let access_reason = || -> String {
            match ranges.kind {
                ScanKind::PkPoints => "pk point lookup",
                ScanKind::PkRange => "pk range",
                ScanKind::IndexRange => "index range",
                ScanKind::FullScan => "cost",
            }
            .into()
        };
        let mut column_plan: Option<duet_colstore::ColumnScanExec> = None;
        // Time spent building the column scan at planning (part of its cost).
        let mut setup = Duration::ZERO;
        let (replica, reason) = match want {
            Want::Row(r) => (Replica::Row, r),
            Want::Column(r) => (Replica::Column, r),
            Want::Cost if !column_possible => (
                Replica::Row,
                if self.def.columnar {
                    "column replica down".into()
                } else {
                    "no column replica".into()
                },
            ),
            Want::Cost if view.has_writes() => (Replica::Row, "uncommitted writes".into()),
            Want::Cost if row_cost <= router.column_floor() => (Replica::Row, access_reason()),
            // A primary-key point lookup cheaper than the column replica's documented
            // start-up stays on the row replica whatever the calibration says: part of a
            // column plan's overhead (repartitioning, its tasks) is outside the scan's own
            // time, which is all calibration sees.
            Want::Cost
                if ranges.kind == ScanKind::PkPoints
                    && row_cost <= router.calibrator.constants.col_startup_us =>
            {
                (Replica::Row, access_reason())
            }
            Want::Cost => {
                // Close enough to matter: with the learner caught up, build the column
                // scan now (its zone-map pruning tells how many rows it would really read).
                if learner_ready {
                    let started = Instant::now();
                    let built = self.column_scan_now(&view, &filter, limit, partitions);
                    setup = started.elapsed();
                    if let Ok(plan) = built {
                        column_estimate = Some(built_cost(&plan));
                        column_plan = Some(plan);
                    }
                }
                match column_estimate {
                    Some((_, c)) if c < row_cost => (Replica::Column, "cost".into()),
                    _ => (Replica::Row, access_reason()),
                }
            }
        };

        let mut fallback = None;
        let mut chosen: Option<duet_colstore::ColumnScanExec> = None;
        let mut chosen_partitions = 1;
        let mut chosen_parts = row_parts;
        let mut final_replica = Replica::Row;
        let mut final_reason = reason.clone();
        if replica == Replica::Column {
            let built = match column_plan.take() {
                Some(p) => Ok(p),
                None => {
                    let started = Instant::now();
                    let built = self.column_scan(&view, &filter, limit, partitions).await;
                    setup = started.elapsed();
                    built
                }
            };
            match built {
                Ok(plan) => {
                    self.ctx.columns.count_scan();
                    let (parts, cost) = built_cost(&plan);
                    column_estimate = Some((parts, cost));
                    chosen_parts = parts;
                    chosen_partitions = plan.partitions();
                    final_replica = Replica::Column;
                    chosen = Some(plan);
                }
                Err((why, message)) => {
                    self.ctx.columns.count_fallback(why);
                    tracing::debug!(table = %self.def.name, reason = %message, "column scan fell back to the row replica");
                    self.notice(format!(
                        "table \"{}\" is read from the row replica: {message}",
                        self.def.name
                    ));
                    final_reason = format!("{reason}; fell back: {}", why.label());
                    fallback = Some(message);
                }
            }
        }

        let record = Arc::new(RouteRecord::new(
            router.next_id(),
            statement.text.clone(),
            self.def.name.clone(),
            final_replica,
            final_reason,
            est.out_rows,
            row_cost,
            column_estimate.map(|(_, c)| c),
            chosen_parts,
            ScanTiming::new(
                chosen_partitions,
                if final_replica == Replica::Column {
                    setup
                } else {
                    Duration::ZERO
                },
            ),
            Arc::downgrade(router),
        ));

        // Sampling: also run the other replica afterwards, when it is cheap enough.
        let mut sample = None;
        if settings.sample_rate > 0.0 && router.random() < settings.sample_rate {
            sample = self.sample(
                &record,
                &view,
                &ranges,
                &filter,
                limit,
                partitions,
                row_parts,
                row_cost,
                column_estimate,
                learner_ready,
            );
        }
        router.log.push(record.clone());
        let hook = Arc::new(RouteHook {
            record,
            sample: parking_lot::Mutex::new(sample),
        });

        // What DataFusion sees of the scan's output: the router's rows and, from ANALYZE,
        // each output column's distinct values, at most the rows (it sizes and orders joins
        // with them).
        let estimates = duet_colstore::scan::Estimates {
            rows: est.out_rows,
            distinct: filter
                .output_schema
                .fields()
                .iter()
                .map(|f| {
                    stats
                        .as_ref()
                        .and_then(|s| s.columns.get(f.name()))
                        .map(|c| c.ndv)
                })
                .collect(),
        };
        let plan: Arc<dyn ExecutionPlan> = match chosen {
            Some(p) => Arc::new(p.with_observer(hook).with_estimates(estimates)),
            None => Arc::new(
                RowScanExec::new(view, self.def.clone(), ranges, filter, limit)
                    .with_fallback(fallback)
                    .with_observer(hook)
                    .with_estimates(estimates),
            ),
        };
        Ok(plan)
    }

    fn notice(&self, message: String) {
        self.ctx.route.notices.lock().push(message);
    }

    /// A column scan at `view`'s version without waiting for the learner.
    fn column_scan_now(
        &self,
        view: &duet_rowstore::ReadView,
        filter: &ScanFilter,
        limit: Option<usize>,
        partitions: usize,
    ) -> Result<duet_colstore::ColumnScanExec, String> {
        let columns = self
            .ctx
            .columns
            .get()
            .ok_or("the column replica is not running")?;
        let version = view.snapshot().get();
        let snapshot = columns.snapshot(&self.def, version)?;
        Ok(duet_colstore::ColumnScanExec::new(
            snapshot,
            version,
            filter.clone(),
            limit,
            partitions,
        ))
    }

    /// The same scan on the other replica, to run after the chosen one (if it is cheap
    /// enough and possible without waiting).
    #[allow(clippy::too_many_arguments)]
    fn sample(
        &self,
        record: &Arc<RouteRecord>,
        view: &duet_rowstore::ReadView,
        ranges: &crate::keyrange::ScanRanges,
        filter: &ScanFilter,
        limit: Option<usize>,
        partitions: usize,
        row_parts: crate::cost::CostParts,
        row_cost: f64,
        column_estimate: Option<(crate::cost::CostParts, f64)>,
        learner_ready: bool,
    ) -> Option<Sample> {
        let plan: Option<Arc<dyn ExecutionPlan>> = match record.replica {
            Replica::Column if row_cost <= MAX_SAMPLE_COST_US => {
                let obs = SampleObserver::new(
                    record,
                    Replica::Row,
                    row_parts,
                    ScanTiming::new(1, Duration::ZERO),
                );
                Some(Arc::new(
                    RowScanExec::new(
                        view.clone(),
                        self.def.clone(),
                        ranges.clone(),
                        filter.clone(),
                        limit,
                    )
                    .with_observer(Arc::new(obs)),
                ))
            }
            Replica::Row if learner_ready && !view.has_writes() => match column_estimate {
                Some((parts, cost)) if cost <= MAX_SAMPLE_COST_US => {
                    let started = Instant::now();
                    let built = self.column_scan_now(view, filter, limit, partitions);
                    let setup = started.elapsed();
                    built.ok().map(|p| {
                        let obs = SampleObserver::new(
                            record,
                            Replica::Column,
                            parts,
                            ScanTiming::new(p.partitions(), setup),
                        );
                        Arc::new(p.with_observer(Arc::new(obs))) as Arc<dyn ExecutionPlan>
                    })
                }
                _ => None,
            },
            _ => None,
        };
        plan.map(|plan| Sample { plan })
    }
}

/// The `public` schema: every table of the store.
pub struct RowSchemaProvider {
    store: StoreRef,
    ctx: ScanContext,
    expose_key: bool,
    listed: bool,
}

impl fmt::Debug for RowSchemaProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RowSchemaProvider")
    }
}

impl RowSchemaProvider {
    /// The user-visible schema.
    pub fn new(store: StoreRef, ctx: ScanContext) -> Self {
        Self {
            store,
            ctx,
            expose_key: false,
            listed: true,
        }
    }

    /// A schema that is never listed and whose tables carry [`KEY_COLUMN`]: DML statements
    /// read the rows they change through it.
    pub fn for_dml(store: StoreRef, ctx: ScanContext) -> Self {
        Self {
            store,
            ctx,
            expose_key: true,
            listed: false,
        }
    }
}

#[async_trait]
impl SchemaProvider for RowSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        if !self.listed {
            return vec![];
        }
        self.store.tables().iter().map(|t| t.name.clone()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(self.store.table(name).map(|def| {
            Arc::new(RowTableProvider::new(
                def,
                self.ctx.clone(),
                self.expose_key,
            )) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.store.table(name).is_some()
    }
}

/// The database's catalog: lists its user-visible schemas (`public`, and `pg_catalog` once
/// registered) and also resolves hidden schemas that never appear in listings (the DML
/// schema whose tables carry [`KEY_COLUMN`], and a per-session scratch schema).
#[derive(Debug)]
pub struct DuetCatalog {
    listed: parking_lot::RwLock<std::collections::BTreeMap<String, Arc<dyn SchemaProvider>>>,
    hidden: std::collections::BTreeMap<String, Arc<dyn SchemaProvider>>,
}

impl DuetCatalog {
    /// A catalog with `listed` schemas and `hidden` ones.
    pub fn new(
        listed: Vec<(String, Arc<dyn SchemaProvider>)>,
        hidden: Vec<(String, Arc<dyn SchemaProvider>)>,
    ) -> Self {
        Self {
            listed: parking_lot::RwLock::new(listed.into_iter().collect()),
            hidden: hidden.into_iter().collect(),
        }
    }
}

impl CatalogProvider for DuetCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.listed.read().keys().cloned().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.listed
            .read()
            .get(name)
            .cloned()
            .or_else(|| self.hidden.get(name).cloned())
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        Ok(self.listed.write().insert(name.to_string(), schema))
    }

    fn deregister_schema(
        &self,
        name: &str,
        _cascade: bool,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        Ok(self.listed.write().remove(name))
    }
}
