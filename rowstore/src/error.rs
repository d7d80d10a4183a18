//! Errors of the row store.

use std::sync::Arc;

use thiserror::Error;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the row store.
///
/// Variants up to [`Error::Engine`] are the user's doing (constraint violations, conflicts,
/// bad values); `Engine`, `Corrupt` and `Internal` are faults of the server.
#[derive(Debug, Clone, Error)]
pub enum Error {
    /// A unique or primary-key constraint would be violated.
    #[error("duplicate key value violates unique constraint \"{constraint}\"")]
    UniqueViolation { constraint: String, detail: String },
    /// A NOT NULL column received NULL.
    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
    )]
    NotNullViolation { table: String, column: String },
    /// First committer wins: another transaction committed a write to the same key after
    /// this transaction's snapshot.
    #[error("could not serialize access due to concurrent update")]
    WriteConflict,
    /// Waiting for a row lock would close a cycle of transactions waiting for each other.
    #[error("deadlock detected")]
    Deadlock,
    /// A row lock was not granted within `lock_timeout`.
    #[error("canceling statement due to lock timeout")]
    LockTimeout,
    /// A wait for a row lock was cancelled (CancelRequest).
    #[error("canceling statement due to user request")]
    Canceled,
    /// A wait for a row lock ran past `statement_timeout`.
    #[error("canceling statement due to statement timeout")]
    StatementTimeout,
    /// READ COMMITTED: a row this statement is about to write was changed by a transaction
    /// that committed after the statement's snapshot. The SQL layer runs the statement again
    /// on a fresh snapshot (keeping the locks it has); it never reaches a client as such.
    #[error("could not serialize access due to concurrent update")]
    StatementRestart,
    /// A value, row or entry the shared codecs refused (a bad value is the user's doing,
    /// bytes that do not decode are not).
    #[error(transparent)]
    Data(#[from] duet_common::Error),
    /// A table with this name exists already.
    #[error("relation \"{0}\" already exists")]
    TableExists(String),
    /// No table of that name.
    #[error("relation \"{0}\" does not exist")]
    TableNotFound(String),
    /// A role with this name exists already.
    #[error("role \"{0}\" already exists")]
    RoleExists(String),
    /// No role of that name.
    #[error("role \"{0}\" does not exist")]
    RoleNotFound(String),
    /// No index of that name.
    #[error("index \"{0}\" does not exist")]
    IndexNotFound(String),
    /// No column of that name.
    #[error("column \"{column}\" of relation \"{table}\" does not exist")]
    ColumnNotFound { table: String, column: String },
    /// Column exists already.
    #[error("column \"{column}\" of relation \"{table}\" already exists")]
    ColumnExists { table: String, column: String },
    /// A table definition that cannot be stored (e.g. two primary keys).
    #[error("{0}")]
    InvalidDefinition(String),
    /// RocksDB (or another engine) failed.
    #[error("Failed to access the storage engine: {source}")]
    Engine {
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A read at a version garbage collection has passed (see [`crate::gc`]).
    #[error("snapshot too old: version {version} is older than the garbage-collection safe point {safe_point}")]
    SnapshotTooOld { version: u64, safe_point: u64 },
    /// A write refused because the data directory's disk is below its free-space reserve.
    #[error(transparent)]
    DiskFull(#[from] duet_common::fs::DiskFull),
    /// Bytes on disk could not be decoded.
    #[error("Failed to decode stored data: {0}")]
    Corrupt(String),
    /// The Raft log refused or lost the commit's entry.
    #[error("Failed to replicate the commit: {source}")]
    Replication {
        #[source]
        source: Arc<duet_replication::Error>,
    },
    /// A broken invariant: a bug.
    #[error("Internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The storage engine's failure `source`.
    pub fn engine(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Engine {
            source: Arc::new(source),
        }
    }

    /// Replication's failure `source`.
    pub fn replication(source: duet_replication::Error) -> Self {
        Error::Replication {
            source: Arc::new(source),
        }
    }

    /// Whether retrying the same transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::WriteConflict | Error::Deadlock | Error::StatementRestart
        )
    }
}
