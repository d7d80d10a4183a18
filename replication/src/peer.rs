//! A Raft peer: raft-rs's `RawNode` over a [`LogStore`], driven by its own thread.
//!
//! The driver loop owns the `RawNode`. Proposals, Raft messages and control requests reach it
//! through one channel; each turn it takes everything queued, lets raft produce one `Ready`,
//! persists that Ready's entries and hard state in **one** raft-engine write (fsync'd), sends
//! messages through the [`Transport`], and applies committed entries to the
//! [`StateMachine`]. Every proposal that arrived while the previous write was in flight shares
//! the next write: that is group commit.
//!
//! A peer whose log need not be on disk before it answers (the column learner:
//! [`LogSync::Batched`]) writes without fsync and syncs at most once per interval; the
//! messages that report its log as persisted (append responses) wait for that sync, so the
//! leader never counts on an entry the learner could lose.
//!
//! The loop is a thread rather than a tokio task because almost all of its time is spent in
//! blocking fsyncs and state-machine writes; a task would need `spawn_blocking` per turn.
//!
//! A proposer hears back when its entry has been **applied** by this peer's state machine
//! (the row replica on the leader), with the entry's index, which is the commit version.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;
use parking_lot::{Condvar, Mutex, RwLock};
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfState, Entry, EntryType, Message};
use raft::{Config, RawNode, StateRole};

use crate::error::{Error, Result, StateMachineError};
use crate::log_fs::LogFaults;
use crate::log_store::LogStore;

mod parts;
use parts::{join, Assembled, Assembler, Outgoing, PartTag};

/// What replication calls with committed entries. It knows nothing of what is inside them.
pub trait StateMachine: Send + 'static {
    /// Applies the payload of the committed entry at `index`. Called in log order, once per
    /// index greater than [`StateMachine::applied_index`]. `data` is the entry's own shared
    /// buffer: a state machine that keeps parts of it can hold slices instead of copies.
    fn apply(&mut self, index: u64, data: &Bytes) -> std::result::Result<(), StateMachineError>;

    /// The highest index applied. After a restart this is what the state machine has kept
    /// durably; replay starts after it.
    fn applied_index(&self) -> u64;

    /// Told of committed entry `index` that carries nothing to apply (a new leader's empty
    /// entry, a configuration change), in log order: a state machine whose applied index
    /// stands for "the log up to here" may advance it (nothing needs to be durable).
    fn skip(&mut self, index: u64) {
        let _ = index;
    }

    /// Makes everything applied so far durable (the log before it may then be compacted) and
    /// returns the index that is now durable.
    fn persist(&mut self) -> std::result::Result<u64, StateMachineError> {
        Ok(self.applied_index())
    }

    /// Replaces the whole state by a snapshot taken at `index` (see [`SnapshotSource`]).
    fn restore(&mut self, index: u64, data: &[u8]) -> std::result::Result<(), StateMachineError> {
        let _ = (index, data);
        Err("this state machine cannot restore snapshots".into())
    }

    /// Where this peer's snapshots come from when it leads and a replica has fallen behind the
    /// compacted log.
    fn snapshot_source(&self) -> Option<Arc<dyn SnapshotSource>> {
        None
    }
}

/// Builds the snapshot data of a state machine as of its current applied state. Called on the
/// driver thread between applies, so the state is exactly that of the applied index.
pub trait SnapshotSource: Send + Sync {
    fn build(&self) -> std::result::Result<Vec<u8>, StateMachineError>;
}

/// How Raft messages travel between peers. Delivery is best effort: raft retries. A peer
/// registers its [`Mailbox`] when it starts: a network transport delivers what arrives for
/// that peer into it; [`LocalTransport`] hands messages over directly.
pub trait Transport: Send + Sync + 'static {
    /// Sends `msg` to peer `msg.to`; false if it certainly did not arrive (the peer is not
    /// reachable), so raft can stop waiting for it.
    fn send(&self, msg: Message) -> bool;
    /// Peer `id` receives its messages through `mailbox` from now on.
    fn register(&self, id: u64, mailbox: Mailbox);
    /// Peer `id` stopped.
    fn unregister(&self, id: u64);
}

/// Where a peer's incoming messages go.
#[derive(Clone)]
pub struct Mailbox(Sender<Event>);

impl Mailbox {
    /// Delivers `msg`; false if the peer has stopped.
    pub fn deliver(&self, msg: Message) -> bool {
        self.0.send(Event::Message(Box::new(msg))).is_ok()
    }
}

/// The transport of the embedded deployment: every peer lives in this process.
#[derive(Default)]
pub struct LocalTransport {
    mailboxes: RwLock<HashMap<u64, Mailbox>>,
}

impl LocalTransport {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}

impl Transport for LocalTransport {
    fn send(&self, msg: Message) -> bool {
        match self.mailboxes.read().get(&msg.to) {
            Some(m) => m.deliver(msg),
            None => false,
        }
    }
    fn register(&self, id: u64, mailbox: Mailbox) {
        self.mailboxes.write().insert(id, mailbox);
    }
    fn unregister(&self, id: u64) {
        self.mailboxes.write().remove(&id);
    }
}

/// Whether a peer votes or only learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Voter,
    Learner,
}

/// With [`LogSync::Batched`], a sync comes early once this many messages wait for it (a
/// quarter of the leader's window of appends in flight, `max_inflight_msgs`).
const HELD_MESSAGES_MAX: usize = 64;
/// Longest a driver turn keeps applying committed entries once it has applied one; the rest
/// waits in the backlog for the next turns, so the peer answers messages in between. A
/// voter that applies for a whole election timeout without answering looks dead to the
/// leader's check-quorum (an entry applies whole; a large one beside the driver, see
/// [`APPLY_ASIDE_BYTES`]).
const APPLY_BUDGET: Duration = Duration::from_millis(30);
/// An entry at least this large is applied on a thread of its own while the driver goes on
/// writing the log and answering messages (one such entry at a time; the entries after it
/// wait): applying a bulk load's entry can take longer than an election timeout, and a
/// leader whose followers stay silent that long steps down (check-quorum).
const APPLY_ASIDE_BYTES: usize = 1 << 20;
/// The default [`PeerOptions::max_entry_bytes`]. TiKV's `raft-entry-max-size` is 8 MB; on
/// this project's 2-vCPU test machine a 4 MiB entry is written, fsync'd and sent well within
/// a heartbeat.
pub const MAX_ENTRY_BYTES: usize = 4 << 20;
/// At most this much of the log is read back (or handed over by raft) to apply at once: two
/// parts of a large proposal (reading 64 MiB back in one turn took longer than a heartbeat).
const READ_BACK_BYTES: usize = 2 * MAX_ENTRY_BYTES;
/// Parts of a large proposal proposed and not yet committed, at most (see [`parts`]).
const PARTS_IN_FLIGHT: u64 = 2;

/// A proposal raft would not take. raft-rs drops proposals while leadership is being
/// handed over: as retryable as a proposal to a follower.
fn proposal_error(e: raft::Error) -> Error {
    match e {
        raft::Error::ProposalDropped => Error::NotLeader,
        e => e.into(),
    }
}

