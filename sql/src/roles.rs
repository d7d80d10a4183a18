//! Roles: `CREATE ROLE`/`CREATE USER`, `ALTER ROLE`/`ALTER USER`, `DROP ROLE`/`DROP USER`,
//! with PostgreSQL's rules for who may do what, and what login reads of a role.
//!
//! A role's password is kept as a SCRAM-SHA-256 verifier (`duet_wire::auth::Verifier`); a
//! statement may give the password in clear or an existing verifier (as `pg_dumpall` and
//! psql's `\password` do). Privileges on tables are not kept: every role that can log in
//! may read and write every table (GRANT and REVOKE are refused, 0A000).

use std::collections::HashMap;
use std::sync::Arc;

use duet_common::catalog::{RoleDef, BOOTSTRAP_SUPERUSER};
use duet_wire::auth::Verifier;
use sqlparser::ast::{
    AlterRoleOperation, CreateRole, Expr, Ident, ObjectName, Password, RoleOption,
};

use crate::error::{PgError, Result, SqlState};
use crate::ident::ident_name;
use crate::session::{blocking, Outcome, Session};

/// Open connections per role (for `CONNECTION LIMIT`).
#[derive(Default)]
pub struct RoleConnections(parking_lot::Mutex<HashMap<String, usize>>);

/// One connection counted against its role until dropped.
pub struct RoleSlot {
    counts: Arc<RoleConnections>,
    role: String,
}

impl RoleConnections {
    /// Counts a connection of `role`, unless it already has `limit` (-1: none).
    pub fn enter(self: &Arc<Self>, role: &str, limit: i32) -> Result<RoleSlot> {
        let mut counts = self.0.lock();
        let n = counts.entry(role.to_string()).or_default();
        if limit >= 0 && *n >= limit as usize {
            return Err(PgError::new(
                SqlState::TooManyConnections,
                format!("too many connections for role \"{role}\""),
            ));
        }
        *n += 1;
        Ok(RoleSlot {
            counts: self.clone(),
            role: role.to_string(),
        })
    }
}

impl Drop for RoleSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock();
        if let Some(n) = counts.get_mut(&self.role) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Whether a role's `VALID UNTIL` has passed.
pub fn expired(role: &RoleDef) -> bool {
    role.valid_until
        .as_deref()
        .and_then(parse_valid_until)
        .is_some_and(|t| t < chrono::Utc::now())
}

/// `VALID UNTIL` as RFC 3339 (what `pg_authid` is built from).
pub fn valid_until_rfc3339(s: &str) -> Option<String> {
    parse_valid_until(s).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// `VALID UNTIL`'s text as a time (`infinity` never passes: `None`).
fn parse_valid_until(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let utc = crate::datetime::zone_of("UTC")?;
    let micros = crate::datetime::parse_timestamptz(s, &utc).ok()?;
    chrono::DateTime::from_timestamp_micros(micros)
}

/// `CREATE USER …` and `ALTER USER …` as the `ROLE` statements they are (CREATE USER
/// implies LOGIN); the parser reads the `USER` forms in another dialect's grammar. `None`
/// when the text has neither.
pub fn rewrite_user_statements(sql: &str) -> Option<String> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    if !sql
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"user"))
    {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    // Token index → replacement text.
    let mut replace: std::collections::HashMap<usize, String> = Default::default();
    for (k, &a) in significant.iter().enumerate() {
        let starts = k == 0 || matches!(tokens[significant[k - 1]], Token::SemiColon);
        let Some(&b) = significant.get(k + 1) else {
            break;
        };
        if !starts || !word(&tokens[b], "user") {
            continue;
        }
        if word(&tokens[a], "alter") {
            replace.insert(b, "ROLE".into());
        } else if word(&tokens[a], "create") {
            replace.insert(b, "ROLE".into());
            let rest: Vec<usize> = significant[k + 2..]
                .iter()
                .copied()
                .take_while(|&i| !matches!(tokens[i], Token::SemiColon))
                .collect();
            let says_login = rest
                .iter()
                .any(|&i| word(&tokens[i], "login") || word(&tokens[i], "nologin"));
            // After the name, and after WITH if it follows.
            let Some(&name) = rest.first() else { continue };
            let at = match rest.get(1) {
                Some(&w) if word(&tokens[w], "with") => w,
                _ => name,
            };
            if !says_login {
                replace.insert(at, format!("{} LOGIN", tokens[at]));
            }
        }
    }
    if replace.is_empty() {
        return None;
    }
    Some(
        tokens
            .iter()
            .enumerate()
            .map(|(i, t)| replace.remove(&i).unwrap_or_else(|| t.to_string()))
            .collect(),
    )
}

