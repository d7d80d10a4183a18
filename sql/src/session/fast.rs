//! The fast path of a session: primary-key point statements recognised once
//! ([`crate::fastpath`]) run here without DataFusion; an autocommit write's commit is
//! awaited outside the statement, so no thread waits for the Raft log.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use duet_router::routing::Engine;
use duet_rowstore::Transaction;
use sqlparser::ast::Statement;

use super::{Outcome, Session};
use crate::error::{PgError, Result};
use crate::fastpath::{Bound, FastPlan};

/// A fast-path statement that has run; an autocommit write's commit is still on its way.
struct FastDone {
    outcome: Outcome,
    commit: Option<duet_rowstore::txn::PendingCommit>,
}

/// The outcome of a fast-path statement once its commit (if any) is applied.
async fn settle_fast(done: Result<FastDone>) -> Result<Outcome> {
    let done = done?;
    if let Some(commit) = done.commit {
        commit.applied().await?;
    }
    Ok(done.outcome)
}

impl Session {
    /// The fast path alone: `None` when `stmt` does not run there now (not a fast-path shape,
    /// the fast path is off, the block has failed, or its parameters do not bind exactly);
    /// the caller then runs [`Self::execute_general`]. `cached` is the plan made when the
    /// statement was parsed, used while its table is unchanged. Kept apart from the general
    /// path's future, which is large: awaiting it for a point query cost a copy of its whole
    /// state per statement. Its only await is an autocommit write's commit.
    pub async fn execute_fast(
        &mut self,
        stmt: &Statement,
        cached: Option<&Arc<FastPlan>>,
        params: &ParamValues,
    ) -> Option<Result<Outcome>> {
        self.take_stream_failure();
        if self.failed {
            return None;
        }
        let plan = self.fast_plan(stmt, cached)?;
        if let Err(e) = self.confirm_reads() {
            return Some(Err(e));
        }
        self.begin_block_statement();
        let result = settle_fast(self.run_fast(&plan, params)?).await;
        self.end_statement(&result);
        Some(result)
    }

    /// `duet.fast_path`.
    pub fn fast_path_enabled(&self) -> bool {
        self.settings.fast_path
    }

    /// The fast-path plan of `stmt` as this session would run it now: `cached` if its table
    /// has not changed since, else recognised afresh.
    pub(super) fn fast_plan(
        &self,
        stmt: &Statement,
        cached: Option<&Arc<FastPlan>>,
    ) -> Option<Arc<FastPlan>> {
        if !self.settings.fast_path
            || !matches!(
                stmt,
                Statement::Query(_)
                    | Statement::Insert(_)
                    | Statement::Update(_)
                    | Statement::Delete(_)
            )
        {
            return None;
        }
        // A forced column replica (setting or hint) is a request for the general path.
        if self.route.settings.lock().engine == Engine::Column
            || !self.route.statement.lock().hints.is_empty()
        {
            return None;
        }
        let store = &self.shared.store;
        match cached {
            Some(p) if p.is_current(store) => Some(p.clone()),
            _ => FastPlan::recognize(stmt, store).map(Arc::new),
        }
    }

    /// Runs a fast-path plan. `None` when its parameters do not bind exactly, or an UPDATE's
    /// result cannot be computed here: nothing has been written then, and the caller runs
    /// the statement the general way (which reports any error).
    /// An autocommit write comes back with its commit proposed, not yet applied: the caller
    /// awaits it ([`settle_fast`]), so no thread waits for the Raft log.
    fn run_fast(&mut self, plan: &FastPlan, params: &ParamValues) -> Option<Result<FastDone>> {
        let bound = plan.bind(params)?;
        let def = &plan.def;
        let start = std::time::Instant::now();
        let (rows, result) = match bound {
            Bound::Select {
                pk,
                columns,
                schema,
            } => {
                let row = match pk {
                    None => Ok(None),
                    Some(pk) => match &self.txn {
                        Some(t) => t.get_row(def, &pk),
                        None => duet_rowstore::txn::read_row_now(&self.shared.store, def, &pk),
                    },
                };
                let result = row.map_err(PgError::from).and_then(|row| {
                    let rows: Vec<duet_common::Row> = row.into_iter().collect();
                    let batch = duet_common::batch::rows_to_batch(def, &columns, &rows)?;
                    let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                        .map_err(datafusion::error::DataFusionError::from)?;
                    Ok(FastDone {
                        outcome: Outcome::Batches {
                            schema,
                            batches: vec![batch],
                            tag: "SELECT".into(),
                        },
                        commit: None,
                    })
                });
                let n = match &result {
                    Ok(FastDone {
                        outcome: Outcome::Batches { batches, .. },
                        ..
                    }) => batches[0].num_rows() as u64,
                    _ => 0,
                };
                (n, result)
            }
            write => {
                let mut scope = self.txn_scope();
                // The command tag's verb and the rows written; `None`: the general path.
                let done = loop {
                    let done = write_fast(def, &write, &mut scope.txn);
                    if !scope.again(&done) {
                        break done;
                    }
                };
                let (verb, n) = match done {
                    Ok(Some(written)) => written,
                    other => {
                        // Ok(None): nothing was written; the general path runs it.
                        self.put_back(scope);
                        return other.err().map(Err);
                    }
                };
                let tag = Outcome::Command(format!("{verb} {n}"));
                let result = match self.put_back(scope) {
                    Some(txn) => txn
                        .commit_pipelined()
                        .map(|p| FastDone {
                            outcome: tag,
                            commit: Some(p),
                        })
                        .map_err(PgError::from),
                    None => Ok(FastDone {
                        outcome: tag,
                        commit: None,
                    }),
                };
                (n, result)
            }
        };
        let text = self.route.statement.lock().text.clone();
        // Under `duet.engine = 'row'` the choice was the session's, as for a routed scan.
        let reason = if self.route.settings.lock().engine == Engine::Row {
            format!("session setting; {}", plan.reason())
        } else {
            plan.reason().to_string()
        };
        self.shared
            .router
            .log_fast_path(text, &def.name, reason, rows, start.elapsed());
        Some(result)
    }
}

/// One run of a fast-path write in `txn`: the command tag's verb and the rows written, or
/// `None` when the statement must run the general way (nothing was written then).
fn write_fast(
    def: &duet_common::TableDef,
    write: &Bound,
    txn: &mut Transaction,
) -> Result<Option<(&'static str, u64)>> {
    match write {
        Bound::Update { pk, plan: set } => {
            let old = match pk {
                Some(pk) => txn.get_row(def, pk)?,
                None => None,
            };
            let (Some(pk), Some(old)) = (pk, old) else {
                return Ok(Some(("UPDATE", 0)));
            };
            let Some(new) = set.apply(def, &old) else {
                return Ok(None);
            };
            txn.replace(def, pk, &old, new)?;
            Ok(Some(("UPDATE", 1)))
        }
        Bound::Delete { pk } => match pk {
            Some(pk) => Ok(Some(("DELETE", txn.delete(def, pk)?.is_some() as u64))),
            None => Ok(Some(("DELETE", 0))),
        },
        Bound::Insert { rows } => {
            txn.insert_many(def, rows.clone())?;
            Ok(Some(("INSERT 0", rows.len() as u64)))
        }
        Bound::Select { .. } => Err(PgError::new(
            crate::error::SqlState::InternalError,
            "a fast-path SELECT is not a write",
        )),
    }
}
