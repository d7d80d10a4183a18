//! Row value format, version 1:
//!
//! ```text
//! [format = 1 u8][ncols u16 LE][null bitmap, ceil(ncols/8) bytes][values of non-null columns]
//! ```
//! Fixed-width types are little-endian (bool 1 byte, integers/date/timestamp/float 8, decimal
//! 16); text and bytea are a u32 LE length and the bytes. `ncols` is the number of columns the
//! table had when the row was written: columns added later (ALTER TABLE ADD COLUMN) are absent
//! and read as the column's stored default, so adding a column rewrites nothing.
//!
//! Version 2 is version 1 followed by the display scales of the row's unconstrained
//! `numeric` values ([`Datum::Numeric`]), read from the end:
//!
//! ```text
//! [version 1 body][(column u16 LE, display scale u8) × k][k u16 LE]
//! ```
//! A row without such values is written as version 1; a version-1 value of an
//! unconstrained numeric reads as [`Datum::Decimal`] (its display scale unknown).

use crate::error::{Error, Result};
use crate::types::{Datum, SqlType};

/// Row format version of rows without display scales.
pub const ROW_FORMAT: u8 = 1;
/// Row format version of rows with a display-scale trailer.
pub const ROW_FORMAT_SCALED: u8 = 2;

/// Whether `payload` is a stored row of a known format version.
pub fn is_row(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(&ROW_FORMAT | &ROW_FORMAT_SCALED))
}

/// Encodes `row` (one datum per column).
pub fn encode_row(row: &[Datum]) -> Vec<u8> {
    let n = row.len();
    let mut out = Vec::with_capacity(3 + n.div_ceil(8) + n * 8);
    out.push(ROW_FORMAT);
    out.extend_from_slice(&(n as u16).to_le_bytes());
    push_values(&mut out, row);
    push_scales(
        &mut out,
        row.iter().enumerate().filter_map(|(c, d)| match d {
            Datum::Numeric(_, s) => Some((c, *s)),
            _ => None,
        }),
    );
    out
}

/// Appends the display-scale trailer of `scales` (column, scale) to the encoded row `out`
/// and marks it version 2; nothing when there are none.
pub fn push_scales(out: &mut Vec<u8>, scales: impl Iterator<Item = (usize, u8)>) {
    let at = out.len();
    let mut k: u16 = 0;
    for (c, s) in scales {
        out.extend_from_slice(&(c as u16).to_le_bytes());
        out.push(s);
        k += 1;
    }
    if k > 0 {
        out.extend_from_slice(&k.to_le_bytes());
        out[0] = ROW_FORMAT_SCALED;
    } else {
        out.truncate(at);
    }
}

/// The display-scale entries of a stored row (three bytes each: column u16 LE, scale);
/// empty for a version-1 row.
pub fn scale_entries(buf: &[u8]) -> Result<&[u8]> {
    if buf.first() != Some(&ROW_FORMAT_SCALED) {
        return Ok(&[]);
    }
    let k = buf
        .len()
        .checked_sub(2)
        .map(|at| u16::from_le_bytes([buf[at], buf[at + 1]]) as usize)
        .ok_or_else(|| corrupt("short scale trailer"))?;
    let end = buf.len() - 2;
    let start = end
        .checked_sub(3 * k)
        .ok_or_else(|| corrupt("short scale trailer"))?;
    Ok(&buf[start..end])
}

/// The display scale `entries` ([`scale_entries`]) give column `c`.
pub fn scale_in(entries: &[u8], c: usize) -> Option<u8> {
    entries
        .chunks_exact(3)
        .find(|e| u16::from_le_bytes([e[0], e[1]]) as usize == c)
        .map(|e| e[2])
}

/// Appends a NULL bitmap of `values` (bit `i` set: value `i` is NULL) and then the stored
/// form of each non-NULL one: the body of a row, and of an array.
fn push_values(out: &mut Vec<u8>, values: &[Datum]) {
    let bitmap_at = out.len();
    out.resize(bitmap_at + values.len().div_ceil(8), 0);
    for (i, d) in values.iter().enumerate() {
        if d.is_null() {
            out[bitmap_at + i / 8] |= 1 << (i % 8);
        } else {
            push_value(out, d);
        }
    }
}

