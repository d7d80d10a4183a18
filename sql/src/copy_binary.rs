//! PostgreSQL's binary COPY format (`COPY … (FORMAT binary)`): the file header, tuples of
//! length-prefixed fields in each type's binary send format, the `-1` trailer. asyncpg's
//! `copy_records_to_table` and psycopg's binary copies use it.
//!
//! Input fields are decoded by the target column's type into the text the assignment casts
//! read (so a value is checked exactly as a text COPY checks it); output fields are encoded
//! from the result's Arrow arrays.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, UInt64Type,
};
use duet_common::SqlType;

use crate::error::{PgError, Result, SqlState};

/// The 11-byte signature, then the flags and header-extension length (both 0 here).
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * 86_400_000_000;

fn format_error(msg: impl Into<String>) -> PgError {
    PgError::new(SqlState::BadCopyFileFormat, msg)
}

fn binary_error(column: &str) -> PgError {
    PgError::new(
        SqlState::InvalidBinaryRepresentation,
        format!("incorrect binary data format in column \"{column}\""),
    )
}

/// What [`parse_tuples`] found at the start of the buffer.
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A tuple of `n` bytes: its fields (`None`: NULL).
    Tuple(usize, Vec<Option<std::ops::Range<usize>>>),
    /// The trailer (`n` bytes).
    End(usize),
}

/// The header's length if `buf` starts with a complete, valid one.
pub fn parse_header(buf: &[u8]) -> Result<Option<usize>> {
    if buf.len() < 19 {
        return Ok(None);
    }
    if &buf[..11] != b"PGCOPY\n\xff\r\n\0" {
        return Err(format_error("COPY file signature not recognized"));
    }
    let flags = u32::from_be_bytes([buf[11], buf[12], buf[13], buf[14]]);
    if flags & (1 << 16) != 0 {
        return Err(format_error("COPY file with OIDs is not supported"));
    }
    let ext = u32::from_be_bytes([buf[15], buf[16], buf[17], buf[18]]) as usize;
    Ok((buf.len() >= 19 + ext).then_some(19 + ext))
}

