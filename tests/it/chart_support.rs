//! Helpers of the chart suite: finding helm/kubectl, rendering the chart, fake helm/kubectl for
//! the Makefile scripts, and a token kubeconfig for the RBAC test.
//!
//! A missing tool makes a test fail when `CI=true` or `M2S_SANDBOX_REQUIRED=1`, and skip (with
//! `SKIP: reason` on stderr) otherwise.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use m2s::targets::Resource;
use serde_json::Value;

/// Release namespace used by the rendering tests.
pub const RELEASE_NS: &str = "m2s-system";
pub const MLFLOW_HOST: &str = "http://mlflow.mlflow.svc:5000";

/// Returns from the calling test when `$e` is `None` (the reason was already reported).
#[macro_export]
macro_rules! need {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return,
        }
    };
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    repo().join("chart/m2s")
}

fn required() -> bool {
    env::var("CI").map(|v| v == "true").unwrap_or(false)
        || env::var("M2S_SANDBOX_REQUIRED")
            .map(|v| v == "1")
            .unwrap_or(false)
}

/// Fails the test (CI) or prints `SKIP: reason` and returns `None`.
pub fn unavailable<T>(reason: &str) -> Option<T> {
    if required() {
        panic!("{reason} (required here: CI=true or M2S_SANDBOX_REQUIRED=1)");
    }
    eprintln!("SKIP: {reason}");
    None
}

/// A sandbox setting: the environment, else the running sandbox's env file
/// (`${M2S_SANDBOX_DIR:-~/.cache/m2s-sandbox/run}/env`), so `cargo test --test chart` works
/// without sourcing it first.
pub fn sandbox_var(name: &str) -> Option<String> {
    if let Ok(v) = env::var(name) {
        if !v.is_empty() {
            return Some(v);
        }
    }
    let dir = env::var("M2S_SANDBOX_DIR")
        .ok()
        .map(PathBuf::from)
        .or_else(|| {
            env::var("HOME")
                .ok()
                .map(|h| Path::new(&h).join(".cache/m2s-sandbox/run"))
        })?;
    let text = fs::read_to_string(dir.join("env")).ok()?;
    text.lines().find_map(|line| {
        let line = line.trim().strip_prefix("export ").unwrap_or(line.trim());
        let (k, v) = line.split_once('=')?;
        (k == name).then(|| v.trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

/// `$M2S_SANDBOX_BIN/<name>` if it exists.
pub fn sandbox_bin(name: &str) -> Option<PathBuf> {
    let Some(dir) = sandbox_var("M2S_SANDBOX_BIN") else {
        return unavailable(&format!(
            "M2S_SANDBOX_BIN is not set (source ~/.cache/m2s-sandbox/run/env), so no {name}"
        ));
    };
    let path = Path::new(&dir).join(name);
    if path.is_file() {
        Some(path)
    } else {
        unavailable(&format!("{} not found", path.display()))
    }
}

pub fn helm() -> Option<PathBuf> {
    sandbox_bin("helm")
}

/// A program on PATH (e.g. `script`).
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `cmd` with stdin closed.
pub fn run(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))
}

/// Runs `cmd` with `input` on a piped stdin.
pub fn run_with_input(cmd: &mut Command, input: &str) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    child.stdin.take().unwrap().write_all(input.as_bytes())?;
    Ok(child.wait_with_output()?)
}

/// `helm template m2s chart/m2s -n m2s-system --set mlflow.host=... ARGS...`.
pub fn helm_template(helm: &Path, args: &[&str]) -> Result<Output> {
    let host = format!("mlflow.host={MLFLOW_HOST}");
    run(Command::new(helm)
        .args(["template", "m2s"])
        .arg(chart_dir())
        .args(["--namespace", RELEASE_NS, "--set", &host])
        .args(args))
}

/// Renders, which must fail with `expected` in the error; returns the error.
pub fn template_fails(helm: &Path, args: &[&str], expected: &str) -> String {
    let out = helm_template(helm, args).unwrap();
    assert!(!out.status.success(), "{args:?} was accepted");
    let err = stderr(&out);
    assert!(
        err.contains(expected),
        "{args:?}: expected {expected:?} in:\n{err}"
    );
    err
}

/// Renders (must succeed) and returns the YAML text.
pub fn render_yaml(helm: &Path, args: &[&str]) -> String {
    let out = helm_template(helm, args).unwrap();
    assert!(
        out.status.success(),
        "helm template {args:?} failed:\n{}",
        stderr(&out)
    );
    stdout(&out)
}

/// The python of the kubernetes-validate venv (it has PyYAML), installing it on first use.
pub fn kv_python() -> Option<PathBuf> {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let res = PY.get_or_init(|| {
        let out = run(Command::new("bash")
            .arg(repo().join("tests/chart/validate.sh"))
            .arg("--python"))
        .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "tests/chart/validate.sh --python failed: {}",
                stderr(&out)
            ));
        }
        Ok(PathBuf::from(stdout(&out).trim()))
    });
    match res {
        Ok(p) => Some(p.clone()),
        Err(e) => unavailable(&format!("no kubernetes-validate venv: {e}")),
    }
}

