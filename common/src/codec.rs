//! Byte layouts: memcomparable datums ([`memcmp`]), keys ([`key`]) and row values ([`row`]).
//! Every persisted byte format of the row store is defined here and nowhere else.

pub mod key;
pub mod memcmp;
pub mod row;
