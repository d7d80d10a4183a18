//! `json`, `jsonb` and `uuid` values, stored as text in their canonical forms.
//!
//! - `uuid`: lowercase, hyphenated (`a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`), from any of
//!   PostgreSQL's input forms (upper case, braces, no hyphens). The text order of the
//!   canonical form is PostgreSQL's byte order.
//! - `json`: the input text, validated, as PostgreSQL keeps it.
//! - `jsonb`: PostgreSQL's output form: one space after `:` and `,`, object keys sorted by
//!   length then bytes with the last of duplicate keys kept, numbers as `numeric` prints
//!   them (`1e2` is `100`, `1.50` stays `1.50`), strings re-escaped.
//!
//! The operators `->`, `->>`, `#>`, `#>>`, `@>`, `<@`, `?`, `?|` and `?&` are functions
//! over the text ([`JsonOperator`]), planned by [`JsonPlanner`].

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use duet_common::batch::{PG_DECLARED_TYPE, PG_TYPMOD};
use sqlparser::ast::BinaryOperator;

use crate::error::{PgError, PgErrorBox, SqlState};

/// A parsed JSON value. Numbers keep their text; `span` is the value's place in the input
/// (`json` returns parts of its input as they were written).
#[derive(Debug, Clone)]
pub struct Json {
    pub value: Value,
    span: (usize, usize),
}

impl Json {
    /// A value made here, not read from input text.
    pub fn new(value: Value) -> Json {
        Json {
            value,
            span: (0, 0),
        }
    }

    /// The value as it was written in `source` (the text it was parsed from).
    pub fn source_text<'a>(&self, source: &'a str) -> &'a str {
        &source[self.span.0..self.span.1]
    }
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

fn invalid(text: &str, ty: &str) -> PgError {
    PgError::new(
        SqlState::InvalidTextRepresentation,
        format!("invalid input syntax for type {ty}: \"{text}\""),
    )
}

/// Parses JSON text (RFC 8259, as PostgreSQL reads it).
pub fn parse(text: &str) -> Result<Json, PgError> {
    let mut p = JsonParser {
        s: text.as_bytes(),
        pos: 0,
    };
    p.ws();
    let v = p.value().ok_or_else(|| invalid(text, "json"))?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(invalid(text, "json"));
    }
    Ok(v)
}

struct JsonParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn eat(&mut self, word: &[u8]) -> bool {
        if self.s[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Json> {
        let start = self.pos;
        let value = match *self.s.get(self.pos)? {
            b'n' if self.eat(b"null") => Value::Null,
            b't' if self.eat(b"true") => Value::Bool(true),
            b'f' if self.eat(b"false") => Value::Bool(false),
            b'"' => Value::String(self.string()?),
            b'[' => {
                self.pos += 1;
                let mut items = vec![];
                self.ws();
                if !self.eat(b"]") {
                    loop {
                        self.ws();
                        items.push(self.value()?);
                        self.ws();
                        if self.eat(b"]") {
                            break;
                        }
                        if !self.eat(b",") {
                            return None;
                        }
                    }
                }
                Value::Array(items)
            }
            b'{' => {
                self.pos += 1;
                let mut fields = vec![];
                self.ws();
                if !self.eat(b"}") {
                    loop {
                        self.ws();
                        if self.s.get(self.pos) != Some(&b'"') {
                            return None;
                        }
                        let key = self.string()?;
                        self.ws();
                        if !self.eat(b":") {
                            return None;
                        }
                        self.ws();
                        fields.push((key, self.value()?));
                        self.ws();
                        if self.eat(b"}") {
                            break;
                        }
                        if !self.eat(b",") {
                            return None;
                        }
                    }
                }
                Value::Object(fields)
            }
            b'-' | b'0'..=b'9' => Value::Number(self.number()?),
            _ => return None,
        };
        Some(Json {
            value,
            span: (start, self.pos),
        })
    }

    fn number(&mut self) -> Option<String> {
        let start = self.pos;
        self.eat(b"-");
        let digits = |p: &mut Self| {
            let s = p.pos;
            while p.s.get(p.pos).is_some_and(u8::is_ascii_digit) {
                p.pos += 1;
            }
            p.pos - s
        };
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && self.s[int_start] == b'0') {
            return None;
        }
        if self.eat(b".") && digits(self) == 0 {
            return None;
        }
        if matches!(self.s.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.s.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = std::str::from_utf8(self.s.get(self.pos..self.pos + 4)?).ok()?;
        let v = u32::from_str_radix(h, 16).ok()?;
        self.pos += 4;
        Some(v)
    }

    fn string(&mut self) -> Option<String> {
        self.pos += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let b = *self.s.get(self.pos)?;
            self.pos += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = *self.s.get(self.pos)?;
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !self.eat(b"\\u") {
                                    return None;
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            // PostgreSQL cannot store \u0000 in text.
                            if code == 0 {
                                return None;
                            }
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return None,
                _ => out.push(b),
            }
        }
    }
}

/// A JSON number as PostgreSQL's `numeric` prints it (`jsonb` stores numbers as numeric):
/// no exponent, the scale of the input (`1.50` stays, `1e2` is `100`, `1.5e-3` is `0.0015`).
pub fn numeric_text(n: &str) -> String {
    let (negative, n) = match n.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, n),
    };
    let (mantissa, exp) = match n.find(['e', 'E']) {
        Some(i) => (&n[..i], n[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (n, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int}{frac}");
    // The value is digits × 10^k.
    let k = exp - frac.len() as i64;
    let mut text = if k >= 0 {
        format!("{digits}{}", "0".repeat(k as usize))
    } else {
        let point = digits.len() as i64 + k;
        if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        }
    };
    // Leading zeros of the integer part go, one stays before the point.
    let int_len = text.find('.').unwrap_or(text.len());
    let zeros = text[..int_len].bytes().take_while(|b| *b == b'0').count();
    let zeros = zeros.min(int_len - 1);
    text.drain(..zeros);
    let zero = text.bytes().all(|b| b == b'0' || b == b'.');
    if negative && !zero {
        text.insert(0, '-');
    }
    text
}

/// `s` as a JSON string, escaped as PostgreSQL escapes it.
pub(crate) fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `jsonb`'s canonical value: object keys sorted by length then bytes, the last of
/// duplicates kept; numbers as numeric prints them.
pub fn canonical(v: Json) -> Json {
    let value = match v.value {
        Value::Number(n) => Value::Number(numeric_text(&n)),
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        Value::Object(fields) => {
            let mut out: Vec<(String, Json)> = Vec::with_capacity(fields.len());
            for (k, v) in fields {
                let v = canonical(v);
                match out.iter_mut().find(|(x, _)| *x == k) {
                    Some(slot) => slot.1 = v,
                    None => out.push((k, v)),
                }
            }
            out.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
            Value::Object(out)
        }
        other => other,
    };
    Json {
        value,
        span: v.span,
    }
}

/// `v` in jsonb's output form.
pub fn write_jsonb(v: &Json, out: &mut String) {
    match &v.value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(n),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_jsonb(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(k, out);
                out.push_str(": ");
                write_jsonb(v, out);
            }
            out.push('}');
        }
    }
}

