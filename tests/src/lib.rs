//! # duet-tests: run DuetDB inside your tests
//!
//! [`Cluster`] starts a DuetDB node in-process: its own tokio runtime, a temporary data
//! directory (or one you give it), the SQL listener on `127.0.0.1:0`. It hands out
//! connection strings and connected `tokio_postgres::Client`s, restarts the node on the same
//! data directory, and kills it abruptly (no flush, every connection cut) to test recovery.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cluster = duet_tests::ClusterBuilder::new("demo").build().await?;
//! let client = cluster.client().await?;
//! client.batch_execute("CREATE TABLE t (id int PRIMARY KEY)").await?;
//! # Ok(()) }
//! ```
//!
//! A cluster is one node: a Raft voter holding the row replica and a Raft learner holding
//! the column replica, fed by the same log. [`Cluster::pause_learner`] holds the learner back
//! to test freshness and routing. [`ClusterProcesses`] starts a cluster of member
//! processes (Raft over TCP), kills them with `kill -9` and partitions them;
//! [`linearizable::check_register`] checks what clients saw of a register meanwhile.

mod cluster;
pub mod difftest;
pub mod linearizable;
pub mod processes;
pub mod routing_bench;
pub mod tpch;

pub use cluster::{Cluster, ClusterBuilder};
pub use processes::ClusterProcesses;

/// The `tests/` crate's directory, where the SQL logic tests and TPC-H answers live. Taken
/// from the environment when Cargo runs the tests (a test binary built in another checkout
/// that shares the target directory would otherwise look in that checkout), else the
/// directory this crate was compiled from.
pub fn crate_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// Initialises test logging once (respects `RUST_LOG`, default `warn`).
pub fn init_test_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
