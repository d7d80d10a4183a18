//! Errors of the column store.

use std::path::Path;

use thiserror::Error;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the column store.
#[derive(Debug, Error)]
pub enum Error {
    #[error("Failed to access {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Data(#[from] duet_common::Error),
    #[error("Failed to decode column data: {0}")]
    Corrupt(String),
    /// A chunk's zone map (min/max) could not be computed.
    #[error("Failed to compute a zone map: {source}")]
    ZoneMap {
        source: datafusion::error::DataFusionError,
    },
    /// A manifest could not be written or read as JSON.
    #[error("Failed to encode or decode the manifest {path}: {source}")]
    Manifest {
        path: String,
        source: serde_json::Error,
    },
    #[error("Internal error in the column store: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
