#!/usr/bin/env bash
# `make demo` (TARGET=seldon-v1|kserve|seldon-v2): seeds a few models into the sandbox's MLflow,
# one of them with its own resources (m2s.* tags), runs `m2s plan` and `m2s sync` against the
# sandbox's kube-apiserver, shows the objects, then moves a stage and an alias and syncs again.
# Then a model logged as users log it is deployed, MLflow 3's default (skops) version of it is
# refused by preflight, and the demo ends with one prediction through the deployed object,
# downloaded and served by the stack's own code (tests/serving/harness.py).
# Expects the sandbox environment (make sandbox-up) to be sourced.
set -euo pipefail
: "${M2S_SANDBOX_MLFLOW_URL:?run through make demo (the sandbox environment is missing)}"
M2S="${M2S_BIN:-${CARGO_TARGET_DIR:-target}/release/m2s}"
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
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
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
# The MLmodel each seeded version gets (what MLflow writes for a scikit-learn model saved with
# cloudpickle): preflight reads it before deploying the version.
MLMODEL='flavors:
  python_function: {loader_module: mlflow.sklearn, model_path: model.pkl, python_version: 3.11.7}
  sklearn: {pickled_model: model.pkl, serialization_format: cloudpickle, sklearn_version: 1.9.1}
mlflow_version: 3.17.2
'
new_version() { # new_version MODEL: a run with an MLmodel and a version from it; prints its number
  local run
  run="$(post runs/create "{\"experiment_id\":\"$EXP\"}" | json_field 'd["run"]["info"]["run_id"]')"
  printf '%s' "$MLMODEL" | curl -fsS -X PUT --data-binary @- \
    "$M2S_SANDBOX_MLFLOW_URL/api/2.0/mlflow-artifacts/artifacts/$EXP/$run/artifacts/model/MLmodel" >/dev/null
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
[[ "$TARGET" == seldon-v2 ]] || tag fraud-detector deployment-image seldonio/mlserver:1.7.1
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
# The bucket behind MLflow's --artifacts-destination: where the serving pods fetch the files.
export M2S_MLFLOW_STORAGE_ROOT="$M2S_SANDBOX_STORAGE_ROOT"
export M2S_ALIASES="champion"
export M2S_MODEL_FILTER="name LIKE '$PREFIX-%'"
# The storage credentials a team makes for S3-compatible storage (tests/serving/examples/,
# pointed at the sandbox's S3 stand-in), and the setting that points at them.
for f in "$ROOT"/tests/serving/examples/*.yaml; do
  echo ---
  sed -e "s|http://minio.storage.svc:9000|$M2S_SANDBOX_S3_ENDPOINT|; s|minio.storage.svc:9000|${M2S_SANDBOX_S3_ENDPOINT#http://}|" \
    -e "s|\(ACCESS_KEY_ID\|access_key_id\): REPLACE_ME|\1: $M2S_SANDBOX_S3_ACCESS_KEY|" \
    -e "s|\(SECRET_ACCESS_KEY\|secret_access_key\): REPLACE_ME|\1: $M2S_SANDBOX_S3_SECRET_KEY|" "$f"
done | $KUBECTL apply -n "$NS" -f - >/dev/null
case "$TARGET" in
  kserve) export M2S_SERVICE_ACCOUNT=models-s3 ;;
  # Seldon Core 1 on MLServer (its default protocol runs seldonio/mlflowserver, which builds a
  # conda environment at pod start), with an MLServer that reads MLflow 3's models.
  seldon-v1) export M2S_MODEL_SECRET=models-rclone M2S_SELDON_PROTOCOL=v2 \
    M2S_SELDON_DEF_IMAGE=seldonio/mlserver:1.7.1 M2S_RUNTIME_MLFLOW_VERSION=2.19.0 ;;
  seldon-v2) export M2S_MODEL_SECRET=models-s3-rclone ;;
esac

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

step "A model logged as users log it (mlflow.sklearn.log_model, cloudpickle, input example), alias champion; m2s sync"
[[ "${M2S_SANDBOX_SERVING:-0}" == 1 ]] || {
  echo "demo: the sandbox's serving tools are missing (${M2S_SANDBOX_SERVING_MISSING:-}): run tests/sandbox/install.sh" >&2; exit 1; }
SERVED="$PREFIX-iris-served"
log_model() { "$M2S_SANDBOX_MLFLOW_PYTHON" "$ROOT/tests/serving/log_model.py" --name "$SERVED" \
  --experiment "$PREFIX-served" --alias champion "$@" 2>/dev/null; }
logged="$(log_model --format cloudpickle)"
echo "$logged" | json_field '"logged version %s of %s (%s, MLflow %s), files at %s" % (d["version"], d["name"], d["format"], d["mlflow_version"], d["storage_uri"])'
$M2S sync
OBJECT="$($KUBECTL -n "$NS" get "$RESOURCE" -o json | python3 -c 'import json, sys
a = lambda o: o["metadata"]["annotations"]
print(next(o["metadata"]["name"] for o in json.load(sys.stdin)["items"]
           if a(o).get("m2s.io/model-name") == sys.argv[1] and a(o).get("m2s.io/alias") == "champion"))' "$SERVED")"
if [[ "$($M2S_SANDBOX_MLFLOW_PYTHON -c 'import mlflow; print(mlflow.__version__.split(".")[0])')" -ge 3 ]]; then
  step "The same model logged with MLflow 3's default format (skops): preflight refuses it, $OBJECT keeps serving"
  log_model --format default | json_field '"logged version %s (%s)" % (d["version"], d["format"])'
  $M2S plan || echo "(m2s plan exited $?: the entry cannot be deployed)"
fi

step "One prediction through $OBJECT, downloaded and served by the stack's own code (tests/serving/harness.py)"
WORK="$(mktemp -d "/tmp/m2s-demo-$PREFIX.XXXX")"
$KUBECTL -n "$NS" get "$RESOURCE" "$OBJECT" -o json >"$WORK/object.json"
$KUBECTL -n "$NS" get secret,serviceaccount -o json >"$WORK/resources.json"
python3 "$ROOT/tests/serving/harness.py" --target "$TARGET" --object "$WORK/object.json" \
  --resources "$WORK/resources.json" --work "$WORK/node" >"$WORK/result.json" || true
python3 - "$WORK/result.json" "$logged" <<'PY'
import json, sys
r, logged = json.load(open(sys.argv[1])), json.loads(sys.argv[2])
if r["stage"] != "served":
    sys.exit(f"demo: the harness could not serve it ({r['stage']}): {r.get('error')} (work: {r['work']})")
print(f"  input:      {logged['input_example']['data']}")
print(f"  prediction: {r['prediction']}   (the model's own predict: {logged['prediction']})")
print(f"  served by:  {r['runtime']}, downloaded with {r['downloader']} from {r['uri']}")
PY
echo
echo "Demo namespace: $NS, target $TARGET   (MLflow UI: $M2S_SANDBOX_MLFLOW_URL, kubeconfig: $M2S_SANDBOX_KUBECONFIG)"
