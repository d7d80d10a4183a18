//! A member that holds only the column replica (`column@` in `--initial-cluster`): a Raft
//! learner and its column store, and no row replica (RocksDB is never opened):
//!
//! ```text
//! <data-dir>/raft/learner-<id + 2^32>   raft-engine log of the learner
//! <data-dir>/colstore                   column replica checkpoints
//! ```
//!
//! Tables come and go with the log's catalog entries, their rows with its writes. A table
//! whose replica is (re)built (`ALTER TABLE … SET COLUMNAR REPLICA 1`, or a restart without
//! its checkpoint) reads the voters' row data at the entry's version over the network
//! ([`RemoteRowSource`]); a learner that fell behind the leader's compacted log gets a Raft
//! snapshot, which carries the row data. It serves column scans to the other members
//! (`cluster::ScanPort`) and relays every SQL connection to the leader.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use duet_colstore::remote::{PinnedSource, ReadPins, RemoteRowSource};
use duet_colstore::LearnerStateMachine;
use duet_colstore::{ColumnStore, ColumnStoreOptions, ColumnStoreRef, LagHistogram};
use duet_replication::{LogSync, Peer, PeerOptions, PeerStatus, TcpTransport};
use duet_router::sysviews::{MemberRow, ReplicaRow};

use crate::cluster::ClusterConfig;
use crate::error::{Error, Result};

/// The replicas of a column-only member.
pub struct ColumnMember {
    config: ClusterConfig,
    transport: Arc<TcpTransport>,
    learner: Peer,
    store: ColumnStoreRef,
    pins: Arc<ReadPins>,
}

impl ColumnMember {
    /// Opens (creating) the data directory as `config`'s member `config.node_id`, which
    /// holds only the column replica; `sql_addr` is advertised to the other members.
    pub fn open(
        data_dir: &Path,
        config: &ClusterConfig,
        sql_addr: SocketAddr,
    ) -> Result<Arc<Self>> {
        let fail =
            |what, e: Box<dyn std::error::Error + Send + Sync>| Error::new(what, data_dir, e);
        std::fs::create_dir_all(data_dir).map_err(|e| fail("create the data dir", e.into()))?;
        let me = config.me();
        let learner_id = me
            .learner_raft_id()
            .expect("a column-only member holds the column replica");
        let transport = TcpTransport::bind(
            config.node_id,
            &config.raft_listen,
            crate::node::raft_addresses(config),
        )
        .map_err(|e| fail("listen for raft messages", e.into()))?;
        transport.advertise(sql_addr.to_string());
        let pins = ReadPins::new();
        // The voters' SQL addresses, as they advertised them: builds read row data there.
        let voters: Vec<u64> = config
            .members
            .iter()
            .filter(|m| m.row)
            .map(|m| m.id)
            .collect();
        let heard = transport.clone();
        let source = RemoteRowSource::new(Arc::new(move || {
            voters
                .iter()
                .filter_map(|id| heard.advertised(*id))
                .filter_map(|a| a.parse().ok())
                .collect()
        }));
        let store = ColumnStore::open(
            &data_dir.join("colstore"),
            ColumnStoreOptions::default(),
            Arc::new(PinnedSource {
                inner: Arc::new(source),
                pins: pins.clone(),
            }),
        )
        .map_err(|e| fail("open the column store", e.into()))?;
        let lag = Arc::new(LagHistogram::default());
        let sm = LearnerStateMachine::new(store.clone(), None, lag);
        let (voter_ids, learner_ids) = config.raft_ids();
        let mut opts = PeerOptions::new(
            learner_id,
            data_dir.join("raft").join(format!("learner-{learner_id}")),
            voter_ids,
            learner_ids,
        );
        opts.tick = config.tick();
        // As a row+column member's learner: the column state is checkpointed on its own.
        opts.log_sync = LogSync::Batched(crate::node::LEARNER_LOG_SYNC);
        let learner = Peer::start(opts, sm, transport.clone())
            .map_err(|e| fail("start the column replica", e.into()))?;
        Ok(Arc::new(ColumnMember {
            config: config.clone(),
            transport,
            learner,
            store,
            pins,
        }))
    }

    /// The cluster's membership and this member's transport.
    pub fn cluster(&self) -> (&ClusterConfig, &Arc<TcpTransport>) {
        (&self.config, &self.transport)
    }

    /// The learner's Raft status (it knows the leader from the leader's messages).
    pub fn learner(&self) -> &Arc<PeerStatus> {
        self.learner.status()
    }

    /// The column store.
    pub fn store(&self) -> &ColumnStoreRef {
        &self.store
    }

    /// Versions other members may still scan here.
    pub fn read_pins(&self) -> &Arc<ReadPins> {
        &self.pins
    }

    /// How long the oldest commit the learner has not applied has been committed, as far
    /// as it knows (from when it heard of the commit): 0 when caught up.
    pub fn lag_ms(&self) -> u64 {
        let s = self.learner.status();
        s.behind_for(s.applied()).as_millis() as u64
    }

    /// The members as this one knows them (`/api/cluster`): the leader, from its messages,
    /// and itself; only the leader follows the others (their state is `unknown`).
    pub fn members(&self) -> Vec<MemberRow> {
        let s = self.learner.status();
        let (applied, commit, leader) = (s.applied(), s.committed(), s.leader());
        self.config
            .members
            .iter()
            .map(|m| {
                let me = m.id == self.config.node_id;
                let sql_addr = if me {
                    self.transport.advertised_here()
                } else {
                    self.transport.advertised(m.id).unwrap_or_default()
                };
                MemberRow {
                    member_id: m.id,
                    replicas: m.replicas().into(),
                    raft_addr: m.raft_addr.clone(),
                    sql_addr,
                    state: if me { "up" } else { "unknown" }.into(),
                    leader: leader == Some(m.id),
                    term: s.term(),
                    applied_index: if me { applied } else { 0 },
                    commit_index: commit,
                    lag_entries: if me {
                        commit.saturating_sub(applied)
                    } else {
                        0
                    },
                    column_index: me.then_some(applied),
                    column_lag_ms: me.then(|| self.lag_ms()),
                }
            })
            .collect()
    }

    /// Its tables' column replicas (`/api/replicas`).
    pub fn replica_rows(&self) -> Vec<ReplicaRow> {
        let s = self.learner.status();
        let (applied, commit, running) = (s.applied(), s.committed(), s.is_running());
        let lag_ms = self.lag_ms();
        self.store
            .status()
            .into_iter()
            .map(|t| ReplicaRow {
                table_name: t.table,
                column_replica: t.replicated,
                state: if running { t.state } else { "down" }.to_string(),
                progress: t.progress,
                applied_index: applied,
                commit_index: commit,
                lag_entries: commit.saturating_sub(applied),
                lag_ms,
                delta_rows: t.delta_versions as u64,
                stable_rows: t.stable_rows as u64,
            })
            .collect()
    }
}
