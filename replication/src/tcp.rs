//! Raft messages between processes over TCP.
//!
//! [`TcpTransport`] is a [`Transport`]: each process listens on its Raft address and opens
//! one connection to every member it sends to. A connection carries length-delimited frames
//! (`u32` big-endian length, then a raft-rs `Message` in its protobuf encoding) after a
//! handshake (`DUETRAFT`, the format version, the sender's member id and what it
//! advertises: its SQL address, so that every member learns where the leader serves SQL).
//!
//! Why frames over plain TCP rather than gRPC: raft-rs already gives each message its
//! protobuf encoding, the peers are driven by threads (not tokio tasks) and nothing else
//! speaks this protocol; a frame per message over one stream per peer is what TiKV's
//! batched gRPC stream amounts to, without tonic's code generation and build time.
//!
//! Snapshots travel apart from the other messages: on a connection of their own, one at a
//! time per member (a second is refused while one is on its way, and raft retries it), in
//! chunks of 1 MiB (a frame length of `u32::MAX`, the total length, then the chunks), so
//! heartbeats and appends to that member do not queue behind a large snapshot.
//!
//! Per remote member a bounded queue and a writer thread: a message that does not fit (the
//! peer is slow or gone) is refused, and so is one for a member whose connection is down;
//! the peer's driver then reports the member unreachable to raft, which probes it again
//! later. The writer batches what is queued into one write and reconnects with a backoff.
//! Incoming connections get a reader thread each that hands messages to the local peer's
//! mailbox.
//!
//! Faults for tests: messages to or from chosen members are dropped silently, as a network
//! partition would, both ways ([`TcpTransport::isolate`]) or one way
//! ([`TcpTransport::mute`], [`TcpTransport::deafen`]), held before delivery
//! ([`TcpTransport::delay`]) or lost at random ([`TcpTransport::lose`]); healing lets
//! everything through again.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use protobuf::Message as _;
use raft::eraftpb::Message;

use crate::peer::{Mailbox, Transport};

const MAGIC: &[u8; 8] = b"DUETRAFT";
const VERSION: u32 = 1;
/// Messages waiting for one member's connection.
const QUEUE: usize = 4096;
/// The largest frame accepted.
const MAX_FRAME: usize = 1 << 30;
/// A frame length that announces a chunked message: a `u64` total length follows, then
/// frames of at most [`SNAPSHOT_CHUNK`] bytes until the total is reached.
const CHUNKED: u32 = u32::MAX;
/// Bytes per chunk of a snapshot.
const SNAPSHOT_CHUNK: usize = 1 << 20;
/// The largest snapshot accepted.
const MAX_SNAPSHOT: u64 = 1 << 40;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Between two failed connection attempts to one member.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// Counters of one transport.
#[derive(Default, Debug)]
pub struct TransportStats {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Refused because the member's queue was full or its connection down.
    pub refused: AtomicU64,
    /// Dropped by a test's partition.
    pub dropped: AtomicU64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    /// Snapshots sent whole, and refused because one was still on its way to the member.
    pub snapshots_sent: AtomicU64,
    pub snapshots_refused: AtomicU64,
}

struct Remote {
    queue: SyncSender<Message>,
    /// Room for one snapshot, sent on a connection of its own.
    snapshots: SyncSender<Message>,
    /// False after a failed connection attempt or write, until the next connect succeeds.
    up: Arc<AtomicBool>,
}

