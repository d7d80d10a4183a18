//! SQL types: declared column types (sqlparser → [`SqlType`]) and the assignment cast of
//! values into a column's type (with PostgreSQL's error codes).

use std::sync::Arc;

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, BinaryBuilder, Int32Array, StringArray};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::util::display::FormatOptions;
pub(crate) use duet_common::numeric::positional_decimal;
use duet_common::numeric::split_decimal;
use duet_common::types::DEFAULT_NUMERIC;
use duet_common::{Datum, SqlType};
use sqlparser::ast::{
    ArrayElemTypeDef, CharacterLength, DataType as AstType, ExactNumberInfo, TimezoneInfo,
};

use crate::error::{from_datafusion, PgError, Result, SqlState};

fn char_len(l: &Option<CharacterLength>) -> Option<u32> {
    match l {
        Some(CharacterLength::IntegerLength { length, .. }) => Some(*length as u32),
        _ => None,
    }
}

/// The column type for a declared SQL type.
pub fn column_type(t: &AstType) -> Result<SqlType> {
    Ok(match t {
        AstType::SmallInt(_) | AstType::Int2(_) => SqlType::Int16,
        AstType::Int(_) | AstType::Integer(_) | AstType::Int4(_) => SqlType::Int32,
        AstType::BigInt(_) | AstType::Int8(_) => SqlType::Int64,
        AstType::Real | AstType::Float4 => SqlType::Float32,
        AstType::Double(_) | AstType::DoublePrecision | AstType::Float8 | AstType::Float64 => {
            SqlType::Float64
        }
        AstType::Float(info) => match info {
            ExactNumberInfo::Precision(p) if *p <= 24 => SqlType::Float32,
            _ => SqlType::Float64,
        },
        AstType::Numeric(info) | AstType::Decimal(info) | AstType::Dec(info) => match info {
            ExactNumberInfo::None => SqlType::Numeric {
                precision: DEFAULT_NUMERIC.0,
                scale: DEFAULT_NUMERIC.1,
            },
            ExactNumberInfo::Precision(p) => numeric(*p, 0)?,
            ExactNumberInfo::PrecisionAndScale(p, s) => numeric(*p, *s)?,
        },
        AstType::Text => SqlType::Text,
        AstType::Varchar(l) | AstType::CharacterVarying(l) | AstType::CharVarying(l) => {
            SqlType::Varchar(char_len(l))
        }
        AstType::Char(l) | AstType::Character(l) => SqlType::Char(char_len(l).unwrap_or(1)),
        AstType::Bool | AstType::Boolean => SqlType::Bool,
        AstType::Date => SqlType::Date,
        AstType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
            SqlType::Timestamp
        }
        AstType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => {
            SqlType::TimestampTz
        }
        AstType::Bytea => SqlType::Bytea,
        AstType::Time(None, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => SqlType::Time,
        AstType::Interval {
            fields: None,
            precision: None,
        } => SqlType::Interval,
        AstType::Array(
            ArrayElemTypeDef::SquareBracket(elem, _) | ArrayElemTypeDef::AngleBracket(elem),
        ) => {
            let elem = column_type(elem)?;
            if !matches!(
                elem,
                SqlType::Int16
                    | SqlType::Int32
                    | SqlType::Int64
                    | SqlType::Float32
                    | SqlType::Float64
                    | SqlType::Numeric { .. }
                    | SqlType::Text
                    | SqlType::Varchar(_)
                    | SqlType::Bool
                    | SqlType::Date
                    | SqlType::Timestamp
                    | SqlType::TimestampTz
                    | SqlType::Time
            ) {
                return Err(PgError::unsupported(format!(
                    "an array column of {} elements",
                    elem.pg_name()
                )));
            }
            SqlType::Array(Box::new(elem))
        }
        AstType::Uuid => SqlType::Uuid,
        AstType::JSON => SqlType::Json,
        AstType::JSONB => SqlType::Jsonb,
        AstType::Custom(name, _) => match name.to_string().to_ascii_lowercase().as_str() {
            "int2" => SqlType::Int16,
            "int4" => SqlType::Int32,
            "int8" => SqlType::Int64,
            "float4" => SqlType::Float32,
            "float8" => SqlType::Float64,
            "bpchar" => SqlType::Char(1),
            "timestamptz" => SqlType::TimestampTz,
            other => {
                return Err(PgError::new(
                    SqlState::UndefinedObject,
                    format!("type \"{other}\" does not exist"),
                ))
            }
        },
        other => return Err(PgError::unsupported(format!("type {other}"))),
    })
}

