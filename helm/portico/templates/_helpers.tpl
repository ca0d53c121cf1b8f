{{/* Chart name. */}}
{{- define "portico.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified release name, the prefix of every resource. */}}
{{- define "portico.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "portico.controlPlane.fullname" -}}
{{- printf "%s-control-plane" (include "portico.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "portico.controlPlane.headless" -}}
{{- printf "%s-control-plane-pods" (include "portico.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "portico.envoy.fullname" -}}
{{- printf "%s-envoy" (include "portico.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every resource. */}}
{{- define "portico.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "portico.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: portico
{{- end -}}

{{/* Selector labels for one component (control-plane or envoy): pass (list $ "component"). */}}
{{- define "portico.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "portico.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "portico.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "portico.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "portico.secretName" -}}
{{- default (printf "%s-secrets" (include "portico.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "portico.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* In-cluster DNS name of a Service. */}}
{{- define "portico.serviceHost" -}}
{{- printf "%s.%s.svc.%s" (index . 0) (index . 1).Release.Namespace (index . 1).Values.clusterDomain -}}
{{- end -}}

{{/* host:port Envoys use for the callouts. */}}
{{- define "portico.calloutAddress" -}}
{{- if .Values.controlPlane.calloutAddress -}}
{{- .Values.controlPlane.calloutAddress -}}
{{- else -}}
{{- printf "%s:%d" (include "portico.serviceHost" (list (include "portico.controlPlane.headless" .) .)) (int .Values.controlPlane.ports.callouts) -}}
{{- end -}}
{{- end -}}

{{/* ADS addresses (host:port list) in the Envoy bootstrap. */}}
{{- define "portico.xdsAddresses" -}}
{{- if .Values.envoy.xds.addresses -}}
{{- toJson .Values.envoy.xds.addresses -}}
{{- else -}}
{{- toJson (list (printf "%s:%d" (include "portico.serviceHost" (list (include "portico.controlPlane.headless" .) .)) (int .Values.controlPlane.ports.xds))) -}}
{{- end -}}
{{- end -}}

{{/* host:port Envoys stream access logs to. */}}
{{- define "portico.accessLogAddress" -}}
{{- if .Values.controlPlane.accessLogAddress -}}
{{- .Values.controlPlane.accessLogAddress -}}
{{- else -}}
{{- printf "%s:%d" (include "portico.serviceHost" (list (include "portico.controlPlane.headless" .) .)) (int .Values.controlPlane.ports.xds) -}}
{{- end -}}
{{- end -}}

{{/* Secrets of the channel certificates (kubernetes.io/tls with ca.crt). */}}
{{- define "portico.tls.controlPlaneSecret" -}}
{{- default (printf "%s-control-plane-tls" (include "portico.fullname" .)) .Values.tls.controlPlaneSecret -}}
{{- end -}}
{{- define "portico.tls.envoySecret" -}}
{{- default (printf "%s-envoy-tls" (include "portico.fullname" .)) .Values.tls.envoySecret -}}
{{- end -}}

{{/* Plaintext gRPC is refused unless asked for explicitly. */}}
{{- define "portico.tls.check" -}}
{{- if and (not .Values.tls.enabled) (not .Values.tls.insecure) -}}
{{- fail "tls.enabled=false serves config and private keys in plaintext: set tls.insecure=true to accept that" -}}
{{- end -}}
{{- end -}}
