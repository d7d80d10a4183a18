//! Arrow → PostgreSQL wire: RowDescription fields and DataRows (arrow-pg's encoding, with
//! PostgreSQL's text forms where arrow-pg's differ: floats, timestamps, `char(n)` padding),
//! and a statement's [`Outcome`] as pgwire's [`Response`].

use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{
    DataType, IntervalMonthDayNanoType, IntervalUnit, Schema, SchemaRef,
};
use futures::{stream, StreamExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyResponse, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::Type;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;

use crate::backend::{Outcome, Rows};

/// Prefix of the internal alias the SQL layer gives a repeated output column name
/// (PostgreSQL allows `SELECT k, k`; DataFusion needs unique names): `__duet_dup<n>_<name>`
/// is sent to the client as `<name>`.
pub const DUPLICATE_PREFIX: &str = "__duet_dup";

/// The name a client sees for an output column named `name` internally.
pub fn output_name(name: &str) -> &str {
    match name.strip_prefix(DUPLICATE_PREFIX) {
        Some(rest) => rest.split_once('_').map_or(name, |(_, n)| n),
        None => name,
    }
}

/// The RowDescription of `schema`: arrow-pg's mapping, with the declared type of a table
/// column where the Arrow type loses it: `char(n)` as `bpchar` and `varchar(n)` as `varchar`
/// with their lengths, `numeric(p,s)` with its precision and scale (atttypmod, as
/// PostgreSQL sends them). A column computed from table columns has no declared type and
/// is sent as PostgreSQL sends an expression's (`text`, `numeric` with typmod -1).
pub fn pg_fields(schema: &Schema, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
    let mut fields = arrow_schema_to_pg_fields(schema, format, None)?;
    for ((f, w), arrow) in fields
        .iter_mut()
        .zip(bpchar_widths(schema))
        .zip(schema.fields())
    {
        let name = output_name(f.name());
        let (ty, typmod) = match (w, declared_type(arrow)) {
            (Some(w), _) => (Type::BPCHAR, w as i32 + 4),
            (None, Some(declared)) => declared,
            // An oid column's alias survives casts (DataFusion keeps a cast's source
            // metadata): `typelem::text` is text, not the oid that arrow-pg would say.
            (None, None) if is_oid_alias(arrow) && *arrow.data_type() != DataType::Int32 => {
                (arrow_pg::datatypes::into_pg_type(arrow.data_type())?, -1)
            }
            // Row numbers and ranks: sent as bigint (see `pg_text_columns`).
            (None, None) if *arrow.data_type() == DataType::UInt64 => (Type::INT8, -1),
            (None, None) if name.len() == f.name().len() => continue,
            (None, None) => (f.datatype().clone(), f.type_modifier()),
        };
        *f = FieldInfo::new(name.into(), None, None, ty, f.format()).with_type_modifier(typmod);
    }
    Ok(fields)
}

/// Whether `field` carries datafusion-pg-catalog's oid-alias metadata (`pg.oid_alias`).
fn is_oid_alias(field: &datafusion::arrow::datatypes::Field) -> bool {
    field
        .metadata()
        .contains_key(arrow_pg::datatypes::PG_OID_ALIAS_KEY)
}

/// The declared `varchar` or `numeric(p,s)` type of a table column `field` (see
/// [`duet_common::batch::PG_DECLARED_TYPE`]) and its typmod, while the field still has the
/// column's Arrow type.
fn declared_type(field: &datafusion::arrow::datatypes::Field) -> Option<(Type, i32)> {
    use duet_common::batch::{PG_DECLARED_TYPE, PG_TYPMOD};
    let typmod: i32 = match field.metadata().get(PG_TYPMOD) {
        Some(t) => t.parse().ok()?,
        None => -1,
    };
    match (
        field.metadata().get(PG_DECLARED_TYPE)?.as_str(),
        field.data_type(),
    ) {
        ("varchar", DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) => {
            Some((Type::VARCHAR, typmod))
        }
        // Sent as text (see `vector_text`): described as a simple type so the encoder
        // does not quote it as an array element.
        (name @ ("int2vector" | "oidvector"), DataType::List(_)) => Some((
            Type::new(
                name.into(),
                if name == "int2vector" { 22 } else { 30 },
                postgres_types::Kind::Simple,
                "pg_catalog".into(),
            ),
            -1,
        )),
        ("oid[]", DataType::List(_)) => Some((Type::OID_ARRAY, -1)),
        ("uuid", DataType::Utf8) => Some((Type::UUID, -1)),
        ("json", DataType::Utf8) => Some((Type::JSON, -1)),
        ("jsonb", DataType::Utf8) => Some((Type::JSONB, -1)),
        ("numeric", DataType::Decimal128(p, s)) => {
            let declared =
                typmod < 0 || ((typmod - 4) >> 16, (typmod - 4) & 0xffff) == (*p as i32, *s as i32);
            declared.then_some((Type::NUMERIC, typmod))
        }
        _ => None,
    }
}

fn query_response(
    schema: SchemaRef,
    batches: Rows,
    tag: &str,
    format: &Format,
) -> PgWireResult<QueryResponse> {
    let scales = display_scale_columns(&schema);
    let schema = visible_schema(&schema, &scales);
    let widths = bpchar_widths(&schema);
    let fields = Arc::new(pg_fields(&schema, format)?);
    let f2 = fields.clone();
    let text: Vec<bool> = (0..schema.fields().len())
        .map(|i| format.is_text(i))
        .collect();
    let rows = batches
        .map(move |rb| {
            let it: Box<
                dyn Iterator<Item = PgWireResult<pgwire::messages::data::DataRow>> + Send + Sync,
            > = match rb {
                Ok(rb) => {
                    let rb = with_display_scales(&rb, &scales, &|i| text[i]);
                    let rb = pad_bpchar_columns(&rb, &widths);
                    encode_recordbatch(f2.clone(), pg_text_columns(&rb, &|i| text[i]))
                }
                Err(e) => Box::new(std::iter::once(Err(PgWireError::UserError(e)))),
            };
            stream::iter(it)
        })
        .flatten();
    let mut resp = QueryResponse::new(fields, rows);
    if tag != "SELECT" {
        resp.set_command_tag(tag);
    }
    Ok(resp)
}

/// The result columns holding the display scales of numeric columns
/// ([`duet_common::numeric::DISPLAY_SCALE_OF`]): (value column, its scales' column).
pub fn display_scale_columns(schema: &Schema) -> Vec<(usize, usize)> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let of = f.metadata().get(duet_common::numeric::DISPLAY_SCALE_OF)?;
            Some((of.parse().ok()?, i))
        })
        .collect()
}

