//! DDL: CREATE/DROP TABLE, CREATE/DROP INDEX, ALTER TABLE, TRUNCATE. Each statement is one
//! atomic catalog change in the row store, effective immediately (DDL inside BEGIN … COMMIT
//! is not transactional yet).

use duet_common::catalog::CATALOG_FORMAT;
use duet_common::{ColumnDef, Datum, IndexDef, TableDef};
use sqlparser::ast::{
    AlterTableOperation, ColumnDef as AstColumn, ColumnOption, CreateIndex, CreateTable, Expr,
    GeneratedAs, IndexColumn, ObjectType, SequenceOptions, SqlOption, Statement, TableConstraint,
};

use crate::error::{PgError, Result, SqlState};
use crate::ident::{ident_name, table_name};
use crate::session::{blocking, Outcome, Session};
use crate::{dml, types};

/// Runs a statement that is neither a query, DML, transaction control nor SET/SHOW.
pub async fn execute(session: &mut Session, stmt: Statement) -> Result<Outcome> {
    if let Some(done) = crate::databases::execute(session, &stmt) {
        return done;
    }
    match stmt {
        Statement::CreateTable(ct) => create_table(session, ct).await,
        Statement::Drop {
            object_type: ObjectType::View,
            if_exists,
            names,
            cascade,
            ..
        } => crate::views::drop_views(session, &names, if_exists, cascade),
        Statement::Drop {
            object_type: ObjectType::Role | ObjectType::User,
            if_exists,
            names,
            ..
        } => crate::roles::drop_roles(session, &names, if_exists),
        Statement::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => drop(session, object_type, if_exists, &names, cascade),
        Statement::CreateRole(cr) => crate::roles::create_role(session, &cr),
        Statement::CreateView(cv) => crate::views::create_view(session, cv).await,
        Statement::AlterRole { name, operation } => {
            crate::roles::alter_role(session, &name, &operation)
        }
        Statement::CreateIndex(ci) => create_index(session, ci),
        Statement::CreateSequence {
            temporary: false,
            if_not_exists,
            name,
            data_type,
            sequence_options,
            owned_by,
        } => {
            let name = table_name(&name)?;
            if let Some(existing) = session.store().table(&name) {
                if if_not_exists && existing.sequence.is_some() {
                    session.notice(format!("relation \"{name}\" already exists, skipping"));
                    return Ok(Outcome::Command("CREATE SEQUENCE".into()));
                }
                return Err(PgError::new(
                    SqlState::DuplicateTable,
                    format!("relation \"{name}\" already exists"),
                ));
            }
            let ty = match &data_type {
                Some(t) => types::column_type(t)?,
                None => duet_common::SqlType::Int64,
            };
            let owned_by = owned_by.as_ref().map(owner).transpose()?.flatten();
            let seq = sequence_def(ty, &sequence_options, owned_by, None)?;
            create_sequence(session, &name, seq)?;
            Ok(Outcome::Command("CREATE SEQUENCE".into()))
        }
        Statement::AlterTable(at) => {
            let name = table_name(&at.name)?;
            if at.if_exists && session.store().table(&name).is_none() {
                session.notice(format!("relation \"{name}\" does not exist, skipping"));
                return Ok(Outcome::Command("ALTER TABLE".into()));
            }
            session.table(&name)?;
            for op in at.operations {
                alter(session, &name, op).await?;
            }
            Ok(Outcome::Command("ALTER TABLE".into()))
        }
        Statement::AlterIndex {
            name,
            operation: sqlparser::ast::AlterIndexOperation::RenameIndex { index_name },
        } => {
            let (from, to) = (table_name(&name)?, table_name(&index_name)?);
            let store = session.store().clone();
            let owner = store
                .tables()
                .into_iter()
                .find(|t| t.index(&from).is_some())
                .ok_or_else(|| {
                    PgError::new(
                        SqlState::UndefinedTable,
                        format!("relation \"{from}\" does not exist"),
                    )
                })?;
            let taken = store.table(&to).is_some()
                || store
                    .tables()
                    .iter()
                    .any(|t| t.index(&to).is_some() || t.pk_name == to);
            if taken {
                return Err(PgError::new(
                    SqlState::DuplicateTable,
                    format!("relation \"{to}\" already exists"),
                ));
            }
            blocking(|| {
                store.alter_table_def(&owner.name, |d| {
                    for i in &mut d.indexes {
                        if i.name == from {
                            i.name = to.clone();
                        }
                    }
                    Ok(())
                })
            })?;
            Ok(Outcome::Command("ALTER INDEX".into()))
        }
        Statement::Truncate(t) => {
            let mut names = Vec::new();
            for target in &t.table_names {
                let name = table_name(&target.name)?;
                session.table(&name)?;
                names.push(name);
            }
            let cascade = matches!(t.cascade, Some(sqlparser::ast::CascadeOption::Cascade));
            // A table referenced by a foreign key is emptied only with the tables
            // referencing it (named too, or added by CASCADE).
            let mut i = 0;
            while i < names.len() {
                for child in session.store().tables() {
                    let refs = child.foreign_keys.iter().any(|f| f.ref_table == names[i]);
                    if !refs || names.contains(&child.name) {
                        continue;
                    }
                    if !cascade {
                        return Err(PgError::new(
                            SqlState::FeatureNotSupported,
                            "cannot truncate a table referenced in a foreign key constraint",
                        )
                        .with_detail(format!(
                            "Table \"{}\" references \"{}\".",
                            child.name, names[i]
                        ))
                        .with_hint(format!(
                            "Truncate table \"{}\" at the same time, or use TRUNCATE ... CASCADE.",
                            child.name
                        )));
                    }
                    session.notice(format!("truncate cascades to table \"{}\"", child.name));
                    names.push(child.name.clone());
                }
                i += 1;
            }
            for name in &names {
                blocking(|| session.store().truncate(name))?;
            }
            Ok(Outcome::Command("TRUNCATE TABLE".into()))
        }
        Statement::Analyze(a) => {
            let table = a.table_name.as_ref().map(table_name).transpose()?;
            crate::analyze::analyze(session, table.as_deref()).await
        }
        // Garbage-collects the row replica now: the safe point advances and RocksDB
        // compacts the table's records and indexes (everything without a table) through the
        // MVCC filter. The column replica reclaims space in its own compaction.
        Statement::Vacuum(v) => {
            let range = match &v.table_name {
                Some(n) => {
                    let name = table_name(n)?;
                    let def = session
                        .store()
                        .table(&name)
                        .ok_or(duet_rowstore::Error::TableNotFound(name))?;
                    let start = duet_common::codec::key::storage_prefix(def.storage_id);
                    let end = duet_common::codec::memcmp::prefix_end(&start);
                    Some((start, end))
                }
                None => None,
            };
            let store = session.store().clone();
            blocking(|| match &range {
                Some((start, end)) => store.vacuum(Some(start), Some(end)),
                None => store.vacuum(None, None),
            })?;
            Ok(Outcome::Command("VACUUM".into()))
        }
        other => Err(PgError::unsupported(format!(
            "statement {}",
            first_words(&other.to_string())
        ))),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

fn index_columns(def: &TableDef, cols: &[IndexColumn]) -> Result<Vec<usize>> {
    cols.iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(i) => key_column(def, column_position(def, &ident_name(i))?),
            other => Err(PgError::unsupported(format!("index on expression {other}"))),
        })
        .collect()
}

