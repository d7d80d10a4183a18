//! The routing-quality workload: point lookups, short and long ranges on primary and
//! secondary keys, aggregates of growing selectivity, joins that should mix replicas, and the
//! 22 TPC-H queries, over TPC-H data. Each query runs with `duet.engine` = row, column and
//! auto; the oracle is the faster forced run. Used by `--bin routing` (SF1, BENCHMARKS.md)
//! and by a test at a small scale factor (answers equal, every decision logged).

use std::time::{Duration, Instant};

use crate::tpch::{self, Rows};

/// One query of the workload.
#[derive(Debug, Clone)]
pub struct Query {
    pub label: String,
    pub kind: &'static str,
    pub sql: String,
}

/// The engines compared, in the order they run.
pub const ENGINES: [&str; 3] = ["row", "column", "auto"];

/// What one engine did with one query.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Best time, seconds; `None` if it failed or timed out.
    pub secs: Option<f64>,
    pub error: Option<String>,
    pub executions: usize,
    pub answer: Option<Rows>,
}

/// A query's runs on every engine, and (for auto) the routing decisions logged for it.
#[derive(Debug, Clone)]
pub struct Measured {
    pub query: Query,
    /// In [`ENGINES`] order.
    pub runs: Vec<Run>,
    /// Scans in the query's plan under auto.
    pub scans_in_plan: usize,
    /// Decisions in `duet.routing_log` made by cost (not a setting) for this query's text.
    pub auto_decisions_logged: usize,
    /// `table:engine` of each scan auto chose.
    pub auto_choice: String,
}

impl Measured {
    pub fn secs(&self, engine: &str) -> Option<f64> {
        let i = ENGINES.iter().position(|e| *e == engine)?;
        self.runs[i].secs
    }

    /// Whether auto read every table from the oracle's replica (then any difference in
    /// time is run-to-run noise, not a choice).
    pub fn same_choice_as_oracle(&self, timeout: f64) -> bool {
        let row = self.secs("row").unwrap_or(timeout);
        let col = self.secs("column").unwrap_or(timeout);
        let oracle = if row <= col { "row" } else { "column" };
        self.auto_choice
            .split(' ')
            .all(|c| c.rsplit(':').next() == Some(oracle))
    }

    /// The faster forced engine's time; a timed-out engine counts as `timeout`.
    pub fn oracle(&self, timeout: f64) -> Option<f64> {
        let row = self.secs("row").unwrap_or(timeout);
        let col = self.secs("column").unwrap_or(timeout);
        (self.secs("row").is_some() || self.secs("column").is_some()).then_some(row.min(col))
    }
}

/// Creates the secondary index the workload uses and analyzes every table.
pub async fn prepare(c: &tokio_postgres::Client) -> anyhow::Result<()> {
    c.batch_execute("CREATE INDEX IF NOT EXISTS orders_custkey ON orders (o_custkey); ANALYZE")
        .await?;
    Ok(())
}

async fn scalar(c: &tokio_postgres::Client, sql: &str) -> anyhow::Result<i64> {
    let rows = tpch::query_text(c, sql).await?;
    rows.first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{sql}: no integer"))
}

