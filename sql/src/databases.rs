//! Databases: `CREATE DATABASE`, `DROP DATABASE`, and which database a connection reads.
//!
//! Each database is a node of its own (its own row store, Raft logs, column replica and
//! router statistics, in a directory under the server's data directory), so databases
//! share nothing, as in PostgreSQL. The server's first database, `duetdb`, is the data
//! directory itself; `postgres` exists in every server as in a fresh PostgreSQL cluster and
//! is created on first use. The SQL layer sees the set through [`Databases`], which the
//! binary implements (it knows how to open a node).

use std::sync::Arc;

use sqlparser::ast::{ObjectName, Statement};

use crate::error::{PgError, Result, SqlState};
use crate::session::{blocking, Outcome, Session, SharedRef};

/// The name of the database a data directory is.
pub const DEFAULT_DATABASE: &str = crate::session::DATABASE;

/// The database every server has besides its own, opened on first use.
pub const POSTGRES_DATABASE: &str = "postgres";

/// Why a database could not be created or dropped.
#[derive(Debug)]
pub enum DatabaseError {
    Exists,
    Missing,
    /// Sessions are connected to it (how many).
    InUse(usize),
    /// Not done here (0A000).
    Unsupported(String),
    Failed(String),
}

/// The databases of one server.
pub trait Databases: Send + Sync {
    /// Sessions' shared state of database `name`, opening it if needed; `None` if there is
    /// no such database.
    fn get(&self, name: &str) -> std::result::Result<Option<SharedRef>, DatabaseError>;
    /// Every database's name.
    fn names(&self) -> Vec<String>;
    /// Creates an empty database.
    fn create(&self, name: &str) -> std::result::Result<(), DatabaseError>;
    /// Drops a database and its data; refused while sessions are connected to it.
    fn drop_database(&self, name: &str) -> std::result::Result<(), DatabaseError>;
}

fn database_name(name: &ObjectName) -> Result<String> {
    crate::ident::table_name(name)
}

pub(crate) fn failed(e: DatabaseError, name: &str) -> PgError {
    match e {
        DatabaseError::Exists => PgError::new(
            SqlState::DuplicateDatabase,
            format!("database \"{name}\" already exists"),
        ),
        DatabaseError::Missing => PgError::new(
            SqlState::InvalidCatalogName,
            format!("database \"{name}\" does not exist"),
        ),
        DatabaseError::InUse(n) => PgError::new(
            SqlState::ObjectInUse,
            format!("database \"{name}\" is being accessed by other users"),
        )
        .with_detail(if n == 1 {
            "There is 1 other session using the database.".to_string()
        } else {
            format!("There are {n} other sessions using the database.")
        }),
        DatabaseError::Unsupported(m) => PgError::unsupported(m),
        DatabaseError::Failed(m) => PgError::new(SqlState::IoError, m),
    }
}

/// `CREATE DATABASE` and `DROP DATABASE`; `None` for any other statement.
pub fn execute(session: &mut Session, stmt: &Statement) -> Option<Result<Outcome>> {
    match stmt {
        Statement::CreateDatabase {
            db_name,
            if_not_exists,
            location,
            ..
        } => Some(
            create_options(session, location.as_deref().unwrap_or(""))
                .and_then(|()| create(session, db_name, *if_not_exists)),
        ),
        Statement::Drop {
            object_type: sqlparser::ast::ObjectType::Database,
            if_exists,
            names,
            cascade,
            purge,
            ..
        } => Some(if *cascade {
            Err(PgError::new(
                SqlState::SyntaxError,
                "syntax error at or near \"CASCADE\"",
            ))
        } else {
            drop(session, names, *if_exists, *purge)
        }),
        _ => None,
    }
}

