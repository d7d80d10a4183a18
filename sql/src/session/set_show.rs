//! `SET` and `SHOW`: statements over the session's settings table
//! ([`super::settings`]).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use sqlparser::ast::{Expr, Set, Value};

use super::settings::setting_name;
use super::{Outcome, Session};
use crate::error::{PgError, Result, SqlState};

fn single_text(name: &str, value: &str) -> Outcome {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
    let col: ArrayRef = Arc::new(StringArray::from(vec![value.to_string()]));
    let batch = RecordBatch::try_new(schema.clone(), vec![col])
        .expect("one utf8 column matches its schema");
    Outcome::Batches {
        schema,
        batches: vec![batch],
        tag: "SHOW".into(),
    }
}

fn expr_setting_value(e: &Expr) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            Value::Boolean(b) => {
                if *b {
                    "on".into()
                } else {
                    "off".into()
                }
            }
            other => other.to_string(),
        },
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

impl Session {
    pub(super) fn set(&mut self, set: Set) -> Result<Outcome> {
        match set {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = setting_name(&variable.to_string());
                let value = values
                    .iter()
                    .map(expr_setting_value)
                    .collect::<Vec<_>>()
                    .join(", ");
                if name == crate::ddl::SET_CONSTRAINTS {
                    return self.set_constraints(&value);
                }
                self.assign_setting(&name, value)?;
            }
            Set::SetTimeZone { value, .. } => {
                self.assign_setting("timezone", expr_setting_value(&value))?;
            }
            Set::SetNames { charset_name, .. } => {
                self.assign_setting("client_encoding", charset_name.value)?;
            }
            Set::SetTransaction { modes, session, .. } => {
                if let Some(level) = self.isolation_of(&modes) {
                    if session {
                        let text = self.set_default_isolation(level);
                        self.settings.show("default_transaction_isolation", text);
                    } else if self.txn.is_some() {
                        self.set_transaction_isolation(level);
                    } else {
                        self.notices
                            .push("SET TRANSACTION can only be used in transaction blocks".into());
                        let d = self.settings.default_isolation;
                        self.show_isolation(d);
                    }
                }
            }
            Set::MultipleAssignments { assignments } => {
                for a in assignments {
                    let name = setting_name(&a.name.to_string());
                    self.assign_setting(&name, expr_setting_value(&a.value))?;
                }
            }
            Set::SetSessionParam(_)
            | Set::SetRole { .. }
            | Set::SetSessionAuthorization(_)
            | Set::SetNamesDefault {} => {}
            other => return Err(PgError::unsupported(format!("SET form {other}"))),
        }
        Ok(Outcome::Command("SET".into()))
    }

    /// `SET CONSTRAINTS {ALL | name [, …]} {DEFERRED | IMMEDIATE}` (`text` is what
    /// follows `CONSTRAINTS`).
    fn set_constraints(&mut self, text: &str) -> Result<Outcome> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (mode, list) = match words.split_last() {
            Some((m, rest)) if !rest.is_empty() => (m.to_ascii_lowercase(), rest.join(" ")),
            _ => {
                return Err(PgError::new(
                    SqlState::SyntaxError,
                    "syntax error at or near \"CONSTRAINTS\"",
                ))
            }
        };
        let deferred = match mode.as_str() {
            "deferred" => true,
            "immediate" => false,
            _ => {
                return Err(PgError::new(
                    SqlState::SyntaxError,
                    format!("syntax error at or near \"{mode}\""),
                ))
            }
        };
        let names = if list.eq_ignore_ascii_case("all") {
            None
        } else {
            let mut out = Vec::new();
            for part in list.split(',') {
                let part = part.trim();
                let name = match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                    Some(quoted) => quoted.replace("\"\"", "\""),
                    None => part.to_lowercase(),
                };
                // A schema-qualified name: the schema is public.
                let name = name.rsplit('.').next().unwrap_or_default().to_string();
                out.push(name);
            }
            Some(out)
        };
        if self.txn.is_none() {
            self.notices
                .push("SET CONSTRAINTS can only be used in transaction blocks".into());
            return Ok(Outcome::Command("SET CONSTRAINTS".into()));
        }
        let mut txn = self.txn.take();
        let result = crate::foreign_key::set_constraints(self, txn.as_mut(), names, deferred);
        self.txn = txn;
        result?;
        Ok(Outcome::Command("SET CONSTRAINTS".into()))
    }

    /// `SHOW name`.
    pub(super) fn show(&mut self, variable: &[sqlparser::ast::Ident]) -> Result<Outcome> {
        let name = variable
            .iter()
            .map(|i| i.value.clone())
            .collect::<Vec<_>>()
            .join(" ");
        let mut key = setting_name(&name);
        if self.settings.shown(&key).is_none() {
            // `SHOW duet.engine` arrives as two identifiers.
            let dotted = setting_name(
                &variable
                    .iter()
                    .map(|i| i.value.clone())
                    .collect::<Vec<_>>()
                    .join("."),
            );
            if self.settings.shown(&dotted).is_some() {
                key = dotted;
            }
        }
        if self.settings.shown(&key).is_none() {
            if let Some((n, v, _)) = self
                .server_settings()
                .into_iter()
                .find(|s| s.0 == key || s.0 == setting_name(&name.replace(' ', ".")))
            {
                return Ok(single_text(n, &v));
            }
        }
        match self.settings.shown(&key) {
            Some(v) => Ok(single_text(super::settings::shown_name(&key), v)),
            None if key == "all" => Ok(self.show_all()),
            None => Err(PgError::new(
                SqlState::UndefinedObject,
                format!("unrecognized configuration parameter \"{name}\""),
            )),
        }
    }

    /// `SHOW ALL`: every setting a session has, then the server's, with PostgreSQL's three
    /// columns.
    fn show_all(&self) -> Outcome {
        let mut rows: Vec<(String, String, String)> = self
            .settings
            .all()
            .filter(|(n, _)| !n.starts_with("datafusion."))
            .map(|(n, v)| {
                (
                    super::settings::shown_name(n).to_string(),
                    v.to_string(),
                    String::new(),
                )
            })
            .collect();
        rows.extend(
            self.server_settings()
                .into_iter()
                .map(|(n, v, d)| (n.to_string(), v, d.to_string())),
        );
        rows.sort();
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("setting", DataType::Utf8, true),
            Field::new("description", DataType::Utf8, true),
        ]));
        let col = |f: fn(&(String, String, String)) -> &str| -> ArrayRef {
            Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
        };
        let columns = vec![col(|r| &r.0), col(|r| &r.1), col(|r| &r.2)];
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .expect("three utf8 columns match their schema");
        Outcome::Batches {
            schema,
            batches: vec![batch],
            tag: "SHOW".into(),
        }
    }

    /// Runs a query whose select list calls `set_config` among other things: the settings'
    /// current values are read first (as PostgreSQL evaluates the list left to right), then
    /// the settings made, then the query run with each call replaced by its value.
    pub(super) async fn query_with_set_config(
        &mut self,
        mut stmt: sqlparser::ast::Statement,
        params: &datafusion::common::ParamValues,
    ) -> Result<Outcome> {
        crate::colnames::name_outputs(&mut stmt);
        self.inline_current_settings(&mut stmt)?;
        for (name, value) in take_set_config_calls(&mut stmt) {
            self.assign_setting(&setting_name(&name), value)?;
        }
        self.publish_view();
        self.run_query(stmt, params).await
    }

    /// `SELECT set_config(name, value, is_local)` (how Django and some drivers set a
    /// parameter): as `SET name TO value`, answering the new value. `is_local` (for the
    /// rest of the transaction only) is taken as a plain SET.
    pub(super) fn set_config(&mut self, name: &str, value: &str) -> Result<Outcome> {
        let key = setting_name(name);
        self.assign_setting(&key, value.to_string())?;
        let shown = self.settings.shown(&key).unwrap_or(value).to_string();
        let mut out = single_text("set_config", &shown);
        if let Outcome::Batches { tag, .. } = &mut out {
            *tag = "SELECT".into();
        }
        Ok(out)
    }

    /// `current_setting('name' [, missing_ok])` calls become the setting's value as a
    /// constant before planning (42704 for an unknown name unless `missing_ok`).
    pub(super) fn inline_current_settings(
        &self,
        stmt: &mut sqlparser::ast::Statement,
    ) -> Result<()> {
        let mut failure = None;
        let _ = sqlparser::ast::visit_expressions_mut(stmt, |e| {
            let Some(args) = call_args(e, "current_setting") else {
                return std::ops::ControlFlow::Continue(());
            };
            let missing_ok = matches!(args.get(1), Some(Expr::Value(v)) if matches!(v.value, Value::Boolean(true)));
            let Some(name) = args.first().and_then(|e| string_literal(e)) else {
                // A name known only when the statement runs (a parameter, a column): the
                // session's settings as a CASE over the name.
                if let Some(arg) = args.first() {
                    if let Some(case) = self.settings_case(arg, missing_ok) {
                        *e = case;
                    }
                }
                return std::ops::ControlFlow::Continue(());
            };
            let key = setting_name(&name);
            *e = match self.settings.shown(&key) {
                Some(v) => Expr::value(Value::SingleQuotedString(v.to_string())),
                None if missing_ok => Expr::Cast {
                    kind: sqlparser::ast::CastKind::Cast,
                    expr: Box::new(Expr::value(Value::Null)),
                    data_type: sqlparser::ast::DataType::Text,
                    array: false,
                    format: None,
                },
                None => {
                    failure = Some(PgError::new(
                        SqlState::UndefinedObject,
                        format!("unrecognized configuration parameter \"{name}\""),
                    ));
                    return std::ops::ControlFlow::Break(());
                }
            };
            std::ops::ControlFlow::Continue(())
        });
        failure.map_or(Ok(()), Err)
    }
}

