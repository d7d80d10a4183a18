//! Views: `CREATE [OR REPLACE] VIEW`, `DROP VIEW`, and reading them.
//!
//! A view is a table definition without rows whose `view` holds its query as the user wrote
//! it (the statement's own text, before DuetDB's rewrites), the names of the query's output
//! columns at creation, and the ids of the relations it reads. A statement that names a view
//! reads, in its place, the view's query — parsed as a user's query — under the view's name
//! and column names ([`expand`]), as PostgreSQL's rewriter does; the columns are taken by
//! the names they had at creation, so a column added to a table later does not appear in a
//! view made with `*`, and a renamed or dropped one makes the view fail rather than answer
//! differently.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use duet_common::catalog::{TableDef, ViewDef, CATALOG_FORMAT};
use duet_common::{ColumnDef, Datum, SqlType};
use sqlparser::ast::{
    CreateView, Ident, ObjectName, Query, SetExpr, Statement, TableAlias, TableFactor, VisitMut,
    VisitorMut,
};

use crate::error::{PgError, Result, SqlState};
use crate::ident::table_name;
use crate::session::{blocking, Outcome, Session};

/// How deep views may read views (PostgreSQL has no limit but its stack; a view that reads
/// itself can only come from a rename, and ends here).
const MAX_DEPTH: usize = 32;

/// The SQL type a view column of `field` has (`None`: one a table column cannot have).
fn column_type(field: &Field) -> Option<SqlType> {
    use duet_common::batch::{BPCHAR_WIDTH, PG_DECLARED_TYPE, PG_TYPMOD};
    let meta = field.metadata();
    Some(match field.data_type() {
        DataType::Int16 => SqlType::Int16,
        DataType::Int32 => SqlType::Int32,
        DataType::Int64 => SqlType::Int64,
        DataType::Float32 => SqlType::Float32,
        DataType::Float64 => SqlType::Float64,
        DataType::Decimal128(p, s) => SqlType::Numeric {
            precision: *p,
            scale: *s,
        },
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
            let typmod = meta.get(PG_TYPMOD).and_then(|t| t.parse::<i32>().ok());
            if let Some(w) = meta.get(BPCHAR_WIDTH).and_then(|w| w.parse().ok()) {
                SqlType::Char(w)
            } else if meta.get(PG_DECLARED_TYPE).map(String::as_str) == Some("varchar") {
                SqlType::Varchar(typmod.filter(|t| *t >= 4).map(|t| (t - 4) as u32))
            } else if let Some(t) = meta
                .get(PG_DECLARED_TYPE)
                .and_then(|t| SqlType::typed_text(t))
            {
                t
            } else {
                SqlType::Text
            }
        }
        DataType::Boolean => SqlType::Bool,
        DataType::Date32 => SqlType::Date,
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => SqlType::TimestampTz,
        DataType::Timestamp(TimeUnit::Microsecond, None) => SqlType::Timestamp,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => SqlType::Bytea,
        _ => return None,
    })
}

/// The original text of the query of the `CREATE VIEW` the session is running: the
/// statement as the client sent it, parsed without rewrites, so that reading the view
/// later applies them once.
fn original_query(session: &Session, cv: &CreateView) -> String {
    let from_source = session.source().and_then(|(text, index)| {
        let parsed =
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, text)
                .ok()?;
        match parsed.into_iter().nth(index)? {
            Statement::CreateView(original) if original.name == cv.name => {
                Some(original.query.to_string())
            }
            _ => None,
        }
    });
    from_source.unwrap_or_else(|| cv.query.to_string())
}

