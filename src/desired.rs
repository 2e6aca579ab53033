//! Registry snapshot → the SeldonDeployments that should exist. Pure: no IO.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{json, Map, Value};

use crate::artifacts::{model_uri, ArtifactLocation};
use crate::config::DeployConfig;
use crate::image::validate_image_reference;
use crate::mlflow::{ModelVersion, RegistrySnapshot};
use crate::naming::deployment_name;

pub const API_VERSION: &str = "machinelearning.seldon.io/v1";
pub const KIND: &str = "SeldonDeployment";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "m2s";
pub const LABEL_INSTANCE: &str = "m2s.io/instance";
pub const ANNOTATION_PREFIX: &str = "m2s.io/";
pub const ANN_MODEL_NAME: &str = "m2s.io/model-name";
pub const ANN_MODEL_VERSION: &str = "m2s.io/model-version";
pub const ANN_STAGE: &str = "m2s.io/stage";
pub const ANN_ALIAS: &str = "m2s.io/alias";
pub const ANN_RUN_ID: &str = "m2s.io/run-id";
pub const ANN_MODEL_URI: &str = "m2s.io/model-uri";
pub const ANN_MLFLOW_URL: &str = "m2s.io/mlflow-url";
pub const ANN_SOURCE: &str = "m2s.io/source";
pub const ANN_ARTIFACT_LOCATION: &str = "m2s.io/artifact-location";
pub const ANN_EXPERIMENT_ID: &str = "m2s.io/experiment-id";
pub const ANN_MODEL_CREATED: &str = "m2s.io/registered-model-created";
pub const ANN_SPEC_HASH: &str = "m2s.io/spec-hash";
/// Name of the predictor, the graph node and its container.
pub const GRAPH_NODE: &str = "model";

/// What a deployment follows: a stage of the registry or an alias.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Selector {
    Stage(String),
    Alias(String),
}

impl Selector {
    pub fn kind(&self) -> &'static str {
        match self {
            Selector::Stage(_) => "stage",
            Selector::Alias(_) => "alias",
        }
    }
    pub fn value(&self) -> &str {
        match self {
            Selector::Stage(v) | Selector::Alias(v) => v,
        }
    }
    fn annotation(&self) -> &'static str {
        match self {
            Selector::Stage(_) => ANN_STAGE,
            Selector::Alias(_) => ANN_ALIAS,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.value())
    }
}

/// One (registered model, stage or alias) that should be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub model: String,
    pub selector: Selector,
    /// The version; `source`/`run_id` are known for stage entries (from the search), not aliases.
    pub version: ModelVersion,
    pub model_created: Option<i64>,
    pub image: Option<String>,
}

/// A problem with one entry: reported, and the deployment of that name is left as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    pub name: String,
    pub model: String,
    pub selector: Selector,
    pub version: Option<String>,
    pub message: String,
}

impl EntryError {
    fn of(entry: &Entry, message: String) -> EntryError {
        EntryError {
            name: entry.name.clone(),
            model: entry.model.clone(),
            selector: entry.selector.clone(),
            version: Some(entry.version.version.clone()),
            message,
        }
    }
}

fn version_number(v: &str) -> u64 {
    v.parse().unwrap_or(0)
}