fn numeric(p: u64, s: i64) -> Result<SqlType> {
    if !(1..=38).contains(&p) {
        return Err(PgError::new(
            SqlState::InvalidParameterValue,
            format!("NUMERIC precision {p} must be between 1 and 38"),
        ));
    }
    if s < 0 || s as u64 > p {
        return Err(PgError::new(
            SqlState::InvalidParameterValue,
            format!("NUMERIC scale {s} must be between 0 and precision {p}"),
        ));
    }
    Ok(SqlType::Numeric {
        precision: p as u8,
        scale: s as i8,
    })
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

/// PostgreSQL's bytea input: `\x` hex, otherwise the bytes of the text (escape format
/// backslashes are taken literally except `\\`).
fn parse_bytea(s: &str) -> Result<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x") {
        let hex: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !hex.len().is_multiple_of(2) {
            return Err(PgError::new(
                SqlState::InvalidTextRepresentation,
                "invalid hexadecimal data: odd number of digits",
            ));
        }
        hex.chunks(2)
            .map(|p| {
                std::str::from_utf8(p)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        PgError::new(
                            SqlState::InvalidTextRepresentation,
                            "invalid hexadecimal digit",
                        )
                    })
            })
            .collect()
    } else {
        Ok(s.replace("\\\\", "\\").into_bytes())
    }
}

/// `array` (text, a timestamp, a timestamptz in any zone, a date) as instants in a
/// `timestamptz` column's type: text and values without a zone are local time in `zone`.
fn timestamptz_of(array: &ArrayRef, zone: &Tz) -> Result<ArrayRef> {
    let target = SqlType::TimestampTz.arrow_type();
    let cast = |a: &ArrayRef, t: &DataType| {
        cast_with_options(a, t, &CastOptions::default()).map_err(|e| from_datafusion(e.into()))
    };
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = cast(array, &DataType::Utf8)?;
            crate::datetime::strings_to_timestamptz(text.as_ref(), TimeUnit::Microsecond, zone)
        }
        DataType::Timestamp(_, Some(_)) => cast(array, &target),
        DataType::Timestamp(_, None) | DataType::Date32 | DataType::Date64 | DataType::Null => {
            let local = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let local = local
                .as_any()
                .downcast_ref::<datafusion::arrow::array::TimestampMicrosecondArray>()
                .ok_or_else(|| PgError::new(SqlState::InternalError, "timestamp cast"))?;
            let mut out = Vec::with_capacity(local.len());
            for v in local.iter() {
                out.push(match v {
                    None => None,
                    Some(m) => Some(crate::datetime::local_to_utc(m, zone).ok_or_else(|| {
                        PgError::new(SqlState::DatetimeFieldOverflow, "timestamp out of range")
                    })?),
                });
            }
            Ok(Arc::new(
                datafusion::arrow::array::TimestampMicrosecondArray::from(out)
                    .with_timezone(duet_common::types::UTC),
            ))
        }
        other => Err(PgError::new(
            SqlState::DatatypeMismatch,
            format!("column is of type timestamp with time zone but expression is of type {other}"),
        )),
    }
}

/// Casts `array` to the storage type of `ty` as an assignment (INSERT/UPDATE) would, and
/// reads it into datums with the type's modifiers enforced.
pub fn assign(array: &ArrayRef, ty: &SqlType, column: &str) -> Result<Vec<Datum>> {
    assign_in(array, ty, column, &utc())
}

/// [`assign`] in the session time zone `zone` (what a `timestamptz` written without a
/// zone, or a `timestamp` assigned to one, is local to).
pub fn assign_in(array: &ArrayRef, ty: &SqlType, column: &str, zone: &Tz) -> Result<Vec<Datum>> {
    let casted = assign_array_in(array, ty, column, zone)?;
    duet_common::batch::array_to_datums(casted.as_ref(), ty).map_err(PgError::from)
}

