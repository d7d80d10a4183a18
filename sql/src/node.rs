//! One DuetDB process: the row replica (Raft voter) and, once wired, the column replica
//! (Raft learner), each with its own raft-engine log under the data directory:
//!
//! ```text
//! <data-dir>/rowstore        RocksDB (row replica)
//! <data-dir>/raft/voter-1    raft-engine log of the voter
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use duet_replication::{LocalTransport, Peer, PeerStatus};
use duet_rowstore::engine::rocks::RocksEngine;
use duet_rowstore::{start_voter, voter_options, StoreRef};

use crate::server::anyhow_free::{Error, Result};

/// Raft id of the embedded voter.
pub const VOTER_ID: u64 = 1;

/// The replicas of one process.
pub struct DuetNode {
    pub store: StoreRef,
    voter: Peer,
    data_dir: PathBuf,
    _transport: Arc<LocalTransport>,
}

/// Shared handle.
pub type NodeRef = Arc<DuetNode>;

fn fail(what: &str, dir: &Path, e: impl std::fmt::Display) -> Error {
    Error(format!("Failed to {what} in {}: {e}", dir.display()))
}

impl DuetNode {
    /// Opens (creating) the data directory: RocksDB, then the voter's log, replaying what the
    /// row replica had not applied.
    pub fn open(data_dir: &Path) -> Result<NodeRef> {
        std::fs::create_dir_all(data_dir).map_err(|e| fail("create the data dir", data_dir, e))?;
        let engine = RocksEngine::open(&data_dir.join("rowstore"))
            .map_err(|e| fail("open RocksDB", data_dir, e))?;
        let transport = LocalTransport::new();
        let raft_dir = data_dir.join("raft").join(format!("voter-{VOTER_ID}"));
        let (store, voter) = start_voter(
            Arc::new(engine),
            voter_options(&raft_dir, vec![]),
            transport.clone(),
        )
        .map_err(|e| fail("start the row replica", data_dir, e))?;
        Ok(Arc::new(DuetNode {
            store,
            voter,
            data_dir: data_dir.to_path_buf(),
            _transport: transport,
        }))
    }

    /// The voter's Raft figures.
    pub fn voter(&self) -> &Arc<PeerStatus> {
        self.voter.status()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Compacts the voter's log (`force`: even past replicas that have not caught up).
    pub fn compact_log(&self, force: bool) -> Result<u64> {
        self.voter
            .compact(force)
            .map_err(|e| fail("compact the raft log", &self.data_dir, e))
    }
}
