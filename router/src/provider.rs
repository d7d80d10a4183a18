//! DataFusion catalog objects over the row store: one [`RowTableProvider`] per table,
//! resolved on each lookup from the store's catalog so DDL is visible at once.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{Constraint, Constraints, DataFusionError, Result as DfResult};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use duet_colstore::remote::{RemoteColumnScanExec, RemoteColumns, RemoteMember};
use duet_colstore::ColumnScanExec;
use duet_common::batch::table_schema;
use duet_common::filter::ScanFilter;
use duet_common::scan::Estimates;
use duet_common::TableDefRef;
use duet_rowstore::StoreRef;

use crate::cost::{ColumnWork, CostParts};
use crate::decide::{by_cost, decide, fell_back, Inputs, Reason, Step};
use crate::estimate::{ScanEstimate, DEFAULT_TABLE_ROWS};
use crate::keyrange::plan_ranges;
use crate::routing::{
    Fallback, Replica, RouteHook, RouteRecord, Sample, SampleObserver, ScanTiming,
    MAX_SAMPLE_COST_US,
};
use crate::row_scan::RowScanExec;
use crate::stats::TableStats;
use crate::ScanContext;

/// A remote column scan's fixed cost (a connection and a round trip to the member),
/// microseconds; not calibrated yet.
const REMOTE_SCAN_US: f64 = 300.0;
/// Microseconds per byte a remote column scan returns (Arrow IPC over the network, about
/// 500 MB/s on loopback); not calibrated yet.
const REMOTE_BYTE_US: f64 = 0.002;

/// Name of the extra column (encoded primary key) that DML scans carry to address rows.
pub const KEY_COLUMN: &str = "__duet_key";

