//! The cost model: what a table scan is expected to take on each replica, in microseconds,
//! and the calibration that fits the model to the scans the router has timed.
//!
//! Each replica's cost is `fixed × fixed_scale + work × work_scale`:
//!
//! - **row** — fixed: [`CostConstants::row_startup_us`] plus one seek per key range
//!   ([`CostConstants::row_seek_us`]); work: per row read ([`CostConstants::row_row_us`],
//!   plus [`CostConstants::row_byte_us`] per byte of the whole row, since the row codec
//!   decodes every column), and per row found through a secondary index, a point read of the
//!   record ([`CostConstants::row_index_lookup_us`]). A scan with no usable range reads the
//!   whole table.
//! - **column** — fixed: [`CostConstants::col_startup_us`] (snapshot, plan, task start); work:
//!   per row of the chunks left after zone-map pruning ([`CostConstants::col_row_us`]), per
//!   byte of the columns read ([`CostConstants::col_byte_us`]), and per row of the delta
//!   ([`CostConstants::col_delta_row_us`], which is converted row by row), divided by the
//!   scan's partitions (they run in parallel); plus, not scaled, the expected wait for the
//!   learner to reach the read version.
//!
//! The constants are starting points measured on the development machine (2 vCPU); the
//! [`Calibrator`] records every routed scan's actual time and refits the two scales of each
//! replica by least squares on relative error, bounded to [[`MIN_SCALE`], [`MAX_SCALE`]].

use std::collections::VecDeque;
use std::path::PathBuf;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::routing::Replica;

/// The model's constants (microseconds).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CostConstants {
    pub row_startup_us: f64,
    pub row_seek_us: f64,
    pub row_row_us: f64,
    pub row_byte_us: f64,
    pub row_index_lookup_us: f64,
    pub col_startup_us: f64,
    pub col_row_us: f64,
    pub col_byte_us: f64,
    pub col_delta_row_us: f64,
}

impl Default for CostConstants {
    fn default() -> Self {
        CostConstants {
            row_startup_us: 20.0,
            row_seek_us: 4.0,
            row_row_us: 0.6,
            row_byte_us: 0.004,
            row_index_lookup_us: 4.0,
            col_startup_us: 400.0,
            col_row_us: 0.002,
            col_byte_us: 0.0005,
            col_delta_row_us: 0.8,
        }
    }
}

/// What a row-replica scan will do.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RowWork {
    pub seeks: f64,
    pub rows_read: f64,
    /// Average bytes of a whole row.
    pub row_bytes: f64,
    /// Rows reached through a secondary index (each a point read of its record).
    pub index_lookups: f64,
}

/// What a column-replica scan will do.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ColumnWork {
    /// Rows of the stable chunks kept after pruning.
    pub rows: f64,
    /// Bytes of the columns read, per row.
    pub read_bytes: f64,
    pub delta_rows: f64,
    pub partitions: f64,
    /// Expected wait for the learner, microseconds.
    pub lag_wait_us: f64,
}

/// A cost split into its fixed and its per-row part (before scaling).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct CostParts {
    pub fixed: f64,
    pub work: f64,
    /// Added unscaled (the learner's lag).
    pub wait: f64,
}

impl CostConstants {
    pub fn row(&self, w: &RowWork) -> CostParts {
        CostParts {
            fixed: self.row_startup_us + w.seeks * self.row_seek_us,
            work: w.rows_read * (self.row_row_us + w.row_bytes * self.row_byte_us)
                + w.index_lookups * self.row_index_lookup_us,
            wait: 0.0,
        }
    }

    pub fn column(&self, w: &ColumnWork) -> CostParts {
        let per_partition = w.partitions.max(1.0);
        CostParts {
            fixed: self.col_startup_us,
            work: (w.rows * (self.col_row_us + w.read_bytes * self.col_byte_us)
                + w.delta_rows * self.col_delta_row_us)
                / per_partition,
            wait: w.lag_wait_us,
        }
    }
}

/// Bounds of a calibrated scale.
pub const MIN_SCALE: f64 = 0.1;
pub const MAX_SCALE: f64 = 10.0;
/// Observations kept per replica for fitting.
pub const WINDOW: usize = 256;
/// Fit after this many new observations of a replica.
pub const REFIT_EVERY: usize = 16;
/// A fit needs at least this many observations.
pub const MIN_OBSERVATIONS: usize = 8;

/// The calibrated scales of one replica's fixed and per-row costs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Scales {
    pub fixed: f64,
    pub work: f64,
}

impl Default for Scales {
    fn default() -> Self {
        Scales {
            fixed: 1.0,
            work: 1.0,
        }
    }
}

