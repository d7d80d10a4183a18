//! Tests of the module above.
use super::*;

/// How long a [`Recorder`] takes to apply a large entry, asked at each.
pub(crate) type LargeApply = Arc<dyn Fn() -> Duration + Send + Sync>;

/// What a recorder has seen: (index, payload).
pub(crate) type Seen = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

/// Records what it applied; persists nothing unless `durable` is set by the test.
pub(crate) struct Recorder {
    applied: u64,
    seen: Seen,
    /// How long applying an entry of 1 MiB or more takes (a bulk load's entry).
    large_apply: LargeApply,
    /// How long [`StateMachine::persist`] takes, asked at each.
    pub(crate) persist_delay: LargeApply,
}

impl Recorder {
    pub(crate) fn new(applied: u64) -> (Self, Seen) {
        Self::slow(applied, Arc::new(|| Duration::ZERO))
    }

    /// One that takes `large_apply()` to apply each entry of 1 MiB or more.
    pub(crate) fn slow(applied: u64, large_apply: LargeApply) -> (Self, Seen) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (
            Recorder {
                applied,
                seen: seen.clone(),
                large_apply,
                persist_delay: Arc::new(|| Duration::ZERO),
            },
            seen,
        )
    }
}

struct Dump(Seen);

impl SnapshotSource for Dump {
    fn build(&self) -> std::result::Result<Vec<u8>, StateMachineError> {
        let seen = self.0.lock();
        let mut out = Vec::new();
        for (_, d) in seen.iter() {
            out.extend_from_slice(d);
            out.push(b',');
        }
        Ok(out)
    }
}

impl StateMachine for Recorder {
    fn apply(&mut self, index: u64, data: &Bytes) -> std::result::Result<(), StateMachineError> {
        if index <= self.applied {
            return Err(format!("index {index} applied twice").into());
        }
        if data.len() >= 1 << 20 {
            std::thread::sleep((self.large_apply)());
        }
        self.applied = index;
        self.seen.lock().push((index, data.to_vec()));
        Ok(())
    }
    fn applied_index(&self) -> u64 {
        self.applied
    }
    fn persist(&mut self) -> std::result::Result<u64, StateMachineError> {
        std::thread::sleep((self.persist_delay)());
        Ok(self.applied)
    }
    fn restore(&mut self, index: u64, data: &[u8]) -> std::result::Result<(), StateMachineError> {
        let mut seen = self.seen.lock();
        seen.clear();
        for part in data.split(|b| *b == b',').filter(|p| !p.is_empty()) {
            seen.push((0, part.to_vec()));
        }
        self.applied = index;
        Ok(())
    }
    fn snapshot_source(&self) -> Option<Arc<dyn SnapshotSource>> {
        Some(Arc::new(Dump(self.seen.clone())))
    }
}

pub(crate) fn payloads(seen: &Mutex<Vec<(u64, Vec<u8>)>>) -> Vec<String> {
    seen.lock()
        .iter()
        .map(|(_, d)| String::from_utf8(d.clone()).unwrap())
        .collect()
}

fn voter(dir: &std::path::Path, learners: Vec<u64>) -> PeerOptions {
    let mut o = PeerOptions::new(1, dir.join("voter"), vec![1], learners);
    o.tick = Duration::from_millis(20);
    o
}

fn learner(dir: &std::path::Path) -> PeerOptions {
    let mut o = PeerOptions::new(2, dir.join("learner"), vec![1], vec![2]);
    o.tick = Duration::from_millis(20);
    o
}