/// The entries the registry asks for, and the ones that cannot be served as asked.
pub fn entries(snapshot: &RegistrySnapshot, cfg: &DeployConfig) -> (Vec<Entry>, Vec<EntryError>) {
    let mut wanted: Vec<Entry> = Vec::new();
    let mut errors = Vec::new();
    for model in &snapshot.models {
        let mut model_entries = Vec::new();
        for stage in &cfg.stages {
            // latest_versions has the newest version per stage; keep the newest if it has several.
            let newest = model
                .latest_versions
                .iter()
                .filter(|v| {
                    v.current_stage
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case(stage))
                })
                .max_by_key(|v| version_number(&v.version));
            if let Some(v) = newest {
                model_entries.push((Selector::Stage(stage.clone()), v.clone()));
            }
        }
        let mut aliases: Vec<_> = model
            .aliases
            .iter()
            .filter(|a| cfg.aliases.includes(&a.alias))
            .collect();
        aliases.sort_by(|a, b| a.alias.cmp(&b.alias));
        aliases.dedup_by(|a, b| a.alias == b.alias);
        for alias in aliases {
            let known = model
                .latest_versions
                .iter()
                .find(|v| v.version == alias.version);
            let version = known.cloned().unwrap_or_else(|| ModelVersion {
                name: model.name.clone(),
                version: alias.version.clone(),
                ..ModelVersion::default()
            });
            model_entries.push((Selector::Alias(alias.alias.clone()), version));
        }
        let tag_image = model
            .tag(&cfg.image_tag)
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let image_error = tag_image.and_then(|image| {
            validate_image_reference(image)
                .err()
                .map(|e| format!("registered-model tag {:?}: {e:#}", cfg.image_tag))
        });
        let image = tag_image
            .map(String::from)
            .or_else(|| cfg.default_image.clone());
        for (selector, mut version) in model_entries {
            if version.name.is_empty() {
                version.name = model.name.clone();
            }
            let entry = Entry {
                name: deployment_name(&model.name, selector.value()),
                model: model.name.clone(),
                selector,
                version,
                model_created: model.creation_timestamp,
                image: image.clone(),
            };
            match &image_error {
                Some(e) => errors.push(EntryError::of(&entry, e.clone())),
                None => wanted.push(entry),
            }
        }
    }
    // Two entries must never share a name silently: all of them are errors.
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in wanted.iter().enumerate() {
        by_name.entry(e.name.as_str()).or_default().push(i);
    }
    let mut colliding = vec![false; wanted.len()];
    for indices in by_name.values().filter(|v| v.len() > 1) {
        for &i in indices {
            colliding[i] = true;
            let others: Vec<String> = indices
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| format!("model {:?} ({})", wanted[j].model, wanted[j].selector))
                .collect();
            errors.push(EntryError::of(
                &wanted[i],
                format!(
                    "deployment name {:?} is also wanted by {}; rename one of the models or aliases",
                    wanted[i].name,
                    others.join(", ")
                ),
            ));
        }
    }
    let mut entries: Vec<Entry> = wanted
        .into_iter()
        .zip(colliding)
        .filter(|(_, c)| !c)
        .map(|(e, _)| e)
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    errors.sort_by(|a, b| (&a.name, &a.model).cmp(&(&b.name, &b.model)));
    (entries, errors)
}

/// The artifact location recorded on an object m2s wrote for the same version, so an unchanged
/// version costs no MLflow look-ups.
pub fn recorded_location(
    entry: &Entry,
    annotations: &BTreeMap<String, String>,
) -> Option<ArtifactLocation> {
    let get = |k: &str| annotations.get(k).map(String::as_str);
    let same_version = get(ANN_MODEL_NAME) == Some(entry.model.as_str())
        && get(ANN_MODEL_VERSION) == Some(entry.version.version.as_str())
        && get(ANN_MODEL_CREATED) == entry.model_created.map(|c| c.to_string()).as_deref();
    // A version's source never changes; when the search told it, it must match too.
    let same_source = entry
        .version
        .source
        .as_deref()
        .is_none_or(|s| get(ANN_SOURCE) == Some(s));
    if !(same_version && same_source) {
        return None;
    }
    Some(ArtifactLocation {
        uri: get(ANN_ARTIFACT_LOCATION)?.to_string(),
        experiment_id: get(ANN_EXPERIMENT_ID).map(String::from),
        run_id: get(ANN_RUN_ID).map(String::from),
    })
}

/// A SeldonDeployment m2s wants, with what it was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub entry: Entry,
    pub model_uri: String,
    /// The whole object as applied (server-side apply body).
    pub object: Value,
}

impl Desired {
    pub fn annotations(&self) -> &Map<String, Value> {
        self.object["metadata"]["annotations"]
            .as_object()
            .expect("rendered with annotations")
    }
}

