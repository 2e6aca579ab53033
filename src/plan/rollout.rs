//! The plan's side of progressive rollout: what the observer keeps of an object whose version
//! changes or that has a rollout's record ([`Seen`]), the canary objects a rollout adds
//! ([`CanarySeen`]), and what [`decide`] makes of them: the change, or none.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;

use super::{Action, Change, ObjectRef, Plan};
use crate::config::DeployConfig;
use crate::desired::{recorded, recorded_files, recorded_location, Entry, EntryVersion, Recorded};
use crate::k8s::ListedObject;
use crate::keys::{ANN_CANARY_FILES, ANN_MODEL_CREATED, ANN_MODEL_NAME};
use crate::mlflow::Resolved;
use crate::rollout::{self, CanaryHealth, Clock, Move, RolloutState};
use crate::settings;
use crate::targets::{CanaryStatus, Resource};

/// How the version the registry asks for relates to an object's rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// The version the object serves alone (its `m2s.io/model-version`).
    Stable,
    /// The version of its rollout in progress, or the one aborted.
    Canary,
    /// Another.
    Other,
}

/// What the plan keeps of an object whose version changes, or that records a rollout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    pub(crate) state: RolloutState,
    pub(crate) wanted: Wanted,
    /// The version the object serves alone, and where its files are, as recorded on it.
    pub(crate) stable: Option<(EntryVersion, Recorded)>,
    /// The files of the version in rollout, as recorded when the rollout started.
    pub(crate) canary: Option<Recorded>,
    /// The canary's health from the object's own status (KServe, Seldon Core 1).
    pub(crate) health: Option<CanaryHealth>,
    /// Why the stack cannot roll this object out in steps.
    pub(crate) refusal: Option<String>,
}

impl Seen {
    pub(crate) fn of(entry: &Entry, a: &ListedObject, cfg: &DeployConfig) -> Seen {
        let state = RolloutState::of(&a.annotations);
        let same_model = a.annotation(ANN_MODEL_NAME) == Some(entry.model.name.as_str())
            && a.annotation(ANN_MODEL_CREATED)
                == entry.model.created.map(|c| c.to_string()).as_deref();
        let rolled = match &state {
            RolloutState::InProgress { version, .. } | RolloutState::Aborted { version, .. } => {
                Some(version.as_str())
            }
            RolloutState::None => None,
        };
        let wanted = if recorded(entry, &a.annotations).is_some() {
            Wanted::Stable
        } else if same_model && rolled == Some(&*entry.version.version) {
            Wanted::Canary
        } else {
            Wanted::Other
        };
        let canary = a
            .annotation(ANN_CANARY_FILES)
            .and_then(|json| serde_json::from_str(json).ok())
            .and_then(|files| recorded_location(&files));
        let split = cfg.target.traffic_split();
        let status = a.status();
        let health = match (&state, split) {
            (RolloutState::InProgress { steps, step, .. }, Some(split))
                if split.canary_object(&a.name).is_none() =>
            {
                Some(health_of(split.canary_status(
                    &a.name,
                    &status,
                    a.generation,
                    steps[step - 1],
                )))
            }
            _ => None,
        };
        let refusal = match split {
            None => Some(format!(
                "target {} cannot split traffic, so m2s.canary cannot apply",
                cfg.target.id()
            )),
            Some(split) => split.refuse(&a.annotations, &status),
        };
        Seen {
            state,
            wanted,
            stable: recorded_files(&a.annotations),
            canary,
            health,
            refusal,
        }
    }

    /// Whether the registry's version must be looked up in MLflow: not when the object
    /// records its files (the stable version, or the rollout's).
    pub(crate) fn needs_location(&self) -> bool {
        match (self.wanted, &self.state) {
            (Wanted::Stable, _) => self.stable.is_none(),
            (Wanted::Canary, RolloutState::InProgress { .. }) => self.canary.is_none(),
            (Wanted::Canary, RolloutState::Aborted { .. }) => false,
            _ => true,
        }
    }

