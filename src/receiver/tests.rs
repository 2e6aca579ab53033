//! The receiver over real HTTP on loopback (no sync thread: what it queues is read back from
//! the scheduler).

use super::*;
use crate::config::AliasSelection;
use crate::engine::Scope;
use reqwest::blocking::Client;
use serde_json::json;

const SECRET: &str = "test-secret-123";

struct Running {
    url: String,
    receiver: Arc<Receiver>,
    http: Client,
}

fn start() -> Running {
    start_with(Deadlines::default())
}

fn start_with(deadlines: Deadlines) -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scheduler = Arc::new(Scheduler::new(Duration::from_secs(3600)));
    scheduler.set_leading(true);
    // The start-up full sync is taken, so that the queue holds only what events add.
    assert_eq!(
        scheduler.next(),
        Some(super::queue::Job::Sync(Scope::All, vec![]))
    );
    scheduler.full_done(true, vec![]);
    let receiver = Arc::new(Receiver {
        verifier: Verifier::new(SECRET),
        deliveries: Mutex::new(RecentDeliveries::new(100)),
        scheduler,
        metrics: Arc::new(Metrics::new()),
        leadership: Arc::new(Leadership::always()),
        deploy: DeployConfig {
            aliases: AliasSelection::Listed(vec!["champion".into()]),
            ..DeployConfig::new("models", "http://mlflow")
        },
        run_timeout: Duration::from_secs(600),
    });
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", std_listener.local_addr().unwrap());
    let app = router(receiver.clone(), deadlines);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            http::serve(listener, None, app, deadlines, std::future::pending()).await;
        });
    });
    Running {
        url,
        receiver,
        http: Client::new(),
    }
}

fn alias_event(model: &str, alias: &str) -> Vec<u8> {
    json!({"entity": "model_version_alias", "action": "created",
        "timestamp": "2026-01-01T00:00:00+00:00",
        "data": {"name": model, "alias": alias, "version": "2"}})
    .to_string()
    .into_bytes()
}

impl Running {
    /// POSTs `body` with the given headers (each `None` left out); returns the status.
    fn post(&self, body: Vec<u8>, id: Option<&str>, ts: Option<i64>, sig: Option<String>) -> u16 {
        let mut req = self.http.post(format!("{}/webhook", self.url)).body(body);
        if let Some(id) = id {
            req = req.header("X-MLflow-Delivery-Id", id);
        }
        if let Some(ts) = ts {
            req = req.header("X-MLflow-Timestamp", ts.to_string());
        }
        if let Some(sig) = sig {
            req = req.header("X-MLflow-Signature", sig);
        }
        req.send().unwrap().status().as_u16()
    }

    /// POSTs `body` signed with `secret` as MLflow would, at `ts`.
    fn signed(&self, body: Vec<u8>, id: &str, ts: i64, secret: &str) -> u16 {
        let sig = Verifier::new(secret).sign(id, &ts.to_string(), &body);
        self.post(body, Some(id), Some(ts), Some(sig))
    }

    fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.url)).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    fn metric(&self, series: &str) -> u64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }
}

#[test]
fn only_signed_fresh_deliveries_queue_a_sync() {
    let r = start();
    let now = unix_now();
    let body = alias_event("iris", "champion");
    // Unsigned, wrongly signed, stale and from the future: 401, nothing queued.
    assert_eq!(r.post(body.clone(), Some("d0"), Some(now), None), 401);
    assert_eq!(r.post(body.clone(), None, None, None), 401);
    assert_eq!(r.signed(body.clone(), "d1", now, "wrong-secret"), 401);
    assert_eq!(r.signed(body.clone(), "d2", now - 301, SECRET), 401);
    assert_eq!(r.signed(body.clone(), "d3", now + 301, SECRET), 401);
    // A valid signature over another body does not carry over.
    let sig = Verifier::new(SECRET).sign("d4", &now.to_string(), &body);
    let other = alias_event("other", "champion");
    assert_eq!(r.post(other, Some("d4"), Some(now), Some(sig)), 401);
    assert_eq!(r.receiver.scheduler.waiting(), 0);
    assert_eq!(
        r.metric("m2s_webhook_events_rejected_total{reason=\"missing_header\"}"),
        2
    );
    assert_eq!(
        r.metric("m2s_webhook_events_rejected_total{reason=\"bad_signature\"}"),
        2
    );
    assert_eq!(
        r.metric("m2s_webhook_events_rejected_total{reason=\"stale_timestamp\"}"),
        2
    );
    // Valid: accepted at once, the model queued.
    assert_eq!(r.signed(body.clone(), "d5", now, SECRET), 202);
    assert_eq!(r.receiver.scheduler.waiting(), 1);
    // The same delivery again: acknowledged, not queued twice.
    assert_eq!(r.signed(body.clone(), "d5", now, SECRET), 200);
    assert_eq!(
        r.metric("m2s_webhook_events_ignored_total{reason=\"duplicate\"}"),
        1
    );
    assert_eq!(
        r.metric("m2s_webhook_events_received_total{event=\"model_version_alias.created\"}"),
        1
    );
    let Some(super::queue::Job::Sync(scope, _)) = r.receiver.scheduler.next() else {
        panic!("not a sync");
    };
    assert_eq!(
        scope,
        Scope::Model {
            name: "iris".into(),
            aliases: ["champion".to_string()].into(),
            whole: false,
        }
    );
}

