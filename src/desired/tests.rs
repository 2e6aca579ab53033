use super::*;
use crate::config::overlay::Overlay;
use crate::config::AliasSelection;
use crate::keys::*;
use crate::mlflow::{AliasRef, RegisteredModel};
use serde_json::{json, Value};

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
        tags: vec![],
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

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn location(v: &str) -> ArtifactLocation {
    ArtifactLocation {
        uri: format!("/srv/mlruns/1/run{v}/artifacts/model"),
        experiment_id: Some("1".into()),
        run_id: Some(format!("run{v}")),
    }
}

fn iris(cfg: &DeployConfig) -> Entry {
    entries(
        &RegistrySnapshot {
            models: vec![model("iris", vec![version("iris", "4", "Production")])],
        },
        cfg,
    )
    .0
    .remove(0)
}

fn render_with(
    cfg: &DeployConfig,
    model_tags: &[Tag],
    version_tags: &[Tag],
) -> Result<Value, String> {
    let mut m = model("iris", vec![version("iris", "4", "Production")]);
    m.tags = model_tags.to_vec();
    m.latest_versions[0].tags = version_tags.to_vec();
    let (e, errors) = entries(&RegistrySnapshot { models: vec![m] }, cfg);
    assert!(errors.is_empty(), "{errors:?}");
    render(&e[0], &location("4"), &e[0].version.tags, cfg).map(|d| d.object)
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
    let (entries, errors) = entries(&RegistrySnapshot { models: vec![m] }, &cfg());
    assert!(errors.is_empty(), "{errors:?}");
    let got: Vec<_> = entries
        .iter()
        .map(|e| (&*e.name, &*e.version.version))
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
    // The model's data is shared, not copied, between its entries.
    assert!(Arc::ptr_eq(&entries[0].model, &entries[1].model));
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
    assert_eq!(&*entries[0].version.version, "7");
    assert_eq!(entries[0].model.name, "iris");
    assert!(!entries[0].version_known());
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
        entries.iter().map(|e| &*e.name).collect::<Vec<_>>(),
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
    tagged.tags = vec![tag("deployment-image", "ghcr.io/t/a:2")];
    let mut bad = model("b", vec![version("b", "1", "Production")]);
    bad.tags = vec![tag("deployment-image", "Bad Image")];
    let mut platform = model("p", vec![version("p", "1", "Production")]);
    platform.tags = vec![tag("deployment-image", "image://neuro/org/server:1")];
    let plain = model("c", vec![version("c", "1", "Production")]);
    let (entries, errors) = entries(
        &RegistrySnapshot {
            models: vec![tagged, bad, plain, platform],
        },
        &c,
    );
    assert_eq!(entries[0].model.image.as_deref(), Some("ghcr.io/t/a:2"));
    assert_eq!(
        entries[1].model.image.as_deref(),
        Some("seldonio/mlflowserver:1.18.0")
    );
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].name, "b-production");
    assert!(
        errors[0].message.contains("deployment-image"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[1].message.contains("Neu.ro platform image"),
        "{}",
        errors[1].message
    );
}

