//! Turns the filters DataFusion pushes into a row-table scan into key ranges: primary-key
//! points and ranges, or ranges of a secondary index. Filters that cannot be used stay with
//! DataFusion (pushdown is `Inexact`), so a range only has to be a superset of the answer.

use std::collections::HashMap;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use duet_common::codec::memcmp::{encode_datum, prefix_end};
use duet_common::{Datum, IndexDef, SqlType, TableDef};

/// Upper limit on the number of points an IN list × IN list product may expand to.
const MAX_POINTS: usize = 1024;

/// How a scan reaches its rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Record keys (primary key order).
    PrimaryKey,
    /// Entries of a secondary index, then a point read per row.
    Index(IndexDef),
}

/// A range `[start, end)` of encoded key tuples (relative to the table or index prefix);
/// `end = None` runs to the end of the table or index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyRange {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    pub fn full() -> Self {
        KeyRange {
            start: Vec::new(),
            end: None,
        }
    }
}

/// The shape of a scan's ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKind {
    /// Every range is one full primary key.
    PkPoints,
    /// Ranges of the primary key.
    PkRange,
    /// Ranges of a secondary index ([`Access::Index`]).
    IndexRange,
    /// The whole table.
    FullScan,
}

/// What a scan will read.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanRanges {
    pub access: Access,
    pub ranges: Vec<KeyRange>,
    pub kind: ScanKind,
}

