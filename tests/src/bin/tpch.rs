//! TPC-H side by side in one run: DuetDB (in-process, `duet.engine = 'column'`), DataFusion
//! on Parquet, DuckDB on Parquet and native (through `tests/tpch/duckdb_bench.py`), and
//! PostgreSQL 15 (`--pg`). Data from `tpchgen`, the same 22 query texts everywhere, one
//! warm-up run then the best of `--runs`. Progress on stderr, a Markdown report on stdout.
//!
//! `cargo run --release -p duet-tests --bin tpch -- --sf 1 --pg "$(scripts/reference-pg.sh start)"`

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool

/// The allocator the `duetdb` server uses (see src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use duet_tests::tpch::{self, Rows};
use duet_tests::ClusterBuilder;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "TPC-H on DuetDB, DataFusion/Parquet, DuckDB and PostgreSQL side by side")]
struct Args {
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 1.0)]
    sf: f64,
    /// Where the generated text, Parquet files and databases go (DuetDB's data dir included).
    #[arg(long, default_value = "/var/tmp/duet-tpch")]
    work_dir: PathBuf,
    /// Timed runs per query after one warm-up run; the best one is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// DuetDB engines (`duet.engine`) to run the queries on, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "column")]
    engines: Vec<String>,
    /// Column cache budgets (MB, comma-separated) to run the column engine's queries with,
    /// one after the other (each a system of the report); without it, the default budget.
    #[arg(long, value_delimiter = ',')]
    column_cache_mb: Vec<u64>,
    /// libpq connection string of a PostgreSQL 15 server; without it PostgreSQL is skipped.
    #[arg(long)]
    pg: Option<String>,
    /// PostgreSQL's statement_timeout in seconds; a query that hits it is not rerun.
    #[arg(long, default_value_t = 60)]
    pg_timeout: u64,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only write the `.tbl` files (into `<work-dir>/sf<SF>/tbl`) and stop: data for
    /// loading elsewhere (`bench/cluster-tpch.sh`).
    #[arg(long)]
    tbl_only: bool,
}

enum Outcome {
    Secs(f64),
    /// Hit PostgreSQL's statement_timeout.
    Timeout,
    Failed(String),
}

impl Outcome {
    fn secs(&self) -> Option<f64> {
        match self {
            Outcome::Secs(s) => Some(*s),
            _ => None,
        }
    }
    fn cell(&self, timeout: u64) -> String {
        match self {
            Outcome::Secs(s) => format!("{s:.3}"),
            Outcome::Timeout => format!(">{timeout} s"),
            Outcome::Failed(_) => "error".into(),
        }
    }
    fn status(&self) -> String {
        match self {
            Outcome::Secs(_) => "ok".into(),
            Outcome::Timeout => "statement timeout".into(),
            Outcome::Failed(e) => format!("error: {e}"),
        }
    }
}

/// One column of the report.
#[derive(Default)]
struct System {
    key: String,
    name: String,
    version: String,
    /// Load steps and their seconds.
    load: Vec<(String, f64)>,
    bytes: Option<u64>,
    results: BTreeMap<u32, Outcome>,
    rows: BTreeMap<u32, usize>,
    /// Warm-up answers as text (DuetDB and PostgreSQL), for the comparison.
    answers: BTreeMap<u32, Rows>,
}

impl System {
    fn new(key: &str, name: &str, version: &str) -> Self {
        System {
            key: key.into(),
            name: name.into(),
            version: version.into(),
            ..Default::default()
        }
    }
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// One warm-up run, then the best of `runs`. Returns the outcome and the warm-up's result.
async fn best_of<T, F, Fut>(runs: u32, mut run: F) -> (Outcome, Option<T>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let failed = |e: anyhow::Error| {
        let code = e
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.code());
        if code == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) {
            Outcome::Timeout
        } else {
            Outcome::Failed(format!("{e:#}").replace('\n', " "))
        }
    };
    let warm = match run().await {
        Ok(v) => v,
        Err(e) => return (failed(e), None),
    };
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t = Instant::now();
        if let Err(e) = run().await {
            return (failed(e), Some(warm));
        }
        best = best.min(secs(t));
    }
    (Outcome::Secs(best), Some(warm))
}