struct Inner {
    /// This process's member id.
    id: u64,
    local_addr: SocketAddr,
    addresses: RwLock<HashMap<u64, String>>,
    mailboxes: RwLock<HashMap<u64, Mailbox>>,
    remotes: RwLock<HashMap<u64, Remote>>,
    /// What this member tells the others in its handshake, and what they told it.
    advertise: RwLock<String>,
    advertised: RwLock<HashMap<u64, String>>,
    /// Peers (Raft ids) whose messages from here are dropped.
    muted: RwLock<HashSet<u64>>,
    /// Members whose messages to here are dropped.
    deaf_to: RwLock<HashSet<u64>>,
    /// How long every arriving message is held before delivery, in microseconds.
    delay_us: AtomicU64,
    /// Parts per million of arriving messages dropped at random.
    loss_ppm: AtomicU64,
    /// State of the generator that picks them (xorshift).
    loss_rng: AtomicU64,
    stopped: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Open incoming connections by a number of their own, to shut down on stop (each
    /// reader removes its own when its connection ends: a snapshot comes on a connection
    /// of its own).
    incoming: Mutex<HashMap<u64, TcpStream>>,
    stats: TransportStats,
}

/// See the module.
pub struct TcpTransport {
    inner: Arc<Inner>,
}

impl TcpTransport {
    /// Listens on `listen` (port 0 picks one: see [`TcpTransport::local_addr`]) as member
    /// `id`; `members` maps member ids to Raft addresses (this member's own is ignored).
    pub fn bind(
        id: u64,
        listen: &str,
        members: HashMap<u64, String>,
    ) -> std::io::Result<Arc<Self>> {
        let listener = TcpListener::bind(listen)?;
        let local_addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            id,
            local_addr,
            addresses: RwLock::new(members),
            mailboxes: RwLock::new(HashMap::new()),
            remotes: RwLock::new(HashMap::new()),
            advertise: RwLock::new(String::new()),
            advertised: RwLock::new(HashMap::new()),
            muted: RwLock::new(HashSet::new()),
            deaf_to: RwLock::new(HashSet::new()),
            delay_us: AtomicU64::new(0),
            loss_ppm: AtomicU64::new(0),
            loss_rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15 ^ id),
            stopped: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            incoming: Mutex::new(HashMap::new()),
            stats: TransportStats::default(),
        });
        let acceptor = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name(format!("raft-accept-{id}"))
                .spawn(move || accept_loop(inner, listener))?
        };
        inner.threads.lock().push(acceptor);
        Ok(Arc::new(Self { inner }))
    }

    /// The address the transport listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Sets (or changes) a member's Raft address.
    pub fn set_address(&self, id: u64, addr: String) {
        self.inner.addresses.write().insert(id, addr);
    }

    /// What this member advertises to the others (its SQL address), sent with every new
    /// connection.
    pub fn advertise(&self, info: String) {
        *self.inner.advertise.write() = info;
    }

    /// What this member advertises.
    pub fn advertised_here(&self) -> String {
        self.inner.advertise.read().clone()
    }

    /// What member `id` advertised when it last connected here.
    pub fn advertised(&self, id: u64) -> Option<String> {
        self.inner.advertised.read().get(&id).cloned()
    }

    /// The transport's counters.
    pub fn stats(&self) -> &TransportStats {
        &self.inner.stats
    }

    /// Drops every message to and from `ids` from now on (a network partition between this
    /// process and them).
    pub fn isolate(&self, ids: &[u64]) {
        self.mute(ids);
        self.deafen(ids);
    }

    /// Drops every message from here to `ids` (Raft ids) from now on: one direction of a
    /// partition.
    pub fn mute(&self, ids: &[u64]) {
        self.inner.muted.write().extend(ids.iter().copied());
    }

    /// Drops every message from members `ids` to here from now on: the other direction.
    pub fn deafen(&self, ids: &[u64]) {
        self.inner.deaf_to.write().extend(ids.iter().copied());
    }

    /// Holds every message arriving here for `delay` before delivering it (in order: a slow
    /// network, and the senders' queues fill as a slow link's would).
    pub fn delay(&self, delay: Duration) {
        self.inner
            .delay_us
            .store(delay.as_micros() as u64, Ordering::Release);
    }

    /// Drops `fraction` (0 to 1) of the messages arriving here, chosen at random: a lossy
    /// network.
    pub fn lose(&self, fraction: f64) {
        let ppm = (fraction.clamp(0.0, 1.0) * 1e6) as u64;
        self.inner.loss_ppm.store(ppm, Ordering::Release);
    }

    /// Lets every message through again, without delay or loss.
    pub fn heal(&self) {
        self.inner.muted.write().clear();
        self.inner.deaf_to.write().clear();
        self.inner.delay_us.store(0, Ordering::Release);
        self.inner.loss_ppm.store(0, Ordering::Release);
    }

    /// Stops listening, closes every connection and joins the transport's threads.
    pub fn stop(&self) {
        if self.inner.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        // Wake the acceptor, and every reader blocked on its socket.
        let _ = TcpStream::connect_timeout(&self.inner.local_addr, CONNECT_TIMEOUT);
        for (_, s) in self.inner.incoming.lock().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Writers wake on their queue's disconnection.
        self.inner.remotes.write().clear();
        let threads = std::mem::take(&mut *self.inner.threads.lock());
        for t in threads {
            let _ = t.join();
        }
    }

    /// Starts the queue and writer thread of member `to` (if it has an address and none
    /// runs yet).
    fn add_remote(&self, to: u64) {
        let mut remotes = self.inner.remotes.write();
        if remotes.contains_key(&to) {
            return;
        }
        let Some(addr) = self.inner.addresses.read().get(&to).cloned() else {
            return;
        };
        let (queue, rx) = sync_channel(QUEUE);
        let (snapshots, snapshot_rx) = sync_channel(0);
        let up = Arc::new(AtomicBool::new(true));
        let writer = {
            let inner = self.inner.clone();
            let (up, addr) = (up.clone(), addr.clone());
            std::thread::Builder::new()
                .name(format!("raft-send-{}-{to}", self.inner.id))
                .spawn(move || write_loop(inner, to, addr, rx, up))
        };
        let snapshot_writer = {
            let inner = self.inner.clone();
            std::thread::Builder::new()
                .name(format!("raft-snap-{}-{to}", self.inner.id))
                .spawn(move || snapshot_loop(inner, to, addr, snapshot_rx))
        };
        if let (Ok(writer), Ok(snapshot_writer)) = (writer, snapshot_writer) {
            self.inner.threads.lock().extend([writer, snapshot_writer]);
            remotes.insert(
                to,
                Remote {
                    queue,
                    snapshots,
                    up,
                },
            );
        }
    }

    /// Queues `msg` for its member's writer; false if it will not arrive (no such member,
    /// its queue full, or its connection down: the writer is still woken to try again).
    fn enqueue(&self, msg: Message) -> bool {
        let remotes = self.inner.remotes.read();
        let Some(r) = remotes.get(&msg.to) else {
            return false;
        };
        if msg.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
            // A rendezvous: taken only by an idle snapshot writer, so at most one snapshot
            // is on its way to a member; raft sends another after this one is refused.
            let sent = r.snapshots.try_send(msg).is_ok();
            if !sent {
                self.inner
                    .stats
                    .snapshots_refused
                    .fetch_add(1, Ordering::Relaxed);
            }
            return sent;
        }
        let up = r.up.load(Ordering::Acquire);
        r.queue.try_send(msg).is_ok() && up
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Transport for TcpTransport {
    fn send(&self, msg: Message) -> bool {
        let inner = &self.inner;
        if inner.stopped.load(Ordering::Acquire) {
            return false;
        }
        if inner.muted.read().contains(&msg.to) {
            inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if let Some(m) = inner.mailboxes.read().get(&msg.to) {
            return m.deliver(msg);
        }
        if !inner.remotes.read().contains_key(&msg.to) {
            self.add_remote(msg.to);
        }
        let queued = self.enqueue(msg);
        if !queued {
            inner.stats.refused.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    fn register(&self, id: u64, mailbox: Mailbox) {
        self.inner.mailboxes.write().insert(id, mailbox);
    }

    fn unregister(&self, id: u64) {
        self.inner.mailboxes.write().remove(&id);
    }
}

fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    for (n, stream) in (0u64..).zip(listener.incoming()) {
        if inner.stopped.load(Ordering::Acquire) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        if let Ok(clone) = stream.try_clone() {
            inner.incoming.lock().insert(n, clone);
        }
        let reader = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name(format!("raft-recv-{}", inner.id))
                .spawn(move || {
                    if let Err(e) = read_loop(&inner, stream) {
                        if !inner.stopped.load(Ordering::Acquire) {
                            tracing::debug!(error = %e, "raft connection closed");
                        }
                    }
                    inner.incoming.lock().remove(&n);
                })
        };
        if let Ok(t) = reader {
            let mut threads = inner.threads.lock();
            // Readers of closed connections are done: let them go rather than keep them
            // for the join at stop.
            threads.retain(|t| !t.is_finished());
            threads.push(t);
        }
    }
}

impl Inner {
    /// Whether to drop the next arriving message ([`TcpTransport::lose`]).
    fn lost(&self) -> bool {
        let ppm = self.loss_ppm.load(Ordering::Acquire);
        if ppm == 0 {
            return false;
        }
        let mut x = self.loss_rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.loss_rng.store(x, Ordering::Relaxed);
        x % 1_000_000 < ppm
    }
}

/// Delivers each message it is given once the message's time comes (see
/// [`TcpTransport::delay`]); ends when its sender is dropped.
fn delayed_delivery(inner: Arc<Inner>) -> SyncSender<(Instant, Message)> {
    let (tx, rx) = sync_channel::<(Instant, Message)>(QUEUE);
    std::thread::spawn(move || {
        for (due, msg) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if let Some(m) = inner.mailboxes.read().get(&msg.to) {
                m.deliver(msg);
            }
        }
    });
    tx
}

