//! `sync --wait`: after applying, follow the created and updated objects with a WATCH until
//! each is `Available` or `Failed`, or the wait times out. [`Tracker`] is the pure part.

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
    resource_version: Option<String>,
    readiness: Readiness,
}

/// What the wait came to.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub available: Vec<String>,
    /// Name and why.
    pub failed: Vec<(String, String)>,
    /// Name and the state it was still in.
    pub not_ready: Vec<(String, Readiness)>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.failed.is_empty() && self.not_ready.is_empty()
    }
}

/// The waited objects' latest known readiness.
#[derive(Debug, Default)]
pub struct Tracker {
    items: BTreeMap<String, Item>,
}

/// "  name: State (message) at url": one progress line.
pub fn describe(name: &str, r: &Readiness) -> String {
    let mut line = format!("  {name}: {}", r.state);
    if let Some(m) = &r.message {
        line.push_str(&format!(" ({m})"));
    }
    if let (State::Available, Some(url)) = (r.state, &r.url) {
        line.push_str(&format!(" at {url}"));
    }
    line
}

impl Tracker {
    /// Waits for `name`, written at `generation` (and `resource_version`), now `readiness`.
    pub fn add(
        &mut self,
        name: &str,
        generation: Option<i64>,
        resource_version: Option<String>,
        readiness: Readiness,
    ) {
        self.items.insert(
            name.to_string(),
            Item {
                generation,
                resource_version,
                readiness,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The readiness of each waited object.
    pub fn states(&self) -> impl Iterator<Item = (&str, &Readiness)> {
        self.items.iter().map(|(n, i)| (n.as_str(), &i.readiness))
    }

    /// Takes in what a watch saw of `name` at `generation`; a progress line when its state
    /// or message changed. Objects not waited for, and statuses of an older generation than
    /// m2s wrote, are ignored.
    pub fn observe(
        &mut self,
        name: &str,
        generation: Option<i64>,
        readiness: Readiness,
    ) -> Option<String> {
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
        Some(describe(name, &item.readiness))
    }

    /// `name` was deleted while m2s waited.
    pub fn deleted(&mut self, name: &str) -> Option<String> {
        let item = self.items.get_mut(name)?;
        item.readiness = Readiness {
            state: State::Failed,
            message: Some("deleted while m2s waited for it".into()),
            url: None,
        };
        Some(describe(name, &item.readiness))
    }

    /// Whether every object is `Available` or `Failed`.
    pub fn done(&self) -> bool {
        self.items
            .values()
            .all(|i| matches!(i.readiness.state, State::Available | State::Failed))
    }

    /// Where a watch that sees every later change of every waited object starts: the oldest
    /// resourceVersion m2s wrote (they are etcd revisions). Empty when one is unknown or not a
    /// number: the watch then starts with the objects' current state.
    pub fn start_version(&self) -> String {
        let versions: Option<Vec<u64>> = self
            .items
            .values()
            .filter(|i| !matches!(i.readiness.state, State::Available | State::Failed))
            .map(|i| i.resource_version.as_deref()?.parse().ok())
            .collect();
        versions
            .and_then(|v| v.into_iter().min())
            .map(|v| v.to_string())
            .unwrap_or_default()
    }

    pub fn outcome(&self) -> Outcome {
        let mut out = Outcome::default();
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
pub struct Settings {
    pub timeout: Duration,
    /// Longest single WATCH request: below the request timeout, which bounds every read.
    pub chunk: Duration,
}

/// Follows `tracker`'s objects with WATCH requests (never a poll) until each is Available or
/// Failed or `settings.timeout` has passed, printing a line per change with `progress`.
pub async fn wait(
    kube: &Kube,
    instance: &str,
    target: &dyn Target,
    tracker: &mut Tracker,
    settings: &Settings,
    mut progress: impl FnMut(String),
) -> Result<()> {
    let deadline = Instant::now() + settings.timeout;
    let mut from = tracker.start_version();
    while !tracker.done() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let secs = left.min(settings.chunk).as_secs().max(1) as u32;
        let started = Instant::now();
        let watch = kube.watch_owned(instance, &from, secs, |event| {
            let line = match event {
                Watched::Changed { name, object } => {
                    let r = readiness_of(target, object.generation, &object.status);
                    tracker.observe(&name, object.generation, r)
                }
                Watched::Deleted { name } => tracker.deleted(&name),
            };
            if let Some(line) = line {
                progress(line);
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
mod tests {
    use super::*;

    fn r(state: State, message: Option<&str>) -> Readiness {
        Readiness {
            state,
            message: message.map(String::from),
            url: None,
        }
    }

    #[test]
    fn follows_states_and_ignores_older_generations() {
        let mut t = Tracker::default();
        t.add("a", Some(2), Some("105".into()), r(State::Creating, None));
        t.add("b", Some(1), Some("101".into()), r(State::Pending, None));
        assert!(!t.done());
        assert_eq!(t.start_version(), "101");
        // A's status for generation 1 (before m2s's write) is no news.
        assert_eq!(t.observe("a", Some(1), r(State::Available, None)), None);
        assert_eq!(t.observe("other", Some(9), r(State::Failed, None)), None);
        assert_eq!(
            t.observe("a", Some(2), r(State::Available, None))
                .as_deref(),
            Some("  a: Available")
        );
        // The same state again prints nothing.
        assert_eq!(t.observe("a", Some(2), r(State::Available, None)), None);
        // Only unfinished objects decide where a new watch starts.
        assert_eq!(t.start_version(), "101");
        assert_eq!(
            t.observe(
                "b",
                Some(1),
                r(State::Failed, Some("ScheduleFailed: no server"))
            )
            .as_deref(),
            Some("  b: Failed (ScheduleFailed: no server)")
        );
        assert!(t.done());
        let out = t.outcome();
        assert_eq!(out.available, ["a"]);
        assert_eq!(
            out.failed,
            [("b".to_string(), "ScheduleFailed: no server".to_string())]
        );
        assert!(!out.succeeded());
    }

    #[test]
    fn not_ready_and_deleted_objects_are_reported() {
        let mut t = Tracker::default();
        t.add("a", None, None, r(State::Creating, Some("pulling")));
        t.add("b", None, Some("7".into()), r(State::Pending, None));
        // One version unknown: the watch starts from the current state.
        assert_eq!(t.start_version(), "");
        assert!(t.deleted("b").unwrap().contains("deleted while m2s waited"));
        let out = t.outcome();
        assert_eq!(
            out.not_ready,
            [("a".to_string(), r(State::Creating, Some("pulling")))]
        );
        assert_eq!(out.failed[0].0, "b");
    }
}
