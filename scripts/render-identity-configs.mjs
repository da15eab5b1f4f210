#!/usr/bin/env node
// Renders the verified-identity variants of the Envoy configs from the base ones:
//   deploy/envoy/ext-authz.yaml -> deploy/envoy/ext-authz-jwt.yaml
//   deploy/envoy/ext-proc.yaml  -> deploy/envoy/ext-proc-jwt.yaml
// Each is its base plus the same blocks: header_mutation (strip client-sent x-jwt-payload) and
// jwt_authn in front of the governance filter, the filter forwarding jwt_authn's metadata, and
// mTLS on the genops_mesh cluster. Run it after changing a base config (or a block below);
// `--check` exits 1 when a variant is stale (test/mesh/identity-manifests.test.ts runs it).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const IDENTITY_FILTERS = "                  # Before jwt_authn: a client must never be able to send the payload header itself\n                  # (jwt_authn only writes it for a verified token; without a token the client's copy\n                  # would otherwise pass).\n                  - name: envoy.filters.http.header_mutation\n                    typed_config:\n                      \"@type\": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation\n                      mutations:\n                        request_mutations:\n                          - remove: x-jwt-payload\n                  - name: envoy.filters.http.jwt_authn\n                    typed_config:\n                      \"@type\": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication\n                      providers:\n                        genops_issuer:\n                          issuer: \"${JWT_ISSUER}\"\n                          audiences: [\"${JWT_AUDIENCE}\"]\n                          local_jwks:\n                            filename: ${JWT_JWKS_PATH}\n                          # The verified payload for genops-mesh: dynamic metadata (the trusted channel)...\n                          payload_in_metadata: jwt_payload\n                          # ...and a header, for upstreams (and policies that set jwt.payloadHeader with GENOPS_TRUST_PAYLOAD_HEADER).\n                          forward_payload_header: x-jwt-payload\n                          # The token itself is removed once verified (forward: false): it reaches\n                          # neither genops-mesh nor the upstream.\n                          forward: false\n                      rules:\n                        - match: { prefix: / }\n                          requires:\n                            requires_any:\n                              requirements:\n                                - provider_name: genops_issuer\n                                # No token: on to genops-mesh, whose policy decides (spec.identity.required).\n                                # A token that fails verification is still refused here.\n                                - allow_missing: {}\n";
const SERVICE_TLS = "      # mTLS to genops-mesh: Envoy verifies the service's certificate and presents its own.\n      # Static files are read at start-up; for rotation without a restart serve them through SDS\n      # (Istio's sidecar does), or restart Envoy when cert-manager renews them.\n      transport_socket:\n        name: envoy.transport_sockets.tls\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n          sni: ${GENOPS_TLS_SERVER_NAME}\n          common_tls_context:\n            alpn_protocols: [h2]\n            tls_certificates:\n              - certificate_chain: { filename: ${GENOPS_TLS_CERT} }\n                private_key: { filename: ${GENOPS_TLS_KEY} }\n            validation_context:\n              trusted_ca: { filename: ${GENOPS_TLS_CA} }\n              match_typed_subject_alt_names:\n                - san_type: DNS\n                  matcher: { exact: ${GENOPS_TLS_SERVER_NAME} }\n";
const VARIANTS = [
  {
    base: 'deploy/envoy/ext-authz.yaml',
    out: 'deploy/envoy/ext-authz-jwt.yaml',
    header: "# genops-mesh behind Envoy's ext_authz filter, with verified identity: jwt_authn in front of\n# the governance filter and mTLS from Envoy to genops-mesh.\n#\n# The same sidecar / gateway as ext-authz.yaml, plus:\n#   1. header_mutation removes any client-sent x-jwt-payload, so the header the service may\n#      trust (spec.identity.jwt.payloadHeader) can only come from jwt_authn below.\n#   2. jwt_authn verifies the bearer token (Authorization: Bearer ...) against the issuer's keys,\n#      writes the verified payload to dynamic metadata (payload_in_metadata: jwt_payload, in the\n#      namespace envoy.filters.http.jwt_authn) and to x-jwt-payload (base64url). A request without\n#      a token passes on (allow_missing) and the policy decides (401 where it requires one); an\n#      expired, wrongly signed or wrong-audience token is refused here with 401: it never reaches\n#      the service.\n#   3. ext_authz forwards that metadata namespace (metadata_context_namespaces) to genops-mesh.\n#   4. The genops_mesh cluster speaks TLS with a client certificate (mTLS): the service can\n#      require it and allow only the identities on GENOPS_TLS_CLIENT_ALLOW.\n#\n# Placeholders (render with envsubst, see deploy/envoy/README.md): those of ext-authz.yaml, and\n#   ${JWT_ISSUER}       the \"iss\" the tokens carry, e.g. https://auth.example.com\n#   ${JWT_AUDIENCE}     the audience tokens must name, e.g. genops-mesh\n#   ${JWT_JWKS_PATH}    the issuer's JWKS as a file (a mounted ConfigMap); for a JWKS URL use\n#                       remote_jwks: { http_uri: { uri, cluster, timeout }, cache_duration } instead\n#   ${GENOPS_TLS_CA}    CA bundle that signed genops-mesh's server certificate (PEM path)\n#   ${GENOPS_TLS_CERT}  this Envoy's client certificate (PEM path; its URI or DNS SAN is the\n#                       identity genops-mesh checks against GENOPS_TLS_CLIENT_ALLOW)\n#   ${GENOPS_TLS_KEY}   its private key (PEM path)\n#   ${GENOPS_TLS_SERVER_NAME}  the DNS name in genops-mesh's certificate: SNI and the SAN Envoy\n#                       verifies, e.g. genops-mesh.genops.svc\n#\n",
    filter: '                  - name: envoy.filters.http.ext_authz\n',
    after: '                      clear_route_cache: true\n',
    forward: '                      # The verified JWT payload jwt_authn wrote above.\n                      metadata_context_namespaces: [envoy.filters.http.jwt_authn]\n',
  },
  {
    base: 'deploy/envoy/ext-proc.yaml',
    out: 'deploy/envoy/ext-proc-jwt.yaml',
    header: "# genops-mesh behind Envoy's ext_proc filter, with verified identity: jwt_authn in front of\n# the governance filter and mTLS from Envoy to genops-mesh. ext-proc.yaml plus the same\n# header removal, jwt_authn and TLS cluster as ext-authz-jwt.yaml (see that file and\n# deploy/envoy/README.md); ext_proc forwards jwt_authn's metadata with\n# metadata_options.forwarding_namespaces.untyped, and the service reads\n# ProcessingRequest.metadata_context.\n#\n# Placeholders: those of ext-proc.yaml, and ${JWT_ISSUER}, ${JWT_AUDIENCE}, ${JWT_JWKS_PATH},\n# ${GENOPS_TLS_CA}, ${GENOPS_TLS_CERT}, ${GENOPS_TLS_KEY}, ${GENOPS_TLS_SERVER_NAME} as in\n# ext-authz-jwt.yaml.\n#\n",
    // First of all filters: the metering filter (response only) stands before the deciding ext_proc.
    filter: '                http_filters:\n',
    filterWhere: 'after',
    // The deciding filter's own metadata_options (the metering filter's is indented deeper).
    after: '\n                      metadata_options:\n',
    forward: '                        # The verified JWT payload jwt_authn wrote above (untyped: google.protobuf.Struct).\n                        forwarding_namespaces:\n                          untyped: [envoy.filters.http.jwt_authn]\n',
  },
];
const CLUSTER = '      load_assignment:\n        cluster_name: genops_mesh\n';

