//! Which replica a scan reads, and the record of every decision.
//!
//! Precedence: a hint in the statement (`/*+ engine(column) */`, `/*+ engine(row t1) */`),
//! then the session's `duet.engine`, then the cost model ([`crate::cost`]) over the table's
//! statistics ([`crate::stats`]). A scan that wants the column replica but cannot have it
//! (uncommitted writes, learner down or late, no replica) reads the row replica and says
//! why. Every routed scan is a [`RouteRecord`] in the [`RoutingLog`]: both costs, the
//! estimated rows, and, once its streams end, the actual rows and time, which also feed the
//! calibration. A sampled fraction of scans is also run on the other replica afterwards, so
//! the log can show the regret of a decision.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use duet_colstore::ColumnStoreRef;
use parking_lot::{Mutex, RwLock};

/// A replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Replica {
    Row,
    Column,
}

impl Replica {
    pub fn label(self) -> &'static str {
        match self {
            Replica::Row => "row",
            Replica::Column => "column",
        }
    }
}

/// The replica a session asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The router decides by cost.
    Auto,
    Row,
    Column,
}

impl Engine {
    pub fn parse(s: &str) -> Option<Engine> {
        match s {
            "auto" => Some(Engine::Auto),
            "row" => Some(Engine::Row),
            "column" => Some(Engine::Column),
            _ => None,
        }
    }
}

/// A session's routing settings.
#[derive(Debug, Clone)]
pub struct RouteSettings {
    pub engine: Engine,
    /// How long a column scan waits for the learner to reach its read version before it
    /// falls back to the row replica (`duet.learner_wait_timeout`).
    pub learner_wait: Duration,
    /// Fraction of routed scans also run on the other replica afterwards, to measure the
    /// decision's regret (`duet.routing_sample_rate`).
    pub sample_rate: f64,
}

impl Default for RouteSettings {
    fn default() -> Self {
        Self {
            engine: Engine::Auto,
            learner_wait: Duration::from_secs(2),
            sample_rate: DEFAULT_SAMPLE_RATE,
        }
    }
}

/// Default `duet.routing_sample_rate`.
pub const DEFAULT_SAMPLE_RATE: f64 = 0.01;
/// A sampled re-run on the other replica is skipped when its estimated cost is above this
/// (microseconds), so sampling never costs more than a second of work.
pub const MAX_SAMPLE_COST_US: f64 = 1_000_000.0;

/// Engine hints of one statement (`/*+ engine(column) */`, `/*+ engine(row t1) */`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hints {
    /// A hint that names no table: every scan.
    pub all: Option<Engine>,
    /// Per table (lower-case name or alias as written).
    pub tables: Vec<(String, Engine)>,
}

impl Hints {
    /// The hint for `table`, if any (a table's own hint wins over one for all).
    pub fn for_table(&self, table: &str) -> Option<Engine> {
        self.tables
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(table))
            .map(|(_, e)| *e)
            .or(self.all)
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.tables.is_empty()
    }
}

/// The statement a session is running: its text (for the routing log) and its hints.
#[derive(Debug, Clone, Default)]
pub struct StatementInfo {
    pub text: Arc<str>,
    pub hints: Hints,
}

/// Per-session routing state shared with the session's table providers.
#[derive(Debug, Default)]
pub struct SessionRouting {
    pub settings: Mutex<RouteSettings>,
    /// Messages for the client (a forced column scan that fell back, and why).
    pub notices: Mutex<Vec<String>>,
    /// The statement being planned.
    pub statement: Mutex<StatementInfo>,
}

/// Shared handle.
pub type RouteSlot = Arc<SessionRouting>;

/// Why a scan that asked for the column replica read the row replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fallback {
    /// The transaction has writes of its own, which only the row replica sees.
    UncommittedWrites,
    /// The learner is not running.
    ReplicaDown,
    /// The learner did not reach the read version within `duet.learner_wait_timeout`.
    WaitTimeout,
    /// The table has no column replica, it is being built, or it is defined differently.
    NotAvailable,
}

impl Fallback {
    pub fn label(self) -> &'static str {
        match self {
            Fallback::UncommittedWrites => "uncommitted_writes",
            Fallback::ReplicaDown => "replica_down",
            Fallback::WaitTimeout => "learner_wait_timeout",
            Fallback::NotAvailable => "not_available",
        }
    }
}

