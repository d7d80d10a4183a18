//! Column scans across processes: a cluster member that holds the column replica serves
//! scans of it to the members that do not ([`ScanService`]), and those plan such a scan as
//! a DataFusion leaf ([`RemoteColumnScanExec`]) that streams the batches in.
//!
//! The service shares the member's SQL port: a connection that starts with `DUETSCAN`
//! (which no PostgreSQL startup packet does) from a member's host is handed to it, as
//! CockroachDB serves its own RPCs and pgwire on one port. After the magic and the format
//! version, both sides exchange length-delimited frames (`u32` big-endian length, then the
//! bytes):
//!
//! ```text
//! → request (JSON)            Status | Wait | Scan | RowsWait | Rows
//! → for Scan: the read schema (an Arrow IPC stream with no batches), then one frame per
//!   filter conjunct (DataFusion's protobuf encoding of the `Expr`)
//! ← 'S' + JSON                the member's column replica (Status, Wait)
//! ← 'B' + IPC bytes           the next piece of one Arrow IPC stream of the scan's output
//! ← 'V' + 1 byte              whether its row replica reached the version (RowsWait)
//! ← 'R' + pairs               the next rows of a table from its row replica (Rows)
//! ← 'D'                       the scan (or the rows) ended
//! ← 'E' + JSON                it failed: a SQLSTATE and a message
//! ```
//!
//! The scan reads the snapshot its requester chose (a Raft index the requester's leader
//! committed), waiting up to `wait_ms` for this learner to apply it, and evaluates the same
//! filter the requester planned (rebuilt from its parts, functions resolved by name in the
//! same function registry, since every member runs the same binary). Back-pressure is
//! TCP's: the requester reads a frame when DataFusion asks for the next batch. A requester
//! that goes away (the statement ended, was cancelled or timed out) closes the connection,
//! and the serving side stops scanning when it notices.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::buffer::Buffer;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::{StreamDecoder, StreamReader};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult, Statistics};
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion_proto::bytes::Serializeable;
use duet_common::catalog::TableDef;
use duet_common::filter::ScanFilter;
use duet_common::scan::{leaf_properties, Estimates, ScanObserver};
use duet_common::source::RowSource;
use futures::StreamExt;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::store::ColumnStoreRef;
use crate::ColumnScanExec;

/// What a connection to the service starts with.
pub const MAGIC: &[u8; 8] = b"DUETSCAN";
const VERSION: u32 = 1;
/// The largest frame either side accepts.
const MAX_FRAME: usize = 1 << 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a status answer stays good for planning.
const STATUS_FRESH: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// With the oldest version the asking member may still scan here (see [`ReadPins`]).
    Status {
        pin: Option<(u64, u64)>,
    },
    /// Answers once the replica applied `version` (or `wait_ms` passed) with its status.
    Wait {
        version: u64,
        wait_ms: u64,
    },
    Scan(ScanHeader),
    /// Answers `V` + one byte (1: reached) once the member's row replica applied `version`
    /// or `wait_ms` passed.
    RowsWait {
        version: u64,
        wait_ms: u64,
    },
    /// The rows of `table` at `version` from the member's row replica, as `R` frames of
    /// `(u32 key length, key, u32 row length, row)` pairs in key order.
    Rows {
        table: TableDef,
        version: u64,
        wait_ms: u64,
    },
}

/// Bytes of row pairs per `R` frame.
const ROWS_FRAME: usize = 256 * 1024;

/// A scan: the table, the snapshot, and the filter's parts ([`ScanFilter::from_parts`]);
/// the read schema and the filter's conjuncts follow in their own frames.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScanHeader {
    table: TableDef,
    version: u64,
    read: Vec<usize>,
    output: Vec<usize>,
    conjuncts: usize,
    limit: Option<usize>,
    partitions: usize,
    wait_ms: u64,
    /// The requesting session's time zone (how timestamps with a zone are evaluated).
    time_zone: Option<String>,
}

/// One member's column replica as it reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemberColumns {
    /// The last Raft index the replica applied.
    pub applied: u64,
    /// Every table with an available column replica: id, stable rows, delta versions.
    pub tables: Vec<(u32, u64, u64)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Failure {
    code: String,
    message: String,
}

