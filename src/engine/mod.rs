//! One sync, in phases: read the registry → observe the cluster → resolve the locations of the
//! entries that changed → plan → preflight the versions to deploy ([`prepare`]); then apply the plan, record Events, wait and write
//! back ([`apply::apply`]). A sync covers every model ([`Scope::All`], the one-shot `m2s sync`)
//! or one model ([`Scope::Model`]: `--model`, and what a webhook event triggers). The engine
//! takes plain values and returns typed results: it prints nothing.

mod after;
pub(crate) mod apply;
mod outcome;
mod preflight;
mod rollout;
pub(crate) mod scoped;
pub(crate) mod wait;
pub(crate) mod writeback;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cancel::Cancel;
use crate::config::Config;
use crate::desired::{EntryError, Registry, RegistryBuilder};
use crate::k8s::{self, Kube};
use crate::mlflow::MlflowClient;
use crate::plan::{self, check_deletion_guard, Action, Change, Found, Observer, Plan};
use crate::rollout::Clock;
use crate::status::{EntryRef, ObjectState, StatusReport};
use crate::targets::readiness_of;
use k8s_openapi::jiff::Timestamp;

/// What one sync reads and may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every model of the registry and every object this instance owns.
    All,
    /// One registered model and the objects whose names derive from it. `aliases` are aliases
    /// named by events (an `alias.deleted` event names the alias whose object must go). With
    /// `whole: false` only those aliases' objects are synced: an alias event changes nothing
    /// else, and a sync of one object costs one GET, not one per stage and alias.
    Model {
        name: String,
        aliases: BTreeSet<String>,
        whole: bool,
    },
}

impl Scope {
    /// Every object of the model `name` (`--model`).
    pub(crate) fn model(name: &str) -> Scope {
        Scope::Model {
            name: name.to_string(),
            aliases: BTreeSet::new(),
            whole: true,
        }
    }
    /// `full` or `model`: the `kind` label of the receiver's metrics and logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Scope::All => "full",
            Scope::Model { .. } => "model",
        }
    }
    /// The model a scoped sync is about ("" for a full sync).
    pub(crate) fn model_name(&self) -> &str {
        match self {
            Scope::Model { name, .. } => name,
            Scope::All => "",
        }
    }
}

/// The deletion guard's settings (`--allow-delete-all`, `--max-deletes`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Guard {
    pub(crate) allow_delete_all: bool,
    pub(crate) max_deletes: Option<usize>,
}

/// Requests sent, to MLflow and to Kubernetes (writes counted apart as well).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Requests {
    pub(crate) mlflow: u64,
    pub(crate) kube: u64,
    pub(crate) kube_writes: u64,
}

impl Requests {
    /// The requests sent since `before` (the clients are shared by every sync of a process).
    pub(crate) fn since(self, before: Requests) -> Requests {
        Requests {
            mlflow: self.mlflow - before.mlflow,
            kube: self.kube - before.kube,
            kube_writes: self.kube_writes - before.kube_writes,
        }
    }
}

/// Where the async Kubernetes side runs: a runtime of the caller's own (one-shot commands), or
/// the process's shared runtime (the receiver, whose other tasks use the same client).
pub(crate) enum Executor {
    Own(tokio::runtime::Runtime),
    Shared(tokio::runtime::Handle),
}

impl Executor {
    /// A current-thread runtime of its own (the one-shot commands).
    pub(crate) fn own() -> Result<Executor> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(Executor::Own(runtime))
    }

    /// Runs `f` to completion on this executor, from a thread outside any runtime.
    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        match self {
            Executor::Own(runtime) => runtime.block_on(f),
            Executor::Shared(handle) => handle.block_on(f),
        }
    }
}

/// The clients of a process: made once, used by every sync (a long-running receiver keeps its
/// connections and never reads the kubeconfig again).
pub(crate) struct Clients {
    pub(crate) executor: Executor,
    pub(crate) kube: Kube,
    pub(crate) mlflow: MlflowClient,
}

impl Clients {
    /// Both clients for `config`: MLflow's (blocking) and Kubernetes' on `executor`.
    pub(crate) fn connect(config: &Config, executor: Executor) -> Result<Clients> {
        let mlflow = MlflowClient::new(&config.mlflow)?;
        let (client, server) = executor.block_on(k8s::connect(
            config.kubeconfig.as_deref(),
            config.kube_context.as_deref(),
            config.request_timeout,
        ))?;
        let deploy = &config.deploy;
        let kube = Kube::new(client, &deploy.namespace, server, deploy.target.resource());
        Ok(Clients {
            executor,
            kube,
            mlflow,
        })
    }

    /// The clients of one sync of a long-running process: the same connections, their own
    /// request counts, and `cancel`, which stops them sending once set.
    pub(crate) fn for_sync(&self, cancel: Cancel) -> Clients {
        let Executor::Shared(handle) = &self.executor else {
            unreachable!("only the receiver, whose runtime is shared, syncs more than once");
        };
        Clients {
            executor: Executor::Shared(handle.clone()),
            kube: self.kube.for_sync(cancel.clone()),
            mlflow: self.mlflow.for_sync(cancel),
        }
    }

