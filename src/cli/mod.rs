//! The command line: every setting is a flag and an `M2S_*` environment variable; flags win.
//! These definitions are the one source of the configuration reference
//! (`docs/reference/configuration.md` is generated from them). [`main`] parses them, turns them
//! into plain values and runs the command.

mod completion;
mod metrics_file;
mod render;
mod run;

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

pub use run::main;

/// The command line's definition, for generated documentation (the configuration reference,
/// the man page, shell completions).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Settings read from the environment only (secrets, and MLflow's own client variables, as
/// MLflow's Python client reads them), with their meaning: the configuration reference lists
/// them beside the flags.
pub const ENVIRONMENT_ONLY: &[(&str, &str)] = &[
    (
        "MLFLOW_TRACKING_URI",
        "MLflow URL when M2S_MLFLOW_HOST and --mlflow-host are unset.",
    ),
    (
        "MLFLOW_TRACKING_TOKEN",
        "Bearer token for MLflow (wins over a username).",
    ),
    (
        "MLFLOW_TRACKING_USERNAME",
        "Basic-auth user name for MLflow (with MLFLOW_TRACKING_PASSWORD).",
    ),
    (
        "MLFLOW_TRACKING_PASSWORD",
        "Basic-auth password for MLflow.",
    ),
    (
        "MLFLOW_TRACKING_INSECURE_TLS",
        "true: skip verifying MLflow's TLS certificate (not with MLFLOW_TRACKING_SERVER_CERT_PATH).",
    ),
    (
        "MLFLOW_TRACKING_SERVER_CERT_PATH",
        "PEM file of the CA (or certificate) MLflow's TLS certificate is verified against.",
    ),
    (
        "M2S_NAMESPACE",
        "Namespace of the serving objects (--namespace wins).",
    ),
    (
        "M2S_SELDON_DEPLOYMENT_NS",
        "The old name of M2S_NAMESPACE, still read; both set and different is an error.",
    ),
    (
        "M2S_SELDON_NEURO_DEF_IMAGE",
        "Deprecated name of M2S_SELDON_DEF_IMAGE, still read with a warning.",
    ),
    (
        "M2S_WEBHOOK_SECRET",
        "The secret MLflow signs webhook deliveries with (m2s webhook and webhook register); never a flag, so that it does not show in the process list.",
    ),
    (
        "M2S_SRC_NEURO_CLUSTER",
        "Refused at start: a setting of the old Neu.ro service that means nothing to m2s; remove it.",
    ),
    (
        "POD_NAME",
        "The receiver's name in the Lease (the chart sets it from the pod's name; default: the host name).",
    ),
    (
        "RUST_LOG",
        "Log filter, e.g. info, debug, m2s=debug,info (default info).",
    ),
];

#[derive(Debug, Parser)]
#[command(
    name = "m2s",
    version = crate::build_info::LONG_VERSION,
    about = "Keeps model deployments on Kubernetes in step with an MLflow Model Registry",
    long_about = "Keeps model deployments on Kubernetes in step with an MLflow Model Registry.\n\n\
        Every registered model version in a deployed stage (or pointed at by a deployed alias) \
        gets a serving object (a Seldon Core SeldonDeployment, a KServe InferenceService or a \
        Seldon Core 2 Model: --target); moving the stage or alias updates it, removing it \
        deletes it. Each run reads MLflow once, diffs against the objects labelled as its own, \
        applies and exits: run it on a schedule (the Helm chart's CronJob does)."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Make the serving objects match the registry, then exit.
    Sync(SyncArgs),
    /// Show what `sync` would change, without changing anything.
    Plan(PlanArgs),
    /// Show every object m2s manages: whether it serves, and whether it matches the registry.
    Status(StatusArgs),
    /// Receive MLflow registry webhooks and sync the model each event names, within about a
    /// second; a full sync at start and every --resync-interval catches what no event reports.
    Webhook(WebhookArgs),
    /// Write every object `sync` would create as YAML files, plus a kustomization.yaml, into a
    /// directory for Argo CD or Flux to apply (GitOps); reads MLflow only, never the cluster.
    Render(render::RenderArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(completion::CompletionArgs),
    /// Print the man page m2s(1), or write a page for every command into a directory.
    Man(completion::ManArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Send every write with server-side dry run (dryRun=All): validated, nothing persisted.
    #[arg(long, env = "M2S_DRY_RUN")]
    pub(crate) dry_run: bool,
    /// After applying, wait until every created or updated object is Available; exit 1 naming
    /// each one that failed or was not ready in time (needs RBAC verb "watch").
    #[arg(long, env = "M2S_WAIT")]
    pub(crate) wait: bool,
    /// How long --wait waits, in seconds (below M2S_RUN_TIMEOUT).
    #[arg(
        long,
        value_name = "SECS",
        env = "M2S_WAIT_TIMEOUT",
        default_value_t = 300
    )]
    pub(crate) wait_timeout: u64,
    #[command(flatten)]
    pub(crate) feedback: FeedbackArgs,
    #[command(flatten)]
    pub(crate) guard: GuardArgs,
    #[command(flatten)]
    pub(crate) scope: ScopeArgs,
    /// Write the run's metrics to this file (node-exporter textfile format), atomically and
    /// whatever the outcome: success, changes, entries not deployable, duration, last success.
    #[arg(long, value_name = "PATH", env = "M2S_METRICS_FILE")]
    pub(crate) metrics_file: Option<PathBuf>,
}

