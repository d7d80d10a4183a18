//! Errors of replication.

use std::sync::Arc;

use thiserror::Error;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A state machine's own failure (see [`crate::StateMachine`]), kept whole so its chain
/// reaches the log. Replication never looks inside it.
pub type StateMachineError = Box<dyn std::error::Error + Send + Sync>;

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
    /// A state machine failed to apply, persist or restore at `index` (the peer stops
    /// applying; every waiting proposal gets this error).
    #[error("Failed to apply entry {index}: {source}")]
    Apply {
        index: u64,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A snapshot could not be built from the state machine.
    #[error("Failed to build a snapshot: {source}")]
    Snapshot {
        #[source]
        source: StateMachineError,
    },
    /// The peer stopped after a failure; every later proposal gets it.
    #[error("The raft peer stopped after a failure: {source}")]
    Failed {
        #[source]
        source: Arc<Error>,
    },
    /// The peer's driver has stopped (shutdown or failure).
    #[error("The raft peer has stopped")]
    Stopped,
    /// This peer is not the leader and cannot take proposals.
    #[error("This node is not the raft leader")]
    NotLeader,
    /// The peer's driver thread could not be started.
    #[error("Failed to start the raft thread: {source}")]
    Spawn { source: std::io::Error },
    /// A sync (fdatasync) of the raft log failed. What was written since the last sync may
    /// or may not be on disk, and raft-engine cannot go on after a failed sync (it panics;
    /// so does PostgreSQL): the log takes no more writes until the process restarts and
    /// recovers it from what is on disk.
    #[error(
        "Failed to sync the raft log in {dir}: {message}; it takes no more writes until the \
         server restarts"
    )]
    LogSync { dir: String, message: String },
    /// A stored message could not be decoded.
    #[error("Failed to decode stored raft state: {0}")]
    Corrupt(String),
}

impl Error {
    /// A state machine's failure at `index`.
    pub fn apply(index: u64, source: StateMachineError) -> Self {
        Error::Apply {
            index,
            source: Arc::from(source),
        }
    }

    /// Whether a failed log write may succeed once the machine has the resource again: no
    /// space on the disk (or over quota), no file descriptor left. raft-engine truncates
    /// what a failed append wrote, so the write can be tried again.
    pub fn is_exhausted_resource(&self) -> bool {
        match self {
            Error::Log {
                source: raft_engine::Error::TryAgain(_),
                ..
            } => true,
            Error::Log {
                source: raft_engine::Error::Io(e),
                ..
            } => is_exhausted_io(e),
            _ => false,
        }
    }

    /// Whether this is, or a peer stopped after, a failed sync of its log.
    pub fn is_log_sync_failure(&self) -> bool {
        match self {
            Error::LogSync { .. } => true,
            Error::Failed { source } => source.is_log_sync_failure(),
            _ => false,
        }
    }

    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::NotLeader)
    }
}

/// An I/O error that says a resource ran out (disk space, quota, file descriptors).
fn is_exhausted_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        || matches!(e.raw_os_error(), Some(ENFILE | EMFILE))
}
