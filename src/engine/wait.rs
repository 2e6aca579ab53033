//! `sync --wait`: after applying, follow the created and updated objects with a WATCH until
//! each is `Available` or `Failed`, or the wait times out. [`Tracker`] is the pure part.
//!
//! The watch starts from the resourceVersion of a LIST read before anything was written (the
//! plan's LIST, or one of a single item): resourceVersions are opaque, so m2s never compares
//! them; a collection's version from a LIST is the one Kubernetes documents as a starting point
//! for a WATCH that misses nothing after it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::k8s::{Kube, Watched};
use crate::targets::{readiness_of, Readiness, State, Target};

/// One object waited for.
#[derive(Debug, Clone)]
struct Item {
    /// The generation m2s wrote: a status of an earlier one says nothing about this write.
    generation: Option<i64>,
    readiness: Readiness,
}

/// What the wait came to.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct WaitOutcome {
    pub(crate) available: Vec<String>,
    /// Name and why.
    pub(crate) failed: Vec<(String, String)>,
    /// Name and the state it was still in.
    pub(crate) not_ready: Vec<(String, Readiness)>,
    /// How long m2s waited at most.
    pub(crate) timeout: Duration,
}

impl WaitOutcome {
    pub(crate) fn succeeded(&self) -> bool {
        self.failed.is_empty() && self.not_ready.is_empty()
    }
}

/// The waited objects' latest known readiness.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    items: BTreeMap<String, Item>,
}

impl Tracker {
    /// Waits for `name`, written at `generation`, now `readiness`.
    pub(crate) fn add(&mut self, name: &str, generation: Option<i64>, readiness: Readiness) {
        self.items.insert(
            name.to_string(),
            Item {
                generation,
                readiness,
            },
        );
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The readiness of each waited object.
    pub(crate) fn states(&self) -> impl Iterator<Item = (&str, &Readiness)> {
        self.items.iter().map(|(n, i)| (n.as_str(), &i.readiness))
    }

    /// Takes in what a watch saw of `name` at `generation`: its readiness now, when its state
    /// or message changed. Objects not waited for, and statuses of an older generation than
    /// m2s wrote, are ignored.
    pub(crate) fn observe(
        &mut self,
        name: &str,
        generation: Option<i64>,
        readiness: Readiness,
    ) -> Option<&Readiness> {
        let item = self.items.get_mut(name)?;
        if let (Some(seen), Some(written)) = (generation, item.generation) {
            if seen < written {
                return None;
            }
        }
        if item.readiness == readiness {
            return None;
        }
        item.readiness = readiness;
        Some(&item.readiness)
    }

    /// `name` was deleted while m2s waited.
    pub(crate) fn deleted(&mut self, name: &str) -> Option<&Readiness> {
        let item = self.items.get_mut(name)?;
        item.readiness = Readiness {
            state: State::Failed,
            message: Some("deleted while m2s waited for it".into()),
            url: None,
        };
        Some(&item.readiness)
    }

    /// Whether every object is `Available` or `Failed`.
    pub(crate) fn done(&self) -> bool {
        self.items
            .values()
            .all(|i| matches!(i.readiness.state, State::Available | State::Failed))
    }

    pub(crate) fn outcome(&self, timeout: Duration) -> WaitOutcome {
        let mut out = WaitOutcome {
            timeout,
            ..WaitOutcome::default()
        };
        for (name, item) in &self.items {
            let r = &item.readiness;
            match r.state {
                State::Available => out.available.push(name.clone()),
                State::Failed => out.failed.push((
                    name.clone(),
                    r.message.clone().unwrap_or_else(|| "no message".into()),
                )),
                _ => out.not_ready.push((name.clone(), r.clone())),
            }
        }
        out
    }
}

/// How a wait runs.
pub(crate) struct WaitSettings {
    pub(crate) timeout: Duration,
    /// Longest single WATCH request: below the request timeout, which bounds every read.
    pub(crate) chunk: Duration,
    /// The resourceVersion of a LIST read before the writes (empty: start from the objects'
    /// current state).
    pub(crate) from: String,
}

/// Follows `tracker`'s objects with WATCH requests (never a poll) until each is Available or
/// Failed or `settings.timeout` has passed, telling `progress` of every change.
pub(crate) async fn wait(
    kube: &Kube,
    instance: &str,
    target: &dyn Target,
    tracker: &mut Tracker,
    settings: &WaitSettings,
    mut progress: impl FnMut(&str, &Readiness),
) -> Result<()> {
    let deadline = Instant::now() + settings.timeout;
    let mut from = settings.from.clone();
    while !tracker.done() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let secs = left.min(settings.chunk).as_secs().max(1) as u32;
        let started = Instant::now();
        let watch = kube.watch_owned(instance, &from, secs, |event| {
            let (name, now) = match event {
                Watched::Changed { name, object } => {
                    let r = readiness_of(target, object.generation, &object.status);
                    let now = tracker.observe(&name, object.generation, r).cloned();
                    (name, now)
                }
                Watched::Deleted { name } => {
                    let now = tracker.deleted(&name).cloned();
                    (name, now)
                }
            };
            if let Some(now) = now {
                progress(&name, &now);
            }
            !tracker.done()
        });
        match tokio::time::timeout(left, watch).await {
            Err(_) => break,
            Ok(Ok(Some(rv))) => from = rv,
            // 410 Gone: the version is too old; start again from the current state.
            Ok(Ok(None)) => from.clear(),
            Ok(Err(e)) => return Err(e.context("waiting for the objects m2s wrote")),
        }
        // A watch the server ended at once (not at its timeout) is not retried in a hot loop.
        if !tracker.done() && started.elapsed() < Duration::from_secs(1) {
            let pause =
                Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