/// Runs query `q` on `sys` with [`best_of`], showing progress on stderr.
async fn bench_query<T, F, Fut>(sys: &mut System, q: u32, runs: u32, run: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    eprint!("{}: Q{q} of 22 ... ", sys.name);
    let _ = std::io::stderr().flush();
    let (outcome, answer) = best_of(runs, run).await;
    match &outcome {
        Outcome::Secs(s) => eprintln!("{s:.3} s"),
        other => eprintln!("{}", other.status()),
    }
    sys.results.insert(q, outcome);
    answer
}

/// A `progress(table, rows)` callback keeping one stderr line per table up to date.
fn progress<'a>(label: &'a str, totals: &'a [(String, u64)]) -> impl FnMut(&str, u64) + 'a {
    let mut table_shown = String::new();
    let mut last: Option<Instant> = None;
    move |table, rows| {
        if table_shown != table {
            if !table_shown.is_empty() {
                eprintln!();
            }
            table_shown = table.to_string();
            last = None;
        }
        let total = totals.iter().find(|(t, _)| t == table).map(|(_, n)| *n);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) || Some(rows) == total {
            let of = total.map(|n| format!(" of {n}")).unwrap_or_default();
            eprint!("\r{label}: {table}: {rows}{of} rows");
            last = Some(Instant::now());
        }
    }
}

fn dir_size(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| dir_size(&e.path()))
            .sum(),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// DuetDB: COPY, learner catch-up, compaction, then the queries on each engine.
