//! pgwire's handler traits for one connection, each message turned into a call on the
//! connection's [`SqlSession`].

use std::fmt::Debug;
use std::sync::Arc;

use arrow_pg::datatypes::df::deserialize_parameters;
use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ParamValues, ScalarValue};
use futures::sink::{Sink, SinkExt};
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::{send_copy_in_response, CopyHandler};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{
    send_execution_response, send_query_response, send_ready_for_query, ExtendedQueryHandler,
    SimpleQueryHandler,
};
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Describe, Execute, Parse, ParseComplete,
};
use pgwire::messages::response::{EmptyQueryResponse, NoticeResponse};
use pgwire::messages::simplequery::Query;
use pgwire::messages::PgWireBackendMessage;
use tokio::sync::Mutex;

use crate::auth::Hba;
use crate::backend::{Described, SqlBackend, SqlSession, StatementResult, WireError};
use crate::deferred::Deferred;
use crate::encode::{into_response, pg_fields};
use crate::login::Login;
use crate::sqlstate::SqlState;

fn user_error(e: WireError) -> PgWireError {
    PgWireError::UserError(e)
}

/// One client connection: its session behind a lock (pgwire calls the handlers of one
/// connection one message at a time, but from several handler objects).
pub struct Connection<B: SqlBackend> {
    backend: Arc<B>,
    session: Arc<Mutex<B::Session>>,
    statements: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    login: Arc<Login<B>>,
}

impl<B: SqlBackend> Connection<B> {
    /// A new connection with a fresh session of `backend`, logging in by `hba`'s rules;
    /// `terminate` ends it (the session learns it at login, see [`crate::Startup`]).
    pub fn new(
        backend: Arc<B>,
        hba: Arc<Hba>,
        terminate: tokio_util::sync::CancellationToken,
    ) -> Result<Self, WireError> {
        Self::with_client_ip(backend, hba, terminate, None)
    }

    /// [`Connection::new`] for a connection relayed by another cluster member: the host
    /// rules see `client_ip` (from the relay's PROXY header), not the member's address.
    pub fn with_client_ip(
        backend: Arc<B>,
        hba: Arc<Hba>,
        terminate: tokio_util::sync::CancellationToken,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Self, WireError> {
        let session = Arc::new(Mutex::new(backend.open_session()?));
        Ok(Self {
            login: Arc::new(Login::new(
                backend.clone(),
                hba,
                session.clone(),
                terminate,
                client_ip,
            )),
            backend,
            session,
            statements: Arc::default(),
        })
    }

    fn handler(&self) -> Arc<Handler<B::Session>> {
        Arc::new(Handler {
            session: self.session.clone(),
            statements: self.statements.clone(),
        })
    }
}

impl<B: SqlBackend> PgWireServerHandlers for Connection<B> {
    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.handler()
    }
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handler()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handler()
    }
    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(Canceller(self.backend.clone()))
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.login.clone()
    }
}

/// pgwire's CancelRequest hook.
struct Canceller<B>(Arc<B>);

#[async_trait]
impl<B: SqlBackend> CancelHandler for Canceller<B> {
    async fn on_cancel_request(&self, req: CancelRequest) {
        self.0.cancel(req.pid, &req.secret_key.to_bytes());
    }
}

/// Implements the pgwire handler traits for one connection.
pub struct Handler<S> {
    session: Arc<Mutex<S>>,
    /// Names of the connection's named prepared statements (for `DEALLOCATE ALL`).
    statements: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

#[async_trait]
impl<S: SqlSession> CopyHandler for Handler<S> {
    async fn on_copy_data<C>(&self, _client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.session.lock().await.copy_data(&data.data);
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let result = session.copy_done();
        client.set_transaction_status(session.status());
        let n = result.map_err(user_error)?;
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
        let e = session.copy_fail(&fail.message);
        client.set_transaction_status(session.status());
        user_error(e)
    }
}

async fn send_notices<C>(client: &mut C, notices: Vec<String>) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for n in notices {
        let info = ErrorInfo::new("NOTICE".into(), "00000".into(), n);
        client
            .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
                info,
            )))
            .await?;
    }
    Ok(())
}

