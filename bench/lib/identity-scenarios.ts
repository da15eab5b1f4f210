/**
 * Identity scenarios (issue 13): Check throughput with spec.identity binding
 * the context to JWT claims (the payload in the CheckRequest's jwt_authn
 * metadata, as Envoy forwards it), and with TLS on the gRPC port, beside
 * the same Check on a plain service, measured back to back in one run.
 *
 * h2load cannot present a client certificate, so the direct TLS scenario is
 * server-side TLS; mTLS with the allow-list is measured with a real Envoy as
 * the client (h2load → Envoy → genops-mesh), beside the same Envoy in
 * plaintext.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { parse, stringify } from 'yaml';
import { REPO_ROOT } from '../../src/demo/repo-root.js';
import { startEnvoy, type RunningEnvoy } from '../../src/demo/start-envoy.js';
import { startService, type RunningService } from '../../src/demo/start-service.js';
import { PROTO_ROOT } from '../../src/server/proto-definitions.js';
import { createTestPki, type TestPki } from '../../test/support/create-test-pki.js';
import { runH2load, type LoadResult } from './load-tools.js';
import { sampleUsage } from './process-stats.js';
import type { ScenarioResult } from './report.js';
import { delta, readCounters } from './service-metrics.js';

const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
const ENVOY_IDENTITY = 'spiffe://cluster.local/ns/genops/sa/envoy-gateway';
const GRPC_HEADERS = ['content-type: application/grpc', 'te: trailers'];
const HEADERS = {
  'x-genops-team': 'ml-platform',
  'x-genops-customer-id': 'cust-0000001',
  'x-genops-project': 'support-chatbot',
  'x-genops-customer-tier': 'premium',
  'x-genops-model': 'claude-opus',
  'x-genops-environment': 'production',
  'x-genops-cost-center': 'cc-4711',
  'x-genops-feature': 'chat',
  traceparent: '00-6e6f7073000000000000000000000001-0000000000000001-01',
};
/** A realistic verified payload: what jwt_authn puts under payload_in_metadata. */
const PAYLOAD = {
  iss: 'https://auth.example.com',
  sub: 'user-4711',
  aud: ['genops-mesh'],
  exp: 4_102_444_800,
  iat: 1_764_547_200,
  groups: ['employees', 'ml-platform', 'llm-users'],
  customer: { id: 'cust-0000001', tier: 'premium' },
  cost_center: 'cc-4711',
};
const IDENTITY = {
  jwt: { issuers: ['https://auth.example.com'], audiences: ['genops-mesh'] },
  required: true,
  claims: {
    team: { claim: 'groups', mode: 'must-match' },
    customerId: { claim: 'customer.id', mode: 'claim-wins' },
    customerTier: { claim: 'customer.tier', mode: 'must-match' },
    costCenter: { claim: 'cost_center', mode: 'fill' },
  },
};

type Kind = 'plain' | 'identity' | 'tls' | 'mtls';

export interface IdentityStep {
  readonly id: string;
  readonly section: 'direct-closed';
  readonly title: string;
  readonly expectedS: number;
  prepare(): Promise<unknown>;
  run(): Promise<ScenarioResult>;
}

/**
 * Three steps sharing services started on first use; `stopAll` stops them.
 * Ids: identity/service/check/closed (baseline, same body without metadata),
 * identity/service/check+claims/closed, identity/service/check+tls/closed.
 */
