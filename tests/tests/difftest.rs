//! The differential tester, bounded: random schemas and queries on PostgreSQL
//! (`DUET_TEST_PG`, set in CI) and on DuetDB with every engine. Any wrong answer that is
//! not a refusal (0A000) or a documented known difference fails the test with its shrunk
//! reproducer.
//!
//! The seed is fixed ([`SEED`]) so that CI is repeatable: the same queries every run, up to
//! [`QUERIES`] of them or `DUET_DIFF_SECONDS` (default 90), whichever comes first. Other
//! seeds explore further: `DUET_DIFF_SEED=<n>` here, or the `difftest` command for hours
//! (TESTING.md). The seed is printed first.

use std::time::Duration;

use duet_tests::difftest::{run_tester, Config};
use duet_tests::ClusterBuilder;

/// CI's seed; any wrong answer it finds is fixed or refused, never skipped by changing it.
const SEED: u64 = 20261205;

/// CI's query budget for the seed (about a minute on a 2-core machine).
const QUERIES: u64 = 400;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_queries_answer_as_postgresql_does() {
    let seed = env_u64("DUET_DIFF_SEED").unwrap_or(SEED);
    let seconds = env_u64("DUET_DIFF_SECONDS").unwrap_or(90);
    let queries = env_u64("DUET_DIFF_QUERIES").unwrap_or(QUERIES);
    eprintln!("difftest seed {seed}: up to {queries} queries or {seconds} s");
    let postgres = std::env::var("DUET_TEST_PG").ok();
    if postgres.is_none() {
        eprintln!("difftest: DUET_TEST_PG not set, only the metamorphic oracle runs");
    }
    let cluster = ClusterBuilder::new("difftest").build().await.unwrap();
    let report = run_tester(Config {
        seed,
        duration: Duration::from_secs(seconds),
        max_queries: queries,
        queries_per_schema: 40,
        postgres: postgres.clone(),
        duet: cluster.connection_string(),
        shrink: true,
    })
    .await
    .unwrap();
    eprintln!("{}", report.summary());
    let unexplained: Vec<_> = report.unexplained().collect();
    let reproducers: Vec<String> = unexplained.iter().map(|f| f.slt()).collect();
    assert!(
        unexplained.is_empty(),
        "seed {seed}: {} unexplained differences from PostgreSQL; reproducers:\n\n{}",
        unexplained.len(),
        reproducers.join("\n")
    );
    // The run compared something: most generated queries are valid and answered alike.
    assert!(report.queries >= 50, "only {} queries ran", report.queries);
    if postgres.is_some() {
        assert!(
            report.agreed * 3 >= report.queries,
            "only {} of {} queries agreed",
            report.agreed,
            report.queries
        );
    } else {
        assert!(report.partition_checks >= 10);
    }
}
