//! The listener: accepts sockets and runs one [`Connection`] per client, at most
//! `max_connections` at a time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::auth::Hba;
use crate::backend::SqlBackend;
use crate::handler::Connection;
use crate::sqlstate::SqlState;

/// PostgreSQL's default `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// How a listener admits clients.
#[derive(Clone)]
pub struct ServerOptions {
    /// At most this many at a time; one more is told `FATAL 53300`.
    pub max_connections: usize,
    /// Who may log in and how.
    pub hba: Arc<Hba>,
    /// TLS, offered to clients that ask (SSLRequest) when set.
    pub tls: Option<pgwire::tokio::TlsAcceptor>,
    /// In a cluster: which member serves a new connection (see [`Route`]).
    pub route: Option<Arc<dyn Route>>,
    /// In a cluster: what the other members ask of this one on its SQL port (see
    /// [`MemberService`]).
    pub member_service: Option<Arc<dyn MemberService>>,
}

/// A service the other members of a cluster reach on this member's SQL port (the column
/// scans it serves them): a connection from a member's host ([`Route::relays_from`]) whose
/// first eight bytes are [`MemberService::magic`] (no PostgreSQL startup packet starts so)
/// is handed over, unread, instead of becoming a session.
pub trait MemberService: Send + Sync {
    fn magic(&self) -> &'static [u8; 8];
    fn serve(
        &self,
        socket: TcpStream,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;
}

/// Where a new connection is served, asked once per connection before anything is read.
pub trait Route: Send + Sync {
    /// `Ok(None)`: here; `Ok(Some(addr))`: the member listening for SQL at `addr`, to
    /// which the connection's bytes are relayed both ways (TLS, authentication and cancel
    /// requests included); `Err(why)`: nowhere yet (no leader), asked again for a while,
    /// then the client is told `FATAL 57P03` with `why`.
    fn route(&self) -> Result<Option<SocketAddr>, String>;
    /// Whether a connection from `ip` is another member's relay, whose PROXY header (the
    /// client's address, for the host rules) is believed.
    fn relays_from(&self, ip: std::net::IpAddr) -> bool;
}

/// The PROXY protocol (version 1) line a relaying member sends first: `PROXY TCP4|TCP6
/// client-ip server-ip client-port server-port`.
fn proxy_line(client: SocketAddr, member: SocketAddr) -> String {
    let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        client.ip(),
        member.ip(),
        client.port(),
        member.port()
    )
}

/// Reads a PROXY line from `socket` (known to start with `PROXY `): the client's address.
async fn read_proxy_line(socket: &mut TcpStream) -> Option<SocketAddr> {
    let mut line = Vec::with_capacity(108);
    let mut byte = [0u8; 1];
    while line.len() < 108 {
        socket.read_exact(&mut byte).await.ok()?;
        line.push(byte[0]);
        if line.ends_with(b"\r\n") {
            let text = std::str::from_utf8(&line).ok()?;
            let parts: Vec<&str> = text.trim_end().split(' ').collect();
            let [_, _, ip, _, port, _] = parts.as_slice() else {
                return None;
            };
            return Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?));
        }
    }
    None
}

/// How long a new connection waits for a member to serve it (an election).
const ROUTE_WAIT: Duration = Duration::from_secs(5);

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            hba: Arc::new(Hba::default()),
            tls: None,
            route: None,
            member_service: None,
        }
    }
}

/// One of the `max_connections` places, given back when the connection ends.
struct ConnectionSlot(Arc<AtomicUsize>);

impl ConnectionSlot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<ConnectionSlot> {
        let mut n = open.load(Ordering::Relaxed);
        loop {
            if n >= max {
                return None;
            }
            match open.compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(ConnectionSlot(open.clone())),
                Err(now) => n = now,
            }
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Tells a client it cannot be served, as PostgreSQL does when over the limit: it reads
/// the client's first message (an SSLRequest is answered `N` and the startup message read
/// next), then sends `ErrorResponse` (FATAL, `state`, `message`) and closes.
async fn refuse(socket: &mut TcpStream, state: SqlState, message: &str) {
    use pgwire::messages::startup::{GssEncRequest, SslRequest};
    use pgwire::messages::Message;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn read_message(socket: &mut tokio::net::TcpStream) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        socket.read_exact(&mut len).await?;
        let n = (u32::from_be_bytes(len) as usize).clamp(4, 10_000);
        let mut body = vec![0u8; n - 4];
        socket.read_exact(&mut body).await?;
        Ok(body)
    }
    let work = async {
        let first = read_message(socket).await?;
        // An SSLRequest or GSSENCRequest comes before the startup message.
        let code = <[u8; 4]>::try_from(first.as_slice())
            .ok()
            .map(i32::from_be_bytes);
        if code == Some(SslRequest::BODY_MAGIC_NUMBER)
            || code == Some(GssEncRequest::BODY_MAGIC_NUMBER)
        {
            socket.write_all(b"N").await?;
            read_message(socket).await?;
        }
        // FATAL, as PostgreSQL sends it (the session never started).
        let info =
            pgwire::error::ErrorInfo::new("FATAL".into(), state.code().into(), message.into());
        let mut msg = bytes::BytesMut::new();
        pgwire::messages::response::ErrorResponse::from(info)
            .encode(&mut msg)
            .map_err(std::io::Error::other)?;
        socket.write_all(&msg).await?;
        socket.shutdown().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), work).await;
}

