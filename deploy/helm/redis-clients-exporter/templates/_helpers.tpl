{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "rce.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "rce.fullname" -}}
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

{{- define "rce.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rce.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rce.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rce.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: exporter
{{- end }}

{{- define "rce.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Where secrets are mounted: the shared one, and one directory per target with its own. */}}
{{- define "rce.secretDir" -}}/etc/redis-clients-exporter/secrets{{- end }}

{{/*
The exporter's configuration file (YAML). Passwords are never written here: only the paths of
files mounted from Secrets.
*/}}
{{- define "rce.config" -}}
{{- $c := .Values.config -}}
{{- $cfg := dict
  "listen" (printf "0.0.0.0:%d" (int .Values.service.port))
  "log_format" $c.logFormat
  "top_k" (int $c.topK)
  "idle_threshold_seconds" (int $c.idleThresholdSeconds)
  "poll_interval_seconds" $c.pollIntervalSeconds
  "connect_timeout_seconds" $c.connectTimeoutSeconds
  "command_timeout_seconds" $c.commandTimeoutSeconds
-}}
{{- with .Values.auth.username }}{{ $_ := set $cfg "username" . }}{{ end }}
{{- if .Values.auth.existingSecret }}
{{- $_ := set $cfg "password_file" (printf "%s/default/password" (include "rce.secretDir" .)) }}
{{- end }}
{{- $targets := list }}
{{- range $i, $t := .Values.targets }}
{{- if not $t.address }}{{ fail (printf "targets[%d].address is required" $i) }}{{ end }}
{{- $o := dict "address" $t.address }}
{{- with $t.alias }}{{ $_ := set $o "alias" . }}{{ end }}
{{- with $t.username }}{{ $_ := set $o "username" . }}{{ end }}
{{- if $t.existingSecret }}
{{- $_ := set $o "password_file" (printf "%s/target-%d/password" (include "rce.secretDir" $) $i) }}
{{- end }}
{{- with $t.pollIntervalSeconds }}{{ $_ := set $o "poll_interval_seconds" . }}{{ end }}
{{- with $t.connectTimeoutSeconds }}{{ $_ := set $o "connect_timeout_seconds" . }}{{ end }}
{{- with $t.commandTimeoutSeconds }}{{ $_ := set $o "command_timeout_seconds" . }}{{ end }}
{{- $targets = append $targets $o }}
{{- end }}
{{- if not $targets }}{{ fail "set at least one entry in targets" }}{{ end }}
{{- $_ := set $cfg "targets" $targets }}
{{- toYaml (merge $cfg (.Values.config.extra | default dict)) }}
{{- end }}

{{/* "true" when some target reads its own password Secret. */}}
{{- define "rce.anyTargetSecret" -}}
{{- range .Values.targets }}{{ if .existingSecret }}true{{ end }}{{ end }}
{{- end }}
