//! Registry entries + the objects in the cluster → the changes to make. Pure: no IO.
//!
//! Listed objects are compared as they stream in ([`Observer`]): each is reduced at once to
//! what the plan needs (a verdict, or the few fields a reason names), so a run never holds the
//! cluster's objects or the rendered bodies. [`compute`] then plans every entry and object.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::config::DeployConfig;
use crate::desired::{first_names, render, Entry, EntryError, Registry, Selector};
use crate::mlflow::{EntryResult, Resolved};

mod observe;
pub(crate) mod rollout;
#[cfg(test)]
mod tests;

use observe::{needs_location, reasons, StaleObject};
pub(crate) use observe::{Differing, Found, ObjectRef, Observer, Verdict};
use rollout::{decide, Decision, Rollouts};
pub(crate) use rollout::{RolloutChange, RolloutKind};

use crate::rollout::Clock;
use crate::targets::Resource;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub(crate) fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
        }
    }
}

/// One change. Create and update render their body again when applied (from `entry` and
/// `resolved`), so a plan of thousands of objects never holds their bodies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub(crate) action: Action,
    pub(crate) name: Arc<str>,
    /// Index of the entry in the registry (create, update).
    pub(crate) entry: Option<usize>,
    /// The listed object (update, delete): preconditions and what it served.
    pub(crate) object: Option<Box<ObjectRef>>,
    /// Where the files are (create, update).
    pub(crate) resolved: Option<Box<Resolved>>,
    pub(crate) reason: Cow<'static, str>,
    /// A progressive rollout's step, promotion, abort or clean-up.
    pub(crate) rollout: Option<Box<RolloutChange>>,
    /// Objects a rollout added that go with this change, deleted after it is written:
    /// (resource, name), each only if this instance owns it.
    pub(crate) cleanup: Vec<(Resource, String)>,
}

impl Change {
    pub(crate) fn entry<'r>(&self, registry: &'r Registry) -> Option<&'r Entry> {
        self.entry.map(|i| &registry.entries[i])
    }
    pub(crate) fn model<'r>(&'r self, registry: &'r Registry) -> Option<&'r str> {
        match self.entry(registry) {
            Some(e) => Some(&e.model.name),
            None => self.object.as_ref()?.model.as_deref(),
        }
    }
    pub(crate) fn version<'r>(&'r self, registry: &'r Registry) -> Option<&'r str> {
        if let Some(r) = &self.rollout {
            match r.kind {
                RolloutKind::Abort { .. } => return Some(&r.stable_version),
                RolloutKind::Cleanup { .. } => return Some(&r.canary_version),
                _ => {}
            }
        }
        match self.entry(registry) {
            Some(e) => Some(&e.version.version),
            None => self.object.as_ref()?.version.as_deref(),
        }
    }
    /// The version an update moves away from.
    pub(crate) fn previous_version(&self) -> Option<&str> {
        if let Some(r) = &self.rollout {
            return match r.kind {
                RolloutKind::Step { .. } | RolloutKind::Promote => Some(&r.stable_version),
                RolloutKind::Abort { .. } | RolloutKind::Clear => Some(&r.canary_version),
                RolloutKind::Cleanup { .. } => None,
            };
        }
        match self.action {
            Action::Update => self.object.as_ref()?.version.as_deref(),
            _ => None,
        }
    }
    pub(crate) fn selector<'r>(&'r self, registry: &'r Registry) -> Option<&'r Selector> {
        match self.entry(registry) {
            Some(e) => Some(&e.selector),
            None => self.object.as_ref()?.selector.as_ref(),
        }
    }
    /// The model URI the object gets (create, update).
    pub(crate) fn model_uri(&self, cfg: &DeployConfig) -> Option<String> {
        let location = match self.rollout.as_deref() {
            Some(RolloutChange {
                kind: RolloutKind::Abort { .. },
                stable: Some((_, files)),
                ..
            }) => &files.location,
            _ => &self.resolved.as_ref()?.location,
        };
        crate::artifacts::model_uri(location, cfg.storage_root.as_deref(), cfg.target).ok()
    }
    pub(crate) fn uid(&self) -> Option<&str> {
        self.object.as_ref()?.uid.as_deref()
    }
    pub(crate) fn resource_version(&self) -> Option<&str> {
        self.object.as_ref()?.resource_version.as_deref()
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Plan {
    /// Sorted by name.
    pub(crate) changes: Vec<Change>,
    /// Managed objects already as desired, as indices of their registry entries (a large
    /// registry's no-op run keeps no copy of the names).
    pub(crate) unchanged: Vec<usize>,
    /// Entries that cannot be served as asked; their objects are left as they are.
    pub(crate) errors: Vec<EntryError>,
    /// Managed objects found in the cluster.
    pub(crate) managed: usize,
    /// UIDs of the objects left as they are because their entry cannot be deployed.
    pub(crate) held: BTreeMap<String, String>,
    /// Why preflight checked none (or not all) of the versions to deploy, said once per run.
    pub(crate) preflight_skipped: Option<String>,
}

impl Plan {
    /// Names of the managed objects already as desired.
    pub(crate) fn unchanged_names<'r>(
        &self,
        registry: &'r Registry,
    ) -> impl Iterator<Item = &'r str> + use<'_, 'r> {
        self.unchanged.iter().map(|&i| &*registry.entries[i].name)
    }
    pub(crate) fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Plans every entry and unwanted object. `resolved` has, for each entry in
