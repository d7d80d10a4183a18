//! Row locks: a transaction that writes a row holds its lock until it commits or aborts, as
//! in PostgreSQL. A second writer waits for the first to finish and then decides, by its
//! isolation level, what the first one's commit means for it (see `txn.rs`).
//!
//! One table of `record key → owner`, a wait-for edge per waiting transaction, and a
//! condition variable. A transaction about to wait follows the edges from the owner; if they
//! lead back to itself the wait would never end and it fails with [`Error::Deadlock`].
//! Waits wake every [`POLL`] to notice a cancel or timeout and any missed release.

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

#[derive(Default)]
struct State {
    owners: HashMap<Key, TxnId, ahash::RandomState>,
    /// waiter → the owner it waits for.
    waits_for: HashMap<TxnId, TxnId>,
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
        {
            let mut s = self.state.lock();
            match s.owners.get(key) {
                None => {
                    s.owners.insert(key.clone(), txn);
                    return Ok(true);
                }
                Some(&o) if o == txn => return Ok(false),
                Some(_) => {}
            }
        }
        let mut out = Err(Error::Internal("lock wait did not run".into()));
        match wait.blocking {
            Some(run) => run(&mut || out = self.wait_for(txn, key, wait)),
            None => out = self.wait_for(txn, key, wait),
        }
        out
    }

    fn wait_for(&self, txn: TxnId, key: &Key, wait: &LockWait) -> Result<bool> {
        let mut s = self.state.lock();
        loop {
            let owner = match s.owners.get(key) {
                None => {
                    s.owners.insert(key.clone(), txn);
                    s.waits_for.remove(&txn);
                    return Ok(true);
                }
                Some(&o) if o == txn => return Ok(false),
                Some(&o) => o,
            };
            // Would waiting for `owner` close a cycle?
            let mut cur = owner;
            let mut hops = 0;
            while let Some(&next) = s.waits_for.get(&cur) {
                if next == txn {
                    s.waits_for.remove(&txn);
                    return Err(Error::Deadlock);
                }
                cur = next;
                hops += 1;
                if hops > s.waits_for.len() {
                    break;
                }
            }
            s.waits_for.insert(txn, owner);
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
            if s.owners.get(k) == Some(&txn) {
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
}
