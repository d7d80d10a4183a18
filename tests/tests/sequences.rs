//! Sequences: values unique under concurrent sessions, never handed out twice (not after a
//! rollback, not after a crash), and `serial` keys through a driver's prepared statements.

use duet_tests::ClusterBuilder;

/// Two sessions inserting into a `serial` table at once get distinct keys, through the
/// extended protocol (RETURNING the key, as ORMs read it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_get_distinct_serial_keys() {
    let cluster = ClusterBuilder::new("seq-concurrent").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute("CREATE TABLE items (id serial PRIMARY KEY, owner int NOT NULL)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for owner in 0..2i32 {
        let c = cluster.client().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let stmt = c
                .prepare("INSERT INTO items (owner) VALUES ($1) RETURNING id")
                .await
                .unwrap();
            let mut ids = Vec::new();
            for _ in 0..60 {
                let row = c.query_one(&stmt, &[&owner]).await.unwrap();
                ids.push(row.get::<_, i32>(0));
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let ids = t.await.unwrap();
        // One session's keys increase.
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        all.extend(ids);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 120);
    assert_eq!(
        crate::int(&c, "SELECT count(DISTINCT id) FROM items").await,
        120
    );
}

/// `nextval` is not transactional: a rolled-back transaction keeps its values used.
#[tokio::test]
async fn a_rollback_does_not_give_values_back() {
    let cluster = ClusterBuilder::new("seq-rollback").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute("CREATE SEQUENCE s").await.unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    let inside = crate::int(&c, "SELECT nextval('s')").await;
    c.batch_execute("ROLLBACK").await.unwrap();
    let after = crate::int(&c, "SELECT nextval('s')").await;
    assert_eq!((inside, after), (1, 2));
}

/// Values are made durable a range at a time before they are handed out: after a crash
/// the sequence goes on past every value it gave, and a `setval` stays set.
#[tokio::test]
async fn sequence_values_are_never_reused_after_a_kill() {
    let mut cluster = ClusterBuilder::new("seq-kill").build().await.unwrap();
    let mut given = Vec::new();
    {
        let c = cluster.client().await.unwrap();
        c.batch_execute("CREATE SEQUENCE s; CREATE SEQUENCE t; SELECT setval('t', 1000)")
            .await
            .unwrap();
        for _ in 0..40 {
            given.push(crate::int(&c, "SELECT nextval('s')").await);
        }
    }
    cluster.kill();
    cluster.start().await.unwrap();
    let c = cluster.client().await.unwrap();
    let next = crate::int(&c, "SELECT nextval('s')").await;
    assert!(
        given.iter().all(|&g| g < next),
        "after the kill nextval gave {next}, already given up to {:?}",
        given.last()
    );
    assert_eq!(crate::int(&c, "SELECT nextval('t')").await, 1001);
}
