//! TPC-H at a small scale factor, end to end: the data is generated in the test, loaded
//! with `COPY FROM STDIN`, and all 22 queries run on the row replica and on the column
//! replica. Both answers must equal PostgreSQL 15's, which are checked in under
//! `tests/tpch/answers-sf0.01/` and, when `DUET_TEST_PG` names a server, recomputed there
//! from the same data. `DUET_TPCH_BLESS=1` (with `DUET_TEST_PG`) rewrites the files.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use duet_tests::tpch::{self, Rows};
use duet_tests::ClusterBuilder;

const SF: f64 = 0.01;

fn answers_dir() -> PathBuf {
    duet_tests::crate_dir().join("tpch/answers-sf0.01")
}

/// One row per line, columns separated by tabs, NULL as `\N`. TPC-H answers hold no tabs,
/// newlines or backslashes.
fn to_tsv(rows: &Rows) -> String {
    let mut s = String::new();
    for r in rows {
        let cols: Vec<&str> = r.iter().map(|v| v.as_deref().unwrap_or("\\N")).collect();
        s.push_str(&cols.join("\t"));
        s.push('\n');
    }
    s
}

fn from_tsv(s: &str) -> Rows {
    s.lines()
        .map(|l| {
            l.split('\t')
                .map(|v| (v != "\\N").then(|| v.to_string()))
                .collect()
        })
        .collect()
}

fn expected(q: u32) -> Rows {
    let path = answers_dir().join(format!("q{q}.tsv"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with DUET_TPCH_BLESS=1)", path.display()));
    from_tsv(&text)
}

/// PostgreSQL first: the checked-in answers must be what PostgreSQL 15 says today.
async fn check_against_postgres() {
    let Ok(admin) = std::env::var("DUET_TEST_PG") else {
        eprintln!("tpch: DUET_TEST_PG not set, answers not re-checked against PostgreSQL");
        return;
    };
    let bless = std::env::var("DUET_TPCH_BLESS").is_ok_and(|v| v == "1");
    let db = format!("duet_tpch_{}", std::process::id());
    let (a, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("DUET_TEST_PG is set but PostgreSQL is unreachable");
    tokio::spawn(conn);
    for stmt in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
    ] {
        a.batch_execute(&stmt).await.unwrap();
    }
    let (pg, conn) =
        tokio_postgres::connect(&format!("{admin} dbname={db}"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    tpch::load(&pg, SF, |_, _| {}).await.unwrap();
    pg.batch_execute("ANALYZE").await.unwrap();
    std::fs::create_dir_all(answers_dir()).unwrap();
    for (q, sql) in tpch::queries() {
        let got = tpch::query_text(&pg, sql)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL Q{q}: {e}"));
        if bless {
            std::fs::write(answers_dir().join(format!("q{q}.tsv")), to_tsv(&got)).unwrap();
        } else if let Err(d) = tpch::compare(&expected(q), &got) {
            panic!("Q{q}: PostgreSQL disagrees with the checked-in answer: {d}");
        }
    }
    drop(pg);
    a.batch_execute(&format!("DROP DATABASE {db}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_22_queries_match_postgres_on_both_replicas() {
    duet_tests::init_test_logging();
    check_against_postgres().await;

    let cluster = ClusterBuilder::new("tpch").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    let t = Instant::now();
    let loaded = tpch::load(&c, SF, |_, _| {}).await.unwrap();
    let total: u64 = loaded.iter().map(|(_, n)| n).sum();
    eprintln!("tpch: loaded {total} rows in {:?}", t.elapsed());
    assert_eq!(
        crate::int(&c, "SELECT count(*) FROM lineitem").await,
        60_175
    );
    assert!(cluster
        .wait_learner_caught_up(Duration::from_secs(60))
        .unwrap());
    // Everything folded into stable Arrow chunks, then a row inserted and deleted in
    // `region`, so its scans merge stable chunks with a delta.
    cluster.compact_columns().unwrap();
    c.batch_execute(
        "INSERT INTO region VALUES (5, 'NOWHERE', 'not part of the answers'); \
         DELETE FROM region WHERE r_regionkey = 5",
    )
    .await
    .unwrap();

    let columns = cluster.node().unwrap().columns().clone();
    let before = columns.fallbacks();
    let mut failures = Vec::new();
    for engine in ["row", "column"] {
        c.batch_execute(&format!(
            "SET duet.engine = '{engine}'; SET duet.learner_wait_timeout = '30s'"
        ))
        .await
        .unwrap();
        for (q, sql) in tpch::queries() {
            let t = Instant::now();
            match tpch::query_text(&c, sql).await {
                Ok(got) => {
                    if let Err(d) = tpch::compare(&expected(q), &got) {
                        failures.push(format!("Q{q} engine={engine}: {d}"));
                    }
                }
                Err(e) => failures.push(format!("Q{q} engine={engine}: error {e:?}")),
            }
            eprintln!("tpch: Q{q} engine={engine} {:?}", t.elapsed());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        columns.fallbacks(),
        before,
        "a column-engine TPC-H scan fell back to the row replica"
    );
}
