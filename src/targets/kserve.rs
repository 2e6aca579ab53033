//! KServe `InferenceService` (`serving.kserve.io/v1beta1`): a predictor with
//! `modelFormat: mlflow` and the open inference protocol v2, served by KServe's MLServer runtime
//! (the shape of KServe's own MLflow guide).

use serde_json::{json, Value};

use std::collections::BTreeMap;

use super::split::{true_since, CanaryStatus, TrafficSplit};
use super::{
    check_fetchable, condition, readiness_of, text, Field, Protocol, Readiness, Resource, Runtime,
    Setting, State, Target,
};
use crate::naming;
use crate::settings::ServingSettings;

pub(crate) struct KServe;

const FIELDS: &[Field] = &[
    Field {
        setting: Setting::Image,
        pointer: "/spec/predictor/model/image",
        label: "image",
    },
    Field {
        setting: Setting::RegistrySecret,
        pointer: "/spec/predictor/imagePullSecrets",
        label: "image pull secret",
    },
    Field {
        setting: Setting::ServiceAccount,
        pointer: "/spec/predictor/serviceAccountName",
        label: "service account",
    },
    // KServe has no fixed replica count: m2s.replicas pins both bounds.
    Field {
        setting: Setting::Replicas,
        pointer: "/spec/predictor/minReplicas",
        label: "min replicas",
    },
    Field {
        setting: Setting::Replicas,
        pointer: "/spec/predictor/maxReplicas",
        label: "max replicas",
    },
    Field {
        setting: Setting::MinReplicas,
        pointer: "/spec/predictor/minReplicas",
        label: "min replicas",
    },
    Field {
        setting: Setting::MaxReplicas,
        pointer: "/spec/predictor/maxReplicas",
        label: "max replicas",
    },
    Field {
        setting: Setting::Cpu,
        pointer: "/spec/predictor/model/resources/requests/cpu",
        label: "cpu request",
    },
    Field {
        setting: Setting::Memory,
        pointer: "/spec/predictor/model/resources/requests/memory",
        label: "memory request",
    },
    Field {
        setting: Setting::Memory,
        pointer: "/spec/predictor/model/resources/limits/memory",
        label: "memory limit",
    },
    Field {
        setting: Setting::Gpu,
        pointer: "/spec/predictor/model/resources/limits/nvidia.com~1gpu",
        label: "gpu",
    },
];

/// KServe v0.20.0 `IsvcNameFmt` (pkg/apis/serving/v1beta1/inference_service_validation.go).
pub(crate) fn is_isvc_name(name: &str) -> bool {
    naming::is_dns1123_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
}

/// With KServe's default ingress `domainTemplate` (`{{ .Name }}-{{ .Namespace }}.…`), the
/// predictor's host label is `<name>-predictor-<namespace>`, and a DNS label has 63 characters.
pub(crate) const HOST_LABEL_SUFFIX: &str = "-predictor-";

/// KServe v0.20.0 `DefaultBlockedEnvVars` (pkg/validation/env_policy.go).
const BLOCKED_ENV: &[&str] = &["PYTHONPATH"];

