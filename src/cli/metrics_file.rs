//! `m2s sync --metrics-file PATH`: the run's metrics written for a textfile collector
//! (node-exporter's `--collector.textfile.directory`), atomically and whatever the outcome —
//! after a success, a failure, a configuration error, or when the run's deadline stops it.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::config::DeployConfig;
use crate::engine::apply::{SyncOutcome, SyncResult};
use crate::files::write_atomic;
use crate::present::textfile::{self, Changes, RunMetrics};

/// A run being recorded: where to write, the labels, and when it started.
#[derive(Debug, Clone)]
pub(crate) struct RunRecord {
    path: PathBuf,
    namespace: String,
    instance: String,
    started: Instant,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Whether a sync that got this far applied its plan: entries that cannot be deployed are
/// counted apart, not as a failure.
fn applied(outcome: &SyncOutcome) -> bool {
    outcome
        .results()
        .iter()
        .all(|r| matches!(r, SyncResult::Ok | SyncResult::NotDeployable))
}

impl RunRecord {
    /// Starts recording a run into `path`, labelled with the namespace and instance as far as
    /// they are known (the configuration may not be valid yet).
    pub(crate) fn start(path: PathBuf, namespace: &str, instance: &str) -> RunRecord {
        RunRecord {
            path,
            namespace: namespace.trim().to_string(),
            instance: instance.trim().to_string(),
            started: Instant::now(),
        }
    }

    /// The labels of the validated configuration.
    pub(crate) fn labelled(mut self, deploy: &DeployConfig) -> RunRecord {
        self.namespace = deploy.namespace.clone();
        self.instance = deploy.instance.clone();
        self
    }

    /// Writes the file for a run that ended with `ok` (whether the command succeeded) and,
    /// when it got that far, the sync's `outcome`.
    pub(crate) fn finish(&self, ok: bool, outcome: Option<&SyncOutcome>) -> Result<()> {
        let success = match outcome {
            Some(o) => applied(o),
            None => ok,
        };
        let finished = unix_now();
        let last_success = if success {
            finished
        } else {
            // A failed run keeps the last success the previous file recorded.
            std::fs::read_to_string(&self.path)
                .ok()
                .and_then(|text| textfile::last_success(&text))
                .unwrap_or(0.0)
        };
        let changes = outcome.map(|o| Changes {
            created: o.created,
            updated: o.updated,
            deleted: o.deleted,
            failed: o.failures.len(),
            not_deployable: o.not_deployable,
            rollouts: o.rollouts,
        });
        let metrics = RunMetrics {
            namespace: self.namespace.clone(),
            instance: self.instance.clone(),
            finished,
            duration: self.started.elapsed().as_secs_f64(),
            success,
            last_success,
            changes,
        };
        write_atomic(&self.path, textfile::render(&metrics).as_bytes())
            .context("writing the run's metrics (--metrics-file, M2S_METRICS_FILE)")
    }

    /// Writes the file of a failed run, logging rather than returning a problem (the run's
    /// own error is what the caller reports).
    pub(crate) fn failed(&self) {
        if let Err(e) = self.finish(false, None) {
            log::error!("{e:#}");
        }
    }
}

/// The namespace a sync would use before its configuration is checked: `--namespace`, else
/// `M2S_NAMESPACE`, else the old `M2S_SELDON_DEPLOYMENT_NS` (for the labels of a run that
/// fails on its configuration).
pub(crate) fn namespace_given(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var("M2S_NAMESPACE").ok())
        .or_else(|| std::env::var("M2S_SELDON_DEPLOYMENT_NS").ok())
        .unwrap_or_default()
}
