//! Stopping a running statement: a PostgreSQL CancelRequest (a second connection that
//! names the backend's pid and secret key) and `statement_timeout`. Both end the statement
//! with SQLSTATE 57014 and leave the connection usable.
//!
//! Each session has a [`CancelSlot`] holding the token of the statement it is running. The
//! server keeps a [`CancelRegistry`] from pid to (secret key, slot); the CancelRequest
//! handler looks the pid up, checks the key and fires the token. A [`StatementGuard`] races
//! a statement's execution, and then its result stream, against the token and the deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use futures::stream::{self, BoxStream, StreamExt};
use futures::FutureExt;
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{PgError, PgErrorBox, Result, SqlState};

/// The token of the statement a session is running (a fresh one per statement).
pub type CancelSlot = Arc<Mutex<CancellationToken>>;

/// An open connection, as the registry knows it.
pub struct Backend {
    /// Its secret key (a CancelRequest must give it).
    pub key: Bytes,
    pub slot: CancelSlot,
    /// Ends the connection (see `duet_wire::Startup::terminate`).
    pub terminate: CancellationToken,
    pub database: String,
    pub user: String,
}

/// pid → the connection, for every open connection of the server.
#[derive(Default)]
pub struct CancelRegistry {
    sessions: Mutex<HashMap<i32, Backend>>,
}

impl CancelRegistry {
    /// Registers a connection's backend key.
    pub fn register(&self, pid: i32, backend: Backend) {
        self.sessions.lock().insert(pid, backend);
    }

    /// The role a connection logged in as; `None` if no connection has `pid`.
    pub fn user_of(&self, pid: i32) -> Option<String> {
        self.sessions.lock().get(&pid).map(|b| b.user.clone())
    }

    /// Stops `pid`'s running statement and ends its connection; false if there is none.
    pub fn terminate(&self, pid: i32) -> bool {
        let sessions = self.sessions.lock();
        let Some(b) = sessions.get(&pid) else {
            return false;
        };
        b.slot.lock().cancel();
        b.terminate.cancel();
        true
    }

    /// Stops the running statement of `pid` (without its key, as `pg_cancel_backend`
    /// does); false if there is no such connection.
    pub fn cancel_pid(&self, pid: i32) -> bool {
        match self.sessions.lock().get(&pid) {
            Some(b) => {
                b.slot.lock().cancel();
                true
            }
            None => false,
        }
    }

    /// Ends every connection to `database` but `except`'s; how many.
    pub fn terminate_database(&self, database: &str, except: Option<i32>) -> usize {
        let sessions = self.sessions.lock();
        let mut n = 0;
        for (pid, b) in sessions.iter() {
            if b.database == database && Some(*pid) != except {
                b.slot.lock().cancel();
                b.terminate.cancel();
                n += 1;
            }
        }
        n
    }

    /// Ends every connection; how many.
    pub fn terminate_all(&self) -> usize {
        let sessions = self.sessions.lock();
        for b in sessions.values() {
            b.slot.lock().cancel();
            b.terminate.cancel();
        }
        sessions.len()
    }

    /// Forgets a connection.
    pub fn unregister(&self, pid: i32) {
        self.sessions.lock().remove(&pid);
    }

    /// Cancels the statement running on `pid` if `key` matches; false if nothing matched.
    /// As in PostgreSQL, a cancel that arrives between statements does nothing.
    pub fn cancel(&self, pid: i32, key: &[u8]) -> bool {
        let slot = match self.sessions.lock().get(&pid) {
            Some(b) if b.key.as_ref() == key => b.slot.clone(),
            _ => return false,
        };
        slot.lock().cancel();
        true
    }
}

fn canceled(timeout: bool) -> PgError {
    PgError::new(
        SqlState::QueryCanceled,
        if timeout {
            "canceling statement due to statement timeout"
        } else {
            "canceling statement due to user request"
        },
    )
}

/// What may stop one statement: its cancel token and its deadline.
#[derive(Clone)]
pub struct StatementGuard {
    token: CancellationToken,
    deadline: Option<Instant>,
    /// Set when the result stream ends in an error (a stop or any other): the session's
    /// transaction block has then failed.
    stream_failed: Arc<AtomicBool>,
}

impl StatementGuard {
    /// Installs a fresh token in `slot` and starts the clock (`timeout` zero = none).
    pub fn start(slot: &CancelSlot, timeout: Duration, stream_failed: Arc<AtomicBool>) -> Self {
        let token = CancellationToken::new();
        *slot.lock() = token.clone();
        Self {
            token,
            deadline: (!timeout.is_zero()).then(|| Instant::now() + timeout),
            stream_failed,
        }
    }

    /// Resolves when the statement must stop, with the error to report.
    async fn stopped(&self) -> PgError {
        let deadline = async {
            match self.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.token.cancelled() => canceled(false),
            _ = deadline => canceled(true),
        }
    }

    /// Runs `fut` unless the statement is stopped first. A future that has finished its work
    /// (a commit) wins over a cancel that arrives in the same instant.
    pub async fn run<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            biased;
            r = fut => r,
            e = self.stopped() => Err(e),
        }
    }

    /// Ends `batches` with the 57014 error as soon as the statement is stopped. Dropping the
    /// inner stream stops DataFusion's tasks for it.
    pub fn guard_stream(
        self,
        batches: BoxStream<'static, datafusion::error::Result<RecordBatch>>,
    ) -> BoxStream<'static, datafusion::error::Result<RecordBatch>> {
        let failed = self.stream_failed.clone();
        let stop: std::pin::Pin<Box<dyn Future<Output = PgError> + Send>> =
            Box::pin(async move { self.stopped().await });
        stream::unfold(Some((batches, stop)), |state| async move {
            let (mut batches, mut stop) = state?;
            tokio::select! {
                biased;
                e = &mut stop => Some((
                    Err(DataFusionError::External(Box::new(PgErrorBox(e)))),
                    None,
                )),
                // A panic while computing a batch (a bug) ends the stream with XX000.
                item = std::panic::AssertUnwindSafe(batches.next()).catch_unwind() => match item {
                    Ok(item) => item.map(|i| (i, Some((batches, stop)))),
                    Err(p) => Some((
                        Err(DataFusionError::External(Box::new(PgErrorBox(
                            crate::error::from_panic(p),
                        )))),
                        None,
                    )),
                },
            }
        })
        .inspect(move |item| {
            if item.is_err() {
                failed.store(true, Ordering::Release);
            }
        })
        .boxed()
    }
}
