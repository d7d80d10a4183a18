//! PostgreSQL's input syntax for `date` and `timestamp` (without time zone): the forms its
//! `date_in` and `timestamp_in` accept with the default `DateStyle` (ISO, MDY), where
//! Arrow's parser takes only ISO 8601 with seconds (`'2024-01-31 10:00'` was an error).
//!
//! Accepted: `2024-01-31`, `2024-1-5`, `20240131`, `1/31/2024`, `1/31/24`, `Jan 31 2024`,
//! `January 31, 2024`, `31 Jan 2024`, an optional weekday; a time `10:00`, `10:00:01`,
//! `10:00:01.123456` after a space or `T`, with `am`/`pm`; `24:00:00` and a leap second
//! (`23:59:60`) roll over as in PostgreSQL; fractions round to microseconds (half to even);
//! a time zone (`Z`, `+05`, `-08:00`, `UTC`, `PST`) is ignored, as PostgreSQL ignores it for
//! these types; `epoch`. Errors carry PostgreSQL's codes: 22007 for a malformed value, 22008
//! for a field out of range (`2024-02-30`). The special values `infinity`, `now`, `today`,
//! `tomorrow`, `yesterday` and years BC are refused with 0A000.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, PrimitiveArray};
use datafusion::arrow::datatypes::{
    DataType, IntervalUnit, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use datafusion::arrow::array::timezone::Tz;

use crate::error::{PgError, PgErrorBox, Result, SqlState};

fn from_arrow(e: datafusion::arrow::error::ArrowError) -> PgError {
    crate::error::from_datafusion(e.into())
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 of the date in `s` (a time after it is checked and ignored).
pub fn parse_date(s: &str) -> Result<i32> {
    let (date, _, _) = parse(s, "date")?;
    Ok(days_since_epoch(date))
}

/// Microseconds since 1970-01-01 00:00:00 of the timestamp in `s`.
pub fn parse_timestamp(s: &str) -> Result<i64> {
    let (date, micros, _) = parse(s, "timestamp")?;
    Ok(days_since_epoch(date) as i64 * MICROS_PER_DAY + micros)
}

/// Microseconds since 1970-01-01 00:00:00 UTC of the `timestamptz` in `s`: the zone it
/// names, else local time in `zone` (the session's `TimeZone`; in a gap of a daylight-saving
/// change, the earlier reading).
pub fn parse_timestamptz(s: &str, zone: &Tz) -> Result<i64> {
    let (date, micros, offset) = parse(s, "timestamp with time zone")?;
    let local = days_since_epoch(date) as i64 * MICROS_PER_DAY + micros;
    match offset {
        Some(off) => Ok(local - i64::from(off) * 1_000_000),
        None => local_to_utc(local, zone).ok_or_else(|| range(s)),
    }
}

/// Local microseconds in `zone` as microseconds UTC.
pub fn local_to_utc(local: i64, zone: &Tz) -> Option<i64> {
    use chrono::TimeZone;
    let naive = chrono::DateTime::from_timestamp_micros(local)?.naive_utc();
    let at = zone.from_local_datetime(&naive);
    let dt = at.earliest().or_else(|| {
        // A gap (clocks moved forward): PostgreSQL reads the time with the offset before.
        zone.from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map(|d| d - chrono::Duration::hours(1))
    })?;
    Some(dt.timestamp_micros())
}

/// The zone a session's `TimeZone` setting names (`UTC` if it names none known).
pub fn zone_of(setting: &str) -> Option<Tz> {
    let s = setting.trim();
    if s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("gmt") || s.eq_ignore_ascii_case("z")
    {
        return "+00:00".parse().ok();
    }
    s.parse().ok()
}

/// 1970-01-01 as chrono counts days (from 0001-01-01, day 1).
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

fn days_since_epoch(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - UNIX_EPOCH_CE_DAYS
}

/// `days` since 1970-01-01 as ISO text (`None` past chrono's range).
pub fn date_text(days: i32) -> Option<String> {
    let date = NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_CE_DAYS)?)?;
    Some(date.format("%Y-%m-%d").to_string())
}

/// `micros` since 1970-01-01 00:00:00 as PostgreSQL prints the timestamp (`None` past
/// chrono's range).
pub fn timestamp_text(micros: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(micros)?;
    Some(duet_wire::encode::pg_timestamp_text(micros))
}

fn syntax(s: &str, ty: &str) -> PgError {
    PgError::new(
        SqlState::InvalidDatetimeFormat,
        format!("invalid input syntax for type {ty}: \"{s}\""),
    )
}

fn range(s: &str) -> PgError {
    PgError::new(
        SqlState::DatetimeFieldOverflow,
        format!("date/time field value out of range: \"{s}\""),
    )
}

const MICROS_PER_SECOND: i64 = 1_000_000;

/// A `time` as PostgreSQL reads it: `H:MM[:SS[.fraction]]`, an optional `am`/`pm`, up to
/// `24:00:00`; microseconds since midnight (22007 for bad input, 22008 out of range).
pub fn parse_time(s: &str) -> Result<i64> {
    let text = s.trim().to_ascii_lowercase();
    let (clock, meridiem) = if let Some(t) = text.strip_suffix("am") {
        (t.trim_end(), Some(false))
    } else if let Some(t) = text.strip_suffix("pm") {
        (t.trim_end(), Some(true))
    } else {
        (text.as_str(), None)
    };
    let mut parts = clock.split(':');
    let number = |p: Option<&str>| -> Result<i64> {
        let p = p.ok_or_else(|| syntax(s, "time"))?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax(s, "time"));
        }
        p.parse().map_err(|_| syntax(s, "time"))
    };
    let mut hour = number(parts.next())?;
    let minute = number(parts.next())?;
    let micros = match parts.next() {
        None => 0,
        Some(sec) => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            let secs = number(Some(whole))?;
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax(s, "time"));
            }
            secs * MICROS_PER_SECOND + fraction_micros(frac)
        }
    };
    if parts.next().is_some() {
        return Err(syntax(s, "time"));
    }
    if let Some(pm) = meridiem {
        if !(1..=12).contains(&hour) {
            return Err(range(s));
        }
        hour = hour % 12 + if pm { 12 } else { 0 };
    }
    if minute > 59 || micros > 60 * MICROS_PER_SECOND {
        return Err(range(s));
    }
    let total = (hour * 3600 + minute * 60) * MICROS_PER_SECOND + micros;
    if total > MICROS_PER_DAY {
        return Err(range(s));
    }
    Ok(total)
}

/// Microseconds of the digits after a decimal point, rounded half away from zero.
fn fraction_micros(frac: &str) -> i64 {
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(7).collect();
    let v: i64 = digits.parse().unwrap_or(0);
    (v + 5) / 10
}

