//! Desired objects + the objects in the cluster → the changes to make. Pure: no IO.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::Value;

use crate::config::DeployConfig;
use crate::desired::{
    spec_image, Desired, EntryError, Selector, ANNOTATION_PREFIX, ANN_ALIAS, ANN_MODEL_NAME,
    ANN_MODEL_URI, ANN_MODEL_VERSION, ANN_SPEC_HASH, ANN_STAGE,
};

/// A SeldonDeployment in the cluster that carries m2s's labels.
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

    fn selector(&self) -> Option<Selector> {
        self.annotation(ANN_STAGE)
            .map(|s| Selector::Stage(s.to_string()))
            .or_else(|| {
                self.annotation(ANN_ALIAS)
                    .map(|a| Selector::Alias(a.to_string()))
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub action: Action,
    pub name: String,
    pub model: Option<String>,
    pub version: Option<String>,
    pub previous_version: Option<String>,
    pub selector: Option<Selector>,
    pub reason: String,
    /// Body to apply (create and update), as compact JSON: a large cold sync holds thousands
    /// of these at once, and a JSON tree of one takes about four times its text.
    pub object: Option<String>,
    /// The `modelUri` the body sets (create and update).
    pub model_uri: Option<String>,
    /// Preconditions from the listed object (update and delete).
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Sorted by name.
    pub changes: Vec<Change>,
    /// Names of managed objects already as desired.
    pub unchanged: Vec<String>,
    /// Entries that cannot be served as asked; their objects are left as they are.
    pub errors: Vec<EntryError>,
    /// Managed objects found in the cluster.
    pub managed: usize,
}

impl Plan {
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Whether every field of `want` is in `have` with the same value (objects may have more
/// fields: the API server and Seldon's webhook add defaults; arrays must match element-wise).
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

fn update_reasons(d: &Desired, a: &ActualObject) -> Option<Vec<String>> {
    let ann = d.annotations();
    let want = |k: &str| ann.get(k).and_then(Value::as_str);
    let ours_now: BTreeMap<&str, &str> = a
        .annotations
        .iter()
        .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let ours_wanted: BTreeMap<&str, &str> = ann
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
        .collect();
    let labels_ok = d.object["metadata"]["labels"].as_object().is_some_and(|l| {
        l.iter()
            .all(|(k, v)| a.labels.get(k).map(String::as_str) == v.as_str())
    });
    let spec_ok = is_subset(&d.object["spec"], &a.spec);
    if ours_now == ours_wanted && labels_ok && spec_ok {
        return None;
    }
    let mut reasons = Vec::new();
    let (old_v, new_v) = (a.annotation(ANN_MODEL_VERSION), want(ANN_MODEL_VERSION));
    if old_v != new_v {
        reasons.push(format!(
            "version {} → {}",
            old_v.unwrap_or("?"),
            new_v.unwrap_or("?")
        ));
    } else if a.annotation(ANN_MODEL_URI) != want(ANN_MODEL_URI) {
        reasons.push("model URI changed".to_string());
    }
    let (old_img, new_img) = (spec_image(&a.spec), spec_image(&d.object["spec"]));
    if old_img != new_img {
        reasons.push(format!(
            "image {} → {}",
            old_img.unwrap_or("(Seldon default)"),
            new_img.unwrap_or("(Seldon default)")
        ));
    }
    if reasons.is_empty() {
        if a.annotation(ANN_SPEC_HASH) == want(ANN_SPEC_HASH) {
            reasons.push("changed outside m2s; restoring".to_string());
        } else {
            reasons.push("configuration changed".to_string());
        }
    }
    Some(reasons)
}

fn delete_reason(a: &ActualObject, cfg: &DeployConfig, registry_models: &BTreeSet<&str>) -> String {
    let model = a.annotation(ANN_MODEL_NAME);
    match (model, a.selector()) {
        (Some(m), _) if !registry_models.contains(m) => {
            format!("registered model {m:?} is gone from the registry (deleted, or outside the model filter)")
        }
        (Some(m), Some(Selector::Stage(s))) => {
            if cfg.stages.iter().any(|c| c == &s) {
                format!("model {m:?} has no version in stage {s} any more")
            } else {
                format!("stage {s} is no longer deployed (M2S_STAGES)")
            }
        }
        (Some(m), Some(Selector::Alias(al))) => {
            if cfg.aliases.includes(&al) {
                format!("alias {al:?} was removed from model {m:?}")
            } else {
                format!("alias {al:?} is no longer deployed (M2S_ALIASES)")
            }
        }
        _ => "no registry entry wants this deployment".to_string(),
    }
}

/// Compares what should exist with what does. Objects whose entry has an error are left alone.
pub fn compute(
    desired: &[Desired],
    errors: Vec<EntryError>,
    actual: &[ActualObject],
    cfg: &DeployConfig,
    registry_models: &BTreeSet<&str>,
) -> Plan {
    let by_name: BTreeMap<&str, &ActualObject> =
        actual.iter().map(|a| (a.name.as_str(), a)).collect();
    let held: HashSet<&str> = errors.iter().map(|e| e.name.as_str()).collect();
    let mut changes = Vec::new();
    let mut unchanged = Vec::new();
    for d in desired {
        let e = &d.entry;
        let base = Change {
            action: Action::Create,
            name: e.name.clone(),
            model: Some(e.model.clone()),
            version: Some(e.version.version.clone()),
            previous_version: None,
            selector: Some(e.selector.clone()),
            reason: String::new(),
            object: Some(d.object.to_string()),
            model_uri: Some(d.model_uri.clone()),
            uid: None,
            resource_version: None,
        };
        match by_name.get(e.name.as_str()) {
            None => changes.push(Change {
                reason: "new deployment".into(),
                ..base
            }),
            Some(a) => match update_reasons(d, a) {
                None => unchanged.push(e.name.clone()),
                Some(reasons) => changes.push(Change {
                    action: Action::Update,
                    previous_version: a.annotation(ANN_MODEL_VERSION).map(String::from),
                    reason: reasons.join(", "),
                    uid: a.uid.clone(),
                    resource_version: a.resource_version.clone(),
                    ..base
                }),
            },
        }
    }
    let wanted: HashSet<&str> = desired.iter().map(|d| d.entry.name.as_str()).collect();
    for a in actual {
        if wanted.contains(a.name.as_str()) || held.contains(a.name.as_str()) {
            continue;
        }
        changes.push(Change {
            action: Action::Delete,
            name: a.name.clone(),
            model: a.annotation(ANN_MODEL_NAME).map(String::from),
            version: a.annotation(ANN_MODEL_VERSION).map(String::from),
            previous_version: None,
            selector: a.selector(),
            reason: delete_reason(a, cfg, registry_models),
            object: None,
            model_uri: None,
            uid: a.uid.clone(),
            resource_version: a.resource_version.clone(),
        });
    }
    changes.sort_by(|a, b| a.name.cmp(&b.name).then(a.action.cmp(&b.action)));
    unchanged.sort();
    Plan {
        changes,
        unchanged,
        errors,
        managed: actual.len(),
    }
}

/// Refuses plans that delete everything m2s manages (an empty or unreadable registry looks
/// the same) or more than `max_deletes` objects.
pub fn check_deletion_guard(
    plan: &Plan,
    namespace: &str,
    allow_delete_all: bool,
    max_deletes: Option<usize>,
) -> Result<()> {
    let deletes = plan.count(Action::Delete);
    if plan.managed > 0 && deletes == plan.managed && !allow_delete_all {
        bail!(
            "refusing to delete all {deletes} SeldonDeployments m2s manages in namespace {namespace:?}: \
             the registry asks for none of them, which is also what an empty or wrongly filtered registry looks like; \
             run with --allow-delete-all (M2S_ALLOW_DELETE_ALL=true) if this is intended"
        );
    }
    if let Some(max) = max_deletes {
        if deletes > max {
            bail!(
                "refusing to delete {deletes} SeldonDeployments in namespace {namespace:?}: more than --max-deletes {max}"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::ArtifactLocation;
    use crate::config::AliasSelection;
    use crate::desired::{entries, render};
    use crate::mlflow::{ModelVersion, RegisteredModel, RegistrySnapshot};
    use serde_json::json;

    fn cfg() -> DeployConfig {
        DeployConfig {
            storage_root: Some("s3://bucket/mlruns".into()),
            aliases: AliasSelection::Listed(vec!["champion".into()]),
            ..DeployConfig::new("models", "http://mlflow:5000")
        }
    }

    fn snapshot(models: &[(&str, &str, &str)]) -> RegistrySnapshot {
        RegistrySnapshot {
            models: models
                .iter()
                .map(|(name, version, stage)| RegisteredModel {
                    name: name.to_string(),
                    creation_timestamp: Some(1),
                    latest_versions: vec![ModelVersion {
                        name: name.to_string(),
                        version: version.to_string(),
                        current_stage: Some(stage.to_string()),
                        source: Some(format!("runs:/r{version}/model")),
                        run_id: Some(format!("r{version}")),
                        status: Some("READY".into()),
                    }],
                    ..RegisteredModel::default()
                })
                .collect(),
        }
    }

    fn desired(snap: &RegistrySnapshot, cfg: &DeployConfig) -> (Vec<Desired>, Vec<EntryError>) {
        let (entries, errors) = entries(snap, cfg);
        let d = entries
            .iter()
            .map(|e| {
                let loc = ArtifactLocation {
                    uri: format!("/m/1/r{}/artifacts/model", e.version.version),
                    experiment_id: Some("1".into()),
                    run_id: Some(format!("r{}", e.version.version)),
                };
                render(e, &loc, cfg).unwrap()
            })
            .collect();
        (d, errors)
    }

    /// What the API server gives back for an applied object (plus server-side fields).
    fn as_applied(d: &Desired) -> ActualObject {
        let o = &d.object;
        let map = |v: &Value| -> BTreeMap<String, String> {
            v.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        };
        let mut spec = o["spec"].clone();
        spec["predictors"][0]["graph"]["type"] = json!("MODEL"); // a webhook default
        let mut labels = map(&o["metadata"]["labels"]);
        labels.insert("added-by-someone".into(), "x".into());
        ActualObject {
            name: o["metadata"]["name"].as_str().unwrap().to_string(),
            uid: Some(format!("uid-{}", o["metadata"]["name"])),
            resource_version: Some("7".into()),
            labels,
            annotations: map(&o["metadata"]["annotations"]),
            spec,
        }
    }

    fn names(plan: &Plan, action: Action) -> Vec<&str> {
        plan.changes
            .iter()
            .filter(|c| c.action == action)
            .map(|c| c.name.as_str())
            .collect()
    }

    fn models(snap: &RegistrySnapshot) -> BTreeSet<&str> {
        snap.models.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn empty_cluster_creates_everything() {
        let snap = snapshot(&[("iris", "3", "Production"), ("fraud", "1", "Staging")]);
        let (d, e) = desired(&snap, &cfg());
        let plan = compute(&d, e, &[], &cfg(), &models(&snap));
        assert_eq!(
            names(&plan, Action::Create),
            ["fraud-staging", "iris-production"]
        );
        assert_eq!(plan.changes[0].reason, "new deployment");
        assert!(plan.unchanged.is_empty());
    }

    #[test]
    fn applied_state_plans_nothing() {
        let snap = snapshot(&[("iris", "3", "Production"), ("fraud", "1", "Staging")]);
        let (d, e) = desired(&snap, &cfg());
        let actual: Vec<_> = d.iter().map(as_applied).collect();
        let plan = compute(&d, e, &actual, &cfg(), &models(&snap));
        assert!(plan.is_empty(), "{:?}", plan.changes);
        assert_eq!(plan.unchanged, ["fraud-staging", "iris-production"]);
    }

    #[test]
    fn version_move_is_an_update_with_preconditions() {
        let before = snapshot(&[("iris", "3", "Production")]);
        let (d, _) = desired(&before, &cfg());
        let actual: Vec<_> = d.iter().map(as_applied).collect();
        let after = snapshot(&[("iris", "4", "Production")]);
        let (d2, e2) = desired(&after, &cfg());
        let plan = compute(&d2, e2, &actual, &cfg(), &models(&after));
        assert_eq!(plan.changes.len(), 1);
        let c = &plan.changes[0];
        assert_eq!(
            (c.action, c.reason.as_str()),
            (Action::Update, "version 3 → 4")
        );
        assert_eq!(c.previous_version.as_deref(), Some("3"));
        assert_eq!(c.uid.as_deref(), Some("uid-\"iris-production\""));
        assert_eq!(c.resource_version.as_deref(), Some("7"));
    }

    #[test]
    fn removed_field_and_drift_are_updates() {
        let snap = snapshot(&[("iris", "3", "Production")]);
        let mut with_secret = cfg();
        with_secret.registry_secret = Some("regcred".into());
        let (d, _) = desired(&snap, &with_secret);
        let actual: Vec<_> = d.iter().map(as_applied).collect();
        // The secret is unset: the object still has it, a subset check alone would miss it.
        let (d2, e2) = desired(&snap, &cfg());
        let plan = compute(&d2, e2, &actual, &cfg(), &models(&snap));
        assert_eq!(plan.changes[0].reason, "configuration changed");
        // Someone edits the model URI by hand.
        let (d3, e3) = desired(&snap, &cfg());
        let mut edited: Vec<_> = d3.iter().map(as_applied).collect();
        edited[0].spec["predictors"][0]["graph"]["modelUri"] = json!("s3://elsewhere");
        let plan = compute(&d3, e3, &edited, &cfg(), &models(&snap));
        assert_eq!(plan.changes[0].reason, "changed outside m2s; restoring");
    }

    #[test]
    fn image_change_is_named() {
        let snap = snapshot(&[("iris", "3", "Production")]);
        let (d, _) = desired(&snap, &cfg());
        let actual: Vec<_> = d.iter().map(as_applied).collect();
        let mut c2 = cfg();
        c2.default_image = Some("x/server:2".into());
        let (d2, e2) = desired(&snap, &c2);
        let plan = compute(&d2, e2, &actual, &c2, &models(&snap));
        assert_eq!(
            plan.changes[0].reason,
            "image (Seldon default) → x/server:2"
        );
    }

    #[test]
    fn deletes_say_why_and_errors_hold_objects() {
        let before = snapshot(&[
            ("iris", "3", "Production"),
            ("gone", "1", "Production"),
            ("bad", "1", "Staging"),
        ]);
        let (d, _) = desired(&before, &cfg());
        let actual: Vec<_> = d.iter().map(as_applied).collect();
        let mut after = snapshot(&[("iris", "3", "Staging"), ("bad", "2", "Staging")]);
        after.models[1].tags = vec![crate::mlflow::Tag {
            key: "deployment-image".into(),
            value: "NOT VALID".into(),
        }];
        let (d2, e2) = desired(&after, &cfg());
        assert_eq!(e2.len(), 1);
        let plan = compute(&d2, e2, &actual, &cfg(), &models(&after));
        assert_eq!(names(&plan, Action::Create), ["iris-staging"]);
        assert_eq!(
            names(&plan, Action::Delete),
            ["gone-production", "iris-production"]
        );
        let reasons: Vec<_> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Delete)
            .map(|c| c.reason.as_str())
            .collect();
        assert!(reasons[0].contains("gone from the registry"), "{reasons:?}");
        assert_eq!(
            reasons[1],
            "model \"iris\" has no version in stage Production any more"
        );
        // bad-staging has an error: neither updated nor deleted.
        assert!(plan.changes.iter().all(|c| c.name != "bad-staging"));
        assert_eq!(plan.errors[0].name, "bad-staging");
    }

    #[test]
    fn deletion_guard() {
        let snap = snapshot(&[("a", "1", "Production"), ("b", "1", "Production")]);
        let (d, _) = desired(&snap, &cfg());
        let actual: Vec<_> = d.iter().map(as_applied).collect();
        let empty = RegistrySnapshot::default();
        let plan = compute(&[], vec![], &actual, &cfg(), &models(&empty));
        assert_eq!(plan.count(Action::Delete), 2);
        let err = check_deletion_guard(&plan, "models", false, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--allow-delete-all") && err.contains("all 2"),
            "{err}"
        );
        check_deletion_guard(&plan, "models", true, None).unwrap();
        assert!(check_deletion_guard(&plan, "models", true, Some(1)).is_err());
        check_deletion_guard(&plan, "models", true, Some(2)).unwrap();
        // Nothing managed yet and nothing wanted: fine.
        check_deletion_guard(
            &compute(&[], vec![], &[], &cfg(), &models(&empty)),
            "models",
            false,
            None,
        )
        .unwrap();
        // Deleting one of two is not "all".
        let one = snapshot(&[("a", "1", "Production")]);
        let (d1, e1) = desired(&one, &cfg());
        check_deletion_guard(
            &compute(&d1, e1, &actual, &cfg(), &models(&one)),
            "models",
            false,
            None,
        )
        .unwrap();
    }

    #[test]
    fn subset_semantics() {
        assert!(is_subset(&json!({"a": 1}), &json!({"a": 1.0, "b": 2})));
        assert!(!is_subset(&json!({"a": [1, 2]}), &json!({"a": [1]})));
        assert!(!is_subset(&json!({"a": {"b": 1}}), &json!({"a": {}})));
        assert!(is_subset(&json!([{"x": 1}]), &json!([{"x": 1, "y": 2}])));
    }
}