/// The tuple (or trailer) at the start of `buf`, which must have `width` fields.
pub fn parse_tuple(buf: &[u8], width: usize) -> Result<Parsed> {
    if buf.len() < 2 {
        return Ok(Parsed::Incomplete);
    }
    let count = i16::from_be_bytes([buf[0], buf[1]]);
    if count == -1 {
        return Ok(Parsed::End(2));
    }
    if count as usize != width {
        return Err(format_error(format!(
            "row field count is {count}, expected {width}"
        )));
    }
    let mut at = 2;
    let mut fields = Vec::with_capacity(width);
    for _ in 0..width {
        let Some(len) = buf.get(at..at + 4) else {
            return Ok(Parsed::Incomplete);
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        at += 4;
        if len < 0 {
            fields.push(None);
            continue;
        }
        let end = at + len as usize;
        if buf.len() < end {
            return Ok(Parsed::Incomplete);
        }
        fields.push(Some(at..end));
        at = end;
    }
    Ok(Parsed::Tuple(at, fields))
}

fn fixed<const N: usize>(b: &[u8], column: &str) -> Result<[u8; N]> {
    b.try_into().map_err(|_| binary_error(column))
}

/// A field in the binary send format of a column of type `ty`, as the text a text COPY
/// would carry for it.
pub fn field_text(b: &[u8], ty: &SqlType, column: &str) -> Result<String> {
    Ok(match ty {
        SqlType::Int16 => i16::from_be_bytes(fixed(b, column)?).to_string(),
        SqlType::Int32 => i32::from_be_bytes(fixed(b, column)?).to_string(),
        SqlType::Int64 => i64::from_be_bytes(fixed(b, column)?).to_string(),
        SqlType::Float32 => {
            let v = f32::from_be_bytes(fixed(b, column)?);
            duet_wire::encode::pg_float4_text(v)
        }
        SqlType::Float64 => {
            let v = f64::from_be_bytes(fixed(b, column)?);
            duet_wire::encode::pg_float8_text(v)
        }
        SqlType::Bool => match b {
            [0] => "f".into(),
            [1] => "t".into(),
            _ => return Err(binary_error(column)),
        },
        SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_) | SqlType::Json => {
            std::str::from_utf8(b)
                .map_err(|_| {
                    PgError::new(
                        SqlState::CharacterNotInRepertoire,
                        "invalid byte sequence for encoding \"UTF8\"",
                    )
                })?
                .to_string()
        }
        SqlType::Bytea => {
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            for byte in b {
                use std::fmt::Write;
                let _ = write!(s, "{byte:02x}");
            }
            s
        }
        SqlType::Date => {
            let days = i32::from_be_bytes(fixed(b, column)?);
            days.checked_add(PG_EPOCH_DAYS)
                .and_then(crate::datetime::date_text)
                .ok_or_else(|| PgError::unsupported("an infinite or out-of-range date"))?
        }
        SqlType::Timestamp => {
            let micros = i64::from_be_bytes(fixed(b, column)?);
            micros
                .checked_add(PG_EPOCH_MICROS)
                .and_then(crate::datetime::timestamp_text)
                .ok_or_else(|| PgError::unsupported("an infinite or out-of-range timestamp"))?
        }
        SqlType::TimestampTz => {
            let micros = i64::from_be_bytes(fixed(b, column)?);
            let text = micros
                .checked_add(PG_EPOCH_MICROS)
                .and_then(crate::datetime::timestamp_text)
                .ok_or_else(|| PgError::unsupported("an infinite or out-of-range timestamp"))?;
            // An instant: the text says it is UTC.
            format!("{text}+00")
        }
        SqlType::Numeric { .. } => numeric_text(b, column)?,
        // A uuid is its 16 bytes; jsonb a version byte (1) and the text.
        SqlType::Uuid => duet_common::types::uuid_text_of(&fixed(b, column)?),
        SqlType::Jsonb => match b.split_first() {
            Some((1, text)) => field_text(text, &SqlType::Json, column)?,
            _ => return Err(binary_error(column)),
        },
        SqlType::Time => duet_wire::encode::pg_time_text(i64::from_be_bytes(fixed(b, column)?)),
        // Microseconds (8), days (4), months (4).
        SqlType::Interval => {
            let b: [u8; 16] = fixed(b, column)?;
            duet_wire::encode::pg_interval_text(
                i32::from_be_bytes(b[12..16].try_into().unwrap_or_default()),
                i32::from_be_bytes(b[8..12].try_into().unwrap_or_default()),
                i64::from_be_bytes(b[0..8].try_into().unwrap_or_default()),
            )
        }
        SqlType::Array(elem) => array_text(b, elem, column)?,
    })
}

/// PostgreSQL's binary array (dimensions, a has-NULL flag, the element type, each
/// dimension's length and lower bound, then each element as a length and its bytes, -1 for
/// NULL) as array text, `{1,NULL,"a b"}`. One dimension, or none for an empty array.
fn array_text(b: &[u8], elem: &SqlType, column: &str) -> Result<String> {
    let int = |at: usize| -> Result<i32> {
        b.get(at..at + 4)
            .and_then(|x| x.try_into().ok())
            .map(i32::from_be_bytes)
            .ok_or_else(|| binary_error(column))
    };
    let dims = int(0)?;
    if dims == 0 {
        return Ok("{}".into());
    }
    if dims != 1 {
        return Err(PgError::unsupported(format!(
            "a {dims}-dimensional array in column \"{column}\""
        )));
    }
    let count = usize::try_from(int(12)?).map_err(|_| binary_error(column))?;
    let mut at = 20;
    let mut s = String::from("{");
    for k in 0..count {
        if k > 0 {
            s.push(',');
        }
        let len = int(at)?;
        at += 4;
        if len < 0 {
            s.push_str("NULL");
            continue;
        }
        let end = at + len as usize;
        let bytes = b.get(at..end).ok_or_else(|| binary_error(column))?;
        duet_wire::encode::push_array_element(&mut s, &field_text(bytes, elem, column)?);
        at = end;
    }
    if at != b.len() {
        return Err(binary_error(column));
    }
    s.push('}');
    Ok(s)
}

/// PostgreSQL's binary numeric as decimal text (`duet_common::numeric::binary_text`).
fn numeric_text(b: &[u8], column: &str) -> Result<String> {
    if b.len() >= 6 && b[4..6] == [0xC0, 0] {
        return Err(PgError::unsupported("numeric NaN"));
    }
    duet_common::numeric::binary_text(b).ok_or_else(|| binary_error(column))
}

