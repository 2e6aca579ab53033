//! Listed objects, each compared with the registry's entry of its name as it streams in.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::DeployConfig;
use crate::desired::{recorded, render, Desired, Registry, Selector};
use crate::json::is_subset;
use crate::k8s::ListedObject;
use crate::keys::{
    ANNOTATION_PREFIX, ANN_ALIAS, ANN_CANARY_OF, ANN_MODEL_NAME, ANN_MODEL_URI, ANN_MODEL_VERSION,
    ANN_OVERLAY_HASH, ANN_ROLLOUT, ANN_SPEC_HASH, ANN_STAGE,
};
use crate::mlflow::Resolved;
use crate::targets::{canonical_quantities, field_changes, field_values};

use super::rollout::{health_of, CanarySeen, Seen};

/// The identity of a listed object and what it serves: all a plan keeps of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ObjectRef {
    pub(crate) name: String,
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) selector: Option<Selector>,
    /// A progressive rollout is in progress on it (its canary objects go when it ends).
    pub(crate) in_rollout: bool,
}

impl ObjectRef {
    pub(crate) fn of(a: &ListedObject) -> ObjectRef {
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
            in_rollout: a.annotation(ANN_ROLLOUT) == Some("canary"),
        }
    }
}

/// What an object was before an update, for the reasons.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Before {
    pub(crate) version: Option<String>,
    pub(crate) model_uri: Option<String>,
    pub(crate) spec_hash: Option<String>,
    pub(crate) overlay_hash: Option<String>,
    /// The target's setting fields, as [`field_values`] reads them.
    pub(crate) fields: Vec<Option<String>>,
}

impl Before {
    fn of(a: &ListedObject, cfg: &DeployConfig) -> Before {
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
pub(crate) enum Found {
    /// No object of that name.
    #[default]
    Absent,
    /// The object is as m2s would write it now.
    InSync,
    /// The object serves this version but differs from what m2s would write now. (Boxed, as
    /// is `Stale`: one slot per entry, and a large registry is mostly `InSync`.)
    Differs(Box<Differing>),
    /// The object serves another version (or another model's), or records a progressive
    /// rollout: its location may have to be resolved, and the rollout moved on.
    Stale(Box<StaleObject>),
    /// The object is there, but the entry cannot be rendered: the object stays as it is.
    Held(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Differing {
    pub(crate) object: ObjectRef,
    pub(crate) resolved: Resolved,
    pub(crate) reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StaleObject {
    pub(crate) object: ObjectRef,
    pub(crate) before: Before,
    pub(crate) rollout: Seen,
}

/// What one listed object is, compared with the registry now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// As m2s would write it.
    InSync,
    /// Its entry wants something else (another version, other settings).
    UpdatePending,
    /// No entry wants it.
    DeletePending,
    /// Its entry cannot be deployed: the object is left as it is.
    NotDeployable,
    /// A canary object a progressive rollout added beside the object it rolls out.
    Canary,
}

impl Verdict {
    /// How `status` shows it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Verdict::InSync => "in sync",
            Verdict::UpdatePending => "update pending",
            Verdict::DeletePending => "delete pending",
            Verdict::NotDeployable => "not deployable",
            Verdict::Canary => "rollout canary",
        }
    }
}

/// Compares listed objects with the registry's entries, one object at a time.
pub(crate) struct Observer<'a> {
    registry: &'a Registry,
    cfg: &'a DeployConfig,
    /// Per entry of the registry, in its order.
    pub(crate) found: Vec<Found>,
    /// Objects no entry wants (and no entry error holds).
    pub(crate) unwanted: Vec<ObjectRef>,
    /// UIDs of the objects left as they are because their entry cannot be deployed (for the
    /// Events about them).
    pub(crate) held: BTreeMap<String, String>,
    pub(crate) managed: usize,
    /// Canary objects of rollouts, by the name of the object each rolls out.
    pub(crate) canaries: BTreeMap<String, CanarySeen>,
}

impl<'a> Observer<'a> {
    pub(crate) fn new(registry: &'a Registry, cfg: &'a DeployConfig) -> Self {
        Observer {
            registry,
            cfg,
            found: vec![Found::Absent; registry.entries.len()],
            unwanted: Vec::new(),
            held: BTreeMap::new(),
            managed: 0,
            canaries: BTreeMap::new(),
        }
    }

    /// Takes in one listed object of this instance, and says what it is.
    pub(crate) fn observe(&mut self, a: &ListedObject) -> Verdict {
        self.managed += 1;
        let entries = &self.registry.entries;
        let index = entries.binary_search_by(|e| (*e.name).cmp(&a.name));
        if let Some(of) = a.annotation(ANN_CANARY_OF) {
            if let Ok(i) = index {
                self.hold(a);
                self.found[i] = Found::Held(format!(
                    "the name {:?} is taken by the canary of {of:?}'s progressive rollout",
                    a.name
                ));
            }
            self.observe_canary(of, a);
            return Verdict::Canary;
        }
        let Ok(i) = index else {
            if self.registry.holds(&a.name) {
                self.hold(a);
                return Verdict::NotDeployable;
            }
            self.unwanted.push(ObjectRef::of(a));
            return Verdict::DeletePending;
        };
        let entry = &entries[i];
        let recorded =
            recorded(entry, &a.annotations).filter(|_| !a.annotations.contains_key(ANN_ROLLOUT));
        self.found[i] = match recorded {
            None => Found::Stale(Box::new(StaleObject {
                object: ObjectRef::of(a),
                before: Before::of(a, self.cfg),
                rollout: Seen::of(entry, a, self.cfg),
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

    /// A canary object: its health is what its rollout's next step waits for.
    fn observe_canary(&mut self, of: &str, a: &ListedObject) {
        let Some(split) = self.cfg.target.traffic_split() else {
            return;
        };
        let health = health_of(split.canary_status(&a.name, &a.status(), a.generation, 0));
        self.canaries.insert(
            of.to_string(),
            CanarySeen {
                object: ObjectRef::of(a),
                health,
            },
        );
    }

    fn hold(&mut self, a: &ListedObject) {
        if let Some(uid) = &a.uid {
            self.held.insert(a.name.clone(), uid.clone());
        }
    }

    /// The entries whose location must be read from MLflow: no object yet, or one that serves
    /// another version whose files it does not record (a rollout records its canary's).
    pub(crate) fn to_resolve(&self) -> Vec<usize> {
        (0..self.found.len())
            .filter(|&i| needs_location(&self.found[i]))
            .collect()
    }
}

/// Whether the entry's version must be looked up in MLflow.
pub(super) fn needs_location(found: &Found) -> bool {
    match found {
        Found::Absent => true,
        Found::Stale(s) => s.rollout.needs_location(),
        _ => false,
    }
}

/// Whether the live object is as m2s would write it: m2s's annotations exactly, its labels and
/// the overlay's annotations present, and the spec a superset (quantities by value).
fn in_sync(d: &Desired, a: &ListedObject, cfg: &DeployConfig) -> bool {
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
