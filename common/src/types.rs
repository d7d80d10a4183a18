//! SQL column types and the in-memory value ([`Datum`]) both replicas decode rows into.

use std::fmt;

use arrow::datatypes::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};

/// A column's declared SQL type. The modifiers (`varchar(n)`, `numeric(p,s)`) are enforced
/// on write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlType {
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// `numeric(p, s)`; an unconstrained `numeric` is stored as (38, 10).
    Numeric {
        precision: u8,
        scale: i8,
    },
    Text,
    /// `varchar(n)`; `None` = unlimited.
    Varchar(Option<u32>),
    /// `char(n)`, blank-padded.
    Char(u32),
    Bool,
    Date,
    Timestamp,
    /// `timestamp with time zone`: an instant, stored as microseconds since 1970-01-01 UTC
    /// and shown in the session's `TimeZone`.
    TimestampTz,
    Bytea,
    /// `uuid`, stored as its canonical text (lowercase, hyphenated), whose text order is
    /// PostgreSQL's byte order.
    Uuid,
    /// `json`: the input text, validated.
    Json,
    /// `jsonb`: PostgreSQL's canonical output text (sorted keys, normalized spacing).
    Jsonb,
    /// `time` (without time zone): microseconds since midnight, 24:00:00 included.
    Time,
    /// `interval`: months, days and microseconds, kept apart as PostgreSQL keeps them.
    Interval,
    /// A one-dimensional array of a scalar type (`int[]`, `text[]`).
    Array(Box<SqlType>),
}

/// The time zone of a `timestamptz` column's Arrow type (instants are UTC; a result shows
/// them in the session's zone).
pub const UTC: &str = "+00:00";

/// Precision and scale of an unconstrained `numeric`.
pub const DEFAULT_NUMERIC: (u8, i8) = (38, 10);

impl SqlType {
    /// The Arrow type scans produce for this column.
    pub fn arrow_type(&self) -> DataType {
        match self {
            SqlType::Int16 => DataType::Int16,
            SqlType::Int32 => DataType::Int32,
            SqlType::Int64 => DataType::Int64,
            SqlType::Float32 => DataType::Float32,
            SqlType::Float64 => DataType::Float64,
            SqlType::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            SqlType::Text
            | SqlType::Varchar(_)
            | SqlType::Char(_)
            | SqlType::Uuid
            | SqlType::Json
            | SqlType::Jsonb => DataType::Utf8,
            SqlType::Bool => DataType::Boolean,
            SqlType::Date => DataType::Date32,
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            SqlType::Bytea => DataType::Binary,
            SqlType::Time => DataType::Time64(TimeUnit::Microsecond),
            SqlType::Interval => DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
            SqlType::Array(elem) => DataType::List(std::sync::Arc::new(
                arrow::datatypes::Field::new_list_field(elem.arrow_type(), true),
            )),
        }
    }

    /// Whether a column of this type can be part of a primary key or an index (its values
    /// have a byte order that is SQL's order and equality).
    pub fn is_key_type(&self) -> bool {
        !matches!(self, SqlType::Interval | SqlType::Array(_))
    }

    /// PostgreSQL's spelling, as `format_type` would print it.
    /// Whether this is the type of a `numeric` declared without precision (stored as
    /// [`DEFAULT_NUMERIC`]; an explicit `numeric(38,10)` is indistinguishable from it).
    pub fn is_unconstrained_numeric(&self) -> bool {
        matches!(self, SqlType::Numeric { precision, scale } if (*precision, *scale) == DEFAULT_NUMERIC)
    }

    /// PostgreSQL's type modifier (`atttypmod`) of a column of this type: the declared
    /// length + 4 of `varchar(n)` and `char(n)`, `(p << 16 | s) + 4` of `numeric(p,s)`, -1
    /// where nothing was declared.
    pub fn pg_typmod(&self) -> i32 {
        match self {
            SqlType::Varchar(Some(n)) | SqlType::Char(n) => *n as i32 + 4,
            SqlType::Array(elem) => elem.pg_typmod(),
            SqlType::Numeric { .. } if self.is_unconstrained_numeric() => -1,
            SqlType::Numeric { precision, scale } => {
                ((*precision as i32) << 16 | (*scale as i32 & 0xffff)) + 4
            }
            _ => -1,
        }
    }

