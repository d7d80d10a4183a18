//! Differences the tester knows and reports apart: each one is an open bug with an
//! explanation, matched narrowly enough that a different bug in the same query still fails.
//! Fixing one means deleting its entry here (the tester then holds the fix).

use super::outcome::Outcome;
use super::Finding;

pub struct Known {
    pub name: &'static str,
    pub explanation: &'static str,
    matches: fn(&Finding) -> bool,
}

pub const KNOWN: &[Known] = &[
    Known {
        name: "numeric-scale",
        explanation: "PostgreSQL's numeric keeps a scale per value; DuetDB follows it for \
                      quotients, averages, sums, min/max, + - *, CASE, COALESCE, UNION, \
                      VALUES, window functions and unconstrained numeric columns, not yet \
                      for DataFusion's folding of 0.0 * x: the same value prints with \
                      another number of decimals",
        matches: numeric_scale_only,
    },
    Known {
        name: "unevaluated-error",
        explanation: "PostgreSQL raised a run-time error (21000, 22003, 22012) while DuetDB \
                      returned no rows: DuetDB's executor skips work no answer depends on \
                      (the other side of a join or EXCEPT whose one side is empty), so it \
                      never evaluates the failing expression",
        matches: unevaluated_error,
    },
];

/// The entry that explains `f`, if any.
pub fn explain(f: &Finding) -> Option<&'static Known> {
    KNOWN.iter().find(|k| (k.matches)(f))
}

/// A decimal number's digits: sign, integer digits, fraction digits.
fn parse_decimal(s: &str) -> Option<(bool, &str, &str)> {
    let (neg, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    (!int.is_empty() && digits(int) && digits(frac)).then_some((neg, int, frac))
}

/// `s` rounded half away from zero to `scale` decimals, without trailing zeros, as digits.
fn rounded(s: &str, scale: usize) -> Option<String> {
    let (neg, int, frac) = parse_decimal(s)?;
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let keep = int.len() + scale.min(frac.len());
    let round_up = frac.len() > scale && digits[keep] >= 5;
    digits.truncate(keep);
    if round_up {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let int_len = digits.len() - scale.min(frac.len());
    let int_part: String = digits[..int_len]
        .iter()
        .map(|d| (d + b'0') as char)
        .collect();
    let frac_part: String = digits[int_len..]
        .iter()
        .map(|d| (d + b'0') as char)
        .collect();
    let int_part = int_part.trim_start_matches('0');
    let frac_part = frac_part.trim_end_matches('0');
    let zero = int_part.is_empty() && frac_part.is_empty();
    Some(format!(
        "{}{}.{}",
        if neg && !zero { "-" } else { "" },
        if int_part.is_empty() { "0" } else { int_part },
        frac_part
    ))
}

fn scale(s: &str) -> usize {
    s.split_once('.').map_or(0, |(_, f)| f.len())
}

/// Two numeric texts that are the same value printed with different decimals. (Until
/// 2026-12-06 it also took quotients that agreed at the coarser scale: DuetDB's quotients
/// kept 20 decimals of value; they are PostgreSQL's now.)
fn same_numeric(a: &str, b: &str) -> bool {
    let max = scale(a).max(scale(b));
    rounded(a, max).is_some() && rounded(a, max) == rounded(b, max)
}

/// A sort key under which numerics differing only in scale sort alike.
fn key(row: &[Option<String>]) -> Vec<Option<String>> {
    row.iter()
        .map(|c| {
            c.as_ref()
                .map(|s| rounded(s, scale(s)).unwrap_or_else(|| s.clone()))
        })
        .collect()
}

fn unevaluated_error(f: &Finding) -> bool {
    f.kind == super::Kind::MissingError
        && matches!(f.expected.code(), Some("21000" | "22003" | "22012"))
        && matches!(&f.got, Outcome::Rows { rows, .. } if rows.is_empty())
}

fn numeric_scale_only(f: &Finding) -> bool {
    cells_differ_only(f, same_numeric)
}

/// Both answered with as many rows, and every differing cell pair passes `same`.
fn cells_differ_only(f: &Finding, same: fn(&str, &str) -> bool) -> bool {
    let (Outcome::Rows { rows: a, .. }, Outcome::Rows { rows: b, .. }) = (&f.expected, &f.got)
    else {
        return false;
    };
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a.clone(), b.clone());
    if !f.ordered {
        a.sort_by_key(|r| key(r));
        b.sort_by_key(|r| key(r));
    }
    let mut any = false;
    for (ra, rb) in a.iter().zip(&b) {
        if ra.len() != rb.len() {
            return false;
        }
        for (ca, cb) in ra.iter().zip(rb) {
            match (ca, cb) {
                (Some(x), Some(y)) if x != y => {
                    if !same(x, y) {
                        return false;
                    }
                    any = true;
                }
                (x, y) if x != y => return false,
                _ => {}
            }
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_compare_by_value() {
        assert!(same_numeric("1.5", "1.5000000000"));
        assert!(same_numeric("-0.01", "-0.0100"));
        assert!(same_numeric("3", "3.00"));
        assert!(same_numeric("1.00000000000000000000", "1.0000"));
        // A value rounded otherwise is another value.
        assert!(!same_numeric("66.6666666666666667", "66.666667"));
        assert!(!same_numeric("0.66666666666666666667", "0.6666"));
        assert!(!same_numeric("1.6666666666666667", "2"));
        assert!(!same_numeric("1.5", "1.6"));
        assert!(!same_numeric("abc", "abc0"));
        assert_eq!(rounded("9.995", 2).as_deref(), Some("10."));
        assert_eq!(rounded("-0.004", 2).as_deref(), Some("0."));
    }
}