/// What applying an entry did, for [`Driver::applied_through`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// The state machine took it (or had nothing to take).
    Entry,
    /// A part of a large proposal was kept for later.
    Part,
    /// A part of a dropped group: nothing applied.
    Stray,
}

/// Work on the state machine beside the driver: the state machine is on that thread until
/// it is done.
struct Aside<S> {
    work: AsideWork,
    /// The state machine back, and the index applied or made durable.
    job: std::thread::JoinHandle<(S, std::result::Result<u64, StateMachineError>)>,
}

#[derive(Debug, Clone, Copy)]
enum AsideWork {
    /// Applying a large entry.
    Apply { index: u64, term: u64, bytes: u64 },
    /// [`StateMachine::persist`] before the log is compacted: the row replica's flush of a
    /// bulk load's memtables took 0.4–0.9 s, and three voters doing it at once left the
    /// leader without a quorum's answers for longer than an election timeout.
    Persist,
}

/// When a peer's log writes are fsync'd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSync {
    /// Every Ready's write, before its messages go out (a voter: its vote and the entries it
    /// acknowledges must survive a power loss).
    EachWrite,
    /// At most once per interval. Messages that tell the leader the log holds entries (append
    /// and snapshot responses) are held until the sync that covers them. A replica without a
    /// vote can use it: after a power loss it may restart with a shorter log, below what its
    /// state machine already holds, and the leader sends the rest again (or a snapshot).
    Batched(Duration),
}

/// How to start a peer.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    pub id: u64,
    /// The peer's raft-engine directory.
    pub dir: PathBuf,
    /// Membership written into a fresh log (ignored when the log has one).
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// When the log's writes reach the disk.
    pub log_sync: LogSync,
    /// Raft's logical clock.
    pub tick: Duration,
    /// Ticks without a leader's word before a voter campaigns; raft-rs draws each timeout
    /// at random in `[election_tick, 2 * election_tick)` ticks (150–300 ms with a 15 ms
    /// tick and 10). A leader sends heartbeats every second tick.
    pub election_tick: usize,
    /// Compact the log once this many entries, or [`PeerOptions::compact_bytes`] of
    /// entries, are applied here since the last compaction.
    pub compact_every: u64,
    /// A bulk load's entries are few and large (a COPY batch is megabytes): without a byte
    /// bound its whole load stayed in the logs of both replicas.
    pub compact_bytes: u64,
    /// A leader keeps at most this many entries for a replica that is behind (down, or too
    /// slow); past that it compacts anyway and the replica is caught up by a snapshot.
    pub max_log_behind: u64,
    /// A proposal larger than this goes into the log as several entries, applied together
    /// at the last one (see [`parts`]): one huge entry kept every driver busy longer than an
    /// election timeout.
    pub max_entry_bytes: usize,
    /// Faults injected into the log's writes (tests; off unless switched on).
    pub log_faults: Arc<LogFaults>,
}

impl PeerOptions {
    pub fn new(id: u64, dir: PathBuf, voters: Vec<u64>, learners: Vec<u64>) -> Self {
        Self {
            id,
            dir,
            voters,
            learners,
            log_sync: LogSync::EachWrite,
            tick: Duration::from_millis(100),
            election_tick: 10,
            compact_every: 10_000,
            compact_bytes: 256 << 20,
            max_log_behind: 1_000_000,
            max_entry_bytes: MAX_ENTRY_BYTES,
            log_faults: Arc::default(),
        }
    }
    fn role(&self) -> Role {
        if self.learners.contains(&self.id) {
            Role::Learner
        } else {
            Role::Voter
        }
    }
}

/// How far a replica has the log, as its leader knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaProgress {
    /// Its Raft id.
    pub id: u64,
    /// It votes (else it is a learner).
    pub voter: bool,
    /// The last index known to be in its log.
    pub matched: u64,
    /// raft-rs's replication state: `probe` (finding where its log ends), `replicate`
    /// (streaming entries) or `snapshot` (being sent one).
    pub state: &'static str,
    /// It answered within the last election timeout.
    pub active: bool,
}

/// Live figures of a peer, shared with readers (metrics, ReadIndex waits, tests).
pub struct PeerStatus {
    pub id: u64,
    pub role: Role,
    applied: AtomicU64,
    committed: AtomicU64,
    first_index: AtomicU64,
    last_index: AtomicU64,
    snapshots_restored: AtomicU64,
    /// raft-engine writes of entries, and entries written (their ratio is the group-commit
    /// batch size).
    log_writes: AtomicU64,
    entries_written: AtomicU64,
    /// fsyncs of the log made for Ready writes.
    log_syncs: AtomicU64,
    paused: AtomicBool,
    running: AtomicBool,
    /// The peer was asked to stop (a log write being retried gives up).
    stopping: AtomicBool,
    /// Log writes failed for want of a resource (disk space, file descriptors) and retried;
    /// whether the current one is failing.
    log_write_retries: AtomicU64,
    log_write_stalled: AtomicBool,
    /// The leader this peer knows of (0: none), and its term.
    leader: AtomicU64,
    term: AtomicU64,
    /// The last term this peer was elected in, and the index of its first entry.
    leading_term: AtomicU64,
    term_start: AtomicU64,
    /// While leading: every replica's progress.
    progress: Mutex<Vec<ReplicaProgress>>,
    failed: Mutex<Option<Arc<Error>>>,
    /// When the commit index passed each recorded value (one sample per driver turn).
    commit_times: Mutex<std::collections::VecDeque<(u64, Instant)>>,
    applied_changed: Condvar,
    applied_lock: Mutex<()>,
}

