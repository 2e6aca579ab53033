//! `m2s sync` once the plan is made: apply every change (with an Event about each), then
//! optionally wait for the written objects and write their state back to MLflow.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::{stream, StreamExt};

mod after;

use crate::cli::{GuardArgs, SyncArgs};
use crate::config::Config;
use crate::desired::render;
use crate::engine::{deletion_guard, not_deployable, Prepared, Requests, Scope};
use crate::events::{Note, Reason, Recorder};
use crate::k8s::Applied;
use crate::output::{describe, render_text, summary_line};
use crate::plan::{Action, Change};
use crate::targets::{readiness_of, Readiness};
use crate::wait::Tracker;
use after::{wait_for, write_back};

/// What `sync` does beyond applying.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub dry_run: bool,
    /// `--wait`: how long to wait for the written objects.
    pub wait: Option<Duration>,
    pub events: bool,
    pub write_back: bool,
}

impl SyncOptions {
    /// The options of `args`, checked against the run's deadline.
    pub fn from_args(args: &SyncArgs, config: &Config) -> Result<SyncOptions> {
        let wait = if args.wait {
            if args.dry_run {
                bail!("--wait (M2S_WAIT) cannot be combined with --dry-run (M2S_DRY_RUN): a dry run persists nothing to wait for");
            }
            let timeout = Duration::from_secs(args.wait_timeout);
            if args.wait_timeout == 0 || timeout >= config.run_timeout {
                bail!(
                    "--wait-timeout (M2S_WAIT_TIMEOUT) must be at least 1 second and below the run's deadline M2S_RUN_TIMEOUT ({} s), not {}",
                    config.run_timeout.as_secs(),
                    args.wait_timeout
                );
            }
            Some(timeout)
        } else {
            None
        };
        Ok(SyncOptions {
            dry_run: args.dry_run,
            wait,
            events: args.feedback.events,
            write_back: args.feedback.write_back,
        })
    }
}

/// What applying one change did.
struct Outcome {
    /// Index into the plan's changes.
    change: usize,
    error: Option<String>,
    /// Create and update: the object right after the write (kept only when waiting or
    /// writing back).
    written: Option<Written>,
}

struct Written {
    generation: Option<i64>,
    resource_version: Option<String>,
    readiness: Readiness,
}

