//! The sync thread: the only one of a replica that syncs, so two of its syncs never write at
//! once. It runs what the [`Scheduler`] hands it, outside the async runtime (MLflow's client is
//! blocking), with the replica's one set of clients.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use super::metrics::{Metrics, SyncRecord};
use super::queue::Scheduler;
use crate::config::Config;
use crate::engine::apply::{self, SyncOptions, SyncOutcome, SyncResult, Unwatched};
use crate::engine::Guard;
use crate::engine::{self, deletion_guard, Clients, Requests, Scope};

pub(crate) struct Worker {
    /// Dry run, Events and write-back as for `m2s sync` (no waiting).
    pub(crate) options: SyncOptions,
    pub(crate) config: Arc<Config>,
    pub(crate) clients: Clients,
    pub(crate) scheduler: Arc<Scheduler>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) guard: Guard,
}

/// What one sync came to, as the receiver counts it.
enum Finished {
    /// MLflow did not return the model (deleted, renamed, outside the filter): nothing written.
    ModelAbsent(Requests),
    Synced(Box<SyncOutcome>),
}

impl Worker {
    pub(crate) fn run(self) {
        while let Some((scope, covered)) = self.scheduler.next() {
            self.metrics.queued(self.scheduler.waiting());
            let ok = self.sync(&scope);
            if scope == Scope::All {
                self.scheduler.full_done(ok, covered);
            }
            self.metrics.queued(self.scheduler.waiting());
        }
    }

    /// Runs one sync and reports it (log lines and metrics); whether it succeeded.
    fn sync(&self, scope: &Scope) -> bool {
        let started = Instant::now();
        self.metrics.sync_started();
        let finished = self.attempt(scope);
        let duration = started.elapsed();
        let ms = duration.as_millis() as u64;
        let (kind, model) = (scope.kind(), scope.model_name());
        let mut record = SyncRecord {
            kind,
            result: "failed",
            duration,
            requests: Requests::default(),
            created: 0,
            updated: 0,
            deleted: 0,
        };
        let ok = match &finished {
            Ok(Finished::ModelAbsent(requests)) => {
                record.result = "model_absent";
                record.requests = *requests;
                log::info!(
                    kind, model, result = "model_absent", duration_ms = ms;
                    "model not returned by MLflow (deleted, renamed or outside M2S_MODEL_FILTER): nothing written; the periodic full sync handles its deployments"
                );
                true
            }
            Ok(Finished::Synced(o)) => {
                let result = o.result();
                record.result = result.label();
                record.requests = o.requests;
                (record.created, record.updated, record.deleted) =
                    (o.created, o.updated, o.deleted);
                let r = o.requests;
                log::info!(
                    kind, model, result = result.label(), duration_ms = ms,
                    created = o.created, updated = o.updated, deleted = o.deleted,
                    unchanged = o.unchanged, failed = o.failures.len(),
                    not_deployable = o.not_deployable, mlflow_requests = r.mlflow,
                    kube_requests = r.kube, kube_writes = r.kube_writes;
                    "sync finished"
                );
                for problem in o.problems(self.config.deploy.target.resource()) {
                    log::error!(kind, model; "{problem}");
                }
                !matches!(
                    result,
                    SyncResult::ApplyFailed | SyncResult::WriteBackFailed
                )
            }
            Err(e) => {
                let error = format!("{e:#}");
                log::error!(
                    kind, model, result = "failed", duration_ms = ms, error = error.as_str();
                    "sync failed; the next full sync retries"
                );
                false
            }
        };
        self.metrics.sync_finished(&record);
        ok
    }

    fn attempt(&self, scope: &Scope) -> Result<Finished> {
        let config = &*self.config;
        // Write-back needs every object's state: the periodic full syncs do it.
        let mut options = self.options.clone();
        options.write_back &= *scope == Scope::All;
        let prepared = engine::prepare(&self.clients, config, scope, options.write_back)?;
        if prepared.model_absent {
            return Ok(Finished::ModelAbsent(prepared.requests()));
        }
        for e in &prepared.plan.errors {
            log::warn!(
                object = e.name.as_str(), model = e.model.as_str(), selector:% = e.selector;
                "{}", e.message
            );
        }
        deletion_guard(&prepared.plan, config, self.guard, scope)?;
        let outcome = apply::apply(prepared, config, &options, &mut Unwatched)?;
        Ok(Finished::Synced(Box::new(outcome)))
    }
}
