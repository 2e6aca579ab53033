//! Leader election among the receiver's replicas, on a `coordination.k8s.io/v1` Lease, with
//! the semantics of client-go's leaderelection: a Lease of 15 s, renewed every 2 s; a holder
//! that has not renewed for 10 s (the renew deadline: the API unreachable, say) stops leading
//! at once, before anyone else may take the Lease; another replica takes it once it has seen
//! no renewal for the Lease's duration, measured on its own clock (never by comparing clocks).
//! On SIGTERM the holder hands the Lease back, so that another takes it at once.
//!
//! What only one replica may do — the periodic full sync with its deletes and write-back —
//! runs on the holder; every replica receives deliveries and runs the scoped syncs they ask
//! for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

use crate::k8s::LeaseApi;

/// How long a Lease holds without renewal.
pub(crate) const LEASE_DURATION: Duration = Duration::from_secs(15);
/// A holder that has not renewed for this long stops leading (below [`LEASE_DURATION`], so
/// that it has stopped before another replica may take over).
pub(crate) const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Between two attempts to take or renew the Lease.
pub(crate) const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// What the replica knows of the election; shared with the receiver's threads.
#[derive(Debug, Default)]
pub(crate) struct Leadership {
    leading: AtomicBool,
    /// Set once an attempt has completed (the replica knows whether it leads).
    settled: AtomicBool,
    holder: Mutex<Option<String>>,
}

impl Leadership {
    /// A replica that leads without an election (`M2S_LEADER_ELECTION=false`).
    pub(crate) fn always() -> Leadership {
        let l = Leadership::default();
        l.leading.store(true, Ordering::Relaxed);
        l.settled.store(true, Ordering::Relaxed);
        l
    }
    pub(crate) fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }
    pub(crate) fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Relaxed)
    }
}

/// A change of this replica's role, for the scheduler and the metrics.
pub(crate) type OnChange = Box<dyn Fn(bool) + Send + Sync>;

/// The election of one replica.
pub(crate) struct Elector {
    pub(crate) lease: LeaseApi,
    /// This replica's identity in the Lease (`<pod name>_<random>`).
    pub(crate) identity: String,
    pub(crate) leadership: Arc<Leadership>,
    pub(crate) on_change: OnChange,
}

/// What the replica last saw of the Lease: its holder and renewal, and when (on its own
/// clock) that record last changed.
struct Observed {
    record: Option<(Option<String>, Option<Timestamp>)>,
    at: Instant,
}

impl Elector {
    /// Takes part in the election until `stop` resolves; then hands the Lease back if it holds it.
    pub(crate) async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut observed = Observed {
            record: None,
            at: Instant::now(),
        };
        let mut last_renewal: Option<Instant> = None;
        loop {
            let attempt = tokio::time::timeout(RETRY_PERIOD * 2, self.attempt(&mut observed));
            match attempt.await {
                Ok(Ok(true)) => {
                    last_renewal = Some(Instant::now());
                    self.set(true);
                }
                Ok(Ok(false)) => {
                    last_renewal = None;
                    self.set(false);
                }
                Ok(Err(e)) => log::warn!(lease = self.lease.name(); "leader election: {e:#}"),
                Err(_) => {
                    log::warn!(lease = self.lease.name(); "leader election: the Lease request timed out")
                }
            }
            if self.leadership.is_leader()
                && last_renewal.is_none_or(|t| t.elapsed() > RENEW_DEADLINE)
            {
                log::error!(
                    lease = self.lease.name(), identity = self.identity.as_str();
                    "could not renew the Lease for {RENEW_DEADLINE:?}: this replica stops leading"
                );
                self.set(false);
            }
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(RETRY_PERIOD) => {}
            }
        }
        if self.leadership.is_leader() {
            self.release().await;
        }
    }

    fn set(&self, leading: bool) {
        self.leadership.settled.store(true, Ordering::Relaxed);
        if self.leadership.leading.swap(leading, Ordering::Relaxed) != leading {
            if leading {
                log::info!(lease = self.lease.name(), identity = self.identity.as_str(); "this replica leads: it runs the periodic full sync");
            } else {
                log::info!(lease = self.lease.name(), identity = self.identity.as_str(); "this replica no longer leads");
            }
            (self.on_change)(leading);
        }
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Takes or renews the Lease; whether this replica holds it now.
    async fn attempt(&self, observed: &mut Observed) -> Result<bool> {
        let now = Timestamp::now();
        let Some(lease) = self.lease.get().await? else {
            return Ok(self.lease.create(self.spec(now, None, 0)).await?.is_ok());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        self.observe(observed, &spec, holder.clone());
        let ours = holder.as_deref() == Some(self.identity.as_str());
        let duration = spec
            .lease_duration_seconds
            .map_or(LEASE_DURATION, |s| Duration::from_secs(s.max(1) as u64));
        if !ours && holder.is_some() && observed.at.elapsed() < duration {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquired = if ours { spec.acquire_time } else { None };
        Ok(self
            .lease
            .replace(&lease, self.spec(now, acquired, transitions))
            .await?
            .is_ok())
    }

    /// Notes the Lease's record; when it changed, when (on this replica's clock), and says so
    /// in the log when the holder changed.
    fn observe(&self, observed: &mut Observed, spec: &LeaseSpec, holder: Option<String>) {
        let record = (holder.clone(), spec.renew_time.as_ref().map(|t| t.0));
        if observed.record.as_ref() != Some(&record) {
            observed.record = Some(record);
            observed.at = Instant::now();
        }
        let mut known = self
            .leadership
            .holder
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *known != holder {
            log::info!(
                lease = self.lease.name(), holder = holder.as_deref().unwrap_or("(none)");
                "the Lease's holder changed"
            );
            known.clone_from(&holder);
        }
    }

    /// Hands the Lease back (no holder, 1 s), so that another replica takes it at once.
    async fn release(&self) {
        let released = async {
            let Some(lease) = self.lease.get().await? else {
                return Ok(());
            };
            let spec = lease.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return Ok(());
            }
            let handed = LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                renew_time: Some(MicroTime(Timestamp::now())),
                ..spec
            };
            self.lease.replace(&lease, handed).await.map(|_| ())
        };
        match tokio::time::timeout(RETRY_PERIOD * 2, released).await {
            Ok(Ok(())) => log::info!(lease = self.lease.name(); "handed the Lease back"),
            Ok(Err(e)) => {
                log::warn!(lease = self.lease.name(); "could not hand the Lease back: {e:#}")
            }
            Err(_) => {
                log::warn!(lease = self.lease.name(); "could not hand the Lease back in time")
            }
        }
        self.set(false);
    }
}

/// This replica's identity: the pod's name (`POD_NAME`, else the host name) and 8 random hex
/// characters, so that a restarted pod of the same name is a new candidate.
pub(crate) fn identity(pod: Option<String>) -> String {
    use ring::rand::SecureRandom;
    let pod = pod
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "m2s".to_string());
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{pod}_{suffix}")
}

#[cfg(test)]
mod tests;
