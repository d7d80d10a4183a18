//! Errors of replication.

use thiserror::Error;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in replication.
#[derive(Debug, Error)]
pub enum Error {
    /// raft-engine failed to read or write the log.
    #[error("Failed to access the raft log in {dir}: {source}")]
    Log {
        dir: String,
        source: raft_engine::Error,
    },
    /// raft-rs rejected an operation.
    #[error("Failed to drive raft: {0}")]
    Raft(#[from] raft::Error),
    /// A state machine failed to apply an entry (the node stops applying).
    #[error("Failed to apply entry {index}: {message}")]
    Apply { index: u64, message: String },
    /// The peer's driver has stopped (shutdown or failure).
    #[error("The raft peer has stopped")]
    Stopped,
    /// This peer is not the leader and cannot take proposals.
    #[error("This node is not the raft leader")]
    NotLeader,
    /// A stored message could not be decoded.
    #[error("Failed to decode stored raft state: {0}")]
    Corrupt(String),
}

impl Error {
    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::NotLeader)
    }
}
