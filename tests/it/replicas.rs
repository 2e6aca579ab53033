//! The receiver in production, against the sandbox: two replicas and a one-shot sync at once
//! with MLflow delivering through a balancer (one leader, a burst that converges, failover after
//! SIGKILL), a leader cut off from the API server, `webhook register` when MLflow's answer is
//! lost, HTTPS with MLflow's default schemes and a certificate renewed in place, and a sync
//! that hangs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{run, run_expect, unique, Sandbox};
use crate::faults_support::{temp_dir, write_private, Proxy, Reply};
use crate::net_support::{Balancer, Relay};
use crate::webhook_support::*;

/// The seldon-v1 object of `model`'s `champion` alias in `ns`.
fn champion(ns: &str, model: &str) -> String {
    m2s::targets::TARGETS[0].object_name(model, "champion", ns)
}

/// The Lease of the receivers of instance `m2s` (the tests' default) in `ns`: its holder.
fn lease_holder(sb: &Sandbox, ns: &str) -> Option<String> {
    let out = sb.kubectl(&["-n", ns, "get", "lease", "m2s-leader", "-o", "json"]);
    let lease: Value = serde_json::from_slice(&out.stdout).ok()?;
    lease["spec"]["holderIdentity"].as_str().map(String::from)
}

/// A model with `n` versions (each from a run of its own).
fn model_with(sb: &Sandbox, name: &str, n: usize) {
    let ml = sb.mlflow();
    let experiment = ml.experiment(&unique("rep-exp"));
    ml.model(name);
    for _ in 0..n {
        ml.version_from_run(name, &experiment);
    }
}

/// A receiver of `ns` named `pod` (its identity in the Lease).
fn replica(sb: &Sandbox, ns: &str, prefix: &str, pod: &str, extra: &[(&str, &str)]) -> Receiver {
    let mut cmd = sb.m2s(ns, prefix);
    cmd.env("POD_NAME", pod);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Receiver::start(sb, cmd)
}

#[test]
fn two_replicas_elect_one_leader_converge_and_fail_over() {
    let Some(sb) = Sandbox::get() else { return };
    let ns = sb.namespace("rep");
    let prefix = unique("rep");
    let model = format!("{prefix}-m");
    model_with(&sb, &model, 8);
    sb.mlflow().alias(&model, "champion", "1");
    let mut a = replica(&sb, &ns, &prefix, "m2s-a", &[]);
    let mut b = replica(&sb, &ns, &prefix, "m2s-b", &[]);

    // Exactly one holds the Lease, and the Lease names it; both are ready.
    let leader_is_a = wait_for("one leader", Duration::from_secs(30), || {
        match (a.leads()?, b.leads()?) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        }
    });
    let holder = lease_holder(&sb, &ns).expect("a Lease");
    let pod = if leader_is_a { "m2s-a_" } else { "m2s-b_" };
    assert!(holder.starts_with(pod), "{holder} is not the leader {pod}");
    a.wait_ready();
    b.wait_ready();
    let object = champion(&ns, &model);
    let served = |sb: &Sandbox| served_versions(sb, &ns).get(&object).cloned();
    wait_for("the leader's full sync", Duration::from_secs(30), || {
        (served(&sb).as_deref() == Some("1")).then_some(())
    });
    assert_eq!(
        a.syncs("full").len() + b.syncs("full").len(),
        1,
        "one full sync, the leader's"
    );

    // MLflow delivers through a balancer in front of both, as through a Service.
    let lb = Balancer::start(vec![a.addr(), b.addr()]);
    let webhook = a.register_at(sb.m2s(&ns, &prefix), &format!("{}/webhook", lb.url("http")));

    // The served versions, as a watcher sees them, while a burst of alias moves arrives and a
    // one-shot `m2s sync` (the CronJob) runs beside the receivers.
    let seen = Arc::new(Mutex::new(Vec::<u32>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (sb, seen, stop, object) = (sb.clone(), seen.clone(), stop.clone(), object.clone());
        let ns = ns.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(v) = served_versions(&sb, &ns).get(&object) {
                    let v: u32 = v.parse().unwrap();
                    let mut seen = seen.lock().unwrap();
                    if seen.last() != Some(&v) {
                        seen.push(v);
                    }
                }
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let cronjob = {
        let (sb, stop, ns, prefix) = (sb.clone(), stop.clone(), ns.clone(), prefix.clone());
        thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut cmd = sb.m2s(&ns, &prefix);
                cmd.env("M2S_ALIASES", "champion");
                let r = run(cmd.arg("sync"));
                // A run that meets a concurrent write reports the conflict and exits 1; the
                // next converges. Anything else is a failure.
                assert!(
                    r.code == 0 || r.stderr.contains("changed since m2s listed it"),
                    "the one-shot sync failed: {}",
                    r.all()
                );
                runs += 1;
            }
            runs
        })
    };
    for v in 2..=6 {
        sb.mlflow().alias(&model, "champion", &v.to_string());
        thread::sleep(Duration::from_millis(150));
    }
    wait_for(
        "the burst to converge on v6",
        Duration::from_secs(60),
        || (served(&sb).as_deref() == Some("6")).then_some(()),
    );
    thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let cron_runs = cronjob.join().unwrap();
    assert!(cron_runs > 0);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "an object was rewritten back: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&6), "{seen:?}");
    let received = |r: &Receiver| {
        r.metric("m2s_webhook_events_received_total{event=\"model_version_alias.created\"}")
    };
    assert!(
        received(&a) + received(&b) >= 5.0,
        "every delivery answered"
    );
    // MLflow keeps its connection open, so the balancer may hand every delivery to one
    // replica; the other receives and syncs too (a delivery sent to it directly).
    let follower = if leader_is_a { &b } else { &a };
    let before = follower.syncs("model").len();
    let event = alias_event("created", &model, "champion", "6");
    assert_eq!(follower.signed(&event), 202);
    wait_for(
        "the follower's scoped sync",
        Duration::from_secs(20),
        || (follower.syncs("model").len() > before).then_some(()),
    );

    // SIGKILL the leader: the other holds the Lease within 20 s and runs a full sync; a
    // delivery meanwhile is answered by the survivor and applied.
    let (dead, survivor) = if leader_is_a {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    let full_before = survivor.syncs("full").len();
    dead.kill9();
    let killed = Instant::now();
    sb.mlflow().alias(&model, "champion", "7");
    wait_for("the survivor to serve v7", Duration::from_secs(30), || {
        (served(&sb).as_deref() == Some("7")).then_some(())
    });
    wait_for("the survivor to lead", Duration::from_secs(25), || {
        survivor.leads().filter(|l| *l)
    });
    let takeover = killed.elapsed();
    assert!(takeover <= Duration::from_secs(20), "took {takeover:?}");
    wait_for(
        "the new leader's full sync",
        Duration::from_secs(30),
        || (survivor.syncs("full").len() > full_before).then_some(()),
    );
    let holder = lease_holder(&sb, &ns).unwrap();
    let pod = if leader_is_a { "m2s-b_" } else { "m2s-a_" };
    assert!(holder.starts_with(pod), "{holder}");
    eprintln!(
        "takeover after SIGKILL: {takeover:?}; versions seen: {seen:?}; one-shot runs: {cron_runs}"
    );
    let _ = webhook;
}

