use super::*;
use crate::artifacts::ArtifactLocation;
use crate::config::AliasSelection;
use crate::desired::RegistryBuilder;
use crate::json::is_subset;
use crate::k8s::ListedObject;
use crate::mlflow::{ModelVersion, RegisteredModel, RegistrySnapshot};
use crate::settings::Tag;
use serde_json::{json, Value};

pub(super) fn cfg() -> DeployConfig {
    DeployConfig {
        storage_root: Some("s3://bucket/mlruns".into()),
        aliases: AliasSelection::Listed(vec!["champion".into()]),
        ..DeployConfig::new("models", "http://mlflow:5000")
    }
}

pub(super) fn snapshot(models: &[(&str, &str, &str)]) -> RegistrySnapshot {
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
                    tags: vec![],
                }],
                ..RegisteredModel::default()
            })
            .collect(),
    }
}

pub(super) fn registry(snap: &RegistrySnapshot, cfg: &DeployConfig) -> Registry {
    let mut b = RegistryBuilder::new(cfg);
    b.add(snap.models.clone());
    b.finish()
}

pub(super) fn resolved(e: &Entry) -> Resolved {
    Resolved {
        location: ArtifactLocation {
            uri: format!("/m/1/r{}/artifacts/model", e.version.version),
            experiment_id: Some("1".into()),
            run_id: Some(format!("r{}", e.version.version)),
        },
        version_tags: e.version.tags.to_vec(),
    }
}

/// The clock of a plan: now, and the default canary deadline.
fn clock() -> crate::rollout::Clock {
    crate::rollout::Clock {
        now: k8s_openapi::jiff::Timestamp::now(),
        deadline: std::time::Duration::from_secs(900),
    }
}

/// Plans `snap` against `actual`, resolving every location MLflow would be asked for; also
/// returns how many entries needed MLflow.
pub(super) fn plan_with(
    snap: &RegistrySnapshot,
    cfg: &DeployConfig,
    actual: &[ListedObject],
) -> (Registry, Plan, usize) {
    let reg = registry(snap, cfg);
    let (plan, asked) = {
        let mut obs = Observer::new(&reg, cfg);
        for a in actual {
            obs.observe(a);
        }
        let wanted = obs.to_resolve();
        let res = wanted
            .iter()
            .map(|&i| Ok(Box::new(resolved(&reg.entries[i]))))
            .collect();
        (compute(&reg, obs, res, cfg, clock()), wanted.len())
    };
    (reg, plan, asked)
}

/// What the API server gives back for applied objects (plus server-side fields).
pub(super) fn applied(snap: &RegistrySnapshot, cfg: &DeployConfig) -> Vec<ListedObject> {
    let reg = registry(snap, cfg);
    reg.entries
        .iter()
        .map(|e| {
            let r = resolved(e);
            let o = render(e, &r.location, &r.version_tags, cfg).unwrap().object;
            let map = |v: &Value| -> BTreeMap<String, String> {
                v.as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect()
            };
            let mut spec = o["spec"].clone();
            if let Some(p) = spec.pointer_mut("/predictors/0/graph") {
                p["type"] = json!("MODEL"); // a default some controller adds
            }
            let mut labels = map(&o["metadata"]["labels"]);
            labels.insert("added-by-someone".into(), "x".into());
            let mut annotations = map(&o["metadata"]["annotations"]);
            annotations.insert("kubectl.kubernetes.io/last-applied".into(), "{}".into());
            ListedObject {
                name: o["metadata"]["name"].as_str().unwrap().to_string(),
                uid: Some(format!("uid-{}", o["metadata"]["name"].as_str().unwrap())),
                resource_version: Some("7".into()),
                labels,
                annotations,
                spec,
                ..ListedObject::default()
            }
        })
        .collect()
}

fn names(plan: &Plan, action: Action) -> Vec<&str> {
    plan.changes
        .iter()
        .filter(|c| c.action == action)
        .map(|c| &*c.name)
        .collect()
}

