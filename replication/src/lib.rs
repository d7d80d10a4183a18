//! # duet-replication: the Raft log
//!
//! Built so far (first slice of issue #3):
//!
//! - [`log_store::LogStore`]: the Raft log and hard state in raft-engine (one directory per
//!   node), implementing raft-rs's `Storage`; the entries and hard state of one `Ready` go in
//!   one fsync'd raft-engine write; compaction keeps the term of the last removed entry.
//! - [`node::StateMachine`]: what replication calls with committed entries, knowing nothing
//!   of what is inside them; [`node::Node`]: a single-voter peer driven synchronously, which
//!   replays entries a state machine has not applied after a restart and never applies an
//!   index twice.
//!
//! Still to come here (issue #3): the tokio driver with group commit across sessions, the
//! `Transport` trait (in-process, then TCP), learners, ReadIndex, snapshots for replicas
//! behind the compacted log, and wiring the row store's commit path through `propose`.
//! The commit version of a transaction becomes the index of its entry.

pub mod error;
pub mod log_store;
pub mod node;

pub use error::{Error, Result};
pub use log_store::LogStore;
pub use node::{Node, StateMachine};
