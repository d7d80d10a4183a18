//! `SELECT … FOR UPDATE | FOR SHARE [NOWAIT]` inside a transaction block.

use datafusion::common::ParamValues;
use sqlparser::ast::Statement;

use super::{Outcome, Session};
use crate::dml;
use crate::error::{PgError, Result};

impl Session {
    /// `SELECT … FROM t [WHERE …] FOR UPDATE | FOR SHARE [NOWAIT]`: locks every row of `t`
    /// the WHERE clause matches, as a write would (READ COMMITTED re-reads a row that changed
    /// after the snapshot by running the statement again), then answers the query at the
    /// snapshot where all of them were locked. FOR SHARE takes the same exclusive lock.
    pub(super) async fn select_for_update(
        &mut self,
        mut q: sqlparser::ast::Query,
        params: &ParamValues,
    ) -> Result<Outcome> {
        use sqlparser::ast::{NonBlock, SetExpr, TableFactor};
        let unsupported = |what: &str| Err(PgError::unsupported(what));
        let nowait = match q.locks.iter().find_map(|l| l.nonblock.as_ref()) {
            Some(NonBlock::SkipLocked) => return unsupported("SKIP LOCKED"),
            Some(NonBlock::Nowait) => true,
            None => false,
        };
        let SetExpr::Select(select) = q.body.as_ref() else {
            return unsupported("FOR UPDATE on a set operation");
        };
        let [from] = select.from.as_slice() else {
            return unsupported("FOR UPDATE over several tables");
        };
        let (TableFactor::Table { name, alias, .. }, true) =
            (&from.relation, from.joins.is_empty())
        else {
            return unsupported("FOR UPDATE over a join or a subquery");
        };
        let table = crate::ident::table_name(name)?;
        let alias = alias
            .as_ref()
            .map(|a| crate::ident::ident_name(&a.name))
            .unwrap_or_else(|| table.clone());
        let selection = select.selection.clone();
        q.locks.clear();
        let query = Statement::Query(Box::new(q));
        // Outside a block the locks would be released at once: PostgreSQL still waits for
        // other holders, which this does not.
        if self.txn.is_none() {
            self.publish_view();
            return self.run_query(query, params).await;
        }
        let def = self.table(&table)?;
        let mut scope = self.txn_scope();
        if nowait {
            let mut wait = self.lock_wait();
            wait.deadline = Some(std::time::Instant::now());
            wait.deadline_error = Some(duet_rowstore::Error::LockTimeout);
            scope.txn.set_lock_wait(wait);
        }
        let locked = loop {
            let r = match dml::read_targets(
                self,
                &scope.txn,
                &table,
                &alias,
                &[],
                &[],
                selection.as_ref(),
                params,
            )
            .await
            {
                Ok(batches) => (|| -> Result<()> {
                    let ncols = def.columns.len();
                    for b in &batches {
                        let keys = dml::keys_of(b, ncols)?;
                        scope.txn.lock_rows(&def, keys.iter().flatten())?;
                    }
                    Ok(())
                })(),
                Err(e) => Err(e),
            };
            if !scope.again(&r) {
                break r;
            }
        };
        self.put_back(scope);
        locked?;
        self.publish_view();
        self.run_query(query, params).await
    }
}
