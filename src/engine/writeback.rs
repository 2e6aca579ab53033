//! Write-back (`M2S_WRITE_BACK`): on the model version each object serves, the tags
//! `m2s.<namespace>.<name>.state` and `.url`; an object that moved to another version or was
//! deleted loses its tags on the old one. Only changed tags are written. [`tag_writes`] and
//! [`after_run`] are pure; [`write_back`] reads and writes MLflow.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use super::after::WriteBackOutcome;
use crate::desired::Registry;
use crate::keys::{write_back_key, write_back_object, write_back_prefix};
use crate::mlflow::{parallel_map, MlflowClient};
use crate::plan::rollout::RolloutKind;
use crate::plan::{Action, Change, Plan, Verdict};
use crate::rollout::RolloutState;
use crate::settings::Tag;
use crate::status::ObjectState;
use crate::targets::Readiness;

/// A model version: (model, version).
pub(crate) type VersionKey = (String, String);

/// An object after the run: the version it serves and how it is doing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Served {
    pub(crate) name: String,
    pub(crate) model: String,
    pub(crate) version: String,
    pub(crate) readiness: Readiness,
    /// The state a progressive rollout gives the version instead of its readiness: `canary`
    /// (it takes part of the traffic), `aborted` (its rollout was aborted).
    pub(crate) note: Option<&'static str>,
}

/// A version an object served before the run and no longer does (moved or deleted).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Left {
    pub(crate) name: String,
    pub(crate) model: String,
    pub(crate) version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TagWrite {
    Set {
        model: String,
        version: String,
        key: String,
        value: String,
    },
    Delete {
        model: String,
        version: String,
        key: String,
    },
}

/// What serves what once the run's changes are applied: the objects as listed, with every
/// change that succeeded (`applied`: index into `plan.changes`, and the object's readiness
/// after the write) played onto them.
pub(crate) fn after_run(
    registry: &Registry,
    plan: &Plan,
    listed: Vec<ObjectState>,
    applied: &[(usize, Readiness)],
) -> (Vec<Served>, Vec<Left>) {
    // A rollout's canary objects are part of the object they roll out: no tags of their own.
    let listed: Vec<ObjectState> = listed
        .into_iter()
        .filter(|o| o.verdict != Verdict::Canary)
        .collect();
    let mut extra: BTreeMap<String, Served> = listed
        .iter()
        .filter_map(|o| {
            let model = o.model.clone()?;
            rollout_served(&o.name, &model, &o.rollout).map(|s| (o.name.clone(), s))
        })
        .collect();
    let mut served: BTreeMap<String, Served> = listed
        .into_iter()
        .filter_map(|o| {
            Some((
                o.name.clone(),
                Served {
                    name: o.name,
                    model: o.model?,
                    version: o.version?,
                    readiness: o.readiness,
                    note: None,
                },
            ))
        })
        .collect();
    let mut left = Vec::new();
    for (i, readiness) in applied {
        let change = &plan.changes[*i];
        if matches!(
            change.rollout.as_deref().map(|r| &r.kind),
            Some(RolloutKind::Cleanup { .. })
        ) {
            continue;
        }
        let before = [served.remove(&*change.name), extra.remove(&*change.name)];
        let (now, now_extra) = match change.entry(registry) {
            Some(e) if change.action != Action::Delete => {
                let (version, rollout) = after_change(change, e.version.version.to_string());
                let model = e.model.name.clone();
                let now = Served {
                    name: change.name.to_string(),
                    model: model.clone(),
                    version,
                    readiness: readiness.clone(),
                    note: None,
                };
                (Some(now), rollout_served(&change.name, &model, &rollout))
            }
            _ => (None, None),
        };
        let serving: Vec<(&String, &String)> = [&now, &now_extra]
            .into_iter()
            .flatten()
            .map(|n| (&n.model, &n.version))
            .collect();
        for b in before.into_iter().flatten() {
            if !serving.contains(&(&b.model, &b.version)) {
                left.push(Left {
                    name: b.name,
                    model: b.model,
                    version: b.version,
                });
            }
        }
        if let Some(n) = now {
            served.insert(n.name.clone(), n);
        }
        if let Some(x) = now_extra {
            extra.insert(x.name.clone(), x);
        }
    }
    let mut all: Vec<Served> = served.into_values().collect();
    all.extend(extra.into_values());
    (all, left)
}

/// The version a change leaves its object serving, and the rollout it records.
fn after_change(change: &Change, wanted: String) -> (String, RolloutState) {
    let Some(r) = change.rollout.as_deref() else {
        return (wanted, RolloutState::None);
    };
    match &r.kind {
        RolloutKind::Step { step, steps } => (
            r.stable_version.clone(),
            RolloutState::InProgress {
                version: r.canary_version.clone(),
                steps: steps.clone(),
                step: *step,
                since: k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            },
        ),
        RolloutKind::Abort { why, record: true } => (
            r.stable_version.clone(),
            RolloutState::Aborted {
                version: r.canary_version.clone(),
                why: why.clone(),
            },
        ),
        RolloutKind::Abort { .. } => (r.stable_version.clone(), RolloutState::None),
        _ => (wanted, RolloutState::None),
    }
}

/// The second version an object in a rollout has tags on: the canary's, or the aborted one.
fn rollout_served(name: &str, model: &str, rollout: &RolloutState) -> Option<Served> {
    let (version, note) = match rollout {
        RolloutState::None => return None,
        RolloutState::InProgress { version, .. } => (version, "canary"),
        RolloutState::Aborted { version, .. } => (version, "aborted"),
    };
    Some(Served {
        name: name.to_string(),
        model: model.to_string(),
        version: version.clone(),
        readiness: Readiness::pending(),
        note: Some(note),
    })
}

