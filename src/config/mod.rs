//! Validated configuration: everything is checked here, before any network call.

pub mod overlay;
mod runtime;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::Url;

use crate::image::validate_image_reference;
use crate::naming::is_dns1123_label;
use crate::targets::{self, Protocol, Setting, Target};
use overlay::Overlay;
pub(crate) use runtime::PreflightConfig;
use runtime::{preflight_config, protocol};

/// Stages MLflow's registry knows; only the first two are sensible to deploy, but `Archived`
/// is accepted for teams that serve archived versions for a while.
const KNOWN_STAGES: [&str; 3] = ["Staging", "Production", "Archived"];

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum MlflowAuth {
    None,
    Bearer(String),
    Basic { username: String, password: String },
}

impl fmt::Debug for MlflowAuth {
    // Never print the credentials themselves.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MlflowAuth::None => f.write_str("None"),
            MlflowAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            MlflowAuth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

/// Which aliases get a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AliasSelection {
    Listed(Vec<String>),
    All,
}

impl AliasSelection {
    pub(crate) fn includes(&self, alias: &str) -> bool {
        match self {
            AliasSelection::All => true,
            AliasSelection::Listed(list) => list.iter().any(|a| a == alias),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct MlflowConfig {
    /// Base URL, with any user:password taken out (moved to `auth`).
    pub(crate) url: Url,
    pub(crate) auth: MlflowAuth,
    pub(crate) insecure_tls: bool,
    pub(crate) server_cert: Option<PathBuf>,
    pub(crate) request_timeout: Duration,
    pub(crate) model_filter: Option<String>,
    pub(crate) concurrency: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct DeployConfig {
    /// The serving stack, and with it the kind of object m2s manages.
    pub(crate) target: &'static dyn Target,
    pub(crate) namespace: String,
    pub(crate) instance: String,
    pub(crate) storage_root: Option<String>,
    pub(crate) default_image: Option<String>,
    pub(crate) image_tag: String,
    pub(crate) registry_secret: Option<String>,
    pub(crate) model_secret: Option<String>,
    pub(crate) service_account: Option<String>,
    pub(crate) overlay: Option<Overlay>,
    pub(crate) stages: Vec<String>,
    pub(crate) aliases: AliasSelection,
    /// MLflow URL recorded on each object (credentials never included).
    pub(crate) mlflow_url: String,
    /// Write each object's state back to MLflow as tags (`sync --write-back`): the registry
    /// then keeps this namespace's write-back tags of the versions it reads.
    pub(crate) write_back: bool,
    /// The serving protocol m2s writes (`M2S_SELDON_PROTOCOL`); `None`: none set.
    pub(crate) protocol: Option<Protocol>,
}

impl DeployConfig {
    /// The settings m2s uses when only the namespace and the MLflow URL are given.
    #[cfg(test)]
    pub(crate) fn new(namespace: &str, mlflow_url: &str) -> DeployConfig {
        DeployConfig {
            target: targets::TARGETS[0],
            namespace: namespace.to_string(),
            instance: "m2s".into(),
            storage_root: None,
            default_image: None,
            image_tag: "deployment-image".into(),
            registry_secret: None,
            model_secret: None,
            service_account: None,
            overlay: None,
            stages: vec!["Staging".into(), "Production".into()],
            aliases: AliasSelection::Listed(vec![]),
            mlflow_url: mlflow_url.to_string(),
            write_back: false,
            protocol: None,
        }
    }

    /// The same settings for another target.
    #[cfg(test)]
    pub(crate) fn with_target(mut self, id: &str) -> DeployConfig {
        self.target = targets::by_id(id).expect("a known target");
        self
    }
}

/// A canary step not Available within this is aborted, unless `M2S_CANARY_DEADLINE` says.
pub(crate) const DEFAULT_CANARY_DEADLINE: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) mlflow: MlflowConfig,
    pub(crate) deploy: DeployConfig,
    pub(crate) preflight: PreflightConfig,
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use instead of the current one (`--context`).
    pub(crate) kube_context: Option<String>,
    pub(crate) concurrency: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) run_timeout: Duration,
    /// A canary step not Available within this is aborted (`M2S_CANARY_DEADLINE`).
    pub(crate) canary_deadline: Duration,
    /// Deprecated settings that were used, with what to use instead (logged at start).
    pub(crate) warnings: Vec<String>,
}

/// What the user gave (flags and `M2S_*` variables, defaults applied), before it is checked:
/// the command line fills it in; nothing here knows how.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inputs {
    pub(crate) mlflow_host: Option<String>,
    pub(crate) target: String,
    pub(crate) namespace: Option<String>,
    pub(crate) storage_root: Option<String>,
    pub(crate) default_image: Option<String>,
    pub(crate) image_tag: String,
    pub(crate) registry_secret: Option<String>,
    pub(crate) model_secret: Option<String>,
    pub(crate) service_account: Option<String>,
    pub(crate) overlay: Option<PathBuf>,
    pub(crate) stages: String,
    pub(crate) aliases: String,
    pub(crate) instance: String,
    pub(crate) model_filter: Option<String>,
    pub(crate) concurrency: usize,
    pub(crate) request_timeout: u64,
    pub(crate) run_timeout: u64,
    pub(crate) canary_deadline: String,
    pub(crate) kubeconfig: Option<PathBuf>,
    pub(crate) context: Option<String>,
    pub(crate) preflight: bool,
    pub(crate) runtime_mlflow_version: Option<String>,
    pub(crate) seldon_protocol: Option<String>,
}

