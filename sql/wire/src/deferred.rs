//! A client connection whose flushes wait for the end of the exchange.
//!
//! pgwire flushes after CommandComplete (and other single messages) inside its Execute
//! handling, so a prepared point query cost a `sendto` per message and woke the client once
//! per message. PostgreSQL writes a whole Bind/Execute/Sync exchange at once. Wrapping the
//! client in [`Deferred`] for Execute queues those messages; they go out with the
//! ReadyForQuery that Sync flushes, or with an explicit Flush. A large result still streams:
//! the framed writer flushes on its own when its buffer passes its limit, which `poll_ready`
//! checks. A CopyInResponse or CopyBothResponse is flushed at once, because the client waits
//! for it before it sends data.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::sink::Sink;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, SessionExtensions};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::{PgWireBackendMessage, ProtocolVersion};

/// `client` with its flushes deferred (see the module docs).
pub struct Deferred<'a, C> {
    client: &'a mut C,
    /// A message the client is waiting for was queued: the next flush is real.
    urgent: bool,
}

impl<'a, C> Deferred<'a, C> {
    pub fn new(client: &'a mut C) -> Self {
        Deferred {
            client,
            urgent: false,
        }
    }
}

impl<C: ClientInfo> ClientInfo for Deferred<'_, C> {
    fn socket_addr(&self) -> SocketAddr {
        self.client.socket_addr()
    }
    fn is_secure(&self) -> bool {
        self.client.is_secure()
    }
    fn protocol_version(&self) -> ProtocolVersion {
        self.client.protocol_version()
    }
    fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.client.set_protocol_version(version)
    }
    fn pid_and_secret_key(&self) -> (i32, SecretKey) {
        self.client.pid_and_secret_key()
    }
    fn set_pid_and_secret_key(&mut self, pid: i32, secret_key: SecretKey) {
        self.client.set_pid_and_secret_key(pid, secret_key)
    }
    fn state(&self) -> PgWireConnectionState {
        self.client.state()
    }
    fn set_state(&mut self, new_state: PgWireConnectionState) {
        self.client.set_state(new_state)
    }
    fn transaction_status(&self) -> TransactionStatus {
        self.client.transaction_status()
    }
    fn set_transaction_status(&mut self, new_status: TransactionStatus) {
        self.client.set_transaction_status(new_status)
    }
    fn metadata(&self) -> &HashMap<String, String> {
        self.client.metadata()
    }
    fn metadata_mut(&mut self) -> &mut HashMap<String, String> {
        self.client.metadata_mut()
    }
    fn session_extensions(&self) -> &SessionExtensions {
        self.client.session_extensions()
    }
    fn sni_server_name(&self) -> Option<&str> {
        self.client.sni_server_name()
    }
    fn client_certificates<'b>(
        &self,
    ) -> Option<&[pgwire::tokio::tokio_rustls::rustls::pki_types::CertificateDer<'b>]> {
        self.client.client_certificates()
    }
}

impl<C: ClientPortalStore> ClientPortalStore for Deferred<'_, C> {
    type PortalStore = C::PortalStore;
    fn portal_store(&self) -> &Self::PortalStore {
        self.client.portal_store()
    }
}

impl<C: Sink<PgWireBackendMessage> + Unpin> Sink<PgWireBackendMessage> for Deferred<'_, C> {
    type Error = C::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.get_mut().client).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: PgWireBackendMessage) -> Result<(), Self::Error> {
        let this = self.get_mut();
        if matches!(
            item,
            PgWireBackendMessage::CopyInResponse(_) | PgWireBackendMessage::CopyBothResponse(_)
        ) {
            this.urgent = true;
        }
        Pin::new(&mut *this.client).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if !this.urgent {
            return Poll::Ready(Ok(()));
        }
        let r = Pin::new(&mut *this.client).poll_flush(cx);
        if r.is_ready() {
            this.urgent = false;
        }
        r
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.get_mut().client).poll_close(cx)
    }
}
