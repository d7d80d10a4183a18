//! Conversion between rows ([`Datum`]s) and Arrow: scans hand DataFusion `RecordBatch`es,
//! writes arrive as Arrow arrays already cast to the column types.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Date32Array,
    Date32Builder, Decimal128Array, Decimal128Builder, Float32Array, Float32Builder, Float64Array,
    Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array, Int64Builder,
    IntervalMonthDayNanoArray, IntervalMonthDayNanoBuilder, ListArray, StringArray, StringBuilder,
    Time64MicrosecondArray, Time64MicrosecondBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::IntervalMonthDayNano;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::catalog::TableDef;
use crate::codec::row;
use crate::error::{Error, Result, ValueErrorKind};
use crate::numeric::companion_of;
use crate::types::{Datum, Row, SqlType};

/// Arrow schema of `def`, restricted to `projection` (column positions, and companion
/// positions: `numeric::COMPANION_BASE`) if given.
pub fn table_schema(def: &TableDef, projection: Option<&[usize]>) -> SchemaRef {
    let all: Vec<usize> = (0..def.columns.len()).collect();
    let cols = projection.unwrap_or(&all);
    Arc::new(Schema::new(
        cols.iter()
            .map(|&i| {
                if let Some(c) = companion_of(i) {
                    return companion_field(&def.columns[c].name);
                }
                let c = &def.columns[i];
                // NOT NULL (and key) columns are non-nullable fields: pg_catalog reports
                // attnotnull from this, and DataFusion may use it.
                column_field(&c.name, &c.ty, !def.not_null(i))
            })
            .collect::<Vec<_>>(),
    ))
}

/// The field of the display scales of column `name` (an unconstrained `numeric`).
pub fn companion_field(name: &str) -> Field {
    Field::new(
        format!("{name}{}", crate::numeric::SUFFIX),
        arrow::datatypes::DataType::Int32,
        true,
    )
}

/// The display scales of column `c` of `rows` (an unconstrained `numeric`): each value's
/// own, or the fewest decimals that hold it where none was kept; NULL for NULL.
pub fn scales_array<'a>(values: impl Iterator<Item = &'a Datum>) -> Int32Array {
    values.map(|d| d.display_scale().map(i32::from)).collect()
}

/// The display scale a companion's `Int32` holds, as the row format keeps it (a byte).
pub fn scale_byte(scale: i32) -> u8 {
    scale.clamp(0, i32::from(u8::MAX)) as u8
}

/// `datums` (one column's, read by [`array_to_datums`]) with the display scales `scales`
/// (a companion column): each decimal with a scale becomes a [`Datum::Numeric`].
pub fn with_scales(datums: &mut [Datum], scales: &Int32Array) {
    for (i, d) in datums.iter_mut().enumerate() {
        if let (Datum::Decimal(v), true) = (&*d, scales.is_valid(i)) {
            *d = Datum::Numeric(*v, scale_byte(scales.value(i)));
        }
    }
}

