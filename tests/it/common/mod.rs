//! Shared helpers for the integration tests: the sandbox's real MLflow server and
//! kube-apiserver (started by `make sandbox-up`), registry fixtures over MLflow's REST API,
//! and running the `m2s` binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

pub mod versions;

/// Where the running sandbox is.
#[derive(Clone, Debug)]
pub struct Sandbox {
    pub kubeconfig: PathBuf,
    pub mlflow_url: String,
    pub bin: PathBuf,
    /// The MLflow version `up.sh` found the server reporting (`M2S_SANDBOX_MLFLOW_VERSION`).
    pub recorded_mlflow_version: Option<String>,
}

pub fn sandbox_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("M2S_SANDBOX_REQUIRED").is_ok_and(|v| v == "1")
}

fn env_file_vars() -> BTreeMap<String, String> {
    let dir = std::env::var("M2S_SANDBOX_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/m2s-sandbox/run")
        });
    let text = std::fs::read_to_string(dir.join("env")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A variable of the sandbox: from the environment, else from `$M2S_SANDBOX_DIR/env`.
pub fn sandbox_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| env_file_vars().remove(name))
        .filter(|v| !v.is_empty())
}

/// Every `M2S_SANDBOX_*` variable of the sandbox (the environment's win over the env file's).
pub fn sandbox_vars() -> BTreeMap<String, String> {
    let mut vars = env_file_vars();
    vars.extend(std::env::vars().filter(|(k, _)| k.starts_with("M2S_SANDBOX_")));
    vars
}

impl Sandbox {
    /// The sandbox, or `None` (test skipped, with a note) when it is not running. Under
    /// `CI=true` or `M2S_SANDBOX_REQUIRED=1` a missing sandbox fails the test instead.
    pub fn get() -> Option<Sandbox> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let file = env_file_vars();
        let var = |k: &str| {
            std::env::var(k)
                .ok()
                .or_else(|| file.get(k).cloned())
                .filter(|v| !v.is_empty())
        };
        match (
            var("M2S_SANDBOX_KUBECONFIG"),
            var("M2S_SANDBOX_MLFLOW_URL"),
            var("M2S_SANDBOX_BIN"),
        ) {
            (Some(k), Some(m), Some(b)) => Some(Sandbox {
                kubeconfig: k.into(),
                mlflow_url: m,
                bin: b.into(),
                recorded_mlflow_version: var("M2S_SANDBOX_MLFLOW_VERSION"),
            }),
            _ => {
                let msg = "the sandbox is not running (run `make sandbox-up`, or `make test`)";
                if sandbox_required() {
                    panic!("{msg}: required under CI=true / M2S_SANDBOX_REQUIRED=1");
                }
                eprintln!("SKIP: {msg}");
                None
            }
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(self.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=30s")
            .args(args)
            .output()
            .expect("running kubectl")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn kubectl_apply_json(&self, ns: &str, object: &Value) {
        let path = std::env::temp_dir().join(format!("m2s-test-{}.json", unique("obj")));
        std::fs::write(&path, object.to_string()).unwrap();
        self.kubectl_ok(&["-n", ns, "create", "-f", path.to_str().unwrap()]);
        let _ = std::fs::remove_file(path);
    }

    /// A fresh namespace (namespaces never finish deleting without a controller-manager).
    pub fn namespace(&self, prefix: &str) -> String {
        let ns = unique(prefix);
        self.kubectl_ok(&["create", "namespace", &ns]);
        ns
    }

    /// SeldonDeployments in `ns` by name (all of them, managed or not).
    pub fn seldon_deployments(&self, ns: &str) -> BTreeMap<String, Value> {
        self.objects(ns, "seldon-v1")
    }

    /// The objects of `target`'s kind in `ns` by name (all of them, managed or not).
    pub fn objects(&self, ns: &str, target: &str) -> BTreeMap<String, Value> {
        let out = self.kubectl_ok(&["-n", ns, "get", &resource_of(target), "-o", "json"]);
        let list: Value = serde_json::from_str(&out).unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["metadata"]["name"].as_str().unwrap().to_string(),
                    o.clone(),
                )
            })
            .collect()
    }

    /// name → resourceVersion, to prove that nothing was written.
    pub fn resource_versions(&self, ns: &str) -> BTreeMap<String, String> {
        self.resource_versions_of(ns, "seldon-v1")
    }

    /// name → resourceVersion of `target`'s objects.
    pub fn resource_versions_of(&self, ns: &str, target: &str) -> BTreeMap<String, String> {
        self.objects(ns, target)
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    }

    pub fn mlflow(&self) -> Mlflow {
        Mlflow::new(&self.mlflow_url)
    }

    /// The `m2s` command with a clean environment pointed at the sandbox and `ns`; models are
    /// limited to names starting with `prefix` so tests sharing one MLflow never see each other.
    pub fn m2s(&self, ns: &str, prefix: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_m2s"));
        for (k, _) in std::env::vars() {
            if k.starts_with("M2S_")
                || k.starts_with("MLFLOW_")
                || k == "KUBECONFIG"
                || k == "RUST_LOG"
            {
                cmd.env_remove(k);
            }
        }
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("M2S_MLFLOW_HOST", &self.mlflow_url)
            .env("M2S_SELDON_DEPLOYMENT_NS", ns)
            .env("M2S_MLFLOW_STORAGE_ROOT", "pvc://mlflow-artifacts/mlruns")
            .env("M2S_MODEL_FILTER", format!("name LIKE '{prefix}%'"))
            .env("M2S_REQUEST_TIMEOUT", "10")
            .env("M2S_RUN_TIMEOUT", "120");
        cmd
    }
}