/// The process's access to its column replica, and what routing did with it.
#[derive(Default)]
pub struct ColumnAccess {
    store: RwLock<Option<ColumnStoreRef>>,
    /// In a cluster: the other members' column replicas, read when this process has none
    /// running.
    remote: RwLock<Option<Arc<duet_colstore::remote::RemoteColumns>>>,
    /// In a cluster: this process's member id.
    member: RwLock<Option<u64>>,
    column_scans: AtomicU64,
    fallbacks: Mutex<BTreeMap<Fallback, u64>>,
}

impl ColumnAccess {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    /// Points scans at `store` (`None` while the learner is down).
    pub fn set(&self, store: Option<ColumnStoreRef>) {
        *self.store.write() = store;
    }
    pub fn get(&self) -> Option<ColumnStoreRef> {
        self.store.read().clone()
    }
    /// Lets scans of cluster member `member` read the column replicas of the members
    /// `remote` knows.
    pub fn set_remote(&self, member: u64, remote: Arc<duet_colstore::remote::RemoteColumns>) {
        *self.remote.write() = Some(remote);
        *self.member.write() = Some(member);
    }
    /// In a cluster, this process's member id.
    pub fn member(&self) -> Option<u64> {
        *self.member.read()
    }
    /// Whether scans may read other members' column replicas (in a cluster).
    pub fn has_remote(&self) -> bool {
        self.remote.read().is_some()
    }
    /// The other members' column replicas (in a cluster).
    pub fn remote(&self) -> Option<Arc<duet_colstore::remote::RemoteColumns>> {
        self.remote.read().clone()
    }
    /// The member to read table `table`'s column replica from, when this process has no
    /// column replica running.
    pub fn remote_for(
        &self,
        table: u32,
    ) -> Option<(
        Arc<duet_colstore::remote::RemoteColumns>,
        Arc<duet_colstore::remote::RemoteMember>,
    )> {
        if self.store.read().is_some() {
            return None;
        }
        let remote = self.remote.read().clone()?;
        let member = remote.pick(table)?;
        Some((remote, member))
    }
    pub(crate) fn count_scan(&self) {
        self.column_scans.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_fallback(&self, why: Fallback) {
        *self.fallbacks.lock().entry(why).or_default() += 1;
    }
    /// Scans served by the column replica.
    pub fn column_scans(&self) -> u64 {
        self.column_scans.load(Ordering::Relaxed)
    }
    /// Fallbacks to the row replica, by reason.
    pub fn fallbacks(&self) -> Vec<(&'static str, u64)> {
        self.fallbacks
            .lock()
            .iter()
            .map(|(k, v)| (k.label(), *v))
            .collect()
    }
}

/// What a scan did, summed over its partition streams as they report.
#[derive(Debug, Default, Clone, Copy)]
struct Actual {
    rows: u64,
    elapsed: Duration,
    reported: usize,
}

/// The measured time of one scan: the time spent building it at planning (the column
/// snapshot, pruning, the wait for the learner) plus its partitions' work divided by their
/// number, i.e. the time with its partitions in parallel.
#[derive(Debug)]
pub(crate) struct ScanTiming {
    partitions: usize,
    setup: Duration,
    acc: Mutex<Actual>,
}

impl ScanTiming {
    pub(crate) fn new(partitions: usize, setup: Duration) -> Self {
        ScanTiming {
            partitions: partitions.max(1),
            setup,
            acc: Mutex::new(Actual::default()),
        }
    }

    fn us(&self, a: &Actual) -> f64 {
        self.setup.as_secs_f64() * 1e6 + a.elapsed.as_secs_f64() * 1e6 / self.partitions as f64
    }

    /// Adds one partition's report; the scan's time (µs) once the last one has reported.
    pub(crate) fn add(&self, rows: u64, elapsed: Duration) -> Option<f64> {
        let mut a = self.acc.lock();
        a.rows += rows;
        a.elapsed += elapsed;
        a.reported += 1;
        (a.reported == self.partitions).then(|| self.us(&a))
    }

