use super::*;
use crate::targets::by_id;
use serde_json::json;

fn parse(text: &str, target: &str) -> Result<Overlay> {
    Overlay::parse(text, by_id(target).unwrap())
}

#[test]
fn merge_patch_follows_rfc7386() {
    // The examples of RFC 7386, section 3.
    for (target, patch, result) in [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (json!("string"), json!({"a": "b"}), json!({"a": "b"})),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ] {
        let mut t = target.clone();
        merge_patch(&mut t, &patch);
        assert_eq!(t, result, "{target} + {patch}");
    }
}

#[test]
fn platform_settings_are_accepted_in_yaml_and_json() {
    let yaml = "metadata:\n  labels:\n    cost-center: ml\nspec:\n  predictor:\n    nodeSelector:\n      pool: gpu\n    tolerations:\n    - key: gpu\n      operator: Exists\n";
    let o = parse(yaml, "kserve").unwrap();
    let mut obj = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "m2s"}}, "spec": {"predictor": {"model": {"storageUri": "s3://x"}}}});
    o.apply(&mut obj);
    assert_eq!(obj["metadata"]["labels"]["cost-center"], "ml");
    assert_eq!(
        obj["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "m2s"
    );
    assert_eq!(obj["spec"]["predictor"]["nodeSelector"]["pool"], "gpu");
    assert_eq!(obj["spec"]["predictor"]["model"]["storageUri"], "s3://x");
    let same = parse(r#"{"metadata": {"labels": {"cost-center": "ml"}}, "spec": {"predictor": {"nodeSelector": {"pool": "gpu"}, "tolerations": [{"key": "gpu", "operator": "Exists"}]}}}"#, "kserve").unwrap();
    assert_eq!(
        o.hash(),
        same.hash(),
        "one patch, one hash, whatever the syntax"
    );
    assert_eq!(parse("", "kserve").unwrap().patch, json!({}));
}

#[test]
fn forbidden_paths_are_named() {
    for (target, text, path) in [
        ("kserve", "metadata: {name: x}", "/metadata/name"),
        ("kserve", "metadata: {namespace: x}", "/metadata/namespace"),
        ("kserve", "kind: Other", "/kind"),
        (
            "kserve",
            "metadata: {labels: {m2s.io/instance: x}}",
            "/metadata/labels/m2s.io~1instance",
        ),
        (
            "kserve",
            "metadata: {annotations: {m2s.io/model-version: '9'}}",
            "/metadata/annotations/m2s.io~1model-version",
        ),
        ("kserve", "metadata: {labels: null}", "/metadata/labels"),
        (
            "kserve",
            "spec: {predictor: {model: {storageUri: s3://other}}}",
            "/spec/predictor/model/storageUri",
        ),
        (
            "kserve",
            "spec: {predictor: {minReplicas: 2}}",
            "/spec/predictor/minReplicas",
        ),
        (
            "kserve",
            "spec: {predictor: {model: {resources: {limits: {memory: 1Gi}}}}}",
            "/spec/predictor/model/resources/limits/memory",
        ),
        ("kserve", "spec: {predictor: null}", "/spec/predictor"),
        (
            "kserve",
            "spec: {predictor: {model: {modelFormat: {version: '2'}}}}",
            "/spec/predictor/model/modelFormat",
        ),
        (
            "seldon-v1",
            "spec: {predictors: [{name: x}]}",
            "/spec/predictors",
        ),
        ("seldon-v2", "spec: {memory: 1Gi}", "/spec/memory"),
        (
            "seldon-v2",
            "spec: {requirements: [gpu]}",
            "/spec/requirements",
        ),
    ] {
        let err = format!("{:#}", parse(text, target).unwrap_err());
        assert!(err.starts_with(path), "{target} {text}: {err}");
    }
    assert!(parse("[1, 2]", "kserve")
        .unwrap_err()
        .to_string()
        .contains("mapping"));
    assert!(parse("a: [", "kserve").is_err());
}

#[test]
fn allowed_spec_fields_per_target() {
    parse(
        "spec: {predictor: {nodeSelector: {a: b}, model: {env: [{name: X, value: '1'}]}}}",
        "kserve",
    )
    .unwrap();
    // A CPU limit is not a per-model setting (m2s.cpu is the request): the platform may set it.
    parse(
        "spec: {predictor: {model: {resources: {limits: {cpu: '2'}}}}}",
        "kserve",
    )
    .unwrap();
    parse("spec: {server: mlserver-gpu}", "seldon-v2").unwrap();
    parse("spec: {annotations: {seldon.io/x: y}}", "seldon-v1").unwrap();
    parse("metadata: {annotations: {team.io/owner: ml}}", "seldon-v1").unwrap();
}
