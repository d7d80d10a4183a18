//! Transactions: snapshot isolation, conflicts, rollback, failed blocks, a bank invariant.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use duet_tests::ClusterBuilder;
use rand::Rng;

#[tokio::test]
async fn write_write_conflict_gives_40001_to_the_later_committer() {
    let cluster = ClusterBuilder::new("conflict").build().await.unwrap();
    let a = cluster.client().await.unwrap();
    let b = cluster.client().await.unwrap();
    a.batch_execute(
        "CREATE TABLE acc (id int PRIMARY KEY, bal int); INSERT INTO acc VALUES (1, 100)",
    )
    .await
    .unwrap();
    a.batch_execute("BEGIN; UPDATE acc SET bal = bal - 10 WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("BEGIN; UPDATE acc SET bal = bal - 20 WHERE id = 1")
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    let e = b.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("40001"));
    // The loser's block is over: the session works and sees the winner's write.
    let bal: i32 = b
        .query_one("SELECT bal FROM acc WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bal, 90);
}

#[tokio::test]
async fn snapshot_isolation_and_read_your_writes() {
    let cluster = ClusterBuilder::new("si").build().await.unwrap();
    let a = cluster.client().await.unwrap();
    let b = cluster.client().await.unwrap();
    a.batch_execute("CREATE TABLE s (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    b.batch_execute("BEGIN").await.unwrap();
    let n = crate::int(&b, "SELECT count(*) FROM s").await;
    assert_eq!(n, 0);
    a.batch_execute("INSERT INTO s VALUES (1, 'committed later')")
        .await
        .unwrap();
    // b's snapshot does not move.
    let n = crate::int(&b, "SELECT count(*) FROM s").await;
    assert_eq!(n, 0);
    b.batch_execute("INSERT INTO s VALUES (2, 'mine')")
        .await
        .unwrap();
    let rows = b.query("SELECT id FROM s ORDER BY id", &[]).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        vec![2]
    );
    b.batch_execute("COMMIT").await.unwrap();
    let n = crate::int(&a, "SELECT count(*) FROM s").await;
    assert_eq!(n, 2);
}

#[tokio::test]
async fn rollback_leaves_nothing_and_errors_abort_the_block() {
    let cluster = ClusterBuilder::new("rollback").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute("CREATE TABLE r (id int PRIMARY KEY)")
        .await
        .unwrap();
    c.batch_execute("BEGIN; INSERT INTO r VALUES (1), (2); ROLLBACK")
        .await
        .unwrap();
    let n = crate::int(&c, "SELECT count(*) FROM r").await;
    assert_eq!(n, 0);
    c.batch_execute("BEGIN; INSERT INTO r VALUES (1)")
        .await
        .unwrap();
    let e = c
        .batch_execute("INSERT INTO r VALUES (1)")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("23505"));
    let e = c.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("25P02"));
    // COMMIT of a failed block rolls back.
    c.batch_execute("COMMIT").await.unwrap();
    let n = crate::int(&c, "SELECT count(*) FROM r").await;
    assert_eq!(n, 0);
    let e = c.batch_execute("SAVEPOINT s1").await.unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("0A000"));
}

/// Concurrent transfers between accounts never change the total, and every snapshot a
/// reader takes sees the same total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bank_transfers_keep_the_total() {
    const ACCOUNTS: i32 = 10;
    const WORKERS: usize = 4;
    const TRANSFERS: usize = 40;
    let cluster = ClusterBuilder::new("bank").build().await.unwrap();
    let setup = cluster.client().await.unwrap();
    setup
        .batch_execute("CREATE TABLE bank (id int PRIMARY KEY, bal bigint NOT NULL)")
        .await
        .unwrap();
    for i in 0..ACCOUNTS {
        setup
            .execute("INSERT INTO bank VALUES ($1, 1000)", &[&i])
            .await
            .unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let conflicts = Arc::new(AtomicUsize::new(0));
    let mut tasks = vec![];
    for w in 0..WORKERS {
        let c = cluster.client().await.unwrap();
        let conflicts = conflicts.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
            let mut ok = 0;
            while ok < TRANSFERS {
                let from = rng.gen_range(0..ACCOUNTS);
                let to = (from + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
                let amount: i64 = rng.gen_range(1..50);
                let r = c
                    .batch_execute(&format!(
                        "BEGIN; UPDATE bank SET bal = bal - {amount} WHERE id = {from}; \
                         UPDATE bank SET bal = bal + {amount} WHERE id = {to}; COMMIT"
                    ))
                    .await;
                match r {
                    Ok(()) => ok += 1,
                    Err(e) if crate::sqlstate(&e).as_deref() == Some("40001") => {
                        conflicts.fetch_add(1, Ordering::Relaxed);
                        let _ = c.batch_execute("ROLLBACK").await;
                    }
                    Err(e) => panic!("transfer failed: {e:?}"),
                }
            }
        }));
    }
    let reader = {
        let c = cluster.client().await.unwrap();
        let done = done.clone();
        tokio::spawn(async move {
            let mut checks = 0;
            while !done.load(Ordering::Relaxed) {
                let total = crate::int(&c, "SELECT sum(bal)::bigint FROM bank").await;
                assert_eq!(total, ACCOUNTS as i64 * 1000);
                checks += 1;
            }
            checks
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let checks = reader.await.unwrap();
    assert!(checks > 0);
    let total = crate::int(&setup, "SELECT sum(bal)::bigint FROM bank").await;
    assert_eq!(total, ACCOUNTS as i64 * 1000);
    eprintln!(
        "bank: {} transfers, {} conflicts retried, {checks} invariant checks",
        WORKERS * TRANSFERS,
        conflicts.load(Ordering::Relaxed)
    );
}

use rand::SeedableRng;
