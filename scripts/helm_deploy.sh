#!/usr/bin/env bash
# Installs or upgrades the m2s Helm chart (chart/m2s) from M2S_* environment variables.
#
# Required (asked for when missing and stdin is a terminal; an error otherwise):
#   M2S_MLFLOW_HOST            MLflow tracking server URL (no credentials in it)
#   M2S_NAMESPACE              namespace of the serving objects (-> serving.namespace); the old
#                              M2S_SELDON_DEPLOYMENT_NS is accepted instead (both set and
#                              different: an error)
# Optional, taken from the environment when set (never asked for):
#   M2S_TARGET                 seldon-v1 (default), kserve or seldon-v2 (-> target)
#   M2S_OVERLAY                a YAML or JSON file, the cluster-wide overlay (-> --set-file overlay=)
#   M2S_SERVICE_ACCOUNT        ServiceAccount of the serving pods (-> serving.serviceAccount)
#   M2S_SELDON_DEF_IMAGE M2S_REGISTRY_SECRET M2S_MODEL_SECRET (-> serving.defaultImage,
#                              serving.registrySecret, serving.modelSecret)
#   M2S_MLFLOW_STORAGE_ROOT M2S_MLFLOW_DEPLOY_IMG_TAG M2S_STAGES M2S_ALIASES M2S_INSTANCE
#   M2S_MODEL_FILTER M2S_MAX_DELETES M2S_CONCURRENCY M2S_REQUEST_TIMEOUT M2S_RUN_TIMEOUT
#   M2S_DRY_RUN
#   M2S_MLFLOW_SECRET          name of an existing Secret (in RELEASE_NAMESPACE) with the MLflow
#                              credentials (keys token, or username and password)
# Deployment:
#   RELEASE (m2s)  RELEASE_NAMESPACE (m2s-system)  IMAGE (repository[:tag] or repository@digest)
#   HELM (helm)    CHART (chart/m2s beside this script)
#   HELM_EXTRA_ARGS  more helm arguments, split on spaces (e.g. "--wait --atomic")
#   FORCE_INTERACTIVE=1  ask for missing settings even when stdin is not a terminal (for tests)
# Credentials are never put on the helm command line.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELM="${HELM:-helm}"
CHART="${CHART:-$(cd "$SCRIPT_DIR/.." && pwd)/chart/m2s}"
RELEASE="${RELEASE:-m2s}"
RELEASE_NAMESPACE="${RELEASE_NAMESPACE:-m2s-system}"

die() { printf 'helm_deploy: %s\n' "$*" >&2; exit 1; }

interactive() { [[ -t 0 || "${FORCE_INTERACTIVE:-}" == 1 ]]; }

# Escapes a value for helm's --set-string parser (backslash and comma are special).
escape() {
  local v="${1//\\/\\\\}"
  printf '%s' "${v//,/\\,}"
}