fn remote_error(code: &str, message: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(duet_common::Error::Remote {
        code: code.to_string(),
        message: message.into(),
    }))
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let n = r.read_u32().await? as usize;
    if n > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {n} bytes"),
        ));
    }
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// An `E` frame: the request failed with SQLSTATE `code`.
async fn write_failure<W: AsyncWrite + Unpin>(
    w: &mut W,
    code: &str,
    message: String,
) -> std::io::Result<()> {
    let body = serde_json::to_vec(&Failure {
        code: code.to_string(),
        message,
    })
    .map_err(invalid)?;
    write_frame(w, &[b"E", &body]).await
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, parts: &[&[u8]]) -> std::io::Result<()> {
    let n: usize = parts.iter().map(|p| p.len()).sum();
    w.write_u32(n as u32).await?;
    for p in parts {
        w.write_all(p).await?;
    }
    Ok(())
}

fn invalid(e: impl fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    s.set_nodelay(true)?;
    let mut head = MAGIC.to_vec();
    head.extend_from_slice(&VERSION.to_be_bytes());
    s.write_all(&head).await?;
    Ok(s)
}

/// Asks the member at `addr` for its column replica's status, after it applied `version`
/// if given (waiting up to `wait` for that); `pin` tells it the oldest version this member
/// may still ask it to scan.
async fn member_status(
    addr: SocketAddr,
    version: Option<u64>,
    wait: Duration,
    pin: Option<(u64, u64)>,
) -> std::io::Result<MemberColumns> {
    let mut s = connect(addr).await?;
    let request = match version {
        Some(version) => Request::Wait {
            version,
            wait_ms: wait.as_millis() as u64,
        },
        None => Request::Status { pin },
    };
    write_frame(&mut s, &[&serde_json::to_vec(&request).map_err(invalid)?]).await?;
    let reply = tokio::time::timeout(wait + CONNECT_TIMEOUT, read_frame(&mut s))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no status"))??;
    match reply.split_first() {
        Some((b'S', body)) => serde_json::from_slice(body).map_err(invalid),
        Some((b'E', body)) => {
            let f: Failure = serde_json::from_slice(body).map_err(invalid)?;
            Err(std::io::Error::other(f.message))
        }
        _ => Err(invalid("an unexpected reply")),
    }
}

// ------------------------------------------------------------------------ serving side

/// How long a member's pin holds without being renewed (it polls every few hundred ms; one
/// that stopped, died or lost leadership releases its pin this way).
const PIN_TTL: Duration = Duration::from_secs(10);

/// The oldest versions other members may still ask this member to scan: each member that
/// reads here reports the oldest snapshot its own readers hold with every status request,
/// and compaction folds the delta no further (a stable layer newer than a scan's version
/// cannot serve it). A snapshot a member takes later is at least the version it reported,
/// so a scan planned after the report always finds its version.
#[derive(Debug, Default)]
pub struct ReadPins {
    pins: parking_lot::Mutex<std::collections::HashMap<u64, (u64, Instant)>>,
}

impl ReadPins {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Member `member`'s readers hold nothing older than `version`.
    pub fn pin(&self, member: u64, version: u64) {
        self.pins.lock().insert(member, (version, Instant::now()));
    }

    /// The oldest version pinned by a member heard from within [`PIN_TTL`].
    pub fn oldest(&self) -> Option<u64> {
        let mut pins = self.pins.lock();
        pins.retain(|_, (_, at)| at.elapsed() < PIN_TTL);
        pins.values().map(|(v, _)| *v).min()
    }
}

/// A row source whose oldest read version also counts other members' pins ([`ReadPins`]):
/// what a member serving column scans gives its column store.
pub struct PinnedSource {
    pub inner: Arc<dyn RowSource>,
    pub pins: Arc<ReadPins>,
}

impl RowSource for PinnedSource {
    fn oldest_read_version(&self) -> u64 {
        let own = self.inner.oldest_read_version();
        self.pins.oldest().map_or(own, |p| p.min(own))
    }

    fn wait_version(&self, version: u64, timeout: Duration) -> bool {
        self.inner.wait_version(version, timeout)
    }

    fn scan_table(
        &self,
        def: &TableDef,
        version: u64,
        f: &mut duet_common::source::RowVisitor<'_>,
    ) -> duet_common::Result<()> {
        self.inner.scan_table(def, version, f)
    }
}

/// Maps an error of a scan to the SQLSTATE and message the requester reports.
pub type ErrorMapper = Arc<dyn Fn(DataFusionError) -> (String, String) + Send + Sync>;