/// An `interval` as PostgreSQL reads it (IntervalStyle postgres input): numbers with units
/// (`1 year 2 mons`, `3 days`, `-4 hours`, `1.5 months`; every PostgreSQL unit name and
/// abbreviation), a `[-]H:MM[:SS.fff]` time, a bare number of seconds, a leading `@` and a
/// trailing `ago`. (months, days, microseconds); 22007 for bad input, 22008 out of range.
pub fn parse_interval(s: &str) -> Result<(i32, i32, i64)> {
    let bad = || syntax(s, "interval");
    let overflow = || {
        PgError::new(
            SqlState::DatetimeFieldOverflow,
            format!("interval field value out of range: \"{s}\""),
        )
    };
    let text = s.trim().to_ascii_lowercase();
    let text = text.strip_prefix('@').unwrap_or(&text);
    let (text, ago) = match text.trim_end().strip_suffix("ago") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let (mut months, mut days, mut micros) = (0f64, 0f64, 0i128);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut any = false;
    while i < chars.len() {
        if chars[i].is_whitespace() || chars[i] == ',' {
            i += 1;
            continue;
        }
        let start = i;
        if matches!(chars[i], '+' | '-') {
            i += 1;
        }
        while i < chars.len() && (chars[i].is_ascii_digit() || matches!(chars[i], '.' | ':')) {
            i += 1;
        }
        let number: String = chars[start..i].iter().collect();
        if number.is_empty() || number == "+" || number == "-" {
            return Err(bad());
        }
        any = true;
        if number.contains(':') {
            let (sign, clock) = match number.strip_prefix('-') {
                Some(c) => (-1, c),
                None => (1, number.trim_start_matches('+')),
            };
            let mut parts = clock.split(':');
            let field = |p: Option<&str>| -> Result<i64> {
                let p = p.ok_or_else(bad)?;
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                p.parse().map_err(|_| overflow())
            };
            let h = field(parts.next())?;
            let m = field(parts.next())?;
            let sec = match parts.next() {
                None => 0,
                Some(sec) => {
                    let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
                    if !frac.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad());
                    }
                    field(Some(whole))? * MICROS_PER_SECOND + fraction_micros(frac)
                }
            };
            if parts.next().is_some() || m > 59 || sec >= 60 * MICROS_PER_SECOND {
                return Err(bad());
            }
            let v = i128::from(h) * 3_600_000_000 + i128::from(m) * 60_000_000 + i128::from(sec);
            micros += sign * v;
            continue;
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let unit_start = i;
        while i < chars.len() && chars[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit: String = chars[unit_start..i].iter().collect();
        let seconds = |k: f64| (value * k * 1e6).round() as i128;
        match unit.as_str() {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => micros += seconds(1.0),
            "us" | "usec" | "usecs" | "microsecond" | "microseconds" => {
                micros += value.round() as i128
            }
            "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => micros += seconds(1e-3),
            "m" | "min" | "mins" | "minute" | "minutes" => micros += seconds(60.0),
            "h" | "hr" | "hrs" | "hour" | "hours" => micros += seconds(3600.0),
            "d" | "day" | "days" => days += value,
            "w" | "week" | "weeks" => days += value * 7.0,
            "mon" | "mons" | "month" | "months" => months += value,
            "y" | "yr" | "yrs" | "year" | "years" => months += (value * 12.0).round(),
            "decade" | "decades" => months += (value * 120.0).round(),
            "c" | "cent" | "century" | "centuries" => months += (value * 1200.0).round(),
            "millennium" | "millennia" | "mil" | "mils" => months += (value * 12000.0).round(),
            _ => return Err(bad()),
        }
    }
    if !any {
        return Err(bad());
    }
    // Fractions move down: a month's to days (30 a month), a day's to microseconds.
    let whole_months = months.trunc();
    days += (months - whole_months) * 30.0;
    let whole_days = days.trunc();
    micros += ((days - whole_days) * 86_400e6).round() as i128;
    let sign = if ago { -1 } else { 1 };
    let months = i32::try_from(sign * whole_months as i64).map_err(|_| overflow())?;
    let days = i32::try_from(sign * whole_days as i64).map_err(|_| overflow())?;
    let micros = i64::try_from(i128::from(sign) * micros).map_err(|_| overflow())?;
    Ok((months, days, micros))
}

/// Text read as `time` values ([`parse_time`]) in `unit`.
pub fn strings_to_times(strings: &dyn Array, unit: TimeUnit) -> Result<ArrayRef> {
    use datafusion::arrow::array::Time64MicrosecondArray;
    let strings = strings
        .as_string_opt::<i32>()
        .ok_or_else(|| PgError::new(SqlState::InternalError, "time input: not utf8"))?;
    let micros = strings
        .iter()
        .map(|v| v.map(parse_time).transpose())
        .collect::<Result<Vec<Option<i64>>>>()?;
    let micros: ArrayRef = Arc::new(Time64MicrosecondArray::from(micros));
    datafusion::arrow::compute::cast(&micros, &DataType::Time64(unit)).map_err(from_arrow)
}

