//! The OLTP fast path against the general (DataFusion) path: the same statements, over
//! random keys, present and missing, NULLs, every key type, in the simple and the extended
//! protocol, must give byte-identical results, equal command tags and equal SQLSTATEs.
//! The general path is `SET duet.fast_path = off` on a second connection.

use crate::{metric, rows, sqlstate};
use duet_tests::ClusterBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::Client;

/// A result value as the server sent it (binary format), whatever its type.
#[derive(Debug, PartialEq)]
struct Raw(Option<Vec<u8>>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw.to_vec())))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Column names and types, then every value's bytes; or the SQLSTATE.
type Answer = Result<(Vec<(String, Type)>, Vec<Vec<Raw>>), String>;

async fn extended(c: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Answer {
    let stmt = c.prepare(sql).await.map_err(|e| format!("prepare: {e}"))?;
    let cols = stmt
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.type_().clone()))
        .collect();
    let rows = c
        .query(&stmt, params)
        .await
        .map_err(|e| sqlstate(&e).unwrap_or_else(|| e.to_string()))?;
    let values = rows
        .iter()
        .map(|r| (0..r.len()).map(|i| r.get::<_, Raw>(i)).collect())
        .collect();
    Ok((cols, values))
}

/// Owned parameter values of one statement.
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

type SimpleAnswer = Result<Vec<Vec<Option<String>>>, String>;

async fn simple(c: &Client, sql: &str) -> SimpleAnswer {
    let msgs = c
        .simple_query(sql)
        .await
        .map_err(|e| sqlstate(&e).unwrap_or_else(|| e.to_string()))?;
    let mut out = Vec::new();
    for m in msgs {
        match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                out.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => {
                out.push(vec![Some(format!("tag {n}"))])
            }
            _ => {}
        }
    }
    Ok(out)
}

async fn explain(c: &Client, sql: &str) -> String {
    rows(c, &format!("EXPLAIN {sql}"))
        .await
        .into_iter()
        .filter_map(|r| r.get(1).cloned().flatten())
        .collect::<Vec<_>>()
        .join("\n")
}

const SCHEMA: &str = "
    CREATE TABLE k2 (k smallint PRIMARY KEY, a int, s text);
    CREATE TABLE k4 (k int PRIMARY KEY, a bigint, s text, b boolean, f double precision,
                     v varchar(8), ts timestamp, n numeric(10,2), c char(5), d date);
    CREATE TABLE k8 (k bigint PRIMARY KEY, a int NOT NULL, s text);
    CREATE TABLE kt (k text PRIMARY KEY, a int, s varchar(4));
    CREATE TABLE kv (k varchar(6) PRIMARY KEY, a int);
    CREATE TABLE kc (a int, b text, x int, PRIMARY KEY (b, a));
    CREATE TABLE kb (k boolean PRIMARY KEY, a int);
    CREATE TABLE kn (k int PRIMARY KEY, a int, u int UNIQUE);
";

