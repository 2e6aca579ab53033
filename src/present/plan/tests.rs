use super::*;
use crate::artifacts::ArtifactLocation;
use crate::desired::RegistryBuilder;
use crate::mlflow::Resolved;
use crate::mlflow::{ModelVersion, RegisteredModel};
use crate::plan::ObjectRef;
use serde_json::json;

fn cfg(target: &str) -> DeployConfig {
    DeployConfig::new("models", "http://mlflow:5000").with_target(target)
}

/// A registry with iris v4 and fraud v3 in Production.
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

fn object(name: &str, model: &str, version: &str) -> ObjectRef {
    ObjectRef {
        name: name.into(),
        model: Some(model.into()),
        version: Some(version.into()),
        selector: Some(Selector::Stage("Production".into())),
        ..ObjectRef::default()
    }
}

fn sample(reg: &Registry) -> Plan {
    let index = |name: &str| reg.entries.iter().position(|e| &*e.name == name);
    let change = |action, name: &str, entry, object: Option<ObjectRef>, reason: &str| Change {
        action,
        name: name.into(),
        entry,
        object: object.map(Box::new),
        resolved: (action != Action::Delete).then(|| {
            Box::new(Resolved {
                location: ArtifactLocation {
                    uri: "s3://b/m".into(),
                    ..ArtifactLocation::default()
                },
                version_tags: vec![],
            })
        }),
        reason: reason.to_string().into(),
        rollout: None,
        cleanup: Vec::new(),
    };
    Plan {
        changes: vec![
            change(
                Action::Create,
                "iris-production",
                index("iris-production"),
                None,
                "new deployment",
            ),
            change(
                Action::Update,
                "fraud-production",
                index("fraud-production"),
                Some(object("fraud-production", "fraud", "2")),
                "version 2 → 3",
            ),
            change(
                Action::Delete,
                "old-production",
                None,
                Some(object("old-production", "old", "1")),
                "registered model \"old\" is gone",
            ),
        ],
        unchanged: vec![0],
        errors: vec![EntryError {
            name: "bad-production".into(),
            model: "bad".into(),
            selector: Selector::Stage("Production".into()),
            version: Some("1".into()),
            message: "tag broken".into(),
        }],
        managed: 3,
        ..Plan::default()
    }
}

#[test]
fn text_follows_terraform() {
    let c = cfg("seldon-v1");
    let reg = registry(&c);
    let text = render_text(&sample(&reg), &reg, &c);
    let expected = "\
m2s will make these changes to SeldonDeployments in namespace \"models\":

  + iris-production   iris v4 (stage Production): new deployment
  ~ fraud-production  fraud v2 → v3 (stage Production): version 2 → 3
  - old-production    old v1 (stage Production): registered model \"old\" is gone

This entry cannot be deployed; its SeldonDeployment is left as it is:

  ! bad-production    bad v1 (stage Production): tag broken

Plan: 1 to add, 1 to change, 1 to destroy.
";
    assert_eq!(text, expected);
}

#[test]
fn text_names_the_kind_of_each_target_and_counts_right() {
    for (target, one, many) in [
        (
            "seldon-v1",
            "1 SeldonDeployment in namespace \"models\" matches",
            "2 SeldonDeployments in namespace \"models\" match",
        ),
        (
            "kserve",
            "1 InferenceService in namespace \"models\" matches",
            "2 InferenceServices in namespace \"models\" match",
        ),
        (
            "seldon-v2",
            "1 Model in namespace \"models\" matches",
            "2 Models in namespace \"models\" match",
        ),
    ] {
        let c = cfg(target);
        let reg = registry(&c);
        let mut plan = Plan {
            unchanged: vec![0],
            ..Plan::default()
        };
        assert_eq!(
            render_text(&plan, &reg, &c),
            format!("No changes. {one} the registry.\n")
        );
        plan.unchanged.push(1);
        assert_eq!(
            render_text(&plan, &reg, &c),
            format!("No changes. {many} the registry.\n")
        );
        let mut two_errors = sample(&reg);
        two_errors.errors.push(two_errors.errors[0].clone());
        let text = render_text(&two_errors, &reg, &c);
        let kinds = c.target.resource().kinds(2);
        assert!(
            text.contains(&format!("m2s will make these changes to {kinds} in")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "These entries cannot be deployed; their {kinds} are left as they are:"
            )),
            "{text}"
        );
    }
}

#[test]
fn json_document() {
    let c = cfg("kserve");
    let reg = registry(&c);
    let refusal = anyhow::anyhow!("refusing to delete");
    let plan = sample(&reg);
    let json = render_doc(&plan, &reg, &c, Some(&refusal), Doc::Json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    // -o yaml is the same document.
    let yaml = render_doc(&plan, &reg, &c, Some(&refusal), Doc::Yaml);
    let from_yaml: serde_json::Value = yaml_serde::from_str(&yaml).unwrap();
    assert_eq!(from_yaml, v, "{yaml}");
    assert!(yaml.starts_with("format_version: '1'\n"), "{yaml}");
    assert_eq!(
        v["summary"],
        json!({"add": 1, "change": 1, "destroy": 1, "unchanged": 1, "errors": 1})
    );
    assert_eq!(v["kind"], "InferenceService");
    assert_eq!(v["api_version"], "serving.kserve.io/v1beta1");
    assert_eq!(v["target"], "kserve");
    assert_eq!(v["changes"][0]["action"], "create");
    assert_eq!(v["changes"][0]["model"], "iris");
    assert_eq!(v["changes"][0]["version"], "4");
    assert_eq!(v["changes"][0]["stage"], "Production");
    assert_eq!(v["changes"][0]["alias"], serde_json::Value::Null);
    assert_eq!(v["changes"][0]["model_uri"], "s3://b/m");
    assert_eq!(v["changes"][1]["previous_version"], "2");
    assert_eq!(v["changes"][1]["version"], "3");
    assert_eq!(v["changes"][2]["action"], "delete");
    assert_eq!(v["changes"][2]["model"], "old");
    assert_eq!(v["errors"][0]["error"], "tag broken");
    assert_eq!(v["namespace"], "models");
    assert_eq!(
        v["deletion_guard"],
        json!({"refused": true, "message": "refusing to delete"})
    );
    assert_eq!(v["preflight_skipped"], serde_json::Value::Null);
}

#[test]
fn a_skipped_preflight_is_said_once_before_the_summary() {
    let c = cfg("seldon-v1");
    let reg = registry(&c);
    let note = "Preflight skipped: MLflow at http://mlflow:5000 does not serve artifacts; 2 versions to deploy not checked.";
    let plan = Plan {
        preflight_skipped: Some(note.into()),
        ..sample(&reg)
    };
    let text = render_text(&plan, &reg, &c);
    assert_eq!(text.matches("Preflight skipped").count(), 1, "{text}");
    assert!(
        text.ends_with(&format!(
            "{note}\n\nPlan: 1 to add, 1 to change, 1 to destroy.\n"
        )),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&render_doc(&plan, &reg, &c, None, Doc::Json)).unwrap();
    assert_eq!(v["preflight_skipped"], note);
}
