//! MLflow Model Registry client (REST API 2.0, blocking).
//!
//! Reads, plus (with write-back) tag writes on model versions. Every failure is an error naming
//! the URL; callers treat a failed read as "the registry is unknown" and write nothing.

mod artifacts;
mod http;
mod locations;
mod registry;
mod tags;
mod webhooks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::blocking::Client;
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::cancel::Cancel;
use crate::config::{MlflowAuth, MlflowConfig};
use crate::settings::Tag;

pub(crate) use artifacts::ArtifactFile;
pub(crate) use http::{Repeat, Unanswered};
pub(crate) use locations::Resolved;
#[cfg(test)]
pub(crate) use registry::parse_search_page;
pub(crate) use webhooks::Webhook;

/// `registered-models/search` accepts at most 1000 per page.
const PAGE_SIZE: u32 = 1000;
/// A registry of a million models is 1000 pages; more than this is a server bug (token loop).
const MAX_PAGES: usize = 10_000;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct AliasRef {
    pub(crate) alias: String,
    pub(crate) version: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub(crate) struct ModelVersion {
    pub(crate) name: String,
    pub(crate) version: String,
    #[serde(default)]
    pub(crate) current_stage: Option<String>,
    #[serde(default)]
    pub(crate) source: Option<String>,
    #[serde(default)]
    pub(crate) run_id: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) tags: Vec<Tag>,
}

/// What resolving a version needs, borrowed: from a registry entry, or from a version just
/// read from MLflow. `source: None` means only the number is known (it is read first).
#[derive(Debug, Clone, Copy)]
pub(crate) struct VersionRef<'a> {
    pub(crate) model: &'a str,
    pub(crate) version: &'a str,
    pub(crate) source: Option<&'a str>,
    pub(crate) run_id: Option<&'a str>,
    pub(crate) status: Option<&'a str>,
    pub(crate) tags: &'a [Tag],
}

impl ModelVersion {
    /// This version of `model`, borrowed.
    pub(crate) fn view<'a>(&'a self, model: &'a str) -> VersionRef<'a> {
        VersionRef {
            model,
            version: &self.version,
            source: self.source.as_deref(),
            run_id: self.run_id.as_deref(),
            status: self.status.as_deref(),
            tags: &self.tags,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub(crate) struct RegisteredModel {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) creation_timestamp: Option<i64>,
    #[serde(default)]
    pub(crate) latest_versions: Vec<ModelVersion>,
    #[serde(default)]
    pub(crate) tags: Vec<Tag>,
    #[serde(default)]
    pub(crate) aliases: Vec<AliasRef>,
}

impl RegisteredModel {
    pub(crate) fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// A whole registry at once (the tests' registries).
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RegistrySnapshot {
    pub(crate) models: Vec<RegisteredModel>,
}

/// An answer MLflow gave with a status the caller handles itself.
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    pub(crate) url: String,
    pub(crate) status: StatusCode,
    /// `" (ERROR_CODE: message)"`, or empty.
    pub(crate) detail: String,
}

/// Outcome of resolving one version's artifact location: `Err` is a problem of that entry only
/// (reported, others proceed); an outer `Err` is a failure to read MLflow (the run stops).
pub(crate) type EntryResult<T> = std::result::Result<T, String>;

pub(crate) struct MlflowClient {
    http: Client,
    base: Url,
    requests: AtomicU64,
    concurrency: usize,
    retry_base: Duration,
    /// Set when the sync this client serves is abandoned: no more requests are sent.
    cancel: Option<Cancel>,
}

impl MlflowClient {
    pub(crate) fn new(cfg: &MlflowConfig) -> Result<MlflowClient> {
        let mut headers = reqwest::header::HeaderMap::new();
        match &cfg.auth {
            MlflowAuth::None => {}
            MlflowAuth::Bearer(token) => {
                let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| anyhow!("MLFLOW_TRACKING_TOKEN contains characters not allowed in an HTTP header"))?;
                v.set_sensitive(true);
                headers.insert(reqwest::header::AUTHORIZATION, v);
            }
            MlflowAuth::Basic { username, password } => {
                let encoded = STANDARD.encode(format!("{username}:{password}"));
                let mut v = reqwest::header::HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|_| anyhow!("MLflow username/password contain characters not allowed in an HTTP header"))?;
                v.set_sensitive(true);
                headers.insert(reqwest::header::AUTHORIZATION, v);
            }
        }
        let mut builder = Client::builder()
            .default_headers(headers)
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("m2s/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(cfg.concurrency);
        if cfg.insecure_tls {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(path) = &cfg.server_cert {
            let pem = std::fs::read(path).with_context(|| {
                format!(
                    "reading MLFLOW_TRACKING_SERVER_CERT_PATH {}",
                    path.display()
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                format!(
                    "MLFLOW_TRACKING_SERVER_CERT_PATH {} is not a PEM certificate",
                    path.display()
                )
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().context("building the MLflow HTTP client")?;
        Ok(MlflowClient {
            http,
            base: cfg.url.clone(),
            requests: AtomicU64::new(0),
            concurrency: cfg.concurrency,
            retry_base: Duration::from_millis(250),
            cancel: None,
        })
    }

    /// A client for one sync: the same connections, its own request count, and `cancel`, which
    /// stops it sending once set.
    pub(crate) fn for_sync(&self, cancel: Cancel) -> MlflowClient {
        MlflowClient {
            http: self.http.clone(),
            base: self.base.clone(),
            requests: AtomicU64::new(0),
            concurrency: self.concurrency,
            retry_base: self.retry_base,
            cancel: Some(cancel),
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(Cancel::is_cancelled)
    }

    /// HTTP requests sent so far (retries included).
    pub(crate) fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn endpoint(&self, path: &str) -> Url {
        self.base
            .join(&format!("api/2.0/mlflow/{path}"))
            .expect("static API path joins onto a base URL")
    }
}

/// Applies `f` to every item on up to `workers` threads, keeping the order; fails on the first
/// error (the remaining items are skipped).
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Mutex;
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() || failed.load(Ordering::Relaxed) {
                    break;
                }
                match f(&items[i]) {
                    Ok(r) => results.lock().expect("results lock")[i] = Some(r),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        first_error.lock().expect("error lock").get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("error lock") {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|r| r.expect("every item processed when none failed"))
        .collect())
}

#[cfg(test)]
mod tests;
