import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import {
  createTestPki,
  freePort,
  httpRequest,
  renderEnvoyConfig,
  REPO_ROOT,
  startService,
  startUpstream,
  type HttpResponse,
  type RunningService,
  type TestPki,
  type Upstream,
} from '../../support/index.js';
import { startOtlpReceiver, type OtlpReceiver } from '../../support/otlp-receiver.js';
import { openAiChatSse, tokenUsage } from '../../support/llm-wire.js';
import type { RecordedRequest } from '../../support/start-upstream.js';
import type { ServerResponse } from 'node:http';
import { startIstiod, type RunningIstiod } from './start-istiod.js';
import { startIstioProxy, type IstioProxy } from './start-istio-proxy.js';

/** How genops-mesh is wired in: the CUSTOM AuthorizationPolicies, or the ext_proc EnvoyFilter. */
export type IstioGovernance = 'ext-authz' | 'ext-proc';

/**
 * deploy/istio/identity applied too: its RequestAuthentications with the issuer's keys inline
 * (`jwks` for `jwksUri`, as the issuer's endpoint is not reachable here), and the policy given
 * `spec.identity`.
 */
export interface IstioIdentityOptions {
  /** The issuer's JWKS, JSON. */
  readonly jwks: string;
  readonly policyIdentity: Record<string, unknown>;
}

export const GATEWAY_PRINCIPAL = 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account';
export const MODEL_PRINCIPAL = 'spiffe://cluster.local/ns/genops/sa/ai-inference';
/** A workload inside the mesh that calls the model directly (east-west), not through the gateway. */
export const EAST_WEST_CALLER = 'spiffe://cluster.local/ns/genops/sa/support-bot';
/** Another meshed workload, which the test policy does not let act for data-science. */
export const OTHER_CALLER = 'spiffe://cluster.local/ns/batch/sa/jobs';
export const GATEWAY_HOST = 'ai.example.com';
export const MODEL_HOST = 'ai-inference.genops.svc.cluster.local';
export const GENOPS_CLUSTER = 'outbound|9001||genops-mesh.genops.svc.cluster.local';
/** Each proxy its own "pod IP" on loopback, so istiod can tell them apart. */
const GATEWAY_IP = '127.0.0.2';
const SIDECAR_IP = '127.0.0.3';
/**
 * The test policy: the default one with a per-customer bucket small enough to exhaust, and the
 * data-science team bound to the support-bot workload's identity (as Istio names principals).
 */
export const RATE_LIMIT_CAPACITY = 5;

export interface IstioMesh {
  readonly governance: IstioGovernance;
  readonly istiod: RunningIstiod;
  readonly gateway: IstioProxy;
  readonly sidecar: IstioProxy;
  readonly service: RunningService;
  /** The claude-opus workload (no sidecar) and the claude-haiku one (behind `sidecar`). */
  readonly opus: Upstream;
  readonly haiku: Upstream;
  /** The otel-collector the Telemetry resources send the proxies' spans to. */
  readonly collector: OtlpReceiver;
  readonly gatewayPort: number;
  readonly sidecarPort: number;
  /** North-south: a client calling https://ai.example.com through the ingress gateway. */
  throughGateway(path: string, headers: Record<string, string>, body?: string): Promise<HttpResponse>;
  /** East-west: a meshed caller (mTLS as EAST_WEST_CALLER, or `as`) calling the claude-haiku workload directly. */
  eastWest(path: string, headers: Record<string, string>, body?: string, as?: string): Promise<HttpResponse>;
  /** The allowed and denied decisions genops-mesh logged for one customer id. */
  decisionsFor(customerId: string): Record<string, unknown>[];
  /** Replaces one of the applied Istio resources files (as `kubectl apply` of an edited copy would). */
  applyEdit(file: string, edit: (objects: Record<string, unknown>[]) => void): void;
  stop(): Promise<void>;
}

