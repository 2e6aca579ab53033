//! A sync once the plan is made: apply every change (with an Event about each), then, when
//! asked, wait for the written objects and write their state back to MLflow. The result is a
//! [`SyncOutcome`]: exit codes, metrics, logs and Events read it, nothing parses strings.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::{stream, StreamExt};

use super::after::{wait_for, write_back, WriteBackOutcome};
use super::wait::{Tracker, WaitOutcome};
use super::{Prepared, Requests};
use crate::config::Config;
use crate::desired::render;
use crate::k8s::{Applied, Note, Reason, Recorder};
use crate::plan::{describe, Action, Change};
use crate::targets::{readiness_of, Readiness, Resource};

/// Error lines that list objects name at most this many, then say how many more.
pub(crate) const LISTED: usize = 10;

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

/// A change that could not be written.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) action: Action,
    pub(crate) name: Arc<str>,
    pub(crate) error: String,
}

/// What a sync came to, in kinds m2s counts and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SyncResult {
    Ok,
    /// Entries the registry asks for that cannot be deployed (their objects are left alone).
    NotDeployable,
    /// Written objects that did not become Available in time (`--wait`).
    NotAvailable,
    /// Tag writes to MLflow refused (the Kubernetes side is done).
    WriteBackFailed,
    /// Changes not written.
    ApplyFailed,
}

impl SyncResult {
    /// The `result` label of the receiver's metrics and logs.
    pub(crate) fn label(self) -> &'static str {
        match self {
            SyncResult::Ok => "ok",
            SyncResult::NotDeployable => "not_deployable",
            SyncResult::NotAvailable => "not_available",
            SyncResult::WriteBackFailed => "write_back_failed",
            SyncResult::ApplyFailed => "failed",
        }
    }
}

/// What the writes of one sync did.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncOutcome {
    pub(crate) dry_run: bool,
    pub(crate) created: usize,
    pub(crate) updated: usize,
    pub(crate) deleted: usize,
    pub(crate) unchanged: usize,
    /// Changes planned (written or failed).
    pub(crate) changes: usize,
    pub(crate) failures: Vec<Failure>,
    pub(crate) not_deployable: usize,
    /// `--wait`'s result, when it waited for something.
    pub(crate) wait: Option<WaitOutcome>,
    /// Write-back's result, when it ran.
    pub(crate) write_back: Option<WriteBackOutcome>,
    pub(crate) requests: Requests,
}

impl SyncOutcome {
    /// Every kind of problem this sync had, the worst last; `[Ok]` when none.
    pub(crate) fn results(&self) -> Vec<SyncResult> {
        let mut results = Vec::new();
        if self.not_deployable > 0 {
            results.push(SyncResult::NotDeployable);
        }
        if self.wait.as_ref().is_some_and(|w| !w.succeeded()) {
            results.push(SyncResult::NotAvailable);
        }
        if self
            .write_back
            .as_ref()
            .is_some_and(|w| !w.failures.is_empty())
        {
            results.push(SyncResult::WriteBackFailed);
        }
        if !self.failures.is_empty() {
            results.push(SyncResult::ApplyFailed);
        }
        if results.is_empty() {
            results.push(SyncResult::Ok);
        }
        results
    }

    /// The worst of [`results`](SyncOutcome::results).
    pub(crate) fn result(&self) -> SyncResult {
        *self.results().last().expect("at least Ok")
    }

    /// Each problem in words, objects listed up to [`LISTED`] (with how many more).
    pub(crate) fn problems(&self, kind: Resource) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.failures.is_empty() {
            let n = self.changes;
            problems.push(format!(
                "{} of {n} {} failed: {}",
                self.failures.len(),
                if n == 1 { "change" } else { "changes" },
                first_of(
                    self.failures
                        .iter()
                        .map(|f| format!("{}: {}", f.name, f.error)),
                    self.failures.len(),
                    "; "
                )
            ));
        }
        if let Some(w) = self.wait.as_ref().filter(|w| !w.succeeded()) {
            problems.push(not_available(w, kind));
        }
        if let Some(w) = self.write_back.as_ref().filter(|w| !w.failures.is_empty()) {
            problems.push(format!(
                "write-back: {} of {} tag writes refused (the Kubernetes objects are as applied): {}",
                w.failures.len(),
                w.failures.len() + w.set + w.deleted,
                first_of(w.failures.iter().cloned(), w.failures.len(), "; ")
            ));
        }
        if self.not_deployable > 0 {
            let n = self.not_deployable;
            problems.push(format!(
                "{n} registry {} cannot be deployed (listed above)",
                if n == 1 { "entry" } else { "entries" }
            ));
        }
        problems
    }
}

/// The first [`LISTED`] of `items` joined with `sep`, and how many more there are.
pub(crate) fn first_of(items: impl Iterator<Item = String>, total: usize, sep: &str) -> String {
    let shown: Vec<String> = items.take(LISTED).collect();
    let more = total.saturating_sub(shown.len());
    let list = shown.join(sep);
    if more > 0 {
        format!("{list}{sep}and {more} more")
    } else {
        list
    }
}

/// `--wait`'s problem, naming each object that failed or was not ready in time.
pub(crate) fn not_available(w: &WaitOutcome, kind: Resource) -> String {
    let failed = w
        .failed
        .iter()
        .map(|(name, message)| format!("{name} is Failed ({message})"));
    let slow = w.not_ready.iter().map(|(name, r)| {
        let why = r
            .message
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        format!(
            "{name} is still {}{why} after {}s (--wait-timeout)",
            r.state,
            w.timeout.as_secs()
        )
    });
    let bad = w.failed.len() + w.not_ready.len();
    let all = bad + w.available.len();
    format!(
        "{bad} of {} not Available: {}",
        kind.count(all),
        first_of(failed.chain(slow), bad, "; ")
    )
}

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
            tracker.add(&change.name, w.generation, w.readiness.clone());
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
/// `concurrency` bodies exist at once.
async fn write_change(
    prepared: &Prepared<'_>,
    config: &Config,
    change: &Change,
    dry_run: bool,
) -> Result<Option<Applied>> {
    let kube = &prepared.clients.kube;
    match change.action {
        Action::Create | Action::Update => {
            let entry = change
                .entry(&prepared.registry)
                .context("a change without its entry")?;
            let resolved = change
                .resolved
                .as_ref()
                .context("a change without its location")?;
            let desired = render(
                entry,
                &resolved.location,
                &resolved.version_tags,
                &config.deploy,
            )
            .map_err(anyhow::Error::msg)?;
            let rv = change.resource_version();
            kube.apply(&change.name, rv, desired.object, dry_run)
                .await
                .map(Some)
        }
        Action::Delete => kube
            .delete(
                &change.name,
                change.uid(),
                change.resource_version(),
                dry_run,
            )
            .await
            .map(|()| None),
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
                let (action, reason) = match change.action {
                    Action::Create => ("Create", Reason::Created),
                    Action::Update => ("Update", Reason::Updated),
                    Action::Delete => ("Delete", Reason::Deleted),
                };
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
                        let uid = applied.as_ref().and_then(|a| a.uid.clone());
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
                        applied.filter(|_| keep).map(|a| Written {
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

#[cfg(test)]
mod tests;
