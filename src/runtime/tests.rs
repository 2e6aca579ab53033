use super::*;

#[test]
fn versions_parse_and_order() {
    let v = |s: &str| MlflowVersion::parse(s).unwrap();
    assert_eq!(v("2.19.0"), MlflowVersion::new(2, 19, 0));
    assert_eq!(v(" 2.22 "), MlflowVersion::new(2, 22, 0));
    assert_eq!(v("3.17.2rc1"), MlflowVersion::new(3, 17, 2));
    assert_eq!(v("2.10.0.dev0"), MlflowVersion::new(2, 10, 0));
    assert_eq!(v("2.4.2").to_string(), "2.4.2");
    assert!(v("2.9.2") < v("2.10.0"), "numerically, not as text");
    assert!(v("3.9.0") > v("3.8.99"));
    for bad in ["", "2", "v2.19.0", "2.x", "latest", "two.one"] {
        let e = MlflowVersion::parse(bad).unwrap_err();
        assert!(e.contains("is not an MLflow version"), "{bad:?}: {e}");
    }
}

#[test]
fn what_each_release_loads() {
    let v = |s: &str| MlflowVersion::parse(s).unwrap();
    // The runtimes the stacks ship, and the releases either side of the changes.
    for old in ["2.4.2", "2.10.2", "2.19.0", "2.22.5", "3.8.0"] {
        assert_eq!(sklearn_formats(v(old)), ["pickle", "cloudpickle"], "{old}");
    }
    for new in ["3.9.0", "3.14.0", "3.17.2"] {
        assert!(sklearn_formats(v(new)).contains(&"skops"), "{new}");
    }
    assert!(!reads_required_columns(v("2.4.2")));
    assert!(!reads_required_columns(v("2.9.2")));
    assert!(reads_required_columns(v("2.10.0")));
    assert!(reads_required_columns(v("2.19.0")));
}
