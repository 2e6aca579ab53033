//! One run, in phases: read the registry → observe the cluster → resolve locations of the
//! entries that changed → plan → print or apply.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{stream, StreamExt};

use crate::cli::{Cli, Command, GuardArgs, OutputFormat};
use crate::config::{process_env, Config};
use crate::desired::{render, EntryError, Registry, RegistryBuilder};
use crate::k8s::{self, Kube};
use crate::mlflow::MlflowClient;
use crate::output::{render_json, render_text, summary_line};
use crate::plan::{self, check_deletion_guard, Action, Change, Observer, Plan};

/// Exit code of `plan --detailed-exitcode` when changes are pending.
pub const EXIT_CHANGES: u8 = 2;

enum Mode {
    Plan {
        output: OutputFormat,
        detailed_exitcode: bool,
    },
    Sync {
        dry_run: bool,
    },
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    // One TLS provider for kube and reqwest; a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = Config::from_settings(&cli.settings, &process_env)?;
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
        Command::Sync(s) => (Mode::Sync { dry_run: s.dry_run }, s.guard),
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
    pub mlflow_requests: u64,
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
/// arrives.
fn observe<'r>(
    runtime: &tokio::runtime::Runtime,
    kube: &Kube,
    registry: &'r Registry,
    config: &'r Config,
) -> Result<Observer<'r>> {
    let deploy = &config.deploy;
    let mut observer = Observer::new(registry, deploy);
    runtime.block_on(kube.list_owned(&deploy.instance, |o| observer.observe(&o)))?;
    log::info!(
        "cluster: {} owned by instance {:?} in namespace {:?}",
        deploy.target.resource().count(observer.managed),
        deploy.instance,
        deploy.namespace
    );
    Ok(observer)
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

/// Reads both sides and computes the plan. Nothing is written here.
pub fn prepare(config: &Config) -> Result<Prepared> {
    let started = Instant::now();
    let mlflow = MlflowClient::new(&config.mlflow)?;
    let registry = read_registry(&mlflow, config)?;

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
    let observer = observe(&runtime, &kube, &registry, config)?;

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
        mlflow_requests: mlflow.requests_sent(),
    };
    refuse_foreign_names(&mut prepared, config)?;
    log::debug!(
        "planned in {:.2?}: {} MLflow requests, {} Kubernetes requests",
        started.elapsed(),
        prepared.mlflow_requests,
        prepared.kube.requests_sent()
    );
    Ok(prepared)
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

fn not_deployable(plan: &Plan) -> anyhow::Error {
    let n = plan.errors.len();
    anyhow::anyhow!(
        "{n} registry {} cannot be deployed (listed above)",
        if n == 1 { "entry" } else { "entries" }
    )
}

fn execute(config: &Config, mode: Mode, guard: &GuardArgs) -> Result<ExitCode> {
    let prepared = prepare(config)?;
    let plan = &prepared.plan;
    let (registry, deploy) = (&prepared.registry, &config.deploy);
    let mut stdout = std::io::stdout().lock();
    match mode {
        Mode::Plan {
            output,
            detailed_exitcode,
        } => {
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
                return Err(not_deployable(plan));
            }
            Ok(if detailed_exitcode && !plan.is_empty() {
                ExitCode::from(EXIT_CHANGES)
            } else {
                ExitCode::SUCCESS
            })
        }
        Mode::Sync { dry_run } => {
            write!(stdout, "{}", render_text(plan, registry, deploy))?;
            stdout.flush()?;
            deletion_guard(plan, config, guard)?;
            let failures = apply(&prepared, config, dry_run);
            let failed = |action| failures.iter().filter(|(a, _)| *a == action).count();
            let done = [Action::Create, Action::Update, Action::Delete]
                .map(|action| plan.count(action) - failed(action));
            writeln!(
                stdout,
                "{}",
                summary_line(plan, done, failures.len(), dry_run)
            )?;
            log::debug!(
                "requests: MLflow {}, Kubernetes {} ({} writes)",
                prepared.mlflow_requests,
                prepared.kube.requests_sent(),
                prepared.kube.writes_sent()
            );
            if !failures.is_empty() {
                let n = plan.changes.len();
                anyhow::bail!(
                    "{} of {n} {} failed: {}",
                    failures.len(),
                    if n == 1 { "change" } else { "changes" },
                    failures
                        .iter()
                        .map(|(_, f)| f.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
            if !plan.errors.is_empty() {
                return Err(not_deployable(plan));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes one change: the body of a create or update is rendered now, so no more than
/// `concurrency` bodies exist at once.
async fn write_change(
    prepared: &Prepared,
    config: &Config,
    change: &Change,
    dry_run: bool,
) -> Result<()> {
    let kube = &prepared.kube;
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
/// Returns the failures, each with its action and a message naming its object.
fn apply(prepared: &Prepared, config: &Config, dry_run: bool) -> Vec<(Action, String)> {
    // Only failures are kept: a cold sync of tens of thousands of objects keeps no per-object
    // result.
    let mut failures: Vec<(Action, String)> = prepared.runtime.block_on(
        stream::iter(&prepared.plan.changes)
            .map(|change| async move {
                let result = write_change(prepared, config, change, dry_run).await;
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
                result
                    .err()
                    .map(|e| (change.action, format!("{}: {e:#}", change.name)))
            })
            .buffer_unordered(config.concurrency)
            .filter_map(|failure| async move { failure })
            .collect(),
    );
    failures.sort_by(|a, b| a.1.cmp(&b.1));
    failures
}
