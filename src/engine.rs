//! One sync, in phases: read the registry → observe the cluster → resolve locations of the
//! entries that changed → plan → apply. A sync covers every model ([`Scope::All`], the one-shot
//! `m2s sync`) or one model ([`Scope::Model`]: `--model`, and what a webhook event triggers).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::{Context, Result};
use futures::{stream, StreamExt};

use crate::cli::GuardArgs;
use crate::config::Config;
use crate::desired::{render, EntryError, Registry, RegistryBuilder};
use crate::k8s::{self, Kube};
use crate::mlflow::MlflowClient;
use crate::plan::{self, check_deletion_guard, Action, Change, Observer, Plan};
use crate::scoped;

/// What one sync reads and may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every model of the registry and every object this instance owns.
    All,
    /// One registered model and the objects whose names derive from it. `aliases` are aliases
    /// named by events (an `alias.deleted` event names the alias whose object must go).
    Model {
        name: String,
        aliases: BTreeSet<String>,
    },
}

impl Scope {
    pub fn model(name: &str) -> Scope {
        Scope::Model {
            name: name.to_string(),
            aliases: BTreeSet::new(),
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::All => "full",
            Scope::Model { .. } => "model",
        }
    }
}

/// Kubernetes' side of a session: the client and the current-thread runtime that drives it.
pub struct Cluster {
    pub runtime: tokio::runtime::Runtime,
    pub kube: Kube,
}

/// The clients a process uses for its syncs: MLflow's (blocking: never call it inside the
/// runtime) and, connected on first use, Kubernetes'. A long-running process keeps one, so
/// its connections are reused from one sync to the next.
pub struct Session {
    pub mlflow: MlflowClient,
    cluster: Option<Cluster>,
}

/// Requests sent so far (or during one sync: see [`Requests::since`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub mlflow: u64,
    pub kube: u64,
    pub kube_writes: u64,
}

impl Requests {
    pub fn since(self, before: Requests) -> Requests {
        Requests {
            mlflow: self.mlflow - before.mlflow,
            kube: self.kube - before.kube,
            kube_writes: self.kube_writes - before.kube_writes,
        }
    }
}

impl Session {
    pub fn new(config: &Config) -> Result<Session> {
        Ok(Session {
            mlflow: MlflowClient::new(&config.mlflow)?,
            cluster: None,
        })
    }

    /// Connects to Kubernetes unless already connected.
    pub fn connect(&mut self, config: &Config) -> Result<&Cluster> {
        if self.cluster.is_none() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let (client, server) = runtime.block_on(k8s::connect(
                config.kubeconfig.as_deref(),
                config.request_timeout,
            ))?;
            let kube = Kube::new(
                client,
                &config.deploy.namespace,
                server,
                config.deploy.target.resource(),
            );
            self.cluster = Some(Cluster { runtime, kube });
        }
        Ok(self.cluster())
    }

    fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("connected before use")
    }

    pub fn requests(&self) -> Requests {
        let (kube, kube_writes) = self
            .cluster
            .as_ref()
            .map_or((0, 0), |c| (c.kube.requests_sent(), c.kube.writes_sent()));
        Requests {
            mlflow: self.mlflow.requests_sent(),
            kube,
            kube_writes,
        }
    }
}

/// Everything a sync knows once it has planned; nothing has been written yet.
pub struct Prepared {
    pub registry: Registry,
    pub plan: Plan,
    /// A scoped sync whose model MLflow did not return: nothing was observed or planned.
    pub model_absent: bool,
}

/// Phase 1: the registry, read page by page into entries (outside the async runtime:
/// reqwest's blocking client must not run inside it).
fn read_registry(mlflow: &MlflowClient, config: &Config) -> Result<Registry> {
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
/// arrives.
fn observe<'r>(
    cluster: &Cluster,
    registry: &'r Registry,
    config: &'r Config,
) -> Result<Observer<'r>> {
    let deploy = &config.deploy;
    let mut observer = Observer::new(registry, deploy);
    cluster.runtime.block_on(
        cluster
            .kube
            .list_owned(&deploy.instance, |o| observer.observe(&o)),
    )?;
    log::info!(
        "cluster: {} owned by instance {:?} in namespace {:?}",
        deploy.target.resource().count(observer.managed),
        deploy.instance,
        deploy.namespace
    );
    Ok(observer)
}

/// Names wanted for creation that are taken in a full sync: objects in the namespace this
/// instance does not own (one metadata LIST, only when something is to be created).
fn foreign_names(
    cluster: &Cluster,
    plan: &Plan,
    config: &Config,
) -> Result<BTreeMap<String, String>> {
    let creates: BTreeSet<&str> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Create)
        .map(|c| c.name.as_str())
        .collect();
    if creates.is_empty() {
        return Ok(BTreeMap::new());
    }
    let deploy = &config.deploy;
    let taken = cluster
        .runtime
        .block_on(cluster.kube.foreign_names(&deploy.instance, &creates))?;
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
        .partition(|c| c.action == Action::Create && taken.contains_key(&c.name));
    plan.changes = keep;
    for c in refused {
        let entry = c.entry(registry).expect("creates have an entry");
        plan.errors
            .push(EntryError::of(entry, taken[&c.name].clone()));
    }
    plan.errors
        .sort_by(|a, b| (&a.name, &a.model).cmp(&(&b.name, &b.model)));
}

