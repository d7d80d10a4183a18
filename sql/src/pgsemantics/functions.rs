//! PostgreSQL functions DataFusion lacks: `pg_sleep`, `pg_typeof`, the comment lookups
//! (`obj_description`, `col_description`, `shobj_description`), `to_regtype` and
//! `pg_advisory_unlock_all`.

use super::*;

/// `pg_sleep(seconds)`: waits that long, once per row (as PostgreSQL calls it per row), on
/// a timer rather than a thread, so a CancelRequest or `statement_timeout` ends it at once
/// (the query's stream is dropped). NULL, zero, negative or NaN: no wait. Returns NULL of type
/// `unknown` (PostgreSQL's is `void`; both print as an empty value).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgSleep {
    signature: Signature,
}

impl Default for PgSleep {
    fn default() -> Self {
        Self {
            signature: Signature::uniform(1, vec![DataType::Float64], Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for PgSleep {
    fn name(&self) -> &str {
        "pg_sleep"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Null)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::Internal(
            "pg_sleep runs only asynchronously".into(),
        ))
    }
}

#[async_trait::async_trait]
impl AsyncScalarUDFImpl for PgSleep {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Float64Type;
        let rows = args.number_rows;
        let [seconds] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "pg_sleep takes one argument".into(),
            ));
        };
        let seconds = seconds.to_array(rows)?;
        for s in seconds.as_primitive::<Float64Type>().iter().flatten() {
            if s > 0.0 {
                // Past Duration's range (or infinite): until cancelled, as in PostgreSQL.
                let d = Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX);
                tokio::time::sleep(d).await;
            }
        }
        // An array of the batch's length: DataFusion widens a scalar answer of an async
        // function to one row only.
        Ok(ColumnarValue::Array(Arc::new(
            datafusion::arrow::array::NullArray::new(rows),
        )))
    }
}

/// `pg_typeof(x)`: the PostgreSQL name of the argument's type.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgTypeOf {
    signature: Signature,
}

impl Default for PgTypeOf {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// PostgreSQL's name for an Arrow type as DuetDB maps it.
pub fn pg_type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Int16 | DataType::Int8 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64 | DataType::UInt64 => "bigint",
        DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric",
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "text",
        DataType::Boolean => "boolean",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(_, None) => "timestamp without time zone",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea",
        DataType::Null => "unknown",
        _ => "unknown",
    }
}

impl ScalarUDFImpl for PgTypeOf {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = args
            .args
            .first()
            .map(|a| pg_type_name(&a.data_type()))
            .unwrap_or("unknown");
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            name.to_string(),
        ))))
    }
}

/// `obj_description`, `col_description` and `shobj_description`: the comment on an object,
/// NULL, as DuetDB keeps no comments (`COMMENT ON` is refused). ORMs and psql's `\d+` call
/// them while introspecting. Also the definitions of kinds of object DuetDB has none of
/// (triggers, rules, functions), NULL as PostgreSQL answers for an OID that is not one:
/// psql's `\d TABLE` and `\df` call them over empty `pg_trigger` and `pg_proc` rows.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NoComment {
    name: &'static str,
    signature: Signature,
}

impl NoComment {
    pub const NAMES: [&'static str; 8] = [
        "obj_description",
        "col_description",
        "shobj_description",
        "pg_get_triggerdef",
        "pg_get_ruledef",
        "pg_get_function_result",
        "pg_get_function_arguments",
        "pg_get_function_identity_arguments",
    ];

    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            signature: Signature::variadic_any(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for NoComment {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }
}

/// `to_regtype(name)`: the OID of a built-in type by name, NULL for any other (psycopg
/// asks for `hstore` this way when SQLAlchemy connects).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToRegtype {
    signature: Signature,
}

impl Default for ToRegtype {
    fn default() -> Self {
        Self {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Stable),
        }
    }
}

/// The OID of a built-in type named `name` (as `to_regtype` reads it).
fn builtin_type_oid(name: &str) -> Option<i64> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix("pg_catalog.").unwrap_or(&n);
    Some(match n {
        "bool" | "boolean" => 16,
        "bytea" => 17,
        "char" | "\"char\"" => 18,
        "name" => 19,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "text" => 25,
        "oid" => 26,
        "json" => 114,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "bpchar" | "character" => 1042,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "time" | "time without time zone" => 1083,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "interval" => 1186,
        "numeric" | "decimal" => 1700,
        "uuid" => 2950,
        "jsonb" => 3802,
        _ => return None,
    })
}

impl ScalarUDFImpl for ToRegtype {
    fn name(&self) -> &str {
        "to_regtype"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, Int64Array};
        let (arrays, scalar) = super::arg_arrays(&args)?;
        let out: Int64Array = arrays[0]
            .as_string::<i32>()
            .iter()
            .map(|v| v.and_then(builtin_type_oid))
            .collect();
        super::columnar(Arc::new(out), scalar)
    }
}

/// `pg_advisory_unlock_all()`: DuetDB takes no advisory locks (`pg_advisory_lock` is
/// refused), so there are none to release (asyncpg's pool calls it on every release).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AdvisoryUnlockAll {
    signature: Signature,
}

impl Default for AdvisoryUnlockAll {
    fn default() -> Self {
        Self {
            signature: Signature::nullary(Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for AdvisoryUnlockAll {
    fn name(&self) -> &str {
        "pg_advisory_unlock_all"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Null)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Array(Arc::new(
            datafusion::arrow::array::NullArray::new(args.number_rows.max(1)),
        )))
    }
}

/// A function DataFusion has under PostgreSQL's name with other semantics, refused (0A000)
/// at planning: `to_char` reads chrono's `%Y`-style patterns where PostgreSQL reads `YYYY`,
/// so `to_char(ts, 'YYYY-MM-DD')` returned the pattern itself.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Refused {
    name: &'static str,
    signature: Signature,
}

impl Refused {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Refused {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Err(DataFusionError::NotImplemented(format!(
            "{} with PostgreSQL's patterns",
            self.name
        )))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::NotImplemented(format!(
            "{} with PostgreSQL's patterns",
            self.name
        )))
    }
}
