//! Seldon Core v1 `SeldonDeployment` (`machinelearning.seldon.io/v1`): one predictor whose
//! graph is Seldon's prepackaged `MLFLOW_SERVER`. The objects are exactly the old service's.

use serde_json::{json, Value};

use super::{
    condition, set_pointer, text, Field, Protocol, Readiness, Resource, Runtime, Setting, State,
    Target,
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
