//! `COPY t [(cols)] FROM STDIN` and `COPY t [(cols)] | (query) TO STDOUT` in PostgreSQL's
//! text, CSV and binary formats (`DELIMITER`, `NULL`, `HEADER`; `FREEZE` and other hints
//! are accepted and ignored; the binary format is in `copy_binary`). Files are not
//! supported.
//!
//! Data arrives in CopyData messages of any size; complete records are parsed as they
//! arrive, converted with the same assignment casts as INSERT, and inserted into the
//! transaction. Outside an explicit transaction the rows are committed in batches of
//! [`COMMIT_ROWS`] rows or [`COMMIT_BYTES`] of input (one Raft entry each), so a load is
//! not one giant entry; unlike
//! PostgreSQL, a COPY that fails midway keeps the batches committed before the failure.
//! Inside `BEGIN … COMMIT` everything stays in the transaction.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int32Array, StringBuilder};
use duet_common::batch::{array_to_datums, datums_to_array, encode_rows};
use duet_common::codec::memcmp;
use duet_common::{Datum, TableDef, TableDefRef};
use duet_rowstore::Transaction;
use sqlparser::ast::{CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement};

use crate::error::{from_datafusion, PgError, Result, SqlState};
use crate::session::{blocking, Session};
use crate::types::assign_array_in;

/// Rows converted and inserted at a time.
const INSERT_ROWS: usize = 8192;
/// Rows per committed batch in autocommit mode, at most.
pub const COMMIT_ROWS: usize = 100_000;
/// Input bytes per committed batch in autocommit mode, at most: the batch's Raft entry is
/// about this size whatever the width of the rows (100,000 rows of 1 kB would be a 100 MB
/// entry). For TPC-H lineitem (33,000 rows per batch instead of 100,000) the load took the
/// same time and CPU within this machine's noise.
pub const COMMIT_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq)]
enum Format {
    Text,
    Csv,
    Binary,
}

/// A COPY FROM STDIN in progress.
pub struct CopyIn {
    def: TableDefRef,
    /// Target column positions, in input order.
    columns: Vec<usize>,
    /// A row with every column the input does not name at its default.
    base: Vec<Datum>,
    /// Serial and identity columns the input does not name: a new value per row.
    sequences: crate::dml::SequenceDefaults,
    format: Format,
    delimiter: u8,
    null: String,
    header: bool,
    /// Bytes not yet forming a complete record.
    buf: Vec<u8>,
    /// Parsed records waiting to be inserted, one string column per input column.
    pending: Vec<StringBuilder>,
    pending_rows: usize,
    /// Rows inserted so far.
    pub count: u64,
    /// Rows inserted but not committed (autocommit mode), and their input bytes.
    uncommitted: usize,
    uncommitted_bytes: usize,
    /// Input bytes of the records in `pending`.
    pending_bytes: usize,
    /// The first error; later data is ignored and the error is reported at CopyDone.
    pub failed: Option<PgError>,
    /// The transaction rows go into when the session has none.
    own_txn: Option<Transaction>,
    /// The previous batch's commit, proposed and not yet waited for (autocommit mode).
    in_flight: Option<duet_rowstore::txn::PendingCommit>,
    line: u64,
    /// Binary format: whether the file header has been read, and the trailer.
    binary_header: bool,
    binary_end: bool,
}

fn bad(msg: impl Into<String>) -> PgError {
    PgError::new(SqlState::SyntaxError, msg)
}

fn single_byte(v: &str, what: &str) -> Result<u8> {
    match v.as_bytes() {
        [b] => Ok(*b),
        _ => Err(PgError::new(
            SqlState::FeatureNotSupported,
            format!("COPY {what} must be a single one-byte character"),
        )),
    }
}

/// The options of a COPY statement (both directions).
struct CopyOptions {
    format: Format,
    delimiter: u8,
    null: String,
    header: bool,
}

