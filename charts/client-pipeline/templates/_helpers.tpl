{{/* Labels on the ClientPipeline: the chart, the release and the client. */}}
{{- define "cp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
pipelines.promptly.io/client: {{ .Values.clientId }}
{{- end }}
