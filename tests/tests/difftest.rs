//! The differential tester for a bounded time (`DUET_DIFF_SECONDS`, default 60): random
//! schemas and queries on PostgreSQL (`DUET_TEST_PG`, set in CI) and on DuetDB with every
//! engine. Any difference that is not a refusal (0A000) or a documented known difference
//! fails the test with its shrunk reproducer. The seed is printed first; replay a failure
//! with `DUET_DIFF_SEED=<seed>` (or `cargo run -p duet-tests --bin difftest -- --seed`).

use std::time::Duration;

use duet_tests::difftest::{run_tester, Config};
use duet_tests::ClusterBuilder;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_queries_answer_as_postgresql_does() {
    let seed = env_u64("DUET_DIFF_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let seconds = env_u64("DUET_DIFF_SECONDS").unwrap_or(60);
    eprintln!("difftest seed {seed} for {seconds} s (replay: DUET_DIFF_SEED={seed})");
    let postgres = std::env::var("DUET_TEST_PG").ok();
    if postgres.is_none() {
        eprintln!("difftest: DUET_TEST_PG not set, only the metamorphic oracle runs");
    }
    let cluster = ClusterBuilder::new("difftest").build().await.unwrap();
    let report = run_tester(Config {
        seed,
        duration: Duration::from_secs(seconds),
        max_queries: u64::MAX,
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
