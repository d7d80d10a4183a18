//! Table statistics (`ANALYZE`) and the estimates the router makes from them.
//!
//! [`StatsBuilder`] reads a table, or a sample of it (whole chunks of the column replica,
//! see `crate::sample`), batch by batch, and keeps per column the row and null counts, min
//! and max (DataFusion's min/max accumulators), a distinct sample of the values by hash
//! (hashes from DataFusion's `create_hashes`) with the number of sampling units each was
//! seen in, the average width, and a uniform reservoir sample of [`SAMPLE_ROWS`] rows.
//! From the reservoir it derives the most common values and an equi-depth histogram of the
//! others, as PostgreSQL's ANALYZE does; from the distinct sample the table's distinct
//! values ([`estimate_distinct`]).
//! [`TableStats::selectivity`] turns pushed-down filters into the fraction of rows they keep:
//! equality (most common values, else the remaining rows spread over the remaining distinct
//! values), ranges (histogram, interpolated within a bucket), IN lists, LIKE prefixes,
//! BETWEEN, IS [NOT] NULL, AND (independence), OR and NOT. [`StatsStore`] keeps the
//! statistics of every table in one JSON file in the data directory (written to a temporary
//! file, synced, then renamed), so they survive a restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{create_hashes, HLL_RANDOM_STATE};
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::{Accumulator, BinaryExpr, Expr, Operator};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// Rows kept in the reservoir sample (PostgreSQL samples 300 × its statistics target of 100).
pub const SAMPLE_ROWS: usize = 30_000;
/// Most common values kept per column.
pub const MAX_MCV: usize = 100;
/// Fewest occurrences in the sample for a value to be kept as a most common value.
pub const MIN_MCV_COUNT: usize = 10;
/// Histogram buckets per column.
pub const HISTOGRAM_BUCKETS: usize = 100;

/// Selectivity of a predicate the estimator does not understand (PostgreSQL uses 1/3 for
/// an unknown inequality and 1/200 for an unknown equality; one value for both is enough to
/// rank the replicas).
pub const DEFAULT_SELECTIVITY: f64 = 0.25;
/// Selectivity of an equality on a column with no statistics.
pub const DEFAULT_EQ_SELECTIVITY: f64 = 0.005;
/// Selectivity of a range on a column with no statistics.
pub const DEFAULT_RANGE_SELECTIVITY: f64 = 1.0 / 3.0;

/// A value as statistics keep it: numbers (integers, decimals, floats, dates as days,
/// timestamps as microseconds, booleans as 0/1) as `f64`, strings as strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatValue {
    Num(f64),
    Str(String),
}

impl StatValue {
    /// The value of a scalar, if statistics can order it.
    pub fn from_scalar(v: &ScalarValue) -> Option<StatValue> {
        use ScalarValue as S;
        let n = |x: f64| Some(StatValue::Num(x));
        match v {
            S::Boolean(Some(b)) => n(if *b { 1.0 } else { 0.0 }),
            S::Int8(Some(x)) => n(*x as f64),
            S::Int16(Some(x)) => n(*x as f64),
            S::Int32(Some(x)) => n(*x as f64),
            S::Int64(Some(x)) => n(*x as f64),
            S::UInt8(Some(x)) => n(*x as f64),
            S::UInt16(Some(x)) => n(*x as f64),
            S::UInt32(Some(x)) => n(*x as f64),
            S::UInt64(Some(x)) => n(*x as f64),
            S::Float32(Some(x)) => n(*x as f64),
            S::Float64(Some(x)) => n(*x),
            S::Decimal128(Some(x), _, s) => n(*x as f64 / 10f64.powi(*s as i32)),
            S::Date32(Some(d)) => n(*d as f64),
            S::TimestampSecond(Some(t), _) => n(*t as f64 * 1e6),
            S::TimestampMillisecond(Some(t), _) => n(*t as f64 * 1e3),
            S::TimestampMicrosecond(Some(t), _) => n(*t as f64),
            S::TimestampNanosecond(Some(t), _) => n(*t as f64 / 1e3),
            S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s)) => {
                Some(StatValue::Str(s.clone()))
            }
            _ => None,
        }
    }

    /// Order of two values (numbers before strings).
    fn cmp(&self, other: &StatValue) -> std::cmp::Ordering {
        match (self, other) {
            (StatValue::Num(a), StatValue::Num(b)) => a.total_cmp(b),
            (StatValue::Str(a), StatValue::Str(b)) => a.cmp(b),
            (StatValue::Num(_), StatValue::Str(_)) => std::cmp::Ordering::Less,
            (StatValue::Str(_), StatValue::Num(_)) => std::cmp::Ordering::Greater,
        }
    }

    /// Where `self` lies between `lo` and `hi` (0..1): linear for numbers, by the first
    /// differing bytes for strings.
    fn position(&self, lo: &StatValue, hi: &StatValue) -> f64 {
        match (self, lo, hi) {
            (StatValue::Num(v), StatValue::Num(l), StatValue::Num(h)) if h > l => {
                ((v - l) / (h - l)).clamp(0.0, 1.0)
            }
            (StatValue::Str(v), StatValue::Str(l), StatValue::Str(h)) => {
                let key = |s: &str| -> f64 {
                    // The first 6 bytes as a fraction; enough to order within a bucket.
                    s.bytes()
                        .chain(std::iter::repeat(0))
                        .take(6)
                        .fold(0.0, |acc, b| acc * 256.0 + b as f64)
                };
                let (v, l, h) = (key(v), key(l), key(h));
                if h > l {
                    ((v - l) / (h - l)).clamp(0.0, 1.0)
                } else {
                    0.5
                }
            }
            _ => 0.5,
        }
    }
}

