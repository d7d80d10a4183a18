//! Command line and TOML configuration. Precedence: defaults, then the TOML file, then flags.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;

/// DuetDB: an HTAP database that speaks the PostgreSQL wire protocol.
#[derive(Debug, Parser)]
#[command(name = "duetdb", version)]
pub struct Cli {
    /// Directory for all data (created if missing). Default: ./duet-data
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// SQL listen address. Default: 127.0.0.1:5433
    #[arg(long)]
    pub listen: Option<String>,
    /// HTTP listen address (metrics, health, replica status), or "off". Default:
    /// 127.0.0.1:8433
    #[arg(long)]
    pub http: Option<String>,
    /// TOML config file; its keys mirror these flags (data_dir, listen, http, log_level).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log filter (tracing's EnvFilter syntax). Default: info
    #[arg(long)]
    pub log_level: Option<String>,
    /// Most clients connected at once; one more gets SQLSTATE 53300. Default: 100
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// The router's cost calibration: "learning" (refit from measured scans) or "frozen"
    /// (keep the current scales). Default: learning
    #[arg(long)]
    pub router_calibration: Option<String>,
    /// An authentication rule, a pg_hba.conf line "TYPE DATABASE USER ADDRESS METHOD"
    /// (host|hostssl|hostnossl, trust|scram-sha-256|password|reject); repeat for several,
    /// first match wins. Default: trust on loopback, scram-sha-256 from anywhere else
    #[arg(long = "hba", value_name = "RULE")]
    pub hba: Vec<String>,
    /// TLS certificate chain (PEM); with --tls-key, clients may use sslmode=require
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Start even though a rule trusts clients on other machines (no password) while
    /// listening beyond loopback
    #[arg(long)]
    pub allow_remote_trust: bool,
    /// This process's member id in --initial-cluster (a cluster of processes).
    #[arg(long)]
    pub node_id: Option<u64>,
    /// Where this member listens for Raft messages. Default: its address in
    /// --initial-cluster
    #[arg(long)]
    pub raft_listen: Option<String>,
    /// The cluster's members, "id=replicas@raft-host:port,…" with replicas row (a voter
    /// with the row replica) or row+column (also a learner with the column replica); the
    /// same list on every member. Without it DuetDB runs as one process.
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// In a cluster: a member that hears from no leader for a random time between N and
    /// 2N milliseconds starts an election (default 150; heartbeats go every N/5 ms)
    #[arg(long)]
    pub election_timeout_ms: Option<u64>,
    /// Seconds a row version stays readable after a newer one replaced it, for readers the
    /// row replica does not know of; older ones are garbage-collected (default 600)
    #[arg(long)]
    pub gc_life_time_s: Option<u64>,
    /// Megabytes the data directory's disk keeps free: below it writes are refused with
    /// SQLSTATE 53100 (reads go on) until space is freed; 0 turns the reserve off. Default:
    /// 5% of the disk, at least 160 and at most 512
    #[arg(long)]
    pub disk_reserve_mb: Option<u64>,
    /// Memory the column replica's cache may hold (e.g. 512MB, 4GB; a bare number is
    /// megabytes): stable chunks are read from their files through it. Default: a quarter
    /// of the machine's memory, at least 256MB
    #[arg(long, value_parser = parse_size)]
    pub column_cache_size: Option<u64>,
    /// Memory of the row cache of point reads (`256MB`, `1GB`; a bare number is
    /// megabytes; 0 turns it off). Default: 256MB
    #[arg(long, value_parser = parse_size)]
    pub row_cache_size: Option<u64>,
    /// Memory of RocksDB's block cache (`256MB`, `1GB`; a bare number is megabytes).
    /// Default: 256MB
    #[arg(long, value_parser = parse_size)]
    pub block_cache_size: Option<u64>,
    /// Only validate the configuration and print it.
    #[arg(long)]
    pub config_check: bool,
}