impl Target for KServe {
    fn no_counterpart_hint(&self, setting: Setting) -> &'static str {
        match setting {
            Setting::ModelSecret => ": KServe reads storage credentials through the predictor's ServiceAccount; set M2S_SERVICE_ACCOUNT instead",
            _ => "",
        }
    }
    fn id(&self) -> &'static str {
        "kserve"
    }

    fn resource(&self) -> Resource {
        Resource {
            group: "serving.kserve.io",
            version: "v1beta1",
            kind: "InferenceService",
            plural: "inferenceservices",
        }
    }

    /// What KServe v0.20.0's controller accepts (`SupportedStorageURIPrefixList`,
    /// pkg/controller/v1beta1/inferenceservice/utils/utils.go) and its storage initializer
    /// fetches, less what an MLflow artifact never is (`file://`, `oci://`, `hf://`).
    fn fetchable_schemes(&self) -> &'static [&'static str] {
        &["s3", "gs", "pvc", "https", "http", "hdfs", "webhdfs"]
    }

    fn base_spec(&self, model_uri: &str) -> Value {
        json!({
            "predictor": {
                "model": {
                    "modelFormat": { "name": "mlflow" },
                    "protocolVersion": "v2",
                    "storageUri": model_uri,
                },
            },
        })
    }

    fn base_pointers(&self) -> &'static [&'static str] {
        &[
            "/spec/predictor/model/modelFormat",
            "/spec/predictor/model/protocolVersion",
            "/spec/predictor/model/storageUri",
        ]
    }

    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    /// The Helm chart's `kserve-mlserver` runtime; the kustomize manifests run
    /// `seldonio/mlserver:1.7.1` (MLflow 2.19.0), for which M2S_RUNTIME_MLFLOW_VERSION is set.
    fn runtime(&self, _protocol: Option<Protocol>) -> Runtime {
        Runtime {
            server: "seldonio/mlserver:1.5.0",
            mlflow: "2.10.2",
            source: "KServe v0.20.0's Helm chart (charts/kserve-runtime-configs/values.yaml, the kserve-mlserver runtime for modelFormat mlflow)",
        }
    }

    fn default_image_label(&self) -> &'static str {
        "(runtime default)"
    }

    fn finish(&self, _object: &mut Value, _settings: &ServingSettings) -> Result<(), String> {
        Ok(())
    }

    /// With KServe's default ingress `domainTemplate` the predictor's host label is
    /// `<name>-predictor-<namespace>`, at most 63 characters: the name gets what the namespace
    /// leaves (and never more than m2s's 45, below Knative's 53 for `<name>-predictor` and the
    /// 48 of the canary's `prev-<name>-predictor` tag and of Standard mode's
    /// `app: isvc.<name>-predictor` label).
    fn max_name_len(&self, namespace: &str) -> usize {
        (63 - HOST_LABEL_SUFFIX.len())
            .saturating_sub(namespace.len())
            .min(naming::MAX_NAME_LEN)
    }

    /// A namespace over 40 characters leaves less than the 12 of the shortest name.
    fn check_namespace(&self, namespace: &str) -> Result<(), String> {
        let room = self.max_name_len(namespace);
        if room < naming::MIN_HASHED_LEN {
            return Err(format!(
                "namespace {namespace:?} is {} characters: KServe's predictor host label <name>{HOST_LABEL_SUFFIX}<namespace> has at most 63 (its default ingress domainTemplate), which leaves {room} for a name, fewer than the {} of the shortest name m2s gives (m2s-1a2b3c4d); use a namespace of at most {} characters for target kserve",
                namespace.len(),
                naming::MIN_HASHED_LEN,
                63 - HOST_LABEL_SUFFIX.len() - naming::MIN_HASHED_LEN
            ));
        }
        Ok(())
    }

    /// The common name when it fits the namespace and starts with a letter; else m2s's hashed
    /// form behind `m2s-`, cut to fit.
    fn object_name(&self, model: &str, selector: &str, namespace: &str) -> String {
        let max = self.max_name_len(namespace);
        let name = naming::deployment_name(model, selector, max);
        if is_isvc_name(&name) {
            name
        } else {
            naming::prefixed_name("m2s", model, selector, max)
        }
    }

    /// KServe v0.20.0 (commit 1fb78105), pkg/apis/serving/v1beta1/inference_service_validation.go
    /// and component.go: the name format, min ≤ max replicas, no `predictor.model.name`;
    /// utils.go: the storage URI prefixes; plus the host-label length of the default
    /// ingress domain template.
    fn admit(&self, name: &str, object: &Value) -> Result<(), String> {
        if !is_isvc_name(name) {
            return Err(format!(
                "KServe refuses the name {name:?}: an InferenceService name must match ^[a-z]([-a-z0-9]*[a-z0-9])?$ (IsvcNameFmt, inference_service_validation.go, KServe v0.20.0)"
            ));
        }
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        let host_label = name.len() + HOST_LABEL_SUFFIX.len() + namespace.len();
        if host_label > 63 {
            return Err(format!(
                "KServe's predictor host label {name}{HOST_LABEL_SUFFIX}{namespace} would be {host_label} characters, more than a DNS label's 63 (KServe's default ingress domainTemplate); use a shorter namespace or model name"
            ));
        }
        let predictor = &object["spec"]["predictor"];
        if let (Some(min), Some(max)) = (
            predictor["minReplicas"].as_i64(),
            predictor["maxReplicas"].as_i64(),
        ) {
            if max != 0 && min > max {
                return Err(format!("KServe refuses minReplicas {min} above maxReplicas {max} (component.go, KServe v0.20.0)"));
            }
        }
        if predictor["model"].get("name").is_some() {
            return Err("KServe refuses predictor.model.name in a standard predictor (inference_service_validation.go, KServe v0.20.0)".into());
        }
        let containers = predictor["containers"].as_array().into_iter().flatten();
        for container in std::iter::once(&predictor["model"]).chain(containers) {
            let blocked = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| BLOCKED_ENV.contains(&e["name"].as_str().unwrap_or_default()));
            if blocked {
                return Err(format!("KServe refuses the environment variables {} in a predictor container (DefaultBlockedEnvVars, pkg/validation/env_policy.go, KServe v0.20.0); remove them from the overlay", BLOCKED_ENV.join(", ")));
            }
        }
        let uri = predictor["model"]["storageUri"]
            .as_str()
            .unwrap_or_default();
        check_fetchable(self, uri, "KServe's storage initializer")
    }

    fn traffic_split(&self) -> Option<&'static dyn TrafficSplit> {
        Some(&KServe)
    }

    /// KServe v0.20.0 (pkg/apis/serving/v1beta1/inference_service_status.go): `Ready` is the
    /// knative-style aggregate of `PredictorReady` and `IngressReady`; `status.url` is set once
    /// the service is routable. `Ready` is `False` while a raw-deployment predictor starts (its
    /// Deployment's `MinimumReplicasUnavailable`, or IngressReady's "Predictor ingress not
    /// created"), so a failure needs more: the model status (`FailedToLoad`,
    /// `BlockedByFailedLoad`, `InvalidSpec`), or a predictor that is `False` for another reason
    /// (knative's RevisionFailed, a Deployment's ProgressDeadlineExceeded, …).
    fn readiness(&self, status: &Value) -> Readiness {
        let Some(ready) = condition(status, "Ready") else {
            return Readiness::pending();
        };
        let url = text(&status["url"]);
        if ready["status"] == "True" {
            return Readiness {
                state: State::Available,
                message: None,
                url,
            };
        }
        let model = &status["modelStatus"];
        let load_failed = matches!(
            model["transitionStatus"].as_str(),
            Some("BlockedByFailedLoad" | "InvalidSpec")
        ) || model["states"]["targetModelState"] == "FailedToLoad";
        if load_failed {
            let info = &model["lastFailureInfo"];
            return Readiness {
                state: State::Failed,
                message: reason_message(info).or_else(|| reason_message(ready)),
                url,
            };
        }
        // The predictor's own condition says why when it is the one not ready.
        let cause = condition(status, "PredictorReady")
            .filter(|p| p["status"] != "True")
            .unwrap_or(ready);
        let reason = cause["reason"].as_str().unwrap_or_default();
        let failed = cause["status"] == "False" && !STARTING_REASONS.contains(&reason);
        Readiness {
            state: if failed {
                State::Failed
            } else {
                State::Creating
            },
            message: reason_message(cause),
            url,
        }
    }
}