/// A row-store table as DataFusion sees it.
pub struct RowTableProvider {
    def: TableDefRef,
    ctx: ScanContext,
    expose_key: bool,
    /// Whether the schema ends with the companions of the unconstrained `numeric` columns
    /// (their values' display scales), as [`RowTableProvider::with_companions`] makes it.
    companions: bool,
    schema: SchemaRef,
    /// The primary key, which DataFusion uses for functional dependencies (PostgreSQL's
    /// rule that `GROUP BY t.pk` lets the other columns of `t` be selected).
    constraints: Option<Constraints>,
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
        let constraints = (!def.has_hidden_rowid()).then(|| {
            Constraints::new_unverified(vec![Constraint::PrimaryKey(def.primary_key.clone())])
        });
        Self {
            def,
            ctx,
            expose_key,
            companions: false,
            schema,
            constraints,
        }
    }

    /// This provider with the companion of each unconstrained `numeric` column at the end
    /// of its schema: an `Int32` column of the values' display scales, named after the
    /// column with `duet_common::numeric::SUFFIX`; `None` when the table has no such
    /// column. A query's display-scale pass scans through it, after the optimizer, so no
    /// query sees these columns in `*`.
    pub fn with_companions(&self) -> Option<Self> {
        let scaled = self.def.scaled_columns();
        if scaled.is_empty() || self.companions {
            return None;
        }
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(
            scaled
                .iter()
                .map(|&c| duet_common::batch::companion_field(&self.def.columns[c].name)),
        );
        Some(Self {
            def: self.def.clone(),
            ctx: self.ctx.clone(),
            expose_key: self.expose_key,
            companions: true,
            schema: Arc::new(Schema::new(fields)),
            constraints: self.constraints.clone(),
        })
    }

    /// The storage position scans read for position `p` of this provider's schema: a
    /// column's own, the key column's (`def.columns.len()`), or a companion's
    /// (`duet_common::numeric::COMPANION_BASE + column`).
    fn storage_position(&self, p: usize) -> usize {
        let first_companion = self.def.columns.len() + usize::from(self.expose_key);
        if self.companions && p >= first_companion {
            let scaled = self.def.scaled_columns();
            return duet_common::numeric::COMPANION_BASE + scaled[p - first_companion];
        }
        p
    }

    /// This provider reading at `view` whatever the session's slot holds (a subquery run
    /// per outer row reads its statement's snapshot while the session moves on).
    pub fn at_view(&self, view: duet_rowstore::ReadView) -> Self {
        Self {
            def: self.def.clone(),
            ctx: ScanContext {
                view: Arc::new(parking_lot::Mutex::new(Some(view))),
                ..self.ctx.clone()
            },
            expose_key: self.expose_key,
            companions: self.companions,
            schema: self.schema.clone(),
            constraints: self.constraints.clone(),
        }
    }

    /// A column-replica scan at `view`'s snapshot, or why there cannot be one: of this
    /// process's replica, or else of another member's.
    async fn column_scan(
        &self,
        view: &duet_rowstore::ReadView,
        filter: &ScanFilter,
        limit: Option<usize>,
        partitions: usize,
        state: &dyn Session,
    ) -> Result<ColumnPlan, (Fallback, String)> {
        if view.has_writes() {
            return Err((
                Fallback::UncommittedWrites,
                "the transaction has uncommitted writes, which only the row replica holds".into(),
            ));
        }
        let Some(columns) = self.ctx.columns.get() else {
            return match self.ctx.columns.remote_for(self.def.id) {
                Some((remote, member)) => self
                    .remote_scan(&remote, member, view, filter, limit, partitions, state)
                    .await
                    .map(ColumnPlan::Remote),
                None if self.ctx.columns.has_remote() => Err((
                    Fallback::ReplicaDown,
                    "no cluster member with the column replica has the table available \
                     (or none answered lately)"
                        .into(),
                )),
                None => Err((
                    Fallback::ReplicaDown,
                    "the column replica is not running".into(),
                )),
            };
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
            .map(ColumnPlan::Local)
            .map_err(|why| (Fallback::NotAvailable, why))
    }

    /// A scan of `member`'s column replica at `view`'s version, once the member applied it
    /// (waiting `duet.learner_wait_timeout` at most).
    #[allow(clippy::too_many_arguments)]
    async fn remote_scan(
        &self,
        remote: &RemoteColumns,
        member: Arc<RemoteMember>,
        view: &duet_rowstore::ReadView,
        filter: &ScanFilter,
        limit: Option<usize>,
        partitions: usize,
        state: &dyn Session,
    ) -> Result<RemoteColumnScanExec, (Fallback, String)> {
        let version = view.snapshot().get();
        let wait = self.ctx.route.settings.lock().learner_wait;
        let member = if member.columns.applied >= version {
            member
        } else {
            let columns = remote
                .wait_applied(&member, version, wait)
                .await
                .map_err(|why| (Fallback::WaitTimeout, why))?;
            Arc::new(RemoteMember {
                columns,
                ..member.as_ref().clone()
            })
        };
        if member.row_counts(self.def.id).is_none() {
            return Err((
                Fallback::NotAvailable,
                format!(
                    "member {} has no available column replica of the table",
                    member.id
                ),
            ));
        }
        RemoteColumnScanExec::new(
            &member,
            self.def.as_ref().clone(),
            version,
            filter,
            limit,
            partitions,
            wait,
            state,
        )
        .map_err(|e| {
            (
                Fallback::NotAvailable,
                format!(
                    "the scan's filter cannot be sent to member {}: {e}",
                    member.id
                ),
            )
        })
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

    fn constraints(&self) -> Option<&Constraints> {
        self.constraints.as_ref()
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
                if duet_common::filter::evaluable(f) {
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
        let mut filter = ScanFilter::new(state, &self.schema, &projection, filters)?;
        if self.companions {
            for p in &mut filter.read {
                *p = self.storage_position(*p);
            }
        }
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
        self.route(view, ranges, filter, filters, limit, partitions, state)
            .await
    }
}

/// One scan's estimates on both replicas, before anything is built.
struct Costs {
    est: ScanEstimate,
    stats: Option<Arc<TableStats>>,
    row_parts: CostParts,
    row_cost: f64,
    /// The column replica's, when the table has one and the learner runs.
    column: Option<(CostParts, f64)>,
    /// Whether the learner has applied the scan's version (a column scan need not wait).
    learner_ready: bool,
    /// The member whose column replica a column scan would read (none: this process's).
    remote: Option<Arc<RemoteMember>>,
}

/// A column scan of this process's replica or of another member's.
enum ColumnPlan {
    Local(ColumnScanExec),
    Remote(RemoteColumnScanExec),
}

impl ColumnPlan {
    fn partitions(&self) -> usize {
        match self {
            ColumnPlan::Local(p) => p.partitions(),
            ColumnPlan::Remote(_) => 1,
        }
    }
}

/// The scan the router ended up with.
struct Chosen {
    replica: Replica,
    reason: String,
    /// The column scan, when the column replica serves it.
    plan: Option<ColumnPlan>,
    /// Why a column choice fell back to the row replica.
    fallback: Option<String>,
    parts: CostParts,
    partitions: usize,
    /// Time spent building the column scan at planning (part of its cost).
    setup: Duration,
}

/// The column replica's work for `est`'s scan reading `stable_rows` + `delta_rows`.
fn column_work(
    est: &ScanEstimate,
    limit: Option<usize>,
    stable_rows: f64,
    delta_rows: f64,
    partitions: usize,
    lag_wait_us: f64,
) -> ColumnWork {
    let limited = |r: f64| match limit {
        Some(l) => r.min(l as f64 / est.selectivity.max(1e-9)),
        None => r,
    };
    ColumnWork {
        rows: limited(stable_rows),
        read_bytes: est.read_bytes,
        delta_rows,
        partitions: partitions as f64,
        filter_terms: est.filter_terms,
        lag_wait_us,
    }
}

impl RowTableProvider {
    /// Chooses the replica of one scan ([`decide`]: hint, then session setting, then
    /// cost), builds the scan, and records the decision in the routing log.
    #[allow(clippy::too_many_arguments)]
    async fn route(
        &self,
        view: duet_rowstore::ReadView,
        ranges: crate::keyrange::ScanRanges,
        filter: ScanFilter,
        filters: &[Expr],
        limit: Option<usize>,
        partitions: usize,
        state: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let router = &self.ctx.router;
        let settings = self.ctx.route.settings.lock().clone();
        let statement = self.ctx.route.statement.lock().clone();
        let columns = self.ctx.columns.get();
        // Always estimated: EXPLAIN and the log show both costs.
        let mut costs = self.costs(&view, &ranges, &filter, filters, limit, partitions);
        let decision = decide(&Inputs {
            table: &self.def.name,
            hint: statement.hints.for_table(&self.def.name),
            setting: settings.engine,
            columnar: self.def.columnar,
            replica_running: columns.is_some() || costs.remote.is_some(),
            has_writes: view.has_writes(),
            kind: ranges.kind,
            row_cost: costs.row_cost,
            column_floor: router.column_floor(),
            column_startup: router.calibrator.constants.col_startup_us,
        });
        if let Some(n) = decision.notice {
            self.notice(n);
        }
        let mut prebuilt = None;
        let (replica, reason) = match decision.step {
            Step::Settled(replica, reason) => (replica, reason),
            Step::CompareCosts => {
                // Close enough to matter: with the learner caught up, build the column
                // scan now (its zone-map pruning tells how many rows it would really read).
                if costs.learner_ready && costs.remote.is_none() {
                    let started = Instant::now();
                    if let Ok(plan) = self.column_scan_now(&view, &filter, limit, partitions) {
                        costs.column = Some(self.built_cost(&costs.est, &plan, limit));
                        prebuilt = Some((plan, started.elapsed()));
                    }
                }
                by_cost(ranges.kind, costs.row_cost, costs.column.map(|(_, c)| c))
            }
        };
        let chosen = self
            .build_chosen(
                replica, reason, prebuilt, &view, &filter, limit, partitions, state, &mut costs,
            )
            .await;

        let record = Arc::new(RouteRecord::new(
            router.next_id(),
            statement.text.clone(),
            self.def.name.clone(),
            chosen.replica,
            chosen.reason,
            costs.est.out_rows,
            costs.row_cost,
            costs.column.map(|(_, c)| c),
            chosen.parts,
            ScanTiming::new(chosen.partitions, chosen.setup),
            Arc::downgrade(router),
        ));
        // Sampling: also run the other replica afterwards, when it is cheap enough.
        let mut sample = None;
        if settings.sample_rate > 0.0 && router.random() < settings.sample_rate {
            sample = self.sample(&record, &view, &ranges, &filter, limit, partitions, &costs);
        }
        router.log.push(record.clone());
        let hook = Arc::new(RouteHook {
            record,
            sample: parking_lot::Mutex::new(sample),
            member: match chosen.plan {
                Some(ColumnPlan::Remote(_)) => None,
                _ => self.ctx.columns.member(),
            },
        });
        let estimates = Self::estimates(&costs, &filter);
        Ok(match chosen.plan {
            Some(ColumnPlan::Local(p)) => Arc::new(p.with_observer(hook).with_estimates(estimates)),
            Some(ColumnPlan::Remote(p)) => {
                Arc::new(p.with_observer(hook).with_estimates(estimates))
            }
            None => Arc::new(
                RowScanExec::new(view, self.def.clone(), ranges, filter, limit)
                    .with_fallback(chosen.fallback)
                    .with_observer(hook)
                    .with_estimates(estimates),
            ),
        })
    }

    /// Both replicas' estimated costs of the scan.
    fn costs(
        &self,
        view: &duet_rowstore::ReadView,
        ranges: &crate::keyrange::ScanRanges,
        filter: &ScanFilter,
        filters: &[Expr],
        limit: Option<usize>,
        partitions: usize,
    ) -> Costs {
        let router = &self.ctx.router;
        let columns = self.ctx.columns.get();
        let remote = self.ctx.columns.remote_for(self.def.id).map(|(_, m)| m);
        let stats = router.table_stats(&self.def);
        let counts = match (&columns, &remote) {
            (Some(c), _) => c.row_counts(self.def.id),
            (None, Some(m)) => m.row_counts(self.def.id),
            (None, None) => None,
        };
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
            ranges,
            limit,
        );
        let (row_parts, row_cost) = router.row_cost(&est.row);
        let version = view.snapshot().get();
        let learner_ready = match (&columns, &remote) {
            (Some(c), _) => c.applied() >= version,
            (None, Some(m)) => m.columns.applied >= version,
            (None, None) => false,
        };
        let wait = if learner_ready {
            0.0
        } else {
            router.expected_lag_us()
        };
        let (stable_rows, delta_rows) =
            counts.map_or((table_rows, 0.0), |(s, d)| (s as f64, d as f64));
        let column = (self.def.columnar && (columns.is_some() || remote.is_some())).then(|| {
            let (mut parts, mut cost) = router.column_cost(&column_work(
                &est,
                limit,
                stable_rows,
                delta_rows,
                partitions,
                wait,
            ));
            if remote.is_some() {
                // The batches cross the network (and Arrow IPC) to this member.
                let transfer = REMOTE_SCAN_US + est.out_rows * est.read_bytes * REMOTE_BYTE_US;
                parts.wait += transfer;
                cost += transfer;
            }
            (parts, cost)
        });
        Costs {
            est,
            stats,
            row_parts,
            row_cost,
            column,
            learner_ready,
            remote,
        }
    }

    /// The column cost of a built scan, which knows the rows it reads after pruning.
    fn built_cost(
        &self,
        est: &ScanEstimate,
        plan: &ColumnScanExec,
        limit: Option<usize>,
    ) -> (CostParts, f64) {
        let (stable, delta) = plan.rows_to_read();
        self.ctx.router.column_cost(&column_work(
            est,
            limit,
            stable as f64,
            delta as f64,
            plan.partitions(),
            0.0,
        ))
    }

    /// Builds the chosen scan: a column choice that cannot be served falls back to the row
    /// replica, with a notice and the reason in the log.
    #[allow(clippy::too_many_arguments)]
    async fn build_chosen(
        &self,
        replica: Replica,
        reason: Reason,
        prebuilt: Option<(ColumnScanExec, Duration)>,
        view: &duet_rowstore::ReadView,
        filter: &ScanFilter,
        limit: Option<usize>,
        partitions: usize,
        state: &dyn Session,
        costs: &mut Costs,
    ) -> Chosen {
        let row = |reason: String, fallback: Option<String>| Chosen {
            replica: Replica::Row,
            reason,
            plan: None,
            fallback,
            parts: costs.row_parts,
            partitions: 1,
            setup: Duration::ZERO,
        };
        if replica == Replica::Row {
            return row(reason.label().to_string(), None);
        }
        let built = match prebuilt {
            Some((plan, setup)) => Ok((ColumnPlan::Local(plan), setup)),
            None => {
                let started = Instant::now();
                self.column_scan(view, filter, limit, partitions, state)
                    .await
                    .map(|plan| (plan, started.elapsed()))
            }
        };
        match built {
            Ok((plan, setup)) => {
                self.ctx.columns.count_scan();
                let (parts, cost) = match &plan {
                    ColumnPlan::Local(p) => self.built_cost(&costs.est, p, limit),
                    // Estimated from the member's row counts (in `costs`).
                    ColumnPlan::Remote(_) => costs.column.unwrap_or_default(),
                };
                costs.column = Some((parts, cost));
                Chosen {
                    replica: Replica::Column,
                    reason: reason.label().to_string(),
                    partitions: plan.partitions(),
                    plan: Some(plan),
                    fallback: None,
                    parts,
                    setup,
                }
            }
            Err((why, message)) => {
                self.ctx.columns.count_fallback(why);
                tracing::debug!(table = %self.def.name, reason = %message, "column scan fell back to the row replica");
                self.notice(format!(
                    "table \"{}\" is read from the row replica: {message}",
                    self.def.name
                ));
                row(fell_back(reason, why), Some(message))
            }
        }
    }

    /// What DataFusion sees of the scan's output: the router's rows and, from ANALYZE,
    /// each output column's distinct values, at most the rows (it sizes and orders joins
    /// with them).
    fn estimates(costs: &Costs, filter: &ScanFilter) -> Estimates {
        Estimates {
            rows: costs.est.out_rows,
            distinct: filter
                .output_schema
                .fields()
                .iter()
                .map(|f| {
                    costs
                        .stats
                        .as_ref()
                        .and_then(|s| s.columns.get(f.name()))
                        .map(|c| c.ndv)
                })
                .collect(),
        }
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
    ) -> Result<ColumnScanExec, String> {
        let columns = self
            .ctx
            .columns
            .get()
            .ok_or("the column replica is not running")?;
        let version = view.snapshot().get();
        let snapshot = columns.snapshot(&self.def, version)?;
        Ok(ColumnScanExec::new(
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
        costs: &Costs,
    ) -> Option<Sample> {
        let (row_parts, row_cost) = (costs.row_parts, costs.row_cost);
        let (column_estimate, learner_ready) = (costs.column, costs.learner_ready);
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
        // Sequences are relations too (`SELECT * FROM seq` reads one), but not tables; views
        // are read through their queries (the SQL layer expands them before planning).
        self.store
            .tables()
            .iter()
            .filter(|t| t.has_rows())
            .map(|t| t.name.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(self
            .store
            .table(name)
            .filter(|d| d.view.is_none())
            .map(|def| {
                Arc::new(RowTableProvider::new(
                    def,
                    self.ctx.clone(),
                    self.expose_key,
                )) as Arc<dyn TableProvider>
            }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.store.table(name).is_some_and(|d| d.view.is_none())
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
