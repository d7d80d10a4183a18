//! Row locks: a transaction that writes a row holds its lock until it commits or aborts, as
//! in PostgreSQL. A second writer waits for the first to finish and then decides, by its
//! isolation level, what the first one's commit means for it (see `txn.rs`).
//!
//! Two modes. A writer holds a row exclusively. A foreign-key check holds the referenced
//! row shared (PostgreSQL's `FOR KEY SHARE`): any number of checks share it, and a writer
//! of the row waits for all of them, as they wait for it.
//!
//! One table of `record key → holders`, the wait-for edges of each waiting transaction, and
//! a condition variable. A transaction about to wait follows the edges from the holders it
//! waits for; if they lead back to itself the wait would never end and it fails with
//! [`Error::Deadlock`]. Waits wake every [`POLL`] to notice a cancel or timeout and any
//! missed release.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use duet_common::codec::key::Key;

/// How often a waiting transaction looks at its cancel flag and deadline.
const POLL: Duration = Duration::from_millis(50);

/// Identifies a transaction in the lock table.
pub type TxnId = u64;

/// Who holds a row's lock.
enum Holders {
    Exclusive(TxnId),
    /// Never empty.
    Shared(Vec<TxnId>),
}

/// Whether a lock is wanted exclusively or shared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Exclusive,
    Shared,
}

#[derive(Default)]
struct State {
    owners: HashMap<Key, Holders, ahash::RandomState>,
    /// waiter → the holders it waits for.
    waits_for: HashMap<TxnId, Vec<TxnId>>,
}

/// What trying to take a lock found.
enum Attempt {
    /// Taken now (true) or held already in a mode that covers the request (false).
    Done(bool),
    /// Held by these other transactions.
    Blocked(Vec<TxnId>),
}

impl State {
    fn try_take(&mut self, txn: TxnId, key: &Key, mode: Mode) -> Attempt {
        let Some(h) = self.owners.get_mut(key) else {
            let h = match mode {
                Mode::Exclusive => Holders::Exclusive(txn),
                Mode::Shared => Holders::Shared(vec![txn]),
            };
            self.owners.insert(key.clone(), h);
            return Attempt::Done(true);
        };
        match (&mut *h, mode) {
            (Holders::Exclusive(o), _) if *o == txn => Attempt::Done(false),
            (Holders::Exclusive(o), _) => Attempt::Blocked(vec![*o]),
            (Holders::Shared(v), Mode::Shared) => {
                if v.contains(&txn) {
                    Attempt::Done(false)
                } else {
                    v.push(txn);
                    Attempt::Done(true)
                }
            }
            (Holders::Shared(v), Mode::Exclusive) => {
                if v.iter().any(|&o| o != txn) {
                    return Attempt::Blocked(v.iter().copied().filter(|&o| o != txn).collect());
                }
                // The only sharer becomes the writer.
                *h = Holders::Exclusive(txn);
                Attempt::Done(true)
            }
        }
    }

    /// Whether waiting for `blockers` would make `txn` wait for itself.
    fn closes_cycle(&self, txn: TxnId, blockers: &[TxnId]) -> bool {
        let mut stack: Vec<TxnId> = blockers.to_vec();
        let mut seen = std::collections::HashSet::new();
        while let Some(cur) = stack.pop() {
            if cur == txn {
                return true;
            }
            if seen.insert(cur) {
                if let Some(next) = self.waits_for.get(&cur) {
                    stack.extend_from_slice(next);
                }
            }
        }
        false
    }
}

/// The store's row locks.
#[derive(Default)]
pub struct LockTable {
    state: Mutex<State>,
    released: Condvar,
}

/// What may end a wait early: a deadline (`lock_timeout`, `statement_timeout`) and a cancel
/// check (a CancelRequest).
#[derive(Clone, Default)]
pub struct LockWait {
    pub deadline: Option<Instant>,
    /// Why the deadline ends the wait (the error to give).
    pub deadline_error: Option<Error>,
    pub cancelled: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    /// Runs a wait (a blocking call) where the caller's threads allow it; the SQL layer
    /// hands the tokio worker's other tasks to another thread for the wait's duration.
    pub blocking: Option<fn(&mut dyn FnMut())>,
}

