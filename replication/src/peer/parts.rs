//! Proposals larger than one entry may be (`PeerOptions::max_entry_bytes`, TiKV's
//! `raft-entry-max-size` idea): the leader writes such a proposal into the log as **parts**,
//! consecutive entries of at most that size, and the state machine sees it once, whole, at the
//! index of its last part.
//!
//! One entry of a bulk load's transaction was 150 MB: encoding it, writing it to raft-engine
//! with an fsync and sending it took each voter's driver longer than an election timeout, so
//! the leader lost its quorum's answers (check-quorum) and stepped down, and the load failed.
//! Parts of a few megabytes keep every driver turn short; the leader proposes the next part
//! only when the ones before it are nearly all committed, so a turn never writes more than a
//! few parts.
//!
//! A part names its group (the index of the group's first part) and its place in it in the
//! entry's context, which raft carries and the log keeps. The leader proposes nothing else
//! while a group goes out, so a group's parts are consecutive entries of one term. That
//! gives the rule every replica applies alike: any other entry (a new leader's empty entry
//! after the old one died mid-group, a conf change) **drops** an unfinished group, whose
//! proposer was told it failed. Until its last part, nothing of a group reaches the state
//! machine: its applied index stays before the group, so a restart replays the parts, the
//! log is not compacted past them, and a snapshot is taken before them.

use bytes::{Bytes, BytesMut};

const MAGIC: &[u8; 2] = b"DP";
const TAG_LEN: usize = 2 + 8 + 4 + 1;

/// Where an entry stands in a group: in the entry's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartTag {
    /// The index of the group's first part.
    pub group: u64,
    /// This part's place in the group, from 0.
    pub seq: u32,
    /// It is the group's last part.
    pub last: bool,
}

impl PartTag {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.group.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.push(u8::from(self.last));
        out
    }

    /// The tag in an entry's context, if it has one.
    pub fn decode(context: &[u8]) -> Option<PartTag> {
        if context.len() != TAG_LEN || &context[..2] != MAGIC {
            return None;
        }
        Some(PartTag {
            group: u64::from_be_bytes(context[2..10].try_into().ok()?),
            seq: u32::from_be_bytes(context[10..14].try_into().ok()?),
            last: context[14] != 0,
        })
    }
}

/// A proposal the leader is writing as parts.
pub(crate) struct Outgoing<D> {
    /// The term it started in; a leader that lost it stops.
    pub term: u64,
    pub data: Vec<u8>,
    /// How much of `data` is proposed.
    pub offset: usize,
    pub next_seq: u32,
    /// The first part's index (0 until proposed), and the last proposed part's.
    pub group: u64,
    pub last_index: u64,
    /// Its proposer's reply, answered when the last part is applied.
    pub done: D,
}

impl<D> Outgoing<D> {
    pub fn new(term: u64, data: Vec<u8>, done: D) -> Self {
        Self {
            term,
            data,
            offset: 0,
            next_seq: 0,
            group: 0,
            last_index: 0,
            done,
        }
    }

    /// The next part of at most `max` bytes, its tag (given the index it will get) and
    /// where the proposal continues after it.
    pub fn next_part(&self, max: usize, index: u64) -> (Vec<u8>, PartTag, usize) {
        let end = (self.offset + max.max(1)).min(self.data.len());
        let tag = PartTag {
            group: if self.next_seq == 0 {
                index
            } else {
                self.group
            },
            seq: self.next_seq,
            last: end == self.data.len(),
        };
        (self.data[self.offset..end].to_vec(), tag, end)
    }

    /// The part `tag` ending at `end` got `index`.
    pub fn proposed(&mut self, tag: PartTag, end: usize, index: u64) {
        self.group = tag.group;
        self.last_index = index;
        self.offset = end;
        self.next_seq += 1;
    }
}

/// What a replica does with a committed entry, as far as groups go.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Assembled {
    /// A part was kept; the state machine sees nothing yet.
    Kept,
    /// The last part of a complete group: the whole proposal's parts, to apply together at
    /// its index (joined by [`join`], beside the driver when large: copying 450 MB took
    /// longer than an election timeout).
    Whole(Vec<Bytes>),
    /// A part that belongs to no group being assembled (its group was dropped, or its
    /// beginning is before a snapshot this replica restored): nothing to apply.
    Stray,
}

/// Reassembles groups from committed entries, in log order.
#[derive(Default)]
pub(crate) struct Assembler {
    group: u64,
    next_seq: u32,
    parts: Vec<Bytes>,
}

impl Assembler {
    /// Whether a group is being assembled.
    pub fn is_open(&self) -> bool {
        self.next_seq > 0
    }

