//! [`RowSource`]: where a column replica is (re)built from.
//!
//! A learner that gets a table's replica (`ALTER TABLE … SET COLUMNAR REPLICA 1`, or a
//! restart without a checkpoint of it) reads the table's rows at one version from a source
//! and keeps the log entries after that version in its delta. In one process the source is
//! the row store itself (`duet-rowstore` implements this trait); across machines it is a
//! snapshot stream from a voter. The column store only sees this trait, so it links no row
//! store.

use std::time::Duration;

use crate::catalog::TableDef;
use crate::error::Result;

/// Visits `(encoded primary key, row payload)` pairs in key order; returns `false` to stop.
pub type RowVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> bool + 'a;

/// The row data of every table at a version, as the row replica stores it.
pub trait RowSource: Send + Sync {
    /// The oldest version a reader may still ask for (compaction keeps what is newer).
    fn oldest_read_version(&self) -> u64;
    /// Waits until the source has applied `version`; `false` if `timeout` passed first.
    fn wait_version(&self, version: u64, timeout: Duration) -> bool;
    /// Visits the rows of `def` at `version` in key order: the primary key as encoded after
    /// the record prefix (`codec::key::record_prefix`) and the row payload (`codec::row`).
    fn scan_table(&self, def: &TableDef, version: u64, f: &mut RowVisitor<'_>) -> Result<()>;
}
