//! Seldon Core v1 `SeldonDeployment` (`machinelearning.seldon.io/v1`): one predictor whose
//! graph is Seldon's prepackaged `MLFLOW_SERVER`. The objects are exactly the old service's.

use serde_json::{json, Value};

use super::split::{true_since, CanaryStatus, TrafficSplit};
use super::{
    condition, readiness_of, set_pointer, text, Field, Protocol, Readiness, Resource, Runtime,
    Setting, State, Target,
};
use crate::settings::ServingSettings;

pub(crate) struct SeldonV1;

/// Name of the predictor's graph node and of its container.
pub(crate) const GRAPH_NODE: &str = "model";
const PREDICTOR: &str = "/spec/predictors/0";
const COMPONENT: &str = "/spec/predictors/0/componentSpecs/0";
const CONTAINER: &str = "/spec/predictors/0/componentSpecs/0/spec/containers/0";

const FIELDS: &[Field] = &[
    Field {
        setting: Setting::Image,
        pointer: "/spec/predictors/0/componentSpecs/0/spec/containers/0/image",
        label: "image",
    },
    Field {
        setting: Setting::RegistrySecret,
        pointer: "/spec/predictors/0/componentSpecs/0/spec/imagePullSecrets",
        label: "image pull secret",
    },
    Field {
        setting: Setting::ModelSecret,
        pointer: "/spec/predictors/0/graph/envSecretRefName",
        label: "model secret",
    },
    Field {
        setting: Setting::ServiceAccount,
        pointer: "/spec/predictors/0/componentSpecs/0/spec/serviceAccountName",
        label: "service account",
    },
    Field {
        setting: Setting::Replicas,
        pointer: "/spec/predictors/0/replicas",
        label: "replicas",
    },
    Field {
        setting: Setting::MinReplicas,
        pointer: "/spec/predictors/0/componentSpecs/0/hpaSpec/minReplicas",
        label: "min replicas",
    },
    Field {
        setting: Setting::MaxReplicas,
        pointer: "/spec/predictors/0/componentSpecs/0/hpaSpec/maxReplicas",
        label: "max replicas",
    },
    Field {
        setting: Setting::Cpu,
        pointer: "/spec/predictors/0/componentSpecs/0/spec/containers/0/resources/requests/cpu",
        label: "cpu request",
    },
    Field {
        setting: Setting::Memory,
        pointer: "/spec/predictors/0/componentSpecs/0/spec/containers/0/resources/requests/memory",
        label: "memory request",
    },
    Field {
        setting: Setting::Memory,
        pointer: "/spec/predictors/0/componentSpecs/0/spec/containers/0/resources/limits/memory",
        label: "memory limit",
    },
    Field {
        setting: Setting::Gpu,
        pointer:
            "/spec/predictors/0/componentSpecs/0/spec/containers/0/resources/limits/nvidia.com~1gpu",
        label: "gpu",
    },
];