/// Appends the stored form of the non-NULL value `d`: fixed-width values little-endian,
/// text and bytes a u32 length and the bytes, an interval its months (4), days (4) and
/// microseconds (8), an array a u32 length and then its element count (u32), a NULL bitmap
/// and the elements in this form.
pub fn push_value(out: &mut Vec<u8>, d: &Datum) {
    match d {
        Datum::Null => {}
        Datum::Bool(b) => out.push(*b as u8),
        Datum::Int(v) | Datum::Timestamp(v) => out.extend_from_slice(&v.to_le_bytes()),
        Datum::Date(v) => out.extend_from_slice(&(*v as i64).to_le_bytes()),
        Datum::Float(v) => out.extend_from_slice(&v.to_le_bytes()),
        Datum::Decimal(v) | Datum::Numeric(v, _) => out.extend_from_slice(&v.to_le_bytes()),
        Datum::Text(s) => {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Datum::Bytes(b) => {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        Datum::Interval(m, d, us) => {
            out.extend_from_slice(&m.to_le_bytes());
            out.extend_from_slice(&d.to_le_bytes());
            out.extend_from_slice(&us.to_le_bytes());
        }
        Datum::Array(items) => {
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            push_values(out, items);
            let len = (out.len() - at - 4) as u32;
            out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
    }
}

/// The value of type `ty` whose stored bytes (as [`value_at`] returns them) are `v`.
pub fn decode_value(v: &[u8], ty: &SqlType) -> Result<Datum> {
    let fixed8 = |s: &[u8]| -> [u8; 8] { s.try_into().unwrap_or([0; 8]) };
    Ok(match ty {
        SqlType::Bool => Datum::Bool(v[0] != 0),
        SqlType::Int16 | SqlType::Int32 | SqlType::Int64 | SqlType::Time => {
            Datum::Int(i64::from_le_bytes(fixed8(v)))
        }
        SqlType::Timestamp | SqlType::TimestampTz => {
            Datum::Timestamp(i64::from_le_bytes(fixed8(v)))
        }
        SqlType::Date => Datum::Date(i64::from_le_bytes(fixed8(v)) as i32),
        SqlType::Float32 | SqlType::Float64 => Datum::Float(f64::from_le_bytes(fixed8(v))),
        SqlType::Numeric { .. } => Datum::Decimal(i128::from_le_bytes(
            v.try_into().map_err(|_| corrupt("decimal"))?,
        )),
        SqlType::Bytea => Datum::Bytes(v.to_vec()),
        SqlType::Text
        | SqlType::Varchar(_)
        | SqlType::Char(_)
        | SqlType::Uuid
        | SqlType::Json
        | SqlType::Jsonb => {
            Datum::Text(String::from_utf8(v.to_vec()).map_err(|_| corrupt("utf8"))?)
        }
        SqlType::Interval => {
            if v.len() != 16 {
                return Err(corrupt("interval"));
            }
            Datum::Interval(
                i32::from_le_bytes(v[0..4].try_into().unwrap_or_default()),
                i32::from_le_bytes(v[4..8].try_into().unwrap_or_default()),
                i64::from_le_bytes(fixed8(&v[8..16])),
            )
        }
        SqlType::Array(elem) => {
            let n = v
                .get(0..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| corrupt("array header"))?;
            let mut pos = 4 + n.div_ceil(8);
            let bitmap = v.get(4..pos).ok_or_else(|| corrupt("array bitmap"))?;
            let mut items = Vec::with_capacity(n);
            for i in 0..n {
                if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                    items.push(Datum::Null);
                    continue;
                }
                let (item, next) = value_at(v, pos, elem)?;
                pos = next;
                items.push(decode_value(item, elem)?);
            }
            Datum::Array(items)
        }
    })
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("row: {what}"))
}

/// The header of a stored row: how many columns it has, its null bitmap (bit `i` set: column
/// `i` is NULL), and where its values start.
pub(crate) fn header(buf: &[u8]) -> Result<(usize, &[u8], usize)> {
    if !is_row(buf) {
        return Err(corrupt("unknown format version"));
    }
    let n = match buf.get(1..3) {
        Some(b) => u16::from_le_bytes([b[0], b[1]]) as usize,
        None => return Err(corrupt("short header")),
    };
    let start = 3 + n.div_ceil(8);
    let bitmap = buf.get(3..start).ok_or_else(|| corrupt("short bitmap"))?;
    Ok((n, bitmap, start))
}

/// The stored width of a non-NULL value of `ty`; `None`: a u32 length, then the bytes.
pub(crate) fn fixed_width(ty: &SqlType) -> Option<usize> {
    match ty {
        SqlType::Bool => Some(1),
        SqlType::Numeric { .. } | SqlType::Interval => Some(16),
        SqlType::Array(_)
        | SqlType::Text
        | SqlType::Varchar(_)
        | SqlType::Char(_)
        | SqlType::Bytea
        | SqlType::Uuid
        | SqlType::Json
        | SqlType::Jsonb => None,
        SqlType::Int16
        | SqlType::Int32
        | SqlType::Int64
        | SqlType::Float32
        | SqlType::Float64
        | SqlType::Date
        | SqlType::Timestamp
        | SqlType::TimestampTz
        | SqlType::Time => Some(8),
    }
}

/// The bytes of the non-NULL value of type `ty` at `pos` in `buf` (without a length
/// prefix), and where the next value starts.
pub(crate) fn value_at<'a>(buf: &'a [u8], pos: usize, ty: &SqlType) -> Result<(&'a [u8], usize)> {
    let (start, len) = match fixed_width(ty) {
        Some(len) => (pos, len),
        None => {
            let l = buf
                .get(pos..pos + 4)
                .ok_or_else(|| corrupt("truncated value"))?;
            (
                pos + 4,
                u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize,
            )
        }
    };
    let v = buf
        .get(start..start + len)
        .ok_or_else(|| corrupt("truncated value"))?;
    Ok((v, start + len))
}

