//! # duetdb: one process of a DuetDB deployment
//!
//! The wiring above the SQL layer, shared by the `duetdb` binary (`src/main.rs`) and the
//! embedded test harness (`duet-tests`):
//!
//! - [`node`]: the replicas of one process — the row replica on a Raft voter, the column
//!   replica on a Raft learner, the in-process transport between them, the router's files —
//!   and the handles the SQL layer gets from them ([`node::DuetNode::services`]);
//! - [`cluster`]: a cluster of processes (`--initial-cluster`): its members, and which
//!   member serves a new SQL connection (the leader; the others relay to it), and the
//!   column scans members serve each other;
//! - [`column_member`]: a member holding only the column replica (no row store);
//! - [`http`]: the HTTP endpoints (health, metrics, replica status, routing report, the
//!   inspector page);
//! - [`allocator`]: the process's memory-allocator settings.
//!
//! It holds no database logic: statements run in `duet-sql`, scans are routed in
//! `duet-router`, data lives in `duet-rowstore` and `duet-colstore`.

pub mod allocator;
pub mod cluster;
pub mod column_member;
pub mod databases;
pub mod error;
pub mod http;
pub mod node;

pub use error::{Error, Result};
pub use http::HttpServer;
pub use node::{DuetNode, NodeRef};