/// The stored text of a `jsonb` value read from `text`.
pub fn jsonb_text(text: &str) -> Result<String, PgError> {
    let v = canonical(parse(text)?);
    let mut out = String::with_capacity(text.len());
    write_jsonb(&v, &mut out);
    Ok(out)
}

/// The stored text of a `json` value: the input, once it is known to be JSON.
pub fn json_text(text: &str) -> Result<String, PgError> {
    parse(text).map(|_| text.to_string())
}

/// The stored text of a `uuid` read from `text`: 32 hex digits, in groups of 8-4-4-4-12
/// with optional hyphens after any group of four, optionally in braces (PostgreSQL's input
/// forms); lowercase and hyphenated.
pub fn uuid_text(text: &str) -> Result<String, PgError> {
    let bad = || invalid(text, "uuid");
    let inner = match text.strip_prefix('{') {
        Some(rest) => rest.strip_suffix('}').ok_or_else(bad)?,
        None => text,
    };
    let mut hex = String::with_capacity(32);
    let mut since_hyphen = 0;
    for (i, c) in inner.chars().enumerate() {
        if c == '-' {
            // A hyphen may follow any group of four digits, never lead, trail or repeat.
            if i == 0 || since_hyphen == 0 || since_hyphen % 4 != 0 || hex.len() == 32 {
                return Err(bad());
            }
            since_hyphen = 0;
            continue;
        }
        if !c.is_ascii_hexdigit() {
            return Err(bad());
        }
        hex.push(c.to_ascii_lowercase());
        since_hyphen += 1;
    }
    if hex.len() != 32 || inner.ends_with('-') {
        return Err(bad());
    }
    let bytes = duet_common::types::uuid_bytes(&hex).ok_or_else(bad)?;
    Ok(duet_common::types::uuid_text_of(&bytes))
}

/// The stored text of a value of type `ty` (`uuid`, `json` or `jsonb`) read from `text`:
/// the type's input function.
pub fn input(ty: &str, text: &str) -> Result<String, PgError> {
    match ty {
        "uuid" => uuid_text(text),
        "jsonb" => jsonb_text(text),
        _ => json_text(text),
    }
}

/// The declared type (`json`, `jsonb` or `uuid`) of a field, from its metadata.
pub fn declared(field: &Field) -> Option<&str> {
    field
        .metadata()
        .get(PG_DECLARED_TYPE)
        .map(String::as_str)
        .filter(|t| duet_common::SqlType::typed_text(t).is_some())
}

/// A text field declared as `ty` (`json`, `jsonb`, `uuid`): what the wire reports.
pub fn declared_field(name: &str, ty: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable).with_metadata(
        [
            (PG_DECLARED_TYPE.to_string(), ty.to_string()),
            (PG_TYPMOD.to_string(), "-1".to_string()),
        ]
        .into(),
    )
}

pub(crate) fn pg_error(e: PgError) -> DataFusionError {
    DataFusionError::External(Box::new(PgErrorBox(e)))
}

/// `CAST(x AS json|jsonb|uuid)`: `duet_json(text)`, `duet_jsonb(text)`, `duet_uuid(text)`,
/// which check and canonicalize the text and type the result (field metadata) so the wire
/// and the operators know it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TypeInput {
    name: &'static str,
    ty: &'static str,
    signature: Signature,
}

impl TypeInput {
    pub const TYPES: [&'static str; 3] = ["json", "jsonb", "uuid"];

    pub fn function_name(ty: &str) -> Option<&'static str> {
        Some(match ty {
            "json" => "duet_json",
            "jsonb" => "duet_jsonb",
            "uuid" => "duet_uuid",
            _ => return None,
        })
    }

    pub fn udf(ty: &'static str) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            name: Self::function_name(ty).unwrap_or("duet_json"),
            ty,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for TypeInput {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let nullable = args.arg_fields.first().is_none_or(|f| f.is_nullable());
        Ok(Arc::new(declared_field(self.name, self.ty, nullable)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = crate::pgsemantics::arg_arrays(&args)?;
        let texts = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let mut out = StringBuilder::new();
        for v in texts.as_string::<i32>() {
            match v {
                Some(v) => out.append_value(input(self.ty, v).map_err(pg_error)?),
                None => out.append_null(),
            }
        }
        crate::pgsemantics::columnar(Arc::new(out.finish()), scalar)
    }
}

/// The jsonb functions over values: `jsonb_typeof`, `jsonb_array_length`, `to_jsonb`,
/// `jsonb_build_object` and `jsonb_build_array`, with PostgreSQL's results and errors. A
/// value becomes JSON as `to_jsonb` makes it: numbers and booleans as themselves, text as
/// a string, json and jsonb as their value, dates and timestamps as ISO strings; a type
/// without a rule here (timestamptz, interval, arrays, bytea) is refused (0A000).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonbFunction {
    name: &'static str,
    signature: Signature,
}

impl JsonbFunction {
    pub const NAMES: [&'static str; 11] = [
        "jsonb_typeof",
        "jsonb_array_length",
        "to_jsonb",
        "jsonb_build_object",
        "jsonb_build_array",
        "jsonb_set",
        "json_typeof",
        "json_array_length",
        "to_json",
        "json_build_object",
        "json_build_array",
    ];

    pub fn udf(name: &'static str) -> ScalarUDF {
        let signature = match name {
            "jsonb_build_object" | "jsonb_build_array" | "json_build_object"
            | "json_build_array" => Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::VariadicAny,
                    datafusion::logical_expr::TypeSignature::Nullary,
                ],
                Volatility::Immutable,
            ),
            "jsonb_set" => Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Any(3),
                    datafusion::logical_expr::TypeSignature::Any(4),
                ],
                Volatility::Immutable,
            ),
            _ => Signature::any(1, Volatility::Immutable),
        };
        ScalarUDF::new_from_impl(Self { name, signature })
    }

    fn returns_jsonb(&self) -> bool {
        !matches!(
            self.name,
            "jsonb_typeof" | "jsonb_array_length" | "json_typeof" | "json_array_length"
        )
    }

    /// The type of the JSON the function makes.
    fn made_type(&self) -> &'static str {
        if self.name.starts_with("jsonb") || self.name == "to_jsonb" {
            "jsonb"
        } else {
            "json"
        }
    }

    /// The jsonb function that answers the same for a json argument (`json_typeof` is
    /// `jsonb_typeof` of the parsed value).
    fn jsonb_name(&self) -> &'static str {
        match self.name {
            "json_typeof" => "jsonb_typeof",
            "json_array_length" => "jsonb_array_length",
            other => other,
        }
    }
}

