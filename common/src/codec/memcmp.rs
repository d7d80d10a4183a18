//! Memcomparable encoding of datums: for two values `a < b` of one column type,
//! `encode(a) < encode(b)` bytewise, so RocksDB's key order is SQL order.
//!
//! Each value starts with a flag byte: `0x00` NULL (sorts first), `0x01` a value. Integers of
//! every width, dates and timestamps are 8-byte big-endian with the sign bit flipped; floats
//! flip the sign bit (positive) or all bits (negative); decimals are the 16-byte mantissa with
//! the sign bit flipped (the column fixes the scale); strings and bytes escape `0x00` as
//! `0x00 0xFF` and end with `0x00 0x01`, which keeps both order and prefix-freedom.

use crate::error::{Error, Result};
use crate::types::{Datum, SqlType};

const NULL_FLAG: u8 = 0x00;
const VALUE_FLAG: u8 = 0x01;

/// Appends the memcomparable encoding of `d` to `out`.
pub fn encode_datum(out: &mut Vec<u8>, d: &Datum) {
    match d {
        Datum::Null => out.push(NULL_FLAG),
        Datum::Bool(b) => {
            out.push(VALUE_FLAG);
            out.push(*b as u8);
        }
        Datum::Int(v) | Datum::Timestamp(v) => {
            out.push(VALUE_FLAG);
            out.extend_from_slice(&((*v as u64) ^ (1 << 63)).to_be_bytes());
        }
        Datum::Date(v) => {
            out.push(VALUE_FLAG);
            out.extend_from_slice(&((*v as i64 as u64) ^ (1 << 63)).to_be_bytes());
        }
        Datum::Float(f) => {
            out.push(VALUE_FLAG);
            // -0.0 and 0.0 are equal in SQL; all NaNs are one value that sorts last.
            let f = if *f == 0.0 {
                0.0
            } else if f.is_nan() {
                f64::NAN
            } else {
                *f
            };
            let bits = f.to_bits();
            let enc = if bits >> 63 == 0 {
                bits ^ (1 << 63)
            } else {
                !bits
            };
            out.extend_from_slice(&enc.to_be_bytes());
        }
        Datum::Decimal(m) | Datum::Numeric(m, _) => {
            out.push(VALUE_FLAG);
            out.extend_from_slice(&((*m as u128) ^ (1 << 127)).to_be_bytes());
        }
        Datum::Text(s) => {
            out.push(VALUE_FLAG);
            encode_bytes(out, s.as_bytes());
        }
        Datum::Bytes(b) => {
            out.push(VALUE_FLAG);
            encode_bytes(out, b);
        }
        // Not key types (`SqlType::is_key_type`: DDL refuses them in keys and indexes), so
        // never part of a stored key; a deterministic form all the same.
        Datum::Interval(m, d, us) => {
            out.push(VALUE_FLAG);
            out.extend_from_slice(&m.to_be_bytes());
            out.extend_from_slice(&d.to_be_bytes());
            out.extend_from_slice(&us.to_be_bytes());
        }
        Datum::Array(items) => {
            out.push(VALUE_FLAG);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for item in items {
                encode_datum(out, item);
            }
        }
    }
}

fn encode_bytes(out: &mut Vec<u8>, b: &[u8]) {
    for &x in b {
        out.push(x);
        if x == 0 {
            out.push(0xFF);
        }
    }
    out.push(0x00);
    out.push(0x01);
}

/// Encodes a tuple of datums (a primary key or an index key).
pub fn encode_tuple(datums: &[Datum]) -> Vec<u8> {
    let mut out = Vec::with_capacity(datums.len() * 9);
    for d in datums {
        encode_datum(&mut out, d);
    }
    out
}

/// Decodes one datum of type `ty` from the front of `buf`, returning it and the rest.
pub fn decode_datum<'a>(buf: &'a [u8], ty: &SqlType) -> Result<(Datum, &'a [u8])> {
    let corrupt = || Error::Corrupt("truncated memcomparable datum".into());
    let (&flag, rest) = buf.split_first().ok_or_else(corrupt)?;
    if flag == NULL_FLAG {
        return Ok((Datum::Null, rest));
    }
    let fixed8 = |rest: &'a [u8]| -> Result<(u64, &'a [u8])> {
        let (b, r) = rest.split_at_checked(8).ok_or_else(corrupt)?;
        Ok((u64::from_be_bytes(b.try_into().map_err(|_| corrupt())?), r))
    };
    Ok(match ty {
        SqlType::Bool => {
            let (&b, r) = rest.split_first().ok_or_else(corrupt)?;
            (Datum::Bool(b != 0), r)
        }
        SqlType::Interval | SqlType::Array(_) => {
            return Err(Error::Corrupt(format!(
                "{} is not a key type",
                ty.pg_name()
            )))
        }
        SqlType::Int16 | SqlType::Int32 | SqlType::Int64 | SqlType::Time => {
            let (u, r) = fixed8(rest)?;
            (Datum::Int((u ^ (1 << 63)) as i64), r)
        }
        SqlType::Timestamp | SqlType::TimestampTz => {
            let (u, r) = fixed8(rest)?;
            (Datum::Timestamp((u ^ (1 << 63)) as i64), r)
        }
        SqlType::Date => {
            let (u, r) = fixed8(rest)?;
            (Datum::Date(((u ^ (1 << 63)) as i64) as i32), r)
        }
        SqlType::Float32 | SqlType::Float64 => {
            let (u, r) = fixed8(rest)?;
            let bits = if u >> 63 == 1 { u ^ (1 << 63) } else { !u };
            (Datum::Float(f64::from_bits(bits)), r)
        }
        SqlType::Numeric { .. } => {
            let (b, r) = rest.split_at_checked(16).ok_or_else(corrupt)?;
            let u = u128::from_be_bytes(b.try_into().map_err(|_| corrupt())?);
            (Datum::Decimal((u ^ (1 << 127)) as i128), r)
        }
        SqlType::Text
        | SqlType::Varchar(_)
        | SqlType::Char(_)
        | SqlType::Bytea
        | SqlType::Uuid
        | SqlType::Json
        | SqlType::Jsonb => {
            let mut bytes = Vec::new();
            let mut i = 0;
            loop {
                let x = *rest.get(i).ok_or_else(corrupt)?;
                if x == 0 {
                    match rest.get(i + 1) {
                        Some(0xFF) => {
                            bytes.push(0);
                            i += 2;
                        }
                        Some(0x01) => {
                            i += 2;
                            break;
                        }
                        _ => return Err(corrupt()),
                    }
                } else {
                    bytes.push(x);
                    i += 1;
                }
            }
            let d = if matches!(ty, SqlType::Bytea) {
                Datum::Bytes(bytes)
            } else {
                Datum::Text(String::from_utf8(bytes).map_err(|_| corrupt())?)
            };
            (d, &rest[i..])
        }
    })
}

