//! The seam between the protocol and SQL: what the wire asks of the SQL layer, and what a
//! statement gives back.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use futures::stream::BoxStream;
use pgwire::error::ErrorInfo;
use pgwire::messages::response::TransactionStatus;

/// An error on its way to the client (boxed: pgwire's `ErrorInfo` is large, and
/// `PgWireError::UserError` takes it boxed).
pub type WireError = Box<ErrorInfo>;

/// Result rows as they stream out; an error ends the result (and is sent as the
/// statement's ErrorResponse).
pub type Rows = BoxStream<'static, Result<RecordBatch, WireError>>;

/// What running one statement produced.
pub enum Outcome {
    /// Rows (a query, SHOW, RETURNING), with their command tag (`SELECT` is completed with
    /// the row count; any other tag is sent as it is).
    Rows {
        schema: SchemaRef,
        rows: Rows,
        tag: String,
    },
    /// A command without rows: its full command tag (e.g. `INSERT 0 3`).
    Command(String),
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT or ROLLBACK; the tag says which happened.
    End(&'static str),
    /// COPY … FROM STDIN started: the client sends CopyData next (`columns` wide), which
    /// goes to [`SqlSession::copy_data`].
    /// (`binary`: the binary COPY format.)
    CopyIn { columns: usize, binary: bool },
    /// COPY … TO STDOUT: one CopyData message per item (the `COPY n` tag counts them, less
    /// the header and trailer messages of the binary format).
    CopyOut {
        columns: usize,
        binary: bool,
        data: BoxStream<'static, Result<Vec<u8>, WireError>>,
    },
}

/// One statement's result and the notices it raised (sent before the result).
pub struct StatementResult {
    pub notices: Vec<String>,
    pub outcome: Result<Outcome, WireError>,
}

/// A parsed statement, as Parse and Describe need it.
pub trait Described: Clone + Debug + Send + Sync + 'static {
    /// The type of each `$n` (`None`: unknown, sent as text), as a field whose metadata
    /// may name its declared type (`duet.pg_type`: uuid, json, jsonb).
    fn param_types(&self) -> &[Option<datafusion::arrow::datatypes::FieldRef>];
    /// The columns it returns, if it returns rows.
    fn result_schema(&self) -> Option<&SchemaRef>;
}

/// One connection's SQL side.
#[async_trait]
pub trait SqlSession: Send + 'static {
    /// A statement parsed for the extended protocol.
    type Statement: Described;

    /// Startup and authentication finished; an error refuses the connection (FATAL).
    fn started(&mut self, startup: Startup) -> Result<(), WireError>;

    /// Runs the statements of one simple-query message in order, until one fails or starts
    /// a COPY FROM STDIN (as PostgreSQL does). An empty result is an empty query.
    async fn simple_query(&mut self, text: &str) -> Vec<StatementResult>;

    /// Parses one statement for the extended protocol (`None`: the text is empty), with
    /// the type OIDs the client declared for its parameters (`None`: not declared).
    async fn parse(
        &mut self,
        text: &str,
        declared: &[Option<u32>],
    ) -> Result<Option<Self::Statement>, WireError>;

    /// Executes a bound statement with its parameters.
    async fn execute(&mut self, stmt: &Self::Statement, params: ParamValues) -> StatementResult;

    /// CopyData of the COPY FROM STDIN in progress (errors are reported at CopyDone: the
    /// client is still sending).
    fn copy_data(&mut self, data: &[u8]);

    /// CopyDone: the rows copied, or why the COPY failed.
    fn copy_done(&mut self) -> Result<u64, WireError>;

    /// CopyFail from the client with its message: the error to send.
    fn copy_fail(&mut self, message: &str) -> WireError;

    /// Idle, in a transaction block, or in a failed one (ReadyForQuery's status).
    fn status(&self) -> TransactionStatus;

    /// `DEALLOCATE name` (or ALL, `None`) of statements prepared with SQL's `PREPARE`;
    /// whether `name` was one.
    fn deallocate_sql(&mut self, _name: Option<&str>) -> bool {
        false
    }

    /// The columns of the cursor `name` opened with DECLARE: PostgreSQL lets a client
    /// Describe it as a portal (psycopg does for its named cursors).
    fn cursor_schema(&self, _name: &str) -> Option<SchemaRef> {
        None
    }
}

/// A connection that has logged in.
#[derive(Debug, Clone)]
pub struct Startup {
    /// The connection's backend key (for CancelRequest).
    pub pid: i32,
    pub secret: bytes::Bytes,
    /// The role it logged in as, and the database it asked for.
    pub user: String,
    pub database: String,
    /// Over TLS.
    pub tls: bool,
    /// The other startup parameters (`application_name`, `DateStyle`, `options`, …).
    pub parameters: Vec<(String, String)>,
    /// Fired to end the connection (`pg_terminate_backend`, `DROP DATABASE … WITH
    /// (FORCE)`): the server then closes it with `FATAL 57P01`.
    pub terminate: tokio_util::sync::CancellationToken,
}

/// What login needs to know of a role.
#[derive(Debug, Clone)]
pub struct LoginRole {
    /// `LOGIN`.
    pub can_login: bool,
    /// `SUPERUSER` (the `is_superuser` parameter status).
    pub superuser: bool,
    /// Its password's SCRAM verifier, in PostgreSQL's text form.
    pub verifier: Option<String>,
}

/// The SQL engine behind a listener.
pub trait SqlBackend: Send + Sync + 'static {
    type Session: SqlSession;

    /// The role `name`, if there is one.
    fn login_role(&self, name: &str) -> Option<LoginRole>;

    /// A session for a new connection.
    fn open_session(self: &Arc<Self>) -> Result<Self::Session, WireError>;

    /// A CancelRequest for the connection with backend key (`pid`, `secret`).
    fn cancel(&self, pid: i32, secret: &[u8]);
}
