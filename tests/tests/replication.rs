//! Replication: every write goes through the Raft log; the learner's column replica answers
//! exactly what the row replica answers at the same version, across lag, DDL, restarts,
//! crashes and snapshots.

use crate::{metric, rows};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use duet_tests::{Cluster, ClusterBuilder};
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

const WAIT: Duration = Duration::from_secs(30);

/// A client whose scans use `engine`, waiting long enough for a lagging learner.
async fn client_on(cluster: &Cluster, engine: &str) -> Client {
    let c = cluster.client().await.unwrap();
    c.batch_execute(&format!(
        "SET duet.engine = '{engine}'; SET duet.learner_wait_timeout = '30s'"
    ))
    .await
    .unwrap();
    c
}

/// The plan of `sql` must read every table from the column replica.
async fn assert_column_plan(c: &Client, sql: &str) {
    let plan: Vec<String> = rows(c, &format!("EXPLAIN {sql}"))
        .await
        .into_iter()
        .filter_map(|r| r.get(1).cloned().flatten())
        .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("engine=column") && !plan.contains("engine=row"),
        "{sql} did not read the column replica:\n{plan}"
    );
}

/// Whole content of `table`, sorted, from each replica; asserts they are equal.
async fn same_content(cluster: &Cluster, table: &str) -> Vec<Vec<Option<String>>> {
    let sql = format!("SELECT * FROM {table}");
    let row = client_on(cluster, "row").await;
    let col = client_on(cluster, "column").await;
    assert_column_plan(&col, &sql).await;
    let mut a = rows(&row, &sql).await;
    let mut b = rows(&col, &sql).await;
    a.sort();
    b.sort();
    assert_eq!(a, b, "row and column replicas differ for {table}");
    a
}

#[tokio::test]
async fn read_your_writes_on_the_column_replica() {
    let cluster = ClusterBuilder::new("ryw").build().await.unwrap();
    let w = cluster.client().await.unwrap();
    w.batch_execute("CREATE TABLE ryw (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    // The default wait (2 s) is what users get; it must be enough.
    let r = cluster.client().await.unwrap();
    r.batch_execute("SET duet.engine = 'column'").await.unwrap();
    let node = cluster.node().unwrap();
    let scans_before = node.columns().column_scans();
    let n = 300;
    for i in 0..n {
        w.execute("INSERT INTO ryw VALUES ($1, $2)", &[&i, &format!("v{i}")])
            .await
            .unwrap();
        let got = r
            .query("SELECT v FROM ryw WHERE id = $1", &[&i])
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "row {i} not visible on the column replica");
        assert_eq!(got[0].get::<_, String>(0), format!("v{i}"));
        if i % 50 == 0 {
            w.execute("UPDATE ryw SET v = 'changed' WHERE id = $1", &[&i])
                .await
                .unwrap();
            let v: String = r
                .query_one("SELECT v FROM ryw WHERE id = $1", &[&i])
                .await
                .unwrap()
                .get(0);
            assert_eq!(v, "changed");
        }
    }
    let scans = node.columns().column_scans() - scans_before;
    assert!(scans >= (n + n / 50) as u64, "only {scans} column scans");
    assert!(
        node.columns().fallbacks().is_empty(),
        "fell back: {:?}",
        node.columns().fallbacks()
    );
}

/// The queries both replicas must agree on.
const CHECKS: &[&str] = &[
    "SELECT count(*), sum(bal), min(bal), max(bal) FROM acct",
    "SELECT grp, count(*), sum(bal) FROM acct GROUP BY grp ORDER BY grp",
    "SELECT g.name, count(*), sum(a.bal) FROM acct a JOIN grp g ON a.grp = g.id \
     GROUP BY g.name ORDER BY g.name",
    "SELECT count(*), sum(qty) FROM moves",
];

