//! One entry → the object m2s applies for it, through the configured target. Pure: no IO.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::Entry;
use crate::artifacts::{model_uri, ArtifactLocation};
use crate::config::DeployConfig;
use crate::hash::content_hash;
use crate::keys::{
    ANN_ARTIFACT_LOCATION, ANN_EXPERIMENT_ID, ANN_MLFLOW_URL, ANN_MODEL_CREATED, ANN_MODEL_NAME,
    ANN_MODEL_URI, ANN_MODEL_VERSION, ANN_OVERLAY_HASH, ANN_RUN_ID, ANN_SOURCE, ANN_SPEC_HASH,
    ANN_VERSION_TAGS, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY,
};
use crate::settings::Tag;
use crate::settings::{self, ServingSettings};
use crate::targets::{apply_settings, setting_values, Platform, Setting};

/// An object m2s wants.
#[derive(Debug, Clone)]
pub(crate) struct Desired {
    pub(crate) object: Value,
}

impl Desired {
    pub(crate) fn annotations(&self) -> &Map<String, Value> {
        self.object["metadata"]["annotations"]
            .as_object()
            .expect("rendered with annotations")
    }
}

/// Builds the object for `entry` whose files are at `location`, with the version's `m2s.*`
/// tags `version_tags`: the target's base spec, then the overlay, then the per-model settings,
/// then m2s's labels and annotations. An error is a problem of this entry only.
pub(crate) fn render(
    entry: &Entry,
    location: &ArtifactLocation,
    version_tags: &[Tag],
    cfg: &DeployConfig,
) -> Result<Desired, String> {
    let target = cfg.target;
    let uri =
        model_uri(location, cfg.storage_root.as_deref(), target).map_err(|e| format!("{e:#}"))?;
    let settings: ServingSettings = settings::from_tags(
        &entry.model.name,
        &entry.version.version,
        &entry.model.tags,
        version_tags,
    )?;
    let labels = json!({ LABEL_MANAGED_BY: MANAGED_BY, LABEL_INSTANCE: cfg.instance });
    let mut object = json!({
        "metadata": { "labels": labels, "annotations": {} },
        "spec": target.base_spec(&uri),
    });
    if let Some(protocol) = cfg.protocol {
        target.set_protocol(&mut object, protocol)?;
    }
    if let Some(overlay) = &cfg.overlay {
        overlay.apply(&mut object);
    }
    let platform = Platform {
        image: entry.model.image.as_deref(),
        registry_secret: cfg.registry_secret.as_deref(),
        model_secret: cfg.model_secret.as_deref(),
        service_account: cfg.service_account.as_deref(),
    };
    let values = setting_values(&settings, &platform);
    apply_settings(target, &mut object, &values, |s| origin(entry, s, cfg))?;
    target.finish(&mut object, &settings)?;
    // A bad m2s.canary is the entry's error whether or not a rollout is due.
    settings::canary_from_tags(
        &entry.model.name,
        &entry.version.version,
        &entry.model.tags,
        version_tags,
    )?;

    let annotations = m2s_annotations(entry, location, &uri, version_tags, cfg);
    let object = assemble(entry, object, annotations, cfg);
    target.admit(&entry.name, &object)?;
    Ok(Desired { object })
}