/// The statement `DEALLOCATE [PREPARE] name | ALL` (a whole simple-query message): `None`
/// for any other text, `Some(None)` for ALL, else the statement's name (folded to lower
/// case unless quoted).
fn deallocate_target(query: &str) -> Option<Option<String>> {
    let q = query.trim().trim_end_matches(';').trim();
    let (word, rest) = q.split_once(char::is_whitespace)?;
    if !word.eq_ignore_ascii_case("deallocate") {
        return None;
    }
    let mut rest = rest.trim();
    if let Some((w, r)) = rest.split_once(char::is_whitespace) {
        if w.eq_ignore_ascii_case("prepare") {
            rest = r.trim();
        }
    }
    if rest.eq_ignore_ascii_case("all") {
        return Some(None);
    }
    if let Some(quoted) = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return Some(Some(quoted.replace("\"\"", "\"")));
    }
    let plain = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$');
    plain.then(|| Some(rest.to_lowercase()))
}

impl<S: SqlSession> Handler<S> {
    /// `DEALLOCATE`: drops one named prepared statement (26000 if there is none) or all.
    /// (`sql`: the session had a SQL-prepared statement of that name, now gone.)
    fn deallocate<C>(&self, client: &mut C, target: Option<String>, sql: bool) -> Response
    where
        C: ClientPortalStore,
        C::PortalStore: PortalStore,
    {
        let Ok(mut names) = self.statements.lock() else {
            return Response::Error(Box::new(
                SqlState::InternalError.error("prepared statement registry poisoned"),
            ));
        };
        match target {
            None => {
                for n in std::mem::take(&mut *names) {
                    client.portal_store().rm_statement(&n);
                }
                Response::Execution(Tag::new("DEALLOCATE ALL"))
            }
            Some(name) => {
                if !names.remove(&name)
                    && client.portal_store().get_statement(&name).is_none()
                    && !sql
                {
                    return Response::Error(Box::new(
                        SqlState::InvalidSqlStatementName
                            .error(format!("prepared statement \"{name}\" does not exist")),
                    ));
                }
                client.portal_store().rm_statement(&name);
                Response::Execution(Tag::new("DEALLOCATE"))
            }
        }
    }
}

#[async_trait]
impl<S: SqlSession> SimpleQueryHandler for Handler<S> {
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
        let responses = match deallocate_target(&query.query) {
            Some(target) => {
                // SQL's PREPARE names live in the session.
                let sql = self.session.lock().await.deallocate_sql(target.as_deref());
                vec![self.deallocate(client, target, sql)]
            }
            None => SimpleQueryHandler::do_query(self, client, &query.query).await?,
        };
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
                    let status = self.session.lock().await.status();
                    client.set_transaction_status(status);
                    return Ok(());
                }
                Response::CopyOut(copy) => {
                    pgwire::api::copy::send_copy_out_response(client, copy).await?
                }
                Response::CopyBoth(_) => {
                    let e = SqlState::FeatureNotSupported.error("COPY BOTH is not supported");
                    client
                        .feed(PgWireBackendMessage::ErrorResponse(e.into()))
                        .await?
                }
            }
        }
        let status = self.session.lock().await.status();
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        send_ready_for_query(client, status).await
    }

    /// Runs the message's statements; each one's notices are queued before its response.
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let results = self.session.lock().await.simple_query(query).await;
        let mut out = Vec::with_capacity(results.len());
        for StatementResult { notices, outcome } in results {
            send_notices(client, notices).await?;
            match outcome.and_then(|o| {
                into_response(o, &Format::UnifiedText)
                    .map_err(|e| Box::new(SqlState::InternalError.error(e.to_string())))
            }) {
                Ok(r) => out.push(r),
                Err(e) => out.push(Response::Error(e)),
            }
        }
        Ok(out)
    }
}

/// Parses statements for the extended protocol and reports their types for Describe.
pub struct Parser<S> {
    session: Arc<Mutex<S>>,
}

