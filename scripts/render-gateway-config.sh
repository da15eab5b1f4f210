#!/usr/bin/env bash
# Renders deploy/envoy/ext-authz.yaml into the Envoy config of the Linkerd-meshed gateway
# (deploy/linkerd/gateway/envoy.yaml, shipped as a ConfigMap) and copies it into the Helm chart.
# Run it after changing ext-authz.yaml; test/mesh/kubernetes-manifests.test.ts fails while they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
export LISTENER_HOST=0.0.0.0 LISTENER_PORT=10000 ADMIN_PORT=9901 \
       GENOPS_HOST=genops-mesh.genops.svc.cluster.local GENOPS_PORT=9001 \
       UPSTREAM_HOST=ai-inference.genops.svc.cluster.local UPSTREAM_PORT=8080
{
  cat <<'HEADER'
# Envoy config of the genops gateway meshed by Linkerd: deploy/envoy/ext-authz.yaml rendered by
# scripts/render-gateway-config.sh for the cluster (listener 0.0.0.0:10000, genops-mesh and
# ai-inference by Service name; Linkerd's proxy adds mTLS on both hops). Do not edit by hand:
# change ext-authz.yaml (or point the routes at your own clusters there) and re-render.
HEADER
  # The template's own comment header (placeholder docs) is left out.
  awk 'body || !/^#/ { body = 1; print }' deploy/envoy/ext-authz.yaml |
    envsubst '${LISTENER_HOST} ${LISTENER_PORT} ${ADMIN_PORT} ${GENOPS_HOST} ${GENOPS_PORT} ${UPSTREAM_HOST} ${UPSTREAM_PORT}'
} > deploy/linkerd/gateway/envoy.yaml
# The Helm chart renders the same template itself (templates/linkerd.yaml); it ships a copy.
cp deploy/envoy/ext-authz.yaml deploy/helm/genops-mesh/files/envoy-ext-authz.yaml
echo "rendered deploy/linkerd/gateway/envoy.yaml, copied deploy/helm/genops-mesh/files/envoy-ext-authz.yaml" >&2