/// Proposes from many threads at once; returns the indexes handed back.
fn propose_concurrently(p: &Proposer, threads: usize, each: usize, tag: &str) -> Vec<u64> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let p = p.clone();
            let tag = tag.to_string();
            std::thread::spawn(move || {
                (0..each)
                    .map(|i| {
                        p.propose(format!("{tag}{t}-{i}").into_bytes())
                            .unwrap()
                            .wait()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    all
}

#[test]
fn concurrent_proposals_get_distinct_indexes_and_replay_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let (sm, seen) = Recorder::new(0);
    let peer = Peer::start(voter(dir.path(), vec![]), sm, t.clone()).unwrap();
    let idx = propose_concurrently(&peer.proposer(), 8, 25, "w");
    let mut dedup = idx.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), 200, "every proposal has its own index");
    assert_eq!(seen.lock().len(), 200);
    // Applied in index order.
    let order: Vec<u64> = seen.lock().iter().map(|(i, _)| *i).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    let last = *idx.last().unwrap();
    drop(peer);

    // A state machine that lost everything gets the whole log again, once.
    let (sm, seen2) = Recorder::new(0);
    let peer = Peer::start(voter(dir.path(), vec![]), sm, t.clone()).unwrap();
    assert!(peer.status().wait_applied(last, Duration::from_secs(10)));
    assert_eq!(payloads(&seen2), payloads(&seen));
    drop(peer);

    // One that had applied up to `last - 50` gets only the rest.
    let (sm, seen3) = Recorder::new(last - 50);
    let peer = Peer::start(voter(dir.path(), vec![]), sm, t).unwrap();
    assert!(peer.status().wait_applied(last, Duration::from_secs(10)));
    assert_eq!(seen3.lock().len(), 50);
    assert!(seen3.lock().iter().all(|(i, _)| *i > last - 50));
}

#[test]
fn learner_receives_the_same_log_and_can_lag() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let (sm, vseen) = Recorder::new(0);
    let v = Peer::start(voter(dir.path(), vec![2]), sm, t.clone()).unwrap();
    let (lsm, lseen) = Recorder::new(0);
    let l = Peer::start(learner(dir.path()), lsm, t.clone()).unwrap();
    let idx = propose_concurrently(&v.proposer(), 4, 10, "a");
    let last = *idx.last().unwrap();
    assert!(l.status().wait_applied(last, Duration::from_secs(10)));
    assert_eq!(payloads(&lseen), payloads(&vseen));

    // Paused, the learner falls behind while the voter keeps committing.
    l.pause_apply();
    let idx = propose_concurrently(&v.proposer(), 2, 10, "b");
    let last2 = *idx.last().unwrap();
    assert!(!l.status().wait_applied(last2, Duration::from_millis(300)));
    assert!(l.status().applied() <= last);
    l.resume_apply();
    assert!(l.status().wait_applied(last2, Duration::from_secs(10)));
    assert_eq!(payloads(&lseen), payloads(&vseen));
}

#[test]
fn a_learner_behind_the_compacted_log_is_caught_up_by_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let (sm, vseen) = Recorder::new(0);
    let v = Peer::start(voter(dir.path(), vec![2]), sm, t.clone()).unwrap();
    let (lsm, lseen) = Recorder::new(0);
    let mut l = Peer::start(learner(dir.path()), lsm, t.clone()).unwrap();
    let first = propose_concurrently(&v.proposer(), 2, 5, "x");
    assert!(l
        .status()
        .wait_applied(*first.last().unwrap(), Duration::from_secs(10)));
    l.shutdown();
    drop(l);

    let more = propose_concurrently(&v.proposer(), 2, 20, "y");
    let last = *more.last().unwrap();
    // Without force the learner's progress holds compaction back.
    let kept = v.compact(false).unwrap();
    assert!(kept <= *first.last().unwrap() + 1, "first index {kept}");
    let first_index = v.compact(true).unwrap();
    assert_eq!(first_index, last + 1);

    // The learner restarts with its old log and state; the entries it misses are gone.
    let (lsm, _) = Recorder::new(lseen.lock().last().unwrap().0);
    *lsm.seen.lock() = lseen.lock().clone();
    let lseen = lsm.seen.clone();
    let l = Peer::start(learner(dir.path()), lsm, t.clone()).unwrap();
    assert!(l.status().wait_applied(last, Duration::from_secs(10)));
    assert_eq!(l.status().snapshots_restored(), 1);
    assert_eq!(payloads(&lseen), payloads(&vseen));

    // And it follows the log normally afterwards.
    let after = propose_concurrently(&v.proposer(), 1, 3, "z");
    assert!(l
        .status()
        .wait_applied(*after.last().unwrap(), Duration::from_secs(10)));
    assert_eq!(payloads(&lseen), payloads(&vseen));
}

#[test]
fn a_few_large_entries_compact_the_log_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let (sm, _) = Recorder::new(0);
    let mut vo = voter(dir.path(), vec![]);
    vo.compact_every = 1_000_000;
    vo.compact_bytes = 64 << 10;
    let v = Peer::start(vo, sm, t).unwrap();
    let mut last = 0;
    for i in 0..12u8 {
        last = v
            .proposer()
            .propose(vec![i; 16 << 10])
            .unwrap()
            .wait()
            .unwrap();
    }
    // 192 KiB applied: compacted at least twice, far before a million entries.
    let first = v.status().first_index();
    assert!(first > last / 2, "first index {first}, last {last}");
}