/// The text `to_json` makes of row `i` of `array`: a json value as it was written, a jsonb
/// value in jsonb's form, anything else as `to_jsonb` reads it; `None` for SQL NULL.
fn json_text_of(array: &ArrayRef, field: &Field, i: usize) -> Result<Option<String>, PgError> {
    if declared(field) == Some("json") && !array.is_null(i) {
        if let Some(texts) = array.as_string_opt::<i32>() {
            return Ok(Some(texts.value(i).to_string()));
        }
    }
    Ok(json_of(array, field, i)?.map(|v| {
        let mut s = String::new();
        write_jsonb(&v, &mut s);
        s
    }))
}

/// The key a `json[b]_build_object` argument (the `position`th, from 0) makes of row `i`:
/// a string or a number's text; 22023 for NULL.
fn object_key(
    array: &ArrayRef,
    field: &Field,
    i: usize,
    position: usize,
) -> Result<String, PgError> {
    match json_of(array, field, i)? {
        None => Err(PgError::new(
            SqlState::InvalidParameterValue,
            format!("argument {}: key must not be null", position + 1),
        )),
        Some(key) => Ok(key_text(&key)),
    }
}

/// The object key a JSON value names: a string's or a number's text, any other value's
/// jsonb text.
pub(crate) fn key_text(key: &Json) -> String {
    match &key.value {
        Value::String(s) | Value::Number(s) => s.clone(),
        _ => {
            let mut s = String::new();
            write_jsonb(key, &mut s);
            s
        }
    }
}

/// `to_json`, `json_build_object` and `json_build_array` of row `i`, in PostgreSQL's json
/// text: members `"key" : value` and items separated by `, `, json arguments as written,
/// keys in the order given (duplicates kept).
fn json_row(
    name: &str,
    arrays: &[ArrayRef],
    fields: &[FieldRef],
    i: usize,
) -> Result<Option<String>, PgError> {
    let piece = |k: usize| -> Result<String, PgError> {
        Ok(json_text_of(&arrays[k], &fields[k], i)?.unwrap_or_else(|| "null".into()))
    };
    Ok(Some(match name {
        "to_json" => return json_text_of(&arrays[0], &fields[0], i),
        "json_build_array" => {
            let items = (0..arrays.len())
                .map(piece)
                .collect::<Result<Vec<_>, _>>()?;
            format!("[{}]", items.join(", "))
        }
        _ => {
            let mut members = Vec::with_capacity(arrays.len() / 2);
            for k in (0..arrays.len()).step_by(2) {
                let key = object_key(&arrays[k], &fields[k], i, k)?;
                let mut member = String::new();
                write_string(&key, &mut member);
                member.push_str(" : ");
                member.push_str(&piece(k + 1)?);
                members.push(member);
            }
            format!("{{{}}}", members.join(", "))
        }
    }))
}

/// The JSON value of row `i` of `array` (whose field is `field`), as `to_jsonb` makes it;
/// `None` for SQL NULL.
fn json_of(array: &ArrayRef, field: &Field, i: usize) -> Result<Option<Json>, PgError> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    if array.data_type() == &DataType::Null || array.is_null(i) {
        return Ok(None);
    }
    let json = |value| Json {
        value,
        span: (0, 0),
    };
    let text = || -> Result<String, PgError> {
        ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
            .map(|f| f.value(i).to_string())
            .map_err(|e| PgError::new(SqlState::InternalError, e.to_string()))
    };
    Ok(Some(match array.data_type() {
        DataType::Boolean => json(Value::Bool(array.as_boolean().value(i))),
        t if t.is_integer() || matches!(t, DataType::Decimal128(..)) => {
            json(Value::Number(numeric_text(&text()?)))
        }
        DataType::Float32 | DataType::Float64 => {
            let t = text()?;
            match t.parse::<f64>() {
                Ok(v) if v.is_finite() => json(Value::Number(numeric_text(&t))),
                _ => json(Value::String(t)),
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let t = text()?;
            match declared(field) {
                Some("json" | "jsonb") => canonical(parse(&t)?),
                _ => json(Value::String(t)),
            }
        }
        DataType::Date32 => json(Value::String(text()?)),
        // ISO 8601, fractional seconds without trailing zeros (`10:00:01.5`).
        DataType::Timestamp(_, None) => {
            let t = text()?;
            let t = match t.split_once('.') {
                Some((whole, frac)) => match frac.trim_end_matches('0') {
                    "" => whole.to_string(),
                    frac => format!("{whole}.{frac}"),
                },
                None => t,
            };
            json(Value::String(t))
        }
        other => {
            return Err(PgError::unsupported(format!(
                "to_jsonb of a value of type {other}"
            )))
        }
    }))
}

