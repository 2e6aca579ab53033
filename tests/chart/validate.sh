#!/usr/bin/env bash
# Validates Kubernetes manifests against the API schemas of a newer Kubernetes (the sandbox API
# server is 1.20 and knows no batch/v1 CronJob) with PyPI's kubernetes-validate.
# Installs it (and PyYAML) into a venv on first use; later runs reuse it.
#   validate.sh FILE...     validate FILE... (--strict: unknown fields are errors)
#   validate.sh --python    only make sure the venv exists; print its python (has PyYAML)
#   KV_VENV=DIR             venv location (default ~/.cache/m2s-sandbox/kv-venv)
#   KV_K8S_VERSION=X.Y.Z    Kubernetes version to validate against (default 1.30.0)
set -euo pipefail

KV_VENV="${KV_VENV:-${M2S_SANDBOX_CACHE:-$HOME/.cache/m2s-sandbox}/kv-venv}"
KV_K8S_VERSION="${KV_K8S_VERSION:-1.30.0}"
KV_PIP_SPEC="${KV_PIP_SPEC:-kubernetes-validate>=1.30}"

ensure_venv() {
  if [[ -x "$KV_VENV/bin/kubernetes-validate" ]] &&
    "$KV_VENV/bin/python" -c 'import yaml, kubernetes_validate' >/dev/null 2>&1; then
    return 0
  fi
  command -v python3 >/dev/null || { echo "validate.sh: python3 not found" >&2; return 1; }
  mkdir -p "$(dirname "$KV_VENV")"
  # Serialise concurrent first installs (tests run in parallel).
  exec 9>"$KV_VENV.lock"
  flock 9
  if [[ ! -x "$KV_VENV/bin/kubernetes-validate" ]] ||
    ! "$KV_VENV/bin/python" -c 'import yaml, kubernetes_validate' >/dev/null 2>&1; then
    echo "validate.sh: installing $KV_PIP_SPEC into $KV_VENV" >&2
    rm -rf "$KV_VENV"
    python3 -m venv "$KV_VENV" >&2
    "$KV_VENV/bin/pip" install --quiet "$KV_PIP_SPEC" PyYAML >&2
  fi
  exec 9>&-
}

ensure_venv
if [[ "${1:-}" == "--python" ]]; then
  printf '%s\n' "$KV_VENV/bin/python"
  exit 0
fi
if [[ $# -eq 0 ]]; then
  echo "usage: validate.sh FILE... | --python" >&2
  exit 2
fi
exec "$KV_VENV/bin/kubernetes-validate" --kubernetes-version "$KV_K8S_VERSION" --strict "$@"
