//! The `duetdb` server binary: CLI, config, telemetry, run.

mod config;
mod telemetry;

use anyhow::Context;
use clap::Parser;

use crate::config::{Cli, Config};

/// mimalloc instead of glibc's malloc: a bulk load allocates and frees many row-sized and
/// batch-sized buffers across threads, and glibc's free-list consolidation took a fifth of a
/// COPY's server CPU (measured with perf, see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    duetdb::allocator::configure();
    let cli = Cli::parse();
    let config = Config::load(&cli)?;
    telemetry::init(&config.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("Failed to start the tokio runtime")?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let listen: std::net::SocketAddr = config
        .listen
        .parse()
        .with_context(|| format!("Invalid listen address {}", config.listen))?;
    let cluster = config.cluster()?;
    let tls = match config.tls() {
        Some(files) => Some(duet_wire::auth::tls_acceptor(&files).context("TLS")?),
        None => None,
    };
    let options = duet_wire::ServerOptions {
        max_connections: config.max_connections,
        hba: std::sync::Arc::new(config.hba()?),
        tls,
        ..Default::default()
    };
    if let Some(c) = cluster.as_ref().filter(|c| !c.me().row) {
        return run_column_member(&config, c, listen, options).await;
    }
    let (node, server) =
        duetdb::cluster::serve(&config.data_dir, cluster.as_ref(), listen, options).await?;
    node.store
        .set_gc_life_time(std::time::Duration::from_secs(config.gc_life_time_s));
    if let (Some(mb), Some(disk)) = (config.disk_reserve_mb, node.store.disk_guard()) {
        disk.set_reserve(mb << 20);
    }
    if let Some(bytes) = config.column_cache_bytes()? {
        node.set_column_cache_size(bytes);
    }
    if let Some(bytes) = config.row_cache_bytes()? {
        node.store.set_row_cache_size(bytes);
    }
    if let Some(bytes) = config.block_cache_bytes()? {
        node.store.set_block_cache_size(bytes);
    }
    node.router()
        .calibrator
        .set_frozen(config.calibration_frozen())
        .context("Failed to save the router's calibration")?;
    let http = match http_addr(&config)? {
        None => None,
        Some(addr) => Some(
            duetdb::HttpServer::start(node.clone(), addr)
                .await
                .with_context(|| format!("Failed to listen on {addr} (HTTP)"))?,
        ),
    };
    #[allow(clippy::print_stdout)]
    {
        println!(
            "DuetDB {} listening on {} (data in {}, metrics on {}); connect with: psql -h {} -p {} -U postgres duetdb",
            env!("CARGO_PKG_VERSION"),
            server.local_addr(),
            config.data_dir.display(),
            http.as_ref()
                .map_or("off".to_string(), |h| format!("http://{}/metrics", h.local_addr())),
            server.local_addr().ip(),
            server.local_addr().port()
        );
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    if node.cluster().is_some() {
        let leader = node.clone();
        let handed = tokio::task::spawn_blocking(move || {
            leader.transfer_leadership(std::time::Duration::from_secs(3))
        })
        .await
        .unwrap_or(false);
        if !handed {
            tracing::warn!("could not hand leadership over; the others will elect a leader");
        }
    }
    server.shutdown().await;
    if let Some(h) = http {
        h.shutdown().await;
    }
    Ok(())
}

/// A member holding only the column replica: it serves column scans to the others and
/// relays SQL connections to the leader.
async fn run_column_member(
    config: &Config,
    cluster: &duetdb::cluster::ClusterConfig,
    listen: std::net::SocketAddr,
    options: duet_wire::ServerOptions,
) -> anyhow::Result<()> {
    let (member, server) =
        duetdb::cluster::serve_column(&config.data_dir, cluster, listen, options).await?;
    if let Some(bytes) = config.column_cache_bytes()? {
        member.store().cache().set_capacity(bytes);
    }
    let http = match http_addr(config)? {
        None => None,
        Some(addr) => Some(
            duetdb::HttpServer::start_column(member, addr)
                .await
                .with_context(|| format!("Failed to listen on {addr} (HTTP)"))?,
        ),
    };
    #[allow(clippy::print_stdout)]
    {
        println!(
            "DuetDB {} column member {} listening on {} (data in {}, metrics on {}); SQL \
             connections are relayed to the leader",
            env!("CARGO_PKG_VERSION"),
            cluster.node_id,
            server.local_addr(),
            config.data_dir.display(),
            http.as_ref().map_or("off".to_string(), |h| format!(
                "http://{}/metrics",
                h.local_addr()
            )),
        );
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    if let Some(h) = http {
        h.shutdown().await;
    }
    Ok(())
}

/// `--http`: an address, or `off`.
fn http_addr(config: &Config) -> anyhow::Result<Option<std::net::SocketAddr>> {
    match config.http.as_str() {
        "off" => Ok(None),
        addr => Ok(Some(
            addr.parse()
                .with_context(|| format!("Invalid http address {addr}"))?,
        )),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