async fn duetdb(
    args: &Args,
    counts: &[(String, u64)],
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<System>> {
    let data_dir = args.work_dir.join("duetdb");
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)?;
    }
    let cluster = ClusterBuilder::new("tpch")
        .data_dir(data_dir.clone())
        .build()
        .await?;
    let loader = cluster.client().await?;
    let mut load = Vec::new();
    let t = Instant::now();
    tpch::load(&loader, args.sf, progress("DuetDB COPY", counts)).await?;
    eprintln!();
    load.push(("COPY".to_string(), secs(t)));
    // An idle session keeps the snapshot of its last statement pinned, and compaction folds
    // nothing newer than the oldest pin: the loading session goes before compacting.
    drop(loader);
    let c = cluster.client().await?;
    let version = tpch::query_text(&c, "SELECT version()").await?[0][0]
        .clone()
        .unwrap_or_default();
    let t = Instant::now();
    anyhow::ensure!(
        cluster.wait_learner_caught_up(Duration::from_secs(3600))?,
        "DuetDB's learner did not catch up within an hour"
    );
    load.push(("learner catch-up".to_string(), secs(t)));
    // What the queries will read: rows still in the delta are merged by every scan.
    let replicas = "SELECT table_name, delta_rows FROM duet.replicas WHERE delta_rows > 0";
    // Compaction folds nothing newer than the oldest snapshot in use, and the background
    // ANALYZE that follows a load reads at a snapshot for a while: compact again until the
    // delta is empty (or a minute has passed; the note below then reports what is left).
    let t = Instant::now();
    loop {
        cluster.compact_columns()?;
        if tpch::query_text(&c, replicas).await?.is_empty() || t.elapsed().as_secs() >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    load.push(("column compaction".to_string(), secs(t)));
    let in_delta = tpch::query_text(&c, replicas).await?;
    if !in_delta.is_empty() {
        let tables: Vec<String> = in_delta
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r[0].as_deref().unwrap_or("?"),
                    r[1].as_deref().unwrap_or("?")
                )
            })
            .collect();
        notes.push(format!(
            "**DELTA** DuetDB: rows still in the column delta after compaction: {}",
            tables.join(", ")
        ));
    }
    // Statistics for the router, as PostgreSQL's side runs ANALYZE: the background task
    // waits while a table is being loaded, and would otherwise scan lineitem under the
    // first queries.
    let t = Instant::now();
    c.batch_execute("ANALYZE").await?;
    load.push(("ANALYZE".to_string(), secs(t)));
    eprintln!("DuetDB: loaded; {load:?}");

    let columns = cluster.node()?.columns().clone();
    let fallbacks = || columns.fallbacks().iter().map(|(_, n)| n).sum::<u64>();
    let mut systems = Vec::new();
    let node = cluster.node()?;
    let mut runs: Vec<(String, Option<u64>)> = Vec::new();
    for engine in &args.engines {
        if engine == "column" && !args.column_cache_mb.is_empty() {
            runs.extend(
                args.column_cache_mb
                    .iter()
                    .map(|mb| (engine.clone(), Some(*mb))),
            );
        } else {
            runs.push((engine.clone(), None));
        }
    }
    for (engine, cache_mb) in &runs {
        c.batch_execute(&format!(
            "SET duet.engine = '{engine}'; SET duet.learner_wait_timeout = '30s'"
        ))
        .await?;
        let (key, name) = match cache_mb {
            Some(mb) => {
                node.set_column_cache_size(mb << 20);
                (
                    format!("duetdb-{engine}-{mb}mb"),
                    format!("DuetDB ({engine}, {mb} MB cache)"),
                )
            }
            None => (format!("duetdb-{engine}"), format!("DuetDB ({engine})")),
        };
        let mut sys = System::new(&key, &name, &version);
        let cache = node.column_store().map(|s| s.cache().clone());
        let cache_before = cache.as_ref().map(|c| c.figures());
        let before = fallbacks();
        for (q, sql) in tpch::queries() {
            let c = &c;
            if let Some(answer) =
                bench_query(&mut sys, q, args.runs, || tpch::query_text(c, sql)).await
            {
                sys.rows.insert(q, answer.len());
                sys.answers.insert(q, answer);
            }
        }
        if engine == "column" && fallbacks() != before {
            notes.push(format!(
                "**FALLBACK** DuetDB: {} column scans read the row replica instead: {:?}",
                fallbacks() - before,
                columns.fallbacks()
            ));
        }
        if let (Some(cache), Some(b), true) = (&cache, cache_before, engine == "column") {
            let f = cache.figures();
            notes.push(format!(
                "{name}: column cache of {} MB held {} MB at the end; the queries read {} MB \
                 from chunk files in {} reads ({} ahead of the scan); {} column hits, {} misses",
                f.capacity >> 20,
                f.bytes >> 20,
                (f.bytes_loaded - b.bytes_loaded) >> 20,
                f.file_reads - b.file_reads,
                f.prefetches - b.prefetches,
                f.hits - b.hits,
                f.misses - b.misses
            ));
        }
        systems.push(sys);
    }
    if let Some(first) = systems.first_mut() {
        first.load = load;
        first.bytes = Some(dir_size(&data_dir));
    }
    Ok(systems)
}

