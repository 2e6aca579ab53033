//! The HTTP server under the router: one hyper HTTP/1 connection per client, with read
//! deadlines. `axum::serve` gives hyper no timer, so hyper's header-read timeout is off there
//! and a client that sends its request a byte at a time would hold its connection for as long
//! as it likes; here the headers must arrive within [`Deadlines::headers`] and the whole
//! request (body included) be answered within [`Deadlines::request`], else 408.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::metrics::Metrics;

/// How long a client has to send its request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// From the connection (or the previous response) to the end of the request headers.
    pub(crate) headers: Duration,
    /// From the end of the headers to the response: reading the body and answering. MLflow
    /// sends a few hundred bytes and gives up itself after 30 s.
    pub(crate) request: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            headers: Duration::from_secs(10),
            request: Duration::from_secs(30),
        }
    }
}

/// `app` with the request deadline: a request not answered in time gets 408 (its body was not
/// complete: nothing was acted on) and counts as rejected with reason `timeout`.
pub(crate) fn with_request_deadline(
    app: Router,
    deadline: Duration,
    metrics: Arc<Metrics>,
) -> Router {
    app.layer(middleware::from_fn_with_state(
        (deadline, metrics),
        answer_in_time,
    ))
}

async fn answer_in_time(
    State((deadline, metrics)): State<(Duration, Arc<Metrics>)>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics.rejected("timeout");
            log::warn!(reason = "timeout", deadline_s = deadline.as_secs(); "webhook request rejected (408): not received in time; nothing done");
            (
                StatusCode::REQUEST_TIMEOUT,
                "request not received in time\n",
            )
                .into_response()
        }
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown` resolves, then stops
/// accepting and waits for the connections' requests in flight to be answered.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    deadlines: Deadlines,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, mostly: wait a little instead of spinning.
                    log::warn!(error = e.to_string().as_str(); "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (app, watcher, tls) = (app.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            let Some(tls) = tls else {
                return connection(stream, app, deadlines, watcher).await;
            };
            // The handshake counts against the headers' deadline.
            match tokio::time::timeout(deadlines.headers, tls.accept(stream)).await {
                Ok(Ok(stream)) => connection(stream, app, deadlines, watcher).await,
                Ok(Err(e)) => log::debug!("TLS handshake failed: {e}"),
                Err(_) => log::debug!("TLS handshake not done in time"),
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// One client's HTTP/1 connection, with the headers' deadline, until it ends (or shutdown).
async fn connection<IO>(io: IO, app: Router, deadlines: Deadlines, watcher: Watcher)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(deadlines.headers);
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    if let Err(e) = watcher.watch(connection).await {
        log::debug!("connection ended: {e}");
    }
}
