//! The pgwire front end: one [`Connection`] per client socket, implementing the simple and
//! extended query protocols over a [`Session`].

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::sink::{Sink, SinkExt};
use futures::{stream, StreamExt};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::copy::{send_copy_in_response, CopyHandler};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{
    send_execution_response, send_query_response, send_ready_for_query, ExtendedQueryHandler,
    SimpleQueryHandler,
};
use pgwire::api::results::{CopyResponse, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::Entry;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Describe, Execute, Parse, ParseComplete,
};
use pgwire::messages::response::{EmptyQueryResponse, NoticeResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use sqlparser::ast::{Expr, SetExpr, Statement, Value};
use tokio::sync::Mutex;

use crate::error::{from_datafusion, PgError, SqlState};
use crate::ident::{ident_name, quote, table_name};
use crate::session::{Outcome, Session, SharedRef, DML_SCHEMA};

/// Largest accepted query text; longer ones get 54000 without being parsed.
pub const MAX_QUERY_BYTES: usize = 16 << 20;

/// A prepared statement: the parsed statement plus what Describe reports.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub statement: Arc<Statement>,
    /// The text it was prepared from (the routing log shows it; hints are read from it).
    pub text: Arc<str>,
    pub param_types: Vec<Option<DataType>>,
    pub schema: Option<SchemaRef>,
    /// The statement's fast-path plan, recognised once at Parse (see fastpath.rs).
    pub fast: Option<Arc<crate::fastpath::FastPlan>>,
}

/// datafusion-pg-catalog's parser. Built once: its constructor tokenizes every client query
/// it knows how to replace, which took about half the CPU of a point query when it was
/// built per statement (profiled with pgbench -S -M simple).
static PARSER: std::sync::LazyLock<PostgresCompatibilityParser> =
    std::sync::LazyLock::new(PostgresCompatibilityParser::new);

/// Parses SQL text with PostgreSQL's dialect and the pg_catalog compatibility rewrites.
pub fn parse_sql(sql: &str) -> Result<Vec<Statement>, PgError> {
    if sql.len() > MAX_QUERY_BYTES {
        return Err(PgError::new(
            SqlState::StatementTooComplex,
            "query text is too long",
        ));
    }
    PARSER
        .parse(&crate::ddl::rewrite_compat(sql))
        .map_err(PgError::from)
}

/// One client connection.
pub struct Connection {
    session: Arc<Mutex<Session>>,
    parser: Arc<DuetQueryParser>,
    cancels: Arc<crate::cancel::CancelRegistry>,
}

impl Connection {
    /// A new connection with a fresh session.
    pub fn new(shared: SharedRef) -> Result<Self, PgError> {
        let cancels = shared.cancels.clone();
        let session = Arc::new(Mutex::new(Session::new(shared)?));
        Ok(Self {
            cancels,
            parser: Arc::new(DuetQueryParser {
                parsed: Default::default(),
                shapes: Default::default(),
                session: session.clone(),
            }),
            session,
        })
    }
}

impl PgWireServerHandlers for Connection {
    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        Arc::new(Handler {
            session: self.session.clone(),
            parser: self.parser.clone(),
        })
    }
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(Handler {
            session: self.session.clone(),
            parser: self.parser.clone(),
        })
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(Handler {
            session: self.session.clone(),
            parser: self.parser.clone(),
        })
    }
    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(crate::cancel::Canceller(self.cancels.clone()))
    }
    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::new(Handler {
            session: self.session.clone(),
            parser: self.parser.clone(),
        })
    }
}

