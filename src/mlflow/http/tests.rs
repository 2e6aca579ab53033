use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::config::{MlflowAuth, MlflowConfig};

/// A server on loopback that answers each request with the next of `answers` (raw HTTP
/// responses; `None`: read the request and close without answering), and counts requests.
fn server(answers: Vec<Option<&'static str>>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for (answer, stream) in answers.into_iter().zip(listener.incoming()) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            if let Some(answer) = answer {
                stream.write_all(answer.as_bytes()).unwrap();
            }
        }
    });
    (url, seen)
}

fn client(url: &str) -> MlflowClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut c = MlflowClient::new(&MlflowConfig {
        url: Url::parse(url).unwrap(),
        auth: MlflowAuth::None,
        insecure_tls: false,
        server_cert: None,
        request_timeout: Duration::from_secs(5),
        model_filter: None,
        concurrency: 1,
    })
    .unwrap();
    c.retry_base = Duration::from_millis(20);
    c
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
const UNAVAILABLE_RETRY_1: &str = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const INTERNAL: &str =
    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[test]
fn a_read_is_retried_and_waits_what_retry_after_asks() {
    let (url, seen) = server(vec![Some(UNAVAILABLE_RETRY_1), Some(OK)]);
    let started = Instant::now();
    let v: Option<serde_json::Value> = client(&url).get_json("x", &[]).unwrap();
    assert_eq!(v, Some(serde_json::json!({})));
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
}

#[test]
fn a_create_whose_answer_is_lost_is_not_sent_again() {
    // The server reads the create and closes the connection: MLflow may have stored it.
    let (url, seen) = server(vec![None, Some(OK)]);
    let err = client(&url)
        .request_json::<serde_json::Value>(
            Method::POST,
            "webhooks",
            &[],
            Some(&serde_json::json!({"name": "w"})),
            &[],
            Repeat::Once,
        )
        .unwrap_err();
    assert!(err.downcast_ref::<Unanswered>().is_some(), "{err:#}");
    assert_eq!(seen.load(Ordering::SeqCst), 1, "sent once");
    // A 500 may come after MLflow acted too.
    let (url, seen) = server(vec![Some(INTERNAL), Some(OK)]);
    let err = client(&url)
        .request_json::<serde_json::Value>(Method::POST, "webhooks", &[], None, &[], Repeat::Once)
        .unwrap_err();
    assert!(err.downcast_ref::<Unanswered>().is_some(), "{err:#}");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[test]
fn a_create_refused_before_mlflow_acted_is_sent_again() {
    // 503 says the server did not take it on: safe to send again, even a create.
    let (url, seen) = server(vec![Some(UNAVAILABLE_RETRY_1), Some(OK)]);
    client(&url)
        .request_json::<serde_json::Value>(Method::POST, "webhooks", &[], None, &[], Repeat::Once)
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[test]
fn a_safe_request_gives_up_after_four_attempts() {
    let (url, seen) = server(vec![Some(INTERNAL); 5]);
    let err = client(&url)
        .get_json::<serde_json::Value>("x", &[])
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("gave up after 4 attempts"),
        "{err:#}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 4);
}

#[test]
fn an_abandoned_sync_sends_nothing_more() {
    let (url, seen) = server(vec![Some(OK)]);
    let cancel = crate::cancel::Cancel::default();
    cancel.cancel();
    let c = client(&url).for_sync(cancel);
    let err = c.get_json::<serde_json::Value>("x", &[]).unwrap_err();
    assert!(
        err.downcast_ref::<crate::cancel::Cancelled>().is_some(),
        "{err:#}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 0);
    assert_eq!(c.requests_sent(), 0);
}

#[test]
fn backoff_doubles_with_jitter_and_retry_after_is_bounded() {
    let base = Duration::from_millis(250);
    assert_eq!(backoff(base, 1, 1.0), base);
    assert_eq!(backoff(base, 3, 1.0), base * 4);
    assert_eq!(backoff(base, 3, 0.5), base * 2);
    assert_eq!(backoff(base, 2, 0.1), base, "jitter is at least one half");
    for _ in 0..100 {
        let j = jitter();
        assert!((0.5..=1.0).contains(&j), "{j}");
    }
    let mut h = reqwest::header::HeaderMap::new();
    assert_eq!(retry_after(&h), None);
    h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
    assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    h.insert(reqwest::header::RETRY_AFTER, "3600".parse().unwrap());
    assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
    h.insert(
        reqwest::header::RETRY_AFTER,
        "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
    );
    assert_eq!(retry_after(&h), None);
}
