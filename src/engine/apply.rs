//! A sync once the plan is made: apply every change (with an Event about each), then, when
//! asked, wait for the written objects and write their state back to MLflow. The result is a
//! [`SyncOutcome`]: exit codes, metrics, logs and Events read it, nothing parses strings.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::{stream, StreamExt};

use super::after::{wait_for, write_back};
pub(crate) use super::outcome::{
    not_available, Failure, RolloutCounts, SyncOutcome, SyncResult, LISTED,
};
use super::rollout;
use super::wait::{Tracker, WaitOutcome};
use super::Prepared;
use crate::config::Config;
use crate::desired::render;
use crate::k8s::{Applied, Note, Reason, Recorder};
use crate::plan::rollout::RolloutKind;
use crate::plan::{describe, Action, Change, Plan};
use crate::targets::{readiness_of, Readiness, Resource};
use k8s_openapi::jiff::Timestamp;

/// What a sync does beyond applying.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncOptions {
    pub(crate) dry_run: bool,
    /// `--wait`: how long to wait for the written objects.
    pub(crate) wait: Option<Duration>,
    pub(crate) events: bool,
    pub(crate) write_back: bool,
}

/// Whoever watches a sync as it goes (the terminal of `m2s sync`; nobody in the receiver).
pub(crate) trait SyncView {
    /// The writes are done; before waiting.
    fn applied(&mut self, _outcome: &SyncOutcome) -> Result<()> {
        Ok(())
    }
    /// Waiting for `tracker`'s objects starts.
    fn waiting(&mut self, _tracker: &Tracker, _timeout: Duration, _kind: Resource) -> Result<()> {
        Ok(())
    }
    /// An object waited for changed.
    fn progress(&mut self, _name: &str, _readiness: &Readiness) {}
    /// The wait is over.
    fn waited(&mut self, _outcome: &WaitOutcome, _kind: Resource) -> Result<()> {
        Ok(())
    }
}

/// A view that shows nothing (the receiver logs instead).
pub(crate) struct Unwatched;

impl SyncView for Unwatched {}

/// What applying one change did.
pub(super) struct Applying {
    /// Index into the plan's changes.
    pub(super) change: usize,
    pub(super) error: Option<String>,
    /// Create and update: the object right after the write (kept only when waiting or
    /// writing back).
    pub(super) written: Option<Written>,
}

pub(super) struct Written {
    /// The object waited for, when not the change's own (a rollout's canary object).
    pub(super) name: Option<String>,
    pub(super) generation: Option<i64>,
    pub(super) readiness: Readiness,
}

/// Applies a planned sync (the deletion guard has passed), records its Events, waits and
/// writes back as `options` ask, telling `view` as it goes.
pub(crate) fn apply(
    mut prepared: Prepared,
    config: &Config,
    options: &SyncOptions,
    view: &mut dyn SyncView,
) -> Result<SyncOutcome> {
    let clients = prepared.clients;
    let deploy = &config.deploy;
    let events = options.events && !options.dry_run;
    let recorder = Recorder::new(&clients.kube, &deploy.instance, events);
    let keep = options.wait.is_some() || options.write_back;
    // A WATCH after the writes starts from a version read before them.
    let wait_from = match (&options.wait, &prepared.listed_version) {
        (None, _) => String::new(),
        (Some(_), Some(v)) => v.clone(),
        (Some(_), None) => clients
            .executor
            .block_on(clients.kube.collection_version(&deploy.instance))?,
    };
    let applied = write_all(&prepared, config, options.dry_run, &recorder, keep);
    record_not_deployable(&prepared, config, &recorder);
    let plan = &prepared.plan;
    let failures: Vec<Failure> = applied
        .iter()
        .filter_map(|a| {
            let change = &plan.changes[a.change];
            a.error.as_ref().map(|e| Failure {
                action: change.action,
                name: change.name.clone(),
                error: e.clone(),
            })
        })
        .collect();
    let done = |action| plan.count(action) - failures.iter().filter(|f| f.action == action).count();
    let mut outcome = SyncOutcome {
        dry_run: options.dry_run,
        created: done(Action::Create),
        updated: done(Action::Update),
        deleted: done(Action::Delete),
        unchanged: plan.unchanged.len(),
        changes: plan.changes.len(),
        not_deployable: plan.errors.len(),
        rollouts: rollouts_written(plan, &applied),
        failures,
        ..SyncOutcome::default()
    };
    view.applied(&outcome)?;
    let mut tracker = written_objects(&prepared, &applied);
    if let Some(timeout) = options.wait {
        outcome.wait = wait_for(&prepared, config, &mut tracker, timeout, &wait_from, view)?;
    }
    if options.write_back && !options.dry_run {
        let states = std::mem::take(&mut prepared.states);
        outcome.write_back = Some(write_back(states, &prepared, config, &applied, &tracker)?);
    } else if options.write_back {
        log::info!("write-back skipped: a dry run persists nothing");
    }
    // Events are Kubernetes writes too.
    let mut requests = prepared.requests();
    requests.kube += recorder.sent();
    requests.kube_writes += recorder.sent();
    log::debug!(
        "requests: MLflow {}, Kubernetes {} ({} writes), {} Events",
        requests.mlflow,
        requests.kube,
        requests.kube_writes,
        recorder.sent()
    );
    outcome.requests = requests;
    Ok(outcome)
}

