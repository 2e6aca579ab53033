//! Helpers for tests/webhook.rs: a running `m2s webhook` process (port, logs, metrics,
//! signed requests, SIGTERM), its registration in MLflow (removed again on drop), registry
//! fixtures and the API server's audit log of one namespace.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::common::{run_expect, unique, Mlflow, Sandbox};

pub const SECRET: &str = "webhook-test-secret-7f3a";

/// Polls `f` every 50 ms until it returns `Some`, or panics naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A registered model with three versions (from their own runs), v3 in Production.
pub fn model_with_versions(sb: &Sandbox, name: &str, experiment: &str) {
    let mlflow = sb.mlflow();
    mlflow.model(name);
    for _ in 0..3 {
        mlflow.version_from_run(name, experiment);
    }
    mlflow.stage(name, "3", "Production");
}

/// A running `m2s webhook`, killed on drop (and its MLflow webhook, if registered, deleted).
pub struct Receiver {
    child: Child,
    pub url: String,
    log: Arc<Mutex<String>>,
    mlflow: Mlflow,
    webhook_id: Option<String>,
    http: reqwest::blocking::Client,
}

impl Receiver {
    /// Starts `m2s webhook` from `cmd` (the sandbox's m2s command for a namespace and prefix)
    /// on a free loopback port, with the test secret, `M2S_ALIASES=champion` and no periodic
    /// full sync during the test.
    pub fn start(sb: &Sandbox, cmd: Command) -> Receiver {
        Receiver::start_as(sb, cmd, None)
    }

    /// [`start`](Receiver::start) serving HTTPS with `tls` (certificate, key, and the CA the
    /// test's client trusts).
    pub fn start_tls(sb: &Sandbox, cmd: Command, tls: &Tls) -> Receiver {
        Receiver::start_as(sb, cmd, Some(tls))
    }