impl CopyOptions {
    fn parse(options: Vec<CopyOption>, legacy_options: Vec<CopyLegacyOption>) -> Result<Self> {
        let mut format = Format::Text;
        let mut delimiter = None;
        let mut null = None;
        let mut header = false;
        for o in options {
            match o {
                CopyOption::Format(f) => {
                    format = match f.value.to_ascii_lowercase().as_str() {
                        "text" => Format::Text,
                        "csv" => Format::Csv,
                        "binary" => Format::Binary,
                        other => {
                            return Err(PgError::unsupported(format!("COPY format \"{other}\"")))
                        }
                    }
                }
                CopyOption::Delimiter(c) => {
                    delimiter = Some(single_byte(&c.to_string(), "delimiter")?)
                }
                CopyOption::Null(s) => null = Some(s),
                CopyOption::Header(h) => header = h,
                // FREEZE, ENCODING (UTF8 only is accepted below), QUOTE/ESCAPE defaults.
                CopyOption::Freeze(_) => {}
                CopyOption::Encoding(e) if e.eq_ignore_ascii_case("utf8") => {}
                other => return Err(PgError::unsupported(format!("COPY option {other}"))),
            }
        }
        for o in legacy_options {
            match o {
                CopyLegacyOption::Csv(csv) => {
                    format = Format::Csv;
                    for c in csv {
                        match c {
                            sqlparser::ast::CopyLegacyCsvOption::Header => header = true,
                            other => {
                                return Err(PgError::unsupported(format!(
                                    "COPY CSV option {other}"
                                )))
                            }
                        }
                    }
                }
                CopyLegacyOption::Delimiter(c) => {
                    delimiter = Some(single_byte(&c.to_string(), "delimiter")?)
                }
                CopyLegacyOption::Null(s) => null = Some(s),
                CopyLegacyOption::Binary => format = Format::Binary,
                other => return Err(PgError::unsupported(format!("COPY option {other}"))),
            }
        }
        if header && format != Format::Csv {
            return Err(PgError::new(
                SqlState::FeatureNotSupported,
                "COPY HEADER available only in CSV mode",
            ));
        }
        Ok(Self {
            delimiter: delimiter.unwrap_or(if format == Format::Csv { b',' } else { b'\t' }),
            null: null.unwrap_or_else(|| {
                if format == Format::Csv {
                    String::new()
                } else {
                    "\\N".into()
                }
            }),
            format,
            header,
        })
    }
}

/// Positions of the columns a COPY names (all of them when it names none), or 42703.
fn column_positions(
    def: &duet_common::TableDef,
    table: &str,
    columns: &[sqlparser::ast::Ident],
) -> Result<Vec<usize>> {
    if columns.is_empty() {
        return Ok((0..def.columns.len()).collect());
    }
    columns
        .iter()
        .map(|c| {
            let n = crate::ident::ident_name(c);
            def.column_index(&n).ok_or_else(|| {
                PgError::new(
                    SqlState::UndefinedColumn,
                    format!("column \"{n}\" of relation \"{table}\" does not exist"),
                )
            })
        })
        .collect()
}

/// Starts a COPY statement. Only `FROM STDIN` is handled here.
pub async fn start(session: &mut Session, stmt: Statement) -> Result<CopyIn> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = stmt
    else {
        return Err(PgError::new(
            SqlState::InternalError,
            "not a COPY statement",
        ));
    };
    if to || !matches!(target, CopyTarget::Stdin) {
        return Err(PgError::unsupported(
            "COPY other than FROM STDIN (COPY TO and files are not supported yet)",
        ));
    }
    let CopySource::Table {
        table_name,
        columns,
    } = source
    else {
        return Err(PgError::unsupported("COPY (query)"));
    };
    let name = crate::ident::table_name(&table_name)?;
    let def = session.table(&name)?;
    let columns = column_positions(&def, &name, &columns)?;
    let opts = CopyOptions::parse(options, legacy_options)?;
    let width = columns.len();
    // Columns the input does not name get their defaults (evaluated once per COPY).
    let missing: Vec<usize> = (0..def.columns.len())
        .filter(|c| !columns.contains(c))
        .collect();
    let base = crate::dml::defaults(session, &def, &missing).await?;
    let sequences = crate::dml::SequenceDefaults::of(session, &def).without(&columns);
    let own_txn = if session.in_transaction() {
        None
    } else {
        Some(session.autocommit_txn())
    };
    Ok(CopyIn {
        def,
        columns,
        base,
        sequences,
        delimiter: opts.delimiter,
        null: opts.null,
        format: opts.format,
        header: opts.header,
        buf: Vec::new(),
        pending: (0..width).map(|_| StringBuilder::new()).collect(),
        pending_rows: 0,
        count: 0,
        uncommitted: 0,
        uncommitted_bytes: 0,
        pending_bytes: 0,
        in_flight: None,
        failed: None,
        own_txn,
        line: 0,
        binary_header: false,
        binary_end: false,
    })
}