impl ScanRanges {
    /// For EXPLAIN: e.g. `pk point x3`, `pk range`, `index t_b range`, `full scan`.
    pub fn describe(&self) -> String {
        match (self.kind, &self.access) {
            (ScanKind::PkPoints, _) => format!("pk point x{}", self.ranges.len()),
            (ScanKind::PkRange, _) => "pk range".into(),
            (ScanKind::IndexRange, Access::Index(idx)) => format!("index {} range", idx.name),
            (ScanKind::IndexRange, Access::PrimaryKey) => "index range".into(),
            (ScanKind::FullScan, _) => "full scan".into(),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct ColumnBounds {
    /// Allowed values (intersection of `=` and `IN`), if any equality applies.
    points: Option<Vec<Datum>>,
    lower: Option<(Datum, bool)>,
    upper: Option<(Datum, bool)>,
}

/// Converts a literal to a datum comparable under `ty`'s key encoding, if exact.
pub fn scalar_to_datum(v: &ScalarValue, ty: &SqlType) -> Option<Datum> {
    if v.is_null() {
        return None;
    }
    let int = || -> Option<i64> {
        Some(match v {
            ScalarValue::Int8(Some(x)) => *x as i64,
            ScalarValue::Int16(Some(x)) => *x as i64,
            ScalarValue::Int32(Some(x)) => *x as i64,
            ScalarValue::Int64(Some(x)) => *x,
            ScalarValue::UInt8(Some(x)) => *x as i64,
            ScalarValue::UInt16(Some(x)) => *x as i64,
            ScalarValue::UInt32(Some(x)) => *x as i64,
            ScalarValue::UInt64(Some(x)) => i64::try_from(*x).ok()?,
            _ => return None,
        })
    };
    match ty {
        SqlType::Int16 | SqlType::Int32 | SqlType::Int64 => int().map(Datum::Int),
        SqlType::Float32 | SqlType::Float64 => match v {
            ScalarValue::Float64(Some(f)) => Some(Datum::Float(*f)),
            ScalarValue::Float32(Some(f)) => Some(Datum::Float(*f as f64)),
            _ => None,
        },
        SqlType::Numeric { scale, .. } => match v {
            ScalarValue::Decimal128(Some(m), _, s) => {
                let (m, s, cs) = (*m, *s as i32, *scale as i32);
                if s == cs {
                    Some(Datum::Decimal(m))
                } else if s < cs {
                    m.checked_mul(10i128.checked_pow((cs - s) as u32)?)
                        .map(Datum::Decimal)
                } else {
                    let d = 10i128.checked_pow((s - cs) as u32)?;
                    (m % d == 0).then(|| Datum::Decimal(m / d))
                }
            }
            _ => int()
                .and_then(|i| (i as i128).checked_mul(10i128.checked_pow(*scale as u32)?))
                .map(Datum::Decimal),
        },
        SqlType::Text | SqlType::Varchar(_) => match v {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)) => Some(Datum::Text(s.clone())),
            _ => None,
        },
        // char(n) values are stored blank-padded; comparisons have their own rules.
        SqlType::Char(_) => None,
        // A uuid literal in its canonical form (the planner puts it so) is its stored key.
        SqlType::Uuid => match v {
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s))
                if s.len() == 36
                    && s.char_indices().all(|(i, c)| match i {
                        8 | 13 | 18 | 23 => c == '-',
                        _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
                    }) =>
            {
                Some(Datum::Text(s.clone()))
            }
            _ => None,
        },
        SqlType::Json | SqlType::Jsonb | SqlType::Interval | SqlType::Array(_) => None,
        SqlType::Time => match v {
            ScalarValue::Time64Microsecond(Some(t)) => Some(Datum::Int(*t)),
            _ => None,
        },
        SqlType::Bool => match v {
            ScalarValue::Boolean(Some(b)) => Some(Datum::Bool(*b)),
            _ => None,
        },
        SqlType::Date => match v {
            ScalarValue::Date32(Some(d)) => Some(Datum::Date(*d)),
            _ => None,
        },
        // A timestamptz literal is an instant whatever zone it carries; a timestamp one
        // has none.
        SqlType::Timestamp | SqlType::TimestampTz => {
            let zoned = matches!(ty, SqlType::TimestampTz);
            match v {
                ScalarValue::TimestampMicrosecond(Some(t), tz) if tz.is_some() == zoned => {
                    Some(Datum::Timestamp(*t))
                }
                ScalarValue::TimestampMillisecond(Some(t), tz) if tz.is_some() == zoned => {
                    t.checked_mul(1000).map(Datum::Timestamp)
                }
                ScalarValue::TimestampSecond(Some(t), tz) if tz.is_some() == zoned => {
                    t.checked_mul(1_000_000).map(Datum::Timestamp)
                }
                ScalarValue::TimestampNanosecond(Some(t), tz) if tz.is_some() == zoned => {
                    Some(Datum::Timestamp(t.div_euclid(1000))).filter(|_| t % 1000 == 0)
                }
                _ => None,
            }
        }
        SqlType::Bytea => match v {
            ScalarValue::Binary(Some(b))
            | ScalarValue::LargeBinary(Some(b))
            | ScalarValue::BinaryView(Some(b)) => Some(Datum::Bytes(b.clone())),
            _ => None,
        },
    }
}