/// Effective configuration.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory for all data.
    pub data_dir: PathBuf,
    /// SQL listen address.
    pub listen: String,
    /// HTTP listen address, or "off".
    pub http: String,
    /// Log filter.
    pub log_level: String,
    /// `learning` or `frozen`.
    pub router_calibration: String,
    /// Most clients connected at once.
    pub max_connections: usize,
    /// Authentication rules (pg_hba.conf lines), first match wins.
    pub hba: Vec<String>,
    /// TLS certificate chain and key (PEM files).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Allow a rule trusting remote clients on a non-loopback listen address.
    pub allow_remote_trust: bool,
    /// A cluster of processes: this member's id, its Raft address and the members.
    pub node_id: Option<u64>,
    pub raft_listen: Option<String>,
    pub initial_cluster: Option<String>,
    /// Raft's election timeout in milliseconds (drawn at random in [N, 2N)).
    pub election_timeout_ms: u64,
    /// How long a replaced row version stays readable (MVCC garbage collection's grace).
    pub gc_life_time_s: u64,
    /// Free space (MB) the disk keeps; None: 5% of the disk, within 160 and 512 MB.
    pub disk_reserve_mb: Option<u64>,
    /// The column cache's budget (`512MB`, `4GB`, a bare number: MB); None: a quarter of
    /// the machine's memory, at least 256 MB.
    pub column_cache_size: Option<String>,
    /// The row cache's budget (as `column_cache_size`); None: 256 MB.
    pub row_cache_size: Option<String>,
    /// RocksDB's block cache budget (as `column_cache_size`); None: 256 MB.
    pub block_cache_size: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./duet-data"),
            listen: "127.0.0.1:5433".into(),
            http: "127.0.0.1:8433".into(),
            log_level: "info".into(),
            router_calibration: "learning".into(),
            max_connections: 100,
            hba: duet_wire::auth::DEFAULT_HBA
                .iter()
                .map(|r| r.to_string())
                .collect(),
            tls_cert: None,
            tls_key: None,
            allow_remote_trust: false,
            node_id: None,
            raft_listen: None,
            initial_cluster: None,
            election_timeout_ms: duetdb::cluster::DEFAULT_ELECTION_TIMEOUT.as_millis() as u64,
            gc_life_time_s: duet_rowstore::store::GC_LIFE_TIME.as_secs(),
            disk_reserve_mb: None,
            column_cache_size: None,
            row_cache_size: None,
            block_cache_size: None,
        }
    }
}

