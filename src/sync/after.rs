//! What a sync does after applying, when asked: `--wait` for the written objects, and writing
//! their state back to MLflow.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};

use super::Outcome;
use crate::config::Config;
use crate::engine::Prepared;
use crate::targets::Readiness;
use crate::wait::{self, Tracker};
use crate::writeback;

/// `--wait`: follows the written objects; a problem naming each one that failed or was not
/// ready in time.
pub(super) fn wait_for(
    prepared: &Prepared,
    config: &Config,
    tracker: &mut Tracker,
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<Option<String>> {
    let resource = config.deploy.target.resource();
    if tracker.is_empty() {
        writeln!(
            out,
            "Nothing to wait for: no object was created or updated."
        )?;
        return Ok(None);
    }
    writeln!(
        out,
        "Waiting up to {}s for {} to be Available:",
        timeout.as_secs(),
        resource.count(tracker.len())
    )?;
    for (name, r) in tracker.states() {
        writeln!(out, "{}", wait::describe(name, r))?;
    }
    out.flush()?;
    let settings = wait::Settings {
        timeout,
        chunk: (config.request_timeout * 2 / 3).max(Duration::from_secs(1)),
    };
    prepared.runtime.block_on(wait::wait(
        &prepared.kube,
        &config.deploy.instance,
        config.deploy.target,
        tracker,
        &settings,
        |line| {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        },
    ))?;
    let outcome = tracker.outcome();
    if outcome.succeeded() {
        let n = outcome.available.len();
        writeln!(
            out,
            "{} {} Available.",
            if n == 1 { "The" } else { "All" },
            if n == 1 {
                format!("{} is", resource.kind)
            } else {
                format!("{} are", resource.count(n))
            }
        )?;
        return Ok(None);
    }
    let mut names: Vec<String> = outcome
        .failed
        .iter()
        .map(|(name, message)| format!("{name} is Failed ({message})"))
        .collect();
    names.extend(outcome.not_ready.iter().map(|(name, r)| {
        let why = r
            .message
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        format!(
            "{name} is still {}{why} after {}s (--wait-timeout)",
            r.state,
            timeout.as_secs()
        )
    }));
    let bad = outcome.failed.len() + outcome.not_ready.len();
    let message = format!(
        "{bad} of {} not Available: {}",
        resource.count(tracker.len()),
        names.join("; ")
    );
    writeln!(out, "{message}.")?;
    Ok(Some(message))
}

/// Write-back after the run; a problem when a tag write was refused. The Kubernetes side is
/// done by now and is never undone.
pub(super) fn write_back(
    states: Vec<crate::status::ObjectState>,
    prepared: &Prepared,
    config: &Config,
    outcomes: &[Outcome],
    tracker: &Tracker,
) -> Result<Option<String>> {
    let waited: std::collections::BTreeMap<&str, &Readiness> = tracker.states().collect();
    let applied: Vec<(usize, Readiness)> = outcomes
        .iter()
        .filter(|o| o.error.is_none())
        .map(|o| {
            let name = &*prepared.plan.changes[o.change].name;
            let readiness = match (waited.get(name), &o.written) {
                (Some(r), _) => (*r).clone(),
                (None, Some(w)) => w.readiness.clone(),
                (None, None) => Readiness::pending(),
            };
            (o.change, readiness)
        })
        .collect();
    let (served, left) = writeback::after_run(&prepared.registry, &prepared.plan, states, &applied);
    let report = writeback::write_back(
        &prepared.mlflow,
        &prepared.registry,
        &config.deploy.namespace,
        &served,
        &left,
        config.concurrency,
    )
    .context(
        "write-back: reading model versions from MLflow (the Kubernetes objects are as applied)",
    )?;
    log::info!(
        "write-back: {} tags set, {} removed in MLflow",
        report.set,
        report.deleted
    );
    if report.failures.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "write-back: {} of {} tag writes refused (the Kubernetes objects are as applied): {}",
        report.failures.len(),
        report.failures.len() + report.set + report.deleted,
        report.failures.join("; ")
    )))
}
