//! Byte layouts: memcomparable datums ([`memcmp`]), keys ([`key`]) and row values ([`row`]).
//! Every persisted byte format of rows and keys (in RocksDB and in the Raft log, which the
//! column replica decodes too) is defined here and nowhere else.

pub mod key;
pub mod memcmp;
pub mod row;
