//! Transactions of a session: BEGIN, COMMIT, ROLLBACK, isolation levels, the deadlines of
//! row-lock waits, and [`TxnScope`], the one place a statement gets the transaction it
//! writes in (the block's or an autocommit one), re-runs on a READ COMMITTED restart, and
//! commits or gives the transaction back.

use std::sync::Arc;

use duet_rowstore::{Isolation, LockWait, Transaction};
use sqlparser::ast::{TransactionIsolationLevel, TransactionMode};

use super::settings::isolation_name;
use super::{blocking, Outcome, Session, SERIALIZABLE_NOTICE};
use crate::error::Result;

/// Times a READ COMMITTED statement runs again after rows it writes changed under it,
/// before it gives up with 40001.
const MAX_RESTARTS: usize = 100;

/// The transaction one statement writes in: the block's, taken out of the session while
/// the statement runs, or a fresh autocommit one; and the statement's READ COMMITTED
/// re-runs (where it started, how often it has run again).
pub(crate) struct TxnScope {
    pub txn: Transaction,
    autocommit: bool,
    mark: duet_rowstore::txn::StatementMark,
    restarts: usize,
}

impl TxnScope {
    /// Whether `result` asks for the statement to run again: a row it writes changed after
    /// its snapshot and its lock is held now. If so the transaction is ready for it (its
    /// writes back at the statement's start, a fresh snapshot, its locks kept), so the next
    /// run sees the row's newest version (PostgreSQL re-checks the row; re-running the
    /// statement is the same for one row and safe for many).
    pub fn again<T>(&mut self, result: &Result<T>) -> bool {
        match result {
            Err(e) if e.restart && self.restarts < MAX_RESTARTS => {
                self.restarts += 1;
                self.txn.restart_statement(&self.mark);
                true
            }
            _ => false,
        }
    }
}

/// Runs a row-lock wait on a thread of its own (see [`blocking`]).
fn wait_in_place(f: &mut dyn FnMut()) {
    blocking(f)
}

impl Session {
    /// The transaction the next statement writes in (see [`TxnScope`]).
    pub(crate) fn txn_scope(&mut self) -> TxnScope {
        let (mut txn, autocommit) = match self.txn.take() {
            Some(t) => (t, false),
            None => (self.autocommit_txn(), true),
        };
        TxnScope {
            mark: txn.begin_statement(),
            txn,
            autocommit,
            restarts: 0,
        }
    }

    /// Ends a statement's use of `scope` without committing: a block's transaction goes
    /// back to the session, an autocommit one is returned (to commit, or to drop).
    pub(crate) fn put_back(&mut self, scope: TxnScope) -> Option<Transaction> {
        if scope.autocommit {
            Some(scope.txn)
        } else {
            self.txn = Some(scope.txn);
            None
        }
    }

    /// Ends a statement that wrote in `scope`: an autocommit transaction commits if the
    /// statement succeeded (this waits for the commit to be applied); a block's goes back.
    pub(crate) async fn finish_scope<T>(
        &mut self,
        scope: TxnScope,
        result: Result<T>,
    ) -> Result<T> {
        // The plans hold their own read views; the slot must not keep this statement's
        // snapshot pinned.
        *self.view.lock() = None;
        match self.put_back(scope) {
            Some(mut txn) => {
                // Foreign keys deferred by their definition are checked at this commit.
                let checked = match &result {
                    Ok(_) if self.fk.has_deferred() => {
                        crate::foreign_key::before_commit(self, &mut txn)
                    }
                    _ => Ok(()),
                };
                self.fk.reset();
                checked?;
                let out = result?;
                txn.commit_pipelined()?.applied().await?;
                Ok(out)
            }
            None => result,
        }
    }

    /// ROLLBACK: the block ends, whatever it wrote is dropped.
    pub(super) fn rollback(&mut self) -> Outcome {
        if self.txn.is_none() {
            self.notices
                .push("there is no transaction in progress".into());
        }
        self.txn = None;
        self.failed = false;
        self.savepoints.clear();
        self.fk.reset();
        self.end_cursors(false);
        let d = self.settings.default_isolation;
        self.show_isolation(d);
        Outcome::End("ROLLBACK")
    }