fn read_loop(inner: &Arc<Inner>, stream: TcpStream) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(256 << 10, stream);
    let mut head = [0u8; 20];
    r.read_exact(&mut head)?;
    if &head[..8] != MAGIC || u32::from_be_bytes(head[8..12].try_into().unwrap()) != VERSION {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a DuetDB raft connection of this version",
        ));
    }
    let from = u64::from_be_bytes(head[12..20].try_into().unwrap());
    let mut len = [0u8; 2];
    r.read_exact(&mut len)?;
    let mut info = vec![0u8; u16::from_be_bytes(len) as usize];
    r.read_exact(&mut info)?;
    inner
        .advertised
        .write()
        .insert(from, String::from_utf8_lossy(&info).into_owned());
    let mut buf = Vec::new();
    let mut delayed = None;
    loop {
        let mut len = [0u8; 4];
        r.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len);
        if len == CHUNKED {
            read_chunked(&mut r, &mut buf)?;
        } else {
            let len = len as usize;
            if len > MAX_FRAME {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("raft frame of {len} bytes"),
                ));
            }
            buf.resize(len, 0);
            r.read_exact(&mut buf)?;
        }
        if inner.stopped.load(Ordering::Acquire) {
            return Ok(());
        }
        if inner.deaf_to.read().contains(&from) || inner.lost() {
            inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let msg = Message::parse_from_bytes(&buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        inner.stats.received.fetch_add(1, Ordering::Relaxed);
        let delay = inner.delay_us.load(Ordering::Acquire);
        if delay > 0 {
            // A full queue drops the message, as a congested link would.
            let _ = delayed
                .get_or_insert_with(|| delayed_delivery(inner.clone()))
                .try_send((Instant::now() + Duration::from_micros(delay), msg));
        } else if let Some(m) = inner.mailboxes.read().get(&msg.to) {
            m.deliver(msg);
        }
    }
}