#[async_trait]
impl<S: SqlSession> QueryParser for Parser<S> {
    type Statement = S::Statement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<S::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let declared: Vec<Option<u32>> = types
            .iter()
            .map(|t| t.as_ref().filter(|t| **t != Type::UNKNOWN).map(Type::oid))
            .collect();
        self.session
            .lock()
            .await
            .parse(sql, &declared)
            .await
            .map_err(user_error)
    }

    fn get_parameter_types(&self, stmt: &S::Statement) -> PgWireResult<Vec<Type>> {
        Ok(stmt
            .param_types()
            .iter()
            .map(|f| param_pg_type(f.as_deref()))
            .collect())
    }

    fn get_result_schema(
        &self,
        stmt: &S::Statement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match stmt.result_schema() {
            Some(s) => pg_fields(s, format.unwrap_or(&Format::UnifiedText)),
            None => Ok(vec![]),
        }
    }
}

#[async_trait]
impl<S: SqlSession> ExtendedQueryHandler for Handler<S> {
    type Statement = S::Statement;
    type QueryParser = Parser<S>;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(Parser {
            session: self.session.clone(),
        })
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
        if !name.is_empty() {
            if let Ok(mut names) = self.statements.lock() {
                names.insert(name.to_string());
            }
        }
        match StoredStatement::parse(client, &message, self.query_parser()).await? {
            Some(stmt) => client.portal_store().put_statement(Arc::new(stmt)),
            None => client.portal_store().put_empty_statement(name),
        }
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    /// Describes on a [`Deferred`] client: libpq sends Describe with every
    /// `PQexecPrepared`, and pgwire flushed its RowDescription at once (half of the `sendto`
    /// calls of `pgbench -M prepared`).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut client = Deferred::new(client);
        // A statement that returns no rows but has parameters (an INSERT with $1) gets
        // ParameterDescription and NoData, as from PostgreSQL; pgwire sent an empty
        // RowDescription, and pgjdbc then failed every execution of a named INSERT with "A
        // result was returned when none was expected".
        if message.target_type == pgwire::messages::extendedquery::TARGET_TYPE_BYTE_STATEMENT {
            let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
            if let Some(Entry::Value(stmt)) = client.portal_store().get_statement(name) {
                let d = self.do_describe_statement(&mut client, &stmt).await?;
                if d.fields.is_empty() {
                    let oids = d.parameters.iter().map(|t| t.oid()).collect();
                    client
                        .send(PgWireBackendMessage::ParameterDescription(
                            pgwire::messages::data::ParameterDescription::new(oids),
                        ))
                        .await?;
                    return pgwire::api::query::send_describe_response(
                        &mut client,
                        &pgwire::api::results::DescribePortalResponse::new(vec![]),
                    )
                    .await;
                }
            }
        }
        // A cursor opened with DECLARE is a portal too (psycopg describes its named cursors).
        if message.target_type == pgwire::messages::extendedquery::TARGET_TYPE_BYTE_PORTAL {
            let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
            if client.portal_store().get_portal(name).is_none() {
                let schema = self.session.lock().await.cursor_schema(name);
                if let Some(schema) = schema {
                    let fields = pg_fields(&schema, &Format::UnifiedText)?;
                    return pgwire::api::query::send_describe_response(
                        &mut client,
                        &pgwire::api::results::DescribePortalResponse::new(fields),
                    )
                    .await;
                }
            }
        }
        self._on_describe(&mut client, message).await
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
                return Err(user_error(Box::new(SqlState::ProtocolViolation.error(format!(
                    "bind message supplies {} parameters, but prepared statement \"{statement}\" requires 0",
                    message.parameters.len()
                )))))
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
        let result = self._on_execute(&mut Deferred::new(client), message).await;
        // The session, not pgwire's bookkeeping, knows whether a transaction is open or failed.
        let status = self.session.lock().await.status();
        client.set_transaction_status(status);
        result
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<S::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &portal.statement.statement;
        let inferred: Vec<Option<&DataType>> = stmt
            .param_types()
            .iter()
            .map(|t| t.as_ref().map(|f| f.data_type()))
            .collect();
        let typed = server_typed_parameters(portal, stmt.param_types());
        let typed = typed.as_ref().unwrap_or(portal);
        let positional = positional_numeric_parameters(typed, &inferred);
        let mut params = deserialize_parameters(positional.as_ref().unwrap_or(typed), &inferred)?;
        with_written_scales(&mut params, portal);
        let StatementResult { notices, outcome } =
            self.session.lock().await.execute(stmt, params).await;
        send_notices(client, notices).await?;
        into_response(outcome.map_err(user_error)?, &portal.result_column_format)
    }
}

