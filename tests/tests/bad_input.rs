//! Bad input ends a statement or a connection, never the server.

use std::time::Duration;

use duet_tests::ClusterBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn still_serving(cluster: &duet_tests::Cluster) {
    let c = cluster.client().await.unwrap();
    let v: i32 = c.query_one("SELECT 41 + 1", &[]).await.unwrap().get(0);
    assert_eq!(v, 42);
}

async fn drain(s: &mut tokio::net::TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

fn startup_message() -> Vec<u8> {
    let mut body = vec![0, 3, 0, 0];
    for s in ["user", "postgres", "database", "duetdb"] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend(body);
    m
}

#[tokio::test]
async fn garbage_bytes_end_only_that_connection() {
    let cluster = ClusterBuilder::new("garbage").build().await.unwrap();
    let mut s = tokio::net::TcpStream::connect(cluster.addr())
        .await
        .unwrap();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = s.write_all(&garbage).await;
    drain(&mut s).await;
    still_serving(&cluster).await;
}

#[tokio::test]
async fn malformed_messages_after_startup_end_only_that_connection() {
    let cluster = ClusterBuilder::new("malformed").build().await.unwrap();
    for bad in [
        // A query message claiming a 2 GB body.
        vec![b'Q', 0x7f, 0xff, 0xff, 0xff, b'S', b'E'],
        // An unknown message type.
        vec![b'@', 0, 0, 0, 4],
        // A Bind for a statement that does not exist, then Sync.
        vec![
            b'B', 0, 0, 0, 14, 0, b'n', b'o', b'p', b'e', 0, 0, 0, 0, 0, b'S', 0, 0, 0, 4,
        ],
    ] {
        let mut s = tokio::net::TcpStream::connect(cluster.addr())
            .await
            .unwrap();
        s.write_all(&startup_message()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            n > 0 && buf[0] == b'R',
            "startup answered with {:?}",
            &buf[..n.min(8)]
        );
        let _ = s.write_all(&bad).await;
        drain(&mut s).await;
    }
    still_serving(&cluster).await;
}

#[tokio::test]
async fn huge_and_deeply_nested_queries_get_errors() {
    let cluster = ClusterBuilder::new("huge").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    let nested = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    let e = c.simple_query(&nested).await.unwrap_err();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("54001"), "{e:?}");
    let huge = format!("SELECT '{}'", "x".repeat(17 << 20));
    let e = c.simple_query(&huge).await.unwrap_err();
    assert!(crate::sqlstate(&e).is_some(), "{e:?}");
    let long_in = format!(
        "SELECT 1 WHERE 1 IN ({})",
        (0..20000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let _ = c.simple_query(&long_in).await;
    still_serving(&cluster).await;
}

/// A correlated scalar subquery DataFusion cannot decorrelate (its correlation is not an
/// equality) is answered as PostgreSQL answers it (0, 1, 2), on every engine: it runs once
/// per outer row. It was once read as NULL, then refused with 0A000.
#[tokio::test]
async fn a_subquery_correlated_by_inequality_is_answered_as_postgresql_does() {
    let cluster = ClusterBuilder::new("subquery").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE t1 (a int, b int); \
         INSERT INTO t1 VALUES (104, 100), (107, 105), (111, 112)",
    )
    .await
    .unwrap();
    for engine in ["row", "column", "auto"] {
        c.batch_execute(&format!("SET duet.engine = '{engine}'"))
            .await
            .unwrap();
        let rows = c
            .query(
                "SELECT a, (SELECT count(*) FROM t1 AS x WHERE x.b < t1.b) AS c FROM t1 ORDER BY a",
                &[],
            )
            .await
            .unwrap();
        let got: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(got, [(104, 0), (107, 1), (111, 2)], "{engine}");
    }
    still_serving(&cluster).await;
}

/// Two shapes where DataFusion's plan would answer differently from PostgreSQL are refused
/// with 0A000 naming the construct: an IN subquery whose NULL result is looked at (its join
/// says false), and an aggregate of only outer columns inside a subquery (PostgreSQL
/// computes it in the outer query). Both were found by the differential tester.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subquery_shapes_that_would_answer_differently_are_refused() {
    let cluster = ClusterBuilder::new("subquery-nulls").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE a (x int); CREATE TABLE b (y int); \
         INSERT INTO a VALUES (1), (2), (NULL); INSERT INTO b VALUES (1), (NULL)",
    )
    .await
    .unwrap();
    let refused = [
        (
            "SELECT x FROM a WHERE (x IN (SELECT y FROM b)) IS NULL",
            "IN (subquery)",
        ),
        (
            "SELECT x FROM a WHERE NOT (x IN (SELECT y FROM b) OR false)",
            "IN (subquery)",
        ),
        (
            "SELECT x FROM a WHERE x NOT IN (SELECT y FROM b) OR x = 2",
            "IN (subquery)",
        ),
        (
            "SELECT 'c' FROM a WHERE 5 NOT IN (SELECT y FROM b)",
            "IN (subquery)",
        ),
        (
            "SELECT 'j' FROM a AS p JOIN a AS q ON 5 NOT IN (SELECT y FROM b)",
            "IN (subquery)",
        ),
        // A left side that reads a column but simplifies to NULL is a constant too.
        (
            "SELECT x FROM a WHERE (CAST(NULL AS int) < x) NOT IN (SELECT y > 0 FROM b)",
            "IN (subquery)",
        ),
        (
            "SELECT (SELECT count(a.x) FROM b LIMIT 1) FROM a",
            "outer-query columns",
        ),
        ("SELECT count(*) FROM a HAVING (SELECT false)", "HAVING"),
        (
            "SELECT x FROM a INTERSECT ALL SELECT y FROM b",
            "INTERSECT ALL",
        ),
        ("SELECT x FROM a EXCEPT ALL SELECT y FROM b", "EXCEPT ALL"),
        // Correlated: the null-aware anti join decides on NULLs over the whole subquery
        // (PostgreSQL: one row, for the NULL `p.x`, whose subquery is empty).
        (
            "SELECT 1 FROM a AS p WHERE p.x NOT IN (SELECT y FROM b WHERE p.x > 0)",
            "NOT IN (correlated subquery)",
        ),
    ];
    for engine in ["row", "column", "auto"] {
        c.batch_execute(&format!("SET duet.engine = '{engine}'"))
            .await
            .unwrap();
        for (sql, construct) in refused {
            let e = c.simple_query(sql).await.expect_err(sql);
            assert_eq!(
                crate::sqlstate(&e).as_deref(),
                Some("0A000"),
                "{sql}: {e:?}"
            );
            let message = e.as_db_error().unwrap().message().to_string();
            assert!(message.contains(construct), "{sql}: {message}");
        }
        // The safe positions still answer, as PostgreSQL does.
        let rows = crate::rows(
            &c,
            "SELECT x FROM a WHERE x IN (SELECT y FROM b) OR x = 2 ORDER BY 1",
        )
        .await;
        assert_eq!(rows, [[Some("1".to_string())], [Some("2".to_string())]]);
        let rows = crate::rows(&c, "SELECT x FROM a WHERE x NOT IN (SELECT y FROM b)").await;
        assert!(
            rows.is_empty(),
            "NOT IN with a NULL in the subquery: {rows:?}"
        );
    }
    still_serving(&cluster).await;
}

