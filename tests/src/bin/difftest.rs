//! The differential tester as a command: random schemas and queries on PostgreSQL 15 and on
//! DuetDB (every engine), for as long as you give it. Progress and the report on stderr;
//! each finding's shrunk reproducer is written as a sqllogictest file under `--out`.
//!
//! ```text
//! export DUET_TEST_PG=$(scripts/reference-pg.sh start)
//! cargo run --release -p duet-tests --bin difftest -- --minutes 60
//! cargo run -p duet-tests --bin difftest -- --seed 1234 --queries 200   # replay a seed
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use duet_tests::difftest::{run_tester, Config};
use duet_tests::ClusterBuilder;

#[derive(Parser)]
#[command(about = "Random SQL on PostgreSQL 15 and DuetDB; every difference shrunk and kept")]
struct Args {
    /// Seed of the run (default: from the clock; printed first, so any run can be replayed).
    #[arg(long)]
    seed: Option<u64>,
    /// Run this many minutes (several seeds, one after another, when --seeds > 1).
    #[arg(long, default_value_t = 1.0)]
    minutes: f64,
    /// Stop a seed after this many queries.
    #[arg(long, default_value_t = u64::MAX)]
    queries: u64,
    /// Queries per random schema.
    #[arg(long, default_value_t = 40)]
    per_schema: usize,
    /// Seeds to run, each on a fresh DuetDB node, splitting --minutes between them.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// PostgreSQL 15 (libpq connection string); without it only the metamorphic oracle runs.
    #[arg(long, env = "DUET_TEST_PG")]
    postgres: Option<String>,
    /// A running DuetDB to test; default: one started in-process with a temporary directory.
    #[arg(long)]
    duet: Option<String>,
    /// Reproducers go here, one .slt file per distinct finding.
    #[arg(long, default_value = "difftest-findings")]
    out: PathBuf,
    /// Report findings as found, without shrinking them.
    #[arg(long)]
    no_shrink: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let first = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let per_seed = Duration::from_secs_f64(args.minutes * 60.0 / args.seeds.max(1) as f64);
    std::fs::create_dir_all(&args.out)?;
    let mut totals = (0u64, 0u64, 0usize);
    for s in 0..args.seeds.max(1) {
        let seed = first.wrapping_add(s);
        eprintln!("seed {seed}");
        let cluster;
        let duet = match &args.duet {
            Some(c) => c.clone(),
            None => {
                cluster = ClusterBuilder::new(format!("difftest-{seed}"))
                    .build()
                    .await?;
                cluster.connection_string()
            }
        };
        let report = run_tester(Config {
            seed,
            duration: per_seed,
            max_queries: args.queries,
            queries_per_schema: args.per_schema,
            postgres: args.postgres.clone(),
            duet,
            shrink: !args.no_shrink,
        })
        .await?;
        eprintln!("{}", report.summary());
        for (i, f) in report.findings.iter().enumerate() {
            let path = args
                .out
                .join(format!("seed{seed}-{i}-{:?}-{}.slt", f.kind, f.engine).to_lowercase());
            std::fs::write(&path, f.slt())?;
        }
        totals.0 += report.queries;
        totals.1 += report.agreed;
        totals.2 += report.findings.len();
    }
    println!(
        "{} seeds from {first}: {} queries, {} agreed everywhere, {} distinct findings (in {})",
        args.seeds.max(1),
        totals.0,
        totals.1,
        totals.2,
        args.out.display()
    );
    Ok(())
}
