#!/usr/bin/env bash
# `make demo`: seeds a few models into the sandbox's MLflow, runs `m2s plan` and `m2s sync`
# against the sandbox's kube-apiserver, shows the SeldonDeployments, then moves a stage and an
# alias and syncs again. Expects the sandbox environment (make sandbox-up) to be sourced.
set -euo pipefail
: "${M2S_SANDBOX_MLFLOW_URL:?run through make demo (the sandbox environment is missing)}"
M2S="${M2S_BIN:-target/release/m2s}"
KUBECTL="$M2S_SANDBOX_BIN/kubectl --kubeconfig $M2S_SANDBOX_KUBECONFIG"
API="$M2S_SANDBOX_MLFLOW_URL/api/2.0/mlflow"
RUN_ID="$(date +%s)"
NS="demo-$RUN_ID"
PREFIX="demo$RUN_ID"

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
post registered-models/set-tag "{\"name\":\"$PREFIX-fraud-detector\",\"key\":\"deployment-image\",\"value\":\"seldonio/mlflowserver:1.18.0\"}" >/dev/null
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
export M2S_SELDON_DEPLOYMENT_NS="$NS"
export M2S_MLFLOW_STORAGE_ROOT="pvc://mlflow-artifacts/mlruns"
export M2S_ALIASES="champion"
export M2S_MODEL_FILTER="name LIKE '$PREFIX-%'"

show() {
  $KUBECTL -n "$NS" get seldondeployments.machinelearning.seldon.io -o \
    'custom-columns=NAME:.metadata.name,MODEL:.metadata.annotations.m2s\.io/model-name,VERSION:.metadata.annotations.m2s\.io/model-version,STAGE:.metadata.annotations.m2s\.io/stage,ALIAS:.metadata.annotations.m2s\.io/alias,MODEL-URI:.spec.predictors[0].graph.modelUri'
}

step "m2s plan"
$M2S plan
step "m2s sync"
$M2S sync
step "SeldonDeployments in namespace $NS"
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
echo "Demo namespace: $NS   (MLflow UI: $M2S_SANDBOX_MLFLOW_URL, kubeconfig: $M2S_SANDBOX_KUBECONFIG)"

step "m2s status: is each object serving? (the sandbox runs no controllers: their states stay Pending)"
$M2S status
