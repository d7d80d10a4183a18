//! Roles, password authentication (SCRAM-SHA-256 and clear text), the host rules and TLS,
//! with real clients: tokio-postgres for SCRAM, psql (libpq with OpenSSL) for TLS.

use std::process::Command;

use duet_tests::ClusterBuilder;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::{error_code, rows};

/// Connects as `user` with `password`; the client or the SQLSTATE of the refusal.
async fn login(
    addr: std::net::SocketAddr,
    user: &str,
    password: Option<&str>,
) -> Result<tokio_postgres::Client, (Option<SqlState>, String)> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user(user)
        .dbname("duetdb");
    if let Some(p) = password {
        config.password(p);
    }
    match config.connect(NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            Ok(client)
        }
        Err(e) => Err((
            e.code().cloned(),
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string()),
        )),
    }
}

fn code(r: Result<tokio_postgres::Client, (Option<SqlState>, String)>) -> SqlState {
    match r {
        Ok(_) => panic!("logged in"),
        Err((Some(c), _)) => c,
        Err((None, m)) => panic!("refused without a SQLSTATE: {m}"),
    }
}

/// A server that trusts the superuser from loopback (to create roles) and asks everyone
/// else for a password by SCRAM.
async fn scram_cluster(name: &str) -> duet_tests::Cluster {
    ClusterBuilder::new(name)
        .hba([
            "host all postgres 127.0.0.1/32 trust",
            "host all all all scram-sha-256",
        ])
        .unwrap()
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn scram_logins_check_the_password_and_the_role() {
    let cluster = scram_cluster("scram").await;
    let admin = cluster.client().await.unwrap();
    admin
        .batch_execute(
            "CREATE ROLE alice LOGIN PASSWORD 'pencil'; CREATE USER bob WITH PASSWORD 'b0b'; \
             CREATE ROLE carol PASSWORD 'c'; CREATE ROLE dave LOGIN",
        )
        .await
        .unwrap();
    let addr = cluster.addr();
    let alice = login(addr, "alice", Some("pencil")).await.unwrap();
    assert_eq!(
        rows(&alice, "SELECT current_user, session_user").await,
        vec![vec![Some("alice".into()), Some("alice".into())]]
    );
    // CREATE USER implies LOGIN.
    login(addr, "bob", Some("b0b")).await.unwrap();
    assert_eq!(
        code(login(addr, "alice", Some("Pencil")).await),
        SqlState::INVALID_PASSWORD
    );
    // No such role, or a role without a password: the same failure, telling nothing.
    assert_eq!(
        code(login(addr, "nobody", Some("x")).await),
        SqlState::INVALID_PASSWORD
    );
    assert_eq!(
        code(login(addr, "dave", Some("x")).await),
        SqlState::INVALID_PASSWORD
    );
    // The right password for a role without LOGIN.
    let (state, message) = login(addr, "carol", Some("c")).await.err().unwrap();
    assert_eq!(
        state,
        Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{message}"
    );
    assert!(message.contains("not permitted to log in"), "{message}");
    // A new password takes effect for the next login; the old one stops working.
    admin
        .batch_execute("ALTER ROLE alice PASSWORD 'pen'")
        .await
        .unwrap();
    assert_eq!(
        code(login(addr, "alice", Some("pencil")).await),
        SqlState::INVALID_PASSWORD
    );
    login(addr, "alice", Some("pen")).await.unwrap();
    // A password that has expired no longer logs in.
    admin
        .batch_execute("ALTER ROLE alice VALID UNTIL '2001-01-01'")
        .await
        .unwrap();
    assert_eq!(
        code(login(addr, "alice", Some("pen")).await),
        SqlState::INVALID_PASSWORD
    );
    admin
        .batch_execute("ALTER ROLE alice VALID UNTIL 'infinity'")
        .await
        .unwrap();
    login(addr, "alice", Some("pen")).await.unwrap();
    // The server kept running through every refusal.
    assert_eq!(rows(&admin, "SELECT 1").await, vec![vec![Some("1".into())]]);
    // No password or verifier reaches pg_roles; pg_authid keeps the verifier only.
    let shown = rows(
        &admin,
        "SELECT rolname, rolcanlogin, rolpassword FROM pg_roles WHERE rolname IN ('alice', 'carol') ORDER BY 1",
    )
    .await;
    assert_eq!(
        shown,
        vec![
            vec![
                Some("alice".into()),
                Some("t".into()),
                Some("********".into())
            ],
            vec![
                Some("carol".into()),
                Some("f".into()),
                Some("********".into())
            ],
        ]
    );
    let stored = rows(
        &admin,
        "SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'",
    )
    .await;
    let verifier = stored[0][0].clone().unwrap();
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
    assert!(!verifier.contains("pen"), "{verifier}");
}

/// A verifier made by PostgreSQL logs in to DuetDB (as `pg_dumpall` output or psql's
/// `\password` would carry it), and one made by DuetDB logs in to PostgreSQL.
#[tokio::test]
async fn scram_verifiers_move_between_postgresql_and_duetdb() {
    let Ok(admin_conn) = std::env::var("DUET_TEST_PG") else {
        eprintln!("DUET_TEST_PG is not set: the verifier exchange with PostgreSQL is skipped");
        return;
    };
    let (pg, conn) = tokio_postgres::connect(&admin_conn, NoTls).await.unwrap();
    tokio::spawn(conn);
    let role = format!("duet_verifier_{}", std::process::id());
    pg.batch_execute(&format!(
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE {role} LOGIN PASSWORD 'from pg'"
    ))
    .await
    .unwrap();
    let from_pg = rows(
        &pg,
        &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"),
    )
    .await[0][0]
        .clone()
        .unwrap();

    let cluster = scram_cluster("verifiers").await;
    let admin = cluster.client().await.unwrap();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; ALTER ROLE {role} PASSWORD '{from_pg}'; \
             CREATE ROLE made_here LOGIN PASSWORD 'from duet'"
        ))
        .await
        .unwrap();
    login(cluster.addr(), &role, Some("from pg")).await.unwrap();
    let from_duet = rows(
        &admin,
        "SELECT rolpassword FROM pg_authid WHERE rolname = 'made_here'",
    )
    .await[0][0]
        .clone()
        .unwrap();
    pg.batch_execute(&format!("ALTER ROLE {role} PASSWORD '{from_duet}'"))
        .await
        .unwrap();
    let mut config: tokio_postgres::Config = admin_conn.parse().unwrap();
    config.user(&role).password("from duet").dbname("postgres");
    let (_c, conn) = config.connect(NoTls).await.unwrap();
    drop(conn);
    pg.batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn host_rules_pick_the_method_and_refuse_as_postgresql_does() {
    let cluster = ClusterBuilder::new("hba")
        .hba([
            "host all mallory all reject",
            "host all carl all password",
            "host all all 127.0.0.1/32 trust",
        ])
        .unwrap()
        .build()
        .await
        .unwrap();
    let addr = cluster.addr();
    let admin = cluster.client().await.unwrap();
    admin
        .batch_execute("CREATE ROLE mallory LOGIN; CREATE ROLE carl LOGIN PASSWORD 'clear'")
        .await
        .unwrap();
    let (state, message) = login(addr, "mallory", None).await.err().unwrap();
    assert_eq!(state, Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION));
    assert!(
        message.contains("pg_hba.conf rejects connection"),
        "{message}"
    );
    // Trust still needs an existing role.
    let (state, message) = login(addr, "nosuch", None).await.err().unwrap();
    assert_eq!(state, Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION));
    assert!(
        message.contains("role \"nosuch\" does not exist"),
        "{message}"
    );
    // The clear-text method checks the password against the verifier.
    login(addr, "carl", Some("clear")).await.unwrap();
    assert_eq!(
        code(login(addr, "carl", Some("nope")).await),
        SqlState::INVALID_PASSWORD
    );

    // No rule for the client at all (IPv6 loopback is not in the list).
    let only_v6 = ClusterBuilder::new("hba-none")
        .hba(["host all all ::1/128 trust"])
        .unwrap()
        .build()
        .await
        .unwrap();
    let (state, message) = login(only_v6.addr(), "postgres", None).await.err().unwrap();
    assert_eq!(state, Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION));
    assert!(
        message.contains("no pg_hba.conf entry for host \"127.0.0.1\""),
        "{message}"
    );
}

