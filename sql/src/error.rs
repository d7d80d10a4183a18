//! The one SQLSTATE mapping: every error that reaches a client goes through [`PgError`].

use std::fmt;

use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, SchemaError};
use duet_common::ValueErrorKind;
use pgwire::error::{ErrorInfo, PgWireError};

pub use duet_wire::SqlState;

/// An error on its way to a client.
#[derive(Debug, Clone)]
pub struct PgError {
    pub state: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// READ COMMITTED: the statement must run again on a fresh snapshot (the row store's
    /// `StatementRestart`); the session does that and the client never sees this error.
    pub(crate) restart: bool,
}

/// Result alias of this crate.
pub type Result<T, E = PgError> = std::result::Result<T, E>;

impl PgError {
    pub fn new(state: SqlState, message: impl Into<String>) -> Self {
        Self {
            state,
            message: message.into(),
            detail: None,
            hint: None,
            restart: false,
        }
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn unsupported(what: impl fmt::Display) -> Self {
        Self::new(
            SqlState::FeatureNotSupported,
            format!("{what} is not supported"),
        )
    }
    /// Whether retrying the transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.state,
            SqlState::SerializationFailure | SqlState::DeadlockDetected
        )
    }

    /// The wire form. Server faults are logged here and their text is not sent.
    pub fn into_error_info(self) -> ErrorInfo {
        let message = if self.state.is_server_fault() {
            tracing::error!(sqlstate = self.state.code(), error = %self.message, "server fault");
            "internal error; the server log has the details".to_string()
        } else {
            tracing::debug!(sqlstate = self.state.code(), error = %self.message, "user error");
            self.message
        };
        let mut info = ErrorInfo::new("ERROR".to_owned(), self.state.code().to_owned(), message);
        info.detail = self.detail;
        info.hint = self.hint;
        info
    }

    /// The wire form, boxed (what `duet-wire`'s traits carry).
    pub fn into_wire(self) -> duet_wire::WireError {
        Box::new(self.into_error_info())
    }

    pub fn into_pgwire(self) -> PgWireError {
        PgWireError::UserError(Box::new(self.into_error_info()))
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.state.code())
    }
}

impl From<duet_rowstore::Error> for PgError {
    fn from(e: duet_rowstore::Error) -> Self {
        use duet_rowstore::Error as E;
        let state = match &e {
            E::UniqueViolation { .. } => SqlState::UniqueViolation,
            E::NotNullViolation { .. } => SqlState::NotNullViolation,
            E::WriteConflict | E::StatementRestart => SqlState::SerializationFailure,
            E::Deadlock => SqlState::DeadlockDetected,
            E::LockTimeout => SqlState::LockNotAvailable,
            E::Canceled | E::StatementTimeout => SqlState::QueryCanceled,
            E::Data(d) => data_state(d),
            E::TableExists(_) => SqlState::DuplicateTable,
            E::TableNotFound(_) => SqlState::UndefinedTable,
            E::IndexNotFound(_) | E::RoleNotFound(_) => SqlState::UndefinedObject,
            E::RoleExists(_) => SqlState::DuplicateObject,
            E::ColumnNotFound { .. } => SqlState::UndefinedColumn,
            E::ColumnExists { .. } => SqlState::DuplicateColumn,
            E::InvalidDefinition(_) => SqlState::InvalidTableDefinition,
            // This member stopped leading before the commit's entry was committed (the
            // new leader's log replaced it): not committed, and a retry may succeed.
            E::Replication { source } if source.is_retryable() => SqlState::SerializationFailure,
            E::Engine { .. } | E::Replication { .. } => SqlState::IoError,
            E::SnapshotTooOld { .. } => SqlState::SnapshotTooOld,
            E::DiskFull(_) => SqlState::DiskFull,
            E::Corrupt(_) | E::Internal(_) => SqlState::InternalError,
        };
        let detail = match &e {
            E::UniqueViolation { detail, .. } => Some(detail.clone()),
            _ => None,
        };
        let hint = match &e {
            E::Replication { source } if source.is_log_sync_failure() => Some(
                "A sync of the raft log failed: the disk may have lost what was written since \
                 the last sync, so this server takes no more writes (reads go on). This \
                 transaction may or may not have committed. Check the disk and restart the \
                 server: it recovers from what the log holds."
                    .to_string(),
            ),
            E::DiskFull(_) => Some(
                "Free space on that disk: reads go on, DROP TABLE and TRUNCATE still run, and \
                 writes resume by themselves once the reserve is free (--disk-reserve-mb sets it)."
                    .to_string(),
            ),
            _ => None,
        };
        PgError {
            state,
            message: e.to_string(),
            detail,
            hint,
            restart: matches!(e, E::StatementRestart),
        }
    }
}

