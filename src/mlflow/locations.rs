//! Where versions' files are: sources resolved to artifact locations, runs read in batches.

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{
    parallel_map, EntryResult, MlflowClient, ModelVersion, Repeat, Tag, VersionRef, MAX_PAGES,
    PAGE_SIZE,
};
use crate::artifacts::{join, parse_source, ArtifactLocation, Source};
use crate::settings::setting_tags;

/// Runs looked up per `runs/search` request (`attributes.run_id IN (...)`).
const RUN_BATCH: usize = 500;
/// Experiments named per `runs/search` request (it needs their ids).
const EXPERIMENT_BATCH: usize = 500;
/// Versions resolved per pass: each pass reads its runs and drops them, so a cold sync of tens
/// of thousands of versions never holds all their runs at once (one more `experiments/search`
/// is not needed: the ids are read once).
const RESOLVE_CHUNK: usize = 2_000;

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

/// A version as resolution uses it: as given, or as read from MLflow.
enum Completed<'a> {
    Given(VersionRef<'a>),
    Read(ModelVersion),
}

impl<'a> Completed<'a> {
    fn view(&'a self, model: &'a str) -> VersionRef<'a> {
        match self {
            Completed::Given(v) => *v,
            Completed::Read(v) => v.view(model),
        }
    }
}

/// A version's location and its `m2s.*` tags (read with it when the search did not tell them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) location: ArtifactLocation,
    pub(crate) version_tags: Vec<Tag>,
}

impl MlflowClient {
    /// `version` with its source: as given, or read from MLflow when only its number is known.
    fn complete<'a>(&self, version: VersionRef<'a>) -> Result<EntryResult<Completed<'a>>> {
        if version.source.is_some() {
            return Ok(Ok(Completed::Given(version)));
        }
        let model = version.model;
        Ok(self
            .model_version(model, version.version)?
            .map(Completed::Read)
            .ok_or_else(|| {
                format!(
                    "version {} of model {model:?} does not exist (deleted while m2s ran?)",
                    version.version
                )
            }))
    }

    /// The location of a version whose source is known; `runs` are runs already read (a run
    /// not among them is read with `runs/get`).
    fn locate(
        &self,
        version: VersionRef,
        runs: &HashMap<String, RunLocation>,
    ) -> Result<EntryResult<ArtifactLocation>> {
        if let Some(status) = version.status {
            if status != "READY" {
                return Ok(Err(format!(
                    "version {} is {status}, not READY",
                    version.version
                )));
            }
        }
        let source = version.source.unwrap_or_default();
        let run_id = version.run_id.filter(|r| !r.is_empty()).map(String::from);
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
    /// `versions` are (registered model name, version) pairs; the results are boxed, as plans
    /// keep them.
    /// `versions` are taken [`RESOLVE_CHUNK`] at a time, never all at once.
    pub(crate) fn resolve_all<'a>(
        &self,
        versions: impl ExactSizeIterator<Item = VersionRef<'a>>,
    ) -> Result<Vec<EntryResult<Box<Resolved>>>> {
        let mut experiments = None;
        let mut out = Vec::with_capacity(versions.len());
        let mut versions = versions.peekable();
        let mut chunk = Vec::with_capacity(RESOLVE_CHUNK);
        while versions.peek().is_some() {
            chunk.clear();
            chunk.extend(versions.by_ref().take(RESOLVE_CHUNK));
            out.extend(self.resolve_chunk(&chunk, &mut experiments)?);
        }
        Ok(out)
    }

    /// One pass of [`resolve_all`](Self::resolve_all); `experiments` are the experiment ids,
    /// read by the first pass that needs them.
    fn resolve_chunk(
        &self,
        versions: &[VersionRef],
        experiments: &mut Option<Option<Vec<String>>>,
    ) -> Result<Vec<EntryResult<Box<Resolved>>>> {
        // Threads only for what needs a request (each thread's allocations stay in its own
        // malloc arena: thousands of copies made on 16 threads cost megabytes of memory).
        let unknown: Vec<VersionRef> = versions
            .iter()
            .copied()
            .filter(|v| v.source.is_none())
            .collect();
        let mut fetched =
            parallel_map(&unknown, self.concurrency, |v| self.complete(*v))?.into_iter();
        let completed: Vec<EntryResult<Completed>> = versions
            .iter()
            .map(|v| match v.source {
                Some(_) => Ok(Completed::Given(*v)),
                None => fetched.next().expect("one result per unknown version"),
            })
            .collect();
        let views: Vec<EntryResult<VersionRef>> = completed
            .iter()
            .zip(versions)
            .map(|(c, v)| c.as_ref().map(|c| c.view(v.model)).map_err(Clone::clone))
            .collect();
        let run_ids: BTreeSet<String> = views
            .iter()
            .filter_map(|v| v.as_ref().ok()?.source)
            .filter_map(|s| match parse_source(s) {
                Ok(Source::Run { run_id, .. }) => Some(run_id),
                _ => None,
            })
            .collect();
        let run_ids: Vec<String> = run_ids.into_iter().collect();
        let runs = self.runs_by_id(&run_ids, experiments)?;
        let offline = |v: &EntryResult<VersionRef>| match v {
            Err(_) => true,
            Ok(v) => match v.source.map(parse_source) {
                Some(Ok(Source::Run { run_id, .. })) => runs.contains_key(&run_id),
                Some(Ok(Source::LoggedModel { .. })) => false,
                _ => true,
            },
        };
        let online: Vec<VersionRef> = views
            .iter()
            .filter(|v| !offline(v))
            .filter_map(|v| v.as_ref().ok().copied())
            .collect();
        let mut located =
            parallel_map(&online, self.concurrency, |v| self.locate(*v, &runs))?.into_iter();
        views
            .iter()
            .map(|v| {
                let location = match v {
                    Err(e) => Ok(Err(e.clone())),
                    Ok(_) if !offline(v) => {
                        Ok(located.next().expect("one result per online version"))
                    }
                    Ok(v) => self.locate(*v, &runs),
                }?;
                Ok(location.map(|location| {
                    Box::new(Resolved {
                        location,
                        version_tags: v.as_ref().map(|v| setting_tags(v.tags)).unwrap_or_default(),
                    })
                }))
            })
            .collect()
    }

    /// Artifact URI and experiment of many runs, by `runs/search` over every experiment. Runs
    /// it does not find are left out (the caller reads them one by one). A server that does not
    /// support the search (404, 400) gets an empty answer; any other failure is an error.
    fn runs_by_id(
        &self,
        run_ids: &[String],
        experiments: &mut Option<Option<Vec<String>>>,
    ) -> Result<HashMap<String, RunLocation>> {
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
        let experiments = match experiments {
            Some(known) => known,
            None => experiments.insert(self.experiment_ids()?),
        };
        let Some(experiments) = experiments.as_deref() else {
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
                // A search is a read, sent as POST.
                Repeat::Safe,
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
