use super::*;
use std::collections::HashMap;

fn settings() -> Inputs {
    Inputs {
        mlflow_host: Some("http://mlflow.example:5000".into()),
        target: "seldon-v1".into(),
        namespace: Some("models".into()),
        image_tag: "deployment-image".into(),
        stages: "Staging,Production".into(),
        aliases: String::new(),
        instance: "m2s".into(),
        concurrency: 16,
        request_timeout: 30,
        run_timeout: 600,
        ..Inputs::default()
    }
}

fn build(s: &Inputs, env: &[(&str, &str)]) -> Result<Config> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_inputs(s, &|k| env.get(k).cloned())
}

#[test]
fn defaults_are_valid() {
    let c = build(&settings(), &[]).unwrap();
    assert_eq!(c.deploy.stages, ["Staging", "Production"]);
    assert_eq!(c.deploy.aliases, AliasSelection::Listed(vec![]));
    assert_eq!(c.mlflow.url.as_str(), "http://mlflow.example:5000/");
    assert_eq!(c.deploy.mlflow_url, "http://mlflow.example:5000");
    assert_eq!(c.mlflow.auth, MlflowAuth::None);
}

#[test]
fn mlflow_tracking_uri_is_the_fallback() {
    let mut s = settings();
    s.mlflow_host = None;
    let c = build(&s, &[("MLFLOW_TRACKING_URI", "https://ml.example/prefix")]).unwrap();
    assert_eq!(c.mlflow.url.as_str(), "https://ml.example/prefix/");
    assert!(build(&s, &[])
        .unwrap_err()
        .to_string()
        .contains("M2S_MLFLOW_HOST"));
}