/// [`Observer::to_resolve`]'s order, where its files are (or why that is unknown).
pub(crate) fn compute(
    registry: &Registry,
    observer: Observer,
    resolved: Vec<EntryResult<Box<Resolved>>>,
    cfg: &DeployConfig,
    clock: Clock,
) -> Plan {
    let mut plan = Plan {
        errors: registry.errors.clone(),
        managed: observer.managed,
        held: observer.held,
        ..Plan::default()
    };
    let mut resolved = resolved.into_iter();
    let mut rollouts = Rollouts {
        canaries: observer.canaries,
        ..Rollouts::default()
    };
    for (i, found) in observer.found.into_iter().enumerate() {
        let entry = &registry.entries[i];
        let error = |message: String| EntryError::of(entry, message);
        let resolution = needs_location(&found).then(|| {
            resolved
                .next()
                .expect("one resolution per entry to resolve")
        });
        match found {
            Found::InSync => plan.unchanged.push(i),
            Found::Held(message) => plan.errors.push(error(message)),
            Found::Differs(d) => {
                let Differing {
                    object,
                    resolved: r,
                    reasons,
                } = *d;
                plan.changes.push(Change {
                    action: Action::Update,
                    name: entry.name.clone(),
                    entry: Some(i),
                    object: Some(Box::new(object)),
                    resolved: Some(Box::new(r)),
                    reason: reasons.join(", ").into(),
                    rollout: None,
                    cleanup: Vec::new(),
                });
            }
            Found::Stale(stale) => {
                match stale_change(i, entry, *stale, resolution, cfg, clock, &mut rollouts) {
                    Ok(Some(change)) => plan.changes.push(change),
                    Ok(None) => plan.unchanged.push(i),
                    Err(message) => {
                        if let Some(uid) = rollouts.held_uid.take() {
                            plan.held.insert(entry.name.to_string(), uid);
                        }
                        plan.errors.push(error(message))
                    }
                }
            }
            Found::Absent => {
                let r = resolution.expect("an absent entry is resolved");
                match create_or_restore(i, entry, found, r, cfg) {
                    Ok(change) => plan.changes.push(change),
                    Err(message) => plan.errors.push(error(message)),
                }
            }
        }
    }
    for object in observer.unwanted {
        rollouts.ending(&object);
        plan.changes.push(Change {
            action: Action::Delete,
            name: object.name.as_str().into(),
            entry: None,
            reason: delete_reason(&object, cfg, registry).into(),
            object: Some(Box::new(object)),
            resolved: None,
            rollout: None,
            cleanup: Vec::new(),
        });
    }
    rollouts.clean_up(&mut plan, cfg);
    plan.changes
        .sort_by(|a, b| a.name.cmp(&b.name).then(a.action.cmp(&b.action)));
    plan.errors
        .sort_by(|a, b| (&a.name, &a.model).cmp(&(&b.name, &b.model)));
    plan
}

/// The change of an object that serves another version or records a rollout: a rollout's
/// move, or a plain update; `None` when nothing is due.
fn stale_change(
    index: usize,
    entry: &Entry,
    stale: StaleObject,
    resolution: Option<EntryResult<Box<Resolved>>>,
    cfg: &DeployConfig,
    clock: Clock,
    rollouts: &mut Rollouts,
) -> Result<Option<Change>, String> {
    let seen = &stale.rollout;
    let wanted = match resolution {
        Some(r) => *r?,
        None => seen.recorded_wanted().unwrap_or_else(|| Resolved {
            location: Default::default(),
            version_tags: entry.version.tags.to_vec(),
        }),
    };
    let canary_health = rollouts.canaries.get(&*entry.name).map(|c| &c.health);
    let keep = |rollouts: &mut Rollouts| {
        rollouts.kept.insert(entry.name.to_string());
    };
    match decide(entry, seen, &wanted, canary_health, clock) {
        Decision::Stay => {
            keep(rollouts);
            Ok(None)
        }
        Decision::Error(message) => {
            keep(rollouts);
            rollouts.held_uid = stale.object.uid.clone();
            Err(message)
        }
        Decision::Change(rc, reason) => {
            if matches!(rc.kind, RolloutKind::Step { .. }) {
                keep(rollouts);
            } else {
                rollouts.ending(&stale.object);
            }
            Ok(Some(Change {
                action: Action::Update,
                name: entry.name.clone(),
                entry: Some(index),
                object: Some(Box::new(stale.object)),
                resolved: Some(Box::new(wanted)),
                reason: reason.into(),
                rollout: Some(rc),
                cleanup: Vec::new(),
            }))
        }
        Decision::Plain => {
            rollouts.ending(&stale.object);
            create_or_restore(
                index,
                entry,
                Found::Stale(Box::new(stale)),
                Ok(Box::new(wanted)),
                cfg,
            )
            .map(Some)
        }
    }
}

