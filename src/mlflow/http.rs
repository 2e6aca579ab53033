//! Sending one request to MLflow, and what is safe to send again.
//!
//! Only a request whose repetition changes nothing is retried after a failure whose effect is
//! unknown (a timeout, a cut connection, a 5xx): reads, PATCH and DELETE, setting a tag to a
//! value. A create ([`Repeat::Once`]) is retried only when MLflow cannot have acted on it (no
//! connection, 429, 503); otherwise its failure is an [`Unanswered`] error, and the caller
//! looks before it creates again. Retries back off exponentially with jitter and wait at least
//! what a `Retry-After` header asks (429, 503).

use std::fmt;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{MlflowClient, Refused};
use crate::cancel::Cancelled;

const MAX_ATTEMPTS: u32 = 4;
/// The longest wait a `Retry-After` header gets (a server asking for more is not waited for).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Whether a request may be sent again after a failure that leaves its effect unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Sending it twice is the same as once: reads, PATCH, DELETE, setting a tag.
    Safe,
    /// A create: sent again only when MLflow cannot have acted on it.
    Once,
}

/// A request MLflow may have acted on although m2s got no answer (a create that timed out, a
/// connection cut after it was sent, a 5xx): the caller must look before sending it again.
#[derive(Debug)]
pub(crate) struct Unanswered {
    pub(crate) url: String,
    pub(crate) why: String,
}

impl fmt::Display for Unanswered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MLflow at {} gave no answer ({}); it may have acted on the request",
            self.url, self.why
        )
    }
}

impl std::error::Error for Unanswered {}

/// What one attempt came to, when it is not the answer.
enum Failed {
    /// Worth another attempt; `after` is the server's `Retry-After`, if any.
    Again {
        why: String,
        after: Option<Duration>,
        /// MLflow cannot have acted on the request (no connection, 429, 503).
        not_acted: bool,
    },
    /// Final.
    Error(anyhow::Error),
}

impl MlflowClient {
    /// GET with retries on connection errors, timeouts, 429 and 5xx. `Ok(None)` on 404.
    pub(crate) fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<T>> {
        self.request_json(
            Method::GET,
            path,
            query,
            None,
            &[StatusCode::NOT_FOUND],
            Repeat::Safe,
        )
    }

    /// One request, retried as `repeat` allows; `Ok(None)` when MLflow answers one of the `none`
    /// statuses.
    pub(crate) fn request_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        none: &[StatusCode],
        repeat: Repeat,
    ) -> Result<Option<T>> {
        Ok(self
            .request_outcome(method, path, query, body, none, repeat)?
            .map_err(|refused| {
                log::debug!(
                    "MLflow at {} answered {}{}",
                    refused.url,
                    refused.status,
                    refused.detail
                );
            })
            .ok())
    }

    /// [`request_json`](MlflowClient::request_json), handing back an answer with one of the
    /// `pass` statuses (and what MLflow said) instead of failing.
    pub(crate) fn request_outcome<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        pass: &[StatusCode],
        repeat: Repeat,
    ) -> Result<std::result::Result<T, Refused>> {
        let mut url = self.endpoint(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.send(method, &url, body, pass, repeat, parse)
    }

    /// One request to `url`, retried as `repeat` allows; a successful answer is read by `read`,
    /// one with a `pass` status handed back.
    pub(crate) fn send<T>(
        &self,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        pass: &[StatusCode],
        repeat: Repeat,
        read: Reader<T>,
    ) -> Result<std::result::Result<T, Refused>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if self.is_cancelled() {
                return Err(anyhow!(Cancelled));
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let failed = match self.attempt(&method, url, body, pass, read) {
                Ok(answer) => return Ok(answer),
                Err(failed) => failed,
            };
            let (why, after, not_acted) = match failed {
                Failed::Error(e) => return Err(e),
                Failed::Again {
                    why,
                    after,
                    not_acted,
                } => (why, after, not_acted),
            };
            if repeat == Repeat::Once && !not_acted {
                return Err(anyhow!(Unanswered {
                    url: url.to_string(),
                    why,
                }));
            }
            if attempt >= MAX_ATTEMPTS {
                bail!("{why} (gave up after {attempt} attempts)");
            }
            let wait = backoff(self.retry_base, attempt, jitter()).max(after.unwrap_or_default());
            log::warn!("{why}; retrying in {wait:.2?}");
            thread::sleep(wait);
        }
    }

    /// One attempt: the parsed answer, a refusal with a `pass` status, or why it failed.
    fn attempt<T>(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        pass: &[StatusCode],
        read: Reader<T>,
    ) -> std::result::Result<std::result::Result<T, Refused>, Failed> {
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(b) = body {
            request = request.json(b);
        }
        let resp = match request.send() {
            Ok(resp) => resp,
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "request failed"
                };
                return Err(Failed::Again {
                    why: format!("MLflow at {url}: {kind}: {}", error_chain(&e)),
                    after: None,
                    // No connection: the request never reached MLflow.
                    not_acted: e.is_connect() && !e.is_timeout(),
                });
            }
        };
        let status = resp.status();
        if status.is_success() {
            return read(url, resp).map(Ok).map_err(Failed::Error);
        }
        let after = retry_after(resp.headers());
        let detail = error_detail(resp);
        if pass.contains(&status) {
            return Ok(Err(Refused {
                url: url.to_string(),
                status,
                detail,
            }));
        }
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Failed::Error(anyhow!(
                "MLflow at {url} answered {status}{detail}: check the MLflow credentials (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
            ))),
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => Err(Failed::Again {
                why: format!("MLflow at {url} answered {status}{detail}"),
                after,
                // 429 and 503 say the server did not take the request on.
                not_acted: matches!(
                    s,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                ),
            }),
            _ => Err(Failed::Error(anyhow!(
                "MLflow at {url} answered {status}{detail}"
            ))),
        }
    }

    pub(crate) fn get_required<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T> {
        self.get_json(path, query)?.ok_or_else(|| {
            let mut url = self.endpoint(path);
            url.query_pairs_mut().extend_pairs(query);
            anyhow!(
                "MLflow at {url} answered 404 Not Found: is {} an MLflow tracking server?",
                self.base
            )
        })
    }
}