impl ScalarUDFImpl for JsonbFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.jsonb_name() {
            "jsonb_array_length" => DataType::Int32,
            _ => DataType::Utf8,
        })
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(if self.returns_jsonb() {
            declared_field(self.name, self.made_type(), true)
        } else {
            Field::new(self.name, self.return_type(&[])?, true)
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = crate::pgsemantics::arg_arrays(&args)?;
        let rows = if scalar { 1 } else { args.number_rows };
        let fields = &args.arg_fields;
        if matches!(self.name, "jsonb_build_object" | "json_build_object") && arrays.len() % 2 == 1
        {
            return Err(pg_error(
                PgError::new(
                    SqlState::InvalidParameterValue,
                    "argument list must have even number of elements",
                )
                .with_hint(format!(
                    "The arguments of {}() must consist of alternating keys and values.",
                    self.name
                )),
            ));
        }
        if matches!(
            self.name,
            "to_json" | "json_build_object" | "json_build_array"
        ) {
            let mut out = StringBuilder::new();
            for i in 0..rows {
                out.append_option(json_row(self.name, &arrays, fields, i).map_err(pg_error)?);
            }
            return crate::pgsemantics::columnar(Arc::new(out.finish()), scalar);
        }
        if self.name == "jsonb_set" {
            let out = jsonb_set_rows(&arrays, rows).map_err(pg_error)?;
            return crate::pgsemantics::columnar(Arc::new(out), scalar);
        }
        let mut text = StringBuilder::new();
        let mut lengths = datafusion::arrow::array::Int32Builder::new();
        for i in 0..rows {
            let value = match self.name {
                "jsonb_build_array" => {
                    let mut items = Vec::with_capacity(arrays.len());
                    for (a, f) in arrays.iter().zip(fields) {
                        let v = json_of(a, f, i).map_err(pg_error)?;
                        items.push(v.unwrap_or(Json {
                            value: Value::Null,
                            span: (0, 0),
                        }));
                    }
                    Some(Value::Array(items))
                }
                "jsonb_build_object" => {
                    let mut members = Vec::with_capacity(arrays.len() / 2);
                    for (k, pair) in arrays.chunks(2).enumerate() {
                        let key =
                            object_key(&pair[0], &fields[2 * k], i, 2 * k).map_err(pg_error)?;
                        let v = json_of(&pair[1], &fields[2 * k + 1], i).map_err(pg_error)?;
                        members.push((
                            key,
                            v.unwrap_or(Json {
                                value: Value::Null,
                                span: (0, 0),
                            }),
                        ));
                    }
                    Some(Value::Object(members))
                }
                // A string literal given to `jsonb_typeof('…')` is read as JSON, as
                // PostgreSQL types the literal by the function's argument.
                "jsonb_typeof" | "jsonb_array_length" | "json_typeof" | "json_array_length"
                    if declared(&fields[0]).is_none()
                        && matches!(arrays[0].data_type(), DataType::Utf8) =>
                {
                    let texts = arrays[0].as_string::<i32>();
                    match texts.is_null(i) {
                        true => None,
                        false => Some(parse(texts.value(i)).map_err(pg_error)?.value),
                    }
                }
                _ => json_of(&arrays[0], &fields[0], i)
                    .map_err(pg_error)?
                    .map(|j| j.value),
            };
            let Some(value) = value else {
                text.append_null();
                lengths.append_null();
                continue;
            };
            match self.jsonb_name() {
                "jsonb_typeof" => text.append_value(match value {
                    Value::Object(_) => "object",
                    Value::Array(_) => "array",
                    Value::String(_) => "string",
                    Value::Number(_) => "number",
                    Value::Bool(_) => "boolean",
                    Value::Null => "null",
                }),
                "jsonb_array_length" => match value {
                    Value::Array(items) => lengths.append_value(items.len() as i32),
                    v => {
                        let what = if matches!(v, Value::Object(_)) {
                            "a non-array"
                        } else {
                            "a scalar"
                        };
                        return Err(pg_error(PgError::new(
                            SqlState::InvalidParameterValue,
                            format!("cannot get array length of {what}"),
                        )));
                    }
                },
                _ => {
                    let mut out = String::new();
                    write_jsonb(
                        &canonical(Json {
                            value,
                            span: (0, 0),
                        }),
                        &mut out,
                    );
                    text.append_value(out);
                }
            }
        }
        let out: ArrayRef = match self.jsonb_name() {
            "jsonb_array_length" => Arc::new(lengths.finish()),
            _ => Arc::new(text.finish()),
        };
        crate::pgsemantics::columnar(out, scalar)
    }
}

/// `jsonb_set(target, path, new_value [, create_if_missing])` row by row: NULL when any
/// argument is (the function is strict).
fn jsonb_set_rows(
    arrays: &[ArrayRef],
    rows: usize,
) -> Result<datafusion::arrow::array::StringArray, PgError> {
    use crate::error::from_datafusion;
    let texts = |k: usize| {
        datafusion::arrow::compute::cast(&arrays[k], &DataType::Utf8)
            .map_err(|e| from_datafusion(e.into()))
    };
    let (targets, news) = (texts(0)?, texts(2)?);
    let (targets, news) = (targets.as_string::<i32>(), news.as_string::<i32>());
    let mut out = StringBuilder::new();
    for i in 0..rows {
        if arrays
            .iter()
            .any(|a| a.data_type() == &DataType::Null || a.is_null(i))
        {
            out.append_null();
            continue;
        }
        let mut target = canonical(parse(targets.value(i))?);
        let path = ScalarValue::try_from_array(&arrays[1], i)
            .and_then(|p| text_list(&p))
            .map_err(from_datafusion)?;
        let new = canonical(parse(news.value(i))?);
        let create = match arrays.get(3) {
            Some(a) => a.as_boolean_opt().map(|b| b.value(i)).ok_or_else(|| {
                PgError::new(
                    SqlState::DatatypeMismatch,
                    "create_if_missing must be a boolean",
                )
            })?,
            None => true,
        };
        if !matches!(target.value, Value::Object(_) | Value::Array(_)) {
            return Err(PgError::new(
                SqlState::InvalidParameterValue,
                "cannot set path in scalar",
            ));
        }
        set_path(&mut target, &path, 0, new, create)?;
        let mut s = String::new();
        write_jsonb(&canonical(target), &mut s);
        out.append_value(s);
    }
    Ok(out.finish())
}