/// Statistics of one column.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ColumnStats {
    /// Fraction of rows that are NULL.
    pub null_frac: f64,
    /// Distinct non-NULL values (HyperLogLog estimate, at least what the sample saw).
    pub ndv: f64,
    pub min: Option<StatValue>,
    pub max: Option<StatValue>,
    /// Most common values with their frequency (fraction of all rows), most frequent first.
    pub mcv: Vec<(StatValue, f64)>,
    /// Equi-depth histogram bounds of the values not in `mcv` (each bucket holds the same
    /// share of those rows).
    pub histogram: Vec<StatValue>,
    /// Average bytes per value in Arrow form.
    pub avg_width: f64,
}

impl ColumnStats {
    fn mcv_total(&self) -> f64 {
        self.mcv.iter().map(|(_, f)| f).sum()
    }

    /// Fraction of rows equal to `v`.
    pub fn eq(&self, v: &StatValue) -> f64 {
        if let Some((_, f)) = self.mcv.iter().find(|(m, _)| m.cmp(v).is_eq()) {
            return *f;
        }
        let outside = self.min.as_ref().is_some_and(|m| v.cmp(m).is_lt())
            || self.max.as_ref().is_some_and(|m| v.cmp(m).is_gt());
        if outside {
            return 0.0;
        }
        let rest = (1.0 - self.null_frac - self.mcv_total()).max(0.0);
        let others = (self.ndv - self.mcv.len() as f64).max(1.0);
        if rest <= 0.0 {
            // Every value was seen among the most common ones: `v` is (almost) absent.
            return 0.0;
        }
        rest / others
    }

    /// Fraction of rows with a value `< v` (or `<= v` when `inclusive`).
    pub fn below(&self, v: &StatValue, inclusive: bool) -> f64 {
        let mut frac: f64 = self
            .mcv
            .iter()
            .filter(|(m, _)| {
                let o = m.cmp(v);
                o.is_lt() || (inclusive && o.is_eq())
            })
            .map(|(_, f)| f)
            .sum();
        let rest = (1.0 - self.null_frac - self.mcv_total()).max(0.0);
        let h = &self.histogram;
        if rest > 0.0 {
            let pos = if h.len() >= 2 {
                let k = (h.len() - 1) as f64;
                if v.cmp(&h[0]).is_lt() {
                    0.0
                } else if v.cmp(&h[h.len() - 1]).is_ge() {
                    1.0
                } else {
                    let i = h.partition_point(|b| b.cmp(v).is_le()) - 1;
                    (i as f64 + v.position(&h[i], &h[i + 1])) / k
                }
            } else {
                match (&self.min, &self.max) {
                    (Some(lo), Some(hi)) => v.position(lo, hi),
                    _ => DEFAULT_RANGE_SELECTIVITY,
                }
            };
            frac += rest * pos;
            if inclusive && !self.mcv.iter().any(|(m, _)| m.cmp(v).is_eq()) && h.len() >= 2 {
                frac += self.eq(v).min(rest * (1.0 - pos));
            }
        }
        frac.clamp(0.0, 1.0 - self.null_frac)
    }
}

/// Statistics of one table, as of its last ANALYZE.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableStats {
    pub table_id: u32,
    /// The table's storage when analyzed (TRUNCATE gives it a new one: the stats are stale).
    pub storage_id: u32,
    pub table: String,
    pub row_count: f64,
    /// Milliseconds since the Unix epoch.
    pub analyzed_at_ms: u64,
    /// The row store's count of changed rows of the table when it was analyzed.
    pub changes_at_analyze: u64,
    /// Rows ANALYZE read (all of them, or a sample).
    #[serde(default)]
    pub rows_read: f64,
    pub columns: HashMap<String, ColumnStats>,
}

/// Fraction of rows of a join of two inputs that match on one column pair, from their
/// distinct counts (the classic `1 / max(ndv_l, ndv_r)`).
pub fn join_selectivity(left: &ColumnStats, right: &ColumnStats) -> f64 {
    let ndv = left.ndv.max(right.ndv).max(1.0);
    (1.0 - left.null_frac) * (1.0 - right.null_frac) / ndv
}

/// The column a predicate side names (through casts), if any.
fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_name(&c.expr),
        Expr::TryCast(c) => column_name(&c.expr),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        Expr::Cast(c) => literal(&c.expr),
        Expr::TryCast(c) => literal(&c.expr),
        _ => None,
    }
}

/// `op` with its operands swapped (`a < b` is `b > a`).
fn flip(op: Operator) -> Operator {
    op.swap().unwrap_or(op)
}