    /// `default_transaction_isolation` (also SET SESSION CHARACTERISTICS); outside a block
    /// `transaction_isolation` shows it too. Returns how `SHOW` spells it.
    pub(super) fn set_default_isolation(&mut self, level: Isolation) -> &'static str {
        self.settings.default_isolation = level;
        if self.txn.is_none() {
            self.show_isolation(level);
        }
        isolation_name(level)
    }

    /// `SET transaction_isolation` / `SET TRANSACTION`: the running block's level.
    pub(super) fn set_transaction_isolation(&mut self, level: Isolation) {
        if let Some(t) = &mut self.txn {
            t.set_isolation(level);
            self.show_isolation(level);
        }
    }

    /// READ COMMITTED: every statement of a block reads the newest committed state.
    pub(super) fn begin_block_statement(&mut self) {
        if self.txn.is_some() {
            let wait = self.lock_wait();
            if let Some(t) = &mut self.txn {
                t.set_lock_wait(wait);
                drop(t.begin_statement());
            }
        }
    }

    pub(super) fn end_statement(&mut self, result: &Result<Outcome>) {
        // The plans hold their own read views; the slot must not keep this statement's
        // snapshot pinned while the session sits idle (a pin holds back column compaction).
        *self.view.lock() = None;
        if result.is_err() && self.txn.is_some() {
            self.failed = true;
        }
    }

    pub(super) fn begin(&mut self, modes: &[TransactionMode]) -> Outcome {
        if self.txn.is_some() {
            self.notices
                .push("there is already a transaction in progress".into());
            return Outcome::Begin;
        }
        let level = self
            .isolation_of(modes)
            .unwrap_or(self.settings.default_isolation);
        self.show_isolation(level);
        self.txn = Some(Transaction::begin_with(&self.shared.store, level));
        self.failed = false;
        self.savepoints.clear();
        self.fk.reset();
        Outcome::Begin
    }

    /// The isolation level `modes` ask for, if any (SERIALIZABLE runs as REPEATABLE READ,
    /// with a notice).
    pub(super) fn isolation_of(&mut self, modes: &[TransactionMode]) -> Option<Isolation> {
        let mut out = None;
        for m in modes {
            if let TransactionMode::IsolationLevel(level) = m {
                out = Some(match level {
                    TransactionIsolationLevel::ReadUncommitted
                    | TransactionIsolationLevel::ReadCommitted => Isolation::ReadCommitted,
                    TransactionIsolationLevel::RepeatableRead
                    | TransactionIsolationLevel::Snapshot => Isolation::RepeatableRead,
                    TransactionIsolationLevel::Serializable => {
                        self.notices.push(SERIALIZABLE_NOTICE.into());
                        Isolation::RepeatableRead
                    }
                });
            }
        }
        out
    }

    pub(super) fn show_isolation(&mut self, level: Isolation) {
        self.settings
            .show("transaction_isolation", isolation_name(level));
    }

    /// What may end a row-lock wait of the statement about to run: its cancel token,
    /// `lock_timeout` and `statement_timeout`.
    pub(super) fn lock_wait(&self) -> LockWait {
        let token = self.cancel.lock().clone();
        let nonzero = |d: std::time::Duration| (!d.is_zero()).then_some(d);
        let now = std::time::Instant::now();
        let lock = nonzero(self.settings.lock_timeout)
            .map(|d| (now + d, duet_rowstore::Error::LockTimeout));
        let stmt = nonzero(self.settings.statement_timeout)
            .map(|d| (now + d, duet_rowstore::Error::StatementTimeout));
        let first = match (lock, stmt) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        LockWait {
            deadline: first.as_ref().map(|f| f.0),
            deadline_error: first.map(|f| f.1),
            cancelled: Some(Arc::new(move || token.is_cancelled())),
            blocking: Some(wait_in_place),
        }
    }

    /// A transaction for one statement outside a block (READ COMMITTED, as in PostgreSQL).
    pub(crate) fn autocommit_txn(&self) -> Transaction {
        let mut t = Transaction::begin(&self.shared.store);
        t.set_lock_wait(self.lock_wait());
        t
    }

    /// Ends the explicit transaction. A failed commit (write conflict) still ends the
    /// block: the error is returned and the session is idle again, as in PostgreSQL.
    pub(super) async fn commit(&mut self) -> Result<Outcome> {
        let d = self.settings.default_isolation;
        self.show_isolation(d);
        self.savepoints.clear();
        let Some(mut txn) = self.txn.take() else {
            self.notices
                .push("there is no transaction in progress".into());
            return Ok(Outcome::End("COMMIT"));
        };
        if self.failed {
            self.failed = false;
            self.fk.reset();
            self.end_cursors(false);
            return Ok(Outcome::End("ROLLBACK"));
        }
        // Deferred foreign-key checks: one that fails rolls the transaction back.
        if let Err(e) = crate::foreign_key::before_commit(self, &mut txn) {
            self.end_cursors(false);
            return Err(e);
        }
        let committed = match txn.commit_pipelined() {
            Ok(p) => p.applied().await,
            Err(e) => Err(e),
        };
        self.end_cursors(committed.is_ok());
        committed?;
        Ok(Outcome::End("COMMIT"))
    }

    /// SAVEPOINT: remembers the block's writes under `name` (a name may be reused; the
    /// newest is meant after that, as in PostgreSQL).
    pub(super) fn savepoint(&mut self, name: &sqlparser::ast::Ident) -> Result<Outcome> {
        let txn = self.block("SAVEPOINT")?;
        let mark = txn.savepoint();
        self.savepoints.push((crate::ident::ident_name(name), mark));
        Ok(Outcome::Command("SAVEPOINT".into()))
    }

    /// RELEASE SAVEPOINT: forgets `name` and every savepoint set after it; the writes stay.
    pub(super) fn release_savepoint(&mut self, name: &sqlparser::ast::Ident) -> Result<Outcome> {
        self.block("RELEASE SAVEPOINT")?;
        let at = self.find_savepoint(name)?;
        self.savepoints.truncate(at);
        Ok(Outcome::Command("RELEASE".into()))
    }

    /// ROLLBACK TO SAVEPOINT: drops the writes made since `name` was set (and the savepoints
    /// set after it; `name` stays) and ends a failed state, so the block goes on.
    pub(super) fn rollback_to_savepoint(
        &mut self,
        name: &sqlparser::ast::Ident,
    ) -> Result<Outcome> {
        self.block("ROLLBACK TO SAVEPOINT")?;
        let at = self.find_savepoint(name)?;
        self.savepoints.truncate(at + 1);
        if let Some(txn) = &mut self.txn {
            txn.rollback_to(&self.savepoints[at].1);
        }
        self.failed = false;
        Ok(Outcome::Command("ROLLBACK".into()))
    }

    /// The open block's transaction, or 25P01 naming `what`.
    fn block(&self, what: &str) -> Result<&Transaction> {
        self.txn.as_ref().ok_or_else(|| {
            crate::error::PgError::new(
                crate::error::SqlState::NoActiveSqlTransaction,
                format!("{what} can only be used in transaction blocks"),
            )
        })
    }

    /// Where the newest savepoint called `name` is, or 3B001.
    fn find_savepoint(&self, name: &sqlparser::ast::Ident) -> Result<usize> {
        let name = crate::ident::ident_name(name);
        self.savepoints
            .iter()
            .rposition(|(n, _)| *n == name)
            .ok_or_else(|| {
                crate::error::PgError::new(
                    crate::error::SqlState::InvalidSavepointSpecification,
                    format!("savepoint \"{name}\" does not exist"),
                )
            })
    }
}