/// The Arrow field of a column (or a parameter) named `name` of type `ty`, with the
/// metadata that keeps what the Arrow type loses: `char(n)`'s width ([`BPCHAR_WIDTH`]), and
/// the declared type and typmod of varchar, numeric, uuid, json and jsonb
/// ([`PG_DECLARED_TYPE`], [`PG_TYPMOD`]).
pub fn column_field(name: &str, ty: &SqlType, nullable: bool) -> Field {
    let f = Field::new(name, ty.arrow_type(), nullable);
    let declared = |name: &str| {
        [
            (PG_DECLARED_TYPE.to_string(), name.to_string()),
            (PG_TYPMOD.to_string(), ty.pg_typmod().to_string()),
        ]
    };
    match ty {
        SqlType::Char(n) => f.with_metadata(
            [(BPCHAR_WIDTH.to_string(), n.to_string())]
                .into_iter()
                .collect(),
        ),
        SqlType::Varchar(_) => f.with_metadata(declared("varchar").into()),
        SqlType::Numeric { .. } => f.with_metadata(declared("numeric").into()),
        SqlType::Uuid | SqlType::Json | SqlType::Jsonb => {
            f.with_metadata(declared(&ty.pg_name()).into())
        }
        _ => f,
    }
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
            build!(b, Datum::Decimal(v) | Datum::Numeric(v, _) => *v)
        }
        SqlType::Text
        | SqlType::Varchar(_)
        | SqlType::Char(_)
        | SqlType::Uuid
        | SqlType::Json
        | SqlType::Jsonb => {
            build!(StringBuilder::new(), Datum::Text(s) => s.as_str())
        }
        SqlType::Bool => build!(BooleanBuilder::new(), Datum::Bool(v) => *v),
        SqlType::Date => build!(Date32Builder::new(), Datum::Date(v) => *v),
        SqlType::Timestamp => build!(TimestampMicrosecondBuilder::new(), Datum::Timestamp(v) => *v),
        SqlType::TimestampTz => build!(
            TimestampMicrosecondBuilder::new().with_timezone(crate::types::UTC),
            Datum::Timestamp(v) => *v
        ),
        SqlType::Bytea => build!(BinaryBuilder::new(), Datum::Bytes(v) => v.as_slice()),
        SqlType::Time => build!(Time64MicrosecondBuilder::new(), Datum::Int(v) => *v),
        SqlType::Interval => build!(
            IntervalMonthDayNanoBuilder::new(),
            Datum::Interval(m, d, us) => IntervalMonthDayNano::new(*m, *d, us.saturating_mul(1000))
        ),
        SqlType::Array(elem) => {
            let mut offsets = vec![0i32];
            let mut items: Vec<&Datum> = Vec::new();
            let mut valid = Vec::new();
            for d in values {
                match d {
                    Datum::Null => valid.push(false),
                    Datum::Array(v) => {
                        items.extend(v.iter());
                        valid.push(true);
                    }
                    other => return Err(bad(ty, other)),
                }
                offsets.push(items.len() as i32);
            }
            let values = datums_to_array(elem, items.into_iter())?;
            let nulls = valid.iter().any(|v| !v).then(|| valid.into());
            let field = match ty.arrow_type() {
                arrow::datatypes::DataType::List(f) => f,
                _ => unreachable!("an array's Arrow type is a list"),
            };
            Arc::new(
                ListArray::try_new(field, OffsetBuffer::new(offsets.into()), values, nulls)
                    .map_err(|e| Error::Internal(e.to_string()))?,
            )
        }
    })
}

/// A `RecordBatch` of the `projection` columns of `rows`.
pub fn rows_to_batch(def: &TableDef, projection: &[usize], rows: &[Row]) -> Result<RecordBatch> {
    let schema = table_schema(def, Some(projection));
    let columns = projection
        .iter()
        .map(|&c| match companion_of(c) {
            Some(c) => Ok(Arc::new(scales_array(rows.iter().map(|r| &r[c]))) as ArrayRef),
            None => datums_to_array(&def.columns[c].ty, rows.iter().map(|r| &r[c])),
        })
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
    /// Types without a column of their own here (time, interval, arrays): read as datums.
    Datums(Vec<Datum>),
}

