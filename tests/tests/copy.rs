//! COPY … FROM STDIN and TO STDOUT: text and CSV formats through a real client (extended protocol via
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

/// The same rows from both replicas.
async fn both(cluster: &Cluster, sql: &str) -> Vec<Vec<Option<String>>> {
    let row = cluster.client().await.unwrap();
    let col = cluster.client().await.unwrap();
    col.batch_execute("SET duet.engine = 'column'; SET duet.learner_wait_timeout = '30s'")
        .await
        .unwrap();
    let a = crate::rows(&row, sql).await;
    let b = crate::rows(&col, sql).await;
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
    // A backslash before a newline escapes it; an escaped backslash before one does not.
    let n = copy_in(
        &c,
        "COPY t (id, name) FROM STDIN",
        b"7\tsplit\\\nline\n8\tends in \\\\\n9\t\\\\\\\nx\n",
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        both(&cluster, "SELECT id, name FROM t WHERE id > 6 ORDER BY id").await,
        vec![
            vec![s("7"), s("split\nline")],
            vec![s("8"), s("ends in \\")],
            vec![s("9"), s("\\\nx")],
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
    let err = c.batch_execute("COPY nope FROM STDIN").await.unwrap_err();
    assert_eq!(crate::sqlstate(&err).as_deref(), Some("42P01"));
    // Nothing was loaded, and the connection still works.
    assert_eq!(
        both(&cluster, "SELECT count(*) FROM e").await,
        vec![vec![s("0")]]
    );
    // The checks of INSERT, on tables with and without a primary key or an index (each
    // takes its own insert path), with PostgreSQL's states and details.
    c.batch_execute(
        "CREATE TABLE f (a int NOT NULL, b varchar(3), n numeric(4,2), k text, \
         PRIMARY KEY (k, a)); \
         CREATE TABLE g (a int NOT NULL, b varchar(3), n numeric(4,2)); \
         CREATE TABLE h (a int PRIMARY KEY, b varchar(3), n numeric(4,2)); \
         CREATE UNIQUE INDEX h_b ON h (b)",
    )
    .await
    .unwrap();
    for table in ["f", "g", "h"] {
        let key = if table == "f" { "\tx" } else { "" };
        let cols = if table == "f" {
            "(a, b, n, k)"
        } else {
            "(a, b, n)"
        };
        for (data, state) in [
            (format!("1\tab\t1{key}\n\\N\tab\t1{key}\n"), "23502"),
            (format!("1\tabcd\t1{key}\n"), "22001"),
            (format!("1\tab\t100{key}\n"), "22003"),
        ] {
            let sql = format!("COPY {table} {cols} FROM STDIN");
            let err = copy_in(&c, &sql, data.as_bytes()).await.unwrap_err();
            assert_eq!(
                crate::sqlstate(&err).as_deref(),
                Some(state),
                "{table}: {err}"
            );
        }
        // Trailing blanks past varchar(3) are cut, as PostgreSQL cuts them.
        let data = format!("1\tab  \t1.5{key}\n2\tabc   \t\\N{key}\n");
        let sql = format!("COPY {table} {cols} FROM STDIN");
        assert_eq!(copy_in(&c, &sql, data.as_bytes()).await.unwrap(), 2);
        assert_eq!(
            both(&cluster, &format!("SELECT a, b, n FROM {table} ORDER BY a")).await,
            vec![
                vec![s("1"), s("ab "), s("1.50")],
                vec![s("2"), s("abc"), None]
            ],
            "{table}"
        );
    }
    for (sql, data, detail) in [
        (
            "COPY f (a, b, n, k) FROM STDIN",
            "3\tq\t0\tx\n1\tq\t0\tx\n",
            "Key (k, a)=(x, 1) already exists.",
        ),
        (
            "COPY h (a, b, n) FROM STDIN",
            "3\tq\t0\n2\tr\t0\n",
            "Key (a)=(2) already exists.",
        ),
    ] {
        let err = copy_in(&c, sql, data.as_bytes()).await.unwrap_err();
        assert_eq!(crate::sqlstate(&err).as_deref(), Some("23505"), "{err}");
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.detail(), Some(detail), "{sql}");
    }
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
        let mut child = psql(addr, &["-c", "COPY p FROM STDIN WITH CSV HEADER"])
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
        crate::rows(&c, "SELECT count(*) FROM p").await,
        vec![vec![s("2")]]
    );
    // COPY TO STDOUT through the simple protocol, and psql's \copy.
    let out = tokio::task::spawn_blocking(move || {
        psql(
            addr,
            &[
                "-c",
                "COPY p TO STDOUT WITH (FORMAT csv, HEADER)",
                "-c",
                "\\copy (SELECT v FROM p WHERE k = 2) TO STDOUT",
            ],
        )
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "k,v\n1,one\n2,\"t,wo\"\nt,wo\n"
    );
}

/// psql (Debian's postgresql-client) against the node at `addr`, stopping at the first error.
fn psql(addr: std::net::SocketAddr, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("psql");
    cmd.args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-U", "postgres", "-d", "duetdb", "-v", "ON_ERROR_STOP=1"])
        .args(args);
    cmd
}

/// Everything `COPY … TO STDOUT` sends, as text.
async fn copy_out(c: &Client, sql: &str) -> String {
    use futures::TryStreamExt;
    let stream = c.copy_out(sql).await.unwrap();
    let parts: Vec<Bytes> = stream.try_collect().await.unwrap();
    String::from_utf8(parts.concat()).unwrap()
}

const COPY_TO_SETUP: &str =
    "CREATE TABLE out_t (id int PRIMARY KEY, t text, c char(4), n numeric(8,2), \
     f double precision, b boolean, d date, ts timestamp, raw bytea);
     INSERT INTO out_t VALUES
       (1, 'tab\there', 'ab', 1.50, 0.1, true, '2024-02-29', '2024-02-29 13:14:15.5', '\\x00ff'),
       (2, 'line\nbreak, \"quoted\"', NULL, -0.01, -1e10, false, NULL, NULL, '\\x'),
       (3, 'back\\slash|pipe', 'abcd', NULL, NULL, NULL, '1970-01-01', '1999-12-31 23:59:59', NULL),
       (4, '', 'x', 0, 1.5, true, '2000-01-01', '2000-01-01 00:00:00', NULL)";

const COPY_TO_STATEMENTS: [&str; 5] = [
    "COPY out_t TO STDOUT",
    "COPY out_t (id, t, c) TO STDOUT WITH (FORMAT csv, HEADER)",
    "COPY out_t TO STDOUT WITH (FORMAT csv, DELIMITER '|', NULL 'NULL')",
    "COPY (SELECT id, t FROM out_t WHERE id > 1 ORDER BY id DESC) TO STDOUT WITH (DELIMITER ',')",
    "COPY (SELECT id FROM out_t WHERE id > 100) TO STDOUT WITH (FORMAT csv, HEADER)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_stdout_writes_what_postgres_writes_and_reads_back() {
    let cluster = ClusterBuilder::new("copy-out").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(COPY_TO_SETUP).await.unwrap();
    let mut ours = Vec::new();
    for engine in ["row", "column"] {
        c.batch_execute(&format!(
            "SET duet.engine = '{engine}'; SET duet.learner_wait_timeout = '30s'"
        ))
        .await
        .unwrap();
        let outs: Vec<String> =
            futures::future::join_all(COPY_TO_STATEMENTS.iter().map(|s| copy_out(&c, s))).await;
        ours.push(outs);
    }
    assert_eq!(ours[0], ours[1], "row and column replicas differ");
    for (bad, state) in [
        ("COPY out_t TO '/tmp/out_t.txt'", "0A000"),
        ("COPY out_t (nope) TO STDOUT", "42703"),
    ] {
        let e = c.simple_query(bad).await.unwrap_err();
        assert_eq!(crate::sqlstate(&e).as_deref(), Some(state), "{bad}: {e:?}");
    }
    let ours = &ours[0];
    // Table order is key order: the whole-table COPY is sorted by id.
    assert!(
        ours[0].starts_with(
            "1\ttab\\there\tab  \t1.50\t0.1\tt\t2024-02-29\t2024-02-29 13:14:15.5\t\\\\x00ff\n"
        ),
        "{}",
        ours[0]
    );
    assert_eq!(ours[4], "id\n");

    // The text and CSV outputs load back into an identical table.
    c.batch_execute(
        "CREATE TABLE back_t2 (id int PRIMARY KEY, t text, c char(4), n numeric(8,2), \
         f double precision, b boolean, d date, ts timestamp, raw bytea)",
    )
    .await
    .unwrap();
    copy_in(&c, "COPY back_t2 FROM STDIN", ours[0].as_bytes())
        .await
        .unwrap();
    assert_eq!(
        crate::rows(&c, "SELECT * FROM back_t2 ORDER BY id").await,
        crate::rows(&c, "SELECT * FROM out_t ORDER BY id").await
    );
    c.batch_execute("DELETE FROM back_t2").await.unwrap();
    copy_in(
        &c,
        "COPY back_t2 FROM STDIN WITH (FORMAT csv, DELIMITER '|', NULL 'NULL')",
        ours[2].as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(
        crate::rows(&c, "SELECT * FROM back_t2 ORDER BY id").await,
        crate::rows(&c, "SELECT * FROM out_t ORDER BY id").await
    );

    // Byte for byte what PostgreSQL 15 writes for the same data.
    if let Ok(admin) = std::env::var("DUET_TEST_PG") {
        let (pg, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let schema = format!("duet_copy_out_{}", std::process::id());
        pg.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema}; \
             SET extra_float_digits = 1; {COPY_TO_SETUP}"
        ))
        .await
        .unwrap();
        for (stmt, mine) in COPY_TO_STATEMENTS.iter().zip(ours) {
            let theirs = copy_out(&pg, stmt).await;
            assert_eq!(&theirs, mine, "{stmt}");
        }
        pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    } else {
        eprintln!("copy-out: DUET_TEST_PG not set, output not compared with PostgreSQL");
    }
}

