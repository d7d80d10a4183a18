//! Transactions: READ COMMITTED and REPEATABLE READ, row locks, deadlocks and lock waits,
//! rollback, failed blocks, a bank invariant.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use duet_tests::ClusterBuilder;
use rand::Rng;

async fn acc_with_one_row(
    name: &str,
) -> (
    duet_tests::Cluster,
    tokio_postgres::Client,
    tokio_postgres::Client,
) {
    let cluster = ClusterBuilder::new(name).build().await.unwrap();
    let a = cluster.client().await.unwrap();
    let b = cluster.client().await.unwrap();
    a.batch_execute(
        "CREATE TABLE acc (id int PRIMARY KEY, bal int); INSERT INTO acc VALUES (1, 100), (2, 100)",
    )
    .await
    .unwrap();
    (cluster, a, b)
}

/// Runs `sql` on `c` in the background and checks that it is still waiting a moment later.
async fn blocked(
    c: tokio_postgres::Client,
    sql: &'static str,
) -> tokio::task::JoinHandle<(tokio_postgres::Client, Result<(), tokio_postgres::Error>)> {
    let h = tokio::spawn(async move {
        let r = c.batch_execute(sql).await;
        (c, r)
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    if h.is_finished() {
        let (_, r) = h.await.unwrap();
        panic!("{sql} did not wait for the row lock: {r:?}");
    }
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeatable_read_gives_40001_to_the_second_writer_of_a_row() {
    let (_cluster, a, b) = acc_with_one_row("conflict-rr").await;
    a.batch_execute(
        "BEGIN ISOLATION LEVEL REPEATABLE READ; UPDATE acc SET bal = bal - 10 WHERE id = 1",
    )
    .await
    .unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .await
        .unwrap();
    // b waits for a's row lock; a's commit makes b's snapshot too old for that row.
    let h = blocked(b, "UPDATE acc SET bal = bal - 20 WHERE id = 1").await;
    a.batch_execute("COMMIT").await.unwrap();
    let (b, r) = h.await.unwrap();
    let e = r.unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("40001"), "{e:?}");
    // The loser's block has failed: COMMIT rolls it back and the session goes on.
    b.batch_execute("COMMIT").await.unwrap();
    let bal: i32 = b
        .query_one("SELECT bal FROM acc WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bal, 90);
    // The same through the fast path's general twin (a non-key WHERE) and with SERIALIZABLE.
    a.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE; UPDATE acc SET bal = 0 WHERE bal = 90")
        .await
        .unwrap();
    b.batch_execute("BEGIN; SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    let h = blocked(b, "UPDATE acc SET bal = bal + 1 WHERE id >= 1").await;
    a.batch_execute("COMMIT").await.unwrap();
    let (b, r) = h.await.unwrap();
    assert_eq!(crate::sqlstate(&r.unwrap_err()).as_deref(), Some("40001"));
    b.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_waits_for_the_row_and_updates_its_newest_version() {
    let (_cluster, a, mut b) = acc_with_one_row("conflict-rc").await;
    let v: String = b
        .query_one("SHOW transaction_isolation", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "read committed");
    // Key-addressed (fast path) and general UPDATEs, a DELETE, in blocks and autocommit.
    for (first, second, expect) in [
        (
            "UPDATE acc SET bal = bal - 10 WHERE id = 1",
            "BEGIN; UPDATE acc SET bal = bal - 20 WHERE id = 1; COMMIT",
            Some(70),
        ),
        (
            "UPDATE acc SET bal = bal * 2 WHERE id = 1",
            "UPDATE acc SET bal = bal + 1 WHERE bal > 0 AND id < 2",
            Some(141),
        ),
        // The row no longer matches once the first commit is seen: not updated.
        (
            "UPDATE acc SET bal = -1 WHERE id = 1",
            "UPDATE acc SET bal = 5 WHERE bal > 0 AND id = 1",
            Some(-1),
        ),
        (
            "DELETE FROM acc WHERE id = 1",
            "BEGIN; UPDATE acc SET bal = 7 WHERE id = 1; COMMIT",
            None,
        ),
    ] {
        a.batch_execute(&format!("BEGIN; {first}")).await.unwrap();
        let h = blocked(b, second).await;
        a.batch_execute("COMMIT").await.unwrap();
        let (b2, r) = h.await.unwrap();
        r.unwrap_or_else(|e| panic!("{second}: {e:?}"));
        b = b2;
        let bal: Option<i32> = b
            .query_opt("SELECT bal FROM acc WHERE id = 1", &[])
            .await
            .unwrap()
            .map(|r| r.get(0));
        assert_eq!(bal, expect, "{first} then {second}");
    }
    // An INSERT of a key another transaction is inserting waits, then finds it: 23505.
    a.batch_execute("BEGIN; INSERT INTO acc VALUES (9, 9)")
        .await
        .unwrap();
    let h = blocked(b, "INSERT INTO acc VALUES (9, 10)").await;
    a.batch_execute("COMMIT").await.unwrap();
    let (b, r) = h.await.unwrap();
    assert_eq!(crate::sqlstate(&r.unwrap_err()).as_deref(), Some("23505"));
    // Each statement of a READ COMMITTED block sees what committed before it.
    b.batch_execute("BEGIN").await.unwrap();
    assert_eq!(crate::int(&b, "SELECT count(*) FROM acc").await, 2);
    a.batch_execute("INSERT INTO acc VALUES (10, 1)")
        .await
        .unwrap();
    assert_eq!(crate::int(&b, "SELECT count(*) FROM acc").await, 3);
    b.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_cycle_is_a_deadlock_and_lock_timeout_ends_a_wait() {
    let (_cluster, a, b) = acc_with_one_row("deadlock").await;
    a.batch_execute("BEGIN; UPDATE acc SET bal = 1 WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("BEGIN; UPDATE acc SET bal = 2 WHERE id = 2")
        .await
        .unwrap();
    let h = blocked(a, "UPDATE acc SET bal = 1 WHERE id = 2").await;
    // b closing the cycle is the one that fails; a then gets the row.
    let e = b
        .batch_execute("UPDATE acc SET bal = 2 WHERE id = 1")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("40P01"), "{e:?}");
    b.batch_execute("ROLLBACK").await.unwrap();
    let (a, r) = h.await.unwrap();
    r.unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(crate::int(&b, "SELECT sum(bal)::bigint FROM acc").await, 2);

    a.batch_execute("BEGIN; DELETE FROM acc WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("SET lock_timeout = '200ms'").await.unwrap();
    let t = std::time::Instant::now();
    let e = b
        .batch_execute("UPDATE acc SET bal = 3 WHERE id = 1")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("55P03"), "{e:?}");
    assert!(t.elapsed() >= std::time::Duration::from_millis(200));
    b.batch_execute("SET lock_timeout = 0; SET statement_timeout = '150ms'")
        .await
        .unwrap();
    let e = b
        .batch_execute("DELETE FROM acc WHERE id >= 1")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
    a.batch_execute("ROLLBACK").await.unwrap();
    b.batch_execute("SET statement_timeout = 0").await.unwrap();
    assert_eq!(crate::int(&b, "SELECT count(*) FROM acc").await, 2);
}

#[tokio::test]
async fn snapshot_isolation_and_read_your_writes() {
    let cluster = ClusterBuilder::new("si").build().await.unwrap();
    let a = cluster.client().await.unwrap();
    let b = cluster.client().await.unwrap();
    a.batch_execute("CREATE TABLE s (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
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
    // Outside a block a savepoint is an error, as in PostgreSQL.
    let e = c.batch_execute("SAVEPOINT s1").await.unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("25P01"));
    // Inside one, ROLLBACK TO SAVEPOINT undoes the failed statement and the block goes on.
    c.batch_execute("BEGIN; INSERT INTO r VALUES (1); SAVEPOINT s1")
        .await
        .unwrap();
    let e = c
        .batch_execute("INSERT INTO r VALUES (2), (1)")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("23505"));
    c.batch_execute("ROLLBACK TO SAVEPOINT s1; INSERT INTO r VALUES (3); COMMIT")
        .await
        .unwrap();
    let ids = crate::rows(&c, "SELECT id FROM r ORDER BY id").await;
    assert_eq!(ids, [[Some("1".to_string())], [Some("3".to_string())]]);
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
                    // Transfers lock two rows in either order: a cycle is a deadlock.
                    Err(e) if matches!(crate::sqlstate(&e).as_deref(), Some("40001" | "40P01")) => {
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
            // At least one check, however fast the transfers finish.
            loop {
                let finished = done.load(Ordering::Relaxed);
                let total = crate::int(&c, "SELECT sum(bal)::bigint FROM bank").await;
                assert_eq!(total, ACCOUNTS as i64 * 1000);
                checks += 1;
                if finished {
                    break;
                }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_for_update_locks_the_rows_it_reads() {
    let (_cluster, a, b) = acc_with_one_row("for-update").await;
    // Read-modify-write under READ COMMITTED: the second reader waits for the first
    // writer and reads its result, so no update is lost.
    a.batch_execute("BEGIN").await.unwrap();
    let v: i32 = a
        .query_one("SELECT bal FROM acc WHERE id = 1 FOR UPDATE", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 100);
    b.batch_execute("BEGIN").await.unwrap();
    let h = tokio::spawn(async move {
        let r = b
            .query_one("SELECT bal FROM acc AS x WHERE x.id = 1 FOR UPDATE", &[])
            .await
            .map(|r| r.get::<_, i32>(0));
        (b, r)
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!h.is_finished(), "FOR UPDATE did not wait for the row lock");
    a.batch_execute("UPDATE acc SET bal = 90 WHERE id = 1; COMMIT")
        .await
        .unwrap();
    let (b, r) = h.await.unwrap();
    assert_eq!(
        r.unwrap(),
        90,
        "the waiting reader sees the committed write"
    );
    b.batch_execute("UPDATE acc SET bal = 80 WHERE id = 1; COMMIT")
        .await
        .unwrap();
    assert_eq!(
        crate::int(&a, "SELECT bal::bigint FROM acc WHERE id = 1").await,
        80
    );

    // NOWAIT fails at once; SKIP LOCKED and joins are refused rather than ignored.
    a.batch_execute("BEGIN; SELECT * FROM acc WHERE bal > 0 FOR SHARE")
        .await
        .unwrap();
    b.batch_execute("BEGIN").await.unwrap();
    let e = b
        .batch_execute("SELECT * FROM acc WHERE id = 2 FOR UPDATE NOWAIT")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("55P03"), "{e:?}");
    b.batch_execute("ROLLBACK; BEGIN").await.unwrap();
    for sql in [
        "SELECT * FROM acc FOR UPDATE SKIP LOCKED",
        "SELECT * FROM acc x JOIN acc y ON x.id = y.id FOR UPDATE",
    ] {
        let e = b.batch_execute(sql).await.unwrap_err();
        assert_eq!(
            crate::sqlstate(&e).as_deref(),
            Some("0A000"),
            "{sql}: {e:?}"
        );
        b.batch_execute("ROLLBACK; BEGIN").await.unwrap();
    }
    b.batch_execute("ROLLBACK").await.unwrap();
    a.batch_execute("COMMIT").await.unwrap();
}