impl std::fmt::Debug for LockWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockWait")
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl LockTable {
    /// Locks `key` for `txn`, waiting while another transaction holds it. Returns whether
    /// the lock is new to `txn` (false: it held it already).
    pub fn acquire(&self, txn: TxnId, key: &Key, wait: &LockWait) -> Result<bool> {
        self.take(txn, key, Mode::Exclusive, wait)
    }

    /// Locks `key` shared for `txn` (a foreign-key check of a referenced row): waits while
    /// another transaction holds it exclusively. Returns whether the lock is new to `txn`.
    pub fn acquire_shared(&self, txn: TxnId, key: &Key, wait: &LockWait) -> Result<bool> {
        self.take(txn, key, Mode::Shared, wait)
    }

    fn take(&self, txn: TxnId, key: &Key, mode: Mode, wait: &LockWait) -> Result<bool> {
        if let Attempt::Done(new) = self.state.lock().try_take(txn, key, mode) {
            return Ok(new);
        }
        let mut out = Err(Error::Internal("lock wait did not run".into()));
        match wait.blocking {
            Some(run) => run(&mut || out = self.wait_for(txn, key, mode, wait)),
            None => out = self.wait_for(txn, key, mode, wait),
        }
        out
    }

    fn wait_for(&self, txn: TxnId, key: &Key, mode: Mode, wait: &LockWait) -> Result<bool> {
        let mut s = self.state.lock();
        loop {
            let blockers = match s.try_take(txn, key, mode) {
                Attempt::Done(new) => {
                    s.waits_for.remove(&txn);
                    return Ok(new);
                }
                Attempt::Blocked(b) => b,
            };
            if s.closes_cycle(txn, &blockers) {
                s.waits_for.remove(&txn);
                return Err(Error::Deadlock);
            }
            s.waits_for.insert(txn, blockers);
            if wait.cancelled.as_ref().is_some_and(|c| c()) {
                s.waits_for.remove(&txn);
                return Err(Error::Canceled);
            }
            let mut until = Instant::now() + POLL;
            if let Some(d) = wait.deadline {
                if Instant::now() >= d {
                    s.waits_for.remove(&txn);
                    return Err(wait.deadline_error.clone().unwrap_or(Error::LockTimeout));
                }
                until = until.min(d);
            }
            self.released.wait_until(&mut s, until);
        }
    }

    /// Releases `keys` held by `txn` and wakes the waiters.
    pub fn release<'a>(&self, txn: TxnId, keys: impl IntoIterator<Item = &'a Key>) {
        let mut s = self.state.lock();
        let mut any = false;
        for k in keys {
            let gone = match s.owners.get_mut(k) {
                Some(Holders::Exclusive(o)) => *o == txn,
                Some(Holders::Shared(v)) => {
                    let before = v.len();
                    v.retain(|&o| o != txn);
                    any |= v.len() != before;
                    v.is_empty()
                }
                None => false,
            };
            if gone {
                s.owners.remove(k);
                any = true;
            }
        }
        s.waits_for.remove(&txn);
        drop(s);
        if any {
            self.released.notify_all();
        }
    }

    /// Locks held (for tests and metrics).
    pub fn held(&self) -> usize {
        self.state.lock().owners.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: &[u8]) -> Key {
        Key::from_raw(b.to_vec())
    }

    #[test]
    fn a_second_owner_waits_until_release() {
        let t = Arc::new(LockTable::default());
        assert!(t.acquire(1, &key(b"a"), &LockWait::default()).unwrap());
        assert!(!t.acquire(1, &key(b"a"), &LockWait::default()).unwrap());
        let t2 = t.clone();
        let waiter = std::thread::spawn(move || {
            let start = Instant::now();
            t2.acquire(2, &key(b"a"), &LockWait::default()).unwrap();
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(120));
        t.release(1, [&key(b"a")]);
        assert!(waiter.join().unwrap() >= Duration::from_millis(100));
        assert_eq!(t.held(), 1);
    }

    #[test]
    fn a_cycle_is_a_deadlock_and_a_deadline_a_timeout() {
        let t = Arc::new(LockTable::default());
        t.acquire(1, &key(b"a"), &LockWait::default()).unwrap();
        t.acquire(2, &key(b"b"), &LockWait::default()).unwrap();
        let t2 = t.clone();
        // 1 waits for 2 (b) ...
        let w = std::thread::spawn(move || t2.acquire(1, &key(b"b"), &LockWait::default()));
        std::thread::sleep(Duration::from_millis(100));
        // ... so 2 waiting for 1 (a) would never end.
        assert!(matches!(
            t.acquire(2, &key(b"a"), &LockWait::default()),
            Err(Error::Deadlock)
        ));
        t.release(2, [&key(b"b")]);
        assert!(w.join().unwrap().unwrap());
        let wait = LockWait {
            deadline: Some(Instant::now() + Duration::from_millis(60)),
            ..LockWait::default()
        };
        assert!(matches!(
            t.acquire(3, &key(b"a"), &wait),
            Err(Error::LockTimeout)
        ));
        let stop = LockWait {
            cancelled: Some(Arc::new(|| true)),
            ..LockWait::default()
        };
        assert!(matches!(
            t.acquire(3, &key(b"a"), &stop),
            Err(Error::Canceled)
        ));
    }

    #[test]
    fn sharers_exclude_a_writer_and_not_each_other() {
        let t = Arc::new(LockTable::default());
        let now = LockWait {
            deadline: Some(Instant::now() + Duration::from_millis(60)),
            ..LockWait::default()
        };
        assert!(t
            .acquire_shared(1, &key(b"p"), &LockWait::default())
            .unwrap());
        assert!(t
            .acquire_shared(2, &key(b"p"), &LockWait::default())
            .unwrap());
        assert!(!t
            .acquire_shared(2, &key(b"p"), &LockWait::default())
            .unwrap());
        // A writer waits for both sharers.
        assert!(matches!(
            t.acquire(3, &key(b"p"), &now),
            Err(Error::LockTimeout)
        ));
        t.release(1, [&key(b"p")]);
        let t2 = t.clone();
        let writer = std::thread::spawn(move || t2.acquire(3, &key(b"p"), &LockWait::default()));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!writer.is_finished());
        t.release(2, [&key(b"p")]);
        assert!(writer.join().unwrap().unwrap());
        // Now a sharer waits for the writer.
        let later = LockWait {
            deadline: Some(Instant::now() + Duration::from_millis(60)),
            ..LockWait::default()
        };
        assert!(matches!(
            t.acquire_shared(4, &key(b"p"), &later),
            Err(Error::LockTimeout)
        ));
        t.release(3, [&key(b"p")]);
        assert_eq!(t.held(), 0);
        // The only sharer may upgrade; two sharers upgrading wait for each other.
        t.acquire_shared(5, &key(b"q"), &LockWait::default())
            .unwrap();
        assert!(t.acquire(5, &key(b"q"), &LockWait::default()).unwrap());
        t.release(5, [&key(b"q")]);
        t.acquire_shared(6, &key(b"q"), &LockWait::default())
            .unwrap();
        t.acquire_shared(7, &key(b"q"), &LockWait::default())
            .unwrap();
        let t2 = t.clone();
        let w = std::thread::spawn(move || t2.acquire(6, &key(b"q"), &LockWait::default()));
        std::thread::sleep(Duration::from_millis(100));
        assert!(matches!(
            t.acquire(7, &key(b"q"), &LockWait::default()),
            Err(Error::Deadlock)
        ));
        t.release(7, [&key(b"q")]);
        assert!(w.join().unwrap().unwrap());
    }
}