#[tokio::test]
async fn row_and_column_answers_match_under_concurrent_writes() {
    let secs: u64 = std::env::var("DUET_CONSISTENCY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let cluster = ClusterBuilder::new("consistency").build().await.unwrap();
    let setup = cluster.client().await.unwrap();
    setup
        .batch_execute(
            "CREATE TABLE grp (id int PRIMARY KEY, name text);
             CREATE TABLE acct (id int PRIMARY KEY, grp int, bal bigint);
             CREATE TABLE moves (id bigint PRIMARY KEY, qty int);
             INSERT INTO grp VALUES (0, 'zero'), (1, 'one'), (2, 'two'), (3, 'three');
             INSERT INTO acct SELECT i, i % 4, 100 FROM generate_series(0, 199) AS s(i);",
        )
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let next_move = Arc::new(AtomicU64::new(1));
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let c = cluster.client().await.unwrap();
        let stop = stop.clone();
        let committed = committed.clone();
        let next_move = next_move.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(w);
            while !stop.load(Ordering::Relaxed) {
                let a: i32 = rng.gen_range(0..260);
                let b: i32 = rng.gen_range(0..260);
                let amount: i64 = rng.gen_range(1..20);
                let m = next_move.fetch_add(1, Ordering::Relaxed) as i64;
                let kind = rng.gen_range(0..10);
                let sql = match kind {
                    // Transfer: two updates and a log row in one transaction.
                    0..=5 => format!(
                        "BEGIN; UPDATE acct SET bal = bal - {amount} WHERE id = {a}; \
                         UPDATE acct SET bal = bal + {amount} WHERE id = {b}; \
                         INSERT INTO moves VALUES ({m}, {amount}); COMMIT"
                    ),
                    6 | 7 => format!(
                        "INSERT INTO acct VALUES ({}, {}, {amount})",
                        200 + (m % 60),
                        m % 4
                    ),
                    8 => format!("DELETE FROM acct WHERE id = {a} AND id >= 200"),
                    _ => format!("UPDATE acct SET grp = (grp + 1) % 4 WHERE id = {a}"),
                };
                match c.batch_execute(&sql).await {
                    Ok(()) => {
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        // Conflicts (40001) and duplicate inserts (23505) are expected.
                        let code = e.as_db_error().map(|d| d.code().code().to_string());
                        assert!(
                            matches!(code.as_deref(), Some("40001") | Some("23505")),
                            "{sql}: {e}"
                        );
                        let _ = c.batch_execute("ROLLBACK").await;
                    }
                }
            }
        }));
    }
    let checker = cluster.client().await.unwrap();
    checker
        .batch_execute("SET duet.learner_wait_timeout = '30s'")
        .await
        .unwrap();
    let node = cluster.node().unwrap();
    let scans_before = node.columns().column_scans();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut rounds = 0u64;
    while Instant::now() < deadline {
        // One snapshot, both replicas.
        checker
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await
            .unwrap();
        for sql in CHECKS {
            checker
                .batch_execute("SET duet.engine = 'row'")
                .await
                .unwrap();
            let a = rows(&checker, sql).await;
            checker
                .batch_execute("SET duet.engine = 'column'")
                .await
                .unwrap();
            let b = rows(&checker, sql).await;
            assert_eq!(a, b, "replicas differ at the same snapshot for {sql}");
        }
        checker.batch_execute("COMMIT").await.unwrap();
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let column_scans = node.columns().column_scans() - scans_before;
    // The join reads two tables; every other check one.
    let expected = rounds * (CHECKS.len() as u64 + 1);
    eprintln!(
        "consistency: {rounds} rounds, {} commits, {column_scans} column scans, fallbacks {:?}",
        committed.load(Ordering::Relaxed),
        node.columns().fallbacks()
    );
    assert!(rounds >= 3, "only {rounds} rounds");
    assert!(committed.load(Ordering::Relaxed) > 20);
    // Background ANALYZE may read the column replica too, so the counter is a lower bound;
    // the routing log says whether any check fell back.
    assert!(
        column_scans >= expected,
        "some checks did not read the column replica ({column_scans} < {expected})"
    );
    let fell_back = rows(
        &checker,
        "SELECT table_name, reason FROM duet.routing_log WHERE reason LIKE '%fell back%'",
    )
    .await;
    assert!(fell_back.is_empty(), "scans fell back: {fell_back:?}");
    // Money is conserved by transfers, and both replicas agree on it at the end.
    cluster.wait_learner_caught_up(WAIT).unwrap();
    same_content(&cluster, "acct").await;
    same_content(&cluster, "moves").await;
}