#[test]
fn empty_cluster_creates_everything() {
    let snap = snapshot(&[("iris", "3", "Production"), ("fraud", "1", "Staging")]);
    let (reg, plan, asked) = plan_with(&snap, &cfg(), &[]);
    assert_eq!(
        names(&plan, Action::Create),
        ["fraud-staging", "iris-production"]
    );
    assert_eq!(plan.changes[0].reason, "new deployment");
    assert_eq!(plan.changes[0].model(&reg), Some("fraud"));
    assert_eq!(
        plan.changes[0].model_uri(&cfg()).as_deref(),
        Some("s3://bucket/mlruns/1/r1/artifacts/model")
    );
    assert_eq!(asked, 2);
    assert!(plan.unchanged.is_empty());
}

#[test]
fn applied_state_plans_nothing_and_asks_mlflow_nothing() {
    for target in ["seldon-v1", "kserve", "seldon-v2"] {
        let c = cfg().with_target(target);
        let snap = snapshot(&[("iris", "3", "Production"), ("fraud", "1", "Staging")]);
        let actual = applied(&snap, &c);
        let (reg, plan, asked) = plan_with(&snap, &c, &actual);
        assert!(plan.is_empty(), "{target}: {:?}", plan.changes);
        assert_eq!(
            plan.unchanged_names(&reg).collect::<Vec<_>>(),
            ["fraud-staging", "iris-production"]
        );
        assert_eq!(
            asked, 0,
            "{target}: no MLflow look-ups for unchanged versions"
        );
    }
}

#[test]
fn version_move_is_an_update_with_preconditions() {
    let before = snapshot(&[("iris", "3", "Production")]);
    let actual = applied(&before, &cfg());
    let after = snapshot(&[("iris", "4", "Production")]);
    let (reg, plan, asked) = plan_with(&after, &cfg(), &actual);
    assert_eq!(asked, 1);
    assert_eq!(plan.changes.len(), 1);
    let c = &plan.changes[0];
    assert_eq!(
        (c.action, c.reason.as_ref()),
        (Action::Update, "version 3 → 4")
    );
    assert_eq!(c.previous_version(), Some("3"));
    assert_eq!(c.version(&reg), Some("4"));
    assert_eq!(c.uid(), Some("uid-iris-production"));
    assert_eq!(c.resource_version(), Some("7"));
}

#[test]
fn removed_field_and_drift_are_updates() {
    let snap = snapshot(&[("iris", "3", "Production")]);
    let mut with_secret = cfg();
    with_secret.registry_secret = Some("regcred".into());
    let actual = applied(&snap, &with_secret);
    // The secret is unset: the object still has it, a subset check alone would miss it.
    let (_, plan, _) = plan_with(&snap, &cfg(), &actual);
    assert_eq!(
        plan.changes[0].reason,
        "image pull secret [{\"name\":\"regcred\"}] → (unset)"
    );
    // Someone edits the model URI by hand.
    let mut edited = applied(&snap, &cfg());
    edited[0].spec["predictors"][0]["graph"]["modelUri"] = json!("s3://elsewhere");
    let (_, plan, asked) = plan_with(&snap, &cfg(), &edited);
    assert_eq!(plan.changes[0].reason, "changed outside m2s; restoring");
    assert_eq!(asked, 0, "the recorded location is reused");
    // Someone removes an m2s annotation.
    let mut stripped = applied(&snap, &cfg());
    stripped[0].annotations.remove("m2s.io/mlflow-url");
    let (_, plan, _) = plan_with(&snap, &cfg(), &stripped);
    assert_eq!(plan.count(Action::Update), 1);
}