/// The options a statement gives, as changes to a role.
#[derive(Default, Clone)]
struct Changes {
    superuser: Option<bool>,
    login: Option<bool>,
    createdb: Option<bool>,
    createrole: Option<bool>,
    inherit: Option<bool>,
    replication: Option<bool>,
    bypassrls: Option<bool>,
    connection_limit: Option<i32>,
    /// `Some(None)`: PASSWORD NULL (or '').
    password: Option<Option<String>>,
    valid_until: Option<Option<String>>,
}

fn string_literal(e: &Expr, what: &str) -> Result<String> {
    crate::session::string_literal(e).ok_or_else(|| {
        PgError::new(
            SqlState::SyntaxError,
            format!("{what} must be a string constant"),
        )
    })
}

impl Changes {
    fn password(&mut self, session: &mut Session, p: &Password) -> Result<()> {
        self.password = Some(match p {
            Password::NullPassword => None,
            Password::Password(e) => {
                let text = string_literal(e, "password")?;
                if text.is_empty() {
                    session
                        .notice("empty string is not a valid password, clearing password".into());
                    None
                } else if text.starts_with("SCRAM-SHA-256$") {
                    // A verifier, as pg_dumpall and psql's \password send it.
                    match Verifier::parse(&text) {
                        Some(v) => Some(v.to_string()),
                        None => {
                            return Err(PgError::new(
                                SqlState::InvalidParameterValue,
                                "invalid SCRAM-SHA-256 secret",
                            ))
                        }
                    }
                } else if text.len() == 35 && text.starts_with("md5") {
                    return Err(PgError::unsupported(
                        "MD5-hashed passwords (give the password, or a SCRAM-SHA-256 secret)",
                    ));
                } else {
                    Some(Verifier::new(&text).to_string())
                }
            }
        });
        Ok(())
    }

    fn connection_limit(&mut self, e: &Expr) -> Result<()> {
        let n = crate::ddl::integer_literal(e)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| {
                PgError::new(SqlState::InvalidParameterValue, "invalid connection limit")
            })?;
        if n < -1 {
            return Err(PgError::new(
                SqlState::InvalidParameterValue,
                format!("invalid connection limit: {n}"),
            ));
        }
        self.connection_limit = Some(n);
        Ok(())
    }

    fn valid_until(&mut self, e: &Expr) -> Result<()> {
        let text = string_literal(e, "VALID UNTIL")?;
        if !text.eq_ignore_ascii_case("infinity") && parse_valid_until(&text).is_none() {
            return Err(PgError::new(
                SqlState::InvalidDatetimeFormat,
                format!("invalid input syntax for type timestamp with time zone: \"{text}\""),
            ));
        }
        self.valid_until = Some(Some(text));
        Ok(())
    }

    fn option(&mut self, session: &mut Session, o: &RoleOption) -> Result<()> {
        match o {
            RoleOption::BypassRLS(b) => self.bypassrls = Some(*b),
            RoleOption::ConnectionLimit(e) => self.connection_limit(e)?,
            RoleOption::CreateDB(b) => self.createdb = Some(*b),
            RoleOption::CreateRole(b) => self.createrole = Some(*b),
            RoleOption::Inherit(b) => self.inherit = Some(*b),
            RoleOption::Login(b) => self.login = Some(*b),
            RoleOption::Password(p) => self.password(session, p)?,
            RoleOption::Replication(b) => self.replication = Some(*b),
            RoleOption::SuperUser(b) => self.superuser = Some(*b),
            RoleOption::ValidUntil(e) => self.valid_until(e)?,
        }
        Ok(())
    }

    /// Whether only a superuser may make these changes (PostgreSQL 15's rule: the
    /// SUPERUSER, REPLICATION and BYPASSRLS attributes).
    fn need_superuser(&self) -> bool {
        self.superuser.is_some() || self.replication.is_some() || self.bypassrls.is_some()
    }

    fn apply(self, r: &mut RoleDef) {
        macro_rules! set {
            ($($f:ident),*) => {$(if let Some(v) = self.$f { r.$f = v; })*};
        }
        set!(
            superuser,
            login,
            createdb,
            createrole,
            inherit,
            replication,
            bypassrls,
            connection_limit
        );
        if let Some(p) = self.password {
            r.password = p;
        }
        if let Some(v) = self.valid_until {
            r.valid_until = v;
        }
    }
}

