//! The phase after planning: before an object is created or moved to another version, that
//! version's `MLmodel` is read through MLflow's artifact proxy — one request per version, none
//! when no change deploys a version — and checked against the serving runtime
//! ([`crate::preflight`]). A version the runtime cannot load, or whose files are missing, becomes
//! an entry error like any other: its change is dropped and its object keeps serving what it
//! serves. Where MLflow does not serve the files, the plan says so once, and nothing is refused.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};

use super::Clients;
use crate::artifacts::proxied_path;
use crate::config::Config;
use crate::desired::{EntryError, Registry};
use crate::mlflow::{parallel_map, ArtifactFile};
use crate::plan::{Action, Change, Plan, RolloutKind, Verdict};
use crate::preflight::{check, missing, parse_mlmodel, refusal};
use crate::status::ObjectState;

/// A version some change deploys.
type Key = (String, String);

/// One version to check.
struct ToCheck {
    model: String,
    version: String,
    /// Its path under MLflow's artifact proxy; `None` when the proxy does not hold its files.
    path: Option<String>,
    /// The model URI the object would get.
    uri: String,
}

/// What preflight found for one version.
enum Found {
    Loads,
    Refused(String),
    NotServed(String),
}

/// The version `c` deploys, when it deploys one: a create, an update of an object that serves
/// another version (or another model's), or the first step of a progressive rollout (its
/// canary version takes traffic; later steps and the promotion deploy the version checked then,
/// an abort or a clean-up the one that serves). Updates of settings alone are not checked.
fn deployed(c: &Change, registry: &Registry) -> Option<Key> {
    let entry = c.entry(registry)?;
    let key = (entry.model.name.clone(), entry.version.version.to_string());
    if let Some(r) = &c.rollout {
        return matches!(r.kind, RolloutKind::Step { step: 1, .. })
            .then(|| (key.0, r.canary_version.clone()));
    }
    match c.action {
        Action::Create => Some(key),
        Action::Update => {
            let object = c.object.as_ref()?;
            let same = object.model.as_deref() == Some(&*key.0)
                && object.version.as_deref() == Some(&*key.1);
            (!same).then_some(key)
        }
        Action::Delete => None,
    }
}

/// Checks every version the plan deploys and turns those the runtime cannot load into entry
/// errors (their objects are held, and `states` say so).
pub(crate) fn preflight(
    clients: &Clients,
    registry: &Registry,
    plan: &mut Plan,
    states: &mut [ObjectState],
    config: &Config,
) -> Result<()> {
    if !config.preflight.enabled {
        return Ok(());
    }
    let mut versions: BTreeMap<Key, ToCheck> = BTreeMap::new();
    for c in &plan.changes {
        let (Some(key), Some(r)) = (deployed(c, registry), c.resolved.as_ref()) else {
            continue;
        };
        versions.entry(key.clone()).or_insert_with(|| ToCheck {
            model: key.0,
            version: key.1,
            path: proxied_path(&r.location),
            uri: c.model_uri(&config.deploy).unwrap_or_default(),
        });
    }
    if versions.is_empty() {
        return Ok(());
    }
    let (proxied, direct): (Vec<&ToCheck>, Vec<&ToCheck>) =
        versions.values().partition(|v| v.path.is_some());
    let before = clients.requests();
    let found = read_all(clients, config, &proxied)?;
    let sent = clients.requests().since(before).mlflow;
    let mut refused: BTreeMap<Key, String> = BTreeMap::new();
    let (mut unread, mut why_not) = (0, None);
    for (v, f) in proxied.iter().zip(found) {
        match f {
            Some(Found::Loads) => {}
            Some(Found::Refused(why)) => {
                refused.insert((v.model.clone(), v.version.clone()), why);
            }
            Some(Found::NotServed(why)) => {
                why_not.get_or_insert(why);
                unread += 1;
            }
            None => unread += 1,
        }
    }
    log::info!(
        "preflight against {}: {} versions to deploy, {} checked, {} refused ({sent} MLflow requests)",
        config.preflight.runtime,
        versions.len(),
        proxied.len() - unread,
        refused.len()
    );
    plan.preflight_skipped = skipped(why_not.map(|w| (w, unread)), &direct);
    if let Some(note) = &plan.preflight_skipped {
        log::warn!("{note}");
    }
    hold(plan, registry, states, &refused);
    Ok(())
}

