use super::*;
use crate::desired::RegistryBuilder;
use crate::keys::{LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY};
use crate::mlflow::{AliasRef, ModelVersion, RegisteredModel};

fn registry(cfg: &DeployConfig, aliases: &[(&str, &str)]) -> Registry {
    let mut b = RegistryBuilder::new(cfg);
    b.add(vec![RegisteredModel {
        name: "iris".into(),
        latest_versions: vec![ModelVersion {
            name: "iris".into(),
            version: "2".into(),
            current_stage: Some("Production".into()),
            ..ModelVersion::default()
        }],
        aliases: aliases
            .iter()
            .map(|(a, v)| AliasRef {
                alias: a.to_string(),
                version: v.to_string(),
            })
            .collect(),
        ..RegisteredModel::default()
    }]);
    b.finish()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn candidates_cover_every_stage_and_deployed_alias() {
    let mut cfg = DeployConfig::new("models", "http://mlflow");
    cfg.aliases = AliasSelection::Listed(vec!["champion".into()]);
    // A stage without a version still has a candidate (its object may have to go), as
    // does a listed alias the model does not have; an event's undeployed alias does not.
    let r = registry(&cfg, &[("challenger", "1")]);
    assert_eq!(
        candidate_names(&r, &cfg, "iris", &set(&["challenger", "champion"]), true),
        set(&["iris-champion", "iris-production", "iris-staging"])
    );
    // With `*`: the model's current aliases, and a deleted one named by its event.
    cfg.aliases = AliasSelection::All;
    let r = registry(&cfg, &[("challenger", "1")]);
    assert_eq!(
        candidate_names(&r, &cfg, "iris", &set(&["old"]), true),
        set(&[
            "iris-challenger",
            "iris-old",
            "iris-production",
            "iris-staging"
        ])
    );
    // Only stages: two names, whatever the events say.
    cfg.aliases = AliasSelection::Listed(vec![]);
    let r = registry(&cfg, &[("challenger", "1")]);
    assert_eq!(
        candidate_names(&r, &cfg, "iris", &set(&["champion"]), true),
        set(&["iris-production", "iris-staging"])
    );
}

#[test]
fn only_this_instances_objects_of_this_model_are_its_own() {
    let cfg = DeployConfig::new("models", "http://mlflow");
    let object = |instance: Option<&str>, model: Option<&str>| {
        let mut o = ListedObject {
            name: "iris-production".into(),
            ..ListedObject::default()
        };
        if let Some(i) = instance {
            o.labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
            o.labels.insert(LABEL_INSTANCE.into(), i.into());
        }
        if let Some(m) = model {
            o.annotations.insert(ANN_MODEL_NAME.into(), m.into());
        }
        o
    };
    assert_eq!(
        owner(&object(Some("m2s"), Some("iris")), &cfg, "iris"),
        Owner::Model
    );
    assert_eq!(
        owner(&object(None, Some("iris")), &cfg, "iris"),
        Owner::Foreign
    );
    assert_eq!(
        owner(&object(Some("other"), Some("iris")), &cfg, "iris"),
        Owner::Foreign
    );
    assert_eq!(
        owner(&object(Some("m2s"), Some("iris-x")), &cfg, "iris"),
        Owner::OtherModel(Some("iris-x".into()))
    );
    assert_eq!(
        owner(&object(Some("m2s"), None), &cfg, "iris"),
        Owner::OtherModel(None)
    );
}
