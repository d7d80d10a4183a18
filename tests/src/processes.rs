//! A cluster of DuetDB member processes on this machine, for tests of failover and
//! partitions: each member is a child process of the test binary, running one test that
//! calls [`serve_member_from_env`] (as `duetdb --node-id N --initial-cluster …` serves),
//! with Raft over TCP on loopback between them.
//!
//! ```no_run
//! // In the test binary: the member processes' entry point…
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! #[ignore = "a member process of the cluster tests"]
//! async fn child_member() {
//!     duet_tests::processes::serve_member_from_env().await;
//! }
//! // …and a test that starts three of them.
//! # async fn demo() {
//! let mut c = duet_tests::ClusterProcesses::start(&["row", "row", "row+column"], "child_member").await;
//! let leader = c.leader(1).await;
//! c.kill(leader); // kill -9
//! # }
//! ```
//!
//! Faults: [`ClusterProcesses::partition`] cuts a member off from the others, both ways
//! (each member process watches an `isolate` file in its directory and drops the Raft
//! messages to and from the members it lists).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The member process's side: serves the member the environment describes
/// (`DUET_MEMBER_DIR`, `DUET_MEMBER_ID`, `DUET_MEMBER_CLUSTER`, `DUET_MEMBER_LISTEN`) and
/// applies the test's network faults (its `isolate` file), until killed. Returns at once without that environment
/// (the entry-point test run on its own). Run it on a multi-threaded runtime, as the
/// `duetdb` binary does: a row-lock wait blocks its thread.
pub async fn serve_member_from_env() {
    let Ok(dir) = std::env::var("DUET_MEMBER_DIR") else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let id: u64 = var("DUET_MEMBER_ID").parse().unwrap();
    let listen = var("DUET_MEMBER_LISTEN").parse().unwrap();
    let cluster =
        duetdb::cluster::ClusterConfig::new(id, None, &var("DUET_MEMBER_CLUSTER")).unwrap();
    let (dir_path, options) = (Path::new(&dir), duet_sql::ServerOptions::default());
    // The member and its HTTP endpoints (kept until the process is killed; the endpoints'
    // address in the `http` file) and its Raft transport.
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let (transport, endpoints, _member): (_, _, Box<dyn std::any::Any>) = if cluster.me().row {
        let served = duetdb::cluster::serve(dir_path, Some(&cluster), listen, options)
            .await
            .unwrap();
        let h = duetdb::HttpServer::start(served.0.clone(), http)
            .await
            .unwrap();
        (served.0.cluster().unwrap().1.clone(), h, Box::new(served))
    } else {
        let served = duetdb::cluster::serve_column(dir_path, &cluster, listen, options)
            .await
            .unwrap();
        let h = duetdb::HttpServer::start_column(served.0.clone(), http)
            .await
            .unwrap();
        (served.0.cluster().1.clone(), h, Box::new(served))
    };
    std::fs::write(dir_path.join("http"), endpoints.local_addr().to_string()).unwrap();
    std::fs::write(PathBuf::from(&dir).join("ready"), "").unwrap();
    let mut isolated = String::new();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = std::fs::read_to_string(PathBuf::from(&dir).join("isolate")).unwrap_or_default();
        if now != isolated {
            transport.heal();
            // A member's learner (its other Raft id) is cut off with it.
            let peers = |id: u64| {
                let learner = cluster
                    .members
                    .iter()
                    .find(|m| m.id == id)
                    .and_then(|m| m.learner_raft_id());
                std::iter::once(id).chain(learner).collect::<Vec<u64>>()
            };
            // `N`: cut off from member N both ways; `>N`: messages to N dropped; `<N`:
            // messages from N dropped; `delay=MS`: every arriving message held MS ms;
            // `lose=P`: P percent of arriving messages dropped at random.
            for token in now.split_whitespace() {
                if let Some(ms) = token.strip_prefix("delay=") {
                    transport.delay(Duration::from_millis(ms.parse().unwrap()));
                } else if let Some(percent) = token.strip_prefix("lose=") {
                    transport.lose(percent.parse::<f64>().unwrap() / 100.0);
                } else if let Some(id) = token.strip_prefix('>') {
                    transport.mute(&peers(id.parse().unwrap()));
                } else if let Some(id) = token.strip_prefix('<') {
                    transport.deafen(&[id.parse().unwrap()]);
                } else {
                    transport.isolate(&peers(token.parse().unwrap()));
                }
            }
            // Told back, so that the test acts only once the fault is in place.
            write_atomically(&PathBuf::from(&dir).join("isolate.applied"), &now);
            isolated = now;
        }
    }
}

/// Writes `text` to `path` through a rename, so a reader sees the old or the new text,
/// never a part.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
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

