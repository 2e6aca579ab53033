//! Where a model version's files are, and the URI the serving stack fetches them from.

use anyhow::{bail, Result};

use crate::targets::Target;

/// What a model version's `source` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `runs:/<run_id>/<path>`: relative to the run's artifact root.
    Run { run_id: String, path: String },
    /// `models:/<model_id>` (MLflow 3 logged model).
    LoggedModel { model_id: String },
    /// Anything else is already a location.
    Location(String),
}

pub fn parse_source(source: &str) -> Result<Source> {
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
pub struct ArtifactLocation {
    pub uri: String,
    pub experiment_id: Option<String>,
    pub run_id: Option<String>,
}

/// Joins a base location and a relative path with exactly one `/`.
pub fn join(base: &str, path: &str) -> String {
    let path = path.trim_matches('/');
    if path.is_empty() {
        base.trim_end_matches('/').to_string()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), path)
    }
}

fn scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once("://")?;
    (!scheme.is_empty()
        && scheme
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+.-".contains(&c)))
    .then_some(scheme)
}

/// Whether `target`'s model fetcher reads `uri`.
pub fn is_fetchable(uri: &str, target: &dyn Target) -> bool {
    scheme(uri).is_some_and(|s| {
        target
            .fetchable_schemes()
            .iter()
            .any(|f| f.eq_ignore_ascii_case(s))
    })
}

