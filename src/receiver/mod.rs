//! `m2s webhook`: the long-running receiver of MLflow registry webhooks. `POST /webhook` verifies
//! each delivery (signature, timestamp window, delivery id), answers at once and queues a sync
//! of the model the event names; one sync thread runs those syncs and a full sync at start and
//! every resync interval. `GET /healthz`, `/readyz` and `/metrics` follow the usual
//! conventions; SIGTERM stops accepting, lets the sync in progress finish and exits 0.

pub(crate) mod event;
mod http;
pub(crate) mod metrics;
pub(crate) mod queue;
pub(crate) mod verify;
mod worker;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::config::{Config, DeployConfig, EnvLookup};
use crate::engine::apply::SyncOptions;
use crate::engine::{Clients, Executor, Guard};
use event::{decide, Decision};
use http::Deadlines;
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

/// `GET /readyz`: ready once the first full sync has succeeded.
async fn readyz(State(r): State<Arc<Receiver>>) -> Response {
    if r.metrics.ready() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no full sync has succeeded yet\n",
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

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => log::info!(signal = "SIGTERM"; "stopping: no new requests; finishing the sync in progress"),
        _ = tokio::signal::ctrl_c() => log::info!(signal = "SIGINT"; "stopping: no new requests; finishing the sync in progress"),
    }
}

/// How the receiver runs (`m2s webhook`).
#[derive(Debug, Clone)]
pub(crate) struct ReceiverOptions {
    /// Address to listen on, as given (`M2S_WEBHOOK_LISTEN`).
    pub(crate) listen: String,
    /// Seconds between full syncs.
    pub(crate) resync_interval: u64,
    /// What each sync does (dry run, Events, write-back; never waits).
    pub(crate) sync: SyncOptions,
    pub(crate) guard: Guard,
}

/// Runs the receiver until SIGTERM or SIGINT.
pub(crate) fn serve(config: Config, args: &ReceiverOptions, secret: String) -> Result<()> {
    let listen: SocketAddr = args.listen.trim().parse().with_context(|| {
        format!(
            "M2S_WEBHOOK_LISTEN (--listen) {:?} is not an address such as 0.0.0.0:8080",
            args.listen
        )
    })?;
    if args.resync_interval == 0 {
        bail!("M2S_RESYNC_INTERVAL (--resync-interval) must be at least 1 second");
    }
    let interval = Duration::from_secs(args.resync_interval);
    let metrics = Arc::new(Metrics::new());
    let scheduler = Arc::new(Scheduler::new(interval));
    let receiver = Arc::new(Receiver {
        verifier: Verifier::new(&secret),
        deliveries: Mutex::new(RecentDeliveries::new(REMEMBERED_DELIVERIES)),
        scheduler: scheduler.clone(),
        metrics: metrics.clone(),
        deploy: config.deploy.clone(),
        run_timeout: config.run_timeout,
    });
    drop(secret);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("m2s-http")
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    // One set of clients for the replica, made before anything listens: a bad kubeconfig or
    // MLflow URL fails now, not at the first sync. Every sync uses them; the Kubernetes side
    // runs on this runtime, whose threads keep its connections alive between syncs.
    let clients = Clients::connect(&config, Executor::Shared(runtime.handle().clone()))?;
    // Bound before the first sync, so that events arriving during it are queued, not lost.
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| format!("listening on {listen} (M2S_WEBHOOK_LISTEN)"))?;
    let local = listener.local_addr()?;
    log::info!(
        listen:% = local, namespace = config.deploy.namespace.as_str(),
        instance = config.deploy.instance.as_str(), target = config.deploy.target.id(),
        resync_interval_s = args.resync_interval, dry_run = args.sync.dry_run;
        "m2s webhook listening"
    );
    let worker = worker::Worker {
        options: SyncOptions {
            wait: None,
            ..args.sync.clone()
        },
        config: Arc::new(config),
        clients,
        scheduler: scheduler.clone(),
        metrics,
        guard: args.guard,
    };
    let sync_thread = std::thread::Builder::new()
        .name("m2s-sync".into())
        .spawn(move || worker.run())
        .context("starting the sync thread")?;
    let deadlines = Deadlines::default();
    runtime.block_on(http::serve(
        listener,
        router(receiver, deadlines),
        deadlines,
        shutdown_signal(),
    ));
    let dropped = scheduler.stop();
    if dropped > 0 {
        log::info!(models = dropped; "queued model syncs not started; the next full sync covers them");
    }
    if sync_thread.join().is_err() {
        bail!("the sync thread panicked");
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    log::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests;
