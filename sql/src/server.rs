//! The SQL listener: accepts sockets and runs one [`Connection`] per client.

use std::net::SocketAddr;
use std::sync::Arc;

use duet_rowstore::StoreRef;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::handler::Connection;
use crate::node::NodeRef;
use crate::session::{Shared, SharedRef};

/// Errors of server start-up (kept free of anyhow, which only the binary and tests use).
pub mod anyhow_free {
    /// A start-up failure with its message.
    #[derive(Debug)]
    pub struct Error(pub String);
    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Error {}
    pub type Result<T> = std::result::Result<T, Error>;
}

/// A running SQL server.
pub struct Server {
    addr: SocketAddr,
    shared: SharedRef,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `listen` and starts accepting clients on the current tokio runtime.
    pub async fn start(node: NodeRef, listen: SocketAddr) -> std::io::Result<Server> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Shared::new(node.store.clone(), Some(node));
        let (tx, mut rx) = watch::channel(false);
        tokio::spawn(crate::analyze::autoanalyze(shared.clone(), rx.clone()));
        let sh = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = rx.changed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((socket, peer)) => {
                            let _ = socket.set_nodelay(true);
                            let sh = sh.clone();
                            tokio::spawn(async move {
                                let conn = match Connection::new(sh) {
                                    Ok(c) => Arc::new(c),
                                    Err(e) => {
                                        tracing::error!(%peer, error = %e, "failed to set up session");
                                        return;
                                    }
                                };
                                if let Err(e) = pgwire::tokio::process_socket(socket, None, conn).await {
                                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        });
        Ok(Server {
            addr,
            shared,
            shutdown: tx,
            task,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The row store this server runs on.
    pub fn store(&self) -> &StoreRef {
        &self.shared.store
    }

    /// The replicas this server runs on.
    pub fn node(&self) -> Option<&NodeRef> {
        self.shared.node.as_ref()
    }

    /// Stops accepting, then flushes the store. Open connections end when their tasks see
    /// the runtime shut down.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        if let Err(e) = self.shared.store.flush() {
            tracing::error!(error = %e, "flush on shutdown failed");
        }
    }
}
