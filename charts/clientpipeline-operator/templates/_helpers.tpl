{{/* The chart's name, overridable with nameOverride. */}}
{{- define "cpo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: used for every object the chart creates. */}}
{{- define "cpo.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "cpo.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "cpo.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "cpo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "cpo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The labels that select the operator's pods (must never change across upgrades). */}}
{{- define "cpo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cpo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "cpo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cpo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference, tag defaulting to the chart's appVersion. */}}
{{- define "cpo.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Where ClientPipelines, their Secrets and runs live: the watched namespaces, or
in a cluster-wide install the listed client namespaces. */}}
{{- define "cpo.clientNamespaces" -}}
{{- if .Values.watchNamespaces }}{{ toJson .Values.watchNamespaces }}{{ else }}{{ toJson .Values.clientNamespaces }}{{ end }}
{{- end }}

{{/* The credentials Secret each ClientPipeline names: read, never listed; granted
per namespace only, never cluster-wide. */}}
{{- define "cpo.secretRules" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}

{{/* The RBAC rules the operator needs in the namespaces it watches (Secrets apart). */}}
{{- define "cpo.rules" -}}
- apiGroups: [pipelines.promptly.io]
  resources: [clientpipelines]
  verbs: [get, list, watch, patch, update]
- apiGroups: [pipelines.promptly.io]
  resources: [clientpipelines/status]
  verbs: [get, patch, update]
# Deleted by deletionPolicy Delete before the other parts, so no run writes while
# they go (its Jobs follow through the garbage collector).
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, create, update, delete]
# A continuous-mode pipeline's runner (transform.mode: continuous), stopped first too.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, update, delete]
# Each client's runs act as its own ServiceAccount (owned by the ClientPipeline,
# removed with it by the garbage collector); Trino authenticates its tokens.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create]
# Pipeline runs, mirrored into status.lastRun; created on a run-now request.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create]
# A run's outcome (failed tests, its report) is its Pod's termination message.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- if gt (int .Values.replicaCount) 1 }}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}