/// Checks PostgreSQL's `CREATE DATABASE` options (`ddl::rewrite_compat` carries them here
/// as the statement's LOCATION text): those that describe what every DuetDB database is
/// (UTF8, the C locale's bytewise order, templates 0 and 1, the default tablespace, no
/// connection limit) are accepted, an owner must be a role, and any other value is refused
/// with the SQLSTATE PostgreSQL gives or 0A000 naming it rather than ignored.
fn create_options(session: &Session, text: &str) -> Result<()> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens: Vec<Token> = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize()
        .map_err(|e| PgError::new(SqlState::SyntaxError, e.to_string()))?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let word = |t: &Token| match t {
        Token::Word(w) => Some(w.value.to_ascii_lowercase()),
        _ => None,
    };
    let mut i = 0;
    if tokens.first().and_then(word).as_deref() == Some("with") {
        i = 1;
    }
    while i < tokens.len() {
        let Some(mut option) = word(&tokens[i]) else {
            return Err(PgError::new(
                SqlState::SyntaxError,
                format!("syntax error at or near \"{}\"", tokens[i]),
            ));
        };
        i += 1;
        if option == "connection" && tokens.get(i).and_then(word).as_deref() == Some("limit") {
            option = "connection limit".into();
            i += 1;
        }
        if matches!(tokens.get(i), Some(Token::Eq)) {
            i += 1;
        }
        // The value: a word, a string, or a signed number.
        let mut value = String::new();
        if matches!(tokens.get(i), Some(Token::Minus)) {
            value.push('-');
            i += 1;
        }
        match tokens.get(i) {
            Some(Token::Word(w)) => value.push_str(&w.value),
            Some(Token::SingleQuotedString(v)) => value.push_str(v),
            Some(Token::Number(n, _)) => value.push_str(n),
            _ => {
                return Err(PgError::new(
                    SqlState::SyntaxError,
                    format!("option \"{option}\" needs a value"),
                ))
            }
        }
        i += 1;
        let v = value.to_ascii_lowercase();
        let default = v == "default";
        let refuse = |what: &str| Err(PgError::unsupported(what.to_string()));
        match option.as_str() {
            "owner" if default => {}
            "owner" => {
                if session.shared().roles_store().role(&value).is_none() {
                    return Err(PgError::new(
                        SqlState::UndefinedObject,
                        format!("role \"{value}\" does not exist"),
                    ));
                }
            }
            "template" if default || v == "template0" || v == "template1" => {}
            "template" => {
                let exists = session
                    .shared()
                    .databases()
                    .is_some_and(|d| d.names().contains(&value));
                if !exists {
                    return Err(PgError::new(
                        SqlState::InvalidCatalogName,
                        format!("template database \"{value}\" does not exist"),
                    ));
                }
                return refuse(&format!("a database copied from \"{value}\" as a template"));
            }
            "encoding" if default || matches!(v.as_str(), "utf8" | "utf-8" | "unicode" | "6") => {}
            "encoding" => return refuse(&format!("encoding \"{value}\" (databases are UTF8)")),
            "locale" | "lc_collate" | "lc_ctype"
                if default || matches!(v.as_str(), "c" | "posix" | "c.utf8" | "c.utf-8") => {}
            "locale" | "lc_collate" | "lc_ctype" => {
                return refuse(&format!(
                    "{option} \"{value}\" (text compares bytewise, as in the C locale)"
                ))
            }
            "locale_provider" if default || v == "libc" => {}
            "tablespace" if default || v == "pg_default" => {}
            "allow_connections" if default || matches!(v.as_str(), "true" | "on" | "1") => {}
            "is_template" if default || matches!(v.as_str(), "false" | "off" | "0") => {}
            "connection limit" if default || v == "-1" => {}
            "strategy" if matches!(v.as_str(), "wal_log" | "file_copy") => {}
            "locale_provider" | "tablespace" | "allow_connections" | "is_template"
            | "connection limit" | "strategy" | "icu_locale" | "icu_rules"
            | "collation_version" | "oid" => {
                return refuse(&format!("CREATE DATABASE option {option} = {value}"))
            }
            other => {
                return Err(PgError::new(
                    SqlState::SyntaxError,
                    format!("option \"{other}\" not recognized"),
                ))
            }
        }
    }
    Ok(())
}

fn registry(session: &Session) -> Result<Arc<dyn Databases>> {
    session
        .shared()
        .databases()
        .ok_or_else(|| PgError::unsupported("CREATE DATABASE and DROP DATABASE on this server"))
}

fn outside_block(session: &Session, what: &str) -> Result<()> {
    if session.in_transaction() {
        return Err(PgError::new(
            SqlState::ActiveSqlTransaction,
            format!("{what} cannot run inside a transaction block"),
        ));
    }
    Ok(())
}

fn create(session: &mut Session, name: &ObjectName, if_not_exists: bool) -> Result<Outcome> {
    outside_block(session, "CREATE DATABASE")?;
    let me = session.shared().roles_store().role(session.user());
    if !me.is_some_and(|r| r.superuser || r.createdb) {
        return Err(PgError::new(
            SqlState::InsufficientPrivilege,
            "permission denied to create database",
        ));
    }
    let name = database_name(name)?;
    let databases = registry(session)?;
    match blocking(|| databases.create(&name)) {
        Ok(()) => Ok(Outcome::Command("CREATE DATABASE".into())),
        Err(DatabaseError::Exists) if if_not_exists => {
            session.notice(format!("database \"{name}\" already exists, skipping"));
            Ok(Outcome::Command("CREATE DATABASE".into()))
        }
        Err(e) => Err(failed(e, &name)),
    }
}

/// `DROP DATABASE`; with `force` (`WITH (FORCE)`, see `ddl::rewrite_compat`) the other
/// sessions connected to it are terminated first, as PostgreSQL 13+ does.
fn drop(
    session: &mut Session,
    names: &[ObjectName],
    if_exists: bool,
    force: bool,
) -> Result<Outcome> {
    outside_block(session, "DROP DATABASE")?;
    let databases = registry(session)?;
    for name in names {
        let name = database_name(name)?;
        if name == session.database() {
            return Err(PgError::new(
                SqlState::ObjectInUse,
                "cannot drop the currently open database",
            ));
        }
        if name == DEFAULT_DATABASE {
            return Err(PgError::unsupported(format!(
                "dropping \"{DEFAULT_DATABASE}\", the database the data directory holds"
            )));
        }
        let me = session.shared().roles_store().role(session.user());
        if !me.is_some_and(|r| r.superuser || r.createdb) {
            return Err(PgError::new(
                SqlState::InsufficientPrivilege,
                format!("must be owner of database {name}"),
            ));
        }
        if force {
            session
                .shared()
                .cancels
                .terminate_database(&name, session.pid());
        }
        match blocking(|| databases.drop_database(&name)) {
            Ok(()) => {}
            Err(DatabaseError::Missing) if if_exists => {
                session.notice(format!("database \"{name}\" does not exist, skipping"));
            }
            Err(e) => return Err(failed(e, &name)),
        }
    }
    Ok(Outcome::Command("DROP DATABASE".into()))
}
