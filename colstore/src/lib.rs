//! # duet-colstore: the column replica (not built yet)
//!
//! This crate will own DuetDB's column replica, the learner side of the design in
//! `DESIGN.md`:
//!
//! - the state machine a Raft learner applies: it decodes each committed entry's row writes
//!   with `duet-rowstore`'s codec and appends them, with their versions, to a per-table
//!   **delta** layer (persisted, so a restart does not need the whole log);
//! - the **stable** layer: immutable Arrow column chunks sorted by primary key, with
//!   per-chunk min/max (zone maps), and background compaction from delta into stable that
//!   drops versions no reader can still see;
//! - MVCC-filtered, vectorized scans (newest version `<= v` per key, deletions skipped) as a
//!   DataFusion `TableProvider` + `ExecutionPlan` with projection, filter and limit
//!   pushdown, chunk pruning and statistics.
//!
//! It must never write to RocksDB. Issues #3 (replication) and #4 (analytics) build it.
