//! The cost model: what a table scan is expected to take on each replica, in microseconds,
//! and the calibration that fits the model to the scans the router has timed.
//!
//! Each replica's cost is `fixed × fixed_scale + work × work_scale + filter × filter_scale`,
//! where `filter` is the filter conditions evaluated per row read
//! ([`CostConstants::row_filter_us`], [`CostConstants::col_filter_us`]):
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
//! [`Calibrator`] records every routed scan's actual time and refits the three scales of each
//! replica by least squares on relative error (with a small pull towards the current scales,
//! so a part no observation exercised keeps its scale), bounded to
//! [[`MIN_SCALE`], [`MAX_SCALE`]].

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
    pub row_filter_us: f64,
    pub col_startup_us: f64,
    pub col_row_us: f64,
    pub col_byte_us: f64,
    pub col_delta_row_us: f64,
    pub col_filter_us: f64,
}

impl Default for CostConstants {
    fn default() -> Self {
        CostConstants {
            row_startup_us: 20.0,
            row_seek_us: 4.0,
            row_row_us: 0.6,
            row_byte_us: 0.004,
            row_index_lookup_us: 4.0,
            row_filter_us: 0.01,
            col_startup_us: 400.0,
            col_row_us: 0.0005,
            col_byte_us: 0.0001,
            col_delta_row_us: 0.8,
            col_filter_us: 0.003,
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
    /// Filter conditions evaluated per row read.
    pub filter_terms: f64,
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
    /// Filter conditions evaluated per row read.
    pub filter_terms: f64,
    /// Expected wait for the learner, microseconds.
    pub lag_wait_us: f64,
}

/// A cost split into its fixed part, its per-row reading and its per-row filtering
/// (before scaling).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct CostParts {
    pub fixed: f64,
    pub work: f64,
    #[serde(default)]
    pub filter: f64,
    /// Added unscaled (the learner's lag).
    pub wait: f64,
}

impl CostConstants {
    pub fn row(&self, w: &RowWork) -> CostParts {
        CostParts {
            fixed: self.row_startup_us + w.seeks * self.row_seek_us,
            work: w.rows_read * (self.row_row_us + w.row_bytes * self.row_byte_us)
                + w.index_lookups * self.row_index_lookup_us,
            filter: w.rows_read * w.filter_terms * self.row_filter_us,
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
            filter: (w.rows + w.delta_rows) * w.filter_terms * self.col_filter_us / per_partition,
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

/// The calibrated scales of one replica's fixed, per-row and filtering costs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Scales {
    pub fixed: f64,
    pub work: f64,
    #[serde(default = "one")]
    pub filter: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for Scales {
    fn default() -> Self {
        Scales {
            fixed: 1.0,
            work: 1.0,
            filter: 1.0,
        }
    }
}

impl Scales {
    pub fn apply(&self, p: &CostParts) -> f64 {
        p.fixed * self.fixed + p.work * self.work + p.filter * self.filter + p.wait
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
    #[serde(default)]
    filter: f64,
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
    /// One writer of the file at a time, so the last one written is the newest.
    saving: Mutex<()>,
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
                filter: o.filter,
                wait: 0.0,
            };
            ((s.apply(&p) - o.actual_us) / o.actual_us.max(1.0)).abs()
        })
        .sum::<f64>()
        / obs.len() as f64
}

/// Weight of the pull towards the current scales in a fit (ridge regularisation): it keeps
/// a scale that the observations say nothing about (say, no filtered scans yet) where it is.
const RIDGE: f64 = 0.05;

/// Least squares on relative error: minimise Σ ((a·F + b·W + c·L − y) / y)² + λ·Σ (s − s₀)²
/// over the scales s = (a, b, c) of the fixed, per-row and filtering parts, starting from
/// the current scales s₀; the result is clamped to the scale bounds.
fn fit(obs: &VecDeque<Observation>, current: &Scales) -> Scales {
    let mut m = [[0.0f64; 3]; 3];
    let mut v = [0.0f64; 3];
    for o in obs {
        let y = o.actual_us.max(1.0);
        let x = [o.fixed / y, o.work / y, o.filter / y];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += x[i] * x[j];
            }
            v[i] += x[i];
        }
    }
    let prior = [current.fixed, current.work, current.filter];
    for i in 0..3 {
        m[i][i] += RIDGE;
        v[i] += RIDGE * prior[i];
    }
    let s = solve3(m, v).unwrap_or(prior);
    let clamp = |x: f64| {
        if x.is_finite() {
            x.clamp(MIN_SCALE, MAX_SCALE)
        } else {
            1.0
        }
    };
    Scales {
        fixed: clamp(s[0]),
        work: clamp(s[1]),
        filter: clamp(s[2]),
    }
}

