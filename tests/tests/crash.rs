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
    for i in 0..200 {
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
