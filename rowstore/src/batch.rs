//! Conversion between rows ([`Datum`]s) and Arrow: scans hand DataFusion `RecordBatch`es,
//! writes arrive as Arrow arrays already cast to the column types.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Date32Array,
    Date32Builder, Decimal128Array, Decimal128Builder, Float32Array, Float32Builder, Float64Array,
    Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array, Int64Builder,
    StringArray, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::catalog::TableDef;
use crate::error::{Error, Result, ValueErrorKind};
use crate::types::{Datum, Row, SqlType};

/// Arrow schema of `def`, restricted to `projection` (column positions) if given.
pub fn table_schema(def: &TableDef, projection: Option<&[usize]>) -> SchemaRef {
    let all: Vec<usize> = (0..def.columns.len()).collect();
    let cols = projection.unwrap_or(&all);
    Arc::new(Schema::new(
        cols.iter()
            .map(|&i| {
                let c = &def.columns[i];
                // NOT NULL (and key) columns are non-nullable fields: pg_catalog reports
                // attnotnull from this, and DataFusion may use it.
                let nullable = !def.not_null(i);
                let f = Field::new(&c.name, c.ty.arrow_type(), nullable);
                match c.ty {
                    SqlType::Char(n) => f.with_metadata(
                        [(BPCHAR_WIDTH.to_string(), n.to_string())]
                            .into_iter()
                            .collect(),
                    ),
                    _ => f,
                }
            })
            .collect::<Vec<_>>(),
    ))
}