#[test]
fn image_and_settings_changes_are_named() {
    let snap = snapshot(&[("iris", "3", "Production")]);
    let actual = applied(&snap, &cfg());
    let mut c2 = cfg();
    c2.default_image = Some("x/server:2".into());
    let (_, plan, _) = plan_with(&snap, &c2, &actual);
    assert_eq!(
        plan.changes[0].reason,
        "image (Seldon default) → x/server:2"
    );

    let mut tagged = snap.clone();
    tagged.models[0].tags = vec![
        Tag {
            key: "m2s.replicas".into(),
            value: "3".into(),
        },
        Tag {
            key: "m2s.memory".into(),
            value: "2Gi".into(),
        },
    ];
    let (_, plan, _) = plan_with(&tagged, &cfg(), &actual);
    assert_eq!(
        plan.changes[0].reason,
        "replicas 1 → 3, memory request (unset) → 2Gi, memory limit (unset) → 2Gi"
    );
    let now = applied(&tagged, &cfg());
    tagged.models[0].tags[1].value = "1Gi".into();
    let (_, plan, _) = plan_with(&tagged, &cfg(), &now);
    assert_eq!(
        plan.changes[0].reason,
        "memory request 2Gi → 1Gi, memory limit 2Gi → 1Gi"
    );
}

#[test]
fn quantities_compare_by_value_not_spelling() {
    for target in ["seldon-v1", "kserve", "seldon-v2"] {
        let c = cfg().with_target(target);
        let mut snap = snapshot(&[("iris", "3", "Production")]);
        snap.models[0].tags = vec![Tag {
            key: "m2s.memory".into(),
            value: "1024Mi".into(),
        }];
        // The tag is spelt differently from what was applied, and the API server normalised
        // what it stored to yet another spelling.
        let mut actual = applied(&snap, &c);
        snap.models[0].tags[0].value = "1Gi".into();
        let memory = match target {
            "seldon-v1" => {
                "/predictors/0/componentSpecs/0/spec/containers/0/resources/requests/memory"
            }
            "kserve" => "/predictor/model/resources/requests/memory",
            _ => "/memory",
        };
        *actual[0].spec.pointer_mut(memory).unwrap() = json!("1073741824");
        let (_, plan, _) = plan_with(&snap, &c, &actual);
        assert!(plan.is_empty(), "{target}: {:?}", plan.changes);
    }
}

#[test]
fn overlay_change_updates_every_object() {
    let snap = snapshot(&[("iris", "3", "Production"), ("fraud", "1", "Production")]);
    let mut c = cfg().with_target("kserve");
    c.overlay = Some(
        crate::config::overlay::Overlay::parse(
            "spec: {predictor: {nodeSelector: {pool: a}}}",
            c.target,
        )
        .unwrap(),
    );
    let actual = applied(&snap, &c);
    let (_, plan, _) = plan_with(&snap, &c, &actual);
    assert!(plan.is_empty(), "{:?}", plan.changes);
    c.overlay = Some(
        crate::config::overlay::Overlay::parse(
            "spec: {predictor: {nodeSelector: {pool: b}}}",
            c.target,
        )
        .unwrap(),
    );
    let (_, plan, _) = plan_with(&snap, &c, &actual);
    assert_eq!(plan.count(Action::Update), 2);
    assert!(
        plan.changes.iter().all(|ch| ch.reason == "overlay changed"),
        "{:?}",
        plan.changes
    );
}

#[test]
fn deletes_say_why_and_errors_hold_objects() {
    let before = snapshot(&[
        ("iris", "3", "Production"),
        ("gone", "1", "Production"),
        ("bad", "1", "Staging"),
    ]);
    let actual = applied(&before, &cfg());
    let mut after = snapshot(&[("iris", "3", "Staging"), ("bad", "2", "Staging")]);
    after.models[1].tags = vec![Tag {
        key: "deployment-image".into(),
        value: "NOT VALID".into(),
    }];
    let (_, plan, _) = plan_with(&after, &cfg(), &actual);
    assert_eq!(names(&plan, Action::Create), ["iris-staging"]);
    assert_eq!(
        names(&plan, Action::Delete),
        ["gone-production", "iris-production"]
    );
    let reasons: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .map(|c| c.reason.as_ref())
        .collect();
    assert!(reasons[0].contains("gone from the registry"), "{reasons:?}");
    assert_eq!(
        reasons[1],
        "model \"iris\" has no version in stage Production any more"
    );
    // bad-staging has an error: neither updated nor deleted.
    assert!(plan.changes.iter().all(|c| &*c.name != "bad-staging"));
    assert_eq!(plan.errors[0].name, "bad-staging");
}