/// The Arrow schema of a TPC-H table from its column list in [`tpch::SCHEMA`].
fn arrow_schema(columns: &str) -> anyhow::Result<Schema> {
    let (mut defs, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, ch) in columns.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                defs.push(columns[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    defs.push(columns[start..].trim());
    let mut fields = Vec::new();
    for def in defs.into_iter().filter(|d| !d.starts_with("PRIMARY KEY")) {
        let mut words = def.split_whitespace();
        let (Some(name), Some(ty)) = (words.next(), words.next()) else {
            bail!("cannot read column definition {def:?}");
        };
        let data_type = match ty.split_once('(') {
            None if ty == "integer" => DataType::Int32,
            None if ty == "date" => DataType::Date32,
            Some(("char" | "varchar", _)) => DataType::Utf8,
            Some(("decimal", ps)) => {
                let (p, s) = ps
                    .trim_end_matches(')')
                    .split_once(',')
                    .context(ty.to_string())?;
                DataType::Decimal128(p.parse()?, s.parse()?)
            }
            _ => bail!("no Arrow type for {ty}"),
        };
        fields.push(Field::new(name, data_type, !def.contains("NOT NULL")));
    }
    Ok(Schema::new(fields))
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("not UTF-8: {}", p.display()))
}

/// DataFusion: the `.tbl` text to Parquet, then the queries on the Parquet files.
async fn datafusion(args: &Args, tbl: &Path, parquet: &Path) -> anyhow::Result<System> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config = || SessionConfig::new().with_target_partitions(cores);
    let mut sys = System::new(
        "datafusion-parquet",
        "DataFusion (Parquet)",
        datafusion::DATAFUSION_VERSION,
    );
    if parquet.exists() {
        std::fs::remove_dir_all(parquet)?;
    }
    std::fs::create_dir_all(parquet)?;
    let t = Instant::now();
    let ctx = SessionContext::new_with_config(config());
    for (table, columns) in tpch::SCHEMA {
        eprintln!("DataFusion: {table}.tbl -> {table}.parquet");
        let schema = arrow_schema(columns)?;
        let options = CsvReadOptions::new()
            .delimiter(b'|')
            .has_header(false)
            .schema(&schema)
            .file_extension(".tbl");
        let source = tbl.join(format!("{table}.tbl"));
        let target = parquet.join(format!("{table}.parquet"));
        ctx.read_csv(path_str(&source)?, options)
            .await?
            .write_parquet(
                path_str(&target)?,
                DataFrameWriteOptions::new().with_single_file_output(true),
                None,
            )
            .await?;
    }
    sys.load
        .push(("text -> Parquet (write_parquet)".into(), secs(t)));
    sys.bytes = Some(dir_size(parquet));

    let ctx = SessionContext::new_with_config(config());
    for (table, _) in tpch::SCHEMA {
        let file = parquet.join(format!("{table}.parquet"));
        ctx.register_parquet(table, path_str(&file)?, ParquetReadOptions::default())
            .await?;
    }
    for (q, sql) in tpch::queries() {
        let ctx = &ctx;
        let batches = bench_query(&mut sys, q, args.runs, || async move {
            Ok(ctx.sql(sql).await?.collect().await?)
        })
        .await;
        if let Some(b) = batches {
            sys.rows.insert(q, b.iter().map(|b| b.num_rows()).sum());
        }
    }
    Ok(sys)
}

/// DuckDB through `tpch/duckdb_bench.py`; `Ok(Err(why))` when it cannot run.
fn duckdb(args: &Args, parquet: &Path, db: &Path) -> anyhow::Result<Result<Vec<System>, String>> {
    let root = duet_tests::crate_dir().join("tpch");
    let script = root.join("duckdb_bench.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg("--parquet-dir")
        .arg(parquet)
        .arg("--db")
        .arg(db)
        .arg("--queries")
        .arg(root.join("queries"))
        .arg("--runs")
        .arg(args.runs.to_string())
        .stderr(Stdio::inherit())
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => return Ok(Err(format!("{} failed: {}", script.display(), o.status))),
        Err(e) => return Ok(Err(format!("cannot run python3: {e}"))),
    };
    let v: Value = serde_json::from_slice(&output.stdout).context("duckdb_bench.py's JSON")?;
    if let Some(why) = v["skipped"].as_str() {
        return Ok(Err(why.to_string()));
    }
    let version = format!(
        "{} ({} threads)",
        v["version"].as_str().unwrap_or("?"),
        v["threads"]
    );
    let mut systems = Vec::new();
    for (key, name) in [
        ("parquet", "DuckDB (Parquet)"),
        ("native", "DuckDB (native)"),
    ] {
        let mut sys = System::new(&format!("duckdb-{key}"), name, &version);
        for r in v[key].as_array().context("duckdb_bench.py's JSON")? {
            let q = r["query"].as_u64().context("query number")? as u32;
            let outcome = match r["seconds"].as_f64() {
                Some(s) => Outcome::Secs(s),
                None => Outcome::Failed(r["status"].as_str().unwrap_or("?").to_string()),
            };
            sys.results.insert(q, outcome);
            if let Some(n) = r["rows"].as_u64() {
                sys.rows.insert(q, n as usize);
            }
        }
        systems.push(sys);
    }
    systems[1].load.push((
        "Parquet -> native tables (CREATE TABLE AS)".into(),
        v["native_load_seconds"].as_f64().unwrap_or(f64::NAN),
    ));
    systems[1].bytes = v["native_bytes"].as_u64();
    Ok(Ok(systems))
}

