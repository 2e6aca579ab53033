//! The sync thread of a replica: it runs what the [`Scheduler`] hands it, one sync at a time,
//! each on a thread of its own with the replica's clients (outside the async runtime: MLflow's
//! client is blocking). A sync past its deadline (`M2S_SYNC_TIMEOUT`), or a full sync whose
//! replica stops leading, is abandoned: its clients send nothing more, it counts as failed, and
//! the next sync starts. What it wrote stays; each write is one request that carries the
//! resourceVersion or UID it was planned on, so a late one cannot undo a newer sync's.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::leader::Leadership;
use super::metrics::{Metrics, SyncRecord};
use super::queue::{self, Scheduler};
use crate::cancel::Cancel;
use crate::config::Config;
use crate::engine::apply::{self, SyncOptions, SyncOutcome, SyncResult, Unwatched};
use crate::engine::{self, deletion_guard, Clients, Guard, Requests, Scope};

/// How often a waiting worker looks whether its full sync's replica still leads.
const LOOK: Duration = Duration::from_millis(200);

pub(crate) struct Worker {
    /// Dry run, Events and write-back as for `m2s sync` (no waiting).
    pub(crate) options: SyncOptions,
    pub(crate) config: Arc<Config>,
    pub(crate) clients: Arc<Clients>,
    pub(crate) scheduler: Arc<Scheduler>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) leadership: Arc<Leadership>,
    pub(crate) guard: Guard,
    /// A sync running longer is abandoned.
    pub(crate) deadline: Duration,
}

/// What one sync came to, as the receiver counts it.
enum Finished {
    /// MLflow did not return the model (deleted, renamed, outside the filter): nothing written.
    ModelAbsent(Requests),
    Synced(Box<SyncOutcome>),
}

/// Why a sync was abandoned.
enum Abandoned {
    Deadline,
    LostLead,
}

impl Worker {
    pub(crate) fn run(self) {
        while let Some(job) = self.scheduler.next() {
            let (scope, covered) = match job {
                queue::Job::Sync(scope, covered) => (scope, covered),
                queue::Job::Tick => {
                    self.tick();
                    continue;
                }
            };
            self.metrics.queued(self.scheduler.waiting());
            let ok = self.sync(&scope);
            if scope == Scope::All {
                self.scheduler.full_done(ok, covered);
            }
            self.metrics.queued(self.scheduler.waiting());
        }
    }

    /// The leader's rollout tick: one LIST of the objects in a progressive rollout (whichever
    /// replica or run started it) and a sync of each of their models.
    fn tick(&self) {
        let instance = &self.config.deploy.instance;
        let kube = self.clients.kube.for_sync(Cancel::default());
        match self
            .clients
            .executor
            .block_on(kube.rollout_models(instance))
        {
            Ok(models) => {
                if !models.is_empty() {
                    log::debug!("rollout tick: {} models in rollout", models.len());
                }
                for model in models {
                    self.scheduler.push(&model, None);
                }
            }
            Err(e) => {
                log::warn!(error = format!("{e:#}").as_str(); "rollout tick failed; the next tick retries")
            }
        }
    }

    /// Runs one sync and reports it (log lines and metrics); whether it succeeded.
    fn sync(&self, scope: &Scope) -> bool {
        let started = Instant::now();
        self.metrics.sync_started();
        let finished = self.run_within_deadline(scope);
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
            not_deployable: None,
            rollouts: Default::default(),
        };
        let ok = match &finished {
            Err(Abandoned::Deadline) => {
                record.result = "timeout";
                log::error!(
                    kind, model, result = "timeout", duration_ms = ms;
                    "sync abandoned after M2S_SYNC_TIMEOUT ({}s): it sends nothing more; the next sync goes on",
                    self.deadline.as_secs()
                );
                false
            }
            Err(Abandoned::LostLead) => {
                log::warn!(
                    kind, model, result = "failed", duration_ms = ms;
                    "full sync abandoned: this replica no longer leads"
                );
                false
            }
            Ok(Err(e)) => {
                let error = format!("{e:#}");
                log::error!(
                    kind, model, result = "failed", duration_ms = ms, error = error.as_str();
                    "sync failed; the next full sync retries"
                );
                false
            }
            Ok(Ok(Finished::ModelAbsent(requests))) => {
                record.result = "model_absent";
                record.requests = *requests;
                log::info!(
                    kind, model, result = "model_absent", duration_ms = ms;
                    "model not returned by MLflow (deleted, renamed or outside M2S_MODEL_FILTER): nothing written; the periodic full sync handles its deployments"
                );
                true
            }
            Ok(Ok(Finished::Synced(o))) => {
                self.report(scope, o, &mut record, ms);
                !matches!(
                    o.result(),
                    SyncResult::ApplyFailed | SyncResult::WriteBackFailed
                )
            }
        };
        self.metrics.sync_finished(&record);
        ok
    }

    /// Log lines and the record of a sync that ran to its end.
    fn report(&self, scope: &Scope, o: &SyncOutcome, record: &mut SyncRecord, ms: u64) {
        let (kind, model) = (scope.kind(), scope.model_name());
        let result = o.result();
        record.result = result.label();
        record.requests = o.requests;
        (record.created, record.updated, record.deleted) = (o.created, o.updated, o.deleted);
        record.not_deployable = Some(o.not_deployable);
        record.rollouts = o.rollouts;
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
    }

    /// Runs `scope`'s sync on a thread of its own and waits for it, at most the deadline (and,
    /// for a full sync, while this replica leads).
    fn run_within_deadline(&self, scope: &Scope) -> Result<Result<Finished>, Abandoned> {
        let cancel = Cancel::default();
        let clients = self.clients.for_sync(cancel.clone());
        let (done, outcome) = mpsc::channel();
        let job = Job {
            config: self.config.clone(),
            options: self.options.clone(),
            guard: self.guard,
            scope: scope.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("m2s-sync-run".into())
            .spawn(move || {
                let _ = done.send(job.run(&clients));
            });
        if let Err(e) = spawned {
            return Ok(Err(anyhow::anyhow!(e).context("starting a sync")));
        }
        let deadline = Instant::now() + self.deadline;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match outcome.recv_timeout(left.min(LOOK)) {
                Ok(finished) => return Ok(finished),
                Err(RecvTimeoutError::Disconnected) => {
                    return Ok(Err(anyhow::anyhow!(
                        "the sync thread ended without a result"
                    )))
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if *scope == Scope::All && !self.leadership.is_leader() {
                cancel.cancel();
                return Err(Abandoned::LostLead);
            }
            if Instant::now() >= deadline {
                cancel.cancel();
                return Err(Abandoned::Deadline);
            }
        }
    }
}

/// One sync, as its thread runs it.
struct Job {
    config: Arc<Config>,
    options: SyncOptions,
    guard: Guard,
    scope: Scope,
}

impl Job {
    fn run(self, clients: &Clients) -> Result<Finished> {
        let (config, scope) = (&*self.config, &self.scope);
        // Write-back needs every object's state: the periodic full syncs do it.
        let mut options = self.options;
        options.write_back &= *scope == Scope::All;
        let prepared = engine::prepare(clients, config, scope, options.write_back)?;
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