/// The smallest string greater than every string starting with `prefix`, if there is one.
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        if let Some(next) = char::from_u32(c as u32 + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl TableStats {
    fn column(&self, name: &str) -> Option<&ColumnStats> {
        self.columns.get(name)
    }

    /// Fraction of rows that pass all of `filters` (ANDed). Conditions are independent,
    /// except that a lower and an upper bound on the same column make one range, as in
    /// PostgreSQL's `clauselist_selectivity` (`P(x ≥ a) + P(x ≤ b) − 1`, NULLs added back).
    pub fn selectivity(&self, filters: &[Expr]) -> f64 {
        let mut conjuncts: Vec<&Expr> = Vec::new();
        for f in filters {
            conjuncts.extend(datafusion::logical_expr::utils::split_conjunction(f));
        }
        // column → (lower-bound selectivity, upper-bound selectivity), the tightest of each
        let mut ranges: HashMap<&str, (Option<f64>, Option<f64>)> = HashMap::new();
        let mut product = 1.0;
        for e in conjuncts {
            if let Some((col, lower)) = self.range_bound(e) {
                let s = self.expr_selectivity(e);
                let slot = ranges.entry(col).or_default();
                let side = if lower { &mut slot.0 } else { &mut slot.1 };
                *side = Some(side.map_or(s, |prev: f64| prev.min(s)));
            } else {
                product *= self.expr_selectivity(e);
            }
        }
        for (col, bounds) in ranges {
            product *= match bounds {
                (Some(lo), Some(hi)) => {
                    let nulls = self.column(col).map_or(0.0, |c| c.null_frac);
                    (lo + hi - 1.0 + nulls).max(0.0)
                }
                (Some(s), None) | (None, Some(s)) => s,
                (None, None) => 1.0,
            };
        }
        product.clamp(0.0, 1.0)
    }

    /// `Some((column, is_lower_bound))` for `column <op> literal` with a range operator.
    fn range_bound<'a>(&self, e: &'a Expr) -> Option<(&'a str, bool)> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
            return None;
        };
        let (col, op) = match (
            column_name(left),
            literal(right),
            literal(left),
            column_name(right),
        ) {
            (Some(c), Some(_), _, _) => (c, *op),
            (_, _, Some(_), Some(c)) => (c, flip(*op)),
            _ => return None,
        };
        match op {
            Operator::Gt | Operator::GtEq => Some((col, true)),
            Operator::Lt | Operator::LtEq => Some((col, false)),
            _ => None,
        }
    }

    fn compare(&self, col: &str, op: Operator, v: &ScalarValue) -> f64 {
        let Some(cs) = self.column(col) else {
            return match op {
                Operator::Eq => DEFAULT_EQ_SELECTIVITY,
                Operator::NotEq => 1.0 - DEFAULT_EQ_SELECTIVITY,
                _ => DEFAULT_RANGE_SELECTIVITY,
            };
        };
        let Some(v) = StatValue::from_scalar(v) else {
            // Comparing with NULL matches nothing.
            return if v.is_null() {
                0.0
            } else {
                DEFAULT_SELECTIVITY
            };
        };
        let non_null = 1.0 - cs.null_frac;
        match op {
            Operator::Eq => cs.eq(&v),
            Operator::NotEq => (non_null - cs.eq(&v)).max(0.0),
            Operator::Lt => cs.below(&v, false),
            Operator::LtEq => cs.below(&v, true),
            Operator::Gt => (non_null - cs.below(&v, true)).max(0.0),
            Operator::GtEq => (non_null - cs.below(&v, false)).max(0.0),
            _ => DEFAULT_SELECTIVITY,
        }
    }

    fn expr_selectivity(&self, e: &Expr) -> f64 {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And => self.expr_selectivity(left) * self.expr_selectivity(right),
                Operator::Or => {
                    let (a, b) = (self.expr_selectivity(left), self.expr_selectivity(right));
                    (a + b - a * b).clamp(0.0, 1.0)
                }
                Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq => {
                    if let (Some(c), Some(v)) = (column_name(left), literal(right)) {
                        self.compare(c, *op, v)
                    } else if let (Some(v), Some(c)) = (literal(left), column_name(right)) {
                        self.compare(c, flip(*op), v)
                    } else if *op == Operator::Eq {
                        DEFAULT_EQ_SELECTIVITY
                    } else {
                        DEFAULT_SELECTIVITY
                    }
                }
                _ => DEFAULT_SELECTIVITY,
            },
            Expr::Not(inner) => (1.0 - self.expr_selectivity(inner)).clamp(0.0, 1.0),
            Expr::IsNull(inner) => match column_name(inner).and_then(|c| self.column(c)) {
                Some(cs) => cs.null_frac,
                None => DEFAULT_EQ_SELECTIVITY,
            },
            Expr::IsNotNull(inner) => match column_name(inner).and_then(|c| self.column(c)) {
                Some(cs) => 1.0 - cs.null_frac,
                None => 1.0 - DEFAULT_EQ_SELECTIVITY,
            },
            Expr::InList(list) => {
                let Some(c) = column_name(&list.expr) else {
                    return DEFAULT_SELECTIVITY;
                };
                let mut seen: Vec<&ScalarValue> = Vec::new();
                let mut s = 0.0;
                for item in &list.list {
                    match literal(item) {
                        Some(v) if !seen.contains(&v) => {
                            seen.push(v);
                            s += self.compare(c, Operator::Eq, v);
                        }
                        Some(_) => {}
                        None => s += DEFAULT_EQ_SELECTIVITY,
                    }
                }
                let s = s.min(1.0);
                if list.negated {
                    let nn = self.column(c).map_or(1.0, |cs| 1.0 - cs.null_frac);
                    (nn - s).max(0.0)
                } else {
                    s
                }
            }
            Expr::Between(b) => {
                let Some(c) = column_name(&b.expr) else {
                    return DEFAULT_SELECTIVITY;
                };
                let (Some(lo), Some(hi)) = (literal(&b.low), literal(&b.high)) else {
                    return DEFAULT_SELECTIVITY;
                };
                let inside = (self.compare(c, Operator::LtEq, hi)
                    - self.compare(c, Operator::Lt, lo))
                .max(0.0);
                if b.negated {
                    let nn = self.column(c).map_or(1.0, |cs| 1.0 - cs.null_frac);
                    (nn - inside).max(0.0)
                } else {
                    inside
                }
            }
            Expr::Like(like) if !like.case_insensitive => {
                let (Some(c), Some(ScalarValue::Utf8(Some(p)) | ScalarValue::Utf8View(Some(p)))) =
                    (column_name(&like.expr), literal(&like.pattern))
                else {
                    return DEFAULT_SELECTIVITY;
                };
                let s = self.like_selectivity(c, p, like.escape_char);
                if like.negated {
                    let nn = self.column(c).map_or(1.0, |cs| 1.0 - cs.null_frac);
                    (nn - s).max(0.0)
                } else {
                    s
                }
            }
            _ => DEFAULT_SELECTIVITY,
        }
    }

    /// A LIKE pattern: its literal prefix bounds a range; what follows the first wildcard
    /// is assumed to keep [`DEFAULT_SELECTIVITY`] of that range.
    fn like_selectivity(&self, col: &str, pattern: &str, escape: Option<char>) -> f64 {
        let escape = escape.unwrap_or('\\');
        let mut prefix = String::new();
        let mut chars = pattern.chars();
        let mut wildcard = false;
        while let Some(c) = chars.next() {
            if c == escape {
                if let Some(n) = chars.next() {
                    prefix.push(n);
                }
            } else if c == '%' || c == '_' {
                wildcard = true;
                break;
            } else {
                prefix.push(c);
            }
        }
        if !wildcard {
            return self.compare(col, Operator::Eq, &ScalarValue::Utf8(Some(prefix)));
        }
        let rest = if chars.as_str().chars().all(|c| c == '%') {
            1.0
        } else {
            DEFAULT_SELECTIVITY
        };
        if prefix.is_empty() {
            let nn = self.column(col).map_or(1.0, |cs| 1.0 - cs.null_frac);
            return nn * rest;
        }
        let lo = self.compare(col, Operator::Lt, &ScalarValue::Utf8(Some(prefix.clone())));
        let hi = match prefix_successor(&prefix) {
            Some(next) => self.compare(col, Operator::Lt, &ScalarValue::Utf8(Some(next))),
            None => self.column(col).map_or(1.0, |cs| 1.0 - cs.null_frac),
        };
        ((hi - lo).max(0.0) * rest).clamp(0.0, 1.0)
    }
}