/// `portal` with its numeric parameters in text written with an exponent (`1E+2`, `0E-8`,
/// which PostgreSQL's numeric input reads and arrow-pg's does not) in positional notation;
/// `None` when there are none.
fn positional_numeric_parameters<S: Clone>(
    portal: &Portal<S>,
    inferred: &[Option<&DataType>],
) -> Option<Portal<S>> {
    let declared = &portal.statement.parameter_types;
    let numeric = |i: usize| match declared.get(i) {
        Some(Some(t)) if *t != Type::UNKNOWN => *t == Type::NUMERIC,
        _ => matches!(inferred.get(i), Some(Some(DataType::Decimal128(..)))),
    };
    let rewrite = |i: usize, raw: &Option<bytes::Bytes>| -> Option<bytes::Bytes> {
        if portal.parameter_format.is_binary(i) || !numeric(i) {
            return None;
        }
        let text = std::str::from_utf8(raw.as_ref()?).ok()?;
        if !text.contains(['e', 'E']) {
            return None;
        }
        duet_common::numeric::positional_decimal(text).map(bytes::Bytes::from)
    };
    let changed: Vec<Option<bytes::Bytes>> = portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, p)| rewrite(i, p))
        .collect();
    if changed.iter().all(Option::is_none) {
        return None;
    }
    let mut copy = Portal::new_cursor(portal.name.clone(), portal.statement.clone());
    copy.parameter_format = portal.parameter_format.clone();
    copy.result_column_format = portal.result_column_format.clone();
    copy.parameters = portal
        .parameters
        .iter()
        .zip(changed)
        .map(|(p, new)| new.or_else(|| p.clone()))
        .collect();
    Some(copy)
}

/// Numeric parameters at the scale they were written with (`'1.50'`, or a binary value's
/// display scale; `1E+2` has none, `0E-8` eight), not the one the statement's types gave
/// them: PostgreSQL keeps a numeric's display scale, and an unconstrained numeric column
/// stores it. A value that does not parse (NaN) keeps the decoder's.
fn with_written_scales<S>(params: &mut ParamValues, portal: &Portal<S>) {
    let ParamValues::List(list) = params else {
        return;
    };
    for (i, p) in list.iter_mut().enumerate() {
        if !matches!(p.value, ScalarValue::Decimal128(Some(_), ..)) {
            continue;
        }
        let Some(Some(raw)) = portal.parameters.get(i) else {
            continue;
        };
        let text = if portal.parameter_format.is_binary(i) {
            duet_common::numeric::binary_text(raw)
        } else {
            std::str::from_utf8(raw).ok().map(|t| {
                duet_common::numeric::positional_decimal(t).unwrap_or_else(|| t.to_string())
            })
        };
        if let Some((v, scale)) = text.as_deref().and_then(duet_common::numeric::parse_plain) {
            p.value = ScalarValue::Decimal128(Some(v), 38, scale);
        }
    }
}

/// The PostgreSQL type of a parameter described as `field`: its declared type (uuid, json,
/// jsonb; see `duet_common::batch::PG_DECLARED_TYPE`), else arrow-pg's for its Arrow type,
/// else text.
fn param_pg_type(field: Option<&datafusion::arrow::datatypes::Field>) -> Type {
    let Some(f) = field else { return Type::TEXT };
    match f
        .metadata()
        .get(duet_common::batch::PG_DECLARED_TYPE)
        .map(String::as_str)
    {
        Some("uuid") => Type::UUID,
        Some("json") => Type::JSON,
        Some("jsonb") => Type::JSONB,
        Some("oid") => Type::OID,
        Some("oid[]") => Type::OID_ARRAY,
        _ => arrow_pg::datatypes::into_pg_type(f.data_type()).unwrap_or(Type::TEXT),
    }
}

