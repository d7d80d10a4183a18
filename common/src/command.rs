//! The payload of a Raft entry: one committed transaction or DDL statement.
//!
//! A command carries **user keys** (catalog, record and index keys without a version) and
//! their new payloads; the version is the index of the entry that carries it, known only when
//! the entry is appended, so replicas add it when they apply. Row replicas write the keys to
//! RocksDB at that version; the column replica decodes the record and catalog keys.
//!
//! Format 1, all integers big-endian:
//! `"DC" u8:format u8:flags u64:next_id u64:next_rowid u32:n (u32:klen key u8:live [u32:vlen
//! value])* u32:m (u32:len start u32:len end)*`.

use crate::error::{Error, Result};

const MAGIC: &[u8; 2] = b"DC";
const FORMAT: u8 = 1;
const FLAG_SNAPSHOT: u8 = 1;

/// One entry's worth of changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    /// User key → new payload (`None`: deleted).
    pub writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Unversioned removals of whole key ranges (old storage of a dropped or truncated table).
    pub delete_ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// Id and row-id allocators after this command (replayed on restart).
    pub next_id: u64,
    pub next_rowid: u64,
    /// The command is a full snapshot: a replica restoring it drops everything first.
    pub snapshot: bool,
}

impl Command {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.delete_ranges.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        encode_parts(
            self.writes
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref())),
            &self.delete_ranges,
            self.next_id,
            self.next_rowid,
            self.snapshot,
        )
    }

    /// The command as borrowed parts (what the replicas apply).
    pub fn view(&self) -> CommandRef<'_> {
        CommandRef {
            writes: self
                .writes
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref()))
                .collect(),
            delete_ranges: self
                .delete_ranges
                .iter()
                .map(|(s, e)| (s.as_slice(), e.as_slice()))
                .collect(),
            next_id: self.next_id,
            next_rowid: self.next_rowid,
            snapshot: self.snapshot,
        }
    }
}

/// A command decoded in place: its keys and payloads are slices of the log entry, so
/// applying a bulk entry copies each row once, into the engine's batch (decoding into owned
/// vectors cost two allocations per row on each replica).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandRef<'a> {
    /// User key → new payload (`None`: deleted).
    pub writes: Vec<(&'a [u8], Option<&'a [u8]>)>,
    /// Unversioned removals of whole key ranges.
    pub delete_ranges: Vec<(&'a [u8], &'a [u8])>,
    pub next_id: u64,
    pub next_rowid: u64,
    pub snapshot: bool,
}

impl<'a> CommandRef<'a> {
    pub fn decode(b: &'a [u8]) -> Result<CommandRef<'a>> {
        let mut r = Reader { b, pos: 0 };
        if r.take(2)? != MAGIC {
            return Err(Error::Corrupt("log entry is not a DuetDB command".into()));
        }
        let format = r.take(1)?[0];
        if format != FORMAT {
            return Err(Error::Corrupt(format!(
                "log entry has command format {format}, this build reads {FORMAT}"
            )));
        }
        let flags = r.take(1)?[0];
        let next_id = r.u64()?;
        let next_rowid = r.u64()?;
        let n = r.u32()? as usize;
        let mut writes = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let k = r.bytes()?;
            let v = match r.take(1)?[0] {
                0 => None,
                _ => Some(r.bytes()?),
            };
            writes.push((k, v));
        }
        let m = r.u32()? as usize;
        let mut delete_ranges = Vec::with_capacity(m.min(1024));
        for _ in 0..m {
            let s = r.bytes()?;
            let e = r.bytes()?;
            delete_ranges.push((s, e));
        }
        if r.pos != b.len() {
            return Err(Error::Corrupt("trailing bytes after a command".into()));
        }
        Ok(CommandRef {
            writes,
            delete_ranges,
            next_id,
            next_rowid,
            snapshot: flags & FLAG_SNAPSHOT != 0,
        })
    }
}

/// Encodes a command from borrowed parts (a transaction's write set is encoded without being
/// copied into a [`Command`] first).
pub fn encode_parts<'a>(
    writes: impl ExactSizeIterator<Item = (&'a [u8], Option<&'a [u8]>)> + Clone,
    delete_ranges: &[(Vec<u8>, Vec<u8>)],
    next_id: u64,
    next_rowid: u64,
    snapshot: bool,
) -> Vec<u8> {
    let size: usize = writes
        .clone()
        .map(|(k, v)| 9 + k.len() + v.map_or(0, |v| v.len() + 4))
        .sum::<usize>()
        + 32;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.push(if snapshot { FLAG_SNAPSHOT } else { 0 });
    out.extend_from_slice(&next_id.to_be_bytes());
    out.extend_from_slice(&next_rowid.to_be_bytes());
    out.extend_from_slice(&(writes.len() as u32).to_be_bytes());
    for (k, v) in writes {
        put_bytes(&mut out, k);
        match v {
            Some(v) => {
                out.push(1);
                put_bytes(&mut out, v);
            }
            None => out.push(0),
        }
    }
    out.extend_from_slice(&(delete_ranges.len() as u32).to_be_bytes());
    for (s, e) in delete_ranges {
        put_bytes(&mut out, s);
        put_bytes(&mut out, e);
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| Error::Corrupt("truncated command".into()))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_damage() {
        let c = Command {
            writes: vec![
                (b"k1".to_vec(), Some(b"v1".to_vec())),
                (b"k2".to_vec(), None),
                (vec![], Some(vec![])),
            ],
            delete_ranges: vec![(b"a".to_vec(), b"b".to_vec())],
            next_id: 7,
            next_rowid: 9,
            snapshot: true,
        };
        let b = c.encode();
        assert_eq!(CommandRef::decode(&b).unwrap(), c.view());
        for cut in [0, 3, 10, b.len() - 1] {
            assert!(CommandRef::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = b.clone();
        extra.push(0);
        assert!(CommandRef::decode(&extra).is_err());
        let mut wrong = b;
        wrong[2] = 9;
        assert!(CommandRef::decode(&wrong).is_err());
    }
}
