//! One sync, in phases: read the registry → observe the cluster → resolve locations of the
//! entries that changed → plan. A sync covers every model ([`Scope::All`], the one-shot
//! `m2s sync`) or one model ([`Scope::Model`]: `--model`, and what a webhook event triggers).
//! What a sync then writes is in [`crate::sync`]; the commands are in [`crate::commands`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cli::{GuardArgs, OutputFormat};
use crate::config::Config;
use crate::desired::{EntryError, Registry, RegistryBuilder};
use crate::k8s::{self, Kube};
use crate::mlflow::MlflowClient;
use crate::plan::{self, check_deletion_guard, Action, Change, Found, Observer, Plan};
use crate::scoped;
use crate::status::{self, EntryRef, ObjectState, Report};
use crate::targets::readiness_of;

/// What one sync reads and may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
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
    pub fn model(name: &str) -> Scope {
        Scope::Model {
            name: name.to_string(),
            aliases: BTreeSet::new(),
            whole: true,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::All => "full",
            Scope::Model { .. } => "model",
        }
    }
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

/// Everything a sync knows once it has planned; nothing has been written yet.
pub struct Prepared {
    pub registry: Registry,
    pub plan: Plan,
    pub kube: Kube,
    pub runtime: tokio::runtime::Runtime,
    pub mlflow: MlflowClient,
    /// Every managed object with its readiness, when the sync asked for them (write-back).
    pub states: Vec<ObjectState>,
    /// A scoped sync whose model MLflow did not return: nothing was observed or planned.
    pub model_absent: bool,
}

impl Prepared {
    /// Requests its clients have sent (one sync's: each sync has its own clients).
    pub fn requests(&self) -> Requests {
        Requests {
            mlflow: self.mlflow.requests_sent(),
            kube: self.kube.requests_sent(),
            kube_writes: self.kube.writes_sent(),
        }
    }
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
/// arrives; with `states`, also each object's readiness (read from its status as it streams).
fn observe<'r>(
    runtime: &tokio::runtime::Runtime,
    kube: &Kube,
    registry: &'r Registry,
    config: &'r Config,
    states: Option<&mut Vec<ObjectState>>,
) -> Result<Observer<'r>> {
    let deploy = &config.deploy;
    let mut observer = Observer::new(registry, deploy);
    match states {
        None => runtime.block_on(kube.list_owned(&deploy.instance, |o| {
            observer.observe(&o);
        }))?,
        Some(states) => {
            let target = deploy.target;
            runtime.block_on(kube.list_owned_with_status(&deploy.instance, |o, seen| {
                let verdict = observer.observe(&o);
                let readiness = readiness_of(target, seen.generation, &seen.status);
                states.push(ObjectState::of(&o, seen.created, readiness, verdict));
            }))?
        }
    }
    log::info!(
        "cluster: {} owned by instance {:?} in namespace {:?}",
        deploy.target.resource().count(observer.managed),
        deploy.instance,
        deploy.namespace
    );
    Ok(observer)
}

/// Makes both clients once and drops them: a long-running process checks its settings (a bad
/// kubeconfig, an MLflow URL the client refuses) before it starts.
pub fn check_clients(config: &Config) -> Result<()> {
    MlflowClient::new(&config.mlflow)?;
    connect(config)?;
    Ok(())
}

/// The async runtime and the Kubernetes client of a run.
fn connect(config: &Config) -> Result<(tokio::runtime::Runtime, Kube)> {
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
    Ok((runtime, kube))
}

/// Names wanted for creation that are taken in a full sync: objects in the namespace this
/// instance does not own (one metadata LIST, only when something is to be created).
fn foreign_names(
    runtime: &tokio::runtime::Runtime,
    kube: &Kube,
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
    let taken = runtime.block_on(kube.foreign_names(&deploy.instance, &creates))?;
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
pub fn prepare(config: &Config, scope: &Scope, with_states: bool) -> Result<Prepared> {
    let started = Instant::now();
    let mlflow = MlflowClient::new(&config.mlflow)?;
    let registry = match scope {
        Scope::All => Some(read_registry(&mlflow, config)?),
        Scope::Model { name, .. } => read_model(&mlflow, config, name)?,
    };
    let (runtime, kube) = connect(config)?;
    let Some(mut registry) = registry else {
        return Ok(Prepared {
            registry: Registry::default(),
            plan: Plan::default(),
            kube,
            runtime,
            mlflow,
            states: Vec::new(),
            model_absent: true,
        });
    };
    let mut states = Vec::new();
    let (observer, taken) = match scope {
        Scope::All => {
            let states = with_states.then_some(&mut states);
            (observe(&runtime, &kube, &registry, config, states)?, None)
        }
        Scope::Model {
            name,
            aliases,
            whole,
        } => {
            if !whole {
                registry.retain_aliases(aliases);
            }
            let seen =
                scoped::observe_model(&runtime, &kube, &registry, config, name, aliases, *whole)?;
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
    let mut plan = plan::compute(&registry, observer, resolved, &config.deploy);
    let taken = match taken {
        Some(taken) => taken,
        None => foreign_names(&runtime, &kube, &plan, config)?,
    };
    refuse_taken_names(&mut plan, &registry, &taken);
    log::debug!(
        "planned in {:.2?}: {} MLflow requests, {} Kubernetes requests",
        started.elapsed(),
        mlflow.requests_sent(),
        kube.requests_sent()
    );
    Ok(Prepared {
        registry,
        plan,
        kube,
        runtime,
        mlflow,
        states,
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

/// Why a plan with entries that cannot be deployed fails.
pub fn not_deployable(plan: &Plan) -> String {
    let n = plan.errors.len();
    format!(
        "{n} registry {} cannot be deployed (listed above)",
        if n == 1 { "entry" } else { "entries" }
    )
}

/// `m2s status`: the registry and the objects with their status, read only (no MLflow
/// look-ups beyond the search, no write).
pub fn status(config: &Config, output: OutputFormat) -> Result<ExitCode> {
    let mlflow = MlflowClient::new(&config.mlflow)?;
    let registry = read_registry(&mlflow, config)?;
    let (runtime, kube) = connect(config)?;
    let mut objects = Vec::new();
    let observer = observe(&runtime, &kube, &registry, config, Some(&mut objects))?;
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    let mut report = Report {
        objects,
        not_deployable: registry.errors.clone(),
        ..Report::default()
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
    let now = k8s_openapi::jiff::Timestamp::now();
    let text = match output {
        OutputFormat::Text => status::render_text(&report, &config.deploy, now),
        OutputFormat::Json => status::render_json(&report, &config.deploy, now),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
