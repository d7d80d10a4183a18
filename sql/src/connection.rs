//! One connection's SQL side, as the wire crate calls it ([`duet_wire::SqlSession`]):
//! simple queries (with the fast path's literal-shape cache), Parse (with its parse cache
//! and Describe, [`crate::describe`]), Execute, COPY data; and the server's side
//! ([`duet_wire::SqlBackend`] for [`Shared`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion_pg_catalog::sql::rules::SqlStatementRewriteRule;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use duet_wire::{Described, SqlBackend, SqlSession, StatementResult, WireError};
use futures::{stream, StreamExt};
use pgwire::messages::response::TransactionStatus;
use sqlparser::ast::Statement;

use crate::cancel::StatementGuard;
use crate::error::{from_datafusion, PgError, SqlState};
use crate::fastpath::FastPlan;
use crate::session::{Outcome, Session, Shared};

/// Largest accepted query text; longer ones get 54001 without being parsed.
pub const MAX_QUERY_BYTES: usize = 16 << 20;

/// Texts the per-connection parse caches keep (each is emptied when full).
const PARSE_CACHE_SIZE: usize = 256;

/// datafusion-pg-catalog's parser. Built once: its constructor tokenizes every client query
/// it knows how to replace, which took about half the CPU of a point query when it was
/// built per statement (profiled with pgbench -S -M simple).
static PARSER: std::sync::LazyLock<PostgresCompatibilityParser> =
    std::sync::LazyLock::new(PostgresCompatibilityParser::new);

/// datafusion-pg-catalog's statement rewrites that user statements go through: all of
/// them but `RemoveSubqueryFromProjection`, which turns a correlated scalar subquery in a
/// select list into NULL and stamps `LIMIT 1` on an uncorrelated one, and
/// `FixArrayLiteral`, which splits `'{…}'::type[]` at every comma (quotes and escapes
/// kept in the elements) and writes other elements as numbers. Both suit the catalog
/// queries of client tools they were written for; on a user's query they answer wrongly
/// where PostgreSQL answers (`crate::arrays` reads array literals instead). Nor
/// `CurrentUserVariableToSessionUserFunctionCall`: `crate::roles::rewrite_user_registers`
/// calls the session's `current_user` and the like by their own names.
static USER_REWRITES: std::sync::LazyLock<Vec<Box<dyn SqlStatementRewriteRule>>> =
    std::sync::LazyLock::new(|| {
        use datafusion_pg_catalog::sql::rules::*;
        vec![
            Box::new(AliasDuplicatedProjectionRewrite),
            Box::new(ResolveUnqualifiedIdentifier),
            Box::new(RewriteArrayAnyAllOperation),
            Box::new(PrependUnqualifiedPgTableName),
            Box::new(StripCallableQualifier),
            Box::new(StripCollate),
            Box::new(RewritePgCatalogOperator),
            Box::new(RewriteRegCastToSubquery::new()),
            Box::new(FixVersionColumnName),
        ]
    });

/// Whether `sql` may be a client tool's catalog query (psql's `\d`, a driver's type
/// lookup): those get datafusion-pg-catalog's whole treatment, including its replacements
/// of whole known queries.
fn is_catalog_query(sql: &str) -> bool {
    let l = sql.to_ascii_lowercase();
    l.contains("pg_") || l.contains("information_schema")
}

