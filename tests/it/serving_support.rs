//! Helpers of the serving suite: models logged as users log them (`tests/serving/log_model.py`
//! in the sandbox's MLflow venv), the Secrets and ServiceAccount of `tests/serving/examples/`
//! pointed at the sandbox's S3 stand-in, and `tests/serving/harness.py`, which downloads and
//! serves an object read back from the API server with the stack's own downloader and MLServer.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{sandbox_required, sandbox_var, sandbox_vars, unique, Sandbox};

/// The serving tools of the sandbox, or `None` (skipped with a note) when they are not
/// installed. Under `CI=true` / `M2S_SANDBOX_REQUIRED=1` their absence fails the test, naming
/// what is missing.
pub fn serving_tools() -> Option<()> {
    if sandbox_var("M2S_SANDBOX_SERVING").as_deref() == Some("1") {
        return Some(());
    }
    let missing = sandbox_var("M2S_SANDBOX_SERVING_MISSING")
        .unwrap_or_else(|| "everything (no M2S_SANDBOX_SERVING in the sandbox's env)".into());
    let msg = format!(
        "the sandbox's serving tools are missing: {missing} (tests/sandbox/install.sh installs them)"
    );
    if sandbox_required() {
        panic!("{msg}: required under CI=true / M2S_SANDBOX_REQUIRED=1");
    }
    eprintln!("SKIP: {msg}");
    None
}

fn var(name: &str) -> String {
    sandbox_var(name).unwrap_or_else(|| panic!("{name} is not in the sandbox's env"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A version logged by `log_model.py`, as it reports it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub version: String,
    /// The fitted estimator's own `predict` on the input example.
    pub prediction: Value,
    /// Where the files are in the bucket (what m2s should write).
    pub storage_uri: String,
    pub raw: Value,
}

/// Logs a scikit-learn model version of `name` as users do; `args` are log_model.py's flags
/// (`--format`, `--variant`, `--missing-artifacts`, `--alias`).
pub fn log_version(name: &str, experiment: &str, args: &[&str]) -> Logged {
    let out = Command::new(var("M2S_SANDBOX_MLFLOW_PYTHON"))
        .arg(repo().join("tests/serving/log_model.py"))
        .args(["--name", name, "--experiment", experiment])
        .args(args)
        .envs(sandbox_vars())
        .env("MLFLOW_TRACKING_URI", var("M2S_SANDBOX_MLFLOW_URL"))
        .output()
        .expect("running log_model.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "log_model.py {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("log_model.py printed {stdout:?}: {e}"));
    Logged {
        version: raw["version"].as_str().unwrap().to_string(),
        prediction: raw["prediction"].clone(),
        storage_uri: raw["storage_uri"].as_str().unwrap_or_default().to_string(),
        raw,
    }
}

/// The Secrets and ServiceAccount of `tests/serving/examples/` in `ns`, with the sandbox's keys
/// and `endpoint` (`http://host:port`) in place of the placeholders.
pub fn credentials(sb: &Sandbox, ns: &str, endpoint: &str) {
    let (key, secret) = (
        var("M2S_SANDBOX_S3_ACCESS_KEY"),
        var("M2S_SANDBOX_S3_SECRET_KEY"),
    );
    let host = endpoint.trim_start_matches("http://");
    let mut docs = String::new();
    for example in ["kserve-s3.yaml", "seldon-v1-s3.yaml", "seldon-v2-s3.yaml"] {
        let path = repo().join("tests/serving/examples").join(example);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text
            .replace("http://minio.storage.svc:9000", endpoint)
            .replace("minio.storage.svc:9000", host)
            .replace(
                "ACCESS_KEY_ID: REPLACE_ME",
                &format!("ACCESS_KEY_ID: {key}"),
            )
            .replace(
                "SECRET_ACCESS_KEY: REPLACE_ME",
                &format!("SECRET_ACCESS_KEY: {secret}"),
            )
            .replace(
                "access_key_id: REPLACE_ME",
                &format!("access_key_id: {key}"),
            )
            .replace(
                "secret_access_key: REPLACE_ME",
                &format!("secret_access_key: {secret}"),
            );
        assert!(!text.contains("REPLACE_ME"), "{example}: {text}");
        docs.push_str("---\n");
        docs.push_str(&text);
    }
    let file = std::env::temp_dir().join(format!("{}.yaml", unique("m2s-credentials")));
    std::fs::write(&file, docs).unwrap();
    sb.kubectl_ok(&["apply", "-n", ns, "-f", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(file);
}

/// `http://127.0.0.1:<port>` where nothing listens: another endpoint than the sandbox's S3.
pub fn nowhere() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// What the harness reported for one object.
#[derive(Debug, Clone)]
pub struct Served {
    pub stage: String,
    pub prediction: Value,
    pub runtime: String,
    pub error: String,
    pub raw: Value,
}

/// Plays the node for `target`'s object `name` in `ns` (credentials from `resources_ns`):
/// `harness.py`, with `extra` flags.
pub fn harness(
    sb: &Sandbox,
    target: &str,
    ns: &str,
    name: &str,
    resources_ns: &str,
    work: &Path,
    extra: &[&str],
) -> Served {
    std::fs::create_dir_all(work).unwrap();
    let resource = crate::common::resource_of(target);
    let object = work.with_extension("object.json");
    let resources = work.with_extension("resources.json");
    std::fs::write(
        &object,
        sb.kubectl_ok(&["-n", ns, "get", &resource, name, "-o", "json"]),
    )
    .unwrap();
    std::fs::write(
        &resources,
        sb.kubectl_ok(&[
            "-n",
            resources_ns,
            "get",
            "secret,serviceaccount",
            "-o",
            "json",
        ]),
    )
    .unwrap();
    let out = Command::new("python3")
        .arg(var("M2S_SANDBOX_SERVING_HARNESS"))
        .args(["--target", target, "--object"])
        .arg(&object)
        .arg("--resources")
        .arg(&resources)
        .arg("--work")
        .arg(work)
        .args(extra)
        .envs(sandbox_vars())
        .output()
        .expect("running harness.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let raw: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "harness.py printed {stdout:?} ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_ne!(
        raw["stage"], "setup_failed",
        "the harness could not run: {raw:#}"
    );
    let text = |k: &str| raw[k].as_str().unwrap_or_default().to_string();
    Served {
        stage: text("stage"),
        prediction: raw["prediction"].clone(),
        runtime: text("runtime"),
        error: text("error"),
        raw: raw.clone(),
    }
}
