//! MLflow Model Registry client (REST API 2.0, blocking).
//!
//! Reads, plus (with write-back) tag writes on model versions. Every failure is an error naming
//! the URL; callers treat a failed read as "the registry is unknown" and write nothing.

mod locations;
mod registry;
mod tags;
mod webhooks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::blocking::Client;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::config::{MlflowAuth, MlflowConfig};
use crate::settings::Tag;

pub(crate) use locations::Resolved;
#[cfg(test)]
pub(crate) use registry::parse_search_page;
pub(crate) use webhooks::Webhook;

/// `registered-models/search` accepts at most 1000 per page.
const PAGE_SIZE: u32 = 1000;
/// A registry of a million models is 1000 pages; more than this is a server bug (token loop).
const MAX_PAGES: usize = 10_000;
const MAX_ATTEMPTS: u32 = 4;

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
        })
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

    /// GET with retries on connection errors, timeouts, 429 and 5xx. `Ok(None)` on 404.
    pub(crate) fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<T>> {
        self.request_json(Method::GET, path, query, None, &[StatusCode::NOT_FOUND])
    }

    /// One request with retries on connection errors, timeouts, 429 and 5xx; `Ok(None)` when
    /// MLflow answers one of the `none` statuses.
    pub(crate) fn request_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        none: &[StatusCode],
    ) -> Result<Option<T>> {
        Ok(self
            .request_outcome(method, path, query, body, none)?
            .map_err(|refused| {
                log::debug!(
                    "MLflow at {} answered {}{}",
                    refused.url,
                    refused.status,
                    refused.detail
                );
            })
            .ok())
    }

    /// [`request_json`](MlflowClient::request_json), handing back an answer with one of the
    /// `pass` statuses (and what MLflow said) instead of failing.
    pub(crate) fn request_outcome<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        pass: &[StatusCode],
    ) -> Result<std::result::Result<T, Refused>> {
        let mut url = self.endpoint(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(b) = body {
                request = request.json(b);
            }
            let outcome = request.send();
            let retryable = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        // Parsed as it arrives, never held whole: a page of 500 runs with their
                        // parameters, metrics and tags can be megabytes, of which m2s keeps a
                        // few fields per run.
                        let mut body = Counted {
                            inner: std::io::BufReader::with_capacity(64 * 1024, resp),
                            read: 0,
                        };
                        return match serde_json::from_reader(&mut body) {
                            Ok(value) => Ok(Ok(value)),
                            Err(e) if e.is_io() => Err(anyhow!(e)).with_context(|| {
                                format!("reading the response of MLflow at {url}")
                            }),
                            Err(e) => Err(anyhow!(e)).with_context(|| {
                                format!(
                                    "MLflow at {url} answered with malformed JSON ({} bytes)",
                                    body.read
                                )
                            }),
                        };
                    }
                    let detail = error_detail(resp);
                    if pass.contains(&status) {
                        return Ok(Err(Refused {
                            url: url.to_string(),
                            status,
                            detail,
                        }));
                    }
                    match status {
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => bail!(
                            "MLflow at {url} answered {status}{detail}: check the MLflow credentials (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
                        ),
                        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                            format!("MLflow at {url} answered {status}{detail}")
                        }
                        _ => bail!("MLflow at {url} answered {status}{detail}"),
                    }
                }
                Err(e) => {
                    let kind = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "could not connect"
                    } else {
                        "request failed"
                    };
                    format!("MLflow at {url}: {kind}: {}", error_chain(&e))
                }
            };
            if attempt >= MAX_ATTEMPTS {
                bail!("{retryable} (gave up after {attempt} attempts)");
            }
            let backoff = self.retry_base * 2u32.pow(attempt - 1);
            log::warn!("{retryable}; retrying in {backoff:?}");
            thread::sleep(backoff);
        }
    }

    pub(crate) fn get_required<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T> {
        self.get_json(path, query)?.ok_or_else(|| {
            let mut url = self.endpoint(path);
            url.query_pairs_mut().extend_pairs(query);
            anyhow!(
                "MLflow at {url} answered 404 Not Found: is {} an MLflow tracking server?",
                self.base
            )
        })
    }
}

/// A reader that counts what it read (for messages about a response parsed as it streams).
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
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

fn error_detail(resp: reqwest::blocking::Response) -> String {
    #[derive(Deserialize)]
    struct MlflowError {
        #[serde(default)]
        error_code: String,
        #[serde(default)]
        message: String,
    }
    let body = resp.bytes().unwrap_or_default();
    match serde_json::from_slice::<MlflowError>(&body) {
        Ok(e) if !e.message.is_empty() => {
            let message: String = e.message.chars().take(300).collect();
            format!(" ({}: {message})", e.error_code)
        }
        _ => String::new(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests;