#[tokio::test]
async fn ddl_while_the_learner_is_behind() {
    let cluster = ClusterBuilder::new("ddl-lag").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE keep (id int PRIMARY KEY, v text);
         CREATE TABLE gone (id int PRIMARY KEY);
         CREATE TABLE trunc (id int PRIMARY KEY, v int);
         CREATE TABLE nokey (a int, b text);
         INSERT INTO keep SELECT i, 'k' || i FROM generate_series(1, 100) AS s(i);
         INSERT INTO gone VALUES (1), (2);
         INSERT INTO trunc VALUES (1, 1), (2, 2);
         INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (2, NULL);",
    )
    .await
    .unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    cluster.pause_learner().unwrap();
    c.batch_execute(
        "ALTER TABLE keep ADD COLUMN extra int DEFAULT 7;
         INSERT INTO keep VALUES (101, 'new', 1), (102, 'new', NULL);
         UPDATE keep SET v = 'upd' WHERE id <= 10;
         DELETE FROM keep WHERE id BETWEEN 20 AND 29;
         CREATE INDEX keep_v ON keep (v);
         DROP TABLE gone;
         TRUNCATE trunc;
         INSERT INTO trunc VALUES (3, 3);",
    )
    .await
    .unwrap();
    // nokey has a duplicate (1, 'x') and a NULL: this fails, and changes nothing.
    let err = c
        .batch_execute("ALTER TABLE nokey ADD PRIMARY KEY (a, b)")
        .await
        .unwrap_err();
    assert!(
        matches!(
            crate::sqlstate(&err).as_deref(),
            Some("23505") | Some("23502")
        ),
        "{err}"
    );
    c.batch_execute(
        "DELETE FROM nokey WHERE b IS NULL;
         DELETE FROM nokey WHERE a = 1;
         INSERT INTO nokey VALUES (1, 'x');
         ALTER TABLE nokey ADD PRIMARY KEY (a, b);
         CREATE TABLE later (id int PRIMARY KEY);
         INSERT INTO later VALUES (5);",
    )
    .await
    .unwrap();
    let (row, col) = cluster.applied_indexes().unwrap();
    assert!(col < row, "the learner should be behind ({col} vs {row})");
    // While paused, a forced column scan waits, then falls back and says why.
    let r = cluster.client().await.unwrap();
    r.batch_execute("SET duet.engine = 'column'; SET duet.learner_wait_timeout = '100ms'")
        .await
        .unwrap();
    let plan = rows(&r, "EXPLAIN SELECT count(*) FROM keep").await;
    let text = format!("{plan:?}");
    assert!(
        text.contains("engine=row") && text.contains("did not reach version"),
        "{text}"
    );
    cluster.resume_learner().unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    let keep = same_content(&cluster, "keep").await;
    assert_eq!(keep.len(), 92);
    assert_eq!(same_content(&cluster, "trunc").await.len(), 1);
    assert_eq!(same_content(&cluster, "nokey").await.len(), 1);
    assert_eq!(same_content(&cluster, "later").await.len(), 1);
    let err = r.simple_query("SELECT * FROM gone").await.unwrap_err();
    assert_eq!(crate::sqlstate(&err).as_deref(), Some("42P01"));
}

#[tokio::test]
async fn learner_restarts_alone_and_catches_up_from_its_log_or_a_snapshot() {
    let cluster = ClusterBuilder::new("learner-restart")
        .build()
        .await
        .unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE r (id int PRIMARY KEY, v text);
         INSERT INTO r SELECT i, 'a' || i FROM generate_series(1, 500) AS s(i);",
    )
    .await
    .unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    let node = cluster.node().unwrap();

    // Down while writes go on; back, it replays its own log and receives the rest.
    cluster.kill_learner().unwrap();
    let r = client_on(&cluster, "column").await;
    r.batch_execute("SET duet.learner_wait_timeout = '100ms'")
        .await
        .unwrap();
    let plan = format!("{:?}", rows(&r, "EXPLAIN SELECT count(*) FROM r").await);
    assert!(plan.contains("column replica is not running"), "{plan}");
    c.batch_execute("UPDATE r SET v = 'b' WHERE id % 3 = 0; DELETE FROM r WHERE id > 450")
        .await
        .unwrap();
    cluster.start_learner().unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    assert_eq!(node.learner_status().snapshots_restored, 0);
    assert_eq!(same_content(&cluster, "r").await.len(), 450);

    // Down again; the leader compacts its log past it: it comes back through a snapshot.
    cluster.kill_learner().unwrap();
    c.batch_execute(
        "INSERT INTO r SELECT i, 'c' || i FROM generate_series(1000, 1200) AS s(i);
         CREATE TABLE r2 (k text PRIMARY KEY);
         INSERT INTO r2 VALUES ('x'), ('y');",
    )
    .await
    .unwrap();
    let first = cluster.compact_log(true).unwrap();
    assert!(first > cluster.applied_indexes().unwrap().1);
    cluster.start_learner().unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    assert_eq!(node.learner_status().snapshots_restored, 1);
    assert_eq!(same_content(&cluster, "r").await.len(), 651);
    assert_eq!(same_content(&cluster, "r2").await.len(), 2);
    // And it follows the log normally afterwards.
    c.batch_execute("INSERT INTO r2 VALUES ('z'); DELETE FROM r WHERE id < 100")
        .await
        .unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    assert_eq!(same_content(&cluster, "r2").await.len(), 3);
    assert_eq!(same_content(&cluster, "r").await.len(), 552);
}