/// The rows of `columns` (one array per column of the table, each already cast to its
/// column's Arrow type) in the row format, with the checks of [`array_to_datums`]: each
/// row is what `encode_row` makes of the datums `array_to_datums` reads, without the datums
/// (a bulk load spent a fifth of its session's time making and dropping them). `scales`
/// gives unconstrained `numeric` columns their values' display scales (column, scales).
pub fn encode_rows(
    types: &[&SqlType],
    columns: &[ArrayRef],
    scales: &[(usize, &Int32Array)],
) -> Result<Vec<Vec<u8>>> {
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
                SqlType::Text
                | SqlType::Varchar(None)
                | SqlType::Uuid
                | SqlType::Json
                | SqlType::Jsonb => EncodeColumn::Text(down(a, ty)?, None),
                SqlType::Varchar(Some(limit)) => {
                    EncodeColumn::Text(down(a, ty)?, Some((*limit, false)))
                }
                SqlType::Char(limit) => EncodeColumn::Text(down(a, ty)?, Some((*limit, true))),
                SqlType::Bool => EncodeColumn::Bool(down(a, ty)?),
                SqlType::Date => EncodeColumn::Date(down(a, ty)?),
                SqlType::Timestamp | SqlType::TimestampTz => EncodeColumn::Timestamp(down(a, ty)?),
                SqlType::Bytea => EncodeColumn::Bytea(down(a, ty)?),
                SqlType::Time | SqlType::Interval | SqlType::Array(_) => {
                    EncodeColumn::Datums(array_to_datums(a.as_ref(), ty)?)
                }
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
    let mut encoded: Vec<Vec<u8>> = vec![Vec::new(); n];
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        // Sizes first (and the fitted strings), so each row is allocated once.
        let mut len = header;
        for (i, ((c, col), ty)) in cols.iter().zip(columns).zip(types).enumerate() {
            if col.is_null(r) {
                continue;
            }
            len += match c {
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
                EncodeColumn::Datums(d) => {
                    encoded[i].clear();
                    row::push_value(&mut encoded[i], &d[r]);
                    encoded[i].len()
                }
                _ => row::fixed_width(ty).unwrap_or(0),
            };
        }
        let mut row = Vec::with_capacity(len);
        row.push(row::ROW_FORMAT);
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
                EncodeColumn::Datums(_) => row.extend_from_slice(&encoded[i]),
            }
        }
        row::push_scales(
            &mut row,
            scales
                .iter()
                .filter(|(c, s)| s.is_valid(r) && columns[*c].is_valid(r))
                .map(|(c, s)| (*c, scale_byte(s.value(r)))),
        );
        out.push(row);
    }
    Ok(out)
}

/// Builds the output arrays of [`decode_rows`], one per projected column.
enum DecodeColumn {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Numeric(Decimal128Builder),
    Text(StringBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Bytea(BinaryBuilder),
    /// Time, interval and array columns: decoded to datums, built at the end.
    Datums(SqlType, Vec<Datum>),
}

impl DecodeColumn {
    fn new(ty: &SqlType, rows: usize) -> Result<Self> {
        Ok(match ty {
            SqlType::Bool => Self::Bool(BooleanBuilder::with_capacity(rows)),
            SqlType::Int16 => Self::Int16(Int16Builder::with_capacity(rows)),
            SqlType::Int32 => Self::Int32(Int32Builder::with_capacity(rows)),
            SqlType::Int64 => Self::Int64(Int64Builder::with_capacity(rows)),
            SqlType::Float32 => Self::Float32(Float32Builder::with_capacity(rows)),
            SqlType::Float64 => Self::Float64(Float64Builder::with_capacity(rows)),
            SqlType::Numeric { precision, scale } => Self::Numeric(
                Decimal128Builder::with_capacity(rows)
                    .with_precision_and_scale(*precision, *scale)
                    .map_err(|e| Error::Internal(e.to_string()))?,
            ),
            SqlType::Text
            | SqlType::Varchar(_)
            | SqlType::Char(_)
            | SqlType::Uuid
            | SqlType::Json
            | SqlType::Jsonb => Self::Text(StringBuilder::with_capacity(rows, rows * 16)),
            SqlType::Date => Self::Date(Date32Builder::with_capacity(rows)),
            SqlType::Timestamp => Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(rows)),
            SqlType::TimestampTz => Self::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(crate::types::UTC),
            ),
            SqlType::Bytea => Self::Bytea(BinaryBuilder::with_capacity(rows, rows * 16)),
            SqlType::Time | SqlType::Interval | SqlType::Array(_) => {
                Self::Datums(ty.clone(), Vec::with_capacity(rows))
            }
        })
    }

    fn append_null(&mut self) {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::Int16(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Numeric(b) => b.append_null(),
            Self::Text(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Timestamp(b) => b.append_null(),
            Self::Bytea(b) => b.append_null(),
            Self::Datums(_, d) => d.push(Datum::Null),
        }
    }

    /// Appends the stored value `v` (its bytes in the row format, a length prefix removed).
    fn append_stored(&mut self, v: &[u8]) -> Result<()> {
        let i64_of = |v: &[u8]| i64::from_le_bytes(v.try_into().unwrap_or([0; 8]));
        match self {
            Self::Bool(b) => b.append_value(v[0] != 0),
            Self::Int16(b) => b.append_value(i64_of(v) as i16),
            Self::Int32(b) => b.append_value(i64_of(v) as i32),
            Self::Int64(b) => b.append_value(i64_of(v)),
            Self::Float32(b) => b.append_value(f64::from_bits(i64_of(v) as u64) as f32),
            Self::Float64(b) => b.append_value(f64::from_bits(i64_of(v) as u64)),
            Self::Numeric(b) => b.append_value(i128::from_le_bytes(
                v.try_into()
                    .map_err(|_| Error::Corrupt("row: decimal".into()))?,
            )),
            Self::Text(b) => b.append_value(
                std::str::from_utf8(v).map_err(|_| Error::Corrupt("row: utf8".into()))?,
            ),
            Self::Date(b) => b.append_value(i64_of(v) as i32),
            Self::Timestamp(b) => b.append_value(i64_of(v)),
            Self::Bytea(b) => b.append_value(v),
            Self::Datums(ty, d) => d.push(row::decode_value(v, ty)?),
        }
        Ok(())
    }

    fn finish(self) -> Result<ArrayRef> {
        Ok(match self {
            Self::Bool(mut b) => Arc::new(b.finish()),
            Self::Int16(mut b) => Arc::new(b.finish()),
            Self::Int32(mut b) => Arc::new(b.finish()),
            Self::Int64(mut b) => Arc::new(b.finish()),
            Self::Float32(mut b) => Arc::new(b.finish()),
            Self::Float64(mut b) => Arc::new(b.finish()),
            Self::Numeric(mut b) => Arc::new(b.finish()),
            Self::Text(mut b) => Arc::new(b.finish()),
            Self::Date(mut b) => Arc::new(b.finish()),
            Self::Timestamp(mut b) => Arc::new(b.finish()),
            Self::Bytea(mut b) => Arc::new(b.finish()),
            Self::Datums(ty, d) => datums_to_array(&ty, d.iter())?,
        })
    }
}