impl Config {
    /// Layers defaults, the config file and the flags, then validates.
    pub fn load(cli: &Cli) -> anyhow::Result<Config> {
        let mut config = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("Failed to read config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("Invalid config file {}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(d) = &cli.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(l) = &cli.listen {
            config.listen = l.clone();
        }
        if let Some(h) = &cli.http {
            config.http = h.clone();
        }
        if let Some(l) = &cli.log_level {
            config.log_level = l.clone();
        }
        if let Some(c) = &cli.router_calibration {
            config.router_calibration = c.clone();
        }
        if let Some(n) = cli.max_connections {
            config.max_connections = n;
        }
        if !cli.hba.is_empty() {
            config.hba = cli.hba.clone();
        }
        if let Some(c) = &cli.tls_cert {
            config.tls_cert = Some(c.clone());
        }
        if let Some(k) = &cli.tls_key {
            config.tls_key = Some(k.clone());
        }
        config.allow_remote_trust |= cli.allow_remote_trust;
        if cli.node_id.is_some() {
            config.node_id = cli.node_id;
        }
        if cli.raft_listen.is_some() {
            config.raft_listen = cli.raft_listen.clone();
        }
        if cli.initial_cluster.is_some() {
            config.initial_cluster = cli.initial_cluster.clone();
        }
        if let Some(ms) = cli.election_timeout_ms {
            config.election_timeout_ms = ms;
        }
        if let Some(s) = cli.gc_life_time_s {
            config.gc_life_time_s = s;
        }
        if cli.disk_reserve_mb.is_some() {
            config.disk_reserve_mb = cli.disk_reserve_mb;
        }
        if let Some(bytes) = cli.column_cache_size {
            config.column_cache_size = Some(format!("{bytes}B"));
        }
        if let Some(bytes) = cli.row_cache_size {
            config.row_cache_size = Some(format!("{bytes}B"));
        }
        if let Some(bytes) = cli.block_cache_size {
            config.block_cache_size = Some(format!("{bytes}B"));
        }
        config.validate()?;
        if cli.config_check {
            #[allow(clippy::print_stdout)]
            {
                println!("{config:#?}");
            }
            std::process::exit(0);
        }
        Ok(config)
    }

    /// The authentication rules.
    pub fn hba(&self) -> anyhow::Result<duet_wire::auth::Hba> {
        duet_wire::auth::Hba::parse(&self.hba).map_err(|e| anyhow::anyhow!("hba: {e}"))
    }

    /// The TLS certificate and key, when both are set.
    pub fn tls(&self) -> Option<duet_wire::auth::TlsFiles> {
        Some(duet_wire::auth::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }

    /// This process's place in a cluster, if it is started as one.
    pub fn cluster(&self) -> anyhow::Result<Option<duetdb::cluster::ClusterConfig>> {
        let Some(spec) = &self.initial_cluster else {
            anyhow::ensure!(
                self.node_id.is_none() && self.raft_listen.is_none(),
                "node_id and raft_listen need initial_cluster"
            );
            return Ok(None);
        };
        let id = self
            .node_id
            .context("initial_cluster needs node_id (this member's id in it)")?;
        let listen: std::net::SocketAddr = self.listen.parse()?;
        anyhow::ensure!(
            !listen.ip().is_unspecified() && listen.port() != 0,
            "in a cluster, listen ({listen}) must be an address and port the other members              can reach: they relay SQL connections to it"
        );
        let mut cluster = duetdb::cluster::ClusterConfig::new(id, self.raft_listen.clone(), spec)?;
        cluster.election_timeout = std::time::Duration::from_millis(self.election_timeout_ms);
        Ok(Some(cluster))
    }

    /// Whether the router's calibration is frozen.
    pub fn calibration_frozen(&self) -> bool {
        self.router_calibration == "frozen"
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_connections > 0,
            "max_connections must be at least 1"
        );
        anyhow::ensure!(
            matches!(self.router_calibration.as_str(), "learning" | "frozen"),
            "router_calibration must be \"learning\" or \"frozen\", got {:?}",
            self.router_calibration
        );
        self.listen
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("listen must be host:port, got {:?}", self.listen))?;
        if self.http != "off" {
            self.http
                .parse::<std::net::SocketAddr>()
                .with_context(|| format!("http must be host:port or off, got {:?}", self.http))?;
        }
        anyhow::ensure!(
            !self.data_dir.as_os_str().is_empty(),
            "data_dir must not be empty"
        );
        anyhow::ensure!(
            (50..=60_000).contains(&self.election_timeout_ms),
            "election_timeout_ms must be between 50 and 60000, got {}",
            self.election_timeout_ms
        );
        anyhow::ensure!(
            self.gc_life_time_s >= duet_rowstore::store::GC_LIFE_TIME_MIN.as_secs(),
            "gc_life_time_s must be at least {}, got {}",
            duet_rowstore::store::GC_LIFE_TIME_MIN.as_secs(),
            self.gc_life_time_s
        );
        anyhow::ensure!(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "tls_cert and tls_key go together"
        );
        self.cluster()?;
        self.column_cache_bytes()?;
        let hba = self.hba()?;
        anyhow::ensure!(!hba.rules().is_empty(), "hba needs at least one rule");
        let listen: std::net::SocketAddr = self.listen.parse()?;
        if duet_wire::auth::listens_beyond_loopback(listen) && !self.allow_remote_trust {
            if let Some(rule) = hba.remote_trust() {
                anyhow::bail!(
                    "listening on {listen} with the rule \"{rule}\" lets clients on other machines in without a password; \
                     use scram-sha-256 for them, or start with --allow-remote-trust (allow_remote_trust = true)"
                );
            }
        }
        Ok(())
    }
}

impl Config {
    /// The column cache's budget in bytes, if set.
    pub fn column_cache_bytes(&self) -> anyhow::Result<Option<u64>> {
        size_setting("column_cache_size", &self.column_cache_size)
    }

    /// The row cache's budget in bytes, if set.
    pub fn row_cache_bytes(&self) -> anyhow::Result<Option<u64>> {
        size_setting("row_cache_size", &self.row_cache_size)
    }

    /// The block cache's budget in bytes, if set.
    pub fn block_cache_bytes(&self) -> anyhow::Result<Option<u64>> {
        size_setting("block_cache_size", &self.block_cache_size)
    }
}

/// The size setting `name`'s bytes, if set.
fn size_setting(name: &str, value: &Option<String>) -> anyhow::Result<Option<u64>> {
    value
        .as_deref()
        .map(|s| parse_size(s).map_err(|e| anyhow::anyhow!("{name}: {e}")))
        .transpose()
}