/// Distinct values a column's distinct sample keeps at most (see [`DistinctSample`]).
pub const DISTINCT_KEEP: usize = 16_384;

/// A uniform sample of a column's distinct values, taken by hash (Gibbons' distinct
/// sampling): a value is kept when its hash falls in the lowest `2^-level` of the hash
/// space, so every distinct value has the same chance whatever its frequency. When more than
/// [`DISTINCT_KEEP`] values are kept, the level goes up and about half are dropped. For each
/// kept value it counts the sampling units (chunks read whole, or single rows) it was seen
/// in, up to 3: the estimate of the values no unit held needs those seen in exactly one and
/// in exactly two (see [`estimate_distinct`]). With fewer than `DISTINCT_KEEP` distinct
/// values the counts are exact; above, their relative error is about `1/sqrt(DISTINCT_KEEP/2)`
/// (under 1.2%).
#[derive(Default)]
struct DistinctSample {
    level: u32,
    /// Hash → (last unit it was seen in, units it was seen in, at most 3).
    seen: HashMap<u64, (u32, u8)>,
}

impl DistinctSample {
    fn add(&mut self, hash: u64, unit: u32) {
        if self.level > 0 && hash >> (64 - self.level) != 0 {
            return;
        }
        match self.seen.entry(hash) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((unit, 1));
                while self.seen.len() > DISTINCT_KEEP && self.level < 63 {
                    self.level += 1;
                    let level = self.level;
                    self.seen.retain(|h, _| h >> (64 - level) == 0);
                }
            }
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let (last, units) = e.get_mut();
                if *last != unit {
                    *last = unit;
                    *units = (*units + 1).min(3);
                }
            }
        }
    }

    /// Distinct values, values seen in exactly one unit and in exactly two, scaled up from
    /// the kept values to all of those the units held.
    fn counts(&self) -> (f64, f64, f64) {
        let scale = 2f64.powi(self.level as i32);
        let (mut f1, mut f2) = (0u64, 0u64);
        for (_, units) in self.seen.values() {
            match units {
                1 => f1 += 1,
                2 => f2 += 1,
                _ => {}
            }
        }
        (
            self.seen.len() as f64 * scale,
            f1 as f64 * scale,
            f2 as f64 * scale,
        )
    }
}

