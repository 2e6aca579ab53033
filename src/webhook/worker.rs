//! The sync thread: the only one that syncs, so two syncs never write at once. It runs what
//! the [`Scheduler`] hands it, with one [`Session`] for the life of the process (connections
//! are reused), outside the async runtime (MLflow's client is blocking).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use super::metrics::{Metrics, SyncRecord};
use super::queue::Scheduler;
use crate::cli::GuardArgs;
use crate::config::Config;
use crate::engine::{self, deletion_guard, Scope, Session};
use crate::plan::Action;

pub struct Worker {
    pub session: Session,
    pub config: Arc<Config>,
    pub scheduler: Arc<Scheduler>,
    pub metrics: Arc<Metrics>,
    pub guard: GuardArgs,
    pub dry_run: bool,
}

/// What one sync did.
struct Outcome {
    result: &'static str,
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
        let before = self.session.requests();
        self.metrics.sync_started();
        let outcome = self.attempt(scope);
        let duration = started.elapsed();
        let requests = self.session.requests().since(before);
        let model = model_name(scope);
        let record = |o: &Outcome| SyncRecord {
            kind: scope.kind(),
            result: o.result,
            duration,
            requests,
            created: o.created,
            updated: o.updated,
            deleted: o.deleted,
        };
        let ms = duration.as_millis() as u64;
        let (mlflow, kube, writes) = (requests.mlflow, requests.kube, requests.kube_writes);
        match &outcome {
            Ok(o) => {
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
                    mlflow_requests = mlflow, kube_requests = kube, kube_writes = writes,
                    error = error.as_str();
                    "sync failed; the next full sync retries"
                );
            }
        }
        outcome.is_ok_and(|o| o.result != "failed")
    }

    fn attempt(&mut self, scope: &Scope) -> Result<Outcome> {
        let config = &*self.config;
        let prepared = engine::prepare(&mut self.session, config, scope)?;
        let plan = &prepared.plan;
        if prepared.model_absent {
            log::info!(
                model = model_name(scope);
                "model not returned by MLflow (deleted, renamed or outside M2S_MODEL_FILTER): nothing written; the periodic full sync handles its deployments"
            );
        }
        for e in &plan.errors {
            log::warn!(
                object = e.name.as_str(), model = e.model.as_str(), selector:% = e.selector;
                "{}", e.message
            );
        }
        deletion_guard(plan, config, &self.guard, scope)?;
        let failures = engine::apply(&self.session, &prepared, config, self.dry_run);
        let result = if !failures.is_empty() {
            for f in &failures {
                log::error!("{f}");
            }
            "failed"
        } else if prepared.model_absent {
            "model_absent"
        } else if !plan.errors.is_empty() {
            "not_deployable"
        } else {
            "ok"
        };
        Ok(Outcome {
            result,
            created: plan.count(Action::Create),
            updated: plan.count(Action::Update),
            deleted: plan.count(Action::Delete),
            unchanged: plan.unchanged.len(),
            not_deployable: plan.errors.len(),
        })
    }
}

fn model_name(scope: &Scope) -> &str {
    match scope {
        Scope::Model { name, .. } => name,
        Scope::All => "",
    }
}