/// Builds the SeldonDeployment for `entry` whose files are at `location`.
pub fn render(
    entry: &Entry,
    location: &ArtifactLocation,
    cfg: &DeployConfig,
) -> Result<Desired, String> {
    let uri = model_uri(location, cfg.storage_root.as_deref()).map_err(|e| format!("{e:#}"))?;
    let mut graph = json!({
        "name": GRAPH_NODE,
        "implementation": "MLFLOW_SERVER",
        "modelUri": uri,
    });
    if let Some(secret) = &cfg.model_secret {
        graph["envSecretRefName"] = json!(secret);
    }
    let mut predictor = json!({
        "name": "default",
        "replicas": 1,
        "graph": graph,
    });
    if entry.image.is_some() || cfg.registry_secret.is_some() {
        let mut pod_spec = json!({ "containers": [{ "name": GRAPH_NODE }] });
        if let Some(image) = &entry.image {
            pod_spec["containers"][0]["image"] = json!(image);
        }
        if let Some(secret) = &cfg.registry_secret {
            pod_spec["imagePullSecrets"] = json!([{ "name": secret }]);
        }
        predictor["componentSpecs"] = json!([{ "spec": pod_spec }]);
    }
    let spec = json!({ "predictors": [predictor] });

    let mut annotations = BTreeMap::new();
    annotations.insert(ANN_MODEL_NAME, entry.model.clone());
    annotations.insert(ANN_MODEL_VERSION, entry.version.version.clone());
    annotations.insert(
        entry.selector.annotation(),
        entry.selector.value().to_string(),
    );
    annotations.insert(ANN_MODEL_URI, uri.clone());
    annotations.insert(ANN_MLFLOW_URL, cfg.mlflow_url.clone());
    annotations.insert(ANN_ARTIFACT_LOCATION, location.uri.clone());
    if let Some(run_id) = location
        .run_id
        .as_ref()
        .or(entry.version.run_id.as_ref())
        .filter(|r| !r.is_empty())
    {
        annotations.insert(ANN_RUN_ID, run_id.clone());
    }
    if let Some(exp) = &location.experiment_id {
        annotations.insert(ANN_EXPERIMENT_ID, exp.clone());
    }
    if let Some(created) = entry.model_created {
        annotations.insert(ANN_MODEL_CREATED, created.to_string());
    }
    if let Some(source) = &entry.version.source {
        annotations.insert(ANN_SOURCE, source.clone());
    }
    let labels = json!({ LABEL_MANAGED_BY: MANAGED_BY, LABEL_INSTANCE: cfg.instance });
    // The hash of everything m2s sets tells a later run whether m2s itself would now write
    // something else, including fields it would drop (which a subset comparison cannot see).
    let hash = content_hash(&json!({ "labels": labels, "annotations": annotations, "spec": spec }));
    annotations.insert(ANN_SPEC_HASH, hash);
    let object = json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": entry.name,
            "namespace": cfg.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    });
    Ok(Desired {
        entry: entry.clone(),
        model_uri: uri,
        object,
    })
}