/// Decodes a whole tuple of the given types.
pub fn decode_tuple(mut buf: &[u8], types: &[&SqlType]) -> Result<Vec<Datum>> {
    let mut out = Vec::with_capacity(types.len());
    for ty in types {
        let (d, rest) = decode_datum(buf, ty)?;
        out.push(d);
        buf = rest;
    }
    Ok(out)
}

/// Length in bytes of the first encoded datum in `buf` (used to split composite keys).
pub fn datum_len(buf: &[u8], ty: &SqlType) -> Result<usize> {
    let (_, rest) = decode_datum(buf, ty)?;
    Ok(buf.len() - rest.len())
}

/// The smallest byte string greater than every string that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xFF: no upper bound short of infinity; callers use an all-0xFF sentinel.
    vec![0xFF; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_order(ty: SqlType, values: Vec<Datum>) {
        // `values` is given in SQL order; the encodings must sort the same way.
        let enc: Vec<Vec<u8>> = values
            .iter()
            .map(|d| encode_tuple(std::slice::from_ref(d)))
            .collect();
        for w in enc.windows(2) {
            assert!(w[0] < w[1], "{ty:?}: {:?} !< {:?}", w[0], w[1]);
        }
        for (d, e) in values.iter().zip(&enc) {
            let back = decode_tuple(e, &[&ty]).unwrap();
            assert_eq!(&back[0], d);
        }
    }

    #[test]
    fn integers_sort_with_negatives_and_null_first() {
        check_order(
            SqlType::Int64,
            vec![
                Datum::Null,
                Datum::Int(i64::MIN),
                Datum::Int(-5),
                Datum::Int(-1),
                Datum::Int(0),
                Datum::Int(7),
                Datum::Int(i64::MAX),
            ],
        );
    }

    #[test]
    fn floats_sort() {
        check_order(
            SqlType::Float64,
            vec![
                Datum::Float(f64::NEG_INFINITY),
                Datum::Float(-2.5),
                Datum::Float(-1e-300),
                Datum::Float(0.0),
                Datum::Float(1e-300),
                Datum::Float(3.0),
                Datum::Float(f64::INFINITY),
            ],
        );
    }

    #[test]
    fn strings_sort_and_are_prefix_free() {
        check_order(
            SqlType::Text,
            vec![
                Datum::Text("".into()),
                Datum::Text("a".into()),
                Datum::Text("a\0".into()),
                Datum::Text("a\0b".into()),
                Datum::Text("ab".into()),
                Datum::Text("b".into()),
            ],
        );
        // A composite key (text, int) keeps order on the first column.
        let k1 = encode_tuple(&[Datum::Text("a".into()), Datum::Int(9)]);
        let k2 = encode_tuple(&[Datum::Text("ab".into()), Datum::Int(1)]);
        assert!(k1 < k2);
    }

    #[test]
    fn decimals_dates_timestamps_bools() {
        check_order(
            SqlType::Numeric {
                precision: 10,
                scale: 2,
            },
            vec![
                Datum::Decimal(-1000),
                Datum::Decimal(-1),
                Datum::Decimal(0),
                Datum::Decimal(12345),
            ],
        );
        check_order(
            SqlType::Date,
            vec![Datum::Date(-10), Datum::Date(0), Datum::Date(19000)],
        );
        check_order(
            SqlType::Timestamp,
            vec![
                Datum::Timestamp(-1),
                Datum::Timestamp(0),
                Datum::Timestamp(1_700_000_000_000_000),
            ],
        );
        check_order(
            SqlType::Bool,
            vec![Datum::Null, Datum::Bool(false), Datum::Bool(true)],
        );
        check_order(
            SqlType::Bytea,
            vec![
                Datum::Bytes(vec![]),
                Datum::Bytes(vec![0]),
                Datum::Bytes(vec![0, 0]),
                Datum::Bytes(vec![1]),
            ],
        );
    }

    #[test]
    fn prefix_end_bounds_prefix() {
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        let p = b"t\x01";
        let k = [p.as_slice(), b"\xff\xff\xff"].concat();
        assert!(k.as_slice() < prefix_end(p).as_slice());
    }
}
