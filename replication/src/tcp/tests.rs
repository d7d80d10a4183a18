//! Tests of the module above: voters in one process, each with its own TCP transport on
//! loopback, as separate processes would be.
#![allow(clippy::print_stderr)] // the failover test reports what it measured
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::peer::tests::{payloads, Recorder, Seen};
use crate::peer::{Peer, PeerOptions};
use crate::tcp::TcpTransport;
use crate::Error;

struct Member {
    id: u64,
    transport: Arc<TcpTransport>,
    peer: Option<Peer>,
    seen: Seen,
}

fn options(dir: &Path, id: u64, voters: &[u64]) -> PeerOptions {
    let mut o = PeerOptions::new(id, dir.join(format!("m{id}")), voters.to_vec(), vec![]);
    o.tick = Duration::from_millis(15);
    o.election_tick = 10;
    o
}

/// `n` voters over TCP, each transport knowing the others' addresses.
fn cluster(dir: &Path, n: u64) -> Vec<Member> {
    slow_cluster(dir, n, |_| Arc::new(|| Duration::ZERO))
}

/// The same, whose member `id` takes `large_apply(id)()` to apply an entry of 1 MiB or
/// more.
fn slow_cluster(
    dir: &Path,
    n: u64,
    large_apply: impl Fn(u64) -> crate::peer::tests::LargeApply,
) -> Vec<Member> {
    custom_cluster(dir, n, |id, _| Recorder::slow(0, large_apply(id)))
}

/// `n` voters whose options and state machines `make` adjusts.
fn custom_cluster(
    dir: &Path,
    n: u64,
    make: impl Fn(u64, &mut PeerOptions) -> (Recorder, Seen),
) -> Vec<Member> {
    let ids: Vec<u64> = (1..=n).collect();
    let transports: Vec<Arc<TcpTransport>> = ids
        .iter()
        .map(|id| TcpTransport::bind(*id, "127.0.0.1:0", HashMap::new()).unwrap())
        .collect();
    for (id, t) in ids.iter().zip(&transports) {
        t.advertise(format!("sql-of-{id}"));
    }
    for t in &transports {
        for (id, other) in ids.iter().zip(&transports) {
            t.set_address(*id, other.local_addr().to_string());
        }
    }
    ids.iter()
        .zip(transports)
        .map(|(id, transport)| {
            let mut opts = options(dir, *id, &ids);
            let (sm, seen) = make(*id, &mut opts);
            let peer = Peer::start(opts, sm, transport.clone()).unwrap();
            Member {
                id: *id,
                transport,
                peer: Some(peer),
                seen,
            }
        })
        .collect()
}

