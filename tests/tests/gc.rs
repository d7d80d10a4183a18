//! MVCC garbage collection of the row replica through SQL: VACUUM, `duet.gc`, /metrics.

use std::time::Duration;

use duet_tests::ClusterBuilder;

/// Waits past `gc_life_time` (1 s here) and the background thread's next sample (every
/// second), so the versions written before are older than the grace period.
async fn past_the_grace_period() {
    tokio::time::sleep(Duration::from_millis(2200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_collects_versions_no_snapshot_needs_and_an_open_one_keeps_its_own() {
    let cluster = ClusterBuilder::new("gc").build().await.unwrap();
    cluster
        .node()
        .unwrap()
        .store
        .set_gc_life_time(Duration::ZERO);
    let a = cluster.client().await.unwrap();
    let b = cluster.client().await.unwrap();
    a.batch_execute(
        "CREATE TABLE g (id int PRIMARY KEY, v int); \
         INSERT INTO g SELECT i, 0 FROM generate_series(1, 100) AS s(i)",
    )
    .await
    .unwrap();
    b.batch_execute("SET duet.engine = 'row'; BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    assert_eq!(crate::int(&b, "SELECT sum(v) FROM g").await, 0);
    for _ in 0..20 {
        a.batch_execute("UPDATE g SET v = v + 1").await.unwrap();
    }
    past_the_grace_period().await;
    a.batch_execute("VACUUM g").await.unwrap();
    // b's snapshot is older than the grace period, and still reads what it read.
    assert_eq!(crate::int(&b, "SELECT sum(v) FROM g").await, 0);
    let gc = crate::rows(
        &a,
        "SELECT safe_point, current_version, life_time_ms, versions_removed FROM duet.gc",
    )
    .await;
    assert_eq!(gc.len(), 1);
    let num = |i: usize| gc[0][i].as_deref().unwrap().parse::<u64>().unwrap();
    assert!(
        num(0) < num(1),
        "the open snapshot holds the safe point back: {gc:?}"
    );
    assert_eq!(num(2), 1000);
    b.batch_execute("COMMIT").await.unwrap();

    past_the_grace_period().await;
    a.batch_execute("VACUUM").await.unwrap();
    let removed = crate::int(&a, "SELECT versions_removed FROM duet.gc").await;
    assert!(removed >= 2000, "20 old versions of 100 rows: {removed}");
    for engine in ["row", "column"] {
        a.batch_execute(&format!("SET duet.engine = '{engine}'"))
            .await
            .unwrap();
        assert_eq!(
            crate::int(&a, "SELECT sum(v) FROM g").await,
            2000,
            "{engine}"
        );
        assert_eq!(
            crate::int(&a, "SELECT count(*) FROM g").await,
            100,
            "{engine}"
        );
    }
    let metrics = cluster.http_get("/metrics").await.unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("duet_gc_removed_total{kind=\"versions\"}"))
        .unwrap_or_else(|| panic!("no GC counter in /metrics"));
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2000, "{line}");
    // VACUUM of a table that does not exist is PostgreSQL's error.
    assert_eq!(crate::error_code(&a, "VACUUM nosuch").await, "42P01");
}