/// A CancelRequest's first 8 bytes: its length (16) and code (protocol 3.0's 4-byte key).
const CANCEL_HEAD: [u8; 8] = {
    let len = 16i32.to_be_bytes();
    let code = 80_877_102i32.to_be_bytes();
    [
        len[0], len[1], len[2], len[3], code[0], code[1], code[2], code[3],
    ]
};

/// How long a new connection may take to send its first message before it is handed to
/// pgwire anyway (which then waits on its own).
const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(10);

/// A running listener.
///
/// Accepting runs on a thread of its own, not on the runtime that runs sessions: a
/// CancelRequest must get through while queries keep every worker of that runtime busy
/// (as PostgreSQL's postmaster answers one while backends compute). A CancelRequest is
/// read and carried out there, and takes no `max_connections` place; every other
/// connection is handed to the sessions' runtime.
pub struct Server {
    addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds `listen` and starts accepting clients of `backend`, whose sessions run on the
    /// current tokio runtime, at most `options.max_connections` at a time; one more is told
    /// `FATAL 53300 sorry, too many clients already` and disconnected, as by PostgreSQL.
    pub async fn start<B: SqlBackend>(
        backend: Arc<B>,
        listen: SocketAddr,
        options: ServerOptions,
    ) -> std::io::Result<Server> {
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let sessions = tokio::runtime::Handle::current();
        let accept = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("duet-accept".into())
            .spawn(move || {
                accept.block_on(accept_loop(listener, backend, sessions, options, stopped))
            })?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes the listening socket. Open connections end when their
    /// tasks see the sessions' runtime shut down.
    pub async fn shutdown(mut self) {
        if let Some(thread) = self.stop_accepting() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Tells the accept thread to end; its handle, to join, the first time.
    fn stop_accepting(&mut self) -> Option<std::thread::JoinHandle<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        self.thread.take()
    }
}

impl Drop for Server {
    /// Stops accepting; returns once the listening socket is closed (the accept thread
    /// ends within one wake-up), so the address can be bound again.
    fn drop(&mut self) {
        if let Some(thread) = self.stop_accepting() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop<B: SqlBackend>(
    listener: std::net::TcpListener,
    backend: Arc<B>,
    sessions: tokio::runtime::Handle,
    options: ServerOptions,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen");
            return;
        }
    };
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(admit(
                        socket,
                        peer,
                        backend.clone(),
                        sessions.clone(),
                        open.clone(),
                        options.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Carries out a CancelRequest on the accept thread; hands any other connection, within
/// `max_connections`, to the sessions' runtime.
/// `FATAL 57P01 terminating connection due to administrator command` as an ErrorResponse.
fn terminated_message() -> Vec<u8> {
    let mut fields = Vec::new();
    for (code, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "57P01"),
        (b'M', "terminating connection due to administrator command"),
    ] {
        fields.push(code);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(&fields);
    out
}

async fn admit<B: SqlBackend>(
    mut socket: TcpStream,
    peer: SocketAddr,
    backend: Arc<B>,
    sessions: tokio::runtime::Handle,
    open: Arc<AtomicUsize>,
    options: ServerOptions,
) {
    let mut head = [0u8; 8];
    let mut peeked = tokio::time::timeout(FIRST_MESSAGE_WAIT, socket.peek(&mut head)).await;
    // A connection another member relayed starts with the client's address: host rules
    // judge it, and a relay onwards (leadership moved meanwhile) passes it on.
    if let (Some(service), Ok(Ok(8))) = (&options.member_service, &peeked) {
        if &head == service.magic() {
            let member = options
                .route
                .as_ref()
                .is_some_and(|r| r.relays_from(peer.ip()));
            if member {
                sessions.spawn(service.serve(socket));
            } else {
                tracing::warn!(%peer, "a member's request from a host that is no cluster member");
            }
            return;
        }
    }
    let mut client = peer;
    let mut proxied = false;
    if matches!(peeked, Ok(Ok(n)) if n >= 6) && head.starts_with(b"PROXY ") {
        let trusted = options
            .route
            .as_ref()
            .is_some_and(|r| r.relays_from(peer.ip()));
        if !trusted {
            tracing::warn!(%peer, "a PROXY header from a host that is no cluster member");
            return;
        }
        let Some(named) = tokio::time::timeout(FIRST_MESSAGE_WAIT, read_proxy_line(&mut socket))
            .await
            .ok()
            .flatten()
        else {
            return;
        };
        client = named;
        proxied = true;
    }
    if let Some(route) = &options.route {
        let deadline = tokio::time::Instant::now() + ROUTE_WAIT;
        loop {
            match route.route() {
                Ok(None) => break,
                Ok(Some(member)) => {
                    sessions.spawn(relay(socket, client, member));
                    return;
                }
                Err(why) if tokio::time::Instant::now() >= deadline => {
                    refuse(&mut socket, SqlState::CannotConnectNow, &why).await;
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    if proxied {
        peeked = tokio::time::timeout(FIRST_MESSAGE_WAIT, socket.peek(&mut head)).await;
    }
    if matches!(peeked, Ok(Ok(8))) && head == CANCEL_HEAD {
        let mut msg = [0u8; 16];
        if let Ok(Ok(_)) =
            tokio::time::timeout(FIRST_MESSAGE_WAIT, socket.read_exact(&mut msg)).await
        {
            let pid = i32::from_be_bytes([msg[8], msg[9], msg[10], msg[11]]);
            backend.cancel(pid, &msg[12..16]);
        }
        // As PostgreSQL does, the connection closes without a reply.
        return;
    }
    let Some(slot) = ConnectionSlot::take(&open, options.max_connections) else {
        refuse(
            &mut socket,
            SqlState::TooManyConnections,
            "sorry, too many clients already",
        )
        .await;
        return;
    };
    let socket = match socket.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "connection lost before its session started");
            return;
        }
    };
    sessions.spawn(async move {
        let _slot = slot;
        // A second handle on the socket, to say why when the connection is terminated.
        let raw = socket.try_clone().ok();
        let socket = match TcpStream::from_std(socket) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%peer, error = %e, "failed to take over the connection");
                return;
            }
        };
        let terminate = tokio_util::sync::CancellationToken::new();
        let conn = match Connection::with_client_ip(
            backend,
            options.hba,
            terminate.clone(),
            proxied.then_some(client.ip()),
        ) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::error!(%peer, error = %e.message, "failed to set up session");
                return;
            }
        };
        let plain = options.tls.is_none();
        tokio::select! {
            // Termination first: a connection terminated while idle must not run the
            // next statement it reads.
            biased;
            () = terminate.cancelled() => {
                // The session is dropped with the connection's future. On a connection
                // without TLS the client is told why first, as PostgreSQL tells it.
                if let (true, Some(mut raw)) = (plain, raw) {
                    use std::io::Write;
                    let _ = raw.write_all(&terminated_message());
                    let _ = raw.shutdown(std::net::Shutdown::Both);
                }
                tracing::info!(%peer, "connection terminated");
            }
            ended = pgwire::tokio::process_socket(socket, options.tls, conn) => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
        }
    });
}

/// Relays the connection of the client at `peer` to the member at `member` and back, byte
/// for byte, until either side closes.
async fn relay(mut client: TcpStream, peer: SocketAddr, member: SocketAddr) {
    let mut upstream = match TcpStream::connect(member).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(%peer, %member, error = %e, "cannot reach the serving member");
            let why = format!("the member serving this cluster ({member}) is unreachable: {e}");
            refuse(&mut client, SqlState::CannotConnectNow, &why).await;
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    // The member that serves the connection checks its host rules against the client's
    // address, not this member's.
    use tokio::io::AsyncWriteExt;
    if upstream
        .write_all(proxy_line(peer, member).as_bytes())
        .await
        .is_err()
    {
        return;
    }
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(%peer, %member, error = %e, "relayed connection ended");
    }
}