/// Sets `path[level..]` in `v` to `new` as `jsonb_set` does: a missing last key or an
/// index past either end is added when `create`; a missing step or a scalar on the way
/// leaves `v` as it is.
fn set_path(
    v: &mut Json,
    path: &[Option<String>],
    level: usize,
    new: Json,
    create: bool,
) -> Result<(), PgError> {
    let Some(step) = path.get(level) else {
        return Ok(());
    };
    let Some(step) = step else {
        return Err(PgError::new(
            SqlState::NullValueNotAllowed,
            format!("path element at position {} is null", level + 1),
        ));
    };
    let last = level + 1 == path.len();
    match &mut v.value {
        Value::Object(fields) => match fields.iter_mut().find(|(k, _)| k == step) {
            Some((_, slot)) if last => *slot = new,
            Some((_, slot)) => set_path(slot, path, level + 1, new, create)?,
            None if last && create => fields.push((step.clone(), new)),
            None => {}
        },
        Value::Array(items) => {
            let index: i64 = step.trim().parse().map_err(|_| {
                PgError::new(
                    SqlState::InvalidTextRepresentation,
                    format!(
                        "path element at position {} is not an integer: \"{step}\"",
                        level + 1
                    ),
                )
            })?;
            let len = items.len() as i64;
            let at = if index < 0 { len + index } else { index };
            if (0..len).contains(&at) {
                let slot = &mut items[at as usize];
                if last {
                    *slot = new;
                } else {
                    set_path(slot, path, level + 1, new, create)?;
                }
            } else if last && create {
                if at < 0 {
                    items.insert(0, new);
                } else {
                    items.push(new);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// A JSON operator (see the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `->`: a field or element, as json.
    Get,
    /// `->>`: as text.
    GetText,
    /// `#>`: at a path, as json.
    Path,
    /// `#>>`: at a path, as text.
    PathText,
    /// `@>`: contains.
    Contains,
    /// `<@`: is contained by.
    ContainedBy,
    /// `?`: the key (or string element) exists.
    Exists,
    /// `?|`: any of the keys exists.
    ExistsAny,
    /// `?&`: all of them exist.
    ExistsAll,
    /// `jsonb || jsonb`: objects merged (the right one's value for a key in both), arrays
    /// concatenated, anything else as a one-element array.
    Concat,
    /// `jsonb - text | text[] | integer`: keys (or string elements of an array) removed,
    /// or the array element at an index (negative from the end).
    Delete,
}

impl Op {
    fn of(op: &BinaryOperator) -> Option<Self> {
        Some(match op {
            BinaryOperator::Arrow => Op::Get,
            BinaryOperator::LongArrow => Op::GetText,
            BinaryOperator::HashArrow => Op::Path,
            BinaryOperator::HashLongArrow => Op::PathText,
            BinaryOperator::AtArrow => Op::Contains,
            BinaryOperator::ArrowAt => Op::ContainedBy,
            BinaryOperator::Question => Op::Exists,
            BinaryOperator::QuestionPipe => Op::ExistsAny,
            BinaryOperator::QuestionAnd => Op::ExistsAll,
            BinaryOperator::StringConcat => Op::Concat,
            BinaryOperator::Minus => Op::Delete,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Op::Get => "duet_json_get",
            Op::GetText => "duet_json_get_text",
            Op::Path => "duet_json_path",
            Op::PathText => "duet_json_path_text",
            Op::Contains => "duet_jsonb_contains",
            Op::ContainedBy => "duet_jsonb_contained",
            Op::Exists => "duet_jsonb_exists",
            Op::ExistsAny => "duet_jsonb_exists_any",
            Op::ExistsAll => "duet_jsonb_exists_all",
            Op::Concat => "duet_jsonb_concat",
            Op::Delete => "duet_jsonb_delete",
        }
    }

    fn returns_json(self) -> bool {
        matches!(self, Op::Get | Op::Path | Op::Concat | Op::Delete)
    }

    fn returns_bool(self) -> bool {
        matches!(
            self,
            Op::Contains | Op::ContainedBy | Op::Exists | Op::ExistsAny | Op::ExistsAll
        )
    }
}

/// Plans the JSON operators over `json`/`jsonb` operands (see [`JsonOperator`]).
#[derive(Debug, Default)]
pub struct JsonPlanner;

impl ExprPlanner for JsonPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let Some(op) = Op::of(&expr.op) else {
            return Ok(PlannerResult::Original(expr));
        };
        // `||` and `-` of other types (placeholders among them) are not looked at closely.
        let fields = expr
            .left
            .to_field(schema)
            .and_then(|(_, l)| Ok((l, expr.right.to_field(schema)?.1)));
        let (left, right) = match fields {
            Ok(f) => f,
            Err(_) if matches!(op, Op::Concat | Op::Delete) => {
                return Ok(PlannerResult::Original(expr))
            }
            Err(e) => return Err(e),
        };
        let is_json = |f: &Field| matches!(declared(f), Some("json" | "jsonb"));
        let is_text = |f: &Field| matches!(f.data_type(), DataType::Utf8 | DataType::Utf8View);
        // `@>` and `<@` of arrays, and anything over non-JSON operands, stay DataFusion's.
        let jsonb = |f: &Field| declared(f) == Some("jsonb");
        let literal = |e: &Expr| matches!(e, Expr::Literal(ScalarValue::Utf8(_), _));
        let json_operands = match op {
            Op::ContainedBy => is_json(&right) || (is_json(&left) && is_text(&right)),
            // jsonb with jsonb or a literal; with a text value it is text concatenation
            // (PostgreSQL's `anynonarray || text`), and `json` has no `||` of its own.
            Op::Concat => {
                (jsonb(&left) && (jsonb(&right) || literal(&expr.right)))
                    || (jsonb(&right) && literal(&expr.left))
            }
            Op::Delete => jsonb(&left),
            _ => is_json(&left),
        };
        if !json_operands {
            return Ok(PlannerResult::Original(expr));
        }
        if op.returns_bool() && !(jsonb(&left) || jsonb(&right)) {
            return Err(pg_error(PgError::new(
                SqlState::UndefinedFunction,
                format!("operator does not exist: json {} unknown", expr.op),
            )));
        }
        let udf = ScalarUDF::new_from_impl(JsonOperator::new(op));
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::new(udf), vec![expr.left, expr.right]),
        )))
    }
}

/// One JSON operator as a function of its two operands.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonOperator {
    op: Op,
    signature: Signature,
}