    /// The files of the version the registry asks for, when the object records them.
    pub(crate) fn recorded_wanted(&self) -> Option<Resolved> {
        let r = match self.wanted {
            Wanted::Stable => self.stable.as_ref().map(|(_, r)| r),
            Wanted::Canary => self.canary.as_ref(),
            Wanted::Other => None,
        }?;
        Some(Resolved {
            location: r.location.clone(),
            version_tags: r.version_tags.clone(),
        })
    }
}

/// The health the plan judges a step by.
pub(crate) fn health_of(s: CanaryStatus) -> CanaryHealth {
    CanaryHealth {
        readiness: s.readiness,
        available_since: s.available_since.and_then(|t| t.parse::<Timestamp>().ok()),
    }
}

/// A canary object a rollout added (Seldon Core 2's `<name>-canary` Model), as listed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CanarySeen {
    pub(crate) object: super::ObjectRef,
    pub(crate) health: CanaryHealth,
}

/// What a rollout change does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RolloutKind {
    /// Serve step `step` (from 1) of `steps`.
    Step { step: usize, steps: Vec<u8> },
    /// The new version alone.
    Promote,
    /// The stable version alone; with `record`, the new one recorded as aborted.
    Abort { why: String, record: bool },
    /// The stable version alone, the rollout's record dropped.
    Clear,
    /// A canary object left behind by a rollout no longer in progress is deleted.
    Cleanup { of: String },
}

/// The rollout side of a change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RolloutChange {
    pub(crate) kind: RolloutKind,
    /// The version that serves alone before (and, after an abort, again).
    pub(crate) stable_version: String,
    /// The version rolled out.
    pub(crate) canary_version: String,
    /// The stable version as recorded on the object (step, abort).
    pub(crate) stable: Option<(EntryVersion, Recorded)>,
    /// Whether the object was in a rollout that this change ends: its canary objects go.
    pub(crate) ends_rollout: bool,
}

impl RolloutChange {
    /// `step`, `promote`, `abort`, `clear` or `cleanup`: the plan's JSON.
    pub(crate) fn action(&self) -> &'static str {
        match self.kind {
            RolloutKind::Step { .. } => "step",
            RolloutKind::Promote => "promote",
            RolloutKind::Abort { .. } => "abort",
            RolloutKind::Clear => "clear",
            RolloutKind::Cleanup { .. } => "cleanup",
        }
    }

    /// The reason a plan line gives.
    pub(crate) fn reason(&self, why: &str) -> String {
        match &self.kind {
            RolloutKind::Step { step, steps } => {
                let percent = steps[step - 1];
                format!("canary {percent}% (step {step} of {})", steps.len())
            }
            RolloutKind::Promote => format!("promoted: {why}"),
            RolloutKind::Abort { why, .. } => format!("rollout aborted: {why}"),
            RolloutKind::Clear => {
                format!(
                    "the aborted rollout of v{} is forgotten: {why}",
                    self.canary_version
                )
            }
            RolloutKind::Cleanup { of } => {
                format!("the canary of {of}, whose rollout is no longer in progress")
            }
        }
    }
}

/// What an object in (or entering) a rollout gets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// No rollout matter: a plain update (or restore), as without `m2s.canary`.
    Plain,
    /// Nothing is due: the object stays as it is.
    Stay,
    /// The entry cannot be served as asked; the object stays as it is.
    Error(String),
    /// A rollout change, with its reason.
    Change(Box<RolloutChange>, String),
}