impl CopyIn {
    /// Number of columns each record has.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Whether the input is in the binary format.
    pub fn is_binary(&self) -> bool {
        self.format == Format::Binary
    }

    /// Moves the complete binary tuples at the start of `bytes` into `pending`; returns
    /// how many bytes they took.
    fn parse_binary(&mut self, bytes: &[u8]) -> Result<usize> {
        use crate::copy_binary::{field_text, parse_header, parse_tuple, Parsed};
        let mut at = 0;
        if !self.binary_header {
            match parse_header(bytes)? {
                Some(n) => {
                    at = n;
                    self.binary_header = true;
                }
                None => return Ok(0),
            }
        }
        while !self.binary_end {
            match parse_tuple(&bytes[at..], self.columns.len())? {
                Parsed::Incomplete => break,
                Parsed::End(n) => {
                    at += n;
                    self.binary_end = true;
                }
                Parsed::Tuple(n, fields) => {
                    self.line += 1;
                    for ((b, range), &c) in self.pending.iter_mut().zip(&fields).zip(&self.columns)
                    {
                        let col = &self.def.columns[c];
                        match range {
                            None => b.append_null(),
                            Some(r) => b.append_value(field_text(
                                &bytes[at + r.start..at + r.end],
                                &col.ty,
                                &col.name,
                            )?),
                        }
                    }
                    self.pending_rows += 1;
                    self.pending_bytes += n;
                    at += n;
                }
            }
        }
        if self.binary_end {
            // Anything after the trailer is ignored, as PostgreSQL does.
            at = bytes.len();
        }
        Ok(at)
    }

    /// Takes a CopyData payload.
    pub fn data(&mut self, session: &mut Session, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.buf.extend_from_slice(bytes);
        if let Err(e) = self.parse(false).and_then(|_| self.flush(session, false)) {
            self.failed = Some(e);
        }
    }