#[tokio::test]
async fn role_statements_follow_postgresql_rules() {
    let cluster = ClusterBuilder::new("roles").build().await.unwrap();
    let admin = cluster.client().await.unwrap();
    admin
        .batch_execute(
            "CREATE ROLE plain LOGIN; CREATE ROLE manager LOGIN CREATEROLE; \
             CREATE ROLE limited LOGIN CONNECTION LIMIT 1",
        )
        .await
        .unwrap();
    assert_eq!(error_code(&admin, "CREATE ROLE plain").await, "42710");
    assert_eq!(error_code(&admin, "DROP ROLE nosuch").await, "42704");
    assert_eq!(error_code(&admin, "ALTER ROLE nosuch LOGIN").await, "42704");
    assert_eq!(error_code(&admin, "DROP ROLE postgres").await, "55006");
    assert_eq!(error_code(&admin, "CREATE ROLE pg_mine").await, "42939");
    assert_eq!(
        error_code(&admin, "CREATE ROLE m IN ROLE plain").await,
        "0A000"
    );
    admin
        .batch_execute("DROP ROLE IF EXISTS nosuch")
        .await
        .unwrap();

    let addr = cluster.addr();
    let plain = login(addr, "plain", None).await.unwrap();
    assert_eq!(error_code(&plain, "CREATE ROLE x").await, "42501");
    assert_eq!(error_code(&plain, "DROP ROLE manager").await, "42501");
    // A role may change its own password without CREATEROLE, nothing else.
    plain
        .batch_execute("ALTER ROLE plain PASSWORD 'mine'")
        .await
        .unwrap();
    assert_eq!(
        error_code(&plain, "ALTER ROLE plain CREATEDB").await,
        "42501"
    );
    let manager = login(addr, "manager", None).await.unwrap();
    manager
        .batch_execute("CREATE ROLE helper; ALTER ROLE helper RENAME TO aide; DROP ROLE aide")
        .await
        .unwrap();
    assert_eq!(
        error_code(&manager, "CREATE ROLE boss SUPERUSER").await,
        "42501"
    );
    assert_eq!(
        error_code(&manager, "ALTER ROLE postgres PASSWORD 'x'").await,
        "42501"
    );
    assert_eq!(error_code(&manager, "DROP ROLE manager").await, "55006");

    // CONNECTION LIMIT counts the role's open connections.
    let first = login(addr, "limited", None).await.unwrap();
    let (state, message) = login(addr, "limited", None).await.err().unwrap();
    assert_eq!(state, Some(SqlState::TOO_MANY_CONNECTIONS), "{message}");
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        if let Ok(c) = login(addr, "limited", None).await {
            again = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        again.is_some(),
        "the slot came back when the connection closed"
    );

    // Roles are catalog entries: they survive a restart.
    drop((admin, plain, manager, again));
    let mut cluster = cluster;
    cluster.restart().await.unwrap();
    let admin = cluster.client().await.unwrap();
    assert_eq!(
        rows(
            &admin,
            "SELECT rolname, rolcreaterole, rolconnlimit FROM pg_roles WHERE rolname <> 'postgres' ORDER BY 1",
        )
        .await,
        vec![
            vec![Some("limited".into()), Some("f".into()), Some("1".into())],
            vec![Some("manager".into()), Some("t".into()), Some("-1".into())],
            vec![Some("plain".into()), Some("f".into()), Some("-1".into())],
        ]
    );
    let verifier = rows(
        &admin,
        "SELECT rolpassword FROM pg_authid WHERE rolname = 'plain'",
    )
    .await;
    assert!(verifier[0][0]
        .as_deref()
        .unwrap()
        .starts_with("SCRAM-SHA-256$"));
    // psql's \du lists them with their attributes.
    let conn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=duetdb",
        cluster.addr().port()
    );
    let du = tokio::task::spawn_blocking(move || psql(&conn, "", "\\du"))
        .await
        .unwrap()
        .unwrap();
    let lines: Vec<&str> = du.lines().collect();
    assert!(lines.contains(&"limited|1 connection|{}"), "{du}");
    assert!(lines.contains(&"manager|Create role|{}"), "{du}");
    assert!(
        lines.contains(&"postgres|Superuser, Create role, Create DB, Replication, Bypass RLS|{}"),
        "{du}"
    );
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = dir.join("server.crt");
    let key_path = dir.join("server.key");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn psql(conninfo: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-d", conninfo, "-c", sql])
        .env("PGPASSWORD", password)
        .output()
        .expect("psql runs (postgresql-client)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[tokio::test]
async fn tls_with_verify_full_and_scram_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let cluster = ClusterBuilder::new("tls")
        .hba([
            "hostssl all all all scram-sha-256",
            "hostnossl all postgres 127.0.0.1/32 trust",
            "hostnossl all all all reject",
        ])
        .unwrap()
        .tls(&cert, &key)
        .unwrap()
        .build()
        .await
        .unwrap();
    let admin = cluster.client().await.unwrap();
    admin
        .batch_execute("CREATE ROLE app LOGIN PASSWORD 's3cret'")
        .await
        .unwrap();
    let port = cluster.addr().port();
    let base = format!("host=localhost hostaddr=127.0.0.1 port={port} user=app dbname=duetdb");
    let root = cert.display();
    // verify-full: the client checks the chain against our certificate and the host name.
    let out = tokio::task::spawn_blocking({
        let conn = format!("{base} sslmode=verify-full sslrootcert={root}");
        move || psql(&conn, "s3cret", "SELECT current_user, 40 + 2")
    })
    .await
    .unwrap();
    assert_eq!(out.unwrap(), "app|42");
    // Without TLS the rules refuse the same role.
    let err = tokio::task::spawn_blocking({
        let conn = format!("{base} sslmode=disable");
        move || psql(&conn, "s3cret", "SELECT 1")
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        err.contains("pg_hba.conf rejects connection") && err.contains("no encryption"),
        "{err}"
    );
    // A wrong password over TLS.
    let err = tokio::task::spawn_blocking({
        let conn = format!("{base} sslmode=require");
        move || psql(&conn, "wrong", "SELECT 1")
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        err.contains("password authentication failed for user \"app\""),
        "{err}"
    );
    // verify-full against another name fails on the client's side.
    let err = tokio::task::spawn_blocking({
        let conn = format!(
            "host=duet.invalid hostaddr=127.0.0.1 port={port} user=app dbname=duetdb sslmode=verify-full sslrootcert={root}"
        );
        move || psql(&conn, "s3cret", "SELECT 1")
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        err.contains("does not match host name") || err.contains("certificate"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_are_separate_and_created_and_dropped_by_sql() {
    let cluster = ClusterBuilder::new("databases").build().await.unwrap();
    let admin = cluster.client().await.unwrap();
    admin
        .batch_execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1); CREATE DATABASE other")
        .await
        .unwrap();
    assert_eq!(error_code(&admin, "CREATE DATABASE other").await, "42P04");
    assert_eq!(
        error_code(&admin, "BEGIN; CREATE DATABASE x").await,
        "25001"
    );
    admin.batch_execute("ROLLBACK").await.unwrap();
    // PostgreSQL's options, as test tooling sends them: what every DuetDB database is
    // (UTF8, C ordering, template0/1) is accepted; an unknown owner or template is
    // PostgreSQL's error; anything else is refused rather than ignored.
    admin
        .batch_execute(
            "CREATE DATABASE opts WITH OWNER = postgres ENCODING 'UTF8' TEMPLATE template0 \
             LC_COLLATE = 'C' CONNECTION LIMIT = -1; DROP DATABASE opts",
        )
        .await
        .unwrap();
    for (sql, state) in [
        ("CREATE DATABASE x OWNER nobody_here", "42704"),
        ("CREATE DATABASE x TEMPLATE no_such_db", "3D000"),
        ("CREATE DATABASE x COLOUR 'blue'", "42601"),
        ("CREATE DATABASE x ENCODING 'LATIN1'", "0A000"),
        ("CREATE DATABASE x LC_COLLATE 'en_US.UTF-8'", "0A000"),
        ("CREATE DATABASE x TEMPLATE other", "0A000"),
    ] {
        assert_eq!(error_code(&admin, sql).await, state, "{sql}");
    }
    let connect = |db: &'static str| {
        let addr = cluster.addr();
        async move {
            let mut config = tokio_postgres::Config::new();
            config
                .host(addr.ip().to_string())
                .port(addr.port())
                .user("postgres")
                .dbname(db);
            config.connect(NoTls).await.map(|(c, conn)| {
                tokio::spawn(conn);
                c
            })
        }
    };
    let other = connect("other").await.unwrap();
    assert_eq!(
        rows(&other, "SELECT current_database()").await,
        vec![vec![Some("other".into())]]
    );
    // Its own tables: `t` of the first database is not there, and this `t` is not there.
    assert_eq!(error_code(&other, "SELECT * FROM t").await, "42P01");
    other
        .batch_execute("CREATE TABLE t (b text); INSERT INTO t VALUES ('x'), ('y')")
        .await
        .unwrap();
    assert_eq!(
        rows(&admin, "SELECT count(*) FROM t").await,
        vec![vec![Some("1".into())]]
    );
    // Roles belong to the server: one created here logs in to either database.
    other
        .batch_execute("CREATE ROLE shared_role LOGIN")
        .await
        .unwrap();
    assert_eq!(
        rows(
            &admin,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'shared_role'"
        )
        .await,
        vec![vec![Some("1".into())]]
    );
    assert_eq!(
        rows(&admin, "SELECT datname FROM pg_database ORDER BY 1").await,
        vec![
            vec![Some("duetdb".into())],
            vec![Some("other".into())],
            vec![Some("postgres".into())]
        ]
    );
    // Not while someone is connected; not the one this session is in.
    assert_eq!(error_code(&admin, "DROP DATABASE other").await, "55006");
    assert_eq!(error_code(&other, "DROP DATABASE other").await, "55006");
    drop(other);
    admin.batch_execute("DROP DATABASE other").await.unwrap();
    let (state, message) = match connect("other").await {
        Ok(_) => panic!("connected to a dropped database"),
        Err(e) => (e.code().cloned(), e.to_string()),
    };
    assert_eq!(state, Some(SqlState::INVALID_CATALOG_NAME), "{message}");
    // A new database of the same name starts empty.
    admin.batch_execute("CREATE DATABASE other").await.unwrap();
    let again = connect("other").await.unwrap();
    assert_eq!(error_code(&again, "SELECT * FROM t").await, "42P01");
    // WITH (FORCE) terminates the sessions connected to it (FATAL 57P01), then drops it.
    assert_eq!(
        error_code(&admin, "DROP DATABASE other WITH (FORCE, NOWAIT)").await,
        "42601"
    );
    assert_eq!(
        error_code(&admin, "DROP DATABASE other CASCADE").await,
        "42601"
    );
    admin
        .batch_execute("DROP DATABASE other WITH (FORCE)")
        .await
        .unwrap();
    let err = again.batch_execute("SELECT 1").await.unwrap_err();
    assert!(
        err.code() == Some(&SqlState::ADMIN_SHUTDOWN) || again.is_closed(),
        "{err}"
    );
    // The client sees the FATAL before its connection task reads the server's close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !again.is_closed() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server kept the session open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    admin.batch_execute("CREATE DATABASE other").await.unwrap();
    // pg_terminate_backend ends a connection by pid; pg_backend_pid is the connection's.
    let victim = connect("other").await.unwrap();
    let pid = rows(&victim, "SELECT pg_backend_pid()").await[0][0]
        .clone()
        .unwrap();
    assert_ne!(
        rows(&admin, "SELECT pg_backend_pid()").await[0][0],
        Some(pid.clone())
    );
    assert_eq!(
        rows(&admin, &format!("SELECT pg_terminate_backend({pid})")).await,
        vec![vec![Some("t".into())]]
    );
    assert!(victim.batch_execute("SELECT 1").await.is_err());
    assert_eq!(
        rows(&admin, &format!("SELECT pg_terminate_backend({pid})")).await,
        vec![vec![Some("f".into())]]
    );
    admin.batch_execute("DROP DATABASE other").await.unwrap();
    // `postgres` exists as in any PostgreSQL server.
    let pg = connect("postgres").await.unwrap();
    assert_eq!(
        rows(&pg, "SELECT current_database()").await,
        vec![vec![Some("postgres".into())]]
    );
    assert_eq!(
        error_code(
            &admin,
            "DROP DATABASE IF EXISTS nosuch; DROP DATABASE nosuch"
        )
        .await,
        "3D000"
    );
}

/// A client that pipelines a query behind a refused login gets nothing run: pgwire reads on
/// after a FATAL, so the session refuses every statement until login has finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_pipelined_behind_a_refused_login_does_not_run() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = ClusterBuilder::new("pipelined")
        .hba([
            "host all postgres 127.0.0.1/32 trust",
            "host all all all reject",
        ])
        .unwrap()
        .build()
        .await
        .unwrap();
    let mut startup = Vec::new();
    startup.extend_from_slice(&196_608i32.to_be_bytes());
    for s in ["user", "mallory", "database", "duetdb"] {
        startup.extend_from_slice(s.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let mut wire = ((startup.len() + 4) as i32).to_be_bytes().to_vec();
    wire.extend_from_slice(&startup);
    let sql = b"CREATE TABLE pwned (a int)\0";
    wire.push(b'Q');
    wire.extend_from_slice(&((sql.len() + 4) as i32).to_be_bytes());
    wire.extend_from_slice(sql);
    let mut socket = tokio::net::TcpStream::connect(cluster.addr())
        .await
        .unwrap();
    socket.write_all(&wire).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        socket.read_to_end(&mut reply),
    )
    .await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("28000"), "{text}");
    let admin = cluster.client().await.unwrap();
    assert_eq!(
        rows(
            &admin,
            "SELECT count(*) FROM pg_class WHERE relname = 'pwned'"
        )
        .await,
        vec![vec![Some("0".into())]]
    );
}

/// Serves every connection here, and believes PROXY headers from loopback only, as a
/// cluster member believes its fellow members' relays.
struct ServeHere;

impl duet_sql::Route for ServeHere {
    fn route(&self) -> Result<Option<std::net::SocketAddr>, String> {
        Ok(None)
    }
    fn relays_from(&self, ip: std::net::IpAddr) -> bool {
        ip.is_loopback()
    }
}

/// Connects with a PROXY protocol line naming `client` first, as a relaying member does.
async fn login_via_relay(
    cluster: &duet_tests::Cluster,
    client: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(cluster.addr())
        .await
        .unwrap();
    s.write_all(
        format!(
            "PROXY TCP4 {client} 127.0.0.1 40000 {}\r\n",
            cluster.addr().port()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let config: tokio_postgres::Config = "user=postgres dbname=duetdb".parse().unwrap();
    let (c, conn) = config.connect_raw(s, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(c)
}

/// A connection another member relayed is judged by the client's address, which the relay
/// names in a PROXY line: the relay's own (loopback) address would have let any client in.
#[tokio::test]
async fn host_rules_judge_a_relayed_connection_by_its_client() {
    let cluster = ClusterBuilder::new("relay-hba")
        .hba(["host all all 10.1.2.3/32 trust", "host all all all reject"])
        .unwrap()
        .route(std::sync::Arc::new(ServeHere))
        .build()
        .await
        .unwrap();
    let c = login_via_relay(&cluster, "10.1.2.3").await.unwrap();
    assert_eq!(crate::int(&c, "SELECT 1::bigint").await, 1);
    let e = login_via_relay(&cluster, "10.9.9.9").await.err().unwrap();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("28000"), "{e:?}");
    // Without the line, the loopback client itself is judged (and rejected here).
    let e = tokio_postgres::connect(&cluster.connection_string(), tokio_postgres::NoTls)
        .await
        .err()
        .unwrap();
    assert_eq!(crate::sqlstate(&e).as_deref(), Some("28000"), "{e:?}");
}
