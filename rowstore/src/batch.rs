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
                let nullable = c.nullable && !def.primary_key.contains(&i);
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
    let s = if is_char { s.trim_end_matches(' ') } else { s };
    let limit = limit as usize;
    if s.chars().count() > limit {
        let cut: String = s.chars().take(limit).collect();
        if s.chars().skip(limit).all(|c| c == ' ') {
            return Ok(cut);
        }
        return Err(Error::value(
            ValueErrorKind::StringTooLong,
            format!("value too long for type {}", ty.pg_name()),
        ));
    }
    Ok(s.to_string())
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
}
