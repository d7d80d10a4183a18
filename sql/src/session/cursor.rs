//! Cursors: `DECLARE name [BINARY] [NO SCROLL] CURSOR [WITH | WITHOUT HOLD] FOR query`,
//! `FETCH [FORWARD] [n | ALL | NEXT] [FROM | IN] name`, `MOVE`, `CLOSE name | ALL`.
//! psycopg's named cursors (Django's `QuerySet.iterator()`) read large results this way.
//!
//! A cursor is forward-only. Without HOLD it lives in its transaction block (25P01
//! outside one) and reads the query's result stream as FETCH asks for rows; WITH HOLD it
//! outlives the block, its rows computed when it is declared.

use std::collections::VecDeque;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use sqlparser::ast::{FetchDirection, Statement};

use super::{Outcome, Session};
use crate::error::{from_datafusion, PgError, Result, SqlState};
use crate::ident::ident_name;

/// An open cursor.
pub(crate) struct Cursor {
    schema: SchemaRef,
    /// Rows computed and not yet fetched.
    ready: VecDeque<RecordBatch>,
    /// The rest of the result (none for a WITH HOLD cursor, computed in full); behind a
    /// mutex only so the session stays `Sync` (it is reached through `&mut self`).
    stream: std::sync::Mutex<Option<SendableRecordBatchStream>>,
    hold: bool,
}

impl Cursor {
    /// Up to `n` more rows.
    async fn take(&mut self, mut n: usize) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        while n > 0 {
            let batch = match self.ready.pop_front() {
                Some(b) => b,
                None => {
                    let stream = self
                        .stream
                        .get_mut()
                        .map_err(|_| PgError::new(SqlState::InternalError, "cursor poisoned"))?;
                    match stream.as_mut() {
                        Some(s) => match s.next().await {
                            Some(b) => b.map_err(from_datafusion)?,
                            None => {
                                *stream = None;
                                break;
                            }
                        },
                        None => break,
                    }
                }
            };
            if batch.num_rows() > n {
                out.push(batch.slice(0, n));
                self.ready.push_front(batch.slice(n, batch.num_rows() - n));
                n = 0;
            } else {
                n -= batch.num_rows();
                out.push(batch);
            }
        }
        Ok(out)
    }
}

fn unknown(name: &str) -> PgError {
    PgError::new(
        SqlState::InvalidCursorName,
        format!("cursor \"{name}\" does not exist"),
    )
}

/// How many rows a FETCH or MOVE asks for (`None`: all), or 0A000 for a backward one.
fn count(direction: &FetchDirection) -> Result<Option<usize>> {
    let number = |v: &sqlparser::ast::ValueWithSpan| -> Result<i64> {
        match &v.value {
            sqlparser::ast::Value::Number(n, _) => n
                .parse()
                .map_err(|_| PgError::new(SqlState::SyntaxError, "bad FETCH count")),
            _ => Err(PgError::new(SqlState::SyntaxError, "bad FETCH count")),
        }
    };
    let forward = |n: i64| {
        usize::try_from(n)
            .map(Some)
            .map_err(|_| PgError::unsupported("FETCH backward (cursors scan forward only)"))
    };
    match direction {
        FetchDirection::Next => Ok(Some(1)),
        FetchDirection::All | FetchDirection::ForwardAll => Ok(None),
        FetchDirection::Count { limit } => forward(number(limit)?),
        FetchDirection::Forward { limit: None } => Ok(Some(1)),
        FetchDirection::Forward { limit: Some(l) } => forward(number(l)?),
        other => Err(PgError::unsupported(format!(
            "FETCH {other} (cursors scan forward only)"
        ))),
    }
}

impl Session {
    /// DECLARE … CURSOR FOR query.
    pub(super) async fn declare(
        &mut self,
        stmt: &Statement,
        params: &ParamValues,
    ) -> Result<Outcome> {
        let Statement::Declare { stmts } = stmt else {
            return Err(PgError::new(SqlState::InternalError, "not a DECLARE"));
        };
        let [d] = stmts.as_slice() else {
            return Err(PgError::unsupported("DECLARE of several names"));
        };
        let (Some(query), [name]) = (&d.for_query, d.names.as_slice()) else {
            return Err(PgError::unsupported("DECLARE of a variable"));
        };
        if d.scroll == Some(true) {
            return Err(PgError::unsupported("SCROLL cursors"));
        }
        let name = ident_name(name);
        let hold = d.hold == Some(true);
        if !hold && self.txn.is_none() {
            return Err(PgError::new(
                SqlState::NoActiveSqlTransaction,
                "DECLARE CURSOR can only be used in transaction blocks",
            ));
        }
        if self.cursors.contains_key(&name) {
            return Err(PgError::new(
                SqlState::DuplicateCursor,
                format!("cursor \"{name}\" already exists"),
            ));
        }
        if let Some(t) = &self.txn {
            self.set_view(Some(t.view()));
        } else {
            self.publish_view();
        }
        let Outcome::Stream { stream, .. } = self
            .run_query(Statement::Query(query.clone()), params)
            .await?
        else {
            return Err(PgError::new(
                SqlState::InternalError,
                "cursor query did not stream",
            ));
        };
        let schema = stream.schema();
        let mut cursor = Cursor {
            schema,
            ready: VecDeque::new(),
            stream: std::sync::Mutex::new(Some(stream)),
            hold,
        };
        if hold {
            // Computed now: the rows outlive the transaction and its snapshot.
            let all = cursor.take(usize::MAX).await?;
            cursor.ready = all.into();
        }
        self.cursors.insert(name, cursor);
        Ok(Outcome::Command("DECLARE CURSOR".into()))
    }

    /// FETCH (rows) or MOVE (a count).
    pub(super) async fn fetch(&mut self, stmt: &Statement) -> Result<Outcome> {
        let Statement::Fetch {
            name, direction, ..
        } = stmt
        else {
            return Err(PgError::new(SqlState::InternalError, "not a FETCH"));
        };
        let name = ident_name(name);
        let n = count(direction)?.unwrap_or(usize::MAX);
        let cursor = self.cursors.get_mut(&name).ok_or_else(|| unknown(&name))?;
        let batches = cursor.take(n).await?;
        Ok(Outcome::Batches {
            schema: cursor.schema.clone(),
            batches,
            tag: "FETCH".into(),
        })
    }

    /// The columns FETCH from cursor `name` returns (for Describe).
    pub(crate) fn cursor_schema(&self, name: &sqlparser::ast::Ident) -> Result<SchemaRef> {
        let name = ident_name(name);
        self.cursors
            .get(&name)
            .map(|c| c.schema.clone())
            .ok_or_else(|| unknown(&name))
    }

    /// CLOSE name | ALL.
    pub(super) fn close_cursor(&mut self, name: Option<&sqlparser::ast::Ident>) -> Result<Outcome> {
        match name {
            None => {
                self.cursors.clear();
                Ok(Outcome::Command("CLOSE CURSOR ALL".into()))
            }
            Some(n) => {
                let n = ident_name(n);
                self.cursors.remove(&n).ok_or_else(|| unknown(&n))?;
                Ok(Outcome::Command("CLOSE CURSOR".into()))
            }
        }
    }

    /// At the end of a transaction block its cursors close; WITH HOLD ones stay after a
    /// COMMIT.
    pub(super) fn end_cursors(&mut self, committed: bool) {
        self.cursors.retain(|_, c| committed && c.hold);
    }
}
