//! The receiver's metrics, in Prometheus' text format (version 0.0.4), written by hand: a few
//! counters, one histogram and a few gauges need no client library.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::event::EVENT_LABELS;
use crate::engine::apply::RolloutCounts;
use crate::engine::Requests;

pub(crate) const REJECT_REASONS: [&str; 6] = [
    "missing_header",
    "bad_signature",
    "stale_timestamp",
    "body_too_large",
    "malformed",
    "timeout",
];
pub(crate) const IGNORE_REASONS: [&str; 4] = [
    "duplicate",
    "unhandled_event",
    "alias_not_deployed",
    "tag_not_read",
];
pub(crate) const SYNC_KINDS: [&str; 2] = ["full", "model"];
/// The `result` label of syncs: [`SyncResult`](crate::engine::apply::SyncResult)'s labels the
/// receiver can produce, and `model_absent` (MLflow did not return the model: deleted, renamed,
/// outside the filter). `failed` is also a sync that could not finish (MLflow or Kubernetes
/// unreachable, the deletion guard).
/// `timeout`: abandoned past M2S_SYNC_TIMEOUT.
pub(crate) const SYNC_RESULTS: [&str; 6] = [
    "ok",
    "not_deployable",
    "write_back_failed",
    "model_absent",
    "failed",
    "timeout",
];
/// Upper bounds of the sync duration histogram's buckets, in seconds.
const BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Values {
    received: BTreeMap<&'static str, u64>,
    rejected: BTreeMap<&'static str, u64>,
    ignored: BTreeMap<&'static str, u64>,
    syncs: BTreeMap<(&'static str, &'static str), u64>,
    durations: BTreeMap<&'static str, Histogram>,
    requests: BTreeMap<(&'static str, &'static str), u64>,
    changes: BTreeMap<(&'static str, &'static str), u64>,
    /// Progressive-rollout changes written, by what they did (step, promoted, aborted).
    rollouts: BTreeMap<&'static str, u64>,
    last_full_success: Option<f64>,
    queued: usize,
    /// When the sync in progress started.
    running_since: Option<Instant>,
    ready: bool,
    /// Whether this replica holds the Lease.
    leader: bool,
    /// Entries that cannot be deployed, as the last full sync found them.
    not_deployable: usize,
}

pub(crate) struct Metrics {
    values: Mutex<Values>,
}

/// What one finished sync reports.
pub(crate) struct SyncRecord {
    pub(crate) kind: &'static str,
    pub(crate) result: &'static str,
    pub(crate) duration: Duration,
    pub(crate) requests: Requests,
    pub(crate) created: usize,
    pub(crate) updated: usize,
    pub(crate) deleted: usize,
    /// Entries that cannot be deployed (a full sync that finished its plan).
    pub(crate) not_deployable: Option<usize>,
    pub(crate) rollouts: RolloutCounts,
}

