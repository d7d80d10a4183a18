//! Sequences (`CREATE SEQUENCE`, `serial`, identity columns) and `nextval`, `currval`,
//! `setval`, `lastval`, `pg_get_serial_sequence`.
//!
//! A sequence is a relation of one row (`last_value`, `log_cnt`, `is_called`), as in
//! PostgreSQL, stored like a table's row and replicated through the Raft log. `nextval`
//! takes values from a range this process has made durable: when the range is used up, one
//! transaction advances the stored `last_value` by `cache` values (at least 32, the number
//! PostgreSQL logs ahead) and commits; the values are then handed out from memory. So
//! inserts pay one commit per 32 values, and after a crash the unused rest of a range is
//! skipped, never handed out again. Like PostgreSQL's, `nextval` is not transactional: a
//! rolled-back transaction does not give its values back.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use duet_common::catalog::SequenceDef;
use duet_common::codec::memcmp;
use duet_common::{Datum, SqlType, TableDef, TableDefRef};
use duet_rowstore::{StoreRef, Transaction};
use parking_lot::Mutex;

use crate::error::{PgError, PgErrorBox, Result, SqlState};

/// Values a sequence makes durable per allocation, at least (PostgreSQL's SEQ_LOG_VALS).
pub const MIN_CACHE: i64 = 32;

/// Columns of a sequence's relation.
pub fn columns() -> Vec<duet_common::catalog::ColumnDef> {
    [
        ("last_value", SqlType::Int64),
        ("log_cnt", SqlType::Int64),
        ("is_called", SqlType::Bool),
    ]
    .into_iter()
    .map(|(name, ty)| duet_common::catalog::ColumnDef {
        name: name.into(),
        ty,
        nullable: false,
        default_expr: None,
        missing: Datum::Null,
    })
    .collect()
}

/// Key of a sequence's one row (its hidden row id 1).
pub fn row_key() -> Vec<u8> {
    memcmp::encode_tuple(&[Datum::Int(1)])
}

/// The row of a sequence no one has called `nextval` on.
pub fn initial_row(seq: &SequenceDef) -> Vec<u8> {
    duet_common::codec::row::encode_row(&[Datum::Int(seq.start), Datum::Int(0), Datum::Bool(false)])
}