impl Session {
    /// `current_setting(arg)` for an `arg` that is not a literal: `CASE lower(arg) WHEN
    /// 'name' THEN 'value' … ELSE duet_unknown_setting(arg, missing_ok) END`.
    fn settings_case(&self, arg: &Expr, missing_ok: bool) -> Option<Expr> {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let mut sql = format!("CASE lower(CAST({arg} AS text))");
        for (name, value) in self.settings.all() {
            sql.push_str(&format!(" WHEN {} THEN {}", quote(name), quote(value)));
        }
        sql.push_str(&format!(
            " ELSE {}(CAST({arg} AS text), {missing_ok}) END",
            UnknownSetting::NAME
        ));
        sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
            .try_with_sql(&sql)
            .ok()?
            .parse_expr()
            .ok()
    }
}

/// `duet_unknown_setting(name, missing_ok)`: what `current_setting` of a setting that does
/// not exist gives: NULL with `missing_ok`, else 42704.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UnknownSetting {
    signature: datafusion::logical_expr::Signature,
}

impl Default for UnknownSetting {
    fn default() -> Self {
        Self {
            signature: datafusion::logical_expr::Signature::any(
                2,
                datafusion::logical_expr::Volatility::Stable,
            ),
        }
    }
}

impl UnknownSetting {
    pub const NAME: &'static str = "duet_unknown_setting";
}

