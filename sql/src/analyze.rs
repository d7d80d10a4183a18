//! `ANALYZE [table]` and its automatic form: read the table at a fresh snapshot (from the
//! column replica when it has one, by a hint) and store its statistics in the router.

use std::sync::Arc;
use std::time::Duration;

use datafusion::common::TableReference;
use duet_router::routing::{Engine, Hints, StatementInfo};
use duet_router::stats::StatsBuilder;
use duet_rowstore::TableDefRef;
use futures::StreamExt;

use crate::error::{PgError, Result, SqlState};
use crate::session::{Outcome, Session, SharedRef};

/// How often the background task looks for tables whose statistics are stale.
pub const AUTOANALYZE_INTERVAL: Duration = Duration::from_secs(5);

/// `ANALYZE` of one table or, with `None`, of every table.
pub(crate) async fn analyze(session: &mut Session, table: Option<&str>) -> Result<Outcome> {
    let tables = match table {
        Some(name) => vec![session.table(name)?],
        None => session.shared.store.tables(),
    };
    for def in tables {
        analyze_table(session, &def).await?;
    }
    Ok(Outcome::Command("ANALYZE".into()))
}

/// Reads `def` and stores its statistics.
pub(crate) async fn analyze_table(session: &mut Session, def: &TableDefRef) -> Result<()> {
    let router = session.shared.router.clone();
    let changes = session.shared.store.changes(def.storage_id);
    let saved = session.route.statement.lock().clone();
    *session.route.statement.lock() = StatementInfo {
        text: Arc::from(format!("ANALYZE {}", def.name)),
        hints: Hints {
            all: def.columnar.then_some(Engine::Column),
            tables: Vec::new(),
        },
    };
    session.publish_view();
    let result = async {
        let df = session
            .ctx
            .table(TableReference::partial("public", def.name.as_str()))
            .await?;
        let mut stream = df.execute_stream().await?;
        let names: Vec<String> = def.columns.iter().map(|c| c.name.clone()).collect();
        let types: Vec<_> = def.columns.iter().map(|c| c.ty.arrow_type()).collect();
        let mut builder = StatsBuilder::new(&names, &types);
        while let Some(batch) = stream.next().await {
            builder.add(&batch?)?;
        }
        Ok::<_, PgError>(builder.finish(&def.name, def.id, def.storage_id, changes))
    }
    .await;
    *session.view.lock() = None;
    *session.route.statement.lock() = saved;
    let stats = result?;
    tracing::debug!(table = %def.name, rows = stats.row_count, "analyzed");
    router.stats.put(stats).map_err(|e| {
        PgError::new(
            SqlState::IoError,
            format!("could not save statistics of \"{}\": {e}", def.name),
        )
    })?;
    Ok(())
}

/// Analyzes, every [`AUTOANALYZE_INTERVAL`], the tables whose statistics are missing or
/// stale (see `Router::staleness`), on a session of its own. Ends when `stop` fires.
pub async fn autoanalyze(shared: SharedRef, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut session = match Session::new(shared.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "autoanalyze could not start");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(AUTOANALYZE_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        let live: Vec<u32> = shared.store.tables().iter().map(|t| t.id).collect();
        if let Err(e) = shared.router.stats.retain(&live) {
            tracing::warn!(error = %e, "could not forget the statistics of dropped tables");
        }
        for def in shared.store.tables() {
            if !shared.router.staleness(&def).1 {
                continue;
            }
            if let Err(e) = analyze_table(&mut session, &def).await {
                tracing::debug!(table = %def.name, error = %e, "autoanalyze failed");
            }
        }
    }
}