#[async_trait]
impl CopyHandler for Handler {
    async fn on_copy_data<C>(&self, _client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        if let Some(mut copy) = session.copy.take() {
            // Errors are kept in `copy` and reported at CopyDone: the client is still sending.
            copy.data(&mut session, &data.data);
            session.copy = Some(copy);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let Some(copy) = session.copy.take() else {
            return Err(
                PgError::new(SqlState::ProtocolViolation, "CopyDone without COPY").into_pgwire(),
            );
        };
        let result = copy.done(&mut session);
        if result.is_err() && session.in_transaction() {
            session.mark_failed();
        }
        let n = result.map_err(PgError::into_pgwire)?;
        let status = status_of(&session);
        client.set_transaction_status(status);
        client
            .send(PgWireBackendMessage::CommandComplete(
                Tag::new("COPY").with_rows(n as usize).into(),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        session.copy = None;
        if session.in_transaction() {
            session.mark_failed();
        }
        client.set_transaction_status(status_of(&session));
        PgError::new(
            SqlState::QueryCanceled,
            format!("COPY from stdin failed: {}", fail.message),
        )
        .into_pgwire()
    }
}

/// Implements the pgwire handler traits for one connection.
pub struct Handler {
    session: Arc<Mutex<Session>>,
    parser: Arc<DuetQueryParser>,
}

/// Trust authentication (password authentication comes later). After startup the
/// connection's backend key is registered for CancelRequest.
#[async_trait]
impl NoopStartupHandler for Handler {
    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (pid, key) = client.pid_and_secret_key();
        self.session
            .lock()
            .await
            .register_cancel(pid, key.to_bytes());
        Ok(())
    }
}

fn status_of(session: &Session) -> TransactionStatus {
    if session.is_failed() {
        TransactionStatus::Error
    } else if session.in_transaction() {
        TransactionStatus::Transaction
    } else {
        TransactionStatus::Idle
    }
}

async fn send_notices<C>(client: &mut C, session: &mut Session) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let routed: Vec<String> = session.route.notices.lock().drain(..).collect();
    for n in session.notices.drain(..).chain(routed) {
        let info = ErrorInfo::new("NOTICE".into(), "00000".into(), n);
        client
            .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
                info,
            )))
            .await?;
    }
    Ok(())
}

/// The RowDescription of `schema`: arrow-pg's mapping, with `char(n)` columns reported as
/// `bpchar` (atttypmod n + 4, as in PostgreSQL).
fn pg_fields(
    schema: &datafusion::arrow::datatypes::Schema,
    format: &Format,
) -> PgWireResult<Vec<FieldInfo>> {
    let mut fields = arrow_schema_to_pg_fields(schema, format, None)?;
    for (f, w) in fields.iter_mut().zip(crate::types::bpchar_widths(schema)) {
        let name = crate::pgsemantics::output_name(f.name());
        if let Some(w) = w {
            *f = FieldInfo::new(name.into(), None, None, Type::BPCHAR, f.format())
                .with_type_modifier(w as i32 + 4);
        } else if name.len() != f.name().len() {
            *f = FieldInfo::new(
                name.into(),
                f.table_id(),
                f.column_id(),
                f.datatype().clone(),
                f.format(),
            )
            .with_type_modifier(f.type_modifier());
        }
    }
    Ok(fields)
}

fn query_response(
    schema: SchemaRef,
    batches: stream::BoxStream<
        'static,
        datafusion::error::Result<datafusion::arrow::record_batch::RecordBatch>,
    >,
    tag: &str,
    format: &Format,
) -> PgWireResult<QueryResponse> {
    let widths = crate::types::bpchar_widths(&schema);
    let fields = Arc::new(pg_fields(&schema, format)?);
    let f2 = fields.clone();
    let text: Vec<bool> = (0..schema.fields().len())
        .map(|i| format.is_text(i))
        .collect();
    let rows = batches
        .map(move |rb| {
            let it: Box<
                dyn Iterator<Item = PgWireResult<pgwire::messages::data::DataRow>> + Send + Sync,
            > = match rb {
                Ok(rb) => {
                    let rb = crate::types::pad_bpchar_columns(&rb, &widths);
                    encode_recordbatch(f2.clone(), crate::types::pg_text_columns(&rb, &|i| text[i]))
                }
                Err(e) => Box::new(std::iter::once(Err(from_datafusion(e).into_pgwire()))),
            };
            stream::iter(it)
        })
        .flatten();
    let mut resp = QueryResponse::new(fields, rows);
    if tag != "SELECT" {
        resp.set_command_tag(tag);
    }
    Ok(resp)
}

