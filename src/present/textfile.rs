//! One `m2s sync` run as metrics in the node-exporter textfile format (Prometheus' text format,
//! without timestamps): what `sync --metrics-file` writes for a textfile collector to expose.
//! Every sample carries `namespace` and `m2s_instance`, so the files of several instances can
//! sit in one directory.

use std::fmt::Write as _;

use crate::build_info::{self, label_value};
use crate::engine::apply::RolloutCounts;

/// What a run came to, as the textfile reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunMetrics {
    pub(crate) namespace: String,
    pub(crate) instance: String,
    /// Unix time the run finished.
    pub(crate) finished: f64,
    pub(crate) duration: f64,
    /// Whether the run applied its plan: no failed write, wait or write-back, and no error
    /// before or during it. Entries that cannot be deployed do not make it fail here: they are
    /// counted in `m2s_entries_not_deployable`.
    pub(crate) success: bool,
    /// Unix time of the last successful run: this one's, or carried over from the previous
    /// file (0: none known).
    pub(crate) last_success: f64,
    /// Objects created, updated, deleted, and changes that failed; `None` when the run ended
    /// before it applied anything.
    pub(crate) changes: Option<Changes>,
}

/// The writes of a run, and the entries it could not deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Changes {
    pub(crate) created: usize,
    pub(crate) updated: usize,
    pub(crate) deleted: usize,
    pub(crate) failed: usize,
    pub(crate) not_deployable: usize,
    /// Progressive-rollout steps, promotions and aborts written.
    pub(crate) rollouts: RolloutCounts,
}

const LAST_SUCCESS: &str = "m2s_run_last_success_timestamp_seconds";

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(&str, String)], labels: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (extra, value) in samples {
        let _ = writeln!(out, "{name}{{{labels}{extra}}} {value}");
    }
}

/// The file's text.
pub(crate) fn render(m: &RunMetrics) -> String {
    let mut out = build_info::metric(&[("namespace", &m.namespace), ("m2s_instance", &m.instance)]);
    let labels = format!(
        "namespace=\"{}\",m2s_instance=\"{}\"",
        label_value(&m.namespace),
        label_value(&m.instance)
    );
    let one = |v: String| [("", v)];
    let l = labels.as_str();
    gauge(
        &mut out,
        "m2s_run_last_timestamp_seconds",
        "Unix time the last m2s sync run finished.",
        &one(format!("{:.3}", m.finished)),
        l,
    );
    gauge(&mut out, "m2s_run_success", "1 if the last run applied its plan (entries that cannot be deployed aside), 0 if it failed.", &one(u8::from(m.success).to_string()), l);
    gauge(
        &mut out,
        LAST_SUCCESS,
        "Unix time the last successful run finished (0: none known).",
        &one(format!("{:.3}", m.last_success)),
        l,
    );
    gauge(
        &mut out,
        "m2s_run_duration_seconds",
        "How long the last run took.",
        &one(format!("{:.3}", m.duration)),
        l,
    );
    let c = m.changes.unwrap_or_default();
    let actions = [
        (",action=\"created\"", c.created.to_string()),
        (",action=\"updated\"", c.updated.to_string()),
        (",action=\"deleted\"", c.deleted.to_string()),
        (",action=\"failed\"", c.failed.to_string()),
    ];
    gauge(
        &mut out,
        "m2s_run_changes",
        "Objects the last run created, updated and deleted, and changes that failed.",
        &actions,
        l,
    );
    let r = c.rollouts;
    let rollouts = [
        (",change=\"step\"", r.steps.to_string()),
        (",change=\"promoted\"", r.promoted.to_string()),
        (",change=\"aborted\"", r.aborted.to_string()),
    ];
    gauge(
        &mut out,
        "m2s_run_rollout_changes",
        "Progressive-rollout changes the last run wrote: step (the first included), promoted, aborted (the new version rolled back by itself).",
        &rollouts,
        l,
    );
    if let Some(c) = m.changes {
        gauge(
            &mut out,
            "m2s_entries_not_deployable",
            "Registry entries of the last run that cannot be deployed.",
            &one(c.not_deployable.to_string()),
            l,
        );
    }
    out
}

/// The last success a previous file recorded, if it holds one.
pub(crate) fn last_success(previous: &str) -> Option<f64> {
    previous.lines().find_map(|line| {
        let rest = line.strip_prefix(LAST_SUCCESS)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        rest.rsplit(' ').next()?.parse::<f64>().ok()
    })
}

#[cfg(test)]
mod tests;