fn column_of(e: &Expr, def: &TableDef) -> Option<usize> {
    match e {
        Expr::Column(c) => def.column_index(&c.name),
        // A cast that does not change the type (DataFusion sometimes leaves these).
        Expr::Cast(c) if matches!(&*c.expr, Expr::Column(_)) => {
            let i = column_of(&c.expr, def)?;
            (def.columns[i].ty.arrow_type() == c.field.data_type().clone()).then_some(i)
        }
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

fn datum_cmp(a: &Datum, b: &Datum) -> std::cmp::Ordering {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    encode_datum(&mut x, a);
    encode_datum(&mut y, b);
    x.cmp(&y)
}

fn collect_bounds(def: &TableDef, filters: &[Expr]) -> HashMap<usize, ColumnBounds> {
    let mut bounds: HashMap<usize, ColumnBounds> = HashMap::new();
    let mut preds = Vec::new();
    for f in filters {
        preds.extend(split_conjunction(f));
    }
    for p in preds {
        match p {
            // `a = 1 OR a = 2 OR a IN (3, 4)`: DataFusion rewrites short IN lists this way.
            Expr::BinaryExpr(BinaryExpr {
                op: Operator::Or, ..
            }) => {
                if let Some((col, values)) = disjunction_points(p, def) {
                    intersect_points(bounds.entry(col).or_default(), values);
                }
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (col, lit, op) = match (
                    column_of(left, def),
                    literal(right),
                    column_of(right, def),
                    literal(left),
                ) {
                    (Some(c), Some(l), _, _) => (c, l, *op),
                    (_, _, Some(c), Some(l)) => match op.swap() {
                        Some(o) => (c, l, o),
                        None => continue,
                    },
                    _ => continue,
                };
                let Some(d) = scalar_to_datum(lit, &def.columns[col].ty) else {
                    continue;
                };
                let b = bounds.entry(col).or_default();
                match op {
                    Operator::Eq => intersect_points(b, vec![d]),
                    Operator::Gt => tighten_lower(b, d, false),
                    Operator::GtEq => tighten_lower(b, d, true),
                    Operator::Lt => tighten_upper(b, d, false),
                    Operator::LtEq => tighten_upper(b, d, true),
                    _ => {}
                }
            }
            Expr::InList(il) if !il.negated => {
                let Some(col) = column_of(&il.expr, def) else {
                    continue;
                };
                let ty = &def.columns[col].ty;
                let values: Option<Vec<Datum>> = il
                    .list
                    .iter()
                    .map(|e| literal(e).and_then(|v| scalar_to_datum(v, ty)))
                    .collect();
                if let Some(values) = values {
                    intersect_points(bounds.entry(col).or_default(), values);
                }
            }
            Expr::Between(bt) if !bt.negated => {
                let Some(col) = column_of(&bt.expr, def) else {
                    continue;
                };
                let ty = &def.columns[col].ty;
                let (Some(lo), Some(hi)) = (
                    literal(&bt.low).and_then(|v| scalar_to_datum(v, ty)),
                    literal(&bt.high).and_then(|v| scalar_to_datum(v, ty)),
                ) else {
                    continue;
                };
                let b = bounds.entry(col).or_default();
                tighten_lower(b, lo, true);
                tighten_upper(b, hi, true);
            }
            _ => {}
        }
    }
    bounds
}

fn flatten_or<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            flatten_or(left, out);
            flatten_or(right, out);
        }
        other => out.push(other),
    }
}

/// The column and values of a disjunction of equalities (or IN lists) on one column.
fn disjunction_points(e: &Expr, def: &TableDef) -> Option<(usize, Vec<Datum>)> {
    let mut col = None;
    let mut values = Vec::new();
    let mut branches = Vec::new();
    flatten_or(e, &mut branches);
    for branch in branches {
        let (c, vals) = match branch {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => {
                match (
                    column_of(left, def),
                    literal(right),
                    column_of(right, def),
                    literal(left),
                ) {
                    (Some(c), Some(l), _, _) | (_, _, Some(c), Some(l)) => {
                        (c, vec![scalar_to_datum(l, &def.columns[c].ty)?])
                    }
                    _ => return None,
                }
            }
            Expr::InList(il) if !il.negated => {
                let c = column_of(&il.expr, def)?;
                let ty = &def.columns[c].ty;
                let vals = il
                    .list
                    .iter()
                    .map(|e| literal(e).and_then(|v| scalar_to_datum(v, ty)))
                    .collect::<Option<Vec<_>>>()?;
                (c, vals)
            }
            _ => return None,
        };
        if *col.get_or_insert(c) != c {
            return None;
        }
        values.extend(vals);
    }
    Some((col?, values))
}

fn intersect_points(b: &mut ColumnBounds, mut values: Vec<Datum>) {
    values.sort_by(datum_cmp);
    values.dedup_by(|a, b| datum_cmp(a, b).is_eq());
    b.points = Some(match b.points.take() {
        None => values,
        Some(old) => old
            .into_iter()
            .filter(|o| values.iter().any(|v| datum_cmp(o, v).is_eq()))
            .collect(),
    });
}

