//! A client session: its DataFusion context, transaction state and settings, and the
//! dispatch of each parsed statement.

use std::collections::BTreeMap;
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
use duet_router::routing::{Engine, RouteSlot};
use duet_router::{ScanContext, ViewSlot};
use duet_rowstore::{Isolation, LockWait, StoreRef, Transaction};
use sqlparser::ast::{Expr, Set, Statement, TransactionIsolationLevel, TransactionMode, Value};

use crate::error::{PgError, Result, SqlState};
use crate::fastpath::{Bound, FastPlan};
use crate::{ddl, dml};

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
    CopyIn { columns: usize },
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
}

/// Server-wide state shared by sessions.
pub struct Shared {
    pub store: StoreRef,
    /// The process's replicas (absent in planning-only unit tests).
    services: Option<NodeServices>,
    /// Every connection's cancel key, for CancelRequest.
    pub cancels: Arc<crate::cancel::CancelRegistry>,
    /// The node's router, or an in-memory one without a node.
    pub router: duet_router::RouterRef,
}

impl Shared {
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
        })
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

/// Times a READ COMMITTED statement runs again after rows it writes changed under it,
/// before it gives up with 40001.
const MAX_RESTARTS: usize = 100;

/// One statement's READ COMMITTED re-runs: where it started and how often it has run again.
struct StatementRetry {
    mark: duet_rowstore::txn::StatementMark,
    restarts: usize,
}

impl StatementRetry {
    fn start(txn: &mut Transaction) -> Self {
        StatementRetry {
            mark: txn.begin_statement(),
            restarts: 0,
        }
    }

    /// Whether `e` asks for the statement to run again; if so `txn` is ready for it (its
    /// writes back at the mark, a fresh snapshot, its locks kept).
    fn again(&mut self, txn: &mut Transaction, e: &PgError) -> bool {
        if !e.restart || self.restarts >= MAX_RESTARTS {
            return false;
        }
        self.restarts += 1;
        txn.restart_statement(&self.mark);
        true
    }
}

/// A fast-path statement that has run; an autocommit write's commit is still on its way.
struct FastDone {
    outcome: Outcome,
    commit: Option<duet_rowstore::txn::PendingCommit>,
}

/// The outcome of a fast-path statement once its commit (if any) is applied.
async fn settle_fast(done: Result<FastDone>) -> Result<Outcome> {
    let done = done?;
    if let Some(commit) = done.commit {
        commit.applied().await?;
    }
    Ok(done.outcome)
}

const SERIALIZABLE_NOTICE: &str =
    "DuetDB runs SERIALIZABLE transactions under snapshot isolation (REPEATABLE READ)";

fn isolation_name(level: Isolation) -> &'static str {
    match level {
        Isolation::ReadCommitted => "read committed",
        Isolation::RepeatableRead => "repeatable read",
    }
}

/// Runs a row-lock wait on a thread of its own (see [`blocking`]).
fn wait_in_place(f: &mut dyn FnMut()) {
    blocking(f)
}

/// What statements are planned and run with (see `Session::planning`).
#[derive(Clone)]
pub(crate) struct PlanningState {
    pub state: Arc<datafusion::execution::session_state::SessionState>,
    pub task: Arc<datafusion::execution::TaskContext>,
}

/// One connection's session.
pub struct Session {
    pub(crate) shared: SharedRef,
    pub(crate) ctx: SessionContext,
    /// A snapshot of `ctx`'s state and a task context built from it, reused by every
    /// statement until a setting changes the state. `SessionContext::state()` clones the
    /// whole state (function registries, options) and each execution built another
    /// `TaskContext`: a few percent of a point query's CPU (profiled with pgbench -S).
    planning: parking_lot::Mutex<Option<PlanningState>>,
    pub(crate) view: ViewSlot,
    pub(crate) route: RouteSlot,
    /// Explicit transaction (BEGIN … COMMIT), if any.
    txn: Option<Transaction>,
    /// An error happened inside the explicit transaction: only ROLLBACK/COMMIT go on.
    failed: bool,
    settings: BTreeMap<String, String>,
    /// Notices to send to the client before the statement's result.
    pub(crate) notices: Vec<String>,
    pub(crate) scratch: Arc<MemorySchemaProvider>,
    /// A COPY FROM STDIN waiting for its data.
    pub(crate) copy: Option<crate::copy::CopyIn>,
    /// The running statement's cancel token.
    cancel: crate::cancel::CancelSlot,
    /// This connection's backend pid, once registered for CancelRequest.
    pid: Option<i32>,
    /// A statement's result stream ended in an error after the statement returned (see
    /// `StatementGuard`): inside a transaction block, the block has failed.
    stream_failed: Arc<std::sync::atomic::AtomicBool>,
    /// `duet.fast_path`: primary-key point statements skip DataFusion (see fastpath.rs).
    fast_path: bool,
    /// `default_transaction_isolation` (SET SESSION CHARACTERISTICS sets it too).
    default_isolation: Isolation,
}

