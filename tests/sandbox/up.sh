#!/usr/bin/env bash
# Starts the sandbox (etcd + kube-apiserver with RBAC and TLS, the CRDs of the three serving
# targets and Seldon Core 2's Experiment, an S3 stand-in (moto) and an MLflow server that keeps
# its artifacts there) on free loopback ports, or reuses the one already running. Prints the
# environment to use it; the same lines are in $M2S_SANDBOX_DIR/env.
#   M2S_SANDBOX_MLFLOW=3|2      the MLflow line to serve: 3 (default) the newest 3.x, 2 the newest
#                               2.x; a running sandbox of the other line is restarted
#   KUBEBUILDER_ASSETS=DIR      use DIR/kube-apiserver and DIR/etcd instead of the cached build
#   M2S_TEST_KUBECONFIG=FILE    use that cluster; start no control plane
#   M2S_SELDON_CRD, M2S_KSERVE_CRD, M2S_SELDON_V2_CRD, M2S_SELDON_V2_EXPERIMENT_CRD=FILE
#                               install these CRDs (default: the real ones in ../shared when it is
#                               there, else the trimmed fixtures in tests/fixtures/)
source "$(dirname "$0")/lib.sh"
ENV_FILE="$M2S_SANDBOX_DIR/env"

sandbox_healthy() {
  [[ -f "$ENV_FILE" ]] || return 1
  # shellcheck disable=SC1090
  ( source "$ENV_FILE"
    curl -fsS --max-time 3 "$M2S_SANDBOX_MLFLOW_URL/health" >/dev/null 2>&1 || exit 1
    # The S3 stand-in behind MLflow's artifacts, and its bucket.
    [[ -n "${M2S_SANDBOX_S3_ENDPOINT:-}" ]] || exit 1
    curl -fsS --max-time 3 -o /dev/null "$M2S_SANDBOX_S3_ENDPOINT/$M2S_SANDBOX_S3_BUCKET" 2>/dev/null || exit 1
    # The MLflow line must be the one asked for.
    serving="$(curl -fsS --max-time 3 "$M2S_SANDBOX_MLFLOW_URL/version" 2>/dev/null)" || exit 1
    if [[ "${serving%%.*}" != "$M2S_SANDBOX_MLFLOW" ]]; then
      log "the running sandbox serves MLflow $serving, not the $M2S_SANDBOX_MLFLOW.x line asked for (M2S_SANDBOX_MLFLOW): restarting it"
      exit 1
    fi
    "$M2S_SANDBOX_BIN/kubectl" --kubeconfig "$M2S_SANDBOX_KUBECONFIG" --request-timeout=5s \
      get --raw /readyz >/dev/null 2>&1 || exit 1
    # The CRDs must be the ones asked for (the real ones in CI, maybe the fixtures elsewhere).
    [[ "$(cat "$M2S_SANDBOX_DIR/crd-source" 2>/dev/null)" == "$(crd_sources)" ]] || exit 1
  )
}

SHARED_DIR="$(cd "$REPO_ROOT/.." && pwd)/shared"
# crd_file VAR SHARED_PATH FIXTURE: the CRD to install for one target.
crd_file() {
  local var="$1" shared="$SHARED_DIR/$2" fixture="$REPO_ROOT/tests/fixtures/$3"
  local crd="${!var:-}"
  if [[ -z "$crd" ]]; then
    if [[ -f "$shared" ]]; then crd="$shared"; else crd="$fixture"; fi
  fi
  [[ -f "$crd" ]] || fail "find CRD" "" "no CRD file at $crd ($var)"
  printf '%s\n' "$(cd "$(dirname "$crd")" && pwd)/$(basename "$crd")"
}
crd_files() {
  crd_file M2S_SELDON_CRD seldon/seldondeployments.machinelearning.seldon.io.v1.yaml seldon-crd.yaml
  crd_file M2S_KSERVE_CRD kserve/inferenceservices.serving.kserve.io.v1beta1.yaml kserve-crd.yaml
  crd_file M2S_SELDON_V2_CRD seldon/models.mlops.seldon.io.v1alpha1.yaml seldon-v2-crd.yaml
  # Seldon Core 2 splits a progressive rollout's traffic with an Experiment.
  crd_file M2S_SELDON_V2_EXPERIMENT_CRD seldon/experiments.mlops.seldon.io.v1alpha1.yaml seldon-v2-experiment-crd.yaml
}
crd_sources() {
  local f
  crd_files | while read -r f; do printf '%s %s\n' "$f" "$(sha256sum <"$f" | cut -c1-16)"; done
}