    /// Requests sent so far by both clients.
    pub(crate) fn requests(&self) -> Requests {
        Requests {
            mlflow: self.mlflow.requests_sent(),
            kube: self.kube.requests_sent(),
            kube_writes: self.kube.writes_sent(),
        }
    }
}

/// Everything a sync knows once it has planned; nothing has been written yet.
pub(crate) struct Prepared<'c> {
    pub(crate) clients: &'c Clients,
    pub(crate) registry: Registry,
    pub(crate) plan: Plan,
    /// Every managed object with its readiness, when the sync asked for them (write-back).
    pub(crate) states: Vec<ObjectState>,
    /// A scoped sync whose model MLflow did not return: nothing was observed or planned.
    pub(crate) model_absent: bool,
    /// The resourceVersion of the LIST a full sync observed (before anything was written).
    pub(crate) listed_version: Option<String>,
    /// The clients' requests when this sync started.
    started: Requests,
}

impl Prepared<'_> {
    /// Requests this sync has sent so far.
    pub(crate) fn requests(&self) -> Requests {
        self.clients.requests().since(self.started)
    }
}

/// Phase 1: the registry, read page by page into entries (outside the async runtime:
/// reqwest's blocking client must not run inside it).
pub(crate) fn read_registry(mlflow: &MlflowClient, config: &Config) -> Result<Registry> {
    let mut builder = RegistryBuilder::new(&config.deploy);
    mlflow
        .for_each_model_page(config.mlflow.model_filter.as_deref(), |page| {
            builder.add(page)
        })
        .context("reading the MLflow model registry; nothing was changed")?;
    let registry = builder.finish();
    log::info!(
        "registry: {} registered models, {} deployments wanted ({} in error)",
        registry.models.len(),
        registry.entries.len() + registry.errors.len(),
        registry.errors.len()
    );
    Ok(registry)
}

/// Phase 1 of a scoped sync: the one model, if MLflow returns it within the model filter.
fn read_model(mlflow: &MlflowClient, config: &Config, name: &str) -> Result<Option<Registry>> {
    let model = mlflow
        .model_named(name, config.mlflow.model_filter.as_deref())
        .with_context(|| format!("reading model {name:?} from MLflow; nothing was changed"))?;
    Ok(model.map(|m| {
        let mut builder = RegistryBuilder::new(&config.deploy);
        builder.add(vec![m]);
        builder.finish()
    }))
}

/// Phase 2: the objects this instance owns, compared with the entries as each LIST page
/// arrives; with `states`, also each object's readiness (read from its status as it streams).
fn observe<'r>(
    clients: &Clients,
    registry: &'r Registry,
    config: &'r Config,
    states: Option<&mut Vec<ObjectState>>,
) -> Result<(Observer<'r>, String)> {
    let deploy = &config.deploy;
    let kube = &clients.kube;
    let mut observer = Observer::new(registry, deploy);
    let version = match states {
        None => clients
            .executor
            .block_on(kube.list_owned(&deploy.instance, |o| {
                observer.observe(&o);
            }))?,
        Some(states) => {
            let target = deploy.target;
            clients.executor.block_on(kube.list_owned_with_status(
                &deploy.instance,
                |o, seen| {
                    let verdict = observer.observe(&o);
                    let readiness = readiness_of(target, seen.generation, &seen.status);
                    states.push(ObjectState::of(&o, seen.created, readiness, verdict));
                },
            ))?
        }
    };
    log::info!(
        "cluster: {} owned by instance {:?} in namespace {:?}",
        deploy.target.resource().count(observer.managed),
        deploy.instance,
        deploy.namespace
    );
    Ok((observer, version))
}

/// Names wanted for creation that are taken in a full sync: objects in the namespace this
/// instance does not own (one metadata LIST, only when something is to be created).
fn foreign_names(
    clients: &Clients,
    plan: &Plan,
    config: &Config,
) -> Result<BTreeMap<String, String>> {
    let creates: BTreeSet<&str> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Create)
        .map(|c| &*c.name)
        .collect();
    if creates.is_empty() {
        return Ok(BTreeMap::new());
    }
    let deploy = &config.deploy;
    let taken = clients
        .executor
        .block_on(clients.kube.foreign_names(&deploy.instance, &creates))?;
    Ok(taken
        .into_iter()
        .map(|name| {
            let why = scoped::foreign_message(&name, deploy);
            (name, why)
        })
        .collect())
}

/// Phase 4: creates of names that are `taken` (name → why) become errors of their entries.
fn refuse_taken_names(plan: &mut Plan, registry: &Registry, taken: &BTreeMap<String, String>) {
    if taken.is_empty() {
        return;
    }
    let (refused, keep): (Vec<Change>, Vec<Change>) = std::mem::take(&mut plan.changes)
        .into_iter()
        .partition(|c| c.action == Action::Create && taken.contains_key(&*c.name));
    plan.changes = keep;
    for c in refused {
        let entry = c.entry(registry).expect("creates have an entry");
        plan.errors
            .push(EntryError::of(entry, taken[&*c.name].clone()));
    }
    plan.errors
        .sort_by(|a, b| (&a.name, &a.model).cmp(&(&b.name, &b.model)));
}

