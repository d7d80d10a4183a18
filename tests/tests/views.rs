//! Views beyond what `psql/views.sql` compares with PostgreSQL: parameters, both replicas,
//! writes refused, CASCADE, restarts.

use duet_tests::ClusterBuilder;

use crate::{error_code, rows};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_read_like_their_queries_and_refuse_writes() {
    let mut cluster = ClusterBuilder::new("views").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, g int, v text); \
         INSERT INTO t SELECT i, i % 3, 'v' || i FROM generate_series(1, 300) AS s(i); \
         CREATE VIEW big AS SELECT id, g, v FROM t WHERE id > 100; \
         CREATE VIEW per_g AS SELECT g, count(*) AS n FROM big GROUP BY g",
    )
    .await
    .unwrap();
    // Extended protocol with a parameter, through two levels of views.
    let stmt = c.prepare("SELECT n FROM per_g WHERE g = $1").await.unwrap();
    for _ in 0..6 {
        let n: i64 = c.query_one(&stmt, &[&1i32]).await.unwrap().get(0);
        assert_eq!(n, 66);
    }
    // The same answer from either replica.
    for engine in ["row", "column"] {
        c.batch_execute(&format!("SET duet.engine = '{engine}'"))
            .await
            .unwrap();
        assert_eq!(
            rows(&c, "SELECT sum(n) FROM per_g").await,
            vec![vec![Some("200".into())]],
            "{engine}"
        );
    }
    c.batch_execute("RESET duet.engine").await.unwrap();
    // Writes through a view are refused with 0A000; the session goes on.
    for sql in [
        "INSERT INTO big VALUES (1000, 1, 'x')",
        "UPDATE big SET v = 'y' WHERE id = 101",
        "DELETE FROM big WHERE id = 101",
        "TRUNCATE big",
        "ALTER TABLE big ADD COLUMN w int",
    ] {
        assert_eq!(error_code(&c, sql).await, "0A000", "{sql}");
    }
    // A table a view reads cannot be renamed (the view keeps its query's text).
    assert_eq!(error_code(&c, "ALTER TABLE t RENAME TO t2").await, "0A000");
    // Views survive a restart.
    drop(c);
    cluster.restart().await.unwrap();
    let c = cluster.client().await.unwrap();
    assert_eq!(
        rows(&c, "SELECT count(*) FROM big").await,
        vec![vec![Some("200".into())]]
    );
    // DROP TABLE … CASCADE takes the views that read it, readers of readers too.
    assert_eq!(error_code(&c, "DROP TABLE t").await, "2BP01");
    c.batch_execute("DROP TABLE t CASCADE").await.unwrap();
    assert_eq!(
        rows(
            &c,
            "SELECT count(*) FROM pg_class WHERE relname IN ('t', 'big', 'per_g')"
        )
        .await,
        vec![vec![Some("0".into())]]
    );
    assert_eq!(error_code(&c, "SELECT * FROM big").await, "42P01");
}

/// A CTE of the statement that reads a view does not stand in for a table of the view's
/// query (the view reads the table, as in PostgreSQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cte_does_not_capture_a_table_a_view_reads() {
    let cluster = ClusterBuilder::new("view-cte").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2); CREATE VIEW v AS SELECT a FROM t",
    )
    .await
    .unwrap();
    assert_eq!(
        rows(&c, "WITH t AS (SELECT 99 AS a) SELECT sum(a) FROM v").await,
        vec![vec![Some("3".into())]]
    );
}
