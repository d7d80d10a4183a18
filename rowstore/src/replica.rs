//! The row replica as a Raft state machine: committed commands
//! ([`duet_common::command::Command`]) are applied to the [`Store`]; the applied index lives
//! in RocksDB in the same batch as the data it covers. The store is also the
//! [`RowSource`] an in-process column replica is built from.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use duet_replication::{
    Peer, PeerOptions, SnapshotSource, StateMachine, StateMachineError, Transport,
};

use crate::engine::KvEngineRef;
use crate::error::{Error, Result};
use crate::store::{Store, StoreRef};
use duet_common::codec::{key, memcmp};
use duet_common::command::CommandRef;
use duet_common::source::{RowSource, RowVisitor};
use duet_common::{TableDef, Version};

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
    fn build(&self) -> std::result::Result<Vec<u8>, StateMachineError> {
        Ok(self.0.dump()?.encode())
    }
}

impl StateMachine for RowStateMachine {
    fn apply(
        &mut self,
        index: u64,
        data: &bytes::Bytes,
    ) -> std::result::Result<(), StateMachineError> {
        let cmd = CommandRef::decode(data)?;
        Ok(self.store.apply_command(index, &cmd)?)
    }

    fn applied_index(&self) -> u64 {
        self.store.current_version().get()
    }

    fn persist(&mut self) -> std::result::Result<u64, StateMachineError> {
        let applied = self.applied_index();
        self.store.sync()?;
        Ok(applied)
    }

    fn restore(&mut self, index: u64, data: &[u8]) -> std::result::Result<(), StateMachineError> {
        let cmd = CommandRef::decode(data)?;
        if !cmd.snapshot {
            return Err(format!("entry {index} is not a snapshot").into());
        }
        self.store.apply_command(index, &cmd)?;
        // Durably: the log is replaced by the snapshot next, so nothing could replay it.
        Ok(self.store.sync()?)
    }

    fn snapshot_source(&self) -> Option<Arc<dyn SnapshotSource>> {
        Some(Arc::new(StoreDump(self.store.clone())))
    }
}

impl RowSource for Store {
    fn oldest_read_version(&self) -> u64 {
        Store::oldest_read_version(self).get()
    }

    fn wait_version(&self, version: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.current_version().get() < version {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    fn scan_table(
        &self,
        def: &TableDef,
        version: u64,
        f: &mut RowVisitor<'_>,
    ) -> duet_common::Result<()> {
        // A build reads an older version than the current one: held from garbage
        // collection while it reads (or refused if already collected).
        self.pin_version(version)
            .map_err(duet_common::Error::row_source)?;
        let r = self.scan_table_pinned(def, version, f);
        self.unpin_version(version);
        r
    }
}

impl Store {
    fn scan_table_pinned(
        &self,
        def: &TableDef,
        version: u64,
        f: &mut RowVisitor<'_>,
    ) -> duet_common::Result<()> {
        let prefix = key::record_prefix(def.storage_id);
        let end = memcmp::prefix_end(&prefix);
        self.scan_versions(&prefix, &end, Version::new(version), &mut |k, v| {
            Ok(f(&k[prefix.len()..], v))
        })
        .map_err(duet_common::Error::row_source)
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
        .map_err(Error::replication)?;
    store.attach(peer.proposer());
    Ok((store, peer))
}

/// Peer options of the embedded single voter (peer 1) with `learners`, its log in `dir`.
pub fn voter_options(dir: &Path, learners: Vec<u64>) -> PeerOptions {
    PeerOptions::new(1, dir.to_path_buf(), vec![1], learners)
}