/// The objects created or updated, as written: what `--wait` follows.
fn written_objects(prepared: &Prepared, applied: &[Applying]) -> Tracker {
    let mut tracker = Tracker::default();
    for a in applied {
        let change = &prepared.plan.changes[a.change];
        if let (Some(w), Action::Create | Action::Update) = (&a.written, change.action) {
            let name = w.name.as_deref().unwrap_or(&change.name);
            tracker.add(name, w.generation, w.readiness.clone());
        }
    }
    tracker
}

/// The plan's line for a change ("iris v3 → v4 (stage Production): version 3 → 4"): the note
/// of its Event.
fn plan_line(prepared: &Prepared, change: &Change) -> String {
    let r = &prepared.registry;
    let what = describe(
        change.model(r),
        change.version(r),
        change.previous_version(),
        change.selector(r),
    );
    format!("{what}: {}", change.reason)
}

/// Writes one change: the body of a create or update is rendered now, so no more than
/// `concurrency` bodies exist at once. A rollout's step writes its canary objects first; the
/// canary objects of a rollout the change ends go after it. Returns what was written of the
/// object `--wait` follows.
async fn write_change(
    prepared: &Prepared<'_>,
    config: &Config,
    change: &Change,
    dry_run: bool,
) -> Result<Option<(Option<String>, Applied)>> {
    let kube = &prepared.clients.kube;
    let deploy = &config.deploy;
    let written = match change.action {
        Action::Create | Action::Update => {
            let entry = change
                .entry(&prepared.registry)
                .context("a change without its entry")?;
            let resolved = change
                .resolved
                .as_ref()
                .context("a change without its location")?;
            let (main, companions) = match &change.rollout {
                Some(r) => {
                    let b = rollout::bodies(r, entry, resolved, deploy, Timestamp::now())
                        .map_err(anyhow::Error::msg)?;
                    (b.main, b.companions)
                }
                None => {
                    let desired = render(entry, &resolved.location, &resolved.version_tags, deploy)
                        .map_err(anyhow::Error::msg)?;
                    (desired.object, Vec::new())
                }
            };
            let companions =
                rollout::apply_companions(kube, companions, &deploy.instance, dry_run).await?;
            let rv = change.resource_version();
            let applied = kube.apply(&change.name, rv, main, dry_run).await?;
            Some(match rollout::waited_name(change, deploy) {
                Some(name) => {
                    let canary = companions.into_iter().find(|(n, _)| *n == name);
                    (Some(name), canary.map_or(applied, |(_, a)| a))
                }
                None => (None, applied),
            })
        }
        Action::Delete => {
            kube.delete(
                &change.name,
                change.uid(),
                change.resource_version(),
                dry_run,
            )
            .await?;
            None
        }
    };
    rollout::delete_companions(kube, &change.cleanup, &deploy.instance, dry_run).await?;
    Ok(written)
}