    /// The OID of this type in PostgreSQL's `pg_type`.
    pub fn pg_type_oid(&self) -> u32 {
        match self {
            SqlType::Int16 => 21,
            SqlType::Int32 => 23,
            SqlType::Int64 => 20,
            SqlType::Float32 => 700,
            SqlType::Float64 => 701,
            SqlType::Numeric { .. } => 1700,
            SqlType::Text => 25,
            SqlType::Varchar(_) => 1043,
            SqlType::Char(_) => 1042,
            SqlType::Bool => 16,
            SqlType::Date => 1082,
            SqlType::Timestamp => 1114,
            SqlType::TimestampTz => 1184,
            SqlType::Bytea => 17,
            SqlType::Uuid => 2950,
            SqlType::Json => 114,
            SqlType::Jsonb => 3802,
            SqlType::Time => 1083,
            SqlType::Interval => 1186,
            SqlType::Array(elem) => match elem.as_ref() {
                SqlType::Int16 => 1005,
                SqlType::Int32 => 1007,
                SqlType::Int64 => 1016,
                SqlType::Float32 => 1021,
                SqlType::Float64 => 1022,
                SqlType::Numeric { .. } => 1231,
                SqlType::Text => 1009,
                SqlType::Varchar(_) => 1015,
                SqlType::Char(_) => 1014,
                SqlType::Bool => 1000,
                SqlType::Date => 1182,
                SqlType::Timestamp => 1115,
                SqlType::TimestampTz => 1185,
                SqlType::Bytea => 1001,
                SqlType::Uuid => 2951,
                SqlType::Json => 199,
                SqlType::Jsonb => 3807,
                SqlType::Time => 1183,
                SqlType::Interval => 1187,
                SqlType::Array(_) => 0,
            },
        }
    }

    /// `pg_type.typlen`: the byte width of a fixed-size type, -1 for a variable one.
    pub fn pg_type_len(&self) -> i16 {
        match self {
            SqlType::Bool => 1,
            SqlType::Int16 => 2,
            SqlType::Uuid => 16,
            SqlType::Int32 | SqlType::Float32 | SqlType::Date => 4,
            SqlType::Int64
            | SqlType::Float64
            | SqlType::Timestamp
            | SqlType::TimestampTz
            | SqlType::Time => 8,
            SqlType::Interval => 16,
            _ => -1,
        }
    }

    /// Whether values of this type are stored as text in a canonical form of their own
    /// (`uuid`, `json`, `jsonb`): written through their input function, reported on the
    /// wire by their declared type.
    pub fn is_typed_text(&self) -> bool {
        matches!(self, SqlType::Uuid | SqlType::Json | SqlType::Jsonb)
    }

    /// The type stored as typed text (see [`SqlType::is_typed_text`]) named `name`.
    pub fn typed_text(name: &str) -> Option<SqlType> {
        Some(match name {
            "uuid" => SqlType::Uuid,
            "json" => SqlType::Json,
            "jsonb" => SqlType::Jsonb,
            _ => return None,
        })
    }

    /// Whether values of this type are strings (which PostgreSQL collates).
    pub fn is_text(&self) -> bool {
        matches!(self, SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_))
    }

    pub fn pg_name(&self) -> String {
        match self {
            SqlType::Int16 => "smallint".into(),
            SqlType::Int32 => "integer".into(),
            SqlType::Int64 => "bigint".into(),
            SqlType::Float32 => "real".into(),
            SqlType::Float64 => "double precision".into(),
            SqlType::Numeric { .. } if self.is_unconstrained_numeric() => "numeric".into(),
            SqlType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            SqlType::Text => "text".into(),
            SqlType::Varchar(None) => "character varying".into(),
            SqlType::Varchar(Some(n)) => format!("character varying({n})"),
            SqlType::Char(n) => format!("character({n})"),
            SqlType::Bool => "boolean".into(),
            SqlType::Date => "date".into(),
            SqlType::Timestamp => "timestamp without time zone".into(),
            SqlType::TimestampTz => "timestamp with time zone".into(),
            SqlType::Bytea => "bytea".into(),
            SqlType::Uuid => "uuid".into(),
            SqlType::Json => "json".into(),
            SqlType::Jsonb => "jsonb".into(),
            SqlType::Time => "time without time zone".into(),
            SqlType::Interval => "interval".into(),
            SqlType::Array(elem) => format!("{}[]", elem.pg_name()),
        }
    }
}

