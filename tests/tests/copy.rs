//! COPY … FROM STDIN: text and CSV formats through a real client (extended protocol via
//! tokio-postgres, simple protocol via psql), into both replicas.

use bytes::Bytes;
use duet_tests::{Cluster, ClusterBuilder};
use futures::SinkExt;
use tokio_postgres::Client;

async fn copy_in(c: &Client, sql: &str, data: &[u8]) -> Result<u64, tokio_postgres::Error> {
    let sink = c.copy_in(sql).await?;
    futures::pin_mut!(sink);
    // Send in small pieces so records straddle CopyData messages.
    for piece in data.chunks(7) {
        sink.send(Bytes::copy_from_slice(piece)).await?;
    }
    sink.finish().await
}

async fn texts(c: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    c.simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The same rows from both replicas.
async fn both(cluster: &Cluster, sql: &str) -> Vec<Vec<Option<String>>> {
    let row = cluster.client().await.unwrap();
    let col = cluster.client().await.unwrap();
    col.batch_execute("SET duet.engine = 'column'; SET duet.learner_wait_timeout = '30s'")
        .await
        .unwrap();
    let a = texts(&row, sql).await;
    let b = texts(&col, sql).await;
    assert_eq!(a, b, "replicas differ for {sql}");
    a
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[tokio::test]
async fn text_and_csv_formats_load_every_type_with_nulls_and_escapes() {
    let cluster = ClusterBuilder::new("copy-formats").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric(10,2), ok boolean, \
         d date, note varchar(20) DEFAULT 'dflt')",
    )
    .await
    .unwrap();
    let n = copy_in(
        &c,
        "COPY t (id, name, amount, ok, d) FROM STDIN",
        b"1\tann\t12.5\tt\t2024-01-02\n2\t\\N\t-3\tf\t\\N\n3\ttab\\there\\nnewline \\\\ back\t0.125\ttrue\t1999-12-31\n",
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    let n = copy_in(
        &c,
        "COPY t FROM STDIN WITH (FORMAT csv, HEADER true)",
        b"id,name,amount,ok,d,note\n4,\"comma, and \"\"quote\"\"\",1,false,2020-02-29,\"\"\n5,,2,t,,x\r\n6,\"multi\nline\",3,f,2001-01-01,\n",
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    let rows = both(&cluster, "SELECT * FROM t ORDER BY id").await;
    assert_eq!(
        rows,
        vec![
            vec![
                s("1"),
                s("ann"),
                s("12.50"),
                s("t"),
                s("2024-01-02"),
                s("dflt")
            ],
            vec![s("2"), None, s("-3.00"), s("f"), None, s("dflt")],
            vec![
                s("3"),
                s("tab\there\nnewline \\ back"),
                s("0.13"),
                s("t"),
                s("1999-12-31"),
                s("dflt")
            ],
            vec![
                s("4"),
                s("comma, and \"quote\""),
                s("1.00"),
                s("f"),
                s("2020-02-29"),
                s("")
            ],
            vec![s("5"), None, s("2.00"), s("t"), None, s("x")],
            vec![
                s("6"),
                s("multi\nline"),
                s("3.00"),
                s("f"),
                s("2001-01-01"),
                None
            ],
        ]
    );
}

#[tokio::test]
async fn bad_copy_data_gets_sqlstates_and_changes_nothing() {
    let cluster = ClusterBuilder::new("copy-errors").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute("CREATE TABLE e (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    for (data, state) in [
        (&b"1\ta\n2\n"[..], "22P04"),
        (&b"1\ta\nx\tb\n"[..], "22P02"),
        (&b"1\ta\n1\tb\n"[..], "23505"),
    ] {
        let err = copy_in(&c, "COPY e FROM STDIN", data).await.unwrap_err();
        assert_eq!(crate::sqlstate(&err).as_deref(), Some(state), "{err}");
    }
    let err = c
        .batch_execute("COPY e FROM STDIN (FORMAT binary)")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&err).as_deref(), Some("0A000"));
    let err = c.batch_execute("COPY nope FROM STDIN").await.unwrap_err();
    assert_eq!(crate::sqlstate(&err).as_deref(), Some("42P01"));
    // Nothing was loaded, and the connection still works.
    assert_eq!(
        both(&cluster, "SELECT count(*) FROM e").await,
        vec![vec![s("0")]]
    );
    // Inside a transaction a COPY is rolled back with it.
    c.batch_execute("BEGIN").await.unwrap();
    copy_in(&c, "COPY e FROM STDIN", b"7\tx\n").await.unwrap();
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        both(&cluster, "SELECT count(*) FROM e").await,
        vec![vec![s("0")]]
    );
}

#[tokio::test]
async fn a_large_copy_is_committed_in_batches_and_reaches_the_column_replica() {
    let cluster = ClusterBuilder::new("copy-large").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute("CREATE TABLE big (id bigint PRIMARY KEY, g int, v text)")
        .await
        .unwrap();
    let n = 250_000u64;
    let mut data = Vec::with_capacity(n as usize * 20);
    for i in 0..n {
        data.extend_from_slice(format!("{i}\t{}\tv{i}\n", i % 10).as_bytes());
    }
    let sink = c.copy_in("COPY big FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    for piece in data.chunks(64 * 1024) {
        sink.send(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    assert_eq!(sink.finish().await.unwrap(), n);
    let rows = both(
        &cluster,
        "SELECT g, count(*), sum(id) FROM big GROUP BY g ORDER BY g",
    )
    .await;
    assert_eq!(rows.len(), 10);
    let total: u64 = rows
        .iter()
        .map(|r| r[1].as_ref().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, n);
}

#[tokio::test]
async fn psql_copies_through_the_simple_protocol() {
    let cluster = ClusterBuilder::new("copy-psql").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute("CREATE TABLE p (k int PRIMARY KEY, v text)")
        .await
        .unwrap();
    let addr = cluster.addr();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new("psql")
            .args([
                "-h",
                &addr.ip().to_string(),
                "-p",
                &addr.port().to_string(),
                "-U",
                "duet",
                "-d",
                "duetdb",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "COPY p FROM STDIN WITH CSV HEADER",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("psql (postgresql-client) must be installed");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"k,v\n1,one\n2,\"t,wo\"\n")
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "COPY 2");
    assert_eq!(
        both(&cluster, "SELECT * FROM p ORDER BY k").await,
        vec![vec![s("1"), s("one")], vec![s("2"), s("t,wo")]]
    );
    // The connection is usable after COPY (a second statement in a new message).
    assert_eq!(
        texts(&c, "SELECT count(*) FROM p").await,
        vec![vec![s("2")]]
    );
}
