{{- define "genops-mesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "genops-mesh.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "genops-mesh.labels" -}}
{{ include "genops-mesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The service's in-cluster DNS name, which Envoy, Istio and ingresses call. */}}
{{- define "genops-mesh.host" -}}
{{ include "genops-mesh.fullname" . }}.{{ .Release.Namespace }}.svc.cluster.local
{{- end -}}

{{- define "genops-mesh.redisSecret" -}}
{{- .Values.redis.existingSecret | default (printf "%s-redis" (include "genops-mesh.fullname" .)) -}}
{{- end -}}

{{/* genops-mesh's ext_proc filter config (Istio EnvoyFilter variant). */}}
{{- define "genops-mesh.extProcConfig" -}}
"@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
grpc_service:
  envoy_grpc:
    cluster_name: "outbound|{{ .Values.grpcPort }}||{{ include "genops-mesh.host" . }}"
    authority: {{ include "genops-mesh.host" . }}
  {{- if eq (include "genops-mesh.observedMetering" .) "true" }}
  # Observed metering: event streams are handed to the genops.metering filter (not held here).
  initial_metadata:
    - { key: x-genops-metering, value: streams }
  {{- end }}
message_timeout: 0.2s
failure_mode_allow: false
status_on_error: { code: ServiceUnavailable }
processing_mode:
  request_header_mode: SEND
  response_header_mode: SEND
  request_body_mode: BUFFERED
  response_body_mode: NONE
  request_trailer_mode: SKIP
  response_trailer_mode: SKIP
allow_mode_override: true
request_attributes: [connection.uri_san_peer_certificate]
# The verified JWT payload of Istio's jwt_authn (deploy/istio/identity), which runs before this filter.
metadata_options:
  forwarding_namespaces:
    untyped: [envoy.filters.http.jwt_authn]
  {{- if eq (include "genops-mesh.observedMetering" .) "true" }}
  # The exchange id and sealed handoff by which the genops.metering filter's stream settles an event stream.
  receiving_namespaces:
    untyped: [genops]
  {{- end }}
forward_rules:
  disallowed_headers:
    patterns:
      - { exact: authorization }
      - { exact: proxy-authorization }
      - { exact: cookie }
      - { exact: x-api-key }
{{- end -}}

{{/*
The matchers that skip genops-mesh's ext_proc filter: requests outside istio.paths (as the CUSTOM
policies' rules do) and, at sidecars (.skipGateway), calls from the ingress gateway, governed
there: the URI SAN of the certificate the caller presented on this connection, which no caller
can write (never a header such as x-forwarded-client-cert, which a plaintext peer can send).
*/}}
{{- define "genops-mesh.extProcSkipMatchers" -}}
{{- $paths := list -}}
{{- range .root.Values.istio.paths -}}
{{- $input := dict "name" "path" "typed_config" (dict "@type" "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput" "header_name" ":path") -}}
{{- $match := ternary (dict "prefix" (trimSuffix "*" .)) (dict "exact" .) (hasSuffix "*" .) -}}
{{- $paths = append $paths (dict "single_predicate" (dict "input" $input "value_match" $match)) -}}
{{- end -}}
{{- $skip := dict "action" (dict "name" "skip" "typed_config" (dict "@type" "type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter")) -}}
{{- $outside := ternary (first $paths) (dict "or_matcher" (dict "predicate" $paths)) (eq (len $paths) 1) -}}
{{- $matchers := list (dict "predicate" (dict "not_matcher" $outside) "on_match" $skip) -}}
{{- if .skipGateway -}}
{{- $peerSan := dict "name" "peer-identity" "typed_config" (dict "@type" "type.googleapis.com/envoy.extensions.matching.common_inputs.ssl.v3.UriSanInput") -}}
{{- $fromGateway := dict "single_predicate" (dict "input" $peerSan "value_match" (dict "exact" (printf "spiffe://%s" .root.Values.istio.gateway.principal))) -}}
{{- $matchers = append $matchers (dict "predicate" $fromGateway "on_match" $skip) -}}
{{- end -}}
{{- toYaml (dict "matcher_list" (dict "matchers" $matchers)) -}}
{{- end -}}

{{/*
"true" when event streams are metered by the genops.metering filter in observability_mode (no
round trip per chunk): istio.metering observed, or auto with the shared store, where any replica
settles a stream another decided (the handoff, README). Without it, synchronous.
*/}}
{{- define "genops-mesh.observedMetering" -}}
{{- $mode := .Values.istio.metering | default "auto" -}}
{{- if not (has $mode (list "auto" "observed" "synchronous")) -}}
{{- fail (printf "istio.metering=%s: must be auto, observed or synchronous" $mode) -}}
{{- end -}}
{{- if and (eq $mode "observed") (eq (include "genops-mesh.store" .) "memory") (gt (int .Values.replicaCount) 1) -}}
{{- fail "istio.metering=observed with several replicas needs the shared store (redis.enabled, redis.url or redis.existingSecret): a metering stream may reach another replica than the one that decided its exchange" -}}
{{- end -}}
{{- ternary "true" "false" (or (eq $mode "observed") (and (eq $mode "auto") (ne (include "genops-mesh.store" .) "memory"))) -}}
{{- end -}}

{{/*
genops-mesh's metering filter (Istio EnvoyFilter variant): a second ext_proc filter, before the
deciding one (encoders run in reverse order, so it sees the response after it), that reads event
streams without holding them. Skipped for any other response and, at sidecars (.skipGateway), for
calls from the gateway (metered there).
*/}}
{{- define "genops-mesh.meteringFilter" -}}
{{- $skip := dict "action" (dict "name" "skip" "typed_config" (dict "@type" "type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter")) -}}
{{- $contentType := dict "name" "content-type" "typed_config" (dict "@type" "type.googleapis.com/envoy.type.matcher.v3.HttpResponseHeaderMatchInput" "header_name" "content-type") -}}
{{- $matchers := list (dict "predicate" (dict "not_matcher" (dict "single_predicate" (dict "input" $contentType "value_match" (dict "prefix" "text/event-stream")))) "on_match" $skip) -}}
{{- if .skipGateway -}}
{{- $peerSan := dict "name" "peer-identity" "typed_config" (dict "@type" "type.googleapis.com/envoy.extensions.matching.common_inputs.ssl.v3.UriSanInput") -}}
{{- $matchers = prepend $matchers (dict "predicate" (dict "single_predicate" (dict "input" $peerSan "value_match" (dict "exact" (printf "spiffe://%s" .root.Values.istio.gateway.principal)))) "on_match" $skip) -}}
{{- end -}}
name: genops.metering
typed_config:
  "@type": type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher
  xds_matcher:
    {{- toYaml (dict "matcher_list" (dict "matchers" $matchers)) | nindent 4 }}
  extension_config:
    name: genops.metering
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
      grpc_service:
        envoy_grpc:
          cluster_name: "outbound|{{ .root.Values.grpcPort }}||{{ include "genops-mesh.host" .root }}"
          authority: {{ include "genops-mesh.host" .root }}
      observability_mode: true
      # Keeps the gRPC stream open after the HTTP stream ends so that the last chunk arrives.
      deferred_close_timeout: 5s
      # Metering never fails a response the decision already let through.
      failure_mode_allow: true
      processing_mode:
        request_header_mode: SKIP
        response_header_mode: SEND
        request_body_mode: NONE
        response_body_mode: STREAMED
        request_trailer_mode: SKIP
        response_trailer_mode: SKIP
      metadata_options:
        forwarding_namespaces:
          untyped: [genops]
      forward_rules:
        disallowed_headers:
          patterns:
            - { exact: set-cookie }
{{- end -}}

{{/*
Where replicas keep rate limits and budgets: "external" (redis.url or redis.existingSecret),
"deployed" (redis.enabled: the chart's own Valkey), or "memory" (each replica its own).
*/}}
{{- define "genops-mesh.store" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret -}}external
{{- else if .Values.redis.enabled -}}deployed
{{- else -}}memory
{{- end -}}
{{- end -}}

{{- define "genops-mesh.redisName" -}}
{{- printf "%s-redis" (include "genops-mesh.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "genops-mesh.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "genops-mesh.redisAuthSecret" -}}
{{- .Values.redis.auth.existingSecret | default (printf "%s-auth" (include "genops-mesh.redisName" .)) -}}
{{- end -}}

{{/*
In memory, N replicas (or N workers) enforce N x every rate limit and budget. Refused unless
allowPerReplicaBudgets says the operator means it.
*/}}
{{- define "genops-mesh.refusePerReplicaState" -}}
{{- if and (eq (include "genops-mesh.store" .) "memory") (not .Values.allowPerReplicaBudgets) -}}
{{- $replicas := ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled | int -}}
{{- if gt $replicas 1 -}}
{{- fail (printf "genops-mesh: redis.enabled=false with %d replicas (%s) keeps rate limits and budgets in each replica's memory, so together they allow up to %d x every limit and budget. Keep redis.enabled=true, set redis.url, or set allowPerReplicaBudgets=true if that is what you want." $replicas (ternary "autoscaling.maxReplicas" "replicaCount" .Values.autoscaling.enabled) $replicas) -}}
{{- end -}}
{{- if gt (int .Values.workers) 1 -}}
{{- fail (printf "genops-mesh: redis.enabled=false with workers=%d: the service refuses in-memory limits and budgets shared by several worker processes. Keep redis.enabled=true or set redis.url." (int .Values.workers)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
One round trip to decide (istio.oneRoundTrip), as deploy/istio/ext-proc/envoy-filter.yaml: per
istio.paths entry a `genops-undecided` route inserted first in every virtual host of .context (a
JSON POST not decided yet streams its body right behind its headers, FULL_DUPLEX_STREAMED; its
destination, BlackHoleCluster, is never reached: the decision's route refresh moves the request
on), and istio.routeIdleTimeout merged back on the generated routes (Envoy keeps the undecided route's 2 s bound
after the refresh otherwise). istiod applies MERGE before INSERT_FIRST.
*/}}
{{- define "genops-mesh.oneRoundTripPatches" -}}
{{- $routes := dict "route" (dict "action" "ROUTE") -}}
{{- $match := dict "context" .context "routeConfiguration" (dict "vhost" $routes) -}}
{{- $patches := list -}}
{{- range .root.Values.istio.paths -}}
{{- $path := ternary (dict "prefix" (trimSuffix "*" .)) (dict "exact" .) (hasSuffix "*" .) -}}
{{- $headers := list
  (dict "name" ":path" "string_match" $path)
  (dict "name" "x-genops-decision-id" "present_match" true "invert_match" true)
  (dict "name" ":method" "string_match" (dict "exact" "POST"))
  (dict "name" "content-type" "string_match" (dict "prefix" "application/json" "ignore_case" true))
  (dict "name" "x-amz-date" "present_match" true "invert_match" true) -}}
{{- $mode := dict "request_header_mode" "SEND" "response_header_mode" "SEND" "request_body_mode" "FULL_DUPLEX_STREAMED" "response_body_mode" "NONE" "request_trailer_mode" "SEND" "response_trailer_mode" "SKIP" -}}
{{- $perRoute := dict "envoy.filters.http.ext_proc" (dict "@type" "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute" "overrides" (dict "processing_mode" $mode)) -}}
{{- $route := dict "name" "genops-undecided" "match" (dict "prefix" "/" "headers" $headers) "route" (dict "cluster" "BlackHoleCluster" "timeout" "0s" "idle_timeout" "2s") "typed_per_filter_config" $perRoute -}}
{{- $patches = append $patches (dict "applyTo" "HTTP_ROUTE" "match" $match "patch" (dict "operation" "INSERT_FIRST" "value" $route)) -}}
{{- end -}}
{{- $patches = append $patches (dict "applyTo" "HTTP_ROUTE" "match" $match "patch" (dict "operation" "MERGE" "value" (dict "route" (dict "idle_timeout" .root.Values.istio.routeIdleTimeout)))) -}}
{{- toYaml $patches -}}
{{- end -}}