/// Distinct values of a column in a whole table, from a sample that read a `fraction` of its
/// sampling units (chunks read whole, or single rows) and saw `distinct` values, `once` of
/// them in exactly one unit and `twice` in exactly two.
///
/// The values the sample missed are estimated with Chao's bias-corrected estimator
/// `f1 (f1 - 1) / (2 (f2 + 1))`, which is right when a value's occurrences are spread over
/// the table (its count in the sample is then about Poisson), and capped at
/// `f1 (1/fraction - 1)`: the values seen in one unit only, scaled up as if every such
/// value were confined to one unit. That cap is the answer for a column clustered by the
/// key (each value in one chunk: a primary key, an order's line items), where counting
/// rows instead of units, as PostgreSQL's row-level estimator does, sees every value many
/// times and extrapolates nothing. A whole-table read (`fraction` 1) is exact.
pub fn estimate_distinct(distinct: f64, once: f64, twice: f64, fraction: f64) -> f64 {
    if fraction >= 1.0 || fraction <= 0.0 {
        return distinct;
    }
    let unseen =
        (once * (once - 1.0).max(0.0) / (2.0 * (twice + 1.0))).min(once * (1.0 / fraction - 1.0));
    distinct + unseen
}

/// A small deterministic generator for the samples (splitmix64).
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

struct ColumnBuilder {
    name: String,
    nulls: u64,
    bytes: u64,
    min: Option<MinAccumulator>,
    max: Option<MaxAccumulator>,
    distinct: DistinctSample,
}

/// Computes a table's statistics from its rows, fed as Arrow batches: all of them
/// ([`Self::finish`]), or a sample ([`Self::finish_sample`]).
pub struct StatsBuilder {
    columns: Vec<ColumnBuilder>,
    rows: u64,
    /// The sampling unit the next rows belong to.
    unit: u32,
    /// Sampled rows: one value per column (`None` for NULL or a value with no order).
    sample: Vec<Vec<Option<StatValue>>>,
    rng: SplitMix,
    hashes: Vec<u64>,
}

impl StatsBuilder {
    /// A builder for columns `names` of types `types`.
    pub fn new(names: &[String], types: &[DataType]) -> Self {
        let columns = names
            .iter()
            .zip(types)
            .map(|(name, ty)| ColumnBuilder {
                name: name.clone(),
                nulls: 0,
                bytes: 0,
                min: MinAccumulator::try_new(ty).ok(),
                max: MaxAccumulator::try_new(ty).ok(),
                distinct: DistinctSample::default(),
            })
            .collect();
        StatsBuilder {
            columns,
            rows: 0,
            unit: 0,
            sample: Vec::new(),
            rng: SplitMix(0x5eed),
            hashes: Vec::new(),
        }
    }

    /// Adds a batch whose columns are the builder's, in order; each row was drawn on its
    /// own (a sampling unit of its own).
    pub fn add(&mut self, batch: &RecordBatch) -> datafusion::common::Result<()> {
        self.add_rows(batch, false)
    }

    /// Adds a batch of rows drawn together: a chunk a sample reads whole, one sampling unit.
    pub fn add_block(&mut self, batch: &RecordBatch) -> datafusion::common::Result<()> {
        self.add_rows(batch, true)
    }

    fn add_rows(&mut self, batch: &RecordBatch, block: bool) -> datafusion::common::Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let first_unit = self.unit;
        self.unit = self.unit.wrapping_add(if block { 1 } else { n as u32 });
        for (cb, array) in self.columns.iter_mut().zip(batch.columns()) {
            cb.nulls += array.null_count() as u64;
            cb.bytes += array.get_buffer_memory_size() as u64;
            if let Some(m) = cb.min.as_mut() {
                m.update_batch(std::slice::from_ref(array))?;
            }
            if let Some(m) = cb.max.as_mut() {
                m.update_batch(std::slice::from_ref(array))?;
            }
            self.hashes.clear();
            self.hashes.resize(n, 0);
            create_hashes([array], &HLL_RANDOM_STATE, &mut self.hashes)?;
            for (i, h) in self.hashes.iter().enumerate() {
                if array.is_valid(i) {
                    let unit = if block {
                        first_unit
                    } else {
                        first_unit.wrapping_add(i as u32)
                    };
                    cb.distinct.add(*h, unit);
                }
            }
        }
        // Reservoir sampling (Vitter's algorithm R) over row positions.
        let mut picks: Vec<(usize, Option<usize>)> = Vec::new();
        for i in 0..n {
            let seen = self.rows + i as u64;
            if (seen as usize) < SAMPLE_ROWS {
                picks.push((i, None));
            } else {
                let j = self.rng.below(seen + 1) as usize;
                if j < SAMPLE_ROWS {
                    picks.push((i, Some(j)));
                }
            }
        }
        for (i, slot) in picks {
            let row = batch
                .columns()
                .iter()
                .map(|a| value_at(a, i))
                .collect::<Vec<_>>();
            match slot {
                None => self.sample.push(row),
                Some(j) => self.sample[j] = row,
            }
        }
        self.rows += n as u64;
        Ok(())
    }

    /// The statistics of a table the builder read whole.
    pub fn finish(self, table: &str, table_id: u32, storage_id: u32, changes: u64) -> TableStats {
        let population = Population {
            fraction: 1.0,
            rows: self.rows as f64,
            bounds: Vec::new(),
        };
        self.finish_sample(table, table_id, storage_id, changes, population)
    }

    /// The statistics of a table of which the builder read a sample, standing for
    /// `population`: row count and value bounds from it, distinct values scaled up by
    /// [`estimate_distinct`], fractions (NULLs, most common values, histogram) and widths
    /// from the sample.
    pub fn finish_sample(
        mut self,
        table: &str,
        table_id: u32,
        storage_id: u32,
        changes: u64,
        population: Population,
    ) -> TableStats {
        let read = self.rows as f64;
        let rows = population.rows.max(0.0);
        let sample_len = self.sample.len();
        let mut columns = HashMap::new();
        for (c, cb) in self.columns.iter_mut().enumerate() {
            let mut values: Vec<StatValue> =
                self.sample.iter_mut().filter_map(|r| r[c].take()).collect();
            values.sort_by(|a, b| a.cmp(b));
            let (distinct, once, twice) = cb.distinct.counts();
            let estimate = estimate_distinct(distinct, once, twice, population.fraction);
            let (mcv, histogram, sample_ndv) = summarize(&values, sample_len, estimate);
            let null_frac = if read > 0.0 {
                cb.nulls as f64 / read
            } else {
                0.0
            };
            let ndv = estimate
                .round()
                .max(sample_ndv as f64)
                .min((rows * (1.0 - null_frac)).round());
            let scalar = |s: Option<datafusion::common::Result<ScalarValue>>| {
                s.and_then(|r| r.ok())
                    .and_then(|v| StatValue::from_scalar(&v))
            };
            let sampled = scalar(cb.min.as_mut().map(|m| m.evaluate()))
                .zip(scalar(cb.max.as_mut().map(|m| m.evaluate())));
            let (min, max) = widen(sampled, population.bounds.get(c).cloned().flatten()).unzip();
            let stats = ColumnStats {
                null_frac,
                ndv,
                min,
                max,
                mcv,
                histogram,
                avg_width: if read > 0.0 {
                    cb.bytes as f64 / read
                } else {
                    0.0
                },
            };
            columns.insert(cb.name.clone(), stats);
        }
        TableStats {
            table_id,
            storage_id,
            table: table.to_string(),
            row_count: rows,
            analyzed_at_ms: now_ms(),
            changes_at_analyze: changes,
            rows_read: read,
            columns,
        }
    }
}