    /// The client finished: insert what is left, commit (autocommit mode), return the count.
    pub fn done(mut self, session: &mut Session) -> Result<u64> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.parse(true)?;
        self.flush(session, true)?;
        if let Some(previous) = self.in_flight.take() {
            blocking(|| previous.wait())?;
        }
        if let Some(txn) = self.own_txn.take() {
            blocking(|| txn.commit())?;
        }
        Ok(self.count)
    }

    /// Splits complete records off `buf` into `pending` (all of it at the end).
    fn parse(&mut self, at_end: bool) -> Result<()> {
        let bytes = std::mem::take(&mut self.buf);
        let mut start = 0;
        if self.format == Format::Binary {
            let used = self.parse_binary(&bytes)?;
            if at_end && used < bytes.len() {
                return Err(PgError::new(
                    SqlState::BadCopyFileFormat,
                    "unexpected EOF in COPY data",
                ));
            }
            self.buf = bytes[used..].to_vec();
            return Ok(());
        }
        match self.format {
            Format::Text => {
                // A newline ends a record unless a backslash escapes it (an odd run of
                // backslashes before it).
                let mut from = 0;
                while let Some(i) = memchr::memchr(b'\n', &bytes[from..]).map(|i| from + i) {
                    let slashes = bytes[start..i]
                        .iter()
                        .rev()
                        .take_while(|&&b| b == b'\\')
                        .count();
                    from = i + 1;
                    if slashes % 2 == 1 {
                        continue;
                    }
                    self.record(&bytes[start..i])?;
                    start = i + 1;
                }
            }
            Format::Binary => {}
            Format::Csv => {
                let mut in_quotes = false;
                for i in memchr::memchr2_iter(b'"', b'\n', &bytes) {
                    if bytes[i] == b'"' {
                        in_quotes = !in_quotes;
                    } else if !in_quotes {
                        self.record(&bytes[start..i])?;
                        start = i + 1;
                    }
                }
            }
        }
        if at_end && start < bytes.len() {
            self.record(&bytes[start..])?;
            start = bytes.len();
        }
        self.buf = bytes[start..].to_vec();
        Ok(())
    }

    fn record(&mut self, mut line: &[u8]) -> Result<()> {
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        self.line += 1;
        if self.header && self.line == 1 {
            return Ok(());
        }
        if self.format == Format::Text && line == b"\\." {
            return Ok(());
        }
        let text = std::str::from_utf8(line).map_err(|_| {
            PgError::new(
                SqlState::CharacterNotInRepertoire,
                format!(
                    "invalid byte sequence for encoding \"UTF8\" in COPY line {}",
                    self.line
                ),
            )
        })?;
        // Lines without escapes (text) or quotes (CSV), nearly all of a bulk load, go
        // straight into the builders; the others through the full parsers. A line with the
        // wrong number of fields fails the COPY, so the builders it filled are dropped.
        let special = match self.format {
            Format::Text | Format::Binary => b'\\',
            Format::Csv => b'"',
        };
        let found = if memchr::memchr(special, line).is_none() {
            let mut n = 0;
            for f in text.split(self.delimiter as char) {
                if let Some(b) = self.pending.get_mut(n) {
                    if f == self.null {
                        b.append_null();
                    } else {
                        b.append_value(f);
                    }
                }
                n += 1;
            }
            n
        } else {
            let fields = match self.format {
                Format::Text | Format::Binary => self.text_fields(text)?,
                Format::Csv => self.csv_fields(text)?,
            };
            if fields.len() == self.columns.len() {
                for (b, f) in self.pending.iter_mut().zip(&fields) {
                    b.append_option(f.as_deref());
                }
            }
            fields.len()
        };
        if found != self.columns.len() {
            return Err(PgError::new(
                SqlState::BadCopyFileFormat,
                format!(
                    "COPY line {}: expected {} columns, found {found}",
                    self.line,
                    self.columns.len(),
                ),
            ));
        }
        self.pending_rows += 1;
        self.pending_bytes += line.len() + 1;
        Ok(())
    }

    fn text_fields(&self, line: &str) -> Result<Vec<Option<String>>> {
        let d = self.delimiter as char;
        let mut out = Vec::with_capacity(self.columns.len());
        let mut raw = String::new();
        let mut field = String::new();
        let mut chars = line.chars().peekable();
        let finish = |raw: &mut String, field: &mut String, out: &mut Vec<Option<String>>| {
            if *raw == self.null {
                out.push(None);
            } else {
                out.push(Some(std::mem::take(field)));
            }
            raw.clear();
            field.clear();
        };
        while let Some(c) = chars.next() {
            if c == d {
                finish(&mut raw, &mut field, &mut out);
                continue;
            }
            raw.push(c);
            if c != '\\' {
                field.push(c);
                continue;
            }
            let Some(e) = chars.next() else {
                return Err(bad(format!("COPY line {}: trailing backslash", self.line)));
            };
            raw.push(e);
            match e {
                'b' => field.push('\u{8}'),
                'f' => field.push('\u{c}'),
                'n' => field.push('\n'),
                'r' => field.push('\r'),
                't' => field.push('\t'),
                'v' => field.push('\u{b}'),
                '0'..='7' => {
                    let mut v = e.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.peek().and_then(|c| c.to_digit(8)) {
                            Some(x) => {
                                v = v * 8 + x;
                                raw.push(chars.next().unwrap_or('0'));
                            }
                            None => break,
                        }
                    }
                    field.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
                'x' => {
                    let mut v = 0;
                    let mut n = 0;
                    while n < 2 {
                        match chars.peek().and_then(|c| c.to_digit(16)) {
                            Some(x) => {
                                v = v * 16 + x;
                                raw.push(chars.next().unwrap_or('0'));
                                n += 1;
                            }
                            None => break,
                        }
                    }
                    if n == 0 {
                        field.push('x');
                    } else {
                        field.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                }
                other => field.push(other),
            }
        }
        finish(&mut raw, &mut field, &mut out);
        Ok(out)
    }

    fn csv_fields(&self, line: &str) -> Result<Vec<Option<String>>> {
        let d = self.delimiter as char;
        let mut out = Vec::with_capacity(self.columns.len());
        let mut field = String::new();
        let mut quoted = false;
        let mut in_quotes = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_quotes {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        field.push('"');
                        chars.next();
                    } else {
                        in_quotes = false;
                    }
                } else {
                    field.push(c);
                }
            } else if c == '"' {
                in_quotes = true;
                quoted = true;
            } else if c == d {
                out.push(self.csv_value(std::mem::take(&mut field), quoted));
                quoted = false;
            } else {
                field.push(c);
            }
        }
        if in_quotes {
            return Err(PgError::new(
                SqlState::BadCopyFileFormat,
                format!("COPY line {}: unterminated CSV quoted field", self.line),
            ));
        }
        out.push(self.csv_value(field, quoted));
        Ok(out)
    }

    fn csv_value(&self, field: String, quoted: bool) -> Option<String> {
        // An unquoted field equal to the NULL string is NULL; a quoted one never is.
        if !quoted && field == self.null {
            None
        } else {
            Some(field)
        }
    }

    /// Converts and inserts pending records (all of them with `all`, else in full chunks),
    /// committing a batch in autocommit mode when it is large enough.
    fn flush(&mut self, session: &mut Session, all: bool) -> Result<()> {
        // Records are parsed a CopyData message at a time, so a flush may hold more than
        // INSERT_ROWS; they are converted together.
        while self.pending_rows >= INSERT_ROWS || (all && self.pending_rows > 0) {
            let n = self.pending_rows;
            self.pending_rows = 0;
            self.uncommitted_bytes += std::mem::take(&mut self.pending_bytes);
            let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
            // The display scales of unconstrained numerics: their written decimals.
            let mut scales: Vec<(usize, Int32Array)> = Vec::new();
            let zone = session.time_zone();
            for (j, &c) in self.columns.iter().enumerate() {
                let array: ArrayRef = Arc::new(self.pending[j].finish());
                let col = &self.def.columns[c];
                if let Some(s) = crate::types::input_scales(&array, &col.ty) {
                    scales.push((c, s));
                }
                arrays.push(assign_array_in(&array, &col.ty, &col.name, &zone)?);
            }
            let txn = match self.own_txn.as_mut() {
                Some(t) => t,
                None => session.txn_mut().ok_or_else(|| {
                    PgError::new(SqlState::InternalError, "COPY lost its transaction")
                })?,
            };
            if self.def.indexes.is_empty()
                && self.sequences.is_empty()
                && self.def.checks.is_empty()
                && self.def.foreign_keys.is_empty()
            {
                let (pks, rows) =
                    encode_batch(&self.def, &self.columns, &self.base, arrays, &scales, n)?;
                txn.insert_encoded(&self.def, pks, rows)?;
            } else {
                let mut iters = Vec::with_capacity(arrays.len());
                for (a, &c) in arrays.iter().zip(&self.columns) {
                    let ty = &self.def.columns[c].ty;
                    let mut datums = array_to_datums(a.as_ref(), ty)?;
                    if let Some((_, s)) = scales.iter().find(|(s, _)| *s == c) {
                        duet_common::batch::with_scales(&mut datums, s);
                    }
                    iters.push(datums.into_iter());
                }
                let mut rows = Vec::with_capacity(n);
                for _ in 0..n {
                    let mut row = self.base.clone();
                    for (it, &c) in iters.iter_mut().zip(&self.columns) {
                        row[c] = it.next().unwrap_or(Datum::Null);
                    }
                    rows.push(row);
                }
                if !self.sequences.is_empty() {
                    for row in &mut rows {
                        self.sequences.fill(session, row, |_| true)?;
                    }
                }
                crate::check::check_rows(session, &self.def, &rows)?;
                let txn = match self.own_txn.as_mut() {
                    Some(t) => t,
                    None => session.txn_mut().ok_or_else(|| {
                        PgError::new(SqlState::InternalError, "COPY lost its transaction")
                    })?,
                };
                if self.def.foreign_keys.is_empty() {
                    txn.insert_many(&self.def, rows)?;
                } else {
                    txn.insert_many(&self.def, rows.clone())?;
                    let store = session.store().clone();
                    let txn = match self.own_txn.as_mut() {
                        Some(t) => t,
                        None => session.txn_mut().ok_or_else(|| {
                            PgError::new(SqlState::InternalError, "COPY lost its transaction")
                        })?,
                    };
                    crate::foreign_key::check_inserted(&store, txn, &self.def, &rows)?;
                }
            }
            self.count += n as u64;
            self.uncommitted += n;
            if self.uncommitted >= COMMIT_ROWS || self.uncommitted_bytes >= COMMIT_BYTES {
                if let Some(t) = self.own_txn.take() {
                    // The batch commits while the next one is parsed; at most one waits.
                    let pending = t.commit_pipelined()?;
                    if let Some(previous) = self.in_flight.replace(pending) {
                        blocking(|| previous.wait())?;
                    }
                    self.own_txn = Some(session.autocommit_txn());
                    self.uncommitted = 0;
                    self.uncommitted_bytes = 0;
                }
            }
        }
        Ok(())
    }
}