/// Text read as `interval` values ([`parse_interval`]).
pub fn strings_to_intervals(strings: &dyn Array) -> Result<ArrayRef> {
    use datafusion::arrow::array::IntervalMonthDayNanoArray;
    use datafusion::arrow::datatypes::IntervalMonthDayNano;
    let strings = strings
        .as_string_opt::<i32>()
        .ok_or_else(|| PgError::new(SqlState::InternalError, "interval input: not utf8"))?;
    let values = strings
        .iter()
        .map(|v| {
            v.map(|v| {
                parse_interval(v).and_then(|(m, d, us)| {
                    let nanos = us.checked_mul(1000).ok_or_else(|| range(v))?;
                    Ok(IntervalMonthDayNano::new(m, d, nanos))
                })
            })
            .transpose()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(IntervalMonthDayNanoArray::from(values)))
}

/// The date and the microseconds into it (24:00 and leap seconds may make it the next day's
/// midnight: the date is moved on).
fn parse(s: &str, ty: &str) -> Result<(NaiveDate, i64, Option<i32>)> {
    if let Some(v) = parse_iso_fast(s.as_bytes()) {
        return v.map(|(d, m)| (d, m, None)).ok_or_else(|| range(s));
    }
    let lower = s.trim().to_ascii_lowercase();
    match lower.as_str() {
        "epoch" => {
            return Ok((
                NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch"),
                0,
                Some(0),
            ))
        }
        "infinity" | "-infinity" | "+infinity" | "now" | "today" | "tomorrow" | "yesterday"
        | "allballs" => {
            return Err(PgError::unsupported(format!(
                "the special {ty} value \"{lower}\""
            )))
        }
        _ => {}
    }
    let mut p = Parts::default();
    for token in lower
        .split(|c: char| c.is_ascii_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
    {
        p.token(token).map_err(|e| match e {
            Bad::Syntax => syntax(s, ty),
            Bad::Range => range(s),
            Bad::Unsupported(what) => PgError::unsupported(format!("{what} in a {ty} value")),
        })?;
    }
    p.finish().map_err(|e| match e {
        Bad::Range => range(s),
        Bad::Unsupported(what) => PgError::unsupported(format!("{what} in a {ty} value")),
        Bad::Syntax => syntax(s, ty),
    })
}

/// `YYYY-MM-DD[ HH:MM:SS[.f{1,6}]]`, the form COPY and drivers send: parsed without
/// allocating. `None`: another form; `Some(None)`: a field out of range.
#[allow(clippy::option_option)]
fn parse_iso_fast(b: &[u8]) -> Option<Option<(NaiveDate, i64)>> {
    let digits = |r: &[u8]| -> Option<u32> {
        r.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let mut micros = 0i64;
    if b.len() > 10 {
        if b.len() < 19 || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (h, mi, s) = (
            digits(&b[11..13])?,
            digits(&b[14..16])?,
            digits(&b[17..19])?,
        );
        let mut frac = 0i64;
        if b.len() > 19 {
            let f = &b[20..];
            if b[19] != b'.' || f.is_empty() || f.len() > 6 {
                return None;
            }
            frac = i64::from(digits(f)?) * 10i64.pow(6 - f.len() as u32);
        }
        if h > 23 || mi > 59 || s > 59 {
            return None; // 24:00, leap seconds: the general parser
        }
        micros = ((i64::from(h) * 60 + i64::from(mi)) * 60 + i64::from(s)) * 1_000_000 + frac;
    }
    Some(NaiveDate::from_ymd_opt(y as i32, m, d).map(|date| (date, micros)))
}

enum Bad {
    Syntax,
    Range,
    Unsupported(&'static str),
}

#[derive(Default)]
struct Parts {
    /// Year, month, day once a date field was read.
    ymd: Option<(i64, u32, u32)>,
    /// A month name, waiting for its day and year.
    month: Option<u32>,
    /// Numbers next to a month name: day and year, in either order; the flag says whether
    /// the number was written with more than two digits.
    numbers: Vec<(i64, bool)>,
    /// Hour, minute, second, microseconds.
    time: Option<(u32, u32, u32, i64)>,
    meridiem: Option<bool>,
    /// A zone written after the time, in seconds east of UTC.
    zone: Option<i32>,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
/// Zone abbreviations after a timestamp (the ones people write) and their offsets in
/// hours; `timestamp` and `date` ignore them, `timestamptz` applies them.
const ZONES: [(&str, i32); 16] = [
    ("z", 0),
    ("utc", 0),
    ("gmt", 0),
    ("ut", 0),
    ("zulu", 0),
    ("pst", -8),
    ("pdt", -7),
    ("mst", -7),
    ("mdt", -6),
    ("cst", -6),
    ("cdt", -5),
    ("est", -5),
    ("edt", -4),
    ("cet", 1),
    ("cest", 2),
    ("bst", 1),
];

/// A numeric zone offset (`+05`, `-0800`, `+05:30`, `+05:30:15`) in seconds east of UTC.
fn offset_seconds(t: &str) -> std::result::Result<i32, Bad> {
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(Bad::Syntax),
    };
    let parts: Vec<&str> = if rest.contains(':') {
        rest.split(':').collect()
    } else {
        match rest.len() {
            1 | 2 => vec![rest],
            4 => vec![&rest[..2], &rest[2..]],
            6 => vec![&rest[..2], &rest[2..4], &rest[4..]],
            _ => return Err(Bad::Syntax),
        }
    };
    let mut secs = 0i64;
    for (i, p) in parts.iter().enumerate() {
        if i > 2 || p.is_empty() || p.len() > 2 {
            return Err(Bad::Syntax);
        }
        let v = number(p)?;
        if (i > 0 && v > 59) || (i == 0 && v > 15) {
            return Err(Bad::Range);
        }
        secs += v * [3600, 60, 1][i];
    }
    Ok(sign * secs as i32)
}

fn number(t: &str) -> std::result::Result<i64, Bad> {
    if t.is_empty() || t.len() > 9 || !t.bytes().all(|c| c.is_ascii_digit()) {
        return Err(Bad::Syntax);
    }
    t.parse().map_err(|_| Bad::Syntax)
}

/// A year written with one or two digits outside ISO form: 70–99 are 19xx, 00–69 20xx.
fn adjust_year(y: i64, long: bool) -> i64 {
    match (long, y) {
        (true, _) => y,
        (false, 0..=69) => 2000 + y,
        (false, _) => 1900 + y,
    }
}

impl Parts {
    fn token(&mut self, t: &str) -> std::result::Result<(), Bad> {
        if t.bytes().all(|c| c.is_ascii_alphabetic()) {
            return self.word(t);
        }
        if let Some(i) = t.find('t').filter(|&i| i > 0 && self.ymd.is_none()) {
            // 2024-01-31T10:00
            self.token(&t[..i])?;
            return self.token(&t[i + 1..]);
        }
        if t.starts_with('+') || t.starts_with('-') {
            // A zone offset after the time.
            return if self.time.is_some()
                && t.len() > 1
                && t[1..].bytes().all(|c| c.is_ascii_digit() || c == b':')
            {
                self.zone = Some(offset_seconds(t)?);
                Ok(())
            } else {
                Err(Bad::Syntax)
            };
        }
        if t.contains(':') {
            return self.time(t);
        }
        if self.ymd.is_some() {
            return Err(Bad::Syntax);
        }
        if let Some((y, rest)) = t.split_once('-') {
            let (m, d) = rest.split_once('-').ok_or(Bad::Syntax)?;
            let (y, m, d) = (number(y)?, number(m)?, number(d)?);
            if t.split_once('-').is_some_and(|(y, _)| y.len() < 3) {
                return Err(Bad::Range); // PostgreSQL: an ISO date needs a long year
            }
            self.ymd = Some((y, m as u32, d as u32));
            return Ok(());
        }
        if let Some((m, rest)) = t.split_once('/') {
            let (d, y) = rest.split_once('/').ok_or(Bad::Syntax)?;
            let long = y.len() > 2;
            self.ymd = Some((
                adjust_year(number(y)?, long),
                number(m)? as u32,
                number(d)? as u32,
            ));
            return Ok(());
        }
        if t.len() == 8 && self.month.is_none() {
            let v = number(t)?;
            self.ymd = Some((v / 10_000, (v / 100 % 100) as u32, (v % 100) as u32));
            return Ok(());
        }
        self.numbers.push((number(t)?, t.len() > 2));
        Ok(())
    }

    fn word(&mut self, w: &str) -> std::result::Result<(), Bad> {
        let prefix = w.get(..3).unwrap_or(w);
        if w.len() >= 3 && self.month.is_none() && self.ymd.is_none() {
            if let Some(i) = MONTHS.iter().position(|m| *m == prefix) {
                self.month = Some(i as u32 + 1);
                return Ok(());
            }
        }
        if w.len() >= 3 && self.ymd.is_none() && self.month.is_none() && WEEKDAYS.contains(&prefix)
        {
            return Ok(());
        }
        match w {
            "am" | "a" if self.time.is_some() => self.meridiem = Some(false),
            "pm" | "p" if self.time.is_some() => self.meridiem = Some(true),
            "ad" => {}
            "bc" => return Err(Bad::Unsupported("a year BC")),
            z if self.time.is_some() || self.ymd.is_some() => {
                let (_, hours) = ZONES.iter().find(|(n, _)| *n == z).ok_or(Bad::Syntax)?;
                self.zone = Some(hours * 3600);
            }
            _ => return Err(Bad::Syntax),
        }
        Ok(())
    }

    fn time(&mut self, t: &str) -> std::result::Result<(), Bad> {
        if self.time.is_some() {
            return Err(Bad::Syntax);
        }
        // A zone glued to the time: 10:00:00+05, 10:00:00-08:00, 10:00:00z.
        let end = t[1..].find(['+', '-', 'z']).map_or(t.len(), |i| i + 1);
        let (clock, zone) = t.split_at(end);
        if zone == "z" {
            self.zone = Some(0);
        } else if !zone.is_empty() {
            if !zone[1..].bytes().all(|c| c.is_ascii_digit() || c == b':') {
                return Err(Bad::Syntax);
            }
            self.zone = Some(offset_seconds(zone)?);
        }
        let mut fields = clock.split(':');
        let h = number(fields.next().ok_or(Bad::Syntax)?)?;
        let m = number(fields.next().ok_or(Bad::Syntax)?)?;
        let (s, frac) = match fields.next() {
            None => (0, 0),
            Some(sec) => {
                let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
                let frac = if frac.is_empty() {
                    0
                } else {
                    if !frac.bytes().all(|c| c.is_ascii_digit()) {
                        return Err(Bad::Syntax);
                    }
                    // PostgreSQL: rint(fraction * 10^6), half to even.
                    let f: f64 = format!("0.{frac}").parse().map_err(|_| Bad::Syntax)?;
                    (f * 1e6).round_ties_even() as i64
                };
                (number(whole)?, frac)
            }
        };
        if fields.next().is_some() {
            return Err(Bad::Syntax);
        }
        self.time = Some((h as u32, m as u32, s as u32, frac));
        Ok(())
    }

    fn finish(self) -> std::result::Result<(NaiveDate, i64, Option<i32>), Bad> {
        let (y, m, d) = match (self.ymd, self.month) {
            (Some(ymd), None) if self.numbers.is_empty() => ymd,
            (None, Some(month)) => match self.numbers.as_slice() {
                // The longer number is the year; two short ones are day, then year.
                [(a, false), (b, true)] | [(b, true), (a, false)] => (*b, month, *a as u32),
                [(a, false), (b, false)] => (adjust_year(*b, false), month, *a as u32),
                _ => return Err(Bad::Syntax),
            },
            _ => return Err(Bad::Syntax),
        };
        let date = i32::try_from(y)
            .ok()
            .filter(|y| *y >= 1)
            .and_then(|y| NaiveDate::from_ymd_opt(y, m, d))
            .ok_or(Bad::Range)?;
        let (mut h, mi, s, frac) = self.time.unwrap_or((0, 0, 0, 0));
        match self.meridiem {
            Some(_) if !(1..=12).contains(&h) => return Err(Bad::Range),
            Some(pm) => h = h % 12 + if pm { 12 } else { 0 },
            None => {}
        }
        let midnight_24 = h == 24 && mi == 0 && s == 0 && frac == 0;
        if (h > 23 && !midnight_24) || mi > 59 || s > 60 || frac >= 1_000_000 {
            return Err(Bad::Range);
        }
        let micros = ((i64::from(h) * 60 + i64::from(mi)) * 60 + i64::from(s)) * 1_000_000 + frac;
        // 24:00:00 and a leap second end on the next day; the date is moved on.
        if micros >= MICROS_PER_DAY {
            let next = date.succ_opt().ok_or(Bad::Range)?;
            return Ok((next, micros - MICROS_PER_DAY, self.zone));
        }
        Ok((date, micros, self.zone))
    }
}

/// The timestamps in `strings`, in `unit`.
pub fn strings_to_timestamptz(strings: &dyn Array, unit: TimeUnit, zone: &Tz) -> Result<ArrayRef> {
    let strings = strings
        .as_string_opt::<i32>()
        .ok_or_else(|| PgError::new(SqlState::InternalError, "timestamptz input: not utf8"))?;
    let micros = strings
        .iter()
        .map(|v| v.map(|s| parse_timestamptz(s, zone)).transpose())
        .collect::<Result<Vec<Option<i64>>>>()?;
    let out = timestamps_in_unit(micros, unit);
    datafusion::arrow::compute::cast(
        &out,
        &DataType::Timestamp(unit, Some(duet_common::types::UTC.into())),
    )
    .map_err(from_arrow)
}

/// The timestamps in `strings`, in `unit`.
pub fn strings_to_timestamps(strings: &dyn Array, unit: TimeUnit) -> Result<ArrayRef> {
    let strings = strings
        .as_string_opt::<i32>()
        .ok_or_else(|| PgError::new(SqlState::InternalError, "timestamp input: not utf8"))?;
    let micros = strings
        .iter()
        .map(|v| v.map(parse_timestamp).transpose())
        .collect::<Result<Vec<Option<i64>>>>()?;
    Ok(timestamps_in_unit(micros, unit))
}

fn timestamps_in_unit(micros: Vec<Option<i64>>, unit: TimeUnit) -> ArrayRef {
    match unit {
        TimeUnit::Second => Arc::new(PrimitiveArray::<TimestampSecondType>::from_iter(
            micros
                .into_iter()
                .map(|v| v.map(|m| m.div_euclid(1_000_000))),
        )),
        TimeUnit::Millisecond => Arc::new(PrimitiveArray::<TimestampMillisecondType>::from_iter(
            micros.into_iter().map(|v| v.map(|m| m.div_euclid(1_000))),
        )),
        TimeUnit::Microsecond => Arc::new(PrimitiveArray::<TimestampMicrosecondType>::from(micros)),
        TimeUnit::Nanosecond => Arc::new(PrimitiveArray::<TimestampNanosecondType>::from_iter(
            micros
                .into_iter()
                .map(|v| v.and_then(|m| m.checked_mul(1_000))),
        )),
    }
}

/// The dates in `strings`.
pub fn strings_to_dates(strings: &dyn Array) -> Result<ArrayRef> {
    let strings = strings
        .as_string_opt::<i32>()
        .ok_or_else(|| PgError::new(SqlState::InternalError, "date input: not utf8"))?;
    let days = strings
        .iter()
        .map(|v| v.map(parse_date).transpose())
        .collect::<Result<Vec<Option<i32>>>>()?;
    Ok(Arc::new(Date32Array::from(days)))
}

/// `duet_datetime_in(text)`: a cast of text to `date`, `timestamp`, `time` or `interval`
/// (the type it was planned with), through PostgreSQL's input syntax.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateTimeInput {
    signature: Signature,
    target: DataType,
    /// The session's `TimeZone`, for a `timestamptz` written without a zone.
    zone: String,
}

impl DateTimeInput {
    pub fn new(target: DataType, zone: String) -> Self {
        Self {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
            target,
            zone,
        }
    }
}

impl ScalarUDFImpl for DateTimeInput {
    fn name(&self) -> &str {
        "duet_datetime_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(self.target.clone())
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "duet_datetime_in takes one argument".into(),
            ));
        };
        on_strings(arg, args.number_rows, |strings| match &self.target {
            DataType::Date32 => strings_to_dates(strings),
            DataType::Time64(unit) => strings_to_times(strings, *unit),
            DataType::Interval(IntervalUnit::MonthDayNano) => strings_to_intervals(strings),
            DataType::Timestamp(unit, None) => strings_to_timestamps(strings, *unit),
            DataType::Timestamp(unit, Some(tz)) => {
                let zone = zone_of(&self.zone).unwrap_or_else(crate::types::utc);
                strings_to_timestamptz(strings, *unit, &zone).and_then(|a| {
                    datafusion::arrow::compute::cast(
                        &a,
                        &DataType::Timestamp(*unit, Some(tz.clone())),
                    )
                    .map_err(from_arrow)
                })
            }
            other => Err(PgError::new(
                SqlState::InternalError,
                format!("duet_datetime_in to {other}"),
            )),
        })
    }
}

