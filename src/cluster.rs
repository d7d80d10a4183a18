//! A cluster of DuetDB processes: its members as `--initial-cluster` lists them, and which
//! member serves a new SQL connection.
//!
//! ```text
//! --initial-cluster "1=row@127.0.0.1:7001,2=row@127.0.0.1:7002,3=row+column@127.0.0.1:7003"
//! ```
//!
//! Each entry is `id=replicas@raft-address`: `row` members are Raft voters holding the row
//! replica, `column` members learners holding the column replica, `row+column` both (two
//! Raft peers in one process: the voter has the member's id, the learner the id plus
//! [`LEARNER_RAFT_ID_OFFSET`]). Every member gets the same list; a fresh data directory
//! starts with it as the Raft membership.
//!
//! SQL: the leader serves every connection; any other member relays a new connection's
//! bytes to the leader's SQL address ([`LeaderRoute`]), which it learned from the leader's
//! Raft handshake, after a PROXY protocol line naming the client, so the leader's host
//! rules judge the client's address (it believes the line from members' hosts only). A
//! member that stops leading ends its sessions, whose clients reconnect to any member and
//! reach the new leader.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use duet_replication::{PeerStatus, TcpTransport};

use crate::column_member::ColumnMember;

use crate::node::NodeRef;

/// The Raft id of a member's learner is its member id plus this.
pub const LEARNER_RAFT_ID_OFFSET: u64 = 1 << 32;

/// One member of `--initial-cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    /// Holds the row replica (a Raft voter).
    pub row: bool,
    /// Holds the column replica (a Raft learner).
    pub column: bool,
    pub raft_addr: String,
}

impl Member {
    /// The Raft id of its learner, if it holds the column replica.
    pub fn learner_raft_id(&self) -> Option<u64> {
        self.column.then_some(self.id + LEARNER_RAFT_ID_OFFSET)
    }

    /// What it holds, as `duet.cluster` shows it.
    pub fn replicas(&self) -> &'static str {
        match (self.row, self.column) {
            (true, true) => "row+column",
            (true, false) => "row",
            _ => "column",
        }
    }
}

/// This process's place in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub node_id: u64,
    /// Where this member listens for Raft messages.
    pub raft_listen: String,
    pub members: Vec<Member>,
    /// A member that hears from no leader for a random time in `[t, 2t)` starts an
    /// election (raft's 10-tick election timeout: the tick is a tenth of it).
    pub election_timeout: Duration,
}

/// The classic 150–300 ms range.
pub const DEFAULT_ELECTION_TIMEOUT: Duration = Duration::from_millis(150);

impl ClusterConfig {
    /// Reads `--initial-cluster` and checks this member against it; `raft_listen` defaults
    /// to this member's address in the list.
    pub fn new(node_id: u64, raft_listen: Option<String>, spec: &str) -> anyhow::Result<Self> {
        let members = parse_members(spec)?;
        let me = members
            .iter()
            .find(|m| m.id == node_id)
            .with_context(|| format!("--node-id {node_id} is not in --initial-cluster"))?;
        Ok(ClusterConfig {
            node_id,
            raft_listen: raft_listen.unwrap_or_else(|| me.raft_addr.clone()),
            members,
            election_timeout: DEFAULT_ELECTION_TIMEOUT,
        })
    }

    /// Raft's tick: a tenth of the election timeout (heartbeats go every 2 ticks).
    pub fn tick(&self) -> Duration {
        self.election_timeout / 10
    }

    /// Raft ids of the voters and of the learners.
    pub fn raft_ids(&self) -> (Vec<u64>, Vec<u64>) {
        let voters = self.members.iter().filter(|m| m.row).map(|m| m.id);
        let learners = self.members.iter().filter_map(Member::learner_raft_id);
        (voters.collect(), learners.collect())
    }

    /// This member.
    pub fn me(&self) -> &Member {
        self.members
            .iter()
            .find(|m| m.id == self.node_id)
            .expect("checked in new")
    }
}

/// `1=row@host:port,2=row+column@host:port,…`.
pub fn parse_members(spec: &str) -> anyhow::Result<Vec<Member>> {
    let mut members: Vec<Member> = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, rest) = entry
            .split_once('=')
            .with_context(|| format!("cluster member {entry:?}: expected id=replicas@host:port"))?;
        let (kinds, addr) = rest
            .split_once('@')
            .with_context(|| format!("cluster member {entry:?}: expected id=replicas@host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("cluster member {entry:?}: the id must be a number"))?;
        ensure!(
            id > 0 && id < LEARNER_RAFT_ID_OFFSET,
            "cluster member {entry:?}: the id must be between 1 and {}",
            LEARNER_RAFT_ID_OFFSET - 1
        );
        let (mut row, mut column) = (false, false);
        for k in kinds.split('+') {
            match k.trim() {
                "row" => row = true,
                "column" => column = true,
                other => {
                    bail!("cluster member {entry:?}: unknown replica kind {other:?} (row, column)")
                }
            }
        }
        ensure!(
            !addr.trim().is_empty() && addr.contains(':'),
            "cluster member {entry:?}: expected a host:port Raft address"
        );
        ensure!(
            members.iter().all(|m| m.id != id),
            "cluster member id {id} appears twice"
        );
        members.push(Member {
            id,
            row,
            column,
            raft_addr: addr.trim().to_string(),
        });
    }
    ensure!(
        members.iter().any(|m| m.row),
        "--initial-cluster needs at least one row member (a Raft voter)"
    );
    Ok(members)
}