impl PeerStatus {
    fn new(id: u64, role: Role) -> Self {
        Self {
            id,
            role,
            applied: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            first_index: AtomicU64::new(0),
            last_index: AtomicU64::new(0),
            snapshots_restored: AtomicU64::new(0),
            log_writes: AtomicU64::new(0),
            entries_written: AtomicU64::new(0),
            log_syncs: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            running: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            log_write_retries: AtomicU64::new(0),
            log_write_stalled: AtomicBool::new(false),
            leader: AtomicU64::new(0),
            term: AtomicU64::new(0),
            leading_term: AtomicU64::new(0),
            term_start: AtomicU64::new(u64::MAX),
            progress: Mutex::new(Vec::new()),
            failed: Mutex::new(None),
            commit_times: Mutex::new(std::collections::VecDeque::new()),
            applied_changed: Condvar::new(),
            applied_lock: Mutex::new(()),
        }
    }
    /// Highest index applied by the state machine.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }
    /// Highest index known committed (never below [`Self::applied`]).
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }
    /// First index still in the log (older ones were compacted away).
    pub fn first_index(&self) -> u64 {
        self.first_index.load(Ordering::Acquire)
    }
    /// Last index in the log.
    pub fn last_index(&self) -> u64 {
        self.last_index.load(Ordering::Acquire)
    }
    /// How many snapshots this peer has restored from.
    pub fn snapshots_restored(&self) -> u64 {
        self.snapshots_restored.load(Ordering::Acquire)
    }
    /// Log writes that carried entries, and the entries they carried.
    pub fn log_writes(&self) -> (u64, u64) {
        (
            self.log_writes.load(Ordering::Relaxed),
            self.entries_written.load(Ordering::Relaxed),
        )
    }
    /// fsyncs of the log for Ready writes (one per write with [`LogSync::EachWrite`]).
    pub fn log_syncs(&self) -> u64 {
        self.log_syncs.load(Ordering::Relaxed)
    }
    /// Whether the apply loop is paused (tests create lag this way).
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }
    /// Whether the driver thread is running.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
    /// The leader this peer knows of (`None` while there is none, as during an election).
    pub fn leader(&self) -> Option<u64> {
        Some(self.leader.load(Ordering::Acquire)).filter(|l| *l != 0)
    }
    /// The term this peer is in.
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }
    /// Whether this peer leads.
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.id)
    }
    /// Whether this peer leads and has applied its term's first entry: everything committed
    /// by earlier leaders is applied here, so a read here sees every acknowledged commit.
    pub fn is_serving_leader(&self) -> bool {
        self.is_leader()
            && self.leading_term.load(Ordering::Acquire) == self.term()
            && self.applied() >= self.term_start.load(Ordering::Acquire)
    }
    /// While this peer leads: how far each replica (itself included) has the log.
    pub fn progress(&self) -> Vec<ReplicaProgress> {
        self.progress.lock().clone()
    }
    /// Log writes retried because the disk was full (or file descriptors ran out), and
    /// whether the log cannot be written now: the peer waits, holding what raft gave it,
    /// until the write succeeds.
    pub fn log_write_stall(&self) -> (u64, bool) {
        (
            self.log_write_retries.load(Ordering::Relaxed),
            self.log_write_stalled.load(Ordering::Relaxed),
        )
    }

    /// Why applying stopped, if it did.
    pub fn failure(&self) -> Option<Arc<Error>> {
        self.failed.lock().clone()
    }

    fn record_commit(&self, committed: u64) {
        let mut t = self.commit_times.lock();
        if t.back().is_none_or(|(i, _)| *i < committed) {
            t.push_back((committed, Instant::now()));
            if t.len() > 65_536 {
                t.pop_front();
            }
        }
    }

    /// When `index` became committed here (the first sample at or past it), if still known.
    pub fn committed_at(&self, index: u64) -> Option<Instant> {
        let t = self.commit_times.lock();
        let pos = t.partition_point(|(i, _)| *i < index);
        t.get(pos).map(|(_, at)| *at)
    }

    /// How long a replica that applied up to `applied` has lacked a committed entry: the
    /// time since the entry after it became committed here (zero if it is not committed).
    pub fn behind_for(&self, applied: u64) -> Duration {
        self.committed_at(applied + 1)
            .map_or(Duration::ZERO, |at| at.elapsed())
    }

    fn set_applied(&self, index: u64) {
        // An applied entry is committed: `committed()` never trails `applied()`, so whoever
        // heard of a commit (its proposer is told at apply, before the turn publishes the
        // commit index) reads at least that index.
        self.committed.fetch_max(index, Ordering::AcqRel);
        let _g = self.applied_lock.lock();
        self.applied.store(index, Ordering::Release);
        self.applied_changed.notify_all();
    }

    /// Waits until the state machine has applied `index`; false on timeout or if the peer
    /// stopped.
    pub fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.applied_lock.lock();
        loop {
            if self.applied() >= index {
                return true;
            }
            if !self.is_running() || self.failed.lock().is_some() {
                return false;
            }
            // Wake periodically: a stopping peer does not notify.
            let step = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            if step.is_zero() {
                return false;
            }
            self.applied_changed.wait_for(&mut g, step);
        }
    }
}

/// A message to a peer's driver loop.
pub enum Event {
    Propose {
        data: Vec<u8>,
        done: oneshot::Sender<Result<u64>>,
    },
    Message(Box<Message>),
    Pause,
    Resume,
    /// A linearizable read's index (raft's ReadIndex, its safe form): the leader confirms
    /// with a heartbeat round that it still leads and answers its commit index; a follower
    /// asks the leader. Reading at or past the index once it is applied sees every write
    /// acknowledged before the request.
    ReadIndex {
        done: SyncSender<Result<u64>>,
    },
    /// Hand leadership to voter `to` (raft-rs's leader transfer: it is brought up to date,
    /// then told to campaign at once).
    TransferLeader(u64),
    /// Compact the log now; `force` ignores replicas that have not caught up (they will need a
    /// snapshot).
    Compact {
        force: bool,
        done: SyncSender<Result<u64>>,
    },
    Stop,
}

/// Sends proposals to a peer. Cheap to clone.
#[derive(Clone)]
pub struct Proposer {
    tx: Sender<Event>,
    status: Arc<PeerStatus>,
}

/// A proposal on its way; [`PendingProposal::wait`] (blocking) or
/// [`PendingProposal::applied`] (async) returns its index once applied.
pub struct PendingProposal(oneshot::Receiver<Result<u64>>);

impl PendingProposal {
    /// Blocks until the entry is applied by the proposing peer's state machine.
    pub fn wait(self) -> Result<u64> {
        futures::executor::block_on(self.applied())
    }

    /// Resolves when the entry is applied by the proposing peer's state machine: a session
    /// waits for its commit without holding a thread.
    pub async fn applied(self) -> Result<u64> {
        self.0.await.map_err(|_| Error::Stopped)?
    }
}

impl Proposer {
    /// Queues `data` for the log. The index is the entry's position, known once it is applied.
    pub fn propose(&self, data: Vec<u8>) -> Result<PendingProposal> {
        let (done, rx) = oneshot::channel();
        self.tx.send(Event::Propose { data, done }).map_err(|_| {
            // A peer that stopped after a failure says which.
            match self.status.failure() {
                Some(source) => Error::Failed { source },
                None => Error::Stopped,
            }
        })?;
        Ok(PendingProposal(rx))
    }
    /// The peer's figures.
    pub fn status(&self) -> &Arc<PeerStatus> {
        &self.status
    }
}

/// A running peer. Dropping it stops the driver thread.
pub struct Peer {
    tx: Sender<Event>,
    status: Arc<PeerStatus>,
    thread: Option<JoinHandle<()>>,
    transport: Arc<dyn Transport>,
}