/// The `projection` columns of rows stored in the row format (`codec::row`) as Arrow
/// arrays, decoded straight into the arrays: what `rows_to_batch` makes of the rows'
/// `decode_row` datums, without the datums. A column a row predates (added later) reads
/// the column's `missing` value. A companion position (`numeric::COMPANION_BASE + c`) reads
/// the display scales of column `c`, as `rows_to_batch` does.
pub fn decode_rows<'a>(
    def: &TableDef,
    projection: &[usize],
    payloads: impl ExactSizeIterator<Item = &'a [u8]>,
) -> Result<Vec<ArrayRef>> {
    let rows = payloads.len();
    let width = def.columns.len();
    let no_column = |c: usize| Error::Internal(format!("no column {c} in {}", def.name));
    // The builder of each projected column, by position, and of each projected companion.
    let mut builders: Vec<Option<DecodeColumn>> = (0..width).map(|_| None).collect();
    let mut scales: Vec<Option<Int32Builder>> = (0..width).map(|_| None).collect();
    let mut last = 0;
    for &p in projection {
        match companion_of(p) {
            Some(c) => {
                let slot = scales.get_mut(c).ok_or_else(|| no_column(c))?;
                slot.get_or_insert_with(|| Int32Builder::with_capacity(rows));
                last = last.max(c + 1);
            }
            None => {
                let col = def.columns.get(p).ok_or_else(|| no_column(p))?;
                if builders[p].is_none() {
                    builders[p] = Some(DecodeColumn::new(&col.ty, rows)?);
                }
                last = last.max(p + 1);
            }
        }
    }
    let with_scales = scales.iter().any(Option::is_some);
    // The last projected column bounds how much of a row is read.
    for buf in payloads {
        let (n, bitmap, mut pos) = row::header(buf)?;
        let entries = if with_scales {
            row::scale_entries(buf)?
        } else {
            &[]
        };
        for (c, col) in def.columns[..last].iter().enumerate() {
            if c >= n {
                // A column added after the row was written.
                if let Some(b) = &mut builders[c] {
                    append_datum(b, &col.missing, &col.ty)?;
                }
                if let Some(s) = &mut scales[c] {
                    s.append_option(col.missing.display_scale().map(i32::from));
                }
                continue;
            }
            if bitmap[c / 8] & (1 << (c % 8)) != 0 {
                if let Some(b) = &mut builders[c] {
                    b.append_null();
                }
                if let Some(s) = &mut scales[c] {
                    s.append_null();
                }
                continue;
            }
            let (v, next) = row::value_at(buf, pos, &col.ty)?;
            pos = next;
            if let Some(b) = &mut builders[c] {
                b.append_stored(v)?;
            }
            if let Some(s) = &mut scales[c] {
                let scale = match row::scale_in(entries, c) {
                    Some(d) => d,
                    None => crate::types::unknown_scale(i128::from_le_bytes(
                        v.try_into()
                            .map_err(|_| Error::Corrupt("row: decimal".into()))?,
                    )),
                };
                s.append_value(scale as i32);
            }
        }
    }
    let finished: Vec<Option<ArrayRef>> = builders
        .into_iter()
        .map(|b| b.map(DecodeColumn::finish).transpose())
        .collect::<Result<_>>()?;
    let finished_scales: Vec<Option<ArrayRef>> = scales
        .into_iter()
        .map(|s| s.map(|mut s| Arc::new(s.finish()) as ArrayRef))
        .collect();
    projection
        .iter()
        .map(|&p| {
            match companion_of(p) {
                Some(c) => finished_scales[c].clone(),
                None => finished[p].clone(),
            }
            .ok_or_else(|| Error::Internal(format!("column {p} was not decoded")))
        })
        .collect()
}

