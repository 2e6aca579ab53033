use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::super::tests::{applied, cfg, plan_with, snapshot};
use super::RolloutKind;
use crate::config::DeployConfig;
use crate::k8s::ListedObject;
use crate::keys::{ANN_CANARY_FILES, ANN_CANARY_OF};
use crate::mlflow::RegistrySnapshot;
use crate::plan::Action;
use crate::rollout::RolloutState;
use crate::settings::Tag;
use crate::targets::Resource;

fn tagged(mut snap: RegistrySnapshot, key: &str, value: &str) -> RegistrySnapshot {
    snap.models[0].tags.push(Tag {
        key: key.into(),
        value: value.into(),
    });
    snap
}

/// The object of `iris` serving v4 with a rollout of v5 at step `step` of 10,50 since `since`,
/// as m2s writes it.
fn in_rollout(cfg: &DeployConfig, step: usize, since: Timestamp) -> ListedObject {
    let mut object = applied(&snapshot(&[("iris", "4", "Production")]), cfg).remove(0);
    let canary = applied(&snapshot(&[("iris", "5", "Production")]), cfg).remove(0);
    let state = RolloutState::InProgress {
        version: "5".into(),
        steps: vec![10, 50],
        step,
        since,
    };
    for (k, v) in state.annotations() {
        object.annotations.insert(k.into(), v);
    }
    let files: BTreeMap<&str, &str> = crate::desired::FILE_ANNOTATIONS
        .iter()
        .filter_map(|k| Some((*k, canary.annotations.get(*k)?.as_str())))
        .collect();
    object
        .annotations
        .insert(ANN_CANARY_FILES.into(), json!(files).to_string());
    object
}

fn canary_registry() -> RegistrySnapshot {
    tagged(
        snapshot(&[("iris", "5", "Production")]),
        "m2s.canary",
        "10,50",
    )
}

#[test]
fn a_version_move_with_m2s_canary_starts_at_the_first_step() {
    let cfg = cfg();
    let before = applied(&snapshot(&[("iris", "4", "Production")]), &cfg);
    let (_, plan, asked) = plan_with(&canary_registry(), &cfg, &before);
    assert_eq!(asked, 1, "the new version's files are looked up");
    let change = &plan.changes[0];
    assert_eq!(change.action, Action::Update);
    assert_eq!(change.reason, "canary 10% (step 1 of 2)");
    let rollout = change.rollout.as_ref().unwrap();
    assert_eq!(
        rollout.kind,
        RolloutKind::Step {
            step: 1,
            steps: vec![10, 50]
        }
    );
    assert_eq!(rollout.stable_version, "4");
    assert_eq!(change.previous_version(), Some("4"));
    // Without the tag: today's plain update, no rollout.
    let (_, plain, _) = plan_with(&snapshot(&[("iris", "5", "Production")]), &cfg, &before);
    assert_eq!(plain.changes[0].reason, "version 4 → 5");
    assert!(plain.changes[0].rollout.is_none());
    // A new object is created at once.
    let (_, new, _) = plan_with(&canary_registry(), &cfg, &[]);
    assert_eq!(new.changes[0].action, Action::Create);
    assert!(new.changes[0].rollout.is_none());
}

#[test]
fn a_rollout_with_no_step_due_asks_mlflow_nothing_and_changes_nothing() {
    let cfg = cfg();
    // No status: the step is not serving yet.
    let listed = [in_rollout(&cfg, 1, Timestamp::now())];
    let (_, plan, asked) = plan_with(&canary_registry(), &cfg, &listed);
    assert_eq!(asked, 0, "the rollout's files are recorded on the object");
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    assert_eq!(plan.unchanged, [0]);
}

#[test]
fn a_serving_step_moves_on_from_the_recorded_files() {
    let cfg = cfg();
    let mut listed = in_rollout(&cfg, 1, "2026-01-01T00:00:00Z".parse().unwrap());
    // Seldon Core 1's controller: every Deployment ready, the canary predictor's too.
    let status = json!({"state": "Available", "deploymentStatus": {
        "iris-production-canary-0-model": {"replicas": 1, "availableReplicas": 1}}});
    listed.status = Some(serde_json::value::to_raw_value(&status).unwrap());
    let (_, plan, asked) = plan_with(&canary_registry(), &cfg, &[listed.clone()]);
    assert_eq!(asked, 0);
    assert_eq!(plan.changes[0].reason, "canary 50% (step 2 of 2)");
    // The canary Deployment not there yet: the status is the old one. Nothing is due within
    // the deadline; past it, the rollout is aborted.
    let old = Some(serde_json::value::to_raw_value(&json!({"state": "Available"})).unwrap());
    listed.status = old.clone();
    let (_, plan, _) = plan_with(&canary_registry(), &cfg, &[listed]);
    assert_eq!(plan.changes[0].action, Action::Update);
    assert!(
        plan.changes[0].reason.starts_with(
            "rollout aborted: the new version was not Available within M2S_CANARY_DEADLINE (900s)"
        ),
        "{}",
        plan.changes[0].reason
    );
    let mut recent = in_rollout(&cfg, 1, Timestamp::now());
    recent.status = old;
    let (_, plan, _) = plan_with(&canary_registry(), &cfg, &[recent]);
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
}

#[test]
fn a_bad_canary_tag_holds_the_object() {
    let cfg = cfg();
    let before = applied(&snapshot(&[("iris", "4", "Production")]), &cfg);
    let snap = tagged(
        snapshot(&[("iris", "5", "Production")]),
        "m2s.canary",
        "50,10",
    );
    let (_, plan, _) = plan_with(&snap, &cfg, &before);
    assert!(plan.changes.is_empty());
    let message = &plan.errors[0].message;
    assert!(
        message.contains("m2s.canary")
            && message.contains("\"iris\"")
            && message.contains("increase"),
        "{message}"
    );
    assert!(plan.held.contains_key("iris-production"));
}

#[test]
fn a_canary_model_left_behind_is_deleted_with_its_experiment() {
    let cfg = cfg().with_target("seldon-v2");
    let snap = snapshot(&[("iris", "4", "Production")]);
    let mut listed = applied(&snap, &cfg);
    let mut canary = applied(&snapshot(&[("iris", "5", "Production")]), &cfg).remove(0);
    canary.name = "iris-production-canary".into();
    canary.uid = Some("uid-canary".into());
    canary
        .annotations
        .insert(ANN_CANARY_OF.into(), "iris-production".into());
    listed.push(canary);
    let (_, plan, _) = plan_with(&snap, &cfg, &listed);
    assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
    let change = &plan.changes[0];
    assert_eq!(change.action, Action::Delete);
    assert_eq!(&*change.name, "iris-production-canary");
    let experiment: Vec<(Resource, String)> = change.cleanup.clone();
    assert_eq!(experiment.len(), 1);
    assert_eq!(experiment[0].0.kind, "Experiment");
    assert_eq!(experiment[0].1, "iris-production");
    assert_eq!(plan.unchanged.len(), 1, "the main Model is as m2s wrote it");
}
