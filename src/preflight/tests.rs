use super::*;

/// The MLmodel MLflow 3.17.2 writes for `mlflow.sklearn.log_model(model, name="model",
/// input_example=X, serialization_format="cloudpickle")` (read back from the sandbox).
const CLOUDPICKLE_3_17: &str = r#"artifact_path: mlflow-artifacts:/1/models/m-dec27614dce24dd0ab5fb7a2cb83551f/artifacts
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.9.1
    skops_trusted_types: null
is_signature_from_type_hint: false
mlflow_version: 3.17.2
model_id: m-dec27614dce24dd0ab5fb7a2cb83551f
model_size_bytes: 1484
model_uuid: m-dec27614dce24dd0ab5fb7a2cb83551f
prompts: null
run_id: 62354165c32742e789c8093e52ce28cd
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: split
  serving_input_path: serving_input_example.json
  type: dataframe
signature:
  inputs: '[{"type": "double", "name": "sepal_length", "required": true}, {"type":
    "double", "name": "sepal_width", "required": true}, {"type": "double", "name":
    "petal_length", "required": true}, {"type": "double", "name": "petal_width", "required":
    true}]'
  outputs: '[{"type": "long", "required": true}]'
  params: null
type_hint_from_example: false
utc_time_created: '2026-11-29 21:06:06.241879'
"#;

fn skops_3_17() -> String {
    CLOUDPICKLE_3_17
        .replace("model.pkl", "model.skops")
        .replace(
            "serialization_format: cloudpickle",
            "serialization_format: skops",
        )
}

/// What a runtime of mid-2023 (MLflow 2.4) wrote: no `required`, no serialization format.
const PICKLE_2_4: &str = r#"flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.8.16
  sklearn:
    code: null
    pickled_model: model.pkl
    sklearn_version: 1.3.0
mlflow_version: 2.4.2
signature:
  inputs: '[{"type": "double", "name": "sepal_length"}]'
  outputs: '[{"type": "long"}]'
"#;

fn v(s: &str) -> MlflowVersion {
    MlflowVersion::parse(s).unwrap()
}

#[test]
fn parses_what_mlflow_writes() {
    let m = parse_mlmodel(CLOUDPICKLE_3_17).unwrap();
    assert_eq!(m.flavors, ["python_function", "sklearn"]);
    assert_eq!(m.loader_module.as_deref(), Some("mlflow.sklearn"));
    assert_eq!(m.sklearn_format.as_deref(), Some("cloudpickle"));
    assert!(m.required_columns, "the signature is folded over lines");
    assert_eq!(m.mlflow_version.as_deref(), Some("3.17.2"));
    let old = parse_mlmodel(PICKLE_2_4).unwrap();
    assert_eq!(old.sklearn_format, None);
    assert!(!old.required_columns);
    // No signature at all.
    let bare =
        parse_mlmodel("flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n")
            .unwrap();
    assert!(!bare.required_columns);
    assert_eq!(bare.mlflow_version, None);
}

#[test]
fn unreadable_files_say_why() {
    assert!(parse_mlmodel("flavors: [unclosed")
        .unwrap_err()
        .contains("not valid YAML"));
    assert!(parse_mlmodel("mlflow_version: 3.17.2\n")
        .unwrap_err()
        .contains("no flavors"));
    assert!(parse_mlmodel("").unwrap_err().contains("no flavors"));
}

#[test]
fn cloudpickle_from_mlflow_3_loads_on_every_shipped_runtime() {
    // Tried: MLflow 3.17.2's cloudpickle model served by MLServer 1.5.0 (2.10.2), 1.7.1 (2.19.0).
    let m = parse_mlmodel(CLOUDPICKLE_3_17).unwrap();
    for runtime in ["2.10.2", "2.19.0", "2.22.5", "3.17.2"] {
        assert_eq!(check(&m, v(runtime)), Ok(()), "{runtime}");
    }
}