/// Appends a datum (a column's `missing` value) to a [`decode_rows`] builder.
fn append_datum(b: &mut DecodeColumn, d: &Datum, ty: &SqlType) -> Result<()> {
    let bad = || Error::Internal(format!("datum {d:?} stored in a {ty:?} column"));
    match (b, d) {
        (b, Datum::Null) => b.append_null(),
        (DecodeColumn::Bool(b), Datum::Bool(v)) => b.append_value(*v),
        (DecodeColumn::Int16(b), Datum::Int(v)) => b.append_value(*v as i16),
        (DecodeColumn::Int32(b), Datum::Int(v)) => b.append_value(*v as i32),
        (DecodeColumn::Int64(b), Datum::Int(v)) => b.append_value(*v),
        (DecodeColumn::Float32(b), Datum::Float(v)) => b.append_value(*v as f32),
        (DecodeColumn::Float64(b), Datum::Float(v)) => b.append_value(*v),
        (DecodeColumn::Numeric(b), Datum::Decimal(v) | Datum::Numeric(v, _)) => b.append_value(*v),
        (DecodeColumn::Text(b), Datum::Text(v)) => b.append_value(v),
        (DecodeColumn::Date(b), Datum::Date(v)) => b.append_value(*v),
        (DecodeColumn::Timestamp(b), Datum::Timestamp(v)) => b.append_value(*v),
        (DecodeColumn::Bytea(b), Datum::Bytes(v)) => b.append_value(v),
        (DecodeColumn::Datums(_, b), d) => b.push(d.clone()),
        _ => return Err(bad()),
    }
    Ok(())
}

/// Field metadata key marking a `char(n)` column; the value is `n`. The wire encoder pads
/// such values to `n` and reports them as `bpchar`.
pub const BPCHAR_WIDTH: &str = "duet.bpchar_width";

/// Field metadata key naming the declared PostgreSQL type of a table column where the
/// Arrow type does not tell it (`varchar` for a `Utf8` column, `numeric` for a `Decimal128`
/// one); with [`PG_TYPMOD`], the wire encoder reports it in RowDescription as PostgreSQL
/// does (OID 1043 for varchar, the column's typmod).
pub const PG_DECLARED_TYPE: &str = "duet.pg_type";

