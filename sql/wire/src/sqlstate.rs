//! The SQLSTATE codes DuetDB reports, written once.

use pgwire::error::ErrorInfo;

macro_rules! sqlstates {
    ($($name:ident = $code:literal,)*) => {
        /// SQLSTATE codes DuetDB reports, each written once: the variant, its code (also its
        /// doc), and its place in [`SqlState::ALL`] come from one list.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum SqlState {
            $(#[doc = $code] $name,)*
        }

        impl SqlState {
            /// Every code, for tests and docs.
            pub const ALL: &'static [SqlState] = &[$(SqlState::$name,)*];

            /// The five-character code.
            pub fn code(self) -> &'static str {
                match self {
                    $(SqlState::$name => $code,)*
                }
            }
        }
    };
}

sqlstates! {
    Warning = "01000",
    FeatureNotSupported = "0A000",
    ConnectionFailure = "08006",
    ProtocolViolation = "08P01",
    CardinalityViolation = "21000",
    InvalidAuthorizationSpecification = "28000",
    InvalidPassword = "28P01",
    InvalidCatalogName = "3D000",
    DuplicateDatabase = "42P04",
    InsufficientPrivilege = "42501",
    ReservedName = "42939",
    ObjectInUse = "55006",
    StringDataRightTruncation = "22001",
    NumericValueOutOfRange = "22003",
    InvalidDatetimeFormat = "22007",
    DatetimeFieldOverflow = "22008",
    DivisionByZero = "22012",
    InvalidParameterValue = "22023",
    NullValueNotAllowed = "22004",
    InvalidTextRepresentation = "22P02",
    InvalidBinaryRepresentation = "22P03",
    BadCopyFileFormat = "22P04",
    CharacterNotInRepertoire = "22021",
    SequenceGeneratorLimitExceeded = "2200H",
    NotNullViolation = "23502",
    ForeignKeyViolation = "23503",
    UniqueViolation = "23505",
    CheckViolation = "23514",
    ActiveSqlTransaction = "25001",
    NoActiveSqlTransaction = "25P01",
    InFailedSqlTransaction = "25P02",
    InvalidSavepointSpecification = "3B001",
    DependentObjectsStillExist = "2BP01",
    InvalidSqlStatementName = "26000",
    DuplicatePreparedStatement = "42P05",
    InvalidCursorName = "34000",
    SerializationFailure = "40001",
    DeadlockDetected = "40P01",
    LockNotAvailable = "55P03",
    ObjectNotInPrerequisiteState = "55000",
    CantChangeRuntimeParam = "55P02",
    WrongObjectType = "42809",
    GeneratedAlways = "428C9",
    SyntaxError = "42601",
    DuplicateColumn = "42701",
    AmbiguousColumn = "42702",
    UndefinedColumn = "42703",
    UndefinedObject = "42704",
    GroupingError = "42803",
    DatatypeMismatch = "42804",
    AmbiguousFunction = "42725",
    UndefinedFunction = "42883",
    UndefinedTable = "42P01",
    DuplicateTable = "42P07",
    DuplicateObject = "42710",
    DuplicateCursor = "42P03",
    InvalidColumnReference = "42P10",
    InvalidTableDefinition = "42P16",
    InvalidObjectDefinition = "42P17",
    InvalidForeignKey = "42830",
    IndeterminateDatatype = "42P18",
    DiskFull = "53100",
    OutOfMemory = "53200",
    TooManyConnections = "53300",
    StatementTooComplex = "54001",
    QueryCanceled = "57014",
    CannotConnectNow = "57P03",
    IoError = "58030",
    SnapshotTooOld = "72000",
    InternalError = "XX000",
}

impl SqlState {
    /// Whether this is the server's fault (logged at `error!`, message hidden).
    pub fn is_server_fault(self) -> bool {
        matches!(self, SqlState::InternalError | SqlState::IoError)
    }

    /// An `ERROR` with this code and `message`, as the wire sends it.
    pub fn error(self, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo::new("ERROR".to_owned(), self.code().to_owned(), message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_five_distinct_characters() {
        let mut seen = std::collections::HashSet::new();
        for s in SqlState::ALL {
            assert_eq!(s.code().len(), 5, "{s:?}");
            assert!(seen.insert(s.code()), "duplicate code {}", s.code());
        }
    }
}