    /// Rows and time (µs), once every partition has reported.
    fn result(&self) -> Option<(u64, f64)> {
        let a = *self.acc.lock();
        (a.reported >= self.partitions).then(|| (a.rows, self.us(&a)))
    }
}

/// One routing decision: what the router knew, what it chose and why, and what happened.
pub struct RouteRecord {
    pub id: u64,
    pub at_ms: u64,
    pub query: Arc<str>,
    pub table: String,
    pub replica: Replica,
    /// `pk point lookup`, `cost`, `hint`, `session setting`, `no column replica`, …
    pub reason: String,
    pub est_rows: f64,
    /// Estimated cost of each replica (µs, calibrated); `None` where a replica could not
    /// serve the scan.
    pub cost_row: f64,
    pub cost_column: Option<f64>,
    /// The chosen replica's cost split, for calibration.
    pub(crate) parts: crate::cost::CostParts,
    timing: ScanTiming,
    /// Time of the same scan on the other replica, when sampled (µs).
    other_us: Mutex<Option<f64>>,
    pub(crate) router: std::sync::Weak<crate::Router>,
}

/// A scan of the other replica kept to be run after the chosen one, for the regret.
pub(crate) struct Sample {
    pub plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
}

impl std::fmt::Debug for RouteRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteRecord")
            .field("id", &self.id)
            .field("table", &self.table)
            .field("replica", &self.replica)
            .finish()
    }
}

/// A routing decision as the log, the system view and the inspector show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteEntry {
    pub id: u64,
    pub at_ms: u64,
    pub query: String,
    pub fingerprint: String,
    pub table: String,
    pub engine: Replica,
    pub reason: String,
    pub est_rows: f64,
    pub cost_row_us: f64,
    pub cost_column_us: Option<f64>,
    pub actual_rows: Option<u64>,
    pub actual_us: Option<f64>,
    pub other_us: Option<f64>,
    /// How much slower the chosen replica was than the other one (µs, ≥ 0), when both
    /// were measured.
    pub regret_us: Option<f64>,
}

/// A query's text with literals replaced by `?` and blanks collapsed, so the same query
/// with other parameters gets the same fingerprint.
pub fn normalize_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut last_space = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            while let Some(n) = chars.next() {
                if n == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        continue;
                    }
                    break;
                }
            }
            out.push('?');
            last_space = false;
        } else if c.is_ascii_digit()
            && !out
                .chars()
                .last()
                .is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '$')
        {
            while chars
                .peek()
                .is_some_and(|n| n.is_ascii_digit() || *n == '.')
            {
                chars.next();
            }
            out.push('?');
            last_space = false;
        } else if c.is_whitespace() {
            if !last_space && !out.is_empty() {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_space = false;
        }
    }
    out.trim_end().to_string()
}

/// A short stable fingerprint of a normalized query (FNV-1a, 64 bits, hex).
pub fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in normalize_query(text).bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl RouteRecord {
    #[allow(clippy::too_many_arguments)] // one field each
    pub(crate) fn new(
        id: u64,
        query: Arc<str>,
        table: String,
        replica: Replica,
        reason: String,
        est_rows: f64,
        cost_row: f64,
        cost_column: Option<f64>,
        parts: crate::cost::CostParts,
        timing: ScanTiming,
        router: std::sync::Weak<crate::Router>,
    ) -> Self {
        RouteRecord {
            id,
            at_ms: crate::stats::now_ms(),
            query,
            table,
            replica,
            reason,
            est_rows,
            cost_row,
            cost_column,
            parts,
            timing,
            other_us: Mutex::new(None),
            router,
        }
    }

    /// The scan's actual rows and time (µs, see [`ScanTiming`]), once it has ended.
    pub fn actual(&self) -> Option<(u64, f64)> {
        self.timing.result()
    }

    pub fn other_us(&self) -> Option<f64> {
        *self.other_us.lock()
    }

    pub(crate) fn set_other(&self, us: f64) {
        *self.other_us.lock() = Some(us);
    }

    pub fn entry(&self) -> RouteEntry {
        let actual = self.actual();
        let other = self.other_us();
        let regret = match (actual, other) {
            (Some((_, mine)), Some(other)) => Some((mine - other).max(0.0)),
            _ => None,
        };
        RouteEntry {
            id: self.id,
            at_ms: self.at_ms,
            query: self.query.chars().take(MAX_QUERY_CHARS).collect(),
            fingerprint: fingerprint(&self.query),
            table: self.table.clone(),
            engine: self.replica,
            reason: self.reason.clone(),
            est_rows: self.est_rows,
            cost_row_us: self.cost_row,
            cost_column_us: self.cost_column,
            actual_rows: actual.map(|a| a.0),
            actual_us: actual.map(|a| a.1),
            other_us: other,
            regret_us: regret,
        }
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2}s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.1}ms", us / 1e3)
    } else {
        format!("{us:.0}us")
    }
}