/// Reads a chunked message (after its [`CHUNKED`] mark) into `buf`.
fn read_chunked(r: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut total = [0u8; 8];
    r.read_exact(&mut total)?;
    let total = u64::from_be_bytes(total);
    if total > MAX_SNAPSHOT {
        return Err(invalid(format!("a chunked raft message of {total} bytes")));
    }
    buf.clear();
    buf.reserve(total as usize);
    while (buf.len() as u64) < total {
        let mut len = [0u8; 4];
        r.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > SNAPSHOT_CHUNK || (buf.len() + len) as u64 > total {
            return Err(invalid(format!("a raft message chunk of {len} bytes")));
        }
        let start = buf.len();
        buf.resize(start + len, 0);
        r.read_exact(&mut buf[start..])?;
    }
    Ok(())
}

/// The next message of a writer's queue, or `None` once the transport stopped or the
/// queue is gone (it wakes every 200 ms to notice).
fn next_queued(inner: &Inner, rx: &Receiver<Message>) -> Option<Message> {
    loop {
        if inner.stopped.load(Ordering::Acquire) {
            return None;
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) if !inner.stopped.load(Ordering::Acquire) => return Some(m),
            Ok(_) | Err(RecvTimeoutError::Disconnected) => return None,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Sends each snapshot it is given on a connection of its own, in chunks (the socket's
/// send buffer paces it to what the receiver reads), so the member's other messages
/// (heartbeats, appends) do not wait behind it; a snapshot that cannot be sent is reported
/// to the sender's raft as failed (it tries again).
fn snapshot_loop(inner: Arc<Inner>, to: u64, addr: String, rx: Receiver<Message>) {
    while let Some(msg) = next_queued(&inner, &rx) {
        let sent = (|| -> std::io::Result<()> {
            let bytes = msg
                .write_to_bytes()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut w = connect(&inner, &addr)?;
            w.write_all(&CHUNKED.to_be_bytes())?;
            w.write_all(&(bytes.len() as u64).to_be_bytes())?;
            for chunk in bytes.chunks(SNAPSHOT_CHUNK) {
                if inner.stopped.load(Ordering::Acquire) {
                    return Err(std::io::Error::other("the transport stopped"));
                }
                w.write_all(&(chunk.len() as u32).to_be_bytes())?;
                w.write_all(chunk)?;
            }
            w.flush()
        })();
        match sent {
            Ok(()) => {
                inner.stats.snapshots_sent.fetch_add(1, Ordering::Relaxed);
                inner.stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(to, %addr, error = %e, "sending a raft snapshot failed");
                // The sender's raft waits for the snapshot's outcome: tell it, and it
                // sends another later.
                let mut failed = Message::default();
                failed.set_msg_type(raft::eraftpb::MessageType::MsgSnapStatus);
                failed.from = to;
                failed.to = msg.from;
                failed.reject = true;
                if let Some(m) = inner.mailboxes.read().get(&msg.from) {
                    m.deliver(failed);
                }
            }
        }
    }
}

fn connect(inner: &Inner, addr: &str) -> std::io::Result<BufWriter<TcpStream>> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                let mut w = BufWriter::with_capacity(256 << 10, s);
                w.write_all(MAGIC)?;
                w.write_all(&VERSION.to_be_bytes())?;
                w.write_all(&inner.id.to_be_bytes())?;
                let info = inner.advertise.read().clone();
                let info = &info.as_bytes()[..info.len().min(u16::MAX as usize)];
                w.write_all(&(info.len() as u16).to_be_bytes())?;
                w.write_all(info)?;
                return Ok(w);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("no address for {addr}"))))
}