/// Serves this member's column replica to the other members.
pub struct ScanService {
    member: u64,
    columns: Arc<dyn Fn() -> Option<ColumnStoreRef> + Send + Sync>,
    /// Functions and settings the scans' filters are planned with.
    state: SessionState,
    errors: ErrorMapper,
    pins: Arc<ReadPins>,
    /// The member's row replica, if it holds one (what members without one build from).
    rows: Option<Arc<dyn RowSource>>,
}

impl ScanService {
    /// `columns` gives the member's column replica while it runs; `state` is a session
    /// with the functions SQL sessions have (filters name them).
    pub fn new(
        member: u64,
        columns: Arc<dyn Fn() -> Option<ColumnStoreRef> + Send + Sync>,
        state: SessionState,
        errors: ErrorMapper,
        pins: Arc<ReadPins>,
        rows: Option<Arc<dyn RowSource>>,
    ) -> Arc<Self> {
        Arc::new(ScanService {
            member,
            columns,
            state,
            errors,
            pins,
            rows,
        })
    }

    fn status(&self, store: Option<&ColumnStoreRef>) -> MemberColumns {
        MemberColumns {
            applied: store.map_or(0, |s| s.applied()),
            tables: store.map(|s| s.available()).unwrap_or_default(),
        }
    }

    /// Serves one connection (its first bytes are [`MAGIC`]).
    pub async fn serve(self: Arc<Self>, socket: TcpStream) {
        let peer = socket.peer_addr().ok();
        if let Err(e) = self.serve_inner(socket).await {
            tracing::debug!(?peer, error = %e, "column scan connection ended");
        }
    }

    async fn serve_inner(&self, mut socket: TcpStream) -> std::io::Result<()> {
        socket.set_nodelay(true)?;
        let mut head = [0u8; 12];
        socket.read_exact(&mut head).await?;
        if &head[..8] != MAGIC || u32::from_be_bytes(head[8..].try_into().unwrap()) != VERSION {
            return Err(invalid("not a column scan connection of this version"));
        }
        let request: Request =
            serde_json::from_slice(&read_frame(&mut socket).await?).map_err(invalid)?;
        let store = (self.columns)();
        match request {
            Request::Status { pin } => {
                if let Some((member, version)) = pin {
                    self.pins.pin(member, version);
                }
                self.reply_status(&mut socket, store.as_ref()).await
            }
            Request::Wait { version, wait_ms } => {
                if let Some(s) = &store {
                    s.wait_applied(version, Duration::from_millis(wait_ms))
                        .await;
                }
                self.reply_status(&mut socket, store.as_ref()).await
            }
            Request::RowsWait { version, wait_ms } => {
                let reached = match self.rows.clone() {
                    Some(rows) => tokio::task::spawn_blocking(move || {
                        rows.wait_version(version, Duration::from_millis(wait_ms))
                    })
                    .await
                    .unwrap_or(false),
                    None => false,
                };
                write_frame(&mut socket, &[b"V", &[reached as u8]]).await
            }
            Request::Rows {
                table,
                version,
                wait_ms,
            } => self.send_rows(&mut socket, table, version, wait_ms).await,
            Request::Scan(header) => {
                let schema = read_frame(&mut socket).await?;
                let mut conjuncts = Vec::with_capacity(header.conjuncts);
                for _ in 0..header.conjuncts {
                    conjuncts.push(read_frame(&mut socket).await?);
                }
                let (reader, mut writer) = socket.into_split();
                let outcome = self
                    .scan(store, header, &schema, &conjuncts, reader, &mut writer)
                    .await;
                match outcome {
                    Ok(()) => write_frame(&mut writer, &[b"D"]).await,
                    Err(Stop::Failed(e)) => {
                        let (code, message) = match e {
                            ScanError::Sql(code, message) => (code, message),
                            ScanError::Plan(e) => (self.errors)(e),
                        };
                        write_failure(&mut writer, &code, message).await
                    }
                    Err(Stop::Gone(e)) => Err(e),
                }
            }
        }
    }