/// Where MLflow's own client variables are read from; a function so tests need not touch the
/// process environment.
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    pub(crate) fn from_inputs(s: &Inputs, env: EnvLookup) -> Result<Config> {
        let mlflow = mlflow_config(s, env)?;
        let mut warnings = Vec::new();
        let deploy = deploy_config(s, env, &mlflow.url, &mut warnings)?;
        let preflight = preflight_config(s, &deploy)?;
        if s.concurrency == 0 || s.concurrency > 256 {
            bail!(
                "concurrency (M2S_CONCURRENCY) must be between 1 and 256, not {}",
                s.concurrency
            );
        }
        if s.request_timeout == 0 || s.run_timeout == 0 {
            bail!("M2S_REQUEST_TIMEOUT and M2S_RUN_TIMEOUT must be at least 1 second");
        }
        let canary_deadline = match s.canary_deadline.trim() {
            "" => DEFAULT_CANARY_DEADLINE,
            d => crate::settings::parse_duration(d)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| {
                    format!("M2S_CANARY_DEADLINE (--canary-deadline) {d:?} is not a duration above zero such as 90s, 15m or 1h")
                })?,
        };
        Ok(Config {
            mlflow,
            deploy,
            preflight,
            kubeconfig: s.kubeconfig.clone(),
            kube_context: optional(&s.context),
            concurrency: s.concurrency,
            request_timeout: Duration::from_secs(s.request_timeout),
            run_timeout: Duration::from_secs(s.run_timeout),
            canary_deadline,
            warnings,
        })
    }
}