/// Writes from several clients until the process is killed with SIGKILL at a random
/// moment; after each restart both replicas hold exactly the acknowledged rows (by content),
/// and in-flight ones at most.
#[tokio::test]
async fn both_replicas_hold_exactly_the_acknowledged_writes_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut acknowledged: BTreeSet<i64> = BTreeSet::new();
    let mut attempted: BTreeSet<i64> = BTreeSet::new();
    let mut next_id = 0i64;
    for round in 0..3 {
        let (mut child, port) = crate::crash::spawn_child_server(&data).await;
        let conn_str = format!("host=127.0.0.1 port={port} user=postgres dbname=duetdb");
        if round == 0 {
            let (c, conn) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            c.batch_execute("CREATE TABLE ack (id bigint PRIMARY KEY, v text, n int)")
                .await
                .unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..4i64 {
            let (c, conn) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let stop = stop.clone();
            let base = next_id + w * 1_000_000;
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut tried = Vec::new();
                let mut id = base;
                while !stop.load(Ordering::Relaxed) {
                    tried.push(id);
                    // Two rows per transaction, plus an update of an older row.
                    let sql = format!(
                        "BEGIN; INSERT INTO ack VALUES ({id}, 'r{id}', 0); \
                         INSERT INTO ack VALUES ({}, 'r{}', 0); \
                         UPDATE ack SET n = n + 1 WHERE id = {base}; COMMIT",
                        id + 1,
                        id + 1
                    );
                    match c.batch_execute(&sql).await {
                        Ok(()) => acked.push(id),
                        Err(_) => break, // the server is gone
                    }
                    id += 2;
                }
                (acked, tried)
            }));
        }
        let kill_after = Duration::from_millis(rng.gen_range(200..900));
        tokio::time::sleep(kill_after).await;
        child.kill().unwrap(); // SIGKILL, mid-load
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let (acked, tried) = t.await.unwrap();
            for id in acked {
                acknowledged.insert(id);
                acknowledged.insert(id + 1);
            }
            for id in tried {
                attempted.insert(id);
                attempted.insert(id + 1);
            }
        }
        next_id += 10_000_000;

        let cluster = ClusterBuilder::new("after-kill9")
            .data_dir(&data)
            .build()
            .await
            .unwrap();
        assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
        let content = same_content(&cluster, "ack").await;
        let ids: BTreeSet<i64> = content
            .iter()
            .map(|r| r[0].as_ref().unwrap().parse().unwrap())
            .collect();
        let lost: Vec<_> = acknowledged.difference(&ids).take(5).collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged rows lost: {lost:?}"
        );
        let invented: Vec<_> = ids.difference(&attempted).take(5).collect();
        assert!(
            invented.is_empty(),
            "round {round}: rows never written: {invented:?}"
        );
        for r in &content {
            let id: i64 = r[0].as_ref().unwrap().parse().unwrap();
            assert_eq!(r[1].as_deref(), Some(format!("r{id}").as_str()));
        }
        eprintln!(
            "kill -9 round {round}: killed after {kill_after:?}, {} rows acknowledged, {} present",
            acknowledged.len(),
            ids.len()
        );
        // In-flight transactions that made it are now part of the history.
        acknowledged = ids.clone();
        attempted = ids;
        drop(cluster);
    }
}

/// A `duet.replicas` row of `table` as (state, progress, applied, commit, lag entries, lag ms,
/// delta rows, stable rows).
async fn replica_row(c: &Client, table: &str) -> Vec<Option<String>> {
    let r = rows(
        c,
        &format!(
            "SELECT column_replica, state, progress, applied_index, commit_index, lag_entries, \
             lag_ms, delta_rows, stable_rows FROM duet.replicas WHERE table_name = '{table}'"
        ),
    )
    .await;
    assert_eq!(r.len(), 1, "{table} in duet.replicas: {r:?}");
    r.into_iter().next().unwrap()
}

