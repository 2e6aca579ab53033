//! From parsed arguments to a finished command: plain values for the layers below, the
//! command run, its result printed, and the exit code.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Parser;

use super::metrics_file::{namespace_given, RunRecord};
use super::{
    completion, render, Cli, Command, FeedbackArgs, GlobalArgs, GuardArgs, OutputFormat, PlanArgs,
    ScopeArgs, ServeArgs, SyncArgs, WebhookCommand,
};
use crate::commands::register::{register, Registration};
use crate::commands::{self, PlanRun};
use crate::config::{process_env, Config, Inputs};
use crate::engine::apply::SyncOptions;
use crate::engine::apply::SyncOutcome;
use crate::engine::{not_deployable, Guard, Scope};
use crate::present::plan::{render_doc, render_text};
use crate::present::status;
use crate::present::sync::TextSync;
use crate::present::Doc;
use crate::receiver::{self, ReceiverOptions, TlsFiles};

/// Exit code of `plan --detailed-exitcode` when changes are pending.
const EXIT_CHANGES: u8 = 2;

/// The program: parses the command line, runs the command, prints what it did; the exit code.
pub fn main() -> ExitCode {
    // A panic anywhere ends the process (release builds abort on panic; this makes every
    // build do so): a receiver whose sync thread died must not go on acknowledging events.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(101);
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1, not clap's 2: `plan --detailed-exitcode` uses 2 for "changes".
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The long-running receiver logs logfmt lines; the one-shot commands plain ones.
    let receiver = matches!(&cli.command, Command::Webhook(w) if w.command.is_none());
    crate::logging::init(receiver);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn inputs(g: GlobalArgs) -> Inputs {
    Inputs {
        mlflow_host: g.mlflow_host,
        target: g.target,
        namespace: g.namespace,
        storage_root: g.storage_root,
        default_image: g.default_image,
        image_tag: g.image_tag,
        registry_secret: g.registry_secret,
        model_secret: g.model_secret,
        service_account: g.service_account,
        overlay: g.overlay,
        stages: g.stages,
        aliases: g.aliases,
        instance: g.instance,
        model_filter: g.model_filter,
        concurrency: g.concurrency,
        request_timeout: g.request_timeout,
        run_timeout: g.run_timeout,
        canary_deadline: g.canary_deadline,
        kubeconfig: g.kubeconfig,
        context: g.context,
        preflight: g.preflight,
        runtime_mlflow_version: g.runtime_mlflow_version,
        seldon_protocol: g.seldon_protocol,
    }
}

/// The document format of `-o`, or `None` for text.
fn machine(output: OutputFormat) -> Option<Doc> {
    match output {
        OutputFormat::Text => None,
        OutputFormat::Json => Some(Doc::Json),
        OutputFormat::Yaml => Some(Doc::Yaml),
    }
}

fn guard(g: &GuardArgs) -> Guard {
    Guard {
        allow_delete_all: g.allow_delete_all,
        max_deletes: g.max_deletes,
    }
}

fn scope(args: &ScopeArgs) -> Result<Scope> {
    match args.model.as_deref() {
        None => Ok(Scope::All),
        Some(name) if name.trim().is_empty() => bail!("--model needs a model name"),
        Some(name) => Ok(Scope::model(name)),
    }
}

/// `sync`'s options, checked against the run's deadline.
fn sync_options(args: &SyncArgs, config: &Config) -> Result<SyncOptions> {
    let wait = if args.wait {
        if args.dry_run {
            bail!("--wait (M2S_WAIT) cannot be combined with --dry-run (M2S_DRY_RUN): a dry run persists nothing to wait for");
        }
        let timeout = Duration::from_secs(args.wait_timeout);
        if args.wait_timeout == 0 || timeout >= config.run_timeout {
            bail!(
                "--wait-timeout (M2S_WAIT_TIMEOUT) must be at least 1 second and below the run's deadline M2S_RUN_TIMEOUT ({} s), not {}",
                config.run_timeout.as_secs(),
                args.wait_timeout
            );
        }
        Some(timeout)
    } else {
        None
    };
    Ok(feedback(&args.feedback, args.dry_run, wait))
}

fn feedback(f: &FeedbackArgs, dry_run: bool, wait: Option<Duration>) -> SyncOptions {
    SyncOptions {
        dry_run,
        wait,
        events: f.events,
        write_back: f.write_back,
    }
}

fn receiver_options(args: &ServeArgs) -> ReceiverOptions {
    ReceiverOptions {
        listen: args.listen.clone(),
        resync_interval: args.resync_interval,
        sync: feedback(&args.feedback, args.dry_run, None),
        guard: guard(&args.guard),
        sync_timeout: Duration::from_secs(args.sync_timeout),
        leader_election: args.leader_election,
        pod_name: process_env("POD_NAME"),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    // One TLS provider for kube and reqwest; a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Commands that need no configuration.
    match &cli.command {
        Command::Completion(c) => return completion::completion(c).map(|()| ExitCode::SUCCESS),
        Command::Man(m) => return completion::man(m).map(|()| ExitCode::SUCCESS),
        _ => {}
    }
    let record = run_record(&cli);
    let config = Config::from_inputs(&inputs(cli.global), &process_env);
    if let (Err(_), Some(record)) = (&config, &record) {
        record.failed();
    }
    let mut config = config?;
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    match cli.command {
        Command::Plan(p) => {
            start_watchdog(config.run_timeout);
            plan(&config, &p)
        }
        Command::Status(s) => {
            start_watchdog(config.run_timeout);
            let report = commands::status(&config)?;
            let now = k8s_openapi::jiff::Timestamp::now();
            let text = match machine(s.output) {
                None => status::render_text(&report, &config.deploy, now),
                Some(format) => status::render_doc(&report, &config.deploy, now, format),
            };
            print(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync(s) => sync_command(&mut config, &s, record),
        Command::Render(r) => {
            start_watchdog(config.run_timeout);
            render::render(&config, &r).map(|()| ExitCode::SUCCESS)
        }
        Command::Completion(_) | Command::Man(_) => unreachable!("handled before configuration"),
        Command::Webhook(w) => {
            let secret = receiver::secret_from_env(&process_env)?;
            match w.command {
                Some(WebhookCommand::Register(r)) => {
                    start_watchdog(config.run_timeout);
                    let done = register(&config, &r.url, r.dry_run, &secret)?;
                    print(&registration_text(&done)?)?;
                    Ok(ExitCode::SUCCESS)
                }
                // Long-running: no deadline for the process; each sync's requests time out.
                None => {
                    config.deploy.write_back = w.serve.feedback.write_back;
                    receiver::serve(config, &receiver_options(&w.serve), secret)
                        .map(|()| ExitCode::SUCCESS)
                }
            }
        }
    }
}

/// `sync --metrics-file` records every outcome, a configuration error included: started
/// before the configuration is checked, labelled with what was given.
fn run_record(cli: &Cli) -> Option<RunRecord> {
    let Command::Sync(s) = &cli.command else {
        return None;
    };
    let path = s.metrics_file.clone()?;
    let namespace = namespace_given(cli.global.namespace.as_deref());
    Some(RunRecord::start(path, &namespace, &cli.global.instance))
}

/// `m2s sync` under its deadline, its outcome written to `--metrics-file` when asked (also
/// when the deadline stops it).
fn sync_command(
    config: &mut Config,
    args: &SyncArgs,
    record: Option<RunRecord>,
) -> Result<ExitCode> {
    let record = record.map(|r| r.labelled(&config.deploy));
    start_watchdog_recording(config.run_timeout, record.clone());
    let mut outcome = None;
    let result = sync_options(args, config).and_then(|options| {
        config.deploy.write_back = options.write_back;
        sync(config, &options, args, &mut outcome)
    });
    let Some(record) = record else {
        return result;
    };
    let written = record.finish(result.is_ok(), outcome.as_ref());
    // The run's own error wins over one writing the file.
    result.and_then(|code| written.map(|()| code))
}

pub(super) fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// A CronJob pod must never hang: past the deadline the process ends with an error. Every
/// write m2s sends is a single atomic request, so stopping at any point leaves no half object.
fn start_watchdog(deadline: Duration) {
    start_watchdog_recording(deadline, None);
}

/// The watchdog of a run that records its metrics: a stopped run is a failed one.
fn start_watchdog_recording(deadline: Duration, record: Option<RunRecord>) {
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        eprintln!(
            "error: the run exceeded its deadline of {}s (M2S_RUN_TIMEOUT); stopped",
            deadline.as_secs()
        );
        if let Some(record) = record {
            record.failed();
        }
        std::process::exit(1);
    });
}

/// What a scoped run says when its model is not there: nothing was read from Kubernetes.
fn model_absent_note(config: &Config, scope: &Scope) -> String {
    let filter = config
        .mlflow
        .model_filter
        .as_deref()
        .map(|f| format!(" or outside M2S_MODEL_FILTER {f:?}"))
        .unwrap_or_default();
    format!(
        "Model {:?} was not returned by MLflow (deleted, renamed{filter}): nothing changed; a full sync handles its deployments.",
        scope.model_name()
    )
}

fn plan(config: &Config, args: &PlanArgs) -> Result<ExitCode> {
    let scope = scope(&args.scope)?;
    let PlanRun {
        registry,
        plan,
        refusal,
        model_absent,
    } = commands::plan(config, guard(&args.guard), &scope)?;
    let deploy = &config.deploy;
    if model_absent {
        let note = model_absent_note(config, &scope);
        match machine(args.output) {
            Some(format) => {
                log::warn!("{note}");
                print(&render_doc(&plan, &registry, deploy, None, format))?;
            }
            None => print(&format!("{note}\n"))?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    match machine(args.output) {
        None => print(&render_text(&plan, &registry, deploy))?,
        Some(format) => print(&render_doc(
            &plan,
            &registry,
            deploy,
            refusal.as_ref(),
            format,
        ))?,
    }
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    if !plan.errors.is_empty() {
        bail!(not_deployable(&plan));
    }
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        ExitCode::from(EXIT_CHANGES)
    } else {
        ExitCode::SUCCESS
    })
}

/// `sync`; `outcome` gets the sync's outcome once it has one (for `--metrics-file`).
fn sync(
    config: &Config,
    options: &SyncOptions,
    args: &SyncArgs,
    outcome: &mut Option<SyncOutcome>,
) -> Result<ExitCode> {
    let scope = scope(&args.scope)?;
    let mut view = TextSync {
        out: std::io::stdout().lock(),
    };
    let run = commands::sync(config, options, guard(&args.guard), &scope, &mut view)?;
    outcome.clone_from(&run.outcome);
    let Some(outcome) = run.outcome else {
        writeln!(view.out, "{}", model_absent_note(config, &scope))?;
        return Ok(ExitCode::SUCCESS);
    };
    let problems = outcome.problems(config.deploy.target.resource());
    if !problems.is_empty() {
        bail!(problems.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

fn registration_text(done: &Registration) -> Result<String> {
    Ok(match done {
        Registration::Planned { what, body } => format!(
            "Would {what} with:\n{}\nand \"secret\" set to M2S_WEBHOOK_SECRET (not shown). Nothing was changed.\n",
            serde_json::to_string_pretty(body)?
        ),
        Registration::Done {
            verb,
            webhook,
            events,
            found_after_lost_answer,
            removed,
        } => {
            let mut text = format!(
                "{verb} webhook {:?} (id {}): {} → {} ({})\n",
                webhook.name,
                webhook.webhook_id,
                events.join(", "),
                webhook.url,
                webhook.status.as_deref().unwrap_or("ACTIVE")
            );
            if *found_after_lost_answer {
                text.push_str("MLflow's answer to the create was lost; the webhook was found by its name and updated.\n");
            }
            if !removed.is_empty() {
                text.push_str(&format!(
                    "Deleted {} other webhook{} of the same name (id {}): one webhook per instance.\n",
                    removed.len(),
                    if removed.len() == 1 { "" } else { "s" },
                    removed.join(", ")
                ));
            }
            text
        }
    })
}