/// FNV-1a (64 bit) of the canonical JSON (serde_json maps are sorted), as 16 hex characters.
pub fn content_hash(v: &Value) -> String {
    let text = v.to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The serving image set on a rendered or listed SeldonDeployment spec, if any.
pub fn spec_image(spec: &Value) -> Option<&str> {
    spec["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["image"].as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AliasSelection;
    use crate::mlflow::{AliasRef, RegisteredModel, Tag};

    pub(crate) fn cfg() -> DeployConfig {
        DeployConfig {
            storage_root: Some("s3://bucket/mlruns".into()),
            aliases: AliasSelection::Listed(vec!["champion".into()]),
            ..DeployConfig::new("models", "http://mlflow:5000")
        }
    }

    fn version(name: &str, v: &str, stage: &str) -> ModelVersion {
        ModelVersion {
            name: name.into(),
            version: v.into(),
            current_stage: Some(stage.into()),
            source: Some(format!("runs:/run{v}/model")),
            run_id: Some(format!("run{v}")),
            status: Some("READY".into()),
        }
    }

    fn model(name: &str, versions: Vec<ModelVersion>) -> RegisteredModel {
        RegisteredModel {
            name: name.into(),
            creation_timestamp: Some(1000),
            latest_versions: versions,
            ..RegisteredModel::default()
        }
    }

    fn location(v: &str) -> ArtifactLocation {
        ArtifactLocation {
            uri: format!("/srv/mlruns/1/run{v}/artifacts/model"),
            experiment_id: Some("1".into()),
            run_id: Some(format!("run{v}")),
        }
    }

    #[test]
    fn one_entry_per_deployed_stage_and_alias() {
        let mut m = model(
            "iris",
            vec![
                version("iris", "1", "Archived"),
                version("iris", "2", "Staging"),
                version("iris", "3", "Production"),
            ],
        );
        m.aliases = vec![
            AliasRef {
                alias: "champion".into(),
                version: "2".into(),
            },
            AliasRef {
                alias: "other".into(),
                version: "1".into(),
            },
        ];
        let snap = RegistrySnapshot { models: vec![m] };
        let (entries, errors) = entries(&snap, &cfg());
        assert!(errors.is_empty(), "{errors:?}");
        let got: Vec<_> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.version.version.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("iris-champion", "2"),
                ("iris-production", "3"),
                ("iris-staging", "2")
            ]
        );
        // The alias reuses what the search told about version 2.
        assert_eq!(
            entries[0].version.source.as_deref(),
            Some("runs:/run2/model")
        );
    }

    #[test]
    fn alias_to_a_version_not_in_latest_versions_needs_a_lookup() {
        let mut m = model("iris", vec![]);
        m.aliases = vec![AliasRef {
            alias: "champion".into(),
            version: "7".into(),
        }];
        let (entries, _) = entries(&RegistrySnapshot { models: vec![m] }, &cfg());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].version.version, "7");
        assert_eq!(entries[0].version.name, "iris");
        assert!(entries[0].version.source.is_none());
    }

    #[test]
    fn all_aliases_with_star() {
        let mut c = cfg();
        c.aliases = AliasSelection::All;
        c.stages = vec![];
        let mut m = model("iris", vec![]);
        m.aliases = vec![
            AliasRef {
                alias: "b".into(),
                version: "1".into(),
            },
            AliasRef {
                alias: "a".into(),
                version: "1".into(),
            },
        ];
        let (entries, _) = entries(&RegistrySnapshot { models: vec![m] }, &c);
        assert_eq!(
            entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["iris-a", "iris-b"]
        );
    }

    #[test]
    fn colliding_names_are_errors_for_every_side() {
        let snap = RegistrySnapshot {
            models: vec![
                model("iris", vec![version("iris", "1", "Production")]),
                model("iris-production", vec![]),
                model("fraud-model", vec![version("fraud-model", "1", "Staging")]),
                model("fraud", vec![]),
            ],
        };
        let (found, errors) = entries(&snap, &cfg());
        assert_eq!(found.len(), 2);
        assert!(errors.is_empty());
        // Same base name for two models: both are errors, neither is deployed.
        let mut a = model("Iris", vec![version("Iris", "1", "Production")]);
        a.creation_timestamp = Some(1);
        let clash = RegistrySnapshot {
            models: vec![
                model("team-x", vec![version("team-x", "1", "Production")]),
                {
                    let mut m = model("team", vec![]);
                    m.aliases = vec![AliasRef {
                        alias: "x-production".into(),
                        version: "1".into(),
                    }];
                    m
                },
            ],
        };
        let mut c = cfg();
        c.aliases = AliasSelection::All;
        let (found, errors) = entries(&clash, &c);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(errors.len(), 2);
        assert!(errors
            .iter()
            .all(|e| e.name == "team-x-production" && e.message.contains("also wanted by")));
        assert!(errors[0].message.contains("team") && errors[1].message.contains("team"));
    }

    #[test]
    fn image_tag_overrides_default_and_bad_tag_is_an_error_for_that_model() {
        let mut c = cfg();
        c.default_image = Some("seldonio/mlflowserver:1.18.0".into());
        let mut tagged = model("a", vec![version("a", "1", "Production")]);
        tagged.tags = vec![Tag {
            key: "deployment-image".into(),
            value: "ghcr.io/t/a:2".into(),
        }];
        let mut bad = model("b", vec![version("b", "1", "Production")]);
        bad.tags = vec![Tag {
            key: "deployment-image".into(),
            value: "Bad Image".into(),
        }];
        let plain = model("c", vec![version("c", "1", "Production")]);
        let (entries, errors) = entries(
            &RegistrySnapshot {
                models: vec![tagged, bad, plain],
            },
            &c,
        );
        assert_eq!(entries[0].image.as_deref(), Some("ghcr.io/t/a:2"));
        assert_eq!(
            entries[1].image.as_deref(),
            Some("seldonio/mlflowserver:1.18.0")
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].name, "b-production");
        assert!(
            errors[0].message.contains("deployment-image"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn renders_a_seldon_deployment() {
        let (entries, _) = entries(
            &RegistrySnapshot {
                models: vec![model("iris", vec![version("iris", "4", "Production")])],
            },
            &cfg(),
        );
        let d = render(&entries[0], &location("4"), &cfg()).unwrap();
        let o = &d.object;
        assert_eq!(o["apiVersion"], API_VERSION);
        assert_eq!(o["metadata"]["name"], "iris-production");
        assert_eq!(o["metadata"]["namespace"], "models");
        assert_eq!(o["metadata"]["labels"][LABEL_MANAGED_BY], "m2s");
        assert_eq!(o["metadata"]["labels"][LABEL_INSTANCE], "m2s");
        let a = &o["metadata"]["annotations"];
        assert_eq!(a[ANN_MODEL_NAME], "iris");
        assert_eq!(a[ANN_MODEL_VERSION], "4");
        assert_eq!(a[ANN_STAGE], "Production");
        assert_eq!(a[ANN_RUN_ID], "run4");
        assert_eq!(
            a[ANN_MODEL_URI],
            "s3://bucket/mlruns/1/run4/artifacts/model"
        );
        assert_eq!(a[ANN_MLFLOW_URL], "http://mlflow:5000");
        assert!(a.get(ANN_ALIAS).is_none());
        let p = &o["spec"]["predictors"][0];
        assert_eq!(p["name"], "default");
        assert_eq!(p["replicas"], 1);
        assert_eq!(p["graph"]["implementation"], "MLFLOW_SERVER");
        assert_eq!(
            p["graph"]["modelUri"],
            "s3://bucket/mlruns/1/run4/artifacts/model"
        );
        assert!(p.get("componentSpecs").is_none());
        assert!(p["graph"].get("envSecretRefName").is_none());
    }

    #[test]
    fn renders_image_and_secrets() {
        let mut c = cfg();
        c.registry_secret = Some("regcred".into());
        c.model_secret = Some("s3-creds".into());
        let mut e = entries(
            &RegistrySnapshot {
                models: vec![model("iris", vec![version("iris", "4", "Production")])],
            },
            &c,
        )
        .0;
        e[0].image = Some("x/y:1".into());
        let d = render(&e[0], &location("4"), &c).unwrap();
        let p = &d.object["spec"]["predictors"][0];
        assert_eq!(p["graph"]["envSecretRefName"], "s3-creds");
        assert_eq!(
            p["componentSpecs"][0]["spec"]["containers"][0]["name"],
            GRAPH_NODE
        );
        assert_eq!(spec_image(&d.object["spec"]), Some("x/y:1"));
        assert_eq!(
            p["componentSpecs"][0]["spec"]["imagePullSecrets"][0]["name"],
            "regcred"
        );
    }

    #[test]
    fn unfetchable_location_is_an_entry_error() {
        let mut c = cfg();
        c.storage_root = None;
        let e = entries(
            &RegistrySnapshot {
                models: vec![model("iris", vec![version("iris", "4", "Production")])],
            },
            &c,
        )
        .0;
        let err = render(&e[0], &location("4"), &c).unwrap_err();
        assert!(err.contains("/srv/mlruns/1/run4/artifacts/model"), "{err}");
    }

    #[test]
    fn hash_changes_with_content_and_is_stable() {
        let e = entries(
            &RegistrySnapshot {
                models: vec![model("iris", vec![version("iris", "4", "Production")])],
            },
            &cfg(),
        )
        .0;
        let a = render(&e[0], &location("4"), &cfg()).unwrap();
        let b = render(&e[0], &location("4"), &cfg()).unwrap();
        assert_eq!(
            a.annotations()[ANN_SPEC_HASH],
            b.annotations()[ANN_SPEC_HASH]
        );
        let mut c = cfg();
        c.registry_secret = Some("regcred".into());
        let d = render(&e[0], &location("4"), &c).unwrap();
        assert_ne!(
            a.annotations()[ANN_SPEC_HASH],
            d.annotations()[ANN_SPEC_HASH]
        );
    }

    #[test]
    fn recorded_location_only_for_the_same_version() {
        let e = entries(
            &RegistrySnapshot {
                models: vec![model("iris", vec![version("iris", "4", "Production")])],
            },
            &cfg(),
        )
        .0;
        let d = render(&e[0], &location("4"), &cfg()).unwrap();
        let ann: BTreeMap<String, String> = d
            .annotations()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        assert_eq!(recorded_location(&e[0], &ann), Some(location("4")));
        let mut moved = e[0].clone();
        moved.version.version = "5".into();
        assert_eq!(recorded_location(&moved, &ann), None);
        let mut recreated = e[0].clone();
        recreated.model_created = Some(2000);
        assert_eq!(recorded_location(&recreated, &ann), None);
        let mut alias = e[0].clone();
        alias.version.source = None;
        assert_eq!(recorded_location(&alias, &ann), Some(location("4")));
    }
}
