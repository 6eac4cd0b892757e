{{/* Names, labels and the pieces every part's pod shares. */}}

{{- define "medcloud.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "medcloud.fullname" -}}
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

{{- define "medcloud.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The five services, in the order they start in `make run`. */}}
{{- define "medcloud.services" -}}
inventory scheduling monitoring security backup
{{- end }}

{{/* <fullname>-<part>, the name of a part's Deployment, Service, ServiceAccount. Args: root, part. */}}
{{- define "medcloud.partName" -}}
{{- printf "%s-%s" (include "medcloud.fullname" .root) .part | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "medcloud.selectorLabels" -}}
app.kubernetes.io/name: {{ include "medcloud.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .part }}
{{- end }}

{{/* Standard labels. Args: root, part. */}}
{{- define "medcloud.labels" -}}
helm.sh/chart: {{ include "medcloud.chart" .root }}
{{ include "medcloud.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: medcloud
medcloud.io/region: {{ .root.Values.region.name }}
{{- end }}

{{/* The DNS name clients dial, which each service's certificate must carry. Args: root, part. */}}
{{- define "medcloud.serviceHost" -}}
{{- printf "%s.%s.svc" (include "medcloud.partName" .) .root.Release.Namespace }}
{{- end }}

{{- define "medcloud.serviceAddress" -}}
{{- printf "%s:%d" (include "medcloud.serviceHost" .) (int .root.Values.grpcPort) }}
{{- end }}

{{/* The Secret with a part's ca.crt, tls.crt and tls.key. Args: root, part. */}}
{{- define "medcloud.tlsSecret" -}}
{{- $named := index .root.Values.tls.secrets .part }}
{{- default (printf "%s-tls" (include "medcloud.partName" .)) $named }}
{{- end }}

{{- define "medcloud.etcdEndpoint" -}}
{{- if .Values.etcd.bundled.enabled }}
{{- printf "%s-etcd.%s.svc:2379" (include "medcloud.fullname" .) .Release.Namespace }}
{{- else }}
{{- .Values.etcd.endpoint }}
{{- end }}
{{- end }}

{{/* The bundled NATS demands mutual TLS: the services dial it by tls:// (runtime.bus). */}}
{{- define "medcloud.natsUrl" -}}
{{- if .Values.nats.bundled.enabled }}
{{- printf "tls://%s-nats.%s.svc:4222" (include "medcloud.fullname" .) .Release.Namespace }}
{{- else }}
{{- .Values.nats.url }}
{{- end }}
{{- end }}

{{- define "medcloud.natsSecret" -}}
{{- default (printf "%s-nats-credentials" (include "medcloud.fullname" .)) .Values.nats.auth.secret }}
{{- end }}

{{/* The bundled NATS servers' certificate Secret (ca.crt, tls.crt, tls.key). */}}
{{- define "medcloud.natsTlsSecret" -}}
{{- default (printf "%s-nats-tls" (include "medcloud.fullname" .)) .Values.nats.bundled.tls.secret }}
{{- end }}

{{- define "medcloud.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* R-7.2.4 (MLPS level 3): no root, no privilege escalation, no capabilities, read-only root. */}}
{{- define "medcloud.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "medcloud.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The services demand a client certificate on their only port, and kubelet's grpc probe cannot
present one: grpc-health-probe (built into the image) asks grpc.health.v1 over mutual TLS with the
pod's own certificate, verifying the server by the name clients use. Args: root, part.
*/}}
{{- define "medcloud.grpcProbe" -}}
exec:
  command:
    - grpc-health-probe
    - -addr=127.0.0.1:{{ .root.Values.grpcPort }}
    - -tls
    - -tls-ca-cert=/etc/medcloud/tls/ca.crt
    - -tls-client-cert=/etc/medcloud/tls/tls.crt
    - -tls-client-key=/etc/medcloud/tls/tls.key
    - -tls-server-name={{ include "medcloud.serviceHost" . }}
    - -connect-timeout=3s
    - -rpc-timeout=3s
{{- end }}

{{/* What every service process reads (medcloud.runtime.config.ServiceSettings, runtime.tls). */}}
{{- define "medcloud.serviceEnv" -}}
- name: MEDCLOUD_REGION
  value: {{ .root.Values.region.name | quote }}
- name: MEDCLOUD_GRPC_LISTEN
  value: "0.0.0.0:{{ .root.Values.grpcPort }}"
- name: MEDCLOUD_ETCD_ENDPOINT
  value: {{ include "medcloud.etcdEndpoint" .root | quote }}
- name: MEDCLOUD_NATS_URL
  value: {{ include "medcloud.natsUrl" .root | quote }}
{{- if .root.Values.nats.auth.enabled }}
- name: MEDCLOUD_NATS_USER
  value: {{ .part | quote }}
- name: MEDCLOUD_NATS_PASSWORD_FILE
  value: /etc/medcloud/nats/password
{{- end }}
- name: MEDCLOUD_LOG_LEVEL
  value: {{ .root.Values.logLevel | quote }}
- name: MEDCLOUD_SHUTDOWN_GRACE_SECONDS
  value: {{ .root.Values.shutdownGraceSeconds | quote }}
{{- include "medcloud.tlsEnv" . }}
{{- end }}

{{- define "medcloud.tlsEnv" -}}
{{- if .root.Values.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .root.Values.otlpEndpoint | quote }}
{{- end }}
- name: MEDCLOUD_TLS_CA_FILE
  value: /etc/medcloud/tls/ca.crt
- name: MEDCLOUD_TLS_CERT_FILE
  value: /etc/medcloud/tls/tls.crt
- name: MEDCLOUD_TLS_KEY_FILE
  value: /etc/medcloud/tls/tls.key
{{- end }}

{{/* The volumes every part mounts: its certificate and a writable /tmp. Args: root, part. */}}
{{- define "medcloud.commonVolumes" -}}
- name: tls
  secret:
    secretName: {{ include "medcloud.tlsSecret" . }}
    defaultMode: 0440
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "medcloud.commonVolumeMounts" -}}
- name: tls
  mountPath: /etc/medcloud/tls
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* One service's Deployment; the part's own env, volumes and mounts come from
"medcloud.<part>.env", ".volumes" and ".volumeMounts". Args: root, part. */}}
{{- define "medcloud.serviceDeployment" -}}
{{- $values := index .root.Values .part -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "medcloud.partName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "medcloud.labels" . | nindent 4 }}
spec:
  replicas: {{ $values.replicas }}
  selector:
    matchLabels:
      {{- include "medcloud.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "medcloud.labels" . | nindent 8 }}
      {{- with $values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "medcloud.partName" . }}
      automountServiceAccountToken: false
      securityContext:
        {{- include "medcloud.podSecurityContext" . | nindent 8 }}
      {{- with .root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      terminationGracePeriodSeconds: {{ add (int .root.Values.shutdownGraceSeconds) 10 }}
      containers:
        - name: {{ .part }}
          image: {{ include "medcloud.image" .root | quote }}
          imagePullPolicy: {{ .root.Values.image.pullPolicy }}
          command: [python, -m, medcloud.{{ .part }}]
          env:
            {{- include "medcloud.serviceEnv" . | nindent 12 }}
            {{- include (printf "medcloud.%s.env" .part) . | nindent 12 }}
          ports:
            - name: grpc
              containerPort: {{ .root.Values.grpcPort }}
              protocol: TCP
            {{- if eq .part "monitoring" }}
            - name: metrics
              containerPort: {{ .root.Values.monitoring.metricsPort }}
              protocol: TCP
            {{- end }}
          # Start-up connects etcd and NATS and loads mirrors: give it a minute before liveness.
          startupProbe:
            {{- include "medcloud.grpcProbe" . | nindent 12 }}
            periodSeconds: 5
            timeoutSeconds: 5
            failureThreshold: 24
          livenessProbe:
            {{- include "medcloud.grpcProbe" . | nindent 12 }}
            periodSeconds: 20
            timeoutSeconds: 5
            failureThreshold: 3
          readinessProbe:
            {{- include "medcloud.grpcProbe" . | nindent 12 }}
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 2
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- include "medcloud.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            {{- include "medcloud.commonVolumeMounts" . | nindent 12 }}
            {{- if .root.Values.nats.auth.enabled }}
            - name: nats-password
              mountPath: /etc/medcloud/nats
              readOnly: true
            {{- end }}
            {{- include (printf "medcloud.%s.volumeMounts" .part) . | nindent 12 }}
      volumes:
        {{- include "medcloud.commonVolumes" . | nindent 8 }}
        {{- if .root.Values.nats.auth.enabled }}
        - name: nats-password
          secret:
            secretName: {{ include "medcloud.natsSecret" .root }}
            defaultMode: 0440
            items:
              - key: {{ .part }}
                path: password
        {{- end }}
        {{- include (printf "medcloud.%s.volumes" .part) . | nindent 8 }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* A part's ClusterIP Service for its gRPC port. Args: root, part. */}}
{{- define "medcloud.grpcService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "medcloud.partName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "medcloud.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "medcloud.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ .root.Values.grpcPort }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    {{- if eq .part "monitoring" }}
    - name: metrics
      port: {{ .root.Values.monitoring.metricsPort }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
    {{- end }}
{{- end }}

{{/* A part's ServiceAccount; only the operator's mounts an API token. Args: root, part. */}}
{{- define "medcloud.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "medcloud.partName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "medcloud.labels" . | nindent 4 }}
automountServiceAccountToken: {{ eq .part "operator" }}
{{- end }}

{{/* Args: root, part. */}}
{{- define "medcloud.podDisruptionBudget" -}}
{{- if .root.Values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "medcloud.partName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "medcloud.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "medcloud.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}