/// The SQLSTATE of a shared-codec error.
fn data_state(e: &duet_common::Error) -> SqlState {
    use duet_common::Error as E;
    match e {
        E::Value { kind, .. } => match kind {
            ValueErrorKind::StringTooLong => SqlState::StringDataRightTruncation,
            ValueErrorKind::OutOfRange => SqlState::NumericValueOutOfRange,
            ValueErrorKind::InvalidText => SqlState::InvalidTextRepresentation,
            ValueErrorKind::DatatypeMismatch => SqlState::DatatypeMismatch,
        },
        E::Source { .. } => SqlState::IoError,
        E::Corrupt(_) | E::Internal(_) => SqlState::InternalError,
        E::Remote { code, .. } => SqlState::ALL
            .iter()
            .copied()
            .find(|s| s.code() == code)
            .unwrap_or(SqlState::InternalError),
    }
}

impl From<duet_common::Error> for PgError {
    fn from(e: duet_common::Error) -> Self {
        PgError::new(data_state(&e), e.to_string())
    }
}

fn arrow_state(e: &ArrowError) -> SqlState {
    match e {
        ArrowError::CastError(m)
        | ArrowError::ParseError(m)
        | ArrowError::InvalidArgumentError(m) => {
            let m = m.to_ascii_lowercase();
            if m.contains("overflow")
                || m.contains("too large")
                || m.contains("out of range")
                || m.contains("can't cast value")
            {
                SqlState::NumericValueOutOfRange
            } else if m.contains("cannot cast string")
                || m.contains("error parsing")
                || m.contains("parse")
            {
                SqlState::InvalidTextRepresentation
            } else {
                SqlState::InvalidParameterValue
            }
        }
        ArrowError::DivideByZero => SqlState::DivisionByZero,
        ArrowError::ArithmeticOverflow(_) => SqlState::NumericValueOutOfRange,
        ArrowError::ComputeError(m) if m.contains("Overflow") || m.contains("overflow") => {
            SqlState::NumericValueOutOfRange
        }
        ArrowError::MemoryError(_) => SqlState::OutOfMemory,
        ArrowError::ExternalError(_) | ArrowError::IoError(..) => SqlState::InternalError,
        _ => SqlState::InternalError,
    }
}

/// Maps a DataFusion error (including storage errors wrapped in it).
pub fn from_datafusion(e: DataFusionError) -> PgError {
    // Storage errors travel through DataFusion as External.
    if let DataFusionError::External(inner) = e.find_root() {
        if let Some(se) = inner.downcast_ref::<duet_rowstore::Error>() {
            return PgError::from(se.clone());
        }
        if let Some(de) = inner.downcast_ref::<duet_common::Error>() {
            return PgError::from(de.clone());
        }
        if let Some(pe) = inner.downcast_ref::<PgErrorBox>() {
            return pe.0.clone();
        }
    }
    let root = e.find_root();
    let text = root.message();
    // An aggregate of a bare NULL: PostgreSQL cannot choose among sum(int), sum(numeric)...
    for (df, function) in [
        ("SUM not supported for Null", "sum"),
        ("AvgAccumulator for (Null", "avg"),
    ] {
        if text.contains(df) {
            return PgError::new(
                SqlState::AmbiguousFunction,
                format!("function {function}(unknown) is not unique"),
            );
        }
    }
    // Operand types DataFusion's coercion cannot bring together (`b BETWEEN 1.5 AND 2`
    // with a boolean `b`), reported as its internal error: PostgreSQL finds no operator.
    if let Some(rest) = text.strip_prefix("Failed to coerce types ") {
        return PgError::new(
            SqlState::UndefinedFunction,
            format!("operator does not exist: {}", rest.trim_end_matches('.')),
        );
    }
    let state = match root {
        DataFusionError::SQL(..) => SqlState::SyntaxError,
        DataFusionError::SchemaError(se, _) => match se.as_ref() {
            // `x.c` where no table in scope is called `x`: PostgreSQL's 42P01.
            SchemaError::FieldNotFound {
                field,
                valid_fields,
            } => match &field.relation {
                Some(r) if !valid_fields.iter().any(|f| f.relation.as_ref() == Some(r)) => {
                    return PgError::new(
                        SqlState::UndefinedTable,
                        format!("missing FROM-clause entry for table \"{}\"", r.table()),
                    );
                }
                _ => SqlState::UndefinedColumn,
            },
            SchemaError::AmbiguousReference { .. } => SqlState::AmbiguousColumn,
            SchemaError::DuplicateQualifiedField { .. }
            | SchemaError::DuplicateUnqualifiedField { .. } => SqlState::DuplicateColumn,
        },
        DataFusionError::ArrowError(ae, _) => arrow_state(ae),
        DataFusionError::NotImplemented(_) => SqlState::FeatureNotSupported,
        DataFusionError::ResourcesExhausted(_) => SqlState::OutOfMemory,
        DataFusionError::Plan(m) => plan_state(m),
        DataFusionError::Execution(m)
            if m.eq_ignore_ascii_case("scalar subquery returned more than one row") =>
        {
            return PgError::new(
                SqlState::CardinalityViolation,
                "more than one row returned by a subquery used as an expression",
            );
        }
        DataFusionError::Execution(m) => {
            let l = m.to_ascii_lowercase();
            if l.contains("divide by zero") || l.contains("division by zero") {
                SqlState::DivisionByZero
            } else if l.contains("overflow") {
                SqlState::NumericValueOutOfRange
            } else if l.contains("cast") || l.contains("parse") {
                SqlState::InvalidTextRepresentation
            } else {
                SqlState::InternalError
            }
        }
        DataFusionError::Configuration(_) => SqlState::InvalidParameterValue,
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => SqlState::IoError,
        _ => SqlState::InternalError,
    };
    let msg = root.message().to_string();
    // PostgreSQL's words for the two arithmetic errors (Arrow's add a prefix).
    let msg = match state {
        SqlState::DivisionByZero => "division by zero".to_string(),
        SqlState::NumericValueOutOfRange if msg.contains("to store in a Decimal128") => {
            "numeric field overflow".to_string()
        }
        SqlState::NumericValueOutOfRange => msg
            .strip_prefix("Arithmetic overflow: ")
            .unwrap_or(&msg)
            .to_string(),
        _ => msg,
    };
    PgError::new(state, clean_message(&msg))
}