/// Multi-document YAML to JSON values (empty documents dropped), with the venv's PyYAML.
pub fn yaml_docs(python: &Path, yaml: &str) -> Vec<Value> {
    let script = "import sys, json, yaml\n\
                  print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))";
    let out = run_with_input(Command::new(python).args(["-c", script]), yaml).unwrap();
    assert!(
        out.status.success(),
        "YAML parse failed: {}\n{yaml}",
        stderr(&out)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(docs) => docs,
        other => panic!("expected a list of documents, got {other}"),
    }
}

/// Renders the chart and parses the manifests.
pub fn render(helm: &Path, python: &Path, args: &[&str]) -> Vec<Value> {
    yaml_docs(python, &render_yaml(helm, args))
}

pub fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

pub fn one<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| kind(d) == k).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {k}, got {}",
        found.len()
    );
    found[0]
}

pub fn pod_spec(docs: &[Value]) -> &Value {
    &one(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
}

pub fn container(docs: &[Value]) -> &Value {
    let containers = pod_spec(docs)["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

pub fn args(docs: &[Value]) -> Vec<String> {
    container(docs)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

/// The container's env as name -> entry.
pub fn env_map(docs: &[Value]) -> BTreeMap<String, Value> {
    container(docs)["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Plain `value` of an env var, if it has one.
pub fn env_value(docs: &[Value], name: &str) -> Option<String> {
    env_map(docs)
        .get(name)
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

/// A unique temporary directory (removed by the caller or left in /tmp).
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = env::temp_dir().join(format!(
        "m2s-chart-{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A unique Kubernetes name: `<prefix>-<pid>-<nanos>` (at most 63 characters).
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000_000;
    let mut name = format!("{prefix}-{}-{nanos}", std::process::id());
    name.truncate(50);
    name
}

/// Fake `helm` and `kubectl` for the scripts: each appends its argv (one line per call,
/// arguments separated by NUL) to `<dir>/<name>.log`. `kubectl get <plural.group>` (any
/// target's resource) prints `objects` lines; `helm get values` prints `values_json`, or fails
/// like helm does for a release that is not installed when `values_json` is empty.
pub struct Fakes {
    pub dir: PathBuf,
}

impl Fakes {
    pub fn new(objects: usize, values_json: &str) -> Fakes {
        let dir = temp_dir("fakes");
        let rows: String = (0..objects).map(|i| format!("model-{i}   5m\\n")).collect();
        let values = if values_json.is_empty() {
            "echo 'Error: release: not found' >&2; exit 1".to_string()
        } else {
            format!("printf '%s\\n' '{values_json}'")
        };
        let helm = format!(
            "#!/usr/bin/env bash\n\
             {{ printf '%s\\0' \"$@\"; printf '\\n'; }} >> '{log}'\n\
             if [[ \"${{1:-}}\" == get && \"${{2:-}}\" == values ]]; then {values}; fi\n\
             exit 0\n",
            log = dir.join("helm.log").display()
        );
        let kubectl = format!(
            "#!/usr/bin/env bash\n\
             {{ printf '%s\\0' \"$@\"; printf '\\n'; }} >> '{log}'\n\
             if [[ \"${{1:-}}\" == get && \"${{2:-}}\" == *.* ]]; then printf '{rows}'; fi\n\
             exit 0\n",
            log = dir.join("kubectl.log").display()
        );
        for (name, text) in [("helm", helm), ("kubectl", kubectl)] {
            let path = dir.join(name);
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fakes { dir }
    }

    /// The argv of every call of `name` (`helm` or `kubectl`), oldest first.
    pub fn calls(&self, name: &str) -> Vec<Vec<String>> {
        let text = fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.trim_end_matches('\0')
                    .split('\0')
                    .map(str::to_string)
                    .collect()
            })
            .collect()
    }

    /// A command running `scripts/<script>` with a clean environment (PATH, HOME, the fakes).
    pub fn script(&self, script: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("scripts").join(script))
            .env_clear()
            .envs(self.base_env())
            .current_dir(repo());
        cmd
    }

    /// The whole environment of the scripts under test: PATH, HOME and the fakes.
    pub fn base_env(&self) -> Vec<(String, std::ffi::OsString)> {
        vec![
            ("PATH".into(), env::var_os("PATH").unwrap_or_default()),
            ("HOME".into(), env::var_os("HOME").unwrap_or_default()),
            ("HELM".into(), self.dir.join("helm").into_os_string()),
            ("KUBECTL".into(), self.dir.join("kubectl").into_os_string()),
        ]
    }
}

impl Drop for Fakes {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `--set-string` values of a helm argv, as key -> value (later ones win, as in helm).
pub fn set_strings(argv: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in argv.windows(2) {
        if pair[0] == "--set-string" || pair[0] == "--set" {
            let (k, v) = pair[1].split_once('=').expect("key=value");
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

/// Admin access to the sandbox API server.
pub struct Sandbox {
    pub kubectl: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Sandbox {
    pub fn get() -> Option<Sandbox> {
        let kubectl = sandbox_bin("kubectl")?;
        let Some(kubeconfig) = sandbox_var("M2S_SANDBOX_KUBECONFIG").map(PathBuf::from) else {
            return unavailable(
                "M2S_SANDBOX_KUBECONFIG is not set (is the sandbox running? make sandbox-up)",
            );
        };
        let sb = Sandbox {
            kubectl,
            kubeconfig,
        };
        match run(sb
            .cmd()
            .args(["--request-timeout=5s", "get", "--raw", "/readyz"]))
        {
            Ok(o) if o.status.success() => Some(sb),
            Ok(o) => unavailable(&format!("sandbox API server not ready: {}", stderr(&o))),
            Err(e) => unavailable(&format!("sandbox API server not reachable: {e}")),
        }
    }

    /// kubectl with the admin kubeconfig.
    pub fn cmd(&self) -> Command {
        self.cmd_as(&self.kubeconfig)
    }

    /// kubectl with another kubeconfig.
    pub fn cmd_as(&self, kubeconfig: &Path) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .env_remove("KUBECONFIG");
        cmd
    }

    pub fn admin(&self, args: &[&str]) -> Result<String> {
        let out = run(self.cmd().args(args))?;
        if !out.status.success() {
            bail!("kubectl {args:?} failed: {}", stderr(&out));
        }
        Ok(stdout(&out))
    }

    /// Creates the objects (a JSON List) as admin.
    pub fn create(&self, items: &[Value]) -> Result<()> {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
        let out = run_with_input(self.cmd().args(["create", "-f", "-"]), &list.to_string())?;
        if !out.status.success() {
            bail!("kubectl create failed: {}", stderr(&out));
        }
        Ok(())
    }

    /// Writes a kubeconfig for the sandbox's cluster whose user is a token of ServiceAccount
    /// `sa` in `ns` (TokenRequest API). The token is never printed.
    pub fn token_kubeconfig(&self, sa: &str, ns: &str, dir: &Path) -> Result<PathBuf> {
        let out = run(self
            .cmd()
            .args(["create", "token", sa, "-n", ns, "--duration=10m"]))?;
        if !out.status.success() {
            bail!("kubectl create token {sa} -n {ns} failed: {}", stderr(&out));
        }
        let token = stdout(&out).trim().to_string();
        if token.is_empty() {
            bail!("kubectl create token printed no token");
        }
        let view = self.admin(&["config", "view", "--raw", "--minify", "-o", "json"])?;
        let view: Value = serde_json::from_str(&view)?;
        let cluster = view["clusters"][0]["cluster"].clone();
        if cluster.is_null() {
            bail!("no cluster in the sandbox kubeconfig");
        }
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": cluster}],
            "users": [{"name": sa, "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "sandbox", "user": sa, "namespace": ns}}],
            "current-context": "sa",
        });
        let path = dir.join("sa-kubeconfig.json");
        let mut file = fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(config.to_string().as_bytes())?;
        Ok(path)
    }

    /// Waits until the API serves `resource` (the sandbox installs the three targets' CRDs;
    /// a CRD just created takes a moment to be served).
    pub fn wait_for_crd(&self, resource: &Resource) -> Result<()> {
        let path = format!("/apis/{}", resource.api_version());
        let plural = format!("\"{}\"", resource.plural);
        for _ in 0..40 {
            let out = run(self.cmd().args(["get", "--raw", &path]))?;
            if out.status.success() && stdout(&out).contains(&plural) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        bail!(
            "the sandbox does not serve {} {} (is its CRD installed?)",
            resource.api_version(),
            resource.plural
        )
    }
}
