//! What m2s reads of a listed object (and of one a write or a watch returned): the few fields it
//! needs, parsed straight from the server's JSON.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use crate::plan::ActualObject;

/// A listed object: the fields m2s reads, nothing else. `S` is its status, skipped unread
/// (`IgnoredAny`) unless the caller asks for readiness: a plain sync never parses a status.
#[derive(Debug, Clone, Deserialize)]
pub struct Listed<S = IgnoredAny> {
    #[serde(default)]
    pub(super) metadata: ListedMeta,
    #[serde(default)]
    pub(super) spec: Value,
    #[serde(default)]
    pub(super) status: S,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListedMeta {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) uid: Option<String>,
    #[serde(default)]
    pub(super) resource_version: Option<String>,
    #[serde(default)]
    pub(super) generation: Option<i64>,
    #[serde(default)]
    pub(super) creation_timestamp: Option<String>,
    #[serde(default)]
    pub(super) labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(super) annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(bound = "S: Deserialize<'de> + Default")]
pub(super) struct ListedPage<S> {
    #[serde(default)]
    pub(super) metadata: ListedPageMeta,
    #[serde(default = "Vec::new")]
    pub(super) items: Vec<Listed<S>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListedPageMeta {
    #[serde(default, rename = "continue")]
    pub(super) continue_: Option<String>,
}

/// What the status listing adds to an object: its generation, when it was created, its status.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub generation: Option<i64>,
    pub created: Option<String>,
    pub status: Value,
}

/// An object as a write or a read returned it, reduced to what waiting and Events need.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
    pub status: Value,
}

impl Applied {
    pub(super) fn of(o: DynamicObject) -> Applied {
        let mut data = o.data;
        Applied {
            uid: o.metadata.uid,
            resource_version: o.metadata.resource_version,
            generation: o.metadata.generation,
            status: data.get_mut("status").map(Value::take).unwrap_or_default(),
        }
    }
}

impl<S> From<Listed<S>> for ActualObject {
    fn from(o: Listed<S>) -> ActualObject {
        let meta = o.metadata;
        ActualObject {
            name: meta.name.unwrap_or_default(),
            uid: meta.uid,
            resource_version: meta.resource_version,
            labels: meta.labels.unwrap_or_default(),
            annotations: meta.annotations.unwrap_or_default(),
            spec: o.spec,
        }
    }
}