/// Builds one Arrow array of type `ty` from `values`.
pub fn datums_to_array<'a>(
    ty: &SqlType,
    values: impl Iterator<Item = &'a Datum>,
) -> Result<ArrayRef> {
    fn bad(ty: &SqlType, d: &Datum) -> Error {
        Error::Internal(format!("datum {d:?} stored in a {ty:?} column"))
    }
    macro_rules! build {
        ($builder:expr, $($pat:pat => $val:expr),+) => {{
            let mut b = $builder;
            for d in values {
                match d {
                    Datum::Null => b.append_null(),
                    $($pat => b.append_value($val),)+
                    other => return Err(bad(ty, other)),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match ty {
        SqlType::Int16 => build!(Int16Builder::new(), Datum::Int(v) => *v as i16),
        SqlType::Int32 => build!(Int32Builder::new(), Datum::Int(v) => *v as i32),
        SqlType::Int64 => build!(Int64Builder::new(), Datum::Int(v) => *v),
        SqlType::Float32 => build!(Float32Builder::new(), Datum::Float(v) => *v as f32),
        SqlType::Float64 => build!(Float64Builder::new(), Datum::Float(v) => *v),
        SqlType::Numeric { precision, scale } => {
            let b = Decimal128Builder::new()
                .with_precision_and_scale(*precision, *scale)
                .map_err(|e| Error::Internal(e.to_string()))?;
            build!(b, Datum::Decimal(v) => *v)
        }
        SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_) => {
            build!(StringBuilder::new(), Datum::Text(s) => s.as_str())
        }
        SqlType::Bool => build!(BooleanBuilder::new(), Datum::Bool(v) => *v),
        SqlType::Date => build!(Date32Builder::new(), Datum::Date(v) => *v),
        SqlType::Timestamp => build!(TimestampMicrosecondBuilder::new(), Datum::Timestamp(v) => *v),
        SqlType::Bytea => build!(BinaryBuilder::new(), Datum::Bytes(v) => v.as_slice()),
    })
}

/// A `RecordBatch` of the `projection` columns of `rows`.
pub fn rows_to_batch(def: &TableDef, projection: &[usize], rows: &[Row]) -> Result<RecordBatch> {
    let schema = table_schema(def, Some(projection));
    let columns = projection
        .iter()
        .map(|&c| datums_to_array(&def.columns[c].ty, rows.iter().map(|r| &r[c])))
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new_with_options(
        schema,
        columns,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )
    .map_err(|e| Error::Internal(format!("Failed to build record batch: {e}")))
}

/// Fits `s` into a `varchar(limit)` or `char(limit)` column. As in PostgreSQL, excess
/// characters that are all spaces are cut silently. A `char(n)` value is stored without its
/// trailing spaces, its canonical form: PostgreSQL ignores them in comparisons, `LIKE`,
/// `length` and casts to text, so stripped values compare as PostgreSQL compares them. The
/// padding is put back on output (see [`BPCHAR_WIDTH`]).
fn fit_string(s: &str, limit: u32, is_char: bool, ty: &SqlType) -> Result<String> {
    fit_str(s, limit, is_char, ty).map(str::to_string)
}

/// [`fit_string`] without a copy: the stored value is always a prefix of `s`.
fn fit_str<'a>(s: &'a str, limit: u32, is_char: bool, ty: &SqlType) -> Result<&'a str> {
    let s = if is_char { s.trim_end_matches(' ') } else { s };
    let limit = limit as usize;
    // At most `limit` bytes means at most `limit` characters.
    if s.len() <= limit {
        return Ok(s);
    }
    match s.char_indices().nth(limit) {
        None => Ok(s),
        Some((cut, _)) if s[cut..].bytes().all(|b| b == b' ') => Ok(&s[..cut]),
        Some(_) => Err(Error::value(
            ValueErrorKind::StringTooLong,
            format!("value too long for type {}", ty.pg_name()),
        )),
    }
}

/// One column of [`encode_rows`], downcast once.
enum EncodeColumn<'a> {
    Int16(&'a Int16Array),
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    Float32(&'a Float32Array),
    Float64(&'a Float64Array),
    Numeric(&'a Decimal128Array, i128),
    Text(&'a StringArray, Option<(u32, bool)>),
    Bool(&'a BooleanArray),
    Date(&'a Date32Array),
    Timestamp(&'a TimestampMicrosecondArray),
    Bytea(&'a BinaryArray),
}

/// The rows of `columns` (one array per column of the table, each already cast to its
/// column's Arrow type) in the row format, with the checks of [`array_to_datums`]: each
/// row is what `encode_row` makes of the datums `array_to_datums` reads, without the datums
/// (a bulk load spent a fifth of its session's time making and dropping them).
pub fn encode_rows(types: &[&SqlType], columns: &[ArrayRef]) -> Result<Vec<Vec<u8>>> {
    fn down<'a, T: 'static>(a: &'a ArrayRef, ty: &SqlType) -> Result<&'a T> {
        a.as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| Error::Internal(format!("expected {ty:?}, got {}", a.data_type())))
    }
    if types.len() != columns.len() {
        return Err(Error::Internal(format!(
            "{} arrays for {} columns",
            columns.len(),
            types.len()
        )));
    }
    let cols = types
        .iter()
        .zip(columns)
        .map(|(ty, a)| {
            Ok(match ty {
                SqlType::Int16 => EncodeColumn::Int16(down(a, ty)?),
                SqlType::Int32 => EncodeColumn::Int32(down(a, ty)?),
                SqlType::Int64 => EncodeColumn::Int64(down(a, ty)?),
                SqlType::Float32 => EncodeColumn::Float32(down(a, ty)?),
                SqlType::Float64 => EncodeColumn::Float64(down(a, ty)?),
                SqlType::Numeric { precision, .. } => {
                    EncodeColumn::Numeric(down(a, ty)?, 10i128.pow(*precision as u32))
                }
                SqlType::Text | SqlType::Varchar(None) => EncodeColumn::Text(down(a, ty)?, None),
                SqlType::Varchar(Some(limit)) => {
                    EncodeColumn::Text(down(a, ty)?, Some((*limit, false)))
                }
                SqlType::Char(limit) => EncodeColumn::Text(down(a, ty)?, Some((*limit, true))),
                SqlType::Bool => EncodeColumn::Bool(down(a, ty)?),
                SqlType::Date => EncodeColumn::Date(down(a, ty)?),
                SqlType::Timestamp => EncodeColumn::Timestamp(down(a, ty)?),
                SqlType::Bytea => EncodeColumn::Bytea(down(a, ty)?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let rows = columns.first().map_or(0, |a| a.len());
    if columns.iter().any(|a| a.len() != rows) {
        return Err(Error::Internal("columns of different lengths".into()));
    }
    let n = cols.len();
    let header = 3 + n.div_ceil(8);
    let mut texts: Vec<&str> = vec![""; n];
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        // Sizes first (and the fitted strings), so each row is allocated once.
        let mut len = header;
        for (i, ((c, col), ty)) in cols.iter().zip(columns).zip(types).enumerate() {
            if col.is_null(r) {
                continue;
            }
            len += match c {
                EncodeColumn::Bool(_) => 1,
                EncodeColumn::Numeric(..) => 16,
                EncodeColumn::Text(a, fit) => {
                    let v = a.value(r);
                    let v = match fit {
                        Some((limit, is_char)) => fit_str(v, *limit, *is_char, ty)?,
                        None => v,
                    };
                    texts[i] = v;
                    4 + v.len()
                }
                EncodeColumn::Bytea(a) => 4 + a.value(r).len(),
                _ => 8,
            };
        }
        let mut row = Vec::with_capacity(len);
        row.push(crate::codec::row::ROW_FORMAT);
        row.extend_from_slice(&(n as u16).to_le_bytes());
        row.resize(header, 0);
        for (i, (c, col)) in cols.iter().zip(columns).enumerate() {
            if col.is_null(r) {
                row[3 + i / 8] |= 1 << (i % 8);
                continue;
            }
            match c {
                EncodeColumn::Int16(a) => row.extend_from_slice(&(a.value(r) as i64).to_le_bytes()),
                EncodeColumn::Int32(a) => row.extend_from_slice(&(a.value(r) as i64).to_le_bytes()),
                EncodeColumn::Int64(a) => row.extend_from_slice(&a.value(r).to_le_bytes()),
                EncodeColumn::Float32(a) => {
                    row.extend_from_slice(&(a.value(r) as f64).to_le_bytes())
                }
                EncodeColumn::Float64(a) => row.extend_from_slice(&a.value(r).to_le_bytes()),
                EncodeColumn::Numeric(a, bound) => {
                    let v = a.value(r);
                    if v.abs() >= *bound {
                        return Err(Error::value(
                            ValueErrorKind::OutOfRange,
                            "numeric field overflow",
                        ));
                    }
                    row.extend_from_slice(&v.to_le_bytes());
                }
                EncodeColumn::Text(..) => {
                    let v = texts[i];
                    row.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    row.extend_from_slice(v.as_bytes());
                }
                EncodeColumn::Bool(a) => row.push(a.value(r) as u8),
                EncodeColumn::Date(a) => row.extend_from_slice(&(a.value(r) as i64).to_le_bytes()),
                EncodeColumn::Timestamp(a) => row.extend_from_slice(&a.value(r).to_le_bytes()),
                EncodeColumn::Bytea(a) => {
                    let v = a.value(r);
                    row.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    row.extend_from_slice(v);
                }
            }
        }
        out.push(row);
    }
    Ok(out)
}

/// Field metadata key marking a `char(n)` column; the value is `n`. The wire encoder pads
/// such values to `n` and reports them as `bpchar`.
pub const BPCHAR_WIDTH: &str = "duet.bpchar_width";

/// Reads an Arrow array that has already been cast to `ty.arrow_type()` into datums,
/// enforcing the type's modifiers (length of varchar/char, precision of numeric).
pub fn array_to_datums(array: &dyn Array, ty: &SqlType) -> Result<Vec<Datum>> {
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    macro_rules! read {
        ($arr:ty, |$v:ident| $conv:expr) => {{
            let a = array.as_any().downcast_ref::<$arr>().ok_or_else(|| {
                Error::Internal(format!("expected {} for {ty:?}", stringify!($arr)))
            })?;
            for i in 0..n {
                if a.is_null(i) {
                    out.push(Datum::Null);
                } else {
                    let $v = a.value(i);
                    out.push($conv);
                }
            }
        }};
    }
    match ty {
        SqlType::Int16 => read!(Int16Array, |v| Datum::Int(v as i64)),
        SqlType::Int32 => read!(Int32Array, |v| Datum::Int(v as i64)),
        SqlType::Int64 => read!(Int64Array, |v| Datum::Int(v)),
        SqlType::Float32 => read!(Float32Array, |v| Datum::Float(v as f64)),
        SqlType::Float64 => read!(Float64Array, |v| Datum::Float(v)),
        SqlType::Numeric { precision, .. } => {
            let bound = 10i128.pow(*precision as u32);
            read!(Decimal128Array, |v| {
                if v.abs() >= bound {
                    return Err(Error::value(
                        ValueErrorKind::OutOfRange,
                        "numeric field overflow",
                    ));
                }
                Datum::Decimal(v)
            })
        }
        SqlType::Text | SqlType::Varchar(None) => {
            read!(StringArray, |v| Datum::Text(v.to_string()))
        }
        SqlType::Varchar(Some(limit)) => {
            read!(StringArray, |v| Datum::Text(fit_string(
                v, *limit, false, ty
            )?))
        }
        SqlType::Char(limit) => {
            read!(StringArray, |v| Datum::Text(fit_string(
                v, *limit, true, ty
            )?))
        }
        SqlType::Bool => read!(BooleanArray, |v| Datum::Bool(v)),
        SqlType::Date => read!(Date32Array, |v| Datum::Date(v)),
        SqlType::Timestamp => read!(TimestampMicrosecondArray, |v| Datum::Timestamp(v)),
        SqlType::Bytea => read!(BinaryArray, |v| Datum::Bytes(v.to_vec())),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varchar_limits_and_char_padding() {
        let a = StringArray::from(vec![Some("abc"), None, Some("ab   ")]);
        let d = array_to_datums(&a, &SqlType::Varchar(Some(3))).unwrap();
        assert_eq!(
            d,
            vec![
                Datum::Text("abc".into()),
                Datum::Null,
                Datum::Text("ab ".into())
            ]
        );
        let long = StringArray::from(vec!["abcd"]);
        let e = array_to_datums(&long, &SqlType::Varchar(Some(3))).unwrap_err();
        assert!(matches!(
            e,
            Error::Value {
                kind: ValueErrorKind::StringTooLong,
                ..
            }
        ));
        // char(n) is stored without trailing spaces; padding returns on output.
        let c = array_to_datums(
            &StringArray::from(vec!["a", "b  ", "cd   "]),
            &SqlType::Char(3),
        )
        .unwrap();
        let want: Vec<Datum> = ["a", "b", "cd"]
            .iter()
            .map(|s| Datum::Text(s.to_string()))
            .collect();
        assert_eq!(c, want);
        let e = array_to_datums(&StringArray::from(vec!["abcd"]), &SqlType::Char(3)).unwrap_err();
        assert!(matches!(
            e,
            Error::Value {
                kind: ValueErrorKind::StringTooLong,
                ..
            }
        ));
    }

    #[test]
    fn numeric_precision_is_enforced() {
        let a = Decimal128Array::from(vec![99999i128, 100000])
            .with_precision_and_scale(38, 2)
            .unwrap();
        let e = array_to_datums(
            &a,
            &SqlType::Numeric {
                precision: 5,
                scale: 2,
            },
        )
        .unwrap_err();
        assert!(matches!(
            e,
            Error::Value {
                kind: ValueErrorKind::OutOfRange,
                ..
            }
        ));
    }

    /// `encode_rows` equals `encode_row` of the datums `array_to_datums` reads, for every
    /// type, with NULLs, multi-byte text, and the same errors.
    #[test]
    fn encode_rows_matches_the_datum_path() {
        use crate::codec::row::encode_row;
        let types = [
            SqlType::Int16,
            SqlType::Int32,
            SqlType::Int64,
            SqlType::Float32,
            SqlType::Float64,
            SqlType::Numeric {
                precision: 5,
                scale: 2,
            },
            SqlType::Text,
            SqlType::Varchar(Some(3)),
            SqlType::Char(4),
            SqlType::Bool,
            SqlType::Date,
            SqlType::Timestamp,
            SqlType::Bytea,
        ];
        let texts = ["", "a", "ab ", "héé", "abc  ", "zz"];
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut next = move |n: u64| rng.gen_range(0..n);
        let rows = 200;
        let mut columns = Vec::new();
        for ty in &types {
            let datums: Vec<Datum> = (0..rows)
                .map(|_| {
                    if next(5) == 0 {
                        return Datum::Null;
                    }
                    let i = next(1_000_000) as i64 - 500_000;
                    match ty {
                        SqlType::Int16 => Datum::Int(i % 30_000),
                        SqlType::Int32 | SqlType::Int64 => Datum::Int(i),
                        SqlType::Float32 | SqlType::Float64 => Datum::Float(i as f64 / 8.0),
                        SqlType::Numeric { .. } => Datum::Decimal((i % 99_999) as i128),
                        SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_) => {
                            Datum::Text(texts[next(texts.len() as u64) as usize].into())
                        }
                        SqlType::Bool => Datum::Bool(i % 2 == 0),
                        SqlType::Date => Datum::Date(i as i32),
                        SqlType::Timestamp => Datum::Timestamp(i * 1000),
                        SqlType::Bytea => Datum::Bytes(vec![1, 2, (i & 0xff) as u8]),
                    }
                })
                .collect();
            columns.push(datums_to_array(ty, datums.iter()).unwrap());
        }
        let refs: Vec<&SqlType> = types.iter().collect();
        let encoded = encode_rows(&refs, &columns).unwrap();
        let per_column: Vec<Vec<Datum>> = columns
            .iter()
            .zip(&types)
            .map(|(a, ty)| array_to_datums(a.as_ref(), ty).unwrap())
            .collect();
        assert_eq!(encoded.len(), rows);
        for (r, row) in encoded.iter().enumerate() {
            let datums: Vec<Datum> = per_column.iter().map(|c| c[r].clone()).collect();
            assert_eq!(row, &encode_row(&datums), "row {r}");
        }

        // Too long for varchar(3), and over numeric(5, 2)'s range: both paths fail.
        let long: ArrayRef = Arc::new(StringArray::from(vec![Some("abcd")]));
        let vt = SqlType::Varchar(Some(3));
        assert!(array_to_datums(long.as_ref(), &vt).is_err());
        assert!(encode_rows(&[&vt], &[long]).is_err());
        let nt = SqlType::Numeric {
            precision: 5,
            scale: 2,
        };
        let big = datums_to_array(
            &SqlType::Numeric {
                precision: 38,
                scale: 2,
            },
            [Datum::Decimal(100_000)].iter(),
        )
        .unwrap();
        assert!(array_to_datums(big.as_ref(), &nt).is_err());
        assert!(encode_rows(&[&nt], &[big]).is_err());
    }
}
