//! The routing decision of one scan, as pure functions of what the router knows when it
//! plans the scan. The provider ([`crate::provider`]) gathers the inputs, acts on the
//! decision (builds the chosen scan, falls back when it cannot) and logs it.
//!
//! Precedence: a hint for the table, then the session's `duet.engine`, then cost. A column
//! choice needs a table with a column replica and a running learner (a hint that cannot be
//! followed is ignored with a notice); by cost, a transaction with uncommitted writes reads
//! the row replica (only it holds them), and so does a scan cheaper than the column
//! replica's floor or a primary-key point lookup cheaper than its start-up.

use crate::keyrange::ScanKind;
use crate::routing::{Engine, Fallback, Replica};

/// Why a scan went where it went (the routing log's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A hint comment named the engine for this table.
    Hint,
    /// `SET duet.engine = 'row' | 'column'`.
    SessionSetting,
    /// The table has a column replica, but the learner is not running.
    ReplicaDown,
    /// The table has no column replica.
    NoReplica,
    /// The transaction has writes only the row replica holds.
    UncommittedWrites,
    /// The row replica's access path won (or was cheap enough not to compare).
    Access(ScanKind),
    /// The column replica was cheaper.
    Cost,
}

impl Reason {
    /// The text the routing log, EXPLAIN and the inspector show.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Hint => "hint",
            Reason::SessionSetting => "session setting",
            Reason::ReplicaDown => "column replica down",
            Reason::NoReplica => "no column replica",
            Reason::UncommittedWrites => "uncommitted writes",
            Reason::Access(ScanKind::PkPoints) => "pk point lookup",
            Reason::Access(ScanKind::PkRange) => "pk range",
            Reason::Access(ScanKind::IndexRange) => "index range",
            Reason::Access(ScanKind::FullScan) | Reason::Cost => "cost",
        }
    }
}

/// What the router knows of one scan before it builds anything.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The table's name (for the notice of an ignored hint).
    pub table: &'a str,
    /// The statement's hint for this table, if any.
    pub hint: Option<Engine>,
    /// The session's `duet.engine`.
    pub setting: Engine,
    /// Whether the table has a column replica.
    pub columnar: bool,
    /// Whether this process's column replica (the learner) is running.
    pub replica_running: bool,
    /// Whether the transaction has uncommitted writes.
    pub has_writes: bool,
    /// The row replica's access path for the pushed-down filters.
    pub kind: ScanKind,
    /// The row replica's estimated cost (µs).
    pub row_cost: f64,
    /// Below this row cost the column replica is never cheaper (µs).
    pub column_floor: f64,
    /// The column replica's start-up cost (µs).
    pub column_startup: f64,
}

/// The decision before costs are compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub step: Step,
    /// Told to the client as a NOTICE (a hint that could not be followed).
    pub notice: Option<String>,
}

/// Where the scan goes, or that the costs decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Settled without comparing costs.
    Settled(Replica, Reason),
    /// Compare the row cost with the column replica's ([`by_cost`]); the provider may build
    /// the column scan first, whose zone-map pruning tells how many rows it would read.
    CompareCosts,
}

/// The decision for `i` by precedence: hint, session setting, then cost.
pub fn decide(i: &Inputs<'_>) -> Decision {
    let column_possible = i.columnar && i.replica_running;
    let mut notice = None;
    let forced = match i.hint {
        Some(Engine::Row) => Some((Replica::Row, Reason::Hint)),
        Some(Engine::Column) if column_possible => Some((Replica::Column, Reason::Hint)),
        Some(Engine::Column) => {
            notice = Some(format!(
                "hint engine(column) for table \"{}\" is ignored: {}",
                i.table,
                if i.columnar {
                    "the column replica is not running"
                } else {
                    "the table has no column replica"
                }
            ));
            None
        }
        Some(Engine::Auto) | None => None,
    }
    .or(match i.setting {
        Engine::Row => Some((Replica::Row, Reason::SessionSetting)),
        Engine::Column => Some((Replica::Column, Reason::SessionSetting)),
        Engine::Auto => None,
    });
    let step = match forced {
        Some((replica, reason)) => Step::Settled(replica, reason),
        None if !column_possible => Step::Settled(
            Replica::Row,
            if i.columnar {
                Reason::ReplicaDown
            } else {
                Reason::NoReplica
            },
        ),
        None if i.has_writes => Step::Settled(Replica::Row, Reason::UncommittedWrites),
        None if i.row_cost <= i.column_floor => Step::Settled(Replica::Row, Reason::Access(i.kind)),
        // A primary-key point lookup cheaper than the column replica's documented start-up
        // stays on the row replica whatever the calibration says: part of a column plan's
        // overhead (repartitioning, its tasks) is outside the scan's own time, which is all
        // calibration sees.
        None if i.kind == ScanKind::PkPoints && i.row_cost <= i.column_startup => {
            Step::Settled(Replica::Row, Reason::Access(i.kind))
        }
        None => Step::CompareCosts,
    };
    Decision { step, notice }
}

