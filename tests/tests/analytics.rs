//! Analytical queries under limits: the per-query memory pool (53200), statement_timeout
//! and CancelRequest (57014), and scans that keep their snapshot while writes and
//! compactions go on underneath.

use std::time::{Duration, Instant};

use duet_tests::{Cluster, ClusterBuilder};
use tokio_postgres::{Client, NoTls};

use crate::{int, sqlstate};

/// `big(k, g, pad)`: `n` rows, `g` = k % 100, a 100-byte pad.
async fn big_table(cluster: &Cluster, n: i64) -> Client {
    let c = cluster.client().await.unwrap();
    c.batch_execute(&format!(
        "CREATE TABLE big (k bigint PRIMARY KEY, g bigint NOT NULL, pad text NOT NULL);
         INSERT INTO big SELECT k, k % 100, repeat('x', 100) FROM generate_series(1, {n}) AS s(k)"
    ))
    .await
    .unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_the_memory_limit_fails_with_53200_and_the_next_one_works() {
    let cluster = ClusterBuilder::new("memlimit").build().await.unwrap();
    let c = big_table(&cluster, 100_000).await;
    let default: String = c
        .query_one("SHOW duet.query_memory_limit", &[])
        .await
        .unwrap()
        .get(0);
    assert!(default.ends_with("MB"), "{default}");

    // A hash join must hold its build side (100k rows, ~12 MB) in memory: it cannot spill.
    let join = "SELECT count(*) FROM big a JOIN big b ON a.pad || a.k::text = b.pad || b.k::text";
    for engine in ["row", "column"] {
        c.batch_execute(&format!(
            "SET duet.engine = '{engine}'; SET duet.learner_wait_timeout = '30s'; \
             SET duet.query_memory_limit = '2MB'"
        ))
        .await
        .unwrap();
        let e = c.query_one(join, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("53200"), "{engine}: {e:?}");
        // The session goes on, and a query within the limit works.
        assert_eq!(int(&c, "SELECT count(*) FROM big").await, 100_000);
        c.batch_execute("SET duet.query_memory_limit = '1GB'")
            .await
            .unwrap();
        assert_eq!(int(&c, join).await, 100_000, "{engine}");
    }
    let e = c
        .batch_execute("SET duet.query_memory_limit = 'lots'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22023"));
}

