//! A version's files, read through MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/`, the
//! `mlflow-artifacts:` locations of a server with `--artifacts-destination`): m2s holds no
//! storage credentials of its own, and the proxy reads the very files the serving pods fetch
//! from `M2S_MLFLOW_STORAGE_ROOT`.
//!
//! MLflow answers a missing file with 500 (3.17 and 2.22 alike: "An error occurred (404) when
//! calling the HeadObject operation"), the same status as any other failure. A file is
//! therefore called missing only when its folder, listed, does not have it; a server without
//! the proxy (`--no-serve-artifacts`) answers 503.

use std::io::Read;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::{MlflowClient, Refused, Repeat};

/// The largest file read (an `MLmodel` is a few kilobytes).
const MAX_FILE: u64 = 1024 * 1024;

/// What reading one file through MLflow's artifact proxy came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArtifactFile {
    /// The file's text.
    Found(String),
    /// The proxy serves the folder, and the folder has no such file; what it has instead.
    Missing(Vec<String>),
    /// MLflow does not serve artifacts (why, in its words).
    NotServed(String),
}

#[derive(Debug, Deserialize)]
struct Listing {
    #[serde(default)]
    files: Vec<Listed>,
}

#[derive(Debug, Deserialize)]
struct Listed {
    path: String,
}

impl MlflowClient {
    /// The proxy's URL of `path` (relative to the artifacts destination), or of its listing.
    fn artifacts_url(&self, path: Option<&str>) -> Url {
        let mut url = self
            .base
            .join("api/2.0/mlflow-artifacts/artifacts")
            .expect("static API path joins onto a base URL");
        if let Some(path) = path {
            url.path_segments_mut()
                .expect("an http(s) base URL")
                .extend(path.split('/').filter(|s| !s.is_empty()));
        }
        url
    }

    /// The file `name` in the folder `dir` under MLflow's artifacts destination: one request
    /// when it is there; a listing of `dir` more when MLflow cannot hand it over.
    pub(crate) fn read_artifact(&self, dir: &str, name: &str) -> Result<ArtifactFile> {
        let file = format!("{}/{name}", dir.trim_matches('/'));
        let url = self.artifacts_url(Some(&file));
        let pass = [
            StatusCode::NOT_FOUND,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ];
        match self.send(Method::GET, &url, None, &pass, Repeat::Safe, text)? {
            Ok(text) => return Ok(ArtifactFile::Found(text)),
            Err(refused) if refused.status == StatusCode::SERVICE_UNAVAILABLE => {
                return Ok(ArtifactFile::NotServed(not_served(&self.base, &refused)));
            }
            Err(refused) => log::debug!(
                "MLflow at {} answered {}{}; listing {dir:?}",
                refused.url,
                refused.status,
                refused.detail
            ),
        }
        let mut listing = self.artifacts_url(None);
        listing.query_pairs_mut().append_pair("path", dir);
        let pass = [StatusCode::NOT_FOUND, StatusCode::SERVICE_UNAVAILABLE];
        let listed = match self.send(Method::GET, &listing, None, &pass, Repeat::Safe, json)? {
            Ok(listed) => listed,
            Err(refused) => return Ok(ArtifactFile::NotServed(not_served(&self.base, &refused))),
        };
        let names: Vec<String> = listed
            .files
            .into_iter()
            .map(|f| f.path.trim_matches('/').to_string())
            .collect();
        if !names.iter().any(|n| n == name) {
            return Ok(ArtifactFile::Missing(names));
        }
        // Listed, yet not handed over: read again as any other read is (retried on 5xx).
        let text = self
            .send(Method::GET, &url, None, &[], Repeat::Safe, text)?
            .map_err(|r| anyhow!("MLflow at {} answered {}{}", r.url, r.status, r.detail))?;
        Ok(ArtifactFile::Found(text))
    }
}

/// Why the proxy is not there: `--no-serve-artifacts` (503), or no such route (404).
fn not_served(base: &Url, refused: &Refused) -> String {
    format!(
        "MLflow at {} does not serve artifacts (it answered {} to {}; its server runs with --no-serve-artifacts, or clients write to the store directly)",
        base.as_str().trim_end_matches('/'),
        refused.status,
        refused.url
    )
}

/// A text answer of at most [`MAX_FILE`] bytes.
fn text(url: &Url, resp: reqwest::blocking::Response) -> Result<String> {
    let mut bytes = Vec::new();
    resp.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading the answer of MLflow at {url}"))?;
    if bytes.len() as u64 > MAX_FILE {
        bail!("MLflow at {url} answered with more than {MAX_FILE} bytes");
    }
    String::from_utf8(bytes)
        .map_err(|_| anyhow!("MLflow at {url} answered with a file that is not UTF-8 text"))
}

/// The listing, as JSON.
fn json(url: &Url, resp: reqwest::blocking::Response) -> Result<Listing> {
    let bytes = resp
        .bytes()
        .with_context(|| format!("reading the answer of MLflow at {url}"))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("MLflow at {url} answered with a malformed listing"))
}