fn role_name(name: &ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [part] => match part.as_ident() {
            Some(i) => Ok(ident_name(i)),
            None => Err(PgError::new(SqlState::SyntaxError, "invalid role name")),
        },
        _ => Err(PgError::new(
            SqlState::SyntaxError,
            format!("invalid role name \"{name}\""),
        )),
    }
}

fn reserved(name: &str) -> Result<()> {
    if name.starts_with("pg_") {
        return Err(PgError::new(
            SqlState::ReservedName,
            format!("role name \"{name}\" is reserved"),
        )
        .with_detail("Role names starting with \"pg_\" are reserved."));
    }
    if [
        "public",
        "none",
        "current_user",
        "session_user",
        "current_role",
    ]
    .contains(&name)
    {
        return Err(PgError::new(
            SqlState::ReservedName,
            format!("role name \"{name}\" is reserved"),
        ));
    }
    Ok(())
}

impl Session {
    /// The role this session runs as.
    fn role_def(&self) -> Arc<RoleDef> {
        self.shared()
            .roles_store()
            .role(self.user())
            .unwrap_or_else(|| Arc::new(RoleDef::nobody(self.user())))
    }

    fn may_manage_roles(&self, what: &str) -> Result<Arc<RoleDef>> {
        let me = self.role_def();
        if me.superuser || me.createrole {
            Ok(me)
        } else {
            Err(PgError::new(
                SqlState::InsufficientPrivilege,
                format!("permission denied to {what} role"),
            ))
        }
    }
}

/// `CREATE ROLE` (and `CREATE USER`, rewritten to it with LOGIN).
pub fn create_role(session: &mut Session, cr: &CreateRole) -> Result<Outcome> {
    if !cr.in_role.is_empty()
        || !cr.in_group.is_empty()
        || !cr.role.is_empty()
        || !cr.user.is_empty()
        || !cr.admin.is_empty()
    {
        return Err(PgError::unsupported(
            "role membership (IN ROLE, ROLE, ADMIN)",
        ));
    }
    let me = session.may_manage_roles("create")?;
    let mut changes = Changes {
        superuser: cr.superuser,
        login: cr.login,
        createdb: cr.create_db,
        createrole: cr.create_role,
        inherit: cr.inherit,
        replication: cr.replication,
        bypassrls: cr.bypassrls,
        ..Default::default()
    };
    if let Some(p) = &cr.password {
        changes.password(session, p)?;
    }
    if let Some(e) = &cr.connection_limit {
        changes.connection_limit(e)?;
    }
    if let Some(e) = &cr.valid_until {
        changes.valid_until(e)?;
    }
    if changes.need_superuser() && !me.superuser {
        return Err(PgError::new(
            SqlState::InsufficientPrivilege,
            "must be superuser to create superusers or roles with REPLICATION or BYPASSRLS",
        ));
    }
    for name in &cr.names {
        let name = role_name(name)?;
        reserved(&name)?;
        if session.shared().roles_store().role(&name).is_some() {
            if cr.if_not_exists {
                session.notice(format!("role \"{name}\" already exists, skipping"));
                continue;
            }
            return Err(PgError::new(
                SqlState::DuplicateObject,
                format!("role \"{name}\" already exists"),
            ));
        }
        let mut def = RoleDef {
            id: 0,
            name,
            superuser: false,
            login: false,
            createdb: false,
            createrole: false,
            inherit: true,
            replication: false,
            bypassrls: false,
            connection_limit: -1,
            password: None,
            valid_until: None,
        };
        changes.clone().apply(&mut def);
        blocking(|| session.shared().roles_store().create_role(def))?;
    }
    Ok(Outcome::Command("CREATE ROLE".into()))
}

