//! # duet-common: what both replicas read
//!
//! The row replica (`duet-rowstore`, RocksDB on the Raft voters) and the column replica
//! (`duet-colstore`, Arrow on a Raft learner) apply the same log and must agree on every
//! byte of it. This crate holds what they share, and nothing that stores data:
//!
//! - value types ([`types`]: [`SqlType`], [`Datum`]) and table definitions ([`catalog`]);
//! - every persisted byte layout ([`codec`]): memcomparable key tuples, versioned keys, the
//!   row format;
//! - the replicated command format ([`command`]), the payload of a Raft entry;
//! - commit versions ([`version`]): the Raft index of the entry that carries a commit;
//! - the mapping between rows and Arrow ([`batch`]);
//! - scan plumbing both replicas' DataFusion leaves use ([`filter`], [`scan`]);
//! - the seam a column replica is built through ([`source::RowSource`]);
//! - durable file writes and the disk's free-space reserve ([`fs`]).
//!
//! Invariant: no storage engine under it (no RocksDB, no raft-engine), and it depends on no
//! other DuetDB crate, so a learner-only process links it without the row store.

pub mod batch;
pub mod catalog;
pub mod codec;
pub mod command;
pub mod error;
pub mod filter;
pub mod fs;
pub mod numeric;
pub mod scan;
pub mod source;
pub mod types;
pub mod version;

pub use catalog::{ColumnDef, IndexDef, TableDef, TableDefRef};
pub use error::{Error, Result, ValueErrorKind};
pub use types::{Datum, Row, SqlType};
pub use version::Version;
