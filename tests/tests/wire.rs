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
            SimpleQueryMessage::Row(r) => rows.push((r.get(0).map(str::to_string), r.get(1).map(str::to_string))),
            SimpleQueryMessage::CommandComplete(n) => counts.push(n),
            _ => {}
        }
    }
    assert_eq!(rows, vec![(Some("a".into()), Some("1".into())), (None, Some("2".into()))]);
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
        .prepare("INSERT INTO all_types VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
        .await
        .unwrap();
    // Parameter types are inferred from the target columns.
    let expected_types = [
        Type::INT2, Type::INT4, Type::INT8, Type::FLOAT4, Type::FLOAT8, Type::NUMERIC, Type::TEXT, Type::TEXT,
        Type::TEXT, Type::BOOL, Type::DATE, Type::TIMESTAMP, Type::BYTEA,
    ];
    assert_eq!(ins.params(), &expected_types[..]);
    let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let ts = NaiveDateTime::parse_from_str("2024-02-29 13:14:15.123456", "%Y-%m-%d %H:%M:%S%.f").unwrap();
    c.execute(
        "INSERT INTO all_types (i2, i4, i8, f4, f8, t, vc, ch, b, d, ts, by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[&-7i16, &1i32, &(1i64 << 40), &1.5f32, &-2.25f64, &"héllo", &"vc", &"ab", &true, &d, &ts, &vec![0u8, 1, 255]],
    )
    .await
    .unwrap();
    c.execute("INSERT INTO all_types (i4) VALUES ($1)", &[&2i32]).await.unwrap();
    let row = c
        .query_one("SELECT i2, i4, i8, f4, f8, t, vc, ch, b, d, ts, by FROM all_types WHERE i4 = $1", &[&1i32])
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
    let row = c.query_one("SELECT i2, i8, t, b, d, ts, by FROM all_types WHERE i4 = 2", &[]).await.unwrap();
    for i in 0..7 {
        let v: Option<String> = match i {
            0 => row.get::<_, Option<i16>>(i).map(|x| x.to_string()),
            1 => row.get::<_, Option<i64>>(i).map(|x| x.to_string()),
            2 => row.get::<_, Option<String>>(i),
            3 => row.get::<_, Option<bool>>(i).map(|x| x.to_string()),
            4 => row.get::<_, Option<NaiveDate>>(i).map(|x| x.to_string()),
            5 => row.get::<_, Option<NaiveDateTime>>(i).map(|x| x.to_string()),
            _ => row.get::<_, Option<Vec<u8>>>(i).map(|x| format!("{x:?}")),
        };
        assert_eq!(v, None, "column {i}");
    }
    // numeric survives as text.
    c.execute("UPDATE all_types SET n = 12.5 WHERE i4 = $1", &[&1i32]).await.unwrap();
    let n: String = c.query_one("SELECT n::text FROM all_types WHERE i4 = 1", &[]).await.unwrap().get(0);
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
    c.batch_execute("CREATE TABLE kv (k bigint PRIMARY KEY, v text NOT NULL)").await.unwrap();
    for i in 0..10i64 {
        c.execute("INSERT INTO kv VALUES ($1, $2)", &[&i, &format!("v{i}")]).await.unwrap();
    }
    let n = c.execute("UPDATE kv SET v = $1 WHERE k >= $2", &[&"big", &5i64]).await.unwrap();
    assert_eq!(n, 5);
    let n = c.execute("DELETE FROM kv WHERE k < $1", &[&2i64]).await.unwrap();
    assert_eq!(n, 2);
    let rows = c.query("UPDATE kv SET v = 'x' WHERE k = $1 RETURNING k, v", &[&3i64]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>(0), 3);
    assert_eq!(rows[0].get::<_, String>(1), "x");
    let count: i64 = c.query_one("SELECT count(*) FROM kv WHERE v = $1", &[&"big"]).await.unwrap().get(0);
    assert_eq!(count, 5);
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
    let v: String = c.query_one("SHOW application_name", &[]).await.unwrap().get(0);
    assert_eq!(v, "test");
    let v: String = c.query_one("SELECT version()", &[]).await.unwrap().get(0);
    assert!(v.starts_with("PostgreSQL 15"), "{v}");
    let v: String = c.query_one("SELECT current_database()", &[]).await.unwrap().get(0);
    assert_eq!(v, "duetdb");
    let v: String = c.query_one("SHOW transaction_isolation", &[]).await.unwrap().get(0);
    assert_eq!(v, "repeatable read");
    let e = c.batch_execute("SET no_such_setting = 1").await.unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("42704"));
}

#[tokio::test]
async fn ssl_request_is_refused_with_n() {
    let cluster = ClusterBuilder::new("ssl").build().await.unwrap();
    let mut s = tokio::net::TcpStream::connect(cluster.addr()).await.unwrap();
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await.unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(b[0], b'N');
    // The same connection goes on in plain text: a normal client still connects too.
    let c = cluster.client().await.unwrap();
    assert_eq!(c.query_one("SELECT 1::int", &[]).await.unwrap().get::<_, i32>(0), 1);
}
