//! # duet-router: where each table scan goes
//!
//! DataFusion sees every DuetDB table through this crate. Today every scan goes to the row
//! replica ([`provider::RowTableProvider`] → [`row_scan::RowScanExec`]), with the pushed-down
//! filters turned into primary-key or secondary-index ranges ([`keyrange`]) so point and
//! range queries never scan the whole table.
//!
//! Later (issues #3–#5) this crate owns statistics (ANALYZE), the cost model that picks the
//! row or the column replica per scan, hints and `duet.engine`, the routing log and the
//! inspector. It never parses SQL text.

pub mod keyrange;
pub mod provider;
pub mod row_scan;

use std::sync::Arc;

use duet_rowstore::ReadView;

/// Where a session publishes the read view its next statement plans against (its
/// transaction's snapshot plus the writes made so far). Each scan clones the view when it
/// is planned, so a result can stream after the statement that produced it has ended.
pub type ViewSlot = Arc<parking_lot::Mutex<Option<ReadView>>>;