/// The limits of a sequence of type `ty` and the defaults PostgreSQL gives its options.
pub fn type_range(ty: &SqlType) -> (i64, i64) {
    match ty {
        SqlType::Int16 => (i16::MIN as i64, i16::MAX as i64),
        SqlType::Int32 => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

/// The range of values of one sequence this process may hand out.
#[derive(Default)]
struct Range {
    next: i64,
    left: i64,
}

/// The process's ranges, one per sequence (by relation id).
#[derive(Default)]
pub struct Sequences {
    ranges: Mutex<HashMap<u32, Arc<Mutex<Range>>>>,
}

fn limit_error(def: &TableDef, seq: &SequenceDef) -> PgError {
    let (word, v) = if seq.increment > 0 {
        ("maximum", seq.max)
    } else {
        ("minimum", seq.min)
    };
    PgError::new(
        SqlState::SequenceGeneratorLimitExceeded,
        format!(
            "nextval: reached {word} value of sequence \"{}\" ({v})",
            def.name
        ),
    )
}

fn stored(row: &[Datum]) -> (i64, bool) {
    let last = match row.first() {
        Some(Datum::Int(v)) => *v,
        _ => 0,
    };
    (last, matches!(row.get(2), Some(Datum::Bool(true))))
}

impl Sequences {
    fn range(&self, id: u32) -> Arc<Mutex<Range>> {
        self.ranges.lock().entry(id).or_default().clone()
    }

    /// Forgets a dropped sequence's range.
    pub fn forget(&self, id: u32) {
        self.ranges.lock().remove(&id);
    }

    /// The next value of sequence `def`.
    pub fn nextval(&self, store: &StoreRef, def: &TableDef) -> Result<i64> {
        let seq = sequence_of(def)?;
        let range = self.range(def.id);
        let mut r = range.lock();
        if r.left == 0 {
            let (first, count) = allocate(store, def, seq)?;
            r.next = first;
            r.left = count;
        }
        let v = r.next;
        r.left -= 1;
        r.next = v.wrapping_add(seq.increment);
        Ok(v)
    }

    /// `setval`: the next `nextval` returns `value` + increment (or `value` itself if
    /// `is_called` is false).
    pub fn setval(
        &self,
        store: &StoreRef,
        def: &TableDef,
        value: i64,
        is_called: bool,
    ) -> Result<i64> {
        let seq = sequence_of(def)?;
        if value < seq.min || value > seq.max {
            return Err(PgError::new(
                SqlState::NumericValueOutOfRange,
                format!(
                    "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
                    def.name, seq.min, seq.max
                ),
            ));
        }
        let range = self.range(def.id);
        let mut r = range.lock();
        write_state(store, def, |_| {
            Ok(vec![
                Datum::Int(value),
                Datum::Int(0),
                Datum::Bool(is_called),
            ])
        })?;
        *r = Range::default();
        Ok(value)
    }
}

fn sequence_of(def: &TableDef) -> Result<&SequenceDef> {
    def.sequence.as_ref().ok_or_else(|| {
        PgError::new(
            SqlState::WrongObjectType,
            format!("\"{}\" is not a sequence", def.name),
        )
    })
}

/// Makes the next `cache` values (fewer at the limit) durable; returns the first and how
/// many.
fn allocate(store: &StoreRef, def: &TableDef, seq: &SequenceDef) -> Result<(i64, i64)> {
    let mut out = (0, 0);
    write_state(store, def, |old| {
        let (last, called) = stored(old);
        let inc = i128::from(seq.increment);
        let (min, max) = (i128::from(seq.min), i128::from(seq.max));
        let mut first = if called {
            i128::from(last) + inc
        } else {
            i128::from(last)
        };
        if first < min || first > max {
            if !seq.cycle {
                return Err(limit_error(def, seq));
            }
            first = if inc > 0 { min } else { max };
        }
        let room = if inc > 0 {
            (max - first) / inc + 1
        } else {
            (first - min) / -inc + 1
        };
        let count = room.min(i128::from(seq.cache.max(MIN_CACHE)));
        let new_last = first + (count - 1) * inc;
        out = (first as i64, count as i64);
        Ok(vec![
            Datum::Int(new_last as i64),
            Datum::Int(0),
            Datum::Bool(true),
        ])
    })?;
    Ok(out)
}

/// Replaces the sequence's row with `f(old row)` in a transaction of its own, committed
/// (durable) before this returns; retried when another writer got there first.
fn write_state(
    store: &StoreRef,
    def: &TableDef,
    mut f: impl FnMut(&[Datum]) -> Result<Vec<Datum>>,
) -> Result<()> {
    let key = row_key();
    for _ in 0..100 {
        let mut txn = Transaction::begin(store);
        let old = txn.get_row(def, &key)?.ok_or_else(|| {
            PgError::new(
                SqlState::InternalError,
                format!("sequence \"{}\" has no row", def.name),
            )
        })?;
        let new = f(&old)?;
        txn.replace(def, &key, &old, new)?;
        match txn.commit() {
            Ok(_) => return Ok(()),
            Err(duet_rowstore::Error::WriteConflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(PgError::new(
        SqlState::SerializationFailure,
        format!("could not advance sequence \"{}\"", def.name),
    ))
}

/// A sequence named by a `regclass`-style text (`s`, `public.s`, `"S"`): its definition.
pub fn resolve(store: &StoreRef, name: &str) -> Result<TableDefRef> {
    let name = name.trim();
    // An OID (`nextval('s'::regclass)` passes the sequence's).
    if let Ok(oid) = name.parse::<u32>() {
        let def = crate::system_catalog::relation_by_oid(store, oid).ok_or_else(|| {
            PgError::new(
                SqlState::UndefinedTable,
                format!("could not open relation with OID {oid}"),
            )
        })?;
        sequence_of(&def)?;
        return Ok(def);
    }
    let name = name.strip_prefix("public.").unwrap_or(name);
    let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => name.to_lowercase(),
    };
    let def = store.table(&name).ok_or_else(|| {
        PgError::new(
            SqlState::UndefinedTable,
            format!("relation \"{name}\" does not exist"),
        )
    })?;
    sequence_of(&def)?;
    Ok(def)
}

/// The sequence a column default `nextval('name')` draws from.
pub fn nextval_target(default_expr: &str) -> Option<String> {
    let rest = default_expr.trim().strip_prefix("nextval('")?;
    let (name, tail) = rest.split_once('\'')?;
    matches!(tail.trim(), ")" | "::regclass)").then(|| name.to_string())
}

/// What one session remembers: the last value `nextval` gave it per sequence (`currval`)
/// and overall (`lastval`).
#[derive(Default)]
pub struct SessionValues {
    current: HashMap<u32, i64>,
    last: Option<i64>,
}

impl SessionValues {
    pub fn record(&mut self, id: u32, v: i64) {
        self.current.insert(id, v);
        self.last = Some(v);
    }
}

/// The process's sequences, the session's values, and the store: what the SQL functions
/// need.
#[derive(Clone)]
pub struct SequenceContext {
    pub store: StoreRef,
    pub sequences: Arc<Sequences>,
    pub session: Arc<Mutex<SessionValues>>,
}

impl SequenceContext {
    pub fn nextval(&self, name: &str) -> Result<i64> {
        let def = resolve(&self.store, name)?;
        let v = crate::session::blocking(|| self.sequences.nextval(&self.store, &def))?;
        self.session.lock().record(def.id, v);
        Ok(v)
    }

    fn currval(&self, name: &str) -> Result<i64> {
        let def = resolve(&self.store, name)?;
        self.session
            .lock()
            .current
            .get(&def.id)
            .copied()
            .ok_or_else(|| {
                PgError::new(
                    SqlState::ObjectNotInPrerequisiteState,
                    format!(
                        "currval of sequence \"{}\" is not yet defined in this session",
                        def.name
                    ),
                )
            })
    }

    fn lastval(&self) -> Result<i64> {
        self.session.lock().last.ok_or_else(|| {
            PgError::new(
                SqlState::ObjectNotInPrerequisiteState,
                "lastval is not yet defined in this session",
            )
        })
    }

    fn setval(&self, name: &str, value: i64, is_called: bool) -> Result<i64> {
        let def = resolve(&self.store, name)?;
        crate::session::blocking(|| self.sequences.setval(&self.store, &def, value, is_called))
    }

    /// `pg_get_serial_sequence(table, column)`: the sequence behind the column's
    /// `nextval` default, schema-qualified; NULL if it has none.
    fn serial_sequence(&self, table: &str, column: &str) -> Result<Option<String>> {
        let t = table
            .strip_prefix("public.")
            .unwrap_or(table)
            .to_lowercase();
        let def = self.store.table(&t).ok_or_else(|| {
            PgError::new(
                SqlState::UndefinedTable,
                format!("relation \"{t}\" does not exist"),
            )
        })?;
        let c = def.column_index(&column.to_lowercase()).ok_or_else(|| {
            PgError::new(
                SqlState::UndefinedColumn,
                format!("column \"{column}\" of relation \"{t}\" does not exist"),
            )
        })?;
        Ok(def.columns[c]
            .default_expr
            .as_deref()
            .and_then(nextval_target)
            .map(|s| format!("public.{s}")))
    }
}

/// `nextval`, `currval`, `setval`, `lastval` and `pg_get_serial_sequence` as SQL functions
/// of one session (volatile: evaluated for every row).
#[derive(Debug)]
pub struct SequenceFunction {
    name: &'static str,
    signature: Signature,
    ctx: ContextHandle,
}

/// [`SequenceContext`] behind Debug/Eq/Hash, as a UDF needs.
#[derive(Clone)]
struct ContextHandle(SequenceContext);

impl std::fmt::Debug for ContextHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SequenceContext")
    }
}

impl PartialEq for SequenceFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.ctx.0.session, &other.ctx.0.session)
    }
}

