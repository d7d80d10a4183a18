//! PostgreSQL's `numeric` display scale. A PostgreSQL numeric value carries its own number
//! of decimals (its *dscale*): `1.50` prints two, a quotient as many as its size calls for
//! (numeric.c, `select_div_scale`). DuetDB computes with Arrow decimals of one scale per
//! column; where PostgreSQL's scale differs from row to row, a query's result carries a
//! second column with each value's display scale (its *companion*, see
//! `duet_sql::pgsemantics::dscale`), and the wire prints the value with it.

/// Field metadata key of a result column that holds the display scales of another: the
/// value is that column's index. The wire sends no such column.
pub const DISPLAY_SCALE_OF: &str = "duet.dscale_of";

/// Appended to a value column's name to name its companion (the display scales of an
/// unconstrained `numeric` column's values, or of a computed numeric).
pub const SUFFIX: &str = "\u{1f}dscale";

/// Scan positions from here on are companions: position `COMPANION_BASE + c` reads the
/// display scales of column `c` (an unconstrained `numeric`) as an `Int32` column. Both
/// replicas' scans and the row decoders take such positions beside column positions.
pub const COMPANION_BASE: usize = 1 << 16;

/// The display scale PostgreSQL gives a float converted to numeric: the decimals of its
/// text with `digits` significant digits (15 for `double precision`, 6 for `real`, as
/// float8_numeric and float4_numeric print them), trailing zeros dropped.
pub fn float_scale(v: f64, digits: usize) -> i32 {
    if !v.is_finite() {
        return 0;
    }
    let text = format!("{v:.*e}", digits.max(1) - 1);
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let frac = mantissa
        .split_once('.')
        .map_or("", |(_, f)| f)
        .trim_end_matches('0');
    (frac.len() as i64 - exponent).clamp(0, i64::from(u8::MAX)) as i32
}

/// PostgreSQL's binary numeric (digit count, weight, sign, display scale, base-10000
/// digits) as decimal text with its display scale; `None` if the bytes are not one, or
/// for NaN and infinities.
pub fn binary_text(b: &[u8]) -> Option<String> {
    if b.len() < 8 {
        return None;
    }
    let word = |i: usize| u16::from_be_bytes([b[2 * i], b[2 * i + 1]]);
    let (n, weight, sign, dscale) = (word(0) as usize, word(1) as i16, word(2), word(3) as usize);
    if b.len() != 8 + 2 * n || !matches!(sign, 0 | 0x4000) {
        return None;
    }
    let digit = |e: i32| -> u16 {
        usize::try_from(i32::from(weight) - e)
            .ok()
            .filter(|&i| i < n)
            .map_or(0, |i| word(4 + i))
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(i32::from(weight)).to_string());
        for e in (0..i32::from(weight)).rev() {
            out.push_str(&format!("{:04}", digit(e)));
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        for e in 1..=dscale.div_ceil(4) as i32 {
            frac.push_str(&format!("{:04}", digit(-e)));
        }
        frac.truncate(dscale);
        out.push('.');
        out.push_str(&frac);
    }
    Some(out)
}

/// `[-+]digits[.digits]` (no exponent, surrounding white space allowed) as an unscaled
/// value and its scale, the written decimals; `None` for anything else or more than 38
/// digits.
pub fn parse_plain(text: &str) -> Option<(i128, i8)> {
    let t = text.trim();
    let (negative, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || int.trim_start_matches('0').len() + frac.len() > 38
    {
        return None;
    }
    let mut v: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        v = v * 10 + i128::from(b - b'0');
    }
    Some((if negative { -v } else { v }, frac.len() as i8))
}

/// `[-+]digits[.digits][e[-+]digits]` (white space around it aside) as its sign, integer
/// digits, fraction digits and exponent; `None` for anything else (its cast reports that).
pub fn split_decimal(text: &str) -> Option<(&'static str, &str, &str, Option<i64>)> {
    let t = text.trim();
    let (sign, body) = match t.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", t.strip_prefix('+').unwrap_or(t)),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(p) => (&body[..p], Some(body[p + 1..].parse::<i64>().ok()?)),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    ((!int.is_empty() || !frac.is_empty()) && digits(int) && digits(frac))
        .then_some((sign, int, frac, exponent))
}