/// The leader every running member agrees on, once they do.
fn agreed_leader(members: &[Member], timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let leaders: Vec<Option<u64>> = members
            .iter()
            .filter_map(|m| m.peer.as_ref())
            .map(|p| p.status().leader())
            .collect();
        if let Some(Some(l)) = leaders.first() {
            let running = members.iter().any(|m| {
                m.id == *l
                    && m.peer
                        .as_ref()
                        .is_some_and(|p| p.status().is_serving_leader())
            });
            if running && leaders.iter().all(|x| x == &Some(*l)) {
                return *l;
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader: {leaders:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What member `m` applied, but raft's empty entries.
fn written(m: &Member) -> Vec<String> {
    payloads(&m.seen)
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect()
}

fn member(members: &[Member], id: u64) -> &Member {
    members.iter().find(|m| m.id == id).unwrap()
}

/// Member `id`'s live figures (it must be running).
fn status_of(members: &[Member], id: u64) -> Arc<crate::peer::PeerStatus> {
    member(members, id).peer.as_ref().unwrap().status().clone()
}

/// Proposes on `id` and waits until it is applied there.
fn write(members: &[Member], id: u64, data: &str) -> crate::Result<u64> {
    member(members, id)
        .peer
        .as_ref()
        .unwrap()
        .proposer()
        .propose(data.as_bytes().to_vec())?
        .wait()
}

/// Writes `data` through whichever of `candidates` leads once one does (within 10 s): that
/// member and the write's index.
fn write_via_new_leader(members: &[Member], candidates: &[u64], data: &str) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leader = candidates.iter().find(|c| {
            member(members, **c)
                .peer
                .as_ref()
                .unwrap()
                .status()
                .is_leader()
        });
        if let Some(l) = leader {
            if let Ok(i) = write(members, *l, data) {
                return (*l, i);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{candidates:?} elected no leader"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_all_applied(members: &[Member], index: u64) {
    for m in members.iter().filter(|m| m.peer.is_some()) {
        assert!(
            m.peer
                .as_ref()
                .unwrap()
                .status()
                .wait_applied(index, Duration::from_secs(10)),
            "member {} did not apply {index}",
            m.id
        );
    }
}

#[test]
fn three_voters_over_tcp_elect_one_leader_and_apply_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path(), 3);
    let leader = agreed_leader(&members, Duration::from_secs(10));
    let mut last = 0;
    for i in 0..50 {
        last = write(&members, leader, &format!("w{i}")).unwrap();
    }
    // A follower refuses proposals: writes go to the leader.
    let follower = members.iter().find(|m| m.id != leader).unwrap().id;
    assert!(matches!(
        write(&members, follower, "x"),
        Err(Error::NotLeader)
    ));
    wait_all_applied(&members, last);
    let expected: Vec<String> = (0..50).map(|i| format!("w{i}")).collect();
    for m in &members {
        let got = written(m);
        assert_eq!(got, expected, "member {}", m.id);
        assert!(
            m.transport
                .stats()
                .received
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
    }
}

#[test]
fn a_killed_leader_is_replaced_and_catches_up_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = cluster(dir.path(), 3);
    let old = agreed_leader(&members, Duration::from_secs(10));
    for i in 0..20 {
        write(&members, old, &format!("a{i}")).unwrap();
    }
    // The leader's process goes away: its peer stops, its sockets close.
    let addr = {
        let m = members.iter_mut().find(|m| m.id == old).unwrap();
        m.peer.take();
        m.transport.stop();
        m.transport.local_addr()
    };
    let killed = Instant::now();
    let new = agreed_leader(&members, Duration::from_secs(10));
    assert_ne!(new, old);
    let mut acknowledged = Vec::new();
    let first = loop {
        match write(&members, new, "b0") {
            Ok(i) => break i,
            Err(Error::NotLeader) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{e}"),
        }
    };
    eprintln!(
        "failover: first commit {:?} after the kill",
        killed.elapsed()
    );
    acknowledged.push("b0".to_string());
    for i in 1..20 {
        write(&members, new, &format!("b{i}")).unwrap();
        acknowledged.push(format!("b{i}"));
    }
    // It comes back on the same address with the same log, and catches up.
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    let transport = TcpTransport::bind(old, &addr.to_string(), HashMap::new()).unwrap();
    for m in &members {
        if m.id != old {
            transport.set_address(m.id, m.transport.local_addr().to_string());
        }
    }
    let (sm, seen) = Recorder::new(0);
    let peer = Peer::start(options(dir.path(), old, &ids), sm, transport.clone()).unwrap();
    {
        let m = members.iter_mut().find(|m| m.id == old).unwrap();
        m.transport = transport;
        m.peer = Some(peer);
        m.seen = seen;
    }
    let last = write(&members, new, "c").unwrap();
    assert!(last > first);
    wait_all_applied(&members, last);
    let expected: Vec<String> = (0..20)
        .map(|i| format!("a{i}"))
        .chain(acknowledged)
        .chain(["c".to_string()])
        .collect();
    for m in &members {
        let got = written(m);
        assert_eq!(got, expected, "member {}", m.id);
    }
}

#[test]
fn a_partitioned_leader_commits_nothing_and_the_majority_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path(), 3);
    let old = agreed_leader(&members, Duration::from_secs(10));
    write(&members, old, "before").unwrap();
    let others: Vec<u64> = members.iter().map(|m| m.id).filter(|i| *i != old).collect();
    // Cut the leader off both ways.
    member(&members, old).transport.isolate(&others);
    for o in &others {
        member(&members, *o).transport.isolate(&[old]);
    }
    // Its proposal cannot commit: the minority's write never becomes durable.
    let stranded = member(&members, old)
        .peer
        .as_ref()
        .unwrap()
        .proposer()
        .propose(b"stranded".to_vec());
    // The majority elects one of its own and commits.
    let (new, index) = write_via_new_leader(&members, &others, "after");
    // Check-quorum: the old leader steps down instead of leading alone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while member(&members, old)
        .peer
        .as_ref()
        .unwrap()
        .status()
        .is_leader()
    {
        assert!(Instant::now() < deadline, "the cut-off leader kept leading");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Heal: the old leader follows the new one and has the majority's log, not its own.
    for m in &members {
        m.transport.heal();
    }
    wait_all_applied(&members, index);
    assert_eq!(agreed_leader(&members, Duration::from_secs(10)), new);
    if let Ok(p) = stranded {
        assert!(
            p.wait().is_err(),
            "the minority's proposal was acknowledged"
        );
    }
    for m in &members {
        let got = written(m);
        assert_eq!(
            got,
            vec!["before".to_string(), "after".to_string()],
            "member {}",
            m.id
        );
    }
}

#[test]
fn a_leader_hands_over_leadership_before_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path(), 3);
    let old = agreed_leader(&members, Duration::from_secs(10));
    let index = write(&members, old, "before").unwrap();
    wait_all_applied(&members, index);
    let peer = member(&members, old).peer.as_ref().unwrap();
    assert!(peer.transfer_leadership(Duration::from_secs(5)));
    let new = agreed_leader(&members, Duration::from_secs(10));
    assert_ne!(new, old);
    assert!(matches!(write(&members, old, "x"), Err(Error::NotLeader)));
    write(&members, new, "after").unwrap();
}