/// What a sync tells others about its work (`sync` and the webhook receiver).
#[derive(Debug, Args, Clone)]
pub(crate) struct FeedbackArgs {
    /// Record a Kubernetes Event about each change (create, update, delete, failed write) and
    /// each entry that cannot be deployed (needs RBAC verb "create" on events.events.k8s.io).
    #[arg(
        long,
        value_name = "BOOL",
        env = "M2S_EVENTS",
        default_value_t = true,
        action = ArgAction::Set
    )]
    pub(crate) events: bool,
    /// Write each object's state and URL back to MLflow, as tags m2s.<namespace>.<name>.state
    /// and .url on the model version it serves (needs MLflow's EDIT permission; the webhook
    /// receiver writes back on its periodic full syncs).
    #[arg(long, env = "M2S_WRITE_BACK")]
    pub(crate) write_back: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ScopeArgs {
    /// Sync only this registered model: read it alone from MLflow and touch only the objects
    /// whose names derive from it (no namespace-wide LIST). A model MLflow does not return
    /// (deleted, renamed, outside M2S_MODEL_FILTER) is left to a full sync.
    #[arg(long, value_name = "NAME")]
    pub(crate) model: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text, env = "M2S_STATUS_OUTPUT")]
    pub(crate) output: OutputFormat,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text, env = "M2S_PLAN_OUTPUT")]
    pub(crate) output: OutputFormat,
    /// Exit 0 when there are no changes, 2 when changes are pending, 1 on error.
    #[arg(long)]
    pub(crate) detailed_exitcode: bool,
    #[command(flatten)]
    pub(crate) guard: GuardArgs,
    #[command(flatten)]
    pub(crate) scope: ScopeArgs,
}

/// `m2s webhook`: the receiver, or `m2s webhook register`. The secret is only ever read from
/// M2S_WEBHOOK_SECRET (a flag would show in the process list).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct WebhookArgs {
    #[command(subcommand)]
    pub(crate) command: Option<WebhookCommand>,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCommand {
    /// Create or update this instance's webhook in MLflow (named after the instance and the
    /// namespace), subscribed to the events m2s acts on, with M2S_WEBHOOK_SECRET as its secret.
    Register(RegisterArgs),
}