/// Which member serves a new connection: this one while it leads (and has applied what
/// earlier leaders committed), else the leader, at the SQL address it advertised.
pub struct LeaderRoute {
    /// This member's Raft peer: its voter, or a column-only member's learner (which never
    /// leads, and knows the leader from its messages).
    pub peer: Arc<PeerStatus>,
    pub transport: Arc<TcpTransport>,
    /// The members' addresses (their Raft hosts), whose relays' PROXY headers are believed.
    pub member_ips: Vec<std::net::IpAddr>,
}

impl LeaderRoute {
    pub fn new(
        peer: Arc<PeerStatus>,
        transport: Arc<TcpTransport>,
        cluster: &ClusterConfig,
    ) -> Self {
        use std::net::ToSocketAddrs;
        let member_ips = cluster
            .members
            .iter()
            .filter_map(|m| m.raft_addr.to_socket_addrs().ok())
            .flatten()
            .map(|a| a.ip())
            .collect();
        LeaderRoute {
            peer,
            transport,
            member_ips,
        }
    }
}

impl duet_wire::Route for LeaderRoute {
    fn relays_from(&self, ip: std::net::IpAddr) -> bool {
        self.member_ips.contains(&ip)
    }

    fn route(&self) -> Result<Option<SocketAddr>, String> {
        let voter = &self.peer;
        if voter.is_serving_leader() {
            return Ok(None);
        }
        let Some(leader) = voter.leader() else {
            return Err(
                "the cluster has no leader (an election is under way, or too few \
                        members are up)"
                    .into(),
            );
        };
        if leader == voter.id {
            return Err("this member was just elected and is applying the log".into());
        }
        let Some(addr) = self.transport.advertised(leader) else {
            return Err(format!(
                "the SQL address of the leader (member {leader}) is not known yet"
            ));
        };
        addr.parse()
            .map(Some)
            .map_err(|e| format!("the leader (member {leader}) advertised {addr:?}: {e}"))
    }
}

/// Opens this process's data directory as `cluster`'s member (or the one embedded process)
/// and serves SQL on `listen`: in a cluster, connections go to the leader (relayed there by
/// the others) and a member that stops leading ends its sessions. What the `duetdb` binary
/// runs, and the test harness's member processes.
pub async fn serve(
    data_dir: &std::path::Path,
    cluster: Option<&ClusterConfig>,
    listen: SocketAddr,
    mut options: duet_wire::ServerOptions,
) -> anyhow::Result<(NodeRef, duet_sql::Server)> {
    let node = crate::DuetNode::open_member(data_dir, cluster.map(|c| (c, listen)))
        .with_context(|| format!("Failed to open the data directory {}", data_dir.display()))?;
    if let Some((config, transport)) = node.cluster() {
        options.route = Some(Arc::new(LeaderRoute::new(
            node.voter().clone(),
            transport.clone(),
            config,
        )));
    }
    let shared = node.shared();
    crate::databases::attach(&node, &shared);
    if node.cluster().is_some() {
        let (config, _) = node.cluster().expect("checked above");
        let columns = node.columns().clone();
        options.member_service = Some(Arc::new(ScanPort::new(
            config.node_id,
            Arc::new(move || columns.get()),
            &shared,
            node.read_pins().clone(),
            Some(node.store.clone() as Arc<dyn duet_common::source::RowSource>),
        )?));
        let remote = duet_colstore::remote::RemoteColumns::new();
        node.columns().set_remote(config.node_id, remote.clone());
        tokio::spawn(poll_column_members(node.clone(), remote));
        tokio::spawn(end_sessions_when_not_leading(
            node.clone(),
            shared.cancels.clone(),
        ));
    }
    let server = duet_sql::Server::start_with(shared, listen, options)
        .await
        .with_context(|| format!("Failed to listen on {listen}"))?;
    Ok((node, server))
}

/// The column scans this member serves the other members, on its SQL port.
struct ScanPort(Arc<duet_colstore::remote::ScanService>);

impl ScanPort {
    /// Serves member `member`'s column replica (`columns`: while it runs) and its row
    /// replica `rows`, if it holds one, planning filters with the functions of a session of
    /// `shared`.
    fn new(
        member: u64,
        columns: Arc<dyn Fn() -> Option<duet_colstore::ColumnStoreRef> + Send + Sync>,
        shared: &duet_sql::SharedRef,
        pins: Arc<duet_colstore::remote::ReadPins>,
        rows: Option<Arc<dyn duet_common::source::RowSource>>,
    ) -> anyhow::Result<Self> {
        // A session's functions and settings: scans' filters name the same functions.
        let session = duet_sql::session::Session::new(shared.clone())
            .map_err(|e| anyhow::anyhow!("a session for column scans: {e}"))?;
        Ok(ScanPort(duet_colstore::remote::ScanService::new(
            member,
            columns,
            session.state(),
            Arc::new(|e| {
                let e = duet_sql::error::from_datafusion(e);
                (e.state.code().to_string(), e.message)
            }),
            pins,
            rows,
        )))
    }
}