fn num(v: &Option<String>) -> f64 {
    v.as_deref().unwrap().parse().unwrap()
}

/// The value of a Prometheus sample `name{labels}` in `text`.
#[tokio::test]
async fn replica_lag_and_progress_are_visible_in_sql_and_metrics() {
    let cluster = ClusterBuilder::new("replicas-view").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE v (id int PRIMARY KEY, x int);
         INSERT INTO v SELECT i, i * 2 FROM generate_series(1, 100) AS s(i);",
    )
    .await
    .unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    let r = replica_row(&c, "v").await;
    assert_eq!(r[0].as_deref(), Some("t"));
    assert_eq!(r[1].as_deref(), Some("available"));
    assert_eq!(num(&r[2]), 1.0);
    assert_eq!(num(&r[5]), 0.0, "no lag once caught up: {r:?}");
    assert_eq!(
        num(&r[7]) + num(&r[8]),
        100.0,
        "rows in delta + stable: {r:?}"
    );

    cluster.pause_learner().unwrap();
    for i in 1..=20 {
        c.execute("UPDATE v SET x = x + 1 WHERE id = $1", &[&i])
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = replica_row(&c, "v").await;
    assert!(num(&r[5]) >= 20.0, "lag in entries: {r:?}");
    assert!(num(&r[6]) >= 50.0, "lag in ms: {r:?}");
    assert!(num(&r[4]) - num(&r[3]) >= 20.0, "commit - applied: {r:?}");
    let m = cluster.http_get("/metrics").await.unwrap();
    assert!(metric(&m, "duet_learner_lag{unit=\"entries\"}") >= 20.0);
    assert!(metric(&m, "duet_raft_index{kind=\"commit\",peer=\"voter\"}") >= num(&r[4]));
    assert_eq!(
        metric(&m, "duet_column_replica{figure=\"available\",table=\"v\"}"),
        1.0
    );
    cluster.resume_learner().unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    let m = cluster.http_get("/metrics").await.unwrap();
    assert_eq!(metric(&m, "duet_learner_lag{unit=\"entries\"}"), 0.0);
    assert!(metric(&m, "duet_learner_visibility_seconds_count") >= 20.0);
    assert!(metric(&m, "duet_column_events_total{event=\"rows_applied\"}") >= 120.0);
    let json = cluster.http_get("/api/replicas").await.unwrap();
    assert!(json.contains("\"table_name\": \"v\""), "{json}");
    assert_eq!(cluster.http_get("/health").await.unwrap(), "ok\n");
}

#[tokio::test]
async fn column_replica_is_removed_and_rebuilt_online_while_writes_go_on() {
    let cluster = ClusterBuilder::new("set-columnar").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO b SELECT i, 'v' || i FROM generate_series(1, 140000) AS s(i);",
    )
    .await
    .unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    c.batch_execute("ALTER TABLE b SET COLUMNAR REPLICA 0")
        .await
        .unwrap();
    let r = replica_row(&c, "b").await;
    assert_eq!(r[0].as_deref(), Some("f"));
    let col = cluster.client().await.unwrap();
    col.batch_execute("SET duet.engine = 'column'")
        .await
        .unwrap();
    let plan = format!("{:?}", rows(&col, "EXPLAIN SELECT count(*) FROM b").await);
    assert!(plan.contains("has no column replica"), "{plan}");
    // Setting it again is a no-op with a notice, not an error.
    c.batch_execute("ALTER TABLE b SET COLUMNAR REPLICA 0")
        .await
        .unwrap();
    let bad = c
        .batch_execute("ALTER TABLE b SET COLUMNAR REPLICA 7")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&bad).as_deref(), Some("22023"));

    // Rebuild while a writer keeps inserting and updating, with a column cache far smaller
    // than the table: the build writes each chunk (65,536 rows) to its file as it goes, and
    // the reads below come back from the files.
    let node = cluster.node().unwrap();
    node.set_column_cache_size(64 << 10);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let w = cluster.client().await.unwrap();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 200_000;
            while !stop.load(Ordering::Relaxed) {
                w.execute("INSERT INTO b VALUES ($1, 'w')", &[&i])
                    .await
                    .unwrap();
                w.execute("UPDATE b SET v = 'u' WHERE id = $1", &[&(i - 199_000)])
                    .await
                    .unwrap();
                i += 1;
            }
            i - 200_000
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.batch_execute("ALTER TABLE b SET COLUMNAR REPLICA 1")
        .await
        .unwrap();
    let mut seen_states = BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let r = replica_row(&c, "b").await;
        let state = r[1].clone().unwrap();
        seen_states.insert(state.clone());
        if state == "available" {
            break;
        }
        assert!(Instant::now() < deadline, "never available: {r:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 0);
    eprintln!("rebuild: states seen {seen_states:?}, {written} rows written meanwhile");
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    let content = same_content(&cluster, "b").await;
    assert_eq!(content.len(), 140_000 + written as usize);
    let cache = node.column_store().unwrap().cache().figures();
    assert!(
        cache.bytes <= 64 << 10 && cache.file_reads >= 3,
        "{cache:?}"
    );
}