#[derive(Debug, Args, Clone)]
pub(crate) struct ServeArgs {
    /// Address the receiver listens on (POST /webhook, GET /healthz, /readyz, /metrics).
    #[arg(
        long,
        value_name = "ADDR",
        env = "M2S_WEBHOOK_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub(crate) listen: String,
    /// Seconds between full syncs (the first runs at start): they catch what no event reports
    /// (stages, registered-model tags, deletions, lost deliveries).
    #[arg(
        long,
        value_name = "SECS",
        env = "M2S_RESYNC_INTERVAL",
        default_value_t = 300
    )]
    pub(crate) resync_interval: u64,
    /// Send every write with server-side dry run (dryRun=All): validated, nothing persisted.
    #[arg(long, env = "M2S_DRY_RUN")]
    pub(crate) dry_run: bool,
    /// Seconds a sync may run; past them it is abandoned (it sends nothing more) and counted as
    /// failed, and the receiver goes on with the next.
    #[arg(
        long,
        value_name = "SECS",
        env = "M2S_SYNC_TIMEOUT",
        default_value_t = 120
    )]
    pub(crate) sync_timeout: u64,
    /// Elect the replica that runs the periodic full sync (with its deletes and write-back) on
    /// the Lease <instance>-leader in the serving namespace (needs RBAC verbs get, create and
    /// update on leases.coordination.k8s.io); false: this replica runs it, for a single replica.
    #[arg(
        long,
        value_name = "BOOL",
        env = "M2S_LEADER_ELECTION",
        default_value_t = true,
        action = ArgAction::Set
    )]
    pub(crate) leader_election: bool,
    /// Serve HTTPS with this PEM certificate (chain), read again when it changes; with
    /// --tls-key (MLflow delivers only to https URLs by default).
    #[arg(
        long,
        value_name = "FILE",
        env = "M2S_WEBHOOK_TLS_CERT",
        requires = "tls_key"
    )]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "M2S_WEBHOOK_TLS_KEY",
        requires = "tls_cert"
    )]
    pub(crate) tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) feedback: FeedbackArgs,
    #[command(flatten)]
    pub(crate) guard: GuardArgs,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct RegisterArgs {
    /// URL MLflow delivers to: this receiver's POST /webhook, e.g. http://m2s.m2s-system.svc:8080/webhook.
    #[arg(long, value_name = "URL")]
    pub(crate) url: String,
    /// Print the request that would be sent (without the secret); change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub(crate) struct GuardArgs {
    /// Allow a run that deletes every object m2s manages (refused by default: an empty or
    /// unreadable registry looks the same).
    #[arg(long, env = "M2S_ALLOW_DELETE_ALL")]
    pub(crate) allow_delete_all: bool,
    /// Refuse a run that would delete more than this many objects.
    #[arg(long, value_name = "N", env = "M2S_MAX_DELETES")]
    pub(crate) max_deletes: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Text,
    Json,
    Yaml,
}

