use super::*;

#[test]
fn valid_base_is_kept_as_the_old_service_named_it() {
    assert_eq!(
        deployment_name("iris-classifier", "Production", MAX_NAME_LEN),
        "iris-classifier-production"
    );
    assert_eq!(
        deployment_name("fraud", "champion", MAX_NAME_LEN),
        "fraud-champion"
    );
}

#[test]
fn invalid_base_is_sanitized_with_hash_suffix() {
    let n = deployment_name("My_Model.v2", "Staging", MAX_NAME_LEN);
    assert!(n.starts_with("my-model-v2-staging-"), "{n}");
    assert_eq!(n.len(), "my-model-v2-staging-".len() + 8);
    assert!(is_dns1123_label(&n));
}

#[test]
fn names_that_sanitize_alike_differ() {
    let a = deployment_name("Iris", "Production", MAX_NAME_LEN);
    let b = deployment_name("iris", "Production", MAX_NAME_LEN);
    let c = deployment_name("IRIS", "Production", MAX_NAME_LEN);
    assert_eq!(b, "iris-production");
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_ne!(
        deployment_name("a.b", "Staging", MAX_NAME_LEN),
        deployment_name("a_b", "Staging", MAX_NAME_LEN)
    );
}

#[test]
fn long_names_are_cut_to_45() {
    let model = "x".repeat(300);
    let n = deployment_name(&model, "Production", MAX_NAME_LEN);
    assert_eq!(n.len(), MAX_NAME_LEN);
    assert!(is_dns1123_label(&n));
    let exactly = format!("{}-staging", "a".repeat(MAX_NAME_LEN - 8));
    assert_eq!(exactly.len(), MAX_NAME_LEN);
    assert_eq!(
        deployment_name(&"a".repeat(MAX_NAME_LEN - 8), "Staging", MAX_NAME_LEN),
        exactly
    );
    assert_ne!(
        deployment_name(&"a".repeat(MAX_NAME_LEN - 7), "Staging", MAX_NAME_LEN).len(),
        46
    );
}

#[test]
fn symbols_and_unicode_give_valid_names() {
    for model in ["!!!", "模型", "---", "Ünïcödé Model", "-a-", "9lives"] {
        let n = deployment_name(model, "Production", MAX_NAME_LEN);
        assert!(
            is_dns1123_label(&n) && n.len() <= MAX_NAME_LEN,
            "{model:?} -> {n:?}"
        );
    }
    assert!(deployment_name("模型", "Production", MAX_NAME_LEN).starts_with("production-"));
    assert!(deployment_name("!!!", "!!!", MAX_NAME_LEN).starts_with("m2s-"));
}

#[test]
fn names_are_stable() {
    // Pinned: a change here renames every sanitized deployment in every cluster.
    // Expected values from an independent FNV-1a 64 implementation (Python).
    assert_eq!(
        deployment_name("My Model", "Production", MAX_NAME_LEN),
        "my-model-production-432e451d"
    );
    assert_eq!(stable_hash("", ""), "af63bd4c");
}

#[test]
fn prefixed_names_start_with_the_prefix_and_keep_the_hash() {
    let n = prefixed_name("m2s", "2024-fraud", "Production", MAX_NAME_LEN);
    assert!(n.starts_with("m2s-2024-fraud-production-"), "{n}");
    assert!(n.ends_with(&stable_hash("2024-fraud", "Production")));
    assert!(is_dns1123_label(&n) && n.len() <= MAX_NAME_LEN);
    let long = prefixed_name("m2s", &"9".repeat(100), "champion", MAX_NAME_LEN);
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

#[test]
fn names_are_cut_to_the_room_a_target_leaves() {
    // Fits in 26: kept as it is.
    assert_eq!(deployment_name("iris", "Production", 26), "iris-production");
    // Longer than the room: hashed, cut to it exactly.
    let n = deployment_name("customer-churn-classifier", "champion", 31);
    assert_eq!(n.len(), 31, "{n}");
    assert!(
        n.starts_with("customer-churn-cla") && is_dns1123_label(&n),
        "{n}"
    );
    assert_eq!(
        n.rsplit('-').next().unwrap(),
        stable_hash("customer-churn-classifier", "champion")
    );
    // The shortest room leaves the prefix (or the model's first characters) and the hash.
    let shortest = prefixed_name("m2s", "2024-adm-d43d64", "Production", MIN_HASHED_LEN);
    assert_eq!(shortest.len(), MIN_HASHED_LEN);
    assert!(shortest.starts_with("m2s-"), "{shortest}");
    let short = deployment_name("iris-classifier", "production", MIN_HASHED_LEN);
    assert_eq!(short.len(), MIN_HASHED_LEN);
    assert!(short.starts_with("iri-"), "{short}");
    // Room beyond 45 does not lengthen names.
    assert_eq!(
        deployment_name(&"x".repeat(300), "Production", 60).len(),
        MAX_NAME_LEN
    );
}
