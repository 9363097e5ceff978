{{/*
Names and labels.
*/}}
{{- define "palisade.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "palisade.fullname" -}}
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

{{- define "palisade.selectorLabels" -}}
app.kubernetes.io/name: {{ include "palisade.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "palisade.labels" -}}
{{ include "palisade.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: palisade
{{- if .Values.commonLabels }}
{{ toYaml .Values.commonLabels }}
{{- end }}
{{- end -}}

{{- define "palisade.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "palisade.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "palisade.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The Palisade config as the chart deploys it: .Values.config, and in sidecar mode the upstream
named by sidecar.upstreamName pointed at the app container on 127.0.0.1.
*/}}
{{- define "palisade.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if eq .Values.mode "sidecar" -}}
{{- $upstreams := get $config "upstreams" | default dict -}}
{{- $upstream := get $upstreams .Values.sidecar.upstreamName | default dict -}}
{{- $_ := set $upstream "endpoints" (list (printf "127.0.0.1:%d" (int .Values.sidecar.app.port))) -}}
{{- $_ := set $upstreams .Values.sidecar.upstreamName $upstream -}}
{{- $_ := set $config "upstreams" $upstreams -}}
{{- end -}}
{{- toJson $config -}}
{{- end -}}

{{/*
The config as TOML. Helm reads every number in values as a float, which toToml writes as
"100.0"; Palisade's integer fields refuse that, so whole numbers lose their ".0" (a float field
accepts an integer).
*/}}
{{- define "palisade.configToml" -}}
{{- $config := include "palisade.config" . | fromJson -}}
{{- $toml := toToml $config -}}
{{- regexReplaceAll "(?m)(= |\\[|, )(-?[0-9]+)\\.0([,\\]]|$)" $toml "${1}${2}${3}" -}}
{{- end -}}

{{/* The port of a "host:port" listen address. */}}
{{- define "palisade.listenPort" -}}
{{- $parts := splitList ":" . -}}
{{- last $parts | int -}}
{{- end -}}

{{- define "palisade.proxyPort" -}}
{{- $server := .Values.config.server | default dict -}}
{{- include "palisade.listenPort" ($server.listen | default "0.0.0.0:8080") -}}
{{- end -}}

{{- define "palisade.opsPort" -}}
{{- $ops := .Values.config.ops | default dict -}}
{{- include "palisade.listenPort" ($ops.listen | default "0.0.0.0:9090") -}}
{{- end -}}

{{/*
Seconds in a Palisade duration ("500ms", "5s", "2m", "1h", "1d"), rounded up. Anything else fails the
render with a hint, since the termination grace period is computed from it.
*/}}
{{- define "palisade.durationSeconds" -}}
{{- $d := toString . -}}
{{- if regexMatch "^[0-9]+ms$" $d -}}
{{- div (add (trimSuffix "ms" $d | int) 999) 1000 -}}
{{- else if regexMatch "^[0-9]+s$" $d -}}
{{- trimSuffix "s" $d | int -}}
{{- else if regexMatch "^[0-9]+m$" $d -}}
{{- mul (trimSuffix "m" $d | int) 60 -}}
{{- else if regexMatch "^[0-9]+h$" $d -}}
{{- mul (trimSuffix "h" $d | int) 3600 -}}
{{- else if regexMatch "^[0-9]+d$" $d -}}
{{- mul (trimSuffix "d" $d | int) 86400 -}}
{{- else -}}
{{- fail (printf "palisade: cannot read the duration %q in config (lifecycle or a job timeout): write it as e.g. 5s, 500ms, 2m, 1h or 1d" $d) -}}
{{- end -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: drain_delay + grace_period + terminationGraceMarginSeconds unless
set; a set value that is not above drain_delay + grace_period fails the render.
*/}}
{{- define "palisade.terminationGracePeriodSeconds" -}}
{{- $lifecycle := .Values.config.lifecycle | default dict -}}
{{- $drain := include "palisade.durationSeconds" ($lifecycle.drain_delay | default "5s") | int -}}
{{- $grace := include "palisade.durationSeconds" ($lifecycle.grace_period | default "30s") | int -}}
{{- $needed := add $drain $grace -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- if le (int .Values.terminationGracePeriodSeconds) $needed -}}
{{- fail (printf "palisade: terminationGracePeriodSeconds (%d) must be above config.lifecycle.drain_delay + grace_period (%ds), or the kubelet kills Palisade mid-drain" (int .Values.terminationGracePeriodSeconds) $needed) -}}
{{- end -}}
{{- int .Values.terminationGracePeriodSeconds -}}
{{- else -}}
{{- add $needed .Values.terminationGraceMarginSeconds -}}
{{- end -}}
{{- end -}}

{{- define "palisade.checksum" -}}
{{- include "palisade.configToml" . | sha256sum -}}
{{- end -}}

{{/* Environment of every Palisade container: plain env, then secrets by reference. */}}
{{- define "palisade.env" -}}
{{- range .Values.env }}
- name: {{ .name }}
  value: {{ .value | quote }}
{{- end }}
{{- range .Values.secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end -}}

{{- define "palisade.volumeMounts" -}}
- name: config
  mountPath: /etc/palisade
  readOnly: true
{{- range .Values.secretMounts }}
- name: secret-{{ .name }}
  mountPath: {{ .mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{/*
The volumes Palisade's containers mount: the config ConfigMap and any secretMounts.
*/}}
{{- define "palisade.volumes" -}}
- name: config
  configMap:
    name: {{ include "palisade.fullname" . }}
{{- range .Values.secretMounts }}
- name: secret-{{ .name }}
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/*
The Palisade container. Used by the gateway Deployment, the sidecar Deployment, and by charts
that inject Palisade into their own Pod template (see the chart README):
  containers:
    {{- include "palisade.sidecarContainer" . | nindent 4 }}
*/}}
{{- define "palisade.sidecarContainer" -}}
- name: palisade
  image: {{ include "palisade.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["run", "--config", "/etc/palisade/palisade.toml"]
  ports:
    - name: http
      containerPort: {{ include "palisade.proxyPort" . }}
      protocol: TCP
    - name: ops
      containerPort: {{ include "palisade.opsPort" . }}
      protocol: TCP
  {{- with (include "palisade.env" . | trim) }}
  env:
    {{- . | nindent 4 }}
  {{- end }}
  startupProbe:
    httpGet:
      path: /live
      port: ops
    {{- toYaml .Values.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /live
      port: ops
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /ready
      port: ops
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "palisade.volumeMounts" . | nindent 4 }}
{{- end -}}

{{/* The Pod-level security context, shared by Deployments and CronJobs. */}}
{{- define "palisade.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{/* Checks that fail the render on configurations that cannot work. */}}
{{- define "palisade.validate" -}}
{{- if not .Values.config -}}
{{- fail "palisade: config is empty; see values.yaml for a working one" -}}
{{- end -}}
{{- if not .Values.config.routes -}}
{{- fail "palisade: config.routes needs at least one route" -}}
{{- end -}}
{{- if not .Values.config.upstreams -}}
{{- fail "palisade: config.upstreams needs at least one upstream" -}}
{{- end -}}
{{- if and (eq .Values.mode "sidecar") (not (hasKey .Values.config.upstreams .Values.sidecar.upstreamName)) -}}
{{- fail (printf "palisade: mode sidecar points config.upstreams.%s at the app container, but config.upstreams has no %q" .Values.sidecar.upstreamName .Values.sidecar.upstreamName) -}}
{{- end -}}
{{- if eq (include "palisade.proxyPort" .) (include "palisade.opsPort" .) -}}
{{- fail "palisade: config.server.listen and config.ops.listen use the same port" -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (not .Values.autoscaling.enabled) (ge (int .Values.podDisruptionBudget.minAvailable) (int .Values.replicaCount)) -}}
{{- fail (printf "palisade: podDisruptionBudget.minAvailable (%d) must be below replicaCount (%d), or no node can ever be drained" (int .Values.podDisruptionBudget.minAvailable) (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled .Values.autoscaling.enabled (ge (int .Values.podDisruptionBudget.minAvailable) (int .Values.autoscaling.minReplicas)) -}}
{{- fail (printf "palisade: podDisruptionBudget.minAvailable (%d) must be below autoscaling.minReplicas (%d)" (int .Values.podDisruptionBudget.minAvailable) (int .Values.autoscaling.minReplicas)) -}}
{{- end -}}
{{- $databases := .Values.config.databases | default dict -}}
{{- range $name, $job := (.Values.config.jobs | default dict) -}}
{{- if not (hasKey $databases ($job.database | default "")) -}}
{{- fail (printf "palisade: config.jobs.%s.database %q is not under config.databases" $name ($job.database | default "")) -}}
{{- end -}}
{{- end -}}
{{- $_ := include "palisade.terminationGracePeriodSeconds" . -}}
{{- end -}}
