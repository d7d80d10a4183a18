//! A full disk through SQL: writes refused with 53100 before they reach the log, reads going
//! on, DROP and TRUNCATE still running, writes resuming once space returns, and nothing
//! refused or acknowledged lost or half-applied. The disk is the test machine's real one;
//! "full" is its free space below the reserve, which the test raises above what is free
//! (scripts/full-disk-check.sh fills a real small filesystem).

use duet_tests::ClusterBuilder;
use futures::SinkExt;

async fn copy_rows(
    c: &tokio_postgres::Client,
    from: i64,
    to: i64,
) -> Result<u64, tokio_postgres::Error> {
    let sink = c.copy_in("COPY d (id, v) FROM STDIN").await?;
    let mut sink = Box::pin(sink);
    let text: String = (from..to).map(|i| format!("{i}\t{i}\n")).collect();
    sink.send(bytes::Bytes::from(text)).await?;
    sink.as_mut().finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_53100_keeps_reads_and_resumes_when_space_returns() {
    let mut cluster = ClusterBuilder::new("disk").build().await.unwrap();
    let disk = cluster
        .node()
        .unwrap()
        .store
        .disk_guard()
        .expect("a node guards its disk")
        .clone();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE d (id int PRIMARY KEY, v int); \
         CREATE TABLE spare (id int PRIMARY KEY); \
         CREATE TABLE gone (id int PRIMARY KEY); \
         INSERT INTO spare SELECT i FROM generate_series(1, 50) AS s(i); \
         INSERT INTO gone SELECT i FROM generate_series(1, 50) AS s(i)",
    )
    .await
    .unwrap();
    copy_rows(&c, 0, 100).await.unwrap();

    // Less free than the reserve, more than a quarter of it.
    let free = disk.available().expect("statvfs");
    disk.set_reserve(free.saturating_mul(2));
    for sql in [
        "INSERT INTO d VALUES (90000, 1)",
        "UPDATE d SET v = v + 1",
        "DELETE FROM d WHERE id < 10",
        "CREATE TABLE later (id int)",
    ] {
        assert_eq!(crate::error_code(&c, sql).await, "53100", "{sql}");
    }
    let e = copy_rows(&c, 100, 2100).await.unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("53100"), "{e}");
    let db = e.as_db_error().unwrap();
    assert!(db.message().contains("reserve"), "{}", db.message());
    assert!(db.hint().is_some_and(|h| h.contains("TRUNCATE")), "{db:?}");
    // A transaction's writes are refused at COMMIT; the session goes on.
    c.batch_execute("BEGIN; INSERT INTO d VALUES (90001, 1)")
        .await
        .unwrap();
    assert_eq!(crate::error_code(&c, "COMMIT").await, "53100");
    assert_eq!(crate::int(&c, "SELECT count(*) FROM d").await, 100);
    // Reads go on, on both replicas.
    for engine in ["row", "column"] {
        c.batch_execute(&format!("SET duet.engine = '{engine}'"))
            .await
            .unwrap();
        assert_eq!(
            crate::int(&c, "SELECT count(*) FROM d").await,
            100,
            "{engine}"
        );
        assert_eq!(
            crate::int(&c, "SELECT sum(v) FROM d").await,
            4950,
            "{engine}"
        );
    }
    c.batch_execute("SET duet.engine = 'auto'").await.unwrap();
    // What gives space back still runs.
    c.batch_execute("TRUNCATE spare; DROP TABLE gone")
        .await
        .unwrap();
    assert_eq!(crate::int(&c, "SELECT count(*) FROM spare").await, 0);
    let metrics = cluster.http_get("/metrics").await.unwrap();
    assert_eq!(crate::metric(&metrics, "duet_disk{figure=\"full\"}"), 1.0);
    assert!(crate::metric(&metrics, "duet_disk{figure=\"reserve_bytes\"}") > 0.0);

    // Space again: the same writes succeed, without a restart.
    disk.set_reserve(free / 1000);
    copy_rows(&c, 100, 2100).await.unwrap();
    c.batch_execute(
        "INSERT INTO d VALUES (5000, 1); UPDATE d SET v = v + 1 WHERE id < 10; \
         CREATE TABLE later (id int)",
    )
    .await
    .unwrap();
    assert_eq!(crate::int(&c, "SELECT count(*) FROM d").await, 2101);
    // Nothing refused was applied, everything acknowledged survives a restart.
    drop((c, disk));
    cluster.restart().await.unwrap();
    let c = cluster.client().await.unwrap();
    assert_eq!(crate::int(&c, "SELECT count(*) FROM d").await, 2101);
    assert_eq!(
        crate::int(&c, "SELECT count(*) FROM d WHERE id >= 90000").await,
        0
    );
    assert_eq!(
        crate::int(&c, "SELECT sum(v) FROM d").await,
        (0..2100).sum::<i64>() + 1 + 10
    );
    let metrics = cluster.http_get("/metrics").await.unwrap();
    assert_eq!(crate::metric(&metrics, "duet_disk{figure=\"full\"}"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_settings_show_and_cannot_be_set_by_a_session() {
    let cluster = ClusterBuilder::new("server-settings")
        .build()
        .await
        .unwrap();
    let c = cluster.client().await.unwrap();
    let show = |name: &'static str| {
        let c = &c;
        async move {
            crate::rows(c, &format!("SHOW {name}")).await[0][0]
                .clone()
                .unwrap()
        }
    };
    assert_eq!(show("duet.gc_life_time").await, "600s");
    assert_eq!(show("duet.row_cache_size").await, "256MB");
    assert!(show("duet.disk_reserve").await.ends_with("MB"));
    for sql in [
        "SET duet.disk_reserve = '1GB'",
        "SET duet.gc_life_time = '1s'",
    ] {
        assert_eq!(crate::error_code(&c, sql).await, "55P02", "{sql}");
    }
    // SHOW ALL: PostgreSQL's three columns, session and server settings alike.
    let all = crate::rows(&c, "SHOW ALL").await;
    let get = |n: &str| all.iter().find(|r| r[0].as_deref() == Some(n)).cloned();
    assert_eq!(all[0].len(), 3);
    assert_eq!(
        get("duet.block_cache_size").unwrap()[1].as_deref(),
        Some("256MB")
    );
    assert!(get("duet.disk_reserve").unwrap()[2]
        .as_deref()
        .unwrap()
        .contains("53100"));
    assert!(get("statement_timeout").is_some() && get("duet.engine").is_some());
    c.batch_execute("SET statement_timeout = '5s'")
        .await
        .unwrap();
    let all = crate::rows(&c, "SHOW ALL").await;
    assert!(all
        .iter()
        .any(|r| r[0].as_deref() == Some("statement_timeout") && r[1].as_deref() == Some("5s")));
    let metrics = cluster.http_get("/metrics").await.unwrap();
    assert_eq!(
        crate::metric(&metrics, "duet_memory_budget_bytes{pool=\"row_cache\"}"),
        (256u64 << 20) as f64
    );
    assert!(crate::metric(&metrics, "duet_memory_budget_bytes{pool=\"query_default\"}") > 0.0);
    // The column cache's budget: its default, then the one the server is given.
    let default = duet_colstore::cache::default_cache_bytes();
    assert_eq!(
        show("duet.column_cache_size").await,
        format!("{}MB", default >> 20)
    );
    cluster.node().unwrap().set_column_cache_size(96 << 20);
    assert_eq!(show("duet.column_cache_size").await, "96MB");
    assert_eq!(
        crate::error_code(&c, "SET duet.column_cache_size = '1GB'").await,
        "55P02"
    );
    let metrics = cluster.http_get("/metrics").await.unwrap();
    assert_eq!(
        crate::metric(&metrics, "duet_memory_budget_bytes{pool=\"column_cache\"}"),
        (96u64 << 20) as f64
    );
    assert!(crate::metric(&metrics, "duet_column_cache{figure=\"bytes\"}") >= 0.0);
    // The row and block caches' budgets, as --row-cache-size and --block-cache-size set them.
    let store = cluster.node().unwrap().store.clone();
    store.set_row_cache_size(64 << 20);
    store.set_block_cache_size(512 << 20);
    assert_eq!(show("duet.row_cache_size").await, "64MB");
    assert_eq!(show("duet.block_cache_size").await, "512MB");
    let metrics = cluster.http_get("/metrics").await.unwrap();
    for (pool, mb) in [("row_cache", 64u64), ("block_cache", 512)] {
        assert_eq!(
            crate::metric(
                &metrics,
                &format!("duet_memory_budget_bytes{{pool=\"{pool}\"}}")
            ),
            (mb << 20) as f64
        );
    }
    // What each pool holds now: RocksDB's memtables hold the catalog written above.
    assert!(crate::metric(&metrics, "duet_memory_bytes{pool=\"memtables\"}") > 0.0);
    for pool in ["row_cache", "block_cache", "table_readers", "column_cache"] {
        assert!(crate::metric(&metrics, &format!("duet_memory_bytes{{pool=\"{pool}\"}}")) >= 0.0);
    }
}

/// A sync of the raft log that fails (EIO, injected at the log's file system, where
/// raft-engine panics): the commit waiting for it gets 58030 saying its outcome is unknown,
/// not a hang or a dead server; reads go on; later writes are refused at once, even once
/// the disk syncs again (what the failed sync lost cannot be known); a restart recovers
/// every acknowledged row and takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_log_sync_refuses_writes_keeps_reads_and_a_restart_recovers() {
    let mut cluster = ClusterBuilder::new("disk-sync").build().await.unwrap();
    let faults = cluster.node().unwrap().log_faults().clone();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE f (id int PRIMARY KEY, v int);
         INSERT INTO f SELECT i, i FROM generate_series(1, 100) AS s(i)",
    )
    .await
    .unwrap();

    faults.set_sync_fails(true);
    let e = c
        .batch_execute("INSERT INTO f VALUES (1000, 1)")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("58030"), "{e}");
    let db = e.as_db_error().unwrap();
    assert!(
        db.hint()
            .is_some_and(|h| h.contains("may or may not have committed")),
        "{db:?}"
    );
    assert!(faults.failed() > 0);
    faults.set_sync_fails(false);
    assert_eq!(
        crate::error_code(&c, "INSERT INTO f VALUES (1001, 1)").await,
        "58030"
    );
    // Reads go on, in this session and in new ones.
    let other = cluster.client().await.unwrap();
    for s in [&c, &other] {
        assert_eq!(
            crate::int(s, "SELECT count(*) FROM f WHERE id <= 100").await,
            100
        );
    }
    let metrics = cluster.http_get("/metrics").await.unwrap();
    assert!(metrics.contains("duet_"), "the server still answers");

    drop((c, other));
    cluster.restart().await.unwrap();
    let c = cluster.client().await.unwrap();
    assert_eq!(
        crate::int(&c, "SELECT sum(v) FROM f WHERE id <= 100").await,
        5050
    );
    // The write whose sync failed may be in the log (its outcome was unknown); the one
    // refused after it is not.
    assert!(crate::int(&c, "SELECT count(*) FROM f WHERE id = 1000").await <= 1);
    assert_eq!(
        crate::int(&c, "SELECT count(*) FROM f WHERE id = 1001").await,
        0
    );
    c.batch_execute("INSERT INTO f VALUES (2000, 1)")
        .await
        .unwrap();
    assert_eq!(
        crate::int(&c, "SELECT count(*) FROM f WHERE id = 2000").await,
        1
    );
}
