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
The namespace of the SeldonDeployments m2s manages (default: the release namespace).
*/}}
{{- define "m2s.seldonNamespace" -}}
{{- default .Release.Namespace .Values.seldon.namespace }}
{{- end }}

{{/*
Value of the m2s.io/instance label m2s puts on its SeldonDeployments (default: the release name).
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
{{- if and .Values.wait .Values.dryRun }}
{{- fail "wait: a dry run (dryRun: true) persists nothing to wait for; set one of them to false" }}
{{- end }}
{{- if and .Values.wait (ge (int64 .Values.waitTimeoutSeconds) (int64 $runTimeout)) }}
{{- fail (printf "waitTimeoutSeconds (%d) must be below runTimeoutSeconds (%d): the wait is part of the run" (int64 .Values.waitTimeoutSeconds) (int64 $runTimeout)) }}
{{- end }}
{{- if and .Values.seldon.createNamespace (eq (include "m2s.seldonNamespace" .) .Release.Namespace) }}
{{- fail "seldon.createNamespace: the SeldonDeployment namespace is the release namespace, which Helm does not create from the chart (use helm --create-namespace), or set seldon.namespace" }}
{{- end }}
{{- end }}