#[test]
fn a_leader_cut_off_from_the_api_server_stops_leading() {
    let Some(sb) = Sandbox::get() else { return };
    let ns = sb.namespace("cut");
    let prefix = unique("cut");
    // The receiver reaches the API server through a relay that the test cuts.
    let kubeconfig: serde_yaml_like::Kubeconfig = serde_yaml_like::read(&sb.kubeconfig);
    let relay = Relay::start(kubeconfig.server);
    let dir = temp_dir("cut");
    let kc = dir.join("kubeconfig");
    write_private(
        &kc,
        &kubeconfig.with_server(&format!("https://{}", relay.addr)),
    );
    let mut cmd = sb.m2s(&ns, &prefix);
    cmd.env("KUBECONFIG", &kc).env("POD_NAME", "m2s-cut");
    let r = Receiver::start(&sb, cmd);
    wait_for("the receiver to lead", Duration::from_secs(30), || {
        r.leads().filter(|l| *l)
    });
    r.wait_ready();
    let full_before = r.syncs("full").len();
    relay.cut();
    let cut = Instant::now();
    wait_for(
        "the leader to stop leading",
        Duration::from_secs(20),
        || r.leads().filter(|l| !l),
    );
    let stopped = cut.elapsed();
    // The renew deadline is 10 s: it stops then, before the Lease (15 s) could pass to another.
    assert!(
        stopped >= Duration::from_secs(8) && stopped < Duration::from_secs(15),
        "stopped leading after {stopped:?}"
    );
    // The log reaches the test through a pipe read by another thread, so the line may trail
    // the metric by a moment.
    wait_for(
        "the log to say why it stopped leading",
        Duration::from_secs(5),
        || r.log().contains("this replica stops leading").then_some(()),
    );
    // Back in reach: it leads again, and runs a full sync at once.
    relay.restore();
    wait_for(
        "the receiver to lead again",
        Duration::from_secs(30),
        || r.leads().filter(|l| *l),
    );
    wait_for(
        "a full sync after leading again",
        Duration::from_secs(30),
        || (r.syncs("full").len() > full_before).then_some(()),
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn register_leaves_one_webhook_when_the_answer_to_the_create_is_lost() {
    let Some(sb) = Sandbox::get() else { return };
    let ns = sb.namespace("reg");
    let prefix = unique("reg");
    let name = format!("m2s-m2s-{ns}");
    // MLflow stores the first create, and its answer never comes back.
    let dropped = Arc::new(AtomicBool::new(false));
    let proxy = {
        let dropped = dropped.clone();
        Proxy::start(sb.mlflow().url(), move |req| {
            if req.method == "POST"
                && req.target.starts_with("/api/2.0/mlflow/webhooks")
                && !dropped.swap(true, Ordering::Relaxed)
            {
                Reply::ForwardThenDrop
            } else {
                Reply::Forward
            }
        })
    };
    let mut cmd = sb.m2s(&ns, &prefix);
    cmd.env("M2S_MLFLOW_HOST", proxy.url())
        .env("M2S_WEBHOOK_SECRET", SECRET)
        .args(["webhook", "register", "--url", "http://127.0.0.1:1/webhook"]);
    let r = run_expect(&mut cmd, 0);
    assert!(
        dropped.load(Ordering::Relaxed),
        "the create went through the proxy"
    );
    assert!(
        r.stdout.contains("answer to the create was lost"),
        "{}",
        r.all()
    );
    let named = |sb: &Sandbox| -> Vec<String> {
        sb.mlflow().get("webhooks", &[("max_results", "1000")])["webhooks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|w| w["name"] == name.as_str())
            .map(|w| w["webhook_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(named(&sb).len(), 1, "one webhook in MLflow");
    assert_eq!(
        proxy.count(|q| q.method == "POST" && q.target.starts_with("/api/2.0/mlflow/webhooks")),
        1,
        "the create was not sent again: the webhook was found by its name"
    );
    // Two of the same name (an older register's lost answer): one is left, and it says so.
    sb.mlflow().post(
        "webhooks",
        serde_json::json!({"name": name, "url": "http://127.0.0.1:1/webhook",
            "events": [{"entity": "MODEL_VERSION_ALIAS", "action": "CREATED"}]}),
    );
    assert_eq!(named(&sb).len(), 2);
    let mut again = sb.m2s(&ns, &prefix);
    again.env("M2S_WEBHOOK_SECRET", SECRET).args([
        "webhook",
        "register",
        "--url",
        "http://127.0.0.1:1/webhook",
    ]);
    let r = run_expect(&mut again, 0);
    assert!(
        r.stdout
            .contains("Deleted 1 other webhook of the same name"),
        "{}",
        r.stdout
    );
    let left = named(&sb);
    assert_eq!(left.len(), 1, "{left:?}");
    for id in left {
        let _ = reqwest::blocking::Client::new()
            .delete(format!(
                "{}/api/2.0/mlflow/webhooks/{id}",
                sb.mlflow().url()
            ))
            .send();
    }
}

#[test]
fn mlflow_delivers_over_https_with_its_default_schemes_and_a_renewed_certificate() {
    let Some(sb) = Sandbox::get() else { return };
    let ns = sb.namespace("tls");
    let prefix = unique("tls");
    let dir = temp_dir("tls");
    // An MLflow with its default MLFLOW_WEBHOOK_ALLOWED_SCHEMES (https only); loopback allowed.
    let mlflow = MlflowServer::start(
        &sb,
        &dir.join("mlflow"),
        &[
            ("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true"),
            (
                "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY",
                &fernet_key(&unique("key")),
            ),
            ("MLFLOW_WEBHOOK_CACHE_TTL", "1"),
        ],
    );
    let m2s = || {
        let mut c = sb.m2s(&ns, &prefix);
        c.env("M2S_MLFLOW_HOST", &mlflow.url);
        c
    };
    let ml = crate::common::Mlflow::new(&mlflow.url);
    let model = format!("{prefix}-m");
    let experiment = ml.experiment(&unique("tls-exp"));
    ml.model(&model);
    for _ in 0..3 {
        ml.version_from_run(&model, &experiment);
    }
    let tls = Tls::issue(&dir.join("cert"));
    let first = tls.serial();
    let mut r = Receiver::start_tls(&sb, m2s(), &tls);
    r.wait_ready();
    assert_eq!(Tls::served_serial(r.addr()), first);
    // MLflow with its default schemes refuses an http URL; the https one is registered.
    let mut http = m2s();
    http.env("M2S_WEBHOOK_SECRET", SECRET).args([
        "webhook",
        "register",
        "--url",
        &format!("http://{}/webhook", r.addr()),
    ]);
    let refused = run(&mut http);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains("Allowed schemes are: https"),
        "{}",
        refused.stderr
    );
    r.register(m2s());
    ml.alias(&model, "champion", "1");
    let object = champion(&ns, &model);
    wait_for(
        &format!("a delivery over HTTPS; log:\n{}", r.log()),
        Duration::from_secs(30),
        || (served_versions(&sb, &ns).get(&object).map(String::as_str) == Some("1")).then_some(()),
    );
    // The certificate renewed in place (as cert-manager rewrites a Secret's files): the next
    // connection gets the new one, from the same process.
    let pid = r.pid();
    let renewed = Tls::issue(&dir.join("cert")).serial();
    assert_ne!(renewed, first);
    wait_for(
        "the renewed certificate to be served",
        Duration::from_secs(10),
        || (Tls::served_serial(r.addr()) == renewed).then_some(()),
    );
    ml.alias(&model, "champion", "2");
    wait_for(
        "a delivery with the renewed certificate",
        Duration::from_secs(30),
        || (served_versions(&sb, &ns).get(&object).map(String::as_str) == Some("2")).then_some(()),
    );
    assert_eq!(r.pid(), pid, "no restart");
    assert!(r.log().contains("TLS certificate reloaded"), "{}", r.log());
    let _ = std::fs::remove_dir_all(dir);
}

/// A Fernet key (urlsafe base64 of 32 bytes) from `seed`.
fn fernet_key(seed: &str) -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    for (i, b) in seed.bytes().enumerate() {
        bytes[i % 32] ^= b;
    }
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

#[test]
fn a_sync_that_hangs_is_abandoned_at_its_deadline_and_the_next_goes_on() {
    let Some(sb) = Sandbox::get() else { return };
    let ns = sb.namespace("hang");
    let prefix = unique("hang");
    let (hung, fine) = (format!("{prefix}-hung"), format!("{prefix}-fine"));
    for m in [&hung, &fine] {
        model_with(&sb, m, 1);
        sb.mlflow().stage(m, "1", "Production");
    }
    // MLflow never answers the search for the hung model (a scoped sync asks for it by name).
    let proxy = {
        let hung = hung.clone();
        Proxy::start(sb.mlflow().url(), move |req| {
            let target = percent_decoded(&req.target);
            if target.contains(&format!("name = '{hung}'")) {
                Reply::Hang
            } else {
                Reply::Forward
            }
        })
    };
    let mut cmd = sb.m2s(&ns, &prefix);
    cmd.env("M2S_MLFLOW_HOST", proxy.url())
        .env("M2S_SYNC_TIMEOUT", "3")
        .env("M2S_REQUEST_TIMEOUT", "60");
    let r = Receiver::start(&sb, cmd);
    r.wait_ready();
    let version_event = |model: &str| {
        serde_json::json!({"entity": "model_version", "action": "created",
            "timestamp": "2026-01-01T00:00:00+00:00",
            "data": {"name": model, "version": "1"}})
        .to_string()
        .into_bytes()
    };
    let started = Instant::now();
    assert_eq!(r.signed(&version_event(&hung)), 202);
    assert_eq!(r.signed(&version_event(&fine)), 202);
    wait_for(
        &format!("the hung sync to time out; log:\n{}", r.log()),
        Duration::from_secs(15),
        || (r.metric("m2s_syncs_total{kind=\"model\",result=\"timeout\"}") == 1.0).then_some(()),
    );
    let abandoned = started.elapsed();
    assert!(abandoned >= Duration::from_secs(3), "{abandoned:?}");
    wait_for("the next sync", Duration::from_secs(15), || {
        (r.metric("m2s_syncs_total{kind=\"model\",result=\"ok\"}") >= 1.0).then_some(())
    });
    assert!(
        r.log().contains("sync abandoned after M2S_SYNC_TIMEOUT"),
        "{}",
        r.log()
    );
    // Both models' objects are there: the fine one from its event, the hung one from the
    // start-up full sync (its full-sync search was answered).
    assert_eq!(served_versions(&sb, &ns).len(), 2);
    assert_eq!(
        r.get("/healthz").0,
        200,
        "a sync that hung does not make the receiver unhealthy"
    );
}

/// `target` with `%xx` escapes and `+` decoded (for matching a query).
fn percent_decoded(target: &str) -> String {
    let bytes = target.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Just enough of a kubeconfig to point it at another address.
mod serde_yaml_like {
    use std::net::SocketAddr;
    use std::path::Path;

    pub struct Kubeconfig {
        text: String,
        url: String,
        pub server: SocketAddr,
    }

    pub fn read(path: &Path) -> Kubeconfig {
        let text = std::fs::read_to_string(path).unwrap();
        let url = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("a server in the sandbox's kubeconfig")
            .to_string();
        let server = url.trim_start_matches("https://").parse().unwrap();
        Kubeconfig { text, url, server }
    }

    impl Kubeconfig {
        pub fn with_server(&self, url: &str) -> String {
            self.text.replace(&self.url, url)
        }
    }
}