if sandbox_healthy; then
  log "reusing the running sandbox ($ENV_FILE)"
  cat "$ENV_FILE"
  exit 0
fi

bash "$SANDBOX_SCRIPTS/install.sh"

# Whatever is left of an earlier sandbox is stopped before a new one starts.
bash "$SANDBOX_SCRIPTS/down.sh" --quiet || true
if [[ -d "$M2S_SANDBOX_DIR" ]]; then
  rm -rf "$M2S_SANDBOX_DIR.prev"; mv "$M2S_SANDBOX_DIR" "$M2S_SANDBOX_DIR.prev"
fi
mkdir -p "$M2S_SANDBOX_DIR"/{logs,pki,etcd,mlflow}
# A start that fails half way stops what it had started (logs stay for reading).
sandbox_up=0
trap '((sandbox_up)) || bash "$SANDBOX_SCRIPTS/down.sh" --quiet' EXIT
chmod 700 "$M2S_SANDBOX_DIR"
LOGS="$M2S_SANDBOX_DIR/logs"
PKI="$M2S_SANDBOX_DIR/pki"
KUBECONFIG_FILE="$M2S_SANDBOX_DIR/kubeconfig"
KUBECTL="$BIN_DIR/kubectl"

start_bg() { # start_bg NAME LOGFILE CMD...: starts CMD detached, pid in $M2S_SANDBOX_DIR/NAME.pid
  local name="$1" logfile="$2"; shift 2
  setsid nohup "$@" >"$logfile" 2>&1 </dev/null &
  echo $! >"$M2S_SANDBOX_DIR/$name.pid"
}

pick_port() { # pick_port VAR: a free port, or the one in VAR's environment if it is free
  local want="${!1:-}"
  if [[ -n "$want" ]]; then
    port_in_use "$want" && fail "pick port for $1" "" "port $want ($1) is already in use"
    echo "$want"
  else
    free_port
  fi
}

if [[ -n "${M2S_TEST_KUBECONFIG:-}" ]]; then
  [[ -r "$M2S_TEST_KUBECONFIG" ]] || fail "use M2S_TEST_KUBECONFIG" "" "cannot read $M2S_TEST_KUBECONFIG"
  cp "$M2S_TEST_KUBECONFIG" "$KUBECONFIG_FILE"
  log "using the cluster of M2S_TEST_KUBECONFIG ($M2S_TEST_KUBECONFIG); no control plane started"
  AUDIT_LOG=""