/// `ALTER ROLE name [WITH] options | RENAME TO new` (and `ALTER USER`).
pub fn alter_role(session: &mut Session, name: &Ident, op: &AlterRoleOperation) -> Result<Outcome> {
    let name = ident_name(name);
    let Some(target) = session.shared().roles_store().role(&name) else {
        return Err(PgError::new(
            SqlState::UndefinedObject,
            format!("role \"{name}\" does not exist"),
        ));
    };
    let me = session.role_def();
    match op {
        AlterRoleOperation::RenameRole { role_name } => {
            let new = ident_name(role_name);
            if name == session.user() {
                return Err(PgError::unsupported("renaming the session user"));
            }
            if name == BOOTSTRAP_SUPERUSER {
                return Err(PgError::unsupported(format!(
                    "renaming the bootstrap superuser \"{BOOTSTRAP_SUPERUSER}\""
                )));
            }
            reserved(&new)?;
            if target.superuser && !me.superuser {
                return Err(PgError::new(
                    SqlState::InsufficientPrivilege,
                    "must be superuser to rename superusers",
                ));
            }
            session.may_manage_roles("rename")?;
            blocking(|| {
                session.shared().roles_store().alter_role(&name, |r| {
                    r.name = new.clone();
                    Ok(())
                })
            })?;
            Ok(Outcome::Command("ALTER ROLE".into()))
        }
        AlterRoleOperation::WithOptions { options } => {
            let mut changes = Changes::default();
            for o in options {
                changes.option(session, o)?;
            }
            // A role may change its own password; anything else needs CREATEROLE (and a
            // superuser for superusers and the superuser-only attributes).
            let own_password_only = name == session.user()
                && changes.superuser.is_none()
                && changes.login.is_none()
                && changes.createdb.is_none()
                && changes.createrole.is_none()
                && changes.inherit.is_none()
                && changes.replication.is_none()
                && changes.bypassrls.is_none()
                && changes.connection_limit.is_none()
                && changes.valid_until.is_none();
            if !own_password_only {
                if (target.superuser || changes.need_superuser()) && !me.superuser {
                    return Err(PgError::new(
                        SqlState::InsufficientPrivilege,
                        "must be superuser to alter superuser roles or change superuser attribute",
                    ));
                }
                session.may_manage_roles("alter")?;
            }
            if name == BOOTSTRAP_SUPERUSER && changes.superuser == Some(false) {
                return Err(PgError::new(
                    SqlState::FeatureNotSupported,
                    "permission denied: bootstrap user must be superuser",
                ));
            }
            blocking(|| {
                session.shared().roles_store().alter_role(&name, |r| {
                    changes.apply(r);
                    Ok(())
                })
            })?;
            Ok(Outcome::Command("ALTER ROLE".into()))
        }
        AlterRoleOperation::Set { .. } | AlterRoleOperation::Reset { .. } => Err(
            PgError::unsupported("ALTER ROLE … SET/RESET (per-role settings)"),
        ),
        AlterRoleOperation::AddMember { .. } | AlterRoleOperation::DropMember { .. } => {
            Err(PgError::unsupported("role membership"))
        }
    }
}