/// The public tables a plan scans (views are expanded before planning).
fn scanned_tables(plan: &LogicalPlan) -> HashSet<String> {
    let mut names = HashSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            names.insert(scan.table_name.table().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names
}

/// `CREATE [OR REPLACE] VIEW name [(columns)] AS query`.
pub async fn create_view(session: &mut Session, cv: CreateView) -> Result<Outcome> {
    if cv.materialized {
        return Err(PgError::unsupported("CREATE MATERIALIZED VIEW"));
    }
    if cv.temporary {
        return Err(PgError::unsupported("CREATE TEMPORARY VIEW"));
    }
    if cv.or_alter || cv.params.is_some() || cv.to.is_some() {
        return Err(PgError::unsupported("this form of CREATE VIEW"));
    }
    if !matches!(cv.options, sqlparser::ast::CreateTableOptions::None) {
        return Err(PgError::unsupported("CREATE VIEW … WITH (options)"));
    }
    let name = table_name(&cv.name)?;
    let text = original_query(session, &cv);
    // Plan the query as it will be read: to learn its columns and what it reads.
    let mut stmt = Statement::Query(cv.query.clone());
    let mut read_views = Vec::new();
    expand_into(session, &mut stmt, &mut read_views)?;
    let plan = session.plan(stmt).await?;
    let mut depends_on: Vec<u32> = read_views;
    for t in scanned_tables(&plan) {
        if let Some(def) = session.store().table(&t) {
            depends_on.push(def.id);
        }
    }
    depends_on.sort_unstable();
    depends_on.dedup();
    let schema = session.result_schema(plan);
    if cv.columns.len() > schema.fields().len() {
        return Err(PgError::new(
            SqlState::SyntaxError,
            "CREATE VIEW specifies more column names than columns",
        ));
    }
    let mut query_columns = Vec::new();
    let mut columns = Vec::new();
    let mut seen = HashSet::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let query_name = field.name().clone();
        let view_name = cv
            .columns
            .get(i)
            .map(|c| crate::ident::ident_name(&c.name))
            .unwrap_or_else(|| query_name.clone());
        let shown = crate::colnames::output_name(&view_name).to_string();
        if query_name.starts_with(crate::colnames::DUPLICATE_PREFIX) || !seen.insert(shown.clone())
        {
            return Err(PgError::new(
                SqlState::DuplicateColumn,
                format!("column \"{shown}\" specified more than once"),
            ));
        }
        let ty = column_type(field).ok_or_else(|| {
            PgError::unsupported(format!(
                "a view column of type {} (column \"{view_name}\")",
                field.data_type()
            ))
        })?;
        query_columns.push(query_name);
        columns.push(ColumnDef {
            name: view_name,
            ty,
            nullable: true,
            default_expr: None,
            missing: Datum::Null,
        });
    }
    let view = ViewDef {
        query: text,
        query_columns,
        depends_on,
    };
    if let Some(existing) = session.store().table(&name) {
        let Some(_) = &existing.view else {
            return Err(PgError::new(
                SqlState::WrongObjectType,
                format!("\"{name}\" is not a view"),
            ));
        };
        if !cv.or_replace {
            return Err(PgError::new(
                SqlState::DuplicateTable,
                format!("relation \"{name}\" already exists"),
            ));
        }
        replace_check(&existing, &columns)?;
        if view.depends_on.contains(&existing.id) {
            return Err(PgError::new(
                SqlState::InvalidObjectDefinition,
                format!("infinite recursion detected in rules for relation \"{name}\""),
            ));
        }
        blocking(|| {
            session.store().alter_table_def(&name, |def| {
                def.columns = columns;
                def.view = Some(view);
                Ok(())
            })
        })?;
        return Ok(Outcome::Command("CREATE VIEW".into()));
    }
    let def = TableDef {
        format: CATALOG_FORMAT,
        id: 0,
        name,
        storage_id: 0,
        columns,
        primary_key: vec![],
        pk_name: String::new(),
        indexes: vec![],
        columnar: false,
        sequence: None,
        checks: vec![],
        foreign_keys: vec![],
        view: Some(view),
    };
    blocking(|| session.store().create_table(def))?;
    Ok(Outcome::Command("CREATE VIEW".into()))
}

/// `CREATE OR REPLACE VIEW` keeps the old columns, by name and type, in order (PostgreSQL's
/// rule); it may add columns at the end.
fn replace_check(old: &TableDef, new: &[ColumnDef]) -> Result<()> {
    if new.len() < old.columns.len() {
        return Err(PgError::new(
            SqlState::InvalidTableDefinition,
            "cannot drop columns from view",
        ));
    }
    for (o, n) in old.columns.iter().zip(new) {
        if o.name != n.name {
            return Err(PgError::new(
                SqlState::InvalidTableDefinition,
                format!(
                    "cannot change name of view column \"{}\" to \"{}\"",
                    o.name, n.name
                ),
            )
            .with_hint(
                "Use ALTER VIEW ... RENAME COLUMN ... to change name of view column instead.",
            ));
        }
        if o.ty != n.ty {
            return Err(PgError::new(
                SqlState::InvalidTableDefinition,
                format!(
                    "cannot change data type of view column \"{}\" from {} to {}",
                    o.name,
                    o.ty.pg_name(),
                    n.ty.pg_name()
                ),
            ));
        }
    }
    Ok(())
}

