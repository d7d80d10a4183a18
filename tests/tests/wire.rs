//! Wire protocol: simple and extended query protocols, types, portals, tags, session
//! statements, SSL refusal.

use chrono::{NaiveDate, NaiveDateTime};
use duet_tests::ClusterBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::types::Type;
use tokio_postgres::SimpleQueryMessage;

#[tokio::test]
async fn simple_protocol_runs_several_statements_with_correct_tags() {
    let cluster = ClusterBuilder::new("simple").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    let msgs = c
        .simple_query("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1,'a'),(2,NULL); SELECT v, id FROM t ORDER BY id; UPDATE t SET v='b' WHERE id=2; DELETE FROM t WHERE id=1")
        .await
        .unwrap();
    let mut rows = vec![];
    let mut counts = vec![];
    for m in msgs {
        match m {
            SimpleQueryMessage::Row(r) => {
                rows.push((r.get(0).map(str::to_string), r.get(1).map(str::to_string)))
            }
            SimpleQueryMessage::CommandComplete(n) => counts.push(n),
            _ => {}
        }
    }
    assert_eq!(
        rows,
        vec![
            (Some("a".into()), Some("1".into())),
            (None, Some("2".into()))
        ]
    );
    // CREATE TABLE, INSERT 0 2, SELECT 2, UPDATE 1, DELETE 1
    assert_eq!(counts, vec![0, 2, 2, 1, 1]);
}