/// The objects of the old service and of m2s before targets existed, byte for byte (spec-hash
/// included): written by the release before this module learnt about targets.
#[test]
fn seldon_v1_objects_are_byte_for_byte_the_earlier_ones() {
    let golden_plain = r#"{"apiVersion":"machinelearning.seldon.io/v1","kind":"SeldonDeployment","metadata":{"annotations":{"m2s.io/artifact-location":"/srv/mlruns/1/run4/artifacts/model","m2s.io/experiment-id":"1","m2s.io/mlflow-url":"http://mlflow:5000","m2s.io/model-name":"iris","m2s.io/model-uri":"s3://bucket/mlruns/1/run4/artifacts/model","m2s.io/model-version":"4","m2s.io/registered-model-created":"1000","m2s.io/run-id":"run4","m2s.io/source":"runs:/run4/model","m2s.io/spec-hash":"404798f95909062e","m2s.io/stage":"Production"},"labels":{"app.kubernetes.io/managed-by":"m2s","m2s.io/instance":"m2s"},"name":"iris-production","namespace":"models"},"spec":{"predictors":[{"graph":{"implementation":"MLFLOW_SERVER","modelUri":"s3://bucket/mlruns/1/run4/artifacts/model","name":"model"},"name":"default","replicas":1}]}}"#;
    let golden_full = r#"{"apiVersion":"machinelearning.seldon.io/v1","kind":"SeldonDeployment","metadata":{"annotations":{"m2s.io/artifact-location":"/srv/mlruns/1/run4/artifacts/model","m2s.io/experiment-id":"1","m2s.io/mlflow-url":"http://mlflow:5000","m2s.io/model-name":"iris","m2s.io/model-uri":"s3://bucket/mlruns/1/run4/artifacts/model","m2s.io/model-version":"4","m2s.io/registered-model-created":"1000","m2s.io/run-id":"run4","m2s.io/source":"runs:/run4/model","m2s.io/spec-hash":"9cd8cd5a72e9947f","m2s.io/stage":"Production"},"labels":{"app.kubernetes.io/managed-by":"m2s","m2s.io/instance":"m2s"},"name":"iris-production","namespace":"models"},"spec":{"predictors":[{"componentSpecs":[{"spec":{"containers":[{"image":"x/y:1","name":"model"}],"imagePullSecrets":[{"name":"regcred"}]}}],"graph":{"envSecretRefName":"s3-creds","implementation":"MLFLOW_SERVER","modelUri":"s3://bucket/mlruns/1/run4/artifacts/model","name":"model"},"name":"default","replicas":1}]}}"#;
    assert_eq!(
        render_with(&cfg(), &[], &[]).unwrap().to_string(),
        golden_plain
    );
    let mut c = cfg();
    c.registry_secret = Some("regcred".into());
    c.model_secret = Some("s3-creds".into());
    c.default_image = Some("x/y:1".into());
    assert_eq!(render_with(&c, &[], &[]).unwrap().to_string(), golden_full);
    // M2S_SELDON_PROTOCOL=seldon, the default, writes nothing more.
    c.protocol = Some(crate::targets::Protocol::Seldon);
    assert_eq!(render_with(&c, &[], &[]).unwrap().to_string(), golden_full);
}

#[test]
fn seldon_v1_protocol_v2_is_written_and_hashed() {
    let mut c = cfg();
    let seldon = render_with(&c, &[], &[]).unwrap();
    c.protocol = Some(crate::targets::Protocol::V2);
    let v2 = render_with(&c, &[], &[]).unwrap();
    assert_eq!(v2["spec"]["protocol"], "v2");
    assert_eq!(v2["spec"]["predictors"], seldon["spec"]["predictors"]);
    assert_ne!(
        v2["metadata"]["annotations"][ANN_SPEC_HASH],
        seldon["metadata"]["annotations"][ANN_SPEC_HASH],
        "a later run sees the object differ and updates it"
    );
}

