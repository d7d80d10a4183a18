//! The HTTP listener (default `127.0.0.1:8433`): `GET /metrics` (Prometheus text format),
//! `GET /health`, `GET /api/replicas` (the rows of `duet.replicas` as JSON),
//! `GET /api/routing` (the router's recent decisions, per-table statistics freshness,
//! replica lag, cost constants and calibration history, as JSON) and `GET /inspector`, a
//! page that shows the same (`src/inspector.html`, plain HTML and JavaScript). A
//! column-only member serves `/metrics`, `/health`, `/api/replicas` and `/api/cluster`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use duet_colstore::ColumnStore;
use duet_replication::PeerStatus;
use duet_router::sysviews::{ReplicaInfo, ReplicaRow};
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::column_member::ColumnMember;
use crate::node::NodeRef;

/// A running HTTP listener.
pub struct HttpServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// Binds `listen` and serves `node`'s endpoints on the current runtime.
    pub async fn start(node: NodeRef, listen: SocketAddr) -> std::io::Result<HttpServer> {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/health", get(|| async { "ok\n" }))
            .route("/api/replicas", get(replicas))
            .route("/api/cluster", get(cluster))
            .route("/api/routing", get(routing))
            .route("/inspector", get(inspector))
            .with_state(node);
        Self::serve(app, listen).await
    }

    /// Binds `listen` and serves a column-only member's endpoints: `/metrics`, `/health`,
    /// `/api/replicas` and `/api/cluster` (it routes no scans: the router's report and the
    /// inspector are on the members with the row replica).
    pub async fn start_column(
        member: Arc<ColumnMember>,
        listen: SocketAddr,
    ) -> std::io::Result<HttpServer> {
        let app = Router::new()
            .route(
                "/metrics",
                get(|State(m): State<Arc<ColumnMember>>| async move {
                    text_metrics(render_column_metrics(&m))
                }),
            )
            .route("/health", get(|| async { "ok\n" }))
            .route(
                "/api/replicas",
                get(|State(m): State<Arc<ColumnMember>>| async move { json(&m.replica_rows()) }),
            )
            .route(
                "/api/cluster",
                get(|State(m): State<Arc<ColumnMember>>| async move { json(&m.members()) }),
            )
            .with_state(member);
        Self::serve(app, listen).await
    }

    async fn serve(app: Router, listen: SocketAddr) -> std::io::Result<HttpServer> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (tx, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let stop = async move {
                let _ = rx.changed().await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "HTTP listener failed");
            }
        });
        Ok(HttpServer {
            addr,
            shutdown: tx,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

async fn replicas(State(node): State<NodeRef>) -> impl IntoResponse {
    json(&node.replica_rows())
}

/// `duet.cluster` as JSON.
async fn cluster(State(node): State<NodeRef>) -> impl IntoResponse {
    json(&node.members())
}

fn json(rows: &impl serde::Serialize) -> impl IntoResponse {
    match serde_json::to_string_pretty(rows) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

/// One table's statistics freshness, for the inspector.
#[derive(serde::Serialize)]
struct TableFreshness {
    table: String,
    column_replica: bool,
    analyzed_at_ms: Option<u64>,
    analyzed_rows: Option<f64>,
    changes_since: u64,
    stale: bool,
}

/// What `GET /api/routing` returns.
#[derive(serde::Serialize)]
struct RoutingReport {
    /// Newest first.
    decisions: Vec<duet_router::routing::RouteEntry>,
    tables: Vec<TableFreshness>,
    replicas: Vec<duet_router::sysviews::ReplicaRow>,
    members: Vec<duet_router::sysviews::MemberRow>,
    calibration: duet_router::cost::CalibrationView,
}

/// The routing report of `node`.
pub fn routing_report(node: &NodeRef) -> serde_json::Value {
    let router = node.router();
    let mut decisions = router.log.entries();
    decisions.reverse();
    let tables = node
        .store
        .tables()
        .iter()
        .filter(|def| def.has_rows())
        .map(|def| {
            let stats = router.table_stats(def);
            let (changes_since, stale) = router.staleness(def);
            TableFreshness {
                table: def.name.clone(),
                column_replica: def.columnar,
                analyzed_at_ms: stats.as_ref().map(|s| s.analyzed_at_ms),
                analyzed_rows: stats.as_ref().map(|s| s.row_count),
                changes_since,
                stale,
            }
        })
        .collect();
    let report = RoutingReport {
        decisions,
        tables,
        replicas: node.replica_rows(),
        members: node.members(),
        calibration: router.calibrator.view(),
    };
    serde_json::to_value(report).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}

async fn routing(State(node): State<NodeRef>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        routing_report(&node).to_string(),
    )
}

async fn inspector() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("inspector.html"),
    )
}