#[tokio::test]
async fn extended_protocol_binds_and_returns_every_type() {
    let cluster = ClusterBuilder::new("types").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE all_types (i2 smallint, i4 integer PRIMARY KEY, i8 bigint, f4 real, f8 double precision, \
         n numeric(12,3), t text, vc varchar(10), ch char(4), b boolean, d date, ts timestamp, by bytea)",
    )
    .await
    .unwrap();
    let ins = c
        .prepare(
            "INSERT INTO all_types VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .await
        .unwrap();
    // Parameter types are inferred from the target columns.
    let expected_types = [
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::NUMERIC,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::BOOL,
        Type::DATE,
        Type::TIMESTAMP,
        Type::BYTEA,
    ];
    assert_eq!(ins.params(), &expected_types[..]);
    let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let ts = NaiveDateTime::parse_from_str("2024-02-29 13:14:15.123456", "%Y-%m-%d %H:%M:%S%.f")
        .unwrap();
    c.execute(
        "INSERT INTO all_types (i2, i4, i8, f4, f8, t, vc, ch, b, d, ts, by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[&-7i16, &1i32, &(1i64 << 40), &1.5f32, &-2.25f64, &"héllo", &"vc", &"ab", &true, &d, &ts, &vec![0u8, 1, 255]],
    )
    .await
    .unwrap();
    c.execute("INSERT INTO all_types (i4) VALUES ($1)", &[&2i32])
        .await
        .unwrap();
    let row = c
        .query_one(
            "SELECT i2, i4, i8, f4, f8, t, vc, ch, b, d, ts, by FROM all_types WHERE i4 = $1",
            &[&1i32],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i16>(0), -7);
    assert_eq!(row.get::<_, i32>(1), 1);
    assert_eq!(row.get::<_, i64>(2), 1 << 40);
    assert_eq!(row.get::<_, f32>(3), 1.5);
    assert_eq!(row.get::<_, f64>(4), -2.25);
    assert_eq!(row.get::<_, String>(5), "héllo");
    assert_eq!(row.get::<_, String>(6), "vc");
    assert_eq!(row.get::<_, String>(7), "ab  ");
    assert!(row.get::<_, bool>(8));
    assert_eq!(row.get::<_, NaiveDate>(9), d);
    assert_eq!(row.get::<_, NaiveDateTime>(10), ts);
    assert_eq!(row.get::<_, Vec<u8>>(11), vec![0u8, 1, 255]);
    // Every column NULL but the key.
    let row = c
        .query_one(
            "SELECT i2, i8, t, b, d, ts, by FROM all_types WHERE i4 = 2",
            &[],
        )
        .await
        .unwrap();
    for i in 0..7 {
        let v: Option<String> = match i {
            0 => row.get::<_, Option<i16>>(i).map(|x| x.to_string()),
            1 => row.get::<_, Option<i64>>(i).map(|x| x.to_string()),
            2 => row.get::<_, Option<String>>(i),
            3 => row.get::<_, Option<bool>>(i).map(|x| x.to_string()),
            4 => row.get::<_, Option<NaiveDate>>(i).map(|x| x.to_string()),
            5 => row
                .get::<_, Option<NaiveDateTime>>(i)
                .map(|x| x.to_string()),
            _ => row.get::<_, Option<Vec<u8>>>(i).map(|x| format!("{x:?}")),
        };
        assert_eq!(v, None, "column {i}");
    }
    // numeric survives as text.
    c.execute("UPDATE all_types SET n = 12.5 WHERE i4 = $1", &[&1i32])
        .await
        .unwrap();
    let n: String = c
        .query_one("SELECT n::text FROM all_types WHERE i4 = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, "12.500");
}

#[tokio::test]
async fn portals_return_rows_in_chunks() {
    let cluster = ClusterBuilder::new("portal").build().await.unwrap();
    let mut c = cluster.client().await.unwrap();
    c.batch_execute("CREATE TABLE p (id int PRIMARY KEY); INSERT INTO p SELECT * FROM (VALUES (1),(2),(3),(4),(5)) AS v(x)").await.unwrap();
    let tx = c.transaction().await.unwrap();
    let stmt = tx.prepare("SELECT id FROM p ORDER BY id").await.unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let mut seen = vec![];
    let mut chunks = 0;
    loop {
        let rows = tx.query_portal(&portal, 2).await.unwrap();
        if rows.is_empty() {
            break;
        }
        chunks += 1;
        assert!(rows.len() <= 2);
        seen.extend(rows.iter().map(|r| r.get::<_, i32>(0)));
    }
    tx.commit().await.unwrap();
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    assert_eq!(chunks, 3);
}

#[tokio::test]
async fn parameters_work_in_where_update_delete_and_returning() {
    let cluster = ClusterBuilder::new("params").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute("CREATE TABLE kv (k bigint PRIMARY KEY, v text NOT NULL)")
        .await
        .unwrap();
    for i in 0..10i64 {
        c.execute("INSERT INTO kv VALUES ($1, $2)", &[&i, &format!("v{i}")])
            .await
            .unwrap();
    }
    let n = c
        .execute("UPDATE kv SET v = $1 WHERE k >= $2", &[&"big", &5i64])
        .await
        .unwrap();
    assert_eq!(n, 5);
    let n = c
        .execute("DELETE FROM kv WHERE k < $1", &[&2i64])
        .await
        .unwrap();
    assert_eq!(n, 2);
    let rows = c
        .query(
            "UPDATE kv SET v = 'x' WHERE k = $1 RETURNING k, v",
            &[&3i64],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>(0), 3);
    assert_eq!(rows[0].get::<_, String>(1), "x");
    let count: i64 = c
        .query_one("SELECT count(*) FROM kv WHERE v = $1", &[&"big"])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 5);
    // An upsert with parameters in VALUES and in DO UPDATE, prepared once (as ORMs send it).
    let upsert = c
        .prepare(
            "INSERT INTO kv VALUES ($1, $2) ON CONFLICT (k) DO UPDATE \
             SET v = kv.v || $3 || excluded.v RETURNING v",
        )
        .await
        .unwrap();
    for (k, expect) in [(3i64, "x+x3"), (42, "x42"), (42, "x42+x42")] {
        let row = c
            .query_one(&upsert, &[&k, &format!("x{k}"), &"+"])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), expect);
    }
}

