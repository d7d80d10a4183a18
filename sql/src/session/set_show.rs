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
        match self.settings.shown(&key) {
            Some(v) => Ok(single_text(&key, v)),
            None if key == "all" => Err(PgError::unsupported("SHOW ALL")),
            None => Err(PgError::new(
                SqlState::UndefinedObject,
                format!("unrecognized configuration parameter \"{name}\""),
            )),
        }
    }
}
