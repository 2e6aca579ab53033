//! Names of the objects m2s manages.
//!
//! A name must be a DNS-1123 label. The stacks derive more names from it (Seldon's Deployments
//! and Services, KServe's `<name>-predictor` and its host label), so a name is kept to at most
//! [`MAX_NAME_LEN`] characters, or fewer where a target says so for its namespace (its
//! `max_name_len`).

use crate::hash::fnv1a64;

/// Longest name m2s gives any object.
pub(crate) const MAX_NAME_LEN: usize = 45;
/// Shortest hashed form: `m2s-` and the hash (`m2s-1a2b3c4d`); a target whose namespace leaves
/// less room cannot name anything.
pub(crate) const MIN_HASHED_LEN: usize = 4 + HASH_LEN;
const HASH_LEN: usize = 8;

/// Whether `s` is a valid DNS-1123 label (lowercase alphanumerics and `-`, alphanumeric at both
/// ends, at most 63 characters).
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The object name for `model` deployed for `selector` (a stage or an alias), at most `max`
/// characters ([`MAX_NAME_LEN`] unless the target's namespace leaves less room).
///
/// `<model>-<lowercase selector>` when that is already a valid label of at most `max`
/// characters, so existing deployments keep the names the old service gave them. Otherwise a
/// sanitized form cut to fit, with 8 hex characters of a hash of the original pair, so that
/// names that sanitize alike (`Iris` vs `iris`, `a.b` vs `a_b`) stay distinct and every run
/// computes the same.
pub(crate) fn deployment_name(model: &str, selector: &str, max: usize) -> String {
    let base = format!("{model}-{}", selector.to_lowercase());
    if base.len() <= max && is_dns1123_label(&base) {
        return base;
    }
    hashed_name("", model, selector, max)
}

/// The hashed form behind a fixed `prefix`: `<prefix>-<sanitized, cut>-<hash>`, for targets whose
/// names must start with a letter. The hash suffix keeps it apart from every unhashed name.
pub(crate) fn prefixed_name(prefix: &str, model: &str, selector: &str, max: usize) -> String {
    hashed_name(prefix, model, selector, max)
}

/// `[<prefix>-]<sanitized (model-selector), cut>-<8 hex of a hash of the pair>`, at most `max`
/// characters (at least [`MIN_HASHED_LEN`]).
fn hashed_name(prefix: &str, model: &str, selector: &str, max: usize) -> String {
    debug_assert!(max >= MIN_HASHED_LEN, "no name fits in {max} characters");
    let base = format!("{model}-{}", selector.to_lowercase());
    let hash = stable_hash(model, selector);
    let mut sanitized = String::with_capacity(base.len() + prefix.len() + 1);
    if !prefix.is_empty() {
        sanitized.push_str(prefix);
        sanitized.push('-');
    }
    for ch in base.chars().flat_map(char::to_lowercase) {
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            sanitized.push(ch);
        } else if !sanitized.ends_with('-') {
            sanitized.push('-');
        }
    }
    let keep = max.clamp(MIN_HASHED_LEN, MAX_NAME_LEN) - HASH_LEN - 1;
    let trimmed = sanitized.trim_matches('-');
    let mut cut: String = trimmed.chars().take(keep).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    if cut.is_empty() {
        cut.push_str("m2s");
    }
    format!("{cut}-{hash}")
}

/// 8 hex characters of FNV-1a (64 bit) over the pair: fixed by definition, so names never
/// change between m2s versions or machines.
fn stable_hash(model: &str, selector: &str) -> String {
    let h = fnv1a64(model.bytes().chain([0u8]).chain(selector.bytes()));
    format!("{h:016x}")[..HASH_LEN].to_string()
}

#[cfg(test)]
mod tests;