export function identitySteps(options: { durationS: number; warmupS: number; workDir: string; policyPath: string }): { steps: IdentityStep[]; stopAll(): Promise<void> } {
  const dir = join(options.workDir, 'identity');
  const services = new Map<Kind, Promise<RunningService>>();
  let pki: TestPki | undefined;
  const bodies = new Map<'plain' | 'claims', string>();

  const body = (withClaims: boolean) => {
    const key = withClaims ? 'claims' : 'plain';
    if (!bodies.has(key)) {
      mkdirSync(dir, { recursive: true });
      const path = join(dir, `check-${key}.bin`);
      writeFileSync(path, encodeCheck(withClaims));
      bodies.set(key, path);
    }
    return bodies.get(key)!;
  };

  const service = (kind: Kind) => {
    let started = services.get(kind);
    if (!started) {
      started = (async () => {
        mkdirSync(dir, { recursive: true });
        const env: Record<string, string> = { LOG_LEVEL: 'info' };
        let policyPath = options.policyPath;
        if (kind === 'identity') {
          const policy = parse(readFileSync(options.policyPath, 'utf8')) as { spec: Record<string, unknown> };
          policy.spec.identity = IDENTITY;
          policyPath = join(dir, 'policy-identity.yaml');
          writeFileSync(policyPath, stringify(policy));
        }
        if (kind === 'tls' || kind === 'mtls') {
          pki ??= createTestPki([ENVOY_IDENTITY]);
          Object.assign(env, { GENOPS_TLS_CERT: pki.serverCert, GENOPS_TLS_KEY: pki.serverKey });
          if (kind === 'mtls') Object.assign(env, { GENOPS_TLS_CLIENT_CA: pki.ca, GENOPS_TLS_CLIENT_ALLOW: ENVOY_IDENTITY });
        }
        return startService({ policyPath, env });
      })();
      services.set(kind, started);
    }
    return started;
  };

  const envoys = new Map<'plain' | 'mtls', Promise<RunningEnvoy>>();
  /** Envoy in front of the plaintext or the mTLS service: the client a mesh really has. */
  const envoy = (kind: 'plain' | 'mtls') => {
    let started = envoys.get(kind);
    if (!started) {
      started = (async () => {
        const running = await service(kind);
        const client = kind === 'mtls' ? pki!.clients.get(ENVOY_IDENTITY)! : undefined;
        const template = join(dir, `grpc-proxy-${kind}.yaml`);
        writeFileSync(template, client ? withUpstreamMtls(readFileSync(join(REPO_ROOT, 'bench/envoy/grpc-proxy.yaml'), 'utf8'), { ca: pki!.ca, cert: client.cert, key: client.key }) : readFileSync(join(REPO_ROOT, 'bench/envoy/grpc-proxy.yaml'), 'utf8'));
        return startEnvoy({ config: template, vars: { GENOPS_PORT: running.grpcPort } });
      })();
      envoys.set(kind, started);
    }
    return started;
  };

  const throughEnvoy = (kind: 'plain' | 'mtls', id: string, title: string): IdentityStep => ({
    id,
    section: 'direct-closed',
    title,
    expectedS: options.durationS + options.warmupS + 1,
    prepare: () => envoy(kind),
    async run() {
      const running = await service(kind);
      const proxy = await envoy(kind);
      const before = await readCounters(running.adminUrl);
      const usage = sampleUsage(running.process.pid);
      const load: LoadResult = await runH2load({
        url: `${proxy.url}${CHECK_PATH}`,
        connections: 4,
        streams: 16,
        durationS: options.durationS,
        warmupS: options.warmupS,
        bodyFile: body(false),
        headers: GRPC_HEADERS,
        logFile: join(dir, 'h2load.log'),
      });
      const sampled = usage.stop();
      const after = await readCounters(running.adminUrl);
      return { id, section: 'direct-closed', title, load, usage: sampled, decisions: delta(after.decisions, before.decisions) };
    },
  });

  const step = (kind: Kind, id: string, title: string): IdentityStep => ({
    id,
    section: 'direct-closed',
    title,
    expectedS: options.durationS + options.warmupS + 1,
    prepare: () => service(kind),
    async run() {
      const running = await service(kind);
      const scheme = kind === 'tls' ? 'https' : 'http';
      const before = await readCounters(running.adminUrl);
      const usage = sampleUsage(running.process.pid);
      const load: LoadResult = await runH2load({
        url: `${scheme}://127.0.0.1:${running.grpcPort}${CHECK_PATH}`,
        connections: 4,
        streams: 16,
        durationS: options.durationS,
        warmupS: options.warmupS,
        bodyFile: body(kind === 'identity'),
        headers: GRPC_HEADERS,
        logFile: join(dir, 'h2load.log'),
      });
      const sampled = usage.stop();
      const after = await readCounters(running.adminUrl);
      return { id, section: 'direct-closed', title, load, usage: sampled, decisions: delta(after.decisions, before.decisions) };
    },
  });

  return {
    steps: [
      step('plain', 'identity/service/check/closed', 'genops-mesh Check, plaintext, no spec.identity (baseline of the two below)'),
      step('identity', 'identity/service/check+claims/closed', 'genops-mesh Check with spec.identity: 4 fields bound to jwt_authn metadata claims'),
      step('tls', 'identity/service/check+tls/closed', 'genops-mesh Check over TLS on the gRPC port (server certificate; h2load sends no client certificate)'),
      throughEnvoy('plain', 'identity/envoy/check/closed', 'genops-mesh Check through Envoy (h2load → Envoy → service), plaintext to the service'),
      throughEnvoy('mtls', 'identity/envoy/check+mtls/closed', 'genops-mesh Check through Envoy, mTLS to the service with GENOPS_TLS_CLIENT_ALLOW'),
    ],
    async stopAll() {
      for (const started of envoys.values()) await (await started.catch(() => undefined))?.stop().catch(() => undefined);
      envoys.clear();
      for (const started of services.values()) await (await started.catch(() => undefined))?.stop({ timeoutMs: 15_000 }).catch(() => undefined);
      services.clear();
      pki?.remove();
    },
  };
}

