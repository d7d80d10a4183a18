//! `ANALYZE [table]` and its automatic form: read a sample of the table at a fresh snapshot
//! (a bounded number of chunks of its column replica, see `duet_router::sample`), or the
//! whole table when no column replica in this process can serve it, and store its
//! statistics in the router.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::common::TableReference;
use duet_common::TableDefRef;
use duet_router::routing::{Engine, Hints, StatementInfo};
use duet_router::stats::StatsBuilder;
use futures::StreamExt;

use crate::error::{PgError, Result, SqlState};
use crate::session::{Outcome, Session, SharedRef};

/// How often the background task looks for tables whose statistics are stale.
pub const AUTOANALYZE_INTERVAL: Duration = Duration::from_secs(5);

/// The longest the background task puts off a table that keeps changing fast.
pub const AUTOANALYZE_MAX_DEFER: Duration = Duration::from_secs(60);

/// Which stale tables the background task leaves for later: one that changed by more than
/// its staleness threshold since the previous look is being loaded, and statistics taken
/// now would be stale again at the next look (a bulk load read the whole growing table
/// every few seconds). It is analyzed once it settles, or after [`AUTOANALYZE_MAX_DEFER`].
/// A table seen for the first time is analyzed at once.
#[derive(Default)]
struct LoadWatch {
    /// Per storage id: its change count at the previous look, and since when it has been
    /// put off.
    seen: HashMap<u32, (u64, Option<Instant>)>,
}

impl LoadWatch {
    /// Records `changes` of table `storage_id` at `now`; whether to put off analyzing it.
    fn defer(&mut self, storage_id: u32, changes: u64, threshold: f64, now: Instant) -> bool {
        let Some((before, since)) = self.seen.get_mut(&storage_id) else {
            self.seen.insert(storage_id, (changes, None));
            return false;
        };
        let moved = changes.saturating_sub(*before);
        *before = changes;
        let fast = moved as f64 > threshold;
        let started = *since.get_or_insert(now);
        if fast && now.duration_since(started) < AUTOANALYZE_MAX_DEFER {
            return true;
        }
        *since = None;
        false
    }

    /// Forgets the tables not in `live`.
    fn retain(&mut self, live: &[u32]) {
        self.seen.retain(|id, _| live.contains(id));
    }
}

/// `ANALYZE` of one table or, with `None`, of every table.
pub(crate) async fn analyze(session: &mut Session, table: Option<&str>) -> Result<Outcome> {
    let tables = match table {
        Some(name) => vec![session.table(name)?],
        None => session
            .store()
            .tables()
            .into_iter()
            .filter(|t| t.view.is_none())
            .collect(),
    };
    for def in tables {
        analyze_table(session, &def).await?;
    }
    Ok(Outcome::Command("ANALYZE".into()))
}

/// Gathers `def`'s statistics and stores them: from a sample of its column replica when
/// this process has one that serves the session's snapshot (see `duet_router::sample`),
/// else by reading the whole table.
pub(crate) async fn analyze_table(session: &mut Session, def: &TableDefRef) -> Result<()> {
    let router = session.router().clone();
    let changes = session.store().changes(def.storage_id);
    let started_ms = duet_router::stats::now_ms();
    let stats = match sample_column_replica(session, def, changes).await {
        Some(stats) => stats?,
        None => read_whole(session, def, changes).await?,
    };
    tracing::debug!(
        table = %def.name,
        rows = stats.row_count,
        read = stats.rows_read,
        "analyzed"
    );
    router
        .stats
        .put_unless_newer(stats, started_ms)
        .map_err(|e| {
            PgError::new(
                SqlState::IoError,
                format!("could not save statistics of \"{}\": {e}", def.name),
            )
        })?;
    Ok(())
}