/// Encoded primary keys (`None`: the table has none) and rows, one per record.
type EncodedBatch = (Option<Vec<Vec<u8>>>, Vec<Vec<u8>>);

/// A batch of `n` records of a table without secondary indexes, as encoded primary keys
/// (`None` without a primary key) and rows: `arrays` are the input columns (at positions
/// `columns`) in their storage types, the other columns take their value in `base`.
fn encode_batch(
    def: &TableDef,
    columns: &[usize],
    base: &[Datum],
    arrays: Vec<ArrayRef>,
    scales: &[(usize, Int32Array)],
    n: usize,
) -> Result<EncodedBatch> {
    let mut given: Vec<Option<ArrayRef>> = vec![None; def.columns.len()];
    for (a, &c) in arrays.into_iter().zip(columns) {
        given[c] = Some(a);
    }
    let mut all = Vec::with_capacity(given.len());
    for (c, a) in given.into_iter().enumerate() {
        let col = &def.columns[c];
        let a = match a {
            Some(a) => a,
            None => datums_to_array(&col.ty, std::iter::repeat_n(&base[c], n))?,
        };
        if a.null_count() > 0 && def.not_null(c) {
            return Err(duet_rowstore::Error::NotNullViolation {
                table: def.name.clone(),
                column: col.name.clone(),
            }
            .into());
        }
        all.push(a);
    }
    let pks = if def.has_hidden_rowid() {
        None
    } else {
        let key_columns = def
            .primary_key
            .iter()
            .map(|&c| array_to_datums(all[c].as_ref(), &def.columns[c].ty))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut tuple = Vec::with_capacity(key_columns.len());
        let pks = (0..n)
            .map(|r| {
                tuple.clear();
                tuple.extend(key_columns.iter().map(|c| c[r].clone()));
                memcmp::encode_tuple(&tuple)
            })
            .collect();
        Some(pks)
    };
    // Columns not given take `base`'s values, with their scales.
    let mut scales: Vec<(usize, Int32Array)> = scales.to_vec();
    for c in def.scaled_columns() {
        if !columns.contains(&c) {
            scales.push((
                c,
                duet_common::batch::scales_array(std::iter::repeat_n(&base[c], n)),
            ));
        }
    }
    let scale_refs: Vec<(usize, &Int32Array)> = scales.iter().map(|(c, a)| (*c, a)).collect();
    Ok((pks, encode_rows(&def.types(), &all, &scale_refs)?))
}

