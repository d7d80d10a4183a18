//! What one database answered, and how two answers compare.

use std::time::Duration;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Rows {
        names: Vec<String>,
        rows: Vec<Vec<Option<String>>>,
    },
    Error {
        code: String,
        message: String,
    },
    /// The connection broke or the statement did not finish in time.
    Lost(String),
}

impl Outcome {
    pub fn code(&self) -> Option<&str> {
        match self {
            Outcome::Error { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn short(&self) -> String {
        match self {
            Outcome::Rows { names, rows } => {
                let mut s = format!("{} rows [{}]", rows.len(), names.join(", "));
                for r in rows.iter().take(8) {
                    let cells: Vec<&str> =
                        r.iter().map(|c| c.as_deref().unwrap_or("NULL")).collect();
                    s.push_str(&format!("\n    {}", cells.join(" | ")));
                }
                if rows.len() > 8 {
                    s.push_str("\n    ...");
                }
                s
            }
            Outcome::Error { code, message } => format!("ERROR {code}: {message}"),
            Outcome::Lost(why) => format!("LOST: {why}"),
        }
    }
}

/// Runs `sql` with the simple protocol; the statement timeout is the server's (set per
/// session), `limit` is a client-side backstop.
pub async fn run(client: &Client, sql: &str, limit: Duration) -> Outcome {
    let r = match tokio::time::timeout(limit, client.simple_query(sql)).await {
        Err(_) => return Outcome::Lost(format!("no answer in {limit:?}")),
        Ok(r) => r,
    };
    match r {
        Ok(msgs) => {
            let mut names = Vec::new();
            let mut rows = Vec::new();
            for m in msgs {
                match m {
                    SimpleQueryMessage::RowDescription(cols) => {
                        names = cols.iter().map(|c| c.name().to_string()).collect();
                    }
                    SimpleQueryMessage::Row(r) => {
                        rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
                    }
                    _ => {}
                }
            }
            Outcome::Rows { names, rows }
        }
        Err(e) => match e.as_db_error() {
            Some(db) => Outcome::Error {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None => Outcome::Lost(e.to_string()),
        },
    }
}

/// The result column types a server describes for `sql` (extended protocol), if it can.
pub async fn column_types(client: &Client, sql: &str) -> Option<Vec<Type>> {
    let st = tokio::time::timeout(Duration::from_secs(20), client.prepare(sql))
        .await
        .ok()?
        .ok()?;
    Some(st.columns().iter().map(|c| c.type_().clone()).collect())
}

/// Floats compare after rounding to `digits` significant digits (summation order changes
/// the last bits: 12 for double precision, 6 for real, whose sums add in real); everything
/// else (`digits` 0) byte for byte.
fn normalize(cell: &Option<String>, digits: u8) -> Option<String> {
    let s = cell.as_ref()?;
    if digits == 0 {
        return Some(s.clone());
    }
    match s.parse::<f64>() {
        Ok(0.0) => Some("0".into()),
        Ok(v) if v.is_finite() => Some(format!("{v:.*e}", usize::from(digits - 1))),
        _ => Some(s.clone()),
    }
}

/// Whether two row sets are the same answer: in order when `ordered`, else as multisets.
/// `floats` gives the significant digits each column is compared to (by PostgreSQL's
/// types, [`float_digits`]; 0: exactly).
pub fn same_rows(
    a: &[Vec<Option<String>>],
    b: &[Vec<Option<String>>],
    floats: &[u8],
    ordered: bool,
) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let norm = |rows: &[Vec<Option<String>>]| -> Vec<Vec<Option<String>>> {
        let mut out: Vec<Vec<Option<String>>> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(i, c)| normalize(c, floats.get(i).copied().unwrap_or(0)))
                    .collect()
            })
            .collect();
        if !ordered {
            out.sort();
        }
        out
    };
    norm(a) == norm(b)
}

/// The significant digits a column of type `t` is compared to (0: exactly).
pub fn float_digits(t: &Type) -> u8 {
    match *t {
        Type::FLOAT8 => 12,
        Type::FLOAT4 => 6,
        _ => 0,
    }
}