/// The cheaper replica (the row replica on a tie, or when there is no column cost).
pub fn by_cost(kind: ScanKind, row_cost: f64, column_cost: Option<f64>) -> (Replica, Reason) {
    match column_cost {
        Some(c) if c < row_cost => (Replica::Column, Reason::Cost),
        _ => (Replica::Row, Reason::Access(kind)),
    }
}

/// The logged reason of a column choice that fell back to the row replica.
pub fn fell_back(reason: Reason, why: Fallback) -> String {
    format!("{}; fell back: {}", reason.label(), why.label())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs<'static> {
        Inputs {
            table: "t",
            hint: None,
            setting: Engine::Auto,
            columnar: true,
            replica_running: true,
            has_writes: false,
            kind: ScanKind::FullScan,
            row_cost: 10_000.0,
            column_floor: 500.0,
            column_startup: 2_000.0,
        }
    }

    fn settled(i: &Inputs<'_>) -> (Replica, Reason) {
        match decide(i).step {
            Step::Settled(r, why) => (r, why),
            Step::CompareCosts => panic!("expected a settled decision for {i:?}"),
        }
    }

    #[test]
    fn a_hint_beats_the_session_setting_which_beats_cost() {
        let mut i = inputs();
        i.setting = Engine::Row;
        i.hint = Some(Engine::Column);
        assert_eq!(settled(&i), (Replica::Column, Reason::Hint));
        i.hint = None;
        assert_eq!(settled(&i), (Replica::Row, Reason::SessionSetting));
        i.setting = Engine::Column;
        i.hint = Some(Engine::Row);
        assert_eq!(settled(&i), (Replica::Row, Reason::Hint));
        // An `auto` hint defers to the session.
        i.hint = Some(Engine::Auto);
        assert_eq!(settled(&i), (Replica::Column, Reason::SessionSetting));
        i.setting = Engine::Auto;
        assert_eq!(decide(&i).step, Step::CompareCosts);
    }

    #[test]
    fn a_column_hint_that_cannot_be_followed_is_ignored_with_a_notice() {
        let mut i = inputs();
        i.hint = Some(Engine::Column);
        i.replica_running = false;
        let d = decide(&i);
        assert_eq!(d.step, Step::Settled(Replica::Row, Reason::ReplicaDown));
        assert!(d
            .notice
            .unwrap()
            .contains("ignored: the column replica is not running"));
        i.columnar = false;
        i.setting = Engine::Row;
        let d = decide(&i);
        assert_eq!(d.step, Step::Settled(Replica::Row, Reason::SessionSetting));
        assert!(d
            .notice
            .unwrap()
            .contains("the table has no column replica"));
        // Followed: no notice.
        i.columnar = true;
        i.replica_running = true;
        assert_eq!(decide(&i).notice, None);
    }

    #[test]
    fn the_session_setting_column_is_kept_even_without_a_replica_so_the_scan_falls_back() {
        // The provider then tries the column scan and logs why it fell back.
        let mut i = inputs();
        i.setting = Engine::Column;
        i.columnar = false;
        assert_eq!(settled(&i), (Replica::Column, Reason::SessionSetting));
    }

    #[test]
    fn by_cost_the_row_replica_keeps_what_only_it_can_serve_or_serves_cheaply() {
        let mut i = inputs();
        i.has_writes = true;
        assert_eq!(settled(&i), (Replica::Row, Reason::UncommittedWrites));
        i.has_writes = false;
        i.columnar = false;
        assert_eq!(settled(&i), (Replica::Row, Reason::NoReplica));
        i.columnar = true;
        i.replica_running = false;
        assert_eq!(settled(&i), (Replica::Row, Reason::ReplicaDown));
        i.replica_running = true;
        i.kind = ScanKind::PkRange;
        i.row_cost = 400.0;
        assert_eq!(
            settled(&i),
            (Replica::Row, Reason::Access(ScanKind::PkRange))
        );
        // Above the floor, a range compares costs; a point lookup below start-up does not.
        i.row_cost = 1_500.0;
        assert_eq!(decide(&i).step, Step::CompareCosts);
        i.kind = ScanKind::PkPoints;
        assert_eq!(
            settled(&i),
            (Replica::Row, Reason::Access(ScanKind::PkPoints))
        );
        i.row_cost = 2_500.0;
        assert_eq!(decide(&i).step, Step::CompareCosts);
    }

    #[test]
    fn the_cheaper_replica_wins_and_a_tie_or_no_estimate_stays_on_rows() {
        let k = ScanKind::IndexRange;
        assert_eq!(
            by_cost(k, 100.0, Some(99.0)),
            (Replica::Column, Reason::Cost)
        );
        assert_eq!(
            by_cost(k, 100.0, Some(100.0)),
            (Replica::Row, Reason::Access(k))
        );
        assert_eq!(by_cost(k, 100.0, None), (Replica::Row, Reason::Access(k)));
        assert_eq!(
            by_cost(ScanKind::FullScan, 1.0, Some(2.0)).1.label(),
            "cost",
            "a full scan the row replica wins is logged as a cost decision"
        );
    }

    #[test]
    fn a_fallback_keeps_the_original_reason() {
        assert_eq!(
            fell_back(Reason::SessionSetting, Fallback::WaitTimeout),
            "session setting; fell back: learner_wait_timeout"
        );
    }
}