function insertOnce(text, anchor, insertion, where, file) {
  const at = text.indexOf(anchor);
  if (at < 0 || text.indexOf(anchor, at + 1) >= 0) throw new Error(`${file}: expected exactly one ${JSON.stringify(anchor.trim())}`);
  const index = where === 'before' ? at : at + anchor.length;
  return text.slice(0, index) + insertion + text.slice(index);
}

let stale = false;
for (const variant of VARIANTS) {
  const base = readFileSync(join(root, variant.base), 'utf8');
  let body = base.slice(base.indexOf('admin:'));
  body = insertOnce(body, variant.filter, IDENTITY_FILTERS, variant.filterWhere ?? 'before', variant.base);
  body = insertOnce(body, variant.after, variant.forward, 'after', variant.base);
  body = insertOnce(body, CLUSTER, SERVICE_TLS, 'before', variant.base);
  const rendered = variant.header + body;
  const path = join(root, variant.out);
  if (process.argv.includes('--check')) {
    if (readFileSync(path, 'utf8') !== rendered) {
      process.stderr.write(`${variant.out} is stale: run node scripts/render-identity-configs.mjs\n`);
      stale = true;
    }
  } else {
    writeFileSync(path, rendered);
    process.stderr.write(`rendered ${variant.out} from ${variant.base}\n`);
  }
}
process.exit(stale ? 1 : 0);
