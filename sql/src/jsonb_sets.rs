//! The jsonb functions over sets of values: the aggregates `jsonb_agg` and
//! `jsonb_object_agg` (and json's `json_agg` and `json_object_agg`, whose text keeps the
//! items as written), and the set-returning `jsonb_array_elements[_text]`,
//! `jsonb_each[_text]` and `jsonb_object_keys`.
//!
//! Both kinds are statement rewrites onto what DataFusion runs natively, plus functions over
//! lists:
//! - `jsonb_agg(x ORDER BY … ) FILTER (…)` is `duet_jsonb_agg_of(array_agg(to_jsonb(x)
//!   ORDER BY …) FILTER (…))` (so ordering, FILTER, DISTINCT and OVER behave as
//!   `array_agg`'s), and `jsonb_object_agg(k, v)` gathers `jsonb_build_array(k, v)` pairs.
//! - A set-returning call is `unnest` of the list `duet_jsonb_array_elements(x)` (and its
//!   siblings) makes, typed back to `jsonb` by `duet_jsonb`; in FROM it is a derived table
//!   with PostgreSQL's column names (`value`; `key, value`; the alias or
//!   `jsonb_object_keys`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::error::{PgError, SqlState};
use crate::jsonb::{
    canonical, declared_field, key_text, output, parse, pg_error, write_jsonb, Json, Value,
};

/// What a list function takes out of a jsonb value, and the SQL function it stands for
/// (errors name it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    /// Array elements as jsonb, or as text (`->>`'s form) for `jsonb_array_elements_text`.
    Elements { text: bool },
    /// Object keys, for `jsonb_object_keys`.
    ObjectKeys,
    /// Keys or values of an object, for `jsonb_each` / `jsonb_each_text`.
    Each { value: bool, text: bool },
}

/// `duet_jsonb_array_elements(x)` and its siblings: the parts of each jsonb value as a
/// list, or the error PostgreSQL's set-returning function raises for it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonbList {
    name: &'static str,
    part: Part,
    signature: Signature,
}

impl JsonbList {
    pub const NAMES: [&'static str; 7] = [
        "duet_jsonb_array_elements",
        "duet_jsonb_array_elements_text",
        "duet_jsonb_object_keys",
        "duet_jsonb_each_key",
        "duet_jsonb_each_value",
        "duet_jsonb_each_text_key",
        "duet_jsonb_each_text_value",
    ];

    pub fn udf(name: &'static str) -> ScalarUDF {
        let part = match name {
            "duet_jsonb_array_elements" => Part::Elements { text: false },
            "duet_jsonb_array_elements_text" => Part::Elements { text: true },
            "duet_jsonb_object_keys" => Part::ObjectKeys,
            "duet_jsonb_each_key" => Part::Each {
                value: false,
                text: false,
            },
            "duet_jsonb_each_value" => Part::Each {
                value: true,
                text: false,
            },
            "duet_jsonb_each_text_key" => Part::Each {
                value: false,
                text: true,
            },
            _ => Part::Each {
                value: true,
                text: true,
            },
        };
        ScalarUDF::new_from_impl(Self {
            name,
            part,
            signature: Signature::any(1, Volatility::Immutable),
        })
    }

    /// The parts of `v` (text; `None` for an SQL NULL), as `->` (jsonb) or `->>` (text)
    /// gives them.
    fn parts(&self, v: Json) -> Result<Vec<Option<String>>, PgError> {
        let fail = |message: String| PgError::new(SqlState::InvalidParameterValue, message);
        match (self.part, v.value) {
            (Part::Elements { text }, Value::Array(items)) => {
                Ok(items.iter().map(|i| output(i, "", true, text)).collect())
            }
            (Part::Elements { .. }, Value::Object(_)) => {
                Err(fail("cannot extract elements from an object".into()))
            }
            (Part::Elements { .. }, _) => Err(fail("cannot extract elements from a scalar".into())),
            (Part::ObjectKeys | Part::Each { value: false, .. }, Value::Object(fields)) => {
                Ok(fields.into_iter().map(|(k, _)| Some(k)).collect())
            }
            (Part::Each { text, .. }, Value::Object(fields)) => Ok(fields
                .iter()
                .map(|(_, v)| output(v, "", true, text))
                .collect()),
            (Part::ObjectKeys, value) => Err(fail(format!(
                "cannot call jsonb_object_keys on {}",
                if matches!(value, Value::Array(_)) {
                    "an array"
                } else {
                    "a scalar"
                }
            ))),
            (Part::Each { text, .. }, _) => Err(fail(format!(
                "cannot call {} on a non-object",
                if text {
                    "jsonb_each_text"
                } else {
                    "jsonb_each"
                }
            ))),
        }
    }
}

