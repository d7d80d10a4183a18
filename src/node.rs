//! One DuetDB process: the row replica (Raft voter) and the column replica (Raft learner),
//! each with its own raft-engine log, joined by the in-process transport:
//!
//! ```text
//! <data-dir>/rowstore        RocksDB (row replica)
//! <data-dir>/raft/voter-1    raft-engine log of the voter
//! <data-dir>/raft/learner-2  raft-engine log of the learner
//! <data-dir>/colstore        column replica checkpoints (manifest + Arrow IPC files)
//! ```
//!
//! The learner can be paused, stopped and restarted alone (tests do, to create lag and to
//! exercise recovery); while it is down, column scans fall back to the row replica.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use duet_colstore::remote::{PinnedSource, ReadPins};
use duet_colstore::{
    ColumnStore, ColumnStoreOptions, ColumnStoreRef, LagHistogram, LearnerStateMachine,
};
use duet_common::fs::DiskGuard;
use duet_replication::{
    LocalTransport, LogSync, Peer, PeerOptions, PeerStatus, TcpTransport, Transport,
};
use duet_router::routing::ColumnAccess;
use duet_router::sysviews::{MemberRow, ReplicaInfo, ReplicaRow};
use duet_rowstore::engine::rocks::RocksEngine;
use duet_rowstore::{start_voter, StoreRef};
use parking_lot::Mutex;

use crate::cluster::ClusterConfig;
use crate::error::{Error, Result};

/// Raft id of the embedded voter.
pub const VOTER_ID: u64 = 1;
/// Raft id of the embedded learner.
pub const LEARNER_ID: u64 = 2;
/// The Raft ids of this process's peers and of the membership.
struct RaftIds {
    voter: u64,
    /// This member's learner (none: it holds no column replica).
    learner: Option<u64>,
    voters: Vec<u64>,
    learners: Vec<u64>,
}

impl RaftIds {
    /// In `cluster`, or the embedded process's (voter 1, learner 2).
    fn of(cluster: Option<&ClusterConfig>) -> Self {
        match cluster {
            None => RaftIds {
                voter: VOTER_ID,
                learner: Some(LEARNER_ID),
                voters: vec![VOTER_ID],
                learners: vec![LEARNER_ID],
            },
            Some(c) => {
                let (voters, learners) = c.raft_ids();
                RaftIds {
                    voter: c.node_id,
                    learner: c.me().learner_raft_id(),
                    voters,
                    learners,
                }
            }
        }
    }
}

/// How often, at most, the learner fsyncs its log (see [`LogSync::Batched`]).
pub(crate) const LEARNER_LOG_SYNC: Duration = Duration::from_millis(100);

/// Where each Raft peer of `cluster` listens: a member's voter and learner share its
/// address.
pub(crate) fn raft_addresses(cluster: &ClusterConfig) -> HashMap<u64, String> {
    let mut addresses = HashMap::new();
    for m in &cluster.members {
        if m.row {
            addresses.insert(m.id, m.raft_addr.clone());
        }
        if let Some(l) = m.learner_raft_id() {
            addresses.insert(l, m.raft_addr.clone());
        }
    }
    addresses
}

struct Learner {
    peer: Peer,
    store: ColumnStoreRef,
}

/// The replicas of one process.
pub struct DuetNode {
    pub store: StoreRef,
    voter: Peer,
    /// In a cluster: the membership and the transport to the other members.
    cluster: Option<(ClusterConfig, Arc<TcpTransport>)>,
    learner: Mutex<Option<Learner>>,
    columns: Arc<ColumnAccess>,
    lag: Arc<LagHistogram>,
    /// Versions other members may still scan in this member's column replica.
    pins: Arc<ReadPins>,
    data_dir: PathBuf,
    transport: Arc<dyn Transport>,
    /// Statistics, cost model and routing log (kept in `<data>/router`).
    router: duet_router::RouterRef,
    /// The column replica's cache (kept across restarts of the learner).
    column_cache: Arc<duet_colstore::ColumnCache>,
    /// Faults injected into the voter's and the learner's raft logs (tests; off in a
    /// server, where it costs an atomic load per log write and sync).
    log_faults: Arc<duet_replication::log_fs::LogFaults>,
}