/// Solves `m · x = v` by Gaussian elimination with partial pivoting.
fn solve3(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-12 {
            return None;
        }
        m.swap(col, pivot);
        v.swap(col, pivot);
        let pivot_row = m[col];
        for r in col + 1..3 {
            let f = m[r][col] / pivot_row[col];
            for (c, x) in m[r].iter_mut().enumerate().skip(col) {
                *x -= f * pivot_row[c];
            }
            v[r] -= f * v[col];
        }
    }
    let mut x = [0.0; 3];
    for r in (0..3).rev() {
        let mut acc = v[r];
        for c in r + 1..3 {
            acc -= m[r][c] * x[c];
        }
        x[r] = acc / m[r][r];
    }
    Some(x)
}

impl Calibrator {
    /// A model with default constants, calibrated in memory only.
    pub fn in_memory() -> Self {
        Calibrator {
            constants: CostConstants::default(),
            path: None,
            state: Mutex::new(CalibrationState::default()),
            saving: Mutex::new(()),
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
            saving: Mutex::new(()),
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
                filter: parts.filter,
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
                let scales = fit(&fitstate.window, &fitstate.scales);
                let after = relative_error(&scales, &fitstate.window);
                let moved = |a: f64, b: f64| (a / b - 1.0).abs() > 0.02;
                let changed = after < before
                    && (moved(scales.fixed, fitstate.scales.fixed)
                        || moved(scales.work, fitstate.scales.work)
                        || moved(scales.filter, fitstate.scales.filter));
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
        let _one = self.saving.lock();
        let bytes = serde_json::to_vec(&*self.state.lock()).map_err(std::io::Error::other)?;
        duet_common::fs::write_durably(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_recovers_the_true_scales_and_stays_bounded() {
        let c = Calibrator::in_memory();
        // The "true" machine: fixed costs 3× the model, per-row work 0.5×, filters 2×.
        for round in 0..4 {
            for i in 0..64 {
                let parts = CostParts {
                    fixed: 100.0 + (i % 7) as f64 * 10.0,
                    work: 10.0 * (1 << (i % 10)) as f64,
                    filter: if i % 3 == 0 {
                        0.0
                    } else {
                        5.0 * (1 << (i % 8)) as f64
                    },
                    wait: 0.0,
                };
                let actual = 3.0 * parts.fixed + 0.5 * parts.work + 2.0 * parts.filter;
                c.observe(Replica::Column, parts, actual);
            }
            let _ = round;
        }
        let s = c.scales(Replica::Column);
        assert!((s.fixed - 3.0).abs() < 0.1, "{s:?}");
        assert!((s.work - 0.5).abs() < 0.05, "{s:?}");
        assert!((s.filter - 2.0).abs() < 0.1, "{s:?}");
        assert_eq!(c.scales(Replica::Row), Scales::default());
        assert!(!c.view().history.is_empty());
        // Absurd observations are clamped to the bounds.
        for _ in 0..64 {
            let parts = CostParts {
                fixed: 1.0,
                work: 1.0,
                filter: 0.0,
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
        for i in 0..64 {
            let parts = CostParts {
                fixed: 10.0,
                work: 10.0 * (1 + i % 5) as f64,
                filter: 0.0,
                wait: 0.0,
            };
            c.observe(Replica::Row, parts, 2.0 * parts.fixed + 2.0 * parts.work);
        }
        let fitted = c.scales(Replica::Row);
        assert!((fitted.fixed - 2.0).abs() < 0.2, "{fitted:?}");
        assert!((fitted.work - 2.0).abs() < 0.2, "{fitted:?}");
        // No filtered scans were seen: that scale stays where it was.
        assert!((fitted.filter - 1.0).abs() < 0.05, "{fitted:?}");
        c.set_frozen(true).unwrap();
        for _ in 0..32 {
            let parts = CostParts {
                fixed: 10.0,
                work: 10.0,
                filter: 0.0,
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