/// Statistics from at most `duet.analyze_sample_chunks` chunks of `def`'s column replica in
/// this process, read at the session's snapshot; `None` when that replica cannot serve it
/// (no replica here, one being built, a transaction with uncommitted writes, or a learner
/// that does not reach the snapshot within `duet.learner_wait_timeout`).
async fn sample_column_replica(
    session: &Session,
    def: &TableDefRef,
    changes: u64,
) -> Option<Result<duet_router::stats::TableStats>> {
    if !def.columnar {
        return None;
    }
    let columns = session.shared().column_access()?.get()?;
    session.publish_view();
    let view = session.view_slot().lock().take()?;
    if view.has_writes() {
        return None;
    }
    let version = view.snapshot().get();
    if !columns.wait_applied(version, session.learner_wait()).await {
        return None;
    }
    let snapshot = columns.snapshot(def, version).ok()?;
    let max_chunks = session.analyze_sample_chunks();
    let seed = u64::from(def.storage_id) << 32 ^ changes;
    let name = def.name.clone();
    let (id, storage_id) = (def.id, def.storage_id);
    let read = tokio::task::spawn_blocking(move || {
        duet_router::sample::sample_snapshot(&snapshot, max_chunks, seed)
    })
    .await;
    Some(match read {
        Ok(Ok(sample)) => {
            tracing::debug!(
                table = %name,
                chunks_read = sample.chunks_read,
                chunks = sample.chunks,
                "sampled the column replica"
            );
            Ok(sample
                .builder
                .finish_sample(&name, id, storage_id, changes, sample.population))
        }
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(PgError::new(
            SqlState::InternalError,
            format!("ANALYZE's sample failed: {e}"),
        )),
    })
}

/// Statistics from every row of `def`, read through the router at a fresh snapshot.
async fn read_whole(
    session: &mut Session,
    def: &TableDefRef,
    changes: u64,
) -> Result<duet_router::stats::TableStats> {
    let saved = session.swap_route_statement(StatementInfo {
        text: Arc::from(format!("ANALYZE {}", def.name)),
        hints: Hints {
            all: def.columnar.then_some(Engine::Column),
            tables: Vec::new(),
        },
    });
    session.publish_view();
    let result = async {
        let df = session
            .context()
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
    session.set_view(None);
    session.swap_route_statement(saved);
    result
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
    let mut watch = LoadWatch::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(AUTOANALYZE_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        let tables: Vec<_> = shared
            .store
            .tables()
            .into_iter()
            .filter(|t| t.view.is_none())
            .collect();
        let live: Vec<u32> = tables.iter().map(|t| t.id).collect();
        if let Err(e) = shared.router.stats.retain(&live) {
            tracing::warn!(error = %e, "could not forget the statistics of dropped tables");
        }
        let storage: Vec<u32> = tables.iter().map(|t| t.storage_id).collect();
        watch.retain(&storage);
        for def in tables {
            let changes = shared.store.changes(def.storage_id);
            let threshold = shared.router.analyze_threshold(&def);
            let defer = watch.defer(def.storage_id, changes, threshold, Instant::now());
            if !shared.router.staleness(&def).1 {
                continue;
            }
            if defer {
                tracing::debug!(table = %def.name, changes, "autoanalyze waits: the table is changing fast");
                continue;
            }
            if let Err(e) = analyze_table(&mut session, &def).await {
                tracing::debug!(table = %def.name, error = %e, "autoanalyze failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_that_keeps_changing_fast_is_put_off_for_a_while() {
        let mut w = LoadWatch::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // First look: analyzed at once.
        assert!(!w.defer(1, 1_000, 50.0, at(0)));
        // Growing by more than the threshold per look: put off …
        assert!(w.defer(1, 500_000, 100.0, at(5)));
        assert!(w.defer(1, 1_000_000, 100.0, at(10)));
        // … until it settles.
        assert!(!w.defer(1, 1_000_010, 100.0, at(15)));
        // A table that never settles is analyzed after AUTOANALYZE_MAX_DEFER, then put off
        // again.
        let mut n = 1_000_010;
        let mut analyzed = Vec::new();
        for s in (20..200).step_by(5) {
            n += 100_000;
            if !w.defer(1, n, 100_000.0 * 0.5, at(s)) {
                analyzed.push(s);
            }
        }
        // Put off from 20 s: analyzed at 80 s; put off again from 85 s: at 145 s.
        assert_eq!(analyzed, vec![80, 145]);
        // Slow changes are never put off; other tables are independent.
        assert!(!w.defer(2, 10, 50.0, at(0)));
        assert!(!w.defer(2, 40, 50.0, at(5)));
        w.retain(&[2]);
        assert!(
            !w.defer(1, n + 1_000_000, 50.0, at(300)),
            "forgotten: a first look"
        );
    }
}