/// Reasons of a `False` predictor or `Ready` condition that mean "still starting", not
/// "failed" (KServe v0.20.0, raw deployment mode): no Deployment condition yet (no reason), the
/// Deployment not yet at its minimum availability, the ingress waiting for the predictor.
const STARTING_REASONS: &[&str] = &[
    "",
    "MinimumReplicasUnavailable",
    "Predictor ingress not created",
];

/// "reason: message" of a condition or failure record, or whichever of them is set.
fn reason_message(v: &Value) -> Option<String> {
    match (text(&v["reason"]), text(&v["message"])) {
        (Some(r), Some(m)) => Some(format!("{r}: {m}")),
        (r, m) => m.or(r),
    }
}

/// The deployment modes in which KServe v0.20 ignores `canaryTrafficPercent` (the legacy and the
/// current name of raw deployments; pkg/constants/constants.go).
const NO_CANARY_MODES: &[&str] = &["RawDeployment", "Standard"];

/// KServe v0.20.0: the new `storageUri` with `spec.predictor.canaryTrafficPercent: P` sends P %
/// to the latest ready revision and the rest to `latestRolledoutRevision`
/// (reconcilers/knative/ksvc_reconciler.go); only in Serverless (Knative) mode.
impl TrafficSplit for KServe {
    /// In RawDeployment / Standard mode (`status.deploymentMode`, or the
    /// `serving.kserve.io/deploymentMode` annotation) the field is silently ignored.
    fn refuse(&self, annotations: &BTreeMap<String, String>, status: &Value) -> Option<String> {
        let mode = status["deploymentMode"].as_str().or(annotations
            .get("serving.kserve.io/deploymentMode")
            .map(String::as_str))?;
        NO_CANARY_MODES.contains(&mode).then(|| {
            format!("KServe v0.20 ignores canaryTrafficPercent in {mode} mode (only its Serverless/Knative mode splits traffic, reconcilers/knative/ksvc_reconciler.go): m2s.canary cannot roll this InferenceService out in steps; remove the tag, or serve it in Serverless mode")
        })
    }

    fn split(&self, _stable: &Value, canary: &Value, percent: u8) -> Value {
        let mut object = canary.clone();
        object["spec"]["predictor"]["canaryTrafficPercent"] = Value::from(percent);
        object
    }

    /// Serving the step: `Ready` for this generation, the latest created revision ready, and
    /// the traffic entry of the latest revision at `percent` % (what KServe's own e2e test checks).
    fn canary_status(
        &self,
        _name: &str,
        status: &Value,
        generation: Option<i64>,
        percent: u8,
    ) -> CanaryStatus {
        let mut readiness = readiness_of(self, generation, status);
        let since = true_since(status, "Ready");
        if readiness.state == State::Available {
            let predictor = &status["components"]["predictor"];
            let latest_ready = predictor["latestReadyRevision"].as_str();
            let created_ready = latest_ready.is_some()
                && predictor["latestCreatedRevision"].as_str() == latest_ready;
            let split = predictor["traffic"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["latestRevision"] == true);
            let at = split.and_then(|t| t["percent"].as_u64());
            if !created_ready || at != Some(u64::from(percent)) {
                readiness = Readiness {
                    state: State::Creating,
                    message: Some(format!(
                        "the latest revision takes {} % of the traffic, not yet {percent} %",
                        at.map_or("no".to_string(), |a| a.to_string())
                    )),
                    url: readiness.url,
                };
            }
        }
        CanaryStatus {
            readiness,
            available_since: since,
        }
    }

    fn source(&self) -> &'static str {
        "KServe v0.20.0 spec.predictor.canaryTrafficPercent (Serverless mode)"
    }
}