fn schemes(target: &dyn Target) -> String {
    target
        .fetchable_schemes()
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn check_storage_root(root: &str, target: &dyn Target) -> Result<()> {
    if !is_fetchable(root, target) {
        bail!(
            "storage root {root:?} (M2S_MLFLOW_STORAGE_ROOT) must be a location target {} reads: {}",
            target.id(),
            schemes(target)
        );
    }
    Ok(())
}

/// The model URI for the serving stack. With a storage root, the part of the location from the experiment
/// id on (`<experiment_id>/<run_id>/artifacts/...` or `<experiment_id>/models/<id>/...`, MLflow's
/// layout under its artifact root) is put under the root; without one, the location must already
/// be one the target fetches.
pub fn model_uri(
    loc: &ArtifactLocation,
    storage_root: Option<&str>,
    target: &dyn Target,
) -> Result<String> {
    let kind = target.resource().kind;
    match storage_root {
        Some(root) => match relative_to_artifact_root(loc) {
            Some(rel) => Ok(join(root, &rel)),
            // Registered straight from a bucket, outside MLflow's artifact root: fine as it is.
            None if is_fetchable(&loc.uri, target) => Ok(loc.uri.trim_end_matches('/').to_string()),
            None => bail!(
                "cannot rebase artifact location {:?} onto M2S_MLFLOW_STORAGE_ROOT: no <experiment_id>/<run_id> or <experiment_id>/models part found in it, and a {kind} cannot fetch it as it is (supported: {})",
                loc.uri,
                schemes(target)
            ),
        },
        None if is_fetchable(&loc.uri, target) => Ok(loc.uri.trim_end_matches('/').to_string()),
        None => bail!(
            "artifact location {:?} cannot be fetched by a {kind} (supported: {}); set M2S_MLFLOW_STORAGE_ROOT to where the serving pods can read MLflow's artifact root",
            loc.uri,
            schemes(target)
        ),
    }
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
mod tests {
    use super::*;
    use crate::targets::by_id;

    fn v1() -> &'static dyn Target {
        by_id("seldon-v1").unwrap()
    }

    fn loc(uri: &str, exp: Option<&str>, run: Option<&str>) -> ArtifactLocation {
        ArtifactLocation {
            uri: uri.into(),
            experiment_id: exp.map(String::from),
            run_id: run.map(String::from),
        }
    }

    #[test]
    fn parses_sources() {
        assert_eq!(
            parse_source("runs:/abc123/model").unwrap(),
            Source::Run {
                run_id: "abc123".into(),
                path: "model".into()
            }
        );
        assert_eq!(
            parse_source("runs:/abc123/").unwrap(),
            Source::Run {
                run_id: "abc123".into(),
                path: "".into()
            }
        );
        assert_eq!(
            parse_source("models:/m-0f1e").unwrap(),
            Source::LoggedModel {
                model_id: "m-0f1e".into()
            }
        );
        assert!(parse_source("models:/iris/3").is_err());
        assert!(parse_source("runs:/").is_err());
        assert_eq!(
            parse_source("s3://b/x").unwrap(),
            Source::Location("s3://b/x".into())
        );
    }

    #[test]
    fn fetchable_locations_pass_through() {
        let l = loc(
            "s3://bucket/mlruns/1/abc/artifacts/model/",
            Some("1"),
            Some("abc"),
        );
        assert_eq!(
            model_uri(&l, None, v1()).unwrap(),
            "s3://bucket/mlruns/1/abc/artifacts/model"
        );
    }

    #[test]
    fn unfetchable_location_without_root_is_an_error_naming_it() {
        for uri in [
            "/srv/mlruns/1/abc/artifacts/model",
            "mlflow-artifacts:/1/abc/artifacts/model",
            "file:///x",
        ] {
            let err = model_uri(&loc(uri, Some("1"), Some("abc")), None, v1())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(uri) && err.contains("M2S_MLFLOW_STORAGE_ROOT"),
                "{err}"
            );
        }
    }

    #[test]
    fn rebases_local_and_proxied_locations() {
        let root = Some("pvc://mlflow-artifacts/mlruns");
        for uri in [
            "/srv/mlflow/artifacts/1/abc/artifacts/model",
            "file:///srv/mlflow/artifacts/1/abc/artifacts/model",
            "mlflow-artifacts:/1/abc/artifacts/model",
            "s3://other/prefix/1/abc/artifacts/model",
        ] {
            assert_eq!(
                model_uri(&loc(uri, Some("1"), Some("abc")), root, v1()).unwrap(),
                "pvc://mlflow-artifacts/mlruns/1/abc/artifacts/model",
                "{uri}"
            );
        }
    }

    #[test]
    fn rebases_logged_models_and_prefers_the_last_match() {
        let root = Some("s3://b/root/");
        let l = loc("/data/7/models/m-42/artifacts", Some("7"), None);
        assert_eq!(
            model_uri(&l, root, v1()).unwrap(),
            "s3://b/root/7/models/m-42/artifacts"
        );
        // The root path itself contains "1/abc": the match nearest the end wins.
        let l = loc(
            "/1/abc/mlruns/1/abc/artifacts/model",
            Some("1"),
            Some("abc"),
        );
        assert_eq!(
            model_uri(&l, root, v1()).unwrap(),
            "s3://b/root/1/abc/artifacts/model"
        );
        // Without an experiment id the segment before the run id is taken as one.
        let l = loc("mlflow-artifacts:/9/abc/artifacts/m", None, Some("abc"));
        assert_eq!(
            model_uri(&l, root, v1()).unwrap(),
            "s3://b/root/9/abc/artifacts/m"
        );
    }

    #[test]
    fn fetchable_location_outside_the_layout_is_kept_with_a_root() {
        let l = loc("s3://models/fraud/7", None, None);
        assert_eq!(
            model_uri(&l, Some("pvc://x/mlruns"), v1()).unwrap(),
            "s3://models/fraud/7"
        );
    }

    #[test]
    fn rebase_without_layout_is_an_error() {
        let err = model_uri(
            &loc("/somewhere/else/model", Some("1"), Some("abc")),
            Some("s3://b"),
            v1(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/somewhere/else/model"), "{err}");
    }

    #[test]
    fn fetchable_schemes_depend_on_the_target() {
        let v2 = by_id("seldon-v2").unwrap();
        let l = loc("pvc://claim/1/abc/artifacts/model", Some("1"), Some("abc"));
        assert!(model_uri(&l, None, v1()).is_ok());
        let err = model_uri(&l, None, v2).unwrap_err().to_string();
        assert!(err.contains("cannot be fetched by a Model"), "{err}");
        assert!(check_storage_root("pvc://claim", v2).is_err());
        assert!(check_storage_root("hdfs://nn/mlruns", by_id("kserve").unwrap()).is_ok());
    }

    #[test]
    fn storage_root_must_be_fetchable() {
        assert!(check_storage_root("s3://bucket/mlruns", v1()).is_ok());
        assert!(check_storage_root("pvc://claim/path", v1()).is_ok());
        assert!(check_storage_root("/local/path", v1()).is_err());
        assert!(check_storage_root("mlflow-artifacts:/", v1()).is_err());
    }

    #[test]
    fn join_uses_one_slash() {
        assert_eq!(join("s3://b/", "/m/"), "s3://b/m");
        assert_eq!(join("s3://b", ""), "s3://b");
    }
}