#[tokio::test]
async fn column_checkpoints_survive_add_column_and_restarts() {
    let mut cluster = ClusterBuilder::new("col-checkpoint").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         CREATE TABLE other (id int PRIMARY KEY);
         INSERT INTO a SELECT i, 'v' || i FROM generate_series(1, 1000) AS s(i);",
    )
    .await
    .unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    let first = cluster.compact_columns().unwrap();
    assert!(first > 0);
    // The table's stable layer is unchanged by ADD COLUMN; a later checkpoint (triggered by
    // another table) must not pair the old file with the new definition wrongly.
    c.batch_execute(
        "ALTER TABLE a ADD COLUMN extra int DEFAULT 5;
         INSERT INTO other VALUES (1);",
    )
    .await
    .unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    assert!(cluster.compact_columns().unwrap() > first);
    cluster.restart().await.unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    let rows = same_content(&cluster, "a").await;
    assert_eq!(rows.len(), 1000);
    assert!(
        rows.iter().all(|r| r[2].as_deref() == Some("5")),
        "{:?}",
        &rows[..3]
    );
    // And after an abrupt stop too.
    cluster.kill();
    cluster.start().await.unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    assert_eq!(same_content(&cluster, "a").await.len(), 1000);
    assert_eq!(same_content(&cluster, "other").await.len(), 1);
}

/// A learner whose delta cannot be folded (an open REPEATABLE READ transaction holds an old
/// version of the column replica) stops applying at `max_delta_versions` rather than hold
/// ever more in memory: it falls behind and says so while the voter keeps committing; once
/// the reader is gone it catches up and both replicas agree.
#[tokio::test]
async fn a_learner_whose_delta_is_full_falls_behind_without_holding_up_commits() {
    let cluster = ClusterBuilder::new("delta-full").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute("CREATE TABLE f (id int PRIMARY KEY, v text); INSERT INTO f VALUES (0, 's')")
        .await
        .unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    let store = cluster.node().unwrap().column_store().unwrap();
    store.set_max_delta_versions(1_000);
    let mut reader = cluster.client().await.unwrap();
    let tx = reader
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .unwrap();
    let count = "SELECT /*+ engine(column) */ count(*) FROM f";
    assert_eq!(tx.query_one(count, &[]).await.unwrap().get::<_, i64>(0), 1);
    for b in 0..10 {
        c.batch_execute(&format!(
            "INSERT INTO f SELECT i, 'x' FROM generate_series({}, {}) AS s(i)",
            b * 500 + 1,
            b * 500 + 500
        ))
        .await
        .unwrap();
    }
    // The learner applies what fits (at most one 500-row entry past the limit), then waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = replica_row(&c, "f").await;
    assert!(num(&r[5]) > 0.0, "the learner is not behind: {r:?}");
    assert!(num(&r[7]) < 1_500.0, "the delta grew past its limit: {r:?}");
    let m = cluster.http_get("/metrics").await.unwrap();
    assert!(metric(&m, "duet_column_events_total{event=\"delta_full_waits\"}") >= 1.0);
    assert!(metric(&m, "duet_learner_lag{unit=\"entries\"}") > 0.0);
    // The reader still reads its snapshot.
    assert_eq!(tx.query_one(count, &[]).await.unwrap().get::<_, i64>(0), 1);
    // A learner waiting for room stops (and starts again, with the default limit).
    let node = cluster.node().unwrap();
    let stopping = tokio::task::spawn_blocking({
        let node = node.clone();
        move || node.stop_learner()
    });
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("a learner waiting for room in its delta did not stop")
        .unwrap();
    node.start_learner().unwrap();
    tx.commit().await.unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    assert_eq!(same_content(&cluster, "f").await.len(), 5_001);
}