impl Peer {
    /// Opens the log in `opts.dir`, starts the driver thread and registers the peer with
    /// `transport`. A voter that is the only voter campaigns at once. A voter returns when the
    /// entries of its log from before the restart have been applied again.
    pub fn start<S: StateMachine>(
        opts: PeerOptions,
        sm: S,
        transport: Arc<dyn Transport>,
    ) -> Result<Peer> {
        let role = opts.role();
        let log = LogStore::open_with_faults(&opts.dir, opts.log_faults.clone())?;
        let mut cs = raft::Storage::initial_state(&log)?.conf_state;
        if cs.voters.is_empty() {
            cs = ConfState::from((opts.voters.clone(), opts.learners.clone()));
            log.set_conf_state(&cs)?;
        }
        if let Some(src) = sm.snapshot_source() {
            log.set_snapshot_source(src);
        }
        let commit = log.hard_state().commit;
        let last_at_open = log.last_index();
        let applied = sm.applied_index().min(commit);
        let cfg = Config {
            id: opts.id,
            election_tick: opts.election_tick,
            heartbeat_tick: 2,
            // A voter cut off from the others cannot raise the term and disturb them when it
            // comes back (pre-vote), and a leader that loses its quorum steps down.
            pre_vote: true,
            check_quorum: true,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // A replica catching up is handed committed entries a bounded batch at a time
            // (a bulk load's parts are megabytes each).
            max_committed_size_per_ready: READ_BACK_BYTES as u64,
            ..Default::default()
        };
        cfg.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut raw = RawNode::new(&cfg, log.clone(), &logger)?;
        let single_voter = cs.voters.len() == 1 && cs.voters[0] == opts.id;
        if single_voter {
            raw.campaign()?;
        }
        let status = Arc::new(PeerStatus::new(opts.id, role));
        status.applied.store(sm.applied_index(), Ordering::Release);
        let (tx, rx) = mpsc::channel();
        transport.register(opts.id, Mailbox(tx.clone()));
        let driver = Driver {
            raw,
            log,
            sm: Some(sm),
            aside: None,
            opts: opts.clone(),
            status: status.clone(),
            transport: transport.clone(),
            pending: BTreeMap::new(),
            applied: applied.max(status.applied()),
            backlog: true,
            apply_until: None,
            last_tick: Instant::now(),
            last_compact_check: 0,
            applied_bytes: 0,
            held: Vec::new(),
            unsynced_since: None,
            reads: HashMap::new(),
            read_batch: Vec::new(),
            read_seq: 0,
            reads_term: 0,
            outgoing: None,
            deferred: VecDeque::new(),
            assembler: Assembler::default(),
            turn_times: TurnTimes::default(),
        };
        driver.log.set_applied(driver.applied);
        driver.publish();
        let thread = std::thread::Builder::new()
            .name(format!("raft-{}", opts.id))
            .spawn(move || driver.run(rx))
            .map_err(|source| Error::Spawn { source })?;
        let peer = Peer {
            tx,
            status,
            thread: Some(thread),
            transport,
        };
        // A single voter commits its whole log once it leads again, including entries whose
        // commit index was not yet persisted: wait for all of them, so no reader can see a
        // state older than an acknowledged commit.
        let replay_to = if single_voter { last_at_open } else { commit };
        if role == Role::Voter
            && !peer
                .status
                .wait_applied(replay_to, Duration::from_secs(600))
        {
            return Err(peer.stop_with_failure());
        }
        Ok(peer)
    }

    fn stop_with_failure(mut self) -> Error {
        let failure = self.status.failure();
        self.shutdown();
        failure.map_or(Error::Stopped, |source| Error::Failed { source })
    }

    /// A handle for proposals.
    pub fn proposer(&self) -> Proposer {
        Proposer {
            tx: self.tx.clone(),
            status: self.status.clone(),
        }
    }

    /// The peer's figures.
    pub fn status(&self) -> &Arc<PeerStatus> {
        &self.status
    }

    /// A linearizable read point: an index that, once applied here, covers every write
    /// acknowledged before this call (raft's ReadIndex, confirmed by a quorum's heartbeat
    /// responses, so a leader cut off from the others cannot answer one). `NotLeader` if
    /// leadership changed meanwhile; `Stopped` after `timeout` (no leader reachable).
    pub fn read_index(&self, timeout: Duration) -> Result<u64> {
        let (done, rx) = mpsc::sync_channel(1);
        self.tx
            .send(Event::ReadIndex { done })
            .map_err(|_| Error::Stopped)?;
        rx.recv_timeout(timeout).map_err(|_| Error::Stopped)?
    }

