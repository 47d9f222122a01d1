{{/* Names and labels shared by every template. */}}

{{- define "cronfleet.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cronfleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cronfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cronfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cronfleet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "cronfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "cronfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cronfleet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag or repository@digest; the tag defaults to the appVersion. */}}
{{- define "cronfleet.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) -}}
{{- end -}}
{{- end -}}

{{/* The rules the operator needs in each namespace it watches. */}}
{{- define "cronfleet.namespacedRules" -}}
# Watch Schedules; write only their status (the spec belongs to users).
- apiGroups: [cronfleet.io]
  resources: [schedules]
  # delete: a Completed Schedule whose ttlSecondsAfterCompleted ran out.
  verbs: [get, list, watch, delete]
- apiGroups: [cronfleet.io]
  resources: [schedules/status]
  verbs: [patch]
# The Jobs and CronJobs the operator creates name their Schedule as owner with
# blockOwnerDeletion; where the OwnerReferencesPermissionEnforcement admission
# plugin runs (OpenShift, hardened clusters) that needs update on finalizers.
- apiGroups: [cronfleet.io]
  resources: [schedules/finalizers]
  verbs: [update]
# One CronJob per cron Schedule, written with server-side apply (create + patch);
# deleted when the cadence stops being a cron (every, at, run-now only).
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list, watch, create, patch, delete]
# Runs: watch them; create retry and manual runs; mark recorded runs; delete a run
# that never started (startTimeoutSeconds) or that Replace stops.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
# Exit codes and the runner's message are in the pods' status.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# spec.serviceAccountName must exist: watched, so checking costs no request.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, list, watch]
# Events on Schedules.
- apiGroups: [""]
  resources: [events]
  # list: why a run's pod could not be created (FailedCreate on its Job).
  verbs: [create, list]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end -}}