#[test]
fn read_index_covers_acknowledged_writes_and_a_cut_off_leader_gets_none() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path(), 3);
    let leader = agreed_leader(&members, Duration::from_secs(10));
    let written_at = write(&members, leader, "w").unwrap();
    let peer = |id: u64| member(&members, id).peer.as_ref().unwrap();
    // On the leader, and on a follower (which asks the leader): at least the write's index,
    // and once applied there the follower holds the write.
    assert!(peer(leader).read_index(Duration::from_secs(5)).unwrap() >= written_at);
    let follower = members.iter().find(|m| m.id != leader).unwrap().id;
    let at = peer(follower).read_index(Duration::from_secs(5)).unwrap();
    assert!(at >= written_at);
    assert!(peer(follower)
        .status()
        .wait_applied(at, Duration::from_secs(5)));
    assert_eq!(written(member(&members, follower)), ["w"]);
    // A leader cut off from the others cannot confirm that it leads: no read index, even
    // while it still believes it leads, so it serves no stale read.
    let others: Vec<u64> = members
        .iter()
        .map(|m| m.id)
        .filter(|i| *i != leader)
        .collect();
    member(&members, leader).transport.isolate(&others);
    for o in &others {
        member(&members, *o).transport.isolate(&[leader]);
    }
    assert!(peer(leader).read_index(Duration::from_millis(600)).is_err());
    // The majority goes on, and its reads see its writes.
    let (new, index) = write_via_new_leader(&members, &others, "after");
    assert!(peer(new).read_index(Duration::from_secs(5)).unwrap() >= index);
    assert!(peer(leader).read_index(Duration::from_millis(300)).is_err());
}

#[test]
fn concurrent_reads_share_read_index_rounds_and_each_covers_the_writes_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path(), 3);
    let leader = agreed_leader(&members, Duration::from_secs(10));
    let peer = member(&members, leader).peer.as_ref().unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let members = &members;
            s.spawn(move || {
                for i in 0..20 {
                    let at = write(members, leader, &format!("t{t}-{i}")).unwrap();
                    let read = peer.read_index(Duration::from_secs(5)).unwrap();
                    assert!(read >= at, "read index {read} before write {at}");
                }
            });
        }
    });
}