    /// Streams the rows of `table` at `version` from this member's row replica.
    async fn send_rows(
        &self,
        socket: &mut TcpStream,
        table: TableDef,
        version: u64,
        wait_ms: u64,
    ) -> std::io::Result<()> {
        let member = self.member;
        let Some(rows) = self.rows.clone() else {
            let message = format!("member {member} holds no row replica");
            return write_failure(socket, "55000", message).await;
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, String>>(4);
        let reader = tokio::task::spawn_blocking(move || {
            if !rows.wait_version(version, Duration::from_millis(wait_ms)) {
                let _ = tx.blocking_send(Err(format!(
                    "the row replica of member {member} did not reach version {version}"
                )));
                return;
            }
            let mut buf = Vec::with_capacity(ROWS_FRAME + 4096);
            let mut open = true;
            let scanned = rows.scan_table(&table, version, &mut |k, v| {
                buf.extend_from_slice(&(k.len() as u32).to_be_bytes());
                buf.extend_from_slice(k);
                buf.extend_from_slice(&(v.len() as u32).to_be_bytes());
                buf.extend_from_slice(v);
                if buf.len() >= ROWS_FRAME {
                    open = tx.blocking_send(Ok(std::mem::take(&mut buf))).is_ok();
                }
                open
            });
            let last = match scanned {
                Ok(()) => Ok(buf),
                Err(e) => Err(e.to_string()),
            };
            let _ = tx.blocking_send(last);
        });
        while let Some(piece) = rx.recv().await {
            match piece {
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => write_frame(socket, &[b"R", &bytes]).await?,
                Err(message) => return write_failure(socket, "58030", message).await,
            }
        }
        reader.await.map_err(std::io::Error::other)?;
        write_frame(socket, &[b"D"]).await
    }

    async fn reply_status(
        &self,
        socket: &mut TcpStream,
        store: Option<&ColumnStoreRef>,
    ) -> std::io::Result<()> {
        let body = serde_json::to_vec(&self.status(store)).map_err(invalid)?;
        write_frame(socket, &[b"S", &body]).await
    }

    /// Runs one scan, writing its output as it comes; returns when it ended, failed, or the
    /// requester went away.
    async fn scan(
        &self,
        store: Option<ColumnStoreRef>,
        header: ScanHeader,
        schema: &[u8],
        conjuncts: &[Vec<u8>],
        mut requester: tokio::net::tcp::OwnedReadHalf,
        out: &mut tokio::net::tcp::OwnedWriteHalf,
    ) -> Result<(), Stop> {
        let member = self.member;
        let store = store.ok_or_else(|| {
            Stop::sql(
                "55000",
                format!("the column replica of member {member} is not running"),
            )
        })?;
        let wait = Duration::from_millis(header.wait_ms);
        if !store.wait_applied(header.version, wait).await {
            return Err(Stop::sql(
                "40001",
                format!(
                    "the column replica of member {member} did not reach version {} within \
                     {} ms (it is at {})",
                    header.version,
                    header.wait_ms,
                    store.applied()
                ),
            ));
        }
        let snapshot = store
            .snapshot(&header.table, header.version)
            .map_err(|why| {
                Stop::sql(
                    "55000",
                    format!(
                        "member {member} cannot scan table \"{}\": {why}",
                        header.table.name
                    ),
                )
            })?;
        let read_schema = StreamReader::try_new(schema, None)
            .map_err(|e| Stop::plan(e.into()))?
            .schema();
        let mut state = self.state.clone();
        state.config_mut().options_mut().execution.time_zone = header.time_zone.clone();
        let task = state.task_ctx();
        let exprs = conjuncts
            .iter()
            .map(|b| Expr::from_bytes_with_ctx(b, &task))
            .collect::<DfResult<Vec<_>>>()
            .map_err(Stop::plan)?;
        let filter = ScanFilter::from_parts(&state, header.read, read_schema, exprs, header.output)
            .map_err(Stop::plan)?;
        let output_schema = filter.output_schema.clone();
        let plan = Arc::new(ColumnScanExec::new(
            snapshot,
            header.version,
            filter,
            header.limit,
            header.partitions,
        ));
        let mut stream =
            datafusion::physical_plan::execute_stream(plan, task).map_err(Stop::plan)?;
        let mut ipc =
            StreamWriter::try_new(Vec::new(), &output_schema).map_err(|e| Stop::plan(e.into()))?;
        let mut probe = [0u8; 1];
        loop {
            let batch = tokio::select! {
                b = stream.next() => b,
                // The requester sends nothing more: readable means it closed (or broke).
                _ = requester.read(&mut probe) => {
                    return Err(Stop::Gone(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the requester went away",
                    )));
                }
            };
            match batch {
                None => break,
                Some(Err(e)) => return Err(Stop::plan(e)),
                Some(Ok(b)) => {
                    ipc.write(&b).map_err(|e| Stop::plan(e.into()))?;
                    let bytes = std::mem::take(ipc.get_mut());
                    write_frame(out, &[b"B", &bytes])
                        .await
                        .map_err(Stop::Gone)?;
                }
            }
        }
        ipc.finish().map_err(|e| Stop::plan(e.into()))?;
        let bytes = std::mem::take(ipc.get_mut());
        write_frame(out, &[b"B", &bytes])
            .await
            .map_err(Stop::Gone)?;
        Ok(())
    }
}

