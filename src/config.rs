//! Validated configuration: everything is checked here, before any network call.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::Url;

use crate::cli::Settings;
use crate::image::validate_image_reference;
use crate::naming::is_dns1123_label;
use crate::overlay::Overlay;
use crate::targets::{self, Setting, Target};

/// Stages MLflow's registry knows; only the first two are sensible to deploy, but `Archived`
/// is accepted for teams that serve archived versions for a while.
const KNOWN_STAGES: [&str; 3] = ["Staging", "Production", "Archived"];

#[derive(Clone, PartialEq, Eq)]
pub enum MlflowAuth {
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
pub enum AliasSelection {
    Listed(Vec<String>),
    All,
}

impl AliasSelection {
    pub fn includes(&self, alias: &str) -> bool {
        match self {
            AliasSelection::All => true,
            AliasSelection::Listed(list) => list.iter().any(|a| a == alias),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MlflowConfig {
    /// Base URL, with any user:password taken out (moved to `auth`).
    pub url: Url,
    pub auth: MlflowAuth,
    pub insecure_tls: bool,
    pub server_cert: Option<PathBuf>,
    pub request_timeout: Duration,
    pub model_filter: Option<String>,
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// The serving stack, and with it the kind of object m2s manages.
    pub target: &'static dyn Target,
    pub namespace: String,
    pub instance: String,
    pub storage_root: Option<String>,
    pub default_image: Option<String>,
    pub image_tag: String,
    pub registry_secret: Option<String>,
    pub model_secret: Option<String>,
    pub service_account: Option<String>,
    pub overlay: Option<Overlay>,
    pub stages: Vec<String>,
    pub aliases: AliasSelection,
    /// MLflow URL recorded on each object (credentials never included).
    pub mlflow_url: String,
    /// Write each object's state back to MLflow as tags (`sync --write-back`): the registry
    /// then keeps this namespace's write-back tags of the versions it reads.
    pub write_back: bool,
}

impl DeployConfig {
    /// The settings m2s uses when only the namespace and the MLflow URL are given.
    pub fn new(namespace: &str, mlflow_url: &str) -> DeployConfig {
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
        }
    }

    /// The same settings for another target.
    pub fn with_target(mut self, id: &str) -> DeployConfig {
        self.target = targets::by_id(id).expect("a known target");
        self
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mlflow: MlflowConfig,
    pub deploy: DeployConfig,
    pub kubeconfig: Option<PathBuf>,
    pub concurrency: usize,
    pub request_timeout: Duration,
    pub run_timeout: Duration,
    /// Deprecated settings that were used, with what to use instead (logged at start).
    pub warnings: Vec<String>,
}

/// Where MLflow's own client variables are read from; a function so tests need not touch the
/// process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    pub fn from_settings(s: &Settings, env: EnvLookup) -> Result<Config> {
        let raw_url = s
            .mlflow_host
            .clone()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| env("MLFLOW_TRACKING_URI"))
            .context(
                "no MLflow URL: set M2S_MLFLOW_HOST (or MLFLOW_TRACKING_URI, or --mlflow-host)",
            )?;
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

        let mut warnings = Vec::new();
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
            crate::artifacts::check_storage_root(root, target)?;
        }
        let (default_image, image_var) = default_image(s, env, &mut warnings)?;
        if let Some(image) = &default_image {
            refuse_platform_uri(image, "image")
                .and_then(|()| validate_image_reference(image))
                .with_context(|| format!("default image {image:?} ({image_var})"))?;
        }
        let image_tag = s.image_tag.trim().to_string();
        if image_tag.is_empty() {
            bail!("M2S_MLFLOW_DEPLOY_IMG_TAG must not be empty");
        }
        let registry_secret = optional(&s.registry_secret);
        let model_secret = optional(&s.model_secret);
        let service_account = optional(&s.service_account);
        for (var, value, what) in [
            ("M2S_REGISTRY_SECRET", &registry_secret, "Secret"),
            ("M2S_MODEL_SECRET", &model_secret, "Secret"),
            ("M2S_SERVICE_ACCOUNT", &service_account, "ServiceAccount"),
        ] {
            if let Some(v) = value {
                if !is_dns1123_subdomain(v) {
                    bail!("{var} {v:?} is not a valid {what} name");
                }
            }
        }
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
            if set && !target.fields().iter().any(|f| f.setting == setting) {
                bail!(
                    "{var} has no counterpart on target {} ({}){}",
                    target.id(),
                    target.resource().kind,
                    no_counterpart_hint(target.id(), setting)
                );
            }
        }
        let overlay = match &s.overlay {
            Some(path) if !path.as_os_str().is_empty() => Some(Overlay::load(path, target)?),
            _ => None,
        };
        if s.concurrency == 0 || s.concurrency > 256 {
            bail!(
                "concurrency (M2S_CONCURRENCY) must be between 1 and 256, not {}",
                s.concurrency
            );
        }
        if s.request_timeout == 0 || s.run_timeout == 0 {
            bail!("M2S_REQUEST_TIMEOUT and M2S_RUN_TIMEOUT must be at least 1 second");
        }
        let request_timeout = Duration::from_secs(s.request_timeout);
        Ok(Config {
            mlflow: MlflowConfig {
                url: url.clone(),
                auth,
                insecure_tls,
                server_cert,
                request_timeout,
                model_filter: optional(&s.model_filter),
                concurrency: s.concurrency,
            },
            deploy: DeployConfig {
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
            },
            kubeconfig: s.kubeconfig.clone(),
            concurrency: s.concurrency,
            request_timeout,
            run_timeout: Duration::from_secs(s.run_timeout),
            warnings,
        })
    }
}