/// Parses SQL text with PostgreSQL's dialect and the pg_catalog compatibility rewrites
/// (for a user's query, all but the one that changes answers: [`USER_REWRITES`]).
pub fn parse_sql(sql: &str) -> Result<Vec<Statement>, PgError> {
    if sql.len() > MAX_QUERY_BYTES {
        return Err(PgError::new(
            SqlState::StatementTooComplex,
            "query text is too long",
        ));
    }
    let sql = match crate::roles::rewrite_user_statements(sql) {
        Some(role_statement) => role_statement,
        None => crate::ddl::rewrite_compat(sql),
    };
    let plain =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, &sql);
    // The parser knows no ALTER DATABASE and no ALTER VIEW; they are statements DuetDB does
    // not run (yet), not syntax errors.
    if plain.is_err() {
        let mut words = sql.split_whitespace().map(str::to_ascii_lowercase);
        if words.next().as_deref() == Some("alter") {
            match words.next().as_deref() {
                Some("database") => return Err(PgError::unsupported("ALTER DATABASE")),
                Some("view") => return Err(PgError::unsupported("ALTER VIEW")),
                _ => {}
            }
        }
    }
    if is_catalog_query(&sql) {
        // A client tool's query that datafusion-pg-catalog replaces as a whole is taken
        // with its treatment; any other gets the user rewrites (with the catalog's
        // set-returning functions), so its correlated subqueries are answered.
        let replaced = PARSER.parse(&sql).map_err(PgError::from)?;
        let unchanged = plain.as_ref().is_ok_and(|p| {
            p.len() == replaced.len()
                && p.iter()
                    .zip(&replaced)
                    .all(|(p, r)| PARSER.rewrite(p.clone()) == *r)
        });
        let mut statements = if unchanged {
            user_rewrites(plain?, &sql)
        } else {
            let mut replaced = replaced;
            replaced
                .iter_mut()
                .for_each(crate::system_catalog::rewrite_regclass);
            replaced
        };
        statements.iter_mut().for_each(|s| {
            crate::system_catalog::rewrite_set_functions(s);
            crate::arrays::rewrite_array_subqueries(s);
        });
        return Ok(statements);
    }
    Ok(user_rewrites(plain?, &sql))
}

fn user_rewrites(statements: Vec<Statement>, sql: &str) -> Vec<Statement> {
    let regclass = sql
        .as_bytes()
        .windows(8)
        .any(|w| w.eq_ignore_ascii_case(b"regclass"));
    statements
        .into_iter()
        .map(|mut s| {
            // Before RewriteArrayAnyAllOperation, which reads `= ANY (subquery)` as an array.
            crate::pgsemantics::quantified_subqueries_as_in(&mut s);
            crate::roles::rewrite_user_registers(&mut s);
            crate::arrays::rewrite_array_subqueries(&mut s);
            // Before RewriteRegCastToSubquery, which answers NULL for an unknown name.
            if regclass {
                crate::system_catalog::rewrite_regclass(&mut s);
            }
            USER_REWRITES.iter().fold(s, |s, rule| rule.rewrite(s))
        })
        .collect()
}

/// A prepared statement: the parsed statement plus what Describe reports.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub statement: Arc<Statement>,
    /// The text it was prepared from (the routing log shows it; hints are read from it).
    pub text: Arc<str>,
    pub param_types: Vec<Option<datafusion::arrow::datatypes::FieldRef>>,
    pub schema: Option<SchemaRef>,
    /// The statement's fast-path plan, recognised once at Parse (see fastpath.rs).
    pub fast: Option<Arc<FastPlan>>,
}

impl Described for Prepared {
    fn param_types(&self) -> &[Option<datafusion::arrow::datatypes::FieldRef>] {
        &self.param_types
    }
    fn result_schema(&self) -> Option<&SchemaRef> {
        self.schema.as_ref()
    }
}

/// See [`SqlConnection::shapes`].
#[derive(Clone)]
enum Shaped {
    Fast(Arc<[(Statement, Arc<FastPlan>)]>),
    General(u64),
}

/// What a simple query's literal shape says about it.
enum ShapeLookup {
    /// Its statements are fast-path statements: the shape's, with the literals as parameters.
    Fast(Arc<[(Statement, Arc<FastPlan>)]>, ParamValues),
    /// Not all fast-path statements; `literal_free`: the shape is the text itself, so the
    /// text as written is not either.
    General { literal_free: bool },
    /// The text has no plain shape.
    Unknown,
}

/// A client connection's session and its parse caches.
pub struct SqlConnection {
    session: Session,
    /// Fast-path statements this connection has parsed, by text: a client that parses the
    /// same text for every execution (the extended protocol's unnamed statement, as
    /// pgbench -M extended and many drivers do) skips the parser. An entry is used only while
    /// its table's definition is the one it was recognised against.
    parsed: HashMap<String, Prepared>,
    /// Simple-query texts by literal shape (`fastpath::literal_shape`): the shape's parsed
    /// statements with their fast-path plans, or, for a shape that is not all fast-path
    /// statements, the catalog generation at which that was found (tried again after DDL).
    shapes: HashMap<String, Shaped>,
    /// Login finished ([`SqlSession::started`]). Until then no statement runs: pgwire keeps
    /// reading after a FATAL login error, so a client could pipeline a query behind a
    /// failed password.
    logged_in: bool,
}

