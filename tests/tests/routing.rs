//! The router over real data: where `auto` sends each scan, that the answer never depends
//! on it, hints and settings, EXPLAIN, the routing log, statistics, and the inspector page in
//! a real browser.

use crate::rows;
use std::time::{Duration, Instant};

use duet_tests::ClusterBuilder;
use tokio_postgres::Client;

const WAIT: Duration = Duration::from_secs(30);

async fn sorted_rows(c: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut r = rows(c, sql).await;
    r.sort();
    r
}

/// `(table, engine)` of every scan in the physical plan of `sql`, and the plan text.
async fn scans(c: &Client, sql: &str) -> (Vec<(String, String)>, String) {
    let plan: String = rows(c, &format!("EXPLAIN {sql}"))
        .await
        .into_iter()
        .filter_map(|r| r.get(1).cloned().flatten())
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    for line in plan.lines() {
        let line = line.trim();
        for kind in [
            "RowScan: table=",
            "ColumnScan: table=",
            "PointLookup: table=",
        ] {
            if let Some(rest) = line.strip_prefix(kind) {
                let table = rest.split(',').next().unwrap_or_default().to_string();
                let engine = rest
                    .split(", ")
                    .find_map(|p| p.strip_prefix("engine="))
                    .unwrap_or_default()
                    .to_string();
                out.push((table, engine));
            }
        }
    }
    out.sort();
    (out, plan)
}