impl Sandbox {
    /// Writes `status` into the status subresource of `target`'s object `name`, the way the
    /// stack's controller would (the sandbox runs no controllers). A merge patch: lists such as
    /// `conditions` are replaced whole.
    pub fn set_status(&self, ns: &str, target: &str, name: &str, status: &Value) {
        self.kubectl_ok(&[
            "-n",
            ns,
            "patch",
            &resource_of(target),
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &json!({ "status": status }).to_string(),
        ]);
    }

    /// `metadata.generation` of `target`'s object `name`.
    pub fn generation(&self, ns: &str, target: &str, name: &str) -> i64 {
        self.objects(ns, target)[name]["metadata"]["generation"]
            .as_i64()
            .unwrap()
    }

    /// Events in `ns` (as core/v1 shows them, which is what `kubectl describe` reads).
    pub fn events(&self, ns: &str) -> Vec<Value> {
        let out = self.kubectl_ok(&["-n", ns, "get", "events", "-o", "json"]);
        let list: Value = serde_json::from_str(&out).unwrap();
        list["items"].as_array().unwrap().clone()
    }
}

/// `plural.group` of a target's resource, as kubectl takes it.
pub fn resource_of(target: &str) -> String {
    m2s::targets::by_id(target)
        .unwrap_or_else(|| panic!("unknown target {target}"))
        .resource()
        .qualified_plural()
}

impl Sandbox {
    /// m2s for `target` (through the target-neutral variables), with a storage root every
    /// target fetches from.
    pub fn m2s_target(&self, ns: &str, prefix: &str, target: &str) -> Command {
        let mut cmd = self.m2s(ns, prefix);
        cmd.env_remove("M2S_SELDON_DEPLOYMENT_NS")
            .env("M2S_NAMESPACE", ns)
            .env("M2S_TARGET", target)
            .env("M2S_MLFLOW_STORAGE_ROOT", "s3://mlflow/mlruns");
        cmd
    }
}