/// `[-+]digits[.digits]e[-+]digits` written without the exponent; `None` for anything else.
pub fn positional_decimal(text: &str) -> Option<String> {
    let (sign, int, frac, exponent) = split_decimal(text)?;
    let exponent = exponent.filter(|e| e.unsigned_abs() <= 1000)?;
    let digits = format!("{int}{frac}");
    // The decimal point sits `point` digits into `digits`.
    let point = int.len() as i64 + exponent;
    let (int, frac) = if point <= 0 {
        (
            "0".to_string(),
            format!("{}{digits}", "0".repeat((-point) as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        let (i, f) = digits.split_at(point as usize);
        (i.to_string(), f.to_string())
    };
    let int = match int.trim_start_matches('0') {
        "" => "0",
        i => i,
    };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// The column whose display scales scan position `p` reads, if it is a companion.
pub fn companion_of(p: usize) -> Option<usize> {
    p.checked_sub(COMPANION_BASE)
}

use arrow::array::{Array, BinaryArray, Decimal128Array, Int32Array, StringArray};

/// Decimal digits of a PostgreSQL numeric digit (base 10,000).
const DEC_DIGITS: i32 = 4;

/// `unscaled / 10^scale` as PostgreSQL prints a numeric of display scale `dscale`: the
/// fraction cut or padded to `dscale` digits. Digits that are not zero are never cut (the
/// value is printed at `scale` then), so no value is ever shown rounded.
pub fn numeric_text(unscaled: i128, scale: i8, dscale: i32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale.max(0) as usize;
    let (int, frac) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("", digits.as_str())
    };
    // The fraction at its full `scale` digits.
    let frac = format!("{}{frac}", "0".repeat(scale - frac.len()));
    let dscale = dscale.max(0) as usize;
    let shown = if dscale >= scale || frac[dscale..].bytes().all(|b| b == b'0') {
        let mut f = frac[..dscale.min(scale)].to_string();
        f.push_str(&"0".repeat(dscale.saturating_sub(scale)));
        f
    } else {
        frac
    };
    let mut out = String::with_capacity(digits.len() + 3);
    if unscaled < 0 {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !shown.is_empty() {
        out.push('.');
        out.push_str(&shown);
    }
    out
}

/// `unscaled / 10^scale` in PostgreSQL's binary `numeric` format with display scale
/// `dscale`: digit count, weight, sign and dscale (16 bits each), then the base-10,000
/// digits without leading or trailing zeros. As in [`numeric_text`], digits past
/// `dscale` that are not zero keep the value's own scale.
pub fn numeric_binary(unscaled: i128, scale: i8, dscale: i32) -> Vec<u8> {
    let a = unscaled.unsigned_abs();
    let scale = scale.max(0) as u32;
    let dscale = dscale.max(0) as u32;
    let pow = |n: u32| 10u128.pow(n);
    let dscale = if dscale < scale && !a.is_multiple_of(pow(scale - dscale)) {
        scale
    } else {
        dscale
    };
    let (int, frac) = (a / pow(scale), a % pow(scale));
    // Integer digits, least significant group first.
    let mut int_groups = Vec::new();
    let mut rest = int;
    while rest > 0 {
        int_groups.push((rest % 10_000) as i16);
        rest /= 10_000;
    }
    let mut digits: Vec<i16> = int_groups.iter().rev().copied().collect();
    let mut weight = int_groups.len() as i16 - 1;
    // Fraction digits, four decimals per group from the point.
    let groups = scale.div_ceil(DEC_DIGITS as u32);
    for k in 0..groups {
        // The decimals k*4+1 ..= k*4+4 of `frac` (which has `scale` of them).
        let end = 4 * (k + 1);
        let g = if end <= scale {
            (frac / pow(scale - end)) % 10_000
        } else {
            (frac % pow(scale - 4 * k)) * pow(end - scale)
        };
        digits.push(g as i16);
    }
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    let sign: u16 = if unscaled < 0 && !digits.is_empty() {
        0x4000
    } else {
        0
    };
    let mut out = Vec::with_capacity(8 + 2 * digits.len());
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(dscale as i16).to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

/// The display scale of row `i`: `scales`' value, or the type's `scale` where there is
/// none.
fn scale_at(scales: Option<&Int32Array>, i: usize, scale: i8) -> i32 {
    match scales {
        Some(d) if !d.is_null(i) => d.value(i),
        _ => scale as i32,
    }
}

/// Each value of a decimal array as PostgreSQL prints it with its display scale
/// ([`numeric_text`]); `scales` holds them row by row (the type's scale without it).
pub fn numeric_texts(values: &Decimal128Array, scales: Option<&Int32Array>) -> StringArray {
    let s = values.scale();
    (0..values.len())
        .map(|i| {
            (!values.is_null(i)).then(|| numeric_text(values.value(i), s, scale_at(scales, i, s)))
        })
        .collect()
}

/// [`numeric_texts`] in PostgreSQL's binary format ([`numeric_binary`]).
pub fn numeric_binaries(values: &Decimal128Array, scales: Option<&Int32Array>) -> BinaryArray {
    let s = values.scale();
    (0..values.len())
        .map(|i| {
            (!values.is_null(i)).then(|| numeric_binary(values.value(i), s, scale_at(scales, i, s)))
        })
        .collect()
}

/// The weight and first digit of a numeric in PostgreSQL's base-10,000 form
/// (`unscaled / 10^scale`); (0, 0) for zero, as numeric.c's `select_div_scale` takes them.
fn nbase_lead(unscaled: i128, scale: i8) -> (i32, u128) {
    if unscaled == 0 {
        return (0, 0);
    }
    let a = unscaled.unsigned_abs();
    let len = a.ilog10() as i32 + 1;
    // The leading decimal digit stands for 10^e.
    let e = len - 1 - scale as i32;
    let weight = e.div_euclid(DEC_DIGITS);
    let shift = scale as i32 + DEC_DIGITS * weight;
    let first = if shift >= 0 {
        a / 10u128.pow(shift as u32)
    } else {
        a * 10u128.pow((-shift) as u32)
    };
    (weight, first)
}

/// The display scale PostgreSQL gives `x / y` (numeric.c, `select_div_scale`): at least 16
/// significant digits by an estimate of the quotient's weight, and no fewer decimals than
/// either operand shows (`dx`, `dy`); at most 1000.
pub fn div_display_scale(x: i128, sx: i8, dx: i32, y: i128, sy: i8, dy: i32) -> i32 {
    const MIN_SIG_DIGITS: i32 = 16;
    let (w1, f1) = nbase_lead(x, sx);
    let (w2, f2) = nbase_lead(y, sy);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    (MIN_SIG_DIGITS - qweight * DEC_DIGITS)
        .max(dx)
        .max(dy)
        .clamp(0, 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decimals_parse_with_their_written_scale() {
        assert_eq!(parse_plain("1.50"), Some((150, 2)));
        assert_eq!(parse_plain(" -0.001 "), Some((-1, 3)));
        assert_eq!(parse_plain("+7"), Some((7, 0)));
        assert_eq!(parse_plain("7."), Some((7, 0)));
        assert_eq!(parse_plain(".5"), Some((5, 1)));
        assert_eq!(parse_plain("1e3"), None);
        assert_eq!(parse_plain("."), None);
        assert_eq!(parse_plain(&"9".repeat(39)), None);
        // The binary form of 1.50 (one base-10000 digit 1, weight 0, dscale 2, then 5000).
        let b = [0, 2, 0, 0, 0, 0, 0, 2, 0, 1, 0x13, 0x88];
        assert_eq!(binary_text(&b).as_deref(), Some("1.50"));
        assert_eq!(binary_text(&b[..10]), None);
    }

    #[test]
    fn float_scales_are_those_of_postgresql_text() {
        assert_eq!(float_scale(0.1, 15), 1);
        assert_eq!(float_scale(7.0, 15), 0);
        assert_eq!(float_scale(1e20, 15), 0);
        assert_eq!(float_scale(1.0 / 3.0, 15), 15);
        assert_eq!(float_scale(-2.5e-3, 15), 4);
        assert_eq!(float_scale(f64::from(0.1f32), 6), 1);
    }

    #[test]
    fn text_cuts_or_pads_the_fraction_to_the_display_scale() {
        assert_eq!(numeric_text(15_000, 4, 1), "1.5");
        assert_eq!(numeric_text(15_000, 4, 2), "1.50");
        assert_eq!(numeric_text(15_000, 4, 6), "1.500000");
        assert_eq!(numeric_text(-5, 2, 2), "-0.05");
        assert_eq!(numeric_text(2_000, 3, 0), "2");
        assert_eq!(numeric_text(0, 2, 0), "0");
        // A digit that is not zero is never cut.
        assert_eq!(numeric_text(12_345, 4, 2), "1.2345");
    }

    #[test]
    fn binary_is_postgres_numeric_send() {
        // 1234.5 with dscale 2: digits [1234, 5000], weight 0, dscale 2.
        assert_eq!(
            numeric_binary(123_450, 2, 2),
            vec![0, 2, 0, 0, 0, 0, 0, 2, 0x04, 0xd2, 0x13, 0x88]
        );
        // -0.0001: one digit 1 at weight -1, negative.
        assert_eq!(
            numeric_binary(-1, 4, 4),
            vec![0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 1]
        );
        // Zero keeps its display scale.
        assert_eq!(numeric_binary(0, 2, 2), vec![0, 0, 0, 0, 0, 0, 0, 2]);
        // 10000: one digit 1 at weight 1.
        assert_eq!(
            numeric_binary(10_000, 0, 0),
            vec![0, 1, 0, 1, 0, 0, 0, 0, 0, 1]
        );
    }

    #[test]
    fn binary_and_text_agree() {
        let values = [
            0i128,
            1,
            -1,
            5,
            12_345,
            -123_456_789,
            10_000,
            99_990_000,
            10i128.pow(20) + 7,
            -(10i128.pow(38) - 1),
        ];
        for v in values {
            for scale in [0i8, 1, 2, 3, 4, 5, 8, 10, 16, 20] {
                for dscale in [0, 1, 2, 4, 7, 16, 20, 24] {
                    let text = numeric_text(v, scale, dscale);
                    assert_eq!(
                        binary_text(&numeric_binary(v, scale, dscale)).as_deref(),
                        Some(text.as_str()),
                        "{v} at scale {scale}, dscale {dscale}"
                    );
                }
            }
        }
    }

    #[test]
    fn quotient_scales_are_postgres_select_div_scale() {
        // 1000 / 3.0 = 333.3333333333333333 (16 decimals).
        assert_eq!(div_display_scale(1000, 0, 0, 30, 1, 1), 16);
        // 1 / 3 = 0.33333333333333333333 (20).
        assert_eq!(div_display_scale(1, 0, 0, 3, 0, 0), 20);
        // avg: 15.00 / 4 = 3.7500000000000000 (16).
        assert_eq!(div_display_scale(1500, 2, 2, 4, 0, 0), 16);
        // 1 / 100000.0 = 0.000010000000000000000000 (24).
        assert_eq!(div_display_scale(1, 0, 0, 1_000_000, 1, 1), 24);
        // 12345 / 1: first digits 1 and 1, so the estimate is one lower (16).
        assert_eq!(div_display_scale(12_345, 0, 0, 1, 0, 0), 16);
        // 20000 / 1 (weight 1) = 20000.000000000000 (12).
        assert_eq!(div_display_scale(20_000, 0, 0, 1, 0, 0), 12);
        // An operand's own decimals are a floor.
        assert_eq!(div_display_scale(1, 0, 0, 3, 0, 30), 30);
    }
}