/// `COPY t [(cols)] TO STDOUT` / `COPY (query) TO STDOUT`: the rows are read like a
/// `SELECT` (so the router may read the column replica) and streamed back as CopyData, one
/// message per row, in the text or CSV format.
pub async fn copy_to(session: &mut Session, stmt: Statement) -> Result<crate::session::Outcome> {
    let Statement::Copy {
        source,
        target,
        options,
        legacy_options,
        ..
    } = stmt
    else {
        return Err(PgError::new(
            SqlState::InternalError,
            "not a COPY statement",
        ));
    };
    if !matches!(target, CopyTarget::Stdout) {
        return Err(PgError::new(
            SqlState::FeatureNotSupported,
            "COPY TO a file is not supported; use COPY … TO STDOUT",
        ));
    }
    let opts = CopyOptions::parse(options, legacy_options)?;
    let query = match source {
        CopySource::Query(q) => Statement::Query(q),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let name = crate::ident::table_name(&table_name)?;
            let def = session.table(&name)?;
            let cols: Vec<String> = column_positions(&def, &name, &columns)?
                .into_iter()
                .map(|c| crate::ident::quote(&def.columns[c].name))
                .collect();
            let sql = format!(
                "SELECT {} FROM {}",
                cols.join(", "),
                crate::ident::quote(&name)
            );
            crate::connection::parse_sql(&sql)?
                .pop()
                .ok_or_else(|| PgError::new(SqlState::InternalError, "empty COPY query"))?
        }
    };
    let crate::session::Outcome::Stream { stream, .. } = session.query(query).await? else {
        return Err(PgError::new(
            SqlState::InternalError,
            "COPY query did not stream",
        ));
    };
    // Numerics printed with their display scales (pgsemantics/dscale.rs).
    let scales = duet_wire::encode::display_scale_columns(&stream.schema());
    let schema = duet_wire::encode::visible_schema(&stream.schema(), &scales);
    let stream: datafusion::execution::SendableRecordBatchStream = if scales.is_empty() {
        stream
    } else {
        use futures::StreamExt;
        let text = opts.format != Format::Binary;
        Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                schema.clone(),
                stream.map(move |b| {
                    b.map(|b| duet_wire::encode::with_display_scales(&b, &scales, &|_| text))
                }),
            ),
        )
    };
    Ok(crate::session::Outcome::CopyOut {
        columns: schema.fields().len(),
        stream,
        encoder: CopyOutEncoder {
            header: opts.header.then(|| {
                schema
                    .fields()
                    .iter()
                    .map(|f| duet_wire::encode::output_name(f.name()).to_string())
                    .collect()
            }),
            opts,
            widths: duet_wire::encode::bpchar_widths(&schema),
            binary_started: false,
        },
    })
}