/// The binary format, both ways, with tokio-postgres's binary copy (asyncpg's
/// `copy_records_to_table` and psycopg's binary copies send the same): every type with
/// NULLs, a numeric written as PostgreSQL's text of it, and a bad header refused with 22P04.
#[tokio::test]
async fn binary_format_loads_and_unloads_every_type() {
    use chrono::{NaiveDate, NaiveDateTime};
    use futures::TryStreamExt;
    use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
    use tokio_postgres::types::{ToSql, Type};

    let cluster = ClusterBuilder::new("copy-binary").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE b (id int PRIMARY KEY, small smallint, big bigint, name varchar(10), \
         ok boolean, f double precision, r real, d date, ts timestamp, raw bytea, price numeric(10,2))",
    )
    .await
    .unwrap();
    let sink = c
        .copy_in("COPY b (id, small, big, name, ok, f, r, d, ts, raw) FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let types = [
        Type::INT4,
        Type::INT2,
        Type::INT8,
        Type::VARCHAR,
        Type::BOOL,
        Type::FLOAT8,
        Type::FLOAT4,
        Type::DATE,
        Type::TIMESTAMP,
        Type::BYTEA,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures::pin_mut!(writer);
    let ts =
        NaiveDateTime::parse_from_str("2024-02-29 13:14:15.250", "%Y-%m-%d %H:%M:%S%.f").unwrap();
    let day = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
    for i in 0..3i32 {
        let name = format!("n{i}");
        let raw = vec![0u8, 0xff, i as u8];
        let row: [&(dyn ToSql + Sync); 10] = [
            &i,
            &(i as i16 - 1),
            &(i64::from(i) << 40),
            &name,
            &(i % 2 == 0),
            &(f64::from(i) / 4.0),
            &(i as f32 * 1.5),
            &day,
            &ts,
            &raw,
        ];
        writer.as_mut().write(&row).await.unwrap();
    }
    let nulls: [&(dyn ToSql + Sync); 10] = [
        &3i32,
        &None::<i16>,
        &None::<i64>,
        &None::<String>,
        &None::<bool>,
        &None::<f64>,
        &None::<f32>,
        &None::<NaiveDate>,
        &None::<NaiveDateTime>,
        &None::<Vec<u8>>,
    ];
    writer.as_mut().write(&nulls).await.unwrap();
    assert_eq!(writer.finish().await.unwrap(), 4);
    c.batch_execute("UPDATE b SET price = id * 1.25 - 1")
        .await
        .unwrap();
    let rows = crate::rows(&c, "SELECT * FROM b ORDER BY id").await;
    assert_eq!(
        rows[2].iter().map(|v| v.as_deref()).collect::<Vec<_>>(),
        [
            Some("2"),
            Some("1"),
            Some("2199023255552"),
            Some("n2"),
            Some("t"),
            Some("0.5"),
            Some("3"),
            Some("1999-12-31"),
            Some("2024-02-29 13:14:15.25"),
            Some("\\x00ff02"),
            Some("1.50"),
        ]
    );
    assert!(rows[3][1..10].iter().all(Option::is_none), "{:?}", rows[3]);

    // And out again: the same values through the binary format, numeric included.
    let stream = c
        .copy_out(
            "COPY (SELECT id, name, ts, raw, price FROM b ORDER BY id) TO STDOUT (FORMAT binary)",
        )
        .await
        .unwrap();
    let out = BinaryCopyOutStream::new(
        stream,
        &[
            Type::INT4,
            Type::VARCHAR,
            Type::TIMESTAMP,
            Type::BYTEA,
            Type::NUMERIC,
        ],
    );
    let rows: Vec<_> = out.try_collect().await.unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[2].get::<i32>(0), 2);
    assert_eq!(rows[2].get::<Option<String>>(1).as_deref(), Some("n2"));
    assert_eq!(rows[2].get::<NaiveDateTime>(2), ts);
    assert_eq!(rows[2].get::<Vec<u8>>(3), [0, 0xff, 2]);
    assert_eq!(rows[2].get::<crate::wire::NumericText>(4).0, "1.50");
    assert_eq!(rows[0].get::<crate::wire::NumericText>(4).0, "-1.00");
    assert_eq!(rows[3].get::<Option<String>>(1), None);

    let e = copy_in(
        &c,
        "COPY b (id) FROM STDIN (FORMAT binary)",
        b"not a binary copy file",
    )
    .await
    .unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("22P04"));
    assert_eq!(crate::int(&c, "SELECT count(*) FROM b").await, 4);
}
