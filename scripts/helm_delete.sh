#!/usr/bin/env bash
# Uninstalls the m2s Helm release and deletes its serving namespace (with every object in it:
# the SeldonDeployments, InferenceServices or Models of the release's target, m2s's or not).
# Says what it will delete, with the number of objects of the target's kind, and asks first.
#   RELEASE (m2s)  RELEASE_NAMESPACE (m2s-system)
#   M2S_NAMESPACE  the serving namespace (the old M2S_SELDON_DEPLOYMENT_NS is accepted instead);
#                  default: the release's values serving.namespace, else seldon.namespace, else
#                  RELEASE_NAMESPACE
#   M2S_TARGET     the kind to count (seldon-v1, kserve, seldon-v2); default: the release's
#                  values (target), else seldon-v1. Set and different from the release's: an error
#   YES=1          do not ask (needed when stdin is not a terminal)
#   HELM (helm)  KUBECTL (kubectl)
#   FORCE_INTERACTIVE=1  ask even when stdin is not a terminal (for tests)
# The release namespace is left in place unless it is also the serving namespace.
set -euo pipefail

HELM="${HELM:-helm}"
KUBECTL="${KUBECTL:-kubectl}"
RELEASE="${RELEASE:-m2s}"
RELEASE_NAMESPACE="${RELEASE_NAMESPACE:-m2s-system}"

die() { printf 'helm_delete: %s\n' "$*" >&2; exit 1; }

interactive() { [[ -t 0 || "${FORCE_INTERACTIVE:-}" == 1 ]]; }

declare -A RESOURCE=(
  [seldon-v1]=seldondeployments.machinelearning.seldon.io
  [kserve]=inferenceservices.serving.kserve.io
  [seldon-v2]=models.mlops.seldon.io
)
declare -A KIND=([seldon-v1]=SeldonDeployment [kserve]=InferenceService [seldon-v2]=Model)

if [[ "${YES:-}" != 1 ]] && ! interactive; then
  die "refusing to delete without confirmation: stdin is not a terminal; set YES=1 to delete release $RELEASE (namespace $RELEASE_NAMESPACE) and its serving namespace"
fi

ns="${M2S_NAMESPACE:-}"
if [[ -n "${M2S_SELDON_DEPLOYMENT_NS:-}" ]]; then
  if [[ -n "$ns" && "$ns" != "$M2S_SELDON_DEPLOYMENT_NS" ]]; then
    die "M2S_NAMESPACE ('$ns') and the old M2S_SELDON_DEPLOYMENT_NS ('$M2S_SELDON_DEPLOYMENT_NS') differ: set only M2S_NAMESPACE"
  fi
  ns="$M2S_SELDON_DEPLOYMENT_NS"
fi

# The release's values: its serving namespace and target.
release_ns="" release_target=""
if values="$("$HELM" get values "$RELEASE" --namespace "$RELEASE_NAMESPACE" --all --output json 2>/dev/null)"; then
  command -v python3 >/dev/null ||
    die "python3 is needed to read the values of release $RELEASE; set M2S_NAMESPACE and M2S_TARGET instead"
  read_values='import json, sys
v = json.load(sys.stdin) or {}
def ns(block):
    return (v.get(block) or {}).get("namespace") or ""
print(ns("serving") or ns("seldon"))
print(v.get("target") or "")'
  { IFS= read -r release_ns && IFS= read -r release_target; } < <(python3 -c "$read_values" <<<"$values") ||
    die "cannot read the values of release $RELEASE in namespace $RELEASE_NAMESPACE; set M2S_NAMESPACE and M2S_TARGET"
  [[ -n "$ns" ]] || ns="${release_ns:-$RELEASE_NAMESPACE}"
elif [[ -z "$ns" ]]; then
  die "cannot read release $RELEASE in namespace $RELEASE_NAMESPACE (is it installed?); set M2S_NAMESPACE to delete the serving namespace anyway"
fi

target="${M2S_TARGET:-${release_target:-seldon-v1}}"
if [[ -n "$release_target" && "$target" != "$release_target" ]]; then
  die "M2S_TARGET ('$target') differs from the target of release $RELEASE ('$release_target'): unset M2S_TARGET"
fi
[[ -n "${RESOURCE[$target]:-}" ]] || die "'$target' is not a serving target (M2S_TARGET): use seldon-v1, kserve or seldon-v2"
resource="${RESOURCE[$target]}"
kind="${KIND[$target]}"

case "$ns" in
  default | kube-system | kube-public | kube-node-lease)
    die "will not delete namespace $ns (the serving namespace): delete the release with '$HELM uninstall $RELEASE -n $RELEASE_NAMESPACE' and its ${kind}s by hand" ;;
esac
[[ "$ns" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "'$ns' is not a namespace name"

if objects="$("$KUBECTL" get "$resource" -n "$ns" --no-headers --ignore-not-found 2>/dev/null)"; then
  count="$(grep -c . <<<"$objects" || true)"
else
  count="an unknown number of (could not list them)"
fi
also=""
[[ "$ns" != "$RELEASE_NAMESPACE" ]] || also=" (it is also the release namespace)"

cat >&2 <<MSG
helm_delete: this will delete
  - Helm release '$RELEASE' in namespace '$RELEASE_NAMESPACE' (CronJob, ServiceAccount, Role, RoleBinding, overlay ConfigMap if any)
  - serving namespace '$ns'$also and everything in it, including $count $kind(s) (target $target)
MSG

if [[ "${YES:-}" != 1 ]]; then
  printf "Type 'yes' to delete: " >&2
  answer=""
  IFS= read -r answer || true
  [[ "$answer" == yes ]] || die "not confirmed; nothing deleted"
fi

if "$HELM" status "$RELEASE" --namespace "$RELEASE_NAMESPACE" >/dev/null 2>&1; then
  "$HELM" uninstall "$RELEASE" --namespace "$RELEASE_NAMESPACE"
else
  printf 'helm_delete: release %s not found in namespace %s; skipping helm uninstall\n' "$RELEASE" "$RELEASE_NAMESPACE" >&2
fi
"$KUBECTL" delete namespace "$ns" --ignore-not-found --wait=false
printf 'helm_delete: done\n' >&2