#[test]
fn a_leader_does_not_keep_an_unbounded_log_for_a_replica_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let (sm, vseen) = Recorder::new(0);
    let mut vo = voter(dir.path(), vec![2]);
    vo.compact_every = 10;
    vo.max_log_behind = 30;
    let v = Peer::start(vo, sm, t.clone()).unwrap();
    let (lsm, _) = Recorder::new(0);
    let mut l = Peer::start(learner(dir.path()), lsm, t.clone()).unwrap();
    let first = propose_concurrently(&v.proposer(), 1, 5, "p");
    assert!(l
        .status()
        .wait_applied(*first.last().unwrap(), Duration::from_secs(10)));
    l.shutdown();
    drop(l);
    let more = propose_concurrently(&v.proposer(), 2, 50, "q");
    let last = *more.last().unwrap();
    assert!(
        v.status().first_index() > *first.last().unwrap() + 1,
        "the log was kept for the learner: first index {}",
        v.status().first_index()
    );
    let (lsm, lseen) = Recorder::new(0);
    let l = Peer::start(learner(dir.path()), lsm, t).unwrap();
    assert!(l.status().wait_applied(last, Duration::from_secs(10)));
    assert_eq!(l.status().snapshots_restored(), 1);
    assert_eq!(payloads(&lseen), payloads(&vseen));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn batched_learner(dir: &std::path::Path, every: Duration) -> PeerOptions {
    let mut o = learner(dir);
    o.log_sync = LogSync::Batched(every);
    o
}