/** One gRPC-framed CheckRequest: the bench's governance headers, and optionally the verified JWT payload as Envoy forwards it. */
export function encodeCheck(withClaims: boolean): Buffer {
  const root = new protobuf.Root();
  const bundled = root.resolvePath;
  root.resolvePath = (origin, target) => {
    const local = join(PROTO_ROOT, target);
    return existsSync(local) ? local : bundled(origin, target);
  };
  root.loadSync(['envoy/service/auth/v3/external_auth.proto'], { keepCase: true });
  const CheckRequest = root.lookupType('envoy.service.auth.v3.CheckRequest');
  const Struct = root.lookupType('google.protobuf.Struct');
  // An AI API path: the body names the model, as with_request_body (pack_as_bytes) sends it.
  const chat = Buffer.from(JSON.stringify({ model: 'claude-opus', max_tokens: 256, messages: [{ role: 'user', content: 'Summarize the ticket, please.' }] }));
  const headers = { ...HEADERS, ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json', 'content-length': String(chat.length) };
  const attributes: Record<string, unknown> = {
    request: { http: { method: 'POST', path: '/v1/chat/completions', host: 'ai.internal', protocol: 'HTTP/2', headers, raw_body: chat } },
    source: { principal: 'spiffe://cluster.local/ns/api-gateway/sa/gateway' },
  };
  if (withClaims) {
    const namespace = Struct.fromObject(toStruct({ jwt_payload: PAYLOAD }));
    attributes.metadata_context = { filter_metadata: { 'envoy.filters.http.jwt_authn': namespace } };
  }
  const message = CheckRequest.encode(CheckRequest.fromObject({ attributes })).finish();
  const framed = Buffer.alloc(5 + message.length);
  framed.writeUInt32BE(message.length, 1);
  Buffer.from(message).copy(framed, 5);
  return framed;
}

/** Plain JSON as google.protobuf.Struct fields (protobufjs's fromObject takes the member names). */
function toStruct(value: Record<string, unknown>): { fields: Record<string, unknown> } {
  const toValue = (entry: unknown): Record<string, unknown> => {
    if (typeof entry === 'string') return { stringValue: entry };
    if (typeof entry === 'number') return { numberValue: entry };
    if (typeof entry === 'boolean') return { boolValue: entry };
    if (Array.isArray(entry)) return { listValue: { values: entry.map(toValue) } };
    if (entry && typeof entry === 'object') return { structValue: toStruct(entry as Record<string, unknown>) };
    return { nullValue: 0 };
  };
  return { fields: Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, toValue(entry)])) };
}

/** The genops_mesh cluster of bench/envoy/grpc-proxy.yaml with the client side of mTLS, as deploy/envoy/ext-authz-jwt.yaml has it. */
function withUpstreamMtls(template: string, files: { ca: string; cert: string; key: string }): string {
  const anchor = '      load_assignment:\n        cluster_name: genops_mesh\n';
  if (!template.includes(anchor)) throw new Error('bench/envoy/grpc-proxy.yaml: the genops_mesh cluster has no load_assignment to put the transport socket before');
  const socket = [
    '      transport_socket:',
    '        name: envoy.transport_sockets.tls',
    '        typed_config:',
    '          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
    '          sni: localhost',
    '          common_tls_context:',
    '            alpn_protocols: [h2]',
    `            tls_certificates: [{ certificate_chain: { filename: ${files.cert} }, private_key: { filename: ${files.key} } }]`,
    `            validation_context: { trusted_ca: { filename: ${files.ca} }, match_typed_subject_alt_names: [{ san_type: DNS, matcher: { exact: localhost } }] }`,
    '',
  ].join('\n');
  return template.replace(anchor, socket + anchor);
}
