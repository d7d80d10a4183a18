//! A cluster of processes: three members, each a child process (this test binary serving
//! one member, as `duetdb --node-id N --initial-cluster …` does), Raft over TCP between
//! them, SQL on any member, and `kill -9` of the leader.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Not a test on its own: one member process of the tests below. Sessions run on a
/// multi-threaded runtime, as in the `duetdb` binary (a row-lock wait blocks its thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "run only as a member process of the cluster tests"]
async fn child_member() {
    let Ok(dir) = std::env::var("DUET_MEMBER_DIR") else {
        return;
    };
    let id: u64 = std::env::var("DUET_MEMBER_ID").unwrap().parse().unwrap();
    let spec = std::env::var("DUET_MEMBER_CLUSTER").unwrap();
    let listen = std::env::var("DUET_MEMBER_LISTEN")
        .unwrap()
        .parse()
        .unwrap();
    let cluster = duetdb::cluster::ClusterConfig::new(id, None, &spec).unwrap();
    let (node, _server) = duetdb::cluster::serve(
        Path::new(&dir),
        Some(&cluster),
        listen,
        duet_sql::ServerOptions::default(),
    )
    .await
    .unwrap();
    std::fs::write(PathBuf::from(&dir).join("ready"), "").unwrap();
    // Faults from the test: `DIR/isolate` lists the members whose messages this one drops
    // (both ways); without the file, every message goes through.
    let transport = node.cluster().unwrap().1.clone();
    let mut isolated = String::new();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = std::fs::read_to_string(PathBuf::from(&dir).join("isolate")).unwrap_or_default();
        if now != isolated {
            transport.heal();
            let ids: Vec<u64> = now
                .split_whitespace()
                .filter_map(|i| i.parse().ok())
                .collect();
            transport.isolate(&ids);
            isolated = now;
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Member {
    id: u64,
    dir: PathBuf,
    sql_port: u16,
    child: Option<Child>,
}

struct ProcessCluster {
    spec: String,
    members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl ProcessCluster {
    /// Members 1 and 2 hold the row replica, member 3 both replicas.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kinds = ["row", "row", "row+column"];
        let raft: Vec<u16> = kinds.iter().map(|_| free_port()).collect();
        let spec = kinds
            .iter()
            .zip(&raft)
            .enumerate()
            .map(|(i, (k, p))| format!("{}={k}@127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let members = (1..=kinds.len() as u64)
            .map(|id| Member {
                id,
                dir: dir.path().join(format!("m{id}")),
                sql_port: free_port(),
                child: None,
            })
            .collect();
        let mut c = ProcessCluster {
            spec,
            members,
            _dir: dir,
        };
        for id in 1..=3 {
            c.spawn(id);
        }
        for id in 1..=3 {
            c.wait_ready(id).await;
        }
        c
    }

    fn member(&mut self, id: u64) -> &mut Member {
        self.members.iter_mut().find(|m| m.id == id).unwrap()
    }

    fn spawn(&mut self, id: u64) {
        let spec = self.spec.clone();
        let m = self.member(id);
        std::fs::create_dir_all(&m.dir).unwrap();
        let _ = std::fs::remove_file(m.dir.join("ready"));
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "cluster::child_member",
                "--ignored",
                "--nocapture",
            ])
            .env("DUET_MEMBER_DIR", &m.dir)
            .env("DUET_MEMBER_ID", id.to_string())
            .env("DUET_MEMBER_CLUSTER", spec)
            .env("DUET_MEMBER_LISTEN", format!("127.0.0.1:{}", m.sql_port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        m.child = Some(child);
    }

    async fn wait_ready(&mut self, id: u64) {
        let ready = self.member(id).dir.join("ready");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "member {id} did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9` of member `id`'s process.
    fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.member(id).child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Cuts member `id` off from the others, both ways (`heal`: lets everything through).
    fn partition(&mut self, id: u64, heal: bool) {
        let ids: Vec<u64> = self.members.iter().map(|m| m.id).collect();
        for m in &self.members {
            let file = m.dir.join("isolate");
            let cut: Vec<String> = if heal {
                vec![]
            } else if m.id == id {
                ids.iter()
                    .filter(|o| **o != id)
                    .map(|o| o.to_string())
                    .collect()
            } else {
                vec![id.to_string()]
            };
            std::fs::write(file, cut.join(" ")).unwrap();
        }
    }

    async fn client(&mut self, id: u64) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let port = self.member(id).sql_port;
        let (c, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=duetdb connect_timeout=10"),
            tokio_postgres::NoTls,
        )
        .await?;
        tokio::spawn(conn);
        Ok(c)
    }

    /// The leader, as the member that serves SQL on `via` reports it.
    async fn leader(&mut self, via: u64) -> u64 {
        let c = self.client(via).await.unwrap();
        crate::int(&c, "SELECT member_id FROM duet.cluster WHERE leader").await as u64
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Inserts `key` through member `via`, retrying a connection error or a retryable error
/// until `deadline`; true once acknowledged.
async fn insert(c: &mut ProcessCluster, via: u64, key: i32, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if let Ok(client) = c.client(via).await {
            match client
                .execute("INSERT INTO acked VALUES ($1)", &[&key])
                .await
            {
                Ok(_) => return true,
                Err(e) => {
                    let code = e.code().map(|s| s.code().to_string());
                    // A retried insert that was in fact committed shows as a duplicate.
                    if code.as_deref() == Some("23505") {
                        return true;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn keys(c: &mut ProcessCluster, via: u64) -> BTreeSet<i32> {
    let client = c.client(via).await.unwrap();
    client
        .query("SELECT k FROM acked", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn sql_on_any_member_and_kill_9_of_the_leader_loses_no_acknowledged_commit() {
    let mut c = ProcessCluster::start().await;
    let first = c.client(1).await.unwrap();
    first
        .batch_execute("CREATE TABLE acked (k int PRIMARY KEY)")
        .await
        .unwrap();
    // Writes through every member: the others relay to the leader.
    let mut acknowledged = BTreeSet::new();
    for k in 0..60 {
        let via = 1 + (k as u64 % 3);
        assert!(insert(&mut c, via, k, Instant::now() + Duration::from_secs(10)).await);
        acknowledged.insert(k);
    }
    for via in 1..=3 {
        assert_eq!(
            keys(&mut c, via).await,
            acknowledged,
            "read through member {via}"
        );
    }
    // Only the replicated database exists in a cluster.
    let other = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            c.member(2).sql_port
        ),
        tokio_postgres::NoTls,
    )
    .await;
    let e = other.err().expect("the postgres database was served");
    assert_eq!(e.code().map(|s| s.code()), Some("0A000"), "{e}");

    // Bank transfers through every member run across the kill: the total never changes in
    // any snapshot a reader sees, before, during or after the failover.
    first
        .batch_execute(
            "CREATE TABLE bank (id int PRIMARY KEY, balance int NOT NULL);
             INSERT INTO bank SELECT g, 100 FROM generate_series(1, 10) g",
        )
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ports: Vec<u16> = (1..=3).map(|id| c.member(id).sql_port).collect();
    let mut workers = Vec::new();
    for w in 0..4u32 {
        let (stop, ports) = (stop.clone(), ports.clone());
        workers.push(tokio::spawn(async move {
            let (mut moved, mut sums) = (0u32, 0u32);
            let mut i = w;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let port = ports[(i as usize) % ports.len()];
                let Ok((client, conn)) = tokio_postgres::connect(
                    &format!("host=127.0.0.1 port={port} user=postgres dbname=duetdb"),
                    tokio_postgres::NoTls,
                )
                .await
                else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                tokio::spawn(conn);
                for _ in 0..20 {
                    if w == 0 {
                        // The reader: one snapshot, the whole bank.
                        match client
                            .query_one("SELECT sum(balance)::int FROM bank", &[])
                            .await
                        {
                            Ok(r) => {
                                assert_eq!(
                                    r.get::<_, i32>(0),
                                    1000,
                                    "a reader saw money appear or vanish"
                                );
                                sums += 1;
                            }
                            Err(_) => break,
                        }
                    } else {
                        let (from, to) = (1 + (i % 10) as i32, 1 + ((i * 7 + w) % 10) as i32);
                        if from == to {
                            continue;
                        }
                        let sql = format!(
                            "BEGIN; UPDATE bank SET balance = balance - 1 WHERE id = {from}; \
                             UPDATE bank SET balance = balance + 1 WHERE id = {to}; COMMIT"
                        );
                        match client.batch_execute(&sql).await {
                            Ok(()) => moved += 1,
                            Err(e) if e.is_closed() => break,
                            Err(_) => {
                                let _ = client.batch_execute("ROLLBACK").await;
                            }
                        }
                    }
                }
            }
            (moved, sums)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // kill -9 the leader; a session that was relayed to it loses its connection.
    let old = c.leader(1).await;
    let survivor = if old == 1 { 2 } else { 1 };
    let relayed = c.client(survivor).await.unwrap();
    c.kill(old);
    let killed = Instant::now();
    let e = relayed
        .simple_query("SELECT 1")
        .await
        .expect_err("a session on the killed leader went on");
    assert!(e.is_closed() || e.code().is_none(), "{e}");
    assert!(
        insert(
            &mut c,
            survivor,
            1000,
            Instant::now() + Duration::from_secs(20)
        )
        .await
    );
    eprintln!(
        "cluster: first commit through member {survivor} {:?} after kill -9 of leader {old}",
        killed.elapsed()
    );
    acknowledged.insert(1000);
    for k in 1001..1030 {
        assert!(
            insert(
                &mut c,
                survivor,
                k,
                Instant::now() + Duration::from_secs(10)
            )
            .await
        );
        acknowledged.insert(k);
    }
    let new = c.leader(survivor).await;
    assert_ne!(new, old);
    assert_eq!(keys(&mut c, survivor).await, acknowledged);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut moved, mut sums) = (0, 0);
    for w in workers {
        let (m, s) = w.await.unwrap();
        moved += m;
        sums += s;
    }
    let total = crate::int(
        &c.client(survivor).await.unwrap(),
        "SELECT sum(balance) FROM bank",
    )
    .await;
    assert_eq!(total, 1000);
    eprintln!("cluster: {moved} transfers and {sums} consistent sums across the failover");
    assert!(moved > 0 && sums > 0);

    // The killed member comes back with its log and catches up; then the second leader is
    // killed, and what every leader acknowledged is still there.
    c.spawn(old);
    c.wait_ready(old).await;
    assert!(insert(&mut c, old, 2000, Instant::now() + Duration::from_secs(20)).await);
    acknowledged.insert(2000);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let client = c.client(old).await.unwrap();
        let caught_up = crate::int(
            &client,
            "SELECT count(*) FROM duet.cluster WHERE state = 'up'",
        )
        .await;
        if caught_up == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the returned member did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.kill(new);
    let last = [1, 2, 3].into_iter().find(|m| *m != new).unwrap();
    assert!(insert(&mut c, last, 3000, Instant::now() + Duration::from_secs(20)).await);
    acknowledged.insert(3000);
    assert_eq!(keys(&mut c, last).await, acknowledged);
}

#[tokio::test]
async fn a_partitioned_leader_serves_no_stale_read_and_the_majority_goes_on() {
    let mut c = ProcessCluster::start().await;
    let first = c.client(1).await.unwrap();
    first
        .batch_execute("CREATE TABLE acked (k int PRIMARY KEY); INSERT INTO acked VALUES (1)")
        .await
        .unwrap();
    let old = c.leader(1).await;
    // A session served by the leader itself, then the leader is cut off from the others.
    let on_old = c.client(old).await.unwrap();
    assert_eq!(crate::int(&on_old, "SELECT count(*) FROM acked").await, 1);
    c.partition(old, false);
    let majority = [1, 2, 3].into_iter().find(|m| *m != old).unwrap();
    assert!(
        insert(
            &mut c,
            majority,
            2,
            Instant::now() + Duration::from_secs(20)
        )
        .await
    );
    // The majority committed 2: the cut-off member must not answer 1 any more, on the old
    // session or on a new one (it refuses, or it cannot serve at all).
    match on_old.query_one("SELECT count(*) FROM acked", &[]).await {
        Ok(r) => panic!("a stale read on the cut-off leader: {}", r.get::<_, i64>(0)),
        Err(e) => {
            let code = e.code().map(|s| s.code().to_string());
            assert!(
                e.is_closed()
                    || code.as_deref() == Some("40001")
                    || code.as_deref() == Some("57P01"),
                "{e}"
            );
        }
    }
    if let Ok(fresh) = c.client(old).await {
        if let Ok(r) = fresh.query_one("SELECT count(*) FROM acked", &[]).await {
            panic!("a stale read on the cut-off member: {}", r.get::<_, i64>(0));
        }
    }
    // Healed, it follows the new leader and answers with the majority's writes.
    c.partition(old, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(client) = c.client(old).await {
            if let Ok(r) = client.query_one("SELECT count(*) FROM acked", &[]).await {
                assert_eq!(r.get::<_, i64>(0), 2);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the healed member did not serve again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