/// Turns result batches into COPY text or CSV rows.
pub struct CopyOutEncoder {
    opts: CopyOptions,
    /// Column names, until the header line has been written.
    header: Option<Vec<String>>,
    widths: Vec<Option<usize>>,
    /// Binary format: whether the file header has gone out.
    binary_started: bool,
}

impl CopyOutEncoder {
    /// Whether rows go out in the binary format.
    pub fn is_binary(&self) -> bool {
        self.opts.format == Format::Binary
    }

    /// One line per row of `batch` (the header goes in front of the first row).
    pub fn encode(&mut self, batch: &arrow::record_batch::RecordBatch) -> Result<Vec<Vec<u8>>> {
        let batch = duet_wire::encode::pad_bpchar_columns(batch, &self.widths);
        if self.is_binary() {
            let mut out = Vec::with_capacity(batch.num_rows());
            for r in 0..batch.num_rows() {
                let mut tuple = if self.binary_started {
                    Vec::new()
                } else {
                    self.binary_started = true;
                    crate::copy_binary::HEADER.to_vec()
                };
                crate::copy_binary::encode_tuple(batch.columns(), r, &mut tuple)?;
                out.push(tuple);
            }
            return Ok(out);
        }
        let batch = duet_wire::encode::pg_text_columns(&batch, &|_| true);
        let texts: Vec<Vec<Option<String>>> = batch
            .columns()
            .iter()
            .map(copy_text_values)
            .collect::<Result<_>>()?;
        let mut lines = Vec::with_capacity(batch.num_rows());
        for r in 0..batch.num_rows() {
            let mut line = self.finish().unwrap_or_default();
            self.write_record(&mut line, texts.iter().map(|c| c[r].as_deref()));
            lines.push(line);
        }
        Ok(lines)
    }