/// Member processes of one cluster (killed when dropped).
pub struct ClusterProcesses {
    spec: String,
    entry: String,
    members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl ClusterProcesses {
    /// Starts one member per entry of `kinds` (`row`, `row+column`), ids from 1, each
    /// running the test named `entry` of this test binary (which calls
    /// [`serve_member_from_env`]); returns once every member serves SQL.
    pub async fn start(kinds: &[&str], entry: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{}={k}@127.0.0.1:{}", i + 1, free_port()))
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
        let mut c = ClusterProcesses {
            spec,
            entry: entry.to_string(),
            members,
            _dir: dir,
        };
        let ids = c.ids();
        for id in &ids {
            c.spawn(*id);
        }
        for id in &ids {
            c.wait_ready(*id).await;
        }
        c
    }

    /// The members' ids.
    pub fn ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    fn member(&mut self, id: u64) -> &mut Member {
        self.members.iter_mut().find(|m| m.id == id).unwrap()
    }

    /// Member `id`'s SQL port.
    pub fn sql_port(&mut self, id: u64) -> u16 {
        self.member(id).sql_port
    }

    /// Starts member `id`'s process (again, after [`ClusterProcesses::kill`]: same data,
    /// same flags); see [`ClusterProcesses::wait_ready`].
    pub fn spawn(&mut self, id: u64) {
        let (spec, entry) = (self.spec.clone(), self.entry.clone());
        let m = self.member(id);
        std::fs::create_dir_all(&m.dir).unwrap();
        let _ = std::fs::remove_file(m.dir.join("ready"));
        let _ = std::fs::remove_file(m.dir.join("isolate.applied"));
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &entry, "--ignored", "--nocapture"])
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

    /// Waits until member `id` serves SQL.
    pub async fn wait_ready(&mut self, id: u64) {
        let ready = self.member(id).dir.join("ready");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "member {id} did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET path` on member `id`'s HTTP endpoints (the body of a 200 answer).
    pub async fn http_get(&mut self, id: u64, path: &str) -> anyhow::Result<String> {
        let file = self.member(id).dir.join("http");
        let addr = std::fs::read_to_string(file)?.parse()?;
        crate::cluster::http_get(addr, path).await
    }

    /// `kill -9` of member `id`'s process.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.member(id).child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Sets the faults of member `id`'s transport to `faults` (the tokens read by
    /// [`serve_member_from_env`]) and waits until its process applied them; a member that
    /// is not running takes them when it starts.
    async fn set_faults(&mut self, id: u64, faults: String) {
        let m = self.member(id);
        write_atomically(&m.dir.join("isolate"), &faults);
        if m.child.is_none() {
            return;
        }
        let applied = m.dir.join("isolate.applied");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = std::fs::read_to_string(&applied).unwrap_or_default();
            if now == faults {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "member {id} did not apply the faults {faults:?} (it has {now:?})"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Cuts member `id` off from the others, both ways (`heal`: lets everything through);
    /// returns once every running member applied it.
    pub async fn partition(&mut self, id: u64, heal: bool) {
        let ids = self.ids();
        for m in &ids {
            let cut: Vec<String> = if heal {
                vec![]
            } else if *m == id {
                ids.iter()
                    .filter(|o| **o != id)
                    .map(|o| o.to_string())
                    .collect()
            } else {
                vec![id.to_string()]
            };
            self.set_faults(*m, cut.join(" ")).await;
        }
    }

    /// Drops the messages from member `from` to member `to` (one direction of a
    /// partition); [`ClusterProcesses::heal`] lets them through again.
    pub async fn cut_one_way(&mut self, from: u64, to: u64) {
        let file = self.member(from).dir.join("isolate");
        let mut faults = std::fs::read_to_string(&file).unwrap_or_default();
        faults.push_str(&format!(" >{to}"));
        self.set_faults(from, faults).await;
    }

    /// Holds every Raft message `ms` milliseconds before it is delivered and drops
    /// `lose_percent` of them at random, on every link.
    pub async fn degrade(&mut self, ms: u64, lose_percent: u32) {
        for id in self.ids() {
            self.set_faults(id, format!("delay={ms} lose={lose_percent}"))
                .await;
        }
    }

    /// Removes every fault: partitions, one-way cuts, delays and losses.
    pub async fn heal(&mut self) {
        for id in self.ids() {
            self.set_faults(id, String::new()).await;
        }
    }

    /// A client of member `id` (served there, or relayed to the leader).
    pub async fn client(
        &mut self,
        id: u64,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let port = self.sql_port(id);
        let (c, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=duetdb connect_timeout=10"),
            tokio_postgres::NoTls,
        )
        .await?;
        tokio::spawn(conn);
        Ok(c)
    }

    /// The leader, as the member that serves SQL on `via` reports it.
    pub async fn leader(&mut self, via: u64) -> u64 {
        let c = self.client(via).await.unwrap();
        let id: i64 = c
            .query_one("SELECT member_id FROM duet.cluster WHERE leader", &[])
            .await
            .unwrap()
            .get(0);
        id as u64
    }
}

impl Drop for ClusterProcesses {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
