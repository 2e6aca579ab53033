//! Preflight against the sandbox's real MLflow: before a version is deployed its `MLmodel` is
//! read through MLflow's artifact proxy (the files live in the sandbox's S3 stand-in) and a
//! version the serving runtime cannot load is refused, its object left as it is. The versions
//! here carry `MLmodel` files written as MLflow writes them; `serving::` logs real models and
//! serves them with the stacks' own code.

use std::process::Command;

use serde_json::Value;

use crate::common::{run, run_expect, unique, Mlflow, Sandbox, MLMODEL};
use crate::faults_support::{Proxy, Reply};

/// MLflow 3.14+'s default for scikit-learn: skops.
fn skops() -> String {
    MLMODEL.replace("model.pkl", "model.skops").replace(
        "serialization_format: cloudpickle",
        "serialization_format: skops",
    )
}

/// A signature as MLflow 2.10+ writes it (columns with `required`).
fn with_required_columns() -> String {
    format!(
        "{MLMODEL}signature:\n  inputs: '[{{\"type\": \"double\", \"name\": \"x\", \"required\": true}}]'\n  outputs: '[{{\"type\": \"long\", \"required\": true}}]'\n"
    )
}

/// A namespace, a model prefix and an experiment.
struct Bed {
    sb: Sandbox,
    ns: String,
    prefix: String,
    exp: String,
}

impl Bed {
    fn new(tag: &str) -> Option<Bed> {
        let sb = Sandbox::get()?;
        let ns = sb.namespace(tag);
        let exp = sb.mlflow().experiment(&unique(&format!("{tag}-exp")));
        Some(Bed {
            sb,
            ns,
            prefix: unique(tag),
            exp,
        })
    }

    fn ml(&self) -> Mlflow {
        self.sb.mlflow()
    }

    fn m2s(&self) -> Command {
        self.sb.m2s(&self.ns, &self.prefix)
    }

