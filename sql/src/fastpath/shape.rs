//! Simple-query texts as fast-path shapes: [`literal_shape`] turns a text into its shape
//! (literals replaced by `$n`) in one pass, the cache key of a connection's simple queries;
//! [`parse_if_fast`] parses a text with sqlparser alone when all its statements are
//! fast-path statements.

use std::sync::Arc;

use datafusion::scalar::ScalarValue;
use duet_rowstore::Store;
use sqlparser::ast::Statement;

use super::FastPlan;

/// Longest text [`parse_if_fast`] tries.
const FAST_PARSE_MAX: usize = 4096;

/// The statements of `sql` parsed by sqlparser alone, if every one of them is a fast-path
/// statement. datafusion-pg-catalog's parser (which `connection::parse_sql` uses) scans the
/// tokens for whole catalog queries of known clients and runs a dozen rewrite passes; none
/// of them applies to the shapes recognised here (plain columns of a user table, literals,
/// parameters, `=` and AND), so for those the plain parse is the same tree, for less work
/// (simple-query mode parses every execution's text).
///
/// Each statement comes with its plan, so it is not recognised again when it runs.
pub fn parse_if_fast(sql: &str, store: &Store) -> Option<Vec<(Statement, Arc<FastPlan>)>> {
    if sql.len() > FAST_PARSE_MAX {
        return None;
    }
    let stmts =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
            .ok()?;
    if stmts.is_empty() {
        return None;
    }
    stmts
        .into_iter()
        .map(|s| {
            let plan = FastPlan::recognize(&s, store)?;
            Some((s, Arc::new(plan)))
        })
        .collect()
}

/// A simple-query text with its literals taken out: the text with each number and string
/// literal replaced by `$1`, `$2`, … in order (its *shape*), and the literals as parameter
/// values. Texts that differ only in their literals (pgbench's, most applications') share a
/// shape, so simple-query mode can keep a parsed, recognised plan per shape as the extended
/// protocol keeps one per statement. The values are typed so that binding them converts
/// exactly as the literals would (`literal` and `param_datum` agree): integers as `Int32`
/// when they fit, else `Int64` (the width a literal has in `c = c + 5`), other numbers as
/// `Float64`, strings as `Utf8`; a `-` directly after an operator, `(` or `,` belongs to the
/// number. `None` for texts this does not read plainly (comments, which may carry routing
/// hints, `$`, escape or prefixed strings, unterminated quotes, numbers run into words).
pub fn literal_shape(sql: &str) -> Option<(String, Vec<ScalarValue>)> {
    if sql.len() > FAST_PARSE_MAX {
        return None;
    }
    let b = sql.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
    let mut out: Vec<u8> = Vec::with_capacity(sql.len() + 8);
    let mut lits: Vec<ScalarValue> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'$' => return None,
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b'"' => {
                let end = i + 1 + b[i + 1..].iter().position(|&q| q == b'"')?;
                out.extend_from_slice(&b[i..=end]);
                i = end + 1;
                continue;
            }
            b'\'' => {
                if i > 0 && ident(b[i - 1]) {
                    return None; // E'…', X'…', B'…', N'…'
                }
                let mut text = Vec::new();
                let mut j = i + 1;
                loop {
                    match b.get(j)? {
                        b'\'' if b.get(j + 1) == Some(&b'\'') => {
                            text.push(b'\'');
                            j += 2;
                        }
                        b'\'' => break,
                        &other => {
                            text.push(other);
                            j += 1;
                        }
                    }
                }
                lits.push(ScalarValue::Utf8(Some(String::from_utf8(text).ok()?)));
                push_placeholder(&mut out, lits.len());
                i = j + 1;
                continue;
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) && !(i > 0 && ident(b[i - 1])) => {
                return None;
            }
            b'0'..=b'9' if !(i > 0 && (ident(b[i - 1]) || b[i - 1] == b'.')) => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let mut float = false;
                if i < b.len() && b[i] == b'.' {
                    float = true;
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    float = true;
                    i += 1;
                    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                        i += 1;
                    }
                    let digits = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    if digits == i {
                        return None;
                    }
                }
                if i < b.len() && (ident(b[i]) || b[i] == b'.') {
                    return None;
                }
                // A minus sign right after an operator, `(` or `,` is the number's.
                let mut negative = false;
                let trimmed = out.iter().rposition(|c| !c.is_ascii_whitespace());
                if let Some(m) = trimmed.filter(|&m| out[m] == b'-') {
                    let before = out[..m].iter().rposition(|c| !c.is_ascii_whitespace());
                    if before.is_none_or(|p| b"=<>+-*/(,".contains(&out[p])) {
                        negative = true;
                        out.truncate(m);
                    }
                }
                let text = std::str::from_utf8(&b[start..i]).ok()?;
                let text = if negative {
                    format!("-{text}")
                } else {
                    text.to_string()
                };
                lits.push(if float {
                    ScalarValue::Float64(Some(text.parse().ok()?))
                } else {
                    let v: i64 = text.parse().ok()?;
                    match i32::try_from(v) {
                        Ok(v) => ScalarValue::Int32(Some(v)),
                        Err(_) => ScalarValue::Int64(Some(v)),
                    }
                });
                push_placeholder(&mut out, lits.len());
                continue;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Some((String::from_utf8(out).ok()?, lits))
}

/// Appends `$n` to a shape being built.
fn push_placeholder(out: &mut Vec<u8>, n: usize) {
    // Writing into a Vec cannot fail.
    let _ = std::io::Write::write_fmt(out, format_args!("${n}"));
}