else
  if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    APISERVER="$KUBEBUILDER_ASSETS/kube-apiserver"; ETCD="$KUBEBUILDER_ASSETS/etcd"
  else
    APISERVER="$BIN_DIR/kube-apiserver"; ETCD="$(command -v etcd)"
  fi

  log "generating TLS certificates and tokens (log: $LOGS/pki.log)"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -keyout ca.key -out ca.crt \
      -subj "/CN=m2s-sandbox-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile ext.cnf -out apiserver.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
  ) >"$LOGS/pki.log" 2>&1 || fail "generate certificates" "$LOGS/pki.log" "openssl failed"
  ADMIN_TOKEN="$(openssl rand -hex 24)"
  printf '%s,admin,admin,system:masters\n' "$ADMIN_TOKEN" >"$PKI/tokens.csv"
  chmod 600 "$PKI"/*.key "$PKI/tokens.csv"

  ETCD_PORT="$(pick_port M2S_SANDBOX_ETCD_PORT)"; ETCD_PEER_PORT="$(free_port)"
  log "starting etcd on 127.0.0.1:$ETCD_PORT (log: $LOGS/etcd.log)"
  start_bg etcd "$LOGS/etcd.log" "$ETCD" --name m2s-sandbox --data-dir "$M2S_SANDBOX_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "m2s-sandbox=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync
  wait_http etcd "http://127.0.0.1:$ETCD_PORT/health" 30 "$LOGS/etcd.log" "$(cat "$M2S_SANDBOX_DIR/etcd.pid")"

  # Audit log (metadata only) so benchmarks can count the requests a run sends.
  AUDIT_LOG="$M2S_SANDBOX_DIR/logs/audit.log"
  cat >"$PKI/audit-policy.yaml" <<'POL'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version"]
  - level: Metadata
POL
  API_PORT="$(pick_port M2S_SANDBOX_API_PORT)"
  log "starting kube-apiserver on https://127.0.0.1:$API_PORT (log: $LOGS/kube-apiserver.log)"
  start_bg kube-apiserver "$LOGS/kube-apiserver.log" "$APISERVER" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" --bind-address 127.0.0.1 --secure-port "$API_PORT" \
    --insecure-port 0 --cert-dir "$PKI" --tls-cert-file "$PKI/apiserver.crt" \
    --tls-private-key-file "$PKI/apiserver.key" --client-ca-file "$PKI/ca.crt" \
    --token-auth-file "$PKI/tokens.csv" --authorization-mode RBAC \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range 10.96.0.0/16 --advertise-address 127.0.0.1 \
    --audit-policy-file "$PKI/audit-policy.yaml" --audit-log-path "$AUDIT_LOG" \
    --audit-log-maxsize 200 --audit-log-maxbackup 2
  wait_http kube-apiserver "https://127.0.0.1:$API_PORT/readyz" 90 "$LOGS/kube-apiserver.log" \
    "$(cat "$M2S_SANDBOX_DIR/kube-apiserver.pid")" --cacert "$PKI/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN"

  cat >"$KUBECONFIG_FILE" <<KC
apiVersion: v1
kind: Config
clusters:
- name: m2s-sandbox
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: admin
  user:
    token: $ADMIN_TOKEN
contexts:
- name: m2s-sandbox
  context: {cluster: m2s-sandbox, user: admin, namespace: default}
current-context: m2s-sandbox
KC
  chmod 600 "$KUBECONFIG_FILE"
fi

# The CRDs: created (too large for client-side apply), replaced when they are other ones.
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --request-timeout=60s "$@"; }
deadline=$((SECONDS + 120))
while read -r CRD_FILE; do
  CRD_NAME="$(sed -n 's/^  name: //p' "$CRD_FILE" | head -n1)"
  [[ -n "$CRD_NAME" ]] || fail "read CRD name" "" "no metadata.name in $CRD_FILE"
  log "installing CRD $CRD_NAME from $CRD_FILE (log: $LOGS/crd.log)"
  if k get crd "$CRD_NAME" >>"$LOGS/crd.log" 2>&1; then
    run_step "replace CRD $CRD_NAME" "$LOGS/crd.log" k replace -f "$CRD_FILE"
  else
    run_step "create CRD $CRD_NAME" "$LOGS/crd.log" k create -f "$CRD_FILE"
  fi
  # Polled rather than `kubectl wait`: right after creation the CRD has no status yet, and
  # `kubectl wait` fails on that instead of waiting.
  until [[ "$(k get crd "$CRD_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}' 2>>"$LOGS/crd.log")" == "True" ]]; do
    ((SECONDS < deadline)) || fail "wait for CRD $CRD_NAME Established" "$LOGS/crd.log" "not Established after 120s"
    sleep 1
  done
  until k get "${CRD_NAME%%.*}.${CRD_NAME#*.}" -A >>"$LOGS/crd.log" 2>&1; do
    ((SECONDS < deadline)) || fail "wait for the API to serve $CRD_NAME" "$LOGS/crd.log" "not served after 120s"
    sleep 1
  done
done < <(crd_files)
crd_sources >"$M2S_SANDBOX_DIR/crd-source"

# The S3 stand-in: moto's server on loopback, in memory (a restarted sandbox starts empty, like its
# MLflow). It accepts any key pair; the sandbox's pair is exported all the same so that what reads
# it is written as it would be against real S3. Started through python with the sandbox directory
# as an argument, so that pid_alive (which looks for it in the command line) knows it as ours.
S3_PORT="$(pick_port M2S_SANDBOX_S3_PORT)"
S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
S3_ACCESS_KEY="m2s-sandbox"
S3_SECRET_KEY="m2s-sandbox-secret"
[[ -x "$TOOLS_VENV/bin/python" ]] || fail "start the S3 stand-in" "" "no tools venv at $TOOLS_VENV (tests/sandbox/install.sh makes it)"
log "starting the S3 stand-in (moto) on $S3_ENDPOINT (log: $LOGS/s3.log)"
start_bg s3 "$LOGS/s3.log" "$TOOLS_VENV/bin/python" -c \
  'import sys; from moto.server import main; main(sys.argv[2:])' "$M2S_SANDBOX_DIR" \
  -H 127.0.0.1 -p "$S3_PORT"
wait_http "S3 stand-in" "$S3_ENDPOINT/moto-api/" 60 "$LOGS/s3.log" "$(cat "$M2S_SANDBOX_DIR/s3.pid")"
# The bucket exists before MLflow writes to it (MLflow makes none).
run_step "create bucket s3://$S3_BUCKET" "$LOGS/s3.log" env AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" \
  AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" "$TOOLS_VENV/bin/python" -c '
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
s3.create_bucket(Bucket=sys.argv[2])
print("bucket", sys.argv[2], "made at", sys.argv[1])' "$S3_ENDPOINT" "$S3_BUCKET"
STORAGE_ROOT="s3://$S3_BUCKET/$S3_PREFIX"

MLFLOW_PORT="$(pick_port M2S_SANDBOX_MLFLOW_PORT)"
# Webhooks (MLflow 3.3+) to a receiver on loopback over http, with a fixed key so that a restarted
# server can still read its webhooks' secrets; a 1 s subscriber cache so tests see new webhooks
# at once. No GenAI job consumers (seven processes of ~230 MB that m2s never needs). MLflow 2.22
# reads none of these variables (its sources name none of them), so the 2.x line gets the same.
WEBHOOK_KEY_FILE="$M2S_SANDBOX_DIR/mlflow/webhook-encryption-key"
[[ -s "$WEBHOOK_KEY_FILE" ]] || python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())' >"$WEBHOOK_KEY_FILE"
chmod 600 "$WEBHOOK_KEY_FILE"
# Artifacts as in production: clients log through the server (--serve-artifacts, the default;
# experiments' artifact locations are mlflow-artifacts:/<id>), which keeps them in the bucket at
# $STORAGE_ROOT/<experiment id>/... (MLFLOW_S3_ENDPOINT_URL points boto3 at the stand-in).
log "starting mlflow server on http://127.0.0.1:$MLFLOW_PORT, artifacts in $STORAGE_ROOT (log: $LOGS/mlflow.log)"
start_bg mlflow "$LOGS/mlflow.log" env MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
  MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true \
  MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY="$(cat "$WEBHOOK_KEY_FILE")" MLFLOW_WEBHOOK_CACHE_TTL=1 \
  MLFLOW_S3_ENDPOINT_URL="$S3_ENDPOINT" AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" \
  AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_DEFAULT_REGION=us-east-1 \
  "$VENV_DIR/bin/mlflow" server \
  --backend-store-uri "sqlite:///$M2S_SANDBOX_DIR/mlflow/mlflow.db" \
  --default-artifact-root mlflow-artifacts:/ --artifacts-destination "$STORAGE_ROOT" \
  --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 2
wait_http mlflow "http://127.0.0.1:$MLFLOW_PORT/health" 120 "$LOGS/mlflow.log" "$(cat "$M2S_SANDBOX_DIR/mlflow.pid")"
# The version the server itself reports: the tests read it to say what a 2.x server cannot do.
MLFLOW_VERSION="$(curl -fsS --max-time 10 "http://127.0.0.1:$MLFLOW_PORT/version" 2>>"$LOGS/mlflow.log")" ||
  fail "ask mlflow its version" "$LOGS/mlflow.log" "GET http://127.0.0.1:$MLFLOW_PORT/version failed"
[[ "${MLFLOW_VERSION%%.*}" == "$M2S_SANDBOX_MLFLOW" ]] || fail "ask mlflow its version" "" \
  "$VENV_DIR serves MLflow $MLFLOW_VERSION, not the $M2S_SANDBOX_MLFLOW.x line (M2S_SANDBOX_MLFLOW)"
log "mlflow $MLFLOW_VERSION is up"

# serving_env: where tests/serving/harness.py finds the stacks' downloaders and runtimes;
# M2S_SANDBOX_SERVING=0 when they were not installed (see lib.sh).
serving_env() {
  local missing=() v
  [[ "$M2S_SANDBOX_SERVING" == 1 ]] || missing+=("everything (M2S_SANDBOX_SERVING=0 at install)")
  command -v rclone >/dev/null || missing+=(rclone)
  [[ -x "$KSERVE_STORAGE_VENV/bin/python" ]] || missing+=("kserve-storage")
  for v in $MLSERVER_RUNTIMES; do [[ -x "$(mlserver_venv "$v")/bin/mlserver" ]] || missing+=("mlserver-$v"); done
  printf 'export M2S_SANDBOX_SERVING=%s\n' "$(( ${#missing[@]} ? 0 : 1 ))"
  printf "export M2S_SANDBOX_SERVING_MISSING='%s'\n" "${missing[*]:-}"
  printf 'export M2S_SANDBOX_RCLONE=%s\n' "$(command -v rclone || true)"
  printf 'export M2S_SANDBOX_KSERVE_STORAGE_PYTHON=%s\n' "$KSERVE_STORAGE_VENV/bin/python"
  for v in $MLSERVER_RUNTIMES; do
    printf 'export M2S_SANDBOX_MLSERVER_%s=%s\n' "${v//./_}" "$(mlserver_venv "$v")"
  done
  printf 'export M2S_SANDBOX_SERVING_HARNESS=%s\n' "$REPO_ROOT/tests/serving/harness.py"
}

cat >"$ENV_FILE" <<ENV
export M2S_SANDBOX_KUBECONFIG=$KUBECONFIG_FILE
export M2S_SANDBOX_MLFLOW_URL=http://127.0.0.1:$MLFLOW_PORT
export M2S_SANDBOX_MLFLOW_VERSION=$MLFLOW_VERSION
export M2S_SANDBOX_BIN=$BIN_DIR
export M2S_SANDBOX_AUDIT_LOG=$AUDIT_LOG
export M2S_SANDBOX_LOGS=$LOGS
export M2S_SANDBOX_MLFLOW_PYTHON=$VENV_DIR/bin/python
export M2S_SANDBOX_S3_ENDPOINT=$S3_ENDPOINT
export M2S_SANDBOX_S3_BUCKET=$S3_BUCKET
export M2S_SANDBOX_S3_ACCESS_KEY=$S3_ACCESS_KEY
export M2S_SANDBOX_S3_SECRET_KEY=$S3_SECRET_KEY
export M2S_SANDBOX_STORAGE_ROOT=$STORAGE_ROOT
export M2S_SANDBOX_WEBHOOK_CA=$M2S_SANDBOX_CACHE/webhook-ca
$(serving_env)
ENV
sandbox_up=1
log "sandbox is up"
cat "$ENV_FILE"
