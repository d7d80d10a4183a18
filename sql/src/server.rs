//! The SQL server of one process: the wire listener ([`duet_wire::Server`]) with this
//! crate's sessions behind it, plus what runs beside them (automatic ANALYZE) and what a
//! clean shutdown does (flush the row store).

use std::net::SocketAddr;

use duet_rowstore::StoreRef;
use tokio::sync::watch;

pub use duet_wire::{Route, ServerOptions, DEFAULT_MAX_CONNECTIONS};

use crate::session::SharedRef;

/// A running SQL server.
pub struct Server {
    wire: duet_wire::Server,
    shared: SharedRef,
    stop_analyze: watch::Sender<bool>,
}

impl Server {
    /// Binds `listen` and starts accepting clients on the current tokio runtime, at most
    /// [`DEFAULT_MAX_CONNECTIONS`] at a time; sessions run on `shared`
    /// ([`crate::session::Shared::new`]).
    pub async fn start(shared: SharedRef, listen: SocketAddr) -> std::io::Result<Server> {
        Self::start_with(shared, listen, ServerOptions::default()).await
    }

    /// Like [`Server::start`], admitting clients by `options`: at most `max_connections`
    /// at a time (one more is told `FATAL 53300 sorry, too many clients already`, as by
    /// PostgreSQL), by its authentication rules, with TLS if it has an acceptor.
    pub async fn start_with(
        shared: SharedRef,
        listen: SocketAddr,
        options: ServerOptions,
    ) -> std::io::Result<Server> {
        let wire = duet_wire::Server::start(shared.clone(), listen, options).await?;
        let (stop_analyze, rx) = watch::channel(false);
        tokio::spawn(crate::analyze::autoanalyze(shared.clone(), rx));
        Ok(Server {
            wire,
            shared,
            stop_analyze,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.wire.local_addr()
    }

    /// The row store this server runs on.
    pub fn store(&self) -> &StoreRef {
        &self.shared.store
    }

    /// Stops accepting, then flushes the store. Open connections end when their tasks see
    /// the runtime shut down.
    pub async fn shutdown(self) {
        let _ = self.stop_analyze.send(true);
        self.wire.shutdown().await;
        if let Err(e) = self.shared.store.flush() {
            tracing::error!(error = %e, "flush on shutdown failed");
        }
    }
}