/// What the object of `entry`, seen as `seen`, needs when the registry's version has the
/// files `wanted` and the canary part is `canary_health` (Seldon Core 2's canary Model; else
/// the object's own status says).
pub(crate) fn decide(
    entry: &Entry,
    seen: &Seen,
    wanted: &Resolved,
    canary_health: Option<&CanaryHealth>,
    clock: Clock,
) -> Decision {
    let model = &entry.model.name;
    let version = &*entry.version.version;
    let canary =
        match settings::canary_from_tags(model, version, &entry.model.tags, &wanted.version_tags) {
            Ok(c) => c,
            Err(e) => return Decision::Error(e),
        };
    let Some((stable_version, _)) = &seen.stable else {
        // An object that does not record its files cannot be split; written plainly.
        return Decision::Plain;
    };
    let stable = &*stable_version.version;
    let health = canary_health.or(seen.health.as_ref());
    let Some(mv) = rollout::next(version, stable, &seen.state, canary.as_ref(), health, clock)
    else {
        return Decision::Plain;
    };
    let in_progress = matches!(seen.state, RolloutState::InProgress { .. });
    let canary_version = match (&mv, &seen.state) {
        (Move::Abort { .. } | Move::Clear { .. }, RolloutState::InProgress { version, .. })
        | (Move::Abort { .. } | Move::Clear { .. }, RolloutState::Aborted { version, .. }) => {
            version.clone()
        }
        _ => version.to_string(),
    };
    let change = |kind: RolloutKind, why: &str| {
        let c = RolloutChange {
            kind,
            stable_version: stable.to_string(),
            canary_version: canary_version.clone(),
            stable: seen.stable.clone(),
            ends_rollout: in_progress,
        };
        let reason = c.reason(why);
        Decision::Change(Box::new(c), reason)
    };
    match mv {
        Move::Stay => Decision::Stay,
        Move::Held { why } => Decision::Error(why),
        Move::Step { step, steps } => match &seen.refusal {
            Some(refusal) => Decision::Error(refusal.clone()),
            None => {
                let mut d = change(RolloutKind::Step { step, steps }, "");
                if let Decision::Change(c, _) = &mut d {
                    c.ends_rollout = false;
                }
                d
            }
        },
        Move::Promote { why } => change(RolloutKind::Promote, &why),
        Move::Abort { why, record } => change(
            RolloutKind::Abort {
                why: why.clone(),
                record,
            },
            &why,
        ),
        Move::Clear { why } => change(RolloutKind::Clear, &why),
    }
}

/// What the rollouts of one plan keep and end, for the canary objects they added.
#[derive(Default)]
pub(super) struct Rollouts {
    pub(super) canaries: BTreeMap<String, CanarySeen>,
    /// Objects whose rollout goes on (or is left as it is): their canaries stay.
    pub(super) kept: BTreeSet<String>,
    /// Objects whose rollout this plan ends.
    pub(super) ended: BTreeSet<String>,
    /// The UID of an object left as it is for an entry error (for its Event).
    pub(super) held_uid: Option<String>,
}

impl Rollouts {
    pub(super) fn ending(&mut self, object: &ObjectRef) {
        if object.in_rollout {
            self.ended.insert(object.name.clone());
        }
    }

    /// Deletes the canary objects of rollouts no longer in progress: the listed ones as
    /// changes of their own, the others (Seldon Core 2's Experiment) with the change that ends
    /// their rollout, or with the deletion of their canary Model when nothing else changes.
    pub(super) fn clean_up(self, plan: &mut Plan, cfg: &DeployConfig) {
        let Some(split) = cfg.target.traffic_split() else {
            return;
        };
        let orphans: Vec<(String, CanarySeen)> = self
            .canaries
            .into_iter()
            .filter(|(of, _)| !self.kept.contains(of))
            .collect();
        let listed: BTreeSet<&str> = orphans
            .iter()
            .map(|(_, c)| c.object.name.as_str())
            .collect();
        let others = |of: &str| -> Vec<(Resource, String)> {
            split
                .companion_names(of)
                .into_iter()
                .filter(|(_, name)| !listed.contains(name.as_str()))
                .collect()
        };
        for change in &mut plan.changes {
            if self.ended.contains(&*change.name) {
                change.cleanup = others(&change.name);
            }
        }
        let mut added = Vec::new();
        for (of, canary) in &orphans {
            let cleanup = if self.ended.contains(of) {
                Vec::new()
            } else {
                others(of)
            };
            let kind = RolloutKind::Cleanup { of: of.clone() };
            let rc = RolloutChange {
                kind,
                stable_version: String::new(),
                canary_version: canary.object.version.clone().unwrap_or_default(),
                stable: None,
                ends_rollout: true,
            };
            added.push(Change {
                action: Action::Delete,
                name: canary.object.name.as_str().into(),
                entry: None,
                reason: rc.reason("").into(),
                object: Some(Box::new(canary.object.clone())),
                resolved: None,
                rollout: Some(Box::new(rc)),
                cleanup,
            });
        }
        plan.changes.extend(added);
    }
}

#[cfg(test)]
mod tests;
