//! Each target's readiness mapping, with statuses shaped as each stack's controller writes them
//! (Seldon Core 1.18 operator, KServe v0.20.0 controller, Seldon Core 2.10 operator).

use super::super::*;

fn target(id: &str) -> &'static dyn Target {
    by_id(id).unwrap()
}

fn read(id: &str, status: Value) -> (State, Option<String>, Option<String>) {
    let r = target(id).readiness(&status);
    (r.state, r.message, r.url)
}

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

#[test]
fn no_status_is_pending_on_every_target() {
    for t in TARGETS {
        for status in [Value::Null, json!({}), json!({"replicas": 1})] {
            assert_eq!(t.readiness(&status), Readiness::pending(), "{}", t.id());
        }
    }
}

#[test]
fn seldon_v1_reads_state_description_and_address() {
    // operator/controllers/seldondeployment_controller.go: Creating until every Deployment,
    // Service and HPA is ready, then Available; Failed with the error as description.
    assert_eq!(
        read("seldon-v1", json!({"state": "Creating", "description": ""})),
        (State::Creating, None, None)
    );
    let url = "http://iris-production-default.models.svc.cluster.local:8000/api/v1.0/predictions";
    assert_eq!(
        read(
            "seldon-v1",
            json!({"state": "Available", "description": "", "address": {"url": url}, "replicas": 1})
        ),
        (State::Available, None, Some(url.to_string()))
    );
    assert_eq!(
        read(
            "seldon-v1",
            json!({"state": "Failed", "description": "Deployment.apps \"x\" is invalid"})
        ),
        (
            State::Failed,
            Some("Deployment.apps \"x\" is invalid".into()),
            None
        )
    );
    // A state this version of m2s does not know is still being worked on, not failed.
    assert_eq!(
        read("seldon-v1", json!({"state": "Updating"})).0,
        State::Creating
    );
}

#[test]
fn kserve_serverless_ready_condition() {
    // InitializeConditions: every condition Unknown.
    let init = json!({"conditions": [
        cond("IngressReady", "Unknown", "", ""),
        cond("PredictorReady", "Unknown", "", ""),
        cond("Ready", "Unknown", "", ""),
    ]});
    assert_eq!(read("kserve", init), (State::Creating, None, None));
    let url = "http://iris-production.models.example.com";
    let ready = json!({"url": url, "conditions": [
        cond("IngressReady", "True", "", ""),
        cond("PredictorReady", "True", "", ""),
        cond("Ready", "True", "", ""),
    ]});
    assert_eq!(
        read("kserve", ready),
        (State::Available, None, Some(url.into()))
    );
    // knative's Service Ready=False (the revision failed) propagates to PredictorReady.
    let msg =
        "Revision \"iris-production-predictor-00001\" failed with message: back-off pulling image.";
    let failed = json!({"conditions": [
        cond("IngressReady", "False", "Predictor ingress not created", ""),
        cond("PredictorReady", "False", "RevisionFailed", msg),
        cond("Ready", "False", "Predictor ingress not created", ""),
    ]});
    assert_eq!(
        read("kserve", failed),
        (State::Failed, Some(format!("RevisionFailed: {msg}")), None)
    );
}

#[test]
fn kserve_raw_deployment_start_is_not_a_failure() {
    // PropagateRawStatus: a Deployment without minimum availability makes PredictorReady False,
    // and the ingress reconciler marks IngressReady False until the predictor is ready.
    let starting = json!({"conditions": [
        cond("IngressReady", "False", "Predictor ingress not created", ""),
        cond("PredictorReady", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
        cond("Ready", "False", "Predictor ingress not created", ""),
    ]});
    assert_eq!(
        read("kserve", starting),
        (
            State::Creating,
            Some(
                "MinimumReplicasUnavailable: Deployment does not have minimum availability.".into()
            ),
            None
        )
    );
    let no_deployment_condition_yet = json!({"conditions": [
        cond("PredictorReady", "False", "", ""),
        cond("Ready", "False", "", ""),
    ]});
    assert_eq!(
        read("kserve", no_deployment_condition_yet).0,
        State::Creating
    );
    // The same conditions with a model that failed to load (PropagateModelStatus).
    let crashing = json!({
        "conditions": [
            cond("PredictorReady", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
            cond("Ready", "False", "Predictor ingress not created", ""),
        ],
        "modelStatus": {
            "transitionStatus": "BlockedByFailedLoad",
            "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
            "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "No such file: s3://mlflow/mlruns/1/abc/artifacts/model", "exitCode": 1}
        }
    });
    assert_eq!(
        read("kserve", crashing),
        (
            State::Failed,
            Some("ModelLoadFailed: No such file: s3://mlflow/mlruns/1/abc/artifacts/model".into()),
            None
        )
    );
    // A Deployment past its progress deadline is a failure.
    let stuck = json!({"conditions": [
        cond("PredictorReady", "False", "ProgressDeadlineExceeded", "ReplicaSet \"x\" has timed out progressing."),
        cond("Ready", "False", "ProgressDeadlineExceeded", "ReplicaSet \"x\" has timed out progressing."),
    ]});
    assert_eq!(read("kserve", stuck).0, State::Failed);
}

#[test]
fn seldon_v2_model_ready_condition() {
    // operator/scheduler/model.go: message = the scheduler's state, reason = its reason.
    let progressing = json!({"conditions": [
        cond("ModelReady", "False", "", "ModelProgressing"),
        cond("Ready", "False", "", "ModelProgressing"),
    ], "replicas": 1});
    assert_eq!(
        read("seldon-v2", progressing),
        (State::Creating, Some("ModelProgressing".into()), None)
    );
    let available = json!({"conditions": [
        cond("ModelReady", "True", "", "ModelAvailable"),
        cond("Ready", "True", "", "ModelAvailable"),
    ], "availableReplicas": 1});
    assert_eq!(read("seldon-v2", available), (State::Available, None, None));
    let reason = "failed to schedule model iris-production. [failed replica filter RequirementsReplicaFilter for server replica mlserver:0 : model requirements [mlflow] replica capabilities [sklearn]]";
    for scheduler_state in ["ScheduleFailed", "ModelFailed", "ModelTerminated"] {
        let failed = json!({"conditions": [
            cond("ModelReady", "False", reason, scheduler_state),
            cond("Ready", "False", reason, scheduler_state),
        ]});
        assert_eq!(
            read("seldon-v2", failed),
            (
                State::Failed,
                Some(format!("{scheduler_state}: {reason}")),
                None
            )
        );
    }
    // Older operators (before 2.8) put only a reason, no scheduler state: not known to fail.
    let old = json!({"conditions": [cond("Ready", "False", "some reason", "")]});
    assert_eq!(
        read("seldon-v2", old),
        (State::Creating, Some("some reason".into()), None)
    );
}

#[test]
fn a_status_of_an_older_generation_is_creating() {
    let status = json!({"state": "Available", "observedGeneration": 1,
                        "address": {"url": "http://x"}});
    let t = target("seldon-v1");
    assert_eq!(readiness_of(t, Some(1), &status).state, State::Available);
    let stale = readiness_of(t, Some(2), &status);
    assert_eq!(stale.state, State::Creating);
    assert!(
        stale
            .message
            .as_deref()
            .is_some_and(|m| m.contains("not yet seen generation 2")),
        "{stale:?}"
    );
    // Without observedGeneration the status is taken as it is; without one, still Pending.
    let plain = json!({"state": "Available"});
    assert_eq!(readiness_of(t, Some(5), &plain).state, State::Available);
    assert_eq!(readiness_of(t, Some(5), &Value::Null).state, State::Pending);
}