/// Settings of every command.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct GlobalArgs {
    /// MLflow tracking server URL (falls back to MLFLOW_TRACKING_URI).
    #[arg(long, global = true, value_name = "URL", env = "M2S_MLFLOW_HOST")]
    pub(crate) mlflow_host: Option<String>,
    /// Serving stack: seldon-v1 (SeldonDeployment), kserve (InferenceService) or seldon-v2
    /// (Seldon Core 2 Model).
    #[arg(
        long,
        global = true,
        value_name = "TARGET",
        env = "M2S_TARGET",
        default_value = "seldon-v1"
    )]
    pub(crate) target: String,
    /// Namespace of the serving objects [env: M2S_NAMESPACE, or the old M2S_SELDON_DEPLOYMENT_NS].
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub(crate) namespace: Option<String>,
    /// URI prefix under which the serving pods read MLflow's artifact root
    /// (e.g. s3://bucket/mlruns, pvc://mlflow-artifacts/mlruns).
    #[arg(
        long,
        global = true,
        value_name = "URI",
        env = "M2S_MLFLOW_STORAGE_ROOT"
    )]
    pub(crate) storage_root: Option<String>,
    /// Serving image for every model (default: the stack's own MLflow server image)
    /// [deprecated alias: M2S_SELDON_NEURO_DEF_IMAGE].
    #[arg(
        long,
        global = true,
        value_name = "IMAGE",
        env = "M2S_SELDON_DEF_IMAGE"
    )]
    pub(crate) default_image: Option<String>,
    /// Registered-model tag whose value overrides the serving image for that model.
    #[arg(
        long,
        global = true,
        value_name = "TAG",
        env = "M2S_MLFLOW_DEPLOY_IMG_TAG",
        default_value = "deployment-image"
    )]
    pub(crate) image_tag: String,
    /// imagePullSecret for the serving pods.
    #[arg(
        long,
        global = true,
        value_name = "SECRET",
        env = "M2S_REGISTRY_SECRET"
    )]
    pub(crate) registry_secret: Option<String>,
    /// Secret with the storage credentials (Seldon envSecretRefName, Seldon Core 2 secretName).
    #[arg(long, global = true, value_name = "SECRET", env = "M2S_MODEL_SECRET")]
    pub(crate) model_secret: Option<String>,
    /// ServiceAccount of the serving pods (KServe reads storage credentials through it).
    #[arg(long, global = true, value_name = "NAME", env = "M2S_SERVICE_ACCOUNT")]
    pub(crate) service_account: Option<String>,
    /// YAML or JSON merge patch (RFC 7386) applied to every object m2s renders.
    #[arg(long, global = true, value_name = "FILE", env = "M2S_OVERLAY")]
    pub(crate) overlay: Option<PathBuf>,
    /// Seldon Core 1 only: seldon (Seldon's mlflowserver image; objects as before) or v2
    /// (spec.protocol: v2, served by MLServer) [default: seldon].
    #[arg(
        long,
        global = true,
        value_name = "PROTOCOL",
        env = "M2S_SELDON_PROTOCOL"
    )]
    pub(crate) seldon_protocol: Option<String>,
    /// Before an object is created or moved to another version, read that version's MLmodel
    /// through MLflow and refuse it when the serving runtime cannot load it (the object keeps
    /// serving the version it has).
    #[arg(
        long,
        global = true,
        value_name = "BOOL",
        env = "M2S_PREFLIGHT",
        default_value_t = true,
        action = ArgAction::Set
    )]
    pub(crate) preflight: bool,
    /// The MLflow release the serving runtime loads models with, e.g. 2.19.0 (default: what
    /// the target's stack ships: kserve 2.10.2, seldon-v2 2.19.0, seldon-v1 2.22.5 with
    /// protocol seldon and 2.4.2 with v2); set it when the serving image is another.
    #[arg(
        long,
        global = true,
        value_name = "VERSION",
        env = "M2S_RUNTIME_MLFLOW_VERSION"
    )]
    pub(crate) runtime_mlflow_version: Option<String>,
    /// Stages to deploy, comma separated.
    #[arg(
        long,
        global = true,
        value_name = "LIST",
        env = "M2S_STAGES",
        default_value = "Staging,Production"
    )]
    pub(crate) stages: String,
    /// Aliases to deploy, comma separated; `*` deploys every alias.
    #[arg(
        long,
        global = true,
        value_name = "LIST",
        env = "M2S_ALIASES",
        default_value = ""
    )]
    pub(crate) aliases: String,
    /// Value of the m2s.io/instance label, so several m2s can share a namespace.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "M2S_INSTANCE",
        default_value = "m2s"
    )]
    pub(crate) instance: String,
    /// MLflow search filter for registered models, e.g. "name LIKE 'team-a-%'".
    #[arg(long, global = true, value_name = "FILTER", env = "M2S_MODEL_FILTER")]
    pub(crate) model_filter: Option<String>,
    /// Kubernetes writes (and MLflow look-ups) in flight at once.
    #[arg(
        long,
        global = true,
        value_name = "N",
        env = "M2S_CONCURRENCY",
        default_value_t = 16
    )]
    pub(crate) concurrency: usize,
    /// A canary step whose new version is not Available within this is aborted (progressive
    /// rollout, the m2s.canary tag): 90s, 15m, 1h.
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        env = "M2S_CANARY_DEADLINE",
        default_value = "15m"
    )]
    pub(crate) canary_deadline: String,
    /// Timeout of each network request, in seconds.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        env = "M2S_REQUEST_TIMEOUT",
        default_value_t = 30
    )]
    pub(crate) request_timeout: u64,
    /// Deadline of the whole run, in seconds: past it the run stops with an error.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        env = "M2S_RUN_TIMEOUT",
        default_value_t = 600
    )]
    pub(crate) run_timeout: u64,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the in-cluster service account).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use instead of the current one (as kubectl's --context).
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) context: Option<String>,
}