/// The rollout steps, promotions and aborts among the changes written: every planned one but
/// those that failed (`applied` holds every failure, but a success only when kept).
fn rollouts_written(plan: &Plan, applied: &[Applying]) -> RolloutCounts {
    let failed: BTreeSet<usize> = applied
        .iter()
        .filter(|a| a.error.is_some())
        .map(|a| a.change)
        .collect();
    let written = plan
        .changes
        .iter()
        .enumerate()
        .filter(|(i, _)| !failed.contains(i));
    let mut counts = RolloutCounts::default();
    for kind in written.filter_map(|(_, c)| c.rollout.as_ref().map(|r| &r.kind)) {
        match kind {
            RolloutKind::Step { .. } => counts.steps += 1,
            RolloutKind::Promote => counts.promoted += 1,
            RolloutKind::Abort { .. } => counts.aborted += 1,
            RolloutKind::Clear | RolloutKind::Cleanup { .. } => {}
        }
    }
    counts
}

/// The Event of a change that was written.
fn reason_of(change: &Change) -> Reason {
    match (change.action, change.rollout.as_ref().map(|r| &r.kind)) {
        (_, Some(RolloutKind::Step { .. })) => Reason::RolloutStep,
        (_, Some(RolloutKind::Promote)) => Reason::RolloutPromoted,
        (_, Some(RolloutKind::Abort { .. })) => Reason::RolloutAborted,
        (Action::Create, _) => Reason::Created,
        (Action::Update, _) => Reason::Updated,
        (Action::Delete, _) => Reason::Deleted,
    }
}

/// Applies every change with bounded concurrency, recording an Event about each in the same
/// slot; one failure does not stop the others. Returns the failures and, with `keep`, what
/// waiting and write-back need of each written object (a plain sync of tens of thousands of
/// objects keeps nothing per success).
fn write_all(
    prepared: &Prepared,
    config: &Config,
    dry_run: bool,
    recorder: &Recorder,
    keep: bool,
) -> Vec<Applying> {
    let target = config.deploy.target;
    let changes = prepared.plan.changes.iter().enumerate();
    let mut applied: Vec<Applying> = prepared.clients.executor.block_on(
        stream::iter(changes)
            .map(|(i, change)| async move {
                let result = write_change(prepared, config, change, dry_run).await;
                let action = match change.action {
                    Action::Create => "Create",
                    Action::Update => "Update",
                    Action::Delete => "Delete",
                };
                let reason = reason_of(change);
                let line = plan_line(prepared, change);
                let (reason, note, uid) = match &result {
                    Ok(applied) => {
                        log::info!(
                            "{}{} {} ({})",
                            if dry_run { "[dry run] " } else { "" },
                            reason.past(),
                            change.name,
                            change.reason
                        );
                        let uid = applied
                            .as_ref()
                            .filter(|(other, _)| other.is_none())
                            .and_then(|(_, a)| a.uid.clone());
                        (reason, line, uid.or_else(|| change.uid().map(String::from)))
                    }
                    Err(e) => {
                        log::error!("{}: {e:#}", change.name);
                        let note = format!("{line}; failed: {e:#}");
                        (Reason::ApplyFailed, note, change.uid().map(String::from))
                    }
                };
                recorder
                    .record(Note {
                        reason,
                        action,
                        name: &change.name,
                        uid: uid.as_deref(),
                        note,
                    })
                    .await;
                let (error, written) = match result {
                    Err(e) => (Some(format!("{e:#}")), None),
                    Ok(applied) => (
                        None,
                        applied.filter(|_| keep).map(|(name, a)| Written {
                            name,
                            readiness: readiness_of(target, a.generation, &a.status),
                            generation: a.generation,
                        }),
                    ),
                };
                (error.is_some() || keep).then_some(Applying {
                    change: i,
                    error,
                    written,
                })
            })
            .buffer_unordered(config.concurrency)
            .filter_map(|applied| async move { applied })
            .collect(),
    );
    applied.sort_by_key(|a| a.change);
    applied
}

/// A Warning Event about each entry that cannot be deployed, regarding its object (which is
/// left as it is) or the name it would have.
fn record_not_deployable(prepared: &Prepared, config: &Config, recorder: &Recorder) {
    let plan = &prepared.plan;
    prepared.clients.executor.block_on(
        stream::iter(&plan.errors)
            .map(|e| {
                let what = describe(
                    Some(&e.model),
                    e.version.as_deref(),
                    None,
                    Some(&e.selector),
                );
                recorder.record(Note {
                    reason: Reason::NotDeployable,
                    action: "Sync",
                    name: &e.name,
                    uid: plan.held.get(&e.name).map(String::as_str),
                    note: format!("{what}: {}", e.message),
                })
            })
            .buffer_unordered(config.concurrency)
            .collect::<Vec<()>>(),
    );
}
