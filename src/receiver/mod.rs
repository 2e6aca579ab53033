//! `m2s webhook`: the long-running receiver of MLflow registry webhooks, run as one replica or
//! several. `POST /webhook` verifies each delivery (signature, timestamp window, delivery id),
//! answers at once and queues a sync of the model the event names, on whichever replica it
//! reached; one sync thread per replica runs those syncs. The replica that holds the Lease
//! ([`leader`]) also runs a full sync when it starts leading and every resync interval. `GET
//! /healthz`, `/readyz` and `/metrics` follow the usual conventions (over HTTPS too, with a
//! certificate); SIGTERM stops accepting, lets the sync in progress finish, hands the Lease
//! back and exits 0.

pub(crate) mod event;
mod http;
mod leader;
pub(crate) mod metrics;
pub(crate) mod queue;
mod run;
mod tls;
pub(crate) mod verify;
mod worker;

pub(crate) use run::{serve, ReceiverOptions};
pub(crate) use tls::TlsFiles;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::config::{DeployConfig, EnvLookup};
use event::{decide, Decision};
use http::Deadlines;
use leader::Leadership;
use metrics::Metrics;
use queue::{Queued, Scheduler};
use verify::{Delivery, RecentDeliveries, Verifier};

/// Largest request body accepted (413 above it); MLflow's events are a few hundred bytes.
pub(crate) const MAX_BODY: usize = 1 << 20;
/// Delivery ids remembered for deduplication.
const REMEMBERED_DELIVERIES: usize = 10_000;

/// The shared secret, from `M2S_WEBHOOK_SECRET` only (never a flag: flags show in `ps`).
pub(crate) fn secret_from_env(env: EnvLookup) -> Result<String> {
    match env("M2S_WEBHOOK_SECRET") {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => bail!(
            "M2S_WEBHOOK_SECRET is not set: m2s webhook needs the secret MLflow signs its deliveries with (the same value `m2s webhook register` gives MLflow)"
        ),
    }
}

struct Receiver {
    verifier: Verifier,
    deliveries: Mutex<RecentDeliveries>,
    scheduler: Arc<Scheduler>,
    metrics: Arc<Metrics>,
    leadership: Arc<Leadership>,
    deploy: DeployConfig,
    run_timeout: Duration,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `POST /webhook`. Nothing is acted on before the signature and the timestamp are checked;
/// the answer comes at once, the sync later.
async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "body_too_large"
            } else {
                "malformed"
            };
            r.metrics.rejected(reason);
            log::warn!(reason, status = status.as_u16(); "webhook request rejected");
            return rejection.into_response();
        }
    };
    let delivery = Delivery {
        id: header(&headers, verify::DELIVERY_ID_HEADER),
        timestamp: header(&headers, verify::TIMESTAMP_HEADER),
        signature: header(&headers, verify::SIGNATURE_HEADER),
    };
    let now = unix_now();
    if let Err(rejection) = r.verifier.verify(&delivery, &body, now) {
        r.metrics.rejected(rejection.reason());
        log::warn!(reason = rejection.reason(); "webhook request rejected (401); nothing done");
        return text(
            StatusCode::UNAUTHORIZED,
            "invalid or missing signature, or stale timestamp\n",
        );
    }
    let id = delivery.id.unwrap_or_default();
    let first = r
        .deliveries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .first_time(id, now);
    if !first {
        r.metrics.ignored("duplicate");
        log::info!(delivery = id; "repeated delivery acknowledged, not acted on again");
        return text(StatusCode::OK, "duplicate delivery; already handled\n");
    }
    let (event, decision) = match decide(&body, &r.deploy) {
        Ok(d) => d,
        Err(e) => {
            r.metrics.rejected("malformed");
            log::warn!(reason = "malformed", delivery = id, error = e.as_str(); "webhook event rejected (400)");
            return text(StatusCode::BAD_REQUEST, "not an MLflow registry event\n");
        }
    };
    r.metrics.received(event);
    match decision {
        Decision::Ignore(reason) => {
            r.metrics.ignored(reason);
            log::debug!(event, reason, delivery = id; "event ignored");
            text(StatusCode::OK, "ignored\n")
        }
        Decision::Sync { model, alias } => {
            let (queued, waiting) = r.scheduler.push(&model, alias.as_deref());
            r.metrics.queued(waiting);
            let queued = match queued {
                Queued::New => "new",
                Queued::Merged => "merged",
                Queued::Full => "full_sync",
            };
            log::info!(event, model = model.as_str(), queued, delivery = id; "event accepted");
            text(StatusCode::ACCEPTED, "accepted\n")
        }
    }
}

/// `GET /healthz`: live unless a sync has run past M2S_RUN_TIMEOUT (stuck: restart the pod).
async fn healthz(State(r): State<Arc<Receiver>>) -> Response {
    match r.metrics.running_for() {
        Some(t) if t > r.run_timeout => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "a sync has run longer than M2S_RUN_TIMEOUT\n",
        ),
        _ => text(StatusCode::OK, "ok\n"),
    }
}

/// `GET /readyz`: a replica that leads is ready once a full sync of its has succeeded (as a
/// single replica always was); one that does not lead, once it has seen the Lease held by
/// another (it then syncs what the events it receives name).
async fn readyz(State(r): State<Arc<Receiver>>) -> Response {
    let l = &r.leadership;
    if r.metrics.ready() || (l.is_settled() && !l.is_leader()) {
        text(StatusCode::OK, "ready\n")
    } else if l.is_leader() {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no full sync has succeeded yet\n",
        )
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the Lease could not be read yet\n",
        )
    }
}

async fn metrics(State(r): State<Arc<Receiver>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        r.metrics.render(),
    )
        .into_response()
}

fn router(receiver: Arc<Receiver>, deadlines: Deadlines) -> Router {
    let counters = receiver.metrics.clone();
    let app = Router::new()
        .route("/webhook", post(receive))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(receiver);
    http::with_request_deadline(app, deadlines.request, counters)
}

#[cfg(test)]
mod tests;
