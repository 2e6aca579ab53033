//! Scoped syncs observe one model's objects by name: a GET for each name the model's objects
//! can have, never a namespace-wide LIST (at 30,000 objects that is 60 pages). Only objects
//! this instance owns and that record the model are planned; any other object at one of those
//! names is left alone.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use futures::{stream, StreamExt};

use super::Clients;
use crate::config::{AliasSelection, Config, DeployConfig};
use crate::desired::Registry;
use crate::k8s::ListedObject;
use crate::keys::{is_owned, ANN_MODEL_NAME};
use crate::plan::Observer;

/// The names the objects of `model` can have: one per deployed stage, one per deployed alias
/// (the listed ones; with `*` the model's current ones, which are its entries), and the
/// deployed ones among `event_aliases` (a deleted alias is no longer the model's). Not `whole`:
/// only the deployed `event_aliases`' names (the registry holds only their entries then).
pub(crate) fn candidate_names(
    registry: &Registry,
    cfg: &DeployConfig,
    model: &str,
    event_aliases: &BTreeSet<String>,
    whole: bool,
) -> BTreeSet<String> {
    let target = cfg.target;
    let mut names = BTreeSet::new();
    if whole {
        names.extend(
            cfg.stages
                .iter()
                .map(|s| target.object_name(model, s, &cfg.namespace)),
        );
        if let AliasSelection::Listed(aliases) = &cfg.aliases {
            names.extend(
                aliases
                    .iter()
                    .map(|a| target.object_name(model, a, &cfg.namespace)),
            );
        }
    }
    names.extend(
        event_aliases
            .iter()
            .filter(|a| cfg.aliases.includes(a))
            .map(|a| target.object_name(model, a, &cfg.namespace)),
    );
    names.extend(registry.entries.iter().map(|e| e.name.to_string()));
    names.extend(registry.errors.iter().map(|e| e.name.clone()));
    // The canary objects a progressive rollout of each adds (Seldon Core 2).
    if let Some(split) = target.traffic_split() {
        let canaries: Vec<String> = names
            .iter()
            .filter_map(|n| split.canary_object(n))
            .collect();
        names.extend(canaries);
    }
    names
}

/// Whose an object found at a candidate name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// This instance's, serving the model being synced: planned like a listed object.
    Model,
    /// This instance's, recording another model (or none): names can collide; left alone.
    OtherModel(Option<String>),
    /// Not this instance's: never touched.
    Foreign,
}

pub(crate) fn owner(o: &ListedObject, cfg: &DeployConfig, model: &str) -> Owner {
    if !is_owned(Some(&o.labels), &cfg.instance) {
        return Owner::Foreign;
    }
    match o.annotations.get(ANN_MODEL_NAME) {
        Some(m) if m == model => Owner::Model,
        other => Owner::OtherModel(other.cloned()),
    }
}

/// Why an entry cannot have a name that an object this instance does not own already has.
pub(crate) fn foreign_message(name: &str, cfg: &DeployConfig) -> String {
    format!(
        "a {} named {name:?} already exists in namespace {:?} and is not managed by m2s instance {:?}; m2s leaves it alone",
        cfg.target.resource().kind,
        cfg.namespace,
        cfg.instance
    )
}

/// What a scoped sync saw: the observer fed with the model's own objects, and the candidate
/// names taken by other objects (name → why an entry cannot have it).
pub(crate) struct ModelObjects<'r> {
    pub(crate) observer: Observer<'r>,
    pub(crate) taken: BTreeMap<String, String>,
}

/// Reads every candidate name of `model` (concurrently) and sorts what is there.
pub(crate) fn observe_model<'r>(
    clients: &Clients,
    registry: &'r Registry,
    config: &'r Config,
    model: &str,
    event_aliases: &BTreeSet<String>,
    whole: bool,
) -> Result<ModelObjects<'r>> {
    let deploy = &config.deploy;
    let names = candidate_names(registry, deploy, model, event_aliases, whole);
    let kube = &clients.kube;
    let found: Vec<Result<Option<ListedObject>>> = clients.executor.block_on(
        stream::iter(&names)
            .map(|name| kube.get_lean(name))
            .buffer_unordered(config.concurrency)
            .collect(),
    );
    let mut observed = ModelObjects {
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
mod tests;
