/**
 * Istio for real, with no cluster: Istio's discovery server (the istiod harness on the pinned
 * istio.io/istio) is fed the shipped deploy/istio resources and mesh config unchanged, plus
 * what a cluster would provide (test/istio/fixtures/cluster.yaml), and programs two stock
 * Envoys over ADS: the ingress gateway and the claude-haiku workload's sidecar. Requests go
 * through them to genops-mesh (dist/) and two model workloads.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest, type HttpResponse } from '../support/index.js';
import { context, UUID } from '../support/request-context.js';
import { EAST_WEST_CALLER, GATEWAY_PRINCIPAL, OTHER_CALLER, GENOPS_CLUSTER, RATE_LIMIT_CAPACITY, STREAMED_USAGE, startIstioMesh, type IstioGovernance, type IstioMesh } from './support/istio-mesh.js';
import { httpFilters, type EnvoyListener, type IstioProxy } from './support/start-istio-proxy.js';

const CHAT = '/v1/chat/completions';
const chatBody = (model = 'claude-sonnet-4-5') =>
  JSON.stringify({ model, max_tokens: 64, messages: [{ role: 'user', content: 'Summarize ticket #4711 in one sentence.' }] });
const aiHeaders = (overrides: Record<string, string | undefined> = {}): Record<string, string> => ({ 'content-type': 'application/json', ...context(overrides) });

function expectJsonDenial(response: HttpResponse, status: number, reasonCode: string): void {
  expect(response.status, response.body).toBe(status);
  expect(response.header('content-type')).toMatch(/^application\/json/);
  expect(response.json()).toMatchObject({ reason_code: reasonCode, decision_id: expect.stringMatching(UUID) });
  expect(response.header('x-genops-decision-id')).toBe(response.json<{ decision_id: string }>().decision_id);
}

/** What istiod put in a proxy's listeners for genops-mesh. */
function governance(listeners: EnvoyListener[]) {
  const filters = listeners.flatMap((listener) => httpFilters(listener).map((filter) => ({ listener: listener.name as string, filter })));
  return {
    extAuthz: filters.filter(({ filter }) => filter.name === 'envoy.filters.http.ext_authz'),
    // The sidecar's is wrapped in a matcher that skips it for calls from the gateway.
    extProc: filters.filter(({ filter }) => filter.name === 'envoy.filters.http.ext_proc').map(({ listener, filter }) => ({ listener, filter: filter.typed_config.extension_config ?? filter })),
    // A CUSTOM policy istiod could not resolve becomes enforcing RBAC rules; a resolved one only shadow rules.
    enforcingRbac: filters.filter(({ filter }) => filter.name === 'envoy.filters.http.rbac' && filter.typed_config.rules !== undefined),
  };
}

const listenerOnPort = async (proxy: IstioProxy, port: number) =>
  (await proxy.listeners()).filter((listener) => listener.address?.socket_address?.port_value === port);