/// The smallest and largest of the bounds `a` and `b`.
pub(crate) fn widen(
    a: Option<(StatValue, StatValue)>,
    b: Option<(StatValue, StatValue)>,
) -> Option<(StatValue, StatValue)> {
    match (a, b) {
        (Some((l1, h1)), Some((l2, h2))) => Some((
            if l2.cmp(&l1).is_lt() { l2 } else { l1 },
            if h2.cmp(&h1).is_gt() { h2 } else { h1 },
        )),
        (a, b) => a.or(b),
    }
}

/// What a sample stands for (see [`StatsBuilder::finish_sample`]).
#[derive(Debug, Clone)]
pub struct Population {
    /// The share of the table's sampling units the sample read (1: the whole table).
    pub fraction: f64,
    /// The table's rows (estimated from the sample when `fraction` < 1).
    pub rows: f64,
    /// Per column of the builder, the smallest and largest value in the whole table when
    /// known without reading it (zone maps); `None` or missing: the sample's own.
    pub bounds: Vec<Option<(StatValue, StatValue)>>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn value_at(array: &ArrayRef, i: usize) -> Option<StatValue> {
    if array.is_null(i) {
        return None;
    }
    ScalarValue::try_from_array(array, i)
        .ok()
        .and_then(|v| StatValue::from_scalar(&v))
}

/// Most common values and histogram bounds from the sorted non-NULL sample `values` of a
/// sample of `sample_rows` rows; also the distinct values the sample holds.
fn summarize(
    values: &[StatValue],
    sample_rows: usize,
    ndv_estimate: f64,
) -> (Vec<(StatValue, f64)>, Vec<StatValue>, usize) {
    if values.is_empty() || sample_rows == 0 {
        return (Vec::new(), Vec::new(), 0);
    }
    let mut groups: Vec<(usize, usize)> = Vec::new(); // (start, count)
    let mut start = 0;
    for i in 1..=values.len() {
        if i == values.len() || !values[i].cmp(&values[start]).is_eq() {
            groups.push((start, i - start));
            start = i;
        }
    }
    let distinct = groups.len();
    // Every distinct value fits in the list and the sketch agrees there are no more: keep
    // them all (the list is then complete). Otherwise only values clearly above average.
    // A value counts as common when it occurs 1.25 times as often as the sample's average
    // value (PostgreSQL's rule) and often enough that its frequency is not noise: with fewer
    // than MIN_MCV_COUNT occurrences the relative error of the count is above ~30%.
    let complete = distinct <= MAX_MCV && ndv_estimate <= distinct as f64 * 1.1;
    let avg = values.len() as f64 / distinct as f64;
    let mut candidates: Vec<(usize, usize)> = groups
        .iter()
        .copied()
        .filter(|&(_, count)| complete || (count >= MIN_MCV_COUNT && count as f64 > 1.25 * avg))
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.1));
    candidates.truncate(MAX_MCV);
    let mut in_mcv = vec![false; groups.len()];
    let mcv: Vec<(StatValue, f64)> = candidates
        .iter()
        .map(|&(s, count)| {
            if let Ok(g) = groups.binary_search_by(|(gs, _)| gs.cmp(&s)) {
                in_mcv[g] = true;
            }
            (values[s].clone(), count as f64 / sample_rows as f64)
        })
        .collect();
    let rest: Vec<&StatValue> = groups
        .iter()
        .zip(&in_mcv)
        .filter(|(_, m)| !**m)
        .flat_map(|((s, count), _)| values[*s..*s + *count].iter())
        .collect();
    let histogram = if rest.len() >= 2 {
        let k = HISTOGRAM_BUCKETS.min(rest.len() - 1);
        (0..=k)
            .map(|i| rest[i * (rest.len() - 1) / k].clone())
            .collect()
    } else {
        Vec::new()
    };
    (mcv, histogram, distinct)
}

