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
}

#[test]
fn join_uses_one_slash() {
    assert_eq!(join("s3://b/", "/m/"), "s3://b/m");
    assert_eq!(join("s3://b", ""), "s3://b");
}

#[test]
fn proxied_paths_are_the_paths_m2s_rebases() {
    let lm = loc(
        "mlflow-artifacts:/1/models/m-0f1e/artifacts",
        Some("1"),
        None,
    );
    assert_eq!(
        proxied_path(&lm).as_deref(),
        Some("1/models/m-0f1e/artifacts")
    );
    assert_eq!(
        model_uri(&lm, Some("s3://b/mlartifacts"), v1()).unwrap(),
        "s3://b/mlartifacts/1/models/m-0f1e/artifacts"
    );
    let run = loc(
        "mlflow-artifacts://mlflow.example:5000/7/abc/artifacts/model",
        Some("7"),
        Some("abc"),
    );
    assert_eq!(proxied_path(&run).as_deref(), Some("7/abc/artifacts/model"));
    // Written to the store directly: not the proxy's.
    assert_eq!(
        proxied_path(&loc(
            "s3://b/mlruns/7/abc/artifacts/model",
            Some("7"),
            Some("abc")
        )),
        None
    );
    // A proxied location without MLflow's layout: nothing m2s could rebase either.
    assert_eq!(
        proxied_path(&loc("mlflow-artifacts:/elsewhere/model", None, None)),
        None
    );
}