/// The columns of `batch` from `first` on, one per column of `def` in `targets`, assigned
/// to those columns' types (INSERT's values, UPDATE's and ON CONFLICT's new values). An
/// unconstrained `numeric` column keeps each value's display scale: its companion's in
/// `batch` (see [`companion_columns`]), else the one [`input_scales`] gives it.
pub fn assign_columns(
    batch: &datafusion::arrow::record_batch::RecordBatch,
    first: usize,
    def: &duet_common::TableDef,
    targets: &[usize],
    zone: &Tz,
) -> Result<Vec<Vec<Datum>>> {
    let companions = companion_columns(batch.schema().as_ref());
    targets
        .iter()
        .enumerate()
        .map(|(j, &c)| {
            let col = &def.columns[c];
            let source = batch.column(first + j);
            let mut datums = assign_in(source, &col.ty, &col.name, zone)?;
            if col.ty.is_unconstrained_numeric() {
                keep_scales(
                    &mut datums,
                    source,
                    companions[first + j].map(|k| batch.column(k)),
                    &col.ty,
                );
            }
            Ok(datums)
        })
        .collect()
}

/// For each column of a query result `schema`, the position of its companion (the column
/// of its values' display scales, tagged `numeric::DISPLAY_SCALE_OF`), if it has one.
pub fn companion_columns(schema: &datafusion::arrow::datatypes::Schema) -> Vec<Option<usize>> {
    let mut out = vec![None; schema.fields().len()];
    for (k, f) in schema.fields().iter().enumerate() {
        let of = f
            .metadata()
            .get(duet_common::numeric::DISPLAY_SCALE_OF)
            .and_then(|v| v.parse::<usize>().ok());
        if let Some(slot) = of.and_then(|i| out.get_mut(i)) {
            *slot = Some(k);
        }
    }
    out
}

/// The number of columns of a query result `schema` that are not companions.
pub fn visible_width(schema: &datafusion::arrow::datatypes::Schema) -> usize {
    schema
        .fields()
        .iter()
        .filter(|f| {
            !f.metadata()
                .contains_key(duet_common::numeric::DISPLAY_SCALE_OF)
        })
        .count()
}

/// `datums` (values of `source` assigned to an unconstrained numeric column of type `ty`)
/// with their display scales: `companion`'s, or those of [`input_scales`].
pub fn keep_scales(
    datums: &mut [Datum],
    source: &ArrayRef,
    companion: Option<&ArrayRef>,
    ty: &SqlType,
) {
    let given = companion.and_then(|c| c.as_any().downcast_ref::<Int32Array>().cloned());
    if let Some(scales) = given.or_else(|| input_scales(source, ty)) {
        duet_common::batch::with_scales(datums, &scales);
    }
}

/// `array` cast to text.
fn text_values(array: &ArrayRef) -> Result<StringArray> {
    use datafusion::arrow::array::AsArray;
    let strings = cast_with_options(array, &DataType::Utf8, &CastOptions::default())
        .map_err(|e| from_datafusion(e.into()))?;
    Ok(strings.as_string::<i32>().clone())
}