/// Where `ANALYZE` results live: in memory, and in `stats.json` in the data directory.
pub struct StatsStore {
    path: Option<PathBuf>,
    tables: RwLock<HashMap<u32, Arc<TableStats>>>,
    saving: parking_lot::Mutex<()>,
}

impl StatsStore {
    /// Statistics kept in memory only.
    pub fn in_memory() -> Self {
        StatsStore {
            path: None,
            tables: RwLock::new(HashMap::new()),
            saving: parking_lot::Mutex::new(()),
        }
    }

    /// Statistics persisted in `dir/stats.json` (loaded now if present).
    pub fn open(dir: &std::path::Path) -> std::io::Result<Self> {
        let path = dir.join("stats.json");
        let tables: Vec<TableStats> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(StatsStore {
            path: Some(path),
            tables: RwLock::new(
                tables
                    .into_iter()
                    .map(|t| (t.table_id, Arc::new(t)))
                    .collect(),
            ),
            saving: parking_lot::Mutex::new(()),
        })
    }

    /// The statistics of table `table_id`, if it was analyzed.
    pub fn get(&self, table_id: u32) -> Option<Arc<TableStats>> {
        self.tables.read().get(&table_id).cloned()
    }

    /// Every table's statistics.
    pub fn all(&self) -> Vec<Arc<TableStats>> {
        let mut v: Vec<_> = self.tables.read().values().cloned().collect();
        v.sort_by(|a, b| a.table.cmp(&b.table));
        v
    }

    /// Stores `stats` (replacing the table's previous ones) and writes the file.
    pub fn put(&self, stats: TableStats) -> std::io::Result<()> {
        self.tables.write().insert(stats.table_id, Arc::new(stats));
        self.save()
    }

    /// Stores `stats`, gathered by a read that began at `started_ms`, unless statistics of
    /// the same table stored meanwhile came from a later read (two ANALYZEs of one table at
    /// once: the one that saw newer data stays). Whether it stored them.
    pub fn put_unless_newer(&self, stats: TableStats, started_ms: u64) -> std::io::Result<bool> {
        {
            let mut tables = self.tables.write();
            let newer = tables
                .get(&stats.table_id)
                .is_some_and(|t| t.storage_id == stats.storage_id && t.analyzed_at_ms > started_ms);
            if newer {
                return Ok(false);
            }
            tables.insert(stats.table_id, Arc::new(stats));
        }
        self.save().map(|_| true)
    }