#[tokio::test]
async fn session_statements_drivers_send() {
    let cluster = ClusterBuilder::new("session").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "SET client_encoding = 'UTF8'; SET DateStyle = 'ISO'; SET TimeZone = 'UTC'; SET search_path = public; \
         SET standard_conforming_strings = on; SET application_name = 'test'; SET extra_float_digits = 3; \
         SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    )
    .await
    .unwrap();
    let v: String = c
        .query_one("SHOW application_name", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "test");
    let v: String = c.query_one("SELECT version()", &[]).await.unwrap().get(0);
    assert!(v.starts_with("PostgreSQL 15"), "{v}");
    let v: String = c
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "duetdb");
    let v: String = c
        .query_one("SHOW transaction_isolation", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "repeatable read");
    let e = c
        .batch_execute("SET no_such_setting = 1")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("42704"));
    // SQLAlchemy's first statement; Django's set_config; psycopg's DEALLOCATE ALL.
    let v: String = c
        .query_one("SHOW transaction isolation level", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "repeatable read");
    // SHOW names its column as PostgreSQL spells the setting.
    let row = c.query_one("SHOW time zone", &[]).await.unwrap();
    assert_eq!(row.columns()[0].name(), "TimeZone");
    let v: String = c
        .query_one("SELECT set_config('myapp.user', 'alice', false)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "alice");
    let row = c
        .query_one(
            "SELECT current_setting('myapp.user'), current_setting('missing.x', true), \
             obj_description(1, 'pg_class')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.columns()[0].name(), "current_setting");
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("alice"));
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, Option<String>>(2), None);
    let stmt = c.prepare("SELECT 1").await.unwrap();
    let tags = c.simple_query("DEALLOCATE ALL").await.unwrap();
    assert!(matches!(
        tags.last(),
        Some(SimpleQueryMessage::CommandComplete(0))
    ));
    // The statement is gone from the server: executing it now fails (26000).
    let e = c.query(&stmt, &[]).await.unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("26000"), "{e}");
    let e = c
        .batch_execute("DEALLOCATE nothing_here")
        .await
        .unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("26000"));
    // asyncpg's pool reset, and psycopg's type lookup.
    c.batch_execute(
        "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL; RESET application_name",
    )
    .await
    .unwrap();
    let v: String = c
        .query_one("SHOW application_name", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "");
    let row = c
        .query_one("SELECT to_regtype('integer'), to_regtype('hstore')", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), Some(23));
    assert_eq!(row.get::<_, Option<i64>>(1), None);
    let e = c.batch_execute("CLOSE nope").await.unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("34000"));
}

