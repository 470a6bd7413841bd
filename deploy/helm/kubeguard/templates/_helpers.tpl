{{/* Names and labels shared by every object of the chart. */}}
{{- define "kubeguard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubeguard.console.name" -}}{{ include "kubeguard.fullname" . }}-console{{- end -}}
{{- define "kubeguard.agent.name" -}}{{ include "kubeguard.fullname" . }}-agent{{- end -}}

{{- define "kubeguard.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "kubeguard.labels" -}}
app.kubernetes.io/name: kubeguard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubeguard.console.selector" -}}
app.kubernetes.io/name: kubeguard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: console
{{- end -}}

{{- define "kubeguard.agent.selector" -}}
app.kubernetes.io/name: kubeguard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{/* The console URL the agents ship to. */}}
{{- define "kubeguard.console.url" -}}
{{- if .Values.agent.console.url -}}
{{ .Values.agent.console.url }}
{{- else if .Values.console.enabled -}}
https://{{ include "kubeguard.console.name" . }}.{{ .Release.Namespace }}.svc:{{ .Values.console.service.port }}
{{- else -}}
{{ required "agent.console.url is required when console.enabled is false (the console the agents ship to)" .Values.agent.console.url }}
{{- end -}}
{{- end -}}
