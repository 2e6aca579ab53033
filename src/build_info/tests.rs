use super::*;

#[test]
fn build_info_names_the_version_and_commit_with_the_labels_first() {
    let text = metric(&[("namespace", "models"), ("m2s_instance", "a\"b")]);
    let sample = text.lines().last().unwrap();
    assert_eq!(
        sample,
        format!(
            "m2s_build_info{{namespace=\"models\",m2s_instance=\"a\\\"b\",version=\"{VERSION}\",commit=\"{COMMIT}\"}} 1"
        )
    );
    assert!(text.starts_with("# HELP m2s_build_info "));
    assert!(text.contains("\n# TYPE m2s_build_info gauge\n"));
    let bare = metric(&[]);
    assert!(
        bare.ends_with(&format!(
            "m2s_build_info{{version=\"{VERSION}\",commit=\"{COMMIT}\"}} 1\n"
        )),
        "{bare}"
    );
}

#[test]
fn the_long_version_carries_the_commit() {
    // build.rs: M2S_BUILD_COMMIT, else git's 12-digit short hash, else "unknown" (the cli
    // suite compares it with the checkout's HEAD).
    assert!(!COMMIT.is_empty());
    assert_eq!(LONG_VERSION, format!("{VERSION} (commit {COMMIT})"));
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}
