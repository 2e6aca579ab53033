{{/*
Helpers of the webhook receiver (`m2s webhook`, webhook.enabled): its Deployment and Service.
*/}}

{{/*
Name of the receiver's Deployment and Service: <fullname>-webhook.
*/}}
{{- define "m2s.webhookName" -}}
{{- printf "%s-webhook" (include "m2s.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of the receiver's pods: the chart's, and component webhook (the CronJob's pods
are component sync, so the Service never selects them).
*/}}
{{- define "m2s.webhookSelectorLabels" -}}
{{ include "m2s.selectorLabels" . }}
app.kubernetes.io/component: webhook
{{- end }}

{{/*
Labels of the receiver's objects.
*/}}
{{- define "m2s.webhookLabels" -}}
helm.sh/chart: {{ include "m2s.chart" . }}
{{ include "m2s.webhookSelectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The sync settings as environment variables: the CronJob's container and the webhook
receiver's have the same (a chart test compares the two).
*/}}
{{- define "m2s.syncEnv" -}}
- name: M2S_MLFLOW_HOST
  value: {{ .Values.mlflow.host | quote }}
- name: M2S_TARGET
  value: {{ .Values.target | quote }}
- name: M2S_NAMESPACE
  value: {{ include "m2s.servingNamespace" . | quote }}
- name: M2S_INSTANCE
  value: {{ include "m2s.instance" . | quote }}
{{- with .Values.mlflow.storageRoot }}
- name: M2S_MLFLOW_STORAGE_ROOT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.mlflow.imageTag }}
- name: M2S_MLFLOW_DEPLOY_IMG_TAG
  value: {{ . | quote }}
{{- end }}
{{- with .Values.mlflow.modelFilter }}
- name: M2S_MODEL_FILTER
  value: {{ . | quote }}
{{- end }}
{{- with include "m2s.serving" (list . "defaultImage") }}
- name: M2S_SELDON_DEF_IMAGE
  value: {{ . | quote }}
{{- end }}
{{- with include "m2s.serving" (list . "registrySecret") }}
- name: M2S_REGISTRY_SECRET
  value: {{ . | quote }}
{{- end }}
{{- with include "m2s.serving" (list . "modelSecret") }}
- name: M2S_MODEL_SECRET
  value: {{ . | quote }}
{{- end }}
{{- with include "m2s.serving" (list . "serviceAccount") }}
- name: M2S_SERVICE_ACCOUNT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.serving.seldonProtocol }}
- name: M2S_SELDON_PROTOCOL
  value: {{ . | quote }}
{{- end }}
{{- if not .Values.preflight.enabled }}
- name: M2S_PREFLIGHT
  value: "false"
{{- end }}
{{- with .Values.preflight.runtimeMlflowVersion }}
- name: M2S_RUNTIME_MLFLOW_VERSION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.rollout.canaryDeadline }}
- name: M2S_CANARY_DEADLINE
  value: {{ . | quote }}
{{- end }}
{{- if include "m2s.overlay" . }}
- name: M2S_OVERLAY
  value: /etc/m2s/overlay/overlay.yaml
{{- end }}
{{- if not (kindIs "invalid" .Values.stages) }}
- name: M2S_STAGES
  value: {{ join "," .Values.stages | quote }}
{{- end }}
{{- with .Values.aliases }}
- name: M2S_ALIASES
  value: {{ join "," . | quote }}
{{- end }}
{{- if not (kindIs "invalid" .Values.concurrency) }}
- name: M2S_CONCURRENCY
  value: {{ .Values.concurrency | int64 | quote }}
{{- end }}
{{- if not (kindIs "invalid" .Values.requestTimeoutSeconds) }}
- name: M2S_REQUEST_TIMEOUT
  value: {{ .Values.requestTimeoutSeconds | int64 | quote }}
{{- end }}
{{- if not (kindIs "invalid" .Values.runTimeoutSeconds) }}
- name: M2S_RUN_TIMEOUT
  value: {{ .Values.runTimeoutSeconds | int64 | quote }}
{{- end }}
{{- with .Values.logLevel }}
- name: RUST_LOG
  value: {{ . | quote }}
{{- end }}
{{- if .Values.mlflow.insecureTls }}
- name: MLFLOW_TRACKING_INSECURE_TLS
  value: "true"
{{- end }}
{{- if include "m2s.mlflowCa" . }}
- name: MLFLOW_TRACKING_SERVER_CERT_PATH
  value: {{ printf "/etc/m2s/mlflow-ca/%s" .Values.mlflow.caKey | quote }}
{{- end }}
{{- if .Values.mlflow.existingSecret }}
{{- $secret := .Values.mlflow.existingSecret }}
{{- $optional := .Values.mlflow.existingSecretOptional }}
{{- $keys := .Values.mlflow.existingSecretKeys }}
{{- range $pair := list (list "MLFLOW_TRACKING_TOKEN" $keys.token) (list "MLFLOW_TRACKING_USERNAME" $keys.username) (list "MLFLOW_TRACKING_PASSWORD" $keys.password) }}
{{- if index $pair 1 }}
- name: {{ index $pair 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret | quote }}
      key: {{ index $pair 1 | quote }}
      optional: {{ $optional }}
{{- end }}
{{- end }}
{{- end }}
{{- if not .Values.events }}
- name: M2S_EVENTS
  value: "false"
{{- end }}
{{- if .Values.writeBack }}
- name: M2S_WRITE_BACK
  value: "true"
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Checks of the webhook values the schema cannot express. Renders nothing.
*/}}
{{- define "m2s.validateWebhook" -}}
{{- if .Values.webhook.enabled }}
{{- if not .Values.webhook.existingSecret }}
{{- fail "webhook.existingSecret is required with webhook.enabled: the name of a Secret (in the release namespace) holding the webhook secret that MLflow signs its deliveries with (webhook.existingSecretKey, default \"secret\"); create it with kubectl create secret generic <name> --from-literal=secret=$(openssl rand -hex 32)" }}
{{- end }}
{{- end }}
{{- if and .Values.webhook.tls.certManager.enabled (not .Values.webhook.tls.certManager.issuerRef.name) }}
{{- fail "webhook.tls.certManager.issuerRef.name is required with webhook.tls.certManager.enabled: the cert-manager Issuer (or ClusterIssuer, with issuerRef.kind) that signs the receiver's certificate" }}
{{- end }}
{{- if and .Values.webhook.tls.certManager.enabled (not .Values.webhook.enabled) }}
{{- fail "webhook.tls.certManager.enabled needs webhook.enabled: the certificate is the receiver's" }}
{{- end }}
{{- end }}

