//! One run, in phases: read the registry → observe the cluster → resolve locations of the
//! entries that changed → plan → print or apply.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::{Cli, Command, GuardArgs, OutputFormat};
use crate::config::{process_env, Config};
use crate::desired::{EntryError, Registry, RegistryBuilder};
use crate::k8s::{self, Kube};
use crate::mlflow::MlflowClient;
use crate::output::{render_json, render_text};
use crate::plan::{self, check_deletion_guard, Action, Change, Found, Observer, Plan};
use crate::status::{self, EntryRef, ObjectState, Report};
use crate::sync::SyncOptions;
use crate::targets::readiness_of;

/// Exit code of `plan --detailed-exitcode` when changes are pending.
pub const EXIT_CHANGES: u8 = 2;

enum Mode {
    Plan {
        output: OutputFormat,
        detailed_exitcode: bool,
    },
    Status {
        output: OutputFormat,
    },
    Sync(SyncOptions),
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    // One TLS provider for kube and reqwest; a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = Config::from_settings(&cli.settings, &process_env)?;
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    let (mode, guard) = match cli.command {
        Command::Plan(p) => (
            Mode::Plan {
                output: p.output,
                detailed_exitcode: p.detailed_exitcode,
            },
            p.guard,
        ),
        Command::Status(s) => (Mode::Status { output: s.output }, GuardArgs::default()),
        Command::Sync(s) => {
            let options = SyncOptions::from_args(&s, &config)?;
            config.deploy.write_back = options.write_back;
            (Mode::Sync(options), s.guard)
        }
    };
    start_watchdog(config.run_timeout);
    execute(&config, mode, &guard)
}

/// A CronJob pod must never hang: past the deadline the process ends with an error. Every
/// write m2s sends is a single atomic request, so stopping at any point leaves no half object.
fn start_watchdog(deadline: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        eprintln!(
            "error: the run exceeded its deadline of {}s (M2S_RUN_TIMEOUT); stopped",
            deadline.as_secs()
        );
        std::process::exit(1);
    });
}

/// Everything a run knows once it has planned; nothing has been written yet.
pub struct Prepared {
    pub registry: Registry,
    pub plan: Plan,
    pub kube: Kube,
    pub runtime: tokio::runtime::Runtime,
    pub mlflow: MlflowClient,
    /// Every managed object with its readiness, when the run asked for them (write-back).
    pub states: Vec<ObjectState>,
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

/// Phase 4: names wanted for creation that someone else's object already has become errors.
fn refuse_foreign_names(prepared: &mut Prepared, config: &Config) -> Result<()> {
    let plan = &mut prepared.plan;
    let creates: BTreeSet<&str> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Create)
        .map(|c| c.name.as_str())
        .collect();
    if creates.is_empty() {
        return Ok(());
    }
    let deploy = &config.deploy;
    let taken = prepared
        .runtime
        .block_on(prepared.kube.foreign_names(&deploy.instance, &creates))?;
    if taken.is_empty() {
        return Ok(());
    }
    let kind = deploy.target.resource().kind;
    let registry = &prepared.registry;
    let (foreign, keep): (Vec<Change>, Vec<Change>) = std::mem::take(&mut plan.changes)
        .into_iter()
        .partition(|c| c.action == Action::Create && taken.contains(&c.name));
    plan.changes = keep;
    for c in foreign {
        let entry = c.entry(registry).expect("creates have an entry");
        plan.errors.push(EntryError::of(
            entry,
            format!(
                "a {kind} named {:?} already exists in namespace {:?} and is not managed by m2s instance {:?}; m2s leaves it alone",
                c.name, deploy.namespace, deploy.instance
            ),
        ));
    }
    plan.errors
        .sort_by(|a, b| (&a.name, &a.model).cmp(&(&b.name, &b.model)));
    Ok(())
}

/// Reads both sides and computes the plan. Nothing is written here. With `with_states`, every
/// managed object's readiness is read as well (write-back needs it).
pub fn prepare(config: &Config, with_states: bool) -> Result<Prepared> {
    let started = Instant::now();
    let mlflow = MlflowClient::new(&config.mlflow)?;
    let registry = read_registry(&mlflow, config)?;
    let (runtime, kube) = connect(config)?;
    let mut states = Vec::new();
    let observer = observe(
        &runtime,
        &kube,
        &registry,
        config,
        with_states.then_some(&mut states),
    )?;

    // Phase 3: only entries without an object, or whose object serves another version, cost
    // MLflow look-ups; the others reuse the location recorded on their object.
    let versions: Vec<_> = observer
        .to_resolve()
        .into_iter()
        .map(|i| {
            let e = &registry.entries[i];
            (e.model.name.as_str(), &e.version)
        })
        .collect();
    let resolved = mlflow
        .resolve_all(&versions)
        .context("reading model versions from MLflow; nothing was changed")?;
    drop(versions);
    let plan = plan::compute(&registry, observer, resolved, &config.deploy);
    let mut prepared = Prepared {
        registry,
        plan,
        kube,
        runtime,
        mlflow,
        states,
    };
    refuse_foreign_names(&mut prepared, config)?;
    log::debug!(
        "planned in {:.2?}: {} MLflow requests, {} Kubernetes requests",
        started.elapsed(),
        prepared.mlflow.requests_sent(),
        prepared.kube.requests_sent()
    );
    Ok(prepared)
}

/// `m2s status`: the registry and the objects with their status, read only (no MLflow
/// look-ups beyond the search, no write).
fn status(config: &Config, output: OutputFormat) -> Result<ExitCode> {
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

/// The deletion guard; its refusal names the registry that was read, since a wrong URL or
/// filter is the usual reason a registry asks for nothing.
pub fn deletion_guard(plan: &Plan, config: &Config, guard: &GuardArgs) -> Result<()> {
    check_deletion_guard(
        plan,
        &config.deploy,
        guard.allow_delete_all,
        guard.max_deletes,
    )
    .map_err(|e| {
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

pub(crate) fn not_deployable(plan: &Plan) -> String {
    let n = plan.errors.len();
    format!(
        "{n} registry {} cannot be deployed (listed above)",
        if n == 1 { "entry" } else { "entries" }
    )
}

fn execute(config: &Config, mode: Mode, guard: &GuardArgs) -> Result<ExitCode> {
    let options = match mode {
        Mode::Status { output } => return status(config, output),
        Mode::Sync(options) => options,
        Mode::Plan {
            output,
            detailed_exitcode,
        } => return plan_mode(config, output, detailed_exitcode, guard),
    };
    let prepared = prepare(config, options.write_back)?;
    crate::sync::sync(prepared, config, &options, guard)
}

fn plan_mode(
    config: &Config,
    output: OutputFormat,
    detailed_exitcode: bool,
    guard: &GuardArgs,
) -> Result<ExitCode> {
    let prepared = prepare(config, false)?;
    let plan = &prepared.plan;
    let (registry, deploy) = (&prepared.registry, &config.deploy);
    let mut stdout = std::io::stdout().lock();
    let guard_result = deletion_guard(plan, config, guard);
    match output {
        OutputFormat::Text => write!(stdout, "{}", render_text(plan, registry, deploy))?,
        OutputFormat::Json => write!(
            stdout,
            "{}",
            render_json(plan, registry, deploy, guard_result.as_ref().err())
        )?,
    }
    stdout.flush()?;
    guard_result?;
    if !plan.errors.is_empty() {
        anyhow::bail!(not_deployable(plan));
    }
    Ok(if detailed_exitcode && !plan.is_empty() {
        ExitCode::from(EXIT_CHANGES)
    } else {
        ExitCode::SUCCESS
    })
}