/// PostgreSQL: a fresh database, COPY, ANALYZE, the queries under statement_timeout.
async fn postgres(args: &Args, conn: &str, counts: &[(String, u64)]) -> anyhow::Result<System> {
    let connect = |s: String| async move {
        let (client, connection) = tokio_postgres::connect(&s, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to PostgreSQL ({s})"))?;
        tokio::spawn(connection);
        anyhow::Ok(client)
    };
    let admin = connect(conn.to_string()).await?;
    let db = "duet_tpch";
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    let pg = connect(format!("{conn} dbname={db}")).await?;
    let version = tpch::query_text(&pg, "SHOW server_version").await?[0][0]
        .clone()
        .unwrap_or_default();
    let mut sys = System::new("postgres", "PostgreSQL", &version);
    let t = Instant::now();
    tpch::load(&pg, args.sf, progress("PostgreSQL COPY", counts)).await?;
    eprintln!();
    sys.load.push(("COPY".into(), secs(t)));
    let t = Instant::now();
    pg.batch_execute("ANALYZE").await?;
    sys.load.push(("ANALYZE".into(), secs(t)));
    let size = tpch::query_text(&pg, "SELECT pg_database_size(current_database())").await?;
    sys.bytes = size[0][0].as_deref().and_then(|s| s.parse().ok());
    pg.batch_execute(&format!("SET statement_timeout = '{}s'", args.pg_timeout))
        .await?;
    for (q, sql) in tpch::queries() {
        let pg = &pg;
        if let Some(answer) =
            bench_query(&mut sys, q, args.runs, || tpch::query_text(pg, sql)).await
        {
            sys.rows.insert(q, answer.len());
            sys.answers.insert(q, answer);
        }
    }
    Ok(sys)
}

/// Mismatches with PostgreSQL's answers (DuetDB: full answers; others: row counts).
fn check_answers(systems: &[System]) -> Vec<String> {
    let Some(pg) = systems.iter().find(|s| s.key == "postgres") else {
        return vec!["Answers not checked: PostgreSQL was not run (--pg).".into()];
    };
    let mut notes = Vec::new();
    for sys in systems.iter().filter(|s| s.key != "postgres") {
        for q in 1..=22 {
            if !pg.answers.contains_key(&q) {
                continue;
            }
            let verdict = if let Some(answer) = sys.answers.get(&q) {
                tpch::compare(&pg.answers[&q], answer).err()
            } else {
                match (sys.rows.get(&q), pg.rows.get(&q)) {
                    (Some(a), Some(e)) if a != e => Some(format!("{a} rows, PostgreSQL {e}")),
                    _ => None,
                }
            };
            if let Some(d) = verdict {
                notes.push(format!("**MISMATCH** Q{q} {}: {d}", sys.name));
            }
        }
    }
    if notes.is_empty() {
        let duet = systems.iter().filter(|s| s.key.starts_with("duetdb"));
        let names: Vec<_> = duet.map(|s| s.name.as_str()).collect();
        notes.push(format!(
            "Every answer PostgreSQL returned within its timeout equals {} (row by row, \
             numbers within 1e-9 relative); the other systems' row counts equal PostgreSQL's.",
            names.join(" and ")
        ));
    }
    notes
}

fn geomean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0), |(s, n), x| (s + x.ln(), n + 1));
    (sum / n as f64).exp()
}

