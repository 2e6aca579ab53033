//! The cluster-wide overlay (`M2S_OVERLAY`): a JSON merge patch (RFC 7386) applied to every
//! object m2s renders, for platform settings such as node selectors, tolerations and labels.
//! It is checked once at start: it may not touch what m2s itself writes.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use crate::desired::{content_hash, ANNOTATION_PREFIX, LABEL_INSTANCE, LABEL_MANAGED_BY};
use crate::targets::Target;

#[derive(Debug, Clone)]
pub struct Overlay {
    patch: Value,
    hash: String,
}

impl Overlay {
    /// Reads the overlay file (YAML or JSON) and checks it against `target`.
    pub fn load(path: &Path, target: &dyn Target) -> Result<Overlay> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the overlay {} (M2S_OVERLAY)", path.display()))?;
        Overlay::parse(&text, target)
            .with_context(|| format!("overlay {} (M2S_OVERLAY)", path.display()))
    }

    /// Parses and checks an overlay; JSON is YAML, so one parser reads both.
    pub fn parse(text: &str, target: &dyn Target) -> Result<Overlay> {
        let patch: Value = yaml_serde::from_str(text).context("not valid YAML or JSON")?;
        let patch = match patch {
            Value::Null => Value::Object(Map::new()),
            Value::Object(_) => patch,
            other => bail!(
                "must be a mapping (a JSON merge patch), not {}",
                kind(&other)
            ),
        };
        check(&patch, target)?;
        let hash = content_hash(&patch);
        Ok(Overlay { patch, hash })
    }

    /// Hash of the patch, recorded on every object (`m2s.io/overlay-hash`).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn is_empty(&self) -> bool {
        self.patch.as_object().is_some_and(Map::is_empty)
    }

    /// Merges the overlay into `object` (RFC 7386).
    pub fn apply(&self, object: &mut Value) {
        merge_patch(object, &self.patch);
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object");
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Refuses a patch that would change the name, namespace, m2s's labels and annotations, the
/// fields every object gets from the target, or the fields per-model settings own; the error
/// names the path.
fn check(patch: &Value, target: &dyn Target) -> Result<()> {
    let top = patch.as_object().expect("checked to be a mapping");
    for key in top.keys() {
        if key != "metadata" && key != "spec" {
            bail!("/{key}: the overlay may set metadata.labels, metadata.annotations and spec fields only");
        }
    }
    if let Some(meta) = top.get("metadata") {
        let Some(meta) = meta.as_object() else {
            bail!("/metadata: must be a mapping");
        };
        for (key, value) in meta {
            if key != "labels" && key != "annotations" {
                bail!("/metadata/{key}: the overlay may set metadata.labels and metadata.annotations only (the name and namespace are m2s's)");
            }
            let Some(entries) = value.as_object() else {
                bail!("/metadata/{key}: must be a mapping (replacing it would remove m2s's own {key})");
            };
            for name in entries.keys() {
                let ours = match key.as_str() {
                    "labels" => name == LABEL_MANAGED_BY || name == LABEL_INSTANCE,
                    _ => name.starts_with(ANNOTATION_PREFIX),
                };
                if ours {
                    bail!(
                        "/metadata/{key}/{}: m2s's own {key} cannot be overlaid",
                        escape(name)
                    );
                }
            }
        }
    }
    let owned: Vec<&str> = target
        .base_pointers()
        .iter()
        .copied()
        .chain(target.fields().iter().map(|f| f.pointer))
        .collect();
    if let Some(spec) = top.get("spec") {
        check_spec(spec, "/spec", &owned, target)?;
    }
    Ok(())
}

fn check_spec(value: &Value, path: &str, owned: &[&str], target: &dyn Target) -> Result<()> {
    let inside_owned = owned.iter().find(|o| is_prefix(o, path));
    if let Some(o) = inside_owned {
        bail!(
            "{path}: m2s sets {o} on every {} (target {}); the overlay cannot change it",
            target.resource().kind,
            target.id()
        );
    }
    match value {
        // A mapping merges key by key: only its keys can reach an owned field.
        Value::Object(map) if !owned.contains(&path) => {
            for (key, v) in map {
                check_spec(v, &format!("{path}/{}", escape(key)), owned, target)?;
            }
            Ok(())
        }
        // Anything else replaces (or with null, removes) the whole value at `path`.
        _ => match owned.iter().find(|o| is_prefix(path, o)) {
            Some(o) => bail!(
                "{path}: replacing it would change {o}, which m2s sets on every {} (target {}){}",
                target.resource().kind,
                target.id(),
                if value.is_array() {
                    "; a merge patch replaces a list whole and cannot reach into it"
                } else {
                    ""
                }
            ),
            None => Ok(()),
        },
    }
}

/// Whether JSON pointer `prefix` is `path` or one of its ancestors.
fn is_prefix(prefix: &str, path: &str) -> bool {
    path == prefix || path.starts_with(prefix) && path[prefix.len()..].starts_with('/')
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
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
        assert!(parse("", "kserve").unwrap().is_empty());
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
}