impl ScalarUDFImpl for JsonbList {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(DataType::Utf8, true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = crate::pgsemantics::arg_arrays(&args)?;
        let texts = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let mut out = ListBuilder::new(StringBuilder::new());
        for v in texts.as_string::<i32>() {
            match v {
                None => out.append_null(),
                Some(v) => {
                    let doc = canonical(parse(v).map_err(pg_error)?);
                    for part in self.parts(doc).map_err(pg_error)? {
                        out.values().append_option(part);
                    }
                    out.append(true);
                }
            }
        }
        crate::pgsemantics::columnar(Arc::new(out.finish()), scalar)
    }
}

/// `duet_jsonb_agg_of(list)`: the jsonb array of a list of jsonb texts (an SQL NULL
/// element is JSON `null`), and `duet_jsonb_object_agg_of(list)`: the object of a list of
/// `[key, value]` pairs, the last of duplicate keys kept. NULL for a NULL list (no rows).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonbOfList {
    name: &'static str,
    signature: Signature,
}

impl JsonbOfList {
    pub const NAMES: [&'static str; 4] = [
        "duet_jsonb_agg_of",
        "duet_jsonb_object_agg_of",
        "duet_json_agg_of",
        "duet_json_object_agg_of",
    ];

    pub fn udf(name: &'static str) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            name,
            signature: Signature::any(1, Volatility::Immutable),
        })
    }

    /// `json_agg`'s and `json_object_agg`'s text: the items as they were written,
    /// `[a, b]` and `{ "k" : v, … }` (duplicate keys kept), as PostgreSQL prints them.
    fn json_text(&self, items: &ArrayRef) -> Result<String, PgError> {
        let texts = datafusion::arrow::compute::cast(items, &DataType::Utf8)
            .map_err(|e| PgError::new(SqlState::InternalError, e.to_string()))?;
        let texts = texts.as_string::<i32>();
        if self.name == "duet_json_agg_of" {
            let items: Vec<&str> = texts.iter().map(|t| t.unwrap_or("null")).collect();
            return Ok(format!("[{}]", items.join(", ")));
        }
        let mut members = Vec::with_capacity(texts.len());
        for pair in texts.iter().flatten() {
            let parsed = parse(pair)?;
            let Value::Array(kv) = &parsed.value else {
                continue;
            };
            let [key, value] = kv.as_slice() else {
                continue;
            };
            if matches!(key.value, Value::Null) {
                return Err(null_field_name());
            }
            let mut member = String::new();
            crate::jsonb::write_string(&key_text(key), &mut member);
            member.push_str(" : ");
            member.push_str(value.source_text(pair));
            members.push(member);
        }
        Ok(format!("{{ {} }}", members.join(", ")))
    }

    fn value(&self, items: &ArrayRef) -> Result<Json, PgError> {
        let texts = datafusion::arrow::compute::cast(items, &DataType::Utf8)
            .map_err(|e| PgError::new(SqlState::InternalError, e.to_string()))?;
        let mut values = Vec::with_capacity(texts.len());
        for t in texts.as_string::<i32>() {
            values.push(match t {
                Some(t) => parse(t)?,
                None => Json::new(Value::Null),
            });
        }
        if self.name == "duet_jsonb_agg_of" {
            return Ok(Json::new(Value::Array(values)));
        }
        let mut fields = Vec::with_capacity(values.len());
        for pair in values {
            let Value::Array(mut kv) = pair.value else {
                continue;
            };
            let (Some(value), Some(key)) = (kv.pop(), kv.pop()) else {
                continue;
            };
            if matches!(key.value, Value::Null) {
                return Err(null_field_name());
            }
            fields.push((key_text(&key), value));
        }
        Ok(Json::new(Value::Object(fields)))
    }
}

/// `json[b]_object_agg` of a NULL key.
fn null_field_name() -> PgError {
    PgError::new(
        SqlState::InvalidParameterValue,
        "field name must not be null",
    )
}