/// Reads and checks each version: the first alone, so that a server without the artifact
/// proxy costs one request; the others `concurrency` at a time. `None`: not read.
fn read_all(
    clients: &Clients,
    config: &Config,
    versions: &[&ToCheck],
) -> Result<Vec<Option<Found>>> {
    let Some((first, rest)) = versions.split_first() else {
        return Ok(Vec::new());
    };
    let first = read_one(clients, config, first)?;
    if matches!(first, Found::NotServed(_)) {
        let mut out = vec![Some(first)];
        out.extend(rest.iter().map(|_| None));
        return Ok(out);
    }
    let mut out = vec![Some(first)];
    out.extend(
        parallel_map(rest, config.mlflow.concurrency, |v| {
            read_one(clients, config, v)
        })?
        .into_iter()
        .map(Some),
    );
    Ok(out)
}

/// One version's `MLmodel`, read and checked.
fn read_one(clients: &Clients, config: &Config, v: &ToCheck) -> Result<Found> {
    let path = v.path.as_deref().expect("only proxied versions are read");
    let file = clients
        .mlflow
        .read_artifact(path, "MLmodel")
        .with_context(|| {
            format!(
                "reading the MLmodel of version {} of model {:?} from MLflow (preflight; M2S_PREFLIGHT=false turns it off); nothing was changed",
                v.version, v.model
            )
        })?;
    Ok(match file {
        ArtifactFile::Found(text) => {
            match parse_mlmodel(&text).and_then(|m| check(&m, config.preflight.mlflow)) {
                Ok(()) => Found::Loads,
                Err(why) => Found::Refused(refusal(
                    &v.model,
                    &v.version,
                    &config.preflight.runtime,
                    &why,
                )),
            }
        }
        ArtifactFile::Missing(others) => {
            Found::Refused(missing(&v.model, &v.version, path, &v.uri, &others))
        }
        ArtifactFile::NotServed(why) => Found::NotServed(why),
    })
}

/// The plan's one line about what preflight did not check, if anything.
fn skipped(not_served: Option<(String, usize)>, direct: &[&ToCheck]) -> Option<String> {
    let versions = |n: usize| format!("{n} version{}", if n == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    if let Some((why, n)) = not_served {
        parts.push(format!("{why}; {} to deploy not checked", versions(n)));
    }
    if let Some(first) = direct.first() {
        parts.push(format!(
            "{} whose files are not behind MLflow's artifact proxy (e.g. version {} of model {:?}, at {}: clients write to the store directly) not checked",
            versions(direct.len()),
            first.version,
            first.model,
            first.uri
        ));
    }
    (!parts.is_empty()).then(|| format!("Preflight skipped: {}.", parts.join("; ")))
}

/// Drops the changes that deploy a `refused` version; each becomes its entry's error, and an
/// updated object is held (Events name it; `states` call it not deployable).
fn hold(
    plan: &mut Plan,
    registry: &Registry,
    states: &mut [ObjectState],
    refused: &BTreeMap<Key, String>,
) {
    if refused.is_empty() {
        return;
    }
    let (out, keep): (Vec<Change>, Vec<Change>) = std::mem::take(&mut plan.changes)
        .into_iter()
        .partition(|c| deployed(c, registry).is_some_and(|k| refused.contains_key(&k)));
    plan.changes = keep;
    let mut held = BTreeSet::new();
    for c in out {
        let key = deployed(&c, registry).expect("partitioned on it");
        let entry = c
            .entry(registry)
            .expect("changes that deploy have an entry");
        plan.errors
            .push(EntryError::of(entry, refused[&key].clone()));
        if let Some(uid) = c.uid() {
            plan.held.insert(c.name.to_string(), uid.to_string());
            held.insert(c.name.to_string());
        }
    }
    for s in states.iter_mut().filter(|s| held.contains(&s.name)) {
        s.verdict = Verdict::NotDeployable;
    }
    plan.errors
        .sort_by(|a, b| (&a.name, &a.model).cmp(&(&b.name, &b.model)));
}

#[cfg(test)]
mod tests;