/// Field metadata key carrying the column's PostgreSQL type modifier
/// ([`SqlType::pg_typmod`]).
pub const PG_TYPMOD: &str = "duet.pg_typmod";

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
        SqlType::Text | SqlType::Varchar(None) | SqlType::Uuid | SqlType::Json | SqlType::Jsonb => {
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
        SqlType::Timestamp | SqlType::TimestampTz => {
            read!(TimestampMicrosecondArray, |v| Datum::Timestamp(v))
        }
        SqlType::Bytea => read!(BinaryArray, |v| Datum::Bytes(v.to_vec())),
        SqlType::Time => read!(Time64MicrosecondArray, |v| Datum::Int(v)),
        SqlType::Interval => read!(IntervalMonthDayNanoArray, |v| Datum::Interval(
            v.months,
            v.days,
            v.nanoseconds / 1000
        )),
        SqlType::Array(elem) => {
            let a = array
                .as_any()
                .downcast_ref::<ListArray>()
                .ok_or_else(|| Error::Internal(format!("expected a list for {ty:?}")))?;
            for i in 0..n {
                if a.is_null(i) {
                    out.push(Datum::Null);
                } else {
                    out.push(Datum::Array(array_to_datums(a.value(i).as_ref(), elem)?));
                }
            }
        }
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

    /// `rows` random values of `ty`, a fifth of them NULL.
    fn random_datums(ty: &SqlType, rows: usize, rng: &mut rand::rngs::StdRng) -> Vec<Datum> {
        use rand::Rng;
        let texts = ["", "a", "ab ", "héé", "abc  ", "zz"];
        (0..rows)
            .map(|_| {
                if rng.gen_range(0..5) == 0 {
                    return Datum::Null;
                }
                let i = rng.gen_range(0..1_000_000i64) - 500_000;
                match ty {
                    SqlType::Int16 => Datum::Int(i % 30_000),
                    SqlType::Int32 | SqlType::Int64 => Datum::Int(i),
                    SqlType::Float32 | SqlType::Float64 => Datum::Float(i as f64 / 8.0),
                    SqlType::Numeric { .. } if ty.is_unconstrained_numeric() => {
                        // Half with a display scale, half without one (rows written before
                        // scales were kept).
                        let d = rng.gen_range(0..=10u32);
                        if rng.gen_bool(0.5) {
                            Datum::Numeric(i as i128 * 10i128.pow(10 - d), d as u8)
                        } else {
                            Datum::Decimal(i as i128)
                        }
                    }
                    SqlType::Numeric { .. } => Datum::Decimal((i % 99_999) as i128),
                    SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_) => {
                        Datum::Text(texts[rng.gen_range(0..texts.len())].into())
                    }
                    SqlType::Uuid => {
                        Datum::Text(format!("00000000-0000-0000-0000-{:012x}", i.unsigned_abs()))
                    }
                    SqlType::Json | SqlType::Jsonb => Datum::Text(format!("{{\"n\": {i}}}")),
                    SqlType::Bool => Datum::Bool(i % 2 == 0),
                    SqlType::Date => Datum::Date(i as i32),
                    SqlType::Timestamp | SqlType::TimestampTz => Datum::Timestamp(i * 1000),
                    SqlType::Bytea => Datum::Bytes(vec![1, 2, (i & 0xff) as u8]),
                    SqlType::Time => Datum::Int(i.abs() * 1000),
                    SqlType::Interval => Datum::Interval((i % 100) as i32, (i % 40) as i32, i),
                    SqlType::Array(elem) => {
                        let n = rng.gen_range(0..4);
                        Datum::Array(random_datums(elem, n, rng))
                    }
                }
            })
            .collect()
    }

    /// Every column type, as in the tests' tables.
    fn all_types() -> Vec<SqlType> {
        vec![
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
            SqlType::Time,
            SqlType::Interval,
            SqlType::Array(Box::new(SqlType::Int32)),
            SqlType::Array(Box::new(SqlType::Varchar(Some(3)))),
        ]
    }

    /// `decode_rows` equals `rows_to_batch` of the `decode_row` datums for every type, with
    /// NULLs, rows written before columns were added (read as the columns' `missing`),
    /// reordered and repeated projections, and no columns at all; a corrupt row fails.
    #[test]
    fn decode_rows_matches_the_datum_path() {
        use crate::catalog::{ColumnDef, CATALOG_FORMAT};
        use crate::codec::row::encode_row;
        use rand::{Rng, SeedableRng};
        let mut types = all_types();
        let unconstrained = types.len();
        types.push(SqlType::Numeric {
            precision: 38,
            scale: 10,
        });
        // Two columns added later: one with a default, one without.
        types.push(SqlType::Int32);
        types.push(SqlType::Text);
        let mut missing = vec![Datum::Null; types.len()];
        missing[types.len() - 2] = Datum::Int(42);
        let def = TableDef {
            format: CATALOG_FORMAT,
            id: 1,
            name: "t".into(),
            storage_id: 1,
            columns: types
                .iter()
                .zip(&missing)
                .enumerate()
                .map(|(i, (ty, m))| ColumnDef {
                    name: format!("c{i}"),
                    ty: ty.clone(),
                    nullable: true,
                    default_expr: None,
                    missing: m.clone(),
                })
                .collect(),
            primary_key: vec![],
            pk_name: "t_pkey".into(),
            indexes: vec![],
            columnar: true,
            sequence: None,
            checks: vec![],
            foreign_keys: vec![],
            view: None,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let rows = 300;
        let columns: Vec<Vec<Datum>> = types
            .iter()
            .map(|ty| random_datums(ty, rows, &mut rng))
            .collect();
        let payloads: Vec<Vec<u8>> = (0..rows)
            .map(|r| {
                // Some rows predate the last one or two columns.
                let width = types.len() - rng.gen_range(0..3);
                let row: Vec<Datum> = columns[..width].iter().map(|c| c[r].clone()).collect();
                encode_row(&row)
            })
            .collect();
        let decoded: Vec<Row> = payloads
            .iter()
            .map(|p| def.decode_row(p).unwrap())
            .collect();
        let all: Vec<usize> = (0..types.len()).collect();
        let scales = crate::numeric::COMPANION_BASE + unconstrained;
        for projection in [
            all,
            vec![14, 2, 2, 7, 0],
            vec![3],
            vec![],
            vec![scales, unconstrained, 3],
            vec![scales],
        ] {
            let want = rows_to_batch(&def, &projection, &decoded).unwrap();
            let got =
                decode_rows(&def, &projection, payloads.iter().map(|p| p.as_slice())).unwrap();
            assert_eq!(got.len(), projection.len());
            for (i, a) in got.iter().enumerate() {
                assert_eq!(a.as_ref(), want.column(i).as_ref(), "{projection:?}, {i}");
            }
        }
        // Cut inside its values, or not a row at all.
        let all: Vec<usize> = (0..types.len()).collect();
        let cut = &payloads[0][..payloads[0].len() / 2];
        assert!(decode_rows(&def, &all, [cut].into_iter()).is_err());
        assert!(decode_rows(&def, &all, [&b"\x07ab"[..]].into_iter()).is_err());
    }

    /// `encode_rows` equals `encode_row` of the datums `array_to_datums` reads, for every
    /// type, with NULLs, multi-byte text, and the same errors.
    #[test]
    fn encode_rows_matches_the_datum_path() {
        use crate::codec::row::encode_row;
        use rand::SeedableRng;
        let types = all_types();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let rows = 200;
        let columns: Vec<ArrayRef> = types
            .iter()
            .map(|ty| datums_to_array(ty, random_datums(ty, rows, &mut rng).iter()).unwrap())
            .collect();
        let refs: Vec<&SqlType> = types.iter().collect();
        let encoded = encode_rows(&refs, &columns, &[]).unwrap();
        // Display scales of an unconstrained numeric go to the trailer, as `encode_row`
        // writes them for `Datum::Numeric`.
        let nt = SqlType::Numeric {
            precision: 38,
            scale: 10,
        };
        let values: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(15_000_000_000i128), None, Some(7)])
                .with_precision_and_scale(38, 10)
                .unwrap(),
        );
        let scale_of = Int32Array::from(vec![Some(2), Some(3), None]);
        let scaled = encode_rows(&[&nt], &[values], &[(0, &scale_of)]).unwrap();
        assert_eq!(scaled[0], encode_row(&[Datum::Numeric(15_000_000_000, 2)]));
        assert_eq!(scaled[1], encode_row(&[Datum::Null]));
        assert_eq!(scaled[2], encode_row(&[Datum::Decimal(7)]));
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
        assert!(encode_rows(&[&vt], &[long], &[]).is_err());
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
        assert!(encode_rows(&[&nt], &[big], &[]).is_err());
    }
}
