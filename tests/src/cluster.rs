//! The in-process cluster harness.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use duet_sql::Server;
use duetdb::{DuetNode, HttpServer, NodeRef};
use tokio::runtime::Runtime;

/// Builds a [`Cluster`].
pub struct ClusterBuilder {
    name: String,
    data_dir: Option<PathBuf>,
    port: u16,
    options: duet_sql::ServerOptions,
}

impl ClusterBuilder {
    /// A one-node cluster called `name` (used in the temp dir name and logs).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            data_dir: None,
            port: 0,
            options: duet_sql::ServerOptions::default(),
        }
    }

    /// Accept at most `n` clients at a time (the server's `max_connections`).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.options.max_connections = n;
        self
    }

    /// Authenticate clients by these rules (pg_hba.conf lines; the default trusts
    /// loopback clients).
    pub fn hba<S: AsRef<str>>(
        mut self,
        rules: impl IntoIterator<Item = S>,
    ) -> anyhow::Result<Self> {
        let hba = duet_sql::auth::Hba::parse(rules).map_err(|e| anyhow!(e))?;
        self.options.hba = std::sync::Arc::new(hba);
        Ok(self)
    }

    /// Route new connections as a cluster member does (see `duet_sql::Route`).
    pub fn route(mut self, route: std::sync::Arc<dyn duet_sql::Route>) -> Self {
        self.options.route = Some(route);
        self
    }

    /// Offer TLS with this certificate and key (PEM files).
    pub fn tls(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> anyhow::Result<Self> {
        let files = duet_sql::auth::TlsFiles {
            cert: cert.into(),
            key: key.into(),
        };
        self.options.tls = Some(duet_sql::auth::tls_acceptor(&files)?);
        Ok(self)
    }

    /// Keep data in `dir` instead of a temporary directory (not removed afterwards).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Listen on a fixed port instead of an ephemeral one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Starts the node.
    pub async fn build(self) -> anyhow::Result<Cluster> {
        crate::init_test_logging();
        let (temp, dir) = match self.data_dir {
            Some(d) => (None, d),
            None => {
                let t = tempfile::Builder::new()
                    .prefix(&format!("duet-{}-", self.name))
                    .tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let mut cluster = Cluster {
            name: self.name,
            _temp: temp,
            dir,
            node: None,
            addr: SocketAddr::from(([127, 0, 0, 1], self.port)),
            options: self.options,
        };
        cluster.start().await?;
        Ok(cluster)
    }
}

struct Node {
    runtime: Runtime,
    replicas: NodeRef,
    server: Option<Server>,
    http: Option<HttpServer>,
}

/// A running DuetDB deployment for tests.
pub struct Cluster {
    name: String,
    _temp: Option<tempfile::TempDir>,
    dir: PathBuf,
    node: Option<Node>,
    addr: SocketAddr,
    options: duet_sql::ServerOptions,
}

impl Cluster {
    /// Starts the node if it is not running (after [`Cluster::kill`]).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        if self.node.is_some() {
            return Ok(());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("duet-{}", self.name))
            .enable_all()
            .build()?;
        match self.start_on(&runtime).await {
            Ok((replicas, server, http)) => {
                self.addr = server.local_addr();
                self.node = Some(Node {
                    runtime,
                    replicas,
                    server: Some(server),
                    http: Some(http),
                });
                Ok(())
            }
            Err(e) => {
                // Dropping a runtime inside an async context panics; let it go in the background.
                runtime.shutdown_background();
                Err(e)
            }
        }
    }

    async fn start_on(&self, runtime: &Runtime) -> anyhow::Result<(NodeRef, Server, HttpServer)> {
        // RocksDB's lock may outlive a killed node for a moment while its tasks are dropped.
        let deadline = Instant::now() + Duration::from_secs(10);
        let node = loop {
            match DuetNode::open(&self.dir) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline && e.is_locked() => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    return Err(anyhow!(
                        "Failed to open store in {}: {e}",
                        self.dir.display()
                    ))
                }
            }
        };
        let addr = self.addr;
        let options = self.options.clone();
        let http_node = node.clone();
        let shared = node.shared();
        duetdb::databases::attach(&node, &shared);
        let http = runtime
            .spawn(async move {
                HttpServer::start(http_node, SocketAddr::from(([127, 0, 0, 1], 0))).await
            })
            .await
            .context("HTTP task panicked")?
            .context("Failed to start the HTTP listener")?;
        let server = runtime
            .spawn(async move { Server::start_with(shared, addr, options).await })
            .await
            .context("server task panicked")?
            .with_context(|| format!("Failed to listen on {addr}"))?;
        Ok((node, server, http))
    }

    /// Stops the node's runtime and waits (on a helper thread, so this may be called from
    /// async code) until every task is gone and the store is closed.
    fn stop_runtime(node: Node) {
        let Node {
            runtime,
            replicas,
            server,
            http,
        } = node;
        let joined = std::thread::spawn(move || {
            runtime.shutdown_timeout(Duration::from_secs(10));
            drop(http);
            drop(server);
            drop(replicas);
        })
        .join();
        if joined.is_err() {
            tracing::error!("node runtime panicked while stopping");
        }
    }

    /// Clean stop (flush, close) and start again on the same data directory and port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(mut node) = self.node.take() {
            if let Some(server) = node.server.take() {
                node.runtime
                    .spawn(server.shutdown())
                    .await
                    .context("shutdown panicked")?;
            }
            Self::stop_runtime(node);
        }
        self.start().await
    }

    /// Abrupt stop: every task and connection is dropped at once, nothing is flushed.
    /// What was acknowledged must still be there after [`Cluster::start`].
    pub fn kill(&mut self) {
        if let Some(node) = self.node.take() {
            Self::stop_runtime(node);
        }
    }

    /// Whether the node is running.
    pub fn is_running(&self) -> bool {
        self.node.is_some()
    }

    /// Where the HTTP listener (metrics, health, replica status) is.
    pub fn http_addr(&self) -> anyhow::Result<SocketAddr> {
        self.node
            .as_ref()
            .and_then(|n| n.http.as_ref())
            .map(|h| h.local_addr())
            .ok_or_else(|| anyhow!("the node is not running"))
    }

    /// `GET path` on the HTTP listener; returns the body (errors on a non-200 status).
    pub async fn http_get(&self, path: &str) -> anyhow::Result<String> {
        http_get(self.http_addr()?, path).await
    }

    /// The running node's replicas.
    pub fn node(&self) -> anyhow::Result<NodeRef> {
        self.node
            .as_ref()
            .map(|n| n.replicas.clone())
            .ok_or_else(|| anyhow!("the node is not running"))
    }

    /// Pauses the learner's apply loop: it keeps receiving the log but applies nothing, so
    /// the column replica falls behind on purpose.
    pub fn pause_learner(&self) -> anyhow::Result<()> {
        self.node()?.pause_learner(true);
        Ok(())
    }

    /// Resumes the learner's apply loop.
    pub fn resume_learner(&self) -> anyhow::Result<()> {
        self.node()?.pause_learner(false);
        Ok(())
    }

    /// Waits until the learner has applied `index` (false on timeout).
    pub fn wait_learner(&self, index: u64, timeout: Duration) -> anyhow::Result<bool> {
        let node = self.node()?;
        Ok(node.wait_learner(index, timeout))
    }

    /// Waits until the learner has applied everything the leader has committed so far.
    pub fn wait_learner_caught_up(&self, timeout: Duration) -> anyhow::Result<bool> {
        let node = self.node()?;
        let commit = node.voter().committed();
        Ok(node.wait_learner(commit, timeout))
    }

    /// `(row replica, column replica)` applied Raft indexes (column is 0 while it is down).
    pub fn applied_indexes(&self) -> anyhow::Result<(u64, u64)> {
        let node = self.node()?;
        Ok((node.voter().applied(), node.learner_status().applied))
    }

    /// Stops the learner alone, abruptly; the row replica keeps serving.
    pub fn kill_learner(&self) -> anyhow::Result<()> {
        self.node()?.stop_learner();
        Ok(())
    }

    /// Starts the learner again (from its checkpoint and its own log).
    pub fn start_learner(&self) -> anyhow::Result<()> {
        self.node()?
            .start_learner()
            .map_err(|e| anyhow!(e.to_string()))
    }

    /// Folds the column replica's delta into its stable layer and writes a checkpoint now
    /// (instead of waiting for the background compaction). Returns the checkpoint index.
    pub fn compact_columns(&self) -> anyhow::Result<u64> {
        let store = self
            .node()?
            .column_store()
            .ok_or_else(|| anyhow!("the learner is not running"))?;
        store.compact().map_err(|e| anyhow!(e.to_string()))
    }

    /// Compacts the leader's log; `force` compacts past a lagging learner, which will then
    /// be caught up by a snapshot. Returns the log's new first index.
    pub fn compact_log(&self, force: bool) -> anyhow::Result<u64> {
        self.node()?
            .compact_log(force)
            .map_err(|e| anyhow!(e.to_string()))
    }

    /// Where the SQL listener is.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// A libpq-style connection string.
    pub fn connection_string(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=duetdb",
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// A `postgres://` URL.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@{}:{}/duetdb",
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// A connected client; its connection task runs on the caller's runtime.
    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, conn) =
            tokio_postgres::connect(&self.connection_string(), tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "test connection ended");
            }
        });
        Ok(client)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET path` from the HTTP listener at `addr`: the body (errors on a non-200 status).
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response"))?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    Ok(body.to_string())
}
