#!/usr/bin/env bash
# Uninstalls the m2s Helm release and deletes the SeldonDeployment namespace (with every
# SeldonDeployment in it, managed by m2s or not). Says what it will delete and asks first.
#   RELEASE (m2s)  RELEASE_NAMESPACE (m2s-system)
#   M2S_SELDON_DEPLOYMENT_NS   the SeldonDeployment namespace (default: read from the release's
#                              values, seldon.namespace, else RELEASE_NAMESPACE)
#   YES=1          do not ask (needed when stdin is not a terminal)
#   HELM (helm)  KUBECTL (kubectl)
#   FORCE_INTERACTIVE=1  ask even when stdin is not a terminal (for tests)
# The release namespace itself is left in place.
set -euo pipefail

HELM="${HELM:-helm}"
KUBECTL="${KUBECTL:-kubectl}"
RELEASE="${RELEASE:-m2s}"
RELEASE_NAMESPACE="${RELEASE_NAMESPACE:-m2s-system}"

die() { printf 'helm_delete: %s\n' "$*" >&2; exit 1; }

interactive() { [[ -t 0 || "${FORCE_INTERACTIVE:-}" == 1 ]]; }

if [[ "${YES:-}" != 1 ]] && ! interactive; then
  die "refusing to delete without confirmation: stdin is not a terminal; set YES=1 to delete release $RELEASE (namespace $RELEASE_NAMESPACE) and the SeldonDeployment namespace"
fi

# The SeldonDeployment namespace: from the environment, else from the release's values.
ns="${M2S_SELDON_DEPLOYMENT_NS:-}"
if [[ -z "$ns" ]]; then
  if values="$("$HELM" get values "$RELEASE" --namespace "$RELEASE_NAMESPACE" --all --output json 2>/dev/null)"; then
    if command -v python3 >/dev/null; then
      ns="$(python3 -c 'import json,sys; print((json.load(sys.stdin).get("seldon") or {}).get("namespace") or "")' <<<"$values" 2>/dev/null || true)"
    fi
    [[ -n "$ns" ]] || ns="$RELEASE_NAMESPACE"
  else
    die "cannot read release $RELEASE in namespace $RELEASE_NAMESPACE (is it installed?); set M2S_SELDON_DEPLOYMENT_NS to delete the SeldonDeployment namespace anyway"
  fi
fi
case "$ns" in
  default | kube-system | kube-public | kube-node-lease)
    die "will not delete namespace $ns (M2S_SELDON_DEPLOYMENT_NS): delete the release with '$HELM uninstall $RELEASE -n $RELEASE_NAMESPACE' and its SeldonDeployments by hand" ;;
esac
[[ "$ns" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "'$ns' is not a namespace name"

if sdeps="$("$KUBECTL" get seldondeployments -n "$ns" --no-headers --ignore-not-found 2>/dev/null)"; then
  count="$(grep -c . <<<"$sdeps" || true)"
else
  count="an unknown number of (could not list them)"
fi

cat >&2 <<MSG
helm_delete: this will delete
  - Helm release '$RELEASE' in namespace '$RELEASE_NAMESPACE' (CronJob, ServiceAccount, Role, RoleBinding)
  - namespace '$ns' and everything in it, including $count SeldonDeployment(s)
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
