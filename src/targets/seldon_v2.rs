//! Seldon Core 2 `Model` (`mlops.seldon.io/v1alpha1`): a model scheduled onto an MLServer
//! server that has the `mlflow` capability (the shape of Seldon's MLflow samples). A Model has
//! no pods of its own: images, CPU and GPUs belong to the Server, so those settings are refused.

use serde_json::{json, Value};

use super::split::{true_since, CanaryStatus, Companion, TrafficSplit};
use super::{
    check_fetchable, condition, readiness_of, text, Field, Protocol, Readiness, Resource, Runtime,
    Setting, State, Target,
};
use crate::keys::ANN_CANARY_OF;
use crate::settings::ServingSettings;

pub(crate) struct SeldonV2;

const FIELDS: &[Field] = &[
    Field {
        setting: Setting::ModelSecret,
        pointer: "/spec/secretName",
        label: "model secret",
    },
    Field {
        setting: Setting::Replicas,
        pointer: "/spec/replicas",
        label: "replicas",
    },
    Field {
        setting: Setting::MinReplicas,
        pointer: "/spec/minReplicas",
        label: "min replicas",
    },
    Field {
        setting: Setting::MaxReplicas,
        pointer: "/spec/maxReplicas",
        label: "max replicas",
    },
    Field {
        setting: Setting::Memory,
        pointer: "/spec/memory",
        label: "memory",
    },
];

/// Seldon Core 2 v2.10.2 `CheckName` (scheduler/pkg/store/utils/validate.go).
fn is_model_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

impl Target for SeldonV2 {
    fn no_counterpart_hint(&self, setting: Setting) -> &'static str {
        match setting {
            Setting::Image => {
                ": a Model runs on a Seldon Server, whose image is the Server's; unset it"
            }
            Setting::RegistrySecret => ": image pull secrets belong to the Seldon Server; unset it",
            Setting::ServiceAccount => ": a Model has no pods of its own; unset it",
            Setting::Cpu => {
                ": CPU is the Seldon Server's (m2s.memory says what the scheduler reserves)"
            }
            Setting::Gpu => ": GPUs are the Seldon Server's",
            _ => "",
        }
    }
    fn id(&self) -> &'static str {
        "seldon-v2"
    }

    fn resource(&self) -> Resource {
        Resource {
            group: "mlops.seldon.io",
            version: "v1alpha1",
            kind: "Model",
            plural: "models",
        }
    }

    /// Remotes Seldon Core 2's agent reads through rclone (each but public `gs` needs a remote
    /// configured with `secretName` or a preloaded secret). No `pvc://`.
    fn fetchable_schemes(&self) -> &'static [&'static str] {
        &["s3", "gs", "az", "https", "http"]
    }

    fn base_spec(&self, model_uri: &str) -> Value {
        json!({
            "storageUri": model_uri,
            "requirements": ["mlflow"],
        })
    }

    fn base_pointers(&self) -> &'static [&'static str] {
        &["/spec/storageUri", "/spec/requirements"]
    }

    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn runtime(&self, _protocol: Option<Protocol>) -> Runtime {
        Runtime {
            server: "seldonio/mlserver:1.7.1",
            mlflow: "2.19.0",
            source: "Seldon Core 2.10.2 (k8s/helm-charts/seldon-core-v2-setup/values.yaml, the MLServer Server)",
        }
    }

    fn default_image_label(&self) -> &'static str {
        "(server's)"
    }

    /// The operator refuses replicas outside [min, max] (operator/internal/utils.go, v2.10.2).
    fn finish(&self, _object: &mut Value, s: &ServingSettings) -> Result<(), String> {
        if let (Some(r), Some(min)) = (s.replicas, s.min_replicas) {
            if r < min {
                return Err(format!("m2s.replicas ({r}) is below m2s.min-replicas ({min}); Seldon Core 2 refuses it"));
            }
        }
        if let (Some(r), Some(max)) = (s.replicas, s.max_replicas) {
            if r > max {
                return Err(format!("m2s.replicas ({r}) is above m2s.max-replicas ({max}); Seldon Core 2 refuses it"));
            }
        }
        Ok(())
    }

    /// Seldon Core 2 v2.10.2's scheduler (scheduler/pkg/store/memory.go → utils.CheckName):
    /// "must be alphanumeric and not contains dots"; and a storage URI its agent can read.
    fn admit(&self, name: &str, object: &Value) -> Result<(), String> {
        if !is_model_name(name) || name.contains('.') {
            return Err(format!(
                "Seldon Core 2 refuses the model name {name:?}: lowercase letters, digits and '-', no dots (CheckName, scheduler/pkg/store/utils/validate.go, v2.10.2)"
            ));
        }
        let uri = object["spec"]["storageUri"].as_str().unwrap_or_default();
        check_fetchable(self, uri, "Seldon Core 2's agent")
    }

    fn traffic_split(&self) -> Option<&'static dyn TrafficSplit> {
        Some(&SeldonV2)
    }

    /// Seldon Core 2 v2.10 (operator/scheduler/model.go, apis/mlops/v1alpha1/model_conditions.go):
    /// the operator sets `ModelReady` (and with it `Ready`) from the scheduler's model status:
    /// `True` for `ModelAvailable`, else `False`, with the scheduler's state as the message and
    /// its reason as the reason. A Model has no URL of its own (requests go through the mesh).
    fn readiness(&self, status: &Value) -> Readiness {
        let Some(ready) = condition(status, "ModelReady").or_else(|| condition(status, "Ready"))
        else {
            return Readiness::pending();
        };
        let scheduler_state = text(&ready["message"]);
        let reason = text(&ready["reason"]);
        let state = if ready["status"] == "True" {
            State::Available
        } else if scheduler_state
            .as_deref()
            .is_some_and(|s| FAILED_STATES.contains(&s))
        {
            State::Failed
        } else {
            // ModelProgressing, ModelStateUnknown, or an operator's retryable error.
            State::Creating
        };
        let message = match (scheduler_state, reason) {
            (Some(m), Some(r)) if m != r => Some(format!("{m}: {r}")),
            (m, r) => m.or(r),
        };
        Readiness {
            state,
            message: message.filter(|_| state != State::Available),
            url: None,
        }
    }
}