/// A size: a PostgreSQL-style memory value (`B`, `kB`, `MB`, `GB`, `TB`), except that a
/// bare number is megabytes.
fn parse_size(v: &str) -> Result<u64, String> {
    let t = v.trim();
    let with_unit = if t.bytes().all(|b| b.is_ascii_digit()) {
        format!("{t}MB")
    } else {
        t.to_string()
    };
    duet_sql::parse_memory(&with_unit).ok_or_else(|| {
        format!("{v:?} is not a size such as 512MB or 4GB (units: B, kB, MB, GB, TB)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_units_and_a_bare_number_is_megabytes() {
        assert_eq!(parse_size("512"), Ok(512 << 20));
        assert_eq!(parse_size("4GB"), Ok(4 << 30));
        assert_eq!(parse_size("64 kB"), Ok(64 << 10));
        assert_eq!(parse_size("100B"), Ok(100));
        assert!(parse_size("4 GiB").is_err());
        assert!(parse_size("lots").is_err());
        let c: Config = toml::from_str("column_cache_size = \"2GB\"").unwrap();
        assert_eq!(c.column_cache_bytes().unwrap(), Some(2 << 30));
        let c: Config =
            toml::from_str("row_cache_size = \"64MB\"\nblock_cache_size = \"1024\"").unwrap();
        assert_eq!(c.row_cache_bytes().unwrap(), Some(64 << 20));
        assert_eq!(c.block_cache_bytes().unwrap(), Some(1 << 30));
    }

    #[test]
    fn unknown_keys_are_rejected_and_known_ones_load() {
        let ok: Config =
            toml::from_str("data_dir = \"/tmp/x\"\nlisten = \"127.0.0.1:6000\"").unwrap();
        assert_eq!(ok.listen, "127.0.0.1:6000");
        assert_eq!(ok.log_level, "info");
        assert!(toml::from_str::<Config>("data_dri = \"/tmp/x\"").is_err());
    }

    #[test]
    fn remote_trust_needs_to_be_allowed() {
        let mut c: Config =
            toml::from_str("listen = \"0.0.0.0:5433\"\nhba = [\"host all all 0.0.0.0/0 trust\"]")
                .unwrap();
        assert!(c.validate().is_err());
        c.allow_remote_trust = true;
        assert!(c.validate().is_ok());
        // The default rules ask remote clients for a password.
        let d: Config = toml::from_str("listen = \"0.0.0.0:5433\"").unwrap();
        assert!(d.validate().is_ok());
        let loopback: Config = toml::from_str("hba = [\"host all all 0.0.0.0/0 trust\"]").unwrap();
        assert!(loopback.validate().is_ok());
        let bad: Config = toml::from_str("hba = [\"host all all all ident\"]").unwrap();
        assert!(bad.validate().is_err());
        let half: Config = toml::from_str("tls_cert = \"/x.pem\"").unwrap();
        assert!(half.validate().is_err());
    }

    #[test]
    fn router_calibration_is_learning_or_frozen() {
        let frozen: Config = toml::from_str("router_calibration = \"frozen\"").unwrap();
        assert!(frozen.validate().is_ok() && frozen.calibration_frozen());
        assert!(!Config::default().calibration_frozen());
        let bad: Config = toml::from_str("router_calibration = \"off\"").unwrap();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_election_timeout_sets_the_raft_tick() {
        let spec = "initial_cluster = \"1=row@127.0.0.1:7001,2=row@127.0.0.1:7002,3=row@127.0.0.1:7003\"\nnode_id = 2\n";
        let default: Config = toml::from_str(spec).unwrap();
        let cluster = default.cluster().unwrap().unwrap();
        assert_eq!(cluster.tick(), std::time::Duration::from_millis(15));
        let slow: Config = toml::from_str(&format!("{spec}election_timeout_ms = 1000")).unwrap();
        assert!(slow.validate().is_ok());
        let cluster = slow.cluster().unwrap().unwrap();
        assert_eq!(cluster.election_timeout, std::time::Duration::from_secs(1));
        assert_eq!(cluster.tick(), std::time::Duration::from_millis(100));
        for bad in [0, 49, 60_001] {
            let c: Config = toml::from_str(&format!("{spec}election_timeout_ms = {bad}")).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
    }
}