/// Decodes a row of a table whose columns have `types`; `missing(i)` supplies the value of
/// a column the stored row predates.
pub fn decode_row(
    buf: &[u8],
    types: &[&SqlType],
    missing: &dyn Fn(usize) -> Datum,
) -> Result<Vec<Datum>> {
    let (n, bitmap, mut pos) = header(buf)?;
    let mut out = Vec::with_capacity(types.len());
    for (i, ty) in types.iter().enumerate() {
        if i >= n {
            out.push(missing(i));
            continue;
        }
        if bitmap[i / 8] & (1 << (i % 8)) != 0 {
            out.push(Datum::Null);
            continue;
        }
        let (v, next) = value_at(buf, pos, ty)?;
        pos = next;
        out.push(decode_value(v, ty)?);
    }
    for e in scale_entries(buf)?.chunks_exact(3) {
        let c = u16::from_le_bytes([e[0], e[1]]) as usize;
        if let Some(Datum::Decimal(v)) = out.get(c) {
            out[c] = Datum::Numeric(*v, e[2]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_type() {
        let types = [
            SqlType::Int32,
            SqlType::Text,
            SqlType::Bool,
            SqlType::Float64,
            SqlType::Numeric {
                precision: 10,
                scale: 2,
            },
            SqlType::Date,
            SqlType::Timestamp,
            SqlType::Bytea,
            SqlType::Time,
            SqlType::Interval,
            SqlType::Array(Box::new(SqlType::Int32)),
            SqlType::Array(Box::new(SqlType::Text)),
            SqlType::Array(Box::new(SqlType::Int64)),
            SqlType::Int16,
            SqlType::Int16,
        ];
        let row = vec![
            Datum::Int(-42),
            Datum::Text("héllo".into()),
            Datum::Bool(true),
            Datum::Float(2.5),
            Datum::Decimal(-12345),
            Datum::Date(19000),
            Datum::Timestamp(1_700_000_000_123_456),
            Datum::Bytes(vec![0, 1, 255]),
            Datum::Int(86_400_000_000),
            Datum::Interval(-3, 2, -7_200_000_000),
            Datum::Array(vec![Datum::Int(1), Datum::Null, Datum::Int(-3)]),
            Datum::Array(vec![Datum::Text("a b".into()), Datum::Text(String::new())]),
            Datum::Array(vec![]),
            Datum::Int(7),
            Datum::Null,
        ];
        let refs: Vec<&SqlType> = types.iter().collect();
        let back = decode_row(&encode_row(&row), &refs, &|_| Datum::Null).unwrap();
        assert_eq!(back, row);
    }

    #[test]
    fn display_scales_round_trip_and_version_one_rows_stay_readable() {
        let types = [
            SqlType::Int32,
            SqlType::Numeric {
                precision: 38,
                scale: 10,
            },
            SqlType::Text,
            SqlType::Numeric {
                precision: 38,
                scale: 10,
            },
        ];
        let refs: Vec<&SqlType> = types.iter().collect();
        let row = vec![
            Datum::Int(1),
            Datum::Numeric(15_000_000_000, 2),
            Datum::Text("x".into()),
            Datum::Numeric(-7, 10),
        ];
        let bytes = encode_row(&row);
        assert_eq!(bytes[0], ROW_FORMAT_SCALED);
        assert_eq!(decode_row(&bytes, &refs, &|_| Datum::Null).unwrap(), row);
        // The same values without scales: version 1, read back without them.
        let plain: Vec<Datum> = row
            .iter()
            .map(|d| match d {
                Datum::Numeric(v, _) => Datum::Decimal(*v),
                d => d.clone(),
            })
            .collect();
        let old = encode_row(&plain);
        assert_eq!(old[0], ROW_FORMAT);
        assert_eq!(&old[1..], &bytes[1..old.len()]);
        assert_eq!(decode_row(&old, &refs, &|_| Datum::Null).unwrap(), plain);
        // A NULL numeric has no entry; a truncated trailer is an error.
        let with_null = encode_row(&[Datum::Null, Datum::Numeric(5, 0)]);
        assert_eq!(scale_entries(&with_null).unwrap(), &[1, 0, 0]);
        assert!(scale_entries(&[ROW_FORMAT_SCALED, 9, 0]).is_err());
    }

    #[test]
    fn added_columns_read_their_default() {
        let old = encode_row(&[Datum::Int(1)]);
        let types = [SqlType::Int32, SqlType::Text];
        let refs: Vec<&SqlType> = types.iter().collect();
        let back = decode_row(&old, &refs, &|i| {
            if i == 1 {
                Datum::Text("dflt".into())
            } else {
                Datum::Null
            }
        })
        .unwrap();
        assert_eq!(back, vec![Datum::Int(1), Datum::Text("dflt".into())]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let types = [SqlType::Text];
        let refs: Vec<&SqlType> = types.iter().collect();
        assert!(decode_row(&[1, 1, 0, 0, 200, 0, 0, 0], &refs, &|_| Datum::Null).is_err());
        assert!(decode_row(&[9], &refs, &|_| Datum::Null).is_err());
    }
}
