//! # duet-rowstore: the row replica
//!
//! DuetDB's transactional store on RocksDB. It owns:
//!
//! - the engine seam ([`engine`]): small traits, RocksDB behind them, a `BTreeMap` for tests;
//! - MVCC ([`store`]): every committed batch has a version, the index of the Raft entry
//!   that carries it; a read at `v` sees exactly the batches `<= v`;
//! - the row replica's state machine ([`replica`]) that applies the log to RocksDB, and the
//!   row source a column replica is built from;
//! - snapshot-isolation transactions ([`txn`]) with read-your-writes and first-committer-wins
//!   conflict detection, primary keys, unique and secondary indexes, row locks ([`lock`]);
//! - the catalog, stored in the same RocksDB and versioned like data.
//!
//! What the column replica must read the same way (value types, table definitions, the key
//! and row codecs, the command format of a Raft entry, Arrow conversion) is in
//! `duet-common`.
//!
//! Invariants: a version is published to readers only after its whole batch is applied (it is
//! durable in the Raft log before that);
//! user keys are prefix-free so the version suffix can always be split off.
//!
//! It knows nothing of SQL text, DataFusion planning or the wire protocol.

pub mod engine;
pub mod error;
pub mod gc;
pub mod lock;
pub mod replica;
pub mod rowcache;
pub mod store;
pub mod txn;

pub use error::{Error, Result};
pub use lock::LockWait;
pub use replica::{start_voter, voter_options, RowStateMachine};
pub use store::{Store, StoreRef};
pub use txn::{Isolation, ReadView, Transaction};

#[cfg(test)]
mod store_test;
