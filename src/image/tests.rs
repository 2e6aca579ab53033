use super::*;

#[test]
fn accepts_common_references() {
    for ok in [
        "seldonio/mlflowserver:1.18.0",
        "mlflowserver",
        "registry.example.com:5000/team/model-server:v1.2_3",
        "localhost/x",
        "ghcr.io/org/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "ghcr.io/org/img:tag@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "a__b/c--d/e.f",
    ] {
        validate_image_reference(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn rejects_bad_references() {
    for bad in [
        "",
        "Seldonio/MLflow",
        "image with space",
        "img:",
        "img:-tag",
        "img@sha256:xyz",
        "reg.example.com:abc/img",
        "/img",
        "img/",
        "a...b",
        "-img",
        "http://registry/img",
    ] {
        assert!(validate_image_reference(bad).is_err(), "{bad:?} accepted");
    }
}
