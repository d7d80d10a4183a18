//! A Raft node driven synchronously: propose, persist each `Ready` in one raft-engine write,
//! apply committed entries to a [`StateMachine`]. Today only the single-voter embedded
//! configuration is built; the tokio driver, the transport and the learner come next.

use std::path::Path;

use raft::eraftpb::{ConfState, EntryType};
use raft::{Config, RawNode, StateRole};

use crate::error::{Error, Result};
use crate::log_store::LogStore;

/// What replication calls with committed entries. It knows nothing of what is inside them.
pub trait StateMachine: Send {
    /// Applies the payload of the committed entry at `index`. Called in log order, once per
    /// index greater than [`StateMachine::applied_index`].
    fn apply(&mut self, index: u64, data: &[u8]) -> std::result::Result<(), String>;

    /// The highest index this state machine has applied durably; replay on restart starts
    /// after it.
    fn applied_index(&self) -> u64;
}

/// One Raft peer with its log and state machine.
pub struct Node<S: StateMachine> {
    raw: RawNode<LogStore>,
    store: LogStore,
    sm: S,
}

impl<S: StateMachine> Node<S> {
    /// Opens the log in `dir` and starts peer `id` as the only voter of its group; entries
    /// committed but not yet applied by `sm` are replayed by the next [`Node::drive`].
    pub fn open_single_voter(dir: &Path, id: u64, sm: S) -> Result<Self> {
        let store = LogStore::open(dir)?;
        let mut cs = raft::Storage::initial_state(&store)?.conf_state;
        if cs.voters.is_empty() {
            cs = ConfState::from((vec![id], vec![]));
            store.set_conf_state(&cs)?;
        }
        let commit = store.hard_state().commit;
        let cfg = Config {
            id,
            election_tick: 10,
            heartbeat_tick: 3,
            // raft refuses an applied index beyond the persisted commit; entries in between
            // are committed again and skipped by `drive`.
            applied: sm.applied_index().min(commit),
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Default::default()
        };
        cfg.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut raw = RawNode::new(&cfg, store.clone(), &logger)?;
        raw.campaign()?;
        let mut node = Node { raw, store, sm };
        for _ in 0..100 {
            node.drive()?;
            if node.raw.raft.state == StateRole::Leader {
                return Ok(node);
            }
        }
        Err(Error::Apply {
            index: 0,
            message: "single voter did not become leader".into(),
        })
    }

    /// Appends `data` to the log; returns the index it will have when committed.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<u64> {
        self.raw.propose(vec![], data)?;
        Ok(self.raw.raft.raft_log.last_index())
    }

    /// Persists what raft has ready (one write, fsync'd) and applies what is committed.
    /// Every proposal made since the last call shares that one write: group commit.
    pub fn drive(&mut self) -> Result<()> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        // A single voter sends no messages; with peers they go to the transport here.
        let _ = ready.take_messages();
        self.apply(ready.take_committed_entries())?;
        self.store.append(ready.entries(), ready.hs(), true)?;
        let _ = ready.take_persisted_messages();
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.store.set_commit(commit)?;
        }
        let _ = light.take_messages();
        self.apply(light.take_committed_entries())?;
        self.raw.advance_apply();
        Ok(())
    }

    fn apply(&mut self, entries: Vec<raft::eraftpb::Entry>) -> Result<()> {
        for e in entries {
            if e.index <= self.sm.applied_index() || e.data.is_empty() {
                continue;
            }
            if e.get_entry_type() != EntryType::EntryNormal {
                continue;
            }
            self.sm
                .apply(e.index, &e.data)
                .map_err(|message| Error::Apply {
                    index: e.index,
                    message,
                })?;
        }
        Ok(())
    }

    /// The commit index.
    pub fn committed(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The state machine.
    pub fn state_machine(&self) -> &S {
        &self.sm
    }

    /// The log store (for compaction and inspection).
    pub fn log(&self) -> &LogStore {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        applied: u64,
        seen: Vec<(u64, Vec<u8>)>,
    }

    impl StateMachine for Recorder {
        fn apply(&mut self, index: u64, data: &[u8]) -> std::result::Result<(), String> {
            if index <= self.applied {
                return Err(format!("index {index} applied twice"));
            }
            self.applied = index;
            self.seen.push((index, data.to_vec()));
            Ok(())
        }
        fn applied_index(&self) -> u64 {
            self.applied
        }
    }

    fn propose_all(node: &mut Node<Recorder>, n: usize, tag: &str) -> u64 {
        let mut last = 0;
        for i in 0..n {
            last = node.propose(format!("{tag}{i}").into_bytes()).unwrap();
            if i % 7 == 0 {
                node.drive().unwrap();
            }
        }
        while node.state_machine().applied_index() < last {
            node.drive().unwrap();
        }
        last
    }

    #[test]
    fn proposals_are_applied_in_order_and_replayed_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let last = {
            let mut node = Node::open_single_voter(dir.path(), 1, Recorder::default()).unwrap();
            let last = propose_all(&mut node, 50, "w");
            let payloads: Vec<String> = node
                .state_machine()
                .seen
                .iter()
                .map(|(_, d)| String::from_utf8(d.clone()).unwrap())
                .collect();
            assert_eq!(
                payloads,
                (0..50).map(|i| format!("w{i}")).collect::<Vec<_>>()
            );
            last
        };
        // A state machine that lost everything gets the whole log again, once.
        let mut node = Node::open_single_voter(dir.path(), 1, Recorder::default()).unwrap();
        while node.state_machine().applied_index() < last {
            node.drive().unwrap();
        }
        assert_eq!(node.state_machine().seen.len(), 50);
        assert_eq!(node.state_machine().seen[0].1, b"w0".to_vec());
        drop(node);
        // One that had applied up to 30 gets only the rest.
        let from = Recorder {
            applied: 30,
            seen: vec![],
        };
        let mut node = Node::open_single_voter(dir.path(), 1, from).unwrap();
        while node.state_machine().applied_index() < last {
            node.drive().unwrap();
        }
        assert!(node.state_machine().seen.iter().all(|(i, _)| *i > 30));
        assert_eq!(
            node.state_machine().seen.last().map(|(i, _)| *i),
            Some(last)
        );
    }

    #[test]
    fn compaction_keeps_the_term_of_the_last_removed_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = Node::open_single_voter(dir.path(), 1, Recorder::default()).unwrap();
        let last = propose_all(&mut node, 20, "c");
        node.log().compact_to(last - 5).unwrap();
        assert_eq!(raft::Storage::first_index(node.log()).unwrap(), last - 5);
        let t = raft::Storage::term(node.log(), last - 6).unwrap();
        assert!(t >= 1);
        assert!(matches!(
            raft::Storage::entries(
                node.log(),
                last - 10,
                last,
                None,
                raft::GetEntriesContext::empty(false)
            ),
            Err(raft::Error::Store(raft::StorageError::Compacted))
        ));
        // Writing goes on after compaction, and a restart sees the compacted log.
        let applied = node.state_machine().applied_index();
        let more = propose_all(&mut node, 5, "d");
        assert_eq!(more, last + 5);
        drop(node);
        let sm = Recorder {
            applied,
            seen: vec![],
        };
        let mut node = Node::open_single_voter(dir.path(), 1, sm).unwrap();
        while node.state_machine().applied_index() < more {
            node.drive().unwrap();
        }
        assert_eq!(node.state_machine().seen.len(), 5);
    }
}