fn write_loop(
    inner: Arc<Inner>,
    to: u64,
    addr: String,
    rx: Receiver<Message>,
    up: Arc<AtomicBool>,
) {
    let mut conn: Option<BufWriter<TcpStream>> = None;
    let mut last_failure: Option<Instant> = None;
    while let Some(first) = next_queued(&inner, &rx) {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        if conn.is_none() {
            if last_failure.is_some_and(|t| t.elapsed() < RECONNECT_BACKOFF) {
                // Too soon after a failure: these messages are lost, as raft was told.
                continue;
            }
            match connect(&inner, &addr) {
                Ok(c) => {
                    inner.stats.connects.fetch_add(1, Ordering::Relaxed);
                    conn = Some(c);
                    up.store(true, Ordering::Release);
                    last_failure = None;
                }
                Err(e) => {
                    inner.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(to, %addr, error = %e, "raft connection failed");
                    up.store(false, Ordering::Release);
                    last_failure = Some(Instant::now());
                    continue;
                }
            }
        }
        let w = conn.as_mut().expect("connected above");
        let written = (|| -> std::io::Result<()> {
            for m in &batch {
                let bytes = m
                    .write_to_bytes()
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                w.write_all(&(bytes.len() as u32).to_be_bytes())?;
                w.write_all(&bytes)?;
            }
            w.flush()
        })();
        match written {
            Ok(()) => {
                inner
                    .stats
                    .sent
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(to, error = %e, "raft connection lost");
                conn = None;
                up.store(false, Ordering::Release);
                last_failure = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests;