/// Shared handle.
pub type NodeRef = Arc<DuetNode>;

fn fail(
    what: &'static str,
    dir: &Path,
    e: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::new(what, dir, e)
}

/// Figures of the learner for `duet.replicas` and metrics.
#[derive(Debug, Clone)]
pub struct LearnerStatus {
    pub running: bool,
    pub paused: bool,
    pub applied: u64,
    pub leader_commit: u64,
    pub lag_entries: u64,
    pub lag_ms: u64,
    pub snapshots_restored: u64,
}

impl DuetNode {
    /// Opens (creating) the data directory: RocksDB and the voter's log (replaying what the
    /// row replica had not applied), then the column replica and the learner's log.
    pub fn open(data_dir: &Path) -> Result<NodeRef> {
        Self::open_member(data_dir, None)
    }

    /// Opens this process as a member of `cluster` (the embedded single process without
    /// one): its voter and, if it holds the column replica, its learner talk to the other
    /// members over TCP; `sql_addr` is advertised to them, so that they can relay SQL
    /// connections here while this member leads.
    pub fn open_member(
        data_dir: &Path,
        cluster: Option<(&ClusterConfig, SocketAddr)>,
    ) -> Result<NodeRef> {
        std::fs::create_dir_all(data_dir).map_err(|e| fail("create the data dir", data_dir, e))?;
        let engine = RocksEngine::open(&data_dir.join("rowstore"))
            .map_err(|e| fail("open RocksDB", data_dir, e))?;
        let (transport, tcp): (Arc<dyn Transport>, _) = match cluster {
            None => (LocalTransport::new(), None),
            Some((c, sql_addr)) => {
                let tcp = TcpTransport::bind(c.node_id, &c.raft_listen, raft_addresses(c))
                    .map_err(|e| fail("listen for raft messages", data_dir, e))?;
                tcp.advertise(sql_addr.to_string());
                (tcp.clone(), Some((c.clone(), tcp)))
            }
        };
        let ids = RaftIds::of(cluster.map(|(c, _)| c));
        let log_faults = Arc::new(duet_replication::log_fs::LogFaults::default());
        let mut opts = PeerOptions::new(
            ids.voter,
            Self::voter_dir(data_dir, ids.voter),
            ids.voters,
            ids.learners,
        );
        opts.log_faults = log_faults.clone();
        if let Some((c, _)) = cluster {
            opts.tick = c.tick();
        }
        let (store, voter) = start_voter(Arc::new(engine), opts, transport.clone())
            .map_err(|e| fail("start the row replica", data_dir, e))?;
        store.set_disk_guard(Arc::new(DiskGuard::new(
            data_dir,
            DiskGuard::default_reserve(data_dir),
        )));
        let router = duet_router::Router::open(store.clone(), Some(&data_dir.join("router")))
            .map_err(|e| fail("open the router's statistics", data_dir, e))?;
        let lag = Arc::new(LagHistogram::default());
        router.set_lag(Some(lag.clone()));
        let node = Arc::new(DuetNode {
            store,
            voter,
            cluster: tcp,
            learner: Mutex::new(None),
            columns: ColumnAccess::new(),
            lag,
            pins: ReadPins::new(),
            data_dir: data_dir.to_path_buf(),
            transport,
            router,
            column_cache: duet_colstore::ColumnCache::new(
                duet_colstore::cache::default_cache_bytes(),
            ),
            log_faults,
        });
        node.start_learner()?;
        Ok(node)
    }

    /// What the SQL layer's sessions use of this node: its router, column replica handle
    /// and replica figures.
    pub fn services(self: &Arc<Self>) -> duet_sql::NodeServices {
        let read_barrier = self.cluster.as_ref().map(|_| {
            let node = self.clone();
            Arc::new(move || node.confirm_reads()) as duet_sql::ReadBarrier
        });
        duet_sql::NodeServices {
            router: self.router.clone(),
            columns: self.columns.clone(),
            replicas: self.clone(),
            read_barrier,
        }
    }

    /// Sessions' shared state on this node (what [`duet_sql::Server::start`] takes).
    pub fn shared(self: &Arc<Self>) -> duet_sql::SharedRef {
        duet_sql::Shared::new(self.store.clone(), Some(self.services()))
    }