#[test]
fn a_leader_that_cannot_hear_the_others_steps_down_and_a_slow_network_still_commits() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path(), 3);
    let old = agreed_leader(&members, Duration::from_secs(10));
    write(&members, old, "before").unwrap();
    let others: Vec<u64> = members.iter().map(|m| m.id).filter(|i| *i != old).collect();
    // One way: the leader's heartbeats reach the others, their answers never reach it. It
    // cannot commit, check-quorum steps it down, and the others elect one of their own.
    member(&members, old).transport.deafen(&others);
    let (new, index) = write_via_new_leader(&members, &others, "after");
    assert!(!member(&members, old)
        .peer
        .as_ref()
        .unwrap()
        .status()
        .is_leader());
    for m in &members {
        m.transport.heal();
    }
    wait_all_applied(&members, index);
    assert_eq!(agreed_leader(&members, Duration::from_secs(10)), new);

    // 40 ms on every message, below the election timeout (150–300 ms): a commit takes at
    // least the round trip, and the leader stays.
    for m in &members {
        m.transport.delay(Duration::from_millis(40));
    }
    let started = Instant::now();
    let slow = write(&members, new, "slow").unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(80),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(agreed_leader(&members, Duration::from_secs(10)), new);
    for m in &members {
        m.transport.heal();
    }
    wait_all_applied(&members, slow);
    for m in &members {
        assert_eq!(written(m), ["before", "after", "slow"], "member {}", m.id);
    }
}

#[test]
fn a_member_behind_the_compacted_log_gets_a_chunked_snapshot_on_its_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = cluster(dir.path(), 3);
    let leader = agreed_leader(&members, Duration::from_secs(10));
    let behind = members.iter().map(|m| m.id).find(|i| *i != leader).unwrap();
    write(&members, leader, "before").unwrap();
    let addr = {
        let m = members.iter_mut().find(|m| m.id == behind).unwrap();
        m.peer.take();
        m.transport.stop();
        m.transport.local_addr()
    };
    // Several MiB of entries, then the log is compacted past them: only a snapshot (of
    // several chunks) can bring the stopped member up to date.
    let pad = "x".repeat(100_000);
    let mut last = 0;
    for i in 0..40 {
        last = write(&members, leader, &format!("big{i}-{pad}")).unwrap();
    }
    let first = member(&members, leader)
        .peer
        .as_ref()
        .unwrap()
        .compact(true)
        .unwrap();
    assert_eq!(first, last + 1);
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    let transport = TcpTransport::bind(behind, &addr.to_string(), HashMap::new()).unwrap();
    for m in &members {
        if m.id != behind {
            transport.set_address(m.id, m.transport.local_addr().to_string());
        }
    }
    let (sm, seen) = Recorder::new(0);
    let peer = Peer::start(options(dir.path(), behind, &ids), sm, transport.clone()).unwrap();
    {
        let m = members.iter_mut().find(|m| m.id == behind).unwrap();
        m.transport = transport;
        m.peer = Some(peer);
        m.seen = seen;
    }
    let after = write(&members, leader, "after").unwrap();
    wait_all_applied(&members, after);
    let m = member(&members, behind);
    assert_eq!(m.peer.as_ref().unwrap().status().snapshots_restored(), 1);
    let sent = &member(&members, leader).transport.stats().snapshots_sent;
    assert!(sent.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert_eq!(written(m), written(member(&members, leader)));
    assert_eq!(written(m).len(), 42);
}

