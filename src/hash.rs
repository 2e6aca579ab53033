//! The stable hashes behind names and recorded hashes: FNV-1a (64 bit), fixed by its
//! definition (unlike std's hasher), so that names and hashes never change between m2s
//! versions or machines.

use serde_json::Value;

/// FNV-1a (64 bit) of `bytes`.
pub(crate) fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// FNV-1a (64 bit) of the canonical JSON (serde_json maps are sorted), as 16 hex characters.
pub(crate) fn content_hash(v: &Value) -> String {
    format!("{:016x}", fnv1a64(v.to_string().bytes()))
}
