#!/usr/bin/env bash
# `make demo` (TARGET=seldon-v1|kserve|seldon-v2): seeds a few models into the sandbox's MLflow,
# one of them with its own resources (m2s.* tags), runs `m2s plan` and `m2s sync` against the
# sandbox's kube-apiserver, shows the objects, then moves a stage and an alias and syncs again.
# Expects the sandbox environment (make sandbox-up) to be sourced.
set -euo pipefail
: "${M2S_SANDBOX_MLFLOW_URL:?run through make demo (the sandbox environment is missing)}"
M2S="${M2S_BIN:-target/release/m2s}"
TARGET="${TARGET:-seldon-v1}"
case "$TARGET" in
  seldon-v1) RESOURCE=seldondeployments.machinelearning.seldon.io
    URI='.spec.predictors[0].graph.modelUri'; REPLICAS='.spec.predictors[0].replicas'
    MEMORY='.spec.predictors[0].componentSpecs[0].spec.containers[0].resources.requests.memory' ;;
  kserve) RESOURCE=inferenceservices.serving.kserve.io
    URI='.spec.predictor.model.storageUri'; REPLICAS='.spec.predictor.minReplicas'
    MEMORY='.spec.predictor.model.resources.requests.memory' ;;
  seldon-v2) RESOURCE=models.mlops.seldon.io
    URI='.spec.storageUri'; REPLICAS='.spec.replicas'; MEMORY='.spec.memory' ;;
  *) echo "demo: unknown TARGET=$TARGET (seldon-v1, kserve, seldon-v2)" >&2; exit 1 ;;
esac
KUBECTL="$M2S_SANDBOX_BIN/kubectl --kubeconfig $M2S_SANDBOX_KUBECONFIG"
API="$M2S_SANDBOX_MLFLOW_URL/api/2.0/mlflow"
# Short names: KServe's predictor host label <name>-predictor-<namespace> has 63 characters at most.
RUN_ID="$(date +%s | tail -c 6)"
NS="demo-$RUN_ID"
PREFIX="d$RUN_ID"

post() { curl -fsS -H 'Content-Type: application/json' -X POST "$API/$1" -d "$2"; }
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Seeding MLflow at $M2S_SANDBOX_MLFLOW_URL (models $PREFIX-*)"
EXP="$(post experiments/create "{\"name\":\"$PREFIX\"}" | json_field 'd["experiment_id"]')"
new_version() { # new_version MODEL: a run and a version from it; prints the version number
  local run
  run="$(post runs/create "{\"experiment_id\":\"$EXP\"}" | json_field 'd["run"]["info"]["run_id"]')"
  post model-versions/create "{\"name\":\"$1\",\"source\":\"runs:/$run/model\",\"run_id\":\"$run\"}" \
    | json_field 'd["model_version"]["version"]'
}
stage() { post model-versions/transition-stage "{\"name\":\"$1\",\"version\":\"$2\",\"stage\":\"$3\",\"archive_existing_versions\":false}" >/dev/null; }
for m in iris-classifier fraud-detector churn; do
  post registered-models/create "{\"name\":\"$PREFIX-$m\"}" >/dev/null
done
tag() { post registered-models/set-tag "{\"name\":\"$PREFIX-$1\",\"key\":\"$2\",\"value\":\"$3\"}" >/dev/null; }
# fraud-detector is bigger than the others: its owners say so in MLflow.
tag fraud-detector m2s.memory 2Gi
tag fraud-detector m2s.replicas 2
# A serving image of its own (a Seldon Core 2 Model takes the image of its Server: no such tag).
[[ "$TARGET" == seldon-v2 ]] || tag fraud-detector deployment-image seldonio/mlflowserver:1.18.0
v1="$(new_version "$PREFIX-iris-classifier")"; v2="$(new_version "$PREFIX-iris-classifier")"
stage "$PREFIX-iris-classifier" "$v1" Production
stage "$PREFIX-iris-classifier" "$v2" Staging
f1="$(new_version "$PREFIX-fraud-detector")"
stage "$PREFIX-fraud-detector" "$f1" Production
post registered-models/alias "{\"name\":\"$PREFIX-fraud-detector\",\"alias\":\"champion\",\"version\":\"$f1\"}" >/dev/null
new_version "$PREFIX-churn" >/dev/null  # no stage, no alias: not deployed
$KUBECTL create namespace "$NS" >/dev/null

export KUBECONFIG="$M2S_SANDBOX_KUBECONFIG"
export M2S_MLFLOW_HOST="$M2S_SANDBOX_MLFLOW_URL"
export M2S_TARGET="$TARGET"
export M2S_NAMESPACE="$NS"
export M2S_MLFLOW_STORAGE_ROOT="s3://mlflow/mlruns"
export M2S_ALIASES="champion"
export M2S_MODEL_FILTER="name LIKE '$PREFIX-%'"

show() {
  $KUBECTL -n "$NS" get "$RESOURCE" -o \
    "custom-columns=NAME:.metadata.name,MODEL:.metadata.annotations.m2s\.io/model-name,VERSION:.metadata.annotations.m2s\.io/model-version,STAGE:.metadata.annotations.m2s\.io/stage,ALIAS:.metadata.annotations.m2s\.io/alias,REPLICAS:$REPLICAS,MEMORY:$MEMORY,MODEL-URI:$URI"
}

step "m2s plan"
$M2S plan
step "m2s sync"
$M2S sync
step "$RESOURCE in namespace $NS (target $TARGET)"
show

step "A data scientist promotes iris v$v2 to Production (v1 archived, Staging now empty); m2s plan -o json"
stage "$PREFIX-iris-classifier" "$v2" Production
stage "$PREFIX-iris-classifier" "$v1" Archived
$M2S plan -o json --detailed-exitcode || [[ $? -eq 2 ]]
step "m2s sync"
$M2S sync
show
step "m2s plan --detailed-exitcode (nothing left to do: exit 0)"
$M2S plan --detailed-exitcode
echo
step "m2s status: is each object serving? (the sandbox runs no controllers: their states stay Pending)"
$M2S status
echo
echo "Demo namespace: $NS, target $TARGET   (MLflow UI: $M2S_SANDBOX_MLFLOW_URL, kubeconfig: $M2S_SANDBOX_KUBECONFIG)"