/// The change for an entry whose object is missing or was changed outside m2s. The location of
/// its files has been looked up by now, so its body is rendered here, once, to name the reasons.
fn create_or_restore(
    index: usize,
    entry: &Entry,
    found: Found,
    resolved: EntryResult<Box<Resolved>>,
    cfg: &DeployConfig,
) -> Result<Change, String> {
    let r = resolved?;
    let d = render(entry, &r.location, &r.version_tags, cfg)?;
    let (action, object, reason) = match found {
        Found::Stale(stale) => {
            let mut why = reasons(&d, &stale.before, cfg);
            if why.is_empty() {
                why.push("changed outside m2s; restoring".into());
            }
            (Action::Update, Some(stale.object), why.join(", ").into())
        }
        _ => (Action::Create, None, Cow::Borrowed("new deployment")),
    };
    Ok(Change {
        action,
        name: entry.name.clone(),
        entry: Some(index),
        object: object.map(Box::new),
        resolved: Some(r),
        reason,
        rollout: None,
        cleanup: Vec::new(),
    })
}

fn delete_reason(o: &ObjectRef, cfg: &DeployConfig, registry: &Registry) -> String {
    match (o.model.as_deref(), &o.selector) {
        (Some(m), _) if !registry.has_model(m) => {
            format!("registered model {m:?} is gone from the registry (deleted, or outside the model filter)")
        }
        (Some(m), Some(Selector::Stage(s))) => {
            if cfg.stages.iter().any(|c| c == s) {
                format!("model {m:?} has no version in stage {s} any more")
            } else {
                format!("stage {s} is no longer deployed (M2S_STAGES)")
            }
        }
        (Some(m), Some(Selector::Alias(al))) => {
            if cfg.aliases.includes(al) {
                format!("alias {al:?} was removed from model {m:?}")
            } else {
                format!("alias {al:?} is no longer deployed (M2S_ALIASES)")
            }
        }
        _ => "no registry entry wants this deployment".to_string(),
    }
}

/// "iris v3 → v4 (stage Production)": what a plan line is about.
pub(crate) fn describe(
    model: Option<&str>,
    version: Option<&str>,
    previous: Option<&str>,
    selector: Option<&Selector>,
) -> String {
    let mut s = String::new();
    if let Some(m) = model {
        let _ = write!(s, "{m}");
    }
    match (previous, version) {
        (Some(p), Some(v)) if p != v => {
            let _ = write!(s, " v{p} → v{v}");
        }
        (_, Some(v)) => {
            let _ = write!(s, " v{v}");
        }
        _ => {}
    }
    if let Some(sel) = selector {
        let _ = write!(s, " ({sel})");
    }
    s.trim().to_string()
}

/// Refuses plans that delete everything m2s manages (an empty or unreadable registry looks
/// the same) or more than `max_deletes` objects. The refusal says what the registry does ask
/// for: after a rename it asks for other objects, not for none.
pub(crate) fn check_deletion_guard(
    plan: &Plan,
    cfg: &DeployConfig,
    allow_delete_all: bool,
    max_deletes: Option<usize>,
) -> Result<()> {
    let deletes = plan.count(Action::Delete);
    let namespace = &cfg.namespace;
    let resource = cfg.target.resource();
    if plan.managed > 0 && deletes == plan.managed && !allow_delete_all {
        let wanted: Vec<&str> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Create)
            .map(|c| &*c.name)
            .chain(plan.errors.iter().map(|e| e.name.as_str()))
            .collect();
        let asks = if wanted.is_empty() {
            "the registry asks for none of them and for nothing else, which is also what an empty or wrongly filtered registry looks like".to_string()
        } else {
            format!(
                "the registry asks for none of them but for {} other{} ({}), which is also what a renamed model or a wrongly filtered registry looks like",
                wanted.len(),
                if wanted.len() == 1 { "" } else { "s" },
                first_names(wanted.iter().copied(), wanted.len(), 3)
            )
        };
        let all = if deletes == 1 {
            format!("the only {} m2s manages", resource.kind)
        } else {
            format!("all {} m2s manages", resource.count(deletes))
        };
        bail!(
            "refusing to delete {all} in namespace {namespace:?}: {asks}; \
             run with --allow-delete-all (M2S_ALLOW_DELETE_ALL=true) if this is intended"
        );
    }
    if let Some(max) = max_deletes {
        if deletes > max {
            bail!(
                "refusing to delete {} in namespace {namespace:?}: more than --max-deletes {max}",
                resource.count(deletes)
            );
        }
    }
    Ok(())
}
