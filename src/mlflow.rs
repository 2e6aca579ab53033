//! MLflow Model Registry client (REST API 2.0, blocking).
//!
//! Only reads. Every failure is an error naming the URL; callers treat any of them as "the
//! registry is unknown" and write nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::blocking::Client;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::artifacts::{join, parse_source, ArtifactLocation, Source};
use crate::config::{MlflowAuth, MlflowConfig};

/// `registered-models/search` accepts at most 1000 per page.
const PAGE_SIZE: u32 = 1000;
/// A registry of a million models is 1000 pages; more than this is a server bug (token loop).
const MAX_PAGES: usize = 10_000;
const MAX_ATTEMPTS: u32 = 4;
/// Runs looked up per `runs/search` request (`attributes.run_id IN (...)`).
const RUN_BATCH: usize = 500;
/// Experiments named per `runs/search` request (it needs their ids).
const EXPERIMENT_BATCH: usize = 500;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct AliasRef {
    pub alias: String,
    pub version: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub current_stage: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub struct RegisteredModel {
    pub name: String,
    #[serde(default)]
    pub creation_timestamp: Option<i64>,
    #[serde(default)]
    pub latest_versions: Vec<ModelVersion>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub aliases: Vec<AliasRef>,
}

impl RegisteredModel {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// Everything m2s reads from the registry in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySnapshot {
    pub models: Vec<RegisteredModel>,
}

#[derive(Debug, Deserialize)]
struct SearchPage {
    #[serde(default)]
    registered_models: Vec<RegisteredModel>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VersionResponse {
    model_version: ModelVersion,
}

#[derive(Debug, Deserialize)]
struct RunResponse {
    run: Run,
}
#[derive(Debug, Deserialize)]
struct Run {
    info: RunInfo,
}
#[derive(Debug, Deserialize)]
struct RunInfo {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    experiment_id: Option<String>,
    artifact_uri: String,
}

#[derive(Debug, Deserialize)]
struct ExperimentsPage {
    #[serde(default)]
    experiments: Vec<ExperimentId>,
    #[serde(default)]
    next_page_token: Option<String>,
}
#[derive(Debug, Deserialize)]
struct ExperimentId {
    experiment_id: String,
}

#[derive(Debug, Deserialize)]
struct RunsPage {
    #[serde(default)]
    runs: Vec<Run>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// What a run contributes to a location: its artifact URI and experiment.
#[derive(Debug, Clone)]
struct RunLocation {
    artifact_uri: String,
    experiment_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LoggedModelResponse {
    model: LoggedModel,
}
#[derive(Debug, Deserialize)]
struct LoggedModel {
    info: LoggedModelInfo,
}
#[derive(Debug, Deserialize)]
struct LoggedModelInfo {
    #[serde(default)]
    experiment_id: Option<String>,
    artifact_uri: String,
}

/// Parses one page of `registered-models/search`; public for the fuzz and property tests.
pub fn parse_search_page(body: &[u8]) -> Result<(Vec<RegisteredModel>, Option<String>)> {
    let page: SearchPage = serde_json::from_slice(body)?;
    Ok((
        page.registered_models,
        page.next_page_token.filter(|t| !t.is_empty()),
    ))
}

/// Outcome of resolving one version's artifact location: `Err` is a problem of that entry only
/// (reported, others proceed); an outer `Err` is a failure to read MLflow (the run stops).
pub type EntryResult<T> = std::result::Result<T, String>;

pub struct MlflowClient {
    http: Client,
    base: Url,
    requests: AtomicU64,
    concurrency: usize,
    retry_base: Duration,
}

impl MlflowClient {
    pub fn new(cfg: &MlflowConfig) -> Result<MlflowClient> {
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
                let encoded = base64_encode(format!("{username}:{password}").as_bytes());
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

    /// Shortens the retry back-off (tests of the retry path).
    pub fn with_retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    /// HTTP requests sent so far (retries included).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn endpoint(&self, path: &str) -> Url {
        self.base
            .join(&format!("api/2.0/mlflow/{path}"))
            .expect("static API path joins onto a base URL")
    }

    /// GET with retries on connection errors, timeouts, 429 and 5xx. `Ok(None)` on 404.
    fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<T>> {
        self.request_json(Method::GET, path, query, None, &[StatusCode::NOT_FOUND])
    }

    /// One request with retries on connection errors, timeouts, 429 and 5xx; `Ok(None)` when
    /// MLflow answers one of the `none` statuses.
    fn request_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        none: &[StatusCode],
    ) -> Result<Option<T>> {
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
                        let body = resp
                            .bytes()
                            .with_context(|| format!("reading the response of MLflow at {url}"))?;
                        return serde_json::from_slice(&body).map(Some).with_context(|| {
                            format!(
                                "MLflow at {url} answered with malformed JSON ({} bytes)",
                                body.len()
                            )
                        });
                    }
                    let detail = error_detail(resp);
                    if none.contains(&status) {
                        log::debug!("MLflow at {url} answered {status}{detail}");
                        return Ok(None);
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

    fn get_required<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        self.get_json(path, query)?.ok_or_else(|| {
            let mut url = self.endpoint(path);
            url.query_pairs_mut().extend_pairs(query);
            anyhow!(
                "MLflow at {url} answered 404 Not Found: is {} an MLflow tracking server?",
                self.base
            )
        })
    }

    /// Every registered model matching `filter`, with latest versions per stage, tags and aliases.
    pub fn snapshot(&self, filter: Option<&str>) -> Result<RegistrySnapshot> {
        let mut models = Vec::new();
        let mut seen_tokens = HashSet::new();
        let mut token: Option<String> = None;
        let page_size = PAGE_SIZE.to_string();
        for _ in 0..MAX_PAGES {
            let mut query = vec![("max_results", page_size.as_str())];
            if let Some(f) = filter {
                query.push(("filter", f));
            }
            if let Some(t) = &token {
                query.push(("page_token", t.as_str()));
            }
            let page: SearchPage = self.get_required("registered-models/search", &query)?;
            models.extend(page.registered_models);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                None => return Ok(RegistrySnapshot { models }),
                Some(next) => {
                    if !seen_tokens.insert(next.clone()) {
                        bail!(
                            "MLflow at {} returned a page token it had returned before: the registered-models/search pagination loops",
                            self.endpoint("registered-models/search")
                        );
                    }
                    token = Some(next);
                }
            }
        }
        bail!(
            "MLflow at {} returned more than {MAX_PAGES} pages of registered models",
            self.endpoint("registered-models/search")
        )
    }

    pub fn model_version(&self, name: &str, version: &str) -> Result<Option<ModelVersion>> {
        Ok(self
            .get_json::<VersionResponse>(
                "model-versions/get",
                &[("name", name), ("version", version)],
            )?
            .map(|r| r.model_version))
    }

    /// Where the files of `version` are. Looks the version up first when only its number is
    /// known (`version.source` is `None`, as for aliases).
    pub fn resolve(&self, version: &ModelVersion) -> Result<EntryResult<ArtifactLocation>> {
        match self.complete(version)? {
            Ok(v) => self.locate(&v, &HashMap::new()),
            Err(e) => Ok(Err(e)),
        }
    }

    /// `version` with its source: as given, or read from MLflow when only its number is known.
    fn complete(&self, version: &ModelVersion) -> Result<EntryResult<ModelVersion>> {
        if version.source.is_some() {
            return Ok(Ok(version.clone()));
        }
        Ok(self
            .model_version(&version.name, &version.version)?
            .ok_or_else(|| {
                format!(
                    "version {} of model {:?} does not exist (deleted while m2s ran?)",
                    version.version, version.name
                )
            }))
    }

    /// The location of a version whose source is known; `runs` are runs already read (a run
    /// not among them is read with `runs/get`).
    fn locate(
        &self,
        version: &ModelVersion,
        runs: &HashMap<String, RunLocation>,
    ) -> Result<EntryResult<ArtifactLocation>> {
        if let Some(status) = version.status.as_deref() {
            if status != "READY" {
                return Ok(Err(format!(
                    "version {} is {status}, not READY",
                    version.version
                )));
            }
        }
        let source = version.source.as_deref().unwrap_or_default();
        let run_id = version.run_id.clone().filter(|r| !r.is_empty());
        let parsed = match parse_source(source) {
            Ok(p) => p,
            Err(e) => return Ok(Err(format!("version {}: {e}", version.version))),
        };
        match parsed {
            Source::Run {
                run_id: source_run,
                path,
            } => {
                let run = match runs.get(&source_run) {
                    Some(run) => run.clone(),
                    None => match self
                        .get_json::<RunResponse>("runs/get", &[("run_id", &source_run)])?
                    {
                        Some(r) => RunLocation {
                            artifact_uri: r.run.info.artifact_uri,
                            experiment_id: r.run.info.experiment_id,
                        },
                        None => {
                            return Ok(Err(format!(
                            "version {}: run {source_run} of its source {source:?} does not exist",
                            version.version
                        )))
                        }
                    },
                };
                Ok(Ok(ArtifactLocation {
                    uri: join(&run.artifact_uri, &path),
                    experiment_id: run.experiment_id,
                    run_id: Some(source_run),
                }))
            }
            Source::LoggedModel { model_id } => {
                let Some(model) = self
                    .get_json::<LoggedModelResponse>(&format!("logged-models/{model_id}"), &[])?
                else {
                    return Ok(Err(format!(
                        "version {}: logged model {model_id} of its source {source:?} does not exist",
                        version.version
                    )));
                };
                Ok(Ok(ArtifactLocation {
                    uri: model.model.info.artifact_uri,
                    experiment_id: model.model.info.experiment_id,
                    run_id,
                }))
            }
            Source::Location(uri) => Ok(Ok(ArtifactLocation {
                uri,
                experiment_id: None,
                run_id,
            })),
        }
    }

    /// Resolves many versions with up to `concurrency` requests in flight; the first MLflow
    /// failure fails the whole call. The runs behind `runs:/` sources are read in batches
    /// (`runs/search`, [`RUN_BATCH`] runs a request) rather than one `runs/get` each: a cold
    /// sync of thousands of versions is then a handful of requests. A run the batch does not
    /// return is still read with `runs/get`, so every outcome is the same as one by one.
    pub fn resolve_all(
        &self,
        versions: &[ModelVersion],
    ) -> Result<Vec<EntryResult<ArtifactLocation>>> {
        // Threads only for what needs a request (each thread's allocations stay in its own
        // malloc arena: thousands of copies made on 16 threads cost megabytes of memory).
        let unknown: Vec<&ModelVersion> = versions.iter().filter(|v| v.source.is_none()).collect();
        let mut fetched =
            parallel_map(&unknown, self.concurrency, |v| self.complete(v))?.into_iter();
        let completed: Vec<EntryResult<ModelVersion>> = versions
            .iter()
            .map(|v| match v.source {
                Some(_) => Ok(v.clone()),
                None => fetched.next().expect("one result per unknown version"),
            })
            .collect();
        let run_ids: BTreeSet<String> = completed
            .iter()
            .filter_map(|v| v.as_ref().ok()?.source.as_deref())
            .filter_map(|s| match parse_source(s) {
                Ok(Source::Run { run_id, .. }) => Some(run_id),
                _ => None,
            })
            .collect();
        let run_ids: Vec<String> = run_ids.into_iter().collect();
        let runs = self.runs_by_id(&run_ids)?;
        let offline = |v: &EntryResult<ModelVersion>| match v {
            Err(_) => true,
            Ok(v) => match v.source.as_deref().map(parse_source) {
                Some(Ok(Source::Run { run_id, .. })) => runs.contains_key(&run_id),
                Some(Ok(Source::LoggedModel { .. })) => false,
                _ => true,
            },
        };
        let online: Vec<&ModelVersion> = completed
            .iter()
            .filter(|v| !offline(v))
            .filter_map(|v| v.as_ref().ok())
            .collect();
        let mut located =
            parallel_map(&online, self.concurrency, |v| self.locate(v, &runs))?.into_iter();
        completed
            .iter()
            .map(|v| match v {
                Err(e) => Ok(Err(e.clone())),
                Ok(_) if !offline(v) => Ok(located.next().expect("one result per online version")),
                Ok(v) => self.locate(v, &runs),
            })
            .collect()
    }

    /// Artifact URI and experiment of many runs, by `runs/search` over every experiment. Runs
    /// it does not find are left out (the caller reads them one by one). A server that does not
    /// support the search (404, 400) gets an empty answer; any other failure is an error.
    fn runs_by_id(&self, run_ids: &[String]) -> Result<HashMap<String, RunLocation>> {
        let mut found = HashMap::new();
        // Ids go into a filter string: only plain ones (MLflow's are hex).
        let ids: Vec<&str> = run_ids
            .iter()
            .map(String::as_str)
            .filter(|id| {
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .collect();
        // A batch costs at least two requests (experiments, runs).
        if ids.len() <= 2 {
            return Ok(found);
        }
        let Some(experiments) = self.experiment_ids()? else {
            return Ok(found);
        };
        let batches: Vec<(&[String], &[&str])> = experiments
            .chunks(EXPERIMENT_BATCH)
            .flat_map(|e| ids.chunks(RUN_BATCH).map(move |r| (e, r)))
            .collect();
        if batches.is_empty() || batches.len() >= ids.len() {
            return Ok(found);
        }
        let pages = parallel_map(&batches, self.concurrency, |(experiments, ids)| {
            self.search_runs(experiments, ids)
        })?;
        for page in pages.into_iter().flatten() {
            for run in page {
                if let Some(id) = run.info.run_id {
                    found.insert(
                        id,
                        RunLocation {
                            artifact_uri: run.info.artifact_uri,
                            experiment_id: run.info.experiment_id,
                        },
                    );
                }
            }
        }
        log::debug!(
            "runs/search: {} of {} runs found in {} batches",
            found.len(),
            run_ids.len(),
            batches.len()
        );
        Ok(found)
    }

    /// Every page of a POST search, following `next_page_token`. `Ok(None)` when the server
    /// refuses the search (404 or 400); otherwise the pages and whether they are complete
    /// (false when a page token repeats or there are more than `MAX_PAGES`).
    fn search_pages<P: DeserializeOwned>(
        &self,
        path: &str,
        mut body: serde_json::Value,
        next_token: impl Fn(&P) -> Option<String>,
    ) -> Result<Option<(Vec<P>, bool)>> {
        let mut pages = Vec::new();
        let mut seen_tokens = HashSet::new();
        for _ in 0..MAX_PAGES {
            let Some(page) = self.request_json::<P>(
                Method::POST,
                path,
                &[],
                Some(&body),
                &[StatusCode::NOT_FOUND, StatusCode::BAD_REQUEST],
            )?
            else {
                return Ok(None);
            };
            let next = next_token(&page).filter(|t| !t.is_empty());
            pages.push(page);
            match next {
                Some(t) if seen_tokens.insert(t.clone()) => body["page_token"] = t.into(),
                Some(_) => return Ok(Some((pages, false))),
                None => return Ok(Some((pages, true))),
            }
        }
        Ok(Some((pages, false)))
    }

    /// Every experiment id (deleted ones too: `runs/get` reads their runs as well); `None` when
    /// the server does not support the search or its pages loop.
    fn experiment_ids(&self) -> Result<Option<Vec<String>>> {
        let body = serde_json::json!({ "max_results": PAGE_SIZE, "view_type": "ALL" });
        Ok(self
            .search_pages("experiments/search", body, |p: &ExperimentsPage| {
                p.next_page_token.clone()
            })?
            .filter(|(_, complete)| *complete)
            .map(|(pages, _)| {
                pages
                    .into_iter()
                    .flat_map(|p| p.experiments)
                    .map(|e| e.experiment_id)
                    .collect()
            }))
    }

    /// The runs among `ids` in `experiments` (all pages); `None` when the server refuses the
    /// search. Runs missing from an incomplete answer are looked up one by one by the caller.
    fn search_runs(&self, experiments: &[String], ids: &[&str]) -> Result<Option<Vec<Run>>> {
        let body = serde_json::json!({
            "experiment_ids": experiments,
            "filter": format!("attributes.run_id IN ('{}')", ids.join("', '")),
            "run_view_type": "ALL",
            "max_results": RUN_BATCH,
        });
        Ok(self
            .search_pages("runs/search", body, |p: &RunsPage| {
                p.next_page_token.clone()
            })?
            .map(|(pages, _)| pages.into_iter().flat_map(|p| p.runs).collect()))
    }
}

/// Applies `f` to every item on up to `workers` threads, keeping the order; fails on the first
/// error (the remaining items are skipped).
pub fn parallel_map<T: Sync, R: Send>(
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

fn base64_encode(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
        }
    }

    #[test]
    fn parses_a_search_page() {
        let body = br#"{"registered_models":[{"name":"iris","creation_timestamp":1,
            "latest_versions":[{"name":"iris","version":"3","current_stage":"Production",
            "source":"runs:/r1/model","run_id":"r1","status":"READY"}],
            "tags":[{"key":"deployment-image","value":"x/y:1"}],
            "aliases":[{"alias":"champion","version":"2"}]}],"next_page_token":"abc"}"#;
        let (models, token) = parse_search_page(body).unwrap();
        assert_eq!(token.as_deref(), Some("abc"));
        assert_eq!(models[0].latest_versions[0].version, "3");
        assert_eq!(models[0].tag("deployment-image"), Some("x/y:1"));
        assert_eq!(
            models[0].aliases[0],
            AliasRef {
                alias: "champion".into(),
                version: "2".into()
            }
        );
        let (models, token) = parse_search_page(b"{}").unwrap();
        assert!(models.is_empty() && token.is_none());
        assert!(parse_search_page(b"{\"registered_models\":[{}]}").is_err());
        assert!(parse_search_page(b"<html>").is_err());
    }

    #[test]
    fn parallel_map_keeps_order_and_stops_on_error() {
        let items: Vec<u32> = (0..100).collect();
        let out = parallel_map(&items, 8, |i| Ok(i * 2)).unwrap();
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let err = parallel_map(
            &items,
            8,
            |i| if *i == 50 { bail!("boom {i}") } else { Ok(*i) },
        );
        assert_eq!(err.unwrap_err().to_string(), "boom 50");
        assert!(parallel_map(&Vec::<u32>::new(), 4, |i| Ok(*i))
            .unwrap()
            .is_empty());
    }
}
