//! Names of the SeldonDeployments m2s manages.
//!
//! A name must be a DNS-1123 label; Seldon derives Service and Deployment names from it, so it is
//! kept to [`MAX_NAME_LEN`] characters to leave room for Seldon's suffixes.

/// Longest name m2s gives a SeldonDeployment.
pub const MAX_NAME_LEN: usize = 45;
const HASH_LEN: usize = 8;

/// Whether `s` is a valid DNS-1123 label (lowercase alphanumerics and `-`, alphanumeric at both
/// ends, at most 63 characters).
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The SeldonDeployment name for `model` deployed for `selector` (a stage or an alias).
///
/// `<model>-<lowercase selector>` when that is already a valid label of at most 45 characters,
/// so existing deployments keep the names the old service gave them. Otherwise a sanitized,
/// shortened form with 8 hex characters of a hash of the original pair, so that names that
/// sanitize alike (`Iris` vs `iris`, `a.b` vs `a_b`) stay distinct and every run computes the same.
pub fn deployment_name(model: &str, selector: &str) -> String {
    let base = format!("{model}-{}", selector.to_lowercase());
    if base.len() <= MAX_NAME_LEN && is_dns1123_label(&base) {
        return base;
    }
    hashed_name("", model, selector)
}

/// The hashed form behind a fixed `prefix`: `<prefix>-<sanitized, cut>-<hash>`, for targets whose
/// names must start with a letter. The hash suffix keeps it apart from every unhashed name.
pub fn prefixed_name(prefix: &str, model: &str, selector: &str) -> String {
    hashed_name(prefix, model, selector)
}

/// `[<prefix>-]<sanitized (model-selector), cut>-<8 hex of a hash of the pair>`, at most
/// [`MAX_NAME_LEN`] characters.
fn hashed_name(prefix: &str, model: &str, selector: &str) -> String {
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
    let keep = MAX_NAME_LEN - HASH_LEN - 1;
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

/// 8 hex characters of FNV-1a (64 bit) over the pair: fixed by definition, unlike std's hasher,
/// so names never change between m2s versions or machines.
fn stable_hash(model: &str, selector: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in model.bytes().chain([0u8]).chain(selector.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:016x}", h)[..HASH_LEN].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_base_is_kept_as_the_old_service_named_it() {
        assert_eq!(
            deployment_name("iris-classifier", "Production"),
            "iris-classifier-production"
        );
        assert_eq!(deployment_name("fraud", "champion"), "fraud-champion");
    }

    #[test]
    fn invalid_base_is_sanitized_with_hash_suffix() {
        let n = deployment_name("My_Model.v2", "Staging");
        assert!(n.starts_with("my-model-v2-staging-"), "{n}");
        assert_eq!(n.len(), "my-model-v2-staging-".len() + 8);
        assert!(is_dns1123_label(&n));
    }

    #[test]
    fn names_that_sanitize_alike_differ() {
        let a = deployment_name("Iris", "Production");
        let b = deployment_name("iris", "Production");
        let c = deployment_name("IRIS", "Production");
        assert_eq!(b, "iris-production");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            deployment_name("a.b", "Staging"),
            deployment_name("a_b", "Staging")
        );
    }

    #[test]
    fn long_names_are_cut_to_45() {
        let model = "x".repeat(300);
        let n = deployment_name(&model, "Production");
        assert_eq!(n.len(), MAX_NAME_LEN);
        assert!(is_dns1123_label(&n));
        let exactly = format!("{}-staging", "a".repeat(MAX_NAME_LEN - 8));
        assert_eq!(exactly.len(), MAX_NAME_LEN);
        assert_eq!(
            deployment_name(&"a".repeat(MAX_NAME_LEN - 8), "Staging"),
            exactly
        );
        assert_ne!(
            deployment_name(&"a".repeat(MAX_NAME_LEN - 7), "Staging").len(),
            46
        );
    }

    #[test]
    fn symbols_and_unicode_give_valid_names() {
        for model in ["!!!", "模型", "---", "Ünïcödé Model", "-a-", "9lives"] {
            let n = deployment_name(model, "Production");
            assert!(
                is_dns1123_label(&n) && n.len() <= MAX_NAME_LEN,
                "{model:?} -> {n:?}"
            );
        }
        assert!(deployment_name("模型", "Production").starts_with("production-"));
        assert!(deployment_name("!!!", "!!!").starts_with("m2s-"));
    }

    #[test]
    fn names_are_stable() {
        // Pinned: a change here renames every sanitized deployment in every cluster.
        // Expected values from an independent FNV-1a 64 implementation (Python).
        assert_eq!(
            deployment_name("My Model", "Production"),
            "my-model-production-432e451d"
        );
        assert_eq!(stable_hash("", ""), "af63bd4c");
    }

    #[test]
    fn prefixed_names_start_with_the_prefix_and_keep_the_hash() {
        let n = prefixed_name("m2s", "2024-fraud", "Production");
        assert!(n.starts_with("m2s-2024-fraud-production-"), "{n}");
        assert!(n.ends_with(&stable_hash("2024-fraud", "Production")));
        assert!(is_dns1123_label(&n) && n.len() <= MAX_NAME_LEN);
        let long = prefixed_name("m2s", &"9".repeat(100), "champion");
        assert_eq!(long.len(), MAX_NAME_LEN);
        assert!(long.starts_with("m2s-999"));
    }

    #[test]
    fn dns1123_label_rules() {
        assert!(is_dns1123_label("a"));
        assert!(is_dns1123_label("a-1"));
        assert!(!is_dns1123_label(""));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a-"));
        assert!(!is_dns1123_label("A"));
        assert!(!is_dns1123_label("a_b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }
}
