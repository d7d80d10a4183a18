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
    // A fresh session: an election meanwhile (a loaded machine can delay heartbeats past
    // the election timeout) ends the leader's sessions.
    c.client(1)
        .await
        .unwrap()
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
    c.partition(old, false).await;
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
    c.partition(old, true).await;
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

/// The leader as member `via` reports it, retrying through an election.
async fn leader_via(c: &mut ProcessCluster, via: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(client) = c.client(via).await {
            if let Ok(r) = client
                .query_one("SELECT member_id FROM duet.cluster WHERE leader", &[])
                .await
            {
                return r.get::<_, i64>(0) as u64;
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The rows of `sql`'s last result, as text.
async fn text_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    for m in client.simple_query(sql).await.unwrap() {
        match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            tokio_postgres::SimpleQueryMessage::CommandComplete(_) => {}
            _ => {}
        }
    }
    rows
}

async fn explain(client: &tokio_postgres::Client, sql: &str) -> String {
    text_rows(client, &format!("EXPLAIN {sql}"))
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n")
}

/// A leader without the column replica reads it from the member that has one (member 3):
/// the same answers as its own row replica at the same snapshot, every commit acknowledged
/// before the query included, the serving member's errors with their SQLSTATE, EXPLAIN
/// naming the member; once that member is gone, scans fall back to the row replica.
#[tokio::test]
async fn a_leader_without_the_column_replica_scans_another_members() {
    let mut c = start().await;
    // Make a row-only member lead: member 3 (row+column) hands over when killed.
    while leader_via(&mut c, 1).await == 3 {
        c.kill(3);
        while leader_via(&mut c, 1).await == 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        c.spawn(3);
        c.wait_ready(3).await;
    }
    let leader = leader_via(&mut c, 1).await;
    let db = c.client(leader).await.unwrap();
    db.batch_execute(
        "CREATE TABLE facts (k bigint PRIMARY KEY, g int NOT NULL, v double precision, \
                             s text, d date);
         INSERT INTO facts SELECT k, (k % 10)::int, k * 0.5, 'item ' || (k % 7), \
                DATE '2026-01-01' + (k % 30)::int FROM generate_series(1, 20000) AS s(k);
         ANALYZE facts;
         SET duet.learner_wait_timeout = '30s'",
    )
    .await
    .unwrap();

    let grouped = "SELECT g, count(*), sum(v) FROM facts GROUP BY g ORDER BY g";
    let deadline = Instant::now() + Duration::from_secs(30);
    db.batch_execute("SET duet.engine = 'column'")
        .await
        .unwrap();
    loop {
        let plan = explain(&db, grouped).await;
        if plan.contains("member=3") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader never scanned member 3's column replica:\n{plan}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let queries = [
        grouped,
        "SELECT count(*), min(k), max(k) FROM facts WHERE s LIKE 'item 3%' \
         AND d >= DATE '2026-01-10'",
        "SELECT k, v, s FROM facts WHERE g IN (2, 5) AND v > 9900 ORDER BY k",
        "SELECT sum(k) FROM facts WHERE CAST(d AS timestamp) < TIMESTAMP '2026-01-05 12:00'",
        "SELECT d, count(*) FROM facts WHERE v BETWEEN 100 AND 200 OR s IS NULL \
         GROUP BY d ORDER BY d LIMIT 5",
    ];
    for q in queries {
        db.batch_execute("SET duet.engine = 'column'")
            .await
            .unwrap();
        let plan = explain(&db, q).await;
        assert!(plan.contains("member=3"), "{q}:\n{plan}");
        let column = text_rows(&db, q).await;
        db.batch_execute("SET duet.engine = 'row'").await.unwrap();
        // The row scan is the leader's own.
        let plan = explain(&db, q).await;
        assert!(
            plan.contains(&format!("member={leader}, route")),
            "{q}:\n{plan}"
        );
        let row = text_rows(&db, q).await;
        assert!(!row.is_empty(), "{q}");
        assert_eq!(column, row, "{q}");
    }

    // Every acknowledged commit is in the next remote scan.
    db.batch_execute("SET duet.engine = 'column'")
        .await
        .unwrap();
    let writer = c.client(leader).await.unwrap();
    for i in 0..20i64 {
        writer
            .execute(
                "INSERT INTO facts VALUES ($1, 1, 1.0, 'new', DATE '2026-02-01')",
                &[&(100_000 + i)],
            )
            .await
            .unwrap();
        let n: i64 = db
            .query_one("SELECT count(*) FROM facts WHERE s = 'new'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, i + 1);
    }

    // An error evaluating the filter on member 3 reaches the client with its SQLSTATE.
    let err = db
        .query_one("SELECT count(*) FROM facts WHERE 10 / (g - g) > 0", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|s| s.code()), Some("22012"), "{err:?}");
    assert_eq!(crate::int(&db, "SELECT count(*) FROM facts").await, 20_020);

    // statement_timeout ends a remote scan midway (its filter runs on member 3), and the
    // session goes on.
    let slow = "SELECT count(*) FROM facts WHERE length(repeat(s, 20000)) < 0";
    let plan = explain(&db, slow).await;
    assert!(
        plan.contains("member=3") && plan.contains("repeat") && !plan.contains("local_filter"),
        "{plan}"
    );
    db.batch_execute("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    let started = Instant::now();
    let err = db.query_one(slow, &[]).await.unwrap_err();
    assert_eq!(err.code().map(|s| s.code()), Some("57014"), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    db.batch_execute("SET statement_timeout = 0").await.unwrap();
    assert_eq!(crate::int(&db, "SELECT count(*) FROM facts").await, 20_020);

    // Without member 3, the column choice falls back to the row replica.
    c.kill(3);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = db.query_one("SELECT count(*) FROM facts", &[]).await {
            assert_eq!(r.get::<_, i64>(0), 20_020);
            if !explain(&db, "SELECT count(*) FROM facts")
                .await
                .contains("member=3")
            {
                break;
            }
        }
        assert!(Instant::now() < deadline, "scans still went to member 3");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A member that holds only the column replica (no row store): the leader's column scans
/// read it; a table whose column replica is turned on later is built there from a voter's
/// rows over the network; killed with `kill -9` and started again, it catches up and
/// serves again.
#[tokio::test]
async fn a_column_only_member_serves_column_scans_and_builds_from_the_voters() {
    let mut c =
        ProcessCluster::start(&["row", "row", "row", "column"], "cluster::child_member").await;
    // Idle after the election, whose entry carries no command: member 4 is not behind.
    let leader = leader_via(&mut c, 1).await;
    let idle = c.client(leader).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while column_lag(&idle).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the leader never heard from member 4"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lag = column_lag(&idle).await;
    assert!(
        lag.is_some_and(|l| l < 1000),
        "idle member 4 {lag:?} ms behind"
    );
    // SQL on the column member is relayed to the leader like on any other.
    let via_column = c.client(4).await.unwrap();
    via_column
        .batch_execute(
            "CREATE TABLE facts (k bigint PRIMARY KEY, g int NOT NULL, v double precision);
             INSERT INTO facts SELECT k, (k % 10)::int, k * 0.25 \
                FROM generate_series(1, 5000) AS s(k);
             CREATE TABLE later (k bigint PRIMARY KEY, s text);
             ALTER TABLE later SET COLUMNAR REPLICA 0;
             INSERT INTO later SELECT k, 'row ' || k FROM generate_series(1, 3000) AS s(k);
             ANALYZE facts; ANALYZE later",
        )
        .await
        .unwrap();
    let leader = leader_via(&mut c, 1).await;
    assert_ne!(leader, 4, "a column-only member led");
    let db = c.client(leader).await.unwrap();
    db.batch_execute("SET duet.learner_wait_timeout = '30s'")
        .await
        .unwrap();

    // Until the replica of `later` is built, only member 4 can serve `facts`.
    async fn served_by_4(db: &tokio_postgres::Client, sql: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        db.batch_execute("SET duet.engine = 'column'")
            .await
            .unwrap();
        loop {
            let plan = explain(db, sql).await;
            if plan.contains("member=4") {
                break;
            }
            assert!(Instant::now() < deadline, "not served by member 4:\n{plan}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let checks = [
        "SELECT g, count(*), sum(v) FROM facts WHERE k > 100 GROUP BY g ORDER BY g",
        "SELECT count(*), min(s), max(s) FROM later WHERE k % 3 = 0",
    ];
    served_by_4(&db, checks[0]).await;
    db.batch_execute("ALTER TABLE later SET COLUMNAR REPLICA 1")
        .await
        .unwrap();
    served_by_4(&db, checks[1]).await;
    for round in 0..2 {
        db.batch_execute(&format!(
            "UPDATE facts SET v = v + 1 WHERE g = {round}; DELETE FROM later WHERE k = {}",
            round + 1
        ))
        .await
        .unwrap();
        for q in checks {
            db.batch_execute("SET duet.engine = 'column'")
                .await
                .unwrap();
            assert!(explain(&db, q).await.contains("member=4"), "{q}");
            let column = text_rows(&db, q).await;
            db.batch_execute("SET duet.engine = 'row'").await.unwrap();
            assert_eq!(column, text_rows(&db, q).await, "{q}");
        }
    }

    // Under concurrent transfers, the two replicas, on different processes, give the same
    // answers at one snapshot (REPEATABLE READ: every statement reads the first one's).
    db.batch_execute(
        "CREATE TABLE acct (id int PRIMARY KEY, bal bigint NOT NULL);
         INSERT INTO acct SELECT i, 1000 FROM generate_series(1, 50) AS s(i)",
    )
    .await
    .unwrap();
    let balances = "id, bal FROM acct ORDER BY id";
    served_by_4(&db, &format!("SELECT {balances}")).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = c.client(leader).await.unwrap();
    let transfers = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (a, b) = (n % 50 + 1, (n * 7 + 3) % 50 + 1);
                writer
                    .batch_execute(&format!(
                        "BEGIN; UPDATE acct SET bal = bal - 5 WHERE id = {a}; \
                         UPDATE acct SET bal = bal + 5 WHERE id = {b}; COMMIT"
                    ))
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let mut db = db;
    for _ in 0..20 {
        let tx = db
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .unwrap();
        let read = |hint: &'static str| format!("SELECT /*+ engine({hint}) */ {balances}");
        let rows = |rows: Vec<tokio_postgres::Row>| -> Vec<(i32, i64)> {
            rows.iter().map(|r| (r.get(0), r.get(1))).collect()
        };
        let column = rows(tx.query(&read("column"), &[]).await.unwrap());
        let plan: Vec<String> = tx
            .query(&format!("EXPLAIN {}", read("column")), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(1))
            .collect();
        assert!(plan.join("\n").contains("member=4"), "{plan:?}");
        let row = rows(tx.query(&read("row"), &[]).await.unwrap());
        tx.commit().await.unwrap();
        assert_eq!(column, row);
        assert_eq!(column.iter().map(|r| r.1).sum::<i64>(), 50_000);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(transfers.await.unwrap() > 0);

    // Killed, written to meanwhile, restarted: it catches up and serves the new rows.
    c.kill(4);
    db.batch_execute("INSERT INTO facts VALUES (9999999, 1, 1.0)")
        .await
        .unwrap();
    c.spawn(4);
    c.wait_ready(4).await;
    served_by_4(&db, checks[0]).await;
    db.batch_execute("SET duet.engine = 'column'")
        .await
        .unwrap();
    assert_eq!(
        crate::int(&db, "SELECT count(*) FROM facts WHERE k = 9999999").await,
        1
    );
    assert!(explain(&db, "SELECT count(*) FROM facts WHERE k = 9999999")
        .await
        .contains("member=4"));

    // Member 4's HTTP endpoints: the cluster as it knows it, its replicas, its figures.
    let json = |body: String| -> serde_json::Value { serde_json::from_str(&body).unwrap() };
    let members = json(c.http_get(4, "/api/cluster").await.unwrap());
    let row = |id: u64| {
        members
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["member_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(row(4)["state"], "up", "{members}");
    assert!(row(4)["column_index"].as_u64().unwrap() > 0, "{members}");
    assert_eq!(row(leader)["leader"], true, "{members}");
    let replicas = json(c.http_get(4, "/api/replicas").await.unwrap());
    assert!(
        replicas
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["table_name"] == "facts" && r["state"] == "available"),
        "{replicas}"
    );
    let metrics = c.http_get(4, "/metrics").await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("duet_raft_index")
            && l.contains("peer=\"learner\"")
            && l.contains("kind=\"applied\"")),
        "{metrics}"
    );

    // How stale member 4's column replica is, as the leader measures it from member 4's
    // status answers: cut off from the Raft messages it falls behind, and the lag grows
    // with the age of the first commit it lacks; healed, it catches up.
    c.partition(4, false).await;
    db.batch_execute("INSERT INTO facts VALUES (9999998, 2, 2.0)")
        .await
        .unwrap();
    // The leader hears from member 4 on its own schedule (a status poll that a loaded
    // machine delays): wait for an answer given a second or more after the commit.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let behind = column_lag(&db)
            .await
            .expect("the leader knows member 4's lag");
        if behind >= 1000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member 4 cut off for 20 s, lag {behind} ms"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.partition(4, true).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while column_lag(&db).await.is_none_or(|l| l >= 1000) {
        assert!(Instant::now() < deadline, "member 4 did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fault the workloads below run through.
#[derive(Clone, Copy)]
enum Fault {
    /// `kill -9`, a second down, restarted.
    Kill,
    /// Cut off from the others both ways for 1.5 s.
    Partition,
    /// Hears nobody (one way) for 1.5 s, then every link is slow and lossy for a second.
    DeafThenLossy,
}

async fn inject(c: &mut ProcessCluster, fault: Fault, member: u64) {
    match fault {
        Fault::Kill => {
            c.kill(member);
            tokio::time::sleep(Duration::from_millis(1000)).await;
            c.spawn(member);
            c.wait_ready(member).await;
        }
        Fault::Partition => {
            c.partition(member, false).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            c.heal().await;
        }
        Fault::DeafThenLossy => {
            for other in c.ids().into_iter().filter(|m| *m != member) {
                c.cut_one_way(other, member).await;
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
            c.degrade(30, 10).await;
            tokio::time::sleep(Duration::from_millis(1000)).await;
            c.heal().await;
        }
    }
}

/// Member 4's column lag as `db`'s member measures it (`duet.cluster.column_lag_ms`).
async fn column_lag(db: &tokio_postgres::Client) -> Option<i64> {
    db.query_one(
        "SELECT column_lag_ms FROM duet.cluster WHERE member_id = 4",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// One client of the register workload: reads and writes row 0 of `reg` through the
/// members at `ports` (another after every error) until `stop`, recording each operation.
async fn register_client(
    n: i64,
    ports: Vec<u16>,
    origin: Instant,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<duet_tests::linearizable::Timed> {
    use duet_tests::linearizable::{RegisterOp, Timed};
    let now = || origin.elapsed().as_nanos() as u64;
    let mut history = Vec::new();
    let mut client: Option<tokio_postgres::Client> = None;
    let mut i: i64 = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        i += 1;
        let Some(cl) = &client else {
            let port = ports[(n + i) as usize % ports.len()];
            let conn = tokio_postgres::connect(
                &format!(
                    "host=127.0.0.1 port={port} user=postgres dbname=duetdb connect_timeout=2"
                ),
                tokio_postgres::NoTls,
            )
            .await;
            match conn {
                Ok((c, conn)) => {
                    tokio::spawn(conn);
                    client = Some(c);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            continue;
        };
        let limit = Duration::from_secs(10);
        let invoked = now();
        let ok = if i % 2 == 0 {
            let v = n * 1_000_000 + i;
            let done = tokio::time::timeout(
                limit,
                cl.execute("UPDATE reg SET v = $1 WHERE k = 0", &[&v]),
            )
            .await;
            let acked = matches!(done, Ok(Ok(1)));
            // Not acknowledged: it may still take effect (a commit overtaken by an
            // election, a lost connection after the commit).
            history.push(Timed {
                op: RegisterOp::Write(v),
                invoked,
                returned: acked.then(now),
            });
            acked
        } else {
            let done =
                tokio::time::timeout(limit, cl.query_one("SELECT v FROM reg WHERE k = 0", &[]))
                    .await;
            match done {
                Ok(Ok(r)) => {
                    history.push(Timed {
                        op: RegisterOp::Read(r.get(0)),
                        invoked,
                        returned: Some(now()),
                    });
                    true
                }
                _ => false,
            }
        };
        if !ok {
            client = None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    history
}

/// Jepsen's register: four clients read and write one row through every member while the
/// leader is killed with `kill -9` (and restarted), cut off from the others, left unable to
/// hear them (a one-way partition), and every link is slowed and loses a tenth of its
/// messages; the history of what they saw must be linearizable.
#[tokio::test]
async fn a_register_stays_linearizable_through_kills_partitions_and_delays() {
    use duet_tests::linearizable::{check_register, RegisterOp};
    let mut c = start().await;
    c.client(1)
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE reg (k int PRIMARY KEY, v bigint NOT NULL); INSERT INTO reg VALUES (0, 0)",
        )
        .await
        .unwrap();
    let ports: Vec<u16> = c.ids().into_iter().map(|id| c.sql_port(id)).collect();
    let origin = Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (1..=4)
        .map(|n| tokio::spawn(register_client(n, ports.clone(), origin, stop.clone())))
        .collect();
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let leader = leader_via(&mut c, 1).await;
        let fault = [Fault::Kill, Fault::Partition, Fault::DeafThenLossy][round % 3];
        inject(&mut c, fault, leader).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut history = Vec::new();
    for h in clients {
        history.extend(h.await.unwrap());
    }
    let count = |read: bool| {
        history
            .iter()
            .filter(|t| t.returned.is_some() && matches!(t.op, RegisterOp::Read(_)) == read)
            .count()
    };
    let (reads, writes) = (count(true), count(false));
    assert!(
        reads >= 100 && writes >= 100,
        "{reads} reads, {writes} writes"
    );
    if let Err(e) = check_register(0, &history) {
        panic!(
            "not linearizable ({reads} reads, {writes} acknowledged writes): {} operations \
             ordered, then none of {:?}",
            e.linearized, e.stuck_at
        );
    }
}

/// What one worker of the nemesis test saw.
#[derive(Default)]
struct Seen {
    transfers: u64,
    /// Bank totals read on the row replica and on the column replica (all 1000).
    row_sums: u64,
    column_sums: u64,
    /// Keys of `uniq` acknowledged, and tried without an answer (committed or not).
    acked: Vec<i32>,
    unsure: Vec<i32>,
}

/// One worker of the nemesis test: connects through the members at `ports` in turn (a new
/// member after every connection error) and, by `role`, moves money, reads the bank's total
/// on both replicas, or inserts unique keys, until `stop`.
async fn nemesis_worker(
    w: i32,
    role: &'static str,
    ports: Vec<u16>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Seen {
    let mut seen = Seen::default();
    let mut i = 0i32;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let port = ports[(w + i) as usize % ports.len()];
        let Ok((client, conn)) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=duetdb connect_timeout=5"),
            tokio_postgres::NoTls,
        )
        .await
        else {
            i += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(conn);
        let _ = client
            .batch_execute("SET duet.learner_wait_timeout = '2s'")
            .await;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            i += 1;
            let outcome = match role {
                "transfer" => {
                    let (from, to) = (1 + i % 10, 1 + (i * 7 + w) % 10);
                    if from == to {
                        continue;
                    }
                    let r = client
                        .batch_execute(&format!(
                            "BEGIN; UPDATE bank SET balance = balance - 1 WHERE id = {from}; \
                             UPDATE bank SET balance = balance + 1 WHERE id = {to}; COMMIT"
                        ))
                        .await;
                    if r.is_ok() {
                        seen.transfers += 1;
                    } else {
                        let _ = client.batch_execute("ROLLBACK").await;
                    }
                    r
                }
                "read" => {
                    let engine = if i % 2 == 0 { "column" } else { "row" };
                    let r = client
                        .query_one(
                            &format!("SELECT /*+ engine({engine}) */ sum(balance)::int FROM bank"),
                            &[],
                        )
                        .await;
                    if let Ok(row) = &r {
                        assert_eq!(
                            row.get::<_, i32>(0),
                            1000,
                            "the {engine} replica through port {port} saw money appear or vanish"
                        );
                        match engine {
                            "column" => seen.column_sums += 1,
                            _ => seen.row_sums += 1,
                        }
                    }
                    r.map(|_| ())
                }
                _ => {
                    let k = w * 1_000_000 + i;
                    let r = client
                        .execute("INSERT INTO uniq VALUES ($1, $2)", &[&k, &w])
                        .await;
                    // An error leaves it unknown (a leader that lost its office after
                    // replicating the entry answers 40001, and its successor commits it).
                    match &r {
                        Ok(_) => seen.acked.push(k),
                        Err(_) => seen.unsure.push(k),
                    }
                    r.map(|_| ())
                }
            };
            if let Err(e) = outcome {
                if e.is_closed() || e.code().is_none() {
                    break; // the member is gone: connect to another
                }
            }
        }
        i += 1;
    }
    seen
}

/// Jepsen-style workloads under a nemesis: bank transfers (the total of every snapshot read
/// on either replica, through any member, is 1000) and unique inserts (every acknowledged
/// key present once, none that was never tried), through every member, while the leader is
/// killed, the column-only member is killed, the leader is cut off, and the network turns
/// one-way, slow and lossy. `DUET_NEMESIS_SECS` sets how long (14 s by default, for CI:
/// each kind of fault once).
#[tokio::test]
async fn bank_and_set_workloads_hold_under_kills_partitions_and_a_lossy_network() {
    let secs: u64 = std::env::var("DUET_NEMESIS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(14);
    let mut c =
        ProcessCluster::start(&["row", "row", "row", "column"], "cluster::child_member").await;
    c.client(1)
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE bank (id int PRIMARY KEY, balance int NOT NULL);
             INSERT INTO bank SELECT g, 100 FROM generate_series(1, 10) g;
             CREATE TABLE uniq (k int PRIMARY KEY, w int NOT NULL)",
        )
        .await
        .unwrap();
    let ports: Vec<u16> = c.ids().into_iter().map(|id| c.sql_port(id)).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let roles = [
        "transfer", "transfer", "transfer", "read", "read", "insert", "insert",
    ];
    let workers: Vec<_> = roles
        .iter()
        .enumerate()
        .map(|(w, role)| {
            tokio::spawn(nemesis_worker(
                w as i32 + 1,
                role,
                ports.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut round = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let leader = leader_via(&mut c, 1 + round % 3).await;
        match round % 4 {
            0 => inject(&mut c, Fault::Kill, leader).await,
            1 => inject(&mut c, Fault::Kill, 4).await,
            2 => inject(&mut c, Fault::Partition, leader).await,
            _ => inject(&mut c, Fault::DeafThenLossy, leader).await,
        }
        round += 1;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut all = Seen::default();
    for w in workers {
        let s = w.await.unwrap();
        all.transfers += s.transfers;
        all.row_sums += s.row_sums;
        all.column_sums += s.column_sums;
        all.acked.extend(s.acked);
        all.unsure.extend(s.unsure);
    }
    eprintln!(
        "nemesis: {round} faults in {secs} s; {} transfers, {} row and {} column totals read, \
         {} inserts acknowledged, {} without an answer",
        all.transfers,
        all.row_sums,
        all.column_sums,
        all.acked.len(),
        all.unsure.len()
    );
    assert!(all.transfers > 0 && all.row_sums > 0 && all.column_sums > 0);
    assert!(!all.acked.is_empty());

    // After the faults: both replicas agree, on the bank and on the set.
    let leader = leader_via(&mut c, 1).await;
    let db = c.client(leader).await.unwrap();
    db.batch_execute("SET duet.learner_wait_timeout = '30s'")
        .await
        .unwrap();
    // Until member 4 serves the column scans again.
    let until = Instant::now() + Duration::from_secs(30);
    while !explain(&db, "SELECT /*+ engine(column) */ k FROM uniq")
        .await
        .contains("member=4")
    {
        assert!(
            Instant::now() < until,
            "member 4 does not serve column scans"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut keys_by_engine = Vec::new();
    for engine in ["row", "column"] {
        let total = crate::int(
            &db,
            &format!("SELECT /*+ engine({engine}) */ sum(balance) FROM bank"),
        )
        .await;
        assert_eq!(total, 1000, "{engine} replica");
        let keys: Vec<i32> = db
            .query(
                &format!("SELECT /*+ engine({engine}) */ k FROM uniq ORDER BY k"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        keys_by_engine.push(keys);
    }
    assert_eq!(
        keys_by_engine[0], keys_by_engine[1],
        "the replicas' sets differ"
    );
    let present: BTreeSet<i32> = keys_by_engine[0].iter().copied().collect();
    assert_eq!(present.len(), keys_by_engine[0].len(), "a key twice");
    let lost: Vec<&i32> = all.acked.iter().filter(|k| !present.contains(k)).collect();
    assert!(lost.is_empty(), "acknowledged inserts lost: {lost:?}");
    let tried: BTreeSet<i32> = all.acked.iter().chain(&all.unsure).copied().collect();
    let invented: Vec<&i32> = present.iter().filter(|k| !tried.contains(k)).collect();
    assert!(invented.is_empty(), "keys never inserted: {invented:?}");
}
