//! Kubernetes Events (`events.k8s.io/v1`) about what a sync did to each object, so that
//! `kubectl describe` shows it and why. Best effort: an Event that cannot be recorded never
//! fails a run; without RBAC for Events m2s warns once and sends no more.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::Kube;
use crate::hash::content_hash;
use crate::targets::Resource;

/// The `reportingController` of m2s's Events.
pub(crate) const CONTROLLER: &str = "m2s";
/// Kubernetes refuses a note longer than 1 kB.
const NOTE_LIMIT: usize = 1024;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Created,
    Updated,
    Deleted,
    ApplyFailed,
    NotDeployable,
    /// A progressive rollout's step was written.
    RolloutStep,
    /// A progressive rollout ended with the new version serving alone.
    RolloutPromoted,
    /// A progressive rollout ended with the stable version serving alone again.
    RolloutAborted,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Created => "Created",
            Reason::Updated => "Updated",
            Reason::Deleted => "Deleted",
            Reason::ApplyFailed => "ApplyFailed",
            Reason::NotDeployable => "NotDeployable",
            Reason::RolloutStep => "RolloutStep",
            Reason::RolloutPromoted => "RolloutPromoted",
            Reason::RolloutAborted => "RolloutAborted",
        }
    }
    /// How the log says it.
    pub(crate) fn past(self) -> &'static str {
        match self {
            Reason::Created => "created",
            Reason::Updated => "updated",
            Reason::Deleted => "deleted",
            Reason::ApplyFailed => "failed",
            Reason::NotDeployable => "not deployable",
            Reason::RolloutStep => "rolled out a step",
            Reason::RolloutPromoted => "promoted",
            Reason::RolloutAborted => "aborted the rollout of",
        }
    }
    fn warning(self) -> bool {
        matches!(
            self,
            Reason::ApplyFailed | Reason::NotDeployable | Reason::RolloutAborted
        )
    }
}

/// One Event to record about the object `name` (with its UID when it exists).
#[derive(Debug, Clone)]
pub(crate) struct Note<'a> {
    pub(crate) reason: Reason,
    /// What m2s did or tried: `Create`, `Update`, `Delete`, `Sync`.
    pub(crate) action: &'static str,
    pub(crate) name: &'a str,
    pub(crate) uid: Option<&'a str>,
    pub(crate) note: String,
}

/// Records Events in the namespace of the objects.
pub(crate) struct Recorder {
    api: Option<Api<Event>>,
    api_version: String,
    kind: &'static str,
    plural: String,
    namespace: String,
    instance: String,
    /// Set after the first refusal for lack of RBAC: no more Events are sent.
    denied: AtomicBool,
    /// Whether the one warning about a failed Event was logged.
    warned: AtomicBool,
    /// Events sent (recorded or not).
    sent: AtomicU64,
}

impl Recorder {
    /// A recorder for `kube`'s objects; `enabled: false` records nothing.
    pub(crate) fn new(kube: &Kube, instance: &str, enabled: bool) -> Recorder {
        let api = enabled.then(|| Api::namespaced(kube.client(), kube.namespace()));
        Recorder::with(api, kube.resource(), kube.namespace(), instance)
    }

    fn with(
        api: Option<Api<Event>>,
        resource: Resource,
        namespace: &str,
        instance: &str,
    ) -> Recorder {
        Recorder {
            api,
            api_version: resource.api_version(),
            kind: resource.kind,
            plural: resource.qualified_plural(),
            namespace: namespace.to_string(),
            instance: instance.to_string(),
            denied: AtomicBool::new(false),
            warned: AtomicBool::new(false),
            sent: AtomicU64::new(0),
        }
    }

    /// How many Events were sent.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The Event for `note`, as the API server takes it.
    pub(crate) fn event(&self, note: &Note, now: Timestamp) -> Event {
        let name = if note.reason.warning() {
            // A warning is named by what it says about which object: the next run that finds
            // the same problem gets 409 AlreadyExists instead of adding one more Event every
            // run (every minute, from a CronJob). It is recorded again once the API server
            // has expired it (--event-ttl, 1 h by default) or when its words change.
            let said = json!([note.reason.as_str(), note.uid, note.note]);
            format!("{}.{}", note.name, content_hash(&said))
        } else {
            // Each change is its own Event: the object's name and the time, as client-go does.
            format!(
                "{}.{:x}",
                note.name,
                now.as_nanosecond().unsigned_abs() as u64
            )
        };
        Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(note.action.to_string()),
            reason: Some(note.reason.as_str().to_string()),
            note: Some(truncate(&note.note, NOTE_LIMIT)),
            type_: Some(
                if note.reason.warning() {
                    "Warning"
                } else {
                    "Normal"
                }
                .to_string(),
            ),
            regarding: Some(ObjectReference {
                api_version: Some(self.api_version.clone()),
                kind: Some(self.kind.to_string()),
                name: Some(note.name.to_string()),
                namespace: Some(self.namespace.clone()),
                uid: note.uid.map(String::from),
                ..ObjectReference::default()
            }),
            reporting_controller: Some(CONTROLLER.to_string()),
            reporting_instance: Some(truncate(&format!("m2s-{}", self.instance), 128)),
            ..Event::default()
        }
    }

    /// Records one Event; failures are logged (the first as a warning), never returned.
    pub(crate) async fn record(&self, note: Note<'_>) {
        let Some(api) = &self.api else { return };
        if self.denied.load(Ordering::Relaxed) {
            return;
        }
        let event = self.event(&note, Timestamp::now());
        self.sent.fetch_add(1, Ordering::Relaxed);
        let Err(e) = api.create(&PostParams::default(), &event).await else {
            return;
        };
        if note.reason.warning() && matches!(&e, kube::Error::Api(s) if s.code == 409) {
            log::debug!(
                "{} Event about {} already recorded (the same warning, within the Event TTL)",
                note.reason.as_str(),
                note.name
            );
            return;
        }
        let forbidden = matches!(&e, kube::Error::Api(s) if s.code == 403);
        if forbidden && !self.denied.swap(true, Ordering::Relaxed) {
            log::warn!(
                "Events are not recorded: the identity m2s runs as needs RBAC verb \"create\" on events.events.k8s.io in namespace {:?} (or set M2S_EVENTS=false); the run goes on",
                self.namespace
            );
        } else if !forbidden && !self.warned.swap(true, Ordering::Relaxed) {
            log::warn!(
                "recording an Event about {} {}/{} failed: {e}; the run goes on",
                self.plural,
                self.namespace,
                note.name
            );
        } else {
            log::debug!("recording an Event about {} failed: {e}", note.name);
        }
    }
}

/// `s` cut to at most `limit` bytes on a character boundary.
fn truncate(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    let mut end = limit - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests;
