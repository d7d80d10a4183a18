//! # duet-router: where each table scan goes
//!
//! DataFusion sees every DuetDB table through this crate ([`provider::RowTableProvider`]).
//! A scan goes to the row replica ([`row_scan::RowScanExec`]), with the pushed-down filters
//! turned into primary-key or secondary-index ranges ([`keyrange`]) so point and range
//! queries never scan the whole table, or, when the session asks for it with
//! `duet.engine = 'column'`, to the column replica ([`duet_colstore::ColumnScanExec`]) at the
//! same snapshot, after waiting (bounded) for the learner to reach it; when it cannot, the
//! scan falls back to the row replica and says why ([`routing`]).
//!
//! With `duet.engine = 'auto'` (the default) each scan goes where the cost model
//! ([`cost`]) says it is cheaper, from statistics gathered by `ANALYZE` ([`stats`]) and the
//! pushed-down filters ([`decide`]); hints and the session setting override it
//! ([`routing`]). Every decision is kept in the routing log with its estimate and, once the
//! scan ends, its actual rows and time, which calibrate the model. The crate never parses
//! SQL text: the session hands it the statement's text and its parsed hints.

pub mod cost;
pub mod decide;
pub mod keyrange;
pub mod provider;
pub mod routing;
pub mod row_scan;
pub mod stats;
pub mod sysviews;

pub use decide::{Router, RouterRef};

use std::sync::Arc;

use duet_rowstore::ReadView;

/// Where a session publishes the read view its next statement plans against (its
/// transaction's snapshot plus the writes made so far). Each scan clones the view when it
/// is planned, so a result can stream after the statement that produced it has ended.
pub type ViewSlot = Arc<parking_lot::Mutex<Option<ReadView>>>;

/// What a session's table providers read through: its read view, its routing settings and
/// the process's column replica.
#[derive(Clone)]
pub struct ScanContext {
    pub view: ViewSlot,
    pub route: routing::RouteSlot,
    pub columns: Arc<routing::ColumnAccess>,
    pub router: RouterRef,
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file: a
/// temporary file is written and synced, renamed over `path`, and the directory synced.
/// Concurrent writers of one path each use their own temporary file; the last rename wins.
pub fn write_durably(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
