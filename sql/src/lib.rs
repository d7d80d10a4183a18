//! # duet-sql: the PostgreSQL front end
//!
//! Owns the wire protocol (pgwire: simple and extended query protocols, trust
//! authentication), sessions (settings, transaction blocks, failed-transaction state), SQL
//! parsing (sqlparser's PostgreSQL dialect plus the pg_catalog rewrites of
//! datafusion-pg-catalog), DDL, DML, planning through DataFusion, and the one SQLSTATE
//! mapping ([`error`]).
//!
//! Queries are planned and executed by DataFusion over the router's table providers; DML
//! computes its rows with DataFusion and writes them through the row store's transactions.
//! This crate never touches RocksDB or Arrow storage directly.

pub mod analyze;
pub mod cancel;
pub mod copy;
pub mod ddl;
pub mod deferred;
pub mod dml;
pub mod error;
pub mod fastpath;
pub mod handler;
pub mod hints;
pub mod ident;
pub mod pgsemantics;
pub mod server;
pub mod session;
pub mod types;

pub use error::{PgError, SqlState};
pub use server::Server;
pub use session::{NodeServices, Shared, SharedRef};