/// A Decimal128 value of scale `scale` in PostgreSQL's binary numeric format.
fn numeric_binary(value: i128, scale: i8, out: &mut Vec<u8>) {
    let scale = scale.max(0) as usize;
    let digits = value.unsigned_abs().to_string();
    let (int, frac) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("", digits.as_str())
    };
    let frac = format!("{frac:0>scale$}");
    // Integer part padded on the left, fraction on the right, to whole base-10000 digits.
    let int = format!("{int:0>width$}", width = int.len().div_ceil(4) * 4);
    let frac_padded = format!("{frac:0<width$}", width = frac.len().div_ceil(4) * 4);
    let mut groups: Vec<u16> = int
        .as_bytes()
        .chunks(4)
        .chain(frac_padded.as_bytes().chunks(4))
        .map(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    let mut weight = (int.len() / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign: u16 = if value < 0 && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&((8 + 2 * groups.len()) as i32).to_be_bytes());
    out.extend_from_slice(&(groups.len() as u16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

/// Row `r` of `columns` as a binary COPY tuple.
pub fn encode_tuple(columns: &[ArrayRef], r: usize, out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(&(columns.len() as i16).to_be_bytes());
    for col in columns {
        if col.is_null(r) {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            continue;
        }
        macro_rules! be {
            ($v:expr) => {{
                let bytes = $v.to_be_bytes();
                out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(&bytes);
            }};
        }
        match col.data_type() {
            DataType::Boolean => be!(u8::from(col.as_boolean().value(r))),
            DataType::Int16 => be!(col.as_primitive::<Int16Type>().value(r)),
            DataType::Int32 => be!(col.as_primitive::<Int32Type>().value(r)),
            DataType::Int64 => be!(col.as_primitive::<Int64Type>().value(r)),
            DataType::UInt64 => be!(col.as_primitive::<UInt64Type>().value(r) as i64),
            DataType::Float32 => be!(col.as_primitive::<Float32Type>().value(r)),
            DataType::Float64 => be!(col.as_primitive::<Float64Type>().value(r)),
            DataType::Date32 => be!(col.as_primitive::<Date32Type>().value(r) - PG_EPOCH_DAYS),
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                be!(col.as_primitive::<TimestampMicrosecondType>().value(r) - PG_EPOCH_MICROS)
            }
            DataType::Decimal128(_, s) => {
                numeric_binary(col.as_primitive::<Decimal128Type>().value(r), *s, out)
            }
            DataType::Utf8 => {
                let v = col.as_string::<i32>().value(r).as_bytes();
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            DataType::Binary => {
                let v = col.as_binary::<i32>().value(r);
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            other => {
                return Err(PgError::unsupported(format!(
                    "binary COPY of a {other} column"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_arrays_read_as_array_text() {
        let mut b = Vec::new();
        for v in [1i32, 0, 25, 3, 1] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for e in [Some("a b"), None, Some("x")] {
            match e {
                Some(t) => {
                    b.extend_from_slice(&(t.len() as i32).to_be_bytes());
                    b.extend_from_slice(t.as_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        let ty = SqlType::Text;
        assert_eq!(array_text(&b, &ty, "c").unwrap(), r#"{"a b",NULL,x}"#);
        let empty = [0i32, 0, 23].map(i32::to_be_bytes).concat();
        assert_eq!(array_text(&empty, &SqlType::Int32, "c").unwrap(), "{}");
        assert!(array_text(&b[..b.len() - 1], &ty, "c").is_err());
        let two_dims = [2i32, 0, 23].map(i32::to_be_bytes).concat();
        assert_eq!(
            array_text(&two_dims, &SqlType::Int32, "c")
                .unwrap_err()
                .state,
            SqlState::FeatureNotSupported
        );
    }

    #[test]
    fn numerics_round_trip_through_the_binary_format() {
        for (v, s, text) in [
            (12345_i128, 2, "123.45"),
            (-5, 0, "-5"),
            (0, 3, "0.000"),
            (100000000, 0, "100000000"),
            (1, 6, "0.000001"),
            (-123456789012345678, 4, "-12345678901234.5678"),
        ] {
            let mut out = Vec::new();
            numeric_binary(v, s, &mut out);
            assert_eq!(numeric_text(&out[4..], "c").unwrap(), text, "{v} scale {s}");
        }
    }
}
