//! What a sync does after applying, when asked: `--wait` for the written objects, and writing
//! their state back to MLflow.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};

use super::apply::{Applying, SyncView};
use super::wait::{self, Tracker, WaitOutcome, WaitSettings};
use super::writeback;
use super::Prepared;
use crate::config::Config;
use crate::status::ObjectState;
use crate::targets::Readiness;

/// `--wait`: follows the written objects from `from` (a LIST's resourceVersion read before the
/// writes); `None` when nothing was created or updated.
pub(super) fn wait_for(
    prepared: &Prepared,
    config: &Config,
    tracker: &mut Tracker,
    timeout: Duration,
    from: &str,
    view: &mut dyn SyncView,
) -> Result<Option<WaitOutcome>> {
    let kind = config.deploy.target.resource();
    view.waiting(tracker, timeout, kind)?;
    if tracker.is_empty() {
        return Ok(None);
    }
    let settings = WaitSettings {
        timeout,
        chunk: (config.request_timeout * 2 / 3).max(Duration::from_secs(1)),
        from: from.to_string(),
    };
    let clients = prepared.clients;
    clients.executor.block_on(wait::wait(
        &clients.kube,
        &config.deploy.instance,
        config.deploy.target,
        tracker,
        &settings,
        |name, readiness| view.progress(name, readiness),
    ))?;
    let outcome = tracker.outcome(timeout);
    view.waited(&outcome, kind)?;
    Ok(Some(outcome))
}

/// What write-back did.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteBackOutcome {
    pub(crate) set: usize,
    pub(crate) deleted: usize,
    /// One message per refused write.
    pub(crate) failures: Vec<String>,
}

/// Write-back after the run. The Kubernetes side is done by now and is never undone; a read
/// that fails is an error, a refused write is reported in the outcome.
pub(super) fn write_back(
    states: Vec<ObjectState>,
    prepared: &Prepared,
    config: &Config,
    applied: &[Applying],
    tracker: &Tracker,
) -> Result<WriteBackOutcome> {
    let waited: BTreeMap<&str, &Readiness> = tracker.states().collect();
    let applied: Vec<(usize, Readiness)> = applied
        .iter()
        .filter(|a| a.error.is_none())
        .map(|a| {
            let name = &*prepared.plan.changes[a.change].name;
            let readiness = match (waited.get(name), &a.written) {
                (Some(r), _) => (*r).clone(),
                (None, Some(w)) => w.readiness.clone(),
                (None, None) => Readiness::pending(),
            };
            (a.change, readiness)
        })
        .collect();
    let (served, left) = writeback::after_run(&prepared.registry, &prepared.plan, states, &applied);
    let outcome = writeback::write_back(
        &prepared.clients.mlflow,
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
        outcome.set,
        outcome.deleted
    );
    for failure in outcome.failures.iter().take(super::apply::LISTED) {
        log::error!("write-back: {failure}");
    }
    Ok(outcome)
}