/// Applies `convert` to a text argument of a scalar function (a scalar stays a scalar);
/// its error reaches the client with its SQLSTATE.
pub(crate) fn on_strings(
    arg: &ColumnarValue,
    rows: usize,
    convert: impl FnOnce(&dyn Array) -> Result<ArrayRef>,
) -> datafusion::common::Result<ColumnarValue> {
    let scalar = matches!(arg, ColumnarValue::Scalar(_));
    let strings = arg.to_array(if scalar { 1 } else { rows })?;
    let out = convert(strings.as_ref())
        .map_err(|e| DataFusionError::External(Box::new(PgErrorBox(e))))?;
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
    } else {
        ColumnarValue::Array(out)
    })
}

/// Replaces each cast of text (`Utf8`) for which `make(target type, session zone)` gives a
/// function with a call of that function on the text, keeping output names. After type
/// coercion (casts it inserted are replaced too).
pub(crate) fn replace_text_casts(
    plan: LogicalPlan,
    config: &ConfigOptions,
    make: impl Fn(&DataType, &str) -> Option<ScalarUDF>,
) -> datafusion::common::Result<LogicalPlan> {
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    let zone = config
        .execution
        .time_zone
        .clone()
        .unwrap_or_else(|| "UTC".into());
    plan.transform_up_with_subqueries(|node| {
        let schema = merge_schema(&node.inputs());
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let name = names.save(&e);
            e.transform_up(|e| {
                let Expr::Cast(Cast { expr, field }) = &e else {
                    return Ok(Transformed::no(e));
                };
                if !expr.get_type(&schema).is_ok_and(|t| t == DataType::Utf8) {
                    return Ok(Transformed::no(e));
                }
                let Some(udf) = make(field.data_type(), &zone) else {
                    return Ok(Transformed::no(e));
                };
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(Arc::new(udf), vec![(**expr).clone()]),
                )))
            })
            .map(|t| t.update_data(|e| name.restore(e)))
        })
    })
    .map(|t| t.data)
}

