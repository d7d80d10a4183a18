//! A client session: its DataFusion context, transaction state and settings, and the
//! dispatch of each parsed statement to its family:
//!
//! - [`txn`]: BEGIN/COMMIT/ROLLBACK, isolation, lock waits, and `TxnScope` (the
//!   transaction a statement writes in, its READ COMMITTED re-runs, commit or give back);
//! - [`settings`] (the typed table) and [`set_show`] (SET, SHOW);
//! - [`fast`]: primary-key point statements without DataFusion;
//! - [`for_update`]: SELECT … FOR UPDATE;
//! - queries and EXPLAIN here; DML, DDL, COPY and ANALYZE in their own modules of the crate.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{create_udf, ColumnarValue, LogicalPlan, Volatility};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DFStatement;
use duet_router::provider::{DuetCatalog, RowSchemaProvider};
use duet_router::routing::RouteSlot;
use duet_router::{ScanContext, ViewSlot};
use duet_rowstore::{StoreRef, Transaction};
use sqlparser::ast::Statement;

use crate::error::{PgError, Result, SqlState};
use crate::{ddl, dml};

mod cursor;
mod fast;
mod for_update;
mod set_show;
pub(crate) use set_show::{set_config_call, string_literal, take_set_config_calls};
pub(crate) use settings::{setting_name, shown_name};
mod settings;
pub use settings::{default_query_memory, parse_memory};
mod txn;

use settings::set_memory_limit;
pub(crate) use settings::Settings;

/// Name of the database (catalog) every session sees.
pub const DATABASE: &str = "duetdb";
/// Hidden schema through which DML statements read the rows they change.
pub const DML_SCHEMA: &str = "duet_dml";
/// Hidden per-session schema of temporary tables (RETURNING, Describe).
pub const SCRATCH_SCHEMA: &str = "duet_scratch";
/// The version string `SELECT version()` returns; drivers parse the leading part.
pub const VERSION_STRING: &str =
    concat!("PostgreSQL 15.0 (DuetDB ", env!("CARGO_PKG_VERSION"), ")");

/// What running one statement produced.
pub enum Outcome {
    /// Rows streamed from DataFusion.
    Stream {
        stream: SendableRecordBatchStream,
        tag: String,
    },
    /// Rows already computed (SHOW, RETURNING).
    Batches {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        tag: String,
    },
    /// A command without rows: its full command tag (e.g. `INSERT 0 3`).
    Command(String),
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT or ROLLBACK; the tag says which happened.
    End(&'static str),
    /// COPY … FROM STDIN started: the client sends CopyData next (`columns` wide).
    CopyIn { columns: usize, binary: bool },
    /// COPY … TO STDOUT: rows to encode and send as CopyData.
    CopyOut {
        columns: usize,
        stream: SendableRecordBatchStream,
        encoder: crate::copy::CopyOutEncoder,
    },
}

/// What sessions use of a process's replicas besides the row store: the router, the
/// column replica's handle and the replica figures of `duet.replicas`. The binary's node
/// wiring builds it; planning-only unit tests run without one.
#[derive(Clone)]
pub struct NodeServices {
    /// Statistics, cost model and routing log.
    pub router: duet_router::RouterRef,
    /// What column scans read through.
    pub columns: Arc<duet_router::routing::ColumnAccess>,
    /// Every table's replica figures (`duet.replicas`).
    pub replicas: Arc<dyn duet_router::sysviews::ReplicaInfo>,
    /// In a cluster: waits until this member has applied everything acknowledged before
    /// the call and still leads (a ReadIndex), before a statement takes its snapshot; the
    /// error says why it could not. `None`: one process, whose commits are all its own.
    pub read_barrier: Option<ReadBarrier>,
}

/// See [`NodeServices::read_barrier`].
pub type ReadBarrier = Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>;

/// Server-wide state shared by sessions.
pub struct Shared {
    pub store: StoreRef,
    /// The process's replicas (absent in planning-only unit tests).
    services: Option<NodeServices>,
    /// Every connection's cancel key, for CancelRequest.
    pub cancels: Arc<crate::cancel::CancelRegistry>,
    /// The node's router, or an in-memory one without a node.
    pub router: duet_router::RouterRef,
    /// The ranges of sequence values this process hands out.
    pub sequences: Arc<crate::sequence::Sequences>,
    /// Open connections per role.
    pub role_connections: Arc<crate::roles::RoleConnections>,
    /// This database's name, and the server's databases (set by the binary).
    name: parking_lot::RwLock<String>,
    /// Weak: the databases hold their sessions' state; the first database owns the set.
    databases: std::sync::OnceLock<std::sync::Weak<dyn crate::databases::Databases>>,
    owned_databases: std::sync::OnceLock<Arc<dyn crate::databases::Databases>>,
    /// Where roles live: the first database's store (roles belong to the server, not to a
    /// database, as in PostgreSQL).
    roles: parking_lot::RwLock<Option<StoreRef>>,
    /// Client sessions open on this database (logged in).
    sessions: std::sync::atomic::AtomicUsize,
    /// DROP DATABASE took it: no session may log in any more.
    dropped: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// What column scans read through (`None` in planning-only unit tests).
    pub(crate) fn column_access(&self) -> Option<&Arc<duet_router::routing::ColumnAccess>> {
        self.services.as_ref().map(|s| &s.columns)
    }

    /// Shared state for sessions on `store` (and a node's replicas).
    pub fn new(store: StoreRef, services: Option<NodeServices>) -> SharedRef {
        let router = match &services {
            Some(s) => s.router.clone(),
            None => duet_router::Router::open(store.clone(), None)
                .expect("an in-memory router opens no file"),
        };
        Arc::new(Self {
            store,
            services,
            cancels: Arc::default(),
            router,
            sequences: Arc::default(),
            role_connections: Arc::default(),
            name: parking_lot::RwLock::new(DATABASE.to_string()),
            databases: std::sync::OnceLock::new(),
            owned_databases: std::sync::OnceLock::new(),
            roles: parking_lot::RwLock::new(None),
            sessions: Default::default(),
            dropped: Default::default(),
        })
    }

    /// Shared state for another database of the server `first` belongs to: the same cancel
    /// keys (a CancelRequest reaches the first database's listener) and the same per-role
    /// connection counts.
    pub fn new_in_server(
        store: StoreRef,
        services: Option<NodeServices>,
        first: &Shared,
    ) -> SharedRef {
        let mut shared = Shared::new(store, services);
        let own = Arc::get_mut(&mut shared).expect("just made");
        own.cancels = first.cancels.clone();
        own.role_connections = first.role_connections.clone();
        shared
    }

