//! psql sessions run with `psql -X -A -t` print what PostgreSQL 15 prints: each
//! `tests/psql/NAME.sql` against its `NAME.out` (PostgreSQL's output, written with `2>&1`):
//! every result line and every error line (`\set VERBOSITY sqlstate`) the same bytes, in the
//! same order within each of psql's two streams. With `DUET_TEST_PG` set, the expected file
//! is first checked against PostgreSQL itself, in a fresh database.
//!
//! - `session.sql`: everyday SQL (DDL, DML with generate_series, joins, aggregates, a
//!   window, subqueries, errors by SQLSTATE, transactions and savepoints, result types).
//! - `sequences.sql`: sequences, `serial` and identity columns.
//! - `cursors.sql`: DECLARE, FETCH and CLOSE, with and without HOLD.
//! - `numeric_scale.sql`: numeric display scales: averages, quotients (constant and per
//!   row, through joins, subqueries, GROUP BY and HAVING), CASE, COALESCE, UNION, VALUES.
//! - `constraints.sql`: CHECK constraints on INSERT, UPDATE and COPY, added and dropped.
//! - `alter.sql`: ALTER COLUMN SET/DROP DEFAULT, SET/DROP NOT NULL, varchar length changes,
//!   read back from the column replica.
//! - `on_conflict.sql`: INSERT … ON CONFLICT [target] DO NOTHING | DO UPDATE SET … WHERE ….
//! - `foreign_keys.sql`: FOREIGN KEY constraints: checks, every referential action,
//!   composite and self references, deferred checks, ALTER TABLE, COPY, DROP and TRUNCATE.
//! - `timestamptz.sql`: timestamptz input with and without zones, SET TIME ZONE, output in
//!   the session's zone, casts, COPY, both replicas.
//! - `arrays.sql`: text cast to array types (`'{…}'::int[]`), unnest of them, errors.
//! - `subqueries.sql`: correlated scalar subqueries without an aggregate: NULL for no row,
//!   21000 only for an outer row with several, on both replicas; and the shapes evaluated
//!   per outer row (correlation by inequality, EXISTS and IN in a select list, LIMIT, a
//!   function of the outer row in FROM).
//! - `rename.sql`: RENAME of tables, columns and indexes.
//! - `prepare.sql`: SQL's PREPARE, EXECUTE and DEALLOCATE.
//! - `views.sql`: CREATE [OR REPLACE] VIEW, views of views, column lists, DROP VIEW and
//!   what depends on a view, in pg_class and pg_views.
//! - `catalog.sql`: pg_class, pg_attribute, pg_index, pg_constraint, pg_attrdef,
//!   pg_sequence and pg_depend rows of the database's tables, `regclass`, and
//!   `pg_get_indexdef`/`pg_get_constraintdef`/`pg_get_expr`.
//! - `types.sql`: uuid, json and jsonb columns: input forms, canonical output, literals in
//!   comparisons, `->`, `->>`, `#>`, `#>>`, `@>`, `<@`, `?`, `?|`, `?&`, casts, errors.
//! - `describe.sql`: psql's `\d` of a table, an index, a view and a sequence, `\d+`, and
//!   `\dt`, `\di`, `\dv`, `\ds`, `\df` (the file turns psql's headers and footers on).

use std::path::Path;
use std::process::Command;

use duet_tests::ClusterBuilder;

/// psql's stdout and stderr together (errors interleave with results as a user sees them).
fn run_psql(conn: &str, dir: &Path, file: &str) -> String {
    let out = Command::new("psql")
        .args([conn, "-X", "-A", "-t", "-f", file])
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
    // An error's DETAIL and HINT lines go to stderr with it.
    text.lines().partition(|l| {
        !l.starts_with("psql:") && !l.starts_with("DETAIL:  ") && !l.starts_with("HINT:  ")
    })
}

/// `NAME.sql` prints `NAME.out` on PostgreSQL (when `DUET_TEST_PG` is set) and on DuetDB.
async fn session_prints_what_postgresql_prints(name: &str) {
    let dir = duet_tests::crate_dir().join("psql");
    let file = format!("{name}.sql");
    let expected = std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap();
    if let Ok(admin) = std::env::var("DUET_TEST_PG") {
        let db = format!("duet_psql_{name}_{}", std::process::id());
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let pg = run_psql(&format!("{admin} dbname={db}"), &dir, &file);
        client
            .batch_execute(&format!("DROP DATABASE {db}"))
            .await
            .unwrap();
        assert_eq!(
            split(&pg),
            split(&expected),
            "{name}.out is not PostgreSQL's output"
        );
    }
    let cluster = ClusterBuilder::new(format!("psql-{name}"))
        .build()
        .await
        .unwrap();
    let duet = run_psql(&cluster.connection_string(), &dir, &file);
    assert_eq!(split(&duet), split(&expected), "{name}.sql on DuetDB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psql_session_prints_what_postgresql_prints() {
    session_prints_what_postgresql_prints("session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_serial_and_identity_columns_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("sequences").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_display_scales_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("numeric_scale").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("cursors").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_constraints_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("constraints").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_column_prints_what_postgresql_prints() {
    session_prints_what_postgresql_prints("alter").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_conflict_prints_what_postgresql_prints() {
    session_prints_what_postgresql_prints("on_conflict").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("foreign_keys").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamptz_prints_what_postgresql_prints() {
    session_prints_what_postgresql_prints("timestamptz").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_literals_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("arrays").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlated_scalar_subqueries_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("subqueries").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("rename").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_prepare_and_execute_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("prepare").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_describes_tables_as_postgresql_does() {
    session_prints_what_postgresql_prints("catalog").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("views").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describe_commands_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("describe").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uuid_json_and_jsonb_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("types").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_interval_and_array_columns_print_what_postgresql_prints() {
    session_prints_what_postgresql_prints("column_types").await;
}
