//! A version's `MLmodel` against the serving runtime: whether the runtime's MLflow can load
//! it. Pure: the engine reads the file (`engine::preflight`), this decides.
//!
//! Only what is known not to load is refused ([`crate::runtime`] has the facts): a missing
//! `python_function` flavor (every runtime loads with `mlflow.pyfunc.load_model`), a
//! scikit-learn serialization format the runtime's MLflow does not read, and a signature its
//! MLflow cannot parse. The MLflow that logged a model is not by itself a reason: a
//! cloudpickle model logged by MLflow 3.17.2 loads on 2.10.2 and 2.19.0.

use serde_json::Value;

use crate::runtime::{reads_required_columns, sklearn_formats, MlflowVersion, SKOPS_SINCE};

/// What preflight reads of an `MLmodel`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct MlModel {
    /// The flavors' names, in the file's order.
    pub(crate) flavors: Vec<String>,
    /// `flavors.python_function.loader_module`, when it has that flavor.
    pub(crate) loader_module: Option<String>,
    /// `flavors.sklearn.serialization_format`; `None` when absent (MLflow then reads pickle).
    pub(crate) sklearn_format: Option<String>,
    /// Whether a column of the signature has the `required` field (MLflow 2.10+ writes it).
    pub(crate) required_columns: bool,
    /// `mlflow_version`: the MLflow that logged it.
    pub(crate) mlflow_version: Option<String>,
}

impl MlModel {
    fn has_pyfunc(&self) -> bool {
        self.flavors.iter().any(|f| f == "python_function")
    }
}

/// Reads an `MLmodel` file (YAML); an error says why it is not one.
pub(crate) fn parse_mlmodel(text: &str) -> Result<MlModel, String> {
    let doc: Value =
        yaml_serde::from_str(text).map_err(|e| format!("its MLmodel is not valid YAML: {e}"))?;
    let Some(flavors) = doc.get("flavors").and_then(Value::as_object) else {
        return Err("its MLmodel has no flavors".into());
    };
    let string = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let signature = &doc["signature"];
    let required_columns = ["inputs", "outputs"]
        .iter()
        .filter_map(|k| signature[k].as_str())
        .any(has_required_column);
    Ok(MlModel {
        flavors: flavors.keys().cloned().collect(),
        loader_module: flavors
            .get("python_function")
            .and_then(|f| f.get("loader_module"))
            .and_then(string),
        sklearn_format: flavors
            .get("sklearn")
            .and_then(|f| f.get("serialization_format"))
            .and_then(string),
        required_columns,
        mlflow_version: doc.get("mlflow_version").and_then(string),
    })
}

/// Whether a signature schema (a JSON list of column specs, as `MLmodel` keeps it) has a
/// column with `required`.
fn has_required_column(schema: &str) -> bool {
    serde_json::from_str::<Value>(schema).is_ok_and(|v| {
        v.as_array()
            .is_some_and(|cols| cols.iter().any(|c| c.get("required").is_some()))
    })
}

/// Why a runtime whose MLflow is `mlflow` cannot load `model`, and what to do instead; `Ok`
/// when nothing known stops it.
pub(crate) fn check(model: &MlModel, mlflow: MlflowVersion) -> Result<(), String> {
    if !model.has_pyfunc() {
        return Err(format!(
            "its MLmodel has no python_function flavor (it has {}), and the runtime loads models with mlflow.pyfunc.load_model; log it with a flavor's log_model (mlflow.sklearn.log_model, mlflow.pyfunc.log_model, …), which adds python_function",
            if model.flavors.is_empty() {
                "none".to_string()
            } else {
                model.flavors.join(", ")
            }
        ));
    }
    if model.loader_module.as_deref() == Some("mlflow.sklearn") {
        let format = model.sklearn_format.as_deref().unwrap_or("pickle");
        let readable = sklearn_formats(mlflow);
        if !readable.contains(&format) {
            let since = if format == "skops" {
                format!(" (MLflow 3.14+'s default; MLflow reads it from {SKOPS_SINCE} on)")
            } else {
                String::new()
            };
            return Err(format!(
                "it is saved in scikit-learn's {format:?} serialization format{since}, which MLflow {mlflow} cannot read (\"Unrecognized serialization format: {format}\"; it reads {}); log it with mlflow.sklearn.log_model(..., serialization_format=\"cloudpickle\"), or set M2S_RUNTIME_MLFLOW_VERSION if the serving image's MLflow reads it",
                readable.join(", ")
            ));
        }
    }
    if model.required_columns && !reads_required_columns(mlflow) {
        return Err(format!(
            "its signature{} has columns with the `required` field (MLflow 2.10+), which MLflow {mlflow} cannot read (\"TypeError: __init__() got an unexpected keyword argument 'required'\"); serve it with an image whose MLflow is 2.10 or newer and set M2S_RUNTIME_MLFLOW_VERSION to that version (on seldon-v1 with M2S_SELDON_PROTOCOL=v2: M2S_SELDON_DEF_IMAGE=seldonio/mlserver:1.7.1 and M2S_RUNTIME_MLFLOW_VERSION=2.19.0)",
            model
                .mlflow_version
                .as_deref()
                .map(|v| format!(", written by MLflow {v},"))
                .unwrap_or_default()
        ));
    }
    Ok(())
}

/// The entry error of a version preflight refuses: model, version, the runtime, why and the fix.
pub(crate) fn refusal(model: &str, version: &str, runtime: &str, why: &str) -> String {
    format!("preflight: {runtime} cannot load version {version} of model {model:?}: {why}")
}

/// The entry error of a version whose `MLmodel` is not where the object would point; `others`
/// are the files that are there instead.
pub(crate) fn missing(
    model: &str,
    version: &str,
    path: &str,
    uri: &str,
    others: &[String],
) -> String {
    if others.is_empty() {
        return format!(
            "preflight: the files of version {version} of model {model:?} are missing: MLflow's artifact store has nothing under {path:?}, where the object would point ({uri}); log the model again, or point the stage or alias at a version whose files exist"
        );
    }
    format!(
        "preflight: version {version} of model {model:?} is not an MLflow model: MLflow's artifact store has no MLmodel under {path:?}, where the object would point ({uri}), but {} (the runtime loads MLflow models); register the folder mlflow.<flavor>.log_model wrote, or point the stage or alias at another version",
        first_names(others)
    )
}

/// "a, b, c and 4 more".
fn first_names(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let shown = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match names.len().saturating_sub(SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests;