/// `DROP ROLE [IF EXISTS] names` (and `DROP USER`).
pub fn drop_roles(session: &mut Session, names: &[ObjectName], if_exists: bool) -> Result<Outcome> {
    session.may_manage_roles("drop")?;
    let me = session.role_def();
    for name in names {
        let name = role_name(name)?;
        let Some(target) = session.shared().roles_store().role(&name) else {
            if if_exists {
                session.notice(format!("role \"{name}\" does not exist, skipping"));
                continue;
            }
            return Err(PgError::new(
                SqlState::UndefinedObject,
                format!("role \"{name}\" does not exist"),
            ));
        };
        if name == session.user() {
            return Err(PgError::new(
                SqlState::ObjectInUse,
                "current user cannot be dropped",
            ));
        }
        if name == BOOTSTRAP_SUPERUSER {
            return Err(PgError::new(
                SqlState::DependentObjectsStillExist,
                format!("cannot drop role {name} because it is required by the database system"),
            ));
        }
        if target.superuser && !me.superuser {
            return Err(PgError::new(
                SqlState::InsufficientPrivilege,
                "must be superuser to drop superusers",
            ));
        }
        blocking(|| session.shared().roles_store().drop_role(&name))?;
    }
    Ok(Outcome::Command("DROP ROLE".into()))
}

/// `current_user`, `current_role`, `user`, `session_user`, `current_catalog` and
/// `current_schema` (SQL's special registers, written without parentheses) as calls of the
/// functions of those names, which keep their names as output columns.
pub fn rewrite_user_registers(stmt: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{Function, FunctionArgumentList, FunctionArguments, VisitMut, VisitorMut};
    struct Registers;
    impl VisitorMut for Registers {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
            let name = match e {
                Expr::Function(f) if matches!(f.args, FunctionArguments::None) => {
                    f.name.to_string().to_ascii_lowercase()
                }
                Expr::Identifier(i) if i.quote_style.is_none() => i.value.to_ascii_lowercase(),
                _ => return std::ops::ControlFlow::Continue(()),
            };
            if matches!(
                name.as_str(),
                "current_user"
                    | "current_role"
                    | "user"
                    | "session_user"
                    | "current_catalog"
                    | "current_schema"
            ) {
                *e = Expr::Function(Function {
                    name: ObjectName::from(vec![Ident::new(name)]),
                    uses_odbc_syntax: false,
                    parameters: FunctionArguments::None,
                    args: FunctionArguments::List(FunctionArgumentList {
                        duplicate_treatment: None,
                        args: vec![],
                        clauses: vec![],
                    }),
                    filter: None,
                    null_treatment: None,
                    over: None,
                    within_group: vec![],
                });
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Registers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_statements_become_role_statements() {
        let r = |s: &str| rewrite_user_statements(s);
        assert_eq!(r("CREATE USER alice").unwrap(), "CREATE ROLE alice LOGIN");
        assert_eq!(
            r("create user alice with password 'x'").unwrap(),
            "create ROLE alice with LOGIN password 'x'"
        );
        assert_eq!(
            r("CREATE USER \"Al ice\" PASSWORD 'x'").unwrap(),
            "CREATE ROLE \"Al ice\" LOGIN PASSWORD 'x'"
        );
        assert_eq!(
            r("CREATE USER bob NOLOGIN").unwrap(),
            "CREATE ROLE bob NOLOGIN"
        );
        assert_eq!(
            r("CREATE USER withers").unwrap(),
            "CREATE ROLE withers LOGIN"
        );
        assert_eq!(
            r("SELECT 1; ALTER USER bob PASSWORD 'y'; CREATE USER c").unwrap(),
            "SELECT 1; ALTER ROLE bob PASSWORD 'y'; CREATE ROLE c LOGIN"
        );
        assert_eq!(r("CREATE TABLE users (a int)"), None);
        assert_eq!(r("SELECT user"), None);
    }
}
