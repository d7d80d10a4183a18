//! Scenario tests of the store and transactions, on the memory engine and on RocksDB.

use std::sync::Arc;

use crate::engine::memory::MemoryEngine;
use crate::engine::rocks::RocksEngine;
use crate::engine::KvEngineRef;
use crate::error::Error;
use crate::replica::{start_voter, voter_options};
use crate::store::StoreRef;
use crate::txn::Transaction;
use duet_common::catalog::{ColumnDef, IndexDef, TableDef, CATALOG_FORMAT};
use duet_common::codec::memcmp::encode_tuple;
use duet_common::types::{Datum, SqlType};
use duet_replication::{LocalTransport, Peer};

fn col(name: &str, ty: SqlType, nullable: bool) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        ty,
        nullable,
        default_expr: None,
        missing: Datum::Null,
    }
}

fn accounts(store: &StoreRef) -> Arc<TableDef> {
    store
        .create_table(TableDef {
            format: CATALOG_FORMAT,
            id: 0,
            name: "accounts".into(),
            storage_id: 0,
            columns: vec![
                col("id", SqlType::Int32, false),
                col("owner", SqlType::Text, true),
                col("balance", SqlType::Int64, true),
            ],
            primary_key: vec![0],
            pk_name: "accounts_pkey".into(),
            indexes: vec![IndexDef {
                id: 0,
                name: "accounts_owner_key".into(),
                columns: vec![1],
                unique: true,
                constraint: false,
            }],
            columnar: true,
            sequence: None,
            checks: vec![],
            foreign_keys: vec![],
            view: None,
        })
        .unwrap()
}

fn row(id: i64, owner: &str, bal: i64) -> Vec<Datum> {
    vec![Datum::Int(id), Datum::Text(owner.into()), Datum::Int(bal)]
}

/// Each engine with a directory for its Raft log (and RocksDB's files).
fn engines() -> Vec<(KvEngineRef, tempfile_dir::Dir)> {
    let dir = tempfile_dir::Dir::new();
    let rocks: KvEngineRef = Arc::new(RocksEngine::open(&dir.0.join("rocks")).unwrap());
    vec![
        (Arc::new(MemoryEngine::new()), tempfile_dir::Dir::new()),
        (rocks, dir),
    ]
}

/// The store with its Raft peer (a real raft-engine log in `dir`).
fn start(engine: KvEngineRef, dir: &tempfile_dir::Dir) -> (StoreRef, Peer) {
    start_voter(
        engine,
        voter_options(&dir.0.join("raft"), vec![]),
        LocalTransport::new(),
    )
    .unwrap()
}

