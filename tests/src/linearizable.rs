//! A linearizability checker for one read/write register, for Jepsen-style workloads:
//! clients record when each operation was invoked and when it returned, and
//! [`check_register`] searches for an order of the operations that respects real time
//! (an operation that returned before another was invoked comes first) in which every read
//! returns the value of the latest write before it. It is Wing and Gong's search with
//! Lowe's memoization of (operations linearized, register value) states, as Knossos and
//! Porcupine implement it.
//!
//! An operation whose outcome is unknown (the client lost its connection, or got a
//! retryable error, after sending a write) may have taken effect at any time after it was
//! invoked, or never: record it with `returned: None`. Reads that failed tell nothing;
//! leave them out.

use std::collections::HashSet;

/// What one operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    /// Read, and saw this value.
    Read(i64),
    /// Wrote this value (each write's value unique in the history).
    Write(i64),
}

/// One operation of a history: when it was invoked and returned (any clock, one for the
/// whole history; `None`: it is unknown whether and when it took effect).
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    pub op: RegisterOp,
    pub invoked: u64,
    pub returned: Option<u64>,
}

/// Why a history is not linearizable: the longest prefix of operations that could be
/// ordered, and the operations none of which could come next.
#[derive(Debug)]
pub struct NotLinearizable {
    pub linearized: usize,
    pub stuck_at: Vec<Timed>,
}

/// Whether `history`, on a register that starts at `initial`, is linearizable.
pub fn check_register(initial: i64, history: &[Timed]) -> Result<(), NotLinearizable> {
    // A write of unknown outcome that no read saw can always be placed last (or never):
    // leaving it out changes nothing, and keeps the search from trying it everywhere.
    let read: HashSet<i64> = history
        .iter()
        .filter_map(|t| match t.op {
            RegisterOp::Read(v) => Some(v),
            RegisterOp::Write(_) => None,
        })
        .collect();
    let kept: Vec<Timed> = history
        .iter()
        .filter(|t| {
            t.returned.is_some() || matches!(t.op, RegisterOp::Write(v) if read.contains(&v))
        })
        .copied()
        .collect();
    let history = kept.as_slice();
    let n = history.len();
    // Events in time order: a call at `invoked`, a return at `returned` (unknown: last).
    // At equal times returns sort first (the operation ended before the other began).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, t) in history.iter().enumerate() {
        events.push((t.invoked, true, i));
        // An operation takes some time: its return comes after its own call.
        events.push((
            t.returned.map_or(u64::MAX, |r| r.max(t.invoked + 1)),
            false,
            i,
        ));
    }
    events.sort_by_key(|&(time, call, i)| (time, call, i));
    // A doubly linked list over the events, with a head sentinel at index `len`.
    let len = events.len();
    let head = len;
    let mut next: Vec<usize> = (1..=len).chain([0]).collect();
    let mut prev: Vec<usize> = std::iter::once(head).chain(0..len).collect();
    next[head] = if len == 0 { usize::MAX } else { 0 };
    if len > 0 {
        next[len - 1] = usize::MAX;
    }
    let mut call_at = vec![0; n];
    let mut return_at = vec![0; n];
    for (e, &(_, call, i)) in events.iter().enumerate() {
        if call {
            call_at[i] = e;
        } else {
            return_at[i] = e;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, q) = (prev[e], next[e]);
        next[p] = q;
        if q != usize::MAX {
            prev[q] = p;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, q) = (prev[e], next[e]);
        next[p] = e;
        if q != usize::MAX {
            prev[q] = e;
        }
    };

    let words = n.div_ceil(64);
    let mut done = vec![0u64; words];
    let mut value = initial;
    let mut seen: HashSet<(Vec<u64>, i64)> = HashSet::new();
    // (operation linearized, the value before it)
    let mut stack: Vec<(usize, i64)> = Vec::new();
    let mut best = 0;
    let mut entry = next[head];
    loop {
        if next[head] == usize::MAX {
            return Ok(());
        }
        let (_, call, i) = events[entry];
        if call {
            let after = match history[i].op {
                RegisterOp::Read(v) => (v == value).then_some(value),
                RegisterOp::Write(v) => Some(v),
            };
            if let Some(after) = after {
                done[i / 64] |= 1 << (i % 64);
                if seen.insert((done.clone(), after)) {
                    stack.push((i, value));
                    best = best.max(stack.len());
                    value = after;
                    unlink(&mut next, &mut prev, call_at[i]);
                    unlink(&mut next, &mut prev, return_at[i]);
                    entry = next[head];
                    continue;
                }
                done[i / 64] &= !(1 << (i % 64));
            }
            entry = next[entry];
        } else {
            // An operation returned before any order could place it: undo the last choice.
            let Some((j, before)) = stack.pop() else {
                let mut stuck = Vec::new();
                let mut e = next[head];
                while e != usize::MAX && events[e].1 {
                    stuck.push(history[events[e].2]);
                    e = next[e];
                }
                return Err(NotLinearizable {
                    linearized: best,
                    stuck_at: stuck,
                });
            };
            value = before;
            done[j / 64] &= !(1 << (j % 64));
            relink(&mut next, &mut prev, return_at[j]);
            relink(&mut next, &mut prev, call_at[j]);
            entry = next[call_at[j]];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: RegisterOp, invoked: u64, returned: Option<u64>) -> Timed {
        Timed {
            op,
            invoked,
            returned,
        }
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        use RegisterOp::*;
        // A read overlapping a write may see either value; reads after it see the write.
        let h = [
            op(Write(1), 0, Some(10)),
            op(Read(0), 5, Some(12)),
            op(Read(1), 6, Some(8)),
            op(Read(1), 11, Some(13)),
        ];
        assert!(check_register(0, &h).is_ok());
        // A write of unknown outcome may never have happened, or have happened late.
        let h = [
            op(Write(2), 0, None),
            op(Read(0), 5, Some(6)),
            op(Read(2), 7, Some(8)),
        ];
        assert!(check_register(0, &h).is_ok());
        assert!(check_register(0, &[op(Write(2), 0, None), op(Read(0), 5, Some(6))]).is_ok());
    }

    #[test]
    fn a_stale_read_is_caught() {
        use RegisterOp::*;
        // Write 1 returned before the read began: reading the old value is stale.
        let h = [op(Write(1), 0, Some(10)), op(Read(0), 11, Some(12))];
        let e = check_register(0, &h).unwrap_err();
        assert_eq!(e.stuck_at.len(), 1);
        // Two reads that see the values in an order no write order allows.
        let h = [
            op(Write(1), 0, Some(100)),
            op(Write(2), 0, Some(100)),
            op(Read(2), 10, Some(11)),
            op(Read(1), 12, Some(13)),
            op(Read(2), 14, Some(15)),
        ];
        assert!(check_register(0, &h).is_err());
        // A value nobody wrote.
        assert!(check_register(0, &[op(Read(7), 0, Some(1))]).is_err());
    }
}