/// `schema` without the display-scale columns `scales` names.
pub fn visible_schema(schema: &SchemaRef, scales: &[(usize, usize)]) -> SchemaRef {
    if scales.is_empty() {
        return schema.clone();
    }
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, _)| !scales.iter().any(|(_, c)| c == i))
        .map(|(_, f)| f.clone())
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with each numeric column that has display scales printed with them (PostgreSQL's
/// text, or its binary `numeric` where the column is sent in binary), and the scales'
/// columns dropped. Every numeric sent in binary is encoded here, so that a zero keeps its
/// decimals (arrow-pg sent `0.00` as `0`).
pub fn with_display_scales(
    batch: &datafusion::arrow::record_batch::RecordBatch,
    scales: &[(usize, usize)],
    is_text: &dyn Fn(usize) -> bool,
) -> datafusion::arrow::record_batch::RecordBatch {
    use datafusion::arrow::datatypes::{Decimal128Type, Int32Type};
    let companion = |i: usize| scales.iter().any(|(_, c)| *c == i);
    // Output positions count only the columns that are sent.
    let position = |v: usize| v - scales.iter().filter(|(_, c)| *c < v).count();
    let binary_decimals: Vec<usize> = (0..batch.num_columns())
        .filter(|&i| {
            !companion(i)
                && matches!(batch.column(i).data_type(), DataType::Decimal128(..))
                && !is_text(position(i))
        })
        .collect();
    if scales.is_empty() && binary_decimals.is_empty() {
        return batch.clone();
    }
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    for v in 0..cols.len() {
        let with_scales = scales.iter().find(|(value, _)| *value == v).map(|p| p.1);
        if with_scales.is_none() && !binary_decimals.contains(&v) {
            continue;
        }
        let Some(values) = cols[v].as_primitive_opt::<Decimal128Type>() else {
            continue;
        };
        let ds = with_scales.and_then(|c| cols[c].as_primitive_opt::<Int32Type>());
        cols[v] = if is_text(position(v)) {
            Arc::new(duet_common::numeric::numeric_texts(values, ds))
        } else {
            Arc::new(duet_common::numeric::numeric_binaries(values, ds))
        };
    }
    let schema = batch.schema();
    let (fields, cols): (Vec<_>, Vec<_>) = schema
        .fields()
        .iter()
        .zip(cols)
        .enumerate()
        .filter(|(i, _)| !companion(*i))
        .map(|(_, (f, col))| {
            (
                f.as_ref().clone().with_data_type(col.data_type().clone()),
                col,
            )
        })
        .unzip();
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    datafusion::arrow::record_batch::RecordBatch::try_new(schema, cols)
        .unwrap_or_else(|_| batch.clone())
}

/// `outcome` as pgwire's response, result columns in `format`.
pub fn into_response(outcome: Outcome, format: &Format) -> PgWireResult<Response> {
    Ok(match outcome {
        Outcome::Rows { schema, rows, tag } => {
            Response::Query(query_response(schema, rows, &tag, format)?)
        }
        Outcome::Command(tag) => Response::Execution(Tag::new(&tag)),
        Outcome::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        Outcome::End(tag) => Response::TransactionEnd(Tag::new(tag)),
        Outcome::CopyIn { columns, binary } => Response::CopyIn(CopyResponse::new(
            i8::from(binary),
            columns,
            stream::empty(),
        )),
        Outcome::CopyOut {
            columns,
            binary,
            data,
        } => {
            let rows = data.map(|d| {
                d.map(|line| CopyData::new(line.into()))
                    .map_err(PgWireError::UserError)
            });
            Response::CopyOut(CopyResponse::new(i8::from(binary), columns, rows))
        }
    })
}

/// A `double precision` value as PostgreSQL prints it.
pub fn pg_float8_text(f: f64) -> String {
    pg_float_text(f, |e| if e { format!("{f:e}") } else { format!("{f}") }, 15)
}

/// A `real` value as PostgreSQL prints it.
pub fn pg_float4_text(f: f32) -> String {
    pg_float_text(
        f as f64,
        |e| if e { format!("{f:e}") } else { format!("{f}") },
        6,
    )
}

/// PostgreSQL's text output of a float (shortest round-trip digits, exponent form outside
/// `1e-4 ..< 1e<exp_limit>`; 15 for float8, 6 for float4).
pub fn pg_float_text(v: f64, shortest: impl Fn(bool) -> String, exp_limit: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let a = v.abs();
    if a != 0.0 && (a >= 10f64.powi(exp_limit) || a < 1e-4) {
        let e = shortest(true);
        match e.split_once('e') {
            Some((m, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => e,
        }
    } else {
        shortest(false)
    }
}

/// The declared width of each result column that is a `char(n)` column (field metadata
/// [`duet_common::batch::BPCHAR_WIDTH`]), `None` for the others.
pub fn bpchar_widths(schema: &datafusion::arrow::datatypes::Schema) -> Vec<Option<usize>> {
    schema
        .fields()
        .iter()
        .map(|f| {
            f.metadata()
                .get(duet_common::batch::BPCHAR_WIDTH)
                .and_then(|n| n.parse().ok())
                .filter(|_| {
                    matches!(
                        f.data_type(),
                        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                    )
                })
        })
        .collect()
}

/// Pads the values of `char(n)` result columns with spaces to `n` characters, as PostgreSQL
/// returns them (they are stored without trailing spaces).
pub fn pad_bpchar_columns(
    batch: &datafusion::arrow::record_batch::RecordBatch,
    widths: &[Option<usize>],
) -> datafusion::arrow::record_batch::RecordBatch {
    if widths.iter().all(Option::is_none) {
        return batch.clone();
    }
    let mut cols = Vec::with_capacity(batch.num_columns());
    let mut fields = Vec::with_capacity(batch.num_columns());
    for ((col, f), w) in batch
        .columns()
        .iter()
        .zip(batch.schema().fields())
        .zip(widths)
    {
        let padded = w.and_then(|w| {
            let s = datafusion::arrow::compute::cast(col, &DataType::Utf8).ok()?;
            let s = s.as_any().downcast_ref::<StringArray>()?;
            // Values are written straight into the builder's buffer: no String per value.
            let mut out = datafusion::arrow::array::StringBuilder::with_capacity(
                s.len(),
                s.value_data().len() + s.len() * w,
            );
            for v in s.iter() {
                match v {
                    Some(v) => {
                        use std::fmt::Write;
                        let pad = w.saturating_sub(v.chars().count());
                        let _ = write!(out, "{v}{:pad$}", "");
                        out.append_value("");
                    }
                    None => out.append_null(),
                }
            }
            Some(Arc::new(out.finish()) as ArrayRef)
        });
        match padded {
            Some(p) => {
                fields.push(f.as_ref().clone().with_data_type(DataType::Utf8));
                cols.push(p);
            }
            None => {
                fields.push(f.as_ref().clone());
                cols.push(col.clone());
            }
        }
    }
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    datafusion::arrow::record_batch::RecordBatch::try_new(schema, cols)
        .unwrap_or_else(|_| batch.clone())
}

/// A float or timestamp column as PostgreSQL's text (`None` for other types): floats in
/// shortest round-trip form, timestamps at microseconds. The wire's text format and SQL's
/// casts to text (`duet_sql::pgsemantics`) both write these.
pub fn pg_text_array(col: &ArrayRef) -> Option<ArrayRef> {
    use datafusion::arrow::array::{Float32Array, Float64Array, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::TimeUnit;
    match col.data_type() {
        DataType::Float64 => col.as_any().downcast_ref::<Float64Array>().map(|a| {
            Arc::new(
                a.iter()
                    .map(|v| v.map(pg_float8_text))
                    .collect::<StringArray>(),
            ) as ArrayRef
        }),
        DataType::Float32 => col.as_any().downcast_ref::<Float32Array>().map(|a| {
            Arc::new(
                a.iter()
                    .map(|v| v.map(pg_float4_text))
                    .collect::<StringArray>(),
            ) as ArrayRef
        }),
        // PostgreSQL keeps microseconds: a nanosecond timestamp (a literal's type in
        // DataFusion) prints at microseconds, as the same value stored in a column does.
        DataType::Timestamp(unit, None) => if *unit == TimeUnit::Microsecond {
            Some(col.clone())
        } else {
            datafusion::arrow::compute::cast(col, &DataType::Timestamp(TimeUnit::Microsecond, None))
                .ok()
        }
        .and_then(|col| {
            col.as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .map(|a| {
                    Arc::new(
                        a.iter()
                            .map(|v| v.map(pg_timestamp_text))
                            .collect::<StringArray>(),
                    ) as ArrayRef
                })
        }),
        // A time of day as PostgreSQL prints it, `HH:MM:SS` and the fraction without its
        // trailing zeros (Arrow writes six digits).
        DataType::Time64(_) | DataType::Time32(_) => {
            let micros =
                datafusion::arrow::compute::cast(col, &DataType::Time64(TimeUnit::Microsecond))
                    .ok()?;
            let micros = micros
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Time64MicrosecondArray>()?;
            Some(Arc::new(
                micros
                    .iter()
                    .map(|v| v.map(pg_time_text))
                    .collect::<StringArray>(),
            ) as ArrayRef)
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let a = col.as_primitive_opt::<IntervalMonthDayNanoType>()?;
            Some(Arc::new(
                a.iter()
                    .map(|v| v.map(|v| pg_interval_text(v.months, v.days, v.nanoseconds / 1000)))
                    .collect::<StringArray>(),
            ) as ArrayRef)
        }
        // A timestamptz in its array's zone (the session's `TimeZone`), with the offset.
        DataType::Timestamp(_, Some(tz)) => {
            let zone: datafusion::arrow::array::timezone::Tz = tz.parse().ok()?;
            let micros = datafusion::arrow::compute::cast(
                col,
                &DataType::Timestamp(TimeUnit::Microsecond, Some(tz.clone())),
            )
            .ok()?;
            let micros = micros
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()?;
            Some(Arc::new(
                micros
                    .iter()
                    .map(|v| v.map(|m| pg_timestamptz_text(m, &zone)))
                    .collect::<StringArray>(),
            ) as ArrayRef)
        }
        _ => None,
    }
}

/// A list column as PostgreSQL prints arrays (`array_out`): `{1,2}`, elements in their text
/// form, quoted where they are empty, `NULL`-like or hold a brace, comma, quote, backslash
/// or space, NULL elements as `NULL`, booleans as `t`/`f`. `None` if `col` is not a list.
/// An array element's text as PostgreSQL's array output writes it: in double quotes (with
/// `"` and `\` escaped) when it is empty, `NULL` in any case, or holds a brace, a comma, a
/// quote, a backslash or white space.
pub fn push_array_element(s: &mut String, v: &str) {
    let quote = v.is_empty()
        || v.eq_ignore_ascii_case("null")
        || v.chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
    if !quote {
        s.push_str(v);
        return;
    }
    s.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
}

pub fn pg_array_text(col: &ArrayRef) -> Option<ArrayRef> {
    use datafusion::arrow::array::AsArray;
    let lists = col.as_list_opt::<i32>()?;
    let item = match col.data_type() {
        DataType::List(f) => f.data_type().clone(),
        _ => return None,
    };
    let nested = matches!(item, DataType::List(_));
    let mut out = datafusion::arrow::array::StringBuilder::new();
    for i in 0..lists.len() {
        if lists.is_null(i) {
            out.append_null();
            continue;
        }
        let values = lists.value(i);
        let text = if nested {
            pg_array_text(&values)?
        } else if item == DataType::Boolean {
            let b = values.as_boolean();
            Arc::new(
                b.iter()
                    .map(|v| v.map(|v| if v { "t" } else { "f" }))
                    .collect::<StringArray>(),
            )
        } else {
            pg_text_array(&values)
                .or_else(|| datafusion::arrow::compute::cast(&values, &DataType::Utf8).ok())?
        };
        let text = datafusion::arrow::compute::cast(&text, &DataType::Utf8).ok()?;
        let text = text.as_string::<i32>();
        let mut s = String::from("{");
        for k in 0..text.len() {
            if k > 0 {
                s.push(',');
            }
            if text.is_null(k) {
                s.push_str("NULL");
                continue;
            }
            let v = text.value(k);
            if nested {
                s.push_str(v);
            } else {
                push_array_element(&mut s, v);
            }
        }
        s.push('}');
        out.append_value(s);
    }
    Some(Arc::new(out.finish()))
}

/// `micros` since 1970-01-01 UTC as PostgreSQL prints a timestamptz in `zone`: local time,
/// then the offset as `+HH`, `+HH:MM` or `+HH:MM:SS`.
pub fn pg_timestamptz_text(micros: i64, zone: &datafusion::arrow::array::timezone::Tz) -> String {
    use chrono::{Offset, TimeZone};
    let Some(utc) = chrono::DateTime::from_timestamp_micros(micros) else {
        return micros.to_string();
    };
    let offset = zone
        .offset_from_utc_datetime(&utc.naive_utc())
        .fix()
        .local_minus_utc();
    let mut out = pg_timestamp_text(micros + i64::from(offset) * 1_000_000);
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.unsigned_abs();
    out.push_str(&format!("{sign}{:02}", a / 3600));
    if a % 3600 != 0 {
        out.push_str(&format!(":{:02}", a % 3600 / 60));
        if a % 60 != 0 {
            out.push_str(&format!(":{:02}", a % 60));
        }
    }
    out
}

/// Re-encodes, for text-format result columns, the types whose text form arrow-pg writes
/// differently from PostgreSQL (floats, timestamps) as strings in PostgreSQL's format.
pub fn pg_text_columns(
    batch: &datafusion::arrow::record_batch::RecordBatch,
    is_text: &dyn Fn(usize) -> bool,
) -> datafusion::arrow::record_batch::RecordBatch {
    let mut changed = false;
    let mut cols = Vec::with_capacity(batch.num_columns());
    for (i, col) in batch.columns().iter().enumerate() {
        // Row numbers and ranks (UInt64 in DataFusion) are bigint, as in PostgreSQL.
        if *col.data_type() == DataType::UInt64 {
            if let Ok(c) = datafusion::arrow::compute::cast(col, &DataType::Int64) {
                changed = true;
                cols.push(c);
                continue;
            }
        }
        if !is_text(i) {
            match binary_typed_text(batch.schema().field(i), col) {
                Some(c) => {
                    changed = true;
                    cols.push(c);
                }
                None => cols.push(col.clone()),
            }
            continue;
        }
        let out = if is_vector(batch.schema().field(i)) {
            vector_text(col)
        } else if matches!(col.data_type(), DataType::List(_)) {
            list_elements_text(col)
        } else {
            pg_text_array(col)
        };
        match out {
            Some(o) => {
                changed = true;
                cols.push(o);
            }
            None => cols.push(col.clone()),
        }
    }
    if !changed {
        return batch.clone();
    }
    let fields: Vec<datafusion::arrow::datatypes::Field> = batch
        .schema()
        .fields()
        .iter()
        .zip(&cols)
        .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
        .collect();
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    datafusion::arrow::record_batch::RecordBatch::try_new(schema, cols)
        .unwrap_or_else(|_| batch.clone())
}

/// A list column whose elements arrow-pg writes differently from PostgreSQL (floats,
/// timestamps, times, intervals) with its elements as PostgreSQL's text: arrow-pg then
/// writes the array around them (quoting where PostgreSQL quotes).
fn list_elements_text(col: &ArrayRef) -> Option<ArrayRef> {
    use datafusion::arrow::array::ListArray;
    let lists = col.as_list_opt::<i32>()?;
    let values = pg_text_array(lists.values())?;
    let field = Arc::new(datafusion::arrow::datatypes::Field::new_list_field(
        DataType::Utf8,
        true,
    ));
    ListArray::try_new(
        field,
        lists.offsets().clone(),
        values,
        lists.nulls().cloned(),
    )
    .ok()
    .map(|a| Arc::new(a) as ArrayRef)
}

/// A `uuid` or `jsonb` column (stored as text) in its binary send format: a uuid's 16
/// bytes, jsonb's version byte 1 and the text. `None` for other columns.
fn binary_typed_text(
    field: &datafusion::arrow::datatypes::Field,
    col: &datafusion::arrow::array::ArrayRef,
) -> Option<datafusion::arrow::array::ArrayRef> {
    use datafusion::arrow::array::{AsArray, BinaryBuilder};
    let ty = field.metadata().get(duet_common::batch::PG_DECLARED_TYPE)?;
    if !matches!(ty.as_str(), "uuid" | "jsonb") || *col.data_type() != DataType::Utf8 {
        return None;
    }
    let mut out = BinaryBuilder::new();
    for v in col.as_string::<i32>() {
        match v {
            None => out.append_null(),
            Some(v) if ty == "jsonb" => {
                let mut b = Vec::with_capacity(v.len() + 1);
                b.push(1u8);
                b.extend_from_slice(v.as_bytes());
                out.append_value(b);
            }
            Some(v) => out.append_value(duet_common::types::uuid_bytes(v)?),
        }
    }
    Some(Arc::new(out.finish()))
}

/// Whether `field` is an `int2vector` or `oidvector` catalog column (a list declared so).
fn is_vector(field: &datafusion::arrow::datatypes::Field) -> bool {
    matches!(field.data_type(), DataType::List(_))
        && field
            .metadata()
            .get(duet_common::batch::PG_DECLARED_TYPE)
            .is_some_and(|t| t == "int2vector" || t == "oidvector")
}

/// An `int2vector` or `oidvector` column in PostgreSQL's text form: the elements separated
/// by spaces.
fn vector_text(
    col: &datafusion::arrow::array::ArrayRef,
) -> Option<datafusion::arrow::array::ArrayRef> {
    use datafusion::arrow::array::{Array, AsArray, StringBuilder};
    let lists = col.as_list_opt::<i32>()?;
    let mut out = StringBuilder::new();
    for i in 0..lists.len() {
        if lists.is_null(i) {
            out.append_null();
            continue;
        }
        let values = datafusion::arrow::compute::cast(&lists.value(i), &DataType::Int64).ok()?;
        let values = values.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let text: Vec<String> = values.iter().flatten().map(|v| v.to_string()).collect();
        out.append_value(text.join(" "));
    }
    Some(Arc::new(out.finish()))
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff without trailing zeros]`, as PostgreSQL prints a timestamp.
pub fn pg_timestamp_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let Some(dt) = chrono::DateTime::from_timestamp(secs, 0) else {
        return micros.to_string();
    };
    let mut out = dt.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string();
    push_fraction(&mut out, micros);
    out
}

/// `HH:MM:SS[.ffffff without trailing zeros]` of `micros` since midnight, as PostgreSQL
/// prints a `time` (24:00:00 included).
pub fn pg_time_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let mut out = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    push_fraction(&mut out, micros);
    out
}

/// An interval as PostgreSQL prints it (`IntervalStyle` postgres): `1 year 2 mons -3 days
/// 04:05:06.5`, each part with its own sign, a `+` on a positive part after a negative
/// one, the time as `[-]HH:MM:SS` with hours past 24 (`100:00:00`), `00:00:00` for zero.
pub fn pg_interval_text(months: i32, days: i32, micros: i64) -> String {
    let mut out = String::new();
    let mut before_negative = false;
    let mut part = |out: &mut String, value: i64, unit: &str| {
        if value == 0 {
            return;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        if before_negative && value > 0 {
            out.push('+');
        }
        out.push_str(&format!(
            "{value} {unit}{}",
            if value != 1 { "s" } else { "" }
        ));
        before_negative = value < 0;
    };
    part(&mut out, i64::from(months / 12), "year");
    part(&mut out, i64::from(months % 12), "mon");
    part(&mut out, i64::from(days), "day");
    if out.is_empty() || micros != 0 {
        if !out.is_empty() {
            out.push(' ');
        }
        if micros < 0 {
            out.push('-');
        } else if before_negative {
            out.push('+');
        }
        let a = micros.unsigned_abs();
        let secs = a / 1_000_000;
        out.push_str(&format!(
            "{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        ));
        push_fraction(&mut out, (a % 1_000_000) as i64);
    }
    out
}

/// `.ffffff` of `micros`' fraction of a second without trailing zeros; nothing if whole.
fn push_fraction(out: &mut String, micros: i64) {
    let frac = micros.rem_euclid(1_000_000);
    if frac != 0 {
        let f = format!("{frac:06}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    fn f8(v: f64) -> String {
        pg_float_text(v, |e| if e { format!("{v:e}") } else { format!("{v}") }, 15)
    }

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(f8(1e15), "1e+15");
        assert_eq!(f8(1e14), "100000000000000");
        assert_eq!(f8(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(f8(0.0001), "0.0001");
        assert_eq!(f8(0.00001), "1e-05");
        assert_eq!(f8(-1e10), "-10000000000");
        assert_eq!(f8(f64::NAN), "NaN");
        assert_eq!(f8(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(f8(-0.0), "-0");
        let f = 1234567f32;
        assert_eq!(
            pg_float_text(
                f as f64,
                |e| if e { format!("{f:e}") } else { format!("{f}") },
                6
            ),
            "1.234567e+06"
        );
    }

    #[test]
    fn timestamps_print_like_postgres() {
        assert_eq!(
            pg_timestamp_text(1_704_067_200_120_000),
            "2024-01-01 00:00:00.12"
        );
        assert_eq!(pg_timestamp_text(0), "1970-01-01 00:00:00");
    }
}
