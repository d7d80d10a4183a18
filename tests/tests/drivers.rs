//! Application drivers run unmodified: the scripts in `tests/drivers` (psycopg 3,
//! psycopg2, asyncpg, node-postgres, Django, SQLAlchemy, pgjdbc) do what applications do —
//! typed parameters, prepared statements past the drivers' prepare thresholds, nested
//! transactions (savepoints), COPY in text and binary, named cursors, pools, reflection of
//! tables, keys and indexes through the catalog — against DuetDB and, when `DUET_TEST_PG`
//! is set, against PostgreSQL 15 in a fresh database. `scripts/install-deps.sh` installs
//! the drivers (in `DUET_DRIVERS`, default `/var/tmp/duetdb-drivers`).

use std::path::PathBuf;
use std::process::Command;

use duet_tests::ClusterBuilder;

fn drivers_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("DUET_DRIVERS").unwrap_or_else(|_| "/var/tmp/duetdb-drivers".into()),
    )
}

/// The server a script talks to.
struct Target {
    label: &'static str,
    host: String,
    port: String,
    user: String,
    db: String,
}

/// Runs `script` against `target`; panics with its output if a step failed.
fn run(script: &str, target: &Target) {
    let dir = duet_tests::crate_dir().join("drivers");
    let drivers = drivers_dir();
    let mut cmd = if script.ends_with(".js") {
        let mut c = Command::new("node");
        c.env("NODE_PATH", drivers.join("node/node_modules"));
        c
    } else if script.ends_with(".java") {
        // A single-file program run by the JDK's launcher, with Debian's pgjdbc.
        let mut c = Command::new("java");
        c.args(["-cp", "/usr/share/java/postgresql.jar"]);
        c
    } else {
        Command::new(drivers.join("venv/bin/python"))
    };
    let out = cmd
        .arg(script)
        .current_dir(&dir)
        .env("DRIVER_LABEL", target.label)
        .env("DRIVER_HOST", &target.host)
        .env("DRIVER_PORT", &target.port)
        .env("DRIVER_USER", &target.user)
        .env("DRIVER_DB", &target.db)
        .output()
        .unwrap_or_else(|e| {
            panic!("{script}: cannot run the driver ({e}); run scripts/install-deps.sh")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{script} on {}:\n{text}",
        target.label
    );
}

/// `key=value` pairs of a libpq connection string.
fn conninfo(s: &str, key: &str) -> Option<String> {
    s.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

async fn every_script_passes(scripts: &[&str]) {
    if let Ok(admin) = std::env::var("DUET_TEST_PG") {
        // One database per test (the tests run at once).
        let stem: String = scripts[0]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        // Lower case: CREATE DATABASE folds the unquoted name.
        let db = format!("duet_drivers_{stem}_{}", std::process::id()).to_lowercase();
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let pg = Target {
            label: "postgresql",
            host: conninfo(&admin, "host").unwrap_or_else(|| "127.0.0.1".into()),
            port: conninfo(&admin, "port").unwrap_or_else(|| "5432".into()),
            user: conninfo(&admin, "user").unwrap_or_else(|| "postgres".into()),
            db: db.clone(),
        };
        for script in scripts {
            client
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .unwrap();
            let s = script.to_string();
            let ran = tokio::task::spawn_blocking({
                let pg = Target {
                    label: pg.label,
                    host: pg.host.clone(),
                    port: pg.port.clone(),
                    user: pg.user.clone(),
                    db: pg.db.clone(),
                };
                move || run(&s, &pg)
            })
            .await;
            client
                .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
                .await
                .unwrap();
            if let Err(e) = ran {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    for script in scripts {
        let cluster = ClusterBuilder::new(format!("drivers-{}", script.replace('/', "-")))
            .build()
            .await
            .unwrap();
        let duet = Target {
            label: "duetdb",
            host: cluster.addr().ip().to_string(),
            port: cluster.addr().port().to_string(),
            user: "postgres".into(),
            db: "duetdb".into(),
        };
        let s = script.to_string();
        tokio::task::spawn_blocking(move || run(&s, &duet))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drivers_run_an_application_unmodified() {
    every_script_passes(&["psycopg3_app.py", "psycopg2_app.py", "asyncpg_app.py"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_runs_an_application_unmodified() {
    every_script_passes(&["node_pg_app.js"]).await;
}

/// Django 5's `migrate` of auth, contenttypes, sessions, admin and an app, then its ORM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_runs_an_application_unmodified() {
    every_script_passes(&["django_app/run.py"]).await;
}

/// SQLAlchemy 2's ORM with psycopg 3, including reflection through the inspector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_runs_an_application_unmodified() {
    every_script_passes(&["sqlalchemy_app.py"]).await;
}

/// pgjdbc: prepared statements past the server-prepare threshold, batches, savepoints,
/// DatabaseMetaData.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_runs_an_application_unmodified() {
    every_script_passes(&["JdbcApp.java"]).await;
}