    /// A new version of `model` whose `MLmodel` is `mlmodel` (`None`: no files at all).
    fn version(&self, model: &str, mlmodel: Option<&str>) -> String {
        let ml = self.ml();
        let (run_id, artifact_uri) = ml.run(&self.exp);
        if let Some(text) = mlmodel {
            ml.put_artifact(&artifact_uri, "model/MLmodel", text);
        }
        ml.post(
            "model-versions/create",
            serde_json::json!({ "name": model, "source": format!("runs:/{run_id}/model"), "run_id": run_id }),
        )["model_version"]["version"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `model` registered with one good version in Production.
    fn model(&self, name: &str) -> String {
        let model = format!("{}-{name}", self.prefix);
        self.ml().model(&model);
        let v = self.version(&model, Some(MLMODEL));
        self.ml().stage(&model, &v, "Production");
        model
    }

    fn object(&self, model: &str) -> Value {
        let name = m2s::targets::TARGETS[0].object_name(model, "Production", &self.ns);
        self.sb.seldon_deployments(&self.ns)[&name].clone()
    }
}

fn served_version(o: &Value) -> &str {
    o["metadata"]["annotations"]["m2s.io/model-version"]
        .as_str()
        .unwrap()
}

#[test]
fn a_version_the_runtime_cannot_load_is_refused_and_the_object_keeps_serving() {
    let Some(b) = Bed::new("pf-refuse") else {
        return;
    };
    let model = b.model("iris");
    run_expect(b.m2s().arg("sync"), 0);
    let before = b.object(&model);
    assert_eq!(served_version(&before), "1");

    // v2 is saved as skops: seldon-v1's default runtime (mlflowserver, MLflow < 3) cannot read it.
    let v2 = b.version(&model, Some(&skops()));
    b.ml().stage(&model, &v2, "Production");
    let r = run_expect(b.m2s().arg("sync"), 1);
    let refusal = format!(
        "preflight: seldonio/mlflowserver:1.18.2 with MLflow 2.22.5 cannot load version 2 of model {model:?}: it is saved in scikit-learn's \"skops\" serialization format"
    );
    assert!(r.stdout.contains(&refusal), "{}", r.stdout);
    assert!(
        r.stdout.contains("serialization_format=\"cloudpickle\"")
            && r.stdout.contains("M2S_RUNTIME_MLFLOW_VERSION"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "Sync: 0 created, 0 updated, 0 deleted, 0 unchanged, 0 failed, 1 not deployable."
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("1 registry entry cannot be deployed"),
        "{}",
        r.stderr
    );
    let after = b.object(&model);
    assert_eq!(
        after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"],
        "the object is left exactly as it is"
    );
    // A Warning Event about the object that keeps serving v1.
    let events = b.sb.events(&b.ns);
    let held: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["reason"] == "NotDeployable"
                && e["involvedObject"]["uid"] == before["metadata"]["uid"]
        })
        .collect();
    assert_eq!(held.len(), 1, "{events:#?}");
    assert!(
        held[0]["message"].as_str().unwrap().contains(&refusal),
        "{:#?}",
        held[0]
    );

    // m2s plan shows it like any entry error, in text and JSON.
    let r = run_expect(b.m2s().args(["plan", "-o", "json"]), 1);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(plan["summary"]["errors"], 1, "{plan:#}");
    assert_eq!(plan["errors"][0]["version"], "2");
    assert!(
        plan["errors"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with(&refusal),
        "{plan:#}"
    );
    assert_eq!(plan["changes"], serde_json::json!([]));

    // v3's files are missing: refused too.
    let v3 = b.version(&model, None);
    b.ml().stage(&model, &v3, "Production");
    let r = run_expect(b.m2s().arg("plan"), 1);
    assert!(
        r.stdout.contains(&format!("preflight: the files of version 3 of model {model:?} are missing: MLflow's artifact store has nothing under")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("log the model again"), "{}", r.stdout);

    // The runtime's MLflow is a setting: one that reads skops deploys v4 (skops).
    let v4 = b.version(&model, Some(&skops()));
    b.ml().stage(&model, &v4, "Production");
    let r = run_expect(
        b.m2s()
            .env("M2S_RUNTIME_MLFLOW_VERSION", "3.17.2")
            .arg("sync"),
        0,
    );
    assert!(r.stdout.contains("1 updated"), "{}", r.stdout);
    assert_eq!(served_version(&b.object(&model)), "4");
}

#[test]
fn preflight_reads_one_mlmodel_per_version_to_deploy_and_none_on_a_noop() {
    let Some(b) = Bed::new("pf-count") else {
        return;
    };
    // a: Production v1 and champion v1 (one version, two objects); c: champion on v2.
    let (a, bee, c) = (b.model("a"), b.model("b"), b.model("c"));
    b.ml().alias(&a, "champion", "1");
    let c2 = b.version(&c, Some(MLMODEL));
    b.ml().alias(&c, "champion", &c2);
    let proxy = Proxy::always(&b.sb.mlflow_url, || Reply::Forward);
    let m2s = || {
        let mut cmd = b.m2s();
        cmd.env("M2S_MLFLOW_HOST", proxy.url())
            .env("M2S_ALIASES", "champion")
            .env("RUST_LOG", "m2s=debug");
        cmd
    };
    let reads_since = |mark: usize| {
        proxy.requests()[mark..]
            .iter()
            .filter(|r| r.is_artifact_read())
            .map(|r| r.path().to_string())
            .collect::<Vec<_>>()
    };

    // Cold: 5 objects, 4 versions (a1, b1, c1, c2), one MLmodel read each.
    let r = run_expect(m2s().arg("sync"), 0);
    assert!(r.stdout.contains("Sync: 5 created"), "{}", r.stdout);
    let reads = reads_since(0);
    assert_eq!(reads.len(), 4, "{reads:#?}");
    assert!(
        reads
            .iter()
            .all(|p| p.ends_with("/artifacts/model/MLmodel")),
        "{reads:#?}"
    );
    assert!(
        r.stderr.contains("preflight against seldonio/mlflowserver:1.18.2 with MLflow 2.22.5: 4 versions to deploy, 4 checked, 0 refused (4 MLflow requests)"),
        "{}",
        r.stderr
    );
    // The same cold sync without preflight sends exactly those 4 requests fewer.
    let requests = |stderr: &str| -> u64 {
        let line = stderr
            .lines()
            .find(|l| l.contains("requests: MLflow "))
            .unwrap_or_else(|| panic!("no request count in {stderr}"));
        line.split("requests: MLflow ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let other = b.sb.namespace("pf-count-off");
    let off = run_expect(
        b.sb.m2s(&other, &b.prefix)
            .env("M2S_MLFLOW_HOST", proxy.url())
            .env("M2S_ALIASES", "champion")
            .env("RUST_LOG", "m2s=debug")
            .env("M2S_PREFLIGHT", "false")
            .arg("sync"),
        0,
    );
    assert_eq!(
        requests(&r.stderr),
        requests(&off.stderr) + 4,
        "{}\n{}",
        r.stderr,
        off.stderr
    );
    assert!(!off.stderr.contains("preflight against"), "{}", off.stderr);

    // No-op: not one preflight request.
    let mark = proxy.requests().len();
    let r = run_expect(m2s().arg("sync"), 0);
    assert!(r.stdout.starts_with("No changes."), "{}", r.stdout);
    assert_eq!(reads_since(mark), Vec::<String>::new());
    assert_eq!(
        proxy.requests()[mark..]
            .iter()
            .filter(|r| !r.is_search())
            .count(),
        0
    );

    // Settings only (the version each object serves stays): none either.
    b.ml().set_model_tag(&a, "m2s.replicas", "2");
    let mark = proxy.requests().len();
    let r = run_expect(m2s().arg("sync"), 0);
    assert!(r.stdout.contains("2 updated"), "{}", r.stdout);
    assert_eq!(reads_since(mark), Vec::<String>::new());

    // One promotion: one read.
    let v = b.version(&bee, Some(MLMODEL));
    b.ml().stage(&bee, &v, "Production");
    let mark = proxy.requests().len();
    let r = run_expect(m2s().arg("sync"), 0);
    assert!(r.stdout.contains("1 updated"), "{}", r.stdout);
    assert_eq!(reads_since(mark).len(), 1);
}

#[test]
fn without_the_artifact_proxy_preflight_is_skipped_once_and_nothing_refused() {
    let Some(b) = Bed::new("pf-skip") else { return };
    let (x, _) = (b.model("x"), b.model("y"));
    // x's v2 would be refused, if preflight could read it.
    let v2 = b.version(&x, Some(&skops()));
    b.ml().stage(&x, &v2, "Production");
    // MLflow 2.22's answer with --no-serve-artifacts (3.17 answers 503 as well).
    let proxy = Proxy::start(&b.sb.mlflow_url, |req| {
        if req.is_artifact_read() {
            Reply::Status(503, "Endpoint: /api/2.0/mlflow-artifacts/artifacts/<path:artifact_path> disabled due to the mlflow server running with `--no-serve-artifacts`. To enable artifacts server functionality, run `mlflow server` with `--serve-artifacts`".into())
        } else {
            Reply::Forward
        }
    });
    let m2s = || {
        let mut cmd = b.m2s();
        cmd.env("M2S_MLFLOW_HOST", proxy.url());
        cmd
    };
    let note = format!(
        "Preflight skipped: MLflow at {} does not serve artifacts (it answered 503 Service Unavailable to {}/api/2.0/mlflow-artifacts/artifacts/",
        proxy.url(),
        proxy.url()
    );
    let r = run_expect(m2s().args(["plan", "-o", "json"]), 0);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        plan["preflight_skipped"]
            .as_str()
            .unwrap()
            .starts_with(&note),
        "{plan:#}"
    );
    assert!(
        plan["preflight_skipped"]
            .as_str()
            .unwrap()
            .ends_with("; 2 versions to deploy not checked."),
        "{plan:#}"
    );
    let mark = proxy.requests().len();
    let r = run_expect(m2s().arg("sync"), 0);
    assert!(r.stdout.contains("Sync: 2 created"), "{}", r.stdout);
    assert_eq!(
        r.stdout.matches("Preflight skipped").count(),
        1,
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(&note), "{}", r.stdout);
    assert_eq!(
        r.stderr.matches("Preflight skipped").count(),
        1,
        "{}",
        r.stderr
    );
    // One request found it out; the other version was not asked about.
    let reads = proxy.requests()[mark..]
        .iter()
        .filter(|r| r.is_artifact_read())
        .count();
    assert_eq!(reads, 1);
}

#[test]
fn preflight_off_reads_nothing_and_refuses_nothing() {
    let Some(b) = Bed::new("pf-off") else { return };
    let model = format!("{}-gone", b.prefix);
    b.ml().model(&model);
    let v = b.version(&model, None);
    b.ml().stage(&model, &v, "Production");
    let proxy = Proxy::always(&b.sb.mlflow_url, || Reply::Forward);
    let r = run_expect(
        b.m2s()
            .env("M2S_MLFLOW_HOST", proxy.url())
            .env("M2S_PREFLIGHT", "false")
            .arg("sync"),
        0,
    );
    assert!(r.stdout.contains("Sync: 1 created"), "{}", r.stdout);
    assert_eq!(proxy.count(|r| r.is_artifact_read()), 0);
}

#[test]
fn a_scoped_sync_preflights_too() {
    let Some(b) = Bed::new("pf-scoped") else {
        return;
    };
    let model = b.model("one");
    run_expect(b.m2s().arg("sync"), 0);
    let v = b.version(&model, Some(&skops()));
    b.ml().stage(&model, &v, "Production");
    let r = run_expect(b.m2s().args(["sync", "--model", &model]), 1);
    assert!(
        r.stdout
            .contains(&format!("cannot load version 2 of model {model:?}")),
        "{}",
        r.stdout
    );
    assert_eq!(served_version(&b.object(&model)), "1");
}

#[test]
fn seldon_protocol_v2_writes_the_protocol_and_preflights_mlserver_1_3_5() {
    let Some(b) = Bed::new("pf-v2") else { return };
    let model = format!("{}-sig", b.prefix);
    b.ml().model(&model);
    let v = b.version(&model, Some(&with_required_columns()));
    b.ml().stage(&model, &v, "Production");
    let v2 = || {
        let mut cmd = b.m2s();
        cmd.env("M2S_SELDON_PROTOCOL", "v2");
        cmd
    };
    // Seldon 1.18.2's own MLServer 1.3.5 image (MLflow of mid-2023) cannot read the signature.
    let r = run_expect(v2().arg("sync"), 1);
    assert!(
        r.stdout.contains(&format!("preflight: seldonio/mlserver:1.3.5-mlflow with MLflow 2.4.2 cannot load version 1 of model {model:?}: its signature, written by MLflow 3.17.2, has columns with the `required` field")),
        "{}",
        r.stdout
    );
    assert!(b.sb.seldon_deployments(&b.ns).is_empty());
    // With a newer MLServer image, said with the MLflow it has: served with protocol v2.
    run_expect(
        v2().env("M2S_SELDON_DEF_IMAGE", "seldonio/mlserver:1.7.1")
            .env("M2S_RUNTIME_MLFLOW_VERSION", "2.19.0")
            .arg("sync"),
        0,
    );
    let o = b.object(&model);
    assert_eq!(o["spec"]["protocol"], "v2", "{o:#}");
    // The default protocol writes none, as before.
    let other = b.sb.namespace("pf-v2-seldon");
    run_expect(b.sb.m2s(&other, &b.prefix).arg("sync"), 0);
    let objects = b.sb.seldon_deployments(&other);
    assert!(
        objects
            .values()
            .all(|o| o["spec"].get("protocol").is_none()),
        "{objects:#?}"
    );
    // On another target the setting has no counterpart.
    let r = run(b
        .sb
        .m2s_target(&b.ns, &b.prefix, "kserve")
        .env("M2S_SELDON_PROTOCOL", "v2")
        .arg("plan"));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("M2S_SELDON_PROTOCOL has no counterpart on target kserve (InferenceService)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_folder_without_an_mlmodel_is_refused_naming_what_is_there() {
    let Some(b) = Bed::new("pf-nomodel") else {
        return;
    };
    let model = format!("{}-raw", b.prefix);
    b.ml().model(&model);
    let ml = b.ml();
    let (run_id, artifact_uri) = ml.run(&b.exp);
    ml.put_artifact(&artifact_uri, "model/model.pkl", "not a model");
    let v = ml.post(
        "model-versions/create",
        serde_json::json!({ "name": model, "source": format!("runs:/{run_id}/model"), "run_id": run_id }),
    )["model_version"]["version"]
        .as_str()
        .unwrap()
        .to_string();
    ml.stage(&model, &v, "Production");
    let r = run_expect(b.m2s().arg("sync"), 1);
    assert!(
        r.stdout.contains(&format!(
            "preflight: version 1 of model {model:?} is not an MLflow model: MLflow's artifact store has no MLmodel under"
        )) && r.stdout.contains("but model.pkl (the runtime loads MLflow models)"),
        "{}",
        r.stdout
    );
    assert!(b.sb.seldon_deployments(&b.ns).is_empty());
}
