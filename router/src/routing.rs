//! Which replica a scan reads: the session's `duet.engine` setting, the column replica's
//! availability, and the bounded wait for the learner (issue #5 adds the cost model).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use duet_colstore::ColumnStoreRef;
use parking_lot::{Mutex, RwLock};

/// The replica a session asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The router decides (row only until the cost model lands).
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
}

impl Default for RouteSettings {
    fn default() -> Self {
        Self {
            engine: Engine::Auto,
            learner_wait: Duration::from_secs(2),
        }
    }
}

/// Per-session routing state shared with the session's table providers.
#[derive(Debug, Default)]
pub struct SessionRouting {
    pub settings: Mutex<RouteSettings>,
    /// Messages for the client (a forced column scan that fell back, and why).
    pub notices: Mutex<Vec<String>>,
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