#[test]
fn large_malformed_and_unhandled_requests_do_nothing() {
    let r = start();
    let now = unix_now();
    // Over 1 MiB: 413 before anything is read into memory or verified.
    let big = vec![b' '; MAX_BODY + 1];
    assert_eq!(r.signed(big, "big", now, SECRET), 413);
    assert_eq!(
        r.metric("m2s_webhook_events_rejected_total{reason=\"body_too_large\"}"),
        1
    );
    // Just under the limit is read (and refused for its content).
    let mut padded = alias_event("iris", "champion");
    padded.resize(MAX_BODY, b' ');
    assert_eq!(r.signed(padded, "pad", now, SECRET), 202);
    r.receiver.scheduler.next().unwrap();
    // Signed but not an event: 400.
    assert_eq!(r.signed(b"[1,2]".to_vec(), "m1", now, SECRET), 400);
    assert_eq!(
        r.metric("m2s_webhook_events_rejected_total{reason=\"malformed\"}"),
        1
    );
    // Signed events m2s does not act on: 200, nothing queued.
    let prompt = json!({"entity": "prompt", "action": "created", "data": {"name": "p"}});
    assert_eq!(
        r.signed(prompt.to_string().into_bytes(), "u1", now, SECRET),
        200
    );
    assert_eq!(
        r.signed(alias_event("iris", "challenger"), "u2", now, SECRET),
        200
    );
    assert_eq!(r.receiver.scheduler.waiting(), 0);
    assert_eq!(
        r.metric("m2s_webhook_events_ignored_total{reason=\"unhandled_event\"}"),
        1
    );
    assert_eq!(
        r.metric("m2s_webhook_events_ignored_total{reason=\"alias_not_deployed\"}"),
        1
    );
    // Other methods and paths.
    assert_eq!(r.get("/webhook").0, 405);
    assert_eq!(r.get("/nothing").0, 404);
}

#[test]
fn probes_report_liveness_and_readiness() {
    let r = start();
    assert_eq!(r.get("/healthz"), (200, "ok\n".into()));
    assert_eq!(r.get("/readyz").0, 503);
    r.receiver.metrics.sync_finished(&metrics::SyncRecord {
        kind: "full",
        result: "ok",
        duration: Duration::from_millis(10),
        requests: crate::engine::Requests::default(),
        created: 0,
        updated: 0,
        deleted: 0,
        not_deployable: Some(0),
        rollouts: Default::default(),
    });
    assert_eq!(r.get("/readyz"), (200, "ready\n".into()));
    let (status, text) = r.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        text.contains("m2s_syncs_total{kind=\"full\",result=\"ok\"} 1"),
        "{text}"
    );
}

#[test]
fn the_secret_comes_from_the_environment_only() {
    let err = secret_from_env(&|_| None).unwrap_err().to_string();
    assert!(err.contains("M2S_WEBHOOK_SECRET"), "{err}");
    assert!(secret_from_env(&|_| Some("  ".into())).is_err());
    assert_eq!(secret_from_env(&|_| Some("s".into())).unwrap(), "s");
}

/// A raw connection to the receiver, for requests no HTTP client would send.
fn raw(url: &str) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

#[test]
fn slow_clients_are_cut_off_and_nothing_is_done() {
    use std::io::{Read, Write};
    let r = start_with(Deadlines {
        headers: Duration::from_millis(500),
        request: Duration::from_millis(500),
    });
    // Headers that never end: the connection is closed, without an answer.
    let mut stream = raw(&r.url);
    stream
        .write_all(b"POST /webhook HTTP/1.1\r\nHost: m2s\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "connection held {:?}",
        started.elapsed()
    );
    assert!(!String::from_utf8_lossy(&answer).contains(" 202 "));
    // A signed delivery whose body stops short: 408, and nothing queued.
    let body = alias_event("iris", "champion");
    let now = unix_now().to_string();
    let sig = Verifier::new(SECRET).sign("slow", &now, &body);
    let mut stream = raw(&r.url);
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: m2s\r\nContent-Type: application/json\r\n\
         X-MLflow-Delivery-Id: slow\r\nX-MLflow-Timestamp: {now}\r\n\
         X-MLflow-Signature: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    assert_eq!(r.receiver.scheduler.waiting(), 0);
    assert_eq!(
        r.metric("m2s_webhook_events_rejected_total{reason=\"timeout\"}"),
        1
    );
    // The same delivery sent whole and in time is accepted: the cut one was not remembered.
    assert_eq!(r.signed(body, "slow", unix_now(), SECRET), 202);
}
