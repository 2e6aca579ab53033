//! The commands: `sync` and `plan` (one-shot, optionally of one model), `status`, and
//! `webhook` (the long-running receiver, or `webhook register`).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use crate::cli::{Cli, Command, GuardArgs, OutputFormat, ScopeArgs, WebhookCommand};
use crate::config::{process_env, Config};
use crate::engine::{self, deletion_guard, not_deployable, Prepared, Scope};
use crate::output::{render_json, render_text};
use crate::sync::SyncOptions;
use crate::webhook;

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
    let (mode, guard, scope) = match cli.command {
        Command::Plan(p) => (
            Mode::Plan {
                output: p.output,
                detailed_exitcode: p.detailed_exitcode,
            },
            p.guard,
            p.scope,
        ),
        Command::Status(s) => (
            Mode::Status { output: s.output },
            GuardArgs::default(),
            ScopeArgs::default(),
        ),
        Command::Sync(s) => {
            let options = SyncOptions::from_args(&s, &config)?;
            config.deploy.write_back = options.write_back;
            (Mode::Sync(options), s.guard, s.scope)
        }
        Command::Webhook(w) => {
            let secret = webhook::secret_from_env(&process_env)?;
            return match w.command {
                Some(WebhookCommand::Register(r)) => {
                    start_watchdog(config.run_timeout);
                    webhook::register(&config, &r, &secret)?;
                    Ok(ExitCode::SUCCESS)
                }
                // Long-running: no deadline for the process; each sync's requests time out.
                None => {
                    config.deploy.write_back = w.serve.feedback.write_back;
                    webhook::serve(config, &w.serve, secret).map(|()| ExitCode::SUCCESS)
                }
            };
        }
    };
    start_watchdog(config.run_timeout);
    execute(&config, mode, &guard, &scope_of(&scope)?)
}

fn scope_of(args: &ScopeArgs) -> Result<Scope> {
    match args.model.as_deref() {
        None => Ok(Scope::All),
        Some(name) if name.trim().is_empty() => anyhow::bail!("--model needs a model name"),
        Some(name) => Ok(Scope::model(name)),
    }
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

/// What a scoped run says when its model is not there: nothing was read from Kubernetes.
fn model_absent_note(config: &Config, scope: &Scope) -> String {
    let Scope::Model { name, .. } = scope else {
        return String::new();
    };
    let filter = config
        .mlflow
        .model_filter
        .as_deref()
        .map(|f| format!(" or outside M2S_MODEL_FILTER {f:?}"))
        .unwrap_or_default();
    format!(
        "Model {name:?} was not returned by MLflow (deleted, renamed{filter}): nothing changed; a full sync handles its deployments."
    )
}

fn execute(config: &Config, mode: Mode, guard: &GuardArgs, scope: &Scope) -> Result<ExitCode> {
    let options = match &mode {
        Mode::Status { output } => return engine::status(config, *output),
        Mode::Sync(options) => Some(options.clone()),
        Mode::Plan { .. } => None,
    };
    // Write-back needs every object's state: a full sync only.
    let with_states = options
        .as_ref()
        .is_some_and(|o| o.write_back && *scope == Scope::All);
    let prepared = engine::prepare(config, scope, with_states)?;
    if prepared.model_absent {
        let note = model_absent_note(config, scope);
        let mut stdout = std::io::stdout().lock();
        match mode {
            Mode::Plan {
                output: OutputFormat::Json,
                ..
            } => {
                log::warn!("{note}");
                let p = &prepared;
                write!(
                    stdout,
                    "{}",
                    render_json(&p.plan, &p.registry, &config.deploy, None)
                )?;
            }
            _ => writeln!(stdout, "{note}")?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    match (mode, options) {
        (Mode::Sync(_), Some(options)) => {
            crate::sync::sync(prepared, config, &options, guard, scope)
        }
        (
            Mode::Plan {
                output,
                detailed_exitcode,
            },
            _,
        ) => print_plan(&prepared, config, guard, scope, output, detailed_exitcode),
        _ => unreachable!("status returned above"),
    }
}

fn print_plan(
    prepared: &Prepared,
    config: &Config,
    guard: &GuardArgs,
    scope: &Scope,
    output: OutputFormat,
    detailed_exitcode: bool,
) -> Result<ExitCode> {
    let (plan, registry, deploy) = (&prepared.plan, &prepared.registry, &config.deploy);
    let mut stdout = std::io::stdout().lock();
    let guard_result = deletion_guard(plan, config, guard, scope);
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
