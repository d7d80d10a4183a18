//! Errors of starting and running a node.

use std::path::PathBuf;

use thiserror::Error;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A step of opening or running a node that failed, with the data directory and the
/// failure of the crate below.
#[derive(Debug, Error)]
#[error("Failed to {what} in {}: {source}", dir.display())]
pub struct Error {
    /// What was being done ("open RocksDB", "start the column replica", …).
    pub what: &'static str,
    /// The node's data directory.
    pub dir: PathBuf,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl Error {
    pub(crate) fn new(
        what: &'static str,
        dir: &std::path::Path,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error {
            what,
            dir: dir.to_path_buf(),
            source: source.into(),
        }
    }

    /// Whether another process (or a node of this one still shutting down) holds the data
    /// directory's lock.
    pub fn is_locked(&self) -> bool {
        self.source.to_string().to_lowercase().contains("lock")
    }
}