#[test]
fn a_batched_learner_reports_entries_to_the_leader_only_once_synced() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let (sm, vseen) = Recorder::new(0);
    let v = Peer::start(voter(dir.path(), vec![2]), sm, t.clone()).unwrap();
    let (lsm, lseen) = Recorder::new(0);
    // A 5 s window: the proposals below and their apply must fit in one window, and took
    // over 2 s on a loaded machine (the test then saw the learner's sync; a CI run of
    // 2026-12-06).
    let l = Peer::start(
        batched_learner(dir.path(), Duration::from_secs(5)),
        lsm,
        t.clone(),
    )
    .unwrap();
    // The learner's first writes (the leader's first entry) are synced after 5 s; the
    // writes below start a new 5 s window.
    let deadline = Instant::now() + Duration::from_secs(10);
    while l.status().log_syncs() == 0 {
        assert!(Instant::now() < deadline, "the learner never synced");
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = v.compact(false).unwrap();
    let idx = propose_concurrently(&v.proposer(), 4, 10, "a");
    let last = *idx.last().unwrap();
    assert!(l.status().wait_applied(last, Duration::from_secs(10)));
    assert_eq!(payloads(&lseen), payloads(&vseen));
    // Applied but not yet synced: the leader has not heard that the learner holds the
    // entries, so it keeps them.
    let kept = v.compact(false).unwrap();
    assert!(kept <= before.max(idx[0]), "first index {kept}, {idx:?}");
    // After the learner's sync it has.
    let deadline = Instant::now() + Duration::from_secs(10);
    while v.compact(false).unwrap() <= last {
        assert!(
            Instant::now() < deadline,
            "the learner never reported {last}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (writes, _) = l.status().log_writes();
    let syncs = l.status().log_syncs();
    assert!(
        syncs >= 1 && syncs < writes,
        "{syncs} syncs for {writes} writes"
    );
    assert_eq!(v.status().log_syncs(), v.status().log_writes().0);
}

/// A batched learner that loses the unsynced tail of its log (a power loss) restarts with
/// its state machine ahead of its log, and the leader believes it holds entries it lost.
#[test]
fn a_batched_learner_that_lost_its_log_tail_is_sent_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let (sm, vseen) = Recorder::new(0);
    let v = Peer::start(voter(dir.path(), vec![2]), sm, t.clone()).unwrap();
    let opts = batched_learner(dir.path(), Duration::from_millis(50));
    let (lsm, lseen) = Recorder::new(0);
    let mut l = Peer::start(opts.clone(), lsm, t.clone()).unwrap();
    let a = propose_concurrently(&v.proposer(), 2, 10, "a");
    assert!(l
        .status()
        .wait_applied(*a.last().unwrap(), Duration::from_secs(10)));
    l.shutdown();
    drop(l);
    let saved = dir.path().join("saved-log");
    copy_dir(&opts.dir, &saved);

    let restart = |seen: &Seen| {
        let (lsm, _) = Recorder::new(seen.lock().last().unwrap().0);
        *lsm.seen.lock() = seen.lock().clone();
        let seen = lsm.seen.clone();
        (Peer::start(opts.clone(), lsm, t.clone()).unwrap(), seen)
    };
    let (mut l, lseen) = restart(&lseen);
    let b = propose_concurrently(&v.proposer(), 2, 10, "b");
    assert!(l
        .status()
        .wait_applied(*b.last().unwrap(), Duration::from_secs(10)));
    // Let the leader hear that the learner holds "b".
    std::thread::sleep(Duration::from_millis(200));
    l.shutdown();
    drop(l);

    // The log loses everything after "a"; the state machine keeps "b".
    std::fs::remove_dir_all(&opts.dir).unwrap();
    copy_dir(&saved, &opts.dir);
    let (l, lseen) = restart(&lseen);
    let c = propose_concurrently(&v.proposer(), 1, 5, "c");
    let last = *c.last().unwrap();
    assert!(l.status().wait_applied(last, Duration::from_secs(10)));
    assert_eq!(payloads(&lseen), payloads(&vseen));
    assert_eq!(l.status().snapshots_restored(), 0);
}

/// A payload whose bytes tell where they are (a misplaced part shows).
fn large_payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn a_proposal_larger_than_an_entry_is_written_as_parts_and_applied_whole_once() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let (sm, vseen) = Recorder::new(0);
    let mut vo = voter(dir.path(), vec![2]);
    vo.max_entry_bytes = 1000;
    let mut v = Peer::start(vo.clone(), sm, t.clone()).unwrap();
    let (lsm, lseen) = Recorder::new(0);
    let l = Peer::start(learner(dir.path()), lsm, t.clone()).unwrap();
    let before = propose_concurrently(&v.proposer(), 1, 3, "a");
    let big = large_payload(10_500);
    // Small proposals race the large one: they wait for its parts, which stay consecutive.
    let pending = v.proposer().propose(big.clone()).unwrap();
    let small = propose_concurrently(&v.proposer(), 4, 5, "b");
    let at = pending.wait().unwrap();
    assert!(
        at > *before.last().unwrap() + 10,
        "11 parts: applied at {at}"
    );
    let last = *small.last().unwrap();
    assert!(l
        .status()
        .wait_applied(last.max(at), Duration::from_secs(10)));
    for seen in [&vseen, &lseen] {
        let seen = seen.lock();
        let whole: Vec<u64> = seen
            .iter()
            .filter(|(_, d)| d.len() > 100)
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(whole, vec![at], "applied once, whole, at its last part");
        assert_eq!(seen.iter().find(|(i, _)| *i == at).unwrap().1, big);
        assert_eq!(seen.len(), 3 + 1 + 20);
    }
    assert_eq!(payloads_small(&lseen), payloads_small(&vseen));
    v.shutdown();
    drop(v);
    drop(l);

    // In the log: eleven parts of at most 1000 bytes, consecutive, naming the first.
    let first = at - 10;
    {
        let log = LogStore::open(&vo.dir).unwrap();
        let entries = log.read_entries(first, at + 1).unwrap();
        for (n, e) in entries.iter().enumerate() {
            let tag = PartTag::decode(&e.context).expect("a part");
            assert_eq!(
                (tag.group, tag.seq, tag.last),
                (first, n as u32, e.index == at)
            );
            assert!(e.data.len() <= 1000);
        }
    }

    // A state machine that had applied everything before the parts gets them again, whole.
    let (sm, seen) = Recorder::new(first - 1);
    let v = Peer::start(vo, sm, t).unwrap();
    assert!(v
        .status()
        .wait_applied(last.max(at), Duration::from_secs(10)));
    let seen = seen.lock();
    assert_eq!(seen[0], (at, big));
}