/// How a successful answer is read.
pub(crate) type Reader<T> = fn(&Url, reqwest::blocking::Response) -> Result<T>;

/// A successful answer, parsed as it arrives, never held whole: a page of 500 runs with their
/// parameters, metrics and tags can be megabytes, of which m2s keeps a few fields per run.
fn parse<T: DeserializeOwned>(url: &Url, resp: reqwest::blocking::Response) -> Result<T> {
    let mut body = Counted {
        inner: std::io::BufReader::with_capacity(64 * 1024, resp),
        read: 0,
    };
    match serde_json::from_reader(&mut body) {
        Ok(value) => Ok(value),
        Err(e) if e.is_io() => {
            Err(anyhow!(e)).with_context(|| format!("reading the response of MLflow at {url}"))
        }
        Err(e) => Err(anyhow!(e)).with_context(|| {
            format!(
                "MLflow at {url} answered with malformed JSON ({} bytes)",
                body.read
            )
        }),
    }
}

/// The wait before attempt `attempt + 1`: `base × 2^(attempt-1)`, scaled by `jitter` (in
/// [0.5, 1.0]) so that many clients retrying at once spread out.
pub(crate) fn backoff(base: Duration, attempt: u32, jitter: f64) -> Duration {
    (base * 2u32.pow(attempt.saturating_sub(1))).mul_f64(jitter.clamp(0.5, 1.0))
}

/// A number in [0.5, 1.0] from the system's random source.
fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut byte = [0u8; 1];
    let _ = ring::rand::SystemRandom::new().fill(&mut byte);
    0.5 + f64::from(byte[0]) / 510.0
}

/// `Retry-After` in seconds (the HTTP-date form is not honoured), at most [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// A reader that counts what it read (for messages about a response parsed as it streams).
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

fn error_detail(resp: reqwest::blocking::Response) -> String {
    #[derive(Deserialize)]
    struct MlflowError {
        #[serde(default)]
        error_code: String,
        #[serde(default)]
        message: String,
    }
    let body = resp.bytes().unwrap_or_default();
    match serde_json::from_slice::<MlflowError>(&body) {
        Ok(e) if !e.message.is_empty() => {
            let message: String = e.message.chars().take(300).collect();
            format!(" ({}: {message})", e.error_code)
        }
        _ => String::new(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests;