impl Target for SeldonV1 {
    fn id(&self) -> &'static str {
        "seldon-v1"
    }

    fn resource(&self) -> Resource {
        Resource {
            group: "machinelearning.seldon.io",
            version: "v1",
            kind: "SeldonDeployment",
            plural: "seldondeployments",
        }
    }

    /// What Seldon Core 1's storage initializer fetches.
    fn fetchable_schemes(&self) -> &'static [&'static str] {
        &["s3", "gs", "pvc", "https", "http"]
    }

    fn base_spec(&self, model_uri: &str) -> Value {
        json!({
            "predictors": [{
                "name": "default",
                "replicas": 1,
                "graph": {
                    "name": GRAPH_NODE,
                    "implementation": "MLFLOW_SERVER",
                    "modelUri": model_uri,
                },
            }],
        })
    }

    /// The whole predictor list: a merge patch can only replace an array, never reach into it.
    fn base_pointers(&self) -> &'static [&'static str] {
        &["/spec/predictors"]
    }

    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    /// `seldon` (the default) writes no `spec.protocol`: the objects stay as they always were.
    fn protocols(&self) -> &'static [Protocol] {
        &[Protocol::Seldon, Protocol::V2]
    }

    fn set_protocol(&self, object: &mut Value, protocol: Protocol) -> Result<(), String> {
        match protocol {
            Protocol::Seldon => Ok(()),
            Protocol::V2 => set_pointer(object, "/spec/protocol", json!(protocol.id())),
        }
    }

    /// Seldon Core 1.18.2's `MLFLOW_SERVER` images (operator/config/manager/configmap.yaml).
    fn runtime(&self, protocol: Option<Protocol>) -> Runtime {
        match protocol.unwrap_or(Protocol::Seldon) {
            Protocol::Seldon => Runtime {
                server: "seldonio/mlflowserver:1.18.2",
                mlflow: "2.22.5",
                source: "Seldon Core 1.18.2 (servers/mlflowserver/mlflowserver/requirements.txt: mlflow >= 2.9.2, < 3.0, installed when the pod starts: the newest 2.x, 2.22.5)",
            },
            Protocol::V2 => Runtime {
                server: "seldonio/mlserver:1.3.5-mlflow",
                mlflow: "2.4.2",
                source: "Seldon Core 1.18.2 (predictor_servers MLFLOW_SERVER v2); the image's MLflow is unpinned (MLServer 1.3.5 runtimes/mlflow/setup.py): 2.4.2, reconstructed from the image's date (2023-07)",
            },
        }
    }

    fn default_image_label(&self) -> &'static str {
        "(Seldon default)"
    }

    fn finish(&self, object: &mut Value, settings: &ServingSettings) -> Result<(), String> {
        // Seldon finds the graph's container in componentSpecs by its name.
        if object.pointer(COMPONENT).is_some() {
            set_pointer(object, &format!("{CONTAINER}/name"), json!(GRAPH_NODE))?;
        }
        if settings.min_replicas.is_some() && settings.max_replicas.is_none() {
            return Err(
                "m2s.min-replicas needs m2s.max-replicas on target seldon-v1 (Seldon's hpaSpec requires maxReplicas)"
                    .into(),
            );
        }
        debug_assert!(object.pointer(PREDICTOR).is_some());
        Ok(())
    }

    /// Seldon Core 1.18's validating webhook (operator/apis/machinelearning.seldon.io/v1/
    /// seldondeployment_webhook.go): a prepackaged server needs a `modelUri`; predictor names are
    /// unique (m2s writes one). It checks no name format or length beyond Kubernetes's own.
    fn admit(&self, _name: &str, object: &Value) -> Result<(), String> {
        let uri = object
            .pointer("/spec/predictors/0/graph/modelUri")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if uri.is_empty() {
            return Err("Seldon requires a modelUri for the MLFLOW_SERVER implementation (seldondeployment_webhook.go, Seldon Core 1.18)".into());
        }
        Ok(())
    }

    fn traffic_split(&self) -> Option<&'static dyn TrafficSplit> {
        Some(&SeldonV1)
    }

    /// `.status.state` is `Creating`, `Available` or `Failed`; `.status.description` says why.
    fn readiness(&self, status: &Value) -> Readiness {
        let state = match status["state"].as_str() {
            Some("Available") => State::Available,
            Some("Failed") => State::Failed,
            Some(_) => State::Creating,
            None => return Readiness::pending(),
        };
        let message = text(&status["description"])
            .or_else(|| condition(status, "Ready").and_then(|c| text(&c["message"])));
        Readiness {
            state,
            message,
            url: text(&status["address"]["url"]),
        }
    }
}

/// The predictor of the new version during a rollout.
pub(crate) const CANARY_PREDICTOR: &str = "canary";

/// Seldon Core 1.18: two predictors, the stable one with `traffic: 100-P` and one named
/// `canary` with the new `modelUri` and `traffic: P` (the webhook requires the traffic of
/// several predictors to sum to 100, seldondeployment_webhook.go `checkTraffic`); the split
/// itself is done by Seldon's Istio or Ambassador ingress.
impl TrafficSplit for SeldonV1 {
    fn split(&self, stable: &Value, canary: &Value, percent: u8) -> Value {
        let mut object = stable.clone();
        let mut stable_predictor = stable["spec"]["predictors"][0].clone();
        stable_predictor["traffic"] = Value::from(100 - percent);
        let mut canary_predictor = canary["spec"]["predictors"][0].clone();
        canary_predictor["name"] = Value::from(CANARY_PREDICTOR);
        canary_predictor["traffic"] = Value::from(percent);
        object["spec"]["predictors"] = Value::Array(vec![stable_predictor, canary_predictor]);
        object
    }

    /// `state: Available` needs every Deployment ready (controller.go); the status has no
    /// observedGeneration, so the canary predictor's own Deployment must be there too:
    /// `status.deploymentStatus["<name>-canary-0-<container>"]` with all its replicas available
    /// (the controller keys it by Deployment name, and leaves 0 out).
    fn canary_status(
        &self,
        name: &str,
        status: &Value,
        generation: Option<i64>,
        _percent: u8,
    ) -> CanaryStatus {
        let mut readiness = readiness_of(self, generation, status);
        if readiness.state == State::Available {
            let prefix = format!("{name}-{CANARY_PREDICTOR}-");
            let canary = status["deploymentStatus"]
                .as_object()
                .into_iter()
                .flatten()
                .find(|(k, _)| k.starts_with(&prefix))
                .map(|(_, d)| d);
            let available = canary.is_some_and(|d| {
                let ready = d["availableReplicas"].as_u64().unwrap_or(0);
                ready > 0 && ready >= d["replicas"].as_u64().unwrap_or(0)
            });
            if !available {
                readiness = Readiness {
                    state: State::Creating,
                    message: Some(format!(
                        "the Deployment of predictor {CANARY_PREDICTOR:?} ({prefix}…) has no available replica yet"
                    )),
                    url: readiness.url,
                };
            }
        }
        CanaryStatus {
            readiness,
            available_since: true_since(status, "DeploymentsReady"),
        }
    }

    fn source(&self) -> &'static str {
        "Seldon Core 1.18 spec.predictors[].traffic (split by Seldon's Istio or Ambassador ingress)"
    }
}
