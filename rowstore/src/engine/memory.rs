//! A `BTreeMap` engine for unit tests.

use std::collections::BTreeMap;
use std::ops::Bound;

use parking_lot::RwLock;

use super::{KvEngine, WriteBatch, WriteOp};
use crate::error::Result;

/// In-memory [`KvEngine`]; nothing survives the process.
#[derive(Default)]
pub struct MemoryEngine {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryEngine {
    pub fn new() -> Self {
        Self::default()
    }
}

fn range(start: &[u8], end: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    (
        Bound::Included(start.to_vec()),
        Bound::Excluded(end.to_vec()),
    )
}

impl KvEngine for MemoryEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.map.read().get(key).cloned())
    }

    fn write(&self, batch: &WriteBatch, _sync: bool) -> Result<()> {
        let mut map = self.map.write();
        for op in batch.ops() {
            match op {
                WriteOp::Put { key, value } => {
                    map.insert(key.to_vec(), value.to_vec());
                }
                WriteOp::Delete { key } => {
                    map.remove(key);
                }
                WriteOp::DeleteRange { start, end } => {
                    if start < end {
                        let doomed: Vec<_> = map
                            .range(range(start, end))
                            .map(|(k, _)| k.clone())
                            .collect();
                        for k in doomed {
                            map.remove(&k);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        for (k, v) in self.map.read().range(range(start, end)) {
            if !f(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn scan_rev(
        &self,
        start: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        for (k, v) in self.map.read().range(range(start, end)).rev() {
            if !f(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conformance() {
        super::super::conformance::run(&super::MemoryEngine::new());
    }
}
