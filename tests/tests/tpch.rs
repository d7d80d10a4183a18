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
/// The scale of the larger-than-memory run (answers in `tests/tpch/answers-sf0.1/`).
const SF_LARGE: f64 = 0.1;

fn answers_dir(sf: f64) -> PathBuf {
    duet_tests::crate_dir().join(format!("tpch/answers-sf{sf}"))
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

fn expected(sf: f64, q: u32) -> Rows {
    let path = answers_dir(sf).join(format!("q{q}.tsv"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with DUET_TPCH_BLESS=1)", path.display()));
    from_tsv(&text)
}

/// PostgreSQL first: the checked-in answers must be what PostgreSQL 15 says today.
async fn check_against_postgres(sf: f64) {
    let Ok(admin) = std::env::var("DUET_TEST_PG") else {
        eprintln!("tpch: DUET_TEST_PG not set, answers not re-checked against PostgreSQL");
        return;
    };
    let bless = std::env::var("DUET_TPCH_BLESS").is_ok_and(|v| v == "1");
    // One database per scale: the tests at both scales run at once in one process.
    let db = format!("duet_tpch_{}_{}", std::process::id(), (sf * 100.0) as u64);
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
    tpch::load(&pg, sf, |_, _| {}).await.unwrap();
    pg.batch_execute("ANALYZE").await.unwrap();
    std::fs::create_dir_all(answers_dir(sf)).unwrap();
    for (q, sql) in tpch::queries() {
        let got = tpch::query_text(&pg, sql)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL Q{q}: {e}"));
        if bless {
            std::fs::write(answers_dir(sf).join(format!("q{q}.tsv")), to_tsv(&got)).unwrap();
        } else if let Err(d) = tpch::compare(&expected(sf, q), &got) {
            panic!("Q{q}: PostgreSQL disagrees with the checked-in answer: {d}");
        }
    }
    drop(pg);
    a.batch_execute(&format!("DROP DATABASE {db}"))
        .await
        .unwrap();
}

/// Runs the 22 queries on `c`, comparing each answer with PostgreSQL's at scale `sf`; what
/// differed or failed, each labelled with the query and `label`.
async fn run_queries(c: &tokio_postgres::Client, sf: f64, label: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for (q, sql) in tpch::queries() {
        let t = Instant::now();
        match tpch::query_text(c, sql).await {
            Ok(got) => {
                if let Err(d) = tpch::compare(&expected(sf, q), &got) {
                    failures.push(format!("Q{q} {label}: {d}"));
                }
            }
            Err(e) => failures.push(format!("Q{q} {label}: error {e:?}")),
        }
        eprintln!("tpch sf{sf}: Q{q} {label} {:?}", t.elapsed());
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_22_queries_match_postgres_on_both_replicas() {
    duet_tests::init_test_logging();
    check_against_postgres(SF).await;

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

    // The column replica larger than memory: a column cache of 256 KiB, so the column
    // engine's scans read the stable chunks from their files (lineitem alone is ~40 times
    // that).
    let node = cluster.node().unwrap();
    let budget = 256 << 10;
    node.set_column_cache_size(budget);
    let cache = node.column_store().unwrap().cache().clone();
    let columns = node.columns().clone();
    let before = columns.fallbacks();
    let mut failures = Vec::new();
    for engine in ["row", "column"] {
        c.batch_execute(&format!(
            "SET duet.engine = '{engine}'; SET duet.learner_wait_timeout = '30s'"
        ))
        .await
        .unwrap();
        failures.extend(run_queries(&c, SF, &format!("engine={engine}")).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        columns.fallbacks(),
        before,
        "a column-engine TPC-H scan fell back to the row replica"
    );
    let f = cache.figures();
    eprintln!("tpch: column cache {f:?}");
    assert!(f.bytes <= budget, "{f:?}");
    assert!(
        f.bytes_loaded > 20 * budget && f.file_reads > 22,
        "the column engine did not read its chunks from their files: {f:?}"
    );
}

/// TPC-H at SF 0.1 on the column replica with a column cache of 1 MiB, about a hundredth
/// of the replica (lineitem's 600,572 rows are ten chunks): the stable chunks are written
/// to their files as the load is compacted, leave memory, and every scan reads what it
/// needs back through the cache. The answers equal PostgreSQL's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_on_a_column_replica_a_hundred_times_its_cache_matches_postgres() {
    duet_tests::init_test_logging();
    check_against_postgres(SF_LARGE).await;

    let cluster = ClusterBuilder::new("tpch-large").build().await.unwrap();
    let node = cluster.node().unwrap();
    let budget = 1 << 20;
    node.set_column_cache_size(budget);
    let c = cluster.client().await.unwrap();
    let t = Instant::now();
    tpch::load(&c, SF_LARGE, |_, _| {}).await.unwrap();
    eprintln!("tpch sf{SF_LARGE}: loaded in {:?}", t.elapsed());
    assert!(cluster
        .wait_learner_caught_up(Duration::from_secs(120))
        .unwrap());
    cluster.compact_columns().unwrap();
    let store = node.column_store().unwrap();
    let lineitem = store
        .status()
        .into_iter()
        .find(|t| t.table == "lineitem")
        .unwrap();
    assert_eq!(lineitem.stable_rows, 600_572);
    let cache = store.cache().clone();
    let columns = node.columns().clone();
    let before = columns.fallbacks();
    c.batch_execute("SET duet.engine = 'column'; SET duet.learner_wait_timeout = '60s'")
        .await
        .unwrap();
    let failures = run_queries(&c, SF_LARGE, "engine=column").await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        columns.fallbacks(),
        before,
        "a column scan fell back to the row replica"
    );
    let f = cache.figures();
    eprintln!("tpch sf{SF_LARGE}: column cache {f:?}");
    assert!(f.bytes <= budget, "{f:?}");
    assert!(
        f.bytes_loaded > 100 * budget,
        "the scans did not read their chunks from the files: {f:?}"
    );
}