/// A statement that panics inside the engine (here DataFusion's `date_trunc` over a
/// grouped `max` of a timestamp, found by the differential tester) fails with XX000 and the
/// same connection goes on; it used to end the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_statement_fails_and_the_connection_goes_on() {
    let cluster = ClusterBuilder::new("panic").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE p (c0 timestamp, c3 text); \
         INSERT INTO p VALUES ('2024-02-29 00:00:00', 'a'), (NULL, ''), ('1970-01-01 12:00:00', 'a')",
    )
    .await
    .unwrap();
    let r = c
        .simple_query(
            "SELECT coalesce(date_trunc('day', max(c0)), CAST(DATE '2000-01-01' AS timestamp)) < min(c0) \
             FROM p GROUP BY c0, c3",
        )
        .await;
    if let Err(e) = &r {
        assert_eq!(crate::sqlstate(e).as_deref(), Some("XX000"), "{e}");
    }
    assert_eq!(crate::int(&c, "SELECT count(*) FROM p").await, 3);
}

/// jsonb's order (objects after arrays after booleans…) is not its text's, and json has no
/// comparison operators: `<` and ORDER BY of jsonb are refused with 0A000 and `=` of json
/// with 42883, never answered in text order. Equality of jsonb is answered (canonical text).
#[tokio::test]
async fn jsonb_ordering_and_json_comparisons_are_refused() {
    let cluster = ClusterBuilder::new("jsonb-order").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE j (k int PRIMARY KEY, b jsonb, r json); \
         INSERT INTO j VALUES (1, '{\"a\":1}', '[1]'), (2, '[2]', '{}')",
    )
    .await
    .unwrap();
    for (sql, state) in [
        ("SELECT k FROM j ORDER BY b", "0A000"),
        ("SELECT k FROM j WHERE b < '[3]'", "0A000"),
        ("SELECT k FROM j WHERE r = '{}'", "42883"),
        ("SELECT k FROM j WHERE b = '{\"a\": 1'", "22P02"),
    ] {
        let e = c.simple_query(sql).await.expect_err(sql);
        assert_eq!(crate::sqlstate(&e).as_deref(), Some(state), "{sql}: {e:?}");
    }
    let rows = c
        .query("SELECT k FROM j WHERE b = '{ \"a\" : 1 }'", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), 1);
    still_serving(&cluster).await;
}