async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe.each<IstioGovernance>(['ext-authz', 'ext-proc'])('Istio with genops-mesh as %s, programmed by a real istiod', (variant) => {
  let mesh: IstioMesh;
  beforeAll(async () => {
    mesh = await startIstioMesh(variant);
  }, 120_000);
  afterAll(async () => {
    await mesh?.stop();
  });

  it(`gives the gateway and the sidecar's inbound listener genops-mesh's ${variant} filter, not a deny-all RBAC`, async () => {
    for (const [proxy, port] of [[mesh.gateway, mesh.gatewayPort], [mesh.sidecar, mesh.sidecarPort]] as const) {
      const listeners = await listenerOnPort(proxy, port);
      expect(listeners, `a listener on port ${port}`).toHaveLength(1);
      const found = governance(listeners);
      expect(found.enforcingRbac).toEqual([]);
      if (variant === 'ext-authz') {
        expect(found.extProc).toEqual([]);
        expect(found.extAuthz.length).toBeGreaterThan(0);
        for (const { filter } of found.extAuthz) {
          expect(filter.typed_config).toMatchObject({ grpc_service: { envoy_grpc: { cluster_name: GENOPS_CLUSTER }, timeout: '0.250s' }, status_on_error: { code: 'ServiceUnavailable' } });
          expect(filter.typed_config.failure_mode_allow ?? false).toBe(false);
          // The gateway re-routes on the decision's x-genops-route (deploy/istio/gateway-route-cache.yaml).
          expect(filter.typed_config.clear_route_cache ?? false).toBe(proxy === mesh.gateway);
        }
      } else {
        expect(found.extAuthz).toEqual([]);
        expect(found.extProc.length).toBeGreaterThan(0);
        for (const listener of listeners) {
          const names = httpFilters(listener).map((filter) => filter.name as string);
          expect(names.indexOf('envoy.filters.http.ext_proc')).toBe(names.indexOf('envoy.filters.http.router') - 1);
          // Observed metering: the metering filter right before the deciding one (it sees the response after it).
          expect(names.indexOf('genops.metering')).toBe(names.indexOf('envoy.filters.http.ext_proc') - 1);
          const metering = httpFilters(listener).find((filter) => filter.name === 'genops.metering')!;
          expect(metering.typed_config.extension_config.typed_config).toMatchObject({ observability_mode: true, failure_mode_allow: true, grpc_service: { envoy_grpc: { cluster_name: GENOPS_CLUSTER } } });
        }
        for (const { filter } of found.extProc) {
          expect(filter.typed_config).toMatchObject({ grpc_service: { envoy_grpc: { cluster_name: GENOPS_CLUSTER } }, status_on_error: { code: 'ServiceUnavailable' } });
          expect(filter.typed_config.failure_mode_allow ?? false).toBe(false);
        }
      }
    }
    // The sidecar's outbound side never decides: a call out of the workload is governed where it lands.
    const outbound = (await mesh.sidecar.listeners()).filter((listener) => listener.address?.socket_address?.port_value !== mesh.sidecarPort);
    expect(outbound.length).toBeGreaterThan(0);
    expect(governance(outbound).extAuthz).toEqual([]);
    expect(governance(outbound).extProc).toEqual([]);
  });

  it('meters a streamed answer through the gateway without holding it: one usage record with the provider\'s usage, nothing unmatched', async () => {
    if (variant !== 'ext-proc') return;
    const testId = randomUUID();
    const customer = `cust-${randomUUID().slice(0, 8)}`;
    const streamsStarted = async () => {
      const text = await (await fetch(`${mesh.gateway.envoy.adminUrl}/stats?filter=ext_proc\\.streams_started`)).text();
      return [...text.matchAll(/ext_proc\.streams_started: (\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0);
    };
    const before = await streamsStarted();
    const response = await mesh.throughGateway(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'premium', 'x-genops-customer-id': customer }), 'x-test-id': testId }, JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 64, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Summarize ticket #4711.' }] }));
    expect(response.status, response.body).toBe(200);
    expect(response.header('content-type')).toMatch(/^text\/event-stream/);
    expect(response.body).toContain('data: [DONE]');
    const decisionId = response.header('x-genops-decision-id');
    expect(decisionId).toMatch(UUID);
    const records = await eventually(async () => {
      const found = mesh.service.logs().filter((line) => line.event === 'usage' && line.decision_id === decisionId);
      return found.length > 0 ? found : undefined;
    }, 'the usage record');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(mesh.service.logs().filter((line) => line.event === 'usage' && line.decision_id === decisionId)).toHaveLength(1);
    // Two gRPC streams at the gateway: the deciding one, and the metering one that read the event stream.
    expect((await streamsStarted()) - before).toBe(2);
    expect(records[0]).toMatchObject({ outcome: 'completed', estimated: false, tokens: { input: STREAMED_USAGE.input, output: STREAMED_USAGE.output } });
    const metrics = await (await fetch(`${mesh.service.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/^genops_metering_unmatched_total 0$/m);
  });

  it('sends an allowed premium request through the gateway to the claude-opus workload (x-genops-route picks the subset)', async () => {
    const testId = randomUUID();
    const headers: Record<string, string> = { ...aiHeaders({ 'x-genops-customer-tier': 'Premium' }), 'x-test-id': testId };
    const response = await mesh.throughGateway(CHAT, headers, chatBody());

    expect(response.status, response.body).toBe(200);
    const [received, ...more] = mesh.opus.requestsWith('x-test-id', testId);
    expect(more).toHaveLength(0);
    expect(received?.headers).toMatchObject({ 'x-genops-route': 'claude-opus', 'x-genops-customer-tier': 'premium', 'x-genops-decision-id': expect.stringMatching(UUID) });
    expect(JSON.parse(received!.body)).toMatchObject({ model: 'claude-sonnet-4-5', max_tokens: 64 });
    expect(mesh.haiku.requestsWith('x-test-id', testId)).toHaveLength(0);
    expect(response.header('x-genops-decision-id')).toBe(received?.headers['x-genops-decision-id']);
  });

  it('sends a standard request to the claude-haiku workload through its sidecar over mTLS, governed once', async () => {
    const testId = randomUUID();
    const headers: Record<string, string> = { ...aiHeaders({ 'x-genops-customer-tier': 'standard' }), 'x-test-id': testId };
    const response = await mesh.throughGateway(CHAT, headers, chatBody());

    expect(response.status, response.body).toBe(200);
    const [received, ...more] = mesh.haiku.requestsWith('x-test-id', testId);
    expect(more).toHaveLength(0);
    expect(received?.headers).toMatchObject({ 'x-genops-route': 'claude-haiku', 'x-genops-decision-id': expect.stringMatching(UUID) });
    // The sidecar saw the gateway's identity (Istio mTLS) and let the gateway's decision stand.
    expect(received?.headers['x-forwarded-client-cert']).toContain(`URI=${GATEWAY_PRINCIPAL}`);
    expect(mesh.opus.requestsWith('x-test-id', testId)).toHaveLength(0);
    const decisions = await eventually(async () => {
      const found = mesh.decisionsFor(headers['x-genops-customer-id']!);
      return found.length > 0 ? found : undefined;
    }, 'the decision log line');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(mesh.decisionsFor(headers['x-genops-customer-id']!)).toHaveLength(1);
    expect(decisions[0]).toMatchObject({ decision_id: received?.headers['x-genops-decision-id'], result: 'ALLOWED' });
  });

  it("puts the governance headers on the gateway's and the sidecar's spans (telemetry.yaml), after the decision set them", async () => {
    const traceId = randomBytes(16).toString('hex');
    const headers: Record<string, string> = { ...aiHeaders({ 'x-genops-customer-tier': 'standard' }), traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`, 'x-client-trace-id': randomUUID() };
    const response = await mesh.throughGateway(CHAT, headers, chatBody());
    expect(response.status, response.body).toBe(200);
    // Sampled on the client's request (x-client-trace-id; the mesh's random sampling is Istio's 1 %).
    const spans = await mesh.collector.waitForSpans((span) => span.traceId === traceId && span.kind === 'SPAN_KIND_SERVER', { count: 2, timeoutMs: 15_000 });
    for (const span of spans) {
      expect(span.attributes).toMatchObject({
        'genops.team': 'ml-platform',
        'genops.project': 'support-bot',
        'genops.customer_id': headers['x-genops-customer-id'],
        'genops.customer_tier': 'standard',
        'genops.route': 'claude-haiku',
        'genops.decision_id': response.header('x-genops-decision-id'),
      });
    }
    expect(spans.map((span) => span.resource['service.name']).sort()).toEqual(['claude-haiku-0.genops', 'istio-ingressgateway-0.istio-system']);
  });

  it('refuses an unknown team at the gateway with the JSON 403; no model workload sees it', async () => {
    const testId = randomUUID();
    const response = await mesh.throughGateway(CHAT, { ...aiHeaders({ 'x-genops-team': 'marketing' }), 'x-test-id': testId }, chatBody());
    expectJsonDenial(response, 403, 'x_team_not_allowed');
    expect(mesh.opus.requestsWith('x-test-id', testId)).toHaveLength(0);
    expect(mesh.haiku.requestsWith('x-test-id', testId)).toHaveLength(0);
  });

  it('decides on the model the JSON body asks for (the body reaches genops-mesh through Istio)', async () => {
    const testId = randomUUID();
    const refused = await mesh.throughGateway(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'standard' }), 'x-test-id': testId }, chatBody('claude-opus-4-1'));
    expectJsonDenial(refused, 403, 'POLICY_DENY_MODEL');
    expect(refused.json<{ message: string }>().message).toContain('claude-opus-4-1');
    expect([...mesh.opus.requestsWith('x-test-id', testId), ...mesh.haiku.requestsWith('x-test-id', testId)]).toHaveLength(0);
  });

  it('answers 429 with the RateLimit headers once a customer has used its bucket', async () => {
    const testId = randomUUID();
    const headers: Record<string, string> = { ...aiHeaders({ 'x-genops-customer-tier': 'premium' }), 'x-test-id': testId };
    for (let index = 0; index < RATE_LIMIT_CAPACITY; index++) {
      const allowed = await mesh.throughGateway(CHAT, headers, chatBody());
      expect(allowed.status, allowed.body).toBe(200);
      expect(allowed.header('ratelimit')).toBe(`"per-customer";r=${RATE_LIMIT_CAPACITY - 1 - index};t=${allowed.header('ratelimit')?.split('t=')[1]}`);
    }
    const limited = await mesh.throughGateway(CHAT, headers, chatBody());
    expectJsonDenial(limited, 429, 'RATE_LIMITED');
    expect(Number(limited.header('retry-after'))).toBeGreaterThan(0);
    expect(limited.header('ratelimit-policy')).toBe(`"per-customer";q=${RATE_LIMIT_CAPACITY};w=60`);
    expect(limited.header('ratelimit')).toMatch(/^"per-customer";r=0;t=\d+$/);
    expect(mesh.opus.requestsWith('x-test-id', testId)).toHaveLength(RATE_LIMIT_CAPACITY);
  });

  it('governs an east-west call from a meshed workload at the sidecar, once', async () => {
    const testId = randomUUID();
    const headers: Record<string, string> = { ...aiHeaders({ 'x-genops-customer-tier': 'standard' }), 'x-test-id': testId };
    const response = await mesh.eastWest(CHAT, headers, chatBody());

    expect(response.status, response.body).toBe(200);
    const [received, ...more] = mesh.haiku.requestsWith('x-test-id', testId);
    expect(more).toHaveLength(0);
    expect(received?.headers).toMatchObject({ 'x-genops-route': 'claude-haiku', 'x-genops-decision-id': expect.stringMatching(UUID) });
    expect(received?.headers['x-forwarded-client-cert']).toContain(`URI=${EAST_WEST_CALLER}`);
    await eventually(async () => (mesh.decisionsFor(headers['x-genops-customer-id']!).length > 0 ? true : undefined), 'the decision log line');
    expect(mesh.decisionsFor(headers['x-genops-customer-id']!)).toHaveLength(1);

    const denied = await mesh.eastWest(CHAT, { ...aiHeaders({ 'x-genops-team': 'marketing' }), 'x-test-id': testId }, chatBody());
    expectJsonDenial(denied, 403, 'x_team_not_allowed');
    expect(mesh.haiku.requestsWith('x-test-id', testId)).toHaveLength(1);
  });

  it("hands genops-mesh the caller's mesh identity: a team bound to one workload refuses another", async () => {
    const testId = randomUUID();
    const team = { 'x-genops-team': 'data-science', 'x-genops-customer-tier': 'standard' };
    const allowed = await mesh.eastWest(CHAT, { ...aiHeaders(team), 'x-test-id': testId }, chatBody());
    expect(allowed.status, allowed.body).toBe(200);
    const refused = await mesh.eastWest(CHAT, { ...aiHeaders(team), 'x-test-id': testId }, chatBody(), OTHER_CALLER);
    expectJsonDenial(refused, 403, 'x_principal_not_allowed');
    expect(refused.json<{ message: string }>().message).toContain(OTHER_CALLER.replace('spiffe://', ''));
    expect(mesh.haiku.requestsWith('x-test-id', testId)).toHaveLength(1);
  });

  it('never asks genops-mesh about paths the policy rules leave out (health checks)', async () => {
    const testId = randomUUID();
    const response = await mesh.eastWest('/healthz', { 'x-test-id': testId });
    expect(response.status, response.body).toBe(200);
    expect(response.header('x-genops-decision-id')).toBeUndefined();
    expect(mesh.haiku.requestsWith('x-test-id', testId)[0]?.headers['x-genops-route']).toBeUndefined();
  });

  it('keeps callers without a mesh identity out of the workload (PeerAuthentication STRICT)', async () => {
    const testId = randomUUID();
    await expect(httpRequest(`http://127.0.0.3:${mesh.sidecarPort}${CHAT}`, { method: 'POST', headers: { ...aiHeaders(), 'x-test-id': testId }, body: chatBody() })).rejects.toThrow();
    expect(mesh.haiku.requestsWith('x-test-id', testId)).toHaveLength(0);
  });

  // Last in this block: it turns the namespace's mTLS to PERMISSIVE and the sidecar's XFCC handling to ALWAYS_FORWARD_ONLY.
  it('never lets a caller skip governance at the sidecar with a forged x-forwarded-client-cert ending in the gateway\'s identity', async () => {
    const FORGED_XFCC = `By=spiffe://cluster.local/ns/genops/sa/claude-haiku;URI=${GATEWAY_PRINCIPAL}`;
    const plaintext = (testId: string, team: string) =>
      httpRequest(`http://127.0.0.3:${mesh.sidecarPort}${CHAT}`, {
        method: 'POST',
        headers: { ...aiHeaders({ 'x-genops-team': team, 'x-genops-customer-tier': 'standard' }), 'x-test-id': testId, 'x-forwarded-client-cert': FORGED_XFCC },
        body: chatBody(),
      });
    const pushed = async (edit: () => void) => {
      const before = await mesh.sidecar.listenerUpdates();
      edit();
      await eventually(async () => ((await mesh.sidecar.listenerUpdates()) > before ? true : undefined), 'a listener push to the sidecar');
    };
    const permissive = () => pushed(() => mesh.applyEdit('deploy/istio/peer-authentication.yaml', (objects) => {
      (objects[0] as { spec: { mtls: { mode: string } } }).spec.mtls.mode = 'PERMISSIVE';
    }));
    if (variant === 'ext-authz') {
      await permissive();
      // The CUSTOM rule can only read the header, so the governed workloads take mTLS only (authorization-policy.yaml)...
      const testId = randomUUID();
      await expect(plaintext(testId, 'marketing')).rejects.toThrow();
      expect(mesh.haiku.requestsWith('x-test-id', testId)).toHaveLength(0);
      // ...and behind that, Envoy itself drops x-forwarded-client-cert from a connection without a client
      // certificate (Istio's APPEND_FORWARD): without the workload STRICT, the forged header is gone and the call governed.
      await pushed(() => mesh.applyEdit('deploy/istio/authorization-policy.yaml', (objects) => {
        objects.splice(objects.findIndex((object) => object.kind === 'PeerAuthentication'), 1);
      }));
      const governedId = randomUUID();
      const governed = await eventually(() => plaintext(governedId, 'marketing').catch(() => undefined), 'the sidecar to take plaintext without the workload STRICT');
      expectJsonDenial(governed, 403, 'x_team_not_allowed');
      expect(mesh.haiku.requestsWith('x-test-id', governedId)).toHaveLength(0);
      return;
    }
    // ext_proc skips on the URI SAN of the certificate on the connection, not on a header. Even where the sidecar
    // passes a caller's x-forwarded-client-cert on unchanged (ALWAYS_FORWARD_ONLY, an operator's EnvoyFilter),
    // which the header rule it replaced would have taken for the gateway:
    await pushed(() => mesh.applyEdit('deploy/istio/ext-proc/envoy-filter.yaml', (objects) => {
      objects.push({
        apiVersion: 'networking.istio.io/v1alpha3',
        kind: 'EnvoyFilter',
        metadata: { name: 'xfcc-always-forward', namespace: 'genops' },
        spec: {
          workloadSelector: { labels: { 'genops.ai/governance': 'ext-proc' } },
          configPatches: [{
            applyTo: 'NETWORK_FILTER',
            match: { context: 'SIDECAR_INBOUND', listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager' } } } },
            patch: { operation: 'MERGE', value: { typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', forward_client_cert_details: 'ALWAYS_FORWARD_ONLY' } } },
          }],
        },
      });
    }));
    // A meshed caller (mTLS, its own identity) forging the header: governed.
    const meshedId = randomUUID();
    const meshed = await eventually(() => mesh.eastWest(CHAT, { ...aiHeaders({ 'x-genops-team': 'marketing' }), 'x-test-id': meshedId, 'x-forwarded-client-cert': FORGED_XFCC }, chatBody()).catch(() => undefined), 'an mTLS call through the sidecar');
    expectJsonDenial(meshed, 403, 'x_team_not_allowed');
    // A plaintext caller under PERMISSIVE: governed.
    await permissive();
    const refusedId = randomUUID();
    const refused = await eventually(() => plaintext(refusedId, 'marketing').catch(() => undefined), 'the sidecar to take plaintext (PERMISSIVE)');
    expectJsonDenial(refused, 403, 'x_team_not_allowed');
    const allowedId = randomUUID();
    const allowed = await plaintext(allowedId, 'ml-platform');
    expect(allowed.status, allowed.body).toBe(200);
    const [received] = mesh.haiku.requestsWith('x-test-id', allowedId);
    // The forged header did reach the workload as sent (ALWAYS_FORWARD_ONLY in force); the decision was made all the same.
    expect(received?.headers['x-forwarded-client-cert']).toBe(FORGED_XFCC);
    expect(received?.headers['x-genops-decision-id']).toBe(allowed.header('x-genops-decision-id'));
    expect([...mesh.haiku.requestsWith('x-test-id', refusedId), ...mesh.haiku.requestsWith('x-test-id', meshedId)]).toHaveLength(0);
  }, 60_000);
});

describe('Istio config edits reach the proxies through istiod, without restarts', () => {
  let mesh: IstioMesh;
  beforeAll(async () => {
    mesh = await startIstioMesh('ext-authz');
  }, 120_000);
  afterAll(async () => {
    await mesh?.stop();
  });

  const premium = (testId: string) => ({ ...aiHeaders({ 'x-genops-customer-tier': 'premium' }), 'x-test-id': testId });
  const editGatewayPolicy = (edit: (spec: Record<string, any>) => void) => // eslint-disable-line @typescript-eslint/no-explicit-any
    mesh.applyEdit('deploy/istio/authorization-policy.yaml', (objects) => {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      edit((objects.find((object) => (object.metadata as { name: string }).name === 'genops-governance-gateway') as Record<string, any>).spec);
    });

  it('governs a newly added path once the AuthorizationPolicy names it', async () => {
    const before = await mesh.gateway.listenerUpdates();
    const ungoverned = randomUUID();
    const response = await mesh.throughGateway('/openai/v1/chat/completions', premium(ungoverned), chatBody());
    // Not governed: no decision, no x-genops-route, so the VirtualService's default (claude-sonnet, no workload here).
    expect(response.header('x-genops-decision-id')).toBeUndefined();
    expect(mesh.opus.requestsWith('x-test-id', ungoverned)).toHaveLength(0);

    editGatewayPolicy((spec) => spec.rules[0].to[0].operation.paths.push('/openai/*'));
    await eventually(async () => ((await mesh.gateway.listenerUpdates()) > before ? true : undefined), 'a listener push to the gateway');
    const governed = randomUUID();
    const after = await eventually(async () => {
      const attempt = await mesh.throughGateway('/openai/v1/chat/completions', premium(governed), chatBody());
      return attempt.status === 200 ? attempt : undefined;
    }, 'the edited policy to take effect');
    expect(mesh.opus.requestsWith('x-test-id', governed).at(-1)?.headers).toMatchObject({ 'x-genops-route': 'claude-opus', 'x-genops-decision-id': after.header('x-genops-decision-id') });
    for (const part of [mesh.istiod.process, mesh.gateway.envoy.process, mesh.sidecar.envoy.process, mesh.service.process]) expect(part.exitCode, part.name).toBeUndefined();
  });

  it('shows the deny-all RBAC istiod silently makes of a CUSTOM policy whose provider it cannot resolve', async () => {
    editGatewayPolicy((spec) => (spec.provider.name = 'genops-mesh-typo'));
    const denyAll = await eventually(async () => {
      const found = governance(await listenerOnPort(mesh.gateway, mesh.gatewayPort));
      return found.enforcingRbac.length > 0 ? found : undefined;
    }, 'istiod to push the edited policy');
    expect(denyAll.extAuthz).toEqual([]);
    const testId = randomUUID();
    const response = await mesh.throughGateway(CHAT, premium(testId), chatBody());
    expect(response.status).toBe(403);
    expect(response.body).toBe('RBAC: access denied');
    expect(mesh.opus.requestsWith('x-test-id', testId)).toHaveLength(0);

    editGatewayPolicy((spec) => (spec.provider.name = 'genops-mesh'));
    await eventually(async () => (governance(await listenerOnPort(mesh.gateway, mesh.gatewayPort)).extAuthz.length > 0 ? true : undefined), 'the fix to be pushed');
    const fixed = await mesh.throughGateway(CHAT, premium(randomUUID()), chatBody());
    expect(fixed.status, fixed.body).toBe(200);
  });
});
