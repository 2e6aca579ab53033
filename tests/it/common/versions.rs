//! What the sandbox's MLflow server can do, by the version it reports: the suites run against
//! the newest 3.x and (in CI) the newest 2.x, and a part that needs what a 2.x server lacks
//! says so and is not run.

use std::io::Write;

use super::Sandbox;

/// A server feature m2s or a test relies on, and the first MLflow release that has it.
#[derive(Clone, Copy, Debug)]
pub struct Feature {
    pub what: &'static str,
    pub since: (u32, u32),
}

/// Logged models (`POST /logged-models`, `models:/<model_id>` version sources): MLflow 3.0.
pub const LOGGED_MODELS: Feature = Feature {
    what: "logged models",
    since: (3, 0),
};

/// scikit-learn models saved as skops (`serialization_format="skops"`, the default of
/// `mlflow.sklearn.log_model` from 3.14): MLflow 3.9.
pub const SKOPS: Feature = Feature {
    what: "skops serialization format",
    since: (3, 9),
};

/// Model Registry webhooks (`/webhooks`): MLflow 3.3.
pub const WEBHOOKS: Feature = Feature {
    what: "webhooks",
    since: (3, 3),
};

/// The version an MLflow server reports on `GET /version` (since MLflow 2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerVersion {
    pub text: String,
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let text = text.trim();
        let mut parts = text.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(ServerVersion {
            text: text.to_string(),
            major,
            minor,
        })
    }

    pub fn has(&self, feature: Feature) -> bool {
        (self.major, self.minor) >= feature.since
    }
}

impl Sandbox {
    /// The version the sandbox's MLflow server reports.
    pub fn mlflow_version(&self) -> ServerVersion {
        let url = format!("{}/version", self.mlflow_url.trim_end_matches('/'));
        let text = reqwest::blocking::get(&url)
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.text())
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        ServerVersion::parse(&text)
            .unwrap_or_else(|| panic!("GET {url} answered {text:?}, not a version"))
    }

    /// Whether the server has `feature`. When it has not, `part` (what the test leaves out) is
    /// named on stderr with the reason, e.g. "MLflow 2.22.5: no logged models (MLflow 3.0+);
    /// that part is not run". Written to the process's stderr rather than through `eprintln!`,
    /// which the test harness swallows for passing tests: a part not run must never be silent.
    pub fn mlflow_has(&self, feature: Feature, part: &str) -> bool {
        let version = self.mlflow_version();
        if version.has(feature) {
            return true;
        }
        let (major, minor) = feature.since;
        let _ = writeln!(
            std::io::stderr().lock(),
            "NOT RUN: MLflow {}: no {} (MLflow {major}.{minor}+); {part} is not run",
            version.text,
            feature.what
        );
        false
    }
}