#[test]
fn bad_urls_are_rejected_without_leaking_credentials() {
    let mut s = settings();
    for bad in ["not a url", "ftp://x", "mlflow:5000", "http://user:s3cret@"] {
        s.mlflow_host = Some(bad.into());
        let err = format!("{:#}", build(&s, &[]).unwrap_err());
        assert!(err.contains("MLflow URL"), "{bad}: {err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}

#[test]
fn credentials_in_the_url_move_to_basic_auth() {
    let mut s = settings();
    s.mlflow_host = Some("https://bob:s3cret@ml.example".into());
    let c = build(&s, &[]).unwrap();
    assert_eq!(c.mlflow.url.as_str(), "https://ml.example/");
    assert_eq!(
        c.mlflow.auth,
        MlflowAuth::Basic {
            username: "bob".into(),
            password: "s3cret".into()
        }
    );
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn token_wins_over_basic_auth_and_is_redacted() {
    let c = build(
        &settings(),
        &[
            ("MLFLOW_TRACKING_TOKEN", "tok-123"),
            ("MLFLOW_TRACKING_USERNAME", "u"),
        ],
    )
    .unwrap();
    assert_eq!(c.mlflow.auth, MlflowAuth::Bearer("tok-123".into()));
    assert!(!format!("{c:?}").contains("tok-123"));
}

#[test]
fn stages_are_checked_and_normalised() {
    let mut s = settings();
    s.stages = "production, STAGING,Production".into();
    assert_eq!(
        build(&s, &[]).unwrap().deploy.stages,
        ["Production", "Staging"]
    );
    s.stages = "Prod".into();
    let err = build(&s, &[]).unwrap_err().to_string();
    assert!(
        err.contains("\"Prod\"") && err.contains("M2S_STAGES"),
        "{err}"
    );
}

#[test]
fn aliases_star_means_all() {
    let mut s = settings();
    s.aliases = "*".into();
    assert_eq!(build(&s, &[]).unwrap().deploy.aliases, AliasSelection::All);
    s.aliases = "champion, challenger,champion".into();
    assert_eq!(
        build(&s, &[]).unwrap().deploy.aliases,
        AliasSelection::Listed(vec!["champion".into(), "challenger".into()])
    );
    s.aliases = "*,champion".into();
    assert!(build(&s, &[]).is_err());
}

#[test]
fn namespace_instance_and_secrets_are_validated() {
    let mut s = settings();
    s.namespace = Some(" ".into());
    assert!(build(&s, &[])
        .unwrap_err()
        .to_string()
        .contains("no namespace: set M2S_NAMESPACE"));
    s.namespace = Some("Bad_NS".into());
    assert!(build(&s, &[]).unwrap_err().to_string().contains("Bad_NS"));
    let mut s = settings();
    s.instance = "a b".into();
    assert!(build(&s, &[])
        .unwrap_err()
        .to_string()
        .contains("M2S_INSTANCE"));
    let mut s = settings();
    s.model_secret = Some("Not/A/Secret".into());
    assert!(build(&s, &[])
        .unwrap_err()
        .to_string()
        .contains("M2S_MODEL_SECRET"));
    let mut s = settings();
    s.default_image = Some("bad image".into());
    assert!(build(&s, &[])
        .unwrap_err()
        .to_string()
        .contains("M2S_SELDON_DEF_IMAGE"));
}

#[test]
fn namespace_has_a_new_name_and_keeps_the_old_one() {
    let mut s = settings();
    s.namespace = None;
    let ns = |s: &Inputs, env: &[(&str, &str)]| build(s, env).map(|c| c.deploy.namespace);
    assert_eq!(ns(&s, &[("M2S_NAMESPACE", "a")]).unwrap(), "a");
    assert_eq!(ns(&s, &[("M2S_SELDON_DEPLOYMENT_NS", "b")]).unwrap(), "b");
    assert_eq!(
        ns(
            &s,
            &[("M2S_NAMESPACE", "a"), ("M2S_SELDON_DEPLOYMENT_NS", "a")]
        )
        .unwrap(),
        "a"
    );
    let err = ns(
        &s,
        &[("M2S_NAMESPACE", "a"), ("M2S_SELDON_DEPLOYMENT_NS", "b")],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("M2S_NAMESPACE (\"a\")") && err.contains("M2S_SELDON_DEPLOYMENT_NS (\"b\")"),
        "{err}"
    );
    let err = ns(&s, &[("M2S_SELDON_DEPLOYMENT_NS", "Bad_NS")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("(M2S_SELDON_DEPLOYMENT_NS)"), "{err}");
    // The flag wins over both variables.
    s.namespace = Some("flag".into());
    assert_eq!(ns(&s, &[("M2S_NAMESPACE", "a")]).unwrap(), "flag");
}

#[test]
fn target_is_one_of_the_known_ones() {
    let mut s = settings();
    for id in ["seldon-v1", "kserve", "seldon-v2"] {
        s.target = id.into();
        assert_eq!(build(&s, &[]).unwrap().deploy.target.id(), id);
    }
    s.target = "seldon".into();
    let err = build(&s, &[]).unwrap_err().to_string();
    assert!(
        err.contains("unknown target \"seldon\"") && err.contains("kserve"),
        "{err}"
    );
}

#[test]
fn settings_without_a_counterpart_are_refused_naming_setting_and_target() {
    type Set = fn(&mut Inputs);
    // Each with what to do instead, from the target.
    let cases: [(&str, Set, &str); 5] = [
        (
            "seldon-v2",
            |s| s.default_image = Some("x/y:1".into()),
            "the Server's",
        ),
        (
            "seldon-v2",
            |s| s.registry_secret = Some("regcred".into()),
            "the Seldon Server",
        ),
        (
            "seldon-v2",
            |s| s.service_account = Some("sa".into()),
            "no pods of its own",
        ),
        (
            "kserve",
            |s| s.model_secret = Some("creds".into()),
            "set M2S_SERVICE_ACCOUNT instead",
        ),
        (
            "seldon-v2",
            |s| s.storage_root = Some("pvc://claim/mlruns".into()),
            "pvc",
        ),
    ];
    for (target, set, hint) in cases {
        let mut s = settings();
        s.target = target.into();
        set(&mut s);
        let err = format!("{:#}", build(&s, &[]).unwrap_err());
        assert!(err.contains(target), "{target}: {err}");
        assert!(err.contains("M2S_"), "{target}: {err}");
        assert!(err.contains(hint), "{target}: {err}");
    }
    // The same settings where the target has them.
    let mut s = settings();
    s.target = "kserve".into();
    s.service_account = Some("sa".into());
    s.registry_secret = Some("regcred".into());
    s.default_image = Some("x/y:1".into());
    build(&s, &[]).unwrap();
    let mut s = settings();
    s.target = "seldon-v2".into();
    s.model_secret = Some("creds".into());
    s.storage_root = Some("s3://bucket/mlruns".into());
    build(&s, &[]).unwrap();
}

#[test]
fn the_old_services_variables() {
    // M2S_SELDON_NEURO_DEF_IMAGE: a deprecated alias, with a warning naming the new one.
    let c = build(&settings(), &[("M2S_SELDON_NEURO_DEF_IMAGE", "x/server:1")]).unwrap();
    assert_eq!(c.deploy.default_image.as_deref(), Some("x/server:1"));
    assert!(
        c.warnings[0].contains("use M2S_SELDON_DEF_IMAGE"),
        "{:?}",
        c.warnings
    );
    let mut s = settings();
    s.default_image = Some("x/server:2".into());
    assert!(build(&s, &[("M2S_SELDON_NEURO_DEF_IMAGE", "x/server:1")]).is_err());
    // The platform's cluster and URIs mean nothing here.
    let err = build(&settings(), &[("M2S_SRC_NEURO_CLUSTER", "neuro-compute")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("M2S_SRC_NEURO_CLUSTER") && err.contains("M2S_MLFLOW_HOST"),
        "{err}"
    );
    let mut s = settings();
    s.default_image = Some("image://cluster/org/proj/server:1".into());
    let err = format!("{:#}", build(&s, &[]).unwrap_err());
    assert!(err.contains("Neu.ro platform image: URI"), "{err}");
    let mut s = settings();
    s.storage_root = Some("storage://cluster/org/proj/mlruns".into());
    let err = format!("{:#}", build(&s, &[]).unwrap_err());
    assert!(
        err.contains("Neu.ro platform storage: URI") && err.contains("s3://"),
        "{err}"
    );
}

#[test]
fn nothing_to_deploy_is_an_error() {
    let mut s = settings();
    s.stages = String::new();
    assert!(build(&s, &[])
        .unwrap_err()
        .to_string()
        .contains("nothing to deploy"));
    s.aliases = "champion".into();
    assert!(build(&s, &[]).is_ok());
}

#[test]
fn label_values() {
    assert!(is_label_value("m2s"));
    assert!(is_label_value("team_a.prod-1"));
    assert!(!is_label_value("-x"));
    assert!(!is_label_value(&"a".repeat(64)));
}

#[test]
fn storage_root_must_be_fetchable_by_the_target() {
    let v1 = targets::by_id("seldon-v1").unwrap();
    let v2 = targets::by_id("seldon-v2").unwrap();
    assert!(check_storage_root("s3://bucket/mlruns", v1).is_ok());
    assert!(check_storage_root("pvc://claim/path", v1).is_ok());
    assert!(check_storage_root("/local/path", v1).is_err());
    assert!(check_storage_root("mlflow-artifacts:/", v1).is_err());
    assert!(check_storage_root("pvc://claim", v2).is_err());
    assert!(check_storage_root("hdfs://nn/mlruns", targets::by_id("kserve").unwrap()).is_ok());
}

#[test]
fn preflight_runtime_defaults_to_what_each_stack_ships() {
    let runtime = |target: &str, protocol: Option<&str>| {
        let mut s = settings();
        s.target = target.into();
        s.seldon_protocol = protocol.map(String::from);
        s.preflight = true;
        let c = build(&s, &[]).unwrap();
        assert!(c.preflight.enabled);
        (c.preflight.mlflow.to_string(), c.preflight.runtime)
    };
    assert_eq!(
        runtime("kserve", None),
        (
            "2.10.2".into(),
            "seldonio/mlserver:1.5.0 with MLflow 2.10.2".into()
        )
    );
    assert_eq!(runtime("seldon-v2", None).0, "2.19.0");
    assert_eq!(runtime("seldon-v1", None).0, "2.22.5");
    assert_eq!(
        runtime("seldon-v1", Some("seldon")).1,
        "seldonio/mlflowserver:1.18.2 with MLflow 2.22.5"
    );
    assert_eq!(
        runtime("seldon-v1", Some("V2")),
        (
            "2.4.2".into(),
            "seldonio/mlserver:1.3.5-mlflow with MLflow 2.4.2".into()
        )
    );
}

#[test]
fn runtime_mlflow_version_is_a_setting() {
    let mut s = settings();
    s.target = "seldon-v1".into();
    s.seldon_protocol = Some("v2".into());
    s.runtime_mlflow_version = Some("2.19.0".into());
    let c = build(&s, &[]).unwrap();
    assert_eq!(c.preflight.mlflow.to_string(), "2.19.0");
    assert!(
        c.preflight.runtime.contains("M2S_RUNTIME_MLFLOW_VERSION"),
        "{}",
        c.preflight.runtime
    );
    assert!(
        !c.preflight.enabled,
        "off unless M2S_PREFLIGHT (the flag defaults it to true)"
    );
    s.runtime_mlflow_version = Some("latest".into());
    let err = format!("{:#}", build(&s, &[]).unwrap_err());
    assert!(
        err.contains("M2S_RUNTIME_MLFLOW_VERSION") && err.contains("\"latest\""),
        "{err}"
    );
}

#[test]
fn seldon_protocol_is_checked_and_written_only_when_v2() {
    let mut s = settings();
    assert_eq!(build(&s, &[]).unwrap().deploy.protocol, None);
    s.seldon_protocol = Some("seldon".into());
    assert_eq!(
        build(&s, &[]).unwrap().deploy.protocol,
        Some(Protocol::Seldon)
    );
    s.seldon_protocol = Some("kfserving".into());
    let err = format!("{:#}", build(&s, &[]).unwrap_err());
    assert!(
        err.contains("M2S_SELDON_PROTOCOL \"kfserving\" is not one of seldon, v2"),
        "{err}"
    );
    for target in ["kserve", "seldon-v2"] {
        let mut s = settings();
        s.target = target.into();
        s.seldon_protocol = Some("v2".into());
        let err = format!("{:#}", build(&s, &[]).unwrap_err());
        assert!(
            err.contains("M2S_SELDON_PROTOCOL has no counterpart on target")
                && err.contains(target),
            "{err}"
        );
    }
}

#[test]
fn an_overlays_protocol_chooses_the_runtime_and_may_not_meet_the_setting() {
    let dir = std::env::temp_dir().join(format!("m2s-config-protocol-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("overlay.yaml");
    std::fs::write(&path, "spec:\n  protocol: v2\n").unwrap();
    let mut s = settings();
    s.overlay = Some(path.clone());
    let c = build(&s, &[]).unwrap();
    assert_eq!(c.deploy.protocol, None, "the overlay writes it");
    assert_eq!(c.preflight.mlflow.to_string(), "2.4.2");
    s.seldon_protocol = Some("v2".into());
    let err = format!("{:#}", build(&s, &[]).unwrap_err());
    assert!(
        err.contains(
            "M2S_SELDON_PROTOCOL is set and the overlay (M2S_OVERLAY) sets spec.protocol too"
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