    /// The router (statistics, calibration, routing log).
    pub fn router(&self) -> &duet_router::RouterRef {
        &self.router
    }

    fn voter_dir(data_dir: &Path, id: u64) -> PathBuf {
        data_dir.join("raft").join(format!("voter-{id}"))
    }

    /// In a cluster: a ReadIndex round (a quorum confirms that this member leads, and names
    /// the commit index), then waits until this member has applied that index. A statement
    /// that then takes its snapshot sees every commit acknowledged before it began, even
    /// right after an election, and a leader cut off from the others answers none.
    pub fn confirm_reads(&self) -> std::result::Result<(), String> {
        const WAIT: Duration = Duration::from_secs(2);
        let index = self.voter.read_index(WAIT).map_err(|e| match e {
            duet_replication::Error::NotLeader => {
                "this member no longer leads the cluster".to_string()
            }
            _ => format!("no quorum confirmed within {WAIT:?} that this member leads the cluster"),
        })?;
        if !self.voter.status().wait_applied(index, WAIT) {
            return Err(format!(
                "this member did not apply the log up to {index} in time"
            ));
        }
        Ok(())
    }

    /// In a cluster, while this member leads: hands leadership to another voter (a
    /// graceful stop does, so that writes wait for a transfer, not an election timeout).
    pub fn transfer_leadership(&self, timeout: Duration) -> bool {
        self.cluster.is_none() || self.voter.transfer_leadership(timeout)
    }

    /// The cluster's membership and transport (`None`: the embedded single process).
    pub fn cluster(&self) -> Option<&(ClusterConfig, Arc<TcpTransport>)> {
        self.cluster.as_ref()
    }

    /// Starts the learner (no-op if it runs): loads the column store's checkpoint and
    /// replays the learner's log after it; the leader sends what the learner misses, or a
    /// snapshot if its log was compacted past it.
    pub fn start_learner(&self) -> Result<()> {
        let mut slot = self.learner.lock();
        let ids = RaftIds::of(self.cluster.as_ref().map(|(c, _)| c));
        let Some(learner_id) = ids.learner else {
            return Ok(());
        };
        if slot.is_some() {
            return Ok(());
        }
        let dir = &self.data_dir;
        let store = ColumnStore::open(
            &dir.join("colstore"),
            ColumnStoreOptions {
                cache: self.column_cache.clone(),
                ..Default::default()
            },
            Arc::new(PinnedSource {
                inner: self.store.clone(),
                pins: self.pins.clone(),
            }),
        )
        .map_err(|e| fail("open the column store", dir, e))?;
        let sm = LearnerStateMachine::new(
            store.clone(),
            Some(self.voter.status().clone()),
            self.lag.clone(),
        );
        let mut opts = PeerOptions::new(
            learner_id,
            dir.join("raft").join(format!("learner-{learner_id}")),
            ids.voters,
            ids.learners,
        );
        if let Some((c, _)) = &self.cluster {
            opts.tick = c.tick();
        }
        // The learner has no vote and its column state is checkpointed on its own: its log
        // only spares the leader re-sending entries after a restart, so it is fsync'd in
        // batches rather than per write (the voter's log keeps the commits durable).
        opts.log_sync = LogSync::Batched(LEARNER_LOG_SYNC);
        opts.log_faults = self.log_faults.clone();
        let peer = Peer::start(opts, sm, self.transport.clone())
            .map_err(|e| fail("start the column replica", dir, e))?;
        self.columns.set(Some(store.clone()));
        *slot = Some(Learner { peer, store });
        Ok(())
    }

    /// Stops the learner abruptly (nothing is checkpointed); column scans fall back to the
    /// row replica until [`DuetNode::start_learner`].
    pub fn stop_learner(&self) {
        let learner = self.learner.lock().take();
        self.columns.set(None);
        if let Some(mut l) = learner {
            // The store first: an apply waiting for room in a full delta gives up when it
            // stops, so the peer's thread can be joined.
            l.store.stop();
            l.peer.shutdown();
        }
    }