/// What a routed scan's plan carries: its record (shared with the log) and, when sampled,
/// the other replica's scan to run once this one has finished. The sample lives only as long
/// as the plan: a plan dropped unexecuted (EXPLAIN, an error) drops it, and with it the read
/// view it holds, so a logged decision never keeps a snapshot pinned.
#[derive(Debug)]
pub struct RouteHook {
    pub record: Arc<RouteRecord>,
    pub(crate) sample: Mutex<Option<Sample>>,
    /// In a cluster, the member whose replica serves the scan (EXPLAIN names it; a remote
    /// column scan names its member itself).
    pub(crate) member: Option<u64>,
}

impl std::fmt::Debug for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sample")
    }
}

impl duet_common::scan::ScanObserver for RouteHook {
    fn describe(&self) -> String {
        let r = &self.record;
        let column = r.cost_column.map_or_else(|| "n/a".to_string(), fmt_us);
        let member = self
            .member
            .map_or_else(String::new, |m| format!("member={m}, "));
        format!(
            "{member}route=[reason={}, est_rows={:.0}, cost_row={}, cost_column={}]",
            r.reason,
            r.est_rows,
            fmt_us(r.cost_row),
            column
        )
    }

    fn partition_done(&self, rows: u64, elapsed: Duration) {
        let r = &self.record;
        if r.timing.add(rows, elapsed).is_some() {
            if let Some(router) = r.router.upgrade() {
                router.scan_finished(r, self.sample.lock().take());
            }
        }
    }
}

/// Characters of a query's text the log shows (the fingerprint covers all of it).
pub const MAX_QUERY_CHARS: usize = 8192;

/// Decisions kept by the routing log.
pub const ROUTING_LOG_SIZE: usize = 1000;

/// The most recent routing decisions.
#[derive(Default)]
pub struct RoutingLog {
    entries: Mutex<std::collections::VecDeque<Arc<RouteRecord>>>,
}

impl RoutingLog {
    pub fn push(&self, r: Arc<RouteRecord>) {
        let mut e = self.entries.lock();
        if e.len() >= ROUTING_LOG_SIZE {
            e.pop_front();
        }
        e.push_back(r);
    }

    /// The decisions, oldest first.
    pub fn entries(&self) -> Vec<RouteEntry> {
        self.entries.lock().iter().map(|r| r.entry()).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A sampled scan of the other replica: a record that only fills its parent's `other_us`
/// (and calibrates the other replica).
#[derive(Debug)]
pub(crate) struct SampleObserver {
    /// Weak: the parent holds this scan until it runs.
    parent: std::sync::Weak<RouteRecord>,
    replica: Replica,
    parts: crate::cost::CostParts,
    timing: ScanTiming,
}

impl SampleObserver {
    pub(crate) fn new(
        parent: &Arc<RouteRecord>,
        replica: Replica,
        parts: crate::cost::CostParts,
        timing: ScanTiming,
    ) -> Self {
        SampleObserver {
            parent: Arc::downgrade(parent),
            replica,
            parts,
            timing,
        }
    }
}

impl duet_common::scan::ScanObserver for SampleObserver {
    fn describe(&self) -> String {
        let id = self.parent.upgrade().map_or(0, |p| p.id);
        format!("route=[sample of decision {id}]")
    }

    fn partition_done(&self, rows: u64, elapsed: Duration) {
        let done = self.timing.add(rows, elapsed);
        if let (Some(us), Some(parent)) = (done, self.parent.upgrade()) {
            parent.set_other(us);
            if let Some(router) = parent.router.upgrade() {
                router.calibrator.observe(self.replica, self.parts, us);
            }
        }
    }
}