    /// Drops the group being assembled, if any (another entry came between its parts);
    /// whether there was one.
    pub fn drop_group(&mut self) -> bool {
        let open = self.is_open();
        self.group = 0;
        self.next_seq = 0;
        self.parts = Vec::new();
        open
    }

    /// Takes part `tag` of the entry at `index`.
    pub fn push(&mut self, index: u64, tag: PartTag, data: Bytes) -> Assembled {
        let follows = self.is_open() && tag.group == self.group && tag.seq == self.next_seq;
        if !follows {
            self.drop_group();
            if tag.seq != 0 || tag.group != index {
                return Assembled::Stray;
            }
            self.group = index;
        }
        self.next_seq += 1;
        self.parts.push(data);
        if !tag.last {
            return Assembled::Kept;
        }
        let parts = std::mem::take(&mut self.parts);
        self.drop_group();
        Assembled::Whole(parts)
    }
}

/// The parts of a proposal, joined.
pub(crate) fn join(parts: Vec<Bytes>) -> Bytes {
    if parts.len() == 1 {
        return parts.into_iter().next().expect("one part");
    }
    let mut whole = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
    for p in parts {
        whole.extend_from_slice(&p);
    }
    whole.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(group: u64, seq: u32, last: bool) -> PartTag {
        PartTag { group, seq, last }
    }

    #[test]
    fn a_tag_round_trips_and_other_contexts_are_not_tags() {
        let t = tag(7, 3, true);
        assert_eq!(PartTag::decode(&t.encode()), Some(t));
        assert_eq!(PartTag::decode(b""), None);
        assert_eq!(PartTag::decode(&[0u8; TAG_LEN]), None);
    }

    #[test]
    fn outgoing_parts_cover_the_proposal_and_name_the_first_index() {
        let mut out = Outgoing::new(1, (0..10u8).collect(), ());
        let mut got = Vec::new();
        let mut index = 41;
        loop {
            index += 1;
            let (data, t, end) = out.next_part(4, index);
            out.proposed(t, end, index);
            got.push((data, t));
            if t.last {
                break;
            }
        }
        assert_eq!(
            got,
            vec![
                (vec![0, 1, 2, 3], tag(42, 0, false)),
                (vec![4, 5, 6, 7], tag(42, 1, false)),
                (vec![8, 9], tag(42, 2, true)),
            ]
        );
        assert_eq!(out.last_index, 44);
    }

    #[test]
    fn a_complete_group_is_whole_at_its_last_part() {
        let mut a = Assembler::default();
        assert_eq!(
            a.push(5, tag(5, 0, false), Bytes::from_static(b"ab")),
            Assembled::Kept
        );
        assert!(a.is_open());
        assert_eq!(
            a.push(6, tag(5, 1, false), Bytes::from_static(b"cd")),
            Assembled::Kept
        );
        let Assembled::Whole(parts) = a.push(7, tag(5, 2, true), Bytes::from_static(b"e")) else {
            panic!("not whole");
        };
        assert_eq!(join(parts), Bytes::from_static(b"abcde"));
        assert!(!a.is_open());
        let Assembled::Whole(parts) = a.push(8, tag(8, 0, true), Bytes::from_static(b"x")) else {
            panic!("not whole");
        };
        assert_eq!(join(parts), Bytes::from_static(b"x"));
    }

    #[test]
    fn a_dropped_group_and_its_stray_parts_never_become_whole() {
        let mut a = Assembler::default();
        a.push(5, tag(5, 0, false), Bytes::from_static(b"ab"));
        // A new leader's entry came between the parts.
        assert!(a.drop_group());
        assert!(!a.drop_group());
        assert_eq!(
            a.push(7, tag(5, 1, true), Bytes::from_static(b"cd")),
            Assembled::Stray
        );
        // A new group replaces an unfinished one; a part out of order is stray.
        a.push(9, tag(9, 0, false), Bytes::from_static(b"1"));
        a.push(10, tag(10, 0, false), Bytes::from_static(b"2"));
        assert_eq!(
            a.push(11, tag(10, 2, true), Bytes::from_static(b"3")),
            Assembled::Stray
        );
        assert!(!a.is_open());
        // A first part whose group is not its own index is not a first part.
        assert_eq!(
            a.push(12, tag(3, 0, true), Bytes::from_static(b"4")),
            Assembled::Stray
        );
        // The beginning of a group before a restored snapshot: the rest is stray.
        assert_eq!(
            a.push(20, tag(18, 2, false), Bytes::from_static(b"5")),
            Assembled::Stray
        );
        assert_eq!(
            a.push(21, tag(18, 3, true), Bytes::from_static(b"6")),
            Assembled::Stray
        );
    }
}
