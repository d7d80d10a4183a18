//! # duet-rowstore: the row replica
//!
//! DuetDB's transactional store on RocksDB. It owns:
//!
//! - the engine seam ([`engine`]): small traits, RocksDB behind them, a `BTreeMap` for tests;
//! - byte layouts ([`codec`]): memcomparable key tuples (key order = SQL order, NULLs and
//!   negative numbers included), versioned keys, and a row format that carries its column
//!   count so `ADD COLUMN` rewrites nothing;
//! - MVCC ([`store`], [`mvcc`]): every committed batch has a version, the index of the Raft
//!   entry that carries it ([`command`] is the entry's payload); a read at `v` sees exactly
//!   the batches `<= v`;
//! - the row replica's state machine ([`replica`]) that applies the log to RocksDB;
//! - snapshot-isolation transactions ([`txn`]) with read-your-writes and first-committer-wins
//!   conflict detection, primary keys, unique and secondary indexes;
//! - the catalog ([`catalog`]), stored in the same RocksDB and versioned like data;
//! - Arrow conversion of rows ([`batch`]) for scans.
//!
//! Invariants: a version is published to readers only after its whole batch is applied (it is
//! durable in the Raft log before that);
//! user keys are prefix-free so the version suffix can always be split off.
//!
//! It knows nothing of SQL text, DataFusion planning or the wire protocol.

pub mod batch;
pub mod catalog;
pub mod codec;
pub mod command;
pub mod engine;
pub mod error;
pub mod lock;
pub mod mvcc;
pub mod replica;
pub mod rowcache;
pub mod store;
pub mod txn;
pub mod types;

pub use catalog::{ColumnDef, IndexDef, TableDef, TableDefRef};
pub use error::{Error, Result};
pub use lock::LockWait;
pub use mvcc::Version;
pub use replica::{start_voter, voter_options, RowStateMachine};
pub use store::{Store, StoreRef};
pub use txn::{Isolation, ReadView, Transaction};
pub use types::{Datum, Row, SqlType};

#[cfg(test)]
mod store_test;
