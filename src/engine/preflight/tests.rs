use super::*;
use crate::artifacts::ArtifactLocation;
use crate::config::DeployConfig;
use crate::desired::{RegistryBuilder, Selector};
use crate::mlflow::{ModelVersion, RegisteredModel, Resolved};
use crate::plan::ObjectRef;
use crate::targets::Readiness;

/// iris v4 and fraud v3 in Production.
fn registry(cfg: &DeployConfig) -> Registry {
    let mut b = RegistryBuilder::new(cfg);
    b.add(
        [("fraud", "3"), ("iris", "4")]
            .iter()
            .map(|(name, v)| RegisteredModel {
                name: name.to_string(),
                latest_versions: vec![ModelVersion {
                    name: name.to_string(),
                    version: v.to_string(),
                    current_stage: Some("Production".into()),
                    source: Some("runs:/r/model".into()),
                    ..ModelVersion::default()
                }],
                ..RegisteredModel::default()
            })
            .collect(),
    );
    b.finish()
}

fn change(reg: &Registry, action: Action, name: &str, serves: Option<(&str, &str)>) -> Change {
    Change {
        action,
        name: name.into(),
        entry: reg.entries.iter().position(|e| &*e.name == name),
        object: serves.map(|(model, version)| {
            Box::new(ObjectRef {
                name: name.into(),
                uid: Some(format!("uid-{name}")),
                model: Some(model.into()),
                version: Some(version.into()),
                selector: Some(Selector::Stage("Production".into())),
                ..ObjectRef::default()
            })
        }),
        resolved: (action != Action::Delete).then(|| {
            Box::new(Resolved {
                location: ArtifactLocation {
                    uri: "mlflow-artifacts:/1/r/artifacts/model".into(),
                    experiment_id: Some("1".into()),
                    run_id: Some("r".into()),
                },
                version_tags: vec![],
            })
        }),
        reason: "why".into(),
        rollout: None,
        cleanup: Vec::new(),
    }
}

fn cfg() -> DeployConfig {
    DeployConfig::new("models", "http://mlflow:5000")
}

#[test]
fn only_changes_that_deploy_another_version_are_checked() {
    let reg = registry(&cfg());
    let key = |m: &str, v: &str| Some((m.to_string(), v.to_string()));
    let create = change(&reg, Action::Create, "iris-production", None);
    assert_eq!(deployed(&create, &reg), key("iris", "4"));
    let moved = change(
        &reg,
        Action::Update,
        "fraud-production",
        Some(("fraud", "2")),
    );
    assert_eq!(deployed(&moved, &reg), key("fraud", "3"));
    let other_model = change(&reg, Action::Update, "fraud-production", Some(("old", "3")));
    assert_eq!(deployed(&other_model, &reg), key("fraud", "3"));
    // Settings, the overlay, an object changed by hand: the version it serves stays.
    let settings = change(
        &reg,
        Action::Update,
        "fraud-production",
        Some(("fraud", "3")),
    );
    assert_eq!(deployed(&settings, &reg), None);
    let delete = change(&reg, Action::Delete, "old-production", Some(("old", "1")));
    assert_eq!(deployed(&delete, &reg), None);
}

#[test]
fn a_rollout_is_checked_when_its_canary_first_takes_traffic() {
    use crate::plan::RolloutKind;
    let reg = registry(&cfg());
    let with = |kind: RolloutKind| {
        let mut c = change(
            &reg,
            Action::Update,
            "fraud-production",
            Some(("fraud", "2")),
        );
        c.rollout = Some(Box::new(crate::plan::RolloutChange {
            kind,
            stable_version: "2".into(),
            canary_version: "3".into(),
            stable: None,
            ends_rollout: false,
        }));
        deployed(&c, &reg)
    };
    let steps = vec![10, 50];
    assert_eq!(
        with(RolloutKind::Step {
            step: 1,
            steps: steps.clone()
        }),
        Some(("fraud".to_string(), "3".to_string()))
    );
    // Checked then: the later steps and the promotion deploy nothing new; an abort, a clear
    // and a clean-up leave the stable version.
    assert_eq!(with(RolloutKind::Step { step: 2, steps }), None);
    assert_eq!(with(RolloutKind::Promote), None);
    assert_eq!(
        with(RolloutKind::Abort {
            why: "failed".into(),
            record: true
        }),
        None
    );
    assert_eq!(with(RolloutKind::Clear), None);
    assert_eq!(
        with(RolloutKind::Cleanup {
            of: "fraud-production".into()
        }),
        None
    );
}

#[test]
fn a_refused_version_becomes_its_entry_error_and_its_object_is_held() {
    let reg = registry(&cfg());
    let mut plan = Plan {
        changes: vec![
            change(
                &reg,
                Action::Update,
                "fraud-production",
                Some(("fraud", "2")),
            ),
            change(&reg, Action::Create, "iris-production", None),
            change(&reg, Action::Delete, "old-production", Some(("old", "1"))),
        ],
        ..Plan::default()
    };
    let state = |name: &str| ObjectState {
        name: name.into(),
        model: None,
        version: None,
        selector: None,
        created: None,
        readiness: Readiness::pending(),
        verdict: Verdict::UpdatePending,
        rollout: crate::rollout::RolloutState::None,
    };
    let mut states = vec![state("fraud-production"), state("old-production")];
    let refused = BTreeMap::from([(
        ("fraud".to_string(), "3".to_string()),
        "preflight: no".to_string(),
    )]);
    hold(&mut plan, &reg, &mut states, &refused);
    let left: Vec<&str> = plan.changes.iter().map(|c| &*c.name).collect();
    assert_eq!(left, ["iris-production", "old-production"]);
    assert_eq!(plan.errors.len(), 1);
    let e = &plan.errors[0];
    assert_eq!(
        (
            e.name.as_str(),
            e.model.as_str(),
            e.version.as_deref(),
            e.message.as_str()
        ),
        ("fraud-production", "fraud", Some("3"), "preflight: no")
    );
    assert_eq!(plan.held["fraud-production"], "uid-fraud-production");
    assert_eq!(states[0].verdict, Verdict::NotDeployable);
    assert_eq!(states[1].verdict, Verdict::UpdatePending);
}

#[test]
fn what_was_not_checked_is_said_in_one_line() {
    let direct = ToCheck {
        model: "fraud".into(),
        version: "7".into(),
        path: None,
        uri: "s3://models-bucket/fraud/7".into(),
    };
    assert_eq!(skipped(None, &[]), None);
    assert_eq!(
        skipped(Some(("MLflow at http://m does not serve artifacts".into(), 3)), &[]).unwrap(),
        "Preflight skipped: MLflow at http://m does not serve artifacts; 3 versions to deploy not checked."
    );
    let both = skipped(
        Some(("MLflow at http://m does not serve artifacts".into(), 1)),
        &[&direct, &direct],
    )
    .unwrap();
    assert!(both.starts_with("Preflight skipped: MLflow at http://m does not serve artifacts; 1 version to deploy not checked; 2 versions whose files are not behind MLflow's artifact proxy (e.g. version 7 of model \"fraud\", at s3://models-bucket/fraud/7"), "{both}");
    assert_eq!(both.matches("Preflight skipped").count(), 1);
}
