//! One run: read MLflow, list the cluster, plan, then print or apply.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{stream, StreamExt};

use crate::artifacts::ArtifactLocation;
use crate::cli::{Cli, Command, GuardArgs, OutputFormat};
use crate::config::{process_env, Config};
use crate::desired::{entries, recorded_location, render, Desired, EntryError};
use crate::k8s::{self, Kube};
use crate::mlflow::{EntryResult, MlflowClient};
use crate::output::{render_json, render_text};
use crate::plan::{check_deletion_guard, compute, Action, Plan};

/// Registry entries rendered and compared at a time (see `prepare`).
const PLAN_CHUNK: usize = 256;

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

struct Prepared {
    plan: Plan,
    kube: Kube,
    runtime: tokio::runtime::Runtime,
    mlflow_requests: u64,
}

/// Reads both sides and computes the plan. Nothing is written here.
fn prepare(config: &Config) -> Result<Prepared> {
    let started = Instant::now();
    let deploy = &config.deploy;
    let mlflow = MlflowClient::new(&config.mlflow)?;
    // MLflow first, outside the async runtime (reqwest's blocking client must not run inside it).
    let snapshot = mlflow
        .snapshot(config.mlflow.model_filter.as_deref())
        .context("reading the MLflow model registry; nothing was changed")?;
    let (wanted, mut errors) = entries(&snapshot, deploy);
    log::info!(
        "registry: {} registered models, {} deployments wanted ({} in error)",
        snapshot.models.len(),
        wanted.len() + errors.len(),
        errors.len()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (client, server) = runtime.block_on(k8s::connect(
        config.kubeconfig.as_deref(),
        config.request_timeout,
    ))?;
    let kube = Kube::new(client, &deploy.namespace, server);
    let actual = runtime.block_on(kube.list_owned(&deploy.instance))?;
    log::info!(
        "cluster: {} SeldonDeployments owned by instance {:?} in namespace {:?}",
        actual.len(),
        deploy.instance,
        deploy.namespace
    );

    // Versions already deployed need no MLflow look-ups: their location is recorded on the object.
    let actual_by_name: BTreeMap<&str, _> = actual.iter().map(|a| (a.name.as_str(), a)).collect();
    let mut locations: Vec<Option<EntryResult<ArtifactLocation>>> = wanted
        .iter()
        .map(|e| {
            actual_by_name
                .get(e.name.as_str())
                .and_then(|a| recorded_location(e, &a.annotations))
                .map(Ok)
        })
        .collect();
    let missing: Vec<usize> = (0..wanted.len())
        .filter(|&i| locations[i].is_none())
        .collect();
    let versions: Vec<_> = missing.iter().map(|&i| wanted[i].version.clone()).collect();
    let resolved = mlflow
        .resolve_all(&versions)
        .context("reading model versions from MLflow; nothing was changed")?;
    for (i, r) in missing.into_iter().zip(resolved) {
        locations[i] = Some(r);
    }

    let registry_models: BTreeSet<&str> = snapshot.models.iter().map(|m| m.name.as_str()).collect();
    // Render and compare a range of names at a time: the plan of a name depends only on the
    // entry, the object and the errors of that name, so the result is the same as all at once,
    // but the rendered objects of a large registry never all exist together (rendered all at
    // once, they were the peak of memory; a no-op run now keeps none of them).
    debug_assert!(wanted.windows(2).all(|w| w[0].name < w[1].name));
    debug_assert!(actual.windows(2).all(|w| w[0].name <= w[1].name));
    let mut locations = locations.into_iter();
    let mut plan = Plan::default();
    let mut start = 0;
    loop {
        let end = (start + PLAN_CHUNK).min(wanted.len());
        let lo = (start > 0).then(|| wanted[start].name.as_str());
        let hi = wanted.get(end).map(|e| e.name.as_str());
        let in_range = |name: &str| lo.is_none_or(|l| name >= l) && hi.is_none_or(|h| name < h);
        let mut desired: Vec<Desired> = Vec::with_capacity(end - start);
        for (entry, location) in wanted[start..end].iter().zip(locations.by_ref()) {
            let rendered = location
                .expect("every entry resolved")
                .and_then(|loc| render(entry, &loc, deploy));
            match rendered {
                Ok(d) => desired.push(d),
                Err(message) => errors.push(EntryError {
                    name: entry.name.clone(),
                    model: entry.model.clone(),
                    selector: entry.selector.clone(),
                    version: Some(entry.version.version.clone()),
                    message,
                }),
            }
        }
        // `actual` is sorted by name (list_owned), like `wanted` (entries).
        let first = actual.partition_point(|a| lo.is_some_and(|l| a.name.as_str() < l));
        let last = actual.partition_point(|a| hi.is_none_or(|h| a.name.as_str() < h));
        let held = errors
            .iter()
            .filter(|e| in_range(&e.name))
            .cloned()
            .collect();
        let part = compute(
            &desired,
            held,
            &actual[first..last],
            deploy,
            &registry_models,
        );
        plan.changes.extend(part.changes);
        plan.unchanged.extend(part.unchanged);
        plan.managed += part.managed;
        if end == wanted.len() {
            break;
        }
        start = end;
    }
    plan.errors = errors;

    // A name that is free of our objects may still be taken by someone else's.
    if plan.count(Action::Create) > 0 {
        let taken = runtime.block_on(kube.foreign_names(&deploy.instance))?;
        let (foreign, keep): (Vec<_>, Vec<_>) = plan
            .changes
            .drain(..)
            .partition(|c| c.action == Action::Create && taken.contains(&c.name));
        plan.changes = keep;
        for c in foreign {
            plan.errors.push(EntryError {
                name: c.name.clone(),
                model: c.model.clone().unwrap_or_default(),
                selector: c.selector.clone().expect("creates have a selector"),
                version: c.version.clone(),
                message: format!(
                    "a SeldonDeployment named {:?} already exists in namespace {:?} and is not managed by m2s instance {:?}; m2s leaves it alone",
                    c.name, deploy.namespace, deploy.instance
                ),
            });
        }
        plan.errors.sort_by(|a, b| a.name.cmp(&b.name));
    }
    log::debug!(
        "planned in {:.2?}: {} MLflow requests, {} Kubernetes requests",
        started.elapsed(),
        mlflow.requests_sent(),
        kube.requests_sent()
    );
    let mlflow_requests = mlflow.requests_sent();
    Ok(Prepared {
        plan,
        kube,
        runtime,
        mlflow_requests,
    })
}

/// The deletion guard; its refusal names the registry that was read, since a wrong URL or
/// filter is the usual reason a registry asks for nothing.
fn deletion_guard(plan: &Plan, config: &Config, guard: &GuardArgs) -> Result<()> {
    check_deletion_guard(
        plan,
        &config.deploy.namespace,
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

fn execute(config: &Config, mode: Mode, guard: &GuardArgs) -> Result<ExitCode> {
    let prepared = prepare(config)?;
    let plan = &prepared.plan;
    let ns = &config.deploy.namespace;
    let mut stdout = std::io::stdout().lock();
    match mode {
        Mode::Plan {
            output,
            detailed_exitcode,
        } => {
            match output {
                OutputFormat::Text => write!(stdout, "{}", render_text(plan, ns))?,
                OutputFormat::Json => {
                    write!(stdout, "{}", render_json(plan, ns, &config.deploy.instance))?
                }
            }
            stdout.flush()?;
            deletion_guard(plan, config, guard)?;
            if !plan.errors.is_empty() {
                anyhow::bail!(
                    "{} registry entries cannot be deployed (listed above)",
                    plan.errors.len()
                );
            }
            Ok(if detailed_exitcode && !plan.is_empty() {
                ExitCode::from(EXIT_CHANGES)
            } else {
                ExitCode::SUCCESS
            })
        }
        Mode::Sync { dry_run } => {
            write!(stdout, "{}", render_text(plan, ns))?;
            stdout.flush()?;
            deletion_guard(plan, config, guard)?;
            let failures = apply(&prepared, config.concurrency, dry_run);
            let summary =
                format!(
                "{}{} created, {} updated, {} deleted, {} unchanged, {} failed, {} not deployable.",
                if dry_run { "Dry run (nothing persisted): " } else { "Sync: " },
                plan.count(Action::Create),
                plan.count(Action::Update),
                plan.count(Action::Delete),
                plan.unchanged.len(),
                failures.len(),
                plan.errors.len()
            );
            writeln!(stdout, "{summary}")?;
            log::debug!(
                "requests: MLflow {}, Kubernetes {} ({} writes)",
                prepared.mlflow_requests,
                prepared.kube.requests_sent(),
                prepared.kube.writes_sent()
            );
            if !failures.is_empty() {
                anyhow::bail!(
                    "{} of {} changes failed: {}",
                    failures.len(),
                    plan.changes.len(),
                    failures.join("; ")
                );
            }
            if !plan.errors.is_empty() {
                anyhow::bail!(
                    "{} registry entries cannot be deployed (listed above)",
                    plan.errors.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Applies every change with bounded concurrency; one failure does not stop the others.
/// Returns the failures, each naming its object.
fn apply(prepared: &Prepared, concurrency: usize, dry_run: bool) -> Vec<String> {
    let kube = &prepared.kube;
    let results: Vec<(String, Result<()>)> = prepared.runtime.block_on(
        stream::iter(&prepared.plan.changes)
            .map(|change| async move {
                let result = match change.action {
                    Action::Create | Action::Update => kube.apply(change, dry_run).await,
                    Action::Delete => kube.delete(change, dry_run).await,
                };
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
            .buffer_unordered(concurrency)
            .collect(),
    );
    let mut failures: Vec<String> = results
        .into_iter()
        .filter_map(|(name, r)| r.err().map(|e| format!("{name}: {e:#}")))
        .collect();
    failures.sort();
    failures
}