fn into_response(
    outcome: Outcome,
    format: &Format,
    guard: crate::cancel::StatementGuard,
) -> PgWireResult<Response> {
    Ok(match outcome {
        Outcome::Stream { stream, tag } => {
            let schema = stream.schema();
            let batches = guard.guard_stream(stream.boxed());
            Response::Query(query_response(schema, batches, &tag, format)?)
        }
        Outcome::Batches {
            schema,
            batches,
            tag,
        } => {
            let s = stream::iter(batches.into_iter().map(Ok)).boxed();
            Response::Query(query_response(schema, s, &tag, format)?)
        }
        Outcome::Command(tag) => Response::Execution(Tag::new(&tag)),
        Outcome::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        Outcome::End(tag) => Response::TransactionEnd(Tag::new(tag)),
        Outcome::CopyIn { columns } => {
            Response::CopyIn(CopyResponse::new(0, columns, stream::empty()))
        }
        Outcome::CopyOut {
            columns,
            stream,
            encoder,
        } => {
            // One CopyData per row (pgwire counts them for the `COPY n` tag); a header with
            // no rows after it goes out at the end.
            let encoder = Arc::new(parking_lot::Mutex::new(encoder));
            let last = encoder.clone();
            let rows = guard
                .guard_stream(stream.boxed())
                .map(move |b| -> Vec<PgWireResult<CopyData>> {
                    match b
                        .map_err(from_datafusion)
                        .and_then(|b| encoder.lock().encode(&b))
                    {
                        Ok(lines) => lines
                            .into_iter()
                            .map(|l| Ok(CopyData::new(l.into())))
                            .collect(),
                        Err(e) => vec![Err(e.into_pgwire())],
                    }
                })
                .chain(stream::once(async move {
                    last.lock()
                        .finish()
                        .map(|h| Ok(CopyData::new(h.into())))
                        .into_iter()
                        .collect()
                }))
                .flat_map(stream::iter);
            Response::CopyOut(CopyResponse::new(0, columns, rows))
        }
    })
}

/// Executes `stmt` unless it is cancelled or times out first; a statement stopped inside a
/// transaction block fails the block, as any other error does.
async fn run_guarded(
    session: &mut Session,
    guard: &crate::cancel::StatementGuard,
    stmt: &Statement,
    plan: Option<&Arc<crate::fastpath::FastPlan>>,
    params: &ParamValues,
) -> Result<Outcome, PgError> {
    // The fast path runs without the guard's race: it awaits only its commit, and its lock
    // waits check the same cancel token and deadlines themselves. Nor is a COMMIT raced: once
    // proposed it finishes, and stopping the wait would report a commit as failed (PostgreSQL
    // does not cancel one either). The general path's future is large, so it is boxed
    // rather than copied into every caller's state.
    let result = match session.execute_fast(stmt, plan, params).await {
        Some(r) => r,
        None if matches!(stmt, Statement::Commit { .. }) => {
            Box::pin(session.execute_general(stmt, params)).await
        }
        None => {
            guard
                .run(Box::pin(session.execute_general(stmt, params)))
                .await
        }
    };
    if result.is_err() {
        session.mark_failed();
    }
    result
}