/// Reads both sides and computes the plan. Nothing is written here.
pub fn prepare(session: &mut Session, config: &Config, scope: &Scope) -> Result<Prepared> {
    let started = Instant::now();
    let before = session.requests();
    let registry = match scope {
        Scope::All => read_registry(&session.mlflow, config)?,
        Scope::Model { name, .. } => match read_model(&session.mlflow, config, name)? {
            Some(registry) => registry,
            None => {
                return Ok(Prepared {
                    registry: Registry::default(),
                    plan: Plan::default(),
                    model_absent: true,
                })
            }
        },
    };
    session.connect(config)?;
    let (mlflow, cluster) = (&session.mlflow, session.cluster());
    let (observer, mut taken) = match scope {
        Scope::All => (observe(cluster, &registry, config)?, None),
        Scope::Model { name, aliases } => {
            let seen = scoped::observe_model(cluster, &registry, config, name, aliases)?;
            (seen.observer, Some(seen.taken))
        }
    };

    // Phase 3: only entries without an object, or whose object serves another version, cost
    // MLflow look-ups; the others reuse the location recorded on their object.
    let versions: Vec<_> = observer
        .to_resolve()
        .into_iter()
        .map(|i| registry.entries[i].version.clone())
        .collect();
    let resolved = mlflow
        .resolve_all(&versions)
        .context("reading model versions from MLflow; nothing was changed")?;
    drop(versions);
    let mut plan = plan::compute(&registry, observer, resolved, &config.deploy);
    let taken = match taken.take() {
        Some(taken) => taken,
        None => foreign_names(cluster, &plan, config)?,
    };
    refuse_taken_names(&mut plan, &registry, &taken);
    let sent = session.requests().since(before);
    log::debug!(
        "planned in {:.2?}: {} MLflow requests, {} Kubernetes requests",
        started.elapsed(),
        sent.mlflow,
        sent.kube
    );
    Ok(Prepared {
        registry,
        plan,
        model_absent: false,
    })
}

/// The deletion guard; its refusal names the registry that was read, since a wrong URL or
/// filter is the usual reason a registry asks for nothing. Refusing to delete everything is a
/// full sync's guard: a scoped sync sees one model's objects, and deleting all of them (its
/// last alias removed) is ordinary. `--max-deletes` holds for both.
pub fn deletion_guard(
    plan: &Plan,
    config: &Config,
    guard: &GuardArgs,
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

/// The error of a plan with entries that cannot be deployed.
pub fn not_deployable(plan: &Plan) -> anyhow::Error {
    let n = plan.errors.len();
    anyhow::anyhow!(
        "{n} registry {} cannot be deployed (listed above)",
        if n == 1 { "entry" } else { "entries" }
    )
}

/// Writes one change: the body of a create or update is rendered now, so no more than
/// `concurrency` bodies exist at once.
async fn write_change(
    kube: &Kube,
    prepared: &Prepared,
    config: &Config,
    change: &Change,
    dry_run: bool,
) -> Result<()> {
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
            kube.apply(change, desired.object, dry_run).await
        }
        Action::Delete => kube.delete(change, dry_run).await,
    }
}

/// Applies every change with bounded concurrency; one failure does not stop the others.
/// Returns the failures, each naming its object.
pub fn apply(
    session: &Session,
    prepared: &Prepared,
    config: &Config,
    dry_run: bool,
) -> Vec<String> {
    if prepared.plan.changes.is_empty() {
        return Vec::new();
    }
    let cluster = session.cluster();
    let kube = &cluster.kube;
    let results: Vec<(String, Result<()>)> = cluster.runtime.block_on(
        stream::iter(&prepared.plan.changes)
            .map(|change| async move {
                let result = write_change(kube, prepared, config, change, dry_run).await;
                match &result {
                    Ok(()) => log::info!(
                        "{}{} {} ({})",
                        if dry_run { "[dry run] " } else { "" },
                        match change.action {
                            Action::Create => "created",
                            Action::Update => "updated",
                            Action::Delete => "deleted",
                        },
                        change.name,
                        change.reason
                    ),
                    Err(e) => log::error!("{}: {e:#}", change.name),
                }
                (change.name.clone(), result)
            })
            .buffer_unordered(config.concurrency)
            .collect(),
    );
    let mut failures: Vec<String> = results
        .into_iter()
        .filter_map(|(name, r)| r.err().map(|e| format!("{name}: {e:#}")))
        .collect();
    failures.sort();
    failures
}