fn tighten_lower(b: &mut ColumnBounds, d: Datum, inclusive: bool) {
    let replace = match &b.lower {
        None => true,
        Some((cur, cur_inc)) => match datum_cmp(&d, cur) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => *cur_inc && !inclusive,
            std::cmp::Ordering::Less => false,
        },
    };
    if replace {
        b.lower = Some((d, inclusive));
    }
}

fn tighten_upper(b: &mut ColumnBounds, d: Datum, inclusive: bool) {
    let replace = match &b.upper {
        None => true,
        Some((cur, cur_inc)) => match datum_cmp(&d, cur) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => *cur_inc && !inclusive,
            std::cmp::Ordering::Greater => false,
        },
    };
    if replace {
        b.upper = Some((d, inclusive));
    }
}

/// Ranges over a key made of `cols`, or `None` if the leading column is unconstrained.
/// The second value is true when every range is a single full-key point.
fn key_ranges(
    cols: &[usize],
    bounds: &HashMap<usize, ColumnBounds>,
) -> Option<(Vec<KeyRange>, bool)> {
    let first = bounds.get(cols.first()?)?;
    if first.points.is_none() && first.lower.is_none() && first.upper.is_none() {
        return None;
    }
    let mut prefixes: Vec<Vec<u8>> = vec![Vec::new()];
    let mut used = 0;
    for c in cols {
        let Some(points) = bounds.get(c).and_then(|b| b.points.as_ref()) else {
            break;
        };
        if prefixes.len() * points.len().max(1) > MAX_POINTS {
            break;
        }
        prefixes = prefixes
            .iter()
            .flat_map(|p| {
                points.iter().map(move |d| {
                    let mut k = p.clone();
                    encode_datum(&mut k, d);
                    k
                })
            })
            .collect();
        used += 1;
    }
    let all_points = used == cols.len();
    let next = cols.get(used).and_then(|c| bounds.get(c));
    let mut ranges = Vec::with_capacity(prefixes.len());
    for p in prefixes {
        let (lower, upper) = match next {
            Some(b) if !all_points => (b.lower.as_ref(), b.upper.as_ref()),
            _ => (None, None),
        };
        let start = match lower {
            Some((d, inc)) => {
                let mut k = p.clone();
                encode_datum(&mut k, d);
                if *inc {
                    k
                } else {
                    prefix_end(&k)
                }
            }
            // Skip NULLs (flag 0x00) of the range column: a comparison never matches them.
            None if used < cols.len() && upper.is_some() => [p.as_slice(), &[0x01]].concat(),
            None => p.clone(),
        };
        let end = match upper {
            Some((d, inc)) => {
                let mut k = p.clone();
                encode_datum(&mut k, d);
                Some(if *inc { prefix_end(&k) } else { k })
            }
            None if p.is_empty() => None,
            None => Some(prefix_end(&p)),
        };
        if end.as_ref().is_none_or(|e| &start < e) {
            ranges.push(KeyRange { start, end });
        }
    }
    ranges.sort();
    Some((ranges, all_points))
}