/// What a statement sent before login gets.
fn not_logged_in() -> WireError {
    Box::new(pgwire::error::ErrorInfo::new(
        "FATAL".into(),
        SqlState::InvalidAuthorizationSpecification.code().into(),
        "the connection has not logged in".into(),
    ))
}

impl SqlConnection {
    /// A new connection's session on `shared`.
    pub fn new(shared: Arc<Shared>) -> Result<Self, PgError> {
        Ok(Self {
            session: Session::new(shared)?,
            parsed: HashMap::new(),
            shapes: HashMap::new(),
            logged_in: false,
        })
    }

    /// What `query`'s literal shape is known to be (see [`ShapeLookup`]).
    fn shaped(&mut self, query: &str) -> ShapeLookup {
        let Some((shape, literals)) = crate::fastpath::literal_shape(query) else {
            return ShapeLookup::Unknown;
        };
        let general = ShapeLookup::General {
            literal_free: literals.is_empty(),
        };
        let params = || ParamValues::List(literals.into_iter().map(Into::into).collect());
        let store = self.session.store();
        let generation = store.catalog_generation();
        match self.shapes.get(&shape) {
            Some(Shaped::Fast(s)) => return ShapeLookup::Fast(s.clone(), params()),
            Some(Shaped::General(g)) if *g == generation => return general,
            _ => {}
        }
        let entry = match crate::fastpath::parse_if_fast(&shape, store) {
            Some(planned) => Shaped::Fast(planned.into()),
            None => Shaped::General(generation),
        };
        if self.shapes.len() >= PARSE_CACHE_SIZE {
            self.shapes.clear();
        }
        self.shapes.insert(shape, entry.clone());
        match entry {
            Shaped::Fast(s) => ShapeLookup::Fast(s, params()),
            Shaped::General(_) => general,
        }
    }