    /// Stops (true) or resumes (false) the learner's apply loop.
    pub fn pause_learner(&self, pause: bool) {
        if let Some(l) = self.learner.lock().as_ref() {
            if pause {
                l.peer.pause_apply();
            } else {
                l.peer.resume_apply();
            }
        }
    }

    /// Waits until the learner has applied `index`.
    pub fn wait_learner(&self, index: u64, timeout: Duration) -> bool {
        self.learner_peer()
            .is_some_and(|s| s.wait_applied(index, timeout))
    }

    /// The column cache's byte budget.
    pub fn column_cache_size(&self) -> u64 {
        self.column_cache.capacity()
    }

    /// Faults injected into this process's raft logs (for tests).
    pub fn log_faults(&self) -> &Arc<duet_replication::log_fs::LogFaults> {
        &self.log_faults
    }

    /// Sets the column cache's byte budget (`--column-cache-size`).
    pub fn set_column_cache_size(&self, bytes: u64) {
        self.column_cache.set_capacity(bytes);
    }

    /// The column store, while the learner runs.
    pub fn column_store(&self) -> Option<ColumnStoreRef> {
        self.learner.lock().as_ref().map(|l| l.store.clone())
    }

    /// Versions other members may still scan in this member's column replica.
    pub fn read_pins(&self) -> &Arc<ReadPins> {
        &self.pins
    }

    /// What column scans read through.
    pub fn columns(&self) -> &Arc<ColumnAccess> {
        &self.columns
    }

    /// Commit-to-learner latencies.
    pub fn lag_histogram(&self) -> &Arc<LagHistogram> {
        &self.lag
    }

    /// The voter's Raft figures.
    pub fn voter(&self) -> &Arc<PeerStatus> {
        self.voter.status()
    }

    /// The learner peer's Raft figures, while it runs.
    pub fn learner_peer(&self) -> Option<Arc<PeerStatus>> {
        self.learner
            .lock()
            .as_ref()
            .map(|l| l.peer.status().clone())
    }