# A comma-separated list as helm list syntax {a,b}, each item trimmed and escaped.
as_list() {
  local item out="" sep=""
  local -a items
  IFS=',' read -r -a items <<<"$1"
  for item in "${items[@]}"; do
    item="${item#"${item%%[![:space:]]*}"}"
    item="${item%"${item##*[![:space:]]}"}"
    [[ -n "$item" ]] || continue
    out+="$sep$(escape "$item")"
    sep=","
  done
  printf '{%s}' "$out"
}

# The serving namespace under its target-neutral name; the old service's name is accepted.
if [[ -n "${M2S_SELDON_DEPLOYMENT_NS:-}" ]]; then
  if [[ -n "${M2S_NAMESPACE:-}" && "$M2S_NAMESPACE" != "$M2S_SELDON_DEPLOYMENT_NS" ]]; then
    die "M2S_NAMESPACE ('$M2S_NAMESPACE') and the old M2S_SELDON_DEPLOYMENT_NS ('$M2S_SELDON_DEPLOYMENT_NS') differ: set only M2S_NAMESPACE"
  fi
  M2S_NAMESPACE="$M2S_SELDON_DEPLOYMENT_NS"
fi

declare -A DESCRIPTION=(
  [M2S_MLFLOW_HOST]="MLflow tracking server URL, e.g. http://mlflow.mlflow.svc:5000"
  [M2S_NAMESPACE]="namespace of the serving objects m2s manages, e.g. models"
)
REQUIRED=(M2S_MLFLOW_HOST M2S_NAMESPACE)

missing=()
for var in "${REQUIRED[@]}"; do
  [[ -n "${!var:-}" ]] || missing+=("$var")
done
if ((${#missing[@]})); then
  if ! interactive; then
    {
      echo "helm_deploy: missing required settings (stdin is not a terminal, so not asking):"
      for var in "${missing[@]}"; do printf '  %s  (%s)\n' "$var" "${DESCRIPTION[$var]}"; done
      echo "Set them in the environment, e.g. M2S_MLFLOW_HOST=... M2S_NAMESPACE=... make helm_deploy"
    } >&2
    exit 1
  fi
  for var in "${missing[@]}"; do
    value=""
    while [[ -z "$value" ]]; do
      printf '%s (%s): ' "$var" "${DESCRIPTION[$var]}" >&2
      IFS= read -r value || [[ -n "$value" ]] || die "no value for $var (end of input)"
      value="${value#"${value%%[![:space:]]*}"}"
      value="${value%"${value##*[![:space:]]}"}"
    done
    printf -v "$var" '%s' "$value"
  done
fi

# Credentials never go on a command line (visible in ps, shell history, CI logs).
if [[ "$M2S_MLFLOW_HOST" =~ ^[A-Za-z][A-Za-z0-9+.-]*://[^/]*@ ]]; then
  die "M2S_MLFLOW_HOST must not contain credentials (user:password@); put them in a Secret and set M2S_MLFLOW_SECRET"
fi
for var in MLFLOW_TRACKING_TOKEN MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD; do
  if [[ -n "${!var:-}" && -z "${M2S_MLFLOW_SECRET:-}" ]]; then
    printf 'helm_deploy: warning: %s is set but not passed to the chart; create a Secret with the credentials in %s and set M2S_MLFLOW_SECRET\n' \
      "$var" "$RELEASE_NAMESPACE" >&2
  fi
done

args=(upgrade --install "$RELEASE" "$CHART" --namespace "$RELEASE_NAMESPACE" --create-namespace)
set_string() { args+=(--set-string "$1=$(escape "$2")"); }
set_int() { # set_int KEY VAR: an integer value (--set, the schema wants a number)
  local value="${!2}"
  [[ "$value" =~ ^[0-9]+$ ]] || die "$2 must be a whole number, not '$value'"
  args+=(--set "$1=$((10#$value))")
}

target="${M2S_TARGET:-seldon-v1}"
case "$target" in
  seldon-v1 | kserve | seldon-v2) ;;
  *) die "M2S_TARGET must be seldon-v1, kserve or seldon-v2, not '$target'" ;;
esac

set_string mlflow.host "$M2S_MLFLOW_HOST"
set_string serving.namespace "$M2S_NAMESPACE"
[[ -z "${M2S_TARGET:-}" ]] || set_string target "$M2S_TARGET"
[[ -z "${M2S_MLFLOW_STORAGE_ROOT:-}" ]] || set_string mlflow.storageRoot "$M2S_MLFLOW_STORAGE_ROOT"
[[ -z "${M2S_SELDON_DEF_IMAGE:-}" ]] || set_string serving.defaultImage "$M2S_SELDON_DEF_IMAGE"
[[ -z "${M2S_MLFLOW_DEPLOY_IMG_TAG:-}" ]] || set_string mlflow.imageTag "$M2S_MLFLOW_DEPLOY_IMG_TAG"
[[ -z "${M2S_REGISTRY_SECRET:-}" ]] || set_string serving.registrySecret "$M2S_REGISTRY_SECRET"
[[ -z "${M2S_MODEL_SECRET:-}" ]] || set_string serving.modelSecret "$M2S_MODEL_SECRET"
[[ -z "${M2S_SERVICE_ACCOUNT:-}" ]] || set_string serving.serviceAccount "$M2S_SERVICE_ACCOUNT"
if [[ -n "${M2S_OVERLAY:-}" ]]; then
  # helm reads the file itself (its text becomes the value), so the overlay's content never
  # appears on the command line; only its path does, escaped like a --set-string value.
  [[ -f "$M2S_OVERLAY" && -r "$M2S_OVERLAY" ]] || die "M2S_OVERLAY: no readable file '$M2S_OVERLAY'"
  args+=(--set-file "overlay=$(escape "$M2S_OVERLAY")")
fi
[[ -z "${M2S_INSTANCE:-}" ]] || set_string instance "$M2S_INSTANCE"
[[ -z "${M2S_MODEL_FILTER:-}" ]] || set_string mlflow.modelFilter "$M2S_MODEL_FILTER"
[[ -z "${M2S_MLFLOW_SECRET:-}" ]] || set_string mlflow.existingSecret "$M2S_MLFLOW_SECRET"
[[ -z "${M2S_STAGES:-}" ]] || args+=(--set-string "stages=$(as_list "$M2S_STAGES")")
[[ -z "${M2S_ALIASES:-}" ]] || args+=(--set-string "aliases=$(as_list "$M2S_ALIASES")")
[[ -z "${M2S_MAX_DELETES:-}" ]] || set_int maxDeletes M2S_MAX_DELETES
[[ -z "${M2S_CONCURRENCY:-}" ]] || set_int concurrency M2S_CONCURRENCY
[[ -z "${M2S_REQUEST_TIMEOUT:-}" ]] || set_int requestTimeoutSeconds M2S_REQUEST_TIMEOUT
[[ -z "${M2S_RUN_TIMEOUT:-}" ]] || set_int runTimeoutSeconds M2S_RUN_TIMEOUT
case "${M2S_DRY_RUN:-}" in
  "" | false | 0) ;;
  true | 1) args+=(--set dryRun=true) ;;
  *) die "M2S_DRY_RUN must be true or false, not '$M2S_DRY_RUN'" ;;
esac

if [[ -n "${IMAGE:-}" ]]; then
  if [[ "$IMAGE" == *@* ]]; then
    set_string image.repository "${IMAGE%@*}"
    set_string image.digest "${IMAGE#*@}"
  elif [[ "${IMAGE##*/}" == *:* ]]; then
    set_string image.repository "${IMAGE%:*}"
    set_string image.tag "${IMAGE##*:}"
  else
    set_string image.repository "$IMAGE"
  fi
fi

if [[ -n "${HELM_EXTRA_ARGS:-}" ]]; then
  read -r -a extra <<<"$HELM_EXTRA_ARGS"
  args+=("${extra[@]}")
fi

printf 'helm_deploy: release %s in namespace %s, target %s in namespace %s, MLflow %s\n' \
  "$RELEASE" "$RELEASE_NAMESPACE" "$target" "$M2S_NAMESPACE" "$M2S_MLFLOW_HOST" >&2
exec "$HELM" "${args[@]}"