/// Loads `big` (200k rows, a secondary index on `k`) and `tiny` (5 rows), compacts the
/// column replica and analyzes both tables.
async fn load(cluster: &duet_tests::Cluster, c: &Client) {
    c.batch_execute(
        "CREATE TABLE big (id bigint PRIMARY KEY, grp int, v int, k int, s text);
         INSERT INTO big SELECT i, i % 10, i % 1000, i % 50000, 'name' || i
           FROM generate_series(1, 200000) AS g(i);
         CREATE INDEX big_k ON big (k);
         CREATE TABLE tiny (id int PRIMARY KEY, name text);
         INSERT INTO tiny VALUES (0, 'zero'), (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four');",
    )
    .await
    .unwrap();
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    cluster.compact_columns().unwrap();
    c.batch_execute("ANALYZE").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_sends_each_scan_to_the_cheaper_replica_and_never_changes_an_answer() {
    let cluster = ClusterBuilder::new("routing").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    load(&cluster, &c).await;

    // (query, expected engine per scanned table, sorted by table)
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "SELECT id, s FROM big WHERE id = 4242",
            &[("big", "row (fast path)")],
        ),
        (
            "SELECT count(*) FROM big WHERE id BETWEEN 1000 AND 1100",
            &[("big", "row")],
        ),
        (
            "SELECT grp, count(*), sum(v) FROM big GROUP BY grp",
            &[("big", "column")],
        ),
        (
            "SELECT count(*) FROM big WHERE v < 10",
            &[("big", "column")],
        ),
        ("SELECT id FROM big WHERE k = 77", &[("big", "row")]),
        (
            "SELECT * FROM tiny WHERE id = 3",
            &[("tiny", "row (fast path)")],
        ),
        ("SELECT count(*) FROM tiny", &[("tiny", "row")]),
        (
            "SELECT t.name, count(*) FROM big b JOIN tiny t ON b.grp = t.id GROUP BY t.name",
            &[("big", "column"), ("tiny", "row")],
        ),
        (
            "SELECT b.s, t.name FROM big b JOIN tiny t ON b.grp = t.id WHERE b.id = 13",
            &[("big", "row"), ("tiny", "row")],
        ),
    ];
    for (sql, expected) in cases {
        c.batch_execute("SET duet.engine = 'auto'").await.unwrap();
        let (got, plan) = scans(&c, sql).await;
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(t, e)| (t.to_string(), e.to_string()))
            .collect();
        assert_eq!(got, expected, "{sql}\n{plan}");
        assert!(plan.contains("route=[reason="), "{plan}");
        let auto = sorted_rows(&c, sql).await;
        assert!(!auto.is_empty(), "{sql} returned nothing");
        for forced in ["row", "column"] {
            c.batch_execute(&format!("SET duet.engine = '{forced}'"))
                .await
                .unwrap();
            assert_eq!(
                sorted_rows(&c, sql).await,
                auto,
                "{sql}: auto and {forced} differ"
            );
        }
    }
    c.batch_execute("SET duet.engine = 'auto'").await.unwrap();

    // Reasons.
    let (_, plan) = scans(&c, "SELECT * FROM big WHERE id = 4242").await;
    assert!(plan.contains("reason=pk point lookup"), "{plan}");
    let (_, plan) = scans(&c, "SELECT id FROM big WHERE k = 77").await;
    assert!(plan.contains("reason=index range"), "{plan}");
    let (_, plan) = scans(&c, "SELECT count(*) FROM big WHERE v < 10").await;
    assert!(plan.contains("reason=cost"), "{plan}");

    // The log has every scan the cases ran, with its actual rows once it ended.
    let logged = rows(
        &c,
        "SELECT engine, reason, est_rows, actual_rows, actual_us, cost_row_us, cost_column_us \
         FROM duet.routing_log WHERE query = 'SELECT count(*) FROM big WHERE v < 10' \
         AND actual_rows IS NOT NULL",
    )
    .await;
    // Once under auto and once per forced engine (EXPLAIN plans too, but runs nothing).
    assert_eq!(logged.len(), 3, "{logged:?}");
    for r in &logged {
        let est: f64 = r[2].as_deref().unwrap().parse().unwrap();
        // 200 of every 1000 values of v... v < 10 keeps 1% of 200k rows: 2000.
        assert!((1000.0..4000.0).contains(&est), "estimate {est}: {r:?}");
        assert_eq!(r[3].as_deref(), Some("2000"), "{r:?}");
        assert!(r[4].is_some() && r[5].is_some() && r[6].is_some(), "{r:?}");
    }
    let k_est: f64 = rows(
        &c,
        "SELECT est_rows FROM duet.routing_log WHERE query = 'SELECT id FROM big WHERE k = 77' \
         ORDER BY id DESC LIMIT 1",
    )
    .await[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1.0..=40.0).contains(&k_est),
        "k = 77 has 4 rows, estimated {k_est}"
    );
    // Each statement of a several-statement message is logged with its own text.
    c.batch_execute("SELECT count(*) FROM tiny WHERE id > 0; SELECT name FROM tiny WHERE id = 4")
        .await
        .unwrap();
    let own = rows(
        &c,
        "SELECT count(*) FROM duet.routing_log WHERE query IN \
         ('SELECT count(*) FROM tiny WHERE id > 0', 'SELECT name FROM tiny WHERE id = 4')",
    )
    .await;
    assert_eq!(own[0][0].as_deref(), Some("2"), "{own:?}");

    // DataFusion sees the router's estimates (it sizes and orders joins with them): the
    // index lookup's rows, and the distinct values of a column from ANALYZE.
    c.batch_execute("SET datafusion.explain.show_statistics = true")
        .await
        .unwrap();
    let (_, plan) = scans(&c, "SELECT id, grp FROM big WHERE k = 77").await;
    let scan_line = plan
        .lines()
        .find(|l| l.contains("RowScan: table=big"))
        .unwrap_or_else(|| panic!("{plan}"));
    let est_rows: usize = scan_line
        .split("Rows=Inexact(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row estimate in {scan_line}"));
    assert!((1..=40).contains(&est_rows), "{scan_line}");
    let (_, plan) = scans(&c, "SELECT grp FROM big").await;
    assert!(
        plan.contains("Distinct=Inexact(10)"),
        "grp has 10 values: {plan}"
    );
    let bad = c
        .batch_execute("SET datafusion.no_such_option = 1")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&bad).as_deref(), Some("22023"), "{bad}");
    c.batch_execute("SET datafusion.explain.show_statistics = false")
        .await
        .unwrap();
    let all = rows(&c, "SELECT table_name, engine, reason, est_rows, actual_rows, actual_us, cost_row_us, cost_column_us FROM duet.routing_log").await;
    for r in &all {
        eprintln!("routing_log: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_beat_the_session_setting_which_beats_cost() {
    let cluster = ClusterBuilder::new("routing-hints").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    load(&cluster, &c).await;
    let point = "SELECT id, s FROM big WHERE id = 4242";
    let (s, plan) = scans(&c, &format!("/*+ engine(column) */ {point}")).await;
    assert_eq!(s, vec![("big".to_string(), "column".to_string())], "{plan}");
    assert!(plan.contains("reason=hint"), "{plan}");
    let agg = "SELECT count(*) FROM big b JOIN tiny t ON b.grp = t.id";
    let (s, plan) = scans(
        &c,
        &format!(
            "SELECT /*+ engine(row big) engine(column tiny) */ {}",
            &agg[7..]
        ),
    )
    .await;
    assert_eq!(
        s,
        vec![
            ("big".to_string(), "row".to_string()),
            ("tiny".to_string(), "column".to_string())
        ],
        "{plan}"
    );
    // Session setting over cost; hint over session setting.
    c.batch_execute("SET duet.engine = 'column'").await.unwrap();
    let (s, plan) = scans(&c, point).await;
    assert_eq!(s, vec![("big".to_string(), "column".to_string())], "{plan}");
    assert!(plan.contains("reason=session setting"), "{plan}");
    let (s, _) = scans(&c, &format!("/*+ engine(row) */ {point}")).await;
    assert_eq!(s, vec![("big".to_string(), "row".to_string())]);

    // A hint that cannot be obeyed is ignored with a notice that says why.
    c.batch_execute(
        "SET duet.engine = 'auto';
         CREATE TABLE nocol (id int PRIMARY KEY, v int);
         ALTER TABLE nocol SET COLUMNAR REPLICA 0;
         INSERT INTO nocol VALUES (1, 10), (2, 20);",
    )
    .await
    .unwrap();
    let addr = cluster.addr();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("psql")
            .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                "duetdb",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
            ])
            .args([
                "-c",
                "SELECT /*+ engine(column) */ sum(v) FROM nocol",
                "-c",
                "SELECT /*+ engine(fastest) */ 1",
            ])
            .output()
            .expect("psql (postgresql-client) must be installed")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().next(), Some("30"), "{stdout}");
    assert!(
        stderr.contains("NOTICE:  hint engine(column) for table \"nocol\" is ignored: the table has no column replica"),
        "{stderr}"
    );
    assert!(stderr.contains("names no engine"), "{stderr}");

    // EXPLAIN ANALYZE adds the actual rows and time of each scan.
    let plan: String = rows(&c, "EXPLAIN ANALYZE SELECT count(*) FROM big WHERE v < 10")
        .await
        .into_iter()
        .filter_map(|r| r.get(1).cloned().flatten())
        .collect::<Vec<_>>()
        .join("\n");
    let scan_line = plan
        .lines()
        .find(|l| l.contains("ColumnScan:") || l.contains("RowScan:"))
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(scan_line.contains("route=[reason="), "{scan_line}");
    assert!(scan_line.contains("output_rows=2.00 K"), "{scan_line}");
    assert!(scan_line.contains("elapsed_compute="), "{scan_line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_are_gathered_automatically_and_survive_a_restart() {
    let mut cluster = ClusterBuilder::new("routing-stats").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v int);
         INSERT INTO t SELECT i, i % 7 FROM generate_series(1, 1000) AS g(i);",
    )
    .await
    .unwrap();
    let node = cluster.node().unwrap();
    let def = || node.store.table("t").unwrap();
    let analyzed_rows = || node.router().table_stats(&def()).map(|s| s.row_count);
    let deadline = Instant::now() + WAIT;
    while analyzed_rows() != Some(1000.0) {
        assert!(
            Instant::now() < deadline,
            "autoanalyze never ran: {:?}",
            analyzed_rows()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // More than a tenth of the rows change: analyzed again.
    c.batch_execute("INSERT INTO t SELECT i, 0 FROM generate_series(1001, 3000) AS g(i)")
        .await
        .unwrap();
    while analyzed_rows() != Some(3000.0) {
        assert!(
            Instant::now() < deadline,
            "no re-analyze: {:?}",
            analyzed_rows()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = node.router().table_stats(&def()).unwrap();
    let v = &stats.columns["v"];
    assert_eq!(v.ndv, 7.0);
    // 0 is now 2000/3000 + 142/3000 of the rows.
    let zero = v.eq(&duet_router::stats::StatValue::Num(0.0));
    assert!((zero - 2142.0 / 3000.0).abs() < 0.01, "{zero}");
    drop(node);
    cluster.restart().await.unwrap();
    let node = cluster.node().unwrap();
    let def = node.store.table("t").unwrap();
    assert_eq!(
        node.router().table_stats(&def).map(|s| s.row_count),
        Some(3000.0),
        "statistics did not survive the restart"
    );
}

/// The inspector page, loaded in headless Chromium: what it shows must be what the router
/// logged, and clicking a column heading sorts by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_page_shows_the_routing_log_in_a_real_browser() {
    let cluster = ClusterBuilder::new("routing-inspector")
        .build()
        .await
        .unwrap();
    let c = cluster.client().await.unwrap();
    load(&cluster, &c).await;
    c.batch_execute("SET duet.routing_sample_rate = 1")
        .await
        .unwrap();
    for sql in [
        "SELECT count(*) FROM big WHERE v < 10",
        "SELECT id, s FROM big WHERE id = 4242",
        "SELECT grp, count(*) FROM big GROUP BY grp",
        "SELECT * FROM tiny WHERE id = 3",
    ] {
        rows(&c, sql).await;
    }
    // The sampled runs on the other replica finish in the background.
    let node = cluster.node().unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let entries = node.router().log.entries();
        let pending = entries
            .iter()
            // Fast-path statements are logged but have no plan to sample.
            .filter(|e| !e.query.starts_with("ANALYZE") && !e.reason.contains("fast path"))
            .filter(|e| e.actual_us.is_some())
            .filter(|e| e.other_us.is_none())
            .count();
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "samples never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let api: serde_json::Value =
        serde_json::from_str(&cluster.http_get("/api/routing").await.unwrap()).unwrap();
    let decisions = api["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), node.router().log.len());
    assert!(decisions.iter().any(|d| d["regret_us"].is_number()));

    let http = cluster.http_addr().unwrap();
    let url = format!("http://{http}/inspector?click=est_rows,est_rows");
    let dom = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--virtual-time-budget=10000",
                "--dump-dom",
                &url,
            ])
            .output()
            .expect("chromium (Debian's chromium package) must be installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await
    .unwrap();
    assert!(
        dom.contains("data-loaded=\"true\""),
        "page did not load:\n{dom}"
    );
    assert!(dom.contains("<span id=\"error\"></span>"), "{dom}");
    // One row per decision the API had (more may have been logged since: at least).
    let shown = dom.matches("<tr data-id=").count();
    assert!(
        shown >= decisions.len(),
        "{shown} rows for {} decisions",
        decisions.len()
    );
    let n_decisions = dom
        .split("id=\"n-decisions\"><b>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("no decision count in\n{dom}"));
    assert_eq!(n_decisions.parse::<usize>().unwrap(), shown);
    // The first click on "est. rows" sorts it descending, the second ascending.
    assert!(
        dom.contains("<th class=\"sortable sorted-asc\" data-col=\"est_rows\">"),
        "{dom}"
    );
    let est: Vec<f64> = dom
        .split("data-col=\"est_rows\" data-value=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse().ok())
        .collect();
    assert_eq!(est.len(), shown);
    assert!(est.windows(2).all(|w| w[0] <= w[1]), "not sorted: {est:?}");
    // Both engines, the tables' freshness, the scales.
    assert!(
        dom.contains("<td class=\"engine-column\" data-col=\"engine\">column</td>"),
        "{dom}"
    );
    assert!(
        dom.contains("<td class=\"engine-row\" data-col=\"engine\">row</td>"),
        "{dom}"
    );
    assert!(dom.contains("<td>big</td><td>yes</td>"), "{dom}");
    assert!(dom.contains("id=\"row-scales\""), "{dom}");
    assert!(
        dom.contains("SELECT id, s FROM big WHERE id = 4242"),
        "{dom}"
    );
}

/// The routing-quality workload at a small scale: every query answers the same on row,
/// column and auto, and the routing log has every decision auto made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_quality_workload_runs_and_logs_every_decision() {
    use duet_tests::{routing_bench, tpch};
    let cluster = ClusterBuilder::new("routing-quality")
        .build()
        .await
        .unwrap();
    {
        let loader = cluster.client().await.unwrap();
        tpch::load(&loader, 0.01, |_, _| {}).await.unwrap();
    }
    assert!(cluster.wait_learner_caught_up(WAIT).unwrap());
    cluster.compact_columns().unwrap();
    let c = cluster.client().await.unwrap();
    routing_bench::prepare(&c).await.unwrap();
    let queries = routing_bench::workload(&c).await.unwrap();
    assert!(queries.len() >= 40, "{}", queries.len());
    let measured = routing_bench::run(&c, &queries, 0, 120, |_, _, _| {})
        .await
        .unwrap();
    let mut engines_used = std::collections::BTreeSet::new();
    for m in &measured {
        let label = &m.query.label;
        let answers: Vec<&tpch::Rows> = m
            .runs
            .iter()
            .map(|r| {
                r.answer
                    .as_ref()
                    .unwrap_or_else(|| panic!("{label}: {:?}", r.error))
            })
            .collect();
        let sorted = |r: &tpch::Rows| {
            let mut r = r.clone();
            r.sort();
            r
        };
        for (i, a) in answers.iter().enumerate().skip(1) {
            if let Err(e) = tpch::compare(&sorted(answers[0]), &sorted(a)) {
                panic!("{label}: {} and row differ: {e}", routing_bench::ENGINES[i]);
            }
        }
        assert!(m.scans_in_plan > 0, "{label}");
        let auto_runs = m.runs[2].executions;
        assert_eq!(
            m.auto_decisions_logged,
            m.scans_in_plan * auto_runs,
            "{label}: {} scans × {auto_runs} runs, {} decisions logged",
            m.scans_in_plan,
            m.auto_decisions_logged
        );
        for choice in m.auto_choice.split(' ') {
            engines_used.insert(choice.rsplit(':').next().unwrap().to_string());
        }
    }
    // The workload is built so that auto needs both replicas.
    assert_eq!(
        engines_used.into_iter().collect::<Vec<_>>(),
        vec!["column".to_string(), "row".to_string()]
    );
    eprintln!("{}", routing_bench::report(&measured, 120));
}

/// ANALYZE of a table larger than its sample reads only `duet.analyze_sample_chunks` chunks
/// of the column replica, and its estimates hold for the whole table: the row count, the
/// distinct values of a unique, a clustered and a spread column, NULLs, and bounds, with
/// rows changed after the last compaction (the delta) counted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_reads_a_bounded_sample_of_the_column_replica() {
    let cluster = ClusterBuilder::new("routing-sample").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    // 400,000 rows: 7 chunks of the column replica once compacted.
    c.batch_execute(
        "CREATE TABLE s (id bigint PRIMARY KEY, g bigint, m int, n int);
         INSERT INTO s SELECT i, i / 4, (i * 7919) % 1000,
                CASE WHEN i % 10 = 0 THEN NULL ELSE i % 3 END
           FROM generate_series(1, 400000) AS g(i);",
    )
    .await
    .unwrap();
    cluster.compact_columns().unwrap();
    c.batch_execute(
        "DELETE FROM s WHERE id <= 1000;
         INSERT INTO s SELECT i, i / 4, (i * 7919) % 1000, 1
           FROM generate_series(400001, 405000) AS g(i);",
    )
    .await
    .unwrap();
    let node = cluster.node().unwrap();
    let def = node.store.table("s").unwrap();
    assert_eq!(
        rows(&c, "SHOW duet.analyze_sample_chunks").await[0][0].as_deref(),
        Some("32")
    );
    let bad = c
        .batch_execute("SET duet.analyze_sample_chunks = 0")
        .await
        .unwrap_err();
    assert_eq!(
        bad.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE)
    );
    c.batch_execute("SET duet.analyze_sample_chunks = 2")
        .await
        .unwrap();
    // Once autoanalyze has caught up with the changes (the table is not stale), it starts no
    // other ANALYZE of it; one still running began before this one and does not overwrite
    // its statistics (the later read's stay).
    let deadline = Instant::now() + WAIT;
    while node.router().table_stats(&def).is_none() || node.router().staleness(&def).1 {
        assert!(Instant::now() < deadline, "autoanalyze never caught up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.batch_execute("ANALYZE s").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = node.router().table_stats(&def).unwrap();
    // Two chunks (of 65,536 rows, or the last one's 6,784) and a share of the 5,000 delta
    // rows.
    assert!(
        stats.rows_read > 65_536.0 && stats.rows_read < 2.0 * 65_536.0 + 2_000.0,
        "read {} rows",
        stats.rows_read
    );
    let within = |what: &str, estimate: f64, truth: f64, tolerance: f64| {
        assert!(
            (estimate / truth - 1.0).abs() <= tolerance,
            "{what}: estimate {estimate}, truth {truth}"
        );
    };
    within("rows", stats.row_count, 404_000.0, 0.02);
    let col = |name: &str| stats.columns[name].clone();
    within("distinct id", col("id").ndv, 404_000.0, 0.03);
    within("distinct g", col("g").ndv, 101_001.0, 0.05);
    assert_eq!(col("m").ndv, 1000.0);
    assert_eq!(col("n").ndv, 3.0);
    within("NULLs of n", col("n").null_frac, 0.099, 0.1);
    // Bounds over the whole table, not the sample: the delta's newest key is the maximum.
    use duet_router::stats::StatValue;
    assert_eq!(col("id").max, Some(StatValue::Num(405_000.0)));
    assert!(matches!(col("id").min, Some(StatValue::Num(v)) if v <= 1001.0));
    // What ANALYZE found is a system view, in the table's column order.
    let mut seen = rows(
        &c,
        "SELECT column_name, n_distinct, min_value, max_value, most_common_vals,
                histogram_buckets > 0, rows_read < 150000, table_rows > 390000
           FROM duet.stats WHERE table_name = 's'",
    )
    .await;
    let text = |v: &[&str]| v.iter().map(|v| Some(v.to_string())).collect::<Vec<_>>();
    assert_eq!(
        seen.iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        text(&["id", "g", "m", "n"])
    );
    // n's three values are all common ones (their order is by frequency in the sample).
    let n_common = seen[3][4].take().unwrap();
    let mut n_common: Vec<&str> = n_common
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .collect();
    n_common.sort();
    assert_eq!(n_common, ["0", "1", "2"]);
    seen[2].remove(4); // m's common values: sampling noise around uniform counts
    assert_eq!(seen[2], text(&["m", "1000", "0", "999", "t", "t", "t"]));
    assert_eq!(seen[3][5..], text(&["f", "t", "t"])[..]);
    // Answers do not depend on statistics; a query over the sampled table still matches.
    assert_eq!(
        rows(&c, "SELECT count(*), count(DISTINCT g) FROM s").await,
        vec![vec![Some("404000".into()), Some("101001".into())]]
    );
}