impl Eq for SequenceFunction {}

impl std::hash::Hash for SequenceFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl SequenceFunction {
    pub const NAMES: [&'static str; 5] = [
        "nextval",
        "currval",
        "setval",
        "lastval",
        "pg_get_serial_sequence",
    ];

    pub fn new(name: &'static str, ctx: SequenceContext) -> Self {
        Self {
            name,
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Nullary,
                    datafusion::logical_expr::TypeSignature::VariadicAny,
                ],
                Volatility::Volatile,
            ),
            ctx: ContextHandle(ctx),
        }
    }
}

fn df(e: PgError) -> DataFusionError {
    DataFusionError::External(Box::new(PgErrorBox(e)))
}

impl ScalarUDFImpl for SequenceFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(if self.name == "pg_get_serial_sequence" {
            DataType::Utf8
        } else {
            DataType::Int64
        })
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        let want: &[DataType] = match self.name {
            "lastval" => &[],
            "setval" if arg_types.len() == 3 => {
                &[DataType::Utf8, DataType::Int64, DataType::Boolean]
            }
            "setval" => &[DataType::Utf8, DataType::Int64],
            "pg_get_serial_sequence" => &[DataType::Utf8, DataType::Utf8],
            _ => &[DataType::Utf8],
        };
        if arg_types.len() != want.len() {
            return Err(DataFusionError::Plan(format!(
                "function {}() takes {} arguments",
                self.name,
                want.len()
            )));
        }
        Ok(want.to_vec())
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let rows = args.number_rows.max(1);
        // Text arguments as Utf8 whatever string type the planner gave them.
        let arrays = args
            .args
            .iter()
            .map(|a| {
                let a = a.to_array(rows)?;
                match a.data_type() {
                    DataType::Utf8View | DataType::LargeUtf8 => {
                        Ok(datafusion::arrow::compute::cast(&a, &DataType::Utf8)?)
                    }
                    _ => Ok(a),
                }
            })
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        let text = |i: usize, r: usize| -> Option<&str> {
            let a = arrays.get(i)?.as_string_opt::<i32>()?;
            (!a.is_null(r)).then(|| a.value(r))
        };
        let ctx = &self.ctx.0;
        if self.name == "pg_get_serial_sequence" {
            let out: StringArray = (0..rows)
                .map(|r| match (text(0, r), text(1, r)) {
                    (Some(t), Some(c)) => ctx.serial_sequence(t, c).map_err(df),
                    _ => Ok(None),
                })
                .collect::<datafusion::common::Result<_>>()?;
            return Ok(ColumnarValue::Array(Arc::new(out)));
        }
        let mut out = Vec::with_capacity(rows);
        for r in 0..rows {
            let v = match self.name {
                "lastval" => Some(ctx.lastval().map_err(df)?),
                "setval" => {
                    let value = arrays[1].as_primitive::<Int64Type>();
                    let called = arrays
                        .get(2)
                        .map(|a| a.as_boolean())
                        .map_or(Some(true), |b| (!b.is_null(r)).then(|| b.value(r)));
                    match (
                        text(0, r),
                        (!value.is_null(r)).then(|| value.value(r)),
                        called,
                    ) {
                        (Some(n), Some(v), Some(c)) => Some(ctx.setval(n, v, c).map_err(df)?),
                        _ => None,
                    }
                }
                "currval" => match text(0, r) {
                    Some(n) => Some(ctx.currval(n).map_err(df)?),
                    None => None,
                },
                _ => match text(0, r) {
                    Some(n) => Some(ctx.nextval(n).map_err(df)?),
                    None => None,
                },
            };
            out.push(v);
        }
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nextval_defaults_are_recognised() {
        assert_eq!(
            nextval_target("nextval('t_id_seq')").as_deref(),
            Some("t_id_seq")
        );
        assert_eq!(
            nextval_target("nextval('t_id_seq'::regclass)").as_deref(),
            Some("t_id_seq")
        );
        assert_eq!(nextval_target("42"), None);
    }
}
