//! The sandbox's real servers work as the rest of the tests assume (issue: foundation).

use crate::common::versions::LOGGED_MODELS;
use crate::common::{unique, Sandbox};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::json;

fn seldon(
    name: &str,
    ns: &str,
    labels: serde_json::Value,
    replicas: serde_json::Value,
) -> serde_json::Value {
    json!({
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": { "name": name, "namespace": ns, "labels": labels },
        "spec": { "predictors": [{
            "name": "default", "replicas": replicas,
            "graph": { "name": "model", "implementation": "MLFLOW_SERVER", "modelUri": "s3://b/m" }
        }]}
    })
}

#[test]
fn mlflow_registered_model_round_trip() {
    let Some(sb) = Sandbox::get() else { return };
    let mlflow = sb.mlflow();
    let name = unique("plumbing-model");
    mlflow.model(&name);
    let exp = mlflow.experiment(&unique("plumbing-exp"));
    let v = mlflow.version_from_run(&name, &exp);
    mlflow.stage(&name, &v, "Production");
    let got = mlflow.get("registered-models/get", &[("name", &name)]);
    assert_eq!(got["registered_model"]["name"], name.as_str());
    assert_eq!(
        got["registered_model"]["latest_versions"][0]["current_stage"],
        "Production"
    );
    assert!(got["registered_model"]["latest_versions"][0]["source"]
        .as_str()
        .unwrap()
        .starts_with("runs:/"));
}

#[test]
fn seldon_deployments_through_kube_with_label_selector_and_schema() {
    let Some(sb) = Sandbox::get() else { return };
    let ns = sb.namespace("plumbing");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&sb.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let gvk =
            kube::api::GroupVersionKind::gvk("machinelearning.seldon.io", "v1", "SeldonDeployment");
        let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "seldondeployments");
        let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &resource);
        for (name, labels) in [
            ("mine", json!({"app.kubernetes.io/managed-by": "m2s"})),
            ("other", json!({})),
        ] {
            let obj: DynamicObject =
                serde_json::from_value(seldon(name, &ns, labels, json!(1))).unwrap();
            api.create(&PostParams::default(), &obj).await.unwrap();
        }
        let listed = api
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=m2s"))
            .await
            .unwrap();
        let names: Vec<_> = listed
            .items
            .iter()
            .map(|o| o.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["mine"]);
        // The CRD's structural schema rejects a wrong field type.
        let bad: DynamicObject =
            serde_json::from_value(seldon("bad", &ns, json!({}), json!("one"))).unwrap();
        let err = api.create(&PostParams::default(), &bad).await.unwrap_err();
        match err {
            kube::Error::Api(s) => {
                assert_eq!(s.code, 422, "{s:?}");
                assert!(s.message.contains("replicas"), "{}", s.message);
            }
            other => panic!("expected a 422 from the CRD schema, got {other:?}"),
        }
    });
}

#[test]
fn rbac_is_enforced() {
    let Some(sb) = Sandbox::get() else { return };
    let ns = sb.namespace("plumbing-rbac");
    sb.kubectl_ok(&["-n", &ns, "create", "serviceaccount", "nobody"]);
    let out = sb.kubectl_ok(&[
        "auth",
        "can-i",
        "list",
        "seldondeployments.machinelearning.seldon.io",
        "-n",
        &ns,
    ]);
    assert_eq!(out.trim(), "yes");
    let out = sb.kubectl(&[
        "auth",
        "can-i",
        "list",
        "seldondeployments.machinelearning.seldon.io",
        "-n",
        &ns,
        "--as",
        &format!("system:serviceaccount:{ns}:nobody"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
}

/// The suites leave out what an MLflow 2.x server cannot do by the version the server reports;
/// that version is the one the sandbox recorded, and the gate agrees with the server itself: it
/// answers a logged-model request exactly when its version says it has logged models.
#[test]
fn mlflow_version_gates_agree_with_the_server() {
    let Some(sb) = Sandbox::get() else { return };
    let version = sb.mlflow_version();
    if let Some(recorded) = &sb.recorded_mlflow_version {
        assert_eq!(&version.text, recorded, "the sandbox's env file is stale");
    }
    let exp = sb.mlflow().experiment(&unique("plumbing-version"));
    let status = reqwest::blocking::Client::new()
        .post(format!("{}/api/2.0/mlflow/logged-models", sb.mlflow_url))
        .json(&json!({ "experiment_id": exp, "name": "probe" }))
        .send()
        .unwrap()
        .status();
    assert_eq!(
        status.is_success(),
        version.has(LOGGED_MODELS),
        "MLflow {}: POST logged-models answered {status}",
        version.text
    );
}