/// Reads both sides and computes the plan. Nothing is written here. With `with_states`,
/// every managed object's readiness is read as well (write-back needs it; full syncs only).
pub(crate) fn prepare<'c>(
    clients: &'c Clients,
    config: &Config,
    scope: &Scope,
    with_states: bool,
) -> Result<Prepared<'c>> {
    let started = Instant::now();
    let before = clients.requests();
    let mlflow = &clients.mlflow;
    let registry = match scope {
        Scope::All => Some(read_registry(mlflow, config)?),
        Scope::Model { name, .. } => read_model(mlflow, config, name)?,
    };
    let Some(mut registry) = registry else {
        return Ok(Prepared {
            clients,
            registry: Registry::default(),
            plan: Plan::default(),
            states: Vec::new(),
            model_absent: true,
            listed_version: None,
            started: before,
        });
    };
    let mut states = Vec::new();
    let mut listed_version = None;
    let (observer, taken) = match scope {
        Scope::All => {
            let states = with_states.then_some(&mut states);
            let (observer, version) = observe(clients, &registry, config, states)?;
            listed_version = Some(version);
            (observer, None)
        }
        Scope::Model {
            name,
            aliases,
            whole,
        } => {
            if !whole {
                registry.retain_aliases(aliases);
            }
            let seen = scoped::observe_model(clients, &registry, config, name, aliases, *whole)?;
            (seen.observer, Some(seen.taken))
        }
    };

    // Phase 3: only entries without an object, or whose object serves another version, cost
    // MLflow look-ups; the others reuse the location recorded on their object.
    let to_resolve = observer.to_resolve();
    let versions = to_resolve.iter().map(|&i| {
        let e = &registry.entries[i];
        e.version.view(&e.model.name)
    });
    let resolved = mlflow
        .resolve_all(versions)
        .context("reading model versions from MLflow; nothing was changed")?;
    drop(to_resolve);
    let clock = Clock {
        now: Timestamp::now(),
        deadline: config.canary_deadline,
    };
    let mut plan = plan::compute(&registry, observer, resolved, &config.deploy, clock);
    let taken = match taken {
        Some(taken) => taken,
        None => foreign_names(clients, &plan, config)?,
    };
    refuse_taken_names(&mut plan, &registry, &taken);
    preflight::preflight(clients, &registry, &mut plan, &mut states, config)?;
    let sent = clients.requests().since(before);
    log::debug!(
        "planned in {:.2?}: {} MLflow requests, {} Kubernetes requests",
        started.elapsed(),
        sent.mlflow,
        sent.kube
    );
    Ok(Prepared {
        clients,
        registry,
        plan,
        states,
        model_absent: false,
        listed_version,
        started: before,
    })
}

/// The deletion guard; its refusal names the registry that was read, since a wrong URL or
/// filter is the usual reason a registry asks for nothing. Refusing to delete everything is a
/// full sync's guard: a scoped sync sees one model's objects, and deleting all of them (its
/// last alias removed) is ordinary. `--max-deletes` holds for both.
pub(crate) fn deletion_guard(
    plan: &Plan,
    config: &Config,
    guard: Guard,
    scope: &Scope,
) -> Result<()> {
    let allow_delete_all = guard.allow_delete_all || matches!(scope, Scope::Model { .. });
    check_deletion_guard(plan, &config.deploy, allow_delete_all, guard.max_deletes).map_err(|e| {
        let filter = config
            .mlflow
            .model_filter
            .as_deref()
            .map(|f| format!(", filter {f:?}"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "{e} (registry read from MLflow at {}{filter})",
            config.deploy.mlflow_url
        )
    })
}

/// Why a plan with entries that cannot be deployed fails.
pub(crate) fn not_deployable(plan: &Plan) -> String {
    let n = plan.errors.len();
    format!(
        "{n} registry {} cannot be deployed (listed above)",
        if n == 1 { "entry" } else { "entries" }
    )
}

/// What `m2s status` shows: the registry and the objects with their status, read only (no
/// MLflow look-ups beyond the search, no write).
pub(crate) fn status(clients: &Clients, config: &Config) -> Result<StatusReport> {
    let registry = read_registry(&clients.mlflow, config)?;
    let mut objects = Vec::new();
    let (observer, _) = observe(clients, &registry, config, Some(&mut objects))?;
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    let mut report = StatusReport {
        objects,
        not_deployable: registry.errors.clone(),
        ..StatusReport::default()
    };
    for (entry, found) in registry.entries.iter().zip(&observer.found) {
        match found {
            Found::Absent => report.not_deployed.push(EntryRef::of(entry)),
            Found::Held(message) => report
                .not_deployable
                .push(EntryError::of(entry, message.clone())),
            _ => {}
        }
    }
    report.not_deployable.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(report)
}
