//! # duet-colstore: the column replica
//!
//! The learner side of the design in `DESIGN.md`:
//!
//! - [`store::LearnerStateMachine`]: what the Raft learner applies. It decodes each committed
//!   entry ([`duet_common::command::Command`]) with the shared codecs: catalog changes
//!   create, alter, truncate, drop and (re)build tables; record writes become versioned
//!   changes in the table's **delta** layer.
//! - [`table`]: per table, an immutable **stable** layer of Arrow chunks sorted by primary
//!   key and the delta; a read at version `v` takes each key's newest change `<= v` and
//!   skips deletions, merging sorted keys rather than probing a map per row.
//! - [`store::ColumnStore`]: background compaction folds the delta into new stable chunks
//!   (untouched chunks are kept), then checkpoints (Arrow IPC files + a manifest) so a
//!   restart replays only the learner's log after the checkpoint. `SET COLUMNAR REPLICA 1`
//!   builds a table's replica from the row data at the entry's version (read through a
//!   [`duet_common::source::RowSource`]) while later entries collect in the delta.
//! - [`scan::ColumnScanExec`]: the DataFusion leaf over a table snapshot, with filter
//!   pushdown, zone-map pruning and statistics.
//! - [`remote`]: column scans across processes: the service a member holding the replica
//!   runs for the others, and the leaf ([`remote::RemoteColumnScanExec`]) that streams
//!   another member's scan in.
//!
//! It depends only on `duet-common` and `duet-replication`: a learner-only process links no
//! RocksDB (`cargo tree -p duet-colstore` shows none).

pub mod cache;
pub mod error;
pub mod persist;
pub mod remote;
pub mod scan;
pub mod store;
pub mod table;

pub use cache::ColumnCache;
pub use error::{Error, Result};
pub use scan::ColumnScanExec;
pub use store::{
    ColumnStore, ColumnStoreOptions, ColumnStoreRef, LagHistogram, LearnerStateMachine, TableStatus,
};
pub use table::{ReplicaState, TableSnapshot};