/// Casts of text to `date`, `timestamp`, `time` and `interval` (written, or inserted by type
/// coercion as in `tscol > '2024-01-31 10:00'`) go through [`DateTimeInput`], casts to
/// floats through `types::FloatInput`. After type
/// coercion; the result type is the cast's.
#[derive(Debug, Default)]
pub struct DateTimeInputCasts;

impl AnalyzerRule for DateTimeInputCasts {
    fn analyze(
        &self,
        plan: LogicalPlan,
        config: &ConfigOptions,
    ) -> datafusion::common::Result<LogicalPlan> {
        replace_text_casts(plan, config, |target, zone| {
            if matches!(target, DataType::Float32 | DataType::Float64) {
                return Some(ScalarUDF::new_from_impl(crate::types::FloatInput::new(
                    target,
                )));
            }
            matches!(
                target,
                DataType::Date32
                    | DataType::Timestamp(..)
                    | DataType::Time64(_)
                    | DataType::Interval(IntervalUnit::MonthDayNano)
            )
            .then(|| ScalarUDF::new_from_impl(DateTimeInput::new(target.clone(), zone.to_string())))
        })
    }

    fn name(&self) -> &str {
        "duet_datetime_input_casts"
    }
}

/// `date ± interval` is a `timestamp` in PostgreSQL (`DATE '2024-01-31' + INTERVAL '1 day'`
/// is `2024-02-01 00:00:00`); DataFusion kept a date, dropping any time of day. The date is
/// cast to a timestamp first. Also an interval compared with text or in a list of text (the
/// text is read as an interval). Before type coercion.
#[derive(Debug, Default)]
pub struct DateIntervalArithmetic;

impl AnalyzerRule for DateIntervalArithmetic {
    fn analyze(
        &self,
        plan: LogicalPlan,
        _config: &ConfigOptions,
    ) -> datafusion::common::Result<LogicalPlan> {
        use datafusion::logical_expr::{BinaryExpr, Operator};
        crate::pgsemantics::retype_expressions(plan, |e, schema| {
            // An interval IN a list of text reads the text as intervals.
            if let Expr::InList(l) = &e {
                if !matches!(l.expr.get_type(schema), Ok(DataType::Interval(_))) {
                    return Ok(Transformed::no(e));
                }
                let list = l
                    .list
                    .iter()
                    .map(|x| match x.get_type(schema) {
                        Ok(DataType::Utf8 | DataType::Utf8View) => Expr::Cast(Cast::new(
                            Box::new(x.clone()),
                            DataType::Interval(IntervalUnit::MonthDayNano),
                        )),
                        _ => x.clone(),
                    })
                    .collect();
                return Ok(Transformed::yes(Expr::InList(
                    datafusion::logical_expr::expr::InList::new(l.expr.clone(), list, l.negated),
                )));
            }
            let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
                return Ok(Transformed::no(e));
            };
            let (Ok(lt), Ok(rt)) = (left.get_type(schema), right.get_type(schema)) else {
                return Ok(Transformed::no(e));
            };
            let interval = |t: &DataType| matches!(t, DataType::Interval(_));
            let timestamp = |x: &Expr| {
                Box::new(Expr::Cast(Cast::new(
                    Box::new(x.clone()),
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                )))
            };
            // An interval compared with text reads the text as an interval (DataFusion
            // finds no common type).
            let text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View);
            let as_interval = |x: &Expr| {
                Box::new(Expr::Cast(Cast::new(
                    Box::new(x.clone()),
                    DataType::Interval(IntervalUnit::MonthDayNano),
                )))
            };
            if crate::pgsemantics::is_comparison(op)
                || matches!(op, Operator::IsDistinctFrom | Operator::IsNotDistinctFrom)
            {
                let (left, right) = if interval(&lt) && text(&rt) {
                    (left.clone(), as_interval(right))
                } else if text(&lt) && interval(&rt) {
                    (as_interval(left), right.clone())
                } else {
                    return Ok(Transformed::no(e));
                };
                return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                    left, *op, right,
                ))));
            }
            let (left, right) = match op {
                Operator::Plus | Operator::Minus if lt == DataType::Date32 && interval(&rt) => {
                    (timestamp(left), right.clone())
                }
                Operator::Plus if interval(&lt) && rt == DataType::Date32 => {
                    (left.clone(), timestamp(right))
                }
                _ => return Ok(Transformed::no(e)),
            };
            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                left, *op, right,
            ))))
        })
    }

    fn name(&self) -> &str {
        "duet_date_interval_arithmetic"
    }
}

/// Plans an interval times or divided by a number (an interval that is not a literal: the
/// statement rewrite takes those) as `duet_interval_mul`/`duet_interval_div`: DataFusion
/// finds no type for them.
#[derive(Debug)]
pub struct IntervalPlanner;

impl datafusion::logical_expr::planner::ExprPlanner for IntervalPlanner {
    fn plan_binary_op(
        &self,
        expr: datafusion::logical_expr::planner::RawBinaryExpr,
        schema: &datafusion::common::DFSchema,
    ) -> datafusion::common::Result<
        datafusion::logical_expr::planner::PlannerResult<
            datafusion::logical_expr::planner::RawBinaryExpr,
        >,
    > {
        use datafusion::logical_expr::planner::PlannerResult;
        use sqlparser::ast::BinaryOperator;
        let (l, r) = (
            is_interval(&expr.left, schema),
            is_interval(&expr.right, schema),
        );
        let (udf, i, n) = match expr.op {
            BinaryOperator::Multiply if l && !r => (
                crate::pgsemantics::IntervalScale::default(),
                expr.left,
                expr.right,
            ),
            BinaryOperator::Multiply if r && !l => (
                crate::pgsemantics::IntervalScale::default(),
                expr.right,
                expr.left,
            ),
            BinaryOperator::Divide if l && !r => (
                crate::pgsemantics::IntervalScale::divide(),
                expr.left,
                expr.right,
            ),
            _ => return Ok(PlannerResult::Original(expr)),
        };
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(udf)), vec![i, n]),
        )))
    }
}