impl Handler {
    /// Runs the statements of one simple query, in order, until one fails or starts a COPY.
    /// With `literals`, `statements` are the fast-path statements of the query's literal
    /// shape (see [`DuetQueryParser::shaped`]) and `literals` their parameters; a statement
    /// whose values do not bind exactly runs the general way from the text as written
    /// (parsed then), so the literals keep their own types there.
    async fn run_statements<'s, C>(
        &self,
        client: &mut C,
        session: &mut Session,
        query: &str,
        statements: impl ExactSizeIterator<
            Item = (&'s Statement, Option<&'s Arc<crate::fastpath::FastPlan>>),
        >,
        literals: Option<&ParamValues>,
    ) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let n = statements.len();
        let mut out = Vec::with_capacity(n);
        let empty = ParamValues::List(vec![]);
        let text: Arc<str> = Arc::from(query);
        let mut written: Option<Result<Vec<Statement>, PgError>> = None;
        for (i, (stmt, plan)) in statements.enumerate() {
            if n > 1 {
                // The log shows each statement of the message on its own; hints come from
                // the whole message (the parser drops comments).
                session.set_statement_from(Arc::from(stmt.to_string()), &text);
            } else {
                session.set_statement(&text);
            }
            let guard = session.statement_guard();
            let result = match literals {
                None => run_guarded(session, &guard, stmt, plan, &empty).await,
                Some(params) => match session.execute_fast(stmt, plan, params).await {
                    Some(r) => {
                        if r.is_err() {
                            session.mark_failed();
                        }
                        r
                    }
                    None => {
                        let parsed = written.get_or_insert_with(|| {
                            parse_sql(query).and_then(|w| {
                                if w.len() == n {
                                    Ok(w)
                                } else {
                                    Err(PgError::new(
                                        SqlState::InternalError,
                                        "statements of a query and of its literal shape differ",
                                    ))
                                }
                            })
                        });
                        match parsed {
                            Ok(w) => run_guarded(session, &guard, &w[i], None, &empty).await,
                            Err(e) => Err(e.clone()),
                        }
                    }
                },
            };
            send_notices(client, session).await?;
            match result.and_then(|o| {
                into_response(o, &Format::UnifiedText, guard)
                    .map_err(|e| PgError::new(SqlState::InternalError, e.to_string()))
            }) {
                Ok(r @ Response::CopyIn(_)) => {
                    // The data that follows belongs to this COPY; later statements of
                    // the same message are not run (as in PostgreSQL, COPY ends it).
                    out.push(r);
                    break;
                }
                Ok(r) => out.push(r),
                Err(e) => {
                    out.push(Response::Error(Box::new(e.into_error_info())));
                    break;
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let responses = SimpleQueryHandler::do_query(self, client, &query.query).await?;
        if responses.is_empty() {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        }
        for r in responses {
            match r {
                Response::Query(results) => send_query_response(client, results, true).await?,
                Response::Execution(tag)
                | Response::TransactionStart(tag)
                | Response::TransactionEnd(tag) => send_execution_response(client, tag).await?,
                Response::Error(e) => {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse((*e).into()))
                        .await?
                }
                Response::EmptyQuery => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?
                }
                Response::CopyIn(copy) => {
                    // The rest happens in the CopyHandler; ReadyForQuery comes after CopyDone.
                    send_copy_in_response(client, copy).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                    let status = status_of(&*self.session.lock().await);
                    client.set_transaction_status(status);
                    return Ok(());
                }
                Response::CopyOut(copy) => {
                    pgwire::api::copy::send_copy_out_response(client, copy).await?
                }
                Response::CopyBoth(_) => {
                    let e = PgError::unsupported("COPY").into_error_info();
                    client
                        .feed(PgWireBackendMessage::ErrorResponse(e.into()))
                        .await?
                }
            }
        }
        let status = status_of(&*self.session.lock().await);
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        send_ready_for_query(client, status).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let mut try_fast = session.fast_path_enabled();
        if try_fast {
            match self.parser.shaped(query, &session.shared.store) {
                ShapeLookup::Fast(shape, params) => {
                    let statements = shape.iter().map(|(s, p)| (s, Some(p)));
                    return self
                        .run_statements(client, &mut session, query, statements, Some(&params))
                        .await;
                }
                ShapeLookup::General { literal_free } => try_fast = !literal_free,
                ShapeLookup::Unknown => {}
            }
        }
        let fast = try_fast
            .then(|| crate::fastpath::parse_if_fast(query, &session.shared.store))
            .flatten();
        let statements: Vec<(Statement, Option<Arc<crate::fastpath::FastPlan>>)> = match fast {
            Some(planned) => planned
                .into_iter()
                .map(|(stmt, plan)| (stmt, Some(plan)))
                .collect(),
            None => match parse_sql(query) {
                Ok(s) => s.into_iter().map(|stmt| (stmt, None)).collect(),
                Err(e) => return Ok(vec![Response::Error(Box::new(e.into_error_info()))]),
            },
        };
        let statements = statements.iter().map(|(s, p)| (s, p.as_ref()));
        self.run_statements(client, &mut session, query, statements, None)
            .await
    }
}