/// The namespace: `--namespace`, else `M2S_NAMESPACE` or the old service's
/// `M2S_SELDON_DEPLOYMENT_NS` (both set and different is an error); and where it came from.
fn namespace(s: &Settings, env: EnvLookup) -> Result<(String, &'static str)> {
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
    s: &Settings,
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

/// Why a target has no place for a setting, and what to do instead.
fn no_counterpart_hint(target: &str, setting: Setting) -> &'static str {
    match (target, setting) {
        ("seldon-v2", Setting::Image) => ": a Model runs on a Seldon Server, whose image is the Server's; unset it",
        ("seldon-v2", Setting::RegistrySecret) => ": image pull secrets belong to the Seldon Server; unset it",
        ("seldon-v2", Setting::ServiceAccount) => ": a Model has no pods of its own; unset it",
        ("kserve", Setting::ModelSecret) => ": KServe reads storage credentials through the predictor's ServiceAccount; set M2S_SERVICE_ACCOUNT instead",
        _ => "",
    }
}

/// Refuses the old platform's `image:` and `storage:` URIs: they mean nothing outside it.
pub fn refuse_platform_uri(value: &str, kind: &str) -> Result<()> {
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
pub fn is_label_value(v: &str) -> bool {
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings() -> Settings {
        Settings {
            mlflow_host: Some("http://mlflow.example:5000".into()),
            target: "seldon-v1".into(),
            namespace: Some("models".into()),
            image_tag: "deployment-image".into(),
            stages: "Staging,Production".into(),
            aliases: String::new(),
            instance: "m2s".into(),
            concurrency: 16,
            request_timeout: 30,
            run_timeout: 600,
            ..Settings::default()
        }
    }

    fn build(s: &Settings, env: &[(&str, &str)]) -> Result<Config> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_settings(s, &|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_are_valid() {
        let c = build(&settings(), &[]).unwrap();
        assert_eq!(c.deploy.stages, ["Staging", "Production"]);
        assert_eq!(c.deploy.aliases, AliasSelection::Listed(vec![]));
        assert_eq!(c.mlflow.url.as_str(), "http://mlflow.example:5000/");
        assert_eq!(c.deploy.mlflow_url, "http://mlflow.example:5000");
        assert_eq!(c.mlflow.auth, MlflowAuth::None);
    }

    #[test]
    fn mlflow_tracking_uri_is_the_fallback() {
        let mut s = settings();
        s.mlflow_host = None;
        let c = build(&s, &[("MLFLOW_TRACKING_URI", "https://ml.example/prefix")]).unwrap();
        assert_eq!(c.mlflow.url.as_str(), "https://ml.example/prefix/");
        assert!(build(&s, &[])
            .unwrap_err()
            .to_string()
            .contains("M2S_MLFLOW_HOST"));
    }

    #[test]
    fn bad_urls_are_rejected_without_leaking_credentials() {
        let mut s = settings();
        for bad in ["not a url", "ftp://x", "mlflow:5000", "http://user:s3cret@"] {
            s.mlflow_host = Some(bad.into());
            let err = format!("{:#}", build(&s, &[]).unwrap_err());
            assert!(err.contains("MLflow URL"), "{bad}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn credentials_in_the_url_move_to_basic_auth() {
        let mut s = settings();
        s.mlflow_host = Some("https://bob:s3cret@ml.example".into());
        let c = build(&s, &[]).unwrap();
        assert_eq!(c.mlflow.url.as_str(), "https://ml.example/");
        assert_eq!(
            c.mlflow.auth,
            MlflowAuth::Basic {
                username: "bob".into(),
                password: "s3cret".into()
            }
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn token_wins_over_basic_auth_and_is_redacted() {
        let c = build(
            &settings(),
            &[
                ("MLFLOW_TRACKING_TOKEN", "tok-123"),
                ("MLFLOW_TRACKING_USERNAME", "u"),
            ],
        )
        .unwrap();
        assert_eq!(c.mlflow.auth, MlflowAuth::Bearer("tok-123".into()));
        assert!(!format!("{c:?}").contains("tok-123"));
    }

    #[test]
    fn stages_are_checked_and_normalised() {
        let mut s = settings();
        s.stages = "production, STAGING,Production".into();
        assert_eq!(
            build(&s, &[]).unwrap().deploy.stages,
            ["Production", "Staging"]
        );
        s.stages = "Prod".into();
        let err = build(&s, &[]).unwrap_err().to_string();
        assert!(
            err.contains("\"Prod\"") && err.contains("M2S_STAGES"),
            "{err}"
        );
    }

    #[test]
    fn aliases_star_means_all() {
        let mut s = settings();
        s.aliases = "*".into();
        assert_eq!(build(&s, &[]).unwrap().deploy.aliases, AliasSelection::All);
        s.aliases = "champion, challenger,champion".into();
        assert_eq!(
            build(&s, &[]).unwrap().deploy.aliases,
            AliasSelection::Listed(vec!["champion".into(), "challenger".into()])
        );
        s.aliases = "*,champion".into();
        assert!(build(&s, &[]).is_err());
    }

    #[test]
    fn namespace_instance_and_secrets_are_validated() {
        let mut s = settings();
        s.namespace = Some(" ".into());
        assert!(build(&s, &[])
            .unwrap_err()
            .to_string()
            .contains("no namespace: set M2S_NAMESPACE"));
        s.namespace = Some("Bad_NS".into());
        assert!(build(&s, &[]).unwrap_err().to_string().contains("Bad_NS"));
        let mut s = settings();
        s.instance = "a b".into();
        assert!(build(&s, &[])
            .unwrap_err()
            .to_string()
            .contains("M2S_INSTANCE"));
        let mut s = settings();
        s.model_secret = Some("Not/A/Secret".into());
        assert!(build(&s, &[])
            .unwrap_err()
            .to_string()
            .contains("M2S_MODEL_SECRET"));
        let mut s = settings();
        s.default_image = Some("bad image".into());
        assert!(build(&s, &[])
            .unwrap_err()
            .to_string()
            .contains("M2S_SELDON_DEF_IMAGE"));
    }

    #[test]
    fn namespace_has_a_new_name_and_keeps_the_old_one() {
        let mut s = settings();
        s.namespace = None;
        let ns = |s: &Settings, env: &[(&str, &str)]| build(s, env).map(|c| c.deploy.namespace);
        assert_eq!(ns(&s, &[("M2S_NAMESPACE", "a")]).unwrap(), "a");
        assert_eq!(ns(&s, &[("M2S_SELDON_DEPLOYMENT_NS", "b")]).unwrap(), "b");
        assert_eq!(
            ns(
                &s,
                &[("M2S_NAMESPACE", "a"), ("M2S_SELDON_DEPLOYMENT_NS", "a")]
            )
            .unwrap(),
            "a"
        );
        let err = ns(
            &s,
            &[("M2S_NAMESPACE", "a"), ("M2S_SELDON_DEPLOYMENT_NS", "b")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("M2S_NAMESPACE (\"a\")")
                && err.contains("M2S_SELDON_DEPLOYMENT_NS (\"b\")"),
            "{err}"
        );
        let err = ns(&s, &[("M2S_SELDON_DEPLOYMENT_NS", "Bad_NS")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("(M2S_SELDON_DEPLOYMENT_NS)"), "{err}");
        // The flag wins over both variables.
        s.namespace = Some("flag".into());
        assert_eq!(ns(&s, &[("M2S_NAMESPACE", "a")]).unwrap(), "flag");
    }

    #[test]
    fn target_is_one_of_the_known_ones() {
        let mut s = settings();
        for id in ["seldon-v1", "kserve", "seldon-v2"] {
            s.target = id.into();
            assert_eq!(build(&s, &[]).unwrap().deploy.target.id(), id);
        }
        s.target = "seldon".into();
        let err = build(&s, &[]).unwrap_err().to_string();
        assert!(
            err.contains("unknown target \"seldon\"") && err.contains("kserve"),
            "{err}"
        );
    }

    #[test]
    fn settings_without_a_counterpart_are_refused_naming_setting_and_target() {
        type Set = fn(&mut Settings);
        let cases: [(&str, Set); 5] = [
            ("seldon-v2", |s| s.default_image = Some("x/y:1".into())),
            ("seldon-v2", |s| s.registry_secret = Some("regcred".into())),
            ("seldon-v2", |s| s.service_account = Some("sa".into())),
            ("kserve", |s| s.model_secret = Some("creds".into())),
            ("seldon-v2", |s| {
                s.storage_root = Some("pvc://claim/mlruns".into())
            }),
        ];
        for (target, set) in cases {
            let mut s = settings();
            s.target = target.into();
            set(&mut s);
            let err = build(&s, &[]).unwrap_err().to_string();
            assert!(err.contains(target), "{target}: {err}");
            assert!(err.contains("M2S_"), "{target}: {err}");
        }
        // The same settings where the target has them.
        let mut s = settings();
        s.target = "kserve".into();
        s.service_account = Some("sa".into());
        s.registry_secret = Some("regcred".into());
        s.default_image = Some("x/y:1".into());
        build(&s, &[]).unwrap();
        let mut s = settings();
        s.target = "seldon-v2".into();
        s.model_secret = Some("creds".into());
        s.storage_root = Some("s3://bucket/mlruns".into());
        build(&s, &[]).unwrap();
    }

    #[test]
    fn the_old_services_variables() {
        // M2S_SELDON_NEURO_DEF_IMAGE: a deprecated alias, with a warning naming the new one.
        let c = build(&settings(), &[("M2S_SELDON_NEURO_DEF_IMAGE", "x/server:1")]).unwrap();
        assert_eq!(c.deploy.default_image.as_deref(), Some("x/server:1"));
        assert!(
            c.warnings[0].contains("use M2S_SELDON_DEF_IMAGE"),
            "{:?}",
            c.warnings
        );
        let mut s = settings();
        s.default_image = Some("x/server:2".into());
        assert!(build(&s, &[("M2S_SELDON_NEURO_DEF_IMAGE", "x/server:1")]).is_err());
        // The platform's cluster and URIs mean nothing here.
        let err = build(&settings(), &[("M2S_SRC_NEURO_CLUSTER", "neuro-compute")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("M2S_SRC_NEURO_CLUSTER") && err.contains("M2S_MLFLOW_HOST"),
            "{err}"
        );
        let mut s = settings();
        s.default_image = Some("image://cluster/org/proj/server:1".into());
        let err = format!("{:#}", build(&s, &[]).unwrap_err());
        assert!(err.contains("Neu.ro platform image: URI"), "{err}");
        let mut s = settings();
        s.storage_root = Some("storage://cluster/org/proj/mlruns".into());
        let err = format!("{:#}", build(&s, &[]).unwrap_err());
        assert!(
            err.contains("Neu.ro platform storage: URI") && err.contains("s3://"),
            "{err}"
        );
    }

    #[test]
    fn nothing_to_deploy_is_an_error() {
        let mut s = settings();
        s.stages = String::new();
        assert!(build(&s, &[])
            .unwrap_err()
            .to_string()
            .contains("nothing to deploy"));
        s.aliases = "champion".into();
        assert!(build(&s, &[]).is_ok());
    }

    #[test]
    fn label_values() {
        assert!(is_label_value("m2s"));
        assert!(is_label_value("team_a.prod-1"));
        assert!(!is_label_value("-x"));
        assert!(!is_label_value(&"a".repeat(64)));
    }
}