/// Where MLflow is and how to reach it: the URL (credentials in it move to basic auth), then
/// MLflow's own client variables, as its Python client reads them.
fn mlflow_config(s: &Inputs, env: EnvLookup) -> Result<MlflowConfig> {
    let raw_url = s
        .mlflow_host
        .clone()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| env("MLFLOW_TRACKING_URI"))
        .context("no MLflow URL: set M2S_MLFLOW_HOST (or MLFLOW_TRACKING_URI, or --mlflow-host)")?;
    let (url, url_auth) = parse_mlflow_url(raw_url.trim())?;
    let auth = match (
        env("MLFLOW_TRACKING_TOKEN"),
        env("MLFLOW_TRACKING_USERNAME"),
    ) {
        (Some(token), _) => MlflowAuth::Bearer(token),
        (None, Some(username)) => MlflowAuth::Basic {
            username,
            password: env("MLFLOW_TRACKING_PASSWORD").unwrap_or_default(),
        },
        (None, None) => url_auth,
    };
    let insecure_tls = match env("MLFLOW_TRACKING_INSECURE_TLS").as_deref() {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
        Some(v) => bail!("MLFLOW_TRACKING_INSECURE_TLS must be true or false, not {v:?}"),
    };
    let server_cert = env("MLFLOW_TRACKING_SERVER_CERT_PATH").map(PathBuf::from);
    if insecure_tls && server_cert.is_some() {
        bail!("MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH are mutually exclusive");
    }
    Ok(MlflowConfig {
        url,
        auth,
        insecure_tls,
        server_cert,
        request_timeout: Duration::from_secs(s.request_timeout),
        model_filter: optional(&s.model_filter),
        concurrency: s.concurrency,
    })
}

/// What to deploy and where: target, namespace, selection, and the settings every object gets.
fn deploy_config(
    s: &Inputs,
    env: EnvLookup,
    url: &Url,
    warnings: &mut Vec<String>,
) -> Result<DeployConfig> {
    let target = targets::by_id(s.target.trim()).with_context(|| {
        format!(
            "unknown target {:?} (M2S_TARGET, --target); known: {}",
            s.target,
            targets::ids().join(", ")
        )
    })?;
    if env("M2S_SRC_NEURO_CLUSTER").is_some() {
        bail!("M2S_SRC_NEURO_CLUSTER names a Neu.ro platform cluster, which means nothing to m2s: remove it; m2s reads models from M2S_MLFLOW_HOST and writes to the cluster of its kubeconfig (or its in-cluster ServiceAccount)");
    }
    let (namespace, namespace_var) = namespace(s, env)?;
    if !is_dns1123_label(&namespace) {
        bail!("namespace {namespace:?} ({namespace_var}) is not a valid Kubernetes namespace name");
    }
    target
        .check_namespace(&namespace)
        .map_err(|e| anyhow::anyhow!("{e} ({namespace_var})"))?;
    let instance = s.instance.trim().to_string();
    if !is_label_value(&instance) || instance.is_empty() {
        bail!("instance {instance:?} (M2S_INSTANCE) is not a valid label value (letters, digits, '-', '_', '.', at most 63)");
    }
    let stages = parse_stages(&s.stages)?;
    let aliases = parse_aliases(&s.aliases)?;
    if stages.is_empty() && aliases == AliasSelection::Listed(vec![]) {
        bail!("nothing to deploy: M2S_STAGES and M2S_ALIASES are both empty");
    }
    let storage_root = optional(&s.storage_root).map(|r| r.trim_end_matches('/').to_string());
    if let Some(root) = &storage_root {
        refuse_platform_uri(root, "storage").context("M2S_MLFLOW_STORAGE_ROOT")?;
        check_storage_root(root, target)?;
    }
    let (default_image, image_var) = default_image(s, env, warnings)?;
    if let Some(image) = &default_image {
        refuse_platform_uri(image, "image")
            .and_then(|()| validate_image_reference(image))
            .with_context(|| format!("default image {image:?} ({image_var})"))?;
    }
    let image_tag = s.image_tag.trim().to_string();
    if image_tag.is_empty() {
        bail!("M2S_MLFLOW_DEPLOY_IMG_TAG must not be empty");
    }
    let registry_secret = object_name(&s.registry_secret, "M2S_REGISTRY_SECRET", "Secret")?;
    let model_secret = object_name(&s.model_secret, "M2S_MODEL_SECRET", "Secret")?;
    let service_account = object_name(&s.service_account, "M2S_SERVICE_ACCOUNT", "ServiceAccount")?;
    for (var, set, setting) in [
        (image_var, default_image.is_some(), Setting::Image),
        (
            "M2S_REGISTRY_SECRET",
            registry_secret.is_some(),
            Setting::RegistrySecret,
        ),
        (
            "M2S_MODEL_SECRET",
            model_secret.is_some(),
            Setting::ModelSecret,
        ),
        (
            "M2S_SERVICE_ACCOUNT",
            service_account.is_some(),
            Setting::ServiceAccount,
        ),
    ] {
        if set {
            refuse_without_counterpart(target, var, setting)?;
        }
    }
    let overlay = match &s.overlay {
        Some(path) if !path.as_os_str().is_empty() => Some(Overlay::load(path, target)?),
        _ => None,
    };
    let protocol = protocol(s, target, overlay.as_ref())?;
    Ok(DeployConfig {
        target,
        namespace,
        instance,
        storage_root,
        default_image,
        image_tag,
        registry_secret,
        model_secret,
        service_account,
        overlay,
        stages,
        aliases,
        mlflow_url: url.as_str().trim_end_matches('/').to_string(),
        write_back: false,
        protocol,
    })
}