/// Views that read the relation with id `id`.
pub fn dependents(session: &Session, id: u32) -> Vec<Arc<TableDef>> {
    session
        .store()
        .tables()
        .into_iter()
        .filter(|t| t.view.as_ref().is_some_and(|v| v.depends_on.contains(&id)))
        .collect()
}

/// Every view that reads `id`, directly or through other views, readers last.
pub fn dependents_closure(session: &Session, id: u32) -> Vec<Arc<TableDef>> {
    let mut out: Vec<Arc<TableDef>> = Vec::new();
    let mut todo = vec![id];
    while let Some(next) = todo.pop() {
        for d in dependents(session, next) {
            if !out.iter().any(|o| o.id == d.id) {
                todo.push(d.id);
                out.push(d);
            }
        }
    }
    out
}

/// Replaces every view a statement names by its query (see the module's comment).
pub fn expand(session: &Session, stmt: &mut Statement) -> Result<()> {
    let mut read = Vec::new();
    expand_into(session, stmt, &mut read)
}

fn expand_into(session: &Session, stmt: &mut Statement, read: &mut Vec<u32>) -> Result<()> {
    if !session.store().has_views() {
        return Ok(());
    }
    expand_at(session, stmt, read, 0)
}

/// Names of the CTEs a statement defines anywhere (a view of the same name is shadowed
/// where they are in scope; naming both is rare enough to be read as the CTE everywhere).
fn cte_names(stmt: &mut Statement) -> HashSet<String> {
    struct Ctes(HashSet<String>);
    impl VisitorMut for Ctes {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            if let Some(with) = &q.with {
                for cte in &with.cte_tables {
                    self.0.insert(crate::ident::ident_name(&cte.alias.name));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut c = Ctes(HashSet::new());
    let _ = stmt.visit(&mut c);
    c.0
}

fn expand_at(
    session: &Session,
    stmt: &mut Statement,
    read: &mut Vec<u32>,
    depth: usize,
) -> Result<()> {
    let shadowed = cte_names(stmt);
    struct Expander<'a> {
        session: &'a Session,
        shadowed: HashSet<String>,
        read: &'a mut Vec<u32>,
        depth: usize,
        error: Option<PgError>,
    }
    impl VisitorMut for Expander<'_> {
        type Break = ();
        fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            let TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } = factor
            else {
                return ControlFlow::Continue(());
            };
            let Some(view) = view_named(self.session, name, &self.shadowed) else {
                return ControlFlow::Continue(());
            };
            match view_query(self.session, &view, self.read, self.depth) {
                Ok(subquery) => {
                    let alias = alias.clone().unwrap_or_else(|| TableAlias {
                        at: None,
                        explicit: false,
                        name: Ident::with_quote('"', view.name.clone()),
                        columns: vec![],
                    });
                    *factor = TableFactor::Derived {
                        lateral: false,
                        subquery: Box::new(subquery),
                        alias: Some(alias),
                        sample: None,
                    };
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    self.error = Some(e);
                    ControlFlow::Break(())
                }
            }
        }
    }
    let mut e = Expander {
        session,
        shadowed,
        read,
        depth,
        error: None,
    };
    let _ = stmt.visit(&mut e);
    match e.error {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// The view a table name in a statement names, if it names one.
fn view_named(
    session: &Session,
    name: &ObjectName,
    shadowed: &HashSet<String>,
) -> Option<Arc<TableDef>> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map(crate::ident::ident_name))
        .collect::<Option<_>>()?;
    let table = match parts.as_slice() {
        [t] if !shadowed.contains(t) => t,
        [schema, t] if schema == "public" => t,
        [db, schema, t] if db == crate::session::DATABASE && schema == "public" => t,
        _ => return None,
    };
    session.store().table(table).filter(|d| d.view.is_some())
}

