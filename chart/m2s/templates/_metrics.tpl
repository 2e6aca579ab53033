{{/*
Helpers of the monitoring objects: the ServiceMonitor, PodMonitor, PrometheusRule and the
Grafana dashboard's ConfigMap (docs/monitoring.md).
*/}}

{{/*
PromQL label matchers of the receiver's series: namespace and job as the chart's monitors
scrape them (job is relabelled to <fullname>-webhook by both), or metrics.prometheusRule.receiverSelector.
*/}}
{{- define "m2s.receiverSelector" -}}
{{- with .Values.metrics.prometheusRule.receiverSelector }}{{ . }}{{ else -}}
namespace="{{ .Release.Namespace }}",job="{{ include "m2s.webhookName" . }}"
{{- end }}
{{- end }}

{{/*
PromQL label matchers of the CronJob's textfile series (`m2s sync --metrics-file`): the serving
namespace and the instance, as the file labels them.
*/}}
{{- define "m2s.cronJobSelector" -}}
{{ .Values.metrics.prometheusRule.cronJobNamespaceLabel }}="{{ include "m2s.servingNamespace" . }}",m2s_instance="{{ include "m2s.instance" . }}"
{{- end }}

{{/*
The labels the CronJob's alerts keep (by).
*/}}
{{- define "m2s.cronJobBy" -}}
{{ .Values.metrics.prometheusRule.cronJobNamespaceLabel }}, m2s_instance
{{- end }}

{{/*
Seconds between two CronJob runs: metrics.prometheusRule.cronJobIntervalSeconds, else read
from schedule (every N minutes, every N hours, daily); "" when it cannot be read.
*/}}
{{- define "m2s.cronIntervalSeconds" -}}
{{- $given := .Values.metrics.prometheusRule.cronJobIntervalSeconds }}
{{- if not (kindIs "invalid" $given) }}{{ $given | int64 }}{{ else }}
{{- $s := trim .Values.schedule }}
{{- $macros := dict "@hourly" 3600 "@daily" 86400 "@midnight" 86400 "@weekly" 604800 }}
{{- $f := regexSplit "\\s+" $s -1 }}
{{- if hasKey $macros $s }}{{ get $macros $s }}
{{- else if ne (len $f) 5 }}
{{- else if and (eq (index $f 1) "*") (eq (index $f 2) "*") (eq (index $f 3) "*") (eq (index $f 4) "*") }}
{{- $m := index $f 0 }}
{{- if eq $m "*" }}60
{{- else if regexMatch "^\\*/[0-9]+$" $m }}{{ mul 60 (trimPrefix "*/" $m | int64) }}
{{- else if regexMatch "^[0-9]+$" $m }}3600
{{- end }}
{{- else if and (regexMatch "^[0-9]+$" (index $f 0)) (eq (index $f 2) "*") (eq (index $f 3) "*") (eq (index $f 4) "*") }}
{{- $h := index $f 1 }}
{{- if regexMatch "^\\*/[0-9]+$" $h }}{{ mul 3600 (trimPrefix "*/" $h | int64) }}
{{- else if regexMatch "^[0-9]+$" $h }}86400
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Where the alerts' runbooks are: metrics.prometheusRule.runbookBaseUrl, else the monitoring page
of the chart's home.
*/}}
{{- define "m2s.runbookBase" -}}
{{- default (printf "%s/blob/main/docs/monitoring.md" (trimSuffix "/" .Chart.Home)) .Values.metrics.prometheusRule.runbookBaseUrl }}
{{- end }}

{{/*
TLS settings of a scrape of the receiver (only with webhook.tls): the monitor's own tlsConfig,
else verification against ca.crt of the TLS Secret for the Service's DNS name.
*/}}
{{- define "m2s.scrapeTls" -}}
{{- $root := index . 0 }}
{{- $given := index . 1 }}
{{- with include "m2s.webhookTlsSecret" $root }}
tlsConfig:
{{- if $given }}
  {{- toYaml $given | nindent 2 }}
{{- else }}
  serverName: {{ index (include "m2s.webhookDnsNames" $root | fromJsonArray) 2 }}
  ca:
    secret:
      name: {{ . }}
      key: ca.crt
{{- end }}
{{- end }}
{{- end }}

{{/*
Checks of the monitoring values. Renders nothing.
*/}}
{{- define "m2s.validateMetrics" -}}
{{- $m := .Values.metrics }}
{{- range $kind := list "serviceMonitor" "podMonitor" }}
{{- if and (index $m $kind).enabled (not $.Values.webhook.enabled) }}
{{- fail (printf "metrics.%s.enabled needs webhook.enabled: only the receiver serves /metrics; the CronJob's runs write theirs with --metrics-file for a textfile collector (docs/monitoring.md)" $kind) }}
{{- end }}
{{- end }}
{{- if and $m.prometheusRule.enabled (include "m2s.cronJobEnabled" .) (not (include "m2s.cronIntervalSeconds" .)) }}
{{- fail (printf "metrics.prometheusRule.cronJobIntervalSeconds is required: the seconds between the CronJob's runs cannot be read from schedule %q (only every N minutes, every N hours and daily are)" .Values.schedule) }}
{{- end }}
{{- end }}
