//! Starting and stopping the receiver: its runtime and clients, the leader election, the sync
//! thread, the HTTP(S) server; on SIGTERM the reverse.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::sync::watch;

use super::leader::{self, Elector, Leadership};
use super::metrics::Metrics;
use super::queue::Scheduler;
use super::tls::{self, TlsFiles};
use super::verify::{RecentDeliveries, Verifier};
use super::{http, router, worker, Receiver, REMEMBERED_DELIVERIES};
use crate::config::Config;
use crate::engine::apply::SyncOptions;
use crate::engine::{Clients, Executor, Guard};
use crate::k8s::LeaseApi;

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
    /// A sync running longer is abandoned (`M2S_SYNC_TIMEOUT`).
    pub(crate) sync_timeout: Duration,
    /// Elect a leader on a Lease (`M2S_LEADER_ELECTION`); without, this replica leads.
    pub(crate) leader_election: bool,
    /// This replica's name in the Lease (`POD_NAME`, else the host name).
    pub(crate) pod_name: Option<String>,
    /// Serve HTTPS with this certificate and key.
    pub(crate) tls: Option<TlsFiles>,
}

/// The Lease of an instance's receivers, in the serving namespace.
pub(crate) fn lease_name(instance: &str) -> String {
    format!("{instance}-leader")
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

/// Resolves once `stopping` says so.
async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
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
    if args.sync_timeout.is_zero() {
        bail!("M2S_SYNC_TIMEOUT (--sync-timeout) must be at least 1 second");
    }
    let lease = lease_name(&config.deploy.instance);
    if args.leader_election && !lease.split('.').all(crate::naming::is_dns1123_label) {
        bail!(
            "M2S_INSTANCE {:?} makes the receivers' Lease name {lease:?}, which is not a valid object name (lowercase letters, digits, '-' and '.'): use such an instance, or M2S_LEADER_ELECTION=false for a single replica",
            config.deploy.instance
        );
    }
    // A certificate that cannot be read stops the receiver now, naming the file.
    let tls = args.tls.clone().map(tls::acceptor).transpose()?;
    let metrics = Arc::new(Metrics::new());
    let scheduler = Arc::new(Scheduler::new(Duration::from_secs(args.resync_interval)));
    let leadership = Arc::new(if args.leader_election {
        Leadership::default()
    } else {
        Leadership::always()
    });
    if !args.leader_election {
        scheduler.set_leading(true);
        metrics.set_leader(true);
    }
    let receiver = Arc::new(Receiver {
        verifier: Verifier::new(&secret),
        deliveries: Mutex::new(RecentDeliveries::new(REMEMBERED_DELIVERIES)),
        scheduler: scheduler.clone(),
        metrics: metrics.clone(),
        leadership: leadership.clone(),
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
    let identity = leader::identity(args.pod_name.clone());
    log::info!(
        listen:% = local, namespace = config.deploy.namespace.as_str(),
        instance = config.deploy.instance.as_str(), target = config.deploy.target.id(),
        resync_interval_s = args.resync_interval, dry_run = args.sync.dry_run,
        tls = tls.is_some(), identity = identity.as_str(), leader_election = args.leader_election;
        "m2s webhook listening"
    );
    let (stopping, stop) = watch::channel(false);
    // The election goes on until the last sync is done (the Lease is renewed meanwhile).
    let (resigning, resign) = watch::channel(false);
    let election = args.leader_election.then(|| {
        let elector = Elector {
            lease: LeaseApi::new(clients.kube.client(), &config.deploy.namespace, &lease),
            identity,
            leadership: leadership.clone(),
            on_change: {
                let (scheduler, metrics) = (scheduler.clone(), metrics.clone());
                Box::new(move |leading| {
                    metrics.set_leader(leading);
                    scheduler.set_leading(leading);
                })
            },
        };
        runtime.spawn(elector.run(stopped(resign)))
    });
    let worker = worker::Worker {
        options: SyncOptions {
            wait: None,
            ..args.sync.clone()
        },
        config: Arc::new(config),
        clients: Arc::new(clients),
        scheduler: scheduler.clone(),
        metrics,
        leadership,
        guard: args.guard,
        deadline: args.sync_timeout,
    };
    let sync_thread = std::thread::Builder::new()
        .name("m2s-sync".into())
        .spawn(move || worker.run())
        .context("starting the sync thread")?;
    runtime.spawn(async move {
        shutdown_signal().await;
        let _ = stopping.send(true);
    });
    let deadlines = http::Deadlines::default();
    runtime.block_on(http::serve(
        listener,
        tls,
        router(receiver, deadlines),
        deadlines,
        stopped(stop),
    ));
    let dropped = scheduler.stop();
    if dropped > 0 {
        log::info!(models = dropped; "queued model syncs not started; the next full sync covers them");
    }
    if sync_thread.join().is_err() {
        bail!("the sync thread panicked");
    }
    // The Lease is handed back once the last sync is done.
    let _ = resigning.send(true);
    if let Some(election) = election {
        let _ = runtime.block_on(election);
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    log::info!("stopped");
    Ok(())
}