/// Text (or a value with a text form) as a `uuid`, `json` or `jsonb` column stores it:
/// checked and in its canonical form (22P02 for bad input, as PostgreSQL's input functions).
fn typed_text(array: &ArrayRef, ty: &SqlType) -> Result<ArrayRef> {
    let strings = text_values(array)?;
    let name = ty.pg_name();
    let mut b = datafusion::arrow::array::StringBuilder::new();
    for v in strings.iter() {
        match v {
            Some(s) => b.append_value(crate::jsonb::input(&name, s)?),
            None => b.append_null(),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// UTC, the zone of a session that set none.
pub fn utc() -> Tz {
    "+00:00".parse().expect("UTC is a zone")
}

/// The cast of [`assign`], without reading the values: the array in the storage type of
/// `ty` (its modifiers are enforced when the values are read or encoded).
pub fn assign_array(array: &ArrayRef, ty: &SqlType, column: &str) -> Result<ArrayRef> {
    assign_array_in(array, ty, column, &utc())
}

/// [`assign_array`] in the session time zone `zone`.
pub fn assign_array_in(
    array: &ArrayRef,
    ty: &SqlType,
    column: &str,
    zone: &Tz,
) -> Result<ArrayRef> {
    let target = ty.arrow_type();
    let source = array.data_type().clone();
    if ty.is_unconstrained_numeric() {
        unconstrained_numeric_is_exact(array, column)?;
    }
    let casted: ArrayRef = if ty.is_typed_text() {
        typed_text(array, ty)?
    } else if source == target {
        array.clone()
    } else if let Some(decimals) = plain_decimals(array, &target) {
        decimals
    } else if matches!(ty, SqlType::TimestampTz) {
        timestamptz_of(array, zone)?
    } else if matches!(ty, SqlType::Float32 | SqlType::Float64) && source == DataType::Utf8 {
        text_to_floats(array, &target)?
    } else if matches!(ty, SqlType::Timestamp) && source == DataType::Utf8 {
        crate::datetime::strings_to_timestamps(array.as_ref(), TimeUnit::Microsecond)?
    } else if matches!(ty, SqlType::Date) && source == DataType::Utf8 {
        crate::datetime::strings_to_dates(array.as_ref())?
    } else if matches!(ty, SqlType::Time) && source == DataType::Utf8 {
        crate::datetime::strings_to_times(array.as_ref(), TimeUnit::Microsecond)?
    } else if matches!(ty, SqlType::Interval) && source == DataType::Utf8 {
        crate::datetime::strings_to_intervals(array.as_ref())?
    } else if let (SqlType::Array(_), DataType::Utf8, DataType::List(field)) =
        (ty, &source, &target)
    {
        crate::arrays::strings_to_lists(array.as_ref(), field, zone)?
    } else if matches!(ty, SqlType::Bytea) && is_string(&source) {
        let strings = text_values(array)?;
        let mut b = BinaryBuilder::new();
        for v in strings.iter() {
            match v {
                Some(s) => b.append_value(parse_bytea(s)?),
                None => b.append_null(),
            }
        }
        Arc::new(b.finish())
    } else {
        let rounded = round_for_integer(array, ty)?;
        let rounded = match target {
            DataType::Decimal128(..) => without_exponents(&rounded).unwrap_or(rounded),
            _ => rounded,
        };
        let opts = CastOptions {
            safe: false,
            format_options: FormatOptions::default(),
        };
        cast_with_options(&rounded, &target, &opts).map_err(|e| {
            let text = e.to_string();
            // A well-formed number outside a numeric(p, s) (Arrow: "… is too large (small)
            // to store in a Decimal128 …") is PostgreSQL's "numeric field overflow".
            if is_string(&source)
                && matches!(target, DataType::Decimal128(..))
                && (text.contains("too large") || text.contains("too small"))
            {
                return PgError::new(SqlState::NumericValueOutOfRange, "numeric field overflow");
            }
            let state = if is_string(&source) {
                SqlState::InvalidTextRepresentation
            } else if matches!(source, DataType::Null) || source.is_numeric() {
                SqlState::NumericValueOutOfRange
            } else {
                SqlState::DatatypeMismatch
            };
            let msg = match state {
                SqlState::InvalidTextRepresentation => {
                    format!("invalid input syntax for type {}: {e}", ty.pg_name())
                }
                SqlState::NumericValueOutOfRange => {
                    format!("{} out of range for column \"{column}\"", ty.pg_name())
                }
                _ => format!(
                    "column \"{column}\" is of type {} but expression is of type {source}",
                    ty.pg_name()
                ),
            };
            PgError::new(state, msg)
        })?
    };
    Ok(casted)
}

/// An unconstrained `numeric` is stored with [`DEFAULT_NUMERIC`]'s 10 decimals, where
/// PostgreSQL keeps every digit: a value with a nonzero digit past the tenth decimal is
/// refused (0A000) rather than stored rounded.
fn unconstrained_numeric_is_exact(array: &ArrayRef, column: &str) -> Result<()> {
    let kept = DEFAULT_NUMERIC.1 as i64;
    let refuse = |value: &str| {
        PgError::new(
            SqlState::FeatureNotSupported,
            format!(
                "value {value} for column \"{column}\" has more than {kept} decimal places, \
                 which a numeric without precision and scale does not keep in DuetDB; \
                 declare the column numeric(p,s)"
            ),
        )
    };
    match array.data_type() {
        DataType::Decimal128(_, scale) if i64::from(*scale) > kept => {
            let values = array
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Decimal128Array>()
                .expect("a Decimal128 array");
            let unit = 10i128.pow((i64::from(*scale) - kept) as u32);
            let inexact =
                (0..values.len()).find(|&i| values.is_valid(i) && values.value(i) % unit != 0);
            if let Some(i) = inexact {
                return Err(refuse(&values.value_as_string(i)));
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            for text in text_values(array)?.iter().flatten() {
                if decimal_places(text).is_some_and(|places| places > kept) {
                    return Err(refuse(text));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// `text` as PostgreSQL's `float8in` (or `float4in` with `real`) reads it: a decimal
/// number, `NaN`, `Infinity` or `inf` (signed, any case), white space around it; a number
/// out of the type's range is 22003 (Arrow's parse made it an infinity or zero), anything
/// else 22P02.
pub fn parse_float(text: &str, real: bool) -> Result<f64> {
    let ty = if real { "real" } else { "double precision" };
    let t = text.trim();
    let (negative, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let word = body.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
    let special = match word.then(|| body.to_ascii_lowercase()).as_deref() {
        Some("nan") => Some(f64::NAN),
        Some("infinity" | "inf") => Some(f64::INFINITY),
        _ => None,
    };
    if let Some(v) = special {
        return Ok(if negative { -v } else { v });
    }
    let plain = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    let parsed = if real {
        t.parse::<f32>().map(f64::from)
    } else {
        t.parse::<f64>()
    };
    let v = match parsed {
        Ok(v) if plain => v,
        _ => {
            return Err(PgError::new(
                SqlState::InvalidTextRepresentation,
                format!("invalid input syntax for type {ty}: \"{text}\""),
            ))
        }
    };
    // A mantissa with a nonzero digit that became zero or infinite is out of range.
    let mantissa = body.split(['e', 'E']).next().unwrap_or("");
    let nonzero = mantissa.bytes().any(|b| matches!(b, b'1'..=b'9'));
    if v.is_infinite() || (v == 0.0 && nonzero) {
        return Err(PgError::new(
            SqlState::NumericValueOutOfRange,
            format!("\"{text}\" is out of range for type {ty}"),
        ));
    }
    Ok(v)
}

/// Text as floats of `target` (Float32 or Float64) by [`parse_float`].
pub fn text_to_floats(array: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    let texts = text_values(array)?;
    let real = matches!(target, DataType::Float32);
    let values = texts
        .iter()
        .map(|t| t.map(|t| parse_float(t, real)).transpose())
        .collect::<Result<Vec<Option<f64>>>>()?;
    Ok(if real {
        Arc::new(
            values
                .into_iter()
                .map(|v| v.map(|v| v as f32))
                .collect::<datafusion::arrow::array::Float32Array>(),
        )
    } else {
        Arc::new(datafusion::arrow::array::Float64Array::from(values))
    })
}

/// The display scale PostgreSQL's numeric input gives `text`: its written decimals, less
/// an exponent (`1.50` 2, `1.5e1` 0, `15e-1` 1); `None` when it is not a decimal number.
pub(crate) fn input_scale(text: &str) -> Option<i32> {
    let (_, _, frac, exponent) = split_decimal(text)?;
    let places = frac.len() as i64 - exponent.unwrap_or(0);
    Some(places.clamp(0, i64::from(u8::MAX)) as i32)
}

/// The display scales values of `source` get when assigned to a column of type `ty`, for
/// an unconstrained `numeric` (`None` for other types): text keeps its written decimals,
/// a decimal its type's scale, an integer none, a float the decimals of its shortest
/// PostgreSQL text (15 significant digits for `double precision`, 6 for `real`).
/// Values a query computed come with their own scales instead (their companions).
pub fn input_scales(source: &ArrayRef, ty: &SqlType) -> Option<Int32Array> {
    if !ty.is_unconstrained_numeric() {
        return None;
    }
    let n = source.len();
    let constant =
        |s: i32| -> Int32Array { (0..n).map(|i| source.is_valid(i).then_some(s)).collect() };
    Some(match source.data_type() {
        DataType::Decimal128(_, s) => constant(i32::from(*s).max(0)),
        t if t.is_integer() => constant(0),
        // At most the decimals the column keeps: the cast rounds a float there.
        DataType::Float32 | DataType::Float64 => {
            let kept = i32::from(DEFAULT_NUMERIC.1);
            text_or_float_scales(source)?
                .iter()
                .map(|s| s.map(|s| s.min(kept)))
                .collect()
        }
        _ => text_or_float_scales(source)?,
    })
}

/// The display scales PostgreSQL's numeric input gives text (its written decimals) or a
/// float (the decimals of its text: 15 significant digits for `double precision`, 6 for
/// `real`); `None` for other types.
pub(crate) fn text_or_float_scales(source: &ArrayRef) -> Option<Int32Array> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Float32Type, Float64Type};
    let float = duet_common::numeric::float_scale;
    Some(match source.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let texts = text_values(source).ok()?;
            texts.iter().map(|t| t.and_then(input_scale)).collect()
        }
        DataType::Float64 => source
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(|v| float(v, 15)))
            .collect(),
        DataType::Float32 => source
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.map(|v| float(f64::from(v), 6)))
            .collect(),
        _ => return None,
    })
}

/// The number of decimal places a numeric literal needs (trailing zeros do not count), or
/// `None` when `text` is not a decimal number.
fn decimal_places(text: &str) -> Option<i64> {
    let (_, _, frac, exponent) = split_decimal(text)?;
    let places = frac.trim_end_matches('0').len() as i64;
    Some(places.saturating_sub(exponent.unwrap_or(0)).max(0))
}

/// Text numbers written with an exponent (`1.5e-9`, which PostgreSQL's numeric input
/// accepts and Arrow's decimal parser does not) in positional notation; `None` when no
/// value has one.
fn without_exponents(array: &ArrayRef) -> Option<ArrayRef> {
    let strings = array.as_any().downcast_ref::<StringArray>()?;
    if !strings.iter().flatten().any(|t| t.contains(['e', 'E'])) {
        return None;
    }
    let positional = strings
        .iter()
        .map(|v| v.map(|t| positional_decimal(t).unwrap_or_else(|| t.to_string())))
        .collect::<StringArray>();
    Some(Arc::new(positional))
}

/// A numeric literal's text in positional notation with the precision and scale
/// PostgreSQL gives its value (`'1.50'` is (3, 2), `'1.5e-9'` is `0.0000000015`, (11, 10));
/// `None` when it is not a number or needs more than 38 digits.
pub(crate) fn numeric_literal(text: &str) -> Option<(String, u8, i8)> {
    let plain = positional_decimal(text).unwrap_or_else(|| text.trim().to_string());
    let (_, int, frac, None) = split_decimal(&plain)? else {
        return None;
    };
    let int_digits = int.trim_start_matches('0').len();
    let precision = (int_digits + frac.len()).max(1);
    (precision <= 38).then(|| (plain.clone(), precision as u8, frac.len() as i8))
}

/// Text to `Decimal128(precision, scale)` when every value is plainly written (an optional
/// `-`, digits, and at most `scale` digits after a point, within `precision`): such a value
/// converts exactly, with no rounding or error to report, as Arrow's cast would convert it.
/// `None` (anything else, or another cast) leaves the column to the general cast. A COPY of
/// decimal columns spent most of its conversion time in Arrow's general parser.
fn plain_decimals(array: &ArrayRef, target: &DataType) -> Option<ArrayRef> {
    let DataType::Decimal128(precision, scale) = *target else {
        return None;
    };
    let strings = array.as_any().downcast_ref::<StringArray>()?;
    let scale = u32::try_from(scale).ok()?;
    if precision > 38 || scale > u32::from(precision) {
        return None;
    }
    let limit = 10i128.pow(u32::from(precision));
    let mut values = Vec::with_capacity(strings.len());
    for v in strings.iter() {
        values.push(match v {
            None => None,
            Some(text) => Some(plain_decimal(text.as_bytes(), scale, limit)?),
        });
    }
    let out = datafusion::arrow::array::Decimal128Array::from(values)
        .with_precision_and_scale(precision, scale as i8)
        .ok()?;
    Some(Arc::new(out))
}

/// `text` as an integer count of `10^-scale`, if it is `-?digits(.digits)?` with at most
/// `scale` fractional digits and a magnitude below `limit`.
fn plain_decimal(text: &[u8], scale: u32, limit: i128) -> Option<i128> {
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (int, frac) = match body.iter().position(|&b| b == b'.') {
        Some(p) => (&body[..p], &body[p + 1..]),
        None => (body, &body[body.len()..]),
    };
    if int.is_empty() || frac.len() > scale as usize || int.len() + scale as usize > 38 {
        return None;
    }
    let mut v: i128 = 0;
    for &b in int.iter().chain(frac) {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i128::from(b - b'0');
    }
    v *= 10i128.pow(scale - frac.len() as u32);
    if v >= limit {
        return None;
    }
    Some(if negative { -v } else { v })
}

/// PostgreSQL rounds (half away from zero) when assigning a fractional number to an
/// integer column; Arrow's cast truncates. Round first.
fn round_for_integer(array: &ArrayRef, ty: &SqlType) -> Result<ArrayRef> {
    let int_target = matches!(ty, SqlType::Int16 | SqlType::Int32 | SqlType::Int64);
    match array.data_type() {
        DataType::Float32 | DataType::Float64 if int_target => {
            let f = cast_with_options(array, &DataType::Float64, &CastOptions::default())
                .map_err(|e| from_datafusion(e.into()))?;
            let f = f
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Float64Array>()
                .ok_or_else(|| PgError::new(SqlState::InternalError, "f64"))?;
            Ok(Arc::new(
                datafusion::arrow::compute::kernels::arity::unary::<
                    _,
                    _,
                    datafusion::arrow::datatypes::Float64Type,
                >(f, |v: f64| v.round()),
            ))
        }
        DataType::Decimal128(_, s) if int_target && *s > 0 => {
            let d = array
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Decimal128Array>()
                .ok_or_else(|| PgError::new(SqlState::InternalError, "decimal"))?;
            let scale = 10i128.pow(*s as u32);
            let out: datafusion::arrow::array::Int64Array = d
                .iter()
                .map(|v| {
                    v.map(|m| {
                        let q = m / scale;
                        let r = m % scale;
                        let q = if r.abs() * 2 >= scale {
                            q + m.signum()
                        } else {
                            q
                        };
                        i64::try_from(q).unwrap_or(if q > 0 { i64::MAX } else { i64::MIN })
                    })
                })
                .collect();
            Ok(Arc::new(out))
        }
        _ => Ok(array.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array};

    #[test]
    fn an_unconstrained_numeric_refuses_digits_it_cannot_keep() {
        let numeric = SqlType::Numeric {
            precision: DEFAULT_NUMERIC.0,
            scale: DEFAULT_NUMERIC.1,
        };
        for text in ["0.12345678901", "1e-11", "-0.000000000001"] {
            let a: ArrayRef = Arc::new(StringArray::from(vec![Some("1.5"), None, Some(text)]));
            let err = assign(&a, &numeric, "c").unwrap_err();
            assert_eq!(err.state, SqlState::FeatureNotSupported, "{text}");
            assert!(err.message.contains(text), "{}", err.message);
        }
        for text in ["0.1234567890", "0.12345678900000", "1.5e-9", "12e3"] {
            let a: ArrayRef = Arc::new(StringArray::from(vec![text]));
            assign(&a, &numeric, "c").unwrap_or_else(|e| panic!("{text}: {}", e.message));
        }
        let decimals = datafusion::arrow::array::Decimal128Array::from(vec![
            Some(15_000_000_000_000),
            None,
            Some(123_456_789_012_345),
        ])
        .with_precision_and_scale(15, 15)
        .unwrap();
        let a: ArrayRef = Arc::new(decimals);
        let err = assign(&a, &numeric, "c").unwrap_err();
        assert_eq!(err.state, SqlState::FeatureNotSupported);
        assert!(err.message.contains("0.123456789012345"), "{}", err.message);
    }

    #[test]
    fn exponents_are_written_out_for_the_decimal_parser() {
        for (text, plain) in [
            ("1.5e-9", "0.0000000015"),
            ("12e3", "12000"),
            ("-1.25E1", "-12.5"),
            ("+.5e2", "50"),
            ("0.001e2", "0.1"),
        ] {
            assert_eq!(positional_decimal(text).as_deref(), Some(plain), "{text}");
        }
        assert_eq!(positional_decimal("1e"), None);
        assert_eq!(positional_decimal("1e-9223372036854775808"), None);
        assert_eq!(positional_decimal("1e9223372036854775807"), None);
        assert_eq!(decimal_places("1e-9223372036854775808"), Some(i64::MAX));
        assert_eq!(numeric_literal("1.50"), Some(("1.50".into(), 3, 2)));
        assert_eq!(numeric_literal(" -007 "), Some(("-007".into(), 1, 0)));
        assert_eq!(
            numeric_literal("1.5e-9"),
            Some(("0.0000000015".into(), 10, 10))
        );
        assert_eq!(numeric_literal("1.2.3"), None);
        assert_eq!(numeric_literal("NaN"), None);
        assert_eq!(positional_decimal("abc"), None);
    }

    #[test]
    fn assignment_casts_round_and_report_pg_codes() {
        let a: ArrayRef = Arc::new(Float64Array::from(vec![1.5, -2.5, 2.4]));
        assert_eq!(
            assign(&a, &SqlType::Int32, "c").unwrap(),
            vec![Datum::Int(2), Datum::Int(-3), Datum::Int(2)]
        );
        let big: ArrayRef = Arc::new(Int64Array::from(vec![1i64 << 40]));
        assert_eq!(
            assign(&big, &SqlType::Int32, "c").unwrap_err().state,
            SqlState::NumericValueOutOfRange
        );
        let txt: ArrayRef = Arc::new(StringArray::from(vec!["abc"]));
        assert_eq!(
            assign(&txt, &SqlType::Int32, "c").unwrap_err().state,
            SqlState::InvalidTextRepresentation
        );
        let numeric = SqlType::Numeric {
            precision: 4,
            scale: 2,
        };
        for (text, state) in [
            ("100", SqlState::NumericValueOutOfRange),
            ("-100.5", SqlState::NumericValueOutOfRange),
            ("1x", SqlState::InvalidTextRepresentation),
        ] {
            let a: ArrayRef = Arc::new(StringArray::from(vec![text]));
            assert_eq!(
                assign(&a, &numeric, "c").unwrap_err().state,
                state,
                "{text}"
            );
        }
        let hex: ArrayRef = Arc::new(StringArray::from(vec!["\\x00ff"]));
        assert_eq!(
            assign(&hex, &SqlType::Bytea, "c").unwrap(),
            vec![Datum::Bytes(vec![0, 255])]
        );
        let long: ArrayRef = Arc::new(StringArray::from(vec!["abcdef"]));
        assert_eq!(
            assign(&long, &SqlType::Varchar(Some(3)), "c")
                .unwrap_err()
                .state,
            SqlState::StringDataRightTruncation
        );
    }

    /// Plainly written decimals convert to what Arrow's cast gives; everything else is left
    /// to the cast (and its errors).
    #[test]
    fn plain_decimals_equal_the_general_cast() {
        let target = DataType::Decimal128(15, 2);
        let plain = [
            "0",
            "-0",
            "1",
            "12.3",
            "12.30",
            "-7.05",
            "0.01",
            "007.50",
            "9999999999999.99",
            "-9999999999999.99",
            "123456789012.3",
        ];
        let texts: ArrayRef = Arc::new(StringArray::from(
            plain
                .iter()
                .map(|s| Some(*s))
                .chain([None])
                .collect::<Vec<_>>(),
        ));
        let fast = plain_decimals(&texts, &target).expect("all plain");
        let opts = CastOptions {
            safe: false,
            format_options: FormatOptions::default(),
        };
        let slow = cast_with_options(&texts, &target, &opts).unwrap();
        assert_eq!(fast.as_ref(), slow.as_ref());
        let ty = SqlType::Numeric {
            precision: 15,
            scale: 2,
        };
        assert_eq!(assign(&texts, &ty, "c").unwrap()[3], {
            let d = duet_common::batch::array_to_datums(slow.as_ref(), &ty).unwrap();
            d[3].clone()
        });
        // Not plain: more digits than the scale (rounds), too many for the precision
        // (an error), signs, spaces, exponents, empty, no integer part, non-digits.
        for odd in [
            "1.005",
            "10000000000000",
            "+1",
            " 1",
            "1 ",
            "1e3",
            "",
            ".5",
            "1.2.3",
            "1,5",
            "-",
            "NaN",
        ] {
            let one: ArrayRef = Arc::new(StringArray::from(vec!["1", odd]));
            assert!(plain_decimals(&one, &target).is_none(), "{odd:?}");
        }
        assert!(plain_decimal(&[b'9'; 40], 2, 10i128.pow(38)).is_none());
        // The general cast still rounds and reports.
        let round: ArrayRef = Arc::new(StringArray::from(vec!["1.005"]));
        assert_eq!(assign(&round, &ty, "c").unwrap().len(), 1);
        let wide: ArrayRef = Arc::new(StringArray::from(vec!["10000000000000"]));
        assert!(assign(&wide, &ty, "c").is_err());
    }
}

/// `CAST(text AS float8 | real)` by PostgreSQL's input ([`parse_float`]).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FloatInput {
    target: DataType,
    signature: datafusion::logical_expr::Signature,
}

impl FloatInput {
    pub fn new(target: &DataType) -> Self {
        Self {
            target: target.clone(),
            signature: datafusion::logical_expr::Signature::any(
                1,
                datafusion::logical_expr::Volatility::Immutable,
            ),
        }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for FloatInput {
    fn name(&self) -> &str {
        "duet_float_input"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(self.target.clone())
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::common::Result<datafusion::logical_expr::ColumnarValue> {
        let (arrays, scalar) = crate::pgsemantics::arg_arrays(&args)?;
        let out = text_to_floats(&arrays[0], &self.target).map_err(|e| {
            datafusion::error::DataFusionError::External(Box::new(crate::error::PgErrorBox(e)))
        })?;
        crate::pgsemantics::columnar(out, scalar)
    }
}
