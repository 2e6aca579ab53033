//! What m2s reads of a listed object (and of one a write or a watch returned): the few fields it
//! needs, parsed straight from the server's JSON.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// A status as the server sent it, unparsed: a plain sync never parses one; the plan parses
/// the few it needs (objects in a progressive rollout).
pub(crate) type RawStatus = Option<Box<RawValue>>;

/// An object in the cluster that carries m2s's labels, as listed (or read by name): its
/// identity, labels, annotations, spec, and its status unparsed.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListedObject {
    pub(crate) name: String,
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) spec: Value,
    pub(crate) generation: Option<i64>,
    pub(crate) status: RawStatus,
}

impl ListedObject {
    pub(crate) fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// The status, parsed (`Null` when there is none, or it does not parse).
    pub(crate) fn status(&self) -> Value {
        self.status
            .as_ref()
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default()
    }
}

/// A listed object as parsed: the fields m2s reads, nothing else. `S` is its status: kept
/// unparsed ([`RawStatus`]) by a sync, parsed by `status` and write-back, skipped (`IgnoredAny`)
/// where nobody reads it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Listed<S = IgnoredAny> {
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
#[serde(rename_all = "camelCase")]
pub(super) struct ListedPageMeta {
    #[serde(default, rename = "continue")]
    pub(super) continue_: Option<String>,
    /// The collection's version: where a WATCH that misses nothing after this LIST starts.
    #[serde(default)]
    pub(super) resource_version: Option<String>,
}

/// What the status listing adds to an object: its generation, when it was created, its status.
#[derive(Debug, Clone, Default)]
pub(crate) struct ObservedStatus {
    pub(crate) generation: Option<i64>,
    pub(crate) created: Option<String>,
    pub(crate) status: Value,
}

/// An object as a write or a read returned it, reduced to what waiting and Events need.
#[derive(Debug, Clone, Default)]
pub(crate) struct Applied {
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) generation: Option<i64>,
    pub(crate) status: Value,
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

impl ListedObject {
    /// `o` with `status`.
    pub(super) fn with_status<S>(o: Listed<S>, status: RawStatus) -> ListedObject {
        let meta = o.metadata;
        ListedObject {
            name: meta.name.unwrap_or_default(),
            uid: meta.uid,
            resource_version: meta.resource_version,
            labels: meta.labels.unwrap_or_default(),
            annotations: meta.annotations.unwrap_or_default(),
            spec: o.spec,
            generation: meta.generation,
            status,
        }
    }
}

impl From<Listed<RawStatus>> for ListedObject {
    fn from(mut o: Listed<RawStatus>) -> ListedObject {
        let status = o.status.take();
        ListedObject::with_status(o, status)
    }
}
