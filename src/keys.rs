//! The keys m2s writes on the objects it manages (labels, annotations) and on MLflow's model
//! versions (write-back tags), in one place at the bottom, so that every layer reads the same.

use std::collections::BTreeMap;

/// Label and value that mark an object as m2s's (with [`LABEL_INSTANCE`]).
pub(crate) const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub(crate) const MANAGED_BY: &str = "m2s";
/// Which m2s instance owns the object (`M2S_INSTANCE`), so that several share a namespace.
pub(crate) const LABEL_INSTANCE: &str = "m2s.io/instance";

/// Every annotation m2s owns starts with this; an overlay may not set one.
pub(crate) const ANNOTATION_PREFIX: &str = "m2s.io/";
pub(crate) const ANN_MODEL_NAME: &str = "m2s.io/model-name";
pub(crate) const ANN_MODEL_VERSION: &str = "m2s.io/model-version";
pub(crate) const ANN_STAGE: &str = "m2s.io/stage";
pub(crate) const ANN_ALIAS: &str = "m2s.io/alias";
pub(crate) const ANN_RUN_ID: &str = "m2s.io/run-id";
pub(crate) const ANN_MODEL_URI: &str = "m2s.io/model-uri";
pub(crate) const ANN_MLFLOW_URL: &str = "m2s.io/mlflow-url";
pub(crate) const ANN_SOURCE: &str = "m2s.io/source";
pub(crate) const ANN_ARTIFACT_LOCATION: &str = "m2s.io/artifact-location";
pub(crate) const ANN_EXPERIMENT_ID: &str = "m2s.io/experiment-id";
pub(crate) const ANN_MODEL_CREATED: &str = "m2s.io/registered-model-created";
pub(crate) const ANN_SPEC_HASH: &str = "m2s.io/spec-hash";
/// The version-level `m2s.*` tags the object was rendered with (only when there are some), so
/// that a run which does not read that version again renders the same object.
pub(crate) const ANN_VERSION_TAGS: &str = "m2s.io/version-tags";
/// Hash of the overlay the object was rendered with (only when one is configured).
pub(crate) const ANN_OVERLAY_HASH: &str = "m2s.io/overlay-hash";

/// A progressive rollout in progress (`canary`) or aborted (`aborted`) on the object; absent
/// otherwise. The object's `m2s.io/model-version` stays the stable version meanwhile.
pub(crate) const ANN_ROLLOUT: &str = "m2s.io/rollout";
/// The version being rolled out (or the one aborted).
pub(crate) const ANN_CANARY_VERSION: &str = "m2s.io/canary-version";
/// The rollout's steps, as the tag gave them (`10,50`).
pub(crate) const ANN_CANARY_STEPS: &str = "m2s.io/canary-steps";
/// The step being served, from 1.
pub(crate) const ANN_CANARY_STEP: &str = "m2s.io/canary-step";
/// When the step was written (RFC 3339).
pub(crate) const ANN_CANARY_SINCE: &str = "m2s.io/canary-since";
/// Where the files of the version being rolled out are (JSON of the `m2s.io/artifact-location`,
/// `experiment-id`, `run-id`, `source` and `version-tags` its own object would carry), so that
/// every run renders the step without asking MLflow.
pub(crate) const ANN_CANARY_FILES: &str = "m2s.io/canary-files";
/// Why a rollout was aborted.
pub(crate) const ANN_CANARY_ABORTED: &str = "m2s.io/canary-aborted";
/// On an object a rollout adds beside the one it rolls out (Seldon Core 2's canary Model): the
/// name of that object.
pub(crate) const ANN_CANARY_OF: &str = "m2s.io/canary-of";

/// On an object while a progressive rollout is in progress on it (value `canary`), so that the
/// receiver's leader finds the rollouts with one LIST, whichever run started them.
pub(crate) const LABEL_ROLLOUT: &str = "m2s.io/rollout";

/// Label selector of the objects one m2s instance owns.
pub(crate) fn owned_selector(instance: &str) -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_INSTANCE}={instance}")
}

/// Whether `labels` carry [`owned_selector`] for `instance`.
pub(crate) fn is_owned(labels: Option<&BTreeMap<String, String>>, instance: &str) -> bool {
    labels.is_some_and(|l| {
        l.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
            && l.get(LABEL_INSTANCE).map(String::as_str) == Some(instance)
    })
}

/// The fields write-back sets per object: `m2s.<namespace>.<name>.<field>`.
pub(crate) const WRITE_BACK_FIELDS: [&str; 2] = ["state", "url"];

/// Every write-back tag of objects in `namespace` starts with this.
pub(crate) fn write_back_prefix(namespace: &str) -> String {
    format!("m2s.{namespace}.")
}

/// The write-back tag of `field` of the object `name` in `namespace`.
pub(crate) fn write_back_key(namespace: &str, name: &str, field: &str) -> String {
    format!("m2s.{namespace}.{name}.{field}")
}

/// The object named by a write-back tag of `namespace` (one with a field m2s writes).
pub(crate) fn write_back_object<'k>(namespace: &str, key: &'k str) -> Option<&'k str> {
    let rest = key.strip_prefix(&write_back_prefix(namespace))?;
    let (name, field) = rest.rsplit_once('.')?;
    (WRITE_BACK_FIELDS.contains(&field) && !name.contains('.')).then_some(name)
}