/// The storage root must be a location the target's fetcher reads.
fn check_storage_root(root: &str, target: &dyn Target) -> Result<()> {
    if !targets::fetches(target, root) {
        bail!(
            "storage root {root:?} (M2S_MLFLOW_STORAGE_ROOT) must be a location target {} reads: {}",
            target.id(),
            targets::fetchable_list(target)
        );
    }
    Ok(())
}

/// An optional name of a Secret or ServiceAccount, checked against Kubernetes' name rules.
fn object_name(value: &Option<String>, var: &str, kind: &str) -> Result<Option<String>> {
    let name = optional(value);
    if let Some(v) = &name {
        if !is_dns1123_subdomain(v) {
            bail!("{var} {v:?} is not a valid {kind} name");
        }
    }
    Ok(name)
}

/// A platform setting the target's objects have no field for is refused, not ignored.
fn refuse_without_counterpart(target: &dyn Target, var: &str, setting: Setting) -> Result<()> {
    if target.fields().iter().any(|f| f.setting == setting) {
        return Ok(());
    }
    bail!(
        "{var} has no counterpart on target {} ({}){}",
        target.id(),
        target.resource().kind,
        target.no_counterpart_hint(setting)
    )
}

/// The namespace: `--namespace`, else `M2S_NAMESPACE` or the old service's
/// `M2S_SELDON_DEPLOYMENT_NS` (both set and different is an error); and where it came from.
fn namespace(s: &Inputs, env: EnvLookup) -> Result<(String, &'static str)> {
    if let Some(flag) = optional(&s.namespace) {
        return Ok((flag, "--namespace"));
    }
    let new = env("M2S_NAMESPACE")
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    let old = env("M2S_SELDON_DEPLOYMENT_NS")
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    match (new, old) {
        (Some(n), Some(o)) if n != o => bail!(
            "M2S_NAMESPACE ({n:?}) and M2S_SELDON_DEPLOYMENT_NS ({o:?}) are both set and differ: set only M2S_NAMESPACE"
        ),
        (Some(n), _) => Ok((n, "M2S_NAMESPACE")),
        (None, Some(o)) => Ok((o, "M2S_SELDON_DEPLOYMENT_NS")),
        (None, None) => bail!("no namespace: set M2S_NAMESPACE (or --namespace)"),
    }
}