/// The default `duet.query_memory_limit`: a quarter of the machine's memory (1 GiB if
/// /proc/meminfo cannot be read).
fn default_query_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024 / 4)
        .unwrap_or(1 << 30)
}

/// A PostgreSQL-style memory setting: a number with a unit (`B`, `kB`, `MB`, `GB`, `TB`);
/// a bare number is kilobytes, as for `work_mem`.
fn parse_memory(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "b" => 1,
        "" | "kb" => 1 << 10,
        "mb" => 1 << 20,
        "gb" => 1 << 30,
        "tb" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Gives `ctx` a memory pool of `limit` bytes per query. Each sort keeps a reservation
/// for merging its spill files (DataFusion's default 10 MB per partition); it is scaled down
/// to an eighth of the limit so that small limits still leave room to sort and spill.
fn set_memory_limit(ctx: &SessionContext, limit: u64) -> Result<()> {
    let state = ctx.state();
    let mut config = state.config().clone();
    let reserve = usize::try_from(limit / 8)
        .unwrap_or(usize::MAX)
        .min(10 << 20);
    config.options_mut().execution.sort_spill_reservation_bytes = reserve;
    let new_state =
        datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
            .with_config(config)
            .with_runtime_env(runtime_env(limit)?)
            .build();
    *ctx.state_ref().write() = new_state;
    Ok(())
}

/// A runtime whose memory pool bounds each query of the session to `limit` bytes. Sorts
/// and aggregations spill to temporary files past it; what cannot spill (a hash join's
/// build side) fails with ResourcesExhausted, which is SQLSTATE 53200.
fn runtime_env(limit: u64) -> Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>> {
    use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
    let pool = TrackConsumersPool::new(
        FairSpillPool::new(usize::try_from(limit).unwrap_or(usize::MAX)),
        std::num::NonZeroUsize::new(3).expect("3 is not zero"),
    );
    Ok(datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .build_arc()?)
}

fn default_settings() -> BTreeMap<String, String> {
    [
        ("application_name", ""),
        ("client_encoding", "UTF8"),
        ("client_min_messages", "notice"),
        ("datestyle", "ISO, MDY"),
        ("default_transaction_isolation", "read committed"),
        ("default_transaction_read_only", "off"),
        ("extra_float_digits", "1"),
        ("integer_datetimes", "on"),
        ("intervalstyle", "postgres"),
        ("lc_messages", "C"),
        ("lock_timeout", "0"),
        ("max_identifier_length", "63"),
        ("search_path", "\"$user\", public"),
        ("server_encoding", "UTF8"),
        ("server_version", "15.0"),
        ("server_version_num", "150000"),
        ("standard_conforming_strings", "on"),
        ("statement_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        ("timezone", "UTC"),
        ("transaction_isolation", "read committed"),
        ("transaction_read_only", "off"),
        ("bytea_output", "hex"),
        ("synchronous_commit", "on"),
        ("row_security", "on"),
        ("geqo", "on"),
        ("jit", "off"),
        ("work_mem", "4MB"),
        ("maintenance_work_mem", "64MB"),
        ("duet.engine", "auto"),
        ("duet.learner_wait_timeout", "2s"),
        ("duet.routing_sample_rate", "0.01"),
        ("duet.fast_path", "on"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([(
        "duet.query_memory_limit".to_string(),
        format!("{}MB", default_query_memory() >> 20),
    )])
    .collect()
}

/// A PostgreSQL-style duration setting: a number of milliseconds, or with a unit
/// (`ms`, `s`, `min`).
fn parse_duration_ms(v: &str) -> Option<std::time::Duration> {
    let v = v.trim().to_ascii_lowercase();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => n,
        "s" => n.checked_mul(1000)?,
        "min" => n.checked_mul(60_000)?,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(ms))
}

/// Canonical (lower-case, alias-resolved) name of a setting.
fn setting_name(raw: &str) -> String {
    let n = raw.trim_matches('"').to_ascii_lowercase();
    match n.as_str() {
        "time zone" | "time_zone" => "timezone".into(),
        "names" => "client_encoding".into(),
        _ => n,
    }
}

fn single_text(name: &str, value: &str) -> Outcome {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
    let col: ArrayRef = Arc::new(StringArray::from(vec![value.to_string()]));
    let batch = RecordBatch::try_new(schema.clone(), vec![col])
        .expect("one utf8 column matches its schema");
    Outcome::Batches {
        schema,
        batches: vec![batch],
        tag: "SHOW".into(),
    }
}

fn expr_setting_value(e: &Expr) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            Value::Boolean(b) => {
                if *b {
                    "on".into()
                } else {
                    "off".into()
                }
            }
            other => other.to_string(),
        },
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

impl Session {
    /// A new session on `shared`.
    pub fn new(shared: SharedRef) -> Result<Self> {
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(DATABASE, "public")
            .with_information_schema(true)
            .with_target_partitions(2);
        config.options_mut().sql_parser.parse_float_as_decimal = true;
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
        {
            // PostgreSQL semantics on top of DataFusion's analyzer rules (see pgsemantics.rs).
            let state = ctx.state();
            let mut rules = state.analyzer().rules.clone();
            rules.push(Arc::new(crate::pgsemantics::CheckedIntegerArithmetic));
            rules.push(Arc::new(crate::pgsemantics::BpcharLiterals));
            let new_state =
                datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
                    .with_analyzer_rules(rules)
                    .build();
            *ctx.state_ref().write() = new_state;
        }
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::pgsemantics::PgTypeOf::default(),
        ));
        ctx.register_udf(
            datafusion::logical_expr::async_udf::AsyncScalarUDF::new(Arc::new(
                crate::pgsemantics::PgSleep::default(),
            ))
            .into_scalar_udf(),
        );
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
            settings: default_settings(),
            notices: Vec::new(),
            scratch,
            cancel: Arc::default(),
            pid: None,
            stream_failed: Arc::default(),
            fast_path: true,
            default_isolation: Isolation::ReadCommitted,
        })
    }

    /// Makes this session's statements cancellable by a CancelRequest naming `pid` and `key`.
    pub fn register_cancel(&mut self, pid: i32, key: bytes::Bytes) {
        self.shared.cancels.register(pid, key, self.cancel.clone());
        self.pid = Some(pid);
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
        let timeout = self
            .setting("statement_timeout")
            .and_then(parse_duration_ms)
            .unwrap_or_default();
        crate::cancel::StatementGuard::start(&self.cancel, timeout, self.stream_failed.clone())
    }

    /// The table called `name`, or 42P01 (the row store's own "does not exist" error).
    pub(crate) fn table(&self, name: &str) -> Result<duet_common::TableDefRef> {
        self.shared
            .store
            .table(name)
            .ok_or_else(|| duet_rowstore::Error::TableNotFound(name.to_string()).into())
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

    /// Current value of a setting.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(&setting_name(name)).map(String::as_str)
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

    /// The fast path alone: `None` when `stmt` does not run there now (not a fast-path shape,
    /// the fast path is off, the block has failed, or its parameters do not bind exactly);
    /// the caller then runs [`Self::execute_general`]. `cached` is the plan made when the
    /// statement was parsed, used while its table is unchanged. Kept apart from the general
    /// path's future, which is large: awaiting it for a point query cost a copy of its whole
    /// state per statement. Its only await is an autocommit write's commit.
    pub async fn execute_fast(
        &mut self,
        stmt: &Statement,
        cached: Option<&Arc<FastPlan>>,
        params: &ParamValues,
    ) -> Option<Result<Outcome>> {
        self.take_stream_failure();
        if self.failed {
            return None;
        }
        let plan = self.fast_plan(stmt, cached)?;
        self.begin_block_statement();
        let result = settle_fast(self.run_fast(&plan, params)?).await;
        self.end_statement(&result);
        Some(result)
    }

    /// Runs one statement without the fast path (transaction control, DDL, DataFusion).
    pub async fn execute_general(
        &mut self,
        stmt: &Statement,
        params: &ParamValues,
    ) -> Result<Outcome> {
        self.take_stream_failure();
        match stmt {
            Statement::StartTransaction { modes, .. } => return Ok(self.begin(modes)),
            Statement::Commit { .. } => return self.commit().await,
            Statement::Rollback {
                savepoint: None, ..
            } => {
                if self.txn.is_none() {
                    self.notices
                        .push("there is no transaction in progress".into());
                }
                self.txn = None;
                self.failed = false;
                let d = self.default_isolation;
                self.show_isolation(d);
                return Ok(Outcome::End("ROLLBACK"));
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

    /// `duet.fast_path`.
    pub fn fast_path_enabled(&self) -> bool {
        self.fast_path
    }

    /// The fast-path plan of `stmt` as this session would run it now: `cached` if its table
    /// has not changed since, else recognised afresh.
    fn fast_plan(&self, stmt: &Statement, cached: Option<&Arc<FastPlan>>) -> Option<Arc<FastPlan>> {
        if !self.fast_path
            || !matches!(
                stmt,
                Statement::Query(_)
                    | Statement::Insert(_)
                    | Statement::Update(_)
                    | Statement::Delete(_)
            )
        {
            return None;
        }
        // A forced column replica (setting or hint) is a request for the general path.
        if self.route.settings.lock().engine == Engine::Column
            || !self.route.statement.lock().hints.is_empty()
        {
            return None;
        }
        let store = &self.shared.store;
        match cached {
            Some(p) if p.is_current(store) => Some(p.clone()),
            _ => FastPlan::recognize(stmt, store).map(Arc::new),
        }
    }

    /// READ COMMITTED: every statement of a block reads the newest committed state.
    fn begin_block_statement(&mut self) {
        if self.txn.is_some() {
            let wait = self.lock_wait();
            if let Some(t) = &mut self.txn {
                t.set_lock_wait(wait);
                drop(t.begin_statement());
            }
        }
    }

    fn end_statement(&mut self, result: &Result<Outcome>) {
        // The plans hold their own read views; the slot must not keep this statement's
        // snapshot pinned while the session sits idle (a pin holds back column compaction).
        *self.view.lock() = None;
        if result.is_err() && self.txn.is_some() {
            self.failed = true;
        }
    }

    /// Runs a fast-path plan. `None` when its parameters do not bind exactly, or an UPDATE's
    /// result cannot be computed here: nothing has been written then, and the caller runs
    /// the statement the general way (which reports any error).
    /// An autocommit write comes back with its commit proposed, not yet applied: the caller
    /// awaits it ([`settle_fast`]), so no thread waits for the Raft log.
    fn run_fast(&mut self, plan: &FastPlan, params: &ParamValues) -> Option<Result<FastDone>> {
        let bound = plan.bind(params)?;
        let def = &plan.def;
        let start = std::time::Instant::now();
        let (rows, result) = match bound {
            Bound::Select {
                pk,
                columns,
                schema,
            } => {
                let row = match pk {
                    None => Ok(None),
                    Some(pk) => match &self.txn {
                        Some(t) => t.get_row(def, &pk),
                        None => duet_rowstore::txn::read_row_now(&self.shared.store, def, &pk),
                    },
                };
                let result = row.map_err(PgError::from).and_then(|row| {
                    let rows: Vec<duet_common::Row> = row.into_iter().collect();
                    let batch = duet_common::batch::rows_to_batch(def, &columns, &rows)?;
                    let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                        .map_err(datafusion::error::DataFusionError::from)?;
                    Ok(FastDone {
                        outcome: Outcome::Batches {
                            schema,
                            batches: vec![batch],
                            tag: "SELECT".into(),
                        },
                        commit: None,
                    })
                });
                let n = match &result {
                    Ok(FastDone {
                        outcome: Outcome::Batches { batches, .. },
                        ..
                    }) => batches[0].num_rows() as u64,
                    _ => 0,
                };
                (n, result)
            }
            write => {
                let autocommit = self.txn.is_none();
                let mut txn = match self.txn.take() {
                    Some(t) => t,
                    None => self.autocommit_txn(),
                };
                let mut retry = StatementRetry::start(&mut txn);
                // The command tag's verb and the rows written; `None`: the general path.
                let done = loop {
                    let done: Result<Option<(&str, u64)>> = match &write {
                        Bound::Update { pk, plan: set } => (|| {
                            let old = match pk {
                                Some(pk) => txn.get_row(def, pk)?,
                                None => None,
                            };
                            let (Some(pk), Some(old)) = (pk, old) else {
                                return Ok(Some(("UPDATE", 0)));
                            };
                            let Some(new) = set.apply(def, &old) else {
                                return Ok(None);
                            };
                            txn.replace(def, pk, &old, new)?;
                            Ok(Some(("UPDATE", 1)))
                        })(),
                        Bound::Delete { pk } => match pk {
                            Some(pk) => txn
                                .delete(def, pk)
                                .map(|old| Some(("DELETE", old.is_some() as u64)))
                                .map_err(PgError::from),
                            None => Ok(Some(("DELETE", 0))),
                        },
                        Bound::Insert { rows } => txn
                            .insert_many(def, rows.clone())
                            .map(|()| Some(("INSERT 0", rows.len() as u64)))
                            .map_err(PgError::from),
                        Bound::Select { .. } => unreachable!("handled above"),
                    };
                    match done {
                        // READ COMMITTED: the row changed under the statement; its lock is
                        // held now, so the next read sees its newest version.
                        Err(e) if retry.again(&mut txn, &e) => {}
                        done => break done,
                    }
                };
                let (verb, n) = match done {
                    Ok(Some(written)) => written,
                    other => {
                        if !autocommit {
                            self.txn = Some(txn);
                        }
                        // Ok(None): nothing was written; the general path runs it.
                        return other.err().map(Err);
                    }
                };
                let tag = Outcome::Command(format!("{verb} {n}"));
                let result = if autocommit {
                    txn.commit_pipelined()
                        .map(|p| FastDone {
                            outcome: tag,
                            commit: Some(p),
                        })
                        .map_err(PgError::from)
                } else {
                    self.txn = Some(txn);
                    Ok(FastDone {
                        outcome: tag,
                        commit: None,
                    })
                };
                (n, result)
            }
        };
        let text = self.route.statement.lock().text.clone();
        // Under `duet.engine = 'row'` the choice was the session's, as for a routed scan.
        let reason = if self.route.settings.lock().engine == Engine::Row {
            format!("session setting; {}", plan.reason())
        } else {
            plan.reason().to_string()
        };
        self.shared
            .router
            .log_fast_path(text, &def.name, reason, rows, start.elapsed());
        Some(result)
    }

    fn begin(&mut self, modes: &[TransactionMode]) -> Outcome {
        if self.txn.is_some() {
            self.notices
                .push("there is already a transaction in progress".into());
            return Outcome::Begin;
        }
        let level = self.isolation_of(modes).unwrap_or(self.default_isolation);
        self.show_isolation(level);
        self.txn = Some(Transaction::begin_with(&self.shared.store, level));
        self.failed = false;
        Outcome::Begin
    }

    /// The isolation level `modes` ask for, if any (SERIALIZABLE runs as REPEATABLE READ,
    /// with a notice).
    fn isolation_of(&mut self, modes: &[TransactionMode]) -> Option<Isolation> {
        let mut out = None;
        for m in modes {
            if let TransactionMode::IsolationLevel(level) = m {
                out = Some(match level {
                    TransactionIsolationLevel::ReadUncommitted
                    | TransactionIsolationLevel::ReadCommitted => Isolation::ReadCommitted,
                    TransactionIsolationLevel::RepeatableRead
                    | TransactionIsolationLevel::Snapshot => Isolation::RepeatableRead,
                    TransactionIsolationLevel::Serializable => {
                        self.notices.push(SERIALIZABLE_NOTICE.into());
                        Isolation::RepeatableRead
                    }
                });
            }
        }
        out
    }

    fn show_isolation(&mut self, level: Isolation) {
        self.settings
            .insert("transaction_isolation".into(), isolation_name(level).into());
    }

    /// What may end a row-lock wait of the statement about to run: its cancel token,
    /// `lock_timeout` and `statement_timeout`.
    fn lock_wait(&self) -> LockWait {
        let token = self.cancel.lock().clone();
        let ms = |name: &str| {
            self.setting(name)
                .and_then(parse_duration_ms)
                .filter(|d| !d.is_zero())
        };
        let now = std::time::Instant::now();
        let lock = ms("lock_timeout").map(|d| (now + d, duet_rowstore::Error::LockTimeout));
        let stmt =
            ms("statement_timeout").map(|d| (now + d, duet_rowstore::Error::StatementTimeout));
        let first = match (lock, stmt) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        LockWait {
            deadline: first.as_ref().map(|f| f.0),
            deadline_error: first.map(|f| f.1),
            cancelled: Some(Arc::new(move || token.is_cancelled())),
            blocking: Some(wait_in_place),
        }
    }

    /// A transaction for one statement outside a block (READ COMMITTED, as in PostgreSQL).
    pub(crate) fn autocommit_txn(&self) -> Transaction {
        let mut t = Transaction::begin(&self.shared.store);
        t.set_lock_wait(self.lock_wait());
        t
    }

    /// Ends the explicit transaction. A failed commit (write conflict) still ends the
    /// block: the error is returned and the session is idle again, as in PostgreSQL.
    async fn commit(&mut self) -> Result<Outcome> {
        let d = self.default_isolation;
        self.show_isolation(d);
        let Some(txn) = self.txn.take() else {
            self.notices
                .push("there is no transaction in progress".into());
            return Ok(Outcome::End("COMMIT"));
        };
        if self.failed {
            self.failed = false;
            return Ok(Outcome::End("ROLLBACK"));
        }
        txn.commit_pipelined()?.applied().await?;
        Ok(Outcome::End("COMMIT"))
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
            Statement::Query(_) | Statement::Explain { .. } => {
                self.publish_view();
                self.run_query(stmt, params).await
            }
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                let autocommit = self.txn.is_none();
                let mut txn = match self.txn.take() {
                    Some(t) => t,
                    None => self.autocommit_txn(),
                };
                let mut retry = StatementRetry::start(&mut txn);
                let result = loop {
                    match dml::execute(self, &mut txn, stmt.clone(), params).await {
                        // READ COMMITTED: a target row changed after the statement's
                        // snapshot. Its lock is held now: run the statement again on a fresh
                        // snapshot, where it sees the newest version (PostgreSQL re-checks
                        // the row; re-running the statement is the same for one row and
                        // safe for many).
                        Err(e) if retry.again(&mut txn, &e) => {}
                        r => break r,
                    }
                };
                drop(retry);
                *self.view.lock() = None;
                if autocommit {
                    let outcome = result?;
                    txn.commit_pipelined()?.applied().await?;
                    Ok(outcome)
                } else {
                    self.txn = Some(txn);
                    result
                }
            }
            Statement::Copy { to: true, .. } => {
                self.publish_view();
                crate::copy::copy_to(self, stmt).await
            }
            Statement::Copy { .. } => {
                let copy = crate::copy::start(self, stmt).await?;
                let columns = copy.width();
                self.copy = Some(copy);
                Ok(Outcome::CopyIn { columns })
            }
            Statement::Set(set) => self.set(set),
            Statement::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|i| i.value.clone())
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut key = setting_name(&name);
                if !self.settings.contains_key(&key) {
                    // `SHOW duet.engine` arrives as two identifiers.
                    let dotted = setting_name(
                        &variable
                            .iter()
                            .map(|i| i.value.clone())
                            .collect::<Vec<_>>()
                            .join("."),
                    );
                    if self.settings.contains_key(&dotted) {
                        key = dotted;
                    }
                }
                match self.settings.get(&key) {
                    Some(v) => Ok(single_text(&key, v)),
                    None if key == "all" => Err(PgError::unsupported("SHOW ALL")),
                    None => Err(PgError::new(
                        SqlState::UndefinedObject,
                        format!("unrecognized configuration parameter \"{name}\""),
                    )),
                }
            }
            Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Rollback { .. } => Err(PgError::unsupported("SAVEPOINT")),
            Statement::Discard { .. } => Ok(Outcome::Command("DISCARD ALL".into())),
            other => ddl::execute(self, other).await,
        }
    }

    /// `SELECT … FROM t [WHERE …] FOR UPDATE | FOR SHARE [NOWAIT]`: locks every row of `t`
    /// the WHERE clause matches, as a write would (READ COMMITTED re-reads a row that changed
    /// after the snapshot by running the statement again), then answers the query at the
    /// snapshot where all of them were locked. FOR SHARE takes the same exclusive lock.
    async fn select_for_update(
        &mut self,
        mut q: sqlparser::ast::Query,
        params: &ParamValues,
    ) -> Result<Outcome> {
        use sqlparser::ast::{NonBlock, SetExpr, TableFactor};
        let unsupported = |what: &str| Err(PgError::unsupported(what));
        let nowait = match q.locks.iter().find_map(|l| l.nonblock.as_ref()) {
            Some(NonBlock::SkipLocked) => return unsupported("SKIP LOCKED"),
            Some(NonBlock::Nowait) => true,
            None => false,
        };
        let SetExpr::Select(select) = q.body.as_ref() else {
            return unsupported("FOR UPDATE on a set operation");
        };
        let [from] = select.from.as_slice() else {
            return unsupported("FOR UPDATE over several tables");
        };
        let (TableFactor::Table { name, alias, .. }, true) =
            (&from.relation, from.joins.is_empty())
        else {
            return unsupported("FOR UPDATE over a join or a subquery");
        };
        let table = crate::ident::table_name(name)?;
        let alias = alias
            .as_ref()
            .map(|a| crate::ident::ident_name(&a.name))
            .unwrap_or_else(|| table.clone());
        let selection = select.selection.clone();
        q.locks.clear();
        let query = Statement::Query(Box::new(q));
        // Outside a block the locks would be released at once: PostgreSQL still waits for
        // other holders, which this does not.
        let Some(mut txn) = self.txn.take() else {
            self.publish_view();
            return self.run_query(query, params).await;
        };
        let def = match self.table(&table) {
            Ok(d) => d,
            Err(e) => {
                self.txn = Some(txn);
                return Err(e);
            }
        };
        if nowait {
            let mut wait = self.lock_wait();
            wait.deadline = Some(std::time::Instant::now());
            wait.deadline_error = Some(duet_rowstore::Error::LockTimeout);
            txn.set_lock_wait(wait);
        }
        let mut retry = StatementRetry::start(&mut txn);
        let locked = loop {
            let r = match dml::read_targets(
                self,
                &txn,
                &table,
                &alias,
                &[],
                &[],
                selection.as_ref(),
                params,
            )
            .await
            {
                Ok(batches) => (|| -> Result<()> {
                    let ncols = def.columns.len();
                    for b in &batches {
                        let keys = dml::keys_of(b, ncols)?;
                        txn.lock_rows(&def, keys.iter().flatten())?;
                    }
                    Ok(())
                })(),
                Err(e) => Err(e),
            };
            match r {
                Err(e) if retry.again(&mut txn, &e) => {}
                r => break r,
            }
        };
        drop(retry);
        self.txn = Some(txn);
        locked?;
        self.publish_view();
        self.run_query(query, params).await
    }

    fn set(&mut self, set: Set) -> Result<Outcome> {
        match set {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = setting_name(&variable.to_string());
                let value = values
                    .iter()
                    .map(expr_setting_value)
                    .collect::<Vec<_>>()
                    .join(", ");
                self.assign_setting(&name, value)?;
            }
            Set::SetTimeZone { value, .. } => {
                self.assign_setting("timezone", expr_setting_value(&value))?;
            }
            Set::SetNames { charset_name, .. } => {
                self.assign_setting("client_encoding", charset_name.value)?;
            }
            Set::SetTransaction { modes, session, .. } => {
                if let Some(level) = self.isolation_of(&modes) {
                    if session {
                        self.default_isolation = level;
                        self.settings.insert(
                            "default_transaction_isolation".into(),
                            isolation_name(level).into(),
                        );
                    }
                    match &mut self.txn {
                        Some(t) if !session => {
                            t.set_isolation(level);
                            self.show_isolation(level);
                        }
                        Some(_) => {}
                        None => {
                            if !session {
                                self.notices.push(
                                    "SET TRANSACTION can only be used in transaction blocks".into(),
                                );
                            }
                            let d = self.default_isolation;
                            self.show_isolation(d);
                        }
                    }
                }
            }
            Set::MultipleAssignments { assignments } => {
                for a in assignments {
                    let name = setting_name(&a.name.to_string());
                    self.assign_setting(&name, expr_setting_value(&a.value))?;
                }
            }
            Set::SetSessionParam(_)
            | Set::SetRole { .. }
            | Set::SetSessionAuthorization(_)
            | Set::SetNamesDefault {} => {}
            other => return Err(PgError::unsupported(format!("SET form {other}"))),
        }
        Ok(Outcome::Command("SET".into()))
    }

    fn assign_setting(&mut self, name: &str, value: String) -> Result<()> {
        if name == "client_encoding"
            && !matches!(
                value.to_ascii_uppercase().as_str(),
                "UTF8" | "UTF-8" | "UNICODE"
            )
        {
            return Err(PgError::unsupported(format!("client_encoding {value}")));
        }
        let invalid = || {
            PgError::new(
                SqlState::InvalidParameterValue,
                format!("invalid value for parameter \"{name}\": \"{value}\""),
            )
        };
        if name == "duet.engine" {
            let engine = Engine::parse(&value.to_ascii_lowercase()).ok_or_else(invalid)?;
            self.route.settings.lock().engine = engine;
        }
        if name == "duet.learner_wait_timeout" {
            let wait = parse_duration_ms(&value).ok_or_else(invalid)?;
            self.route.settings.lock().learner_wait = wait;
        }
        if name == "duet.routing_sample_rate" {
            let rate: f64 = value
                .parse()
                .ok()
                .filter(|r: &f64| (0.0..=1.0).contains(r))
                .ok_or_else(invalid)?;
            self.route.settings.lock().sample_rate = rate;
        }
        if name == "statement_timeout" {
            parse_duration_ms(&value).ok_or_else(invalid)?;
        }
        if name == "duet.fast_path" {
            self.fast_path = match value.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => return Err(invalid()),
            };
        }
        if name.starts_with("datafusion.") {
            // DataFusion's own options (e.g. datafusion.explain.show_statistics), per session.
            // PostgreSQL spells booleans on/off; DataFusion wants true/false.
            let df_value = match value.as_str() {
                "on" => "true",
                "off" => "false",
                v => v,
            };
            let state = self.ctx.state_ref();
            let mut state = state.write();
            state
                .config_mut()
                .options_mut()
                .set(name, df_value)
                .map_err(|e| PgError::new(SqlState::InvalidParameterValue, e.to_string()))?;
            drop(state);
            *self.planning.lock() = None;
        }
        if name == "duet.query_memory_limit" {
            let limit = parse_memory(&value)
                .filter(|&l| l > 0)
                .ok_or_else(invalid)?;
            set_memory_limit(&self.ctx, limit)?;
            *self.planning.lock() = None;
        }
        if !self.settings.contains_key(name) && !name.contains('.') {
            return Err(PgError::new(
                SqlState::UndefinedObject,
                format!("unrecognized configuration parameter \"{name}\""),
            ));
        }
        if name == "transaction_isolation" || name == "default_transaction_isolation" {
            let level = match value.to_ascii_lowercase().trim_matches('\'') {
                "read committed" | "read uncommitted" => Isolation::ReadCommitted,
                "repeatable read" => Isolation::RepeatableRead,
                "serializable" => {
                    self.notices.push(SERIALIZABLE_NOTICE.into());
                    Isolation::RepeatableRead
                }
                _ => return Err(invalid()),
            };
            if name == "default_transaction_isolation" {
                self.default_isolation = level;
                self.settings
                    .insert(name.into(), isolation_name(level).into());
                if self.txn.is_none() {
                    self.show_isolation(level);
                }
            } else if let Some(t) = &mut self.txn {
                t.set_isolation(level);
                self.show_isolation(level);
            }
            return Ok(());
        }
        self.settings.insert(name.to_string(), value);
        Ok(())
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
        crate::pgsemantics::type_integer_literals(&mut stmt);
        crate::pgsemantics::alias_duplicate_outputs(&mut stmt);
        let plan = self
            .planning(false)
            .state
            .statement_to_plan(DFStatement::Statement(Box::new(stmt)))
            .await?;
        Ok(plan)
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

    /// Optimizes and starts a logical plan (a query, EXPLAIN, or a DML statement's read)
    /// on the cached planning state.
    pub(crate) async fn execute_plan(
        &self,
        plan: LogicalPlan,
    ) -> Result<SendableRecordBatchStream> {
        let p = self.planning(true);
        let physical = p.state.create_physical_plan(&plan).await?;
        Ok(datafusion::physical_plan::execute_stream(physical, p.task)?)
    }

    /// Runs a query (no parameters) whose snapshot view is already published.
    pub(crate) async fn query(&mut self, stmt: Statement) -> Result<Outcome> {
        self.run_query(stmt, &ParamValues::List(vec![])).await
    }

    async fn run_query(&mut self, stmt: Statement, params: &ParamValues) -> Result<Outcome> {
        let plan = self.plan(stmt).await?;
        let plan = bind(plan, params)?;
        let stream = self.execute_plan(plan).await?;
        Ok(Outcome::Stream {
            stream,
            tag: "SELECT".into(),
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
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
