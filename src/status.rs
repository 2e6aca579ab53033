//! What `m2s status` shows, as data: every object this instance manages, whether it serves
//! (its readiness) and whether it matches the registry now. The engine fills it in; the
//! presentation layer prints it.

use crate::desired::{Entry, EntryError, Selector};
use crate::k8s::ListedObject;
use crate::plan::{ObjectRef, Verdict};
use crate::rollout::RolloutState;
use crate::targets::Readiness;

/// One managed object: what it serves, how it is doing, how it compares with the registry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObjectState {
    pub(crate) name: String,
    pub(crate) model: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) selector: Option<Selector>,
    /// `metadata.creationTimestamp`.
    pub(crate) created: Option<String>,
    pub(crate) readiness: Readiness,
    pub(crate) verdict: Verdict,
    /// A progressive rollout's record on it.
    pub(crate) rollout: RolloutState,
}

impl ObjectState {
    pub(crate) fn of(
        a: &ListedObject,
        created: Option<String>,
        readiness: Readiness,
        verdict: Verdict,
    ) -> ObjectState {
        let r = ObjectRef::of(a);
        ObjectState {
            name: r.name,
            model: r.model,
            version: r.version,
            selector: r.selector,
            created,
            readiness,
            verdict,
            rollout: RolloutState::of(&a.annotations),
        }
    }
}

/// What `status` shows.
#[derive(Debug, Default)]
pub(crate) struct StatusReport {
    /// Sorted by name.
    pub(crate) objects: Vec<ObjectState>,
    /// Entries without an object yet (the next sync creates them).
    pub(crate) not_deployed: Vec<EntryRef>,
    /// Entries that cannot be deployed.
    pub(crate) not_deployable: Vec<EntryError>,
}

/// An entry without an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EntryRef {
    pub(crate) name: String,
    pub(crate) model: String,
    pub(crate) version: String,
    pub(crate) selector: Selector,
}

impl EntryRef {
    pub(crate) fn of(e: &Entry) -> EntryRef {
        EntryRef {
            name: e.name.to_string(),
            model: e.model.name.clone(),
            version: e.version.version.to_string(),
            selector: e.selector.clone(),
        }
    }
}
