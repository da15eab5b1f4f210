#!/usr/bin/env node
// Renders the variants of deploy/envoy/ext-proc.yaml that differ from it in one place:
//   deploy/envoy/ext-proc-uds.yaml               the genops_mesh cluster on a Unix socket (a sidecar, GENOPS_GRPC_SOCKET)
//   deploy/envoy/ext-proc-ungoverned-route.yaml  one route in front with both ext_proc filters off (README, Deny by default)
//   deploy/envoy/ext-proc-replicas.yaml          the genops_mesh cluster on two replicas, streams balanced round robin
// The rest of each file is ext-proc.yaml as it is. Run it after changing ext-proc.yaml (or a block
// below); `--check` exits 1 when a variant is stale (test/e2e/envoy-configs.test.ts runs it).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const BASE = 'deploy/envoy/ext-proc.yaml';
const RENDERED_BY = '# Rendered from ext-proc.yaml by scripts/render-ext-proc-variants.mjs: change that file (or the\n# script) and re-render; test/e2e/envoy-configs.test.ts fails while this file is stale.\n#\n';
const PER_ROUTE_OFF = '"@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute\n';
const VARIANTS = [
  {
    out: 'deploy/envoy/ext-proc-uds.yaml',
    header: "# genops-mesh behind Envoy's ext_proc filter, as a sidecar over a Unix domain socket.\n#\n# ext-proc.yaml with the genops_mesh cluster on a Unix socket (Envoy's `pipe` address) instead of\n# host and port: start genops-mesh with GENOPS_GRPC_SOCKET set to the same path, on a volume both\n# containers mount. No TCP hop and no port to guard: the socket's file permissions are the guard\n# (the service refuses to combine GENOPS_TLS_CLIENT_ALLOW with a socket).\n#\n" + RENDERED_BY + "# Placeholders (render with envsubst, see deploy/envoy/README.md): those of ext-proc.yaml, with the\n# socket in place of the service's host and port:\n#   ${GENOPS_SOCKET}  the service's socket path (GENOPS_GRPC_SOCKET), e.g. /var/run/genops/genops.sock\n#\n#   envsubst '${LISTENER_HOST} ${LISTENER_PORT} ${ADMIN_PORT} ${GENOPS_SOCKET} ${UPSTREAM_HOST} ${UPSTREAM_PORT}' \\\n#     < deploy/envoy/ext-proc-uds.yaml > envoy.yaml && envoy -c envoy.yaml\n",
    edits: [
      {
        anchor: '    - name: genops_mesh\n      type: STRICT_DNS\n      dns_lookup_family: V4_PREFERRED\n',
        replacement: '    - name: genops_mesh\n      # A pipe address (the Unix socket below) needs a STATIC cluster.\n      type: STATIC\n',
      },
      {
        anchor: 'socket_address: { address: ${GENOPS_HOST}, port_value: ${GENOPS_PORT} }\n',
        replacement: 'pipe: { path: ${GENOPS_SOCKET} }\n',
      },
    ],
  },
  {
    out: 'deploy/envoy/ext-proc-ungoverned-route.yaml',
    header: "# genops-mesh behind Envoy's ext_proc filter, with one route the filters do not see.\n#\n# ext-proc.yaml plus a /healthz route in front of the governed ones that turns both ext_proc\n# filters off (typed_per_filter_config, ExtProcPerRoute disabled): the example of README \"Deny by\n# default\" for traffic that is not AI traffic (health checks, static assets). Such a route is not\n# governed at all: keep it to exact paths no client can point at an AI API.\n#\n" + RENDERED_BY + "# Placeholders: those of ext-proc.yaml.\n#\n",
    edits: [
      {
        anchor: '                      routes:\n',
        after: true,
        replacement:
          '                        # Not governed: no ext_proc stream is opened and no decision made (both filters off).\n' +
          '                        - name: ungoverned-health\n' +
          '                          match: { path: /healthz }\n' +
          '                          route: { cluster: ai_upstream }\n' +
          '                          typed_per_filter_config:\n' +
          '                            envoy.filters.http.ext_proc:\n' +
          '                              ' + PER_ROUTE_OFF +
          '                              disabled: true\n' +
          '                            genops.metering:\n' +
          '                              ' + PER_ROUTE_OFF +
          '                              disabled: true\n',
      },
    ],
  },
  {
    out: 'deploy/envoy/ext-proc-replicas.yaml',
    header: "# genops-mesh behind Envoy's ext_proc filter, on several replicas.\n#\n# ext-proc.yaml with the genops_mesh cluster on two genops-mesh replicas, each ext_proc stream balanced\n# on its own (ROUND_ROBIN): an event stream's metering stream often reaches another replica than its\n# deciding stream, as behind a Kubernetes Service. Run every replica with the same GENOPS_REDIS_URL:\n# the replica that meters a stream settles it from the handoff the deciding reply carries (sealed\n# with a key the replicas keep in Redis, or GENOPS_METERING_HANDOFF_SECRET), exactly once (README, Observed metering across replicas). For a\n# Service, list its endpoints (a headless Service name with STRICT_DNS resolves to all of them).\n#\n" + RENDERED_BY + "# Placeholders: those of ext-proc.yaml, and the second replica's address:\n#   ${GENOPS_HOST_2}  the second replica's gRPC host\n#   ${GENOPS_PORT_2}  its gRPC port\n#\n",
    edits: [
      {
        anchor: '    - name: genops_mesh\n      type: STRICT_DNS\n',
        after: true,
        replacement: '      # Each ext_proc stream picks its replica: the deciding and metering streams of one exchange may differ.\n      lb_policy: ROUND_ROBIN\n',
      },
      {
        anchor: '                    socket_address: { address: ${GENOPS_HOST}, port_value: ${GENOPS_PORT} }\n',
        after: true,
        replacement: '              - endpoint:\n                  address:\n                    socket_address: { address: ${GENOPS_HOST_2}, port_value: ${GENOPS_PORT_2} }\n',
      },
    ],
  },
];

/** Replaces (or, with `after`, follows) the one occurrence of `anchor`; anything else is an error naming it. */
function editOnce(text, { anchor, replacement, after = false }) {
  const at = text.indexOf(anchor);
  if (at < 0 || text.indexOf(anchor, at + 1) >= 0) throw new Error(`${BASE}: expected exactly one ${JSON.stringify(anchor.trim())}`);
  const end = at + anchor.length;
  return text.slice(0, after ? end : at) + replacement + text.slice(end);
}

const base = readFileSync(join(root, BASE), 'utf8');
let stale = false;
for (const variant of VARIANTS) {
  const body = variant.edits.reduce(editOnce, base.slice(base.indexOf('admin:')));
  const rendered = variant.header + body;
  const path = join(root, variant.out);
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      // missing: stale
    }
    if (current !== rendered) {
      process.stderr.write(`${variant.out} is stale: run node scripts/render-ext-proc-variants.mjs\n`);
      stale = true;
    }
  } else {
    writeFileSync(path, rendered);
    process.stderr.write(`rendered ${variant.out} from ${BASE}\n`);
  }
}
process.exit(stale ? 1 : 0);