async fn metrics(State(node): State<NodeRef>) -> impl IntoResponse {
    text_metrics(render_metrics(&node))
}

fn text_metrics(rendered: Result<String, prometheus::Error>) -> impl IntoResponse {
    match rendered {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

/// The node's collectors, registered in one registry.
struct Collectors {
    registry: Registry,
    raft: IntGaugeVec,
    learner_lag: IntGaugeVec,
    table: GaugeVec,
    counters: IntCounterVec,
    fallbacks: IntCounterVec,
    raft_events: IntCounterVec,
    row_cache: IntCounterVec,
    gc: IntGaugeVec,
    gc_removed: IntCounterVec,
    disk: IntGaugeVec,
    disk_refused: IntCounterVec,
    memory_budget: IntGaugeVec,
    memory_used: IntGaugeVec,
    column_cache: IntGaugeVec,
    column_cache_events: IntCounterVec,
}

impl Collectors {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let raft = IntGaugeVec::new(
            Opts::new("duet_raft_index", "Raft log indexes per peer"),
            &["peer", "kind"],
        )?;
        let learner_lag = IntGaugeVec::new(
            Opts::new(
                "duet_learner_lag",
                "How far the learner is behind the leader",
            ),
            &["unit"],
        )?;
        let table = GaugeVec::new(
            Opts::new("duet_column_replica", "Per-table column replica figures"),
            &["table", "figure"],
        )?;
        let counters = IntCounterVec::new(
            Opts::new("duet_column_events_total", "Column replica events"),
            &["event"],
        )?;
        let fallbacks = IntCounterVec::new(
            Opts::new(
                "duet_column_fallbacks_total",
                "Scans that asked for the column replica and read the row replica",
            ),
            &["reason"],
        )?;
        let raft_events = IntCounterVec::new(
            Opts::new(
                "duet_raft_events_total",
                "Raft log writes and the entries they carried (entries / writes = group-commit batch)",
            ),
            &["peer", "event"],
        )?;
        let row_cache = IntCounterVec::new(
            Opts::new(
                "duet_row_cache_lookups_total",
                "Point reads and commit checks answered by the row cache (hit) or by RocksDB (miss)",
            ),
            &["result"],
        )?;
        let gc = IntGaugeVec::new(
            Opts::new(
                "duet_gc",
                "Row replica garbage collection: safe_point, safe_point_age_ms, versions_behind (current version minus the safe point), life_time_ms",
            ),
            &["figure"],
        )?;
        let gc_removed = IntCounterVec::new(
            Opts::new(
                "duet_gc_removed_total",
                "What garbage collection removed from the row replica: versions, tombstones, bytes",
            ),
            &["kind"],
        )?;
        let disk = IntGaugeVec::new(
            Opts::new(
                "duet_disk",
                "The data directory's disk: available_bytes, reserve_bytes (writes are refused with 53100 below it), full (1 while below)",
            ),
            &["figure"],
        )?;
        let disk_refused = IntCounterVec::new(
            Opts::new(
                "duet_disk_full_refusals_total",
                "Writes refused with 53100 because the disk was below its reserve",
            ),
            &["dir"],
        )?;
        let memory_budget = IntGaugeVec::new(
            Opts::new(
                "duet_memory_budget_bytes",
                "Memory budgets: row_cache, block_cache (RocksDB), column_cache, query_default (a session's duet.query_memory_limit until it sets one)",
            ),
            &["pool"],
        )?;
        let column_cache = IntGaugeVec::new(
            Opts::new(
                "duet_column_cache",
                "The column cache: bytes and entries (chunk columns) it holds now",
            ),
            &["figure"],
        )?;
        let column_cache_events = IntCounterVec::new(
            Opts::new(
                "duet_column_cache_events_total",
                "Column cache: hit and miss (chunk columns a scan asked for), file_read (projected reads of chunk files), read_ahead (those a scan made ahead of itself), bytes_loaded (Arrow bytes read from them)",
            ),
            &["event"],
        )?;
        let memory_used = IntGaugeVec::new(
            Opts::new(
                "duet_memory_bytes",
                "Memory held now: row_cache, block_cache, memtables and table_readers (RocksDB), column_cache",
            ),
            &["pool"],
        )?;
        registry.register(Box::new(memory_used.clone()))?;
        registry.register(Box::new(column_cache.clone()))?;
        registry.register(Box::new(column_cache_events.clone()))?;
        registry.register(Box::new(memory_budget.clone()))?;
        registry.register(Box::new(disk.clone()))?;
        registry.register(Box::new(disk_refused.clone()))?;
        registry.register(Box::new(gc.clone()))?;
        registry.register(Box::new(gc_removed.clone()))?;
        registry.register(Box::new(raft.clone()))?;
        registry.register(Box::new(row_cache.clone()))?;
        registry.register(Box::new(raft_events.clone()))?;
        registry.register(Box::new(learner_lag.clone()))?;
        registry.register(Box::new(table.clone()))?;
        registry.register(Box::new(counters.clone()))?;
        registry.register(Box::new(fallbacks.clone()))?;
        Ok(Collectors {
            registry,
            raft,
            learner_lag,
            table,
            counters,
            fallbacks,
            raft_events,
            row_cache,
            gc,
            gc_removed,
            disk,
            disk_refused,
            memory_budget,
            memory_used,
            column_cache,
            column_cache_events,
        })
    }
}

impl Collectors {
    /// Everything gathered, in the text format.
    fn encode(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

fn as_i64(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// The row cache and both Raft peers' figures.
fn raft_figures(node: &NodeRef, c: &Collectors) {
    let (hits, misses) = node.store.row_cache_stats();
    c.row_cache.with_label_values(&["hit"]).inc_by(hits);
    c.row_cache.with_label_values(&["miss"]).inc_by(misses);
    let gc = node.store.gc_report();
    for (figure, v) in [
        ("safe_point", gc.stats.safe_point),
        (
            "safe_point_age_ms",
            gc.safe_point_age.map_or(0, |d| d.as_millis() as u64),
        ),
        (
            "versions_behind",
            gc.current_version.saturating_sub(gc.stats.safe_point),
        ),
        ("life_time_ms", gc.life_time.as_millis() as u64),
    ] {
        c.gc.with_label_values(&[figure]).set(as_i64(v));
    }
    for (kind, v) in [
        ("versions", gc.stats.versions_removed),
        ("tombstones", gc.stats.tombstones_removed),
        ("bytes", gc.stats.bytes_removed),
    ] {
        c.gc_removed.with_label_values(&[kind]).inc_by(v);
    }
    let (row_cache, block_cache) = node.store.cache_budgets();
    for (pool, bytes) in [
        ("row_cache", row_cache),
        ("block_cache", block_cache),
        ("query_default", duet_sql::default_query_memory()),
    ] {
        c.memory_budget
            .with_label_values(&[pool])
            .set(as_i64(bytes));
    }
    for (pool, bytes) in node.store.memory_usage() {
        c.memory_used.with_label_values(&[pool]).set(as_i64(bytes));
    }
    if let Some(disk) = node.store.disk_guard() {
        let available = disk.available().unwrap_or(0);
        for (figure, v) in [
            ("available_bytes", available),
            ("reserve_bytes", disk.reserve()),
            ("full", u64::from(available < disk.reserve())),
        ] {
            c.disk.with_label_values(&[figure]).set(as_i64(v));
        }
        c.disk_refused
            .with_label_values(&[&disk.dir().display().to_string()])
            .inc_by(disk.refused());
    }
    let voter = node.voter();
    log_figures("voter", voter, c);
    if let Some(learner) = node.learner_peer() {
        log_figures("learner", &learner, c);
    }
}

/// A peer's log indexes and its log writes.
fn log_figures(role: &str, status: &PeerStatus, c: &Collectors) {
    for (kind, v) in [
        ("commit", status.committed()),
        ("applied", status.applied()),
        ("first", status.first_index()),
        ("last", status.last_index()),
    ] {
        c.raft.with_label_values(&[role, kind]).set(as_i64(v));
    }
    peer_events(role, status, c);
}

/// Log writes, the entries they carried and syncs of one peer.
fn peer_events(role: &str, status: &PeerStatus, c: &Collectors) {
    let (writes, entries) = status.log_writes();
    for (event, n) in [
        ("log_writes", writes),
        ("entries_written", entries),
        ("log_syncs", status.log_syncs()),
    ] {
        c.raft_events.with_label_values(&[role, event]).inc_by(n);
    }
}

/// The learner's lag, every table's column replica and the column scans' counters.
fn replica_figures(node: &NodeRef, c: &Collectors) {
    let l = node.learner_status();
    learner_figures(l.applied, l.lag_entries, l.lag_ms, c);
    table_figures(&node.replica_rows(), c);
    if let Some(cs) = node.column_store() {
        column_store_figures(&cs, c);
    }
    c.counters
        .with_label_values(&["column_scans"])
        .inc_by(node.columns().column_scans());
    for (reason, n) in node.columns().fallbacks() {
        c.fallbacks.with_label_values(&[reason]).inc_by(n);
    }
}

fn learner_figures(applied: u64, lag_entries: u64, lag_ms: u64, c: &Collectors) {
    c.raft
        .with_label_values(&["learner", "applied"])
        .set(as_i64(applied));
    c.learner_lag
        .with_label_values(&["entries"])
        .set(as_i64(lag_entries));
    c.learner_lag
        .with_label_values(&["milliseconds"])
        .set(as_i64(lag_ms));
}

fn table_figures(rows: &[ReplicaRow], c: &Collectors) {
    for r in rows {
        let state = match r.state.as_str() {
            "available" => 1.0,
            "building" => 0.5,
            _ => 0.0,
        };
        let name = r.table_name.as_str();
        for (figure, v) in [
            ("available", state),
            ("build_progress", r.progress),
            ("delta_rows", r.delta_rows as f64),
            ("stable_rows", r.stable_rows as f64),
        ] {
            c.table.with_label_values(&[name, figure]).set(v);
        }
    }
}

fn column_store_figures(cs: &ColumnStore, c: &Collectors) {
    let f = cs.cache().figures();
    c.memory_budget
        .with_label_values(&["column_cache"])
        .set(as_i64(f.capacity));
    c.column_cache
        .with_label_values(&["bytes"])
        .set(as_i64(f.bytes));
    c.memory_used
        .with_label_values(&["column_cache"])
        .set(as_i64(f.bytes));
    c.column_cache
        .with_label_values(&["entries"])
        .set(as_i64(f.entries));
    for (event, v) in [
        ("hit", f.hits),
        ("miss", f.misses),
        ("file_read", f.file_reads),
        ("read_ahead", f.prefetches),
        ("bytes_loaded", f.bytes_loaded),
    ] {
        c.column_cache_events.with_label_values(&[event]).inc_by(v);
    }
    let n = &cs.counters;
    for (name, v) in [
        ("rows_applied", n.rows_applied.load(Ordering::Relaxed)),
        ("compactions", n.compactions.load(Ordering::Relaxed)),
        ("checkpoints", n.checkpoints.load(Ordering::Relaxed)),
        ("builds", n.builds.load(Ordering::Relaxed)),
        (
            "apply_microseconds",
            n.apply_nanos.load(Ordering::Relaxed) / 1000,
        ),
        ("versions_folded", n.versions_folded.load(Ordering::Relaxed)),
        (
            "compact_microseconds",
            n.compact_nanos.load(Ordering::Relaxed) / 1000,
        ),
        (
            "delta_full_waits",
            n.delta_full_waits.load(Ordering::Relaxed),
        ),
        (
            "delta_full_microseconds",
            n.delta_full_nanos.load(Ordering::Relaxed) / 1000,
        ),
    ] {
        c.counters.with_label_values(&[name]).inc_by(v);
    }
}

/// A column-only member's figures: its learner's log, lag and column store.
pub fn render_column_metrics(member: &ColumnMember) -> Result<String, prometheus::Error> {
    let c = Collectors::new()?;
    let s = member.learner();
    log_figures("learner", s, &c);
    learner_figures(
        s.applied(),
        s.committed().saturating_sub(s.applied()),
        member.lag_ms(),
        &c,
    );
    table_figures(&member.replica_rows(), &c);
    column_store_figures(member.store(), &c);
    c.encode()
}

/// The node's figures in the Prometheus text format, gathered now.
pub fn render_metrics(node: &NodeRef) -> Result<String, prometheus::Error> {
    let c = Collectors::new()?;
    raft_figures(node, &c);
    replica_figures(node, &c);
    let mut out = c.encode()?;
    // Commit-to-learner visibility, already bucketed by the learner.
    let (buckets, count, sum) = node.lag_histogram().snapshot();
    out.push_str(
        "# HELP duet_learner_visibility_seconds Time from commit on the leader to apply on the learner\n\
         # TYPE duet_learner_visibility_seconds histogram\n",
    );
    for (le, c) in buckets {
        let _ = writeln!(
            out,
            "duet_learner_visibility_seconds_bucket{{le=\"{le}\"}} {c}"
        );
    }
    let _ = writeln!(
        out,
        "duet_learner_visibility_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(out, "duet_learner_visibility_seconds_sum {sum}");
    let _ = writeln!(out, "duet_learner_visibility_seconds_count {count}");
    Ok(out)
}
