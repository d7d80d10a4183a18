//! Errors of the row store.

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
    /// A value does not fit its column (too long string, numeric overflow, bad literal).
    #[error("{message}")]
    Value {
        kind: ValueErrorKind,
        message: String,
    },
    /// A table with this name exists already.
    #[error("relation \"{0}\" already exists")]
    TableExists(String),
    /// No table of that name.
    #[error("relation \"{0}\" does not exist")]
    TableNotFound(String),
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
    #[error("Failed to access storage engine: {0}")]
    Engine(String),
    /// Bytes on disk could not be decoded.
    #[error("Failed to decode stored data: {0}")]
    Corrupt(String),
    /// A broken invariant: a bug.
    #[error("Failed to replicate the commit: {0}")]
    Replication(String),
    #[error("Internal error: {0}")]
    Internal(String),
}

/// Kinds of bad values, each with its own SQLSTATE at the wire boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueErrorKind {
    /// 22001: string too long for varchar(n)/char(n).
    StringTooLong,
    /// 22003: number out of range for its type.
    OutOfRange,
    /// 22P02: text that is not a valid literal of the type.
    InvalidText,
    /// 42804: value of a type that cannot be assigned to the column.
    DatatypeMismatch,
}

impl Error {
    /// Whether retrying the same transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::WriteConflict | Error::Deadlock | Error::StatementRestart
        )
    }

    pub(crate) fn value(kind: ValueErrorKind, message: impl Into<String>) -> Self {
        Error::Value {
            kind,
            message: message.into(),
        }
    }
}
