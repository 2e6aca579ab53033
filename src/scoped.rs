//! Scoped syncs observe one model's objects by name: a GET for each name the model's objects
//! can have, never a namespace-wide LIST (at 30,000 objects that is 60 pages). Only objects
//! this instance owns and that record the model are planned; any other object at one of those
//! names is left alone.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use futures::{stream, StreamExt};

use crate::config::{AliasSelection, Config, DeployConfig};
use crate::desired::{Registry, ANN_MODEL_NAME};
use crate::k8s::{is_owned, Kube};
use crate::plan::{ActualObject, Observer};

/// The names the objects of `model` can have: one per deployed stage, one per deployed alias
/// (the listed ones; with `*` the model's current ones, which are its entries), and the
/// deployed ones among `event_aliases` (a deleted alias is no longer the model's). Not `whole`:
/// only the deployed `event_aliases`' names (the registry holds only their entries then).
pub fn candidate_names(
    registry: &Registry,
    cfg: &DeployConfig,
    model: &str,
    event_aliases: &BTreeSet<String>,
    whole: bool,
) -> BTreeSet<String> {
    let target = cfg.target;
    let mut names = BTreeSet::new();
    if whole {
        names.extend(cfg.stages.iter().map(|s| target.object_name(model, s)));
        if let AliasSelection::Listed(aliases) = &cfg.aliases {
            names.extend(aliases.iter().map(|a| target.object_name(model, a)));
        }
    }
    names.extend(
        event_aliases
            .iter()
            .filter(|a| cfg.aliases.includes(a))
            .map(|a| target.object_name(model, a)),
    );
    names.extend(registry.entries.iter().map(|e| e.name.to_string()));
    names.extend(registry.errors.iter().map(|e| e.name.clone()));
    names
}

/// Whose an object found at a candidate name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This instance's, serving the model being synced: planned like a listed object.
    Model,
    /// This instance's, recording another model (or none): names can collide; left alone.
    OtherModel(Option<String>),
    /// Not this instance's: never touched.
    Foreign,
}

pub fn owner(o: &ActualObject, cfg: &DeployConfig, model: &str) -> Owner {
    if !is_owned(Some(&o.labels), &cfg.instance) {
        return Owner::Foreign;
    }
    match o.annotations.get(ANN_MODEL_NAME) {
        Some(m) if m == model => Owner::Model,
        other => Owner::OtherModel(other.cloned()),
    }
}

/// Why an entry cannot have a name that an object this instance does not own already has.
pub fn foreign_message(name: &str, cfg: &DeployConfig) -> String {
    format!(
        "a {} named {name:?} already exists in namespace {:?} and is not managed by m2s instance {:?}; m2s leaves it alone",
        cfg.target.resource().kind,
        cfg.namespace,
        cfg.instance
    )
}

/// What a scoped sync saw: the observer fed with the model's own objects, and the candidate
/// names taken by other objects (name → why an entry cannot have it).
pub struct Observed<'r> {
    pub observer: Observer<'r>,
    pub taken: BTreeMap<String, String>,
}

/// Reads every candidate name of `model` (concurrently) and sorts what is there.
pub fn observe_model<'r>(
    runtime: &tokio::runtime::Runtime,
    kube: &Kube,
    registry: &'r Registry,
    config: &'r Config,
    model: &str,
    event_aliases: &BTreeSet<String>,
    whole: bool,
) -> Result<Observed<'r>> {
    let deploy = &config.deploy;
    let names = candidate_names(registry, deploy, model, event_aliases, whole);
    let found: Vec<Result<Option<ActualObject>>> = runtime.block_on(
        stream::iter(&names)
            .map(|name| kube.get_lean(name))
            .buffer_unordered(config.concurrency)
            .collect(),
    );
    let mut observed = Observed {
        observer: Observer::new(registry, deploy),
        taken: BTreeMap::new(),
    };
    for object in found {
        let Some(object) = object? else { continue };
        match owner(&object, deploy, model) {
            Owner::Model => {
                observed.observer.observe(&object);
            }
            Owner::Foreign => {
                let why = foreign_message(&object.name, deploy);
                observed.taken.insert(object.name, why);
            }
            Owner::OtherModel(other) => {
                let why = format!(
                    "a {} named {:?} in namespace {:?} serves {}; a sync of model {model:?} leaves it alone (the full sync decides)",
                    deploy.target.resource().kind,
                    object.name,
                    deploy.namespace,
                    other.map_or("no recorded model".to_string(), |m| format!("model {m:?}"))
                );
                observed.taken.insert(object.name, why);
            }
        }
    }
    log::debug!(
        "model {model:?}: {} of {} candidate names hold its objects, {} are taken by others",
        observed.observer.managed,
        names.len(),
        observed.taken.len()
    );
    Ok(observed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::RegistryBuilder;
    use crate::desired::{LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY};
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
            let mut o = ActualObject {
                name: "iris-production".into(),
                ..ActualObject::default()
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
}
