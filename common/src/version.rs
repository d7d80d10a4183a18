//! Versions. A committed write batch's version is the index of the Raft entry that carries
//! it; a read at version `v` sees exactly the batches with version `<= v`, on either
//! replica. It is a type of its own so that many Raft groups (which need versions from a
//! timestamp oracle instead) change this module, not its users.

use std::fmt;

/// A commit version (a point in the total order of committed batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version(u64);

impl Version {
    /// Before anything was committed.
    pub const ZERO: Version = Version(0);
    /// Reads everything ever committed.
    pub const MAX: Version = Version(u64::MAX);

    pub const fn new(v: u64) -> Self {
        Version(v)
    }
    pub const fn get(self) -> u64 {
        self.0
    }
    pub fn next(self) -> Self {
        Version(self.0 + 1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