    fn start_as(sb: &Sandbox, mut cmd: Command, tls: Option<&Tls>) -> Receiver {
        cmd.args(["webhook", "--listen", "127.0.0.1:0"]);
        if let Some(tls) = tls {
            cmd.arg("--tls-cert")
                .arg(&tls.cert)
                .arg("--tls-key")
                .arg(&tls.key);
        }
        cmd.env("M2S_WEBHOOK_SECRET", SECRET)
            .env("M2S_ALIASES", "champion")
            .env("M2S_RESYNC_INTERVAL", "3600")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting m2s webhook");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        {
            let log = log.clone();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let text = log.lock().unwrap().clone();
            let listening = text
                .lines()
                .find(|l| l.contains("msg=\"m2s webhook listening\""))
                .and_then(|l| l.split(" listen=").nth(1))
                .map(|rest| rest.split(' ').next().unwrap().to_string());
            if let Some(addr) = listening {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("m2s webhook exited ({status}) before listening:\n{text}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("m2s webhook did not listen within 30 s:\n{text}");
            }
            thread::sleep(Duration::from_millis(50));
        };
        let mut http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10));
        if let Some(tls) = tls {
            let pem = std::fs::read(&tls.ca).unwrap();
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        Receiver {
            child,
            url: format!("{}://{addr}", if tls.is_some() { "https" } else { "http" }),
            log,
            mlflow: sb.mlflow(),
            webhook_id: None,
            http: http.build().unwrap(),
        }
    }

    /// The address the receiver listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.url.split("://").nth(1).unwrap().parse().unwrap()
    }

    /// Whether this replica says it holds the Lease (`m2s_leader`); `None` when it does not
    /// answer.
    pub fn leads(&self) -> Option<bool> {
        let (status, text) = self.get("/metrics");
        (status == 200).then(|| text.lines().any(|l| l == "m2s_leader 1"))
    }

    /// Kills the process at once (SIGKILL): no SIGTERM handling, no Lease handed back.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Log lines of finished syncs of `kind` (full, model).
    pub fn syncs(&self, kind: &str) -> Vec<String> {
        let needle = format!("kind={kind} ");
        self.log()
            .lines()
            .filter(|l| l.contains("msg=\"sync finished\"") && l.contains(&needle))
            .map(String::from)
            .collect()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        match self.http.get(format!("{}{path}", self.url)).send() {
            Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// Waits until the start-up full sync has succeeded.
    pub fn wait_ready(&self) {
        wait_for(
            &format!("/readyz to answer 200; log:\n{}", self.log()),
            Duration::from_secs(60),
            || (self.get("/readyz").0 == 200).then_some(()),
        );
    }

    /// A sample of /metrics, e.g. `m2s_syncs_total{kind="model",result="ok"}`.
    pub fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    /// POSTs `body` to /webhook with these headers; the status (0: no connection).
    pub fn post(&self, body: &[u8], headers: &[(&str, String)]) -> u16 {
        let mut req = self
            .http
            .post(format!("{}/webhook", self.url))
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.send().map_or(0, |r| r.status().as_u16())
    }

    /// POSTs `body` as MLflow would deliver it, signed with `secret` at `timestamp`.
    pub fn signed_with(&self, body: &[u8], id: &str, timestamp: i64, secret: &str) -> u16 {
        let ts = timestamp.to_string();
        let sig = sign(secret, id, &ts, body);
        self.post(
            body,
            &[
                ("X-MLflow-Delivery-Id", id.to_string()),
                ("X-MLflow-Timestamp", ts),
                ("X-MLflow-Signature", sig),
            ],
        )
    }

    pub fn signed(&self, body: &[u8]) -> u16 {
        self.signed_with(body, &unique("delivery"), unix_now(), SECRET)
    }

    /// `m2s webhook register --url <this receiver>/webhook` with `cmd`; remembers the id.
    pub fn register(&mut self, cmd: Command) -> String {
        let url = format!("{}/webhook", self.url);
        self.register_at(cmd, &url)
    }

    /// `m2s webhook register --url <url>` with `cmd` (a balancer in front of replicas, say);
    /// remembers the id.
    pub fn register_at(&mut self, mut cmd: Command, url: &str) -> String {
        let r = run_expect(
            cmd.args(["webhook", "register", "--url", url])
                .env("M2S_WEBHOOK_SECRET", SECRET),
            0,
        );
        assert!(
            !r.all().contains(SECRET),
            "the secret was printed:\n{}",
            r.all()
        );
        let id = r
            .stdout
            .split("(id ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap_or_else(|| panic!("no webhook id in {:?}", r.stdout))
            .to_string();
        self.webhook_id = Some(id.clone());
        // MLflow caches each event's subscribers for MLFLOW_WEBHOOK_CACHE_TTL (1 s here).
        thread::sleep(Duration::from_millis(1500));
        id
    }

    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_for("m2s webhook to exit", timeout, || {
            self.child.try_wait().unwrap()
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(id) = self.webhook_id.take() {
            let _ = reqwest::blocking::Client::new()
                .delete(format!(
                    "{}/api/2.0/mlflow/webhooks/{id}",
                    self.mlflow.url()
                ))
                .send();
        }
    }
}

/// A certificate for 127.0.0.1 signed by the sandbox's webhook CA (which the MLflow venv's
/// certifi bundle trusts), made with openssl in a directory of its own.
pub struct Tls {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub ca: std::path::PathBuf,
}

impl Tls {
    /// The sandbox's webhook CA (`M2S_SANDBOX_WEBHOOK_CA`, made by tests/sandbox/install.sh).
    pub fn ca_dir() -> std::path::PathBuf {
        std::env::var("M2S_SANDBOX_WEBHOOK_CA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| {
                std::path::PathBuf::from(std::env::var("HOME").unwrap())
                    .join(".cache/m2s-sandbox/webhook-ca")
            })
    }

    /// A new certificate (another serial each time) in `dir`, as tls.crt and tls.key.
    pub fn issue(dir: &std::path::Path) -> Tls {
        let ca = Tls::ca_dir();
        assert!(
            ca.join("ca.key").exists(),
            "the sandbox's webhook CA is missing ({}): run tests/sandbox/install.sh",
            ca.display()
        );
        std::fs::create_dir_all(dir).unwrap();
        let (key, csr, cert, ext) = (
            dir.join("new.key"),
            dir.join("new.csr"),
            dir.join("new.crt"),
            dir.join("ext.cnf"),
        );
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let openssl = |args: &[&std::ffi::OsStr]| {
            let out = Command::new("openssl").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let os = |s: &str| std::ffi::OsString::from(s);
        openssl(&[
            &os("req"),
            &os("-newkey"),
            &os("rsa:2048"),
            &os("-nodes"),
            &os("-keyout"),
            key.as_os_str(),
            &os("-out"),
            csr.as_os_str(),
            &os("-subj"),
            &os("/CN=127.0.0.1"),
        ]);
        openssl(&[
            &os("x509"),
            &os("-req"),
            &os("-in"),
            csr.as_os_str(),
            &os("-CA"),
            ca.join("ca.crt").as_os_str(),
            &os("-CAkey"),
            ca.join("ca.key").as_os_str(),
            &os("-set_serial"),
            &os(&SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                .to_string()),
            &os("-days"),
            &os("2"),
            &os("-extfile"),
            ext.as_os_str(),
            &os("-out"),
            cert.as_os_str(),
        ]);
        // Renamed into place, as a Secret volume's files change: never half written.
        std::fs::rename(&key, dir.join("tls.key")).unwrap();
        std::fs::rename(&cert, dir.join("tls.crt")).unwrap();
        Tls {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            ca: ca.join("ca.crt"),
        }
    }

    /// The serial of the certificate `addr` presents (openssl s_client).
    pub fn served_serial(addr: std::net::SocketAddr) -> String {
        let script = format!(
            "openssl s_client -connect {addr} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial"
        );
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The serial of this certificate file.
    pub fn serial(&self) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(&self.cert)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// A second MLflow server (the sandbox's venv, a database of its own) with environment `env`:
/// for what the sandbox's server is configured against (its webhook schemes, say).
pub struct MlflowServer {
    child: Child,
    pub url: String,
}

impl MlflowServer {
    pub fn start(sb: &Sandbox, dir: &std::path::Path, env: &[(&str, &str)]) -> MlflowServer {
        let python = std::env::var("M2S_SANDBOX_MLFLOW_PYTHON").unwrap_or_else(|_| {
            format!(
                "{}/.cache/m2s-sandbox/mlflow-venv/bin/python",
                std::env::var("HOME").unwrap()
            )
        });
        std::fs::create_dir_all(dir.join("artifacts")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "mlflow", "server", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--default-artifact-root")
            .arg(dir.join("artifacts"))
            .args(["--workers", "1"])
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .env_remove("MLFLOW_WEBHOOK_ALLOWED_SCHEMES")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("mlflow.log")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        // A group of its own: its workers are stopped with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("starting a second mlflow server");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::new();
        let _ = sb;
        wait_for(
            &format!(
                "mlflow on {url} (log: {})",
                dir.join("mlflow.log").display()
            ),
            Duration::from_secs(120),
            || {
                http.get(format!("{url}/health"))
                    .send()
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            },
        );
        MlflowServer { child, url }
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the server's own process group (made for it at spawn).
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// An MLflow event body as MLflow sends it.
pub fn alias_event(action: &str, model: &str, alias: &str, version: &str) -> Vec<u8> {
    json!({
        "entity": "model_version_alias",
        "action": action,
        "timestamp": "2026-01-01T00:00:00+00:00",
        "data": {"name": model, "alias": alias, "version": version},
    })
    .to_string()
    .into_bytes()
}

/// The version an object serves, by name, in `ns` (SeldonDeployments).
pub fn served_versions(sb: &Sandbox, ns: &str) -> std::collections::BTreeMap<String, String> {
    sb.seldon_deployments(ns)
        .into_iter()
        .map(|(name, o)| {
            let v = o["metadata"]["annotations"]["m2s.io/model-version"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (name, v)
        })
        .collect()
}

/// The API server's audit events in `ns` since `mark` sent by m2s: "verb name" each.
pub fn m2s_requests_since(mark: u64, ns: &str) -> Vec<String> {
    // The log backend writes when a request completes: leave it a moment.
    thread::sleep(Duration::from_millis(300));
    let mut out = Vec::new();
    for ev in crate::faults_support::requests_since(mark, ns) {
        if ev["stage"] == "ResponseComplete"
            && ev["userAgent"]
                .as_str()
                .is_some_and(|a| a.starts_with("m2s/"))
        {
            // Events are named "<object>.<hex>": shown as "event <object>".
            let verb = ev["verb"].as_str().unwrap_or_default();
            let name = ev["objectRef"]["name"].as_str().unwrap_or_default();
            if ev["objectRef"]["resource"] == "events" {
                let object = name.rsplit_once('.').map_or(name, |(o, _)| o);
                out.push(format!("{verb} event {object}"));
            } else {
                out.push(format!("{verb} {name}"));
            }
        }
    }
    out
}

/// A delivery's signature as MLflow computes it (mlflow/webhooks/delivery.py): HMAC-SHA256 of
/// `<id>.<timestamp>.<body>` with the secret, base64, after `v1,`. Written here from MLflow's
/// description rather than with m2s's own verifier, so that the two can disagree.
pub fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    use base64::Engine as _;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    let tag = ring::hmac::sign(&key, &content);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    )
}