/// Parses statements for the extended protocol and works out their parameter and result
/// types for Describe.
pub struct DuetQueryParser {
    session: Arc<Mutex<Session>>,
    /// Fast-path statements this connection has parsed, by text: a client that parses the
    /// same text for every execution (the extended protocol's unnamed statement, as
    /// pgbench -M extended and many drivers do) skips the parser. An entry is used only while
    /// its table's definition is the one it was recognised against.
    parsed: parking_lot::Mutex<HashMap<String, Prepared>>,
    /// Simple-query texts by literal shape (`fastpath::literal_shape`): the shape's parsed
    /// statements with their fast-path plans, or, for a shape that is not all fast-path
    /// statements, the catalog generation at which that was found (tried again after DDL).
    shapes: parking_lot::Mutex<HashMap<String, Shaped>>,
}

/// See [`DuetQueryParser::shapes`].
#[derive(Clone)]
enum Shaped {
    Fast(Arc<[(Statement, Arc<crate::fastpath::FastPlan>)]>),
    General(u64),
}

impl DuetQueryParser {
    /// What `query`'s literal shape is known to be (see [`ShapeLookup`]).
    fn shaped(&self, query: &str, store: &duet_rowstore::Store) -> ShapeLookup {
        let Some((shape, literals)) = crate::fastpath::literal_shape(query) else {
            return ShapeLookup::Unknown;
        };
        let general = ShapeLookup::General {
            literal_free: literals.is_empty(),
        };
        let params = || ParamValues::List(literals.into_iter().map(Into::into).collect());
        let generation = store.catalog_generation();
        match self.shapes.lock().get(&shape) {
            Some(Shaped::Fast(s)) => return ShapeLookup::Fast(s.clone(), params()),
            Some(Shaped::General(g)) if *g == generation => return general,
            _ => {}
        }
        let entry = match crate::fastpath::parse_if_fast(&shape, store) {
            Some(planned) => Shaped::Fast(planned.into()),
            None => Shaped::General(generation),
        };
        let mut shapes = self.shapes.lock();
        if shapes.len() >= PARSE_CACHE_SIZE {
            shapes.clear();
        }
        shapes.insert(shape, entry.clone());
        match entry {
            Shaped::Fast(s) => ShapeLookup::Fast(s, params()),
            Shaped::General(_) => general,
        }
    }
}

/// What a simple query's literal shape says about it.
enum ShapeLookup {
    /// Its statements are fast-path statements: the shape's, with the literals as parameters.
    Fast(
        Arc<[(Statement, Arc<crate::fastpath::FastPlan>)]>,
        ParamValues,
    ),
    /// Not all fast-path statements; `literal_free`: the shape is the text itself, so the
    /// text as written is not either.
    General { literal_free: bool },
    /// The text has no plain shape.
    Unknown,
}

/// Texts the per-connection parse cache keeps (it is emptied when full).
const PARSE_CACHE_SIZE: usize = 256;

fn placeholder_index(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()),
            _ => None,
        },
        _ => None,
    }
}

