//! Errors of the shared core: bad values (the user's doing) and bytes that do not decode
//! (a fault of the server).

use std::sync::Arc;

use thiserror::Error;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What decoding, encoding and converting rows can fail with.
#[derive(Debug, Clone, Error)]
pub enum Error {
    /// A value does not fit its column (too long string, numeric overflow, bad literal):
    /// the user's doing.
    #[error("{message}")]
    Value {
        kind: ValueErrorKind,
        message: String,
    },
    /// Bytes (a key, a row, a log entry, a table definition) could not be decoded.
    #[error("Failed to decode stored data: {0}")]
    Corrupt(String),
    /// A [`crate::source::RowSource`] failed to deliver rows.
    #[error("Failed to read rows from the row source: {source}")]
    Source {
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A broken invariant: a bug.
    #[error("Internal error: {0}")]
    Internal(String),
    /// Another cluster member failed to serve part of a statement (a column scan), with the
    /// SQLSTATE it reported.
    #[error("{message}")]
    Remote { code: String, message: String },
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
    /// A bad value of `kind`.
    pub fn value(kind: ValueErrorKind, message: impl Into<String>) -> Self {
        Error::Value {
            kind,
            message: message.into(),
        }
    }

    /// A row source's failure, kept as the source of the error.
    pub fn row_source(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Source {
            source: Arc::new(e),
        }
    }
}