/// The scheduler's model states (apis/mlops/scheduler ModelStatus.ModelState, v2.10) from which
/// a Model does not become available by itself.
const FAILED_STATES: &[&str] = &[
    "ModelFailed",
    "ScheduleFailed",
    "ModelTerminating",
    "ModelTerminated",
    "ModelTerminateFailed",
];

/// Seldon Core 2's `Experiment` (`mlops.seldon.io/v1alpha1`).
pub(crate) const EXPERIMENT: Resource = Resource {
    group: "mlops.seldon.io",
    version: "v1alpha1",
    kind: "Experiment",
    plural: "experiments",
};

/// The canary Model of a rollout of `name`.
fn canary_name(name: &str) -> String {
    format!("{name}-canary")
}

/// Seldon Core 2.10.2: a second Model `<name>-canary` with the new version, and an Experiment
/// `<name>` with `default: <name>` and candidates `<name>` (weight 100-P) and `<name>-canary`
/// (weight P): with `default` set the split applies to requests addressed to `<name>` itself
/// (scheduler/pkg/envoy/processor/incremental.go); the scheduler requires `default` among the
/// candidates (scheduler/pkg/store/experiment/validate.go). Weights are relative.
impl TrafficSplit for SeldonV2 {
    fn split(&self, stable: &Value, _canary: &Value, _percent: u8) -> Value {
        stable.clone()
    }

    fn companions(
        &self,
        name: &str,
        stable: &Value,
        canary: &Value,
        percent: u8,
    ) -> Vec<Companion> {
        let canary_model = canary_name(name);
        let mut model = canary.clone();
        model["metadata"]["name"] = Value::from(canary_model.clone());
        model["metadata"]["annotations"][ANN_CANARY_OF] = Value::from(name);
        let metadata = &stable["metadata"];
        let experiment = json!({
            "apiVersion": EXPERIMENT.api_version(),
            "kind": EXPERIMENT.kind,
            "metadata": {
                "name": name,
                "labels": metadata["labels"],
                "annotations": { ANN_CANARY_OF: name },
            },
            "spec": {
                "default": name,
                "candidates": [
                    { "name": name, "weight": 100 - u32::from(percent) },
                    { "name": canary_model, "weight": u32::from(percent) },
                ],
            },
        });
        vec![
            Companion {
                resource: self.resource(),
                name: canary_model,
                object: model,
            },
            Companion {
                resource: EXPERIMENT,
                name: name.to_string(),
                object: experiment,
            },
        ]
    }

    /// The Experiment first: traffic goes back to `<name>` before its candidate goes.
    fn companion_names(&self, name: &str) -> Vec<(Resource, String)> {
        vec![
            (EXPERIMENT, name.to_string()),
            (self.resource(), canary_name(name)),
        ]
    }

    fn canary_object(&self, name: &str) -> Option<String> {
        Some(canary_name(name))
    }

    /// The canary Model's own readiness (`ModelReady`): the Experiment routes to it once it is
    /// Available (the scheduler reverts the route to the default model otherwise).
    fn canary_status(
        &self,
        _name: &str,
        status: &Value,
        generation: Option<i64>,
        _percent: u8,
    ) -> CanaryStatus {
        CanaryStatus {
            readiness: readiness_of(self, generation, status),
            available_since: true_since(status, "ModelReady"),
        }
    }

    fn source(&self) -> &'static str {
        "Seldon Core 2.10 Experiment (mlops.seldon.io/v1alpha1) between two Models"
    }
}