/// Big enough that it runs for many seconds: 100k × 1k matches per group.
const SLOW: &str = "SELECT count(*) FROM big a JOIN big b ON a.g = b.g";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_and_cancel_stop_a_running_query_with_57014() {
    let cluster = ClusterBuilder::new("cancel").build().await.unwrap();
    let c = big_table(&cluster, 100_000).await;

    for engine in ["row", "column"] {
        c.batch_execute(&format!(
            "SET duet.engine = '{engine}'; SET duet.learner_wait_timeout = '30s'; \
             SET statement_timeout = '300ms'"
        ))
        .await
        .unwrap();
        let t = Instant::now();
        let e = c.query_one(SLOW, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{engine}: {e:?}");
        assert!(
            e.as_db_error()
                .unwrap()
                .message()
                .contains("statement timeout"),
            "{e:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        c.batch_execute("SET statement_timeout = 0").await.unwrap();
        assert_eq!(int(&c, "SELECT count(*) FROM big").await, 100_000);

        // CancelRequest from another socket, while the query runs. A cancel that arrives
        // before the query has started cancels nothing (as in PostgreSQL), which happens
        // on a loaded machine: so it is sent again every 300 ms until the query ends.
        let token = c.cancel_token();
        let canceller = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                token.cancel_query(NoTls).await.unwrap();
            }
        });
        let t = Instant::now();
        let e = c.query_one(SLOW, &[]).await.unwrap_err();
        canceller.abort();
        let _ = canceller.await;
        // A cancel already on its way lands now, not on the next statement.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{engine}: {e:?}");
        assert!(
            e.as_db_error().unwrap().message().contains("user request"),
            "{e:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert_eq!(int(&c, "SELECT count(*) FROM big").await, 100_000);
    }

    let e = c
        .batch_execute("SET statement_timeout = 'soon'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22023"));

    // Inside a transaction block a cancelled statement fails the block.
    c.batch_execute("BEGIN; SET statement_timeout = '200ms'")
        .await
        .unwrap();
    let e = c.query_one(SLOW, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"));
    let e = c.query_one("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("25P02"));
    c.batch_execute("ROLLBACK; SET statement_timeout = 0")
        .await
        .unwrap();
    assert_eq!(int(&c, "SELECT 1::bigint").await, 1);
}

/// Rows a simple query returns.
async fn rows(c: &Client, sql: &str) -> usize {
    c.simple_query(sql)
        .await
        .unwrap()
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_sleep_waits_per_row_and_ends_at_a_timeout_or_cancel() {
    let cluster = ClusterBuilder::new("pg-sleep").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    let t = Instant::now();
    assert_eq!(rows(&c, "SELECT pg_sleep(0.2)").await, 1);
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    // Once per row.
    let t = Instant::now();
    assert_eq!(
        rows(&c, "SELECT pg_sleep(0.1) FROM generate_series(1, 4)").await,
        4
    );
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    // Integer, negative and NULL arguments: no wait.
    let t = Instant::now();
    assert_eq!(
        rows(&c, "SELECT pg_sleep(0), pg_sleep(-1), pg_sleep(NULL)").await,
        1
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // statement_timeout ends it with 57014, and the session goes on.
    c.batch_execute("SET statement_timeout = '200ms'")
        .await
        .unwrap();
    let t = Instant::now();
    let e = c.simple_query("SELECT pg_sleep(30)").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Longer than any Duration: it waits until stopped too.
    let e = c.simple_query("SELECT pg_sleep(1e30)").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
    c.batch_execute("SET statement_timeout = 0").await.unwrap();
    // So does a CancelRequest.
    let token = c.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        token.cancel_query(NoTls).await.unwrap();
    });
    let t = Instant::now();
    let e = c.simple_query("SELECT pg_sleep(30)").await.unwrap_err();
    canceller.await.unwrap();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(int(&c, "SELECT 1::bigint").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_keeps_its_snapshot_while_writes_and_compactions_go_on() {
    let cluster = ClusterBuilder::new("freshness").build().await.unwrap();
    let mut c = big_table(&cluster, 20_000).await;
    assert!(cluster
        .wait_learner_caught_up(Duration::from_secs(30))
        .unwrap());
    cluster.compact_columns().unwrap();
    let w = cluster.client().await.unwrap();
    c.batch_execute("SET duet.engine = 'column'; SET duet.learner_wait_timeout = '30s'")
        .await
        .unwrap();
    let columns = cluster.node().unwrap().columns().clone();
    let fallbacks = columns.fallbacks();

    // REPEATABLE READ: the block's second query must see the first one's snapshot too.
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .unwrap();
    let before: i64 = tx
        .query_one("SELECT sum(g)::bigint FROM big", &[])
        .await
        .unwrap()
        .get(0);
    let stmt = tx.prepare("SELECT k, g FROM big ORDER BY k").await.unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let mut seen: Vec<(i64, i64)> = Vec::new();
    let mut round = 0;
    loop {
        let rows = tx.query_portal(&portal, 2_000).await.unwrap();
        if rows.is_empty() {
            break;
        }
        seen.extend(rows.iter().map(|r| (r.get(0), r.get(1))));
        // Between chunks: change every row, delete some, fold it all into stable chunks.
        round += 1;
        w.batch_execute(&format!(
            "UPDATE big SET g = g + 1000 WHERE k % 7 = {}; DELETE FROM big WHERE k = {}",
            round % 7,
            round * 3
        ))
        .await
        .unwrap();
        assert!(cluster
            .wait_learner_caught_up(Duration::from_secs(30))
            .unwrap());
        cluster.compact_columns().unwrap();
    }
    assert!(round >= 10, "{round} chunks");
    let expected: Vec<(i64, i64)> = (1..=20_000).map(|k| (k, k % 100)).collect();
    assert_eq!(seen, expected, "the scan saw writes made after it started");
    let after: i64 = tx
        .query_one("SELECT sum(g)::bigint FROM big", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(before, after);
    tx.commit().await.unwrap();
    assert_eq!(
        columns.fallbacks(),
        fallbacks,
        "a snapshot read fell back to the row replica"
    );
    // Outside the transaction the changes are visible on the column replica.
    let now: i64 = c
        .query_one("SELECT count(*) FROM big WHERE g >= 1000", &[])
        .await
        .unwrap()
        .get(0);
    assert!(now > 0);
}

/// The plan lines of `EXPLAIN sql`.
async fn explain(c: &Client, sql: &str) -> String {
    c.query(&format!("EXPLAIN {sql}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(1))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_scans_prune_chunks_by_zone_maps_and_filter_inside_the_scan() {
    let cluster = ClusterBuilder::new("pruning").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    // 200k rows in key order: four stable chunks (65,536 rows each) with disjoint k ranges.
    c.batch_execute(
        "CREATE TABLE ev (k bigint PRIMARY KEY, day date NOT NULL, kind text, amount numeric(12,2));
         INSERT INTO ev SELECT k, DATE '2024-01-01' + (k / 1000)::int, \
           CASE WHEN k % 10 = 0 THEN NULL ELSE 'kind' || (k % 3)::text END, (k % 1000) * 1.5 \
           FROM generate_series(1, 200000) AS s(k)",
    )
    .await
    .unwrap();
    assert!(cluster
        .wait_learner_caught_up(Duration::from_secs(60))
        .unwrap());
    cluster.compact_columns().unwrap();
    // Changes after the compaction live in the delta: the scan filters them too.
    c.batch_execute(
        "UPDATE ev SET amount = -1 WHERE k IN (5, 70000, 199999);
         DELETE FROM ev WHERE k IN (6, 140000);
         INSERT INTO ev VALUES (300000, DATE '2030-01-01', 'late', 7)",
    )
    .await
    .unwrap();
    c.batch_execute("SET duet.learner_wait_timeout = '30s'")
        .await
        .unwrap();

    let queries = [
        (
            "SELECT count(*), sum(amount) FROM ev WHERE k < 1000",
            Some("chunks=1/4"),
        ),
        (
            "SELECT count(*), sum(amount) FROM ev WHERE k BETWEEN 70000 AND 140000",
            Some("chunks=2/4"),
        ),
        (
            "SELECT count(*), min(k) FROM ev WHERE day >= DATE '2024-06-01'",
            Some("chunks=2/4"),
        ),
        (
            "SELECT count(*) FROM ev WHERE k > 1000000",
            Some("chunks=0/4"),
        ),
        (
            "SELECT count(*), max(k) FROM ev WHERE amount < 0 OR kind = 'late'",
            None,
        ),
        (
            "SELECT count(*) FROM ev WHERE kind IS NULL AND k < 20000",
            None,
        ),
        (
            "SELECT count(*) FROM ev WHERE kind LIKE 'kind1%' AND amount > 100",
            None,
        ),
        (
            "SELECT k FROM ev WHERE k % 7 = 0 AND k > 150000 ORDER BY k LIMIT 5",
            None,
        ),
        ("SELECT count(*) FROM ev WHERE kind <> 'kind2'", None),
    ];
    for (sql, pruned) in queries {
        c.batch_execute("SET duet.engine = 'row'").await.unwrap();
        let row = duet_tests::tpch::query_text(&c, sql).await.unwrap();
        c.batch_execute("SET duet.engine = 'column'").await.unwrap();
        let column = duet_tests::tpch::query_text(&c, sql).await.unwrap();
        assert_eq!(row, column, "{sql}");
        let plan = explain(&c, sql).await;
        assert!(plan.contains("ColumnScan: table=ev"), "{sql}\n{plan}");
        // The filter is evaluated inside the scan: no FilterExec above it.
        assert!(plan.contains("filter=["), "{sql}\n{plan}");
        assert!(!plan.contains("FilterExec"), "{sql}\n{plan}");
        if let Some(p) = pruned {
            assert!(plan.contains(p), "{sql}: expected {p}\n{plan}");
        }
    }
    // Spot checks against known values.
    c.batch_execute("SET duet.engine = 'column'").await.unwrap();
    assert_eq!(int(&c, "SELECT count(*) FROM ev WHERE k < 1000").await, 998);
    assert_eq!(
        int(&c, "SELECT count(*) FROM ev WHERE k > 1000000").await,
        0
    );
    assert_eq!(int(&c, "SELECT count(*) FROM ev WHERE amount < 0").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_does_not_hold_back_column_compaction() {
    let cluster = ClusterBuilder::new("idle-pin").build().await.unwrap();
    let idle = cluster.client().await.unwrap();
    idle.batch_execute("CREATE TABLE t (k bigint PRIMARY KEY, v bigint)")
        .await
        .unwrap();
    // The idle session's last statement read a snapshot; a prepared statement was described.
    assert_eq!(int(&idle, "SELECT count(*) FROM t").await, 0);
    idle.prepare("SELECT v FROM t WHERE k = $1").await.unwrap();
    let w = cluster.client().await.unwrap();
    w.batch_execute("INSERT INTO t SELECT k, k * 2 FROM generate_series(1, 5000) AS s(k)")
        .await
        .unwrap();
    assert!(cluster
        .wait_learner_caught_up(Duration::from_secs(30))
        .unwrap());
    cluster.compact_columns().unwrap();
    let delta = int(
        &w,
        "SELECT delta_rows FROM duet.replicas WHERE table_name = 't'",
    )
    .await;
    let store = cluster.node().unwrap().store.clone();
    assert_eq!(
        delta,
        0,
        "compaction was held back: oldest pinned snapshot {:?}, current {:?}, applied \
         (voter, learner) {:?}, decisions {:?}",
        store.oldest_read_version(),
        store.current_version(),
        cluster.applied_indexes().unwrap(),
        cluster
            .node()
            .unwrap()
            .router()
            .log
            .entries()
            .iter()
            .map(|e| (e.query.clone(), e.engine, e.actual_rows))
            .collect::<Vec<_>>()
    );
    assert_eq!(int(&idle, "SELECT count(*) FROM t").await, 5000);
}

/// Routing samples hold read views (a sampled row scan reads at the statement's snapshot):
/// none may outlive its statement, whether the plan ran (the sample then runs in the
/// background and ends) or not (EXPLAIN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_routing_decisions_leave_no_snapshot_pinned() {
    let cluster = ClusterBuilder::new("sample-pins").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE t (k bigint PRIMARY KEY, v bigint);
         INSERT INTO t SELECT k, k + 1 FROM generate_series(1, 1000) AS s(k)",
    )
    .await
    .unwrap();
    assert!(cluster
        .wait_learner_caught_up(Duration::from_secs(30))
        .unwrap());
    let store = cluster.node().unwrap().store.clone();
    c.batch_execute(
        "SET duet.routing_sample_rate = 1;
         EXPLAIN SELECT * FROM t WHERE k = 1;
         EXPLAIN SELECT /*+ engine(column) */ sum(v) FROM t;
         SELECT /*+ engine(column) */ sum(v) FROM t;
         SELECT * FROM t WHERE k = 7",
    )
    .await
    .unwrap();
    // A later commit moves the current version on: a snapshot still pinned would now be
    // older than it. Every decision was sampled; the samples of the two executed scans run
    // in the background and must end.
    c.batch_execute("INSERT INTO t VALUES (5000, 1)")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let oldest = store.oldest_read_version();
        let current = store.current_version();
        if oldest == current {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a snapshot stays pinned at {oldest:?} (current {current:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Zone maps skip a chunk only for filters whose casts keep order: a chunk whose
/// timestamps run from 00:00 to 23:00 holds times of day its bounds' times do not bracket.
#[tokio::test]
async fn zone_maps_do_not_prune_through_casts_that_reorder_values() {
    let cluster = ClusterBuilder::new("cast-pruning").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE ts (id int PRIMARY KEY, t timestamp);
         INSERT INTO ts VALUES (1, '2024-01-01 00:00:00'), (2, '2024-01-01 12:30:00'),
                               (3, '2024-01-02 23:00:00'), (4, '2024-01-03 06:00:00')",
    )
    .await
    .unwrap();
    assert!(cluster
        .wait_learner_caught_up(Duration::from_secs(30))
        .unwrap());
    cluster.compact_columns().unwrap();
    for engine in ["row", "column"] {
        c.batch_execute(&format!("SET duet.engine = '{engine}'"))
            .await
            .unwrap();
        // The chunk's bounds are 00:00:00 and 06:00:00 as times: a test on them would
        // rule out 12:30 and 23:00.
        let n = int(
            &c,
            "SELECT count(*) FROM ts WHERE CAST(t AS time) BETWEEN TIME '12:00' AND TIME '23:30'",
        )
        .await;
        assert_eq!(n, 2, "{engine}");
        let n = int(
            &c,
            "SELECT count(*) FROM ts WHERE CAST(t AS date) = DATE '2024-01-02'",
        )
        .await;
        assert_eq!(n, 1, "{engine}");
    }
}