    /// Marks the database dropped unless a client session is open on it (how many are).
    /// A session that logs in after this fails (see [`Session::login`]).
    pub fn mark_dropped(&self) -> std::result::Result<(), usize> {
        use std::sync::atomic::Ordering::SeqCst;
        self.dropped.store(true, SeqCst);
        match self.sessions.load(SeqCst) {
            0 => Ok(()),
            n => {
                self.dropped.store(false, SeqCst);
                Err(n)
            }
        }
    }

    /// Makes this the database `name` of a server whose databases are `databases` and
    /// whose roles are in `roles`; the first database (`owner`) keeps the set alive.
    pub fn join_server(
        &self,
        name: &str,
        databases: &Arc<dyn crate::databases::Databases>,
        roles: StoreRef,
        owner: bool,
    ) {
        *self.name.write() = name.to_string();
        let _ = self.databases.set(Arc::downgrade(databases));
        if owner {
            let _ = self.owned_databases.set(databases.clone());
        }
        *self.roles.write() = Some(roles);
    }

    /// The server's databases, if the binary set them.
    pub fn databases(&self) -> Option<Arc<dyn crate::databases::Databases>> {
        self.databases.get().and_then(std::sync::Weak::upgrade)
    }

    /// This database's name.
    pub fn name(&self) -> String {
        self.name.read().clone()
    }

    /// The store that holds the server's roles.
    pub fn roles_store(&self) -> StoreRef {
        self.roles
            .read()
            .clone()
            .unwrap_or_else(|| self.store.clone())
    }