/// The workload over the loaded TPC-H data (keys are looked up so they exist at any scale).
pub async fn workload(c: &tokio_postgres::Client) -> anyhow::Result<Vec<Query>> {
    let customers = scalar(c, "SELECT count(*) FROM customer").await?;
    let parts = scalar(c, "SELECT count(*) FROM part").await?;
    let max_order = scalar(c, "SELECT max(o_orderkey) FROM orders").await?;
    let order = scalar(
        c,
        &format!(
            "SELECT o_orderkey FROM orders WHERE o_orderkey >= {} ORDER BY o_orderkey LIMIT 1",
            max_order / 2
        ),
    )
    .await?;
    let cust = customers / 2 + 1;
    let q = |label: &str, kind: &'static str, sql: String| Query {
        label: label.to_string(),
        kind,
        sql,
    };
    let mut out = vec![
        q("customer by key", "point", format!("SELECT * FROM customer WHERE c_custkey = {cust}")),
        q("part by key", "point", format!("SELECT * FROM part WHERE p_partkey = {}", parts / 3 + 1)),
        q("order by key", "point", format!("SELECT * FROM orders WHERE o_orderkey = {order}")),
        q("lines of an order", "point", format!("SELECT * FROM lineitem WHERE l_orderkey = {order}")),
        q("nation by key", "point", "SELECT * FROM nation WHERE n_nationkey = 7".into()),
        q("count a tiny table", "aggregate", "SELECT count(*) FROM region".into()),
        q(
            "100 customers",
            "short pk range",
            format!("SELECT sum(c_acctbal) FROM customer WHERE c_custkey BETWEEN {cust} AND {}", cust + 99),
        ),
        q(
            "lines of ~250 orders",
            "short pk range",
            format!(
                "SELECT count(*), sum(l_quantity) FROM lineitem WHERE l_orderkey BETWEEN {order} AND {}",
                order + 1000
            ),
        ),
        q(
            "half the customers",
            "long pk range",
            format!("SELECT sum(c_acctbal) FROM customer WHERE c_custkey < {cust}"),
        ),
        q(
            "a quarter of the orders",
            "long pk range",
            format!(
                "SELECT count(*), sum(o_totalprice) FROM orders WHERE o_orderkey < {}",
                max_order / 4
            ),
        ),
        q(
            "orders of a customer",
            "secondary key",
            format!("SELECT o_orderkey, o_totalprice FROM orders WHERE o_custkey = {}", cust + 1),
        ),
        q(
            "orders of 50 customers",
            "secondary key range",
            format!(
                "SELECT count(*) FROM orders WHERE o_custkey BETWEEN {cust} AND {}",
                cust + 49
            ),
        ),
        q(
            "orders of a third of the customers",
            "secondary key range",
            format!(
                "SELECT count(*), sum(o_totalprice) FROM orders WHERE o_custkey < {}",
                customers / 3
            ),
        ),
        q(
            "lines shipped in the first days",
            "aggregate",
            "SELECT count(*), sum(l_extendedprice) FROM lineitem WHERE l_shipdate < DATE '1992-01-10'".into(),
        ),
        q(
            "lines shipped in the first 2 months",
            "aggregate",
            "SELECT count(*), sum(l_extendedprice) FROM lineitem WHERE l_shipdate < DATE '1992-03-01'".into(),
        ),
        q(
            "lines shipped in the first year",
            "aggregate",
            "SELECT count(*), sum(l_extendedprice) FROM lineitem WHERE l_shipdate < DATE '1993-01-01'".into(),
        ),
        q(
            "all lines by return flag",
            "aggregate",
            "SELECT l_returnflag, count(*), sum(l_quantity) FROM lineitem GROUP BY l_returnflag ORDER BY 1".into(),
        ),
        q(
            "a customer's orders (join)",
            "join",
            format!(
                "SELECT c_name, o_orderkey, o_totalprice FROM customer JOIN orders ON c_custkey = o_custkey \
                 WHERE c_custkey = {} ORDER BY o_orderkey",
                cust + 1
            ),
        ),
        q(
            "customers per nation (join)",
            "join",
            "SELECT n_name, count(*) FROM nation JOIN customer ON n_nationkey = c_nationkey \
             GROUP BY n_name ORDER BY n_name"
                .into(),
        ),
    ];
    for (n, sql) in tpch::queries() {
        out.push(q(&format!("TPC-H Q{n}"), "tpc-h", sql.trim().to_string()));
    }
    Ok(out)
}

/// Runs every query on every engine: one run, and when it took under `quick` seconds a
/// warm-up plus the best of `runs`. Each engine runs all queries before the next starts.
pub async fn run(
    c: &tokio_postgres::Client,
    queries: &[Query],
    runs: u32,
    timeout_secs: u64,
    mut progress: impl FnMut(&str, &Query, &Run),
) -> anyhow::Result<Vec<Measured>> {
    let quick = 2.0;
    let mut out: Vec<Measured> = queries
        .iter()
        .map(|q| Measured {
            query: q.clone(),
            runs: Vec::new(),
            scans_in_plan: 0,
            auto_decisions_logged: 0,
            auto_choice: String::new(),
        })
        .collect();
    c.batch_execute(&format!(
        "SET statement_timeout = '{timeout_secs}s'; SET duet.learner_wait_timeout = '30s'"
    ))
    .await?;
    for engine in ENGINES {
        c.batch_execute(&format!("SET duet.engine = '{engine}'"))
            .await?;
        for m in out.iter_mut() {
            let sql = &m.query.sql;
            let mut run = Run::default();
            let time_once = || async {
                let t = Instant::now();
                let r = tpch::query_text(c, sql).await;
                (t.elapsed().as_secs_f64(), r)
            };
            let (first, answer) = time_once().await;
            run.executions += 1;
            match answer {
                Ok(a) => {
                    run.answer = Some(a);
                    let mut best = first;
                    if first < quick {
                        for _ in 0..runs {
                            let (t, r) = time_once().await;
                            run.executions += 1;
                            if r.is_ok() {
                                best = best.min(t);
                            }
                        }
                    }
                    run.secs = Some(best);
                }
                Err(e) => run.error = Some(e.to_string()),
            }
            if engine == "auto" {
                let (choice, scans) = plan_choice(c, sql).await?;
                m.scans_in_plan = scans;
                m.auto_choice = choice;
                let logged = tpch::query_text(
                    c,
                    &format!(
                        "SELECT count(*) FROM duet.routing_log WHERE query = '{}' \
                         AND reason NOT LIKE 'session setting%' AND actual_rows IS NOT NULL",
                        sql.replace('\'', "''")
                    ),
                )
                .await?;
                m.auto_decisions_logged = logged[0][0]
                    .as_deref()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
            progress(engine, &m.query, &run);
            m.runs.push(run);
        }
    }
    c.batch_execute("SET statement_timeout = 0; SET duet.engine = 'auto'")
        .await?;
    Ok(out)
}

/// `table:engine` of every scan of `sql`'s plan under the session's settings, and how many.
async fn plan_choice(c: &tokio_postgres::Client, sql: &str) -> anyhow::Result<(String, usize)> {
    let plan = tpch::query_text(c, &format!("EXPLAIN {sql}")).await?;
    let mut choices = Vec::new();
    for row in plan {
        let Some(text) = row.get(1).cloned().flatten() else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim();
            // A primary-key point query runs on the row replica's fast path.
            for kind in [
                "RowScan: table=",
                "ColumnScan: table=",
                "PointLookup: table=",
            ] {
                if let Some(rest) = line.strip_prefix(kind) {
                    let table = rest.split(',').next().unwrap_or_default();
                    let engine = if kind.starts_with("Column") {
                        "column"
                    } else {
                        "row"
                    };
                    choices.push(format!("{table}:{engine}"));
                }
            }
        }
    }
    let n = choices.len();
    Ok((choices.join(" "), n))
}