fn known(list: &'static [&'static str], value: &str) -> &'static str {
    list.iter()
        .copied()
        .find(|l| *l == value)
        .unwrap_or("other")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series starts at 0, so rates work from the first scrape.
    pub(crate) fn new() -> Metrics {
        let mut v = Values::default();
        v.rollouts
            .extend(RolloutCounts::default().labelled().map(|(l, _)| (l, 0)));
        v.received.extend(EVENT_LABELS.iter().map(|l| (*l, 0)));
        v.rejected.extend(REJECT_REASONS.iter().map(|l| (*l, 0)));
        v.ignored.extend(IGNORE_REASONS.iter().map(|l| (*l, 0)));
        for kind in SYNC_KINDS {
            v.durations.insert(kind, Histogram::default());
            v.syncs.extend(SYNC_RESULTS.iter().map(|r| ((kind, *r), 0)));
            v.requests
                .extend(["mlflow", "kubernetes"].map(|b| ((kind, b), 0)));
            v.changes
                .extend(["create", "update", "delete"].map(|a| ((kind, a), 0)));
        }
        Metrics {
            values: Mutex::new(v),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Values) -> R) -> R {
        f(&mut self.values.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn received(&self, event: &str) {
        self.with(|v| *v.received.entry(known(&EVENT_LABELS, event)).or_default() += 1);
    }
    pub(crate) fn rejected(&self, reason: &str) {
        self.with(|v| {
            *v.rejected
                .entry(known(&REJECT_REASONS, reason))
                .or_default() += 1
        });
    }
    pub(crate) fn ignored(&self, reason: &str) {
        self.with(|v| *v.ignored.entry(known(&IGNORE_REASONS, reason)).or_default() += 1);
    }
    pub(crate) fn queued(&self, waiting: usize) {
        self.with(|v| v.queued = waiting);
    }

    pub(crate) fn sync_started(&self) {
        self.with(|v| v.running_since = Some(Instant::now()));
    }

    pub(crate) fn sync_finished(&self, r: &SyncRecord) {
        self.with(|v| {
            v.running_since = None;
            *v.syncs.entry((r.kind, r.result)).or_default() += 1;
            let h = v.durations.entry(r.kind).or_default();
            let secs = r.duration.as_secs_f64();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
            *v.requests.entry((r.kind, "mlflow")).or_default() += r.requests.mlflow;
            *v.requests.entry((r.kind, "kubernetes")).or_default() += r.requests.kube;
            for (action, n) in [
                ("create", r.created),
                ("update", r.updated),
                ("delete", r.deleted),
            ] {
                *v.changes.entry((r.kind, action)).or_default() += n as u64;
            }
            for (change, n) in r.rollouts.labelled() {
                *v.rollouts.entry(change).or_default() += n as u64;
            }
            if r.kind == "full" && matches!(r.result, "ok" | "not_deployable") {
                v.ready = true;
                v.last_full_success = Some(unix_now());
            }
            if let (Some(n), "full") = (r.not_deployable, r.kind) {
                v.not_deployable = n;
            }
        });
    }

    /// Ready once a full sync has succeeded (entries that cannot be deployed do not count
    /// against it: they are the registry's problem, reported on every sync).
    pub(crate) fn ready(&self) -> bool {
        self.with(|v| v.ready)
    }

    /// This replica starts or stops leading.
    pub(crate) fn set_leader(&self, leader: bool) {
        self.with(|v| v.leader = leader);
    }

    /// How long the sync in progress has been running.
    pub(crate) fn running_for(&self) -> Option<Duration> {
        self.with(|v| v.running_since.map(|s| s.elapsed()))
    }

    pub(crate) fn render(&self) -> String {
        self.with(|v| {
            let mut out = crate::build_info::metric(&[]);
            counter(&mut out, "m2s_webhook_events_received_total", "Verified webhook deliveries, by event (entity.action).", "event", &v.received);
            counter(&mut out, "m2s_webhook_events_rejected_total", "Requests refused (401, 413, 400, 408) and not acted on, by reason.", "reason", &v.rejected);
            counter(&mut out, "m2s_webhook_events_ignored_total", "Verified deliveries acknowledged without a sync, by reason.", "reason", &v.ignored);
            let _ = writeln!(out, "# HELP m2s_syncs_total Syncs finished, by kind (full, model) and result.\n# TYPE m2s_syncs_total counter");
            for ((kind, result), n) in &v.syncs {
                let _ = writeln!(out, "m2s_syncs_total{{kind=\"{kind}\",result=\"{result}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP m2s_sync_duration_seconds Duration of syncs, by kind.\n# TYPE m2s_sync_duration_seconds histogram");
            for (kind, h) in &v.durations {
                for (bound, n) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(out, "m2s_sync_duration_seconds_bucket{{kind=\"{kind}\",le=\"{bound}\"}} {n}");
                }
                let _ = writeln!(out, "m2s_sync_duration_seconds_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "m2s_sync_duration_seconds_sum{{kind=\"{kind}\"}} {}", h.sum);
                let _ = writeln!(out, "m2s_sync_duration_seconds_count{{kind=\"{kind}\"}} {}", h.count);
            }
            let _ = writeln!(out, "# HELP m2s_sync_requests_total Requests syncs sent, by kind and backend (mlflow, kubernetes).\n# TYPE m2s_sync_requests_total counter");
            for ((kind, backend), n) in &v.requests {
                let _ = writeln!(out, "m2s_sync_requests_total{{kind=\"{kind}\",backend=\"{backend}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP m2s_sync_changes_total Objects written by syncs, by kind and action.\n# TYPE m2s_sync_changes_total counter");
            for ((kind, action), n) in &v.changes {
                let _ = writeln!(out, "m2s_sync_changes_total{{kind=\"{kind}\",action=\"{action}\"}} {n}");
            }
            counter(&mut out, "m2s_rollout_changes_total", "Progressive-rollout changes written, by change: step (the first included), promoted, aborted (the new version rolled back by itself).", "change", &v.rollouts);
            let _ = writeln!(out, "# HELP m2s_last_full_sync_success_timestamp_seconds Unix time the last successful full sync finished (0: none yet).\n# TYPE m2s_last_full_sync_success_timestamp_seconds gauge\nm2s_last_full_sync_success_timestamp_seconds {}", v.last_full_success.unwrap_or(0.0));
            let _ = writeln!(out, "# HELP m2s_sync_queue_models Models waiting for a sync.\n# TYPE m2s_sync_queue_models gauge\nm2s_sync_queue_models {}", v.queued);
            let _ = writeln!(out, "# HELP m2s_leader Whether this replica holds the Lease and runs the periodic full sync (1) or not (0).\n# TYPE m2s_leader gauge\nm2s_leader {}", u8::from(v.leader));
            let _ = writeln!(out, "# HELP m2s_entries_not_deployable Registry entries that cannot be deployed, as this replica's last full sync found them.\n# TYPE m2s_entries_not_deployable gauge\nm2s_entries_not_deployable {}", v.not_deployable);
            out
        })
    }
}

fn counter(out: &mut String, name: &str, help: &str, label: &str, values: &BTreeMap<&str, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, n) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
