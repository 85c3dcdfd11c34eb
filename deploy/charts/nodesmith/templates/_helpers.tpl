{{/* Chart name, truncated to the DNS label limit. */}}
{{- define "nodesmith.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "nodesmith.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "nodesmith.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nodesmith.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nodesmith.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "nodesmith.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "nodesmith.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nodesmith.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "nodesmith.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{- define "nodesmith.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The NodeClass resource of the selected provider. */}}
{{- define "nodesmith.nodeClassRule" -}}
{{- if eq .Values.provider "aws" }}
- apiGroups: ["aws.nodesmith.io"]
  resources: ["ec2nodeclasses"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["aws.nodesmith.io"]
  resources: ["ec2nodeclasses/status"]
  verbs: ["patch"]
{{- else if eq .Values.provider "kwok" }}
- apiGroups: ["kwok.nodesmith.io"]
  resources: ["kwoknodeclasses"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- end }}
