//! Writing a progressive rollout's change: a step's object (the stable and the new version
//! split as the stack splits them) and the canary objects it needs, a promotion, an abort; and
//! deleting the canary objects of a rollout that ended. The plan decided what; this renders
//! and writes it.

use anyhow::{Context, Result};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};

use crate::config::DeployConfig;
use crate::desired::{render, Entry, FILE_ANNOTATIONS};
use crate::k8s::{Applied, Kube};
use crate::mlflow::Resolved;
use crate::plan::rollout::{RolloutChange, RolloutKind};
use crate::plan::Change;
use crate::rollout::RolloutState;
use crate::targets::{Companion, Resource};

/// What a rollout change writes: the main object, and the canary objects written before it.
pub(super) struct Bodies {
    pub(super) main: Value,
    pub(super) companions: Vec<Companion>,
}

/// The bodies of `rollout`'s change of `entry`'s object, the new version's files at `resolved`.
pub(super) fn bodies(
    rollout: &RolloutChange,
    entry: &Entry,
    resolved: &Resolved,
    cfg: &DeployConfig,
    now: Timestamp,
) -> Result<Bodies, String> {
    let new = || render(entry, &resolved.location, &resolved.version_tags, cfg);
    let stable = || {
        let (version, files) = rollout
            .stable
            .as_ref()
            .ok_or("the object does not record the version it serves")?;
        let stable_entry = Entry {
            version: version.clone(),
            ..entry.clone()
        };
        render(&stable_entry, &files.location, &files.version_tags, cfg)
    };
    let plain = |main: Value| Bodies {
        main,
        companions: Vec::new(),
    };
    match &rollout.kind {
        RolloutKind::Step { step, steps } => {
            let split = cfg
                .target
                .traffic_split()
                .ok_or("the target cannot split traffic")?;
            let percent = steps[step - 1];
            let (stable, canary) = (stable()?.object, new()?.object);
            let mut main = split.split(&stable, &canary, percent);
            // The object records its stable version meanwhile (what it serves alone after an
            // abort), and the rollout: the new version's files, the step, since when.
            let mut annotations = stable["metadata"]["annotations"].clone();
            let state = RolloutState::InProgress {
                version: entry.version.version.to_string(),
                steps: steps.clone(),
                step: *step,
                since: now,
            };
            add(&mut annotations, state.annotations());
            let files: Map<String, Value> = FILE_ANNOTATIONS
                .iter()
                .filter_map(|k| {
                    Some((
                        k.to_string(),
                        canary["metadata"]["annotations"].get(*k)?.clone(),
                    ))
                })
                .collect();
            add(
                &mut annotations,
                vec![(
                    crate::keys::ANN_CANARY_FILES,
                    Value::Object(files).to_string(),
                )],
            );
            main["metadata"]["annotations"] = annotations;
            main["metadata"]["labels"][crate::keys::LABEL_ROLLOUT] = Value::from("canary");
            let companions = split.companions(&entry.name, &stable, &canary, percent);
            Ok(Bodies { main, companions })
        }
        RolloutKind::Promote | RolloutKind::Clear => Ok(plain(new()?.object)),
        RolloutKind::Abort { why, record } => {
            let mut main = stable()?.object;
            if *record {
                let state = RolloutState::Aborted {
                    version: rollout.canary_version.clone(),
                    why: why.clone(),
                };
                add(&mut main["metadata"]["annotations"], state.annotations());
            }
            Ok(plain(main))
        }
        RolloutKind::Cleanup { .. } => Err("a clean-up writes no object".into()),
    }
}

fn add(annotations: &mut Value, pairs: Vec<(&'static str, String)>) {
    for (k, v) in pairs {
        annotations[k] = Value::String(v);
    }
}

/// Applies the canary objects of a step once every name is free or this instance's: an object
/// someone else made is never touched, and then nothing of the step is written. Returns what
/// was written of each.
pub(super) async fn apply_companions(
    kube: &Kube,
    companions: Vec<Companion>,
    instance: &str,
    dry_run: bool,
) -> Result<Vec<(String, Applied)>> {
    for c in &companions {
        if let Some(found) = kube.get_other(&c.resource, &c.name).await? {
            if !found.owned_by(instance) {
                anyhow::bail!(
                    "{} {}/{} exists and is not managed by m2s instance {instance:?}: the rollout needs that name, and m2s leaves the object alone",
                    c.resource.kind,
                    kube.namespace(),
                    c.name
                );
            }
        }
    }
    let mut written = Vec::new();
    for c in companions {
        let applied = kube
            .apply_other(&c.resource, &c.name, c.object, dry_run)
            .await
            .with_context(|| format!("writing the rollout's {} {}", c.resource.kind, c.name))?;
        written.push((c.name, applied));
    }
    Ok(written)
}

/// Deletes the canary objects `cleanup` names that this instance owns (each with the UID read
/// as a precondition); gone already, or someone else's, is left as it is.
pub(super) async fn delete_companions(
    kube: &Kube,
    cleanup: &[(Resource, String)],
    instance: &str,
    dry_run: bool,
) -> Result<()> {
    for (resource, name) in cleanup {
        match kube.get_other(resource, name).await? {
            None => {}
            Some(found) if !found.owned_by(instance) => {
                log::info!(
                    "{} {name} is not this instance's: left alone",
                    resource.kind
                );
            }
            Some(found) => {
                kube.delete_other(resource, name, found.uid.as_deref(), dry_run)
                    .await?
            }
        }
    }
    Ok(())
}

/// The name of the object whose readiness `--wait` follows for a change: a step on a stack
/// whose canary is an object of its own (Seldon Core 2) waits for that one.
pub(super) fn waited_name(change: &Change, cfg: &DeployConfig) -> Option<String> {
    let rollout = change.rollout.as_ref()?;
    match rollout.kind {
        RolloutKind::Step { .. } => cfg.target.traffic_split()?.canary_object(&change.name),
        _ => None,
    }
}