/// What m2s records on the object: where the version came from, so that later runs (and
/// people) can tell what it serves without asking MLflow.
fn m2s_annotations(
    entry: &Entry,
    location: &ArtifactLocation,
    uri: &str,
    version_tags: &[Tag],
    cfg: &DeployConfig,
) -> BTreeMap<&'static str, String> {
    let mut annotations = BTreeMap::new();
    annotations.insert(ANN_MODEL_NAME, entry.model.name.clone());
    annotations.insert(ANN_MODEL_VERSION, entry.version.version.to_string());
    annotations.insert(
        entry.selector.annotation(),
        entry.selector.value().to_string(),
    );
    annotations.insert(ANN_MODEL_URI, uri.to_string());
    annotations.insert(ANN_MLFLOW_URL, cfg.mlflow_url.clone());
    annotations.insert(ANN_ARTIFACT_LOCATION, location.uri.clone());
    if let Some(run_id) = location
        .run_id
        .as_deref()
        .or(entry.version.run_id.as_deref())
        .filter(|r| !r.is_empty())
    {
        annotations.insert(ANN_RUN_ID, run_id.to_string());
    }
    if let Some(exp) = &location.experiment_id {
        annotations.insert(ANN_EXPERIMENT_ID, exp.clone());
    }
    if let Some(created) = entry.model.created {
        annotations.insert(ANN_MODEL_CREATED, created.to_string());
    }
    if let Some(source) = &entry.version.source {
        annotations.insert(ANN_SOURCE, source.to_string());
    }
    if !version_tags.is_empty() {
        let tags: BTreeMap<&str, &str> = version_tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        annotations.insert(ANN_VERSION_TAGS, json!(tags).to_string());
    }
    if let Some(overlay) = &cfg.overlay {
        annotations.insert(ANN_OVERLAY_HASH, overlay.hash().to_string());
    }
    annotations
}

/// The whole object: kind and name, the overlay's annotations with m2s's over them, and the
/// hash of everything m2s sets.
fn assemble(
    entry: &Entry,
    mut object: Value,
    mut annotations: BTreeMap<&'static str, String>,
    cfg: &DeployConfig,
) -> Value {
    let metadata = object["metadata"].as_object_mut().expect("metadata");
    let labels = metadata.remove("labels").unwrap_or_default();
    let mut all_annotations = metadata
        .remove("annotations")
        .and_then(|a| a.as_object().cloned())
        .unwrap_or_default();
    // The hash of everything m2s sets tells a later run whether m2s itself would now write
    // something else, including fields it would drop (which a subset comparison cannot see).
    // Without an overlay it is exactly the hash of the objects the old releases wrote.
    let spec = object["spec"].take();
    let hashed_annotations = if all_annotations.is_empty() {
        json!(annotations)
    } else {
        let mut all = all_annotations.clone();
        all.extend(annotations.iter().map(|(k, v)| (k.to_string(), json!(v))));
        Value::Object(all)
    };
    let hash =
        content_hash(&json!({ "labels": labels, "annotations": hashed_annotations, "spec": spec }));
    annotations.insert(ANN_SPEC_HASH, hash);
    all_annotations.extend(
        annotations
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v))),
    );
    let resource = cfg.target.resource();
    json!({
        "apiVersion": resource.api_version(),
        "kind": resource.kind,
        "metadata": {
            "name": &*entry.name,
            "namespace": cfg.namespace,
            "labels": labels,
            "annotations": all_annotations,
        },
        "spec": spec,
    })
}

/// Where a setting came from, for messages.
fn origin(entry: &Entry, setting: Setting, cfg: &DeployConfig) -> String {
    let tag = |t: &str| format!("tag {t}");
    match setting {
        Setting::Image if entry.model.image_from_tag => format!("tag {:?}", cfg.image_tag),
        Setting::Image => "M2S_SELDON_DEF_IMAGE".into(),
        Setting::RegistrySecret => "M2S_REGISTRY_SECRET".into(),
        Setting::ModelSecret => "M2S_MODEL_SECRET".into(),
        Setting::ServiceAccount => "M2S_SERVICE_ACCOUNT".into(),
        Setting::Replicas => tag(settings::TAG_REPLICAS),
        Setting::MinReplicas => tag(settings::TAG_MIN_REPLICAS),
        Setting::MaxReplicas => tag(settings::TAG_MAX_REPLICAS),
        Setting::Cpu => tag(settings::TAG_CPU),
        Setting::Memory => tag(settings::TAG_MEMORY),
        Setting::Gpu => tag(settings::TAG_GPU),
    }
}