impl Scales {
    pub fn apply(&self, p: &CostParts) -> f64 {
        p.fixed * self.fixed + p.work * self.work + p.wait
    }
}

/// One refit, for the inspector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CalibrationStep {
    pub at_ms: u64,
    pub replica: String,
    pub observations: usize,
    pub scales: Scales,
    /// Mean absolute relative error of the model over the window, before and after.
    pub error_before: f64,
    pub error_after: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Observation {
    fixed: f64,
    work: f64,
    actual_us: f64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ReplicaFit {
    scales: Scales,
    window: VecDeque<Observation>,
    since_fit: usize,
    total: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CalibrationState {
    frozen: bool,
    row: ReplicaFit,
    column: ReplicaFit,
    history: Vec<CalibrationStep>,
}

/// History entries kept.
const HISTORY: usize = 200;

/// The cost model with its calibration, persisted in `calibration.json`.
pub struct Calibrator {
    pub constants: CostConstants,
    path: Option<PathBuf>,
    state: Mutex<CalibrationState>,
}

/// What the inspector shows of the calibration.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationView {
    pub constants: CostConstants,
    pub frozen: bool,
    pub row: Scales,
    pub column: Scales,
    pub row_observations: u64,
    pub column_observations: u64,
    pub history: Vec<CalibrationStep>,
}

fn relative_error(s: &Scales, obs: &VecDeque<Observation>) -> f64 {
    if obs.is_empty() {
        return 0.0;
    }
    obs.iter()
        .map(|o| {
            let p = CostParts {
                fixed: o.fixed,
                work: o.work,
                wait: 0.0,
            };
            ((s.apply(&p) - o.actual_us) / o.actual_us.max(1.0)).abs()
        })
        .sum::<f64>()
        / obs.len() as f64
}

/// Least squares on relative error: minimise Σ ((a·F + b·W − y) / y)², with `a`, `b` clamped
/// to the scale bounds. When the observations cannot tell the two apart (all fixed or all
/// work), one common scale is fitted.
fn fit(obs: &VecDeque<Observation>) -> Scales {
    let (mut ff, mut fw, mut ww, mut fy, mut wy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for o in obs {
        let w = 1.0 / o.actual_us.max(1.0).powi(2);
        ff += w * o.fixed * o.fixed;
        fw += w * o.fixed * o.work;
        ww += w * o.work * o.work;
        fy += w * o.fixed * o.actual_us;
        wy += w * o.work * o.actual_us;
    }
    let det = ff * ww - fw * fw;
    let clamp = |x: f64| x.clamp(MIN_SCALE, MAX_SCALE);
    if det.abs() > 1e-9 * (ff * ww).max(1e-300) {
        let a = (fy * ww - wy * fw) / det;
        let b = (ff * wy - fw * fy) / det;
        if a > 0.0 && b > 0.0 {
            return Scales {
                fixed: clamp(a),
                work: clamp(b),
            };
        }
    }
    // One scale for both: minimise Σ ((k·(F+W) − y)/y)².
    let (mut tt, mut ty) = (0.0, 0.0);
    for o in obs {
        let w = 1.0 / o.actual_us.max(1.0).powi(2);
        let t = o.fixed + o.work;
        tt += w * t * t;
        ty += w * t * o.actual_us;
    }
    let k = if tt > 0.0 { clamp(ty / tt) } else { 1.0 };
    Scales { fixed: k, work: k }
}

impl Calibrator {
    /// A model with default constants, calibrated in memory only.
    pub fn in_memory() -> Self {
        Calibrator {
            constants: CostConstants::default(),
            path: None,
            state: Mutex::new(CalibrationState::default()),
        }
    }

    /// A model whose calibration is kept in `dir/calibration.json` (loaded now if present).
    pub fn open(dir: &std::path::Path) -> std::io::Result<Self> {
        let path = dir.join("calibration.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CalibrationState::default(),
            Err(e) => return Err(e),
        };
        Ok(Calibrator {
            constants: CostConstants::default(),
            path: Some(path),
            state: Mutex::new(state),
        })
    }

    /// The current scales of `replica`.
    pub fn scales(&self, replica: Replica) -> Scales {
        let s = self.state.lock();
        match replica {
            Replica::Row => s.row.scales,
            Replica::Column => s.column.scales,
        }
    }

    /// Stops (or resumes) refitting; the current scales stay.
    pub fn set_frozen(&self, frozen: bool) -> std::io::Result<()> {
        self.state.lock().frozen = frozen;
        self.save()
    }

    pub fn frozen(&self) -> bool {
        self.state.lock().frozen
    }

    /// Records that a scan on `replica` predicted as `parts` took `actual_us`, and refits
    /// the replica's scales every [`REFIT_EVERY`] observations.
    pub fn observe(&self, replica: Replica, parts: CostParts, actual_us: f64) {
        if !actual_us.is_finite() || actual_us <= 0.0 {
            return;
        }
        let refit = {
            let mut s = self.state.lock();
            if s.frozen {
                return;
            }
            let fitstate = match replica {
                Replica::Row => &mut s.row,
                Replica::Column => &mut s.column,
            };
            // The learner wait is not part of the scan's own time.
            fitstate.window.push_back(Observation {
                fixed: parts.fixed,
                work: parts.work,
                actual_us,
            });
            if fitstate.window.len() > WINDOW {
                fitstate.window.pop_front();
            }
            fitstate.total += 1;
            fitstate.since_fit += 1;
            if fitstate.since_fit >= REFIT_EVERY && fitstate.window.len() >= MIN_OBSERVATIONS {
                fitstate.since_fit = 0;
                let before = relative_error(&fitstate.scales, &fitstate.window);
                let scales = fit(&fitstate.window);
                let after = relative_error(&scales, &fitstate.window);
                let changed = after < before
                    && ((scales.fixed / fitstate.scales.fixed - 1.0).abs() > 0.02
                        || (scales.work / fitstate.scales.work - 1.0).abs() > 0.02);
                if changed {
                    fitstate.scales = scales;
                    let observations = fitstate.window.len();
                    s.history.push(CalibrationStep {
                        at_ms: crate::stats::now_ms(),
                        replica: replica.label().into(),
                        observations,
                        scales,
                        error_before: before,
                        error_after: after,
                    });
                    let excess = s.history.len().saturating_sub(HISTORY);
                    s.history.drain(..excess);
                }
                changed
            } else {
                false
            }
        };
        if refit {
            if let Err(e) = self.save() {
                tracing::warn!(error = %e, "could not save the router's calibration");
            }
        }
    }

    pub fn view(&self) -> CalibrationView {
        let s = self.state.lock();
        CalibrationView {
            constants: self.constants.clone(),
            frozen: s.frozen,
            row: s.row.scales,
            column: s.column.scales,
            row_observations: s.row.total,
            column_observations: s.column.total,
            history: s.history.clone(),
        }
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&*self.state.lock()).map_err(std::io::Error::other)?;
        crate::write_durably(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_recovers_the_true_scales_and_stays_bounded() {
        let c = Calibrator::in_memory();
        // The "true" machine: fixed costs 3× the model, per-row work 0.5×.
        for i in 0..64 {
            let parts = CostParts {
                fixed: 100.0 + (i % 7) as f64 * 10.0,
                work: 10.0 * (1 << (i % 10)) as f64,
                wait: 0.0,
            };
            let actual = 3.0 * parts.fixed + 0.5 * parts.work;
            c.observe(Replica::Column, parts, actual);
        }
        let s = c.scales(Replica::Column);
        assert!((s.fixed - 3.0).abs() < 0.05, "{s:?}");
        assert!((s.work - 0.5).abs() < 0.05, "{s:?}");
        assert_eq!(c.scales(Replica::Row), Scales::default());
        assert!(!c.view().history.is_empty());
        // Absurd observations are clamped to the bounds.
        for _ in 0..64 {
            let parts = CostParts {
                fixed: 1.0,
                work: 1.0,
                wait: 0.0,
            };
            c.observe(Replica::Row, parts, 1e9);
        }
        let r = c.scales(Replica::Row);
        assert!(r.fixed <= MAX_SCALE && r.work <= MAX_SCALE, "{r:?}");
    }

    #[test]
    fn a_frozen_calibration_does_not_move_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let c = Calibrator::open(dir.path()).unwrap();
        for _ in 0..32 {
            let parts = CostParts {
                fixed: 10.0,
                work: 10.0,
                wait: 0.0,
            };
            c.observe(Replica::Row, parts, 40.0);
        }
        let fitted = c.scales(Replica::Row);
        assert!((fitted.fixed - 2.0).abs() < 0.1, "{fitted:?}");
        c.set_frozen(true).unwrap();
        for _ in 0..32 {
            let parts = CostParts {
                fixed: 10.0,
                work: 10.0,
                wait: 0.0,
            };
            c.observe(Replica::Row, parts, 400.0);
        }
        assert_eq!(c.scales(Replica::Row), fitted);
        let again = Calibrator::open(dir.path()).unwrap();
        assert!(again.frozen());
        assert_eq!(again.scales(Replica::Row), fitted);
    }
}