#[test]
fn skops_is_refused_below_3_9() {
    let m = parse_mlmodel(&skops_3_17()).unwrap();
    for runtime in ["2.10.2", "2.19.0", "2.22.5", "3.8.0"] {
        let why = check(&m, v(runtime)).unwrap_err();
        assert!(why.contains("\"skops\""), "{why}");
        assert!(why.contains(&format!("MLflow {runtime}")), "{why}");
        assert!(
            why.contains("Unrecognized serialization format: skops"),
            "{why}"
        );
        assert!(
            why.contains("serialization_format=\"cloudpickle\""),
            "{why}"
        );
        assert!(why.contains("M2S_RUNTIME_MLFLOW_VERSION"), "{why}");
    }
    assert_eq!(check(&m, v("3.9.0")), Ok(()));
    assert_eq!(check(&m, v("3.17.2")), Ok(()));
}

#[test]
fn an_unknown_format_is_refused_and_a_missing_one_is_pickle() {
    let odd = CLOUDPICKLE_3_17.replace(
        "serialization_format: cloudpickle",
        "serialization_format: joblib",
    );
    let why = check(&parse_mlmodel(&odd).unwrap(), v("3.17.2")).unwrap_err();
    assert!(
        why.contains("\"joblib\"") && why.contains("skops, pickle, cloudpickle"),
        "{why}"
    );
    assert_eq!(
        check(&parse_mlmodel(PICKLE_2_4).unwrap(), v("2.4.2")),
        Ok(())
    );
}

#[test]
fn the_format_matters_only_when_pyfunc_loads_through_sklearn() {
    // A custom python model that happens to carry an sklearn flavor loads through its own loader.
    let custom = skops_3_17().replace(
        "loader_module: mlflow.sklearn",
        "loader_module: mlflow.pyfunc.model",
    );
    assert_eq!(check(&parse_mlmodel(&custom).unwrap(), v("2.10.2")), Ok(()));
}

#[test]
fn required_columns_are_refused_below_2_10() {
    let m = parse_mlmodel(CLOUDPICKLE_3_17).unwrap();
    let why = check(&m, v("2.4.2")).unwrap_err();
    assert!(why.contains("written by MLflow 3.17.2"), "{why}");
    assert!(
        why.contains("unexpected keyword argument 'required'"),
        "{why}"
    );
    assert!(why.contains("seldonio/mlserver:1.7.1"), "{why}");
    assert_eq!(check(&m, v("2.10.0")), Ok(()));
    // The runtime's own era: loads.
    assert_eq!(
        check(&parse_mlmodel(PICKLE_2_4).unwrap(), v("2.4.2")),
        Ok(())
    );
}

#[test]
fn a_model_without_python_function_is_refused_on_every_runtime() {
    let only = "flavors:\n  sklearn:\n    pickled_model: model.pkl\n    serialization_format: cloudpickle\n";
    for runtime in ["2.4.2", "2.19.0", "3.17.2"] {
        let why = check(&parse_mlmodel(only).unwrap(), v(runtime)).unwrap_err();
        assert!(
            why.contains("no python_function flavor (it has sklearn)"),
            "{why}"
        );
    }
}

#[test]
fn messages_name_model_version_runtime_and_fix() {
    let m = refusal(
        "iris",
        "5",
        "seldonio/mlserver:1.5.0 with MLflow 2.10.2",
        "why; fix",
    );
    assert_eq!(m, "preflight: seldonio/mlserver:1.5.0 with MLflow 2.10.2 cannot load version 5 of model \"iris\": why; fix");
    let m = missing(
        "iris",
        "6",
        "1/models/m-1/artifacts",
        "s3://b/1/models/m-1/artifacts",
        &[],
    );
    assert!(m.contains("version 6 of model \"iris\" are missing"), "{m}");
    assert!(
        m.contains("has nothing under \"1/models/m-1/artifacts\""),
        "{m}"
    );
    assert!(m.contains("(s3://b/1/models/m-1/artifacts)"), "{m}");
    let files: Vec<String> = ["a.pkl", "b", "c", "d", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let m = missing("iris", "7", "p", "s3://b/p", &files);
    assert!(
        m.contains("version 7 of model \"iris\" is not an MLflow model"),
        "{m}"
    );
    assert!(m.contains("has no MLmodel under \"p\""), "{m}");
    assert!(m.contains("but a.pkl, b, c and 2 more"), "{m}");
}
