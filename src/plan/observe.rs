//! Listed objects, each compared with the registry's entry of its name as it streams in.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::DeployConfig;
use crate::desired::{
    recorded, render, Desired, Registry, Selector, ANNOTATION_PREFIX, ANN_ALIAS, ANN_MODEL_NAME,
    ANN_MODEL_URI, ANN_MODEL_VERSION, ANN_OVERLAY_HASH, ANN_SPEC_HASH, ANN_STAGE,
};
use crate::mlflow::Resolved;
use crate::targets::{canonical_quantities, field_changes, field_values};

/// An object in the cluster that carries m2s's labels, as listed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ActualObject {
    pub name: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: Value,
}

impl ActualObject {
    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// The identity of a listed object and what it serves: all a plan keeps of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectRef {
    pub name: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub model: Option<String>,
    pub version: Option<String>,
    pub selector: Option<Selector>,
}

impl ObjectRef {
    pub fn of(a: &ActualObject) -> ObjectRef {
        ObjectRef {
            name: a.name.clone(),
            uid: a.uid.clone(),
            resource_version: a.resource_version.clone(),
            model: a.annotation(ANN_MODEL_NAME).map(String::from),
            version: a.annotation(ANN_MODEL_VERSION).map(String::from),
            selector: a
                .annotation(ANN_STAGE)
                .map(|s| Selector::Stage(s.to_string()))
                .or_else(|| {
                    a.annotation(ANN_ALIAS)
                        .map(|s| Selector::Alias(s.to_string()))
                }),
        }
    }
}

/// What an object was before an update, for the reasons.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Before {
    pub version: Option<String>,
    pub model_uri: Option<String>,
    pub spec_hash: Option<String>,
    pub overlay_hash: Option<String>,
    /// The target's setting fields, as [`field_values`] reads them.
    pub fields: Vec<Option<String>>,
}

impl Before {
    fn of(a: &ActualObject, cfg: &DeployConfig) -> Before {
        let whole = serde_json::json!({ "spec": a.spec });
        Before {
            version: a.annotation(ANN_MODEL_VERSION).map(String::from),
            model_uri: a.annotation(ANN_MODEL_URI).map(String::from),
            spec_hash: a.annotation(ANN_SPEC_HASH).map(String::from),
            overlay_hash: a.annotation(ANN_OVERLAY_HASH).map(String::from),
            fields: field_values(cfg.target, &whole),
        }
    }
}

/// What the cluster has for one entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Found {
    /// No object of that name.
    #[default]
    Absent,
    /// The object is as m2s would write it now.
    InSync,
    /// The object serves this version but differs from what m2s would write now. (Boxed, as
    /// is `Stale`: one slot per entry, and a large registry is mostly `InSync`.)
    Differs(Box<Differing>),
    /// The object serves another version (or another model's): its location must be resolved.
    Stale(Box<StaleObject>),
    /// The object is there, but the entry cannot be rendered: the object stays as it is.
    Held(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Differing {
    pub object: ObjectRef,
    pub resolved: Resolved,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StaleObject {
    pub object: ObjectRef,
    pub before: Before,
}

/// What one listed object is, compared with the registry now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// As m2s would write it.
    InSync,
    /// Its entry wants something else (another version, other settings).
    UpdatePending,
    /// No entry wants it.
    DeletePending,
    /// Its entry cannot be deployed: the object is left as it is.
    NotDeployable,
}

impl Verdict {
    /// How `status` shows it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::InSync => "in sync",
            Verdict::UpdatePending => "update pending",
            Verdict::DeletePending => "delete pending",
            Verdict::NotDeployable => "not deployable",
        }
    }
}

/// Compares listed objects with the registry's entries, one object at a time.
pub struct Observer<'a> {
    registry: &'a Registry,
    cfg: &'a DeployConfig,
    /// Per entry of the registry, in its order.
    pub found: Vec<Found>,
    /// Objects no entry wants (and no entry error holds).
    pub unwanted: Vec<ObjectRef>,
    /// UIDs of the objects left as they are because their entry cannot be deployed (for the
    /// Events about them).
    pub held: BTreeMap<String, String>,
    pub managed: usize,
}

impl<'a> Observer<'a> {
    pub fn new(registry: &'a Registry, cfg: &'a DeployConfig) -> Self {
        Observer {
            registry,
            cfg,
            found: vec![Found::Absent; registry.entries.len()],
            unwanted: Vec::new(),
            held: BTreeMap::new(),
            managed: 0,
        }
    }