/// The objects whose tags write-back keeps in line.
fn names<'a>(served: &'a [Served], left: &'a [Left]) -> BTreeSet<&'a str> {
    served
        .iter()
        .map(|s| s.name.as_str())
        .chain(left.iter().map(|l| l.name.as_str()))
        .collect()
}

/// The versions whose tags decide the writes: those served, those left, and any other whose
/// `known` tags (from the registry search) carry a key of one of these objects.
pub(crate) fn versions_to_check(
    namespace: &str,
    served: &[Served],
    left: &[Left],
    known: &BTreeMap<VersionKey, Vec<Tag>>,
) -> BTreeSet<VersionKey> {
    let names = names(served, left);
    let mut versions: BTreeSet<VersionKey> = served
        .iter()
        .map(|s| (s.model.clone(), s.version.clone()))
        .chain(left.iter().map(|l| (l.model.clone(), l.version.clone())))
        .collect();
    for (version, tags) in known {
        let ours = tags
            .iter()
            .any(|t| write_back_object(namespace, &t.key).is_some_and(|n| names.contains(n)));
        if ours {
            versions.insert(version.clone());
        }
    }
    versions
}

/// The writes that make the tags of the `current` versions (their `m2s.<namespace>.` tags) say
/// what `served` serves: a changed or missing tag is set, a tag of one of these objects on a
/// version it does not serve (or a URL it no longer reports) is deleted. Nothing else.
pub(crate) fn tag_writes(
    namespace: &str,
    served: &[Served],
    left: &[Left],
    current: &BTreeMap<VersionKey, Vec<Tag>>,
) -> Vec<TagWrite> {
    let names = names(served, left);
    let mut desired: BTreeMap<VersionKey, BTreeMap<String, String>> = BTreeMap::new();
    for s in served {
        let tags = desired
            .entry((s.model.clone(), s.version.clone()))
            .or_default();
        let state = s
            .note
            .map_or_else(|| s.readiness.state.to_string(), String::from);
        tags.insert(write_back_key(namespace, &s.name, "state"), state);
        if let (Some(url), None) = (&s.readiness.url, s.note) {
            tags.insert(write_back_key(namespace, &s.name, "url"), url.clone());
        }
    }
    let none = BTreeMap::new();
    let no_tags = Vec::new();
    let mut writes = Vec::new();
    let versions: BTreeSet<&VersionKey> = desired.keys().chain(current.keys()).collect();
    for version in versions {
        let (model, number) = version;
        let want = desired.get(version).unwrap_or(&none);
        let have = current.get(version).unwrap_or(&no_tags);
        for (k, v) in want {
            if !have.iter().any(|t| &t.key == k && &t.value == v) {
                writes.push(TagWrite::Set {
                    model: model.clone(),
                    version: number.clone(),
                    key: k.clone(),
                    value: v.clone(),
                });
            }
        }
        for t in have {
            let ours = write_back_object(namespace, &t.key).is_some_and(|n| names.contains(n));
            if ours && !want.contains_key(&t.key) {
                writes.push(TagWrite::Delete {
                    model: model.clone(),
                    version: number.clone(),
                    key: t.key.clone(),
                });
            }
        }
    }
    writes.sort();
    writes.dedup();
    writes
}

/// Brings the tags in line: reads the versions the registry search did not return (only
/// those), then sends only the writes [`tag_writes`] finds, `concurrency` at a time. A read
/// that fails stops write-back (it is an error); a refused write is reported, the others go on.
pub(crate) fn write_back(
    mlflow: &MlflowClient,
    registry: &Registry,
    namespace: &str,
    served: &[Served],
    left: &[Left],
    concurrency: usize,
) -> Result<WriteBackOutcome> {
    let known = &registry.published;
    let versions = versions_to_check(namespace, served, left, known);
    let unknown: Vec<&VersionKey> = versions
        .iter()
        .filter(|v| !known.contains_key(*v))
        .collect();
    let prefix = write_back_prefix(namespace);
    let read = parallel_map(&unknown, concurrency, |(model, version)| {
        mlflow.version_tags(model, version, &prefix)
    })?;
    let mut current: BTreeMap<VersionKey, Vec<Tag>> = versions
        .iter()
        .filter_map(|v| Some((v.clone(), known.get(v)?.clone())))
        .collect();
    for (v, tags) in unknown.into_iter().zip(read) {
        // A version that is gone has no tags to keep in line.
        if let Some(tags) = tags {
            current.insert(v.clone(), tags);
        }
    }
    let writes: Vec<TagWrite> = tag_writes(namespace, served, left, &current)
        .into_iter()
        .filter(|w| match w {
            TagWrite::Set { model, version, .. } => {
                current.contains_key(&(model.clone(), version.clone()))
            }
            TagWrite::Delete { .. } => true,
        })
        .collect();
    let results = parallel_map(&writes, concurrency, |w| {
        Ok(match w {
            TagWrite::Set {
                model,
                version,
                key,
                value,
            } => mlflow.set_version_tag(model, version, key, value),
            TagWrite::Delete {
                model,
                version,
                key,
            } => mlflow.delete_version_tag(model, version, key),
        })
    })?;
    let mut report = WriteBackOutcome::default();
    for (w, r) in writes.iter().zip(results) {
        match (w, r) {
            (_, Err(e)) => report.failures.push(format!("{e:#}")),
            (TagWrite::Set { .. }, Ok(())) => report.set += 1,
            (TagWrite::Delete { .. }, Ok(())) => report.deleted += 1,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
