//! The sync thread: the only one that syncs, so two syncs never write at once. It runs what
//! the [`Scheduler`] hands it, outside the async runtime (MLflow's client is blocking), each
//! sync with clients of its own.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use super::metrics::{Metrics, SyncRecord};
use super::queue::Scheduler;
use crate::cli::GuardArgs;
use crate::config::Config;
use crate::engine::{self, deletion_guard, Requests, Scope};
use crate::sync::{self, SyncOptions};

pub struct Worker {
    /// Dry run, Events and write-back as for `m2s sync` (no waiting).
    pub options: SyncOptions,
    pub config: Arc<Config>,
    pub scheduler: Arc<Scheduler>,
    pub metrics: Arc<Metrics>,
    pub guard: GuardArgs,
}

/// What one sync did.
struct Outcome {
    result: &'static str,
    requests: Requests,
    created: usize,
    updated: usize,
    deleted: usize,
    unchanged: usize,
    not_deployable: usize,
}

/// Ends the process if the sync thread panics: a receiver that acknowledges events nobody
/// will sync must not go on looking healthy.
struct ExitOnPanic;

impl Drop for ExitOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            log::error!("the sync thread panicked; exiting");
            std::process::exit(1);
        }
    }
}

impl Worker {
    pub fn run(mut self) {
        let _guard = ExitOnPanic;
        while let Some((scope, covered)) = self.scheduler.next() {
            self.metrics.queued(self.scheduler.waiting());
            let ok = self.sync(&scope);
            if scope == Scope::All {
                self.scheduler.full_done(ok, covered);
            }
            self.metrics.queued(self.scheduler.waiting());
        }
    }

    /// Runs one sync and reports it (log line and metrics); whether it succeeded.
    fn sync(&mut self, scope: &Scope) -> bool {
        let started = Instant::now();
        self.metrics.sync_started();
        let outcome = self.attempt(scope);
        let duration = started.elapsed();
        let model = model_name(scope);
        let record = |o: &Outcome| SyncRecord {
            kind: scope.kind(),
            result: o.result,
            duration,
            requests: o.requests,
            created: o.created,
            updated: o.updated,
            deleted: o.deleted,
        };
        let ms = duration.as_millis() as u64;
        match &outcome {
            Ok(o) => {
                let r = o.requests;
                let (mlflow, kube, writes) = (r.mlflow, r.kube, r.kube_writes);
                self.metrics.sync_finished(&record(o));
                let (c, u, d, n, e) = (
                    o.created,
                    o.updated,
                    o.deleted,
                    o.unchanged,
                    o.not_deployable,
                );
                log::info!(
                    kind = scope.kind(), model, result = o.result, duration_ms = ms,
                    created = c, updated = u, deleted = d, unchanged = n, not_deployable = e,
                    mlflow_requests = mlflow, kube_requests = kube, kube_writes = writes;
                    "sync finished"
                );
            }
            Err(e) => {
                let failed = Outcome {
                    result: "failed",
                    requests: Requests::default(),
                    created: 0,
                    updated: 0,
                    deleted: 0,
                    unchanged: 0,
                    not_deployable: 0,
                };
                self.metrics.sync_finished(&record(&failed));
                let error = format!("{e:#}");
                log::error!(
                    kind = scope.kind(), model, result = "failed", duration_ms = ms,
                    error = error.as_str();
                    "sync failed; the next full sync retries"
                );
            }
        }
        outcome.is_ok_and(|o| o.result != "failed")
    }

    fn attempt(&mut self, scope: &Scope) -> Result<Outcome> {
        let config = &*self.config;
        // Write-back needs every object's state: the periodic full syncs do it.
        let mut options = self.options.clone();
        options.write_back &= *scope == Scope::All;
        let prepared = engine::prepare(config, scope, options.write_back)?;
        if prepared.model_absent {
            log::info!(
                model = model_name(scope);
                "model not returned by MLflow (deleted, renamed or outside M2S_MODEL_FILTER): nothing written; the periodic full sync handles its deployments"
            );
            return Ok(Outcome {
                result: "model_absent",
                requests: prepared.requests(),
                created: 0,
                updated: 0,
                deleted: 0,
                unchanged: 0,
                not_deployable: 0,
            });
        }
        for e in &prepared.plan.errors {
            log::warn!(
                object = e.name.as_str(), model = e.model.as_str(), selector:% = e.selector;
                "{}", e.message
            );
        }
        deletion_guard(&prepared.plan, config, &self.guard, scope)?;
        let report = sync::write(prepared, config, &options, &mut std::io::sink())?;
        let result = if report.failed > 0 {
            for problem in &report.problems {
                log::error!("{problem}");
            }
            "failed"
        } else if !report.problems.is_empty() && report.not_deployable == 0 {
            // A refused write-back: the Kubernetes side is done.
            for problem in &report.problems {
                log::error!("{problem}");
            }
            "failed"
        } else if report.not_deployable > 0 {
            "not_deployable"
        } else {
            "ok"
        };
        let [created, updated, deleted] = report.done;
        Ok(Outcome {
            result,
            requests: report.requests,
            created,
            updated,
            deleted,
            unchanged: report.unchanged,
            not_deployable: report.not_deployable,
        })
    }
}

fn model_name(scope: &Scope) -> &str {
    match scope {
        Scope::Model { name, .. } => name,
        Scope::All => "",
    }
}
