//! How a stack splits traffic between the stable version of an object and a canary, for
//! progressive rollout: what each step writes, what else a step needs (Seldon Core 2's second
//! Model and its Experiment), and how the canary's health reads from a status.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Readiness, Resource};

/// An object a rollout step needs beside the main one (written with m2s's labels, deleted at
/// promotion or abort).
#[derive(Debug, Clone, PartialEq)]
pub struct Companion {
    /// Its resource (the target's own, or another of the stack's).
    pub resource: Resource,
    /// Its name.
    pub name: String,
    /// The object as m2s applies it.
    pub object: Value,
}

/// The canary part's health, as the stack's status tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryStatus {
    /// Where it stands.
    pub readiness: Readiness,
    /// When it became Available (a condition's `lastTransitionTime`), when the stack says.
    pub available_since: Option<String>,
}

/// A stack's traffic split for progressive rollout.
pub trait TrafficSplit: Sync {
    /// Why this object cannot be rolled out in steps (its annotations and status), if it cannot.
    fn refuse(&self, _annotations: &BTreeMap<String, String>, _status: &Value) -> Option<String> {
        None
    }
    /// The main object of a step at `percent` %, from the stable object and the canary's, each
    /// as m2s renders it for its version.
    fn split(&self, stable: &Value, canary: &Value, percent: u8) -> Value;
    /// The objects a step needs besides the main one named `name`.
    fn companions(
        &self,
        _name: &str,
        _stable: &Value,
        _canary: &Value,
        _percent: u8,
    ) -> Vec<Companion> {
        Vec::new()
    }
    /// Every companion a rollout of `name` can have, as (resource, name): what promotion and
    /// abort delete.
    fn companion_names(&self, _name: &str) -> Vec<(Resource, String)> {
        Vec::new()
    }
    /// The object of the target's kind whose status tells the canary's health: `None` for the
    /// main object itself.
    fn canary_object(&self, _name: &str) -> Option<String> {
        None
    }
    /// The canary's health at `percent` %, from the status at `generation` of the object
    /// `name` that tells it.
    fn canary_status(
        &self,
        name: &str,
        status: &Value,
        generation: Option<i64>,
        percent: u8,
    ) -> CanaryStatus;
    /// Where the stack documents it, for messages and docs.
    fn source(&self) -> &'static str;
}

/// The `lastTransitionTime` of condition `type_` when it is `True`.
pub(crate) fn true_since(status: &Value, type_: &str) -> Option<String> {
    super::condition(status, type_)
        .filter(|c| c["status"] == "True")
        .and_then(|c| super::text(&c["lastTransitionTime"]))
}