/// The default image: `M2S_SELDON_DEF_IMAGE` (or `--default-image`), else the deprecated
/// `M2S_SELDON_NEURO_DEF_IMAGE`; and the variable it came from.
fn default_image(
    s: &Inputs,
    env: EnvLookup,
    warnings: &mut Vec<String>,
) -> Result<(Option<String>, &'static str)> {
    let current = optional(&s.default_image);
    let old = env("M2S_SELDON_NEURO_DEF_IMAGE")
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    match (current, old) {
        (Some(c), Some(o)) if c != o => bail!(
            "M2S_SELDON_DEF_IMAGE ({c:?}) and the deprecated M2S_SELDON_NEURO_DEF_IMAGE ({o:?}) are both set and differ: set only M2S_SELDON_DEF_IMAGE"
        ),
        (Some(c), _) => Ok((Some(c), "M2S_SELDON_DEF_IMAGE")),
        (None, Some(o)) => {
            warnings.push(
                "M2S_SELDON_NEURO_DEF_IMAGE is deprecated: use M2S_SELDON_DEF_IMAGE".to_string(),
            );
            Ok((Some(o), "M2S_SELDON_NEURO_DEF_IMAGE"))
        }
        (None, None) => Ok((None, "M2S_SELDON_DEF_IMAGE")),
    }
}

/// Refuses the old platform's `image:` and `storage:` URIs: they mean nothing outside it.
pub(crate) fn refuse_platform_uri(value: &str, kind: &str) -> Result<()> {
    let lower = value.trim().to_ascii_lowercase();
    if lower.starts_with(&format!("{kind}:")) {
        let instead = match kind {
            "image" => "a container registry reference such as registry.example.com/team/mlflow-server:1.0 (a Docker Hub repository named \"image\" is docker.io/library/image:<tag>)",
            _ => "a location the serving pods read, such as s3://bucket/mlruns or pvc://claim/mlruns",
        };
        bail!("{value:?} is a Neu.ro platform {kind}: URI, which means nothing outside that platform; use {instead}");
    }
    Ok(())
}

fn optional(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

/// Parses the MLflow URL; credentials in it are moved out so that they are never printed.
fn parse_mlflow_url(raw: &str) -> Result<(Url, MlflowAuth)> {
    let mut url = Url::parse(raw).map_err(|e| {
        anyhow::anyhow!(
            "MLflow URL {:?} is not a valid URL: {e}",
            redact_userinfo(raw)
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!(
            "MLflow URL {:?} must be an http:// or https:// URL with a host",
            redact_userinfo(raw)
        );
    }
    let auth = if url.username().is_empty() {
        MlflowAuth::None
    } else {
        MlflowAuth::Basic {
            username: url.username().to_string(),
            password: url.password().unwrap_or_default().to_string(),
        }
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok((url, auth))
}

fn redact_userinfo(raw: &str) -> String {
    match (raw.find("://"), raw.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}<redacted>@{}", &raw[..scheme_end + 3], &raw[at + 1..])
        }
        _ => raw.to_string(),
    }
}

fn parse_stages(raw: &str) -> Result<Vec<String>> {
    let mut stages = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some(known) = KNOWN_STAGES.iter().find(|k| k.eq_ignore_ascii_case(part)) else {
            bail!(
                "unknown stage {part:?} in M2S_STAGES (known: {})",
                KNOWN_STAGES.join(", ")
            );
        };
        if !stages.iter().any(|s| s == known) {
            stages.push(known.to_string());
        }
    }
    Ok(stages)
}

fn parse_aliases(raw: &str) -> Result<AliasSelection> {
    let parts: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.contains(&"*") {
        if parts.len() > 1 {
            bail!("M2S_ALIASES: `*` (every alias) cannot be combined with named aliases");
        }
        return Ok(AliasSelection::All);
    }
    let mut aliases: Vec<String> = Vec::new();
    for part in parts {
        if part.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bail!("alias {part:?} in M2S_ALIASES contains whitespace");
        }
        if !aliases.iter().any(|a| a == part) {
            aliases.push(part.to_string());
        }
    }
    Ok(AliasSelection::Listed(aliases))
}

/// Kubernetes label value: empty, or up to 63 of [A-Za-z0-9-_.] starting and ending alphanumeric.
pub(crate) fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

fn is_dns1123_subdomain(v: &str) -> bool {
    v.len() <= 253 && v.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests;
