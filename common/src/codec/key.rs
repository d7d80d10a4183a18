//! Key layout. All keys start with one prefix byte:
//!
//! | prefix | key                                                      | value |
//! |--------|----------------------------------------------------------|-------|
//! | `0x00` | system name (e.g. `applied_version`)                     | raw   |
//! | `0x01` | table id (u32 BE)                                        | table definition (JSON, versioned) |
//! | `0x01` | `0xFF`, role name (UTF-8)                                | role definition (JSON, versioned) |
//! | `0x02` | storage id (u32 BE), `0x01`, primary key tuple, !version | tombstone or row |
//! | `0x02` | storage id (u32 BE), `0x02`, index id (u32 BE), index tuple [, pk tuple], !version | tombstone or pk tuple |
//!
//! A data key is a *user key* ([`Key`]) followed by the commit version in descending order
//! (`u64::MAX - version`, big-endian), so a forward seek to `user_key ++ !v` lands on the
//! newest version `<= v`. User keys are prefix-free (memcomparable tuples), so stripping the
//! 8-byte suffix recovers them unambiguously.

use crate::version::Version;

pub const SYSTEM_PREFIX: u8 = 0x00;
pub const CATALOG_PREFIX: u8 = 0x01;
pub const DATA_PREFIX: u8 = 0x02;
pub const RECORD_TAG: u8 = 0x01;
pub const INDEX_TAG: u8 = 0x02;

/// Length of the version suffix.
pub const VERSION_LEN: usize = 8;

/// Value byte of a deletion marker.
pub const TOMBSTONE: u8 = 0x00;
/// Value byte that precedes a live payload.
pub const LIVE: u8 = 0x01;

/// A user key (no version suffix): a record or index entry address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(Vec<u8>);

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl Key {
    pub fn from_raw(raw: Vec<u8>) -> Self {
        Key(raw)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
    /// The engine key of this user key at `version`.
    pub fn at_version(&self, version: Version) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.0.len() + VERSION_LEN);
        k.extend_from_slice(&self.0);
        k.extend_from_slice(&(u64::MAX - version.get()).to_be_bytes());
        k
    }
}

/// Splits an engine data key into user key bytes and version.
pub fn split_version(engine_key: &[u8]) -> Option<(&[u8], Version)> {
    let at = engine_key.len().checked_sub(VERSION_LEN)?;
    let (user, v) = engine_key.split_at(at);
    let inv = u64::from_be_bytes(v.try_into().ok()?);
    Some((user, Version::new(u64::MAX - inv)))
}

/// Key of a system entry.
pub fn system_key(name: &str) -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX];
    k.extend_from_slice(name.as_bytes());
    k
}

/// User key of a table definition (versioned like data, so DDL has a version too).
pub fn catalog_key(table_id: u32) -> Key {
    let mut k = vec![CATALOG_PREFIX];
    k.extend_from_slice(&table_id.to_be_bytes());
    Key(k)
}

/// The table id of a catalog key.
pub fn catalog_id(user_key: &[u8]) -> Option<u32> {
    match user_key {
        [CATALOG_PREFIX, a, b, c, d] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// The byte after the catalog prefix that starts a role's key (no table id reaches
/// `0xFF00_0000`).
const ROLE_TAG: u8 = 0xFF;

/// User key of a role (by name: roles are looked up by name at every login).
pub fn role_key(name: &str) -> Key {
    let mut k = vec![CATALOG_PREFIX, ROLE_TAG];
    k.extend_from_slice(name.as_bytes());
    Key(k)
}

/// The role name of a role key.
pub fn role_name(user_key: &[u8]) -> Option<&str> {
    match user_key {
        [CATALOG_PREFIX, ROLE_TAG, name @ ..] => std::str::from_utf8(name).ok(),
        _ => None,
    }
}

/// Range of all catalog keys.
pub fn catalog_range() -> (Vec<u8>, Vec<u8>) {
    (vec![CATALOG_PREFIX], vec![CATALOG_PREFIX + 1])
}

/// Prefix of every key of one table's storage (records and indexes).
pub fn storage_prefix(storage_id: u32) -> Vec<u8> {
    let mut k = vec![DATA_PREFIX];
    k.extend_from_slice(&storage_id.to_be_bytes());
    k
}

/// Prefix of all records of one table.
pub fn record_prefix(storage_id: u32) -> Vec<u8> {
    let mut k = storage_prefix(storage_id);
    k.push(RECORD_TAG);
    k
}

/// The storage id of a record key (`None` for any other key).
pub fn record_storage_id(user_key: &[u8]) -> Option<u32> {
    match user_key {
        [DATA_PREFIX, a, b, c, d, RECORD_TAG, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// User key of one record, from its encoded primary key tuple.
pub fn record_key(storage_id: u32, encoded_pk: &[u8]) -> Key {
    let mut k = record_prefix(storage_id);
    k.extend_from_slice(encoded_pk);
    Key(k)
}

/// Prefix of all entries of one index.
pub fn index_prefix(storage_id: u32, index_id: u32) -> Vec<u8> {
    let mut k = storage_prefix(storage_id);
    k.push(INDEX_TAG);
    k.extend_from_slice(&index_id.to_be_bytes());
    k
}

/// User key of an index entry. Unique indexes leave `encoded_pk` out (unless the indexed
/// tuple has a NULL, which never conflicts), so two rows with one value collide on one key.
pub fn index_key(
    storage_id: u32,
    index_id: u32,
    encoded_tuple: &[u8],
    encoded_pk: Option<&[u8]>,
) -> Key {
    let mut k = index_prefix(storage_id, index_id);
    k.extend_from_slice(encoded_tuple);
    if let Some(pk) = encoded_pk {
        k.extend_from_slice(pk);
    }
    Key(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_name_their_storage() {
        assert_eq!(record_storage_id(record_key(7, b"pk").as_bytes()), Some(7));
        assert_eq!(record_storage_id(&index_prefix(7, 3)), None);
        assert_eq!(record_storage_id(catalog_key(7).as_bytes()), None);
        assert_eq!(record_storage_id(&record_prefix(7)[..5]), None);
    }

    #[test]
    fn newer_versions_sort_first() {
        let k = record_key(7, b"\x01abc");
        let v5 = k.at_version(Version::new(5));
        let v9 = k.at_version(Version::new(9));
        assert!(v9 < v5);
        assert_eq!(split_version(&v5), Some((k.as_bytes(), Version::new(5))));
    }
}
