# syntax=docker/dockerfile:1
# genops-mesh: ext_authz + ext_proc governance service for Envoy-based meshes.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    GENOPS_GRPC_PORT=9001 \
    GENOPS_ADMIN_PORT=9464
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY proto ./proto
COPY deploy/default-policy.yaml deploy/policy.schema.json ./deploy/
# Non-root, nothing written at run time: works with readOnlyRootFilesystem.
USER node
EXPOSE 9001 9464
ENTRYPOINT ["node", "dist/main.js"]
