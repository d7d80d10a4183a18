//! Identifier handling: PostgreSQL folds unquoted names to lower case.

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

use crate::error::{PgError, Result, SqlState};
use crate::session::DATABASE;

/// The catalog name of an identifier.
pub fn ident_name(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// The table name in `[database.][public.]name`.
pub fn table_name(n: &ObjectName) -> Result<String> {
    let parts: Vec<String> =
        n.0.iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => Ok(ident_name(i)),
                other => Err(PgError::new(
                    SqlState::SyntaxError,
                    format!("unexpected name part {other}"),
                )),
            })
            .collect::<Result<_>>()?;
    match parts.as_slice() {
        [t] => Ok(t.clone()),
        [s, t] if s == "public" => Ok(t.clone()),
        [d, s, t] if d == DATABASE && s == "public" => Ok(t.clone()),
        [s, _] => Err(PgError::new(
            SqlState::UndefinedObject,
            format!("schema \"{s}\" does not exist"),
        )),
        _ => Err(PgError::new(
            SqlState::SyntaxError,
            format!("improper qualified name: {n}"),
        )),
    }
}

/// Quotes an identifier for SQL text we generate.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_and_quoting() {
        assert_eq!(ident_name(&Ident::new("Foo")), "foo");
        assert_eq!(ident_name(&Ident::with_quote('"', "Foo")), "Foo");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        let n = ObjectName::from(vec![Ident::new("public"), Ident::new("T")]);
        assert_eq!(table_name(&n).unwrap(), "t");
        let bad = ObjectName::from(vec![Ident::new("other"), Ident::new("t")]);
        assert_eq!(
            table_name(&bad).unwrap_err().state,
            SqlState::UndefinedObject
        );
    }
}