/// Prints the plan, applies it, waits and writes back as asked; the exit code, or an error
/// naming every problem (failed writes, objects not ready, refused tag writes, entries that
/// cannot be deployed).
pub fn sync(
    prepared: Prepared,
    config: &Config,
    options: &SyncOptions,
    guard: &GuardArgs,
    scope: &Scope,
) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let (plan, registry) = (&prepared.plan, &prepared.registry);
    write!(stdout, "{}", render_text(plan, registry, &config.deploy))?;
    stdout.flush()?;
    deletion_guard(plan, config, guard, scope)?;
    let report = write(prepared, config, options, &mut stdout)?;
    if !report.problems.is_empty() {
        bail!(report.problems.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

/// What the writes of a sync came to.
#[derive(Debug, Default)]
pub struct Report {
    /// Created, updated, deleted.
    pub done: [usize; 3],
    pub failed: usize,
    pub unchanged: usize,
    pub not_deployable: usize,
    /// Everything that makes the sync fail, in words.
    pub problems: Vec<String>,
    pub requests: Requests,
}

/// Applies a planned sync (the deletion guard has passed), records its Events, waits and
/// writes back as `options` ask; the summary line and the waiting go to `out`.
pub fn write(
    mut prepared: Prepared,
    config: &Config,
    options: &SyncOptions,
    out: &mut dyn Write,
) -> Result<Report> {
    let (plan, deploy) = (&prepared.plan, &config.deploy);
    let events = options.events && !options.dry_run;
    let recorder = Recorder::new(&prepared.kube, &deploy.instance, events);
    let keep = options.wait.is_some() || options.write_back;
    let outcomes = apply(&prepared, config, options.dry_run, &recorder, keep);
    record_not_deployable(&prepared, config, &recorder);
    let failures: Vec<(Action, String)> = outcomes
        .iter()
        .filter_map(|o| {
            let change = &plan.changes[o.change];
            o.error
                .as_ref()
                .map(|e| (change.action, format!("{}: {e}", change.name)))
        })
        .collect();
    let failed = |action| failures.iter().filter(|(a, _)| *a == action).count();
    let done = [Action::Create, Action::Update, Action::Delete]
        .map(|action| plan.count(action) - failed(action));
    writeln!(
        out,
        "{}",
        summary_line(plan, done, failures.len(), options.dry_run)
    )?;
    out.flush()?;
    let mut problems = Vec::new();
    if !failures.is_empty() {
        let n = plan.changes.len();
        problems.push(format!(
            "{} of {n} {} failed: {}",
            failures.len(),
            if n == 1 { "change" } else { "changes" },
            failures
                .iter()
                .map(|(_, f)| f.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let mut tracker = written_objects(&prepared, &outcomes);
    if let Some(timeout) = options.wait {
        if let Some(problem) = wait_for(&prepared, config, &mut tracker, timeout, out)? {
            problems.push(problem);
        }
    }
    if options.write_back && !options.dry_run {
        let states = std::mem::take(&mut prepared.states);
        if let Some(problem) = write_back(states, &prepared, config, &outcomes, &tracker)? {
            problems.push(problem);
        }
    } else if options.write_back {
        log::info!("write-back skipped: a dry run persists nothing");
    }
    let plan = &prepared.plan;
    log::debug!(
        "requests: MLflow {}, Kubernetes {} ({} writes), {} Events",
        prepared.mlflow.requests_sent(),
        prepared.kube.requests_sent(),
        prepared.kube.writes_sent(),
        recorder.sent()
    );
    if !plan.errors.is_empty() {
        problems.push(not_deployable(plan));
    }
    // Events are Kubernetes writes too.
    let mut requests = prepared.requests();
    requests.kube += recorder.sent();
    requests.kube_writes += recorder.sent();
    Ok(Report {
        done,
        failed: failures.len(),
        unchanged: plan.unchanged.len(),
        not_deployable: plan.errors.len(),
        problems,
        requests,
    })
}

/// The objects created or updated, as written: what `--wait` follows.
fn written_objects(prepared: &Prepared, outcomes: &[Outcome]) -> Tracker {
    let mut tracker = Tracker::default();
    for o in outcomes {
        let change = &prepared.plan.changes[o.change];
        if let (Some(w), Action::Create | Action::Update) = (&o.written, change.action) {
            tracker.add(
                &change.name,
                w.generation,
                w.resource_version.clone(),
                w.readiness.clone(),
            );
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
    prepared: &Prepared,
    config: &Config,
    change: &Change,
    dry_run: bool,
) -> Result<Option<Applied>> {
    let kube = &prepared.kube;
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
            kube.apply(change, desired.object, dry_run).await.map(Some)
        }
        Action::Delete => kube.delete(change, dry_run).await.map(|()| None),
    }
}

/// Applies every change with bounded concurrency, recording an Event about each in the same
/// slot; one failure does not stop the others. Returns the failures and, with `keep`, what
/// waiting and write-back need of each written object (a plain sync of tens of thousands of
/// objects keeps nothing per success).
fn apply(
    prepared: &Prepared,
    config: &Config,
    dry_run: bool,
    recorder: &Recorder,
    keep: bool,
) -> Vec<Outcome> {
    let target = config.deploy.target;
    let changes = prepared.plan.changes.iter().enumerate();
    let mut outcomes: Vec<Outcome> = prepared.runtime.block_on(
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
                            resource_version: a.resource_version,
                        }),
                    ),
                };
                (error.is_some() || keep).then_some(Outcome {
                    change: i,
                    error,
                    written,
                })
            })
            .buffer_unordered(config.concurrency)
            .filter_map(|outcome| async move { outcome })
            .collect(),
    );
    outcomes.sort_by_key(|o| o.change);
    outcomes
}

/// A Warning Event about each entry that cannot be deployed, regarding its object (which is
/// left as it is) or the name it would have.
fn record_not_deployable(prepared: &Prepared, config: &Config, recorder: &Recorder) {
    let plan = &prepared.plan;
    prepared.runtime.block_on(
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
