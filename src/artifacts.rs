//! Where a model version's files are, and the URI the serving stack fetches them from.

use anyhow::{bail, Result};

use crate::targets::{fetchable_list, fetches, Target};

/// What a model version's `source` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `runs:/<run_id>/<path>`: relative to the run's artifact root.
    Run { run_id: String, path: String },
    /// `models:/<model_id>` (MLflow 3 logged model).
    LoggedModel { model_id: String },
    /// Anything else is already a location.
    Location(String),
}

pub(crate) fn parse_source(source: &str) -> Result<Source> {
    if let Some(rest) = source.strip_prefix("runs:/") {
        let rest = rest.trim_start_matches('/');
        let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
        if run_id.is_empty() {
            bail!("source {source:?} names no run id");
        }
        return Ok(Source::Run {
            run_id: run_id.to_string(),
            path: path.trim_matches('/').to_string(),
        });
    }
    if let Some(rest) = source.strip_prefix("models:/") {
        let id = rest.trim_matches('/');
        if id.is_empty() || id.contains('/') {
            bail!(
                "source {source:?} is a registry URI, not a logged model id; m2s cannot resolve it"
            );
        }
        return Ok(Source::LoggedModel {
            model_id: id.to_string(),
        });
    }
    if source.trim().is_empty() {
        bail!("the model version has an empty source");
    }
    Ok(Source::Location(source.to_string()))
}

/// A resolved artifact location and the ids that place it under MLflow's artifact root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ArtifactLocation {
    pub(crate) uri: String,
    pub(crate) experiment_id: Option<String>,
    pub(crate) run_id: Option<String>,
}

/// Joins a base location and a relative path with exactly one `/`.
pub(crate) fn join(base: &str, path: &str) -> String {
    let path = path.trim_matches('/');
    if path.is_empty() {
        base.trim_end_matches('/').to_string()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), path)
    }
}

/// The model URI for the serving stack. With a storage root, the part of the location from the experiment
/// id on (`<experiment_id>/<run_id>/artifacts/...` or `<experiment_id>/models/<id>/...`, MLflow's
/// layout under its artifact root) is put under the root; without one, the location must already
/// be one the target fetches.
pub(crate) fn model_uri(
    loc: &ArtifactLocation,
    storage_root: Option<&str>,
    target: &dyn Target,
) -> Result<String> {
    let kind = target.resource().kind;
    match storage_root {
        Some(root) => match relative_to_artifact_root(loc) {
            Some(rel) => Ok(join(root, &rel)),
            // Registered straight from a bucket, outside MLflow's artifact root: fine as it is.
            None if fetches(target, &loc.uri) => Ok(loc.uri.trim_end_matches('/').to_string()),
            None => bail!(
                "cannot rebase artifact location {:?} onto M2S_MLFLOW_STORAGE_ROOT: no <experiment_id>/<run_id> or <experiment_id>/models part found in it, and a {kind} cannot fetch it as it is (supported: {})",
                loc.uri,
                fetchable_list(target)
            ),
        },
        None if fetches(target, &loc.uri) => Ok(loc.uri.trim_end_matches('/').to_string()),
        None => bail!(
            "artifact location {:?} cannot be fetched by a {kind} (supported: {}); set M2S_MLFLOW_STORAGE_ROOT to where the serving pods can read MLflow's artifact root",
            loc.uri,
            fetchable_list(target)
        ),
    }
}

/// Where MLflow's artifact proxy serves the files of `loc`: its path under the artifacts
/// destination, which is the path m2s puts under `M2S_MLFLOW_STORAGE_ROOT`. `None` for a
/// location outside the proxy (a store clients write to directly).
pub(crate) fn proxied_path(loc: &ArtifactLocation) -> Option<String> {
    if !loc.uri.starts_with("mlflow-artifacts:") {
        return None;
    }
    relative_to_artifact_root(loc)
}

fn relative_to_artifact_root(loc: &ArtifactLocation) -> Option<String> {
    let path = match loc.uri.split_once("://") {
        Some((_, rest)) => rest,
        None => loc
            .uri
            .strip_prefix("mlflow-artifacts:")
            .or_else(|| loc.uri.strip_prefix("file:"))
            .unwrap_or(&loc.uri),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let starts_at = |i: usize| Some(segments[i..].join("/"));
    // Search from the end: a storage root may itself contain ids that look alike.
    for i in (0..segments.len().saturating_sub(1)).rev() {
        let next = segments[i + 1];
        let exp_matches = loc
            .experiment_id
            .as_deref()
            .is_none_or(|e| e == segments[i]);
        let run_follows = loc.run_id.as_deref().is_some_and(|r| r == next);
        let model_follows = next == "models" && loc.experiment_id.as_deref() == Some(segments[i]);
        if exp_matches && (run_follows || model_follows) {
            return starts_at(i);
        }
    }
    None
}

#[cfg(test)]
mod tests;