/// Writes the query's unqualified names of the database's tables and views as
/// `public.name`, so that a CTE of the statement reading the view cannot stand in for them
/// (the view's own CTEs keep their names).
fn qualify_tables(session: &Session, query: &mut Statement) {
    let own = cte_names(query);
    struct Qualify<'a> {
        session: &'a Session,
        own: HashSet<String>,
    }
    impl VisitorMut for Qualify<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name, args: None, ..
            } = factor
            {
                if let [part] = name.0.as_slice() {
                    if let Some(ident) = part.as_ident() {
                        let table = crate::ident::ident_name(ident);
                        if !self.own.contains(&table)
                            && self.session.store().table(&table).is_some()
                        {
                            name.0.insert(
                                0,
                                sqlparser::ast::ObjectNamePart::Identifier(Ident::new("public")),
                            );
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = query.visit(&mut Qualify { session, own });
}

/// `SELECT q1 AS v1, … FROM (view query) AS duet_view`.
fn view_query(
    session: &Session,
    view: &TableDef,
    read: &mut Vec<u32>,
    depth: usize,
) -> Result<Query> {
    if depth >= MAX_DEPTH {
        return Err(PgError::new(
            SqlState::InvalidObjectDefinition,
            format!(
                "infinite recursion detected in rules for relation \"{}\"",
                view.name
            ),
        ));
    }
    let def = view.view.as_ref().expect("a view");
    read.push(view.id);
    let mut parsed = crate::connection::parse_sql(&def.query)?;
    let [mut inner] = <[Statement; 1]>::try_from(std::mem::take(&mut parsed)).map_err(|_| {
        PgError::new(
            SqlState::InternalError,
            format!(
                "the stored query of view \"{}\" is not one query",
                view.name
            ),
        )
    })?;
    qualify_tables(session, &mut inner);
    expand_at(session, &mut inner, read, depth + 1)?;
    let Statement::Query(inner) = inner else {
        return Err(PgError::new(
            SqlState::InternalError,
            format!("the stored query of view \"{}\" is not a query", view.name),
        ));
    };
    let projection: Vec<String> = def
        .query_columns
        .iter()
        .zip(&view.columns)
        .map(|(q, c)| {
            format!(
                "{} AS {}",
                crate::ident::quote(q),
                crate::ident::quote(&c.name)
            )
        })
        .collect();
    let template = format!(
        "SELECT {} FROM (SELECT 1) AS duet_view",
        projection.join(", ")
    );
    let mut wrapper = match sqlparser::parser::Parser::parse_sql(
        &sqlparser::dialect::PostgreSqlDialect {},
        &template,
    )?
    .pop()
    {
        Some(Statement::Query(q)) => *q,
        _ => {
            return Err(PgError::new(
                SqlState::InternalError,
                "view wrapper did not parse as a query",
            ))
        }
    };
    if let SetExpr::Select(select) = wrapper.body.as_mut() {
        if let Some(TableFactor::Derived { subquery, .. }) =
            select.from.first_mut().map(|f| &mut f.relation)
        {
            *subquery = inner;
        }
    }
    Ok(wrapper)
}

/// `DROP VIEW [IF EXISTS] names [CASCADE | RESTRICT]`.
pub fn drop_views(
    session: &mut Session,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> Result<Outcome> {
    for name in names {
        let name = table_name(name)?;
        let Some(def) = session.store().table(&name) else {
            if if_exists {
                session.notice(format!("view \"{name}\" does not exist, skipping"));
                continue;
            }
            return Err(PgError::new(
                SqlState::UndefinedTable,
                format!("view \"{name}\" does not exist"),
            ));
        };
        if def.view.is_none() {
            return Err(PgError::new(
                SqlState::WrongObjectType,
                format!("\"{name}\" is not a view"),
            )
            .with_hint("Use DROP TABLE to remove a table."));
        }
        drop_dependents(session, &def, "view", cascade)?;
        blocking(|| session.store().drop_table(&name))?;
    }
    Ok(Outcome::Command("DROP VIEW".into()))
}

/// The views reading `def` block its drop (2BP01), or with CASCADE go first (a NOTICE
/// each, as PostgreSQL sends them).
pub fn drop_dependents(
    session: &mut Session,
    def: &TableDef,
    kind: &str,
    cascade: bool,
) -> Result<()> {
    let views = dependents_closure(session, def.id);
    if views.is_empty() {
        return Ok(());
    }
    if !cascade {
        let detail = views
            .iter()
            .map(|v| format!("view {} depends on {kind} {}", v.name, def.name))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(PgError::new(
            SqlState::DependentObjectsStillExist,
            format!(
                "cannot drop {kind} {} because other objects depend on it",
                def.name
            ),
        )
        .with_detail(detail)
        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
    }
    if views.len() == 1 {
        session.notice(format!("drop cascades to view {}", views[0].name));
    } else {
        let list = views
            .iter()
            .map(|v| format!("drop cascades to view {}", v.name))
            .collect::<Vec<_>>()
            .join("\n");
        session.notice(format!(
            "drop cascades to {} other objects\n{list}",
            views.len()
        ));
    }
    // Readers of readers first.
    for v in views.iter().rev() {
        blocking(|| session.store().drop_table(&v.name))?;
    }
    Ok(())
}
