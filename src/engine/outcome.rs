//! What a sync came to ([`SyncOutcome`]), in kinds m2s counts and reports: exit codes,
//! metrics, logs and Events read it, nothing parses strings.

use std::sync::Arc;

use super::after::WriteBackOutcome;
use super::wait::WaitOutcome;
use super::Requests;
use crate::plan::Action;
use crate::targets::Resource;

/// Error lines that list objects name at most this many, then say how many more.
pub(crate) const LISTED: usize = 10;

/// A change that could not be written.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) action: Action,
    pub(crate) name: Arc<str>,
    pub(crate) error: String,
}

/// What a sync came to, in kinds m2s counts and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SyncResult {
    Ok,
    /// Entries the registry asks for that cannot be deployed (their objects are left alone).
    NotDeployable,
    /// Written objects that did not become Available in time (`--wait`).
    NotAvailable,
    /// Tag writes to MLflow refused (the Kubernetes side is done).
    WriteBackFailed,
    /// Changes not written.
    ApplyFailed,
}

impl SyncResult {
    /// The `result` label of the receiver's metrics and logs.
    pub(crate) fn label(self) -> &'static str {
        match self {
            SyncResult::Ok => "ok",
            SyncResult::NotDeployable => "not_deployable",
            SyncResult::NotAvailable => "not_available",
            SyncResult::WriteBackFailed => "write_back_failed",
            SyncResult::ApplyFailed => "failed",
        }
    }
}

/// Progressive-rollout changes a sync wrote (counted in the metrics; an abort is what teams
/// alert on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RolloutCounts {
    /// Steps written, the first included.
    pub(crate) steps: usize,
    pub(crate) promoted: usize,
    pub(crate) aborted: usize,
}

impl RolloutCounts {
    /// `(label, count)` pairs, as the metrics label them.
    pub(crate) fn labelled(self) -> [(&'static str, usize); 3] {
        [
            ("step", self.steps),
            ("promoted", self.promoted),
            ("aborted", self.aborted),
        ]
    }
}

/// What the writes of one sync did.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncOutcome {
    pub(crate) dry_run: bool,
    pub(crate) created: usize,
    pub(crate) updated: usize,
    pub(crate) deleted: usize,
    pub(crate) unchanged: usize,
    /// Changes planned (written or failed).
    pub(crate) changes: usize,
    pub(crate) failures: Vec<Failure>,
    pub(crate) not_deployable: usize,
    /// Rollout steps, promotions and aborts written.
    pub(crate) rollouts: RolloutCounts,
    /// `--wait`'s result, when it waited for something.
    pub(crate) wait: Option<WaitOutcome>,
    /// Write-back's result, when it ran.
    pub(crate) write_back: Option<WriteBackOutcome>,
    pub(crate) requests: Requests,
}

impl SyncOutcome {
    /// Every kind of problem this sync had, the worst last; `[Ok]` when none.
    pub(crate) fn results(&self) -> Vec<SyncResult> {
        let mut results = Vec::new();
        if self.not_deployable > 0 {
            results.push(SyncResult::NotDeployable);
        }
        if self.wait.as_ref().is_some_and(|w| !w.succeeded()) {
            results.push(SyncResult::NotAvailable);
        }
        if self
            .write_back
            .as_ref()
            .is_some_and(|w| !w.failures.is_empty())
        {
            results.push(SyncResult::WriteBackFailed);
        }
        if !self.failures.is_empty() {
            results.push(SyncResult::ApplyFailed);
        }
        if results.is_empty() {
            results.push(SyncResult::Ok);
        }
        results
    }

    /// The worst of [`results`](SyncOutcome::results).
    pub(crate) fn result(&self) -> SyncResult {
        *self.results().last().expect("at least Ok")
    }

    /// Each problem in words, objects listed up to [`LISTED`] (with how many more).
    pub(crate) fn problems(&self, kind: Resource) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.failures.is_empty() {
            let n = self.changes;
            problems.push(format!(
                "{} of {n} {} failed: {}",
                self.failures.len(),
                if n == 1 { "change" } else { "changes" },
                first_of(
                    self.failures
                        .iter()
                        .map(|f| format!("{}: {}", f.name, f.error)),
                    self.failures.len(),
                    "; "
                )
            ));
        }
        if let Some(w) = self.wait.as_ref().filter(|w| !w.succeeded()) {
            problems.push(not_available(w, kind));
        }
        if let Some(w) = self.write_back.as_ref().filter(|w| !w.failures.is_empty()) {
            problems.push(format!(
                "write-back: {} of {} tag writes refused (the Kubernetes objects are as applied): {}",
                w.failures.len(),
                w.failures.len() + w.set + w.deleted,
                first_of(w.failures.iter().cloned(), w.failures.len(), "; ")
            ));
        }
        if self.not_deployable > 0 {
            let n = self.not_deployable;
            problems.push(format!(
                "{n} registry {} cannot be deployed (listed above)",
                if n == 1 { "entry" } else { "entries" }
            ));
        }
        problems
    }
}

/// The first [`LISTED`] of `items` joined with `sep`, and how many more there are.
pub(crate) fn first_of(items: impl Iterator<Item = String>, total: usize, sep: &str) -> String {
    let shown: Vec<String> = items.take(LISTED).collect();
    let more = total.saturating_sub(shown.len());
    let list = shown.join(sep);
    if more > 0 {
        format!("{list}{sep}and {more} more")
    } else {
        list
    }
}

/// `--wait`'s problem, naming each object that failed or was not ready in time.
pub(crate) fn not_available(w: &WaitOutcome, kind: Resource) -> String {
    let failed = w
        .failed
        .iter()
        .map(|(name, message)| format!("{name} is Failed ({message})"));
    let slow = w.not_ready.iter().map(|(name, r)| {
        let why = r
            .message
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        format!(
            "{name} is still {}{why} after {}s (--wait-timeout)",
            r.state,
            w.timeout.as_secs()
        )
    });
    let bad = w.failed.len() + w.not_ready.len();
    let all = bad + w.available.len();
    format!(
        "{bad} of {} not Available: {}",
        kind.count(all),
        first_of(failed.chain(slow), bad, "; ")
    )
}

#[cfg(test)]
mod tests;