#[test]
fn a_bad_setting_holds_the_existing_object() {
    let mut snap = snapshot(&[("iris", "3", "Production")]);
    let actual = applied(&snap, &cfg());
    snap.models[0].tags = vec![Tag {
        key: "m2s.replicas".into(),
        value: "-1".into(),
    }];
    let (_, plan, _) = plan_with(&snap, &cfg(), &actual);
    assert!(plan.is_empty(), "{:?}", plan.changes);
    assert!(
        plan.errors[0].message.contains("m2s.replicas=\"-1\""),
        "{:?}",
        plan.errors
    );
}

#[test]
fn deletion_guard() {
    let snap = snapshot(&[("a", "1", "Production"), ("b", "1", "Production")]);
    let actual = applied(&snap, &cfg());
    let (_, plan, _) = plan_with(&RegistrySnapshot::default(), &cfg(), &actual);
    assert_eq!(plan.count(Action::Delete), 2);
    let err = check_deletion_guard(&plan, &cfg(), false, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--allow-delete-all")
            && err.contains("all 2 SeldonDeployments")
            && err.contains("asks for none of them and for nothing else"),
        "{err}"
    );
    check_deletion_guard(&plan, &cfg(), true, None).unwrap();
    assert!(check_deletion_guard(&plan, &cfg(), true, Some(1)).is_err());
    check_deletion_guard(&plan, &cfg(), true, Some(2)).unwrap();
    // Nothing managed yet and nothing wanted: fine.
    let (_, empty, _) = plan_with(&RegistrySnapshot::default(), &cfg(), &[]);
    check_deletion_guard(&empty, &cfg(), false, None).unwrap();
    // Deleting one of two is not "all".
    let (_, one, _) = plan_with(&snapshot(&[("a", "1", "Production")]), &cfg(), &actual);
    check_deletion_guard(&one, &cfg(), false, None).unwrap();
}

#[test]
fn deletion_guard_after_a_rename_says_what_the_registry_asks_for() {
    let old = snapshot(&[("old-name", "1", "Production")]);
    let actual = applied(&old, &cfg());
    let (_, plan, _) = plan_with(
        &snapshot(&[("new-name", "1", "Production")]),
        &cfg(),
        &actual,
    );
    let err = check_deletion_guard(&plan, &cfg(), false, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("refusing to delete the only SeldonDeployment m2s manages")
            && err.contains("asks for none of them but for 1 other (\"new-name-production\")"),
        "{err}"
    );
    let mut kserve = cfg().with_target("kserve");
    kserve.namespace = "ns".into();
    let many: Vec<(String, &str, &str)> = (0..5)
        .map(|i| (format!("m{i}"), "1", "Production"))
        .collect();
    let many: Vec<(&str, &str, &str)> = many.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
    let actual = applied(&old, &kserve);
    let (_, plan, _) = plan_with(&snapshot(&many), &kserve, &actual);
    let err = check_deletion_guard(&plan, &kserve, false, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the only InferenceService")
            && err.contains("but for 5 others (\"m0-production\", \"m1-production\", \"m2-production\" and 2 more)"),
        "{err}"
    );
}

#[test]
fn subset_semantics() {
    assert!(is_subset(&json!({"a": 1}), &json!({"a": 1.0, "b": 2})));
    assert!(!is_subset(&json!({"a": [1, 2]}), &json!({"a": [1]})));
    assert!(!is_subset(&json!({"a": {"b": 1}}), &json!({"a": {}})));
    assert!(is_subset(&json!([{"x": 1}]), &json!([{"x": 1, "y": 2}])));
}