fn max_placeholder(stmt: &Statement) -> usize {
    let mut max = 0;
    let _ = sqlparser::ast::visit_expressions(stmt, |e| {
        if let Some(i) = placeholder_index(e) {
            max = max.max(i);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    max
}

fn merge_plan_types(out: &mut [Option<DataType>], found: HashMap<String, Option<DataType>>) {
    for (k, v) in found {
        if let Some(i) = k.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            if i >= 1 && i <= out.len() && out[i - 1].is_none() {
                out[i - 1] = v;
            }
        }
    }
}

/// Empties a session's view slot when dropped.
struct UnpinView(duet_router::ViewSlot);

impl Drop for UnpinView {
    fn drop(&mut self) {
        *self.0.lock() = None;
    }
}

impl DuetQueryParser {
    async fn describe(
        &self,
        stmt: &Statement,
    ) -> Result<(Vec<Option<DataType>>, Option<SchemaRef>), PgError> {
        let mut session = self.session.lock().await;
        let n = max_placeholder(stmt);
        let mut types: Vec<Option<DataType>> = vec![None; n];
        session.publish_view();
        // Planning for Describe must not leave the snapshot pinned afterwards.
        let _unpin = UnpinView(session.view.clone());
        match stmt {
            Statement::Query(_) | Statement::Explain { .. } => {
                let plan = session.plan(stmt.clone()).await?;
                merge_plan_types(&mut types, plan.get_parameter_types()?);
                let schema = Arc::new(plan.schema().as_arrow().clone());
                return Ok((types, Some(schema)));
            }
            Statement::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|i| i.value.to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join(" ");
                return Ok((
                    types,
                    Some(Arc::new(Schema::new(vec![Field::new(
                        name,
                        DataType::Utf8,
                        true,
                    )]))),
                ));
            }
            Statement::Insert(ins) => {
                if let sqlparser::ast::TableObject::TableName(name) = &ins.table {
                    if let Some(def) = session.shared.store.table(&table_name(name)?) {
                        let target: Vec<usize> = if ins.columns.is_empty() {
                            (0..def.columns.len()).collect()
                        } else {
                            ins.columns
                                .iter()
                                .filter_map(|c| {
                                    c.0.last()
                                        .and_then(|p| p.as_ident())
                                        .and_then(|i| def.column_index(&ident_name(i)))
                                })
                                .collect()
                        };
                        if let Some(q) = &ins.source {
                            if let SetExpr::Values(values) = q.body.as_ref() {
                                for row in &values.rows {
                                    for (j, item) in row.content.iter().enumerate() {
                                        if let (Some(p), Some(&c)) =
                                            (placeholder_index(item), target.get(j))
                                        {
                                            if p >= 1 && p <= n {
                                                types[p - 1] = Some(def.columns[c].ty.arrow_type());
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        let alias = ins
                            .table_alias
                            .as_ref()
                            .map(|a| ident_name(&a.alias))
                            .unwrap_or_else(|| def.name.clone());
                        let schema =
                            returning_schema(&mut session, &def, &alias, ins.returning.as_deref())
                                .await?;
                        return Ok((types, schema));
                    }
                }
            }
            Statement::Update(upd) => {
                if let sqlparser::ast::TableFactor::Table { name, alias, .. } = &upd.table.relation
                {
                    if let Some(def) = session.shared.store.table(&table_name(name)?) {
                        let alias = alias
                            .as_ref()
                            .map(|a| ident_name(&a.name))
                            .unwrap_or_else(|| def.name.clone());
                        for a in &upd.assignments {
                            if let (sqlparser::ast::AssignmentTarget::ColumnName(c), Some(p)) =
                                (&a.target, placeholder_index(&a.value))
                            {
                                if let Some(pos) =
                                    c.0.last()
                                        .and_then(|p| p.as_ident())
                                        .and_then(|i| def.column_index(&ident_name(i)))
                                {
                                    if p >= 1 && p <= n {
                                        types[p - 1] = Some(def.columns[pos].ty.arrow_type());
                                    }
                                }
                            }
                        }
                        // `SET a = a + $1`: the assignment as a comparison lets DataFusion
                        // type `$1` like `a` (pgbench's tpcb-like sends exactly this).
                        let mut conditions: Vec<String> = upd
                            .assignments
                            .iter()
                            .filter_map(|a| match &a.target {
                                sqlparser::ast::AssignmentTarget::ColumnName(c)
                                    if placeholder_index(&a.value).is_none() =>
                                {
                                    Some(format!("{c} = ({})", a.value))
                                }
                                _ => None,
                            })
                            .collect();
                        conditions.extend(upd.selection.as_ref().map(|w| format!("({w})")));
                        let condition = conditions.join(" AND ");
                        infer_where_params(
                            &session,
                            &def.name,
                            &alias,
                            (!condition.is_empty()).then_some(condition.as_str()),
                            &mut types,
                        )
                        .await;
                        let schema =
                            returning_schema(&mut session, &def, &alias, upd.returning.as_deref())
                                .await?;
                        return Ok((types, schema));
                    }
                }
            }
            Statement::Delete(del) => {
                let tables = match &del.from {
                    sqlparser::ast::FromTable::WithFromKeyword(t)
                    | sqlparser::ast::FromTable::WithoutKeyword(t) => t,
                };
                if let Some(sqlparser::ast::TableFactor::Table { name, alias, .. }) =
                    tables.first().map(|t| &t.relation)
                {
                    if let Some(def) = session.shared.store.table(&table_name(name)?) {
                        let alias = alias
                            .as_ref()
                            .map(|a| ident_name(&a.name))
                            .unwrap_or_else(|| def.name.clone());
                        let condition = del.selection.as_ref().map(|w| w.to_string());
                        infer_where_params(
                            &session,
                            &def.name,
                            &alias,
                            condition.as_deref(),
                            &mut types,
                        )
                        .await;
                        let schema =
                            returning_schema(&mut session, &def, &alias, del.returning.as_deref())
                                .await?;
                        return Ok((types, schema));
                    }
                }
            }
            _ => {}
        }
        Ok((types, None))
    }
}

/// Types of the placeholders in a DML statement's WHERE clause, as DataFusion infers them
/// when the clause filters the target table (best effort: unknown stays unknown).
async fn infer_where_params(
    session: &Session,
    table: &str,
    alias: &str,
    selection: Option<&str>,
    types: &mut [Option<DataType>],
) {
    let Some(w) = selection else { return };
    let sql = format!(
        "SELECT 1 FROM {DML_SCHEMA}.{} AS {} WHERE {w}",
        quote(table),
        quote(alias)
    );
    let Ok(mut stmts) = parse_sql(&sql) else {
        return;
    };
    if stmts.len() != 1 {
        return;
    }
    if let Ok(plan) = session.plan(stmts.remove(0)).await {
        if let Ok(found) = plan.get_parameter_types() {
            merge_plan_types(types, found);
        }
    }
}

async fn returning_schema(
    session: &mut Session,
    def: &duet_common::TableDef,
    alias: &str,
    items: Option<&[sqlparser::ast::SelectItem]>,
) -> Result<Option<SchemaRef>, PgError> {
    let Some(items) = items else { return Ok(None) };
    let schema = duet_common::batch::table_schema(def, None);
    let plan = crate::dml::plan_over_rows(session, schema, vec![], alias, items).await?;
    Ok(Some(Arc::new(plan.schema().as_arrow().clone())))
}

#[async_trait]
impl QueryParser for DuetQueryParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let hit = self.parsed.lock().get(sql).cloned();
        if let Some(p) = hit {
            let session = self.session.lock().await;
            let current = p
                .fast
                .as_ref()
                .is_some_and(|f| f.is_current(&session.shared.store));
            if current && session.fast_path_enabled() {
                return Ok(Some(p));
            }
        }
        let mut stmts = parse_sql(sql).map_err(PgError::into_pgwire)?;
        match stmts.len() {
            0 => Ok(None),
            1 => {
                let statement = stmts.remove(0);
                let (fast, fast_describe) = {
                    let session = self.session.lock().await;
                    let fast =
                        crate::fastpath::FastPlan::recognize(&statement, &session.shared.store)
                            .map(Arc::new);
                    // A fast-path statement is described from its plan, without DataFusion
                    // (pgbench -M extended parses every statement it sends).
                    let described = fast
                        .as_ref()
                        .filter(|_| session.fast_path_enabled())
                        .and_then(|f| f.describe_types(max_placeholder(&statement)));
                    (fast, described)
                };
                // Describe information is best effort: a statement that cannot be planned now
                // (e.g. its table is created later in the same transaction) still prepares.
                let (param_types, schema) = match fast_describe.clone() {
                    Some(d) => d,
                    None => match self.describe(&statement).await {
                        Ok(d) => d,
                        Err(e) if matches!(statement, Statement::Query(_)) => {
                            return Err(e.into_pgwire())
                        }
                        Err(_) => (vec![None; max_placeholder(&statement)], None),
                    },
                };
                let described_fast = fast_describe.is_some();
                let prepared = Prepared {
                    statement: Arc::new(statement),
                    text: Arc::from(sql),
                    param_types,
                    schema,
                    fast,
                };
                if described_fast {
                    let mut cache = self.parsed.lock();
                    if cache.len() >= PARSE_CACHE_SIZE {
                        cache.clear();
                    }
                    cache.insert(sql.to_string(), prepared.clone());
                }
                Ok(Some(prepared))
            }
            _ => Err(PgError::new(
                SqlState::SyntaxError,
                "cannot insert multiple commands into a prepared statement",
            )
            .into_pgwire()),
        }
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt
            .param_types
            .iter()
            .map(|t| match t {
                Some(dt) => arrow_pg::datatypes::into_pg_type(dt).unwrap_or(Type::TEXT),
                None => Type::TEXT,
            })
            .collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &stmt.schema {
            Some(s) => pg_fields(s, format.unwrap_or(&Format::UnifiedText)),
            None => Ok(vec![]),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = DuetQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// Parses as pgwire's default does, but queues ParseComplete: it goes out with the Sync
    /// (or Flush) that ends the exchange, as in PostgreSQL, instead of costing a `sendto` of
    /// its own (`pgbench -M extended` sends Parse with every query).
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
        match StoredStatement::parse(client, &message, self.query_parser()).await? {
            Some(stmt) => client.portal_store().put_statement(Arc::new(stmt)),
            None => client.portal_store().put_empty_statement(name),
        }
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    /// Describes on a [`Deferred`](crate::deferred::Deferred) client: libpq sends Describe
    /// with every `PQexecPrepared`, and pgwire flushed its RowDescription at once (half of
    /// the `sendto` calls of `pgbench -M prepared`).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self._on_describe(&mut crate::deferred::Deferred::new(client), message)
            .await
    }

    /// Binds a portal as pgwire's default does, but queues BindComplete instead of flushing
    /// it: the Execute and Sync that follow go out in the same write (pgbench -M prepared
    /// made three `sendto` calls per query, one per flush).
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = message
            .statement_name
            .as_deref()
            .unwrap_or(pgwire::api::DEFAULT_NAME);
        let portal = message
            .portal_name
            .as_deref()
            .unwrap_or(pgwire::api::DEFAULT_NAME);
        match client.portal_store().get_statement(statement) {
            Some(Entry::Value(stmt)) => {
                let p = Portal::try_new(&message, stmt)?;
                client.portal_store().put_portal(Arc::new(p));
            }
            Some(Entry::Empty) if message.parameters.is_empty() => {
                client.portal_store().put_empty_portal(portal);
            }
            Some(Entry::Empty) => {
                return Err(PgError::new(
                    SqlState::ProtocolViolation,
                    format!(
                        "bind message supplies {} parameters, but prepared statement \"{statement}\" requires 0",
                        message.parameters.len()
                    ),
                )
                .into_pgwire())
            }
            None => return Err(PgWireError::StatementNotFound(statement.to_owned())),
        }
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let result = self
            ._on_execute(&mut crate::deferred::Deferred::new(client), message)
            .await;
        // The session, not pgwire's bookkeeping, knows whether a transaction is open or failed.
        let status = status_of(&*self.session.lock().await);
        client.set_transaction_status(status);
        result
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let inferred: Vec<Option<&DataType>> =
            prepared.param_types.iter().map(|t| t.as_ref()).collect();
        let params = deserialize_parameters(portal, &inferred)?;
        let mut session = self.session.lock().await;
        session.set_statement(&prepared.text);
        let guard = session.statement_guard();
        let result = run_guarded(
            &mut session,
            &guard,
            &prepared.statement,
            prepared.fast.as_ref(),
            &params,
        )
        .await;
        send_notices(client, &mut session).await?;
        let outcome = result.map_err(PgError::into_pgwire)?;
        into_response(outcome, &portal.result_column_format, guard)
    }
}