enum ScanError {
    /// A SQLSTATE and message.
    Sql(String, String),
    /// An error planning or running the scan, mapped by the service's [`ErrorMapper`].
    Plan(DataFusionError),
}

enum Stop {
    Failed(ScanError),
    /// The connection broke: nobody to tell.
    Gone(std::io::Error),
}

impl Stop {
    fn sql(code: &str, message: String) -> Self {
        Stop::Failed(ScanError::Sql(code.into(), message))
    }

    fn plan(e: DataFusionError) -> Self {
        Stop::Failed(ScanError::Plan(e))
    }
}

// ------------------------------------------------------------------------ requesting side

/// The row data of the cluster's voters, read over the network from their [`ScanService`]:
/// what a member without a row replica builds a table's column replica from. It has no
/// readers of its own (other members' readers pin versions through [`ReadPins`]).
pub struct RemoteRowSource {
    /// The SQL addresses of the members holding the row replica, the leader first.
    voters: Arc<dyn Fn() -> Vec<SocketAddr> + Send + Sync>,
}

impl RemoteRowSource {
    pub fn new(voters: Arc<dyn Fn() -> Vec<SocketAddr> + Send + Sync>) -> Self {
        RemoteRowSource { voters }
    }
}

/// Runs this module's async client on the calling thread (builds run on threads of their
/// own, outside any runtime).
fn block_on<T>(work: impl std::future::Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

/// Reads a frame, waiting at most `wait` for it.
async fn read_frame_within(s: &mut TcpStream, wait: Duration) -> std::io::Result<Vec<u8>> {
    tokio::time::timeout(wait, read_frame(s))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))?
}

impl RemoteRowSource {
    async fn rows_from(
        addr: SocketAddr,
        def: &TableDef,
        version: u64,
        f: &mut duet_common::source::RowVisitor<'_>,
    ) -> std::io::Result<()> {
        let wait = Duration::from_secs(60);
        let mut s = connect(addr).await?;
        let request = Request::Rows {
            table: def.clone(),
            version,
            wait_ms: wait.as_millis() as u64,
        };
        write_frame(&mut s, &[&serde_json::to_vec(&request).map_err(invalid)?]).await?;
        loop {
            let frame = read_frame_within(&mut s, wait + CONNECT_TIMEOUT).await?;
            match frame.split_first() {
                Some((b'R', mut body)) => {
                    while !body.is_empty() {
                        let (k, rest) = take_field(body)?;
                        let (v, rest) = take_field(rest)?;
                        body = rest;
                        if !f(k, v) {
                            return Ok(());
                        }
                    }
                }
                Some((b'D', _)) => return Ok(()),
                Some((b'E', body)) => {
                    let f: Failure = serde_json::from_slice(body).map_err(invalid)?;
                    return Err(std::io::Error::other(f.message));
                }
                _ => return Err(invalid("an unexpected frame")),
            }
        }
    }

    /// Whether the member at `addr` has applied `version` to its row replica (it waits
    /// up to `wait`).
    async fn rows_reached(addr: SocketAddr, version: u64, wait: Duration) -> std::io::Result<bool> {
        let mut s = connect(addr).await?;
        let request = Request::RowsWait {
            version,
            wait_ms: wait.as_millis() as u64,
        };
        write_frame(&mut s, &[&serde_json::to_vec(&request).map_err(invalid)?]).await?;
        Ok(read_frame_within(&mut s, wait + CONNECT_TIMEOUT).await? == [b'V', 1])
    }
}

/// One `u32`-length-prefixed field of `bytes`, and the rest.
fn take_field(bytes: &[u8]) -> std::io::Result<(&[u8], &[u8])> {
    let short = || invalid("a truncated row frame");
    let len = bytes.get(..4).ok_or_else(short)?;
    let n = u32::from_be_bytes(len.try_into().expect("four bytes")) as usize;
    let field = bytes.get(4..4 + n).ok_or_else(short)?;
    Ok((field, &bytes[4 + n..]))
}