/// Payloads shorter than a part (the small proposals), in order.
fn payloads_small(seen: &Mutex<Vec<(u64, Vec<u8>)>>) -> Vec<Vec<u8>> {
    seen.lock()
        .iter()
        .filter(|(_, d)| d.len() <= 100)
        .map(|(_, d)| d.clone())
        .collect()
}

#[test]
fn parts_of_a_leader_that_lost_office_are_dropped_on_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let mut peers = Vec::new();
    let mut seens = Vec::new();
    for id in 1..=3 {
        let mut o = PeerOptions::new(id, dir.path().join(format!("p{id}")), vec![1, 2, 3], vec![]);
        o.tick = Duration::from_millis(10);
        o.max_entry_bytes = 64;
        let (sm, seen) = Recorder::new(0);
        peers.push(Peer::start(o, sm, t.clone()).unwrap());
        seens.push(seen);
    }
    let leader = |peers: &[Peer]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = peers.iter().position(|p| p.status().is_serving_leader()) {
                return p;
            }
            assert!(Instant::now() < deadline, "no leader");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let old = leader(&peers);
    propose_concurrently(&peers[old].proposer(), 1, 2, "x");
    // 2,000 parts, each waiting for a commit round: still going out when leadership moves.
    let pending = peers[old]
        .proposer()
        .propose(large_payload(128_000))
        .unwrap();
    let start = peers[old].status().last_index();
    let deadline = Instant::now() + Duration::from_secs(10);
    while peers[old].status().committed() < start + 20 {
        assert!(Instant::now() < deadline, "parts are not being committed");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(peers[old].transfer_leadership(Duration::from_secs(10)));
    let r = pending.wait();
    assert!(matches!(r, Err(Error::NotLeader)), "{r:?}");
    let new = leader(&peers);
    assert_ne!(new, old);
    let after = propose_concurrently(&peers[new].proposer(), 1, 2, "y");
    let last = *after.last().unwrap();
    for (p, seen) in peers.iter().zip(&seens) {
        assert!(p.status().wait_applied(last, Duration::from_secs(10)));
        assert_eq!(payloads(seen), vec!["x0-0", "x0-1", "y0-0", "y0-1"]);
    }
}

#[test]
fn a_log_write_refused_for_want_of_space_waits_and_commits_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let faults = Arc::new(crate::log_fs::LogFaults::default());
    let mut opts = voter(dir.path(), vec![2]);
    opts.log_faults = faults.clone();
    let (sm, vseen) = Recorder::new(0);
    let v = Peer::start(opts.clone(), sm, t.clone()).unwrap();
    let (lsm, lseen) = Recorder::new(0);
    let l = Peer::start(learner(dir.path()), lsm, t.clone()).unwrap();
    let before = *propose_concurrently(&v.proposer(), 2, 5, "a")
        .last()
        .unwrap();
    assert!(l.status().wait_applied(before, Duration::from_secs(10)));

    // The disk fills: the leader's log writes fail; proposals wait, nothing commits.
    faults.set_no_space(true);
    let waiting: Vec<_> = (0..20)
        .map(|i| v.proposer().propose(format!("b{i}").into_bytes()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        vseen.lock().len(),
        10,
        "nothing committed while the log is full"
    );
    assert!(faults.failed() > 0);
    let (retries, stalled) = v.status().log_write_stall();
    assert!(stalled && retries > 0, "{retries} {stalled}");
    assert!(
        v.status().failure().is_none(),
        "the peer waits, it does not stop"
    );

    // Space again: every waiting proposal is committed and applied once, on both.
    faults.set_no_space(false);
    let mut got: Vec<u64> = waiting.into_iter().map(|p| p.wait().unwrap()).collect();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 20);
    assert!(!v.status().log_write_stall().1);
    let last = *got.last().unwrap();
    assert!(l.status().wait_applied(last, Duration::from_secs(10)));
    assert_eq!(payloads(&lseen), payloads(&vseen));
    assert_eq!(vseen.lock().len(), 30);
    drop(l);
    drop(v);

    // The log holds each entry once: a restart replays the same.
    let (sm, again) = Recorder::new(0);
    let v = Peer::start(opts, sm, t).unwrap();
    assert!(v.status().wait_applied(last, Duration::from_secs(10)));
    assert_eq!(payloads(&again), payloads(&vseen));
}

