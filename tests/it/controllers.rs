//! Helpers for the status and feedback suites: a namespace and model prefix per test,
//! and statuses written the way each stack's controller writes them (the sandbox runs no
//! controllers).
#![allow(dead_code)]

use serde_json::{json, Value};

use crate::common::{run_expect, unique, Sandbox};

pub fn kind(target: &str) -> &'static str {
    m2s::targets::by_id(target).unwrap().resource().kind
}

/// A condition as Go controllers serialize it: empty reason and message left out (omitempty).
pub fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    let mut c =
        json!({"type": type_, "status": status, "lastTransitionTime": "2026-01-01T00:00:00Z"});
    for (k, v) in [("reason", reason), ("message", message)] {
        if !v.is_empty() {
            c[k] = json!(v);
        }
    }
    c
}

/// What the status says, and what m2s must read from it.
pub struct Written {
    pub status: Value,
    pub message: Option<String>,
    pub url: Option<String>,
}

/// The status `target`'s controller writes for `state` of object `name` at `generation`.
pub fn controller_status(
    target: &str,
    state: &str,
    ns: &str,
    name: &str,
    generation: i64,
) -> Written {
    let w = |status: Value, message: Option<String>, url: Option<String>| Written {
        status,
        message,
        url,
    };
    match (target, state) {
        // operator/controllers/seldondeployment_controller.go
        ("seldon-v1", "Creating") => w(json!({"state": "Creating"}), None, None),
        ("seldon-v1", "Available") => {
            let url =
                format!("http://{name}-default.{ns}.svc.cluster.local:8000/api/v1.0/predictions");
            w(
                json!({"state": "Available", "replicas": 1, "address": {"url": url}}),
                None,
                Some(url),
            )
        }
        ("seldon-v1", "Failed") => {
            let why = format!("Deployment.apps \"{name}-default-0-model\" is invalid: spec.template.spec.containers[0].image: Required value");
            w(
                json!({"state": "Failed", "description": why}),
                Some(why),
                None,
            )
        }
        // pkg/apis/serving/v1beta1/inference_service_status.go (serverless: knative's conditions)
        ("kserve", "Creating") => {
            let why = format!(
                "Configuration \"{name}-predictor\" is waiting for a Revision to become ready."
            );
            w(
                json!({"observedGeneration": generation, "conditions": [
                    cond("IngressReady", "Unknown", "", ""),
                    cond("PredictorReady", "Unknown", "RevisionMissing", &why),
                    cond("Ready", "Unknown", "RevisionMissing", &why),
                ]}),
                Some(format!("RevisionMissing: {why}")),
                None,
            )
        }
        ("kserve", "Available") => {
            let url = format!("http://{name}.{ns}.example.com");
            w(
                json!({"observedGeneration": generation, "url": url,
                       "address": {"url": format!("http://{name}.{ns}.svc.cluster.local")},
                       "conditions": [
                    cond("IngressReady", "True", "", ""),
                    cond("PredictorReady", "True", "", ""),
                    cond("Ready", "True", "", ""),
                ]}),
                None,
                Some(url),
            )
        }
        ("kserve", "Failed") => {
            let why = format!("Revision \"{name}-predictor-00001\" failed with message: Back-off pulling image \"kserve/mlserver:1.5.0\".");
            w(
                json!({"observedGeneration": generation, "conditions": [
                    cond("IngressReady", "False", "Predictor ingress not created", ""),
                    cond("PredictorReady", "False", "RevisionFailed", &why),
                    cond("Ready", "False", "RevisionFailed", &why),
                ]}),
                Some(format!("RevisionFailed: {why}")),
                None,
            )
        }
        // operator/scheduler/model.go: message = the scheduler's state, reason = its reason
        ("seldon-v2", "Creating") => w(
            json!({"observedGeneration": generation, "replicas": 1, "conditions": [
                cond("ModelReady", "False", "", "ModelProgressing"),
                cond("Ready", "False", "", "ModelProgressing"),
            ]}),
            Some("ModelProgressing".into()),
            None,
        ),
        ("seldon-v2", "Available") => w(
            json!({"observedGeneration": generation, "replicas": 1, "availableReplicas": 1,
                   "conditions": [
                cond("ModelReady", "True", "", "ModelAvailable"),
                cond("Ready", "True", "", "ModelAvailable"),
            ]}),
            None,
            None,
        ),
        ("seldon-v2", "Failed") => {
            let why = format!("failed to schedule model {name}. [failed replica filter RequirementsReplicaFilter for server replica mlserver:0 : model requirements [mlflow] replica capabilities [sklearn]]");
            w(
                json!({"observedGeneration": generation, "conditions": [
                    cond("ModelReady", "False", &why, "ScheduleFailed"),
                    cond("Ready", "False", &why, "ScheduleFailed"),
                ]}),
                Some(format!("ScheduleFailed: {why}")),
                None,
            )
        }
        _ => unreachable!("{target} {state}"),
    }
}

pub struct Setup {
    pub sb: Sandbox,
    pub ns: String,
    pub prefix: String,
    pub target: &'static str,
    pub experiment: String,
}

impl Setup {
    pub fn new(sb: Sandbox, target: &'static str) -> Setup {
        // Short names: KServe's host label <name>-predictor-<namespace> has at most 63.
        let ns = sb.namespace("s");
        let prefix = unique("m");
        let experiment = sb.mlflow().experiment(&unique("status-exp"));
        Setup {
            sb,
            ns,
            prefix,
            target,
            experiment,
        }
    }
    pub fn m2s(&self) -> std::process::Command {
        self.sb.m2s_target(&self.ns, &self.prefix, self.target)
    }
    /// A registered model with a new version in Production; returns (model, object name).
    pub fn production(&self, suffix: &str) -> (String, String) {
        let model = format!("{}-{suffix}", self.prefix);
        let ml = self.sb.mlflow();
        ml.model(&model);
        self.promote(&model);
        (model.clone(), format!("{model}-production"))
    }
    /// A new version of `model`, moved to Production.
    pub fn promote(&self, model: &str) -> String {
        let ml = self.sb.mlflow();
        let v = ml.version_from_run(model, &self.experiment);
        ml.stage(model, &v, "Production");
        v
    }
    /// Writes the controller's status for `state` into `name`; what m2s must read from it.
    pub fn write_status(&self, name: &str, state: &str) -> Written {
        let generation = self.sb.generation(&self.ns, self.target, name);
        let w = controller_status(self.target, state, &self.ns, name, generation);
        self.sb.set_status(&self.ns, self.target, name, &w.status);
        w
    }
    pub fn status_json(&self) -> Value {
        let r = run_expect(self.m2s().args(["status", "-o", "json"]), 0);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
    }
}