/** The files a kustomization lists, read from deploy/. */
function kustomizationResources(dir: string): string[] {
  const kustomization = parse(readFileSync(join(REPO_ROOT, dir, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
  return kustomization.resources.map((resource) => join(dir, resource));
}

/**
 * The whole Istio data path for one governance variant: genops-mesh (dist/), two model
 * workloads, the istiod harness fed the shipped deploy/istio resources (what `kubectl apply -k`
 * puts in a cluster) plus test/istio/fixtures/cluster.yaml, and two stock Envoys as the
 * ingress gateway and the claude-haiku workload's sidecar.
 */
export async function startIstioMesh(governance: IstioGovernance, identity?: IstioIdentityOptions, options: { logLevel?: 'debug' | 'trace' } = {}): Promise<IstioMesh> {
  const cleanups: (() => Promise<unknown> | void)[] = [];
  const stopAll = async () => {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  };
  try {
    const pki: TestPki = createTestPki([EAST_WEST_CALLER, OTHER_CALLER]);
    cleanups.push(() => pki.remove());
    const work = mkdtempSync(join(tmpdir(), 'genops-istio-'));
    cleanups.push(() => rmSync(work, { recursive: true, force: true }));

    const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as {
      spec: { rateLimits: { capacity: number; refill: { amount: number } }[]; teams: Record<string, Record<string, unknown>>; identity?: Record<string, unknown> };
    };
    if (identity) policy.spec.identity = identity.policyIdentity;
    policy.spec.teams['data-science'] = { ...policy.spec.teams['data-science'], principals: [EAST_WEST_CALLER.replace('spiffe://', '')] };
    policy.spec.rateLimits[0]!.capacity = RATE_LIMIT_CAPACITY;
    policy.spec.rateLimits[0]!.refill.amount = RATE_LIMIT_CAPACITY;
    const policyPath = join(work, 'policy.yaml');
    writeFileSync(policyPath, stringify(policy));
    const service = await startService({ policyPath, env: { LOG_LEVEL: options.logLevel ?? 'debug' } });
    cleanups.push(() => service.stop());
    const [opus, haiku] = await Promise.all([startUpstream({ respond: streamedAnswer }), startUpstream({ respond: streamedAnswer })]);
    cleanups.push(() => opus.stop(), () => haiku.stop());
    const collector = await startOtlpReceiver();
    cleanups.push(() => collector.stop());

    const gatewayPort = await freePort('0.0.0.0');
    const sidecarPort = await freePort(SIDECAR_IP);
    const gatewayLabels = { istio: 'ingressgateway', ...(governance === 'ext-proc' ? { 'genops.ai/governance': 'ext-proc' } : {}) };
    const sidecarLabels = { app: 'ai-inference', model: 'claude-haiku', 'genops.ai/governance': governance, 'security.istio.io/tlsMode': 'istio' };

    const clusterDir = join(work, 'cluster');
    const appliedDir = join(work, 'applied');
    for (const dir of [clusterDir, appliedDir]) mkdirSync(dir);
    writeFileSync(
      join(clusterDir, 'cluster.yaml'),
      renderEnvoyConfig(readFileSync(join(REPO_ROOT, 'test/istio/fixtures/cluster.yaml'), 'utf8'), {
        GENOPS_PORT: service.grpcPort,
        OTLP_PORT: collector.port,
        GATEWAY_IP,
        GATEWAY_PORT: gatewayPort,
        GATEWAY_LABELS: JSON.stringify(gatewayLabels),
        OPUS_PORT: opus.port,
        HAIKU_PORT: haiku.port,
        SIDECAR_IP,
        SIDECAR_PORT: sidecarPort,
        SIDECAR_LABELS: JSON.stringify(sidecarLabels),
      }),
    );
    // What `kubectl apply -k deploy/istio` (or `-k deploy/istio/ext-proc` instead of the CUSTOM policies) leaves in the cluster, byte for byte.
    const extAuthzOnly = ['deploy/istio/authorization-policy.yaml', 'deploy/istio/gateway-route-cache.yaml'];
    const shipped = kustomizationResources('deploy/istio').filter((file) => governance === 'ext-authz' || !extAuthzOnly.includes(file));
    if (governance === 'ext-proc') shipped.push(...kustomizationResources('deploy/istio/ext-proc'));
    for (const file of shipped) copyFileSync(join(REPO_ROOT, file), join(appliedDir, file.replaceAll('/', '_')));
    if (identity) {
      for (const file of kustomizationResources('deploy/istio/identity')) {
        const objects = readFileSync(join(REPO_ROOT, file), 'utf8').split(/^---$/m).map((document) => parse(document) as Record<string, any>).filter(Boolean); // eslint-disable-line @typescript-eslint/no-explicit-any
        for (const object of objects) {
          if (object.kind !== 'RequestAuthentication') continue;
          for (const rule of object.spec.jwtRules) {
            delete rule.jwksUri;
            rule.jwks = identity.jwks;
          }
        }
        writeFileSync(join(appliedDir, file.replaceAll('/', '_')), objects.map((object) => stringify(object)).join('---\n'));
      }
    }

    const istiod = await startIstiod({ meshConfig: join(REPO_ROOT, 'deploy/istio/mesh-config.yaml'), configDirs: [appliedDir, clusterDir], caCert: pki.ca, caKey: join(dirname(pki.ca), 'ca.key') });
    cleanups.push(() => istiod.stop());
    const [gateway, sidecar] = await Promise.all([
      startIstioProxy({ istiod, type: 'router', ip: GATEWAY_IP, pod: 'istio-ingressgateway-0', namespace: 'istio-system', serviceAccount: 'istio-ingressgateway-service-account', labels: gatewayLabels }),
      startIstioProxy({ istiod, type: 'sidecar', ip: SIDECAR_IP, pod: 'claude-haiku-0', namespace: 'genops', serviceAccount: 'ai-inference', labels: sidecarLabels }),
    ]);
    cleanups.push(() => gateway.stop(), () => sidecar.stop());

    const post = (body: string | undefined) => (body === undefined ? { method: 'GET' } : { method: 'POST', body });
    return {
      governance,
      istiod,
      gateway,
      sidecar,
      service,
      opus,
      haiku,
      collector,
      gatewayPort,
      sidecarPort,
      throughGateway: (path, headers, body) => httpRequest(`http://${GATEWAY_IP}:${gatewayPort}${path}`, { ...post(body), headers: { host: GATEWAY_HOST, ...headers } }),
      eastWest: (path, headers, body, as = EAST_WEST_CALLER) => {
        const caller = pki.clients.get(as)!;
        return httpRequest(`https://${SIDECAR_IP}:${sidecarPort}${path}`, {
          ...post(body),
          headers: { host: MODEL_HOST, ...headers },
          tls: { ca: pki.ca, cert: caller.cert, key: caller.key, serverIdentity: MODEL_PRINCIPAL },
        });
      },
      decisionsFor: (customerId) => service.logs().filter((line) => line.event === 'decision' && JSON.stringify(line).includes(customerId)),
      applyEdit: (file, edit) => {
        const path = join(appliedDir, file.replaceAll('/', '_'));
        const objects = readFileSync(path, 'utf8').split(/^---$/m).map((document) => parse(document) as Record<string, unknown>).filter(Boolean);
        edit(objects);
        // Written beside it and renamed, so istiod never reads half a file (it reads only *.yaml).
        const staged = `${path}.${randomUUID()}.tmp`;
        writeFileSync(staged, objects.map((object) => stringify(object)).join('---\n'));
        renameSync(staged, path);
      },
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** The usage a streamed answer of the model workloads reports. */
export const STREAMED_USAGE = tokenUsage({ input: 31, output: 9 });

/**
 * A request with `"stream": true` is answered as OpenAI streams a chat completion (SSE in pieces,
 * usage last; `x-pause-ms` between them, 10 ms by default); others echo.
 */
function streamedAnswer(request: RecordedRequest, response: ServerResponse): boolean {
  let body: { stream?: unknown; model?: unknown };
  try {
    body = JSON.parse(request.body) as typeof body;
  } catch {
    return false;
  }
  if (body.stream !== true) return false;
  const sse = openAiChatSse({ model: String(body.model), usage: STREAMED_USAGE, includeUsage: true, text: 'A ticket about a late delivery.' });
  response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  const pieces = [sse.slice(0, 40), sse.slice(40, 200), sse.slice(200)];
  const next = () => {
    const piece = pieces.shift();
    if (piece === undefined) return void response.end();
    response.write(piece);
    setTimeout(next, Number(request.headers['x-pause-ms'] ?? 10));
  };
  next();
  return true;
}