    /// The header line if it has not been written yet (it goes in front of the first row,
    /// or alone at the end when there are no rows).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.is_binary() {
            // The header, if no row carried it; pgwire appends the trailer to a binary copy.
            if self.binary_started {
                return None;
            }
            self.binary_started = true;
            return Some(crate::copy_binary::HEADER.to_vec());
        }
        let names = self.header.take()?;
        let mut line = Vec::new();
        self.write_record(&mut line, names.iter().map(|n| Some(n.as_str())));
        Some(line)
    }

    fn write_record<'a>(&self, out: &mut Vec<u8>, fields: impl Iterator<Item = Option<&'a str>>) {
        let d = self.opts.delimiter;
        for (i, f) in fields.enumerate() {
            if i > 0 {
                out.push(d);
            }
            match (f, &self.opts.format) {
                (None, _) => out.extend_from_slice(self.opts.null.as_bytes()),
                (Some(v), Format::Text | Format::Binary) => {
                    for &b in v.as_bytes() {
                        match b {
                            b'\\' => out.extend_from_slice(b"\\\\"),
                            b'\n' => out.extend_from_slice(b"\\n"),
                            b'\r' => out.extend_from_slice(b"\\r"),
                            b'\t' => out.extend_from_slice(b"\\t"),
                            b if b == d => {
                                out.push(b'\\');
                                out.push(b);
                            }
                            b => out.push(b),
                        }
                    }
                }
                (Some(v), Format::Csv) => {
                    let quote = v == self.opts.null
                        || v.bytes()
                            .any(|b| b == d || b == b'"' || b == b'\n' || b == b'\r');
                    if quote {
                        out.push(b'"');
                        for b in v.bytes() {
                            if b == b'"' {
                                out.push(b'"');
                            }
                            out.push(b);
                        }
                        out.push(b'"');
                    } else {
                        out.extend_from_slice(v.as_bytes());
                    }
                }
            }
        }
        out.push(b'\n');
    }
}

/// PostgreSQL's text form of each value of `col` (after `pg_text_columns`, which already
/// rewrote floats and timestamps): booleans `t`/`f`, bytea `\x…` hex, arrays as
/// PostgreSQL writes them (`{1,2,NULL}`), the rest as Arrow prints it.
fn copy_text_values(col: &ArrayRef) -> Result<Vec<Option<String>>> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::DataType;
    let n = col.len();
    Ok(match col.data_type() {
        DataType::Boolean => col
            .as_boolean()
            .iter()
            .map(|v| v.map(|b| if b { "t" } else { "f" }.to_string()))
            .collect(),
        DataType::Binary => col
            .as_binary::<i32>()
            .iter()
            .map(|v| {
                v.map(|b| {
                    let mut s = String::with_capacity(2 + 2 * b.len());
                    s.push_str("\\x");
                    for byte in b {
                        use std::fmt::Write;
                        let _ = write!(s, "{byte:02x}");
                    }
                    s
                })
            })
            .collect(),
        DataType::List(_) => {
            let text = duet_wire::encode::pg_array_text(col).ok_or_else(|| {
                crate::error::PgError::new(SqlState::InternalError, "COPY: array text")
            })?;
            let s = text.as_string::<i32>();
            (0..n)
                .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
                .collect()
        }
        _ => {
            let s = arrow::compute::cast(col, &DataType::Utf8)
                .map_err(|e| from_datafusion(e.into()))?;
            let s = s.as_string::<i32>();
            (0..n)
                .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
                .collect()
        }
    })
}
