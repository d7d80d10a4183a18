//! The row replica as a Raft state machine: committed [`Command`]s are applied to the
//! [`Store`]; the applied index lives in RocksDB in the same batch as the data it covers.

use std::path::Path;
use std::sync::Arc;

use duet_replication::{Peer, PeerOptions, SnapshotSource, StateMachine, Transport};

use crate::command::CommandRef;
use crate::engine::KvEngineRef;
use crate::error::{Error, Result};
use crate::store::{Store, StoreRef};

/// Applies the log to a [`Store`].
pub struct RowStateMachine {
    store: StoreRef,
}

impl RowStateMachine {
    pub fn new(store: StoreRef) -> Self {
        Self { store }
    }
}

struct StoreDump(StoreRef);

impl SnapshotSource for StoreDump {
    fn build(&self) -> std::result::Result<Vec<u8>, String> {
        self.0.dump().map(|c| c.encode()).map_err(|e| e.to_string())
    }
}

impl StateMachine for RowStateMachine {
    fn apply(&mut self, index: u64, data: &bytes::Bytes) -> std::result::Result<(), String> {
        let cmd = CommandRef::decode(data).map_err(|e| e.to_string())?;
        self.store
            .apply_command(index, &cmd)
            .map_err(|e| e.to_string())
    }

    fn applied_index(&self) -> u64 {
        self.store.current_version().get()
    }

    fn persist(&mut self) -> std::result::Result<u64, String> {
        let applied = self.applied_index();
        self.store.sync().map_err(|e| e.to_string())?;
        Ok(applied)
    }

    fn restore(&mut self, index: u64, data: &[u8]) -> std::result::Result<(), String> {
        let cmd = CommandRef::decode(data).map_err(|e| e.to_string())?;
        if !cmd.snapshot {
            return Err(format!("entry {index} is not a snapshot"));
        }
        self.store
            .apply_command(index, &cmd)
            .map_err(|e| e.to_string())?;
        // Durably: the log is replaced by the snapshot next, so nothing could replay it.
        self.store.sync().map_err(|e| e.to_string())
    }

    fn snapshot_source(&self) -> Option<Arc<dyn SnapshotSource>> {
        Some(Arc::new(StoreDump(self.store.clone())))
    }
}

/// Opens the store on `engine`, starts its Raft peer (replaying the log past the store's
/// applied index) and connects the store's commit path to it.
pub fn start_voter(
    engine: KvEngineRef,
    opts: PeerOptions,
    transport: Arc<dyn Transport>,
) -> Result<(StoreRef, Peer)> {
    let store = Store::open(engine)?;
    let peer = Peer::start(opts, RowStateMachine::new(store.clone()), transport)
        .map_err(|e| Error::Replication(e.to_string()))?;
    store.attach(peer.proposer());
    Ok((store, peer))
}

/// Peer options of the embedded single voter (peer 1) with `learners`, its log in `dir`.
pub fn voter_options(dir: &Path, learners: Vec<u64>) -> PeerOptions {
    PeerOptions::new(1, dir.to_path_buf(), vec![1], learners)
}