/// PostgreSQL orders intervals by their length with a month as 30 days and a day as 24
/// hours (`INTERVAL '1 month' = INTERVAL '30 days'`, `< INTERVAL '40 days'`); Arrow compares
/// their fields in turn (months, then days, then nanoseconds). After type coercion, interval
/// comparisons (IS DISTINCT FROM, IN lists, BETWEEN and `nullif` too) compare [`IntervalSpan`]s,
/// and ORDER BY of an interval sorts by it, as do `min` and `max` (the first value by
/// length). What would group intervals by their fields (GROUP BY, DISTINCT, UNION, an
/// aggregate's DISTINCT) or take min/max over a window of them is refused (0A000).
#[derive(Debug, Default)]
pub struct IntervalOrdering;

fn is_interval(e: &Expr, schema: &datafusion::common::DFSchema) -> bool {
    matches!(e.get_type(schema), Ok(DataType::Interval(_)))
}

/// Whether a function's first argument is an interval.
fn first_is_interval(args: &[Expr], schema: &datafusion::common::DFSchema) -> bool {
    args.first().is_some_and(|a| is_interval(a, schema))
}

fn span(e: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::new_from_impl(IntervalSpan::default())),
        vec![e],
    ))
}

impl AnalyzerRule for IntervalOrdering {
    fn analyze(
        &self,
        plan: LogicalPlan,
        _config: &ConfigOptions,
    ) -> datafusion::common::Result<LogicalPlan> {
        use datafusion::logical_expr::{Between, BinaryExpr, Operator};
        // min and max would take Arrow's field order, not the length; grouping and DISTINCT
        // would keep `1 mon` and `30 days` apart, which PostgreSQL finds equal.
        let refuse = |what: String| {
            Err(DataFusionError::External(Box::new(PgErrorBox(
                PgError::unsupported(what),
            ))))
        };
        plan.apply_with_subqueries(|node| {
            use datafusion::common::tree_node::TreeNodeRecursion;
            use datafusion::logical_expr::Distinct;
            match node {
                LogicalPlan::Aggregate(agg) => {
                    let schema = agg.input.schema();
                    if agg.group_expr.iter().any(|g| is_interval(g, schema)) {
                        return refuse("GROUP BY of an interval".into());
                    }
                    for e in &agg.aggr_expr {
                        e.apply(|e| {
                            if let Expr::AggregateFunction(f) = e {
                                let name = f.func.name();
                                let over_interval = first_is_interval(&f.params.args, schema);
                                if over_interval && f.params.distinct {
                                    return refuse(format!("{name}(DISTINCT) of an interval"));
                                }
                            }
                            Ok(TreeNodeRecursion::Continue)
                        })?;
                    }
                }
                LogicalPlan::Window(w) => {
                    let schema = w.input.schema();
                    for e in &w.window_expr {
                        e.apply(|e| {
                            if let Expr::WindowFunction(f) = e {
                                let name = f.fun.name();
                                let over_interval = first_is_interval(&f.params.args, schema);
                                if over_interval && matches!(name, "min" | "max") {
                                    return refuse(format!(
                                        "{name}() of an interval over a window"
                                    ));
                                }
                            }
                            Ok(TreeNodeRecursion::Continue)
                        })?;
                    }
                }
                LogicalPlan::Distinct(Distinct::All(input))
                    if input
                        .schema()
                        .fields()
                        .iter()
                        .any(|f| matches!(f.data_type(), DataType::Interval(_))) =>
                {
                    return refuse("DISTINCT or UNION over an interval".into());
                }
                LogicalPlan::Distinct(Distinct::On(on))
                    if on.on_expr.iter().any(|e| is_interval(e, on.input.schema())) =>
                {
                    return refuse("DISTINCT ON an interval".into());
                }
                _ => {}
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let plan = plan
            .transform_up_with_subqueries(|node| {
                let LogicalPlan::Sort(mut sort) = node else {
                    return Ok(Transformed::no(node));
                };
                let schema = sort.input.schema().clone();
                let mut changed = false;
                for s in &mut sort.expr {
                    if is_interval(&s.expr, &schema) {
                        s.expr = span(s.expr.clone());
                        changed = true;
                    }
                }
                Ok(if changed {
                    Transformed::yes(LogicalPlan::Sort(sort))
                } else {
                    Transformed::no(LogicalPlan::Sort(sort))
                })
            })?
            .data;
        crate::pgsemantics::retype_expressions(plan, |e, schema| match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if (crate::pgsemantics::is_comparison(&op)
                    || matches!(op, Operator::IsDistinctFrom | Operator::IsNotDistinctFrom))
                    && is_interval(&left, schema)
                    && is_interval(&right, schema) =>
            {
                Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(span(*left)),
                    op,
                    Box::new(span(*right)),
                ))))
            }
            Expr::InList(l) if is_interval(&l.expr, schema) => Ok(Transformed::yes(Expr::InList(
                datafusion::logical_expr::expr::InList::new(
                    Box::new(span(*l.expr)),
                    l.list.into_iter().map(span).collect(),
                    l.negated,
                ),
            ))),
            Expr::Between(b) if is_interval(&b.expr, schema) => {
                Ok(Transformed::yes(Expr::Between(Between::new(
                    Box::new(span(*b.expr)),
                    b.negated,
                    Box::new(span(*b.low)),
                    Box::new(span(*b.high)),
                ))))
            }
            // `min`/`max`: the first value by length (NULLs last, so only all-NULL is NULL).
            Expr::AggregateFunction(f)
                if matches!(f.func.name(), "min" | "max")
                    && f.params.args.len() == 1
                    && is_interval(&f.params.args[0], schema) =>
            {
                let arg = f.params.args[0].clone();
                let ascending = f.func.name() == "min";
                Ok(Transformed::yes(Expr::AggregateFunction(
                    datafusion::logical_expr::expr::AggregateFunction::new_udf(
                        datafusion::functions_aggregate::first_last::first_value_udaf(),
                        vec![arg.clone()],
                        false,
                        f.params.filter.clone(),
                        vec![datafusion::logical_expr::SortExpr::new(
                            span(arg),
                            ascending,
                            false,
                        )],
                        None,
                    ),
                )))
            }
            // `nullif(a, b)` is NULL where the two are equal, by length.
            Expr::ScalarFunction(f)
                if f.func.name() == "nullif"
                    && f.args.len() == 2
                    && f.args.iter().all(|a| is_interval(a, schema)) =>
            {
                let (a, b) = (f.args[0].clone(), f.args[1].clone());
                Ok(Transformed::yes(Expr::Case(
                    datafusion::logical_expr::Case {
                        expr: None,
                        when_then_expr: vec![(
                            Box::new(span(a.clone()).eq(span(b))),
                            Box::new(Expr::Literal(ScalarValue::IntervalMonthDayNano(None), None)),
                        )],
                        else_expr: Some(Box::new(a)),
                    },
                )))
            }
            other => Ok(Transformed::no(other)),
        })
    }

    fn name(&self) -> &str {
        "duet_interval_ordering"
    }
}