    /// The learner's figures (applied index, lag behind the leader's commit index).
    pub fn learner_status(&self) -> LearnerStatus {
        let leader_commit = self.voter.status().committed();
        let l = self.learner.lock();
        let Some(l) = l.as_ref() else {
            return LearnerStatus {
                running: false,
                paused: false,
                applied: 0,
                leader_commit,
                lag_entries: leader_commit,
                lag_ms: 0,
                snapshots_restored: 0,
            };
        };
        let s = l.peer.status();
        let applied = s.applied();
        let lag_entries = leader_commit.saturating_sub(applied);
        let lag_ms = self.voter.status().behind_for(applied).as_millis() as u64;
        LearnerStatus {
            running: s.is_running(),
            paused: s.is_paused(),
            applied,
            leader_commit,
            lag_entries,
            lag_ms,
            snapshots_restored: s.snapshots_restored(),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Compacts the voter's log (`force`: even past the learner, which then needs a
    /// snapshot). Returns the log's new first index.
    pub fn compact_log(&self, force: bool) -> Result<u64> {
        self.voter
            .compact(force)
            .map_err(|e| fail("compact the raft log", &self.data_dir, e))
    }
}

impl DuetNode {
    /// `duet.cluster`: every member as this one knows it. The leader follows every
    /// replica's progress; a member that does not lead knows only itself and the leader.
    pub fn members(&self) -> Vec<MemberRow> {
        let voter = self.voter.status();
        let progress = voter.progress();
        let find = |id: u64| progress.iter().find(|p| p.id == id);
        let commit = voter.committed();
        let leader = voter.leader();
        let column_here = self.learner_peer().map(|s| s.applied());
        let lag_here = column_here.map(|_| self.learner_status().lag_ms);
        let Some((cluster, transport)) = &self.cluster else {
            return vec![MemberRow {
                member_id: VOTER_ID,
                replicas: "row+column".into(),
                raft_addr: "in-process".into(),
                sql_addr: String::new(),
                state: "up".into(),
                leader: true,
                term: voter.term(),
                applied_index: voter.applied(),
                commit_index: commit,
                lag_entries: 0,
                column_index: column_here,
                column_lag_ms: lag_here,
            }];
        };
        let remote = self.columns().remote();
        cluster
            .members
            .iter()
            .map(|m| {
                let me = m.id == cluster.node_id;
                let sql_addr = if me {
                    transport.advertised_here()
                } else {
                    transport.advertised(m.id).unwrap_or_default()
                };
                // A column-only member's Raft peer is its learner.
                let raft_id = if m.row {
                    m.id
                } else {
                    m.learner_raft_id().unwrap_or(m.id)
                };
                let (state, applied) = if me {
                    ("up", voter.applied())
                } else {
                    match find(raft_id) {
                        None => ("unknown", 0),
                        Some(p) if !p.active => ("down", p.matched),
                        Some(p) if p.state == "snapshot" => ("snapshotting", p.matched),
                        Some(p) if p.matched < commit => ("catching up", p.matched),
                        Some(p) => ("up", p.matched),
                    }
                };
                let column_index = match m.learner_raft_id() {
                    None => None,
                    Some(_) if me => column_here,
                    Some(l) => find(l).map(|p| p.matched),
                };
                let column_lag_ms = match m.learner_raft_id() {
                    None => None,
                    Some(_) if me => lag_here,
                    // Since the first commit it lacked when it answered; 0 if that came
                    // later or is not committed yet.
                    Some(_) => remote.as_ref().and_then(|r| r.get(m.id)).map(|r| {
                        voter.committed_at(r.columns.applied + 1).map_or(0, |at| {
                            r.heard.saturating_duration_since(at).as_millis() as u64
                        })
                    }),
                };
                MemberRow {
                    member_id: m.id,
                    replicas: m.replicas().into(),
                    raft_addr: m.raft_addr.clone(),
                    sql_addr,
                    state: state.into(),
                    leader: leader == Some(m.id),
                    term: voter.term(),
                    applied_index: applied,
                    commit_index: commit,
                    lag_entries: commit.saturating_sub(applied),
                    column_index,
                    column_lag_ms,
                }
            })
            .collect()
    }
}

impl ReplicaInfo for DuetNode {
    fn member_rows(&self) -> Vec<MemberRow> {
        self.members()
    }

    fn column_cache_size(&self) -> Option<u64> {
        RaftIds::of(self.cluster.as_ref().map(|(c, _)| c))
            .learner
            .map(|_| self.column_cache_size())
    }

    fn gc_rows(&self) -> Vec<duet_router::sysviews::GcRow> {
        let r = self.store.gc_report();
        vec![duet_router::sysviews::GcRow {
            safe_point: r.stats.safe_point,
            safe_point_age_ms: r.safe_point_age.map(|d| d.as_millis() as u64),
            current_version: r.current_version,
            life_time_ms: r.life_time.as_millis() as u64,
            versions_removed: r.stats.versions_removed,
            tombstones_removed: r.stats.tombstones_removed,
            bytes_removed: r.stats.bytes_removed,
        }]
    }

    fn replica_rows(&self) -> Vec<ReplicaRow> {
        let learner = self.learner_status();
        let columns: std::collections::HashMap<String, duet_colstore::TableStatus> = self
            .column_store()
            .map(|c| {
                c.status()
                    .into_iter()
                    .map(|s| (s.table.clone(), s))
                    .collect()
            })
            .unwrap_or_default();
        self.store
            .tables()
            .iter()
            .filter(|def| def.has_rows())
            .map(|def| {
                let col = columns.get(&def.name);
                let state = match (learner.running, def.columnar, col) {
                    (false, _, _) => "down",
                    (true, false, _) => "none",
                    (true, true, Some(c)) => c.state,
                    // Created after the learner's applied index: not there yet.
                    (true, true, None) => "pending",
                };
                ReplicaRow {
                    table_name: def.name.clone(),
                    column_replica: def.columnar,
                    state: state.to_string(),
                    progress: col.map_or(0.0, |c| c.progress),
                    applied_index: learner.applied,
                    commit_index: learner.leader_commit,
                    lag_entries: learner.lag_entries,
                    lag_ms: learner.lag_ms,
                    delta_rows: col.map_or(0, |c| c.delta_versions as u64),
                    stable_rows: col.map_or(0, |c| c.stable_rows as u64),
                }
            })
            .collect()
    }
}

impl Drop for DuetNode {
    fn drop(&mut self) {
        self.stop_learner();
    }
}
