//! # duet-replication: the Raft log
//!
//! - [`log_store::LogStore`]: the Raft log and hard state in raft-engine (one directory per
//!   peer), implementing raft-rs's `Storage`; the entries and hard state of one `Ready` go in
//!   one fsync'd raft-engine write; compaction keeps the term of the last removed entry;
//!   snapshots come from the state machine's [`peer::SnapshotSource`].
//! - [`peer::Peer`]: raft-rs's `RawNode` driven by a thread: group commit (every proposal
//!   queued while a write is in flight shares the next one), messages through a
//!   [`peer::Transport`] ([`peer::LocalTransport`] in one process), committed entries applied
//!   to a [`peer::StateMachine`] that knows nothing of raft and whose contents replication
//!   knows nothing of. A proposer hears back with the entry's index once its own peer has
//!   applied it: that index is the commit version.
//! - [`tcp::TcpTransport`]: Raft messages between processes, length-delimited protobuf
//!   frames over one TCP connection per member, bounded queues, unreachable members
//!   reported to raft, and partitions for tests.
//! - Learners: a learner peer receives the same log, persists it in its own raft-engine
//!   directory and applies it at its own pace (it can be paused); one that is behind the
//!   leader's compacted log is sent a snapshot.

pub mod error;
pub mod log_fs;
pub mod log_store;
pub mod peer;
pub mod tcp;

pub use error::{Error, Result, StateMachineError};
pub use log_store::LogStore;
pub use peer::{
    LocalTransport, LogSync, Peer, PeerOptions, PeerStatus, PendingProposal, Proposer,
    ReplicaProgress, Role, SnapshotSource, StateMachine, Transport,
};
pub use tcp::TcpTransport;