/// `pos`, if its column's type can be part of a key or an index (intervals and arrays
/// cannot yet: 0A000).
fn key_column(def: &TableDef, pos: usize) -> Result<usize> {
    let ty = &def.columns[pos].ty;
    if ty.is_key_type() {
        Ok(pos)
    } else {
        Err(PgError::unsupported(format!(
            "a key or index on column \"{}\" of type {}",
            def.columns[pos].name,
            ty.pg_name()
        )))
    }
}

fn column_position(def: &TableDef, name: &str) -> Result<usize> {
    def.column_index(name).ok_or_else(|| {
        PgError::new(
            SqlState::UndefinedColumn,
            format!("column \"{name}\" does not exist"),
        )
    })
}

/// Column definition plus the constraints it declares inline.
struct ParsedColumn {
    def: ColumnDef,
    primary_key: bool,
    unique: bool,
    /// A `serial` or identity column: its sequence's options and identity kind.
    sequence: Option<(Vec<SequenceOptions>, Option<&'static str>)>,
    /// Its CHECK constraints: name if given, condition.
    checks: Vec<(Option<String>, Expr)>,
    /// Its REFERENCES clauses.
    foreign_keys: Vec<sqlparser::ast::ForeignKeyConstraint>,
}

/// The integer type of `serial`, `bigserial` and `smallserial` (and their aliases).
fn serial_type(t: &sqlparser::ast::DataType) -> Option<duet_common::SqlType> {
    let sqlparser::ast::DataType::Custom(name, modifiers) = t else {
        return None;
    };
    if !modifiers.is_empty() {
        return None;
    }
    match name.to_string().to_ascii_lowercase().as_str() {
        "serial" | "serial4" => Some(duet_common::SqlType::Int32),
        "bigserial" | "serial8" => Some(duet_common::SqlType::Int64),
        "smallserial" | "serial2" => Some(duet_common::SqlType::Int16),
        _ => None,
    }
}

async fn parse_column(session: &mut Session, c: &AstColumn) -> Result<ParsedColumn> {
    let serial = serial_type(&c.data_type);
    let ty = match &serial {
        Some(t) => t.clone(),
        None => types::column_type(&c.data_type)?,
    };
    let name = ident_name(&c.name);
    let mut def = ColumnDef {
        name: name.clone(),
        ty,
        nullable: true,
        default_expr: None,
        missing: Datum::Null,
    };
    let (mut primary_key, mut unique) = (false, false);
    let mut sequence = serial.map(|_| (Vec::new(), None));
    let mut checks = Vec::new();
    let mut foreign_keys = Vec::new();
    if sequence.is_some() {
        def.nullable = false;
    }
    for opt in &c.options {
        match &opt.option {
            ColumnOption::Generated {
                generated_as: generated @ (GeneratedAs::Always | GeneratedAs::ByDefault),
                sequence_options,
                generation_expr: None,
                ..
            } => {
                if !matches!(
                    def.ty,
                    duet_common::SqlType::Int16
                        | duet_common::SqlType::Int32
                        | duet_common::SqlType::Int64
                ) {
                    return Err(PgError::new(
                        SqlState::InvalidTableDefinition,
                        "identity column type must be smallint, integer, or bigint",
                    ));
                }
                let kind = match generated {
                    GeneratedAs::Always => "always",
                    _ => "by default",
                };
                sequence = Some((sequence_options.clone().unwrap_or_default(), Some(kind)));
                def.nullable = false;
            }
            ColumnOption::Null => def.nullable = true,
            ColumnOption::NotNull => def.nullable = false,
            ColumnOption::Default(e) => {
                // Evaluate once now so a bad default fails at CREATE, not at the first INSERT.
                dml::eval_const(session, &e.to_string(), &def.ty, &name).await?;
                def.default_expr = Some(e.to_string());
            }
            ColumnOption::PrimaryKey(_) => {
                primary_key = true;
                def.nullable = false;
            }
            ColumnOption::Unique(_) => unique = true,
            ColumnOption::Check(c) => checks.push((
                opt.name.as_ref().or(c.name.as_ref()).map(ident_name),
                (*c.expr).clone(),
            )),
            ColumnOption::ForeignKey(fk) => {
                let mut fk = fk.clone();
                if fk.name.is_none() {
                    fk.name = opt.name.clone();
                }
                foreign_keys.push(fk);
            }
            _ => {}
        }
    }
    Ok(ParsedColumn {
        def,
        primary_key,
        unique,
        sequence,
        checks,
        foreign_keys,
    })
}

async fn create_table(session: &mut Session, ct: CreateTable) -> Result<Outcome> {
    let name = table_name(&ct.name)?;
    if ct.query.is_some() {
        return Err(PgError::unsupported("CREATE TABLE … AS"));
    }
    if session.store().table(&name).is_some() {
        if ct.if_not_exists {
            session.notice(format!("relation \"{name}\" already exists, skipping"));
            return Ok(Outcome::Command("CREATE TABLE".into()));
        }
        return Err(PgError::new(
            SqlState::DuplicateTable,
            format!("relation \"{name}\" already exists"),
        ));
    }
    let mut def = TableDef {
        format: CATALOG_FORMAT,
        id: 0,
        name: name.clone(),
        storage_id: 0,
        columns: vec![],
        primary_key: vec![],
        pk_name: format!("{name}_pkey"),
        indexes: vec![],
        columnar: true,
        sequence: None,
        checks: vec![],
        foreign_keys: vec![],
        view: None,
    };
    let mut uniques: Vec<(Option<String>, Vec<usize>)> = vec![];
    let mut sequences: Vec<(String, duet_common::catalog::SequenceDef)> = vec![];
    let mut checks: Vec<(Option<String>, Expr)> = vec![];
    let mut foreign_keys: Vec<(sqlparser::ast::ForeignKeyConstraint, Option<usize>)> = vec![];
    for c in &ct.columns {
        let mut parsed = parse_column(session, c).await?;
        checks.append(&mut parsed.checks);
        let at = Some(def.columns.len());
        foreign_keys.extend(parsed.foreign_keys.drain(..).map(|fk| (fk, at)));
        if let Some((options, identity)) = parsed.sequence.take() {
            // `serial` and identity columns draw from a sequence named as PostgreSQL
            // names it, owned by the column.
            let column = parsed.def.name.clone();
            let seq_name = format!("{name}_{column}_seq");
            let seq = sequence_def(
                parsed.def.ty.clone(),
                &options,
                Some((name.clone(), column)),
                identity,
            )?;
            parsed.def.default_expr = Some(format!("nextval('{seq_name}')"));
            sequences.push((seq_name, seq));
        }
        if def.column_index(&parsed.def.name).is_some() {
            return Err(PgError::new(
                SqlState::DuplicateColumn,
                format!("column \"{}\" specified more than once", parsed.def.name),
            ));
        }
        let pos = def.columns.len();
        if parsed.primary_key {
            if !def.primary_key.is_empty() {
                return Err(multiple_pk(&name));
            }
            def.primary_key = vec![pos];
        }
        if parsed.unique {
            uniques.push((None, vec![pos]));
        }
        def.columns.push(parsed.def);
    }
    if def.columns.len() > 1600 {
        return Err(PgError::new(
            SqlState::InvalidTableDefinition,
            "tables can have at most 1600 columns",
        ));
    }
    for tc in &ct.constraints {
        match tc {
            TableConstraint::PrimaryKey(pk) => {
                if !def.primary_key.is_empty() {
                    return Err(multiple_pk(&name));
                }
                def.primary_key = index_columns(&def, &pk.columns)?;
                if let Some(n) = &pk.name {
                    def.pk_name = ident_name(n);
                }
            }
            TableConstraint::Unique(u) => {
                uniques.push((
                    u.name.as_ref().map(ident_name),
                    index_columns(&def, &u.columns)?,
                ));
            }
            TableConstraint::Check(c) => {
                checks.push((c.name.as_ref().map(ident_name), (*c.expr).clone()))
            }
            TableConstraint::ForeignKey(fk) => foreign_keys.push((fk.clone(), None)),
            other => return Err(PgError::unsupported(format!("constraint {other}"))),
        }
    }
    for &c in def
        .primary_key
        .iter()
        .chain(uniques.iter().flat_map(|(_, c)| c))
    {
        key_column(&def, c)?;
    }
    for &c in &def.primary_key.clone() {
        def.columns[c].nullable = false;
    }
    for (n, cols) in uniques {
        let cname = n.unwrap_or_else(|| {
            let names: Vec<&str> = cols.iter().map(|&c| def.columns[c].name.as_str()).collect();
            format!("{name}_{}_key", names.join("_"))
        });
        def.indexes.push(IndexDef {
            id: 0,
            name: cname,
            columns: cols,
            unique: true,
            constraint: true,
        });
    }
    for (name_given, expr) in checks {
        let check = new_check(session, &def, name_given, &expr)?;
        def.checks.push(check);
    }
    for (fk, column) in &foreign_keys {
        let fk = crate::foreign_key::define(session.store(), &def, fk, *column)?;
        def.foreign_keys.push(fk);
    }
    let parents: Vec<String> = def
        .foreign_keys
        .iter()
        .map(|f| f.ref_table.clone())
        .filter(|t| *t != name)
        .collect();
    for (seq_name, _) in &sequences {
        if session.store().table(seq_name).is_some() {
            return Err(PgError::new(
                SqlState::DuplicateTable,
                format!("relation \"{seq_name}\" already exists"),
            ));
        }
    }
    for (seq_name, seq) in sequences.iter().cloned() {
        create_sequence(session, &seq_name, seq)?;
    }
    if let Err(e) = blocking(|| session.store().create_table(def)) {
        for (seq_name, _) in &sequences {
            let _ = blocking(|| session.store().drop_table(seq_name));
        }
        return Err(e.into());
    }
    touch(session, &parents)?;
    Ok(Outcome::Command("CREATE TABLE".into()))
}

/// `ALTER TABLE … DROP COLUMN`: the column goes with the indexes, CHECK and foreign key
/// constraints of its table that use it (and a `serial` column's sequence); foreign keys of
/// other tables that reference it need CASCADE (2BP01 without), a primary-key column is
/// refused (0A000). The rows are written again without it.
fn drop_column(
    session: &mut Session,
    table: &str,
    column: &str,
    if_exists: bool,
    cascade: bool,
) -> Result<()> {
    let store = session.store().clone();
    let def = session.table(table)?;
    let Some(pos) = def.column_index(column) else {
        if if_exists {
            session.notice(format!(
                "column \"{column}\" of relation \"{table}\" does not exist, skipping"
            ));
            return Ok(());
        }
        return Err(PgError::new(
            SqlState::UndefinedColumn,
            format!("column \"{column}\" of relation \"{table}\" does not exist"),
        ));
    };
    if def.primary_key.contains(&pos) {
        return Err(PgError::unsupported(
            "ALTER TABLE DROP COLUMN of a primary-key column",
        ));
    }
    if def.columns.len() == 1 {
        return Err(PgError::unsupported(
            "ALTER TABLE DROP COLUMN of the only column",
        ));
    }
    // Foreign keys of other tables (or of this one) that reference the column.
    let mut dependents = Vec::new();
    for t in store.tables() {
        for f in &t.foreign_keys {
            if f.ref_table == table && f.ref_columns.contains(&pos) && !f.columns.is_empty() {
                if t.name == table && f.columns.contains(&pos) {
                    continue; // goes with the column itself
                }
                dependents.push((t.name.clone(), f.name.clone()));
            }
        }
    }
    if let Some((t, f)) = dependents.first() {
        if !cascade {
            return Err(PgError::new(
                SqlState::DependentObjectsStillExist,
                format!("cannot drop column {column} of table {table} because other objects depend on it"),
            )
            .with_detail(format!("constraint {f} on table {t} depends on column {column} of table {table}"))
            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
        }
        for (t, f) in &dependents {
            session.notice(format!("drop cascades to constraint {f} on table {t}"));
            blocking(|| {
                store.alter_table_def(t, |d| {
                    d.foreign_keys.retain(|x| x.name != *f);
                    Ok(())
                })
            })?;
        }
    }
    // CHECK constraints that read the column go with it.
    let checks_left: Vec<_> = def
        .checks
        .iter()
        .filter(|c| {
            let read = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
                .try_with_sql(&c.expr)
                .and_then(|mut p| p.parse_expr())
                .map(|e| crate::check::columns_read(&def, &e))
                .unwrap_or_default();
            !read.iter().any(|n| n == column)
        })
        .cloned()
        .collect();
    if checks_left.len() != def.checks.len() {
        blocking(|| {
            store.alter_table_def(table, |d| {
                d.checks = checks_left;
                Ok(())
            })
        })?;
    }
    blocking(|| store.drop_column(table, pos))?;
    // A serial or identity column's sequence goes too.
    for owned in store.tables() {
        let by_column = owned
            .sequence
            .as_ref()
            .and_then(|s| s.owned_by.as_ref())
            .is_some_and(|(t, c)| t == table && c == column);
        if by_column {
            blocking(|| store.drop_table(&owned.name))?;
            session.shared_sequences().forget(owned.id);
        }
    }
    Ok(())
}

/// Gives `tables` a new definition version without changing them: a write plan made for
/// one before it became referenced by a foreign key must be made again (see
/// `FastPlan::is_current`).
fn touch(session: &Session, tables: &[String]) -> Result<()> {
    for t in tables {
        if session.store().table(t).is_some() {
            blocking(|| session.store().alter_table_def(t, |_| Ok(())))?;
        }
    }
    Ok(())
}

/// A CHECK constraint of `def` (named as PostgreSQL names it if unnamed), its condition
/// planned over the table's columns now so a bad one fails the DDL statement.
fn new_check(
    session: &Session,
    def: &TableDef,
    name: Option<String>,
    expr: &Expr,
) -> Result<duet_common::catalog::CheckDef> {
    let name = name.unwrap_or_else(|| {
        crate::check::default_name(
            &def.name,
            &crate::check::columns_read(def, expr),
            &def.checks,
        )
    });
    if def.checks.iter().any(|c| c.name == name) {
        return Err(PgError::new(
            SqlState::DuplicateObject,
            format!(
                "constraint \"{name}\" for relation \"{}\" already exists",
                def.name
            ),
        ));
    }
    let check = duet_common::catalog::CheckDef {
        name,
        expr: expr.to_string(),
    };
    // Planning it checks the columns it names.
    let mut probe = def.clone();
    probe.checks = vec![check.clone()];
    crate::check::plan_checks(session, &probe)?;
    Ok(check)
}

/// `ALTER TABLE … ALTER COLUMN`: SET/DROP DEFAULT, SET/DROP NOT NULL, and a type change
/// among the string types (`varchar(n)`, `varchar`, `text`), which keeps the stored values
/// (a shorter limit is checked against them: 22001). Other type changes are 0A000.
async fn alter_column(
    session: &mut Session,
    table: &str,
    column: &str,
    op: sqlparser::ast::AlterColumnOperation,
) -> Result<()> {
    use duet_common::SqlType;
    use sqlparser::ast::AlterColumnOperation as Op;
    let store = session.store().clone();
    let def = session.table(table)?;
    let c = column_position(&def, column)?;
    let col = def.columns[c].clone();
    // A condition no row may meet, checked before the catalog changes.
    let mut must_not_exist: Option<(String, PgError)> = None;
    let change: Box<dyn FnOnce(&mut duet_common::ColumnDef) + Send> = match op {
        Op::SetDefault { value } => {
            dml::eval_const(session, &value.to_string(), &col.ty, &col.name).await?;
            let text = value.to_string();
            Box::new(move |c| c.default_expr = Some(text))
        }
        Op::DropDefault => Box::new(|c| c.default_expr = None),
        Op::SetNotNull => {
            must_not_exist = Some((
                format!("{} IS NULL", crate::ident::quote(column)),
                PgError::new(
                    SqlState::NotNullViolation,
                    format!("column \"{column}\" of relation \"{table}\" contains null values"),
                ),
            ));
            Box::new(|c| c.nullable = false)
        }
        Op::DropNotNull => {
            if def.primary_key.contains(&c) {
                return Err(PgError::new(
                    SqlState::InvalidTableDefinition,
                    format!("column \"{column}\" is in a primary key"),
                ));
            }
            Box::new(|c| c.nullable = true)
        }
        Op::SetDataType {
            data_type,
            using: None,
            ..
        } => {
            let ty = types::column_type(&data_type)?;
            let string = |t: &SqlType| matches!(t, SqlType::Text | SqlType::Varchar(_));
            if !(string(&col.ty) && string(&ty)) && ty != col.ty {
                return Err(PgError::unsupported(format!(
                    "ALTER COLUMN TYPE from {} to {}",
                    col.ty.pg_name(),
                    ty.pg_name()
                )));
            }
            if let SqlType::Varchar(Some(n)) = ty {
                must_not_exist = Some((
                    format!("char_length({}) > {n}", crate::ident::quote(column)),
                    PgError::new(
                        SqlState::StringDataRightTruncation,
                        format!("value too long for type character varying({n})"),
                    ),
                ));
            }
            Box::new(move |c| c.ty = ty)
        }
        other => return Err(PgError::unsupported(format!("ALTER COLUMN … {other}"))),
    };
    if let Some((condition, error)) = must_not_exist {
        if any_row_where(session, table, &condition).await? {
            return Err(error);
        }
    }
    blocking(|| {
        store.alter_table_def(table, |d| {
            change(&mut d.columns[c]);
            Ok(())
        })
    })?;
    Ok(())
}

/// Whether a row of `table` meets `condition` (SQL text), read now.
async fn any_row_where(session: &mut Session, table: &str, condition: &str) -> Result<bool> {
    let sql = format!(
        "SELECT 1 FROM {} WHERE {condition} LIMIT 1",
        crate::ident::quote(table)
    );
    session.publish_view();
    let stmt = crate::connection::parse_sql(&sql)?
        .pop()
        .ok_or_else(|| PgError::new(SqlState::InternalError, "empty condition query"))?;
    let batches = dml::run_collect(
        session,
        stmt,
        &datafusion::common::ParamValues::List(vec![]),
    )
    .await?;
    Ok(batches.iter().any(|b| b.num_rows() > 0))
}

/// `OWNED BY table.column` (or `NONE`).
fn owner(n: &sqlparser::ast::ObjectName) -> Result<Option<(String, String)>> {
    let parts: Vec<String> =
        n.0.iter()
            .filter_map(|p| p.as_ident().map(ident_name))
            .collect();
    match parts.as_slice() {
        [none] if none == "none" => Ok(None),
        [.., table, column] => Ok(Some((table.clone(), column.clone()))),
        _ => Err(PgError::new(
            SqlState::InvalidParameterValue,
            "invalid OWNED BY option",
        )),
    }
}

/// A signed integer literal (`42`, `-1`, `+5`).
pub(crate) fn integer_literal(e: &Expr) -> Option<i64> {
    match e {
        Expr::Value(v) => match &v.value {
            sqlparser::ast::Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => integer_literal(expr).map(|v| -v),
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Plus,
            expr,
        } => integer_literal(expr),
        _ => None,
    }
}

/// An integer option of CREATE SEQUENCE (a literal, possibly negative).
fn option_value(e: &Expr) -> Result<i64> {
    integer_literal(e).ok_or_else(|| {
        PgError::new(
            SqlState::SyntaxError,
            format!("sequence option {e} is not an integer"),
        )
    })
}

/// A sequence's options with PostgreSQL's defaults and checks.
fn sequence_def(
    ty: duet_common::SqlType,
    options: &[SequenceOptions],
    owned_by: Option<(String, String)>,
    identity: Option<&'static str>,
) -> Result<duet_common::catalog::SequenceDef> {
    if !matches!(
        ty,
        duet_common::SqlType::Int16 | duet_common::SqlType::Int32 | duet_common::SqlType::Int64
    ) {
        return Err(PgError::new(
            SqlState::InvalidParameterValue,
            "sequence type must be smallint, integer, or bigint",
        ));
    }
    let (type_min, type_max) = crate::sequence::type_range(&ty);
    let (mut increment, mut min, mut max, mut start, mut cache, mut cycle) =
        (1, None, None, None, 1, false);
    for o in options {
        match o {
            SequenceOptions::IncrementBy(e, _) => increment = option_value(e)?,
            SequenceOptions::MinValue(e) => min = e.as_ref().map(option_value).transpose()?,
            SequenceOptions::MaxValue(e) => max = e.as_ref().map(option_value).transpose()?,
            SequenceOptions::StartWith(e, _) => start = Some(option_value(e)?),
            SequenceOptions::Cache(e) => cache = option_value(e)?,
            // `Cycle(no)`: whether NO was written.
            SequenceOptions::Cycle(no) => cycle = !*no,
        }
    }
    let invalid = |m: String| PgError::new(SqlState::InvalidParameterValue, m);
    if increment == 0 {
        return Err(invalid("INCREMENT must not be zero".into()));
    }
    let min = min.unwrap_or(if increment > 0 { 1 } else { type_min });
    let max = max.unwrap_or(if increment > 0 { type_max } else { -1 });
    if min < type_min || max > type_max {
        return Err(invalid(format!(
            "MINVALUE ({min}) and MAXVALUE ({max}) must be within the range of the sequence's type"
        )));
    }
    if min >= max {
        return Err(invalid(format!(
            "MINVALUE ({min}) must be less than MAXVALUE ({max})"
        )));
    }
    let start = start.unwrap_or(if increment > 0 { min } else { max });
    if start < min {
        return Err(invalid(format!(
            "START value ({start}) cannot be less than MINVALUE ({min})"
        )));
    }
    if start > max {
        return Err(invalid(format!(
            "START value ({start}) cannot be greater than MAXVALUE ({max})"
        )));
    }
    if cache < 1 {
        return Err(invalid(format!(
            "CACHE ({cache}) must be greater than zero"
        )));
    }
    Ok(duet_common::catalog::SequenceDef {
        ty,
        increment,
        min,
        max,
        start,
        cache,
        cycle,
        owned_by,
        identity: identity.map(str::to_string),
    })
}

/// Creates sequence `name` and its row.
fn create_sequence(
    session: &mut Session,
    name: &str,
    seq: duet_common::catalog::SequenceDef,
) -> Result<()> {
    let row = crate::sequence::initial_row(&seq);
    let def = TableDef {
        format: CATALOG_FORMAT,
        id: 0,
        name: name.to_string(),
        storage_id: 0,
        columns: crate::sequence::columns(),
        primary_key: vec![],
        pk_name: format!("{name}_pkey"),
        indexes: vec![],
        columnar: false,
        sequence: Some(seq),
        checks: vec![],
        foreign_keys: vec![],
        view: None,
    };
    let store = session.store().clone();
    let def = blocking(|| store.create_table(def))?;
    let mut txn = duet_rowstore::Transaction::begin(&store);
    txn.insert_encoded(&def, Some(vec![crate::sequence::row_key()]), vec![row])?;
    blocking(|| txn.commit())?;
    Ok(())
}

fn multiple_pk(table: &str) -> PgError {
    PgError::new(
        SqlState::InvalidTableDefinition,
        format!("multiple primary keys for table \"{table}\" are not allowed"),
    )
}

fn drop(
    session: &mut Session,
    object_type: ObjectType,
    if_exists: bool,
    names: &[sqlparser::ast::ObjectName],
    cascade: bool,
) -> Result<Outcome> {
    let store = session.store().clone();
    match object_type {
        ObjectType::Table => {
            let dropping: Vec<String> = names.iter().filter_map(|n| table_name(n).ok()).collect();
            // Foreign keys of other tables that reference a dropped table: 2BP01, or with
            // CASCADE they are dropped (the tables stay).
            let mut cascaded: Vec<String> = Vec::new();
            for child in store.tables() {
                if dropping.contains(&child.name) {
                    continue;
                }
                let doomed: Vec<&duet_common::catalog::ForeignKeyDef> = child
                    .foreign_keys
                    .iter()
                    .filter(|f| dropping.contains(&f.ref_table))
                    .collect();
                let Some(first) = doomed.first() else {
                    continue;
                };
                if !cascade {
                    // Every dependent constraint, as PostgreSQL lists them.
                    let mut lines = Vec::new();
                    for t in store.tables() {
                        for f in &t.foreign_keys {
                            if f.ref_table == first.ref_table && !dropping.contains(&t.name) {
                                lines.push(format!(
                                    "constraint {} on table {} depends on table {}",
                                    f.name, t.name, f.ref_table
                                ));
                            }
                        }
                    }
                    return Err(PgError::new(
                        SqlState::DependentObjectsStillExist,
                        format!(
                            "cannot drop table {} because other objects depend on it",
                            first.ref_table
                        ),
                    )
                    .with_detail(lines.join("\n"))
                    .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                }
                for f in &doomed {
                    cascaded.push(format!("constraint {} on table {}", f.name, child.name));
                }
                blocking(|| {
                    store.alter_table_def(&child.name, |d| {
                        d.foreign_keys.retain(|f| !dropping.contains(&f.ref_table));
                        Ok(())
                    })
                })?;
            }
            match cascaded.as_slice() {
                [] => {}
                [one] => session.notice(format!("drop cascades to {one}")),
                many => session.notice(format!("drop cascades to {} other objects", many.len())),
            }
            for n in names {
                let name = table_name(n)?;
                if store.table(&name).is_none() {
                    if if_exists {
                        session.notice(format!("table \"{name}\" does not exist, skipping"));
                        continue;
                    }
                    return Err(PgError::new(
                        SqlState::UndefinedTable,
                        format!("table \"{name}\" does not exist"),
                    ));
                }
                if store.table(&name).is_some_and(|t| t.sequence.is_some()) {
                    return Err(PgError::new(
                        SqlState::WrongObjectType,
                        format!("\"{name}\" is not a table"),
                    )
                    .with_detail("Use DROP SEQUENCE to remove a sequence."));
                }
                if let Some(def) = store.table(&name) {
                    if def.view.is_some() {
                        return Err(PgError::new(
                            SqlState::WrongObjectType,
                            format!("\"{name}\" is not a table"),
                        )
                        .with_hint("Use DROP VIEW to remove a view."));
                    }
                    crate::views::drop_dependents(session, &def, "table", cascade)?;
                }
                blocking(|| store.drop_table(&name))?;
                // The sequences of its serial and identity columns go with it.
                for owned in store.tables() {
                    let by_table = owned
                        .sequence
                        .as_ref()
                        .and_then(|s| s.owned_by.as_ref())
                        .is_some_and(|(t, _)| *t == name);
                    if by_table {
                        blocking(|| store.drop_table(&owned.name))?;
                        session.shared_sequences().forget(owned.id);
                    }
                }
            }
            Ok(Outcome::Command("DROP TABLE".into()))
        }
        ObjectType::Sequence => {
            for n in names {
                let name = table_name(n)?;
                let Some(def) = store.table(&name) else {
                    if if_exists {
                        session.notice(format!("sequence \"{name}\" does not exist, skipping"));
                        continue;
                    }
                    return Err(PgError::new(
                        SqlState::UndefinedTable,
                        format!("sequence \"{name}\" does not exist"),
                    ));
                };
                if def.sequence.is_none() {
                    return Err(PgError::new(
                        SqlState::WrongObjectType,
                        format!("\"{name}\" is not a sequence"),
                    )
                    .with_detail("Use DROP TABLE to remove a table."));
                }
                blocking(|| store.drop_table(&name))?;
                session.shared_sequences().forget(def.id);
            }
            Ok(Outcome::Command("DROP SEQUENCE".into()))
        }
        ObjectType::Index => {
            for n in names {
                let name = table_name(n)?;
                if let Some(t) = store
                    .tables()
                    .into_iter()
                    .find(|t| t.index(&name).is_some() || t.pk_name == name)
                {
                    if t.pk_name == name && t.index(&name).is_none() {
                        return Err(PgError::new(
                            SqlState::FeatureNotSupported,
                            format!("cannot drop index {name} because constraint {name} on table {} requires it", t.name),
                        ));
                    }
                }
                let owner = store
                    .tables()
                    .into_iter()
                    .find(|t| t.index(&name).is_some());
                if let Some(t) = owner {
                    let cols = t
                        .index(&name)
                        .map(|i| i.columns.clone())
                        .unwrap_or_default();
                    let mut cols_sorted = cols.clone();
                    cols_sorted.sort_unstable();
                    for child in store.tables() {
                        for f in &child.foreign_keys {
                            let mut r = f.ref_columns.clone();
                            r.sort_unstable();
                            let by_pk = {
                                let mut p = t.primary_key.clone();
                                p.sort_unstable();
                                p == r
                            };
                            if f.ref_table == t.name && r == cols_sorted && !by_pk {
                                return Err(PgError::new(
                                    SqlState::DependentObjectsStillExist,
                                    format!(
                                        "cannot drop index {name} because constraint {} on table {} requires it",
                                        f.name, child.name
                                    ),
                                ));
                            }
                        }
                    }
                }
                if !blocking(|| store.drop_index(&name))? {
                    if if_exists {
                        session.notice(format!("index \"{name}\" does not exist, skipping"));
                        continue;
                    }
                    return Err(PgError::new(
                        SqlState::UndefinedObject,
                        format!("index \"{name}\" does not exist"),
                    ));
                }
            }
            Ok(Outcome::Command("DROP INDEX".into()))
        }
        other => Err(PgError::unsupported(format!("DROP {other}"))),
    }
}

fn create_index(session: &mut Session, ci: CreateIndex) -> Result<Outcome> {
    let table = table_name(&ci.table_name)?;
    let def = session.table(&table)?;
    if ci.predicate.is_some() {
        return Err(PgError::unsupported("partial indexes"));
    }
    let columns = index_columns(&def, &ci.columns)?;
    let name = match &ci.name {
        Some(n) => table_name(n)?,
        None => {
            let names: Vec<&str> = columns
                .iter()
                .map(|&c| def.columns[c].name.as_str())
                .collect();
            format!(
                "{table}_{}_{}",
                names.join("_"),
                if ci.unique { "key" } else { "idx" }
            )
        }
    };
    blocking(|| {
        session.store().create_index(
            &table,
            IndexDef {
                id: 0,
                name: name.clone(),
                columns,
                unique: ci.unique,
                constraint: false,
            },
            ci.if_not_exists,
        )
    })
    .map_err(|e| match e {
        duet_rowstore::Error::UniqueViolation { .. } => PgError::new(
            SqlState::UniqueViolation,
            format!("could not create unique index \"{name}\""),
        )
        .with_detail("Key values are duplicated."),
        other => other.into(),
    })?;
    Ok(Outcome::Command("CREATE INDEX".into()))
}

/// `SET CONSTRAINTS …` arrives as `SET duet_set_constraints = '…'` (see [`rewrite_compat`]).
pub(crate) const SET_CONSTRAINTS: &str = "duet_set_constraints";

/// `ALTER TABLE t SET COLUMNAR REPLICA n` arrives as `SET (columnar_replica = n)` (see
/// [`rewrite_compat`]).
const COLUMNAR_OPTION: &str = "columnar_replica";

/// Token-level rewrites that let the stock parser read what it does not know:
/// DuetDB's `SET COLUMNAR REPLICA <n>` becomes the PostgreSQL form
/// `SET (columnar_replica = <n>)`; PostgreSQL's `FREEZE on|off` COPY option (sent by
/// pgbench) becomes `FREEZE true|false`; and PostgreSQL's `VACUUM [FULL] [FREEZE]
/// [VERBOSE] [ANALYZE] [(options)] [table]` becomes `ANALYZE [table]` when it analyzes and
/// `VACUUM [table]` otherwise (the parser knows only Redshift's VACUUM); and the options of
/// `CREATE DATABASE name [WITH] options` become the statement's `LOCATION '<options>'`
/// (read by `databases::create_options`). Other text is untouched.
pub fn rewrite_compat(sql: &str) -> String {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let lower = sql.to_ascii_lowercase();
    if !lower.contains("columnar")
        && !lower.contains("freeze")
        && !lower.contains("vacuum")
        && !lower.contains("constraints")
        && !lower.contains("database")
    {
        return sql.to_string();
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return sql.to_string();
    };
    let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.value.eq_ignore_ascii_case(w) && x.quote_style.is_none());
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    let mut replace: Vec<(usize, usize, String)> = Vec::new();
    for (k, &a) in significant.iter().enumerate() {
        let at = |j: usize| significant.get(k + j).map(|&i| (i, &tokens[i]));
        // The statement's tokens from the `from`th on, space-separated, and where they end.
        let rest = |from: usize| {
            let (mut last, mut text) = (None, String::new());
            let mut j = from;
            while let Some((i, t)) = at(j) {
                if matches!(t, Token::SemiColon) {
                    break;
                }
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&t.to_string());
                last = Some(i);
                j += 1;
            }
            (last, text)
        };
        let starts = k == 0 || matches!(tokens[significant[k - 1]], Token::SemiColon);
        if word(&tokens[a], "create") && starts && at(1).is_some_and(|(_, t)| word(t, "database")) {
            // PostgreSQL's CREATE DATABASE options (the parser knows none): carried to
            // `databases::create` as the statement's LOCATION text.
            let mut j = 2;
            if at(j).is_some_and(|(_, t)| word(t, "if")) {
                j += 3;
            }
            let Some((name_at, _)) = at(j) else { continue };
            let (last, text) = rest(j + 1);
            if !text.is_empty() {
                let mut head = String::new();
                for t in &tokens[a..=name_at] {
                    head.push_str(&t.to_string());
                }
                replace.push((
                    a,
                    last.unwrap_or(name_at),
                    format!("{head} LOCATION '{}'", text.replace('\'', "''")),
                ));
            }
        } else if word(&tokens[a], "drop")
            && starts
            && at(1).is_some_and(|(_, t)| word(t, "database"))
        {
            // `DROP DATABASE name [WITH] (FORCE)`: the parser knows no options; FORCE is
            // carried as PURGE (which PostgreSQL's DROP DATABASE has not), read by
            // `databases::execute`. Other options stay and fail to parse (42601).
            let mut j = 2;
            if at(j).is_some_and(|(_, t)| word(t, "if")) {
                j += 2;
            }
            let Some((name_at, _)) = at(j) else { continue };
            let mut o = j + 1;
            if at(o).is_some_and(|(_, t)| word(t, "with")) {
                o += 1;
            }
            if !at(o).is_some_and(|(_, t)| matches!(t, Token::LParen)) {
                continue;
            }
            let mut options = 0;
            let mut end = None;
            let mut m = o + 1;
            while let Some((i, t)) = at(m) {
                match t {
                    Token::RParen => {
                        end = Some(i);
                        break;
                    }
                    Token::Comma => {}
                    t if word(t, "force") => options += 1,
                    _ => break,
                }
                m += 1;
            }
            if let (Some(end), true) = (end, options > 0) {
                let mut head = String::new();
                for t in &tokens[a..=name_at] {
                    head.push_str(&t.to_string());
                }
                replace.push((a, end, format!("{head} PURGE")));
            }
        } else if word(&tokens[a], "set")
            && starts
            && at(1).is_some_and(|(_, t)| word(t, "constraints"))
        {
            // The parser does not know SET CONSTRAINTS; the session reads it from this
            // setting's value.
            let (last, text) = rest(2);
            replace.push((
                a,
                last.unwrap_or(a),
                format!("SET {SET_CONSTRAINTS} = '{}'", text.replace('\'', "''")),
            ));
        } else if word(&tokens[a], "set") {
            if let (Some((_, b)), Some((_, c)), Some((d, Token::Number(n, _)))) =
                (at(1), at(2), at(3))
            {
                if word(b, "columnar") && word(c, "replica") {
                    replace.push((a, d, format!("SET ({COLUMNAR_OPTION} = {n})")));
                }
            }
        } else if word(&tokens[a], "vacuum")
            && (k == 0 || matches!(tokens[significant[k - 1]], Token::SemiColon))
        {
            let mut last = a;
            let mut analyze = false;
            let mut j = 1;
            while let Some((i, t)) = at(j) {
                if ["full", "freeze", "verbose", "analyze", "analyse"]
                    .iter()
                    .any(|w| word(t, w))
                {
                    analyze |= word(t, "analyze") || word(t, "analyse");
                } else if matches!(t, Token::LParen) {
                    let mut depth = 0;
                    let mut m = j;
                    while let Some((i2, t2)) = at(m) {
                        match t2 {
                            Token::LParen => depth += 1,
                            Token::RParen => depth -= 1,
                            t2 => analyze |= word(t2, "analyze") || word(t2, "analyse"),
                        }
                        last = i2;
                        if depth == 0 {
                            break;
                        }
                        m += 1;
                    }
                    j = m + 1;
                    continue;
                } else {
                    break;
                }
                last = i;
                j += 1;
            }
            let verb = if analyze { "ANALYZE" } else { "VACUUM" };
            replace.push((a, last, verb.into()));
        } else if word(&tokens[a], "freeze") {
            if let Some((b, t)) = at(1) {
                if word(t, "on") {
                    replace.push((a, b, "FREEZE TRUE".into()));
                } else if word(t, "off") {
                    replace.push((a, b, "FREEZE FALSE".into()));
                }
            }
        }
    }
    if replace.is_empty() {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut i = 0;
    for (from, to, text) in replace {
        for t in &tokens[i..from] {
            out.push_str(&t.to_string());
        }
        out.push_str(&text);
        i = to + 1;
    }
    for t in &tokens[i..] {
        out.push_str(&t.to_string());
    }
    out
}

async fn alter(session: &mut Session, table: &str, op: AlterTableOperation) -> Result<()> {
    let store = session.store().clone();
    match op {
        AlterTableOperation::AlterColumn { column_name, op } => {
            alter_column(session, table, &ident_name(&column_name), op).await
        }
        AlterTableOperation::RenameTable { table_name: new } => {
            let (sqlparser::ast::RenameTableNameKind::To(to)
            | sqlparser::ast::RenameTableNameKind::As(to)) = new;
            let to = table_name(&to)?;
            if store.table(&to).is_some() {
                return Err(PgError::new(
                    SqlState::DuplicateTable,
                    format!("relation \"{to}\" already exists"),
                ));
            }
            // A view keeps its query's text, which names the table: it would stop working.
            if let Some(def) = store.table(table) {
                if let Some(v) = crate::views::dependents(session, def.id).first() {
                    return Err(PgError::unsupported(format!(
                        "renaming \"{table}\", which view \"{}\" reads (drop the view first)",
                        v.name
                    )));
                }
            }
            blocking(|| store.rename_table(table, &to))?;
            Ok(())
        }
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            let def = session.table(table)?;
            let (from, to) = (ident_name(&old_column_name), ident_name(&new_column_name));
            let pos = column_position(&def, &from).map_err(|_| {
                PgError::new(
                    SqlState::UndefinedColumn,
                    format!("column \"{from}\" does not exist"),
                )
            })?;
            if def.column_index(&to).is_some() {
                return Err(PgError::new(
                    SqlState::DuplicateColumn,
                    format!("column \"{to}\" of relation \"{table}\" already exists"),
                ));
            }
            // CHECK conditions name the column: they follow it.
            let mut checks = def.checks.clone();
            for c in &mut checks {
                let mut expr =
                    sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
                        .try_with_sql(&c.expr)
                        .and_then(|mut p| p.parse_expr())?;
                let _ = sqlparser::ast::visit_expressions_mut(&mut expr, |e| {
                    if let Expr::Identifier(i) = e {
                        if ident_name(i) == from {
                            *i = sqlparser::ast::Ident::with_quote('"', to.clone());
                        }
                    }
                    std::ops::ControlFlow::<()>::Continue(())
                });
                c.expr = expr.to_string();
            }
            blocking(|| store.rename_column(table, pos, &to, checks))?;
            Ok(())
        }
        AlterTableOperation::DropColumn {
            column_names,
            if_exists,
            drop_behavior,
            ..
        } => {
            let cascade = matches!(drop_behavior, Some(sqlparser::ast::DropBehavior::Cascade));
            for name in &column_names {
                drop_column(session, table, &ident_name(name), if_exists, cascade)?;
            }
            Ok(())
        }
        AlterTableOperation::DropConstraint {
            if_exists, name, ..
        } => {
            let name = ident_name(&name);
            let def = session.table(table)?;
            if def.checks.iter().any(|c| c.name == name)
                || def.foreign_keys.iter().any(|f| f.name == name)
            {
                blocking(|| {
                    store.alter_table_def(table, |d| {
                        d.checks.retain(|c| c.name != name);
                        d.foreign_keys.retain(|f| f.name != name);
                        Ok(())
                    })
                })?;
                return Ok(());
            }
            if def.pk_name == name || def.index(&name).is_some() {
                return Err(PgError::unsupported(format!(
                    "ALTER TABLE DROP CONSTRAINT {name} (a key; drop its index instead)"
                )));
            }
            if if_exists {
                session.notice(format!(
                    "constraint \"{name}\" of relation \"{table}\" does not exist, skipping"
                ));
                return Ok(());
            }
            Err(PgError::new(
                SqlState::UndefinedObject,
                format!("constraint \"{name}\" of relation \"{table}\" does not exist"),
            ))
        }
        AlterTableOperation::RenameConstraint { old_name, new_name } => {
            let (from, to) = (ident_name(&old_name), ident_name(&new_name));
            let def = session.table(table)?;
            let named = |n: &str| {
                def.checks.iter().any(|c| c.name == n)
                    || def.foreign_keys.iter().any(|f| f.name == n)
            };
            let key = |n: &str| def.pk_name == n || def.index(n).is_some();
            if key(&from) {
                return Err(PgError::unsupported(format!(
                    "ALTER TABLE RENAME CONSTRAINT {from} (a key; rename its index instead)"
                )));
            }
            if !named(&from) {
                return Err(PgError::new(
                    SqlState::UndefinedObject,
                    format!("constraint \"{from}\" for table \"{table}\" does not exist"),
                ));
            }
            if named(&to) || key(&to) {
                return Err(PgError::new(
                    SqlState::DuplicateObject,
                    format!("constraint \"{to}\" for relation \"{table}\" already exists"),
                ));
            }
            blocking(|| {
                store.alter_table_def(table, |d| {
                    for c in d.checks.iter_mut().filter(|c| c.name == from) {
                        c.name = to.clone();
                    }
                    for f in d.foreign_keys.iter_mut().filter(|f| f.name == from) {
                        f.name = to.clone();
                    }
                    Ok(())
                })
            })?;
            Ok(())
        }
        AlterTableOperation::SetOptionsParens { options } => {
            for o in options {
                let SqlOption::KeyValue { key, value } = &o else {
                    return Err(PgError::unsupported(format!("ALTER TABLE SET ({o})")));
                };
                if !key.value.eq_ignore_ascii_case(COLUMNAR_OPTION) {
                    return Err(PgError::new(
                        SqlState::InvalidParameterValue,
                        format!("unrecognized parameter \"{}\"", key.value),
                    ));
                }
                let on = match value
                    .to_string()
                    .trim_matches('\'')
                    .to_ascii_lowercase()
                    .as_str()
                {
                    "1" | "true" | "on" => true,
                    "0" | "false" | "off" => false,
                    other => {
                        return Err(PgError::new(
                            SqlState::InvalidParameterValue,
                            format!("invalid value for COLUMNAR REPLICA: {other} (use 0 or 1)"),
                        ))
                    }
                };
                session.table(table)?;
                if !blocking(|| store.set_columnar(table, on))? {
                    session.notice(format!(
                        "table \"{table}\" {} a column replica",
                        if on { "already has" } else { "has no" }
                    ));
                }
            }
            Ok(())
        }
        AlterTableOperation::AddColumn {
            column_def,
            if_not_exists,
            ..
        } => {
            let parsed = parse_column(session, &column_def).await?;
            let def = session.table(table)?;
            if def.column_index(&parsed.def.name).is_some() && if_not_exists {
                session.notice(format!(
                    "column \"{}\" of relation \"{table}\" already exists, skipping",
                    parsed.def.name
                ));
                return Ok(());
            }
            if parsed.primary_key || parsed.unique {
                return Err(PgError::unsupported(
                    "ADD COLUMN with PRIMARY KEY or UNIQUE",
                ));
            }
            if parsed.sequence.is_some() || !parsed.checks.is_empty() {
                return Err(PgError::unsupported(
                    "ADD COLUMN with serial, identity or CHECK",
                ));
            }
            let mut col = parsed.def;
            if let Some(e) = &col.default_expr {
                col.missing = dml::eval_const(session, e, &col.ty, &col.name).await?;
            }
            // A REFERENCES clause is resolved against the table with its new column.
            let mut fks = Vec::new();
            if !parsed.foreign_keys.is_empty() {
                let mut with_col = (*def).clone();
                with_col.columns.push(col.clone());
                let at = Some(with_col.columns.len() - 1);
                for fk in &parsed.foreign_keys {
                    let fk = crate::foreign_key::define(&store, &with_col, fk, at)?;
                    let mut txn = session.autocommit_txn();
                    crate::foreign_key::validate_existing(&store, &mut txn, &with_col, &fk)?;
                    with_col.foreign_keys.push(fk.clone());
                    fks.push(fk);
                }
            }
            blocking(|| store.add_column(table, col))?;
            if !fks.is_empty() {
                let parents: Vec<String> = fks
                    .iter()
                    .map(|f| f.ref_table.clone())
                    .filter(|t| t != table)
                    .collect();
                blocking(|| {
                    store.alter_table_def(table, |d| {
                        d.foreign_keys.extend(fks);
                        Ok(())
                    })
                })?;
                touch(session, &parents)?;
            }
            Ok(())
        }
        AlterTableOperation::AddConstraint { constraint, .. } => {
            let def = session.table(table)?;
            match constraint {
                TableConstraint::Check(c) => {
                    let check = new_check(session, &def, c.name.as_ref().map(ident_name), &c.expr)?;
                    // Every row there is must satisfy it already.
                    if any_row_where(session, table, &format!("NOT ({})", check.expr)).await? {
                        return Err(PgError::new(
                            SqlState::CheckViolation,
                            format!(
                                "check constraint \"{}\" of relation \"{table}\" is violated by some row",
                                check.name
                            ),
                        ));
                    }
                    blocking(|| {
                        store.alter_table_def(table, |d| {
                            d.checks.push(check);
                            Ok(())
                        })
                    })?;
                    Ok(())
                }
                TableConstraint::ForeignKey(fk) => {
                    let fk = crate::foreign_key::define(&store, &def, &fk, None)?;
                    // Every row there is must have its referenced row already.
                    let mut txn = session.autocommit_txn();
                    crate::foreign_key::validate_existing(&store, &mut txn, &def, &fk)?;
                    let parent = fk.ref_table.clone();
                    blocking(|| {
                        store.alter_table_def(table, |d| {
                            d.foreign_keys.push(fk);
                            Ok(())
                        })
                    })?;
                    std::mem::drop(txn);
                    if parent != table {
                        touch(session, &[parent])?;
                    }
                    Ok(())
                }
                TableConstraint::PrimaryKey(pk) => {
                    let cols = index_columns(&def, &pk.columns)?;
                    let name = pk
                        .name
                        .as_ref()
                        .map(ident_name)
                        .unwrap_or_else(|| format!("{table}_pkey"));
                    blocking(|| store.add_primary_key(table, cols, name.clone())).map_err(|e| {
                        match e {
                            duet_rowstore::Error::UniqueViolation { .. } => PgError::new(
                                SqlState::UniqueViolation,
                                format!("could not create unique index \"{name}\""),
                            )
                            .with_detail("Key values are duplicated."),
                            duet_rowstore::Error::InvalidDefinition(m) => {
                                PgError::new(SqlState::InvalidTableDefinition, m)
                            }
                            other => other.into(),
                        }
                    })?;
                    Ok(())
                }
                TableConstraint::Unique(u) => {
                    let cols = index_columns(&def, &u.columns)?;
                    let name = u.name.as_ref().map(ident_name).unwrap_or_else(|| {
                        let names: Vec<&str> =
                            cols.iter().map(|&c| def.columns[c].name.as_str()).collect();
                        format!("{table}_{}_key", names.join("_"))
                    });
                    blocking(|| {
                        store.create_index(
                            table,
                            IndexDef {
                                id: 0,
                                name,
                                columns: cols,
                                unique: true,
                                constraint: true,
                            },
                            false,
                        )
                    })?;
                    Ok(())
                }
                other => Err(PgError::unsupported(format!("constraint {other}"))),
            }
        }
        other => Err(PgError::unsupported(format!("ALTER TABLE {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite_compat;

    #[test]
    fn compatibility_rewrites() {
        assert_eq!(
            rewrite_compat("ALTER TABLE t SET COLUMNAR REPLICA 0"),
            "ALTER TABLE t SET (columnar_replica = 0)"
        );
        assert_eq!(
            rewrite_compat("copy pgbench_accounts from stdin with (freeze on)"),
            "copy pgbench_accounts from stdin with (FREEZE TRUE)"
        );
        assert_eq!(
            rewrite_compat("vacuum analyze pgbench_branches"),
            "ANALYZE pgbench_branches"
        );
        assert_eq!(rewrite_compat("VACUUM (VERBOSE, ANALYZE) t"), "ANALYZE t");
        assert_eq!(rewrite_compat("vacuum full verbose t"), "VACUUM t");
        assert_eq!(
            rewrite_compat("CREATE DATABASE \"t1\" WITH ENCODING 'utf8' TEMPLATE = template0;"),
            "CREATE DATABASE \"t1\" LOCATION 'WITH ENCODING ''utf8'' TEMPLATE = template0';"
        );
        assert_eq!(rewrite_compat("create database d"), "create database d");
        assert_eq!(
            rewrite_compat("DROP DATABASE IF EXISTS d WITH (FORCE);"),
            "DROP DATABASE IF EXISTS d PURGE;"
        );
        assert_eq!(
            rewrite_compat("drop database d (force)"),
            "drop database d PURGE"
        );
        assert_eq!(
            rewrite_compat("drop database d (force, nowait)"),
            "drop database d (force, nowait)"
        );
        assert_eq!(rewrite_compat("vacuum"), "VACUUM");
        assert_eq!(
            rewrite_compat("select 1; vacuum analyze"),
            "select 1; ANALYZE"
        );
        // Only as a statement's first word, and never inside literals or identifiers.
        assert_eq!(
            rewrite_compat("select 'vacuum analyze'"),
            "select 'vacuum analyze'"
        );
        assert_eq!(
            rewrite_compat("select freeze from t"),
            "select freeze from t"
        );
    }
}
