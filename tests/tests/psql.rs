//! An everyday psql session (`tests/psql/session.sql`: DDL, DML with generate_series,
//! joins, aggregates, a window, subqueries, errors by SQLSTATE, transactions) run with
//! `psql -X -A -t` prints what PostgreSQL 15 prints (`tests/psql/session.out`, written with
//! `2>&1`): every result line and every error line (`\set VERBOSITY sqlstate`) the same
//! bytes, in the same order within each of psql's two streams. With `DUET_TEST_PG` set,
//! the expected file is first checked against PostgreSQL itself.

use std::path::Path;
use std::process::Command;

use duet_tests::ClusterBuilder;

/// psql's stdout and stderr together (errors interleave with results as a user sees them).
fn run_psql(conn: &str, dir: &Path) -> String {
    let out = Command::new("psql")
        .args([conn, "-X", "-A", "-t", "-f", "session.sql"])
        .current_dir(dir)
        .output()
        .expect("psql (postgresql-client) is installed");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text
}

/// stdout then stderr, as `run_psql` joins them, from a file written with `2>&1`: psql
/// writes its results and its errors to different streams, so only each stream's own
/// order is comparable.
fn split(text: &str) -> (Vec<&str>, Vec<&str>) {
    text.lines().partition(|l| !l.starts_with("psql:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psql_session_prints_what_postgresql_prints() {
    let dir = duet_tests::crate_dir().join("psql");
    let expected = std::fs::read_to_string(dir.join("session.out")).unwrap();
    if let Ok(admin) = std::env::var("DUET_TEST_PG") {
        let db = format!("duet_psql_{}", std::process::id());
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let pg = run_psql(&format!("{admin} dbname={db}"), &dir);
        client
            .batch_execute(&format!("DROP DATABASE {db}"))
            .await
            .unwrap();
        assert_eq!(
            split(&pg),
            split(&expected),
            "session.out is not PostgreSQL's output"
        );
    }
    let cluster = ClusterBuilder::new("psql-session").build().await.unwrap();
    let duet = run_psql(&cluster.connection_string(), &dir);
    assert_eq!(split(&duet), split(&expected));
}