/// A copy of `portal` with the parameter types the server decides, or `None` if nothing
/// changes:
/// - `uuid`, `json` and `jsonb` parameters (by the client's type, or where the client left
///   it to the server, by the described one: asyncpg sends a uuid in binary once
///   ParameterDescription says uuid) become text parameters in their text form: DuetDB
///   stores these types as text, and arrow-pg decodes only their text format. A binary uuid
///   is its 16 bytes, a binary jsonb a version byte (1) and the text.
/// - a parameter whose type neither the client nor the statement says is text, as in
///   PostgreSQL (arrow-pg would guess, and read `{"a": 1}` as an array of one string).
/// - an `oid[]` parameter is read as `int4[]` (the same four bytes per element; arrow-pg
///   reads no `oid[]`).
///
/// `described[i]`: what Describe gave `$i+1` (`None` where it knows no type). Checked
/// without allocating first: this runs at every Execute, and most need no copy.
fn server_typed_parameters<S: Clone>(
    portal: &Portal<S>,
    described: &[Option<datafusion::arrow::datatypes::FieldRef>],
) -> Option<Portal<S>> {
    let client = &portal.statement.parameter_types;
    let given = |i: usize| {
        client
            .get(i)
            .and_then(Option::as_ref)
            .filter(|t| **t != Type::UNKNOWN)
    };
    let field = |i: usize| described.get(i).and_then(Option::as_deref);
    let typed_text = |t: &Type| *t == Type::UUID || *t == Type::JSON || *t == Type::JSONB;
    let n = portal.parameters.len().max(client.len());
    let rewritten = |t: &Type| typed_text(t) || *t == Type::OID_ARRAY;
    let needed = (0..n).any(|i| match given(i) {
        Some(t) => rewritten(t),
        None => field(i).is_none_or(|f| rewritten(&param_pg_type(Some(f)))),
    });
    if !needed {
        return None;
    }
    let types: Vec<Option<Type>> = (0..n)
        .map(|i| Some(given(i).cloned().unwrap_or_else(|| param_pg_type(field(i)))))
        .collect();
    let typed = |t: &Option<Type>| t.as_ref().is_some_and(typed_text);
    let mut new_types = types.clone();
    let mut params = portal.parameters.clone();
    let mut formats = Vec::with_capacity(params.len());
    for (i, p) in params.iter_mut().enumerate() {
        let binary = portal.parameter_format.is_binary(i);
        let ty = types.get(i).cloned().flatten();
        if ty.as_ref() == Some(&Type::OID_ARRAY) {
            new_types[i] = Some(Type::INT4_ARRAY);
        }
        if !typed(&ty) {
            formats.push(i16::from(binary));
            continue;
        }
        formats.push(0);
        new_types[i] = Some(Type::TEXT);
        if !binary {
            continue;
        }
        if let Some(bytes) = p.take() {
            let text: Vec<u8> = match ty {
                // Not 16 bytes: left as they are, for the uuid input to refuse.
                Some(t) if t == Type::UUID => match <&[u8; 16]>::try_from(bytes.as_ref()) {
                    Ok(b) => duet_common::types::uuid_text_of(b).into_bytes(),
                    Err(_) => bytes.to_vec(),
                },
                Some(t) if t == Type::JSONB => bytes.get(1..).unwrap_or_default().to_vec(),
                _ => bytes.to_vec(),
            };
            *p = Some(text.into());
        }
    }
    let statement = StoredStatement::new(
        portal.statement.id.clone(),
        portal.statement.statement.clone(),
        new_types,
    );
    let mut copy = Portal::new_cursor(portal.name.clone(), Arc::new(statement));
    copy.parameter_format = Format::Individual(formats);
    copy.parameters = params;
    copy.result_column_format = portal.result_column_format.clone();
    Some(copy)
}