    /// Forgets tables not in `live` (dropped ones).
    pub fn retain(&self, live: &[u32]) -> std::io::Result<()> {
        let before = self.tables.read().len();
        self.tables.write().retain(|id, _| live.contains(id));
        if self.tables.read().len() != before {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        // One writer at a time, so the file written last holds the newest statistics.
        let _one = self.saving.lock();
        let all: Vec<TableStats> = self.all().iter().map(|t| (**t).clone()).collect();
        let bytes = serde_json::to_vec(&all).map_err(std::io::Error::other)?;
        duet_common::fs::write_durably(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::{col, lit};

    fn analyze(columns: Vec<(&str, ArrayRef)>) -> TableStats {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let names: Vec<String> = columns.iter().map(|(n, _)| n.to_string()).collect();
        let types: Vec<DataType> = columns.iter().map(|(_, a)| a.data_type().clone()).collect();
        let batch =
            RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect()).unwrap();
        let mut b = StatsBuilder::new(&names, &types);
        // Feed in slices, as a scan would.
        let mut off = 0;
        while off < batch.num_rows() {
            let len = 8192.min(batch.num_rows() - off);
            b.add(&batch.slice(off, len)).unwrap();
            off += len;
        }
        b.finish("t", 1, 1, 0)
    }

    fn ints(v: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
        Arc::new(Int64Array::from_iter(v))
    }

    fn close(actual: f64, expected: f64, tol: f64) {
        assert!(
            (actual - expected).abs() <= tol,
            "estimate {actual} is not within {tol} of {expected}"
        );
    }

    #[test]
    fn uniform_column_ranges_equalities_and_distinct_counts() {
        // 200k rows, values 0..100k each twice.
        let n = 200_000i64;
        let s = analyze(vec![("a", ints((0..n).map(|i| Some(i % 100_000))))]);
        assert_eq!(s.row_count, 200_000.0);
        let a = &s.columns["a"];
        close(a.ndv, 100_000.0, 100_000.0 * 0.05);
        assert!(
            a.mcv.is_empty(),
            "no value stands out: {:?}",
            &a.mcv[..3.min(a.mcv.len())]
        );
        close(s.selectivity(&[col("a").lt(lit(25_000i64))]), 0.25, 0.02);
        // Two bounds on one column are one range, whether they come as two filters or
        // one AND.
        close(
            s.selectivity(&[col("a").gt_eq(lit(10_000i64)), col("a").lt(lit(20_000i64))]),
            0.1,
            0.01,
        );
        close(
            s.selectivity(&[col("a")
                .gt_eq(lit(10_000i64))
                .and(col("a").lt(lit(10_500i64)))]),
            0.005,
            0.002,
        );
        close(
            s.selectivity(&[col("a").between(lit(10_000i64), lit(19_999i64))]),
            0.1,
            0.01,
        );
        close(
            s.selectivity(&[col("a").eq(lit(5i64))]),
            2.0 / 200_000.0,
            2e-6,
        );
        close(
            s.selectivity(&[col("a").in_list(vec![lit(1i64), lit(2i64), lit(1i64)], false)]),
            4.0 / 200_000.0,
            4e-6,
        );
        // Outside the range: nothing.
        assert_eq!(s.selectivity(&[col("a").eq(lit(-1i64))]), 0.0);
        assert_eq!(s.selectivity(&[col("a").gt(lit(1_000_000i64))]), 0.0);
        // A literal on the left is the same comparison flipped.
        close(s.selectivity(&[lit(25_000i64).gt(col("a"))]), 0.25, 0.02);
    }

    #[test]
    fn skewed_column_keeps_its_heavy_hitters_and_nulls() {
        // 100k rows: value 0 in half of them, 1 in a tenth, NULL in a tenth, the rest unique.
        let n = 100_000i64;
        let v = (0..n).map(|i| match i % 10 {
            0..=4 => Some(0),
            5 => Some(1),
            6 => None,
            _ => Some(1_000 + i),
        });
        let s = analyze(vec![("a", ints(v))]);
        let a = &s.columns["a"];
        close(a.null_frac, 0.1, 1e-9);
        close(s.selectivity(&[col("a").eq(lit(0i64))]), 0.5, 0.02);
        close(s.selectivity(&[col("a").eq(lit(1i64))]), 0.1, 0.01);
        // A unique value: about one row.
        assert!(s.selectivity(&[col("a").eq(lit(1_007i64))]) < 1e-4);
        close(s.selectivity(&[col("a").is_null()]), 0.1, 1e-9);
        close(s.selectivity(&[col("a").is_not_null()]), 0.9, 1e-9);
        // `<> 0` keeps the non-null rows that are not 0.
        close(s.selectivity(&[col("a").not_eq(lit(0i64))]), 0.4, 0.02);
        // OR of two heavy hitters.
        let either = col("a").eq(lit(0i64)).or(col("a").eq(lit(1i64)));
        close(s.selectivity(&[either]), 0.6 - 0.05, 0.03);
    }

    #[test]
    fn correlated_columns_are_estimated_as_independent_and_strings_by_prefix() {
        // b = a / 10 exactly: the true selectivity of a < 1000 AND b < 100 is 0.1, the
        // independence assumption gives 0.01. The estimate must be the documented product,
        // so a reader of EXPLAIN can tell where a misestimate comes from.
        let n = 10_000i64;
        let names: Vec<String> = (0..n).map(|i| format!("name{:05}", i)).collect();
        let s = analyze(vec![
            ("a", ints((0..n).map(Some))),
            ("b", ints((0..n).map(|i| Some(i / 10)))),
            ("s", Arc::new(StringArray::from_iter_values(names.iter()))),
        ]);
        close(
            s.selectivity(&[col("a").lt(lit(1_000i64)), col("b").lt(lit(100i64))]),
            0.01,
            0.003,
        );
        close(s.columns["b"].ndv, 1_000.0, 50.0);
        // LIKE with a prefix: 'name01%' covers 1000 of 10000.
        close(s.selectivity(&[col("s").like(lit("name01%"))]), 0.1, 0.02);
        close(
            s.selectivity(&[col("s").like(lit("name00042"))]),
            1e-4,
            1e-4,
        );
        close(
            s.selectivity(&[col("s").not_like(lit("name01%"))]),
            0.9,
            0.02,
        );
        // Join of a (10k distinct) with b (1k distinct): 1/10k per pair.
        close(
            join_selectivity(&s.columns["a"], &s.columns["b"]),
            1e-4,
            1e-5,
        );
    }

    #[test]
    fn concurrent_saves_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StatsStore::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..8u32)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let mut s = analyze(vec![("a", ints((0..10).map(Some)))]);
                        s.table_id = i;
                        store.put(s).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(StatsStore::open(dir.path()).unwrap().all().len(), 8);
    }

    #[test]
    fn statistics_from_an_earlier_read_do_not_replace_newer_ones() {
        let store = StatsStore::in_memory();
        let mut newer = analyze(vec![("a", ints((0..10).map(Some)))]);
        newer.analyzed_at_ms = 2_000;
        assert!(store.put_unless_newer(newer, 1_500).unwrap());
        // A read that began before the stored statistics were made loses.
        let older = analyze(vec![("a", ints((0..5).map(Some)))]);
        assert!(!store.put_unless_newer(older, 1_000).unwrap());
        assert_eq!(store.get(1).unwrap().row_count, 10.0);
        // One that began after wins.
        let later = analyze(vec![("a", ints((0..7).map(Some)))]);
        assert!(store.put_unless_newer(later, 2_500).unwrap());
        assert_eq!(store.get(1).unwrap().row_count, 7.0);
    }

    #[test]
    fn stats_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = StatsStore::open(dir.path()).unwrap();
        let s = analyze(vec![("a", ints((0..1000).map(Some)))]);
        store.put(s).unwrap();
        let again = StatsStore::open(dir.path()).unwrap();
        let t = again.get(1).expect("persisted");
        assert_eq!(t.row_count, 1000.0);
        close(t.selectivity(&[col("a").lt(lit(100i64))]), 0.1, 0.01);
        again.retain(&[]).unwrap();
        assert!(StatsStore::open(dir.path()).unwrap().get(1).is_none());
    }
}