/// The canonical text of a `uuid` (lowercase, hyphenated 8-4-4-4-12) of its 16 bytes.
pub fn uuid_text_of(bytes: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The 16 bytes of a `uuid`'s text (hex digits, hyphens skipped); `None` if it is not 32
/// hex digits.
pub fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    let mut digits = text.bytes().filter(|b| *b != b'-');
    for b in out.iter_mut() {
        let hi = (digits.next()? as char).to_digit(16)?;
        let lo = (digits.next()? as char).to_digit(16)?;
        *b = (hi * 16 + lo) as u8;
    }
    digits.next().is_none().then_some(out)
}

/// One SQL value. Integers of every width are held as `Int` (the column type says which);
/// a decimal is its unscaled mantissa (the column's scale applies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Datum {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Unscaled value of a `numeric(p, s)`; the scale is the column's. In an unconstrained
    /// `numeric` column, a value whose display scale is not known (written before display
    /// scales were kept): it shows the fewest decimals that hold it ([`minimal_scale`]).
    Decimal(i128),
    /// A value of an unconstrained `numeric` column: unscaled at [`DEFAULT_NUMERIC`]'s scale,
    /// and its display scale (how many decimals PostgreSQL prints: `1.50` has 2).
    Numeric(i128, u8),
    Text(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 00:00:00.
    Timestamp(i64),
    /// An `interval`: months, days, microseconds.
    Interval(i32, i32, i64),
    /// The elements of an array, NULLs included.
    Array(Vec<Datum>),
}

impl Datum {
    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }

    /// The display scale of a value of an unconstrained `numeric` column: its own, or
    /// where none was kept the fewest decimals that hold it. `None` for other datums.
    pub fn display_scale(&self) -> Option<u8> {
        match self {
            Datum::Numeric(_, d) => Some(*d),
            Datum::Decimal(v) => Some(unknown_scale(*v)),
            _ => None,
        }
    }
}

/// The display scale of an unconstrained `numeric` value (unscaled at
/// [`DEFAULT_NUMERIC`]'s scale) written before scales were kept: the fewest decimals that
/// show it.
pub fn unknown_scale(unscaled: i128) -> u8 {
    minimal_scale(unscaled, DEFAULT_NUMERIC.1 as u8)
}

/// The fewest decimals that show the value `unscaled` / 10^`scale` exactly.
pub fn minimal_scale(unscaled: i128, scale: u8) -> u8 {
    let mut d = scale;
    let mut v = unscaled;
    while d > 0 && v % 10 == 0 {
        v /= 10;
        d -= 1;
    }
    d
}

impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datum::Null => write!(f, "NULL"),
            Datum::Bool(b) => write!(f, "{}", if *b { "t" } else { "f" }),
            Datum::Int(v) => write!(f, "{v}"),
            Datum::Float(v) => write!(f, "{v}"),
            Datum::Decimal(v) | Datum::Numeric(v, _) => write!(f, "{v}"),
            Datum::Text(s) => write!(f, "{s}"),
            Datum::Bytes(b) => {
                write!(f, "\\x")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
            Datum::Date(d) => write!(f, "{d}"),
            Datum::Timestamp(t) => write!(f, "{t}"),
            Datum::Interval(m, d, us) => write!(f, "{m} mons {d} days {us} us"),
            Datum::Array(items) => {
                write!(f, "{{")?;
                for (i, d) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    write!(f, "{d}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

/// A row: one datum per column of the table, in column order.
pub type Row = Vec<Datum>;