/// `duet_interval_span(interval)`: the interval's length in nanoseconds with a month as 30
/// days (PostgreSQL's `interval_cmp_value`), as a `numeric(38,0)`, what intervals compare by.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntervalSpan {
    signature: Signature,
}

impl Default for IntervalSpan {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IntervalSpan {
    fn name(&self) -> &str {
        "duet_interval_span"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Decimal128(38, 0))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        use datafusion::arrow::array::Decimal128Array;
        use datafusion::arrow::datatypes::{IntervalMonthDayNanoType, IntervalUnit};
        let (arrays, scalar) = crate::pgsemantics::arg_arrays(&args)?;
        let intervals = datafusion::arrow::compute::cast(
            &arrays[0],
            &DataType::Interval(IntervalUnit::MonthDayNano),
        )?;
        const NANOS_PER_DAY: i128 = 86_400_000_000_000;
        let out: Decimal128Array = intervals
            .as_primitive::<IntervalMonthDayNanoType>()
            .iter()
            .map(|v| {
                v.map(|v| {
                    (i128::from(v.months) * 30 + i128::from(v.days)) * NANOS_PER_DAY
                        + i128::from(v.nanoseconds)
                })
            })
            .collect();
        crate::pgsemantics::columnar(Arc::new(out.with_precision_and_scale(38, 0)?), scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> String {
        match parse_timestamp(s) {
            Ok(m) => show(m),
            Err(e) => e.state.code().to_string(),
        }
    }

    fn show(micros: i64) -> String {
        chrono::DateTime::from_timestamp_micros(micros)
            .expect("in range")
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S%.f")
            .to_string()
    }

    /// Each input and what PostgreSQL 15 printed for `'<input>'::interval` (or its
    /// SQLSTATE), 2026-12-06.
    #[test]
    fn interval_input_follows_postgresql() {
        for (input, pg) in [
            ("1 day 02:00:00", "1 day 02:00:00"),
            (
                "1 year 2 months 3 days 04:05:06.5",
                "1 year 2 mons 3 days 04:05:06.5",
            ),
            ("-3 mons 2 days", "-3 mons +2 days"),
            ("1.5 months", "1 mon 15 days"),
            ("1.5 days", "1 day 12:00:00"),
            ("@ 3 hours ago", "-03:00:00"),
            ("100 hours", "100:00:00"),
            ("10", "00:00:10"),
            ("2 weeks", "14 days"),
            ("1 day -01:30", "1 day -01:30:00"),
            ("0", "00:00:00"),
            ("abc", "22007"),
            ("1 fortnight", "22007"),
        ] {
            let got = match parse_interval(input) {
                Ok((m, d, us)) => duet_wire::encode::pg_interval_text(m, d, us),
                Err(e) => e.state.code().to_string(),
            };
            assert_eq!(got, pg, "{input}");
        }
        for (input, pg) in [
            ("12:30", "12:30:00"),
            ("1:02 pm", "13:02:00"),
            ("12:00 am", "00:00:00"),
            ("24:00", "24:00:00"),
            ("23:59:59.9999995", "24:00:00"),
            ("24:00:01", "22008"),
            ("12:60", "22008"),
            ("noon", "22007"),
        ] {
            let got = match parse_time(input) {
                Ok(us) => duet_wire::encode::pg_time_text(us),
                Err(e) => e.state.code().to_string(),
            };
            assert_eq!(got, pg, "{input}");
        }
    }

    /// Each input and what PostgreSQL 15 answered for `'<input>'::timestamp` (or its
    /// SQLSTATE), 2026-12-06.
    #[test]
    fn timestamp_input_follows_postgresql() {
        for (input, pg) in [
            ("2024-1-5", "2024-01-05 00:00:00"),
            ("2024-01-31 10:00", "2024-01-31 10:00:00"),
            ("2024-01-31T10:00:01.1234567", "2024-01-31 10:00:01.123457"),
            ("2024-01-31 10:00:01.1234565", "2024-01-31 10:00:01.123456"),
            ("2024-01-31 24:00", "2024-02-01 00:00:00"),
            ("2024-01-31 23:59:60", "2024-02-01 00:00:00"),
            ("1/31/2024", "2024-01-31 00:00:00"),
            ("1/31/24", "2024-01-31 00:00:00"),
            ("Jan 31 2024", "2024-01-31 00:00:00"),
            ("January 31, 2024", "2024-01-31 00:00:00"),
            ("31 Jan 2024", "2024-01-31 00:00:00"),
            ("Wed Jan 31 2024", "2024-01-31 00:00:00"),
            ("20240131", "2024-01-31 00:00:00"),
            ("2024-01-31 10:00:00+05", "2024-01-31 10:00:00"),
            ("2024-01-31 10:00:00 UTC", "2024-01-31 10:00:00"),
            ("2024-01-31 10:00:00Z", "2024-01-31 10:00:00"),
            ("2024-01-31 10:00:00 PST", "2024-01-31 10:00:00"),
            ("  2024-01-31  ", "2024-01-31 00:00:00"),
            ("2024-01-31 10:00 pm", "2024-01-31 22:00:00"),
            ("2024-01-31 10:00:00.5", "2024-01-31 10:00:00.500"),
            ("epoch", "1970-01-01 00:00:00"),
            ("0099-01-01", "0099-01-01 00:00:00"),
            ("24-01-31", "22008"),
            ("2024-02-30", "22008"),
            ("2024-13-01", "22008"),
            ("2024-01-31 25:00", "22008"),
            ("abc", "22007"),
            ("2024-01-31 10", "22007"),
            ("infinity", "0A000"),
        ] {
            assert_eq!(ts(input), pg, "{input}");
        }
        assert_eq!(
            parse_date("2024-01-31 10:00").ok(),
            parse_date("2024-01-31").ok()
        );
    }
}

/// Operations that read a timestamptz as local time — `date_trunc`, `date_part`/`extract`,
/// `date_bin`, and casts to `date`, `timestamp` or text — read it in the session's
/// `TimeZone`, as PostgreSQL does: their timestamptz arguments are relabeled to that zone
/// (the same instants; a column's values are labeled UTC). Without this they read UTC
/// wall-clock time, a wrong answer in any other zone. After type coercion.
#[derive(Debug, Default)]
pub struct SessionZoneArguments;

impl AnalyzerRule for SessionZoneArguments {
    fn analyze(
        &self,
        plan: LogicalPlan,
        config: &ConfigOptions,
    ) -> datafusion::common::Result<LogicalPlan> {
        use datafusion::logical_expr::expr_rewriter::NamePreserver;
        use datafusion::logical_expr::TryCast;
        let Some(zone) = config.execution.time_zone.clone() else {
            return Ok(plan);
        };
        let zone: Arc<str> = zone.into();
        plan.transform_up_with_subqueries(|node| {
            let schema = merge_schema(&node.inputs());
            let names = NamePreserver::new(&node);
            // `e` in the session's zone, if it is a timestamptz in another.
            let in_zone = |e: Expr| -> Expr {
                match e.get_type(&schema) {
                    Ok(DataType::Timestamp(unit, Some(tz))) if *tz != *zone => Expr::Cast(
                        Cast::new(Box::new(e), DataType::Timestamp(unit, Some(zone.clone()))),
                    ),
                    _ => e,
                }
            };
            node.map_expressions(|e| {
                let name = names.save(&e);
                e.transform_up(|e| {
                    Ok(match e {
                        Expr::ScalarFunction(mut f)
                            if matches!(
                                f.func.name(),
                                "date_trunc" | "date_part" | "datepart" | "date_bin" | "extract"
                            ) =>
                        {
                            f.args = f.args.into_iter().map(&in_zone).collect();
                            Transformed::yes(Expr::ScalarFunction(f))
                        }
                        // timestamptz → timestamp: the local time (Arrow's cast keeps
                        // the UTC wall clock).
                        Expr::Cast(Cast { expr, field })
                            if matches!(field.data_type(), DataType::Timestamp(_, None))
                                && matches!(
                                    expr.get_type(&schema),
                                    Ok(DataType::Timestamp(_, Some(_)))
                                ) =>
                        {
                            let local = Expr::ScalarFunction(ScalarFunction::new_udf(
                                Arc::new(ScalarUDF::new_from_impl(LocalTime::default())),
                                vec![in_zone(*expr)],
                            ));
                            Transformed::yes(Expr::Cast(Cast {
                                expr: Box::new(local),
                                field,
                            }))
                        }
                        Expr::Cast(Cast { expr, field })
                            if matches!(
                                field.data_type(),
                                DataType::Date32
                                    | DataType::Date64
                                    | DataType::Utf8
                                    | DataType::Utf8View
                                    | DataType::LargeUtf8
                            ) =>
                        {
                            Transformed::yes(Expr::Cast(Cast {
                                expr: Box::new(in_zone(*expr)),
                                field,
                            }))
                        }
                        Expr::TryCast(TryCast { expr, field })
                            if matches!(
                                field.data_type(),
                                DataType::Date32 | DataType::Timestamp(_, None)
                            ) =>
                        {
                            Transformed::yes(Expr::TryCast(TryCast {
                                expr: Box::new(in_zone(*expr)),
                                field,
                            }))
                        }
                        other => Transformed::no(other),
                    })
                })
                .map(|t| t.update_data(|e| name.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_session_zone_arguments"
    }
}

/// `duet_local_time(timestamptz)`: the local date and time of each instant in its array's
/// zone, as a `timestamp` (microseconds).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LocalTime {
    signature: Signature,
}

impl Default for LocalTime {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for LocalTime {
    fn name(&self) -> &str {
        "duet_local_time"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Microsecond, None))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        use chrono::{Offset, TimeZone};
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = args.args[0].to_array(if scalar { 1 } else { args.number_rows })?;
        let DataType::Timestamp(_, Some(tz)) = input.data_type().clone() else {
            return Err(DataFusionError::Internal(format!(
                "duet_local_time of {}",
                input.data_type()
            )));
        };
        let zone: Tz = tz.parse()?;
        let micros = datafusion::arrow::compute::cast(
            &input,
            &DataType::Timestamp(TimeUnit::Microsecond, Some(tz.clone())),
        )?;
        let micros = micros.as_primitive::<TimestampMicrosecondType>();
        let out: PrimitiveArray<TimestampMicrosecondType> = micros
            .iter()
            .map(|v| {
                v.and_then(|m| {
                    let utc = chrono::DateTime::from_timestamp_micros(m)?;
                    let off = zone.offset_from_utc_datetime(&utc.naive_utc()).fix();
                    Some(m + i64::from(off.local_minus_utc()) * 1_000_000)
                })
            })
            .collect();
        let out: ArrayRef = Arc::new(out);
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

/// Window functions ordered by a time or an interval, which DataFusion's type coercion
/// refuses in a RANGE frame ("Cannot run range queries on datatype", XX000; the default
/// frame of an ordered window is `RANGE UNBOUNDED PRECEDING`). Before type coercion:
/// - an interval key orders, and an interval partitions, by its [`IntervalSpan`], as
///   PostgreSQL compares intervals (`1 mon` and `30 days` are one partition and peers);
/// - a RANGE frame over a time key whose bounds have no offsets becomes the GROUPS frame
///   with the same bounds: both end at the current row's peers, so they are the same rows.
#[derive(Debug, Default)]
pub struct WindowOrderKeys;

impl AnalyzerRule for WindowOrderKeys {
    fn analyze(
        &self,
        plan: LogicalPlan,
        _config: &ConfigOptions,
    ) -> datafusion::common::Result<LogicalPlan> {
        use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits};
        let no_offset = |b: &WindowFrameBound| match b {
            WindowFrameBound::CurrentRow => true,
            WindowFrameBound::Preceding(v) | WindowFrameBound::Following(v) => v.is_null(),
        };
        plan.transform_up_with_subqueries(|node| {
            if !matches!(node, LogicalPlan::Window(_)) {
                return Ok(Transformed::no(node));
            }
            crate::pgsemantics::retype_node(node, &|e, schema| {
                let Expr::WindowFunction(mut wf) = e else {
                    return Ok(Transformed::no(e));
                };
                let mut changed = false;
                let mut time_key = false;
                for p in &mut wf.params.partition_by {
                    if matches!(p.get_type(schema), Ok(DataType::Interval(_))) {
                        *p = span(p.clone());
                        changed = true;
                    }
                }
                for s in &mut wf.params.order_by {
                    match s.expr.get_type(schema) {
                        Ok(DataType::Interval(_)) => {
                            s.expr = span(s.expr.clone());
                            changed = true;
                        }
                        Ok(DataType::Time32(_) | DataType::Time64(_)) => time_key = true,
                        _ => {}
                    }
                }
                let frame = &mut wf.params.window_frame;
                if time_key
                    && frame.units == WindowFrameUnits::Range
                    && no_offset(&frame.start_bound)
                    && no_offset(&frame.end_bound)
                {
                    frame.units = WindowFrameUnits::Groups;
                    changed = true;
                }
                Ok(Transformed::new_transformed(
                    Expr::WindowFunction(wf),
                    changed,
                ))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "duet_window_order_keys"
    }
}

/// SQL type names as DuetDB plans them: `time` is `Time64(µs)`, the type of a time column
/// (DataFusion's own is nanoseconds, so `TIME '10:00'` and a column of times were two types
/// that `coalesce`, CASE and UNION could not unite); every other name is
/// datafusion-pg-catalog's (its `oid` and `regclass` types) or DataFusion's.
#[derive(Debug, Default)]
pub struct DuetTypePlanner {
    catalog: datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner,
}

impl datafusion::logical_expr::planner::TypePlanner for DuetTypePlanner {
    fn plan_type_field(
        &self,
        sql_type: &sqlparser::ast::DataType,
    ) -> datafusion::common::Result<Option<datafusion::arrow::datatypes::FieldRef>> {
        use sqlparser::ast::{DataType as Ast, TimezoneInfo};
        // `time(p)` stays DataFusion's to refuse: its precision would be ignored.
        if let Ast::Time(None, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) = sql_type {
            return Ok(Some(Arc::new(datafusion::arrow::datatypes::Field::new(
                "",
                DataType::Time64(TimeUnit::Microsecond),
                true,
            ))));
        }
        self.catalog.plan_type_field(sql_type)
    }
}