    /// While leading: hands leadership to the most up-to-date voter that answers, and
    /// waits up to `timeout` for another to lead. Whether one does (true at once if this
    /// peer did not lead). A graceful stop does this first, so writes pause for a transfer
    /// rather than for an election timeout.
    pub fn transfer_leadership(&self, timeout: Duration) -> bool {
        let status = &self.status;
        if !status.is_leader() {
            return true;
        }
        let Some(to) = status
            .progress()
            .into_iter()
            .filter(|p| p.id != status.id && p.active && p.voter)
            .max_by_key(|p| p.matched)
            .map(|p| p.id)
        else {
            return false;
        };
        if self.tx.send(Event::TransferLeader(to)).is_err() {
            return false;
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if status.leader().is_some_and(|l| l != status.id) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Stops applying committed entries (they keep arriving and being persisted).
    pub fn pause_apply(&self) {
        self.status.paused.store(true, Ordering::Release);
        let _ = self.tx.send(Event::Pause);
    }

    /// Resumes applying.
    pub fn resume_apply(&self) {
        self.status.paused.store(false, Ordering::Release);
        let _ = self.tx.send(Event::Resume);
    }

    /// Compacts the log up to what is durable everywhere (or, with `force`, up to what this
    /// peer has made durable). Returns the new first index.
    pub fn compact(&self, force: bool) -> Result<u64> {
        let (done, rx) = mpsc::sync_channel(1);
        self.tx
            .send(Event::Compact { force, done })
            .map_err(|_| Error::Stopped)?;
        rx.recv().map_err(|_| Error::Stopped)?
    }

    /// Stops the driver thread and waits for it.
    pub fn shutdown(&mut self) {
        self.status.stopping.store(true, Ordering::Release);
        self.transport.unregister(self.status.id);
        let _ = self.tx.send(Event::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Free space beyond its own size a log write waits for after one failed for want of
/// space (raft-engine allocates its files ahead in steps of a few MB).
const LOG_WRITE_ROOM: u64 = 8 << 20;

struct Driver<S: StateMachine> {
    raw: RawNode<LogStore>,
    log: LogStore,
    /// The state machine, unless an entry is being applied beside the driver (`aside`).
    sm: Option<S>,
    aside: Option<Aside<S>>,
    opts: PeerOptions,
    status: Arc<PeerStatus>,
    transport: Arc<dyn Transport>,
    /// Proposals waiting for their entry to be applied: index → (term, reply).
    pending: BTreeMap<u64, (u64, oneshot::Sender<Result<u64>>)>,
    /// Raft index applied (every entry, including empty and conf-change ones).
    applied: u64,
    /// Committed entries handed over by raft were not applied (paused, or a gap): read them
    /// back from the log.
    backlog: bool,
    /// When this turn's applying must stop (see [`APPLY_BUDGET`]): set by its first apply.
    apply_until: Option<Instant>,
    last_tick: Instant,
    last_compact_check: u64,
    /// Bytes of entries applied since the last compaction check.
    applied_bytes: u64,
    /// With [`LogSync::Batched`]: messages reporting log writes that are not yet fsync'd.
    held: Vec<Message>,
    /// With [`LogSync::Batched`]: when the oldest write not yet fsync'd was made.
    unsynced_since: Option<Instant>,
    /// ReadIndex rounds raft is confirming (by context: the requests that share it), the
    /// requests of this turn, and the term they were asked in.
    reads: HashMap<Vec<u8>, Vec<SyncSender<Result<u64>>>>,
    read_batch: Vec<SyncSender<Result<u64>>>,
    read_seq: u64,
    reads_term: u64,
    /// While leading: a proposal being written as parts, and the proposals that arrived
    /// meanwhile (proposed after it, so its parts are consecutive).
    outgoing: Option<Outgoing<oneshot::Sender<Result<u64>>>>,
    deferred: VecDeque<(Vec<u8>, oneshot::Sender<Result<u64>>)>,
    /// Parts of a large proposal applied so far (see [`parts`]).
    assembler: Assembler,
    /// Where this turn's time went (reported when it is slow).
    turn_times: TurnTimes,
}

/// Time spent in a driver turn's phases.
#[derive(Default)]
struct TurnTimes {
    log_write: Duration,
    apply: Duration,
    /// Reading committed entries back from the log and applying them; the reading alone.
    read_back: Duration,
    log_read: Duration,
    compact: Duration,
}

impl<S: StateMachine> Driver<S> {
    fn run(mut self, rx: Receiver<Event>) {
        loop {
            let mut timeout = self.opts.tick.saturating_sub(self.last_tick.elapsed());
            if let (Some(since), LogSync::Batched(every)) =
                (self.unsynced_since, self.opts.log_sync)
            {
                timeout = timeout.min(every.saturating_sub(since.elapsed()));
            }
            // Entries left to apply (a turn ran out of its apply budget): soon again.
            if (self.backlog && !self.paused()) || self.aside.is_some() || self.outgoing.is_some() {
                timeout = Duration::ZERO;
            }
            let timeout = timeout.max(Duration::from_millis(1));
            let first = match rx.recv_timeout(timeout) {
                Ok(ev) => Some(ev),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut stop = false;
            if let Some(ev) = first {
                stop |= self.handle(ev);
                // Everything already queued joins this turn (group commit).
                for _ in 0..16_384 {
                    match rx.try_recv() {
                        Ok(ev) => stop |= self.handle(ev),
                        Err(_) => break,
                    }
                }
            }
            // The reads that arrived this turn share one ReadIndex round: each arrived
            // before it was asked, so its index covers them all.
            if !self.read_batch.is_empty() {
                self.read_seq += 1;
                let ctx = self.read_seq.to_be_bytes().to_vec();
                self.raw.read_index(ctx.clone());
                self.reads.insert(ctx, std::mem::take(&mut self.read_batch));
            }
            if stop {
                if let Err(e) = self.sync_log(true) {
                    self.fail(e);
                }
                break;
            }
            if self.last_tick.elapsed() >= self.opts.tick {
                self.raw.tick();
                self.last_tick = Instant::now();
            }
            let started = Instant::now();
            if let Err(e) = self.turn() {
                self.fail(e);
                break;
            }
            self.report_slow_turn(started.elapsed());
        }
        // An entry applied beside the driver finishes before the peer stops.
        if self.aside.is_some() {
            if let Err(e) = self.finish_aside(true) {
                self.fail(e);
            }
        }
        self.status.running.store(false, Ordering::Release);
        for (_, (_, done)) in std::mem::take(&mut self.pending) {
            let _ = done.send(Err(Error::Stopped));
        }
        for done in self.take_unproposed() {
            let _ = done.send(Err(Error::Stopped));
        }
        self.status.applied_changed.notify_all();
    }

    fn fail(&mut self, e: Error) {
        tracing::error!(peer = self.opts.id, error = %e, "raft peer stopped");
        let e = Arc::new(e);
        *self.status.failed.lock() = Some(e.clone());
        for (_, (_, done)) in std::mem::take(&mut self.pending) {
            let _ = done.send(Err(Error::Failed { source: e.clone() }));
        }
        for done in self.take_unproposed() {
            let _ = done.send(Err(Error::Failed { source: e.clone() }));
        }
    }

    /// The replies of proposals not (wholly) in the log: the one going out as parts and
    /// those waiting behind it.
    fn take_unproposed(&mut self) -> Vec<oneshot::Sender<Result<u64>>> {
        let mut out: Vec<_> = self.outgoing.take().map(|o| o.done).into_iter().collect();
        out.extend(
            std::mem::take(&mut self.deferred)
                .into_iter()
                .map(|(_, d)| d),
        );
        out
    }

    /// Puts `data` into the log: as one entry, or, larger than an entry may be, as parts
    /// over the next turns. A proposal that arrives while parts go out waits for them.
    fn propose(&mut self, data: Vec<u8>, done: oneshot::Sender<Result<u64>>) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = done.send(Err(Error::NotLeader));
            return;
        }
        if self.outgoing.is_some() {
            self.deferred.push_back((data, done));
            return;
        }
        if data.len() > self.opts.max_entry_bytes {
            self.outgoing = Some(Outgoing::new(self.raw.raft.term, data, done));
            self.feed_parts();
            return;
        }
        match self.raw.propose(vec![], data) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                self.pending.insert(index, (self.raw.raft.term, done));
            }
            Err(e) => {
                let _ = done.send(Err(proposal_error(e)));
            }
        }
    }

    /// Proposes the next parts of the proposal going out, while fewer than
    /// [`PARTS_IN_FLIGHT`] wait for their commit; after its last part, the proposals that
    /// waited. A leader that lost its term fails it (its parts in the log are dropped by
    /// every replica once another entry follows them).
    fn feed_parts(&mut self) {
        while let Some(out) = self.outgoing.as_mut() {
            let raft = &self.raw.raft;
            if raft.state != StateRole::Leader || raft.term != out.term {
                if let Some(out) = self.outgoing.take() {
                    let _ = out.done.send(Err(Error::NotLeader));
                }
                break;
            }
            if out.next_seq > 0 && out.last_index >= raft.raft_log.committed + PARTS_IN_FLIGHT {
                return;
            }
            let index = raft.raft_log.last_index() + 1;
            let (data, tag, end) = out.next_part(self.opts.max_entry_bytes, index);
            if let Err(e) = self.raw.propose(tag.encode(), data) {
                if let Some(out) = self.outgoing.take() {
                    let _ = out.done.send(Err(proposal_error(e)));
                }
                break;
            }
            let got = self.raw.raft.raft_log.last_index();
            let Some(out) = self.outgoing.as_mut() else {
                break;
            };
            if got != index {
                // Not where the tag says: the group would be stray everywhere.
                let out = self.outgoing.take().expect("outgoing");
                let _ = out.done.send(Err(Error::NotLeader));
                break;
            }
            out.proposed(tag, end, index);
            if tag.last {
                let out = self.outgoing.take().expect("outgoing");
                self.pending.insert(index, (out.term, out.done));
                // Unmapping hundreds of megabytes stalls the process's page faults for a
                // while: not on this thread.
                let data = out.data;
                let _ = std::thread::Builder::new()
                    .name("raft-free".into())
                    .spawn(move || drop(data));
                break;
            }
        }
        while self.outgoing.is_none() {
            let Some((data, done)) = self.deferred.pop_front() else {
                break;
            };
            self.propose(data, done);
        }
    }

    /// Returns true to stop.
    fn handle(&mut self, ev: Event) -> bool {
        match ev {
            Event::Propose { data, done } => self.propose(data, done),
            Event::Message(m) if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapStatus => {
                // The transport's word on a snapshot it accepted and could not deliver (a
                // local message, which raft does not take through `step`).
                let status = if m.reject {
                    raft::SnapshotStatus::Failure
                } else {
                    raft::SnapshotStatus::Finish
                };
                self.raw.report_snapshot(m.from, status);
                if m.reject {
                    self.raw.report_unreachable(m.from);
                }
            }
            Event::Message(mut m) => {
                // A batched learner that lost the unsynced tail of its log (a crash) may hear
                // a heartbeat committing entries it no longer has: the leader's progress still
                // counts them until an append is rejected. raft-rs panics on such a commit;
                // commit what the log holds, and the next append's rejection makes the leader
                // send the rest again.
                let last = self.raw.raft.raft_log.last_index();
                if m.get_msg_type() == raft::eraftpb::MessageType::MsgHeartbeat && m.commit > last {
                    m.commit = last;
                }
                if let Err(e) = self.raw.step(*m) {
                    tracing::debug!(peer = self.opts.id, error = %e, "raft message dropped");
                }
            }
            Event::Pause => {}
            Event::ReadIndex { done } => self.read_batch.push(done),
            Event::TransferLeader(to) => {
                if self.raw.raft.state == StateRole::Leader {
                    self.raw.transfer_leader(to);
                }
            }
            Event::Resume => self.backlog = true,
            Event::Compact { force, done } => {
                let _ = done.send(self.compact(force));
            }
            Event::Stop => return true,
        }
        false
    }

    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            let to = m.to;
            let snapshot = m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot;
            if !self.transport.send(m) {
                // Tell raft, or a lost snapshot would leave the peer paused forever.
                self.raw.report_unreachable(to);
                if snapshot {
                    self.raw.report_snapshot(to, raft::SnapshotStatus::Failure);
                }
            }
        }
    }

