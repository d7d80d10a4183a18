//! sqllogictest files under `tests/slt/`, run through the wire protocol against DuetDB and,
//! when `DUET_TEST_PG` names a PostgreSQL 15 server (libpq connection string of a user that
//! may create databases), against PostgreSQL too: the expected results are PostgreSQL's.
//! `.ci/run` starts that server, so in CI every file is checked against both.

use std::path::PathBuf;

use async_trait::async_trait;
use duet_tests::ClusterBuilder;
use sqllogictest::{DBOutput, DefaultColumnType};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

struct Pg {
    client: Client,
}

#[async_trait]
impl sqllogictest::AsyncDB for Pg {
    type Error = tokio_postgres::Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Self::Error> {
        let msgs = self.client.simple_query(sql).await?;
        let mut rows = Vec::new();
        let mut width = None;
        let mut complete = 0;
        for m in msgs {
            match m {
                SimpleQueryMessage::RowDescription(cols) => width = Some(cols.len()),
                SimpleQueryMessage::Row(r) => {
                    width = Some(r.len());
                    rows.push(
                        (0..r.len())
                            .map(|i| match r.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(v) => v.to_string(),
                            })
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => complete = n,
                _ => {}
            }
        }
        Ok(match width {
            Some(w) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; w],
                rows,
            },
            None => DBOutput::StatementComplete(complete),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "postgres-wire"
    }

    fn error_sql_state(err: &Self::Error) -> Option<String> {
        err.code().map(|c| c.code().to_string())
    }
}

async fn connect(conn_str: &str) -> Result<Pg, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(conn_str, NoTls).await?;
    tokio::spawn(conn);
    Ok(Pg { client })
}

/// Runs `path` on fresh connections; `init` is sent first on each (e.g. to pick a replica).
async fn run_file_with(conn_str: String, path: &PathBuf, init: Option<&'static str>) {
    let mut runner = sqllogictest::Runner::new(move || {
        let s = conn_str.clone();
        async move {
            let db = connect(&s).await?;
            if let Some(sql) = init {
                db.client.batch_execute(sql).await?;
            }
            Ok(db)
        }
    });
    runner.with_column_validator(|_, _| true);
    if let Err(e) = runner.run_file_async(path).await {
        panic!("{}{}", init.unwrap_or(""), e.display(true));
    }
}

async fn run_file(conn_str: String, path: &PathBuf) {
    run_file_with(conn_str, path, None).await
}

async fn check(name: &str) {
    let path = duet_tests::crate_dir()
        .join("slt")
        .join(format!("{name}.slt"));
    // PostgreSQL first: a failure there means the expected output is wrong, not DuetDB.
    if let Ok(admin) = std::env::var("DUET_TEST_PG") {
        let db = format!("duet_slt_{name}_{}", std::process::id());
        let a = connect(&admin)
            .await
            .expect("DUET_TEST_PG is set but PostgreSQL is unreachable");
        a.client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .await
            .unwrap();
        a.client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let conn = format!("{admin} dbname={db}");
        run_file(conn, &path).await;
        a.client
            .batch_execute(&format!("DROP DATABASE {db}"))
            .await
            .unwrap();
    } else {
        eprintln!(
            "slt {name}: DUET_TEST_PG not set, expected results not re-checked against PostgreSQL"
        );
    }
    // Each engine on a fresh node: the router's choice, every scan on the row replica,
    // every scan on the column replica. Same answers.
    let mut cluster = None;
    for (engine, init) in [
        ("auto", None),
        ("row", Some("SET duet.engine = 'row'")),
        (
            "column",
            Some("SET duet.engine = 'column'; SET duet.learner_wait_timeout = '30s'"),
        ),
    ] {
        let node = ClusterBuilder::new(format!("slt-{name}-{engine}"))
            .build()
            .await
            .unwrap();
        run_file_with(node.connection_string(), &path, init).await;
        cluster = Some(node);
    }
    let cluster = cluster.expect("three engines ran");
    let columns = cluster.node().unwrap().columns().clone();
    let fallbacks = columns.fallbacks();
    eprintln!(
        "slt {name} on the column replica: {} column scans, fallbacks {fallbacks:?}",
        columns.column_scans()
    );
    // Only reads inside transactions that have written may use the row replica.
    assert!(
        fallbacks
            .iter()
            .all(|(why, _)| *why == "uncommitted_writes"),
        "{fallbacks:?}"
    );
}

macro_rules! slt_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                check(stringify!($name)).await;
            }
        )*
    };
}

slt_tests!(
    types,
    ddl,
    dml,
    nulls,
    queries,
    errors,
    transactions,
    subqueries,
    difftest,
    srf
);