#[test]
fn renders_an_inference_service() {
    let mut c = cfg().with_target("kserve");
    c.service_account = Some("s3-reader".into());
    c.registry_secret = Some("regcred".into());
    let o = render_with(&c, &[], &[]).unwrap();
    assert_eq!(o["apiVersion"], "serving.kserve.io/v1beta1");
    assert_eq!(o["kind"], "InferenceService");
    let p = &o["spec"]["predictor"];
    assert_eq!(p["model"]["modelFormat"], json!({"name": "mlflow"}));
    assert_eq!(p["model"]["protocolVersion"], "v2");
    assert_eq!(
        p["model"]["storageUri"],
        "s3://bucket/mlruns/1/run4/artifacts/model"
    );
    assert_eq!(p["serviceAccountName"], "s3-reader");
    assert_eq!(p["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert!(p.get("minReplicas").is_none() && p["model"].get("resources").is_none());
}

#[test]
fn renders_a_seldon_core_2_model() {
    let mut c = cfg().with_target("seldon-v2");
    c.model_secret = Some("s3-creds".into());
    let o = render_with(&c, &[], &[]).unwrap();
    assert_eq!(o["apiVersion"], "mlops.seldon.io/v1alpha1");
    assert_eq!(o["kind"], "Model");
    assert_eq!(
        o["spec"],
        json!({
            "storageUri": "s3://bucket/mlruns/1/run4/artifacts/model",
            "requirements": ["mlflow"],
            "secretName": "s3-creds",
        })
    );
}

#[test]
fn settings_land_where_each_target_expects_them() {
    let tags = [
        tag("m2s.replicas", "3"),
        tag("m2s.cpu", "0.5"),
        tag("m2s.memory", "1024Mi"),
        tag("m2s.gpu", "1"),
    ];
    let v1 = render_with(&cfg(), &tags, &[]).unwrap();
    let p = &v1["spec"]["predictors"][0];
    assert_eq!(p["replicas"], 3);
    let container = &p["componentSpecs"][0]["spec"]["containers"][0];
    assert_eq!(container["name"], "model");
    assert_eq!(
        container["resources"],
        json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi", "nvidia.com/gpu": "1"}})
    );
    let ks = render_with(&cfg().with_target("kserve"), &tags, &[]).unwrap();
    let p = &ks["spec"]["predictor"];
    assert_eq!(
        (p["minReplicas"].clone(), p["maxReplicas"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(p["model"]["resources"]["requests"]["cpu"], "500m");
    assert_eq!(p["model"]["resources"]["limits"]["nvidia.com/gpu"], "1");
    // Seldon Core 2: memory and replicas only; CPU and GPUs are the Server's.
    let err = render_with(&cfg().with_target("seldon-v2"), &tags, &[]).unwrap_err();
    assert!(
        err.contains("tag m2s.cpu has no counterpart on target seldon-v2 (Model): CPU is the Seldon Server's"),
        "{err}"
    );
    let v2 = render_with(
        &cfg().with_target("seldon-v2"),
        &[tag("m2s.replicas", "2"), tag("m2s.memory", "2Gi")],
        &[],
    )
    .unwrap();
    assert_eq!(v2["spec"]["replicas"], 2);
    assert_eq!(v2["spec"]["memory"], "2Gi");
}

#[test]
fn autoscaling_settings_per_target() {
    let tags = [tag("m2s.min-replicas", "1"), tag("m2s.max-replicas", "4")];
    let v1 = render_with(&cfg(), &tags, &[]).unwrap();
    assert_eq!(
        v1["spec"]["predictors"][0]["componentSpecs"][0]["hpaSpec"],
        json!({"minReplicas": 1, "maxReplicas": 4})
    );
    let ks = render_with(&cfg().with_target("kserve"), &tags, &[]).unwrap();
    assert_eq!(ks["spec"]["predictor"]["maxReplicas"], 4);
    let v2 = render_with(&cfg().with_target("seldon-v2"), &tags, &[]).unwrap();
    assert_eq!(
        (
            v2["spec"]["minReplicas"].clone(),
            v2["spec"]["maxReplicas"].clone()
        ),
        (json!(1), json!(4))
    );
    // Seldon v1's hpaSpec needs a maximum; KServe cannot take a fixed count and bounds at once.
    let err = render_with(&cfg(), &[tag("m2s.min-replicas", "1")], &[]).unwrap_err();
    assert!(err.contains("needs m2s.max-replicas"), "{err}");
    let err = render_with(
        &cfg().with_target("kserve"),
        &[tag("m2s.replicas", "2"), tag("m2s.max-replicas", "3")],
        &[],
    )
    .unwrap_err();
    assert!(
        err.contains("tag m2s.replicas and tag m2s.max-replicas both set"),
        "{err}"
    );
    let err = render_with(
        &cfg().with_target("seldon-v2"),
        &[tag("m2s.replicas", "5"), tag("m2s.max-replicas", "3")],
        &[],
    )
    .unwrap_err();
    assert!(err.contains("above m2s.max-replicas"), "{err}");
}

#[test]
fn version_tag_overrides_model_tag_and_is_recorded() {
    let c = cfg();
    let mut m = model("iris", vec![version("iris", "4", "Production")]);
    m.tags = vec![tag("m2s.memory", "1Gi"), tag("owner", "x")];
    m.latest_versions[0].tags = vec![tag("m2s.memory", "2Gi"), tag("note", "y")];
    let (e, _) = entries(&RegistrySnapshot { models: vec![m] }, &c);
    // Only the m2s tags are kept on the entry.
    assert_eq!(e[0].model.tags, [tag("m2s.memory", "1Gi")]);
    assert_eq!(&*e[0].version.tags, [tag("m2s.memory", "2Gi")]);
    let d = render(&e[0], &location("4"), &e[0].version.tags, &c).unwrap();
    let container =
        &d.object["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0];
    assert_eq!(container["resources"]["requests"]["memory"], "2Gi");
    assert_eq!(d.annotations()[ANN_VERSION_TAGS], r#"{"m2s.memory":"2Gi"}"#);
}

#[test]
fn bad_settings_are_entry_errors_naming_tag_and_model() {
    let err = render_with(&cfg(), &[tag("m2s.memory", "lots")], &[]).unwrap_err();
    assert!(
        err.contains("m2s.memory=\"lots\" on registered model \"iris\""),
        "{err}"
    );
}

#[test]
fn overlay_is_merged_before_the_settings_and_recorded() {
    let mut c = cfg().with_target("kserve");
    c.overlay = Some(
        Overlay::parse(
            "metadata: {labels: {cost-center: ml}, annotations: {team.io/owner: ds}}\nspec: {predictor: {nodeSelector: {pool: gpu}, model: {resources: {limits: {cpu: '2'}}}}}",
            c.target,
        )
        .unwrap(),
    );
    let o = render_with(&c, &[tag("m2s.cpu", "1")], &[]).unwrap();
    assert_eq!(o["metadata"]["labels"]["cost-center"], "ml");
    assert_eq!(o["metadata"]["labels"]["m2s.io/instance"], "m2s");
    assert_eq!(o["metadata"]["annotations"]["team.io/owner"], "ds");
    assert_eq!(o["spec"]["predictor"]["nodeSelector"]["pool"], "gpu");
    let res = &o["spec"]["predictor"]["model"]["resources"];
    assert_eq!(
        (res["limits"]["cpu"].clone(), res["requests"]["cpu"].clone()),
        (json!("2"), json!("1"))
    );
    let hash = o["metadata"]["annotations"][ANN_OVERLAY_HASH]
        .as_str()
        .unwrap();
    assert_eq!(hash, c.overlay.as_ref().unwrap().hash());
}

#[test]
fn kserve_names_start_with_a_letter() {
    let c = cfg().with_target("kserve");
    let (e, _) = entries(
        &RegistrySnapshot {
            models: vec![
                model("2024-fraud", vec![version("2024-fraud", "1", "Production")]),
                model("iris", vec![version("iris", "1", "Production")]),
            ],
        },
        &c,
    );
    assert_eq!(&*e[0].name, "iris-production");
    assert!(
        e[1].name.starts_with("m2s-2024-fraud-production-"),
        "{}",
        e[1].name
    );
    // Other targets keep today's names.
    let (e, _) = entries(
        &RegistrySnapshot {
            models: vec![model(
                "2024-fraud",
                vec![version("2024-fraud", "1", "Production")],
            )],
        },
        &cfg(),
    );
    assert_eq!(&*e[0].name, "2024-fraud-production");
}

#[test]
fn admission_rules_become_entry_errors() {
    // KServe's predictor host label <name>-predictor-<namespace> must fit in 63 characters: in
    // a long namespace the name is cut to fit, so the object is admitted.
    let mut c = cfg().with_target("kserve");
    c.namespace = "a-rather-long-namespace-name-for-models".into();
    let object = render_with(&c, &[], &[]).unwrap();
    let name = object["metadata"]["name"].as_str().unwrap();
    assert!(
        name.len() + "-predictor-".len() + c.namespace.len() <= 63,
        "{name}"
    );
    // A location the stack cannot fetch.
    let mut c = cfg().with_target("seldon-v2");
    c.storage_root = None;
    let loc = ArtifactLocation {
        uri: "pvc://claim/models/iris".into(),
        experiment_id: None,
        run_id: None,
    };
    let e = iris(&c);
    let err = render(&e, &loc, &[], &c).unwrap_err();
    assert!(err.contains("cannot be fetched by a Model"), "{err}");
}

#[test]
fn unfetchable_location_is_an_entry_error() {
    let mut c = cfg();
    c.storage_root = None;
    let e = iris(&c);
    let err = render(&e, &location("4"), &[], &c).unwrap_err();
    assert!(err.contains("/srv/mlruns/1/run4/artifacts/model"), "{err}");
}

#[test]
fn hash_changes_with_content_and_is_stable() {
    let e = iris(&cfg());
    let a = render(&e, &location("4"), &[], &cfg()).unwrap();
    let b = render(&e, &location("4"), &[], &cfg()).unwrap();
    assert_eq!(
        a.annotations()[ANN_SPEC_HASH],
        b.annotations()[ANN_SPEC_HASH]
    );
    let mut c = cfg();
    c.registry_secret = Some("regcred".into());
    let d = render(&e, &location("4"), &[], &c).unwrap();
    assert_ne!(
        a.annotations()[ANN_SPEC_HASH],
        d.annotations()[ANN_SPEC_HASH]
    );
}

#[test]
fn recorded_location_only_for_the_same_version() {
    let e = iris(&cfg());
    let d = render(&e, &location("4"), &[tag("m2s.cpu", "1")], &cfg()).unwrap();
    let ann: BTreeMap<String, String> = d
        .annotations()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(recorded(&e, &ann).unwrap().location, location("4"));
    let mut moved = e.clone();
    moved.version.version = "5".into();
    assert!(recorded(&moved, &ann).is_none());
    let mut recreated = e.clone();
    recreated.model = Arc::new(ModelInfo {
        created: Some(2000),
        ..(*e.model).clone()
    });
    assert!(recorded(&recreated, &ann).is_none());
    // An alias on a version the search did not return: location and version tags come from
    // what the object recorded.
    let mut alias = e.clone();
    alias.version.source = None;
    let rec = recorded(&alias, &ann).unwrap();
    assert_eq!(rec.location, location("4"));
    assert_eq!(rec.version_tags, [tag("m2s.cpu", "1")]);
}
