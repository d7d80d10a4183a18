//! The listener: accepts sockets and runs one [`Connection`] per client, at most
//! `max_connections` at a time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::SqlBackend;
use crate::handler::Connection;
use crate::sqlstate::SqlState;

/// PostgreSQL's default `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// One of the `max_connections` places, given back when the connection ends.
struct ConnectionSlot(Arc<AtomicUsize>);

impl ConnectionSlot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<ConnectionSlot> {
        let mut n = open.load(Ordering::Relaxed);
        loop {
            if n >= max {
                return None;
            }
            match open.compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(ConnectionSlot(open.clone())),
                Err(now) => n = now,
            }
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Tells a client over the limit why, as PostgreSQL does: it reads the client's first
/// message (an SSLRequest is answered `N` and the startup message read next), then sends
/// `ErrorResponse` (FATAL, 53300) and closes.
async fn refuse_too_many(socket: &mut tokio::net::TcpStream) {
    use pgwire::messages::startup::{GssEncRequest, SslRequest};
    use pgwire::messages::Message;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn read_message(socket: &mut tokio::net::TcpStream) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        socket.read_exact(&mut len).await?;
        let n = (u32::from_be_bytes(len) as usize).clamp(4, 10_000);
        let mut body = vec![0u8; n - 4];
        socket.read_exact(&mut body).await?;
        Ok(body)
    }
    let work = async {
        let first = read_message(socket).await?;
        // An SSLRequest or GSSENCRequest comes before the startup message.
        let code = <[u8; 4]>::try_from(first.as_slice())
            .ok()
            .map(i32::from_be_bytes);
        if code == Some(SslRequest::BODY_MAGIC_NUMBER)
            || code == Some(GssEncRequest::BODY_MAGIC_NUMBER)
        {
            socket.write_all(b"N").await?;
            read_message(socket).await?;
        }
        // FATAL, as PostgreSQL sends it (the session never started).
        let info = pgwire::error::ErrorInfo::new(
            "FATAL".into(),
            SqlState::TooManyConnections.code().into(),
            "sorry, too many clients already".into(),
        );
        let mut msg = bytes::BytesMut::new();
        pgwire::messages::response::ErrorResponse::from(info)
            .encode(&mut msg)
            .map_err(std::io::Error::other)?;
        socket.write_all(&msg).await?;
        socket.shutdown().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), work).await;
}

/// A running listener.
pub struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `listen` and starts accepting clients of `backend` on the current tokio
    /// runtime, at most `max_connections` at a time; one more is told `FATAL 53300 sorry,
    /// too many clients already` and disconnected, as by PostgreSQL.
    pub async fn start<B: SqlBackend>(
        backend: Arc<B>,
        listen: SocketAddr,
        max_connections: usize,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (tx, mut rx) = watch::channel(false);
        let open = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = rx.changed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((mut socket, peer)) => {
                            let _ = socket.set_nodelay(true);
                            let Some(slot) = ConnectionSlot::take(&open, max_connections) else {
                                tokio::spawn(async move {
                                    refuse_too_many(&mut socket).await;
                                });
                                continue;
                            };
                            let backend = backend.clone();
                            tokio::spawn(async move {
                                let _slot = slot;
                                let conn = match Connection::new(backend) {
                                    Ok(c) => Arc::new(c),
                                    Err(e) => {
                                        tracing::error!(%peer, error = %e.message, "failed to set up session");
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
            shutdown: tx,
            task,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting. Open connections end when their tasks see the runtime shut down.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}