    /// Runs the statements of one simple query, in order, until one fails or starts a COPY.
    /// With `literals`, `statements` are the fast-path statements of the query's literal
    /// shape (see [`SqlConnection::shaped`]) and `literals` their parameters; a statement
    /// whose values do not bind exactly runs the general way from the text as written
    /// (parsed then), so the literals keep their own types there.
    async fn run_statements<'s>(
        &mut self,
        query: &str,
        statements: impl ExactSizeIterator<Item = (&'s Statement, Option<&'s Arc<FastPlan>>)>,
        literals: Option<&ParamValues>,
    ) -> Vec<StatementResult> {
        let session = &mut self.session;
        let n = statements.len();
        let mut out = Vec::with_capacity(n);
        let empty = ParamValues::List(vec![]);
        let text: Arc<str> = Arc::from(query);
        let mut written: Option<Result<Vec<Statement>, PgError>> = None;
        for (i, (stmt, plan)) in statements.enumerate() {
            session.set_source(text.clone(), i);
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
            let stop = !matches!(result, Ok(ref o) if !matches!(o, Outcome::CopyIn { .. }));
            out.push(StatementResult {
                notices: session.take_notices(),
                outcome: result
                    .map(|o| to_wire(o, guard, session.time_zone_name()))
                    .map_err(PgError::into_wire),
            });
            // After an error, or a COPY FROM STDIN whose data follows, the rest of the
            // message does not run (as in PostgreSQL).
            if stop {
                break;
            }
        }
        out
    }

    /// Parses one statement of the extended protocol and describes it.
    async fn prepare(
        &mut self,
        sql: &str,
        declared: &[Option<u32>],
    ) -> Result<Option<Prepared>, PgError> {
        let typed = declared_casts(declared);
        if let Some(p) = self.parsed.get(sql).filter(|_| typed.is_empty()) {
            let current = p
                .fast
                .as_ref()
                .is_some_and(|f| f.is_current(self.session.store()));
            if current && self.session.fast_path_enabled() {
                return Ok(Some(p.clone()));
            }
        }
        let mut stmts = parse_sql(sql)?;
        if stmts.len() > 1 {
            return Err(PgError::new(
                SqlState::SyntaxError,
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(mut statement) = stmts.pop() else {
            return Ok(None);
        };
        cast_declared_parameters(&mut statement, &typed);
        let params = crate::describe::max_placeholder(&statement);
        let fast = FastPlan::recognize(&statement, self.session.store()).map(Arc::new);
        // A fast-path statement is described from its plan, without DataFusion
        // (pgbench -M extended parses every statement it sends).
        let fast_describe = fast
            .as_ref()
            .filter(|_| self.session.fast_path_enabled())
            .and_then(|f| f.describe_types(params));
        let described_fast = fast_describe.is_some();
        // Describe information is best effort: a statement that cannot be planned now
        // (e.g. its table is created later in the same transaction) still prepares.
        let (param_types, schema) = match fast_describe {
            Some(d) => d,
            None => match crate::describe::describe(&mut self.session, &statement).await {
                Ok(d) => d,
                Err(e) if matches!(statement, Statement::Query(_)) => return Err(e),
                Err(_) => (vec![None; params], None),
            },
        };
        let prepared = Prepared {
            statement: Arc::new(statement),
            text: Arc::from(sql),
            param_types,
            schema,
            fast,
        };
        if described_fast {
            if self.parsed.len() >= PARSE_CACHE_SIZE {
                self.parsed.clear();
            }
            self.parsed.insert(sql.to_string(), prepared.clone());
        }
        Ok(Some(prepared))
    }
}

/// The SQL types of the parameters a client declared numeric, double precision or real,
/// by parameter number (from 1).
fn declared_casts(declared: &[Option<u32>]) -> Vec<(usize, sqlparser::ast::DataType)> {
    use sqlparser::ast::{DataType, ExactNumberInfo};
    declared
        .iter()
        .enumerate()
        .filter_map(|(i, oid)| {
            let ty = match (*oid)? {
                1700 => DataType::Numeric(ExactNumberInfo::None),
                701 => DataType::DoublePrecision,
                700 => DataType::Real,
                _ => return None,
            };
            Some((i + 1, ty))
        })
        .collect()
}

/// Each use of a parameter in `typed` cast to its declared type, as PostgreSQL types a
/// parameter the client declared: `$1 + 1` with a numeric `$1` is numeric, where the
/// statement alone would make `$1` an integer (and a value of 2.5 would be rounded to
/// one).
fn cast_declared_parameters(stmt: &mut Statement, typed: &[(usize, sqlparser::ast::DataType)]) {
    use sqlparser::ast::{CastKind, Expr, Value};
    if typed.is_empty() {
        return;
    }
    let _ = sqlparser::ast::visit_expressions_mut(stmt, |e| {
        if let Expr::Value(v) = e {
            if let Value::Placeholder(p) = &v.value {
                let n = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok());
                if let Some((_, ty)) = typed.iter().find(|(i, _)| Some(*i) == n) {
                    let param = std::mem::replace(e, Expr::value(Value::Null));
                    *e = Expr::Cast {
                        kind: CastKind::Cast,
                        expr: Box::new(param),
                        data_type: ty.clone(),
                        array: false,
                        format: None,
                    };
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// `f`'s result, or XX000 if it panics.
async fn catching_panics(
    f: impl std::future::Future<Output = Result<Outcome, PgError>>,
) -> Result<Outcome, PgError> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .unwrap_or_else(|p| Err(crate::error::from_panic(p)))
}

/// Executes `stmt` unless it is cancelled or times out first; a statement stopped inside a
/// transaction block fails the block, as any other error does.
async fn run_guarded(
    session: &mut Session,
    guard: &StatementGuard,
    stmt: &Statement,
    plan: Option<&Arc<FastPlan>>,
    params: &ParamValues,
) -> Result<Outcome, PgError> {
    // The fast path runs without the guard's race: it awaits only its commit, and its lock
    // waits check the same cancel token and deadlines themselves. Nor is a COMMIT raced: once
    // proposed it finishes, and stopping the wait would report a commit as failed (PostgreSQL
    // does not cancel one either). The general path's future is large, so it is boxed
    // rather than copied into every caller's state.
    //
    // A panic while planning or running (a bug) fails the statement with XX000; the
    // connection goes on.
    let result = match session.execute_fast(stmt, plan, params).await {
        Some(r) => r,
        None if matches!(stmt, Statement::Commit { .. }) => {
            catching_panics(Box::pin(session.execute_general(stmt, params))).await
        }
        None => {
            guard
                .run(catching_panics(Box::pin(
                    session.execute_general(stmt, params),
                )))
                .await
        }
    };
    if result.is_err() {
        session.mark_failed();
    }
    result
}

/// `schema` with its timestamptz columns in `zone` (the session's `TimeZone`: the same
/// instants, shown in that zone's local time); whether any column changed.
fn in_zone(schema: SchemaRef, zone: &str) -> (SchemaRef, bool) {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let mut changed = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(unit, Some(tz)) if tz.as_ref() != zone => {
                changed = true;
                f.as_ref()
                    .clone()
                    .with_data_type(DataType::Timestamp(*unit, Some(zone.into())))
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    if !changed {
        return (schema, false);
    }
    (
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        true,
    )
}

/// `batch` with the schema [`in_zone`] made (`shown`: it differs).
fn zone_batch(
    batch: datafusion::arrow::record_batch::RecordBatch,
    schema: &SchemaRef,
    shown: bool,
) -> datafusion::error::Result<datafusion::arrow::record_batch::RecordBatch> {
    if !shown {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                datafusion::arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(datafusion::arrow::record_batch::RecordBatch::try_new(
        schema.clone(),
        columns,
    )?)
}

/// A statement's outcome as the wire sends it: result streams keep running under `guard`
/// (a cancel or the statement timeout ends them with 57014) and their errors get their
/// SQLSTATEs here.
fn to_wire(outcome: Outcome, guard: StatementGuard, zone: String) -> duet_wire::Outcome {
    let wire_err = |e| from_datafusion(e).into_wire();
    match outcome {
        Outcome::Stream { stream, tag } => {
            let (schema, shown) = in_zone(stream.schema(), &zone);
            duet_wire::Outcome::Rows {
                schema: schema.clone(),
                rows: guard
                    .guard_stream(stream.boxed())
                    .map(move |r| {
                        r.and_then(|b| zone_batch(b, &schema, shown))
                            .map_err(wire_err)
                    })
                    .boxed(),
                tag,
            }
        }
        Outcome::Batches {
            schema,
            batches,
            tag,
        } => {
            let (schema, shown) = in_zone(schema, &zone);
            let batches: Vec<_> = batches
                .into_iter()
                .map(|b| zone_batch(b, &schema, shown).map_err(wire_err))
                .collect();
            duet_wire::Outcome::Rows {
                schema,
                rows: stream::iter(batches).boxed(),
                tag,
            }
        }
        Outcome::Command(tag) => duet_wire::Outcome::Command(tag),
        Outcome::Begin => duet_wire::Outcome::Begin,
        Outcome::End(tag) => duet_wire::Outcome::End(tag),
        Outcome::CopyIn { columns, binary } => duet_wire::Outcome::CopyIn { columns, binary },
        Outcome::CopyOut {
            columns,
            stream,
            encoder,
        } => {
            // One CopyData per row; a header with no rows after it goes out at the end.
            let binary = encoder.is_binary();
            let encoder = Arc::new(parking_lot::Mutex::new(encoder));
            let last = encoder.clone();
            let data = guard
                .guard_stream(stream.boxed())
                .map(move |b| -> Vec<Result<Vec<u8>, WireError>> {
                    match b
                        .map_err(from_datafusion)
                        .and_then(|b| encoder.lock().encode(&b))
                    {
                        Ok(lines) => lines.into_iter().map(Ok).collect(),
                        Err(e) => vec![Err(e.into_wire())],
                    }
                })
                .chain(stream::once(async move {
                    last.lock().finish().map(Ok).into_iter().collect()
                }))
                .flat_map(stream::iter)
                .boxed();
            duet_wire::Outcome::CopyOut {
                columns,
                binary,
                data,
            }
        }
    }
}

#[async_trait]
impl SqlSession for SqlConnection {
    type Statement = Prepared;

    fn cursor_schema(&self, name: &str) -> Option<SchemaRef> {
        self.session
            .cursor_schema(&sqlparser::ast::Ident::with_quote('"', name))
            .ok()
    }

    fn deallocate_sql(&mut self, name: Option<&str>) -> bool {
        self.session.deallocate_sql(name)
    }

    fn started(&mut self, startup: duet_wire::Startup) -> Result<(), WireError> {
        // The session was opened on the server's first database; another one gets a
        // session of its own.
        let shared = self.session.shared().clone();
        if startup.database != shared.name() {
            let other = match shared.databases() {
                Some(d) => d
                    .get(&startup.database)
                    .map_err(|e| crate::databases::failed(e, &startup.database).into_wire())?,
                None => None,
            };
            let Some(other) = other else {
                return Err(PgError::new(
                    SqlState::InvalidCatalogName,
                    format!("database \"{}\" does not exist", startup.database),
                )
                .into_wire());
            };
            self.session = Session::new(other).map_err(PgError::into_wire)?;
            self.parsed.clear();
            self.shapes.clear();
        }
        self.session.register_backend(&startup);
        self.session.login(&startup).map_err(PgError::into_wire)?;
        self.logged_in = true;
        Ok(())
    }

    async fn simple_query(&mut self, query: &str) -> Vec<StatementResult> {
        if !self.logged_in {
            return vec![StatementResult {
                notices: vec![],
                outcome: Err(not_logged_in()),
            }];
        }
        let mut try_fast = self.session.fast_path_enabled();
        if try_fast {
            match self.shaped(query) {
                ShapeLookup::Fast(shape, params) => {
                    let statements = shape.iter().map(|(s, p)| (s, Some(p)));
                    return self.run_statements(query, statements, Some(&params)).await;
                }
                ShapeLookup::General { literal_free } => try_fast = !literal_free,
                ShapeLookup::Unknown => {}
            }
        }
        let fast = try_fast
            .then(|| crate::fastpath::parse_if_fast(query, self.session.store()))
            .flatten();
        let statements: Vec<(Statement, Option<Arc<FastPlan>>)> = match fast {
            Some(planned) => planned
                .into_iter()
                .map(|(stmt, plan)| (stmt, Some(plan)))
                .collect(),
            None => match parse_sql(query) {
                Ok(s) => s.into_iter().map(|stmt| (stmt, None)).collect(),
                Err(e) => {
                    return vec![StatementResult {
                        notices: vec![],
                        outcome: Err(e.into_wire()),
                    }]
                }
            },
        };
        let statements = statements.iter().map(|(s, p)| (s, p.as_ref()));
        self.run_statements(query, statements, None).await
    }

    async fn parse(
        &mut self,
        text: &str,
        declared: &[Option<u32>],
    ) -> Result<Option<Prepared>, WireError> {
        if !self.logged_in {
            return Err(not_logged_in());
        }
        self.prepare(text, declared)
            .await
            .map_err(PgError::into_wire)
    }

    async fn execute(&mut self, prepared: &Prepared, params: ParamValues) -> StatementResult {
        if !self.logged_in {
            return StatementResult {
                notices: vec![],
                outcome: Err(not_logged_in()),
            };
        }
        let session = &mut self.session;
        session.set_statement(&prepared.text);
        session.set_source(prepared.text.clone(), 0);
        let guard = session.statement_guard();
        let result = run_guarded(
            session,
            &guard,
            &prepared.statement,
            prepared.fast.as_ref(),
            &params,
        )
        .await;
        StatementResult {
            notices: session.take_notices(),
            outcome: result
                .map(|o| to_wire(o, guard, session.time_zone_name()))
                .map_err(PgError::into_wire),
        }
    }

    fn copy_data(&mut self, data: &[u8]) {
        self.session.copy_data(data);
    }

    fn copy_done(&mut self) -> Result<u64, WireError> {
        self.session.copy_done().map_err(PgError::into_wire)
    }

    fn copy_fail(&mut self, message: &str) -> WireError {
        self.session.copy_fail(message).into_wire()
    }

    fn status(&self) -> TransactionStatus {
        if self.session.is_failed() {
            TransactionStatus::Error
        } else if self.session.in_transaction() {
            TransactionStatus::Transaction
        } else {
            TransactionStatus::Idle
        }
    }
}

impl SqlBackend for Shared {
    type Session = SqlConnection;

    fn login_role(&self, name: &str) -> Option<duet_wire::LoginRole> {
        let role = self.roles_store().role(name)?;
        // As in PostgreSQL, VALID UNTIL limits the password, not the role: once it has
        // passed, password authentication fails; trust still lets the role in.
        let verifier = role
            .password
            .clone()
            .filter(|_| !crate::roles::expired(&role));
        Some(duet_wire::LoginRole {
            can_login: role.login,
            superuser: role.superuser,
            verifier,
        })
    }

    fn open_session(self: &Arc<Self>) -> Result<SqlConnection, WireError> {
        SqlConnection::new(self.clone()).map_err(PgError::into_wire)
    }

    fn cancel(&self, pid: i32, secret: &[u8]) {
        if !self.cancels.cancel(pid, secret) {
            tracing::debug!(pid, "cancel request for no running statement");
        }
    }
}
