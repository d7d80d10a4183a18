//! JSON functions: `json_build_object(key, value, …)` (SQLAlchemy's reflection builds its
//! identity options with it). Values are written as PostgreSQL writes them: numbers and
//! booleans bare, NULL as `null`, everything else as a string, and `json`'s spacing
//! (`{"a" : 1, "b" : null}`).

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonBuildObject {
    signature: Signature,
}

impl Default for JsonBuildObject {
    fn default() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Stable),
        }
    }
}

/// `value` as a JSON value.
fn json_value(value: &ScalarValue, out: &mut String) {
    if value.is_null() {
        out.push_str("null");
        return;
    }
    match value {
        ScalarValue::Boolean(Some(b)) => out.push_str(if *b { "true" } else { "false" }),
        v if v.data_type().is_numeric() => {
            let _ = write!(out, "{v}");
        }
        v => out.push_str(&serde_json::Value::String(v.to_string()).to_string()),
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return exec_err!("argument list must have even number of elements");
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = StringBuilder::new();
        for row in 0..args.number_rows {
            let mut text = String::from("{");
            for (k, pair) in arrays.chunks(2).enumerate() {
                let key = ScalarValue::try_from_array(&pair[0], row)?;
                if key.is_null() {
                    return exec_err!("null value not allowed for object key");
                }
                if k > 0 {
                    text.push_str(", ");
                }
                let key = match key {
                    ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => s,
                    other => other.to_string(),
                };
                text.push_str(&serde_json::Value::String(key).to_string());
                text.push_str(" : ");
                json_value(&ScalarValue::try_from_array(&pair[1], row)?, &mut text);
            }
            text.push('}');
            out.append_value(text);
        }
        let array: Arc<dyn Array> = Arc::new(out.finish());
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_as_postgresql_writes_them() {
        let mut s = String::new();
        json_value(&ScalarValue::Int64(Some(3)), &mut s);
        s.push(' ');
        json_value(&ScalarValue::Utf8(Some("a\"b".into())), &mut s);
        s.push(' ');
        json_value(&ScalarValue::Boolean(None), &mut s);
        assert_eq!(s, "3 \"a\\\"b\" null");
    }
}
