{{/* Pieces of the NetworkPolicies (R-7.2.4 boundary protection, R-7.5a): each part's pods reach
only what they call, and only the parts that call them reach them. */}}

{{/* A peer that is one of the release's parts. Args: root, part. */}}
{{- define "medcloud.np.peer" -}}
- podSelector:
    matchLabels:
      {{- include "medcloud.selectorLabels" . | nindent 6 }}
{{- end }}

{{- define "medcloud.np.cidrs" -}}
{{- range $i, $cidr := . }}
{{- if $i }}{{ "\n" }}{{ end -}}
- ipBlock:
    cidr: {{ $cidr }}
{{- end }}
{{- end }}

{{/* Egress to cluster DNS. Args: root. */}}
{{- define "medcloud.np.egressDns" -}}
- to:
    - namespaceSelector:
        matchLabels:
          {{- toYaml .root.Values.networkPolicy.dns.namespaceLabels | nindent 10 }}
      podSelector:
        matchLabels:
          {{- toYaml .root.Values.networkPolicy.dns.podLabels | nindent 10 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end }}

{{/* Egress to etcd and NATS, bundled (by pod) or existing (by CIDR and port). Args: root. */}}
{{- define "medcloud.np.egressState" -}}
{{- $v := .root.Values }}
{{- if $v.etcd.bundled.enabled }}
- to:
    {{- include "medcloud.np.peer" (dict "root" .root "part" "etcd") | nindent 4 }}
  ports:
    - {protocol: TCP, port: 2379}
{{- else if $v.etcd.egressCidrs }}
- to:
    {{- include "medcloud.np.cidrs" $v.etcd.egressCidrs | nindent 4 }}
  ports:
    - protocol: TCP
      port: {{ splitList ":" $v.etcd.endpoint | last | int }}
{{- end }}
{{- if $v.nats.bundled.enabled }}
- to:
    {{- include "medcloud.np.peer" (dict "root" .root "part" "nats") | nindent 4 }}
  ports:
    - {protocol: TCP, port: 4222}
{{- else if $v.nats.egressCidrs }}
- to:
    {{- include "medcloud.np.cidrs" $v.nats.egressCidrs | nindent 4 }}
  ports:
    - protocol: TCP
      port: {{ regexFind ":[0-9]+$" (trimSuffix "/" $v.nats.url) | trimPrefix ":" | default "4222" | int }}
{{- end }}
{{- end }}

{{/* Egress to services' gRPC ports. Args: root, parts (list). */}}
{{- define "medcloud.np.egressServices" -}}
- to:
    {{- range .parts }}
    {{- include "medcloud.np.peer" (dict "root" $.root "part" .) | nindent 4 }}
    {{- end }}
  ports:
    - {protocol: TCP, port: {{ .root.Values.grpcPort }}}
{{- end }}

{{/* Egress to Kubernetes API servers. Args: api ({cidrs, ports}). */}}
{{- define "medcloud.np.egressApi" -}}
{{- if .cidrs }}
- to:
    {{- include "medcloud.np.cidrs" .cidrs | nindent 4 }}
  ports:
    {{- range .ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end }}
{{- end }}

{{/* A service's NetworkPolicy: gRPC in from `callers` (parts), the helm test and clientCidrs;
out to etcd, NATS, DNS and `calls` (parts). Args: root, part, callers, calls, extraIngress,
extraEgress. */}}
{{- define "medcloud.np.service" -}}
{{- $np := .root.Values.networkPolicy -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "medcloud.partName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "medcloud.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "medcloud.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        {{- range (concat .callers (list "health-test")) }}
        {{- include "medcloud.np.peer" (dict "root" $.root "part" .) | nindent 8 }}
        {{- end }}
        {{- with $np.clientCidrs }}
        {{- include "medcloud.np.cidrs" . | nindent 8 }}
        {{- end }}
      ports:
        - {protocol: TCP, port: {{ .root.Values.grpcPort }}}
    {{- with .extraIngress }}
    {{- . | nindent 4 }}
    {{- end }}
  egress:
    {{- include "medcloud.np.egressDns" . | nindent 4 }}
    {{- include "medcloud.np.egressState" . | nindent 4 }}
    {{- if .calls }}
    {{- include "medcloud.np.egressServices" (dict "root" .root "parts" .calls) | nindent 4 }}
    {{- end }}
    {{- with .extraEgress }}
    {{- . | nindent 4 }}
    {{- end }}
{{- end }}