impl datafusion::logical_expr::ScalarUDFImpl for UnknownSetting {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::common::Result<datafusion::logical_expr::ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray};
        let arrays = datafusion::logical_expr::ColumnarValue::values_to_arrays(&args.args)?;
        let names = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let missing_ok = datafusion::arrow::compute::cast(&arrays[1], &DataType::Boolean)?;
        let missing_ok = missing_ok.as_boolean();
        for i in 0..names.len() {
            let allowed = missing_ok.is_valid(i) && missing_ok.value(i);
            if names.is_valid(i) && !allowed {
                return Err(datafusion::common::DataFusionError::External(Box::new(
                    crate::error::PgErrorBox(PgError::new(
                        SqlState::UndefinedObject,
                        format!(
                            "unrecognized configuration parameter \"{}\"",
                            names.value(i)
                        ),
                    )),
                )));
            }
        }
        Ok(datafusion::logical_expr::ColumnarValue::Array(
            datafusion::arrow::array::new_null_array(&DataType::Utf8, names.len()),
        ))
    }
}

/// The arguments of `e` if it is a call of the function `name` (unqualified or in
/// pg_catalog).
fn call_args<'a>(e: &'a Expr, name: &str) -> Option<Vec<&'a Expr>> {
    use sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let Expr::Function(f) = e else {
        return None;
    };
    let last = f.name.0.last()?.as_ident()?;
    if !last.value.eq_ignore_ascii_case(name) {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

/// The text of a string constant (`'…'` or `E'…'`).
pub(crate) fn string_literal(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `stmt` calls `set_config` anywhere.
pub(crate) fn calls_set_config(stmt: &sqlparser::ast::Statement) -> bool {
    let found = sqlparser::ast::visit_expressions(stmt, |e| {
        if call_args(e, "set_config").is_some() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    found.is_break()
}

/// Replaces each `set_config('name', 'value', is_local)` call with constant arguments in
/// `stmt` by its value (what the call returns) and lists the settings to make: a query that
/// reads settings and sets them in one select list (asyncpg's `SELECT
/// current_setting('jit') AS cur, set_config('jit', 'off', false) AS new`).
pub(crate) fn take_set_config_calls(stmt: &mut sqlparser::ast::Statement) -> Vec<(String, String)> {
    let mut calls = Vec::new();
    let _ = sqlparser::ast::visit_expressions_mut(stmt, |e| {
        let call = call_args(e, "set_config")
            .filter(|a| a.len() == 3)
            .and_then(|a| Some((string_literal(a[0])?, string_literal(a[1])?)));
        if let Some((name, value)) = call {
            *e = Expr::Value(Value::SingleQuotedString(value.clone()).into());
            calls.push((name, value));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    calls
}

/// `SELECT set_config('name', 'value', is_local)` alone: its name and value.
pub(crate) fn set_config_call(q: &sqlparser::ast::Query) -> Option<(String, String)> {
    use sqlparser::ast::{SelectItem, SetExpr};
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    if !s.from.is_empty() || s.projection.len() != 1 || s.selection.is_some() {
        return None;
    }
    let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = &s.projection[0]
    else {
        return None;
    };
    let args = call_args(e, "set_config")?;
    if args.len() != 3 {
        return None;
    }
    Some((string_literal(args[0])?, string_literal(args[1])?))
}