#[test]
fn a_failed_sync_of_the_log_stops_writes_not_the_process_and_a_restart_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let faults = Arc::new(crate::log_fs::LogFaults::default());
    let mut opts = voter(dir.path(), vec![]);
    opts.log_faults = faults.clone();
    let (sm, seen) = Recorder::new(0);
    let v = Peer::start(opts.clone(), sm, t.clone()).unwrap();
    let acked = *propose_concurrently(&v.proposer(), 2, 5, "a")
        .last()
        .unwrap();

    // The disk starts failing syncs: the write waiting for one is not acknowledged, and
    // says why (raft-engine panics on a failed sync; the panic stays in the log store).
    faults.set_sync_fails(true);
    let e = v
        .proposer()
        .propose(b"unknown".to_vec())
        .unwrap()
        .wait()
        .unwrap_err();
    assert!(e.is_log_sync_failure(), "{e}");
    assert!(faults.failed() > 0);
    assert!(v
        .status()
        .failure()
        .is_some_and(|f| f.is_log_sync_failure()));
    // Every later write is refused at once with the same reason.
    let later = v
        .proposer()
        .propose(b"later".to_vec())
        .and_then(|p| p.wait())
        .unwrap_err();
    assert!(later.is_log_sync_failure(), "{later}");
    assert_eq!(
        seen.lock().len(),
        10,
        "nothing after the failed sync was applied"
    );
    // Closing the log while syncs still fail does not panic in raft-engine's destructors
    // (two panicking file closes abort the process).
    drop(v);
    faults.set_sync_fails(false);

    // A restart recovers from what the log holds: every acknowledged entry, applied once,
    // and writes go on.
    let (sm, again) = Recorder::new(0);
    let v = Peer::start(opts, sm, t).unwrap();
    assert!(v.status().wait_applied(acked, Duration::from_secs(10)));
    let replayed = payloads(&again);
    assert_eq!(replayed[..10], payloads(&seen)[..]);
    let next = v
        .proposer()
        .propose(b"after".to_vec())
        .unwrap()
        .wait()
        .unwrap();
    assert!(v.status().wait_applied(next, Duration::from_secs(10)));
    assert_eq!(payloads(&again).last().map(String::as_str), Some("after"));
}

#[test]
fn a_peer_waiting_for_space_to_write_its_log_still_stops() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let faults = Arc::new(crate::log_fs::LogFaults::default());
    let mut opts = voter(dir.path(), vec![]);
    opts.log_faults = faults.clone();
    let (sm, _) = Recorder::new(0);
    let v = Peer::start(opts, sm, t).unwrap();
    v.proposer().propose(b"w".to_vec()).unwrap().wait().unwrap();
    faults.set_no_space(true);
    let pending = v.proposer().propose(b"x".to_vec()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(v.status().log_write_stall().1);
    let started = Instant::now();
    drop(v);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        pending.wait().is_err(),
        "an unwritten proposal is not acknowledged"
    );
}

#[test]
fn a_log_of_large_entries_among_small_ones_replays_whole_after_a_restart() {
    // Entries of a megabyte or more are applied beside the driver; replaying them from
    // the log (a restart, a learner catching up) must wait for each before the next.
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new();
    let (sm, seen) = Recorder::new(0);
    let v = Peer::start(voter(dir.path(), vec![2]), sm, t.clone()).unwrap();
    let (lsm, lseen) = Recorder::new(0);
    let l = Peer::start(learner(dir.path()), lsm, t.clone()).unwrap();
    l.pause_apply();
    let mut last = 0;
    for i in 0..6u8 {
        let data = if i % 3 == 0 {
            vec![b'a' + i; 2 << 20]
        } else {
            vec![b'a' + i; 100]
        };
        last = v.proposer().propose(data).unwrap().wait().unwrap();
    }
    // The learner applies its backlog from the log.
    l.resume_apply();
    assert!(
        l.status().wait_applied(last, Duration::from_secs(10)),
        "learner: {:?}",
        l.status().failure()
    );
    assert_eq!(*lseen.lock(), *seen.lock());
    drop(l);
    drop(v);
    // A voter whose state machine lost everything replays the whole log.
    let (sm, again) = Recorder::new(0);
    let v = Peer::start(voter(dir.path(), vec![2]), sm, t).unwrap();
    assert!(
        v.status().wait_applied(last, Duration::from_secs(10)),
        "voter: {:?}",
        v.status().failure()
    );
    assert_eq!(*again.lock(), *seen.lock());
}