impl JsonOperator {
    fn new(op: Op) -> Self {
        Self {
            op,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// A path or key list operand: `text[]`, or text in array-literal form (`'{a,b}'`, read
/// by `crate::arrays`); `None` for a NULL element.
fn text_list(v: &ScalarValue) -> Result<Vec<Option<String>>> {
    match v {
        ScalarValue::List(l) => {
            let values = datafusion::arrow::compute::cast(l.value(0).as_ref(), &DataType::Utf8)?;
            Ok(values
                .as_string::<i32>()
                .iter()
                .map(|s| s.map(str::to_string))
                .collect())
        }
        other => crate::arrays::parse_array_text(&other.to_string()).map_err(pg_error),
    }
}

/// The member of `v` a key or index names (negative indexes count from the end).
fn member<'a>(v: &'a Json, key: &str) -> Option<&'a Json> {
    match &v.value {
        Value::Object(fields) => fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
        Value::Array(items) => {
            let i: i64 = key.trim().parse().ok()?;
            let i = if i < 0 { items.len() as i64 + i } else { i };
            usize::try_from(i).ok().and_then(|i| items.get(i))
        }
        _ => None,
    }
}

/// A sub-value as its operator returns it: `json` the input's text, `jsonb` its
/// canonical text; as text (`->>`), a string unescaped and `null` as SQL NULL.
pub(crate) fn output(v: &Json, source: &str, jsonb: bool, as_text: bool) -> Option<String> {
    match &v.value {
        Value::Null if as_text => None,
        Value::String(s) if as_text => Some(s.clone()),
        _ if jsonb => {
            let mut out = String::new();
            write_jsonb(v, &mut out);
            Some(out)
        }
        _ => Some(source[v.span.0..v.span.1].to_string()),
    }
}

/// Numbers equal as numbers (`1.0` and `1`).
fn same_number(a: &str, b: &str) -> bool {
    fn norm(n: &str) -> String {
        let t = numeric_text(n);
        let t = if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        };
        if t == "-0" {
            "0".into()
        } else {
            t
        }
    }
    norm(a) == norm(b)
}

/// jsonb's `a @> b`, as PostgreSQL defines containment.
fn contains(a: &Json, b: &Json, top: bool) -> bool {
    match (&a.value, &b.value) {
        (Value::Object(af), Value::Object(bf)) => bf.iter().all(|(k, bv)| {
            af.iter()
                .rev()
                .find(|(x, _)| x == k)
                .is_some_and(|(_, av)| contains(av, bv, false))
        }),
        (Value::Array(ai), Value::Array(bi)) => bi.iter().all(|bv| {
            ai.iter().any(|av| match (&av.value, &bv.value) {
                (Value::Array(_) | Value::Object(_), _)
                | (_, Value::Array(_) | Value::Object(_)) => contains(av, bv, false),
                _ => scalar_eq(av, bv),
            })
        }),
        // A top-level array contains a scalar it has as an element.
        (Value::Array(ai), _) if top && !matches!(b.value, Value::Object(_)) => {
            ai.iter().any(|av| scalar_eq(av, b))
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => scalar_eq(a, b),
    }
}

fn scalar_eq(a: &Json, b: &Json) -> bool {
    match (&a.value, &b.value) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => same_number(x, y),
        (Value::String(x), Value::String(y)) => x == y,
        _ => false,
    }
}

/// jsonb's `?`: a top-level key, or a string element of a top-level array, or the string.
fn has_key(v: &Json, key: &str) -> bool {
    match &v.value {
        Value::Object(fields) => fields.iter().any(|(k, _)| k == key),
        Value::Array(items) => items
            .iter()
            .any(|i| matches!(&i.value, Value::String(s) if s == key)),
        Value::String(s) => s == key,
        _ => false,
    }
}

