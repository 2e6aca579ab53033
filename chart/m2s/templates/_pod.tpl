{{/*
What every m2s pod shares (the CronJob's, the receiver's, the helm test's): volumes and their
mounts, envFrom, the priority class, and which workloads run.
*/}}

{{/*
Whether the CronJob runs: cronJob.enabled, or (null) unless the webhook receiver runs.
"true" or "".
*/}}
{{- define "m2s.cronJobEnabled" -}}
{{- $on := .Values.cronJob.enabled }}
{{- if kindIs "invalid" $on }}{{ $on = not .Values.webhook.enabled }}{{ end }}
{{- if $on }}true{{ end }}
{{- end }}

{{/*
The ConfigMap or Secret holding MLflow's CA ("" when none).
*/}}
{{- define "m2s.mlflowCa" -}}
{{- default .Values.mlflow.caConfigMap .Values.mlflow.caSecret }}
{{- end }}

{{/*
Volumes of an m2s pod.
*/}}
{{- define "m2s.volumes" -}}
# The root filesystem is read-only; a small scratch /tmp in case anything needs one.
- name: tmp
  emptyDir:
    sizeLimit: 16Mi
{{- if include "m2s.overlay" . }}
- name: overlay
  configMap:
    name: {{ include "m2s.fullname" . }}-overlay
{{- end }}
{{- with .Values.mlflow.caSecret }}
# MLflow's CA (MLFLOW_TRACKING_SERVER_CERT_PATH).
- name: mlflow-ca
  secret:
    secretName: {{ . | quote }}
{{- end }}
{{- with .Values.mlflow.caConfigMap }}
# MLflow's CA (MLFLOW_TRACKING_SERVER_CERT_PATH).
- name: mlflow-ca
  configMap:
    name: {{ . | quote }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volume mounts of the m2s container.
*/}}
{{- define "m2s.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if include "m2s.overlay" . }}
- name: overlay
  mountPath: /etc/m2s/overlay
  readOnly: true
{{- end }}
{{- if include "m2s.mlflowCa" . }}
- name: mlflow-ca
  mountPath: /etc/m2s/mlflow-ca
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod spec fields every m2s pod sets the same way (after serviceAccountName).
*/}}
{{- define "m2s.podCommon" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Checks of the values this file's features add. Renders nothing.
*/}}
{{- define "m2s.validatePod" -}}
{{- if and .Values.mlflow.caSecret .Values.mlflow.caConfigMap }}
{{- fail "mlflow.caSecret and mlflow.caConfigMap are both set: MLflow's CA comes from one of them" }}
{{- end }}
{{- if and (include "m2s.mlflowCa" .) .Values.mlflow.insecureTls }}
{{- fail "mlflow.insecureTls skips the verification mlflow.caSecret/caConfigMap is for: set one or the other" }}
{{- end }}
{{- if not (or (include "m2s.cronJobEnabled" .) .Values.webhook.enabled) }}
{{- fail "cronJob.enabled is false and webhook.enabled is false: nothing would run m2s; enable one of them" }}
{{- end }}
{{- end }}