{{/*
The Secret the receiver serves HTTPS with ("" without TLS): webhook.tls.secretName, or
<fullname>-webhook-tls when cert-manager issues it.
*/}}
{{- define "m2s.webhookTlsSecret" -}}
{{- if .Values.webhook.tls.secretName }}
{{- .Values.webhook.tls.secretName }}
{{- else if .Values.webhook.tls.certManager.enabled }}
{{- printf "%s-tls" (include "m2s.webhookName" .) | trunc 253 }}
{{- end }}
{{- end }}

{{/*
HTTP or HTTPS: the scheme of the receiver's probes and scrapes.
*/}}
{{- define "m2s.webhookScheme" -}}
{{- if include "m2s.webhookTlsSecret" . }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/*
The Service's DNS names, the short ones first (the certificate's, the scrape's server name).
*/}}
{{- define "m2s.webhookDnsNames" -}}
{{- $svc := include "m2s.webhookName" . }}
{{- $ns := .Release.Namespace }}
{{- toJson (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) }}
{{- end }}

{{/*
The name of the Lease whose holder runs the receiver's full syncs: <instance>-leader.
*/}}
{{- define "m2s.leaseName" -}}
{{- $name := printf "%s-leader" (include "m2s.instance" .) }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" $name) }}
{{- fail (printf "instance %q makes the receivers' Lease name %q, which is not a valid object name (lowercase letters, digits, '-' and '.'): set instance to such a value" (include "m2s.instance" .) $name) }}
{{- end }}
{{- $name }}
{{- end }}