#[tokio::test]
async fn ssl_request_is_refused_with_n() {
    let cluster = ClusterBuilder::new("ssl").build().await.unwrap();
    let mut s = tokio::net::TcpStream::connect(cluster.addr())
        .await
        .unwrap();
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await
        .unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(b[0], b'N');
    // The same connection goes on in plain text: a normal client still connects too.
    let c = cluster.client().await.unwrap();
    assert_eq!(
        c.query_one("SELECT 1::int", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
}

#[tokio::test]
async fn client_declared_parameter_types_are_honoured() {
    let cluster = ClusterBuilder::new("typed").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE tp (id int PRIMARY KEY, v text); INSERT INTO tp VALUES (1, 'a'), (2, 'b')",
    )
    .await
    .unwrap();
    // The client says int8 for a comparison with an int4 column.
    let stmt = c
        .prepare_typed("SELECT v FROM tp WHERE id = $1", &[Type::INT8])
        .await
        .unwrap();
    let v: String = c.query_one(&stmt, &[&2i64]).await.unwrap().get(0);
    assert_eq!(v, "b");
    // And text for an integer column in an INSERT.
    let ins = c
        .prepare_typed("INSERT INTO tp VALUES ($1, $2)", &[Type::TEXT, Type::TEXT])
        .await
        .unwrap();
    c.execute(&ins, &[&"3", &"c"]).await.unwrap();
    let n = crate::int(&c, "SELECT count(*) FROM tp WHERE id = 3").await;
    assert_eq!(n, 1);
    let v: String = c
        .query_one("SELECT current_schema()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "public");
}

#[tokio::test]
async fn key_predicates_become_point_and_range_reads() {
    let cluster = ClusterBuilder::new("explain").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE ex (id int PRIMARY KEY, tag text, n int); CREATE INDEX ex_tag ON ex (tag)",
    )
    .await
    .unwrap();
    let plan = |sql: &'static str| {
        let c = &c;
        async move {
            let rows = c.simple_query(&format!("EXPLAIN {sql}")).await.unwrap();
            rows.iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => r.get(1).map(str::to_string),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let p = plan("SELECT * FROM ex WHERE id = 7").await;
    assert!(
        p.contains("PointLookup: table=ex, engine=row (fast path)"),
        "{p}"
    );
    // The general path's scan of the same lookup.
    c.batch_execute("SET duet.fast_path = off").await.unwrap();
    let p = plan("SELECT * FROM ex WHERE id = 7").await;
    assert!(p.contains("access=pk point x1"), "{p}");
    let p = plan("SELECT * FROM ex WHERE id IN (1, 2, 3)").await;
    assert!(p.contains("access=pk point x3"), "{p}");
    let p = plan("SELECT * FROM ex WHERE id > 10 AND id <= 20").await;
    assert!(p.contains("access=pk range"), "{p}");
    let p = plan("SELECT * FROM ex WHERE tag = 'x'").await;
    assert!(p.contains("access=index ex_tag range"), "{p}");
    let p = plan("SELECT * FROM ex WHERE n = 1").await;
    assert!(p.contains("access=full scan"), "{p}");
}

#[tokio::test]
async fn ready_for_query_reports_idle_transaction_and_failed() {
    let cluster = ClusterBuilder::new("rfq").build().await.unwrap();
    let mut s = tokio::net::TcpStream::connect(cluster.addr())
        .await
        .unwrap();
    let mut startup = vec![0, 3, 0, 0];
    for part in ["user", "postgres", "database", "duetdb"] {
        startup.extend_from_slice(part.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let mut msg = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend(startup);
    s.write_all(&msg).await.unwrap();
    async fn status(s: &mut tokio::net::TcpStream) -> u8 {
        // Read messages until ReadyForQuery; return its status byte.
        loop {
            let mut head = [0u8; 5];
            s.read_exact(&mut head).await.unwrap();
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut body = vec![0u8; len - 4];
            s.read_exact(&mut body).await.unwrap();
            if head[0] == b'Z' {
                return body[0];
            }
        }
    }
    async fn query(s: &mut tokio::net::TcpStream, sql: &str) -> u8 {
        let mut m = vec![b'Q'];
        m.extend(((sql.len() + 5) as u32).to_be_bytes());
        m.extend(sql.as_bytes());
        m.push(0);
        s.write_all(&m).await.unwrap();
        status(s).await
    }
    assert_eq!(status(&mut s).await, b'I');
    assert_eq!(query(&mut s, "BEGIN").await, b'T');
    assert_eq!(query(&mut s, "SELECT * FROM missing").await, b'E');
    assert_eq!(query(&mut s, "SELECT 1").await, b'E');
    assert_eq!(query(&mut s, "ROLLBACK").await, b'I');
    assert_eq!(query(&mut s, "SELECT * FROM missing").await, b'I');
}

/// `now()` is the statement's start time: the same within a statement, later in the next
/// one, in both protocols (the session reuses its planning state between statements).
#[tokio::test]
async fn now_is_each_statements_start_time() {
    let cluster = ClusterBuilder::new("now").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    let sql = "SELECT CAST(now() AS text) AS a, CAST(now() AS text) AS b";
    let first = crate::rows(&c, sql).await;
    assert_eq!(first[0][0], first[0][1], "now() moved within a statement");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = crate::rows(&c, sql).await;
    assert_ne!(
        first[0][0], second[0][0],
        "now() did not move between statements"
    );
    let stmt = c.prepare(sql).await.unwrap();
    let a: String = c.query_one(&stmt, &[]).await.unwrap().get(0);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let b: String = c.query_one(&stmt, &[]).await.unwrap().get(0);
    assert_ne!(
        a, b,
        "now() did not move between executions of a prepared statement"
    );
}

/// A select list may repeat an output name, as in PostgreSQL; clients see the names as
/// written, in RowDescription (both protocols) and in a COPY header.
#[tokio::test]
async fn repeated_output_names_are_allowed_and_kept() {
    let cluster = ClusterBuilder::new("dup-names").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute("CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10)")
        .await
        .unwrap();
    let sql = "SELECT k, k, v AS x, k AS x, t.k FROM t";
    let stmt = c.prepare(sql).await.unwrap();
    let names: Vec<&str> = stmt.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["k", "k", "x", "x", "k"]);
    let row = c.query_one(&stmt, &[]).await.unwrap();
    let values: Vec<i32> = (0..5).map(|i| row.get(i)).collect();
    assert_eq!(values, [1, 1, 10, 1, 1]);
    let simple = c.simple_query(sql).await.unwrap();
    let SimpleQueryMessage::Row(r) = &simple[1] else {
        panic!("{simple:?}")
    };
    let names: Vec<&str> = r.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["k", "k", "x", "x", "k"]);
    let out = c
        .copy_out("COPY (SELECT k, k FROM t) TO STDOUT WITH (FORMAT csv, HEADER)")
        .await
        .unwrap();
    use futures::StreamExt;
    let chunks: Vec<_> = out.collect().await;
    let text: String = chunks
        .into_iter()
        .map(|b| String::from_utf8(b.unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(text, "k,k\n1,1\n");
}

/// Past `max_connections` a client is refused with 53300, as by PostgreSQL, and the server
/// goes on; a place freed by a disconnect is available again.
#[tokio::test]
async fn connections_past_max_connections_get_53300() {
    let cluster = ClusterBuilder::new("max-conn")
        .max_connections(2)
        .build()
        .await
        .unwrap();
    let a = cluster.client().await.unwrap();
    let b = cluster.client().await.unwrap();
    let err = cluster.client().await.expect_err("a third client got in");
    let db = err
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.as_db_error())
        .unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(db.code().code(), "53300", "{db:?}");
    assert_eq!(db.message(), "sorry, too many clients already");
    // psql, which asks for SSL first, hears the same.
    let addr = cluster.addr();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("psql")
            .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .args(["-U", "postgres", "-d", "duetdb", "-c", "SELECT 1"])
            .env("PGSSLMODE", "prefer")
            .output()
            .expect("psql (postgresql-client) must be installed")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sorry, too many clients already"),
        "{stderr}"
    );
    assert_eq!(
        crate::int(&a, "SELECT count(*) FROM (VALUES (1)) v(x)").await,
        1
    );
    drop(b);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let c = loop {
        match cluster.client().await {
            Ok(c) => break c,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("the freed place never came back: {e}"),
        }
    };
    assert_eq!(
        crate::int(&c, "SELECT count(*) FROM (VALUES (1)) v(x)").await,
        1
    );
}

/// A CancelRequest is carried out by the listener itself: it takes no `max_connections`
/// place (the only place here is the running client's), and it gets through while the
/// session's runtime is busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_gets_through_at_max_connections() {
    let cluster = ClusterBuilder::new("cancel-at-max")
        .max_connections(1)
        .build()
        .await
        .unwrap();
    let a = cluster.client().await.unwrap();
    let token = a.cancel_token();
    // Sent again until the statement ends: one that arrives before it starts cancels
    // nothing, as in PostgreSQL.
    let canceller = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let _ = token.cancel_query(tokio_postgres::NoTls).await;
        }
    });
    let started = std::time::Instant::now();
    let e = a
        .query_one("SELECT pg_sleep(30)", &[])
        .await
        .expect_err("pg_sleep(30) was not cancelled");
    canceller.abort();
    let _ = canceller.await;
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The cancel took no place: the one client is still the only one, and works.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(crate::int(&a, "SELECT 7::bigint").await, 7);
}