impl duet_wire::MemberService for ScanPort {
    fn magic(&self) -> &'static [u8; 8] {
        duet_colstore::remote::MAGIC
    }

    fn serve(
        &self,
        socket: tokio::net::TcpStream,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        Box::pin(self.0.clone().serve(socket))
    }
}

/// How often this member asks the others holding the column replica for its status.
const COLUMN_STATUS_EVERY: Duration = Duration::from_millis(300);

/// Keeps `remote` current: what each other member holding the column replica has applied
/// and which tables it can scan, at the SQL address it advertised.
async fn poll_column_members(node: NodeRef, remote: Arc<duet_colstore::remote::RemoteColumns>) {
    let Some((config, transport)) = node.cluster() else {
        return;
    };
    let others: Vec<u64> = config
        .members
        .iter()
        .filter(|m| m.column && m.id != config.node_id)
        .map(|m| m.id)
        .collect();
    if others.is_empty() {
        return;
    }
    loop {
        // The oldest snapshot this member's readers hold: the others keep their column
        // replicas scannable from there on.
        let pin = (config.node_id, node.store.oldest_read_version().get());
        for &id in &others {
            if let Some(addr) = transport.advertised(id).and_then(|a| a.parse().ok()) {
                remote.refresh(id, addr, pin).await;
            }
        }
        tokio::time::sleep(COLUMN_STATUS_EVERY).await;
    }
}

/// Opens this process's data directory as `cluster`'s column-only member and listens on
/// `listen`: it serves column scans to the other members and relays every SQL connection
/// to the leader (it never leads, so no session runs here).
pub async fn serve_column(
    data_dir: &std::path::Path,
    cluster: &ClusterConfig,
    listen: SocketAddr,
    mut options: duet_wire::ServerOptions,
) -> anyhow::Result<(Arc<ColumnMember>, duet_sql::Server)> {
    let member = ColumnMember::open(data_dir, cluster, listen)
        .with_context(|| format!("Failed to open the data directory {}", data_dir.display()))?;
    let (config, transport) = member.cluster();
    options.route = Some(Arc::new(LeaderRoute::new(
        member.learner().clone(),
        transport.clone(),
        config,
    )));
    // The listener's sessions would need a row store: an empty one in memory, which no
    // session uses (every connection is relayed) and the scan service only plans with.
    let empty =
        duet_rowstore::Store::open(Arc::new(duet_rowstore::engine::memory::MemoryEngine::new()))
            .context("an empty row store")?;
    let shared = duet_sql::Shared::new(empty, None);
    let store = member.store().clone();
    options.member_service = Some(Arc::new(ScanPort::new(
        config.node_id,
        Arc::new(move || Some(store.clone())),
        &shared,
        member.read_pins().clone(),
        None,
    )?));
    let server = duet_sql::Server::start_with(shared, listen, options)
        .await
        .with_context(|| format!("Failed to listen on {listen}"))?;
    Ok((member, server))
}

/// Ends every session of this member once it stops leading (its clients reconnect, to
/// any member, and reach the new leader): a member that no longer leads can neither
/// commit their writes nor promise their reads are current.
pub async fn end_sessions_when_not_leading(
    node: NodeRef,
    sessions: Arc<duet_sql::cancel::CancelRegistry>,
) {
    let mut serving = false;
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = node.voter().is_serving_leader();
        if serving && !now {
            let n = sessions.terminate_all();
            tracing::warn!(
                sessions = n,
                leader = ?node.voter().leader(),
                "this member stopped leading; its sessions were ended"
            );
        }
        serving = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_and_bad_lists_are_refused() {
        let m = parse_members("1=row@127.0.0.1:7001, 2=row+column@h:7002,3=column@h:7003").unwrap();
        assert_eq!(m.len(), 3);
        assert!(
            m[1].row && m[1].column && m[1].learner_raft_id() == Some(2 + LEARNER_RAFT_ID_OFFSET)
        );
        assert!(!m[2].row && m[2].column);
        assert_eq!(m[0].replicas(), "row");
        for bad in [
            "",
            "1=row",
            "x=row@h:1",
            "0=row@h:1",
            "1=disk@h:1",
            "1=row@h:1,1=row@h:2",
            "1=column@h:1",
            "1=row@nowhere",
        ] {
            assert!(parse_members(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(ClusterConfig::new(4, None, "1=row@h:1").is_err());
        assert!(
            !ClusterConfig::new(2, None, "1=row@h:1,2=column@h:2")
                .unwrap()
                .me()
                .row
        );
        let c = ClusterConfig::new(2, None, "1=row@h:1,2=row+column@h:2").unwrap();
        assert_eq!(c.raft_listen, "h:2");
        assert_eq!(c.raft_ids(), (vec![1, 2], vec![2 + LEARNER_RAFT_ID_OFFSET]));
    }
}