/// PostgreSQL finds `1 mon` and `30 days` equal; grouping by the interval's fields would
/// answer differently, so what groups or takes min/max of intervals is refused, and what
/// compares them (tested against PostgreSQL in psql/column_types.sql) is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouping_intervals_keys_on_arrays_and_inexact_numerics_are_refused() {
    let cluster = ClusterBuilder::new("interval-groups")
        .build()
        .await
        .unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE iv (id int PRIMARY KEY, i interval, a int[], n numeric, c char(3), v varchar(5)); \
         INSERT INTO iv VALUES (1, '1 mon', '{1}'), (2, '30 days', '{2}'), (3, '1 day', NULL)",
    )
    .await
    .unwrap();
    for (sql, state) in [
        ("SELECT i, count(*) FROM iv GROUP BY i", "0A000"),
        ("SELECT DISTINCT i FROM iv", "0A000"),
        ("SELECT i FROM iv UNION SELECT interval '1 day'", "0A000"),
        ("SELECT count(DISTINCT i) FROM iv", "0A000"),
        ("SELECT max(i) OVER () FROM iv", "0A000"),
        ("CREATE INDEX ON iv (i)", "0A000"),
        ("CREATE UNIQUE INDEX ON iv (a)", "0A000"),
        ("CREATE TABLE k1 (i interval PRIMARY KEY)", "0A000"),
        ("CREATE TABLE k2 (a int[] UNIQUE)", "0A000"),
        ("CREATE TABLE k3 (a int[][])", "0A000"),
        ("CREATE TABLE k4 (a jsonb[])", "0A000"),
        // An unconstrained numeric keeps 10 decimals (each value printed with its own
        // scale); more is refused, never rounded.
        ("INSERT INTO iv (id, n) VALUES (4, 0.12345678901)", "0A000"),
        ("INSERT INTO iv (id, n) VALUES (4, '1e-11')", "0A000"),
        ("UPDATE iv SET n = 1.0 / 3 WHERE id > 0", "0A000"),
        // A union with a char(n) column first is a bpchar in PostgreSQL (blank-insensitive).
        ("SELECT c FROM iv UNION SELECT v FROM iv", "0A000"),
        // An exponent past any numeric's range is an error, not an allocation of it.
        ("SELECT '1e-9223372036854775808'::numeric", "22P02"),
    ] {
        let e = c.simple_query(sql).await.expect_err(sql);
        assert_eq!(crate::sqlstate(&e).as_deref(), Some(state), "{sql}: {e:?}");
    }
    let rows = c
        .query("SELECT id FROM iv WHERE i = '30 days' ORDER BY id", &[])
        .await
        .unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(
        crate::int(&c, "SELECT count(*) FROM iv WHERE n IS NOT NULL").await,
        0
    );
    still_serving(&cluster).await;
}

/// Sums past what a value can hold fail instead of wrapping around: an interval's time
/// (nanoseconds in 64 bits) with 22008, a `real` sum with 22003 (found by the differential
/// tester: a sum of large intervals came out negative).
#[tokio::test]
async fn sums_that_overflow_fail_instead_of_wrapping() {
    let cluster = ClusterBuilder::new("sum-overflow").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE iv (i interval, r real); \
         INSERT INTO iv VALUES ('2000000 hours', '3e38'), ('2000000 hours', '3e38'), ('2000000 hours', '3e38')",
    )
    .await
    .unwrap();
    for engine in ["row", "column"] {
        c.batch_execute(&format!("SET duet.engine = '{engine}'"))
            .await
            .unwrap();
        let e = c.simple_query("SELECT sum(i) FROM iv").await.unwrap_err();
        assert_eq!(crate::sqlstate(&e).as_deref(), Some("22008"), "{e:?}");
        let e = c.simple_query("SELECT sum(r) FROM iv").await.unwrap_err();
        assert_eq!(crate::sqlstate(&e).as_deref(), Some("22003"), "{e:?}");
        let rows = crate::rows(&c, "SELECT sum(i / 2) FROM (SELECT i FROM iv LIMIT 2) s").await;
        assert_eq!(rows, [[Some("2000000:00:00".to_string())]]);
    }
    still_serving(&cluster).await;
}