/// Applying one entry may take the followers longer than an election timeout (a bulk
/// load's entry, on busier machines than the leader's): they apply such an entry beside
/// their raft thread and go on answering, so the leader keeps its office (its
/// check-quorum hears them; no election, the same term) and the entries after it apply in
/// order.
#[test]
fn a_slow_apply_of_a_large_entry_does_not_cost_the_leader_its_office() {
    let dir = tempfile::tempdir().unwrap();
    // The followers take 800 ms per large entry, the leader nothing.
    let leading = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let members = slow_cluster(dir.path(), 3, |id| {
        let leading = leading.clone();
        Arc::new(move || {
            if leading.load(std::sync::atomic::Ordering::Relaxed) == id {
                Duration::ZERO
            } else {
                Duration::from_millis(800)
            }
        })
    });
    let leader = agreed_leader(&members, Duration::from_secs(10));
    leading.store(leader, std::sync::atomic::Ordering::Relaxed);
    let status = status_of(&members, leader);
    let term = status.term();
    let big = "x".repeat(2 << 20);
    for round in 0..2 {
        let i = write(&members, leader, &big).unwrap();
        let j = write(&members, leader, &format!("after {round}")).unwrap();
        assert!(j > i);
        wait_all_applied(&members, j);
    }
    assert_eq!(status.term(), term, "an election took place");
    assert!(status.is_leader());
    for m in &members {
        let w = written(m);
        assert_eq!(w.len(), 4, "member {}", m.id);
        assert_eq!(w[0].len(), big.len());
        assert_eq!(w[1], "after 0");
        assert_eq!(w[3], "after 1");
    }
}

/// One proposal of a bulk load's size (an `ALTER TABLE ... ADD PRIMARY KEY` over a million
/// rows was one 150 MB entry): written as parts of a few megabytes, so no driver is busy
/// longer than an election timeout with it, and the leader keeps its office.
#[test]
fn a_bulk_proposal_does_not_cost_the_leader_its_office() {
    let dir = tempfile::tempdir().unwrap();
    let members = cluster(dir.path(), 3);
    let leader = agreed_leader(&members, Duration::from_secs(10));
    let status = status_of(&members, leader);
    let term = status.term();
    let big: String = (0..48 << 20)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let i = write(&members, leader, &big).unwrap();
    let j = write(&members, leader, "after").unwrap();
    assert!(j > i);
    wait_all_applied(&members, j);
    assert_eq!(status.term(), term, "an election took place");
    assert!(status.is_leader());
    for m in &members {
        let w = written(m);
        assert_eq!(w.len(), 2, "member {}", m.id);
        assert!(w[0] == big, "member {}: the large write differs", m.id);
        assert_eq!(w[1], "after");
    }
}

/// Making the state machine durable before the log is compacted can take long (the row
/// replica flushes RocksDB's memtables: 0.4–0.9 s after a bulk load): it is done beside
/// the raft thread, which goes on ticking and answering, so a leader busy with it keeps its
/// office (its followers hear its heartbeats).
#[test]
fn a_slow_persist_before_compaction_does_not_cost_the_leader_its_office() {
    let dir = tempfile::tempdir().unwrap();
    // The leader takes 800 ms to persist, the others nothing.
    let leading = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let members = custom_cluster(dir.path(), 3, |id, opts| {
        opts.compact_every = 5;
        let (mut sm, seen) = Recorder::new(0);
        let leading = leading.clone();
        sm.persist_delay = Arc::new(move || {
            if leading.load(std::sync::atomic::Ordering::Relaxed) == id {
                Duration::from_millis(800)
            } else {
                Duration::ZERO
            }
        });
        (sm, seen)
    });
    let leader = agreed_leader(&members, Duration::from_secs(10));
    leading.store(leader, std::sync::atomic::Ordering::Relaxed);
    let status = status_of(&members, leader);
    let term = status.term();
    let mut last = 0;
    for i in 0..30 {
        last = write(&members, leader, &format!("w{i}")).unwrap();
    }
    wait_all_applied(&members, last);
    assert_eq!(status.term(), term, "an election took place");
    // The log was compacted meanwhile.
    let deadline = Instant::now() + Duration::from_secs(10);
    while status.first_index() <= 5 {
        assert!(Instant::now() < deadline, "the log was never compacted");
        std::thread::sleep(Duration::from_millis(10));
    }
    for m in &members {
        assert_eq!(written(m).len(), 30, "member {}", m.id);
    }
}