    /// Sessions open on this database.
    pub fn session_count(&self) -> usize {
        self.sessions.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Shared handle.
pub type SharedRef = Arc<Shared>;

/// Runs `f`, which may wait for the Raft log (a commit, a DDL statement), without holding up
/// the other tasks of this runtime worker: many sessions can then wait on the same group
/// commit at once.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

const SERIALIZABLE_NOTICE: &str =
    "DuetDB runs SERIALIZABLE transactions under snapshot isolation (REPEATABLE READ)";

/// What statements are planned and run with (see `Session::planning`).
#[derive(Clone)]
pub(crate) struct PlanningState {
    pub state: Arc<datafusion::execution::session_state::SessionState>,
    pub task: Arc<datafusion::execution::TaskContext>,
}

/// One connection's session.
pub struct Session {
    shared: SharedRef,
    ctx: SessionContext,
    /// A snapshot of `ctx`'s state and a task context built from it, reused by every
    /// statement until a setting changes the state. `SessionContext::state()` clones the
    /// whole state (function registries, options) and each execution built another
    /// `TaskContext`: a few percent of a point query's CPU (profiled with pgbench -S).
    planning: parking_lot::Mutex<Option<PlanningState>>,
    view: ViewSlot,
    route: RouteSlot,
    /// Explicit transaction (BEGIN … COMMIT), if any.
    txn: Option<Transaction>,
    /// An error happened inside the explicit transaction: only ROLLBACK/COMMIT go on.
    failed: bool,
    /// Open cursors by name.
    cursors: std::collections::HashMap<String, cursor::Cursor>,
    /// Sequences as this session sees them (its `currval` and `lastval`).
    pub(crate) sequences: crate::sequence::SequenceContext,
    /// The open block's savepoints, oldest first: name and the writes at that point.
    savepoints: Vec<(String, duet_rowstore::txn::StatementMark)>,
    /// Pending foreign-key checks and `SET CONSTRAINTS` modes.
    pub(crate) fk: crate::foreign_key::FkState,
    /// Statements prepared with SQL's `PREPARE name [(types)] AS …`, by name: the
    /// statement and its parameters' declared types.
    sql_prepared: std::collections::HashMap<String, (Statement, Vec<sqlparser::ast::DataType>)>,
    settings: Settings,
    /// Notices to send to the client before the statement's result.
    notices: Vec<String>,
    scratch: Arc<MemorySchemaProvider>,
    /// A COPY FROM STDIN waiting for its data.
    copy: Option<crate::copy::CopyIn>,
    /// The running statement's cancel token.
    cancel: crate::cancel::CancelSlot,
    /// This connection's backend pid, once registered for CancelRequest.
    pid: Option<i32>,
    /// A statement's result stream ended in an error after the statement returned (see
    /// `StatementGuard`): inside a transaction block, the block has failed.
    stream_failed: Arc<std::sync::atomic::AtomicBool>,
    /// The role it logged in as, and its place in the role's connection count.
    user: String,
    role_slot: Option<crate::roles::RoleSlot>,
    /// The running statement's message text and position in it.
    source: Option<(Arc<str>, usize)>,
}

impl Session {
    /// A new session on `shared`.
    pub fn new(shared: SharedRef) -> Result<Self> {
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(DATABASE, "public")
            .with_information_schema(true)
            .with_target_partitions(2);
        config.options_mut().sql_parser.parse_float_as_decimal = true;
        // now() is a timestamptz, as in PostgreSQL (SET TIME ZONE changes it).
        config.options_mut().execution.time_zone = Some("+00:00".into());
        config.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
        let ctx = SessionContext::new_with_config(config);
        set_memory_limit(&ctx, default_query_memory())?;
        let view: ViewSlot = Arc::new(parking_lot::Mutex::new(None));
        let route: RouteSlot = Arc::default();
        let scan = ScanContext {
            view: view.clone(),
            route: route.clone(),
            columns: shared
                .services
                .as_ref()
                .map(|n| n.columns.clone())
                .unwrap_or_default(),
            router: shared.router.clone(),
        };

        let public: Arc<dyn SchemaProvider> =
            Arc::new(RowSchemaProvider::new(shared.store.clone(), scan.clone()));
        let dml: Arc<dyn SchemaProvider> =
            Arc::new(RowSchemaProvider::for_dml(shared.store.clone(), scan));
        let scratch = Arc::new(MemorySchemaProvider::new());
        let mut listed = vec![("public".to_string(), public)];
        if let Some(services) = &shared.services {
            let info = services.replicas.clone();
            listed.push((
                duet_router::sysviews::SystemSchema::NAME.to_string(),
                Arc::new(duet_router::sysviews::SystemSchema::new(
                    info,
                    shared.router.clone(),
                )),
            ));
        }
        let catalog = DuetCatalog::new(
            listed,
            vec![
                (DML_SCHEMA.to_string(), dml),
                (
                    SCRATCH_SCHEMA.to_string(),
                    scratch.clone() as Arc<dyn SchemaProvider>,
                ),
            ],
        );
        ctx.register_catalog(DATABASE, Arc::new(catalog));

        datafusion_pg_catalog::setup_pg_catalog(
            &ctx,
            DATABASE,
            datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
        )
        .map_err(|e| PgError::from(*e))?;
        // pg_catalog's tables about DuetDB's own objects come from the table definitions.
        if let Some(inner) = ctx.catalog(DATABASE).and_then(|c| c.schema("pg_catalog")) {
            let own = crate::system_catalog::PgCatalog::new(inner, shared.clone());
            ctx.catalog(DATABASE)
                .expect("registered above")
                .register_schema("pg_catalog", Arc::new(own))?;
        }
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::system_catalog::ExpandArray::default(),
        ));
        // In place of datafusion-pg-catalog's (see FormatType).
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::system_catalog::FormatType::default(),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::json::JsonBuildObject::default(),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            set_show::UnknownSetting::default(),
        ));
        for name in crate::system_catalog::IsVisible::NAMES {
            ctx.register_udf(crate::system_catalog::IsVisible::udf(name));
        }
        for name in crate::system_catalog::CatalogFunction::NAMES {
            ctx.register_udf(crate::system_catalog::CatalogFunction::udf(
                name,
                shared.store.clone(),
            ));
        }
        {
            // PostgreSQL semantics on top of DataFusion's analyzer rules (see pgsemantics/).
            let state = ctx.state();
            let mut rules = state.analyzer().rules.clone();
            // Before type coercion: it changes argument types.
            rules.insert(0, Arc::new(crate::pgsemantics::SingleRowScalarSubqueries));
            rules.insert(1, Arc::new(crate::pgsemantics::InListNulls));
            rules.insert(2, Arc::new(crate::pgsemantics::NumericAverages));
            rules.insert(3, Arc::new(crate::pgsemantics::NumericIntegerAggregates));
            rules.insert(4, Arc::new(crate::pgsemantics::NumericCasts));
            rules.insert(5, Arc::new(crate::pgsemantics::NumericDivision));
            rules.insert(6, Arc::new(crate::pgsemantics::TextNumberComparisons));
            rules.insert(7, Arc::new(crate::pgsemantics::ConcatArguments));
            rules.insert(8, Arc::new(crate::datetime::DateIntervalArithmetic));
            rules.insert(9, Arc::new(crate::datetime::WindowOrderKeys));
            rules.insert(10, Arc::new(crate::pgsemantics::NullifFirstArgumentType));
            rules.insert(11, Arc::new(crate::pgsemantics::FloatNumerics));
            rules.insert(12, Arc::new(crate::pgsemantics::SetOperationTypes));
            rules.push(Arc::new(crate::pgsemantics::CheckedIntegerArithmetic));
            rules.push(Arc::new(crate::pgsemantics::BpcharLiterals));
            rules.push(Arc::new(crate::jsonb::TypedTextComparisons));
            rules.push(Arc::new(crate::datetime::IntervalOrdering));
            // Before the text casts: a timestamptz becomes text in the session's zone.
            rules.push(Arc::new(crate::datetime::SessionZoneArguments));
            rules.push(Arc::new(crate::pgsemantics::PgTextCasts));
            rules.push(Arc::new(crate::datetime::DateTimeInputCasts));
            rules.push(Arc::new(crate::arrays::ArrayInputCasts));
            rules.push(Arc::new(crate::pgsemantics::OuterLevelAggregates));
            rules.push(Arc::new(crate::pgsemantics::NullableScalarSubqueries));
            rules.push(Arc::new(crate::pgsemantics::GlobalAggregateConstants));
            rules.push(Arc::new(crate::pgsemantics::OuterJoinConstants));
            rules.push(Arc::new(crate::pgsemantics::InSubqueryNulls));
            rules.push(Arc::new(crate::pgsemantics::GlobalHavingSubqueries));
            rules.push(Arc::new(crate::pgsemantics::ConstantFoldingErrors));
            rules.push(Arc::new(crate::pgsemantics::LazyBooleanCase));
            rules.push(Arc::new(crate::pgsemantics::CaseDeclaredTypes));
            rules.push(Arc::new(crate::pgsemantics::RecursiveTermMetadata));
            rules.push(Arc::new(crate::pgsemantics::ConstantDisplayScales));
            rules.push(Arc::new(crate::pgsemantics::LateralFunctions));
            rules.push(Arc::new(crate::pgsemantics::UnnestKeys));
            rules.push(Arc::new(crate::pgsemantics::RebuildSchemas));
            // Before DataFusion's filter push-down (see pgsemantics/subqueries.rs).
            let mut optimizers = state.optimizers().to_vec();
            let at = optimizers
                .iter()
                .position(|r| r.name() == "push_down_filter")
                .unwrap_or(0);
            optimizers.insert(at, Arc::new(crate::pgsemantics::GlobalAggregateFilters));
            if let Some(at) = optimizers
                .iter()
                .position(|r| r.name() == "eliminate_duplicated_expr")
            {
                optimizers.insert(at, Arc::new(crate::pgsemantics::UnnestKeys));
            }
            for rule in optimizers.iter_mut() {
                match rule.name() {
                    "single_distinct_aggregation_to_group_by" => {
                        *rule = Arc::new(crate::pgsemantics::GuardedRule {
                            inner: rule.clone(),
                            skip: crate::pgsemantics::single_distinct_would_differ,
                        })
                    }
                    "eliminate_join" => {
                        *rule = Arc::new(crate::pgsemantics::GuardedRule {
                            inner: rule.clone(),
                            skip: crate::pgsemantics::joins_over_raising_conditions,
                        })
                    }
                    _ => {}
                }
            }
            optimizers.insert(
                0,
                Arc::new(crate::pgsemantics::CorrelatedSubqueries::early(
                    Arc::downgrade(&ctx.state_ref()),
                    view.clone(),
                )),
            );
            // Last: what DataFusion could not decorrelate runs per outer row.
            optimizers.push(Arc::new(crate::pgsemantics::CorrelatedSubqueries::new(
                Arc::downgrade(&ctx.state_ref()),
                view.clone(),
            )));
            optimizers.push(Arc::new(crate::pgsemantics::RebuildSchemas));
            let new_state =
                datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
                    .with_analyzer_rules(rules)
                    .with_optimizer_rules(optimizers)
                    .with_physical_optimizer_rule(Arc::new(crate::pgsemantics::PartitionedTopKKeys))
                    .with_type_planner(Arc::new(crate::datetime::DuetTypePlanner::default()))
                    .build();
            *ctx.state_ref().write() = new_state;
        }
        ctx.register_udaf(crate::pgsemantics::PgAggregate::udaf());
        ctx.register_udaf(crate::pgsemantics::PgAggregate::avg());
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::pgsemantics::IntervalScale::default(),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::pgsemantics::PgTypeOf::default(),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::pgsemantics::Identity::typed(),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::pgsemantics::Refused::new("to_char"),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::pgsemantics::CharacterCast::varchar(),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::pgsemantics::ToRegtype::default(),
        ));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::pgsemantics::AdvisoryUnlockAll::default(),
        ));
        for name in crate::arrays::ArrayBound::NAMES {
            ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
                crate::arrays::ArrayBound::new(name),
            ));
        }
        for name in crate::pgsemantics::NoComment::NAMES {
            ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
                crate::pgsemantics::NoComment::new(name),
            ));
        }
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::pgsemantics::CharacterCast::bpchar(),
        ));
        for name in crate::jsonb_sets::JsonbList::NAMES {
            ctx.register_udf(crate::jsonb_sets::JsonbList::udf(name));
        }
        for name in crate::jsonb_sets::JsonbOfList::NAMES {
            ctx.register_udf(crate::jsonb_sets::JsonbOfList::udf(name));
        }
        for name in crate::jsonb::JsonbFunction::NAMES {
            ctx.register_udf(crate::jsonb::JsonbFunction::udf(name));
        }
        for ty in crate::jsonb::TypeInput::TYPES {
            ctx.register_udf(crate::jsonb::TypeInput::udf(ty));
        }
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::jsonb::GenRandomUuid::default(),
        ));
        {
            use datafusion::execution::FunctionRegistry;
            ctx.state_ref()
                .write()
                .register_expr_planner(Arc::new(crate::jsonb::JsonPlanner))?;
            ctx.state_ref()
                .write()
                .register_expr_planner(Arc::new(crate::datetime::IntervalPlanner))?;
            ctx.state_ref()
                .write()
                .register_expr_planner(Arc::new(crate::arrays::ArrayPlanner))?;
        }
        ctx.register_udf(
            datafusion::logical_expr::async_udf::AsyncScalarUDF::new(Arc::new(
                crate::pgsemantics::PgSleep::default(),
            ))
            .into_scalar_udf(),
        );
        let sequence_values: Arc<parking_lot::Mutex<crate::sequence::SessionValues>> =
            Arc::default();
        let sequences = crate::sequence::SequenceContext {
            store: shared.store.clone(),
            sequences: shared.sequences.clone(),
            session: sequence_values.clone(),
        };
        for name in crate::sequence::SequenceFunction::NAMES {
            ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
                crate::sequence::SequenceFunction::new(name, sequences.clone()),
            ));
        }
        ctx.register_udf(create_udf(
            "current_catalog",
            vec![],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(|_args: &[ColumnarValue]| {
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                    DATABASE.to_string(),
                ))))
            }),
        ));
        // PostgreSQL's encoding names (datafusion-pg-catalog's says `UTF-8` for every one;
        // psql's `\l` prints this). pg_database.encoding is 6, UTF8.
        ctx.register_udf(create_udf(
            "pg_encoding_to_char",
            vec![DataType::Int64],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(|args: &[ColumnarValue]| {
                use datafusion::arrow::array::{AsArray, StringArray};
                let ids = args[0].to_array(1)?;
                let ids = datafusion::arrow::compute::cast(&ids, &DataType::Int64)?;
                let names: StringArray = ids
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .iter()
                    .map(|id| {
                        id.map(|id| match id {
                            0 => "SQL_ASCII",
                            6 => "UTF8",
                            8 => "LATIN1",
                            _ => "",
                        })
                    })
                    .collect();
                let out: datafusion::arrow::array::ArrayRef = Arc::new(names);
                match &args[0] {
                    ColumnarValue::Scalar(_) => {
                        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
                    }
                    ColumnarValue::Array(_) => Ok(ColumnarValue::Array(out)),
                }
            }),
        ));
        ctx.register_udf(create_udf(
            "version",
            vec![],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(|_args: &[ColumnarValue]| {
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                    VERSION_STRING.to_string(),
                ))))
            }),
        ));
        Ok(Self {
            shared,
            ctx,
            planning: parking_lot::Mutex::new(None),
            view,
            route,
            copy: None,
            txn: None,
            failed: false,
            savepoints: Vec::new(),
            fk: Default::default(),
            sql_prepared: Default::default(),
            cursors: Default::default(),
            sequences,
            settings: Settings::default(),
            notices: Vec::new(),
            scratch,
            cancel: Arc::default(),
            pid: None,
            stream_failed: Arc::default(),
            // No role until login (autoanalyze's session needs none).
            user: String::new(),
            role_slot: None,
            source: None,
        })
    }

    /// The connection logged in as `startup.user`: counted against the role's
    /// `CONNECTION LIMIT` (53300 past it), and what `current_user`/`session_user` say.
    pub fn login(&mut self, startup: &duet_wire::Startup) -> Result<()> {
        let limit = self
            .shared
            .roles_store()
            .role(&startup.user)
            .map_or(-1, |r| r.connection_limit);
        let slot = self.shared.role_connections.enter(&startup.user, limit)?;
        if self.role_slot.is_none() {
            // A client's session (autoanalyze's is not counted); counted before the check,
            // so that a concurrent DROP DATABASE sees it or this sees the drop.
            use std::sync::atomic::Ordering::SeqCst;
            self.shared.sessions.fetch_add(1, SeqCst);
            if self.shared.dropped.load(SeqCst) {
                self.shared.sessions.fetch_sub(1, SeqCst);
                return Err(PgError::new(
                    SqlState::InvalidCatalogName,
                    format!("database \"{}\" does not exist", self.shared.name()),
                ));
            }
        }
        self.role_slot = Some(slot);
        self.user = startup.user.clone();
        let database = self.shared.name();
        let names: [(&str, &String); 6] = [
            ("session_user", &self.user),
            ("current_user", &self.user),
            ("current_role", &self.user),
            ("user", &self.user),
            ("current_database", &database),
            ("current_catalog", &database),
        ];
        for (name, value) in names {
            let value = ScalarValue::Utf8(Some(value.clone()));
            self.ctx.register_udf(create_udf(
                name,
                vec![],
                DataType::Utf8,
                Volatility::Stable,
                Arc::new(move |_args: &[ColumnarValue]| Ok(ColumnarValue::Scalar(value.clone()))),
            ));
        }
        *self.planning.lock() = None;
        Ok(())
    }

    /// The pid of this session's connection (none for an internal session).
    /// The DataFusion state this session plans with (its functions and settings): what a
    /// member serving another member's column scan resolves the scan's filter with.
    pub fn state(&self) -> datafusion::execution::session_state::SessionState {
        self.ctx.state()
    }

    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// The database this session reads.
    pub fn database(&self) -> String {
        self.shared.name()
    }

    /// The sessions' shared state of its database.
    pub(crate) fn shared(&self) -> &SharedRef {
        &self.shared
    }

    /// The role this session logged in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The running statement is statement `index` of the message `text` (what `CREATE
    /// VIEW` keeps of its query).
    pub fn set_source(&mut self, text: Arc<str>, index: usize) {
        self.source = Some((text, index));
    }

    /// See [`Session::set_source`].
    pub fn source(&self) -> Option<(&str, usize)> {
        self.source.as_ref().map(|(t, i)| (t.as_ref(), *i))
    }

    /// Registers the connection `startup` describes with the server: its statements can
    /// be cancelled by a CancelRequest naming its pid and key, and it can be terminated
    /// (`pg_terminate_backend`, `DROP DATABASE … WITH (FORCE)`). Also defines the
    /// functions that name backends by pid: `pg_backend_pid()`, `pg_cancel_backend(pid)`
    /// and `pg_terminate_backend(pid)` (true if the connection exists, false if not;
    /// 42501 for another role's connection unless a superuser asks).
    pub fn register_backend(&mut self, startup: &duet_wire::Startup) {
        let pid = startup.pid;
        self.shared.cancels.register(
            pid,
            crate::cancel::Backend {
                key: startup.secret.clone(),
                slot: self.cancel.clone(),
                terminate: startup.terminate.clone(),
                database: self.shared.name(),
                user: startup.user.clone(),
            },
        );
        self.pid = Some(pid);
        let own = ScalarValue::Int32(Some(pid));
        self.ctx.register_udf(create_udf(
            "pg_backend_pid",
            vec![],
            DataType::Int32,
            Volatility::Stable,
            Arc::new(move |_args: &[ColumnarValue]| Ok(ColumnarValue::Scalar(own.clone()))),
        ));
        for terminate in [false, true] {
            let shared = self.shared.clone();
            let user = startup.user.clone();
            let signal = move |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
                use datafusion::arrow::array::{AsArray, BooleanArray};
                let pids = args[0].to_array(1)?;
                let pids = datafusion::arrow::compute::cast(&pids, &DataType::Int64)?;
                let mut out = Vec::with_capacity(pids.len());
                for target in pids.as_primitive::<datafusion::arrow::datatypes::Int64Type>() {
                    let Some(target) = target else {
                        out.push(None);
                        continue;
                    };
                    let Ok(target) = i32::try_from(target) else {
                        out.push(Some(false));
                        continue;
                    };
                    let Some(owner) = shared.cancels.user_of(target) else {
                        out.push(Some(false));
                        continue;
                    };
                    let me = shared.roles_store().role(&user);
                    if owner != user && !me.is_some_and(|r| r.superuser) {
                        let what = if terminate {
                            "terminate"
                        } else {
                            "cancel query of"
                        };
                        return Err(datafusion::error::DataFusionError::External(Box::new(
                            crate::error::PgErrorBox(PgError::new(
                                SqlState::InsufficientPrivilege,
                                format!("permission denied to {what} process"),
                            )),
                        )));
                    }
                    out.push(Some(if terminate {
                        shared.cancels.terminate(target)
                    } else {
                        shared.cancels.cancel_pid(target)
                    }));
                }
                Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(out))))
            };
            self.ctx.register_udf(create_udf(
                if terminate {
                    "pg_terminate_backend"
                } else {
                    "pg_cancel_backend"
                },
                vec![DataType::Int64],
                DataType::Boolean,
                Volatility::Volatile,
                Arc::new(signal),
            ));
        }
    }

    /// The process's sequence ranges.
    pub(crate) fn shared_sequences(&self) -> &crate::sequence::Sequences {
        &self.shared.sequences
    }

    /// The row store sessions run on.
    pub fn store(&self) -> &StoreRef {
        &self.shared.store
    }

    /// The node's router (statistics, routing log).
    pub(crate) fn router(&self) -> &duet_router::RouterRef {
        &self.shared.router
    }

    /// Tells the client `message` as a NOTICE before the statement's result.
    pub(crate) fn notice(&mut self, message: String) {
        self.notices.push(message);
    }

    /// Publishes `view` (or none) as the read view the next plan's scans take.
    pub(crate) fn set_view(&self, view: Option<duet_rowstore::ReadView>) {
        *self.view.lock() = view;
    }

    /// `duet.learner_wait_timeout`.
    pub(crate) fn learner_wait(&self) -> std::time::Duration {
        self.route.settings.lock().learner_wait
    }

    /// `duet.analyze_sample_chunks`.
    pub(crate) fn analyze_sample_chunks(&self) -> usize {
        self.settings.analyze_sample_chunks
    }

    /// The slot scans take their read view from (Describe empties it afterwards).
    pub(crate) fn view_slot(&self) -> &ViewSlot {
        &self.view
    }

    /// Swaps the statement the router logs scans under; returns the previous one.
    pub(crate) fn swap_route_statement(
        &self,
        statement: duet_router::routing::StatementInfo,
    ) -> duet_router::routing::StatementInfo {
        std::mem::replace(&mut *self.route.statement.lock(), statement)
    }

    /// The session's DataFusion context.
    pub(crate) fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The session's schema of temporary tables (RETURNING, Describe).
    pub(crate) fn scratch(&self) -> &Arc<MemorySchemaProvider> {
        &self.scratch
    }

    /// The notices raised since the last call (the session's and the router's), to send
    /// before the statement's result.
    pub fn take_notices(&mut self) -> Vec<String> {
        let routed: Vec<String> = self.route.notices.lock().drain(..).collect();
        let mut out = std::mem::take(&mut self.notices);
        out.extend(routed);
        out
    }

    /// CopyData of the COPY FROM STDIN in progress; errors are kept and reported at
    /// [`Session::copy_done`] (the client is still sending).
    pub fn copy_data(&mut self, data: &[u8]) {
        if let Some(mut copy) = self.copy.take() {
            copy.data(self, data);
            self.copy = Some(copy);
        }
    }

    /// CopyDone: the rows copied; an error fails the transaction block.
    pub fn copy_done(&mut self) -> Result<u64> {
        let Some(copy) = self.copy.take() else {
            return Err(PgError::new(
                SqlState::ProtocolViolation,
                "CopyDone without COPY",
            ));
        };
        let result = copy.done(self);
        if result.is_err() && self.in_transaction() {
            self.mark_failed();
        }
        result
    }

    /// CopyFail from the client: the COPY ends with 57014 and fails the transaction block.
    pub fn copy_fail(&mut self, message: &str) -> PgError {
        self.copy = None;
        if self.in_transaction() {
            self.mark_failed();
        }
        PgError::new(
            SqlState::QueryCanceled,
            format!("COPY from stdin failed: {message}"),
        )
    }

    /// Starts the clock and a fresh cancel token for the next statement.
    pub fn statement_guard(&self) -> crate::cancel::StatementGuard {
        crate::cancel::StatementGuard::start(
            &self.cancel,
            self.settings.statement_timeout,
            self.stream_failed.clone(),
        )
    }

    /// The table called `name`, or 42P01 (the row store's own "does not exist" error).
    /// The session's `TimeZone` as an Arrow time zone (`+00:00` for UTC).
    pub(crate) fn time_zone_name(&self) -> String {
        let state = self.ctx.state_ref();
        let zone = state.read().config().options().execution.time_zone.clone();
        zone.unwrap_or_else(|| "+00:00".into())
    }

    /// The session's `TimeZone` (what a timestamptz without a zone is local to, and what
    /// results show timestamptz values in).
    pub(crate) fn time_zone(&self) -> datafusion::arrow::array::timezone::Tz {
        let state = self.ctx.state_ref();
        let zone = state.read().config().options().execution.time_zone.clone();
        zone.and_then(|z| crate::datetime::zone_of(&z))
            .unwrap_or_else(crate::types::utc)
    }

    pub(crate) fn table(&self, name: &str) -> Result<duet_common::TableDefRef> {
        let def =
            self.shared.store.table(name).ok_or_else(|| {
                PgError::from(duet_rowstore::Error::TableNotFound(name.to_string()))
            })?;
        if def.sequence.is_some() {
            // Its row changes through nextval and setval only.
            return Err(PgError::new(
                SqlState::WrongObjectType,
                format!("cannot change sequence \"{name}\""),
            ));
        }
        if def.view.is_some() {
            return Err(PgError::unsupported(format!(
                "changing view \"{name}\" (INSERT, UPDATE, DELETE, COPY FROM, ALTER TABLE and TRUNCATE on views)"
            )));
        }
        Ok(def)
    }

    /// Marks the open transaction failed (only ROLLBACK/COMMIT go on).
    pub(crate) fn mark_failed(&mut self) {
        if self.txn.is_some() {
            self.failed = true;
        }
    }

    /// The explicit transaction, if one is open.
    pub(crate) fn txn_mut(&mut self) -> Option<&mut Transaction> {
        self.txn.as_mut()
    }

    /// Whether an explicit transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// Whether the open transaction has failed.
    pub fn is_failed(&self) -> bool {
        self.failed
            || (self.txn.is_some()
                && self
                    .stream_failed
                    .load(std::sync::atomic::Ordering::Acquire))
    }

    /// Folds a failed result stream of the previous statement into the transaction state.
    fn take_stream_failure(&mut self) {
        if self
            .stream_failed
            .swap(false, std::sync::atomic::Ordering::AcqRel)
            && self.txn.is_some()
        {
            self.failed = true;
        }
    }

    /// In a cluster: before a statement takes its snapshot, makes sure this member still
    /// leads and has applied every acknowledged commit ([`NodeServices::read_barrier`]);
    /// 40001 if it cannot (the session ends when leadership moves; a new connection reaches
    /// the new leader).
    pub(crate) fn confirm_reads(&self) -> Result<()> {
        let Some(barrier) = self
            .shared
            .services
            .as_ref()
            .and_then(|s| s.read_barrier.clone())
        else {
            return Ok(());
        };
        blocking(|| barrier()).map_err(|why| {
            PgError::new(
                SqlState::SerializationFailure,
                format!("could not read at a current version: {why}; reconnect and retry"),
            )
        })
    }

    /// Runs one statement with bound parameters: the fast path if it takes the statement,
    /// else the general path.
    #[tracing::instrument(skip_all, fields(stmt_kind = statement_kind(&stmt)))]
    pub async fn execute(&mut self, stmt: Statement, params: &ParamValues) -> Result<Outcome> {
        match self.execute_fast(&stmt, None, params).await {
            Some(r) => r,
            None => self.execute_general(&stmt, params).await,
        }
    }

    /// Runs one statement without the fast path (transaction control, DDL, DataFusion).
    pub async fn execute_general(
        &mut self,
        stmt: &Statement,
        params: &ParamValues,
    ) -> Result<Outcome> {
        self.take_stream_failure();
        if !matches!(
            stmt,
            Statement::Commit { .. } | Statement::Rollback { .. } | Statement::Set(_)
        ) {
            self.confirm_reads()?;
        }
        match stmt {
            Statement::StartTransaction { modes, .. } => return Ok(self.begin(modes)),
            Statement::Commit { .. } => return self.commit().await,
            Statement::Rollback {
                savepoint: None, ..
            } => return Ok(self.rollback()),
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => {
                let r = self.rollback_to_savepoint(name);
                if r.is_err() && self.txn.is_some() {
                    self.failed = true;
                }
                return r;
            }
            _ => {}
        }
        if self.failed {
            return Err(PgError::new(
                SqlState::InFailedSqlTransaction,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        self.begin_block_statement();
        let result = self.execute_in_txn(stmt.clone(), params).await;
        self.end_statement(&result);
        result
    }

    async fn execute_in_txn(&mut self, stmt: Statement, params: &ParamValues) -> Result<Outcome> {
        match stmt {
            Statement::Explain {
                analyze: false,
                verbose: false,
                query_plan: false,
                estimate: false,
                ref statement,
                format: None,
                options: None,
                ..
            } if let Some(plan) = self.fast_plan(statement, None) => {
                let schema = Arc::new(Schema::new(vec![
                    Field::new("plan_type", DataType::Utf8, false),
                    Field::new("plan", DataType::Utf8, false),
                ]));
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(vec!["physical_plan"])) as ArrayRef,
                        Arc::new(StringArray::from(vec![plan.describe()])),
                    ],
                )
                .map_err(datafusion::error::DataFusionError::from)?;
                Ok(Outcome::Batches {
                    schema,
                    batches: vec![batch],
                    tag: "SELECT".into(),
                })
            }
            Statement::Query(q) if !q.locks.is_empty() => self.select_for_update(*q, params).await,
            Statement::Query(ref q) if let Some((name, value)) = set_show::set_config_call(q) => {
                self.set_config(&name, &value)
            }
            Statement::Query(_) if set_show::calls_set_config(&stmt) => {
                self.query_with_set_config(stmt, params).await
            }
            Statement::Query(_) | Statement::Explain { .. } => {
                self.publish_view();
                self.run_query(stmt, params).await
            }
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                let mut scope = self.txn_scope();
                let result = loop {
                    let r = dml::execute(self, &mut scope.txn, stmt.clone(), params).await;
                    if !scope.again(&r) {
                        break r;
                    }
                };
                self.finish_scope(scope, result).await
            }
            Statement::Copy { to: true, .. } => {
                self.publish_view();
                crate::copy::copy_to(self, stmt).await
            }
            Statement::Copy { .. } => {
                let copy = crate::copy::start(self, stmt).await?;
                let columns = copy.width();
                let binary = copy.is_binary();
                self.copy = Some(copy);
                Ok(Outcome::CopyIn { columns, binary })
            }
            Statement::Set(set) => self.set(set),
            Statement::ShowVariable { variable } => self.show(&variable),
            Statement::Savepoint { name } => self.savepoint(&name),
            Statement::ReleaseSavepoint { name } => self.release_savepoint(&name),
            Statement::Rollback { .. } => Err(PgError::unsupported("ROLLBACK AND CHAIN")),
            Statement::Discard { .. } => {
                self.sql_prepared.clear();
                Ok(Outcome::Command("DISCARD ALL".into()))
            }
            Statement::Reset(r) => {
                let name = match &r.reset {
                    sqlparser::ast::Reset::ALL => None,
                    sqlparser::ast::Reset::ConfigurationParameter(n) => {
                        Some(settings::setting_name(&n.to_string()))
                    }
                };
                self.reset_setting(name.as_deref())?;
                Ok(Outcome::Command("RESET".into()))
            }
            Statement::Close {
                cursor: sqlparser::ast::CloseCursor::All,
            } => self.close_cursor(None),
            Statement::Close {
                cursor: sqlparser::ast::CloseCursor::Specific { name },
            } => self.close_cursor(Some(&name)),
            Statement::Declare { .. } => self.declare(&stmt, params).await,
            Statement::Fetch { .. } => self.fetch(&stmt).await,
            Statement::Prepare {
                name,
                data_types,
                statement,
            } => {
                let name = crate::ident::ident_name(&name);
                if self.sql_prepared.contains_key(&name) {
                    return Err(PgError::new(
                        SqlState::DuplicatePreparedStatement,
                        format!("prepared statement \"{name}\" already exists"),
                    ));
                }
                self.sql_prepared.insert(name, (*statement, data_types));
                Ok(Outcome::Command("PREPARE".into()))
            }
            Statement::Execute {
                name: Some(name),
                parameters,
                immediate: false,
                ..
            } => self.execute_prepared(&name, &parameters).await,
            // Nothing is listened to (asyncpg's pool reset sends it).
            Statement::UNLISTEN { .. } => Ok(Outcome::Command("UNLISTEN".into())),
            other => ddl::execute(self, other).await,
        }
    }

    /// `EXECUTE name [(args)]`: the statement `PREPARE` stored, its parameters the
    /// arguments (constant expressions, cast to the declared types).
    async fn execute_prepared(
        &mut self,
        name: &sqlparser::ast::ObjectName,
        args: &[sqlparser::ast::Expr],
    ) -> Result<Outcome> {
        let name = crate::ident::table_name(name)?;
        let Some((stmt, types)) = self.sql_prepared.get(&name).cloned() else {
            return Err(PgError::new(
                SqlState::InvalidSqlStatementName,
                format!("prepared statement \"{name}\" does not exist"),
            ));
        };
        if !types.is_empty() && types.len() != args.len() {
            return Err(PgError::new(
                SqlState::SyntaxError,
                format!("wrong number of parameters for prepared statement \"{name}\"",),
            )
            .with_detail(format!(
                "Expected {} parameters but got {}.",
                types.len(),
                args.len()
            )));
        }
        let mut values = Vec::with_capacity(args.len());
        if !args.is_empty() {
            let items: Vec<String> = args
                .iter()
                .enumerate()
                .map(|(i, a)| match types.get(i) {
                    Some(t) => format!("CAST(({a}) AS {t})"),
                    None => format!("({a})"),
                })
                .collect();
            self.publish_view();
            let stmt = crate::dml::parse_one(&format!("SELECT {}", items.join(", ")))?;
            let batches = crate::dml::run_collect(self, stmt, &ParamValues::List(vec![])).await?;
            let batch = batches
                .iter()
                .find(|b| b.num_rows() > 0)
                .ok_or_else(|| PgError::new(SqlState::InternalError, "no argument row"))?;
            for col in batch.columns().iter().take(args.len()) {
                values.push(datafusion::common::ScalarValue::try_from_array(col, 0)?.into());
            }
        }
        Box::pin(self.execute_in_txn(stmt, &ParamValues::List(values))).await
    }

    /// Forgets SQL-prepared statements (`DEALLOCATE name`, or all); whether `name` was one.
    pub fn deallocate_sql(&mut self, name: Option<&str>) -> bool {
        match name {
            Some(n) => self.sql_prepared.remove(n).is_some(),
            None => {
                self.sql_prepared.clear();
                true
            }
        }
    }

    /// Tells the router which statement runs next: its text (for the routing log) and the
    /// engine hints in its comments (a malformed hint is reported as a notice).
    pub fn set_statement(&mut self, text: &Arc<str>) {
        self.set_statement_from(text.clone(), text);
    }

    /// Like [`Session::set_statement`] for one statement of a longer message: `text` is the
    /// statement's own text for the log, `hints_from` the text its hints are read from.
    pub fn set_statement_from(&mut self, text: Arc<str>, hints_from: &str) {
        let hints = if hints_from.contains("/*+") {
            let (hints, problems) = crate::hints::parse(hints_from);
            self.notices.extend(problems);
            hints
        } else {
            Default::default()
        };
        *self.route.statement.lock() = duet_router::routing::StatementInfo { text, hints };
    }

    /// Makes the current transaction's snapshot (or a fresh one) what scans read.
    pub(crate) fn publish_view(&self) {
        let view = match &self.txn {
            Some(t) => t.view(),
            None => Transaction::begin(&self.shared.store).view(),
        };
        *self.view.lock() = Some(view);
    }

    /// Plans a statement with DataFusion (no execution).
    pub(crate) async fn plan(&self, mut stmt: Statement) -> Result<LogicalPlan> {
        crate::views::expand(self, &mut stmt)?;
        // Output names first: an inlined `current_setting(...)` is still `current_setting`.
        crate::colnames::name_outputs(&mut stmt);
        self.inline_current_settings(&mut stmt)?;
        crate::pgsemantics::rewrite_statement(&mut stmt)?;
        let plan = self
            .planning(false)
            .state
            .statement_to_plan(DFStatement::Statement(Box::new(stmt)))
            .await?;
        Ok(plan)
    }

    /// The columns `plan` returns when it runs: its schema after the analyzer rules, which
    /// change types (`sum(bigint)` is numeric) and add PostgreSQL's type modifiers. A
    /// Describe must send these, or a client reading binary results decodes the values of
    /// one type as another. (If the rules cannot run before the parameters are bound, the
    /// planned schema.)
    pub(crate) fn result_schema(&self, plan: LogicalPlan) -> SchemaRef {
        let p = self.planning(false);
        let planned = Arc::new(plan.schema().as_arrow().clone());
        match p
            .state
            .analyzer()
            .execute_and_check(plan, p.state.config_options(), |_, _| {})
        {
            Ok(analyzed) => Arc::new(analyzed.schema().as_arrow().clone()),
            Err(e) => {
                tracing::debug!(error = %e, "describe: analyzer failed; the planned schema");
                planned
            }
        }
    }

    /// The state statements are planned and run with (built once, until a setting changes).
    /// With `start`, the state's start time (`now()`, `current_timestamp`, fixed when the
    /// physical plan is optimized) becomes now, as `SessionContext::state()` would set it;
    /// this does not clone, since the previous statement's handle is gone by then.
    pub(crate) fn planning(&self, start: bool) -> PlanningState {
        let mut slot = self.planning.lock();
        let p = slot.get_or_insert_with(|| {
            let state = self.ctx.state();
            let task = Arc::new(datafusion::execution::TaskContext::from(&state));
            PlanningState {
                state: Arc::new(state),
                task,
            }
        });
        if start {
            Arc::make_mut(&mut p.state).mark_start_execution();
        }
        p.clone()
    }

    /// Optimizes and starts the logical plan of a query (a DML statement's read, RETURNING,
    /// a constant) on the cached planning state, its result keeping PostgreSQL's numeric
    /// display scales: each numeric column whose scale varies by row has a companion column at the
    /// end, tagged with `numeric::DISPLAY_SCALE_OF` (what DML statements write to
    /// unconstrained numeric columns).
    pub(crate) async fn execute_query_plan(
        &self,
        plan: LogicalPlan,
    ) -> Result<SendableRecordBatchStream> {
        let p = self.planning(true);
        // Display scales are added after the optimizer so that no rule prunes them.
        let optimized = p.state.optimize(&plan)?;
        let plan = crate::pgsemantics::with_display_scales(optimized)?;
        let physical = p
            .state
            .query_planner()
            .create_physical_plan(&plan, p.state.as_ref())
            .await?;
        Ok(datafusion::physical_plan::execute_stream(physical, p.task)?)
    }

    /// Runs a query (no parameters) whose snapshot view is already published.
    pub(crate) async fn query(&mut self, stmt: Statement) -> Result<Outcome> {
        self.run_query(stmt, &ParamValues::List(vec![])).await
    }

    async fn run_query(&mut self, stmt: Statement, params: &ParamValues) -> Result<Outcome> {
        let plan = self.plan(stmt).await?;
        let plan = bind(plan, params)?;
        let stream = self.execute_query_plan(plan).await?;
        Ok(Outcome::Stream {
            stream,
            tag: "SELECT".into(),
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.role_slot.is_some() {
            self.shared
                .sessions
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        if let Some(pid) = self.pid {
            self.shared.cancels.unregister(pid);
        }
        // datafusion-pg-catalog's schema holds the catalog list it is registered in: an Arc
        // cycle. Unregistering it frees the context, and with it the store handle.
        if let Some(catalog) = self.ctx.catalog(DATABASE) {
            if let Err(e) = catalog.deregister_schema("pg_catalog", true) {
                tracing::warn!(error = %e, "failed to unregister pg_catalog at session end");
            }
        }
    }
}

/// Substitutes parameter values into a plan (no-op without parameters).
pub(crate) fn bind(plan: LogicalPlan, params: &ParamValues) -> Result<LogicalPlan> {
    let empty = match params {
        ParamValues::List(l) => l.is_empty(),
        ParamValues::Map(m) => m.is_empty(),
    };
    if empty {
        return Ok(plan);
    }
    Ok(plan.with_param_values(params.clone())?)
}

fn statement_kind(s: &Statement) -> &'static str {
    match s {
        Statement::Query(_) => "query",
        Statement::Insert(_) => "insert",
        Statement::Update(_) => "update",
        Statement::Delete(_) => "delete",
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. } => "txn",
        Statement::CreateTable(_)
        | Statement::Drop { .. }
        | Statement::AlterTable(_)
        | Statement::CreateIndex(_) => "ddl",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duet_rowstore::engine::memory::MemoryEngine;
    use duet_rowstore::Store;

    fn session() -> Session {
        // Planning only: nothing is committed, so no Raft peer is needed.
        let store = Store::open(Arc::new(MemoryEngine::new())).unwrap();
        Session::new(Shared::new(store, None)).unwrap()
    }

    #[tokio::test]
    async fn integer_literals_are_int4() {
        let s = session();
        let stmt = crate::connection::parse_sql("SELECT 41 + 1, 5000000000")
            .unwrap()
            .remove(0);
        let plan = s.plan(stmt).await.unwrap();
        let types: Vec<DataType> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(types, vec![DataType::Int32, DataType::Int64], "{plan}");
    }
}