impl ScalarUDFImpl for JsonOperator {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.op.returns_bool() {
            DataType::Boolean
        } else {
            DataType::Utf8
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let ty = match self.op {
            Op::Concat | Op::Delete => "jsonb",
            _ => args
                .arg_fields
                .first()
                .and_then(|f| declared(f))
                .unwrap_or("json"),
        };
        Ok(Arc::new(if self.op.returns_json() {
            declared_field(self.name(), ty, true)
        } else {
            Field::new(self.name(), self.return_type(&[])?, true)
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let jsonb = args.arg_fields.iter().any(|f| declared(f) == Some("jsonb"));
        let (arrays, scalar) = crate::pgsemantics::arg_arrays(&args)?;
        let n = arrays[0].len();
        let (left, right) = (&arrays[0], &arrays[1]);
        let (doc_side, other) = match self.op {
            Op::ContainedBy => (right, left),
            _ => (left, right),
        };
        let docs = datafusion::arrow::compute::cast(doc_side, &DataType::Utf8)?;
        let docs = docs.as_string::<i32>();
        let mut text = StringBuilder::new();
        let mut bools = BooleanBuilder::new();
        // The right operand is mostly a constant: parsed once, not per row.
        let mut parsed: Option<(ScalarValue, Json)> = None;
        let mut listed: Option<(ScalarValue, Vec<Option<String>>)> = None;
        for i in 0..n {
            let operand = ScalarValue::try_from_array(other, i)?;
            if docs.is_null(i) || operand.is_null() {
                text.append_null();
                bools.append_null();
                continue;
            }
            let source = docs.value(i);
            let doc = parse(source).map_err(pg_error)?;
            match self.op {
                Op::Get | Op::GetText => {
                    let key = match &operand {
                        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
                            // A key reads an object only.
                            if !matches!(doc.value, Value::Object(_)) {
                                text.append_null();
                                continue;
                            }
                            s.clone()
                        }
                        v => {
                            let scalar = !matches!(doc.value, Value::Array(_) | Value::Object(_));
                            // jsonb holds a scalar as a one-element array: `-> 0` is it.
                            if jsonb && scalar && matches!(v.to_string().as_str(), "0" | "-1") {
                                text.append_option(output(
                                    &doc,
                                    source,
                                    jsonb,
                                    self.op == Op::GetText,
                                ));
                                continue;
                            }
                            if !matches!(doc.value, Value::Array(_)) {
                                text.append_null();
                                continue;
                            }
                            v.to_string()
                        }
                    };
                    let found = member(&doc, &key)
                        .and_then(|m| output(m, source, jsonb, self.op == Op::GetText));
                    text.append_option(found);
                }
                Op::Path | Op::PathText => {
                    let path = cached(&mut listed, &operand, text_list)?;
                    let mut at = Some(&doc);
                    // A NULL step finds nothing.
                    for key in path {
                        at = at.and_then(|v| member(v, key.as_deref()?));
                    }
                    text.append_option(
                        at.and_then(|m| output(m, source, jsonb, self.op == Op::PathText)),
                    );
                }
                Op::Contains | Op::ContainedBy => {
                    let other_doc = cached(&mut parsed, &operand, |v| {
                        parse(&v.to_string()).map_err(pg_error)
                    })?;
                    bools.append_value(contains(&doc, other_doc, true));
                }
                Op::Exists => bools.append_value(has_key(&doc, &operand.to_string())),
                Op::Concat => {
                    let other_doc = cached(&mut parsed, &operand, |v| {
                        parse(&v.to_string()).map_err(pg_error)
                    })?;
                    let mut out = String::new();
                    write_jsonb(&canonical(concat(doc, other_doc.clone())), &mut out);
                    text.append_value(out);
                }
                Op::Delete => {
                    let kept = match &operand {
                        ScalarValue::List(_) => {
                            let keys = cached(&mut listed, &operand, text_list)?;
                            let keys: Vec<&str> =
                                keys.iter().flatten().map(String::as_str).collect();
                            delete_keys(doc, &keys)
                        }
                        ScalarValue::Utf8(Some(k)) | ScalarValue::Utf8View(Some(k)) => {
                            delete_keys(doc, &[k.as_str()])
                        }
                        v => {
                            let i: i64 = v.to_string().parse().map_err(|_| {
                                pg_error(PgError::new(
                                    SqlState::UndefinedFunction,
                                    format!("operator does not exist: jsonb - {}", v.data_type()),
                                ))
                            })?;
                            delete_index(doc, i)
                        }
                    }
                    .map_err(pg_error)?;
                    let mut out = String::new();
                    write_jsonb(&kept, &mut out);
                    text.append_value(out);
                }
                Op::ExistsAny | Op::ExistsAll => {
                    let keys = cached(&mut listed, &operand, text_list)?;
                    // NULL keys are skipped, as PostgreSQL skips them.
                    let mut hits = keys.iter().flatten().map(|k| has_key(&doc, k));
                    bools.append_value(if self.op == Op::ExistsAny {
                        hits.any(|h| h)
                    } else {
                        hits.all(|h| h)
                    });
                }
            }
        }
        let out: ArrayRef = if self.op.returns_bool() {
            Arc::new(bools.finish())
        } else {
            Arc::new(text.finish())
        };
        crate::pgsemantics::columnar(out, scalar)
    }
}

/// `a || b` for jsonb: two objects merged (`b`'s value for a key in both), otherwise the
/// elements of both as arrays (a scalar or an object is a one-element array).
fn concat(a: Json, b: Json) -> Json {
    let span = a.span;
    let value = match (a.value, b.value) {
        (Value::Object(mut x), Value::Object(y)) => {
            x.extend(y);
            Value::Object(x)
        }
        (x, y) => {
            let items = |v: Value, span| match v {
                Value::Array(items) => items,
                v => vec![Json { value: v, span }],
            };
            let mut all = items(x, a.span);
            all.extend(items(y, b.span));
            Value::Array(all)
        }
    };
    Json { value, span }
}

/// `v - key` (or `- keys`): an object without those keys, an array without the strings
/// equal to one; a scalar cannot be deleted from (22023).
fn delete_keys(v: Json, keys: &[&str]) -> Result<Json, PgError> {
    let value = match v.value {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .filter(|(k, _)| !keys.contains(&k.as_str()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|i| !matches!(&i.value, Value::String(s) if keys.contains(&s.as_str())))
                .collect(),
        ),
        _ => return Err(cannot_delete("from scalar")),
    };
    Ok(Json {
        value,
        span: v.span,
    })
}

/// `v - index`: an array without that element (negative counts from the end; out of range
/// removes nothing); an object or a scalar cannot be (22023).
fn delete_index(v: Json, i: i64) -> Result<Json, PgError> {
    let Value::Array(mut items) = v.value else {
        return Err(cannot_delete(match v.value {
            Value::Object(_) => "from object using integer index",
            _ => "from scalar",
        }));
    };
    let at = if i < 0 { items.len() as i64 + i } else { i };
    if let Ok(at) = usize::try_from(at) {
        if at < items.len() {
            items.remove(at);
        }
    }
    Ok(Json {
        value: Value::Array(items),
        span: v.span,
    })
}

fn cannot_delete(what: &str) -> PgError {
    PgError::new(
        SqlState::InvalidParameterValue,
        format!("cannot delete {what}"),
    )
}

/// `make(operand)`, kept in `slot` while the operand stays the same.
fn cached<'a, T>(
    slot: &'a mut Option<(ScalarValue, T)>,
    operand: &ScalarValue,
    make: impl FnOnce(&ScalarValue) -> Result<T>,
) -> Result<&'a T> {
    if slot.as_ref().is_none_or(|(v, _)| v != operand) {
        *slot = Some((operand.clone(), make(operand)?));
    }
    Ok(&slot.as_ref().expect("filled above").1)
}

/// `gen_random_uuid()`: a version 4 (random) uuid, typed `uuid`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GenRandomUuid {
    signature: Signature,
}

