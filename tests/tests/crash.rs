//! Durability: what was acknowledged survives an abrupt stop and a real `kill -9`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use duet_tests::ClusterBuilder;

#[tokio::test]
async fn committed_rows_survive_an_in_process_kill_and_a_clean_restart() {
    let mut cluster = ClusterBuilder::new("kill").build().await.unwrap();
    {
        let c = cluster.client().await.unwrap();
        c.batch_execute("CREATE TABLE d (id int PRIMARY KEY, v text); CREATE INDEX d_v ON d (v)")
            .await
            .unwrap();
        for i in 0..50 {
            c.execute(
                "INSERT INTO d VALUES ($1, $2)",
                &[&i, &format!("v{}", i % 7)],
            )
            .await
            .unwrap();
        }
        c.batch_execute("BEGIN; INSERT INTO d VALUES (1000, 'uncommitted')")
            .await
            .unwrap();
    }
    cluster.kill();
    cluster.start().await.unwrap();
    let c = cluster.client().await.unwrap();
    let n = crate::int(&c, "SELECT count(*) FROM d").await;
    assert_eq!(n, 50);
    let n = crate::int(&c, "SELECT count(*) FROM d WHERE v = 'v3'").await;
    assert_eq!(n, 7);
    cluster.restart().await.unwrap();
    let c = cluster.client().await.unwrap();
    let n = crate::int(&c, "SELECT count(*) FROM d WHERE id = 1000").await;
    assert_eq!(n, 0);
    let n = crate::int(&c, "SELECT count(*) FROM d").await;
    assert_eq!(n, 50);
}

/// Not a test on its own: the child process that `kill_9_loses_no_acknowledged_commit`
/// starts (this same test binary) and then kills with SIGKILL.
#[tokio::test]
#[ignore = "run only as the child of kill_9_loses_no_acknowledged_commit"]
async fn child_server() {
    let Ok(dir) = std::env::var("DUET_CHILD_DIR") else {
        return;
    };
    let cluster = ClusterBuilder::new("child")
        .data_dir(&dir)
        .build()
        .await
        .unwrap();
    std::fs::write(
        PathBuf::from(&dir).join("port"),
        cluster.addr().port().to_string(),
    )
    .unwrap();
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// Starts [`child_server`] on `data` in a child process; returns it and its SQL port.
pub async fn spawn_child_server(data: &std::path::Path) -> (std::process::Child, u16) {
    std::fs::create_dir_all(data).unwrap();
    let port_file = data.join("port");
    let _ = std::fs::remove_file(&port_file);
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash::child_server", "--ignored", "--nocapture"])
        .env("DUET_CHILD_DIR", data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !port_file.exists() {
        assert!(Instant::now() < deadline, "child server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let port: u16 = std::fs::read_to_string(&port_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (child, port)
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, port) = spawn_child_server(&data).await;
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=duetdb"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    c.batch_execute("CREATE TABLE k (id int PRIMARY KEY, v text NOT NULL)")
        .await
        .unwrap();
    let mut acknowledged = 0;
    for i in 0..100 {
        c.execute("INSERT INTO k VALUES ($1, 'x')", &[&i])
            .await
            .unwrap();
        acknowledged += 1;
    }
    // Large commits among the small ones (the log replayed at restart holds entries
    // applied beside the Raft thread, of 1 MiB and more, and one written as parts).
    for (from, to) in [(1_000, 21_000), (100_000, 150_000)] {
        use futures::SinkExt;
        let sink = c.copy_in("COPY k FROM STDIN").await.unwrap();
        let mut sink = Box::pin(sink);
        let pad = "p".repeat(100);
        let text: String = (from..to).map(|i| format!("{i}\t{pad}\n")).collect();
        sink.send(bytes::Bytes::from(text)).await.unwrap();
        acknowledged += sink.as_mut().finish().await.unwrap() as i64;
    }
    for i in 100..200 {
        c.execute("INSERT INTO k VALUES ($1, 'x')", &[&i])
            .await
            .unwrap();
        acknowledged += 1;
    }
    c.batch_execute("BEGIN; INSERT INTO k VALUES (-1, 'never committed')")
        .await
        .unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(c);

    let cluster = ClusterBuilder::new("after-kill")
        .data_dir(&data)
        .build()
        .await
        .unwrap();
    let c = cluster.client().await.unwrap();
    let n = crate::int(&c, "SELECT count(*) FROM k").await;
    assert_eq!(n, acknowledged);
    let n = crate::int(&c, "SELECT count(*) FROM k WHERE id < 0").await;
    assert_eq!(n, 0);
}

/// The display scale each value of an unconstrained `numeric` column was written with
/// (`1.50` keeps two decimals) is stored: both replicas print it, from the delta and from
/// stable chunks, after a checkpoint, a clean restart and an abrupt stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_display_scales_survive_restarts_on_both_replicas() {
    let mut cluster = ClusterBuilder::new("dscale").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE m (id int PRIMARY KEY, x numeric, y numeric(6,2)); \
         INSERT INTO m VALUES (1, 1.50, 1), (2, 100, 2), (3, '0.0010', 3), (4, NULL, 4), \
         (5, 2.5e1, 5), (6, 1.000000000000, 6)",
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO m VALUES (7, $1::text::numeric, 7)",
        &[&"-3.140"],
    )
    .await
    .unwrap();
    // An update of another column keeps the scale; one of the column takes the new one's.
    c.batch_execute("UPDATE m SET y = 9 WHERE id = 1; UPDATE m SET x = x * 2 WHERE id = 5")
        .await
        .unwrap();
    let want = [
        "1.50",
        "100",
        "0.0010",
        "NULL",
        "50",
        "1.000000000000",
        "-3.140",
    ];
    async fn texts(c: &tokio_postgres::Client, engine: &str) -> Vec<String> {
        c.batch_execute(&format!(
            "SET duet.engine = '{engine}'; SET duet.learner_wait_timeout = '30s'"
        ))
        .await
        .unwrap();
        c.simple_query("SELECT x FROM m ORDER BY id")
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some(r.get(0).unwrap_or("NULL").to_string())
                }
                _ => None,
            })
            .collect()
    }
    for engine in ["row", "column"] {
        assert_eq!(texts(&c, engine).await, want, "{engine}, delta");
    }
    assert!(cluster
        .wait_learner_caught_up(Duration::from_secs(30))
        .unwrap());
    cluster.compact_columns().unwrap();
    assert_eq!(texts(&c, "column").await, want, "stable chunks");
    drop(c);
    cluster.restart().await.unwrap();
    let c = cluster.client().await.unwrap();
    for engine in ["row", "column"] {
        assert_eq!(texts(&c, engine).await, want, "{engine}, after a restart");
    }
    drop(c);
    cluster.kill();
    cluster.start().await.unwrap();
    let c = cluster.client().await.unwrap();
    for engine in ["row", "column"] {
        assert_eq!(texts(&c, engine).await, want, "{engine}, after a kill");
    }
}
