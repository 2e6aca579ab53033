//! Helpers for the faults suite: a fault-injecting HTTP proxy in front of the sandbox's MLflow,
//! listeners that never answer, kubeconfig variants, registry seeding and "nothing was
//! written" checks (resourceVersions and the API server's audit log).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{run_expect, unique, Sandbox};

// ---------------------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------------------

/// One request the proxy received.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
    pub fn is_search(&self) -> bool {
        self.path().ends_with("/registered-models/search")
    }
    pub fn has_param(&self, key: &str) -> bool {
        self.target
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv.split('=').next() == Some(key)))
    }
    /// Whether this request is preflight's: an `MLmodel` (or its folder's listing) read through
    /// MLflow's artifact proxy.
    pub fn is_artifact_read(&self) -> bool {
        self.method == "GET" && self.path().contains("/api/2.0/mlflow-artifacts/artifacts")
    }
    /// Whether this request changes MLflow: anything but the read endpoints m2s uses.
    pub fn is_write(&self) -> bool {
        if self.is_artifact_read() {
            return false;
        }
        const READS: [&str; 7] = [
            "/registered-models/search",
            "/model-versions/get",
            "/model-versions/search",
            "/runs/get",
            "/runs/search",
            "/experiments/search",
            "/logged-models/",
        ];
        !READS.iter().any(|r| self.path().contains(r))
    }
    /// The JSON body (`Null` when there is none).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the proxy does with one request.
pub enum Reply {
    /// Forward to the real MLflow and return its answer unchanged.
    Forward,
    /// Forward, then rewrite the JSON body of a successful answer.
    Rewrite(fn(&mut Value)),
    /// Answer this status with this body (JSON content type).
    Status(u16, String),
    /// Read the request, then never answer (connection held open).
    Hang,
    /// Forward to the real MLflow (which acts on it), then close the connection without
    /// answering: the answer is lost on the way back.
    ForwardThenDrop,
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

/// A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of the sandbox's MLflow.
pub struct Proxy {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: &str, handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let upstream = upstream.trim_end_matches('/').to_string();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        {
            let (requests, stop) = (requests.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (requests, stop, handler, upstream, http) = (
                        requests.clone(),
                        stop.clone(),
                        handler.clone(),
                        upstream.clone(),
                        http.clone(),
                    );
                    thread::spawn(move || {
                        serve(stream, &requests, &stop, &*handler, &upstream, &http)
                    });
                }
            });
        }
        Proxy {
            addr,
            requests,
            stop,
        }
    }

    /// A proxy whose every request gets `reply()`.
    pub fn always(upstream: &str, reply: impl Fn() -> Reply + Send + Sync + 'static) -> Proxy {
        Proxy::start(upstream, move |_| reply())
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self, pred: impl Fn(&Req) -> bool) -> usize {
        self.requests().iter().filter(|r| pred(r)).count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Req> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "content-length" {
                content_length = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body).ok()?;
    Some(Req {
        method,
        target,
        headers,
        body,
    })
}