/// A name no other test (or earlier run against the same sandbox) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{:x}{:x}{}",
        std::process::id() % 0xffff,
        (nanos / 1000) % 0xff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct RunResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl RunResult {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub fn run(cmd: &mut Command) -> RunResult {
    let out = cmd.output().expect("running m2s");
    RunResult {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs and asserts the exit code, showing the output when it differs.
pub fn run_expect(cmd: &mut Command, code: i32) -> RunResult {
    let r = run(cmd);
    assert_eq!(
        r.code, code,
        "m2s exited {} (wanted {code})\nstdout:\n{}\nstderr:\n{}",
        r.code, r.stdout, r.stderr
    );
    r
}

/// Registry fixtures built through MLflow's REST API.
pub struct Mlflow {
    base: String,
    http: reqwest::blocking::Client,
}

impl Mlflow {
    pub fn new(base: &str) -> Mlflow {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Mlflow {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::blocking::Client::new(),
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = resp.status();
        let text = resp.text().unwrap();
        assert!(status.is_success(), "POST {url} {body} -> {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub fn delete(&self, path: &str, body: Value) {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let resp = self.http.delete(&url).json(&body).send().unwrap();
        assert!(
            resp.status().is_success(),
            "DELETE {url} {body} -> {}",
            resp.status()
        );
    }

    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let resp = self.http.get(&url).query(query).send().unwrap();
        assert!(resp.status().is_success(), "GET {url} -> {}", resp.status());
        resp.json().unwrap()
    }

    pub fn experiment(&self, name: &str) -> String {
        self.post("experiments/create", json!({ "name": name }))["experiment_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A run; returns (run_id, artifact_uri).
    pub fn run(&self, experiment_id: &str) -> (String, String) {
        let r = self.post("runs/create", json!({ "experiment_id": experiment_id }));
        (
            r["run"]["info"]["run_id"].as_str().unwrap().to_string(),
            r["run"]["info"]["artifact_uri"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    }

    pub fn model(&self, name: &str) {
        self.post("registered-models/create", json!({ "name": name }));
    }

    pub fn delete_model(&self, name: &str) {
        self.delete("registered-models/delete", json!({ "name": name }));
    }

    pub fn set_model_tag(&self, name: &str, key: &str, value: &str) {
        self.post(
            "registered-models/set-tag",
            json!({ "name": name, "key": key, "value": value }),
        );
    }

    pub fn delete_model_tag(&self, name: &str, key: &str) {
        self.delete(
            "registered-models/delete-tag",
            json!({ "name": name, "key": key }),
        );
    }

    /// A version whose source is `runs:/<run>/model`, from a new run; returns its number.
    pub fn version_from_run(&self, name: &str, experiment_id: &str) -> String {
        let (run_id, _) = self.run(experiment_id);
        self.version(name, &format!("runs:/{run_id}/model"), Some(&run_id))
    }

    /// A version of `source`. A `runs:/<run>/<path>` source gets an `MLmodel` at `<path>` of the
    /// run's artifacts, as a model logged there has: preflight reads it before deploying.
    pub fn version(&self, name: &str, source: &str, run_id: Option<&str>) -> String {
        if let Some((run, path)) = source
            .strip_prefix("runs:/")
            .and_then(|rest| rest.split_once('/'))
        {
            let artifact_uri = self.run_info(run)["artifact_uri"]
                .as_str()
                .unwrap()
                .to_string();
            self.put_mlmodel(&artifact_uri, path);
        }
        let mut body = json!({ "name": name, "source": source });
        if let Some(r) = run_id {
            body["run_id"] = json!(r);
        }
        self.post("model-versions/create", body)["model_version"]["version"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn stage(&self, name: &str, version: &str, stage: &str) {
        self.post(
            "model-versions/transition-stage",
            json!({ "name": name, "version": version, "stage": stage, "archive_existing_versions": false }),
        );
    }

    pub fn alias(&self, name: &str, alias: &str, version: &str) {
        self.post(
            "registered-models/alias",
            json!({ "name": name, "alias": alias, "version": version }),
        );
    }

    pub fn delete_alias(&self, name: &str, alias: &str) {
        self.delete(
            "registered-models/alias",
            json!({ "name": name, "alias": alias }),
        );
    }

    pub fn run_info(&self, run_id: &str) -> Value {
        self.get("runs/get", &[("run_id", run_id)])["run"]["info"].clone()
    }

    /// Writes `text` as `<artifact_uri>/<path>` through MLflow's artifact proxy (an
    /// `mlflow-artifacts:` location, as the sandbox's runs and logged models have).
    pub fn put_artifact(&self, artifact_uri: &str, path: &str, text: &str) {
        let dir = artifact_uri
            .strip_prefix("mlflow-artifacts:")
            .unwrap_or_else(|| panic!("{artifact_uri} is not behind MLflow's artifact proxy"))
            .trim_start_matches('/');
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{dir}/{}",
            self.base,
            path.trim_matches('/')
        );
        let resp = self
            .http
            .put(&url)
            .body(text.to_string())
            .send()
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        assert!(resp.status().is_success(), "PUT {url} -> {}", resp.status());
    }

    /// An `MLmodel` (a scikit-learn model saved with cloudpickle, the way MLflow writes it) in
    /// the folder `path` of `artifact_uri`; nothing for a location outside MLflow's artifact
    /// proxy (a server a test starts itself, with local artifacts: preflight skips those).
    pub fn put_mlmodel(&self, artifact_uri: &str, path: &str) {
        if !artifact_uri.starts_with("mlflow-artifacts:") {
            return;
        }
        let file = format!("{}/MLmodel", path.trim_matches('/'));
        self.put_artifact(artifact_uri, &file, MLMODEL);
    }
}

/// What `MLmodel` the suites' versions have: loadable by every runtime m2s knows (no
/// signature, cloudpickle).
pub const MLMODEL: &str = "flavors:
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
mlflow_version: 3.17.2
";