/// The report: a table per query and the totals against the oracle.
pub fn report(measured: &[Measured], timeout_secs: u64) -> String {
    use std::fmt::Write;
    let timeout = timeout_secs as f64;
    let cell = |r: &Run| match (r.secs, &r.error) {
        (Some(s), _) => format!("{s:.4}"),
        (None, Some(e)) if e.contains("57014") || e.contains("timeout") => {
            format!(">{timeout_secs}")
        }
        _ => "error".into(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| query | kind | row s | column s | auto s | oracle s | auto / oracle | auto chose | same replicas as oracle |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let (mut t_row, mut t_col, mut t_auto, mut t_oracle) = (0.0, 0.0, 0.0, 0.0);
    let mut slower = Vec::new();
    let mut worst: f64 = 0.0;
    let mut differing = 0;
    let mut worst_differing: f64 = 0.0;
    for m in measured {
        let oracle = m.oracle(timeout);
        let auto = m.secs("auto");
        t_row += m.secs("row").unwrap_or(timeout);
        t_col += m.secs("column").unwrap_or(timeout);
        t_auto += auto.unwrap_or(timeout);
        t_oracle += oracle.unwrap_or(timeout);
        let ratio = match (auto, oracle) {
            (Some(a), Some(o)) if o > 0.0 => Some(a / o),
            _ => None,
        };
        let same = m.same_choice_as_oracle(timeout);
        if let Some(r) = ratio {
            worst = worst.max(r);
            if !same {
                differing += 1;
                worst_differing = worst_differing.max(r);
                // Within 10% or 1 ms of the oracle: noise, not a wrong choice.
                if r > 1.1 && auto.unwrap_or(0.0) - oracle.unwrap_or(0.0) > 0.001 {
                    slower.push((m.query.label.clone(), r));
                }
            }
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.query.label,
            m.query.kind,
            cell(&m.runs[0]),
            cell(&m.runs[1]),
            cell(&m.runs[2]),
            oracle.map_or("-".into(), |o| format!("{o:.4}")),
            ratio.map_or("-".into(), |r| format!("{r:.2}")),
            m.auto_choice,
            if same { "yes" } else { "no" }
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Totals (a timed-out run counts as {timeout_secs} s): row {t_row:.2} s, column {t_col:.2} s, \
         auto {t_auto:.2} s, oracle {t_oracle:.2} s; auto / oracle = {:.2}, row / oracle = {:.2}, \
         column / oracle = {:.2}; worst single query auto / oracle = {worst:.2}.",
        t_auto / t_oracle,
        t_row / t_oracle,
        t_col / t_oracle
    );
    let _ = writeln!(
        out,
        "Auto read some table from the other replica than the oracle's on {differing} of {} \
         queries (worst of those: {worst_differing:.2}× the oracle); on the others it made the \
         oracle's choice, and the ratio there is run-to-run noise.",
        measured.len()
    );
    let _ = writeln!(
        out,
        "Queries where auto chose differently from the oracle and was more than 10% (and 1 ms) slower: {}{}",
        slower.len(),
        if slower.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                slower
                    .iter()
                    .map(|(l, r)| format!("{l}: {r:.2}×"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    out
}

/// How long to let a forced engine run one query.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