    /// Takes in one listed object of this instance, and says what it is.
    pub fn observe(&mut self, a: &ActualObject) -> Verdict {
        self.managed += 1;
        let entries = &self.registry.entries;
        let Ok(i) = entries.binary_search_by(|e| (*e.name).cmp(&a.name)) else {
            if self.registry.holds(&a.name) {
                self.hold(a);
                return Verdict::NotDeployable;
            }
            self.unwanted.push(ObjectRef::of(a));
            return Verdict::DeletePending;
        };
        let entry = &entries[i];
        self.found[i] = match recorded(entry, &a.annotations) {
            None => Found::Stale(Box::new(StaleObject {
                object: ObjectRef::of(a),
                before: Before::of(a, self.cfg),
            })),
            Some(rec) => match render(entry, &rec.location, &rec.version_tags, self.cfg) {
                Err(message) => {
                    self.hold(a);
                    Found::Held(message)
                }
                Ok(d) if in_sync(&d, a, self.cfg) => Found::InSync,
                Ok(d) => {
                    let before = Before::of(a, self.cfg);
                    let mut reasons = reasons(&d, &before, self.cfg);
                    if reasons.is_empty() {
                        reasons.push("changed outside m2s; restoring".into());
                    }
                    Found::Differs(Box::new(Differing {
                        object: ObjectRef::of(a),
                        resolved: Resolved {
                            location: rec.location,
                            version_tags: rec.version_tags,
                        },
                        reasons,
                    }))
                }
            },
        };
        match self.found[i] {
            Found::InSync => Verdict::InSync,
            Found::Held(_) => Verdict::NotDeployable,
            _ => Verdict::UpdatePending,
        }
    }

    fn hold(&mut self, a: &ActualObject) {
        if let Some(uid) = &a.uid {
            self.held.insert(a.name.clone(), uid.clone());
        }
    }

    /// The entries whose location must be read from MLflow: no object yet, or a stale one.
    pub fn to_resolve(&self) -> Vec<usize> {
        (0..self.found.len())
            .filter(|&i| matches!(self.found[i], Found::Absent | Found::Stale(_)))
            .collect()
    }
}

/// Whether every field of `want` is in `have` with the same value (objects may have more
/// fields: the API server and the stack's webhooks add defaults; arrays match element-wise).
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| is_subset(v, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == have,
    }
}

/// Whether the live object is as m2s would write it: m2s's annotations exactly, its labels and
/// the overlay's annotations present, and the spec a superset (quantities by value).
fn in_sync(d: &Desired, a: &ActualObject, cfg: &DeployConfig) -> bool {
    let want = d.annotations();
    let ours_now = a
        .annotations
        .iter()
        .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX));
    let same_ours = ours_now.clone().count()
        == want
            .keys()
            .filter(|k| k.starts_with(ANNOTATION_PREFIX))
            .count()
        && ours_now
            .into_iter()
            .all(|(k, v)| want.get(k).and_then(Value::as_str) == Some(v));
    let present = |wanted: &Value, have: &BTreeMap<String, String>| {
        wanted.as_object().is_some_and(|w| {
            w.iter()
                .all(|(k, v)| have.get(k).map(String::as_str) == v.as_str())
        })
    };
    if !(same_ours
        && present(&d.object["metadata"]["labels"], &a.labels)
        && present(&d.object["metadata"]["annotations"], &a.annotations))
    {
        return false;
    }
    let whole = serde_json::json!({ "spec": a.spec });
    let live = canonical_quantities(cfg.target, &whole);
    let want = canonical_quantities(cfg.target, &d.object);
    is_subset(
        &want.as_ref().unwrap_or(&d.object)["spec"],
        &live.as_ref().unwrap_or(&whole)["spec"],
    )
}

/// Why an object must be updated to `d`: what changed, in words.
pub(super) fn reasons(d: &Desired, before: &Before, cfg: &DeployConfig) -> Vec<String> {
    let ann = d.annotations();
    let want = |k: &str| ann.get(k).and_then(Value::as_str);
    let mut reasons = Vec::new();
    let new_version = want(ANN_MODEL_VERSION);
    if before.version.as_deref() != new_version {
        reasons.push(format!(
            "version {} → {}",
            before.version.as_deref().unwrap_or("?"),
            new_version.unwrap_or("?")
        ));
    } else if before.model_uri.as_deref() != want(ANN_MODEL_URI) {
        reasons.push("model URI changed".to_string());
    }
    reasons.extend(field_changes(
        cfg.target,
        &before.fields,
        &field_values(cfg.target, &d.object),
    ));
    if before.overlay_hash.as_deref() != want(ANN_OVERLAY_HASH) {
        reasons.push("overlay changed".to_string());
    }
    if reasons.is_empty() && before.spec_hash.as_deref() != want(ANN_SPEC_HASH) {
        reasons.push("configuration changed".to_string());
    }
    reasons
}
