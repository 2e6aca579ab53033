//! What an MLflow release can load: the facts preflight checks a model against. Pure.
//!
//! A serving runtime loads a model with its own MLflow (`mlflow.pyfunc.load_model`), whatever
//! MLflow logged it. A newer MLflow's model loads on an older one unless it uses something the
//! older one cannot read; these are the things m2s knows of, each with the release that brought
//! it (read in MLflow's released wheels):
//!
//! - the `skops` serialization format of scikit-learn models: MLflow 3.9.0
//!   (`mlflow/sklearn/__init__.py` `SUPPORTED_SERIALIZATION_FORMATS`; earlier releases raise
//!   `Unrecognized serialization format: skops`); MLflow 3.14.0 made it the default of
//!   `mlflow.sklearn.log_model`, and 3.17 keeps it outside Databricks;
//! - the `required` field of a signature's columns: MLflow 2.10.0 (`mlflow/types/schema.py`
//!   `ColSpec`; 2.9.2's has none, so an older MLflow fails reading the signature with
//!   `TypeError: __init__() got an unexpected keyword argument 'required'`).
//!
//! The MLflow version that logged a model is not by itself a reason: no loader compares it.

use std::fmt;

/// An MLflow release, `major.minor.patch`: a missing part is 0, and what follows the numbers
/// (`rc1`, `.dev0`, `+local`) is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct MlflowVersion {
    pub(crate) major: u32,
    pub(crate) minor: u32,
    pub(crate) patch: u32,
}

impl MlflowVersion {
    /// The release `major.minor.patch`.
    pub(crate) const fn new(major: u32, minor: u32, patch: u32) -> MlflowVersion {
        MlflowVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses `2.19.0`, `2.22`, `3.17.2rc1`; refuses anything that does not start with a
    /// number and a dot.
    pub(crate) fn parse(text: &str) -> Result<MlflowVersion, String> {
        let text = text.trim();
        let mut parts = [0u32; 3];
        let mut count = 0;
        for (i, part) in text.split('.').take(3).enumerate() {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() {
                break;
            }
            parts[i] = digits
                .parse()
                .map_err(|_| format!("{text:?} is not an MLflow version such as 2.19.0"))?;
            count += 1;
            if digits.len() != part.len() {
                break;
            }
        }
        if count < 2 {
            return Err(format!("{text:?} is not an MLflow version such as 2.19.0"));
        }
        Ok(MlflowVersion::new(parts[0], parts[1], parts[2]))
    }
}

impl fmt::Display for MlflowVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The first MLflow that loads scikit-learn models saved as `skops`.
pub(crate) const SKOPS_SINCE: MlflowVersion = MlflowVersion::new(3, 9, 0);
/// The first MLflow whose signatures have (and can read) the `required` field of a column.
pub(crate) const REQUIRED_COLUMNS_SINCE: MlflowVersion = MlflowVersion::new(2, 10, 0);

/// The scikit-learn serialization formats `mlflow` loads (`SUPPORTED_SERIALIZATION_FORMATS`).
pub(crate) fn sklearn_formats(mlflow: MlflowVersion) -> &'static [&'static str] {
    if mlflow >= SKOPS_SINCE {
        &["skops", "pickle", "cloudpickle"]
    } else {
        &["pickle", "cloudpickle"]
    }
}

/// Whether `mlflow` reads a signature whose columns have the `required` field.
pub(crate) fn reads_required_columns(mlflow: MlflowVersion) -> bool {
    mlflow >= REQUIRED_COLUMNS_SINCE
}

#[cfg(test)]
mod tests;
