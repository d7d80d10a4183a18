//! DataFusion catalog objects over the row store: one [`RowTableProvider`] per table,
//! resolved on each lookup from the store's catalog so DDL is visible at once.

use std::fmt;
use std::sync::Arc;

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

use crate::keyrange::plan_ranges;
use crate::routing::{Engine, Fallback};
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
    ) -> Result<Arc<dyn ExecutionPlan>, (Fallback, String)> {
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
        let snapshot = columns
            .snapshot(&self.def, version)
            .map_err(|why| (Fallback::NotAvailable, why))?;
        Ok(Arc::new(duet_colstore::ColumnScanExec::new(
            snapshot,
            version,
            filter.clone(),
            limit,
            partitions,
        )))
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
        let engine = self.ctx.route.settings.lock().engine;
        let mut fallback = None;
        if engine == Engine::Column && !self.expose_key {
            let partitions = state.config().target_partitions();
            match self.column_scan(&view, &filter, limit, partitions).await {
                Ok(plan) => {
                    self.ctx.columns.count_scan();
                    return Ok(plan);
                }
                Err((why, message)) => {
                    self.ctx.columns.count_fallback(why);
                    tracing::debug!(table = %self.def.name, reason = %message, "column scan fell back to the row replica");
                    self.ctx.route.notices.lock().push(format!(
                        "table \"{}\" is read from the row replica: {message}",
                        self.def.name
                    ));
                    fallback = Some(message);
                }
            }
        }
        Ok(Arc::new(
            RowScanExec::new(view, self.def.clone(), ranges, filter, limit).with_fallback(fallback),
        ))
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