/// The `server_version` a client hears at startup (psql's `SERVER_VERSION_NAME`), `SHOW
/// server_version` and `version()` say the same PostgreSQL version.
#[tokio::test]
async fn the_server_version_is_the_same_everywhere() {
    let cluster = ClusterBuilder::new("version").build().await.unwrap();
    let addr = cluster.addr();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("psql")
            .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .args(["-U", "postgres", "-d", "duetdb", "-X", "-A", "-t"])
            .args(["-c", "\\echo :SERVER_VERSION_NAME"])
            .args(["-c", "SHOW server_version", "-c", "SELECT version()"])
            .output()
            .expect("psql (postgresql-client) must be installed")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines[0], "15.0", "ParameterStatus server_version");
    assert_eq!(lines[1], "15.0", "SHOW server_version");
    assert!(
        lines[2].starts_with("PostgreSQL 15.0 "),
        "version(): {}",
        lines[2]
    );
}

/// RowDescription names as PostgreSQL gives them (each list was read from PostgreSQL 15 on
/// the same statements), over the simple protocol and through Describe of a prepared one.
#[tokio::test]
async fn column_names_follow_postgresql() {
    let cluster = ClusterBuilder::new("colnames").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute("CREATE TABLE t (a int, b int, v int[]); INSERT INTO t VALUES (1, 2, '{3}')")
        .await
        .unwrap();
    let cases: [(&str, &[&str]); 5] = [
        (
            "SELECT max(t.b), count(*), abs(-1), 1 + 1, 1, 'x', NULL FROM t",
            &[
                "max", "count", "abs", "?column?", "?column?", "?column?", "?column?",
            ],
        ),
        (
            "SELECT CAST(t.a AS text), CAST(t.a + 1 AS bigint), (1 + 2)::numeric, \
             DATE '2024-01-01', TIMESTAMP '2024-01-01 00:00:00', CAST(abs(1) AS real) FROM t",
            &["a", "int8", "numeric", "date", "timestamp", "abs"],
        ),
        (
            "SELECT CASE WHEN true THEN 1 END, CASE WHEN true THEN 1 ELSE t.b END, \
             coalesce(1, 2), nullif(1, 2), (SELECT max(x.a) FROM t AS x), upper('a') AS Big \
             FROM t",
            &["case", "b", "coalesce", "nullif", "max", "big"],
        ),
        (
            "SELECT t.a, t.a, count(*), count(*) FROM t GROUP BY t.a",
            &["a", "a", "count", "count"],
        ),
        (
            "SELECT ARRAY(SELECT x.b FROM t AS x), ARRAY(SELECT 1) AS y, t.v[1], \
             INTERVAL '1 day', TIME '10:00' FROM t",
            &["array", "y", "v", "interval", "time"],
        ),
    ];
    for (sql, expected) in cases {
        let simple: Vec<String> = c
            .simple_query(sql)
            .await
            .unwrap()
            .into_iter()
            .find_map(|m| match m {
                SimpleQueryMessage::RowDescription(cols) => {
                    Some(cols.iter().map(|c| c.name().to_string()).collect())
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(simple, expected, "{sql}");
        let prepared = c.prepare(sql).await.unwrap();
        let described: Vec<&str> = prepared.columns().iter().map(|c| c.name()).collect();
        assert_eq!(described, expected, "Describe of {sql}");
    }
}

/// A NUMERIC value in PostgreSQL's binary format, written out as text with its display
/// scale (digits in base 10000, weight, sign, dscale).
#[derive(Debug, PartialEq)]
pub(crate) struct NumericText(pub(crate) String);

impl<'a> tokio_postgres::types::FromSql<'a> for NumericText {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| i16::from_be_bytes([raw[2 * i], raw[2 * i + 1]]);
        let (n, weight, sign, dscale) = (word(0) as usize, word(1), word(2), word(3) as usize);
        let digits: Vec<i16> = (0..n).map(|i| word(4 + i)).collect();
        // The base-10000 digit at exponent `e`.
        let at = |e: i64| {
            usize::try_from(weight as i64 - e)
                .ok()
                .and_then(|i| digits.get(i))
                .copied()
                .unwrap_or(0)
        };
        let mut int = at(weight.max(0) as i64).to_string();
        for e in (0..weight.max(0) as i64).rev() {
            int.push_str(&format!("{:04}", at(e)));
        }
        if weight < 0 {
            int = "0".to_string();
        }
        let mut frac = String::new();
        for e in 1..=(dscale as i64 + 3) / 4 {
            frac.push_str(&format!("{:04}", at(-e)));
        }
        frac.truncate(dscale);
        let sign = if sign == 0x4000 { "-" } else { "" };
        Ok(NumericText(if dscale == 0 {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// Describe of a prepared statement sends the types the statement returns when it runs,
/// after DuetDB's PostgreSQL semantics changed them (`sum(bigint)` and `avg(integer)` are
/// numeric, a row number bigint, a cast to `varchar(n)` varchar): tokio-postgres reads binary
/// results by the described type, and read `sum` as a bigint of garbage when the
/// description said int8 (found 2026-12-06 with psycopg's binary cursors).
#[tokio::test]
async fn prepared_statements_describe_the_types_they_return() {
    let cluster = ClusterBuilder::new("described-types")
        .build()
        .await
        .unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE t (k int PRIMARY KEY, b numeric(10,2), s varchar(20)); \
         INSERT INTO t VALUES (1, 1.5, 'abcdef'), (2, 2.25, 'xy')",
    )
    .await
    .unwrap();
    let sql = "SELECT sum(k::bigint), avg(k), row_number() OVER (), CAST(s AS varchar(3)), b \
               FROM t WHERE k > $1 GROUP BY s, b ORDER BY b";
    let stmt = c.prepare(sql).await.unwrap();
    let types: Vec<&Type> = stmt.columns().iter().map(|c| c.type_()).collect();
    assert_eq!(
        types,
        [
            &Type::NUMERIC,
            &Type::NUMERIC,
            &Type::INT8,
            &Type::VARCHAR,
            &Type::NUMERIC
        ]
    );
    let rows = c.query(&stmt, &[&0i32]).await.unwrap();
    let got: Vec<(NumericText, NumericText, i64, String, NumericText)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    // PostgreSQL 15's answer to the same statement.
    let n = |s: &str| NumericText(s.to_string());
    assert_eq!(
        got,
        [
            (
                n("1"),
                n("1.00000000000000000000"),
                1,
                "abc".to_string(),
                n("1.50")
            ),
            (
                n("2"),
                n("2.0000000000000000"),
                2,
                "xy".to_string(),
                n("2.25")
            ),
        ]
    );
}

/// One frontend message: type byte, length, body.
fn frontend(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend(((body.len() + 4) as u32).to_be_bytes());
    m.extend(body);
    m
}

/// The types of the backend messages up to and including the next ReadyForQuery.
async fn message_types_until_ready(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut kinds = vec![];
    loop {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).await.unwrap();
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body).await.unwrap();
        kinds.push(head[0]);
        if head[0] == b'Z' {
            return kinds;
        }
    }
}

/// Describe of a prepared statement, as PostgreSQL answers it: ParameterDescription, then
/// RowDescription for a statement with result columns and NoData for one without, however
/// many parameters it has. pgjdbc checks this: from the fifth execution of a prepared INSERT
/// it uses a named statement and failed each execution after an empty RowDescription. A
/// parameter cast in the statement has the cast's type (asyncpg sends by it).
#[tokio::test]
async fn describe_statement_answers_nodata_and_parameter_types() {
    let cluster = ClusterBuilder::new("describe-nodata")
        .build()
        .await
        .unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute("CREATE TABLE nd (k int PRIMARY KEY, v text)")
        .await
        .unwrap();
    let stmt = c
        .prepare("SELECT $1::int + 1, CAST($2 AS bigint)")
        .await
        .unwrap();
    assert_eq!(stmt.params(), [Type::INT4, Type::INT8]);
    let mut s = tokio::net::TcpStream::connect(cluster.addr())
        .await
        .unwrap();
    let mut startup = vec![0, 3, 0, 0];
    for part in ["user", "postgres", "database", "duetdb"] {
        startup.extend(part.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let mut msg = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend(startup);
    s.write_all(&msg).await.unwrap();
    let kinds = message_types_until_ready(&mut s).await;
    assert_eq!(kinds.first(), Some(&b'R'));
    for (sql, expected) in [
        ("INSERT INTO nd VALUES ($1, $2)", b"1tnZ"),
        ("SELECT v FROM nd WHERE k = $1", b"1tTZ"),
        ("DELETE FROM nd", b"1tnZ"),
    ] {
        let mut parse = b"s1\0".to_vec();
        parse.extend(sql.as_bytes());
        parse.extend([0, 0, 0]);
        let mut out = frontend(b'P', &parse);
        out.extend(frontend(b'D', b"Ss1\0"));
        out.extend(frontend(b'C', b"Ss1\0"));
        out.extend(frontend(b'S', b""));
        s.write_all(&out).await.unwrap();
        let kinds = message_types_until_ready(&mut s).await;
        // ParseComplete, ParameterDescription, RowDescription/NoData, CloseComplete, ready.
        let mut want = expected[..3].to_vec();
        want.extend([b'3', b'Z']);
        assert_eq!(
            String::from_utf8_lossy(&kinds),
            String::from_utf8_lossy(&want),
            "{sql}"
        );
    }
    // A cursor opened with DECLARE is described as a portal (psycopg's named cursors).
    let mut q = b"BEGIN; DECLARE \"Cur\" CURSOR FOR SELECT k, v FROM nd".to_vec();
    q.push(0);
    s.write_all(&frontend(b'Q', &q)).await.unwrap();
    message_types_until_ready(&mut s).await;
    let mut out = frontend(b'D', b"PCur\0");
    out.extend(frontend(b'S', b""));
    s.write_all(&out).await.unwrap();
    let kinds = message_types_until_ready(&mut s).await;
    assert_eq!(String::from_utf8_lossy(&kinds), "TZ");
}
