{{/*
Expand the name of the chart.
*/}}
{{- define "m2s.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 52 chars: the CronJob name is limited to 52 characters (its Jobs get an 11
character suffix). If the release name contains the chart name it is used as the full name.
*/}}
{{- define "m2s.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "m2s.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "m2s.labels" -}}
helm.sh/chart: {{ include "m2s.chart" . }}
{{ include "m2s.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: sync
{{- end }}

{{/*
Selector labels
*/}}
{{- define "m2s.selectorLabels" -}}
app.kubernetes.io/name: {{ include "m2s.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "m2s.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "m2s.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
A serving setting: serving.<key>, else the deprecated seldon.<key>; "" when neither is set
(a boolean renders as "true" or ""). Call with (list . "key").
*/}}
{{- define "m2s.serving" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $v := index ($root.Values.serving | default dict) $key }}
{{- if not $v }}{{ $v = index ($root.Values.seldon | default dict) $key }}{{ end }}
{{- if $v }}{{ $v }}{{ end }}
{{- end }}

{{/*
The namespace of the objects m2s manages (default: the release namespace).
*/}}
{{- define "m2s.servingNamespace" -}}
{{- default .Release.Namespace (include "m2s.serving" (list . "namespace")) }}
{{- end }}

{{/*
The serving target as JSON: the kind m2s manages, its API group and plural (RBAC rules, NOTES),
and the serving.* settings it has a counterpart for (m2s refuses the others at start).
Use as (include "m2s.target" . | fromJson).
*/}}
{{- define "m2s.target" -}}
{{- $targets := dict
  "seldon-v1" (dict "kind" "SeldonDeployment" "group" "machinelearning.seldon.io" "plural" "seldondeployments" "settings" (list "defaultImage" "registrySecret" "modelSecret" "serviceAccount" "seldonProtocol"))
  "kserve" (dict "kind" "InferenceService" "group" "serving.kserve.io" "plural" "inferenceservices" "settings" (list "defaultImage" "registrySecret" "serviceAccount"))
  "seldon-v2" (dict "kind" "Model" "group" "mlops.seldon.io" "plural" "models" "settings" (list "modelSecret")) }}
{{- $t := index $targets (toString .Values.target) }}
{{- if not $t }}
{{- fail (printf "target %q is not a serving target: use seldon-v1, kserve or seldon-v2" (toString .Values.target)) }}
{{- end }}
{{- toJson $t }}
{{- end }}

{{/*
The overlay as YAML text ("" when none): a mapping is rendered with toYaml, a string is used as
it is (YAML or JSON text, e.g. from --set-file overlay=FILE).
*/}}
{{- define "m2s.overlay" -}}
{{- if kindIs "string" .Values.overlay }}
{{- if trim .Values.overlay }}{{ .Values.overlay }}{{ end }}
{{- else if .Values.overlay }}
{{- toYaml .Values.overlay }}
{{- end }}
{{- end }}

{{/*
Value of the m2s.io/instance label m2s puts on its objects (default: the release name).
*/}}
{{- define "m2s.instance" -}}
{{- default .Release.Name .Values.instance }}
{{- end }}

{{/*
Container image reference: repository@digest, or repository:tag (tag default: appVersion).
*/}}
{{- define "m2s.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Checks of value combinations the schema cannot express. Renders nothing.
*/}}
{{- define "m2s.validate" -}}
{{- $host := required "mlflow.host is required: the MLflow tracking server URL, e.g. --set mlflow.host=http://mlflow.mlflow.svc:5000" .Values.mlflow.host }}
{{- if regexMatch "^[A-Za-z][A-Za-z0-9+.-]*://[^/]*@" $host }}
{{- fail "mlflow.host must not contain credentials (user:password@): put them in a Secret and set mlflow.existingSecret" }}
{{- end }}
{{- $runTimeout := 600 }}
{{- if not (kindIs "invalid" .Values.runTimeoutSeconds) }}
{{- $runTimeout = .Values.runTimeoutSeconds | int64 }}
{{- end }}
{{- if ge (int64 $runTimeout) (int64 .Values.activeDeadlineSeconds) }}
{{- fail (printf "runTimeoutSeconds (%d) must be below activeDeadlineSeconds (%d), so that m2s stops by itself before Kubernetes kills the Job" (int64 $runTimeout) (int64 .Values.activeDeadlineSeconds)) }}
{{- end }}
{{- range $key, $old := (.Values.seldon | default dict) }}
{{- if not (has $key (list "namespace" "createNamespace" "defaultImage" "registrySecret" "modelSecret")) }}
{{- fail (printf "seldon.%s is not a setting (the deprecated seldon block takes namespace, createNamespace, defaultImage, registrySecret, modelSecret; use serving)" $key) }}
{{- end }}
{{- $new := index ($.Values.serving | default dict) $key }}
{{- if and $new $old (ne (toString $new) (toString $old)) }}
{{- fail (printf "serving.%s (%v) and the deprecated seldon.%s (%v) differ: set only serving.%s" $key $new $key $old $key) }}
{{- end }}
{{- end }}
{{- $target := include "m2s.target" . | fromJson }}
{{- $hints := dict
  "defaultImage" "a Model runs on a Seldon Server, whose image is the Server's; unset it"
  "registrySecret" "image pull secrets belong to the Seldon Server; unset it"
  "serviceAccount" "a Model has no pods of its own; unset it"
  "modelSecret" "KServe reads storage credentials through the predictor's ServiceAccount; set serving.serviceAccount instead"
  "seldonProtocol" "it chooses the server of a Seldon Core 1 SeldonDeployment; unset it" }}
{{- range $key := list "defaultImage" "registrySecret" "modelSecret" "serviceAccount" "seldonProtocol" }}
{{- if and (include "m2s.serving" (list $ $key)) (not (has $key $target.settings)) }}
{{- $from := ternary "serving" "seldon" (not (empty (index ($.Values.serving | default dict) $key))) }}
{{- fail (printf "%s.%s has no counterpart on target %s (%s): %s" $from $key $.Values.target $target.kind (index $hints $key)) }}
{{- end }}
{{- end }}
{{- with include "m2s.overlay" . }}
{{- if hasKey (fromYaml .) "Error" }}
{{- fail (printf "overlay is not a YAML or JSON mapping (a JSON merge patch): %s" (get (fromYaml .) "Error")) }}
{{- end }}
{{- end }}
{{- if and (eq (include "m2s.serving" (list . "createNamespace")) "true") (eq (include "m2s.servingNamespace" .) .Release.Namespace) }}
{{- $from := ternary "serving" "seldon" (not (empty (index (.Values.serving | default dict) "createNamespace"))) }}
{{- fail (printf "%s.createNamespace: the serving namespace is the release namespace, which Helm does not create from the chart (use helm --create-namespace), or set serving.namespace" $from) }}
{{- end }}
{{- include "m2s.validatePod" . }}
{{- include "m2s.validateWebhook" . }}
{{- include "m2s.validateMetrics" . }}
{{- if and .Values.wait .Values.dryRun }}
{{- fail "wait: a dry run (dryRun: true) persists nothing to wait for; set one of them to false" }}
{{- end }}
{{- if and .Values.wait (ge (int64 .Values.waitTimeoutSeconds) (int64 $runTimeout)) }}
{{- fail (printf "waitTimeoutSeconds (%d) must be below runTimeoutSeconds (%d): the wait is part of the run" (int64 .Values.waitTimeoutSeconds) (int64 $runTimeout)) }}
{{- end }}
{{- end }}
