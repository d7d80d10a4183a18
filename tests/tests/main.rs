//! DuetDB's integration tests: one binary (link time), one module per area. Every test
//! talks to a real server over a real socket with a real Postgres client.

#![allow(clippy::print_stderr)] // tests report what they measured

mod analytics;
mod auth;
mod bad_input;
mod cluster;
mod copy;
mod crash;
mod difftest;
mod disk;
mod drivers;
mod fastpath;
mod foreign_keys;
mod gc;
mod layering;
mod pgbench;
mod psql;
mod replication;
mod routing;
mod sequences;
mod slt;
mod tpch;
mod txn;
mod views;
mod wire;

/// Rows of `sql` (simple protocol) as text, in the order returned; panics on an error.
pub async fn rows(c: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The single `bigint` value `sql` returns (a count, a sum).
pub async fn int(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// The SQLSTATE `sql` fails with; panics if it succeeds.
pub async fn error_code(c: &tokio_postgres::Client, sql: &str) -> String {
    match c.simple_query(sql).await {
        Ok(_) => panic!("{sql} succeeded"),
        Err(e) => e.code().map(|c| c.code().to_string()).unwrap_or_default(),
    }
}

/// The SQLSTATE of a tokio-postgres error, if the server sent one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.code().code().to_string())
}

/// The value of one sample (`name{labels}`) in a Prometheus text page.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample).map(str::trim))
        .unwrap_or_else(|| panic!("{sample} not in metrics:\n{text}"))
        .parse()
        .unwrap()
}
