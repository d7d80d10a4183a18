//! # duet-sql: SQL semantics over the replicas
//!
//! Owns sessions (settings, transaction blocks, failed-transaction state), SQL parsing
//! (sqlparser's PostgreSQL dialect plus the pg_catalog rewrites of datafusion-pg-catalog),
//! statement execution (DDL, DML, COPY, the fast path, ANALYZE), planning through
//! DataFusion, and the mapping of every error to its SQLSTATE ([`error`]). The wire
//! protocol is `duet-wire`'s: [`connection`] implements its session trait (parse, describe,
//! execute, COPY data) and [`server`] runs its listener.
//!
//! Queries are planned and executed by DataFusion over the router's table providers; DML
//! computes its rows with DataFusion and writes them through the row store's transactions.
//! This crate never touches RocksDB or Arrow storage directly.

pub mod analyze;
pub mod arrays;
pub mod cancel;
pub mod check;
pub mod colnames;
pub mod connection;
pub mod copy;
pub mod copy_binary;
pub mod databases;
pub mod datetime;
pub mod ddl;
pub mod describe;
pub mod dml;
pub mod error;
pub mod fastpath;
pub(crate) mod foreign_key;
pub mod hints;
pub mod ident;
pub mod json;
pub mod jsonb;
pub mod jsonb_sets;
pub(crate) mod on_conflict;
pub mod pgsemantics;
pub mod roles;
pub mod scaled_rows;
pub mod sequence;
pub mod server;
pub use duet_wire::auth;
pub use server::{Route, ServerOptions};
pub mod session;
pub mod system_catalog;
pub mod types;
pub mod views;

pub use error::{PgError, SqlState};
pub use server::Server;
pub use session::{default_query_memory, parse_memory};
pub use session::{NodeServices, ReadBarrier, Shared, SharedRef};
