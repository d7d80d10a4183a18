//! # duet-wire: the PostgreSQL wire protocol
//!
//! Everything a PostgreSQL client talks to before SQL means anything: startup, the simple
//! and extended query protocols (Parse, Bind, Describe, Execute, portals), COPY framing,
//! CancelRequest, the connection limit, and the encoding of Arrow results as wire rows.
//! It only translates: each message becomes a call on a [`SqlSession`] (parse, run a simple
//! query, execute a bound statement, take COPY data), and the session's [`Outcome`]s go back
//! out as wire messages.
//!
//! - [`backend`]: the narrow traits the SQL layer implements ([`SqlBackend`],
//!   [`SqlSession`], [`Described`]) and what a statement returns ([`Outcome`]);
//! - [`handler`]: pgwire's handler traits for one connection;
//! - [`login`]: startup and authentication; [`auth`]: the host rules (pg_hba.conf's
//!   format), SCRAM-SHA-256 against stored verifiers, the TLS acceptor;
//! - [`deferred`]: a client whose flushes wait for the end of an exchange (one write per
//!   Bind/Execute/Sync, as PostgreSQL does);
//! - [`encode`]: Arrow → RowDescription and DataRow, with PostgreSQL's text forms where
//!   arrow-pg's differ;
//! - [`server`]: the listener, `max_connections`;
//! - [`sqlstate`]: the one SQLSTATE table.
//!
//! It knows no storage engine, no Raft and no DataFusion planning: result rows arrive as
//! Arrow record batches, parameters leave as DataFusion `ParamValues`.

pub mod auth;
pub mod backend;
pub mod deferred;
pub mod encode;
pub mod handler;
pub mod login;
pub mod server;
pub mod sqlstate;

pub use backend::{
    Described, LoginRole, Outcome, SqlBackend, SqlSession, Startup, StatementResult, WireError,
};
pub use server::{MemberService, Route, Server, ServerOptions, DEFAULT_MAX_CONNECTIONS};
pub use sqlstate::SqlState;

/// The PostgreSQL version DuetDB is compatible with, as the `server_version` parameter
/// status, `SHOW server_version` and `version()` report it.
pub const SERVER_VERSION: &str = "15.0";
