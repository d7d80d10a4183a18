//! # duet-replication: the Raft log (not built yet)
//!
//! This crate will own replication, as `DESIGN.md` describes:
//!
//! - a raft-rs `RawNode` driven by a tokio task, with raft-engine as the log and hard-state
//!   store (one directory per node under the data dir);
//! - a `StateMachine` trait that the row store (voters) and the column store (learner)
//!   implement, called with committed entries, knowing nothing of what is inside them;
//! - a `Transport` trait with an in-process implementation (the embedded default) and TCP;
//! - group commit, log compaction, snapshots for replicas that fall behind, ReadIndex for
//!   learner reads, and membership changes.
//!
//! The commit version of a transaction becomes the index of the entry that carries it; the
//! row store already keeps versions behind a `Version` type for that change. Issue #3 builds
//! this crate.
