# syntax=docker/dockerfile:1
# genops-mesh: ext_authz + ext_proc + forward-auth governance service for Envoy-based meshes.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no install script runs (the `node` devDependency would fetch a second Node
# binary; nothing the build needs has one).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# tsc through the image's node, not node_modules/.bin (where the `node` devDependency lives).
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    GENOPS_GRPC_PORT=9001 \
    GENOPS_ADMIN_PORT=9464
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY proto ./proto
COPY deploy/default-policy.yaml deploy/policy.schema.json ./deploy/
# Non-root by number (the image's "node" user), so Kubernetes runAsNonRoot can verify it; nothing
# is written at run time: works with readOnlyRootFilesystem.
USER 1000:1000
# 9001 gRPC (ext_authz, ext_proc, health), 9464 admin (/metrics, /healthz, /readyz),
# 9002 forward auth when GENOPS_FORWARD_AUTH_PORT=9002 (off by default).
EXPOSE 9001 9002 9464
# --max-semi-space-size: see SERVICE_NODE_FLAGS in src/server/service-node-flags.ts (less memory, same throughput).
ENTRYPOINT ["node", "--max-semi-space-size=4", "--heap-growing-percent=100", "dist/main.js"]
