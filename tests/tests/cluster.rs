//! A cluster of processes: three members, each a child process (this test binary serving
//! one member through `duet_tests::ClusterProcesses`, as `duetdb --node-id N
//! --initial-cluster …` does), Raft over TCP between them, SQL on any member, `kill -9` of
//! the leader, and a leader cut off from the others.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use duet_tests::ClusterProcesses as ProcessCluster;

/// Not a test on its own: one member process of the tests below (its settings come from
/// the environment [`ProcessCluster`] sets).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "run only as a member process of the cluster tests"]
async fn child_member() {
    duet_tests::processes::serve_member_from_env().await;
}

/// The member processes of a test: this binary, running `child_member`.
async fn start() -> ProcessCluster {
    ProcessCluster::start(&["row", "row", "row+column"], "cluster::child_member").await
}

/// Inserts `key` through member `via`, retrying a connection error or a retryable error
/// until `deadline`; true once acknowledged.
async fn insert(c: &mut ProcessCluster, via: u64, key: i32, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if let Ok(client) = c.client(via).await {
            match client
                .execute("INSERT INTO acked VALUES ($1)", &[&key])
                .await
            {
                Ok(_) => return true,
                Err(e) => {
                    let code = e.code().map(|s| s.code().to_string());
                    // A retried insert that was in fact committed shows as a duplicate.
                    if code.as_deref() == Some("23505") {
                        return true;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn keys(c: &mut ProcessCluster, via: u64) -> BTreeSet<i32> {
    let client = c.client(via).await.unwrap();
    client
        .query("SELECT k FROM acked", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn sql_on_any_member_and_kill_9_of_the_leader_loses_no_acknowledged_commit() {
    let mut c = start().await;
    let first = c.client(1).await.unwrap();
    first
        .batch_execute("CREATE TABLE acked (k int PRIMARY KEY)")
        .await
        .unwrap();
    // Writes through every member: the others relay to the leader.
    let mut acknowledged = BTreeSet::new();
    for k in 0..60 {
        let via = 1 + (k as u64 % 3);
        assert!(insert(&mut c, via, k, Instant::now() + Duration::from_secs(10)).await);
        acknowledged.insert(k);
    }
    for via in 1..=3 {
        assert_eq!(
            keys(&mut c, via).await,
            acknowledged,
            "read through member {via}"
        );
    }
    // Only the replicated database exists in a cluster.
    let other = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            c.sql_port(2)
        ),
        tokio_postgres::NoTls,
    )
    .await;
    let e = other.err().expect("the postgres database was served");
    assert_eq!(e.code().map(|s| s.code()), Some("0A000"), "{e}");

    // Bank transfers through every member run across the kill: the total never changes in
    // any snapshot a reader sees, before, during or after the failover.
    first
        .batch_execute(
            "CREATE TABLE bank (id int PRIMARY KEY, balance int NOT NULL);
             INSERT INTO bank SELECT g, 100 FROM generate_series(1, 10) g",
        )
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ports: Vec<u16> = (1..=3).map(|id| c.sql_port(id)).collect();
    let mut workers = Vec::new();
    for w in 0..4u32 {
        let (stop, ports) = (stop.clone(), ports.clone());
        workers.push(tokio::spawn(async move {
            let (mut moved, mut sums) = (0u32, 0u32);
            let mut i = w;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let port = ports[(i as usize) % ports.len()];
                let Ok((client, conn)) = tokio_postgres::connect(
                    &format!("host=127.0.0.1 port={port} user=postgres dbname=duetdb"),
                    tokio_postgres::NoTls,
                )
                .await
                else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                tokio::spawn(conn);
                for _ in 0..20 {
                    if w == 0 {
                        // The reader: one snapshot, the whole bank.
                        match client
                            .query_one("SELECT sum(balance)::int FROM bank", &[])
                            .await
                        {
                            Ok(r) => {
                                assert_eq!(
                                    r.get::<_, i32>(0),
                                    1000,
                                    "a reader saw money appear or vanish"
                                );
                                sums += 1;
                            }
                            Err(_) => break,
                        }
                    } else {
                        let (from, to) = (1 + (i % 10) as i32, 1 + ((i * 7 + w) % 10) as i32);
                        if from == to {
                            continue;
                        }
                        let sql = format!(
                            "BEGIN; UPDATE bank SET balance = balance - 1 WHERE id = {from}; \
                             UPDATE bank SET balance = balance + 1 WHERE id = {to}; COMMIT"
                        );
                        match client.batch_execute(&sql).await {
                            Ok(()) => moved += 1,
                            Err(e) if e.is_closed() => break,
                            Err(_) => {
                                let _ = client.batch_execute("ROLLBACK").await;
                            }
                        }
                    }
                }
            }
            (moved, sums)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // kill -9 the leader; a session that was relayed to it loses its connection.
    let old = c.leader(1).await;
    let survivor = if old == 1 { 2 } else { 1 };
    let relayed = c.client(survivor).await.unwrap();
    c.kill(old);
    let killed = Instant::now();
    let e = relayed
        .simple_query("SELECT 1")
        .await
        .expect_err("a session on the killed leader went on");
    assert!(e.is_closed() || e.code().is_none(), "{e}");
    assert!(
        insert(
            &mut c,
            survivor,
            1000,
            Instant::now() + Duration::from_secs(20)
        )
        .await
    );
    eprintln!(
        "cluster: first commit through member {survivor} {:?} after kill -9 of leader {old}",
        killed.elapsed()
    );
    acknowledged.insert(1000);
    for k in 1001..1030 {
        assert!(
            insert(
                &mut c,
                survivor,
                k,
                Instant::now() + Duration::from_secs(10)
            )
            .await
        );
        acknowledged.insert(k);
    }
    let new = c.leader(survivor).await;
    assert_ne!(new, old);
    assert_eq!(keys(&mut c, survivor).await, acknowledged);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut moved, mut sums) = (0, 0);
    for w in workers {
        let (m, s) = w.await.unwrap();
        moved += m;
        sums += s;
    }
    let total = crate::int(
        &c.client(survivor).await.unwrap(),
        "SELECT sum(balance) FROM bank",
    )
    .await;
    assert_eq!(total, 1000);
    eprintln!("cluster: {moved} transfers and {sums} consistent sums across the failover");
    assert!(moved > 0 && sums > 0);

    // The killed member comes back with its log and catches up; then the second leader is
    // killed, and what every leader acknowledged is still there.
    c.spawn(old);
    c.wait_ready(old).await;
    assert!(insert(&mut c, old, 2000, Instant::now() + Duration::from_secs(20)).await);
    acknowledged.insert(2000);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let client = c.client(old).await.unwrap();
        let caught_up = crate::int(
            &client,
            "SELECT count(*) FROM duet.cluster WHERE state = 'up'",
        )
        .await;
        if caught_up == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the returned member did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.kill(new);
    let last = [1, 2, 3].into_iter().find(|m| *m != new).unwrap();
    assert!(insert(&mut c, last, 3000, Instant::now() + Duration::from_secs(20)).await);
    acknowledged.insert(3000);
    assert_eq!(keys(&mut c, last).await, acknowledged);
}

#[tokio::test]
async fn a_partitioned_leader_serves_no_stale_read_and_the_majority_goes_on() {
    let mut c = start().await;
    let first = c.client(1).await.unwrap();
    first
        .batch_execute("CREATE TABLE acked (k int PRIMARY KEY); INSERT INTO acked VALUES (1)")
        .await
        .unwrap();
    let old = c.leader(1).await;
    // A session served by the leader itself, then the leader is cut off from the others.
    let on_old = c.client(old).await.unwrap();
    assert_eq!(crate::int(&on_old, "SELECT count(*) FROM acked").await, 1);
    c.partition(old, false);
    let majority = [1, 2, 3].into_iter().find(|m| *m != old).unwrap();
    assert!(
        insert(
            &mut c,
            majority,
            2,
            Instant::now() + Duration::from_secs(20)
        )
        .await
    );
    // The majority committed 2: the cut-off member must not answer 1 any more, on the old
    // session or on a new one (it refuses, or it cannot serve at all).
    match on_old.query_one("SELECT count(*) FROM acked", &[]).await {
        Ok(r) => panic!("a stale read on the cut-off leader: {}", r.get::<_, i64>(0)),
        Err(e) => {
            let code = e.code().map(|s| s.code().to_string());
            assert!(
                e.is_closed()
                    || code.as_deref() == Some("40001")
                    || code.as_deref() == Some("57P01"),
                "{e}"
            );
        }
    }
    if let Ok(fresh) = c.client(old).await {
        if let Ok(r) = fresh.query_one("SELECT count(*) FROM acked", &[]).await {
            panic!("a stale read on the cut-off member: {}", r.get::<_, i64>(0));
        }
    }
    // Healed, it follows the new leader and answers with the majority's writes.
    c.partition(old, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(client) = c.client(old).await {
            if let Ok(r) = client.query_one("SELECT count(*) FROM acked", &[]).await {
                assert_eq!(r.get::<_, i64>(0), 2);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the healed member did not serve again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