/// Chooses how to scan `def` given the pushed-down `filters`.
pub fn plan_ranges(def: &TableDef, filters: &[Expr]) -> ScanRanges {
    let bounds = collect_bounds(def, filters);
    if !def.primary_key.is_empty() {
        if let Some((ranges, points)) = key_ranges(&def.primary_key, &bounds) {
            let kind = if points {
                ScanKind::PkPoints
            } else {
                ScanKind::PkRange
            };
            return ScanRanges {
                access: Access::PrimaryKey,
                ranges,
                kind,
            };
        }
    }
    // Prefer an index whose leading column has an equality, then any usable one.
    let mut best: Option<(bool, &IndexDef, Vec<KeyRange>)> = None;
    for idx in &def.indexes {
        if let Some((ranges, _)) = key_ranges(&idx.columns, &bounds) {
            let eq = bounds
                .get(&idx.columns[0])
                .is_some_and(|b| b.points.is_some());
            if best.as_ref().is_none_or(|(beq, _, _)| eq && !beq) {
                best = Some((eq, idx, ranges));
            }
        }
    }
    if let Some((_, idx, ranges)) = best {
        return ScanRanges {
            access: Access::Index(idx.clone()),
            kind: ScanKind::IndexRange,
            ranges,
        };
    }
    ScanRanges {
        access: Access::PrimaryKey,
        ranges: vec![KeyRange::full()],
        kind: ScanKind::FullScan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};
    use duet_common::catalog::CATALOG_FORMAT;
    use duet_common::codec::memcmp::encode_tuple;
    use duet_common::ColumnDef;

    fn def() -> TableDef {
        let c = |n: &str, ty| ColumnDef {
            name: n.into(),
            ty,
            nullable: true,
            default_expr: None,
            missing: Datum::Null,
        };
        TableDef {
            format: CATALOG_FORMAT,
            id: 1,
            name: "t".into(),
            storage_id: 2,
            columns: vec![
                c("a", SqlType::Int32),
                c("b", SqlType::Int32),
                c("s", SqlType::Text),
            ],
            primary_key: vec![0, 1],
            pk_name: "t_pkey".into(),
            indexes: vec![IndexDef {
                id: 3,
                name: "t_s".into(),
                columns: vec![2],
                unique: false,
                constraint: false,
            }],
            columnar: true,
            sequence: None,
            checks: vec![],
            foreign_keys: vec![],
            view: None,
        }
    }

    #[test]
    fn full_key_equality_is_a_point() {
        let r = plan_ranges(
            &def(),
            &[col("a").eq(lit(1i32)).and(col("b").eq(lit(2i32)))],
        );
        assert_eq!(r.describe(), "pk point x1");
        let k = encode_tuple(&[Datum::Int(1), Datum::Int(2)]);
        assert_eq!(
            r.ranges,
            vec![KeyRange {
                start: k.clone(),
                end: Some(prefix_end(&k))
            }]
        );
    }

    #[test]
    fn prefix_equality_and_range_on_next_column() {
        let r = plan_ranges(
            &def(),
            &[
                col("a").eq(lit(1i32)),
                col("b").gt(lit(5i32)),
                col("b").lt_eq(lit(9i32)),
            ],
        );
        assert_eq!(r.describe(), "pk range");
        let lo = encode_tuple(&[Datum::Int(1), Datum::Int(5)]);
        let hi = encode_tuple(&[Datum::Int(1), Datum::Int(9)]);
        assert_eq!(
            r.ranges,
            vec![KeyRange {
                start: prefix_end(&lo),
                end: Some(prefix_end(&hi))
            }]
        );
    }

    #[test]
    fn in_list_gives_sorted_points_and_unusable_filters_give_full_scan() {
        let r = plan_ranges(
            &def(),
            &[col("a").in_list(vec![lit(3i32), lit(1i32), lit(3i32)], false)],
        );
        assert_eq!(r.ranges.len(), 2);
        assert!(r.ranges[0] < r.ranges[1]);
        let r = plan_ranges(&def(), &[col("b").eq(lit(1i32))]);
        assert_eq!(r.describe(), "full scan");
        // A contradiction yields no ranges at all.
        let r = plan_ranges(&def(), &[col("a").eq(lit(1i32)), col("a").eq(lit(2i32))]);
        assert!(r.ranges.is_empty());
    }

    #[test]
    fn or_of_equalities_on_one_column_gives_points() {
        let r = plan_ranges(&def(), &[col("a").eq(lit(1i32)).or(col("a").eq(lit(2i32)))]);
        assert_eq!(r.ranges.len(), 2);
        // An OR across columns cannot narrow the key.
        let r = plan_ranges(&def(), &[col("a").eq(lit(1i32)).or(col("b").eq(lit(2i32)))]);
        assert_eq!(r.describe(), "full scan");
    }

    #[test]
    fn secondary_index_is_used_when_the_key_is_not() {
        let r = plan_ranges(&def(), &[col("s").eq(lit("x"))]);
        assert!(matches!(r.access, Access::Index(ref i) if i.name == "t_s"));
    }
}