    /// Logs a turn that took half an election timeout or more (the leader's check-quorum,
    /// or a follower's election timer, runs out at one), with where its time went.
    fn report_slow_turn(&mut self, took: Duration) {
        let timeout = self.opts.tick * self.opts.election_tick as u32;
        if took >= timeout / 2 {
            let t = std::mem::take(&mut self.turn_times);
            tracing::warn!(
                peer = self.opts.id,
                took_ms = took.as_millis() as u64,
                log_write_ms = t.log_write.as_millis() as u64,
                apply_ms = t.apply.as_millis() as u64,
                read_back_ms = t.read_back.as_millis() as u64,
                log_read_ms = t.log_read.as_millis() as u64,
                compact_ms = t.compact.as_millis() as u64,
                "slow raft turn"
            );
        }
        self.turn_times = TurnTimes::default();
    }

    /// Writes a Ready's entries and hard state. A write that failed for want of a resource
    /// the machine may get back (disk space, file descriptors) is tried again until it
    /// succeeds or the peer is stopped: raft cannot go on before what it handed over is in
    /// the log, and raft-engine truncated what the failed write left. Nothing waiting is
    /// answered meanwhile (a proposal in this write is neither committed nor refused), and
    /// the row store refuses new writes while its disk is below the reserve.
    fn append_retrying(
        &mut self,
        entries: &[raft::eraftpb::Entry],
        hs: Option<&raft::eraftpb::HardState>,
        sync: bool,
    ) -> Result<()> {
        let mut wait = Duration::from_millis(10);
        let mut since: Option<Instant> = None;
        loop {
            match self.log.append(entries, hs, sync) {
                Ok(()) => {
                    if let Some(since) = since {
                        self.status
                            .log_write_stalled
                            .store(false, Ordering::Relaxed);
                        tracing::info!(
                            peer = self.opts.id,
                            after_ms = since.elapsed().as_millis() as u64,
                            "the raft log can be written again"
                        );
                    }
                    return Ok(());
                }
                Err(e) if e.is_exhausted_resource() => {
                    self.status
                        .log_write_retries
                        .fetch_add(1, Ordering::Relaxed);
                    if since.is_none() {
                        since = Some(Instant::now());
                        self.status.log_write_stalled.store(true, Ordering::Relaxed);
                        tracing::warn!(
                            peer = self.opts.id,
                            error = %e,
                            "cannot write the raft log; retrying until it can be written"
                        );
                    }
                    // Tried again once the disk has room for the write: each attempt on a
                    // full disk makes raft-engine start a new file.
                    let needed =
                        entries.iter().map(|e| e.data.len() as u64).sum::<u64>() + LOG_WRITE_ROOM;
                    loop {
                        if self.status.stopping.load(Ordering::Acquire) {
                            return Err(e);
                        }
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(1));
                        if self.log.available_space().is_none_or(|free| free >= needed) {
                            break;
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn turn(&mut self) -> Result<()> {
        self.apply_until = None;
        self.finish_aside(false)?;
        if self.outgoing.is_some() {
            self.feed_parts();
        }
        if self.raw.has_ready() {
            let mut rd = self.raw.ready();
            self.send(rd.take_messages());
            for rs in rd.take_read_states() {
                for done in self.reads.remove(&rs.request_ctx).unwrap_or_default() {
                    let _ = done.send(Ok(rs.index));
                }
            }
            if !rd.snapshot().is_empty() {
                let snap = rd.snapshot().clone();
                let index = snap.get_metadata().index;
                // The state machine first (durably): a crash before the log is replaced
                // leaves an old log under a newer state, which replay skips; the other order
                // would leave a log starting past what the state machine holds.
                self.state_machine()?
                    .restore(index, snap.get_data())
                    .map_err(|e| Error::apply(index, e))?;
                self.log.apply_snapshot(&snap)?;
                self.assembler.drop_group();
                self.applied = index;
                self.log.set_applied(index);
                self.backlog = true;
                self.status
                    .snapshots_restored
                    .fetch_add(1, Ordering::AcqRel);
                let applied = self.state_machine()?.applied_index();
                self.status.set_applied(applied);
                tracing::info!(peer = self.opts.id, index, "restored from snapshot");
            }
            // Applied once the new entries are written and the messages that waited for
            // them are sent (etcd's order): a follower answers the leader before a long
            // apply. Committed entries are in the log already.
            let committed = rd.take_committed_entries();
            let batched = matches!(self.opts.log_sync, LogSync::Batched(_));
            let t = Instant::now();
            self.append_retrying(rd.entries(), rd.hs(), !batched)?;
            self.turn_times.log_write += t.elapsed();
            if !rd.entries().is_empty() || rd.hs().is_some() {
                if batched {
                    self.unsynced_since.get_or_insert_with(Instant::now);
                } else {
                    self.status.log_syncs.fetch_add(1, Ordering::Relaxed);
                }
            }
            if !rd.entries().is_empty() {
                self.status.log_writes.fetch_add(1, Ordering::Relaxed);
                self.status
                    .entries_written
                    .fetch_add(rd.entries().len() as u64, Ordering::Relaxed);
            }
            let persisted = rd.take_persisted_messages();
            if self.unsynced_since.is_some() {
                self.held.extend(persisted);
            } else {
                self.send(persisted);
            }
            let t = Instant::now();
            self.apply_entries(committed)?;
            self.turn_times.apply += t.elapsed();
            let mut light = self.raw.advance(rd);
            // A term change drops the reads raft was confirming (a leader that steps down
            // forgets them): their callers try again.
            if self.raw.raft.term != self.reads_term {
                self.reads_term = self.raw.raft.term;
                for done in std::mem::take(&mut self.reads).into_values().flatten() {
                    let _ = done.send(Err(Error::NotLeader));
                }
            }
            // Stamp the commit before anyone (the learner included) can hear of it.
            self.status.record_commit(self.raw.raft.raft_log.committed);
            if let Some(commit) = light.commit_index() {
                self.log.set_commit(commit)?;
            }
            self.send(light.take_messages());
            let committed = light.take_committed_entries();
            self.apply_entries(committed)?;
            self.raw.advance_apply();
        }
        let t = Instant::now();
        self.catch_up()?;
        self.turn_times.read_back += t.elapsed();
        self.sync_log(false)?;
        self.publish();
        let t = Instant::now();
        self.maybe_compact()?;
        self.turn_times.compact += t.elapsed();
        Ok(())
    }

    /// With [`LogSync::Batched`]: fsyncs the log once the oldest unsynced write is an
    /// interval old (or with `now`), then sends the messages that waited for it.
    fn sync_log(&mut self, now: bool) -> Result<()> {
        let (Some(since), LogSync::Batched(every)) = (self.unsynced_since, self.opts.log_sync)
        else {
            return Ok(());
        };
        // The leader sends at most `max_inflight_msgs` appends before it hears back.
        if !now && since.elapsed() < every && self.held.len() < HELD_MESSAGES_MAX {
            return Ok(());
        }
        self.log.sync()?;
        self.unsynced_since = None;
        self.status.log_syncs.fetch_add(1, Ordering::Relaxed);
        let held = std::mem::take(&mut self.held);
        self.send(held);
        Ok(())
    }

    fn publish(&self) {
        let s = &self.status;
        let committed = self.raw.raft.raft_log.committed;
        s.committed.fetch_max(committed, Ordering::AcqRel);
        s.record_commit(committed);
        s.first_index.store(
            raft::Storage::first_index(&self.log).unwrap_or(0),
            Ordering::Release,
        );
        s.last_index
            .store(self.raw.raft.raft_log.last_index(), Ordering::Release);
        let term = self.raw.raft.term;
        if self.raw.raft.state == StateRole::Leader
            && s.leading_term.load(Ordering::Acquire) != term
        {
            // Its term's first entry (the empty one raft appends on election) is in the log.
            s.term_start
                .store(self.raw.raft.raft_log.last_index(), Ordering::Release);
            s.leading_term.store(term, Ordering::Release);
        }
        s.leader.store(self.raw.raft.leader_id, Ordering::Release);
        s.term.store(term, Ordering::Release);
        let mut progress = s.progress.lock();
        progress.clear();
        if self.raw.raft.state == StateRole::Leader {
            let voters = self.raw.raft.prs().conf().voters();
            for (id, pr) in self.raw.raft.prs().iter() {
                progress.push(ReplicaProgress {
                    id: *id,
                    voter: voters.contains(*id),
                    matched: pr.matched,
                    state: match pr.state {
                        raft::ProgressState::Probe => "probe",
                        raft::ProgressState::Replicate => "replicate",
                        raft::ProgressState::Snapshot => "snapshot",
                    },
                    active: pr.recent_active,
                });
            }
        }
    }

    fn paused(&self) -> bool {
        self.status.paused.load(Ordering::Acquire)
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.paused() || self.backlog {
            self.backlog = true;
            return Ok(());
        }
        for e in entries {
            if e.index <= self.applied {
                continue;
            }
            if e.index != self.applied + 1 || self.out_of_apply_budget() || self.aside.is_some() {
                self.backlog = true;
                return Ok(());
            }
            self.apply_one(e)?;
        }
        Ok(())
    }

    /// Applies committed entries raft handed over earlier but we did not apply, reading them
    /// back from the log (bounded per turn so messages keep flowing).
    fn catch_up(&mut self) -> Result<()> {
        if !self.backlog || self.paused() || self.aside.is_some() {
            return Ok(());
        }
        let committed = self.raw.raft.raft_log.committed.min(self.log.last_index());
        if self.applied >= committed {
            self.backlog = false;
            return Ok(());
        }
        let high = committed.min(self.applied + 1024) + 1;
        let t = Instant::now();
        let entries =
            self.log
                .read_entries_bounded(self.applied + 1, high, Some(READ_BACK_BYTES))?;
        self.turn_times.log_read += t.elapsed();
        for e in entries {
            // First: an entry handed aside is applied only when it finishes (`applied`
            // moves then), and the next waits for it.
            if self.out_of_apply_budget() || self.aside.is_some() {
                return Ok(());
            }
            if e.index != self.applied + 1 {
                return Err(Error::Corrupt(format!(
                    "log gap: expected entry {}, found {}",
                    self.applied + 1,
                    e.index
                )));
            }
            self.apply_one(e)?;
        }
        if self.applied >= committed {
            self.backlog = false;
        }
        Ok(())
    }

    /// Whether this turn applied for [`APPLY_BUDGET`] already.
    fn out_of_apply_budget(&self) -> bool {
        self.apply_until.is_some_and(|t| Instant::now() >= t)
    }

    fn apply_one(&mut self, e: Entry) -> Result<()> {
        self.apply_until
            .get_or_insert_with(|| Instant::now() + APPLY_BUDGET);
        let index = e.index;
        let bytes = e.data.len() as u64;
        let tag = PartTag::decode(&e.context);
        if tag.is_none() && self.assembler.drop_group() {
            tracing::warn!(
                peer = self.opts.id,
                index,
                "a large proposal's parts were followed by another entry: dropped"
            );
        }
        match e.get_entry_type() {
            EntryType::EntryNormal => {
                let parts = match tag {
                    None => vec![e.data],
                    Some(tag) => match self.assembler.push(index, tag, e.data) {
                        Assembled::Whole(parts) => parts,
                        Assembled::Kept => {
                            // The state machine is still before the group.
                            self.applied_through(index, e.term, bytes, Applied::Part);
                            return Ok(());
                        }
                        Assembled::Stray => {
                            self.applied_through(index, e.term, bytes, Applied::Stray);
                            return Ok(());
                        }
                    },
                };
                let len: usize = parts.iter().map(Bytes::len).sum();
                let sm = self.state_machine()?;
                if index > sm.applied_index() {
                    if len == 0 {
                        sm.skip(index);
                    } else if len >= APPLY_ASIDE_BYTES {
                        return self.apply_aside(index, e.term, parts);
                    } else {
                        sm.apply(index, &join(parts))
                            .map_err(|e| Error::apply(index, e))?;
                    }
                }
            }
            EntryType::EntryConfChange => {
                let mut cc = ConfChange::default();
                cc.merge_from_bytes(&e.data)
                    .map_err(|err| Error::Corrupt(format!("conf change {index}: {err}")))?;
                let cs = self.raw.apply_conf_change(&cc)?;
                self.log.set_conf_state(&cs)?;
                let sm = self.state_machine()?;
                if index > sm.applied_index() {
                    sm.skip(index);
                }
            }
            EntryType::EntryConfChangeV2 => {
                return Err(Error::Corrupt(format!(
                    "entry {index}: joint consensus is not supported"
                )));
            }
        }
        self.applied_through(index, e.term, bytes, Applied::Entry);
        Ok(())
    }

    /// Entry `index` of term `term` (`bytes` long) is applied: publishes it and answers
    /// its proposer.
    fn applied_through(&mut self, index: u64, term: u64, bytes: u64, what: Applied) {
        self.applied = index;
        self.applied_bytes += bytes;
        // A snapshot is of the state machine, which is still before an unfinished group.
        if what == Applied::Entry {
            self.log.set_applied(index);
        }
        self.status.set_applied(index);
        if let Some((proposed_in, done)) = self.pending.remove(&index) {
            let r = if proposed_in == term && what == Applied::Entry {
                Ok(index)
            } else {
                Err(Error::NotLeader)
            };
            let _ = done.send(r);
        }
    }

    /// The state machine, once an entry being applied beside the driver is done (waits for
    /// it).
    fn state_machine(&mut self) -> Result<&mut S> {
        self.finish_aside(true)?;
        Ok(self.sm.as_mut().expect("the state machine is back"))
    }

    /// Applies the large entry at `index` on a thread of its own; the entries after it wait in the
    /// backlog until [`Driver::finish_aside`] takes the state machine back.
    fn apply_aside(&mut self, index: u64, term: u64, parts: Vec<Bytes>) -> Result<()> {
        let bytes = parts.iter().map(|p| p.len() as u64).sum();
        // Between two indexes meanwhile: no snapshot.
        self.log.set_applying(true);
        self.aside(AsideWork::Apply { index, term, bytes }, move |sm| {
            sm.apply(index, &join(parts)).map(|()| index)
        })?;
        self.backlog = true;
        Ok(())
    }

    /// Runs `f` on the state machine on a thread of its own (see [`AsideWork`]).
    fn aside(
        &mut self,
        work: AsideWork,
        f: impl FnOnce(&mut S) -> std::result::Result<u64, StateMachineError> + Send + 'static,
    ) -> Result<()> {
        let mut sm = self.sm.take().expect("nothing is being done aside");
        let job = std::thread::Builder::new()
            .name(format!("raft-{}-aside", self.opts.id))
            .spawn(move || {
                let r = f(&mut sm);
                (sm, r)
            })
            .map_err(|source| Error::Spawn { source })?;
        self.aside = Some(Aside { work, job });
        Ok(())
    }

    /// Takes the state machine back from work beside the driver, once it is done (`wait`:
    /// waiting for it), and finishes that work.
    fn finish_aside(&mut self, wait: bool) -> Result<()> {
        let Some(aside) = self.aside.take_if(|a| wait || a.job.is_finished()) else {
            return Ok(());
        };
        let (index, what) = match aside.work {
            AsideWork::Apply { index, .. } => (index, "applying entry"),
            AsideWork::Persist => (0, "persisting the state machine"),
        };
        let (sm, r) = aside
            .job
            .join()
            .map_err(|_| Error::Corrupt(format!("{what} {index} panicked")))?;
        self.sm = Some(sm);
        match (aside.work, r) {
            (AsideWork::Apply { index, term, bytes }, Ok(_)) => {
                self.log.set_applying(false);
                self.applied_through(index, term, bytes, Applied::Entry);
            }
            (AsideWork::Apply { index, .. }, Err(e)) => return Err(Error::apply(index, e)),
            (AsideWork::Persist, Ok(durable)) => self.compacted(durable)?,
            // What was durable stays so (a checkpoint is replaced whole, a flush that fails
            // leaves the memtable): the log is kept until a later persist succeeds.
            (AsideWork::Persist, Err(e)) => tracing::warn!(
                peer = self.opts.id,
                error = %e,
                "persisting the state machine failed; the log is kept and persisting is tried again later"
            ),
        }
        Ok(())
    }

    /// Drops the log before what every replica has durably applied (what this peer alone has,
    /// with `force`).
    fn compact(&mut self, force: bool) -> Result<u64> {
        let durable = self
            .state_machine()?
            .persist()
            .map_err(|e| Error::apply(0, e))?;
        self.compact_log(durable, force)
    }

    /// Drops the log before `durable` (what this peer's state machine has made durable) and
    /// what the other replicas have (unless `force`).
    fn compact_log(&mut self, durable: u64, force: bool) -> Result<u64> {
        let mut upto = durable.min(self.applied);
        if !force && self.raw.raft.state == StateRole::Leader {
            for (id, pr) in self.raw.raft.prs().iter() {
                if *id != self.opts.id {
                    upto = upto.min(pr.matched);
                }
            }
        }
        if upto > 0 {
            self.log.compact_to(upto + 1)?;
        }
        self.publish();
        Ok(raft::Storage::first_index(&self.log)?)
    }

    fn maybe_compact(&mut self) -> Result<()> {
        if self.aside.is_some() {
            return Ok(()); // next turn
        }
        if self.applied < self.last_compact_check + self.opts.compact_every
            && self.applied_bytes < self.opts.compact_bytes
        {
            return Ok(());
        }
        self.last_compact_check = self.applied;
        self.applied_bytes = 0;
        // Applying waits meanwhile; the log is compacted when it is done.
        self.aside(AsideWork::Persist, |sm| sm.persist())
    }

    /// The state machine made everything up to `durable` durable (beside the driver):
    /// compacts the log up to what every replica has, or past a replica too far behind.
    fn compacted(&mut self, durable: u64) -> Result<()> {
        let first = match self.compact_log(durable, false) {
            Ok(first) => first,
            // Compacting writes a record to the log; on a full disk it waits for the next.
            Err(e) if e.is_exhausted_resource() => {
                tracing::warn!(peer = self.opts.id, error = %e, "could not compact the raft log");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if self.applied.saturating_sub(first) > self.opts.max_log_behind {
            tracing::warn!(
                peer = self.opts.id,
                kept = self.applied - first,
                "a replica is too far behind: compacting past it (it will need a snapshot)"
            );
            self.compact_log(durable, true)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