fn report(args: &Args, systems: &[System], gen: (f64, u64), notes: &[String]) -> String {
    let mut md = String::new();
    let mut line = |s: String| {
        md.push_str(&s);
        md.push('\n');
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let command: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| {
            if a.contains(' ') {
                format!("\"{a}\"")
            } else {
                a
            }
        })
        .collect();
    line(format!(
        "## TPC-H SF {} ({})\n",
        args.sf,
        chrono::Utc::now().format("%Y-%m-%d")
    ));
    line(format!(
        "Command: `cargo run --release -p duet-tests --bin tpch -- {}`; {cores} cores. \
         Seconds per query: one warm-up run, then the best of {}.\n",
        command.join(" "),
        args.runs
    ));
    for s in systems {
        line(format!("- {}: {}", s.name, s.version));
    }
    let duet = systems.iter().find(|s| s.key.starts_with("duetdb"));
    let ratios: Vec<&System> = ["datafusion-parquet", "postgres"]
        .iter()
        .filter_map(|k| systems.iter().find(|s| s.key == *k))
        .filter(|_| duet.is_some())
        .collect();
    let mut head = vec!["query".to_string()];
    head.extend(systems.iter().map(|s| s.name.clone()));
    head.extend(ratios.iter().map(|s| format!("DuetDB / {}", s.name)));
    line(format!("\n| {} |", head.join(" | ")));
    line(format!("|{}", "---|".repeat(head.len())));
    let ratio = |a: &Outcome, b: &Outcome| match (a, b) {
        (Outcome::Secs(x), Outcome::Secs(y)) => format!("{:.2}×", x / y),
        (Outcome::Secs(x), Outcome::Timeout) => format!("<{:.3}×", x / args.pg_timeout as f64),
        _ => "–".into(),
    };
    for q in 1..=22 {
        let mut row = vec![format!("Q{q}")];
        row.extend(systems.iter().map(|s| {
            s.results
                .get(&q)
                .map_or("–".into(), |o| o.cell(args.pg_timeout))
        }));
        for other in &ratios {
            let d = duet.and_then(|d| d.results.get(&q));
            row.push(match (d, other.results.get(&q)) {
                (Some(a), Some(b)) => ratio(a, b),
                _ => "–".into(),
            });
        }
        line(format!("| {} |", row.join(" | ")));
    }
    let complete: Vec<u32> = (1..=22)
        .filter(|q| {
            systems
                .iter()
                .all(|s| s.results.get(q).and_then(Outcome::secs).is_some())
        })
        .collect();
    let missing: Vec<String> = (1..=22)
        .filter(|q| !complete.contains(q))
        .map(|q| format!("Q{q}"))
        .collect();
    if !complete.is_empty() {
        let gm = |s: &System| geomean(complete.iter().filter_map(|q| s.results[q].secs()));
        let mut row = vec![format!("geomean ({} queries)", complete.len())];
        row.extend(systems.iter().map(|s| format!("{:.3}", gm(s))));
        row.extend(
            ratios
                .iter()
                .map(|o| format!("{:.2}×", duet.map_or(f64::NAN, gm) / gm(o))),
        );
        line(format!("| {} |", row.join(" | ")));
    }
    line(format!(
        "\nGeometric means over the {} queries that completed on every system{}.",
        complete.len(),
        if missing.is_empty() {
            String::new()
        } else {
            format!(" (all but {})", missing.join(", "))
        }
    ));
    line(
        "\nLoad (seconds; DuetDB's and PostgreSQL's COPY include generating the text in-process \
          on another thread):\n"
            .into(),
    );
    line("| system | step | seconds | on disk |\n|---|---|---|---|".into());
    let mb = |b: u64| format!("{:.0} MB", b as f64 / 1e6);
    line(format!(
        "| all | tpchgen -> .tbl text | {:.3} | {} |",
        gen.0,
        mb(gen.1)
    ));
    for s in systems {
        for (i, (step, t)) in s.load.iter().enumerate() {
            let size = if i == 0 {
                s.bytes.map(mb).unwrap_or_default()
            } else {
                String::new()
            };
            let name = if s.key.starts_with("duetdb") {
                "DuetDB"
            } else {
                &s.name
            };
            line(format!("| {name} | {step} | {t:.3} | {size} |"));
        }
    }
    line("\nNotes:\n".into());
    for n in notes {
        line(format!("- {n}"));
    }
    md
}