impl ScalarUDFImpl for JsonbOfList {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        let ty = if self.name.starts_with("duet_jsonb") {
            "jsonb"
        } else {
            "json"
        };
        Ok(Arc::new(declared_field(self.name, ty, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = crate::pgsemantics::arg_arrays(&args)?;
        let mut out = StringBuilder::new();
        let list = &arrays[0];
        if list.data_type() == &DataType::Null {
            out.append_nulls(list.len());
        } else {
            let list = list.as_list::<i32>();
            for i in 0..list.len() {
                if list.is_null(i) {
                    out.append_null();
                    continue;
                }
                if !self.name.starts_with("duet_jsonb") {
                    out.append_value(self.json_text(&list.value(i)).map_err(pg_error)?);
                    continue;
                }
                let v = canonical(self.value(&list.value(i)).map_err(pg_error)?);
                let mut s = String::new();
                write_jsonb(&v, &mut s);
                out.append_value(s);
            }
        }
        crate::pgsemantics::columnar(Arc::new(out.finish()), scalar)
    }
}

/// Rewrites the statement's jsonb aggregates and set-returning calls (see the module).
pub fn rewrite(stmt: &mut sqlparser::ast::Statement) -> Result<()> {
    use crate::pgsemantics::call_function;
    use sqlparser::ast::{
        Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SelectItem, SetExpr, TableFactor,
        VisitMut, VisitorMut,
    };

    fn name_of(f: &sqlparser::ast::Function) -> Option<String> {
        crate::pgsemantics::function_name(f).map(str::to_ascii_lowercase)
    }
    /// The plain argument expressions of a call.
    fn plain_args(f: &sqlparser::ast::Function) -> Option<Vec<Expr>> {
        match &f.args {
            FunctionArguments::List(list) => crate::system_catalog::plain_args(&list.args),
            _ => None,
        }
    }
    /// `jsonb_agg(x …)` → `duet_jsonb_agg_of(array_agg(to_jsonb(x) …))`, keeping the
    /// call's ORDER BY, FILTER and OVER on the `array_agg`. DISTINCT is refused: PostgreSQL
    /// sorts the distinct values by their type's order, which the jsonb texts do not keep.
    fn aggregate(e: &mut Expr) -> Result<(), String> {
        let Expr::Function(f) = e else { return Ok(()) };
        let name = name_of(f);
        if let (
            Some(n @ ("jsonb_agg" | "jsonb_object_agg" | "json_agg" | "json_object_agg")),
            FunctionArguments::List(list),
        ) = (name.as_deref(), &f.args)
        {
            if matches!(
                list.duplicate_treatment,
                Some(sqlparser::ast::DuplicateTreatment::Distinct)
            ) {
                return Err(format!("{n}(DISTINCT …)"));
            }
        }
        let (outer, item) = match (name.as_deref(), plain_args(f).as_deref()) {
            (Some("jsonb_agg"), Some([x])) => (
                "duet_jsonb_agg_of",
                call_function("to_jsonb", vec![x.clone()]),
            ),
            (Some("json_agg"), Some([x])) => (
                "duet_json_agg_of",
                call_function("to_json", vec![x.clone()]),
            ),
            (Some("jsonb_object_agg"), Some([k, v])) => (
                "duet_jsonb_object_agg_of",
                call_function("jsonb_build_array", vec![k.clone(), v.clone()]),
            ),
            (Some("json_object_agg"), Some([k, v])) => (
                "duet_json_object_agg_of",
                call_function("json_build_array", vec![k.clone(), v.clone()]),
            ),
            _ => return Ok(()),
        };
        let mut inner = f.clone();
        inner.name =
            sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new("array_agg")]);
        if let FunctionArguments::List(list) = &mut inner.args {
            list.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(item))];
        }
        *e = call_function(outer, vec![Expr::Function(inner)]);
        Ok(())
    }
    /// The list function and whether its elements are jsonb, for a set-returning call.
    fn set_function(name: &str) -> Option<(&'static str, bool)> {
        Some(match name {
            "jsonb_array_elements" => ("duet_jsonb_array_elements", true),
            "jsonb_array_elements_text" => ("duet_jsonb_array_elements_text", false),
            "jsonb_object_keys" => ("duet_jsonb_object_keys", false),
            _ => return None,
        })
    }
    /// `unnest(list(x))`, typed jsonb again where the elements are.
    fn unnested(list: &str, jsonb: bool, x: Expr) -> Expr {
        let rows = call_function("unnest", vec![call_function(list, vec![x])]);
        if jsonb {
            call_function("duet_jsonb", vec![rows])
        } else {
            rows
        }
    }

    struct Rewrite;
    impl VisitorMut for Rewrite {
        type Break = String;
        fn post_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<String> {
            match aggregate(e) {
                Ok(()) => std::ops::ControlFlow::Continue(()),
                Err(what) => std::ops::ControlFlow::Break(what),
            }
        }

        fn post_visit_query(
            &mut self,
            q: &mut sqlparser::ast::Query,
        ) -> std::ops::ControlFlow<String> {
            let SetExpr::Select(select) = q.body.as_mut() else {
                return std::ops::ControlFlow::Continue(());
            };
            for item in &mut select.projection {
                let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = item
                else {
                    continue;
                };
                let _ = sqlparser::ast::visit_expressions_mut(e, |e| {
                    if let Expr::Function(f) = e {
                        if let (Some((list, jsonb)), Some([x])) = (
                            name_of(f).as_deref().and_then(set_function),
                            plain_args(f).as_deref(),
                        ) {
                            *e = unnested(list, jsonb, x.clone());
                        }
                    }
                    std::ops::ControlFlow::<()>::Continue(())
                });
            }
            std::ops::ControlFlow::Continue(())
        }

        fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> std::ops::ControlFlow<String> {
            let TableFactor::Table {
                name,
                args: Some(args),
                alias,
                with_ordinality: false,
                ..
            } = t
            else {
                return std::ops::ControlFlow::Continue(());
            };
            let function = match name.0.as_slice() {
                [sqlparser::ast::ObjectNamePart::Identifier(i)] => i.value.to_ascii_lowercase(),
                _ => return std::ops::ControlFlow::Continue(()),
            };
            let Some(exprs) = crate::system_catalog::plain_args(&args.args) else {
                return std::ops::ControlFlow::Continue(());
            };
            let [x] = exprs.as_slice() else {
                return std::ops::ControlFlow::Continue(());
            };
            let columns: Vec<(Expr, String)> = match function.as_str() {
                "jsonb_each" | "jsonb_each_text" => {
                    let (key, value, jsonb) = if function == "jsonb_each" {
                        ("duet_jsonb_each_key", "duet_jsonb_each_value", true)
                    } else {
                        (
                            "duet_jsonb_each_text_key",
                            "duet_jsonb_each_text_value",
                            false,
                        )
                    };
                    vec![
                        (unnested(key, false, x.clone()), "key".into()),
                        (unnested(value, jsonb, x.clone()), "value".into()),
                    ]
                }
                f => match set_function(f) {
                    // A function returning a scalar names its column after the alias.
                    Some((list, jsonb)) => vec![(
                        unnested(list, jsonb, x.clone()),
                        match (f, alias.as_ref()) {
                            ("jsonb_object_keys", Some(a)) => a.name.value.clone(),
                            ("jsonb_object_keys", None) => f.to_string(),
                            _ => "value".into(),
                        },
                    )],
                    None => return std::ops::ControlFlow::Continue(()),
                },
            };
            // The derived table's select list: parsed with placeholders, then filled in.
            let names: Vec<String> = columns
                .iter()
                .map(|(_, name)| {
                    format!("NULL AS {}", sqlparser::ast::Ident::with_quote('"', name))
                })
                .collect();
            let Ok(mut subquery) =
                sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
                    .try_with_sql(&format!("SELECT {}", names.join(", ")))
                    .and_then(|mut p| p.parse_query())
            else {
                return std::ops::ControlFlow::Continue(());
            };
            if let SetExpr::Select(select) = subquery.body.as_mut() {
                for (item, (e, _)) in select.projection.iter_mut().zip(columns) {
                    if let SelectItem::ExprWithAlias { expr, .. } = item {
                        *expr = e;
                    }
                }
            }
            let alias = alias.clone().unwrap_or_else(|| sqlparser::ast::TableAlias {
                explicit: true,
                name: sqlparser::ast::Ident::new(&function),
                columns: vec![],
                at: None,
            });
            // PostgreSQL's functions in FROM are lateral: one reading a FROM neighbour
            // (`FROM t, jsonb_array_elements(t.doc)`) runs per row of it
            // (`pgsemantics::LateralFunctions`).
            *t = TableFactor::Derived {
                lateral: true,
                subquery,
                alias: Some(alias),
                sample: None,
            };
            std::ops::ControlFlow::Continue(())
        }
    }
    match stmt.visit(&mut Rewrite) {
        std::ops::ControlFlow::Break(what) => Err(
            datafusion::error::DataFusionError::NotImplemented(format!("{what} is not supported")),
        ),
        std::ops::ControlFlow::Continue(()) => Ok(()),
    }
}