/// A [`PgError`] that must travel through DataFusion unchanged.
#[derive(Debug)]
pub struct PgErrorBox(pub PgError);

impl fmt::Display for PgErrorBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for PgErrorBox {}

fn plan_state(m: &str) -> SqlState {
    let l = m.to_ascii_lowercase();
    if l.contains("table '") && l.contains("not found") || l.contains("table does not exist") {
        SqlState::UndefinedTable
    } else if l.contains("no field named") || l.contains("column") && l.contains("not found") {
        SqlState::UndefinedColumn
    } else if l.contains("invalid function")
        || l.contains("no function matches")
        || l.contains("function") && l.contains("not found")
    {
        SqlState::UndefinedFunction
    } else if l.contains("cannot infer common")
        || l.contains("cannot be coerced")
        || l.contains("type mismatch")
        || l.contains("coercion")
        || l.contains("does not support") && l.contains("type")
    {
        SqlState::DatatypeMismatch
    } else if l.contains("projection references non-aggregate")
        || l.contains("must appear in the group by")
    {
        SqlState::GroupingError
    } else if l.contains("order by column out of bounds")
        || l.contains("columns but only") && l.contains("column alias")
    {
        SqlState::InvalidColumnReference
    } else if l.contains("join condition must be boolean") || l.contains("non-boolean predicate") {
        SqlState::DatatypeMismatch
    } else if l.contains("placeholder") {
        SqlState::IndeterminateDatatype
    } else {
        SqlState::SyntaxError
    }
}

fn clean_message(m: &str) -> String {
    let m = m.trim();
    // DataFusion appends a backtrace marker and sometimes multi-line hints.
    m.split("\n\nbacktrace").next().unwrap_or(m).to_string()
}

impl From<DataFusionError> for PgError {
    fn from(e: DataFusionError) -> Self {
        from_datafusion(e)
    }
}

impl From<sqlparser::parser::ParserError> for PgError {
    fn from(e: sqlparser::parser::ParserError) -> Self {
        match e {
            sqlparser::parser::ParserError::RecursionLimitExceeded => PgError::new(
                SqlState::StatementTooComplex,
                "statement is too deeply nested",
            ),
            other => PgError::new(SqlState::SyntaxError, other.to_string()),
        }
    }
}

/// A panic caught while running a statement (a bug in DataFusion or DuetDB), as XX000: the
/// statement fails, the session and the server go on.
pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> PgError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    tracing::error!(panic = %what, "a statement panicked");
    PgError::new(SqlState::InternalError, format!("internal error: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_their_sqlstates() {
        let e: PgError = duet_rowstore::Error::WriteConflict.into();
        assert_eq!(e.state.code(), "40001");
        assert!(e.is_retryable());
        let e: PgError = duet_rowstore::Error::TableNotFound("t".into()).into();
        assert_eq!(e.state.code(), "42P01");
        let wrapped = DataFusionError::External(Box::new(duet_rowstore::Error::UniqueViolation {
            constraint: "t_pkey".into(),
            detail: "Key (a)=(1) already exists.".into(),
        }));
        let e = from_datafusion(wrapped);
        assert_eq!(e.state.code(), "23505");
        assert_eq!(e.detail.as_deref(), Some("Key (a)=(1) already exists."));
    }

    #[test]
    fn internal_messages_are_not_sent_verbatim_but_user_errors_are() {
        let info = PgError::new(SqlState::UndefinedTable, "relation \"x\" does not exist")
            .into_error_info();
        assert_eq!(info.code, "42P01");
        assert_eq!(info.message, "relation \"x\" does not exist");
    }
}