impl RowSource for RemoteRowSource {
    fn oldest_read_version(&self) -> u64 {
        u64::MAX
    }

    fn wait_version(&self, version: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let waited = block_on(async {
            while Instant::now() < deadline {
                for addr in (self.voters)() {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if Self::rows_reached(addr, version, left)
                        .await
                        .unwrap_or(false)
                    {
                        return Ok(true);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(false)
        });
        waited.unwrap_or(false)
    }

    fn scan_table(
        &self,
        def: &TableDef,
        version: u64,
        f: &mut duet_common::source::RowVisitor<'_>,
    ) -> duet_common::Result<()> {
        let mut last = None;
        for addr in (self.voters)() {
            // A member that fails before sending anything is skipped for the next one; one
            // that fails midway fails the build (its rows were visited already).
            let mut visited = false;
            let outcome = block_on(Self::rows_from(addr, def, version, &mut |k, v| {
                visited = true;
                f(k, v)
            }));
            match outcome {
                Ok(()) => return Ok(()),
                Err(e) if !visited => last = Some(e),
                Err(e) => {
                    return Err(duet_common::Error::Source {
                        source: Arc::new(e),
                    })
                }
            }
        }
        let e = last
            .unwrap_or_else(|| std::io::Error::other("no member with the row replica is known"));
        Err(duet_common::Error::Source {
            source: Arc::new(e),
        })
    }
}

/// A member that serves column scans, as this member last heard from it.
#[derive(Debug, Clone)]
pub struct RemoteMember {
    pub id: u64,
    /// Its SQL address (where the service listens).
    pub addr: SocketAddr,
    pub columns: MemberColumns,
    pub heard: Instant,
}

impl RemoteMember {
    /// Stable rows and delta versions of table `id`, if the member has it available.
    pub fn row_counts(&self, table: u32) -> Option<(u64, u64)> {
        self.columns
            .tables
            .iter()
            .find(|t| t.0 == table)
            .map(|t| (t.1, t.2))
    }
}

/// The other members' column replicas, kept fresh by whoever polls them
/// ([`RemoteColumns::refresh`]).
#[derive(Debug, Default)]
pub struct RemoteColumns {
    members: RwLock<Vec<Arc<RemoteMember>>>,
}

impl RemoteColumns {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Asks member `id` at `addr` for its status, telling it `pin` (this member's id and
    /// the oldest version its readers hold); a member that does not answer is forgotten
    /// until it does.
    pub async fn refresh(&self, id: u64, addr: SocketAddr, pin: (u64, u64)) {
        let heard = member_status(addr, None, Duration::ZERO, Some(pin)).await;
        let mut members = self.members.write();
        match heard {
            Ok(columns) => {
                let m = Arc::new(RemoteMember {
                    id,
                    addr,
                    columns,
                    heard: Instant::now(),
                });
                match members.iter_mut().find(|m| m.id == id) {
                    Some(old) => *old = m,
                    None => members.push(m),
                }
            }
            Err(e) => {
                tracing::debug!(member = id, %addr, error = %e, "no column status");
                members.retain(|m| m.id != id);
            }
        }
    }

    /// What member `id` last said, if it answers.
    pub fn get(&self, id: u64) -> Option<Arc<RemoteMember>> {
        self.members.read().iter().find(|m| m.id == id).cloned()
    }

    /// The member to read table `table` from: one that has it available, heard from
    /// lately, the furthest applied (asked for every scan planned: no copy).
    pub fn pick(&self, table: u32) -> Option<Arc<RemoteMember>> {
        self.members
            .read()
            .iter()
            .filter(|m| m.heard.elapsed() < STATUS_FRESH && m.row_counts(table).is_some())
            .max_by_key(|m| m.columns.applied)
            .cloned()
    }

    /// Waits until `member` applied `version` (at most `wait`): its status then, or why
    /// it could not.
    pub async fn wait_applied(
        &self,
        member: &RemoteMember,
        version: u64,
        wait: Duration,
    ) -> Result<MemberColumns, String> {
        let status = member_status(member.addr, Some(version), wait, None)
            .await
            .map_err(|e| format!("member {} did not answer: {e}", member.id))?;
        let mut members = self.members.write();
        if let Some(m) = members.iter_mut().find(|m| m.id == member.id) {
            *m = Arc::new(RemoteMember {
                columns: status.clone(),
                heard: Instant::now(),
                ..member.clone()
            });
        }
        if status.applied >= version {
            Ok(status)
        } else {
            Err(format!(
                "the column replica of member {} did not reach version {version} within {} ms \
                 (it is at {})",
                member.id,
                wait.as_millis(),
                status.applied
            ))
        }
    }
}

/// A scan of another member's column replica.
#[derive(Debug)]
pub struct RemoteColumnScanExec {
    request: Arc<RemoteScanRequest>,
    filter_display: Option<String>,
    schema: SchemaRef,
    props: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    observer: Option<Arc<dyn ScanObserver>>,
    estimates: Option<Estimates>,
}

impl RemoteColumnScanExec {
    /// A scan of `table` at `version` on `member` with `filter` (planned here in
    /// `state`). The filter's conjuncts that survive the trip (encoded, then decoded with
    /// this session's functions into the same expression) are evaluated there; the others
    /// (those naming a function made by a rewrite rule, which no registry holds) here, on
    /// the columns the scan reads.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        member: &RemoteMember,
        table: TableDef,
        version: u64,
        filter: &ScanFilter,
        limit: Option<usize>,
        partitions: usize,
        wait: Duration,
        state: &dyn datafusion::catalog::Session,
    ) -> DfResult<Self> {
        let task = state.task_ctx();
        let (mut conjuncts, mut shipped, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        for e in &filter.exprs {
            let encoded = e
                .to_bytes()
                .ok()
                .filter(|b| Expr::from_bytes_with_ctx(b, &task).is_ok_and(|decoded| &decoded == e));
            match encoded {
                Some(b) => {
                    conjuncts.push(b.to_vec());
                    shipped.push(e.to_string());
                }
                None => kept.push(e.clone()),
            }
        }
        let (output, limit, local) = if kept.is_empty() {
            (filter.output_positions().to_vec(), limit, None)
        } else {
            // The member returns every column read; the rest of the filter runs here, and
            // so does the limit.
            let local = ScanFilter::from_parts(
                state,
                filter.read.clone(),
                filter.read_schema.clone(),
                kept,
                filter.output_positions().to_vec(),
            )?;
            ((0..filter.read.len()).collect(), None, Some(local))
        };
        let mut read_schema = StreamWriter::try_new(Vec::new(), &filter.read_schema)?;
        read_schema.finish()?;
        let read_schema = read_schema.into_inner()?;
        let schema = filter.output_schema.clone();
        Ok(RemoteColumnScanExec {
            request: Arc::new(RemoteScanRequest {
                member: member.id,
                addr: member.addr,
                header: ScanHeader {
                    table,
                    version,
                    read: filter.read.clone(),
                    output,
                    conjuncts: conjuncts.len(),
                    limit,
                    partitions,
                    wait_ms: wait.as_millis() as u64,
                    time_zone: state.config_options().execution.time_zone.clone(),
                },
                read_schema,
                conjuncts,
                local,
            }),
            filter_display: (!shipped.is_empty()).then(|| shipped.join(" AND ")),
            props: leaf_properties(&schema, 1),
            schema,
            metrics: ExecutionPlanMetricsSet::new(),
            observer: None,
            estimates: None,
        })
    }

    /// Reports this scan's work to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn ScanObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Reports `estimates` to DataFusion.
    pub fn with_estimates(mut self, estimates: Estimates) -> Self {
        self.estimates = Some(estimates);
        self
    }
}

impl DisplayAs for RemoteColumnScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let cols: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let r = &self.request;
        write!(
            f,
            "ColumnScan: table={}, engine=column, member={} ({}), version={}, projection=[{}]",
            r.header.table.name,
            r.member,
            r.addr,
            r.header.version,
            cols.join(", ")
        )?;
        if let Some(filter) = &self.filter_display {
            write!(f, ", filter=[{filter}]")?;
        }
        if let Some(local) = &r.local {
            write!(f, ", local_filter=[{}]", local.display())?;
        }
        if let Some(l) = r.header.limit {
            write!(f, ", limit={l}")?;
        }
        if let Some(o) = &self.observer {
            write!(f, ", {}", o.describe())?;
        }
        Ok(())
    }
}

/// The requesting side of one scan, read as DataFusion polls.
struct Fetch {
    exec: Arc<RemoteScanRequest>,
    socket: Option<TcpStream>,
    decoder: StreamDecoder,
    pending: Buffer,
    done: bool,
    report: Report,
}

/// Where a remote scan goes and what it asks.
#[derive(Debug)]
struct RemoteScanRequest {
    member: u64,
    addr: SocketAddr,
    header: ScanHeader,
    read_schema: Vec<u8>,
    conjuncts: Vec<Vec<u8>>,
    /// The part of the filter evaluated here, on the member's batches of the columns read.
    local: Option<ScanFilter>,
}

/// Tells the observer the stream's rows and wall time when it ends or is dropped.
struct Report {
    metrics: BaselineMetrics,
    observer: Option<Arc<dyn ScanObserver>>,
    started: Instant,
}

impl Drop for Report {
    fn drop(&mut self) {
        if let Some(o) = self.observer.take() {
            o.partition_done(
                self.metrics.output_rows().value() as u64,
                self.started.elapsed(),
            );
        }
    }
}

impl Fetch {
    fn lost(&self, e: std::io::Error) -> DataFusionError {
        remote_error(
            "08006",
            format!(
                "the connection to member {} ({}) serving the column scan failed: {e}",
                self.exec.member, self.exec.addr
            ),
        )
    }

    async fn open(&mut self) -> DfResult<()> {
        let mut s = connect(self.exec.addr).await.map_err(|e| self.lost(e))?;
        let request = serde_json::to_vec(&Request::Scan(self.exec.header.clone()))
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // One write of every frame.
        let mut out = Vec::new();
        for part in std::iter::once(&request)
            .chain(std::iter::once(&self.exec.read_schema))
            .chain(self.exec.conjuncts.iter())
        {
            write_frame(&mut out, &[part])
                .await
                .map_err(|e| self.lost(e))?;
        }
        s.write_all(&out).await.map_err(|e| self.lost(e))?;
        self.socket = Some(s);
        Ok(())
    }

    /// The next batch, reading frames until one completes.
    async fn next(&mut self) -> DfResult<Option<RecordBatch>> {
        if self.done {
            return Ok(None);
        }
        if self.socket.is_none() {
            self.open().await?;
        }
        loop {
            if !self.pending.is_empty() {
                if let Some(b) = self.decoder.decode(&mut self.pending)? {
                    let b = match &self.exec.local {
                        Some(local) => local.apply(b, None)?,
                        None => b,
                    };
                    if b.num_rows() == 0 {
                        continue;
                    }
                    self.report.metrics.record_output(b.num_rows());
                    return Ok(Some(b));
                }
                continue;
            }
            let socket = self.socket.as_mut().expect("opened above");
            let frame = read_frame(socket).await.map_err(|e| self.lost(e))?;
            match frame.split_first() {
                Some((b'B', body)) => self.pending = Buffer::from(body.to_vec()),
                Some((b'D', _)) => {
                    self.done = true;
                    self.decoder.finish()?;
                    self.report.metrics.done();
                    return Ok(None);
                }
                Some((b'E', body)) => {
                    self.done = true;
                    let f: Failure = serde_json::from_slice(body)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                    return Err(remote_error(&f.code, f.message));
                }
                _ => return Err(self.lost(invalid("an unexpected frame"))),
            }
        }
    }
}

impl ExecutionPlan for RemoteColumnScanExec {
    fn name(&self) -> &str {
        "RemoteColumnScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let fetch = Fetch {
            exec: self.request.clone(),
            socket: None,
            decoder: StreamDecoder::new(),
            pending: Buffer::from(Vec::<u8>::new()),
            done: false,
            report: Report {
                metrics: BaselineMetrics::new(&self.metrics, partition),
                observer: self.observer.clone(),
                started: Instant::now(),
            },
        };
        let stream = futures::stream::unfold((fetch, false), |(mut f, failed)| async move {
            if failed {
                return None;
            }
            match f.next().await {
                Ok(Some(b)) => Some((Ok(b), (f, false))),
                Ok(None) => None,
                Err(e) => Some((Err(e), (f, true))),
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn partition_statistics(&self, _partition: Option<usize>) -> DfResult<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema);
        if let Some(e) = &self.estimates {
            e.apply(&mut stats, 1.0);
        }
        Ok(Arc::new(stats))
    }
}
