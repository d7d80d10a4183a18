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
//! pushed-down filters ([`estimate`]); hints and the session setting override it. The
//! decision itself is a pure function ([`decide`]); the provider gathers its inputs, builds
//! the chosen scan and logs it ([`routing`]). Every decision is kept in the routing log
//! with its estimate and, once the scan ends, its actual rows and time, which calibrate the
//! model. The crate never parses SQL text: the session hands it the statement's text and
//! its parsed hints.

pub mod cost;
pub mod decide;
pub mod estimate;
pub mod keyrange;
pub mod provider;
pub mod routing;
pub mod row_scan;
pub mod sample;
pub mod stats;
pub mod sysviews;

pub use estimate::{Router, RouterRef};

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
