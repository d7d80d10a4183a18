//! The routing-quality benchmark: TPC-H data at `--sf`, a workload of point lookups, ranges on
//! primary and secondary keys, aggregates of growing selectivity, mixed joins and the 22
//! TPC-H queries, each run with `duet.engine` = row, column and auto, against the oracle (the
//! faster forced run). Progress on stderr, a Markdown report on stdout.
//!
//! `cargo run --release -p duet-tests --bin routing -- --sf 1`

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool

/// The allocator the `duetdb` server uses (see src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use duet_tests::{routing_bench, tpch, ClusterBuilder};

#[derive(Parser)]
#[command(about = "How close DuetDB's router comes to the faster replica, query by query")]
struct Args {
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 1.0)]
    sf: f64,
    /// Extra timed runs of a query that took under 2 s (after its first run, the warm-up).
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// statement_timeout for every run, seconds (a forced engine may be very slow).
    #[arg(long, default_value_t = routing_bench::DEFAULT_TIMEOUT.as_secs())]
    timeout: u64,
    /// DuetDB's data directory goes here (removed first).
    #[arg(long, default_value = "/var/tmp/duet-routing")]
    work_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = args.work_dir.join("duetdb");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let cluster = ClusterBuilder::new("routing-bench")
        .data_dir(dir)
        .build()
        .await?;
    let t = Instant::now();
    {
        let loader = cluster.client().await?;
        tpch::load(&loader, args.sf, |table, rows| {
            eprint!("\rloading {table}: {rows} rows          ");
        })
        .await?;
        eprintln!();
    }
    anyhow::ensure!(
        cluster.wait_learner_caught_up(Duration::from_secs(3600))?,
        "the learner did not catch up"
    );
    cluster.compact_columns()?;
    let c = cluster.client().await?;
    let t_analyze = Instant::now();
    routing_bench::prepare(&c).await?;
    eprintln!(
        "loaded, compacted and analyzed in {:.1} s (ANALYZE of all tables {:.1} s)",
        t.elapsed().as_secs_f64(),
        t_analyze.elapsed().as_secs_f64()
    );
    let queries = routing_bench::workload(&c).await?;
    let router = cluster.node()?.router().clone();
    let before = router.calibrator.view();
    let measured = routing_bench::run(&c, &queries, args.runs, args.timeout, |engine, q, r| {
        eprintln!(
            "{engine:>6} {:<40} {}",
            q.label,
            r.secs.map_or_else(
                || format!("failed: {}", r.error.as_deref().unwrap_or("?")),
                |s| format!("{s:.4} s")
            )
        );
    })
    .await?;
    let after = router.calibrator.view();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "## Routing quality, TPC-H SF{} ({} vCPU, {cpu})\n",
        args.sf,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{}", routing_bench::report(&measured, args.timeout));
    println!(
        "Calibration scales (fixed / work / filter) before the workload: row {:?}, column {:?}; \
         after: row {:?}, column {:?} ({} row and {} column scans observed).",
        before.row,
        before.column,
        after.row,
        after.column,
        after.row_observations,
        after.column_observations
    );
    Ok(())
}