async fn load(c: &Client) {
    c.batch_execute(SCHEMA).await.unwrap();
    c.batch_execute(
        "INSERT INTO k2 SELECT i, i * 10, 's' || i FROM generate_series(-50, 50) g(i);
         INSERT INTO k2 VALUES (32767, NULL, NULL), (-32768, 1, 'min');
         INSERT INTO k4 SELECT i, i * 1000000000, CASE WHEN i % 7 = 0 THEN NULL ELSE 't' || i END,
             i % 2 = 0, i / 3.0, 'v' || (i % 100), CAST(to_timestamp(1704067200 + i * 3600) AS timestamp),
             i * 1.25, 'c' || (i % 10), CAST(to_timestamp(1704067200 + i * 86400) AS date)
           FROM generate_series(1, 300) g(i);
         INSERT INTO k4 (k) VALUES (2147483647), (-2147483648), (0);
         INSERT INTO k8 SELECT i * 4294967296, i, NULL FROM generate_series(-20, 20) g(i);
         INSERT INTO kt SELECT 'key' || i, i, 'x' || (i % 10) FROM generate_series(1, 100) g(i);
         INSERT INTO kt VALUES ('', 0, NULL), ('é ü', 1, 'ñ'), ('it''s', 2, 'q');
         INSERT INTO kv SELECT 'v' || i, i FROM generate_series(1, 50) g(i);
         INSERT INTO kc SELECT i % 10, 'b' || (i / 10), i FROM generate_series(0, 99) g(i);
         INSERT INTO kb VALUES (true, 1), (false, NULL);
         INSERT INTO kn SELECT i, i, i + 1000 FROM generate_series(1, 50) g(i);",
    )
    .await
    .unwrap();
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_path_reads_equal_the_general_path() {
    let cluster = ClusterBuilder::new("fastpath-read").build().await.unwrap();
    let fast = cluster.client().await.unwrap();
    let slow = cluster.client().await.unwrap();
    slow.batch_execute("SET duet.fast_path = off")
        .await
        .unwrap();
    load(&fast).await;

    // The fast path is what runs, and only where asked for.
    let q = "SELECT a, s FROM k4 WHERE k = 5";
    assert!(explain(&fast, q)
        .await
        .contains("PointLookup: table=k4, engine=row (fast path)"));
    assert!(
        explain(&slow, q).await.contains("RowScan: table=k4"),
        "{}",
        explain(&slow, q).await
    );
    fast.batch_execute("SET duet.engine = 'column'")
        .await
        .unwrap();
    assert!(!explain(&fast, q).await.contains("fast path"));
    fast.batch_execute("SET duet.engine = 'auto'")
        .await
        .unwrap();
    assert!(!explain(&fast, &format!("/*+ engine(column) */ {q}"))
        .await
        .contains("fast path"));
    assert!(!explain(&fast, "SELECT a FROM k4 WHERE k = 5 AND a > 0")
        .await
        .contains("fast path"));

    let mut rng = StdRng::seed_from_u64(6);
    let mut checked = 0;
    for round in 0..60 {
        // Keys: present, missing, boundaries, NULL.
        let k2: Option<i16> = match round % 4 {
            0 => None,
            1 => Some([32767, -32768, 0, 51][rng.gen_range(0..4)]),
            _ => Some(rng.gen_range(-60..60)),
        };
        let k4: Option<i32> = match round % 5 {
            0 => None,
            1 => Some([i32::MAX, i32::MIN, 0, 301][rng.gen_range(0..4)]),
            _ => Some(rng.gen_range(-5..310)),
        };
        let k8: i64 = rng.gen_range(-25i64..25) * 4294967296 + if round % 3 == 0 { 1 } else { 0 };
        let kt = match round % 6 {
            0 => String::new(),
            1 => "é ü".into(),
            2 => "it's".into(),
            3 => "nokey".into(),
            _ => format!("key{}", rng.gen_range(0..110)),
        };
        let kv = format!("v{}", rng.gen_range(0..60));
        let (ka, kb) = (rng.gen_range(-1..11), format!("b{}", rng.gen_range(0..11)));
        let kbool = round % 2 == 0;

        let cases: Vec<(String, String, Params)> = vec![
            (
                "SELECT * FROM k2 WHERE k = $1".into(),
                format!(
                    "SELECT * FROM k2 WHERE k = {}",
                    k2.map_or("NULL".into(), |k| k.to_string())
                ),
                vec![Box::new(k2)],
            ),
            (
                "SELECT * FROM k4 WHERE k = $1".into(),
                format!(
                    "SELECT * FROM k4 WHERE k = {}",
                    k4.map_or("NULL".into(), |k| k.to_string())
                ),
                vec![Box::new(k4)],
            ),
            (
                "SELECT s AS label, t.a, k FROM k4 t WHERE t.k = $1".into(),
                format!(
                    "SELECT s AS label, t.a, k FROM k4 t WHERE t.k = {}",
                    k4.map_or("NULL".into(), |k| k.to_string())
                ),
                vec![Box::new(k4)],
            ),
            (
                "SELECT a, s FROM k8 WHERE $1 = k".into(),
                format!("SELECT a, s FROM k8 WHERE {k8} = k"),
                vec![Box::new(k8)],
            ),
            (
                "SELECT * FROM kt WHERE k = $1".into(),
                format!("SELECT * FROM kt WHERE k = {}", quote(&kt)),
                vec![Box::new(kt.clone())],
            ),
            (
                "SELECT a FROM kv WHERE k = $1".into(),
                format!("SELECT a FROM kv WHERE k = {}", quote(&kv)),
                vec![Box::new(kv.clone())],
            ),
            (
                "SELECT x, a, b FROM kc WHERE a = $1 AND b = $2".into(),
                format!(
                    "SELECT x, a, b FROM kc WHERE a = {ka} AND b = {}",
                    quote(&kb)
                ),
                vec![Box::new(ka), Box::new(kb.clone())],
            ),
            (
                "SELECT * FROM kb WHERE k = $1".into(),
                format!("SELECT * FROM kb WHERE k = {kbool}"),
                vec![Box::new(kbool)],
            ),
        ];
        for (prepared, literal, params) in &cases {
            let p: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let f = extended(&fast, prepared, &p).await;
            let s = extended(&slow, prepared, &p).await;
            assert_eq!(f, s, "{prepared} {params:?}");
            let f = simple(&fast, literal).await;
            let s = simple(&slow, literal).await;
            assert_eq!(f, s, "{literal}");
            checked += 2;
        }
    }
    // Out-of-range and mistyped keys go the general way and answer as it does.
    for sql in [
        "SELECT * FROM k2 WHERE k = 40000",
        "SELECT * FROM k4 WHERE k = 1.5",
        "SELECT * FROM k4 WHERE k = '7'",
        "SELECT * FROM k4 WHERE k = 'seven'",
        "SELECT * FROM kv WHERE k = 'much too long'",
        "SELECT nosuch FROM k4 WHERE k = 1",
    ] {
        assert_eq!(simple(&fast, sql).await, simple(&slow, sql).await, "{sql}");
    }
    assert!(checked >= 900, "{checked}");

    // Every fast-path read is in the routing log.
    let logged = rows(
        &fast,
        "SELECT count(*) FROM duet.routing_log WHERE reason = 'pk point lookup (fast path)' \
         AND engine = 'row' AND actual_rows IS NOT NULL",
    )
    .await;
    let n: usize = logged[0][0].as_deref().unwrap().parse().unwrap();
    assert!(n >= 300, "{n} fast-path reads logged");
}

/// One write statement as text (simple protocol) with its literal values.
fn write_statement(rng: &mut StdRng, table: &str) -> String {
    let k = rng.gen_range(0..40);
    match rng.gen_range(0..10) {
        0 | 1 => format!(
            "UPDATE {table} SET a = a + {} WHERE k = {k}",
            rng.gen_range(-1000..1000)
        ),
        2 => format!("UPDATE {table} SET a = a - 2147483000 WHERE k = {k}"),
        3 => format!(
            "UPDATE {table} SET s = {}, b = {} WHERE k = {k}",
            if rng.gen_bool(0.3) {
                "NULL".into()
            } else {
                quote(&format!("s{}", rng.gen_range(0..99)))
            },
            rng.gen_bool(0.5)
        ),
        4 => format!("UPDATE {table} SET n = NULL WHERE k = {k}"),
        5 => format!(
            "UPDATE {table} SET u = {} WHERE k = {k}",
            rng.gen_range(0..60)
        ),
        6 => format!("DELETE FROM {table} WHERE k = {k}"),
        7 => format!(
            "INSERT INTO {table} (k, a, n, u) VALUES ({k}, {}, 1, {})",
            rng.gen_range(-5..5),
            rng.gen_range(0..200)
        ),
        8 => format!("INSERT INTO {table} (k, a) VALUES ({k}, 1)"),
        _ => format!(
            "INSERT INTO {table} VALUES ({k}, 5, 't', true, 1, {}), ({}, 6, NULL, NULL, 2, NULL)",
            rng.gen_range(300..400),
            k + 100
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_path_writes_equal_the_general_path() {
    let cluster = ClusterBuilder::new("fastpath-write").build().await.unwrap();
    let fast = cluster.client().await.unwrap();
    let slow = cluster.client().await.unwrap();
    slow.batch_execute("SET duet.fast_path = off")
        .await
        .unwrap();
    for t in ["wf", "ws"] {
        fast.batch_execute(&format!(
            "CREATE TABLE {t} (k int PRIMARY KEY, a int, s text, b boolean, n int NOT NULL, u int UNIQUE);
             INSERT INTO {t} SELECT i, i * 100, 's' || i, i % 2 = 0, i, i FROM generate_series(0, 29) g(i);"
        ))
        .await
        .unwrap();
    }
    assert!(explain(&fast, "UPDATE wf SET a = a + 1 WHERE k = 1")
        .await
        .contains("PointUpdate: table=wf, engine=row (fast path)"));
    assert!(explain(&fast, "INSERT INTO wf (k, n) VALUES (1, 2)")
        .await
        .contains("engine=row (fast path)"));
    assert!(explain(&fast, "DELETE FROM wf WHERE k = 1")
        .await
        .contains("PointDelete"));

    let mut rng = StdRng::seed_from_u64(66);
    let mut errors = std::collections::BTreeSet::new();
    for round in 0..400 {
        let txn = round % 50 >= 40; // some statements inside explicit blocks
        if txn && round % 50 == 40 {
            fast.batch_execute("BEGIN").await.unwrap();
            slow.batch_execute("BEGIN").await.unwrap();
        }
        let seed: u64 = rng.gen();
        let f_sql = write_statement(&mut StdRng::seed_from_u64(seed), "wf");
        let s_sql = write_statement(&mut StdRng::seed_from_u64(seed), "ws");
        let f = simple(&fast, &f_sql).await;
        let s = simple(&slow, &s_sql).await;
        assert_eq!(f, s, "{f_sql}");
        if let Err(code) = &f {
            errors.insert(code.clone());
        }
        if txn && round % 50 == 49 {
            let f = simple(&fast, "COMMIT").await;
            let s = simple(&slow, "COMMIT").await;
            assert_eq!(f, s, "commit");
        }
    }
    // The same writes in the extended protocol with parameters.
    for round in 0..200 {
        let k: i32 = rng.gen_range(0..40);
        let (sql, params): (&str, Params) = match round % 5 {
            0 => (
                "UPDATE {t} SET a = a + $1 WHERE k = $2",
                vec![Box::new(rng.gen_range(-9i32..9)), Box::new(k)],
            ),
            1 => (
                "UPDATE {t} SET s = $1 WHERE k = $2",
                vec![Box::new(None::<String>), Box::new(k)],
            ),
            2 => ("DELETE FROM {t} WHERE k = $1", vec![Box::new(k)]),
            3 => (
                "INSERT INTO {t} (k, a, n) VALUES ($1, $2, $3)",
                vec![
                    Box::new(k),
                    Box::new(7i32),
                    Box::new(if round % 2 == 0 { None } else { Some(3i32) }),
                ],
            ),
            _ => (
                "UPDATE {t} SET a = a + $1 WHERE k = $2",
                vec![Box::new(i32::MAX), Box::new(k)],
            ),
        };
        let p: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let f = fast
            .execute(&sql.replace("{t}", "wf"), &p)
            .await
            .map_err(|e| sqlstate(&e));
        let s = slow
            .execute(&sql.replace("{t}", "ws"), &p)
            .await
            .map_err(|e| sqlstate(&e));
        assert_eq!(f, s, "{sql} {params:?}");
        if let Err(Some(code)) = &f {
            errors.insert(code.clone());
        }
    }
    // Overflow, NOT NULL, duplicate key, unique index and failed-block errors all came up.
    for code in ["22003", "23502", "23505", "25P02"] {
        assert!(errors.contains(code), "{code} never happened: {errors:?}");
    }
    let all = |t: &str| format!("SELECT * FROM {t} ORDER BY k");
    assert_eq!(rows(&fast, &all("wf")).await, rows(&slow, &all("ws")).await);
    let logged = rows(
        &fast,
        "SELECT count(*) FROM duet.routing_log WHERE reason LIKE '%(fast path)' AND table_name = 'wf'",
    )
    .await;
    let n: usize = logged[0][0].as_deref().unwrap().parse().unwrap();
    assert!(n > 100, "{n}");
}

/// A driver that parses the same text for every execution gets it from the connection's
/// parse cache, until the table changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reparsed_texts_follow_table_changes() {
    let cluster = ClusterBuilder::new("fastpath-reparse")
        .build()
        .await
        .unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute("CREATE TABLE kx (k int PRIMARY KEY, a int); INSERT INTO kx VALUES (1, 10)")
        .await
        .unwrap();
    let sql = "SELECT * FROM kx WHERE k = $1";
    for _ in 0..3 {
        let rows = c.query(sql, &[&1i32]).await.unwrap();
        assert_eq!(rows[0].len(), 2);
        assert_eq!(rows[0].get::<_, i32>(1), 10);
    }
    c.batch_execute(
        "DROP TABLE kx; CREATE TABLE kx (k int PRIMARY KEY, a text, b int);
         INSERT INTO kx VALUES (1, 'new', 7)",
    )
    .await
    .unwrap();
    let rows = c.query(sql, &[&1i32]).await.unwrap();
    assert_eq!(
        rows[0].len(),
        3,
        "the cached parse of the old table was used"
    );
    assert_eq!(rows[0].get::<_, &str>(1), "new");
    c.batch_execute("ALTER TABLE kx ADD COLUMN d int DEFAULT 5")
        .await
        .unwrap();
    let rows = c.query(sql, &[&1i32]).await.unwrap();
    assert_eq!(rows[0].len(), 4);
    assert_eq!(rows[0].get::<_, i32>(3), 5);
}

/// Repeated point reads are answered by the row cache, and each sees every commit made on
/// another connection in between (updates, a delete, a re-insert), in both protocols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_reads_from_the_row_cache_see_every_commit() {
    let cluster = ClusterBuilder::new("row-cache").build().await.unwrap();
    let r = cluster.client().await.unwrap();
    let w = cluster.client().await.unwrap();
    w.batch_execute("CREATE TABLE kv (k int PRIMARY KEY, v text)")
        .await
        .unwrap();
    w.batch_execute("INSERT INTO kv VALUES (1, 'one'), (2, 'two')")
        .await
        .unwrap();
    let read = r.prepare("SELECT v FROM kv WHERE k = $1").await.unwrap();
    let get = |k: i32| {
        let (r, read) = (&r, &read);
        async move {
            let extended: Option<String> = r
                .query(read, &[&k])
                .await
                .unwrap()
                .first()
                .map(|row| row.get(0));
            let simple = rows(r, &format!("SELECT v FROM kv WHERE k = {k}")).await;
            assert_eq!(
                simple,
                extended
                    .iter()
                    .map(|v| vec![Some(v.clone())])
                    .collect::<Vec<_>>()
            );
            extended
        }
    };
    assert_eq!(get(1).await.as_deref(), Some("one"));
    let hits = |m: &str| metric(m, "duet_row_cache_lookups_total{result=\"hit\"}");
    let before = hits(&cluster.http_get("/metrics").await.unwrap());
    for i in 0..20 {
        let v = format!("v{i}");
        w.execute("UPDATE kv SET v = $1 WHERE k = 1", &[&v])
            .await
            .unwrap();
        assert_eq!(get(1).await, Some(v));
    }
    w.batch_execute("DELETE FROM kv WHERE k = 1").await.unwrap();
    assert_eq!(get(1).await, None);
    assert_eq!(get(3).await, None);
    w.batch_execute("INSERT INTO kv VALUES (1, 'back'), (3, 'three')")
        .await
        .unwrap();
    assert_eq!(get(1).await.as_deref(), Some("back"));
    assert_eq!(get(3).await.as_deref(), Some("three"));
    assert_eq!(get(2).await.as_deref(), Some("two"));
    let after = hits(&cluster.http_get("/metrics").await.unwrap());
    assert!(
        after >= before + 40.0,
        "reads after each commit should hit the cache: {before} -> {after}"
    );
}

/// Simple-query texts that differ only in their literals share a plan (the literals become
/// parameters); literals that do not bind exactly (a fraction or a string for an integer
/// key, an integer for a float column) run the general way from the text as written, with
/// PostgreSQL's coercions; a changed table is recognised again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_queries_share_plans_by_literal_shape() {
    let cluster = ClusterBuilder::new("literal-shapes").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE s (k int PRIMARY KEY, f float8, t text);
         INSERT INTO s VALUES (5, 0.5, 'five'), (-7, 1.5, 'minus seven'), (8, NULL, 'it''s');",
    )
    .await
    .unwrap();
    let one = |sql: &'static str| {
        let c = &c;
        async move { rows(c, sql).await }
    };
    let some = |v: &str| vec![vec![Some(v.to_string())]];
    assert_eq!(one("SELECT t FROM s WHERE k = 5").await, some("five"));
    assert_eq!(one("SELECT t FROM s WHERE k = 8").await, some("it's"));
    assert_eq!(
        one("SELECT t FROM s WHERE k = -7").await,
        some("minus seven")
    );
    assert_eq!(one("SELECT t FROM s WHERE k=-7").await, some("minus seven"));
    assert_eq!(
        one("SELECT t FROM s WHERE k = 6").await,
        Vec::<Vec<Option<String>>>::new()
    );
    assert_eq!(one("SELECT t FROM s WHERE k = 5.0").await, some("five"));
    assert_eq!(
        one("SELECT t FROM s WHERE k = 5.5").await,
        Vec::<Vec<Option<String>>>::new()
    );
    assert_eq!(one("SELECT t FROM s WHERE k = '5'").await, some("five"));
    assert_eq!(
        sqlstate(
            &c.simple_query("SELECT t FROM s WHERE k = 'x'")
                .await
                .unwrap_err()
        )
        .as_deref(),
        Some("22P02")
    );
    assert_eq!(
        one("SELECT t FROM s WHERE k = 99999999999").await,
        Vec::<Vec<Option<String>>>::new()
    );
    c.batch_execute(
        "UPDATE s SET f = 2 WHERE k = 5; UPDATE s SET f = f + 1, t = 'x''y' WHERE k = -7",
    )
    .await
    .unwrap();
    assert_eq!(
        one("SELECT f, t FROM s WHERE k = -7").await,
        vec![vec![Some("2.5".to_string()), Some("x'y".to_string())]]
    );
    assert_eq!(one("SELECT f FROM s WHERE k = 5").await, some("2"));
    // The table changes under the cached shape: the key becomes text.
    c.batch_execute("DROP TABLE s; CREATE TABLE s (k text PRIMARY KEY, f float8, t text)")
        .await
        .unwrap();
    c.batch_execute("INSERT INTO s VALUES ('5', 1, 'text five')")
        .await
        .unwrap();
    assert_eq!(
        one("SELECT t FROM s WHERE k = '5'").await,
        some("text five")
    );
    c.batch_execute("DROP TABLE s").await.unwrap();
    assert_eq!(
        sqlstate(
            &c.simple_query("SELECT t FROM s WHERE k = '5'")
                .await
                .unwrap_err()
        )
        .as_deref(),
        Some("42P01")
    );
}