fn to_json(args: &Args, systems: &[System], gen: (f64, u64), notes: &[String]) -> Value {
    let systems: Vec<Value> = systems
        .iter()
        .map(|s| {
            let queries: Vec<Value> = s
                .results
                .iter()
                .map(|(q, o)| {
                    json!({"query": q, "seconds": o.secs(), "status": o.status(), "rows": s.rows.get(q)})
                })
                .collect();
            let load: Vec<Value> = s
                .load
                .iter()
                .map(|(step, t)| json!({"step": step, "seconds": t}))
                .collect();
            json!({"key": s.key, "name": s.name, "version": s.version, "load": load,
                   "bytes_on_disk": s.bytes, "queries": queries})
        })
        .collect();
    json!({
        "sf": args.sf, "runs": args.runs, "pg_timeout_seconds": args.pg_timeout,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "date": chrono::Utc::now().to_rfc3339(),
        "generate_seconds": gen.0, "generated_bytes": gen.1,
        "systems": systems, "notes": notes,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    duetdb::allocator::configure();
    // Logs to stderr (the harness's default writer would mix them into the report on stdout).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    for e in &args.engines {
        anyhow::ensure!(
            ["column", "row", "auto"].contains(&e.as_str()),
            "unknown engine {e}"
        );
    }
    let started = Instant::now();
    let dir = args.work_dir.join(format!("sf{}", args.sf));
    let tbl = dir.join("tbl");

    eprintln!("tpchgen: SF {} into {}", args.sf, tbl.display());
    let t = Instant::now();
    let counts = tpch::write_tbl(&tbl, args.sf, progress("tpchgen", &[]))?;
    eprintln!();
    let gen = (secs(t), dir_size(&tbl));
    if args.tbl_only {
        eprintln!("wrote {}", tbl.display());
        return Ok(());
    }

    let mut notes = Vec::new();
    let mut systems = duetdb(&args, &counts, &mut notes).await?;
    let parquet = dir.join("parquet");
    systems.push(datafusion(&args, &tbl, &parquet).await?);
    match duckdb(&args, &parquet, &dir.join("duckdb.db"))? {
        Ok(s) => systems.extend(s),
        Err(why) => {
            eprintln!("DuckDB skipped: {why}");
            notes.push(format!("DuckDB skipped: {why}"));
        }
    }
    match &args.pg {
        Some(conn) => systems.push(postgres(&args, conn, &counts).await?),
        None => notes.push("PostgreSQL skipped: no --pg connection string.".into()),
    }

    for s in &systems {
        for (q, o) in &s.results {
            if let Outcome::Failed(e) = o {
                notes.push(format!("**FAILED** Q{q} on {}: {e}", s.name));
            }
        }
    }
    notes.extend(check_answers(&systems));
    for n in notes.iter().filter(|n| n.starts_with("**")) {
        eprintln!("!!! {}", n.trim_start_matches("**").replacen("**", "", 1));
    }
    notes.push(format!("Whole run: {:.0} s.", secs(started)));
    print!("{}", report(&args, &systems, gen, &notes));
    if let Some(out) = &args.out {
        let v = to_json(&args, &systems, gen, &notes);
        std::fs::write(out, serde_json::to_string_pretty(&v)?)?;
    }
    Ok(())
}