/// A tiny temp-dir helper (the crate has no tempfile dependency).
mod tempfile_dir {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let p = std::env::temp_dir().join(format!(
                "duet-rowstore-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn pk(id: i64) -> Vec<u8> {
    encode_tuple(&[Datum::Int(id)])
}

#[test]
fn snapshot_isolation_and_read_your_writes() {
    for (engine, dir) in engines() {
        let (store, _peer) = start(engine, &dir);
        let t = accounts(&store);
        let mut w = Transaction::begin(&store);
        w.insert(&t, row(1, "ann", 10)).unwrap();
        let reader = Transaction::begin(&store);
        // Own write visible, other's uncommitted write not.
        assert_eq!(w.get_row(&t, &pk(1)).unwrap(), Some(row(1, "ann", 10)));
        assert_eq!(reader.get_row(&t, &pk(1)).unwrap(), None);
        w.commit().unwrap();
        // The old snapshot still does not see it; a new one does.
        assert_eq!(reader.get_row(&t, &pk(1)).unwrap(), None);
        assert_eq!(
            Transaction::begin(&store).get_row(&t, &pk(1)).unwrap(),
            Some(row(1, "ann", 10))
        );
    }
}

#[test]
fn row_locks_and_first_committer_wins() {
    use crate::txn::Isolation;
    for (engine, dir) in engines() {
        let (store, _peer) = start(engine, &dir);
        let t = accounts(&store);
        let mut setup = Transaction::begin(&store);
        setup.insert(&t, row(1, "ann", 10)).unwrap();
        setup.commit().unwrap();
        let mut rr = Transaction::begin_with(&store, Isolation::RepeatableRead);
        let mut rc = Transaction::begin(&store);
        let mut a = Transaction::begin(&store);
        a.update(&t, &pk(1), row(1, "ann", 20)).unwrap();
        assert_eq!(store.locks_held(), 1);
        a.commit().unwrap();
        assert_eq!(store.locks_held(), 0, "commit releases the row lock");
        // A row changed after the snapshot: REPEATABLE READ fails, READ COMMITTED restarts
        // the statement, which then succeeds on a fresh snapshot.
        let err = rr.update(&t, &pk(1), row(1, "ann", 30)).unwrap_err();
        assert!(matches!(err, Error::WriteConflict), "{err:?}");
        assert!(err.is_retryable());
        // Its lock is held until it ends (as PostgreSQL keeps it until ROLLBACK).
        drop(rr);
        let err = rc.update(&t, &pk(1), row(1, "ann", 40)).unwrap_err();
        assert!(matches!(err, Error::StatementRestart), "{err:?}");
        let mark = rc.begin_statement();
        rc.update(&t, &pk(1), row(1, "ann", 30)).unwrap();
        assert_eq!(rc.get_row(&t, &pk(1)).unwrap(), Some(row(1, "ann", 30)));
        // Restarting undoes the statement's writes and keeps the lock.
        rc.restart_statement(&mark);
        assert_eq!(rc.get_row(&t, &pk(1)).unwrap(), Some(row(1, "ann", 20)));
        assert_eq!(store.locks_held(), 1);
        rc.update(&t, &pk(1), row(1, "ann", 40)).unwrap();
        rc.commit().unwrap();
        // Keys without row locks (a unique index entry) still conflict at commit.
        let mut x = Transaction::begin(&store);
        let mut y = Transaction::begin(&store);
        x.insert(&t, row(2, "bob", 1)).unwrap();
        y.insert(&t, row(3, "bob", 1)).unwrap();
        x.commit().unwrap();
        let err = y.commit().unwrap_err();
        assert!(matches!(err, Error::WriteConflict), "{err:?}");
        assert_eq!(
            Transaction::begin(&store).get_row(&t, &pk(1)).unwrap(),
            Some(row(1, "ann", 40))
        );
        assert_eq!(
            store.locks_held(),
            0,
            "an aborted transaction releases its locks"
        );
    }
}

#[test]
fn constraints_and_merged_scans() {
    for (engine, dir) in engines() {
        let (store, _peer) = start(engine, &dir);
        let t = accounts(&store);
        let mut x = Transaction::begin(&store);
        for i in [5, 1, 3] {
            x.insert(&t, row(i, &format!("o{i}"), i * 10)).unwrap();
        }
        x.commit().unwrap();
        let mut y = Transaction::begin(&store);
        assert!(matches!(
            y.insert(&t, row(3, "new", 0)),
            Err(Error::UniqueViolation { .. })
        ));
        assert!(matches!(
            y.insert(&t, row(9, "o5", 0)),
            Err(Error::UniqueViolation { .. })
        ));
        assert!(matches!(
            y.insert(&t, vec![Datum::Null, Datum::Null, Datum::Null]),
            Err(Error::NotNullViolation { .. })
        ));
        y.insert(&t, row(2, "o2", 20)).unwrap();
        y.delete(&t, &pk(3)).unwrap();
        let mut ids = vec![];
        y.scan_rows(&t, None, None, &mut |_, r| {
            ids.push(r[0].clone());
            Ok(true)
        })
        .unwrap();
        assert_eq!(ids, vec![Datum::Int(1), Datum::Int(2), Datum::Int(5)]);
        // Range [2, 5): only 2.
        let mut ids = vec![];
        y.scan_rows(&t, Some(&pk(2)), Some(&pk(5)), &mut |_, r| {
            ids.push(r[0].clone());
            Ok(true)
        })
        .unwrap();
        assert_eq!(ids, vec![Datum::Int(2)]);
        // Index lookup sees own writes.
        let idx = t.indexes[0].clone();
        let probe = encode_tuple(&[Datum::Text("o2".into())]);
        let mut hits = vec![];
        y.scan_index(
            &t,
            &idx,
            Some(&probe),
            Some(&duet_common::codec::memcmp::prefix_end(&probe)),
            &mut |_, p| {
                hits.push(p.to_vec());
                Ok(true)
            },
        )
        .unwrap();
        assert_eq!(hits, vec![pk(2)]);
    }
}

#[test]
fn batched_inserts_check_keys_like_single_ones() {
    for (engine, dir) in engines() {
        let (store, _peer) = start(engine, &dir);
        let t = accounts(&store);
        let mut x = Transaction::begin(&store);
        x.insert_many(&t, vec![row(5, "o5", 1), row(1, "o1", 1), row(3, "o3", 1)])
            .unwrap();
        x.commit().unwrap();
        // A stored key, wherever it is in the batch.
        let mut y = Transaction::begin(&store);
        assert!(matches!(
            y.insert_many(&t, vec![row(7, "a", 0), row(3, "b", 0)]),
            Err(Error::UniqueViolation { .. })
        ));
        // A key twice in one batch.
        let mut y = Transaction::begin(&store);
        assert!(matches!(
            y.insert_many(&t, vec![row(8, "c", 0), row(9, "d", 0), row(8, "e", 0)]),
            Err(Error::UniqueViolation { .. })
        ));
        // A key this transaction deleted may come back; one it inserted may not.
        let mut y = Transaction::begin(&store);
        y.delete(&t, &pk(5)).unwrap();
        y.insert_many(&t, vec![row(5, "f", 0), row(6, "g", 0)])
            .unwrap();
        assert!(matches!(
            y.insert_many(&t, vec![row(10, "h", 0), row(6, "i", 0)]),
            Err(Error::UniqueViolation { .. })
        ));
        y.commit().unwrap();
        let z = Transaction::begin(&store);
        let mut ids = vec![];
        z.scan_rows(&t, None, None, &mut |_, r| {
            ids.push((r[0].clone(), r[1].clone()));
            Ok(true)
        })
        .unwrap();
        let want: Vec<(Datum, Datum)> = [(1, "o1"), (3, "o3"), (5, "f"), (6, "g"), (10, "h")]
            .iter()
            .map(|(i, o)| (Datum::Int(*i), Datum::Text(o.to_string())))
            .collect();
        assert_eq!(ids, want);
    }
}

/// An insert too large for row locks and for the row cache's commit check still loses to
/// a transaction that committed one of its keys first, whether that key is there or
/// deleted again.
#[test]
fn bulk_inserts_conflict_like_small_ones() {
    for (engine, dir) in engines() {
        let (store, _peer) = start(engine, &dir);
        let t = accounts(&store);
        let bulk = |from: i64| -> Vec<Vec<Datum>> {
            (from..from + 3000)
                .map(|i| row(i, &format!("bulk{i}"), 0))
                .collect()
        };
        let mut x = Transaction::begin_with(&store, crate::txn::Isolation::RepeatableRead);
        x.insert_many(&t, bulk(0)).unwrap();
        let mut y = Transaction::begin(&store);
        y.insert(&t, row(2999, "first", 1)).unwrap();
        y.commit().unwrap();
        let err = x.commit().unwrap_err();
        assert!(matches!(err, Error::WriteConflict), "{err:?}");
        // Nothing of the bulk insert is there, and its latches are gone: a retry works.
        let r = Transaction::begin(&store);
        assert_eq!(r.get_row(&t, &pk(0)).unwrap(), None);
        let mut x = Transaction::begin(&store);
        x.insert_many(&t, bulk(3000)).unwrap();
        x.commit().unwrap();
        // A key inserted and deleted again after the bulk transaction's snapshot: it is
        // absent either way, but it was written, so the bulk commit loses.
        let mut z = Transaction::begin_with(&store, crate::txn::Isolation::RepeatableRead);
        z.insert_many(&t, bulk(6000)).unwrap();
        let mut u = Transaction::begin(&store);
        u.insert(&t, row(7000, "gone", 2)).unwrap();
        u.commit().unwrap();
        let mut u = Transaction::begin(&store);
        assert!(u.delete(&t, &pk(7000)).unwrap().is_some());
        u.commit().unwrap();
        let err = z.commit().unwrap_err();
        assert!(matches!(err, Error::WriteConflict), "{err:?}");
        assert_eq!(
            Transaction::begin(&store).get_row(&t, &pk(6000)).unwrap(),
            None
        );
    }
}

#[test]
fn catalog_and_data_survive_reopen() {
    let dir = tempfile_dir::Dir::new();
    let rocks = || -> KvEngineRef { Arc::new(RocksEngine::open(&dir.0.join("rocks")).unwrap()) };
    {
        let (store, _peer) = start(rocks(), &dir);
        let t = accounts(&store);
        let mut x = Transaction::begin(&store);
        x.insert(&t, row(1, "ann", 10)).unwrap();
        x.commit().unwrap();
        store
            .add_column(
                "accounts",
                ColumnDef {
                    missing: Datum::Int(7),
                    ..col("extra", SqlType::Int32, true)
                },
            )
            .unwrap();
        // Uncommitted: must vanish.
        let mut y = Transaction::begin(&store);
        y.insert(&t, row(2, "bob", 10)).unwrap();
        drop(y);
    }
    // Reopened on its own RocksDB, and rebuilt from nothing but the Raft log (an empty
    // engine replays every entry): both hold the same committed state.
    for engine in [rocks(), Arc::new(MemoryEngine::new()) as KvEngineRef] {
        let (store, _peer) = start(engine, &dir);
        check_reopened(&store);
    }
}

fn check_reopened(store: &StoreRef) {
    let t = store.table("accounts").unwrap();
    assert_eq!(t.columns.len(), 4);
    let r = Transaction::begin(store);
    assert_eq!(
        r.get_row(&t, &pk(1)).unwrap(),
        Some(vec![
            Datum::Int(1),
            Datum::Text("ann".into()),
            Datum::Int(10),
            Datum::Int(7)
        ])
    );
    assert_eq!(r.get_row(&t, &pk(2)).unwrap(), None);
}

#[test]
fn ddl_truncate_index_and_primary_key() {
    for (engine, dir) in engines() {
        let (store, _peer) = start(engine, &dir);
        let t = store
            .create_table(TableDef {
                format: CATALOG_FORMAT,
                id: 0,
                name: "h".into(),
                storage_id: 0,
                columns: vec![
                    col("a", SqlType::Int32, true),
                    col("b", SqlType::Text, true),
                ],
                primary_key: vec![],
                pk_name: String::new(),
                indexes: vec![],
                columnar: true,
                sequence: None,
                checks: vec![],
                foreign_keys: vec![],
                view: None,
            })
            .unwrap();
        let mut x = Transaction::begin(&store);
        x.insert(&t, vec![Datum::Int(2), Datum::Text("x".into())])
            .unwrap();
        x.insert(&t, vec![Datum::Int(1), Datum::Text("x".into())])
            .unwrap();
        x.commit().unwrap();
        let e = store.create_index(
            "h",
            IndexDef {
                id: 0,
                name: "h_b".into(),
                columns: vec![1],
                unique: true,
                constraint: false,
            },
            false,
        );
        assert!(matches!(e, Err(Error::UniqueViolation { .. })));
        store
            .create_index(
                "h",
                IndexDef {
                    id: 0,
                    name: "h_b".into(),
                    columns: vec![1],
                    unique: false,
                    constraint: false,
                },
                false,
            )
            .unwrap();
        store
            .add_primary_key("h", vec![0], "h_pkey".into())
            .unwrap();
        let t = store.table("h").unwrap();
        let r = Transaction::begin(&store);
        assert_eq!(
            r.get_row(&t, &pk(1)).unwrap(),
            Some(vec![Datum::Int(1), Datum::Text("x".into())])
        );
        let mut n = 0;
        r.scan_index(&t, &t.indexes[0], None, None, &mut |_, _| {
            n += 1;
            Ok(true)
        })
        .unwrap();
        assert_eq!(n, 2);
        store.truncate("h").unwrap();
        let t = store.table("h").unwrap();
        let mut n = 0;
        Transaction::begin(&store)
            .scan_rows(&t, None, None, &mut |_, _| {
                n += 1;
                Ok(true)
            })
            .unwrap();
        assert_eq!(n, 0);
        assert!(store.drop_index("h_b").unwrap());
        store.drop_table("h").unwrap();
        assert!(store.table("h").is_none());
    }
}

/// Point reads through the row cache answer what the engine holds at every snapshot: after
/// inserts, updates and deletes, for old snapshots, after a truncate (new storage) and with
/// writers committing while readers fill the cache.
#[test]
fn point_reads_through_the_row_cache_match_the_engine() {
    for (engine, dir) in engines() {
        let (store, _peer) = start(engine, &dir);
        let t = accounts(&store);
        let missing = Transaction::begin(&store);
        assert_eq!(missing.get_row(&t, &pk(1)).unwrap(), None); // caches "absent"
        let mut w = Transaction::begin(&store);
        w.insert(&t, row(1, "ann", 10)).unwrap();
        w.commit().unwrap();
        assert_eq!(missing.get_row(&t, &pk(1)).unwrap(), None, "older snapshot");
        let v1 = Transaction::begin(&store);
        assert_eq!(v1.get_row(&t, &pk(1)).unwrap(), Some(row(1, "ann", 10)));
        let (hits, _) = store.row_cache_stats();
        assert_eq!(
            Transaction::begin(&store).get_row(&t, &pk(1)).unwrap(),
            Some(row(1, "ann", 10))
        );
        assert_eq!(store.row_cache_stats().0, hits + 1, "served from the cache");
        let mut u = Transaction::begin(&store);
        u.update(&t, &pk(1), row(1, "ann", 11)).unwrap();
        u.commit().unwrap();
        assert_eq!(v1.get_row(&t, &pk(1)).unwrap(), Some(row(1, "ann", 10)));
        assert_eq!(
            Transaction::begin(&store).get_row(&t, &pk(1)).unwrap(),
            Some(row(1, "ann", 11))
        );
        let mut d = Transaction::begin(&store);
        d.delete(&t, &pk(1)).unwrap();
        d.commit().unwrap();
        assert_eq!(
            Transaction::begin(&store).get_row(&t, &pk(1)).unwrap(),
            None
        );
        assert_eq!(v1.get_row(&t, &pk(1)).unwrap(), Some(row(1, "ann", 10)));

        // Writers and readers at once: every read equals one of the committed values, and
        // a read after a commit returned sees at least that commit.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (store, t, stop) = (store.clone(), t.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        for id in 10..20 {
                            let r = Transaction::begin(&store).get_row(&t, &pk(id)).unwrap();
                            if let Some(r) = r {
                                assert!(matches!(r[2], Datum::Int(b) if (0..200).contains(&b)));
                            }
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        for round in 0..200i64 {
            let mut w = Transaction::begin(&store);
            for id in 10..20 {
                if round == 0 {
                    w.insert(&t, row(id, &format!("o{id}"), round)).unwrap();
                } else {
                    w.update(&t, &pk(id), row(id, &format!("o{id}"), round))
                        .unwrap();
                }
            }
            w.commit().unwrap();
            let after = Transaction::begin(&store);
            for id in 10..20 {
                assert_eq!(
                    after.get_row(&t, &pk(id)).unwrap(),
                    Some(row(id, &format!("o{id}"), round)),
                    "round {round}"
                );
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        // A truncated table has new storage: nothing old is read back.
        store.truncate("accounts").unwrap();
        let t = store.table("accounts").unwrap();
        assert_eq!(
            Transaction::begin(&store).get_row(&t, &pk(10)).unwrap(),
            None
        );
    }
}

/// Versions of `def`'s row `id` in the engine (every one, not what a read sees).
fn raw_versions(engine: &KvEngineRef, def: &TableDef, id: i64) -> usize {
    let user = duet_common::codec::key::record_key(def.storage_id, &pk(id));
    let end = duet_common::codec::memcmp::prefix_end(user.as_bytes());
    let mut n = 0;
    engine
        .scan(user.as_bytes(), &end, &mut |_, _| {
            n += 1;
            true
        })
        .unwrap();
    n
}

#[test]
fn garbage_collection_keeps_what_readers_may_read_and_drops_the_rest() {
    use duet_common::source::RowSource;
    let dir = tempfile_dir::Dir::new();
    let path = dir.0.join("rocks");
    let engine: KvEngineRef = Arc::new(RocksEngine::open(&path).unwrap());
    let (store, peer) = start(engine.clone(), &dir);
    store.set_gc_life_time(std::time::Duration::ZERO);
    assert_eq!(store.gc_life_time(), crate::store::GC_LIFE_TIME_MIN);
    let t = accounts(&store);
    let write = |f: &dyn Fn(&mut Transaction)| {
        let mut w = Transaction::begin(&store);
        f(&mut w);
        w.commit().unwrap()
    };
    write(&|w| {
        w.insert(&t, row(1, "ann", 0)).unwrap();
        w.insert(&t, row(2, "bob", 0)).unwrap();
    });
    let mut reader = None;
    for i in 1..=20 {
        write(&|w| w.update(&t, &pk(1), row(1, "ann", i)).unwrap());
        if i == 10 {
            // A transaction that stays open: its snapshot must stay readable.
            reader = Some(Transaction::begin(&store));
        }
    }
    write(&|w| {
        w.update(&t, &pk(2), row(2, "bob", 5)).unwrap();
    });
    let gone = write(&|w| {
        w.delete(&t, &pk(2)).unwrap();
    });
    let reader = reader.unwrap();
    let pinned = reader.snapshot().get();
    assert_eq!(raw_versions(&engine, &t, 1), 21);

    // Past the grace period: the safe point stops at the open transaction's snapshot.
    assert_eq!(
        store.gc_tick().unwrap().safe_point,
        0,
        "within the grace period"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let stats = store.vacuum(None, None).unwrap();
    assert_eq!(stats.safe_point, pinned);
    assert_eq!(reader.get_row(&t, &pk(1)).unwrap(), Some(row(1, "ann", 10)));
    assert_eq!(reader.get_row(&t, &pk(2)).unwrap(), Some(row(2, "bob", 0)));
    assert_eq!(
        raw_versions(&engine, &t, 1),
        11,
        "the ten versions after the snapshot and the one it reads"
    );
    assert!(stats.versions_removed >= 10, "{stats:?}");
    // A read below the safe point is refused, not answered from what is left.
    let err = store
        .scan_table(&t, pinned - 1, &mut |_, _| true)
        .unwrap_err();
    assert!(err.to_string().contains("snapshot too old"), "{err}");

    // The transaction ends: one version of row 1 is left, nothing of deleted row 2.
    drop(reader);
    let stats = store.vacuum(None, None).unwrap();
    assert!(stats.safe_point >= gone.get(), "{stats:?}");
    assert_eq!(raw_versions(&engine, &t, 1), 1);
    // A compaction of everything reads every file: the tombstone goes too.
    assert_eq!(raw_versions(&engine, &t, 2), 0);
    assert!(stats.tombstones_removed >= 1, "{stats:?}");
    let now = Transaction::begin(&store);
    assert_eq!(now.get_row(&t, &pk(1)).unwrap(), Some(row(1, "ann", 20)));
    assert_eq!(now.get_row(&t, &pk(2)).unwrap(), None);
    drop(now);

    // The safe point survives a restart.
    let safe_point = stats.safe_point;
    drop(peer);
    drop(store);
    drop(engine);
    let engine: KvEngineRef = Arc::new(RocksEngine::open(&path).unwrap());
    let (store, _peer) = start(engine, &dir);
    assert_eq!(store.gc_stats().safe_point, safe_point);
    assert_eq!(
        Transaction::begin(&store).get_row(&t, &pk(1)).unwrap(),
        Some(row(1, "ann", 20))
    );
}

/// A model-based test of garbage collection: random commits (updates, deletes,
/// re-inserts) of a few rows, readers opened and closed at random, garbage collection and
/// compactions at random. Every open reader always reads exactly the model's state at its
/// snapshot, the safe point never passes an open snapshot, and once every reader is done,
/// one version of each live row is left and nothing of deleted ones.
#[test]
fn garbage_collection_never_takes_a_version_an_open_snapshot_reads() {
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;
    let seed: u64 = std::env::var("DUET_GC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile_dir::Dir::new();
    let engine: KvEngineRef = Arc::new(RocksEngine::open(&dir.0.join("rocks")).unwrap());
    let (store, _peer) = start(engine.clone(), &dir);
    store.set_gc_life_time_unchecked(std::time::Duration::ZERO);
    let t = accounts(&store);
    const KEYS: i64 = 12;
    // The state after each commit: version → id → balance.
    let mut model: BTreeMap<u64, BTreeMap<i64, i64>> = BTreeMap::new();
    model.insert(store.current_version().get(), BTreeMap::new());
    let mut readers: Vec<Transaction> = Vec::new();
    let state_at = |model: &BTreeMap<u64, BTreeMap<i64, i64>>, v: u64| {
        model.range(..=v).next_back().unwrap().1.clone()
    };
    let read_all = |r: &Transaction| {
        let mut got = BTreeMap::new();
        r.scan_rows(&t, None, None, &mut |_, row| {
            let (Datum::Int(id), Datum::Int(bal)) = (&row[0], &row[2]) else {
                panic!("row {row:?}");
            };
            got.insert(*id, *bal);
            Ok(true)
        })
        .unwrap();
        got
    };
    for step in 0..400 {
        match rng.gen_range(0..10) {
            0..=4 => {
                let mut state = model.last_key_value().unwrap().1.clone();
                let mut w = Transaction::begin(&store);
                for _ in 0..rng.gen_range(1..4) {
                    let id = rng.gen_range(0..KEYS);
                    let bal = rng.gen_range(0..1000);
                    match (state.contains_key(&id), rng.gen_bool(0.2)) {
                        (true, true) => {
                            w.delete(&t, &pk(id)).unwrap();
                            state.remove(&id);
                        }
                        (true, false) => {
                            w.update(&t, &pk(id), row(id, &format!("o{id}"), bal))
                                .unwrap();
                            state.insert(id, bal);
                        }
                        (false, _) => {
                            w.insert(&t, row(id, &format!("o{id}"), bal)).unwrap();
                            state.insert(id, bal);
                        }
                    }
                }
                let v = w.commit().unwrap().get();
                model.insert(v, state);
            }
            5 if readers.len() < 6 => readers.push(Transaction::begin(&store)),
            6 if !readers.is_empty() => {
                let i = rng.gen_range(0..readers.len());
                readers.swap_remove(i);
            }
            7 => {
                let stats = store.gc_tick().unwrap();
                if let Some(oldest) = readers.iter().map(|r| r.snapshot().get()).min() {
                    assert!(
                        stats.safe_point <= oldest,
                        "seed {seed} step {step}: safe point {} passed snapshot {oldest}",
                        stats.safe_point
                    );
                }
            }
            8 => {
                let (start, end) = if rng.gen_bool(0.5) {
                    let p = duet_common::codec::key::storage_prefix(t.storage_id);
                    let e = duet_common::codec::memcmp::prefix_end(&p);
                    (Some(p), Some(e))
                } else {
                    (None, None)
                };
                store.vacuum(start.as_deref(), end.as_deref()).unwrap();
            }
            _ => {}
        }
        for r in &readers {
            let v = r.snapshot().get();
            assert_eq!(
                read_all(r),
                state_at(&model, v),
                "seed {seed} step {step}: reader at {v}"
            );
        }
    }
    readers.clear();
    let stats = store.vacuum(None, None).unwrap();
    assert!(stats.versions_removed > 0, "seed {seed}: {stats:?}");
    let last = model.last_key_value().unwrap().1.clone();
    for id in 0..KEYS {
        let expected = usize::from(last.contains_key(&id));
        assert_eq!(
            raw_versions(&engine, &t, id),
            expected,
            "seed {seed}: row {id}"
        );
    }
    assert_eq!(read_all(&Transaction::begin(&store)), last, "seed {seed}");
}
