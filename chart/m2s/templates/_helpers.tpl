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
A serving setting: serving.<key>, else the deprecated seldon.<key>. Call with (list . "key").
*/}}
{{- define "m2s.serving" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $v := index $root.Values.serving $key }}
{{- if not $v }}{{ $v = index ($root.Values.seldon | default dict) $key }}{{ end }}
{{- $v }}
{{- end }}

{{/*
The namespace of the objects m2s manages (default: the release namespace).
*/}}
{{- define "m2s.servingNamespace" -}}
{{- default .Release.Namespace (include "m2s.serving" (list . "namespace")) }}
{{- end }}

{{/*
The API group and plural of the target's resource, as "group plural" (RBAC rules and NOTES).
*/}}
{{- define "m2s.targetResource" -}}
{{- $resources := dict "seldon-v1" "machinelearning.seldon.io seldondeployments" "kserve" "serving.kserve.io inferenceservices" "seldon-v2" "mlops.seldon.io models" }}
{{- index $resources .Values.target }}
{{- end }}

{{/*
The kind m2s manages, for messages.
*/}}
{{- define "m2s.targetKind" -}}
{{- $kinds := dict "seldon-v1" "SeldonDeployment" "kserve" "InferenceService" "seldon-v2" "Model" }}
{{- index $kinds .Values.target }}
{{- end }}

{{/*
The overlay as YAML text ("" when none).
*/}}
{{- define "m2s.overlay" -}}
{{- if kindIs "string" .Values.overlay }}
{{- .Values.overlay }}
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
{{- $new := index $.Values.serving $key }}
{{- if and $new $old (ne (toString $new) (toString $old)) }}
{{- fail (printf "serving.%s (%v) and the deprecated seldon.%s (%v) differ: set only serving.%s" $key $new $key $old $key) }}
{{- end }}
{{- end }}
{{- if and (eq (include "m2s.serving" (list . "createNamespace")) "true") (eq (include "m2s.servingNamespace" .) .Release.Namespace) }}
{{- fail "serving.createNamespace: the serving namespace is the release namespace, which Helm does not create from the chart (use helm --create-namespace), or set serving.namespace" }}
{{- end }}
{{- end }}
