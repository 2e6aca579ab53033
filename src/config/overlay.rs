//! The cluster-wide overlay (`M2S_OVERLAY`): a JSON merge patch (RFC 7386) applied to every
//! object m2s renders, for platform settings such as node selectors, tolerations and labels.
//! It is checked once at start: it may not touch what m2s itself writes.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use crate::hash::content_hash;
use crate::json::merge_patch;
use crate::keys::{ANNOTATION_PREFIX, LABEL_INSTANCE, LABEL_MANAGED_BY};
use crate::targets::Target;

/// The overlay, checked against a target, with its hash.
#[derive(Debug, Clone)]
pub struct Overlay {
    patch: Value,
    hash: String,
}

impl Overlay {
    /// Reads the overlay file (YAML or JSON) and checks it against `target`.
    pub(crate) fn load(path: &Path, target: &dyn Target) -> Result<Overlay> {
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

    /// The value the overlay sets at `pointer`, if any.
    pub(crate) fn get(&self, pointer: &str) -> Option<&Value> {
        self.patch.pointer(pointer).filter(|v| !v.is_null())
    }

    /// Merges the overlay into `object` (RFC 7386).
    pub(crate) fn apply(&self, object: &mut Value) {
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
mod tests;