impl Default for GenRandomUuid {
    fn default() -> Self {
        Self {
            signature: Signature::nullary(Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for GenRandomUuid {
    fn name(&self) -> &str {
        "gen_random_uuid"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(declared_field(self.name(), "uuid", false)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use rand::RngCore;
        let mut rng = rand::thread_rng();
        let mut out = StringBuilder::new();
        for _ in 0..args.number_rows.max(1) {
            let mut b = [0u8; 16];
            rng.fill_bytes(&mut b);
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            out.append_value(duet_common::types::uuid_text_of(&b));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Comparisons with `uuid`, `json` and `jsonb` values, as PostgreSQL resolves them: a string
/// literal compared with such a value is read by the type's input function (its canonical
/// text, so equal values compare equal; 22P02 for bad input); `json` has no comparison
/// operators (42883); and `jsonb`'s order (objects after arrays after booleans…, by
/// length first) is not its text's, so `<`, `>` and ORDER BY of jsonb are refused (0A000)
/// rather than answered in text order.
#[derive(Debug, Default)]
pub struct TypedTextComparisons;

impl datafusion::optimizer::AnalyzerRule for TypedTextComparisons {
    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
        use datafusion::logical_expr::{BinaryExpr, LogicalPlan, Operator};
        let plan = crate::pgsemantics::retype_expressions(plan, |e, schema| {
            let ty = |e: &Expr| {
                e.to_field(schema)
                    .ok()
                    .and_then(|(_, f)| declared(&f).map(str::to_string))
            };
            let read = |ty: &str, e: Expr| -> Result<Transformed<Expr>> {
                match e {
                    Expr::Literal(ScalarValue::Utf8(Some(s)), m) => {
                        let text = input(ty, &s).map_err(pg_error)?;
                        Ok(Transformed::yes(Expr::Literal(
                            ScalarValue::Utf8(Some(text)),
                            m,
                        )))
                    }
                    other => Ok(Transformed::no(other)),
                }
            };
            match e {
                // A cast's field keeps its operand's metadata, but no cast makes a json,
                // jsonb or uuid value (`duet_jsonb(…)` does): a cast of one is wrapped in
                // `duet_plain`, so `j::text::int > 1` compares integers (the comparison
                // above it is rewritten after it) and `ORDER BY j::text` sorts text.
                Expr::Cast(datafusion::logical_expr::Cast { ref expr, .. })
                | Expr::TryCast(datafusion::logical_expr::TryCast { ref expr, .. })
                    if expr
                        .to_field(schema)
                        .is_ok_and(|(_, f)| declared(&f).is_some()) =>
                {
                    let plain = Arc::new(ScalarUDF::new_from_impl(
                        crate::pgsemantics::Identity::plain(),
                    ));
                    Ok(Transformed::yes(Expr::ScalarFunction(
                        datafusion::logical_expr::expr::ScalarFunction::new_udf(plain, vec![e]),
                    )))
                }
                Expr::BinaryExpr(BinaryExpr { left, op, right })
                    if crate::pgsemantics::is_comparison(&op)
                        || matches!(op, Operator::IsDistinctFrom | Operator::IsNotDistinctFrom) =>
                {
                    let (lt, rt) = (ty(&left), ty(&right));
                    let Some(t) = lt.clone().or(rt.clone()) else {
                        return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                            left,
                            op,
                            right,
                        })));
                    };
                    if t == "json" {
                        return Err(pg_error(PgError::new(
                            SqlState::UndefinedFunction,
                            format!("operator does not exist: json {op} json"),
                        )));
                    }
                    let ordering = !matches!(
                        op,
                        Operator::Eq
                            | Operator::NotEq
                            | Operator::IsDistinctFrom
                            | Operator::IsNotDistinctFrom
                    );
                    if t == "jsonb" && ordering {
                        return Err(pg_error(PgError::unsupported(format!(
                            "the {op} operator on jsonb"
                        ))));
                    }
                    let left = if lt.is_none() {
                        read(&t, *left)?.data
                    } else {
                        *left
                    };
                    let right = if rt.is_none() {
                        read(&t, *right)?.data
                    } else {
                        *right
                    };
                    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(left),
                        op,
                        Box::new(right),
                    ))))
                }
                Expr::InList(mut l) => match ty(&l.expr) {
                    Some(t) if t == "json" => Err(pg_error(PgError::new(
                        SqlState::UndefinedFunction,
                        "operator does not exist: json = json",
                    ))),
                    Some(t) => {
                        l.list = l
                            .list
                            .into_iter()
                            .map(|x| read(&t, x).map(|r| r.data))
                            .collect::<Result<_>>()?;
                        Ok(Transformed::yes(Expr::InList(l)))
                    }
                    None => Ok(Transformed::no(Expr::InList(l))),
                },
                other => Ok(Transformed::no(other)),
            }
        })?;
        plan.apply_with_subqueries(|node| {
            let LogicalPlan::Sort(sort) = node else {
                return Ok(TreeNodeRecursion::Continue);
            };
            for s in &sort.expr {
                let Ok((_, f)) = s.expr.to_field(sort.input.schema()) else {
                    continue;
                };
                if let Some(t @ ("json" | "jsonb")) = declared(&f) {
                    return Err(pg_error(PgError::unsupported(format!(
                        "ORDER BY of a {t} value"
                    ))));
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(plan)
    }

    fn name(&self) -> &str {
        "duet_typed_text_comparisons"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonb_prints_as_postgresql_stores_it() {
        assert_eq!(
            jsonb_text(r#"{"bb":1, "a" : [1,2.50,1e2, -0], "a":true, "c":"x\u0041\n"}"#).unwrap(),
            r#"{"a": true, "c": "xA\n", "bb": 1}"#
        );
        assert_eq!(
            jsonb_text("[1.5e-3, 12E1, -1.0]").unwrap(),
            "[0.0015, 120, -1.0]"
        );
        assert!(jsonb_text("{\"a\":}").is_err());
        assert!(jsonb_text("01").is_err());
        assert!(jsonb_text("\"\\u0000\"").is_err());
    }

    #[test]
    fn uuids_read_every_postgresql_input_form() {
        let want = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        for input in [
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
        ] {
            assert_eq!(uuid_text(input).unwrap(), want, "{input}");
        }
        for bad in [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "-a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0eebc99--9c0b4ef8bb6d6bb9bd380a11",
            "{a0eebc999c0b4ef8bb6d6bb9bd380a11",
        ] {
            assert!(uuid_text(bad).is_err(), "{bad}");
        }
        let bytes = duet_common::types::uuid_bytes(want).unwrap();
        assert_eq!(bytes[0], 0xa0);
        assert_eq!(duet_common::types::uuid_text_of(&bytes), want);
    }

    #[test]
    fn containment_follows_postgresql() {
        let c = |a: &str, b: &str| contains(&parse(a).unwrap(), &parse(b).unwrap(), true);
        assert!(c(r#"{"a":1,"b":[1,2,3]}"#, r#"{"b":[3,1]}"#));
        assert!(c(r#"{"a":1.0}"#, r#"{"a":1}"#));
        assert!(!c(r#"{"a":{"b":1}}"#, r#"{"b":1}"#));
        assert!(c("[1,2,[3]]", "[[3]]"));
        assert!(c("[1,2]", "1"));
        assert!(!c("[[1,2]]", "1"));
        assert!(!c("1", "[1]"));
    }
}
