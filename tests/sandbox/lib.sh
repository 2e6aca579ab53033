# Shared settings and helpers for the sandbox scripts. Sourced, not run.
set -euo pipefail

M2S_SANDBOX_CACHE="${M2S_SANDBOX_CACHE:-$HOME/.cache/m2s-sandbox}"
# Runtime state (pids, ports, logs, kubeconfig) of the running sandbox.
M2S_SANDBOX_DIR="${M2S_SANDBOX_DIR:-$M2S_SANDBOX_CACHE/run}"
KUBE_VERSION="1.20.2"
BIN_DIR="$M2S_SANDBOX_CACHE/bin"
SANDBOX_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SANDBOX_SCRIPTS/../.." && pwd)"

log() { printf '[sandbox] %s\n' "$*" >&2; }

# fail STEP LOGFILE MESSAGE: stops with a message naming the failing step and its log.
fail() {
  local step="$1" logfile="$2"; shift 2
  printf '[sandbox] FAILED at step "%s": %s\n' "$step" "$*" >&2
  if [[ -n "$logfile" && -f "$logfile" ]]; then
    printf '[sandbox] log: %s (last lines below)\n' "$logfile" >&2
    tail -n 25 "$logfile" | sed 's/^/[sandbox]   | /' >&2
  fi
  exit 1
}

# The MLflow line the sandbox serves: M2S_SANDBOX_MLFLOW=3 (default, the newest 3.x) or 2 (the
# newest 2.x), each in a venv of its own. The 3.x venv keeps its first path so caches stay valid.
M2S_SANDBOX_MLFLOW="${M2S_SANDBOX_MLFLOW:-3}"
case "$M2S_SANDBOX_MLFLOW" in
  3)
    MLFLOW_NAME="mlflow"
    DEFAULT_MLFLOW_PIP_SPEC="mlflow>=3,<4"
    ;;
  2)
    MLFLOW_NAME="mlflow2"
    # MLflow 2.22 accepts SQLAlchemy <3, but its mlflow/store/db/utils.py imports
    # FallbackAsyncAdaptedQueuePool, which SQLAlchemy 2.1 removed: the server dies at start with
    # "cannot import name 'FallbackAsyncAdaptedQueuePool'". SQLAlchemy 2.0.x works.
    DEFAULT_MLFLOW_PIP_SPEC="mlflow>=2.22,<3 sqlalchemy>=2.0,<2.1"
    ;;
  *)
    fail "pick the MLflow line" "" "M2S_SANDBOX_MLFLOW=$M2S_SANDBOX_MLFLOW (want 2 or 3)"
    ;;
esac
VENV_DIR="$M2S_SANDBOX_CACHE/$MLFLOW_NAME-venv"
# Space-separated pip requirements for that line's venv (read once, when the venv is created).
MLFLOW_PIP_SPEC="${M2S_MLFLOW_PIP_SPEC:-$DEFAULT_MLFLOW_PIP_SPEC}"

# Serving for real (tests/serving/): the S3 stand-in, the stacks' downloaders and the MLServer
# runtimes they ship, all in the cache. M2S_SANDBOX_SERVING=0 installs none of the downloaders and
# runtimes (up.sh still starts the S3 stand-in: MLflow's artifacts live there); the serving tests
# then fail under CI=true / M2S_SANDBOX_REQUIRED=1 and are skipped elsewhere.
M2S_SANDBOX_SERVING="${M2S_SANDBOX_SERVING:-1}"
# moto[server] (the S3 stand-in), boto3 (to make the bucket) and uv (to install the runtimes).
TOOLS_VENV="$M2S_SANDBOX_CACHE/tools-venv"
SERVING_CACHE="$M2S_SANDBOX_CACHE/serving"
# KServe's storage-initializer: kserve-storage from PyPI (Python 3.11 in KServe's image).
KSERVE_STORAGE_VERSION="0.21.0"
KSERVE_STORAGE_VENV="$SERVING_CACHE/kserve-storage-$KSERVE_STORAGE_VERSION"
# MLServer as the stacks ship it, pinned by tests/serving/runtimes/mlserver-*.txt (whose
# `# python:` line names the interpreter): 1.5.0 (KServe v0.20.0's Helm chart), 1.7.1 (Seldon
# Core 2.10.2, KServe's kustomize manifests), 1.3.5 (Seldon Core 1.18.2's MLFLOW_SERVER v2 image).
MLSERVER_RUNTIMES="1.5.0 1.7.1 1.3.5"
mlserver_venv() { printf '%s\n' "$SERVING_CACHE/mlserver-$1"; }
# The bucket behind MLflow's --artifacts-destination.
S3_BUCKET="m2s-artifacts"
S3_PREFIX="mlartifacts"

# run_step STEP LOGFILE CMD...: runs CMD with output to LOGFILE, failing with a clear message.
run_step() {
  local step="$1" logfile="$2"; shift 2
  mkdir -p "$(dirname "$logfile")"
  log "$step (log: $logfile)"
  if ! "$@" >>"$logfile" 2>&1; then
    fail "$step" "$logfile" "command failed: $*"
  fi
}

# run_step_progress STEP LOGFILE CMD...: run_step for a long, quiet command: every 20 s it says
# how long it has run and what the log's last line is, so a first install never looks hung.
run_step_progress() {
  local step="$1" logfile="$2"; shift 2
  mkdir -p "$(dirname "$logfile")"
  log "$step (log: $logfile)"
  local started=$SECONDS
  "$@" >>"$logfile" 2>&1 &
  local pid=$! last
  while kill -0 "$pid" 2>/dev/null; do
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -0 "$pid" 2>/dev/null || break
    last="$(tail -n 1 "$logfile" 2>/dev/null | cut -c1-90)"
    log "  $step: $(( (SECONDS - started) / 60 ))m$(( (SECONDS - started) % 60 ))s so far${last:+ — $last}"
  done
  if ! wait "$pid"; then
    fail "$step" "$logfile" "command failed: $*"
  fi
  log "  $step: done in $(( (SECONDS - started) / 60 ))m$(( (SECONDS - started) % 60 ))s"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

port_in_use() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}

# wait_http NAME URL SECONDS LOGFILE PID [CURL_ARGS...]: waits for URL to answer 200.
wait_http() {
  local name="$1" url="$2" secs="$3" logfile="$4" pid="$5"; shift 5
  local deadline=$((SECONDS + secs))
  until curl -fsS --max-time 3 "$@" "$url" >/dev/null 2>&1; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      fail "start $name" "$logfile" "$name exited before becoming ready ($url)"
    fi
    if ((SECONDS > deadline)); then
      fail "start $name" "$logfile" "$name not ready at $url after ${secs}s"
    fi
    sleep 0.5
  done
}

# pid_alive PIDFILE: the process is running and is one of this sandbox's (its command line names
# $M2S_SANDBOX_DIR), so a stale pid file never makes us signal an unrelated process.
pid_alive() {
  [[ -f "$1" ]] || return 1
  local pid; pid="$(cat "$1")"
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$M2S_SANDBOX_DIR"
}