fn respond(stream: &mut TcpStream, status: u16, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} Fault\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn serve(
    mut stream: TcpStream,
    requests: &Mutex<Vec<Req>>,
    stop: &AtomicBool,
    handler: &Handler,
    upstream: &str,
    http: &reqwest::blocking::Client,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Some(req) = read_request(&mut stream) else {
        return;
    };
    requests.lock().unwrap().push(req.clone());
    let forward = |req: &Req| -> (u16, Vec<u8>) {
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap_or_default();
        let mut request = http.request(method, format!("{upstream}{}", req.target));
        if !req.body.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(req.body.clone());
        }
        match request.send() {
            Ok(r) => (r.status().as_u16(), r.bytes().unwrap_or_default().to_vec()),
            Err(e) => (
                599,
                json!({"error_code": "PROXY", "message": e.to_string()})
                    .to_string()
                    .into_bytes(),
            ),
        }
    };
    match handler(&req) {
        Reply::Forward => {
            let (status, body) = forward(&req);
            respond(&mut stream, status, &body);
        }
        Reply::Rewrite(f) => {
            let (status, body) = forward(&req);
            let body = match serde_json::from_slice::<Value>(&body) {
                Ok(mut v) if status == 200 => {
                    f(&mut v);
                    v.to_string().into_bytes()
                }
                _ => body,
            };
            respond(&mut stream, status, &body);
        }
        Reply::Status(status, body) => respond(&mut stream, status, body.as_bytes()),
        Reply::ForwardThenDrop => {
            let _ = forward(&req);
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        Reply::Hang => {
            let until = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A TCP listener that accepts connections and never answers (for request timeouts).
pub struct Silent {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Silent {
    pub fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        thread::spawn(move || {
            let mut held = Vec::new();
            for s in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(s) = s {
                    held.push(s);
                }
            }
        });
        Silent { addr, stop }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

pub fn mlflow_error(code: &str, message: &str) -> String {
    json!({ "error_code": code, "message": message }).to_string()
}

// ---------------------------------------------------------------------------------------------
// Registry and cluster set-up
// ---------------------------------------------------------------------------------------------

/// A namespace with `models` registered models (each one version in Production) that one
/// m2s sync has deployed.
pub struct Deployed {
    pub sb: Sandbox,
    pub ns: String,
    pub prefix: String,
    pub models: Vec<String>,
    pub experiment: String,
    /// name → resourceVersion after the first sync.
    pub before: BTreeMap<String, String>,
}

impl Deployed {
    pub fn new(sb: Sandbox, tag: &str, models: usize) -> Deployed {
        let ns = sb.namespace(tag);
        let prefix = unique(tag);
        let mlflow = sb.mlflow();
        let experiment = mlflow.experiment(&unique(&format!("{tag}-exp")));
        let names: Vec<String> = (0..models).map(|i| format!("{prefix}-m{i}")).collect();
        for name in &names {
            production_model(&sb, name, &experiment);
        }
        let mut d = Deployed {
            sb,
            ns,
            prefix,
            models: names,
            experiment,
            before: BTreeMap::new(),
        };
        if models > 0 {
            run_expect(d.m2s().arg("sync"), 0);
            d.before = d.sb.resource_versions(&d.ns);
            assert_eq!(d.before.len(), models, "{:?}", d.before);
        }
        d
    }

    /// m2s pointed at the sandbox (real MLflow), this namespace and prefix.
    pub fn m2s(&self) -> Command {
        self.sb.m2s(&self.ns, &self.prefix)
    }

    /// m2s reading MLflow through `url`.
    pub fn m2s_via(&self, url: &str) -> Command {
        let mut c = self.m2s();
        c.env("M2S_MLFLOW_HOST", url);
        c
    }

    pub fn rvs(&self) -> BTreeMap<String, String> {
        self.sb.resource_versions(&self.ns)
    }

    /// Every object is still there, unchanged (same resourceVersion), and none was added.
    pub fn assert_untouched(&self) {
        assert_eq!(self.rvs(), self.before, "the cluster was written to");
    }

    pub fn deployment(&self, model: &str) -> String {
        m2s::targets::TARGETS[0].object_name(model, "Production", &self.ns)
    }
}

/// Registers `name` with one version (from a new run) in Production.
pub fn production_model(sb: &Sandbox, name: &str, experiment: &str) -> String {
    let mlflow = sb.mlflow();
    mlflow.model(name);
    let v = mlflow.version_from_run(name, experiment);
    mlflow.stage(name, &v, "Production");
    v
}

/// A SeldonDeployment not managed by m2s.
pub fn foreign_object(name: &str, ns: &str) -> Value {
    json!({
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": { "name": name, "namespace": ns, "labels": { "owner": "someone-else" } },
        "spec": { "predictors": [{
            "name": "default", "replicas": 1,
            "graph": { "name": "model", "implementation": "MLFLOW_SERVER", "modelUri": "s3://theirs/model" }
        }]}
    })
}

// ---------------------------------------------------------------------------------------------
// Audit log: write attempts seen by the API server
// ---------------------------------------------------------------------------------------------

/// The API server's audit log. An assertion about what the API server saw cannot pass without
/// it: a sandbox without one (or `M2S_TEST_KUBECONFIG`, another cluster) fails such a test.
pub fn audit_log() -> PathBuf {
    audit_path().expect(
        "the API server's audit log (M2S_SANDBOX_AUDIT_LOG) is missing: what the API server saw cannot be checked",
    )
}

fn audit_path() -> Option<PathBuf> {
    std::env::var("M2S_SANDBOX_AUDIT_LOG")
        .ok()
        .or_else(|| {
            let dir = std::env::var("M2S_SANDBOX_DIR").ok().or_else(|| {
                Some(format!(
                    "{}/.cache/m2s-sandbox/run",
                    std::env::var("HOME").ok()?
                ))
            })?;
            let env = fs::read_to_string(format!("{dir}/env")).ok()?;
            env.lines()
                .find_map(|l| l.strip_prefix("export M2S_SANDBOX_AUDIT_LOG="))
                .map(String::from)
        })
        .map(PathBuf::from)
        .filter(|p| p.exists())
}

/// A position in the audit log; `writes_since` reads only what came after it.
pub fn audit_mark() -> u64 {
    fs::metadata(audit_log()).map_or(0, |m| m.len())
}

/// Write requests (create/update/patch/delete, allowed or not) on SeldonDeployments in `ns`
/// that the API server logged since `mark`.
pub fn writes_since(mark: u64, ns: &str) -> Vec<String> {
    requests_since(mark, ns)
        .into_iter()
        .filter(|ev| {
            ev["stage"] == "ResponseComplete"
                && ev["objectRef"]["resource"] == "seldondeployments"
                && matches!(
                    ev["verb"].as_str().unwrap_or_default(),
                    "create" | "update" | "patch" | "delete" | "deletecollection"
                )
        })
        .map(|ev| {
            format!(
                "{} {} -> {}",
                ev["verb"].as_str().unwrap_or_default(),
                ev["objectRef"]["name"].as_str().unwrap_or_default(),
                ev["responseStatus"]["code"]
            )
        })
        .collect()
}

/// Every request on objects in `ns` that the API server logged since `mark` (audit events,
/// each stage).
pub fn requests_since(mark: u64, ns: &str) -> Vec<Value> {
    let mut f = fs::File::open(audit_log()).expect("opening the audit log");
    let len = f.metadata().map_or(0, |m| m.len());
    // A rotated log is shorter than the mark: read it whole.
    f.seek(SeekFrom::Start(if len >= mark { mark } else { 0 }))
        .unwrap();
    let needle = format!("\"namespace\":\"{ns}\"");
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains(&needle))
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .filter(|ev| ev["objectRef"]["namespace"] == ns)
        .collect()
}

/// Asserts that the API server saw no write attempt in `ns` since `mark`.
pub fn assert_no_write_attempts(mark: u64, ns: &str) {
    let writes = writes_since(mark, ns);
    assert!(writes.is_empty(), "write requests were sent: {writes:?}");
}

// ---------------------------------------------------------------------------------------------
// Kubeconfigs
// ---------------------------------------------------------------------------------------------

pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(&format!("m2s-faults-{tag}")));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `content` readable by the owner only (kubeconfigs hold credentials).
pub fn write_private(path: &Path, content: &str) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(content.as_bytes()).unwrap();
}

/// The sandbox admin kubeconfig as JSON (holds the admin token: never print it).
pub fn admin_kubeconfig(sb: &Sandbox) -> Value {
    let out = sb.kubectl(&["config", "view", "--raw", "--minify", "-o", "json"]);
    assert!(out.status.success(), "kubectl config view failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A copy of the admin kubeconfig whose cluster is at `server`.
pub fn kubeconfig_with_server(sb: &Sandbox, server: &str, dir: &Path) -> PathBuf {
    let mut kc = admin_kubeconfig(sb);
    kc["clusters"][0]["cluster"]["server"] = json!(server);
    let path = dir.join("kubeconfig-server.json");
    write_private(&path, &kc.to_string());
    path
}

/// A kubeconfig whose user is a token of ServiceAccount `sa` in `ns`. Never printed.
pub fn token_kubeconfig(sb: &Sandbox, sa: &str, ns: &str, dir: &Path) -> PathBuf {
    let out = sb.kubectl(&["create", "token", sa, "-n", ns, "--duration=10m"]);
    assert!(
        out.status.success(),
        "kubectl create token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!token.is_empty(), "kubectl create token printed no token");
    let mut kc = admin_kubeconfig(sb);
    kc["users"] = json!([{ "name": sa, "user": { "token": token } }]);
    kc["contexts"][0]["context"]["user"] = json!(sa);
    kc["contexts"][0]["context"]["namespace"] = json!(ns);
    let path = dir.join("kubeconfig-sa.json");
    write_private(&path, &kc.to_string());
    path
}

/// A kubeconfig of a new ServiceAccount `sa` in `ns`, bound to a Role with `verbs` on
/// `resource` (`plural.group`) only.
pub fn service_account_with(
    sb: &Sandbox,
    ns: &str,
    sa: &str,
    verbs: &str,
    resource: &str,
) -> PathBuf {
    sb.kubectl_ok(&["-n", ns, "create", "serviceaccount", sa]);
    sb.kubectl_ok(&[
        "-n",
        ns,
        "create",
        "role",
        sa,
        &format!("--verb={verbs}"),
        &format!("--resource={resource}"),
    ]);
    sb.kubectl_ok(&[
        "-n",
        ns,
        "create",
        "rolebinding",
        sa,
        &format!("--role={sa}"),
        &format!("--serviceaccount={ns}:{sa}"),
    ]);
    token_kubeconfig(sb, sa, ns, &temp_dir(sa))
}

/// The sandbox admin's bearer token (to check that it is never printed).
pub fn admin_token(sb: &Sandbox) -> Option<String> {
    admin_kubeconfig(sb)["users"][0]["user"]["token"]
        .as_str()
        .map(String::from)
}

/// Runs `cmd` and returns its result and how long it took.
pub fn timed(cmd: &mut Command) -> (crate::common::RunResult, Duration) {
    let started = Instant::now();
    let r = crate::common::run(cmd);
    (r, started.elapsed())
}
