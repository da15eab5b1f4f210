/**
 * One round trip to decide under Istio: the shipped deploy/istio/ext-proc EnvoyFilters, fed to a
 * real istiod with the shipped VirtualService, put the `undecided` route first in the routes istiod
 * generates for the ingress gateway and the sidecar's inbound side, with its FULL_DUPLEX_STREAMED
 * per-route mode, and set the idle timeout back on the generated routes. The service's trace log
 * shows what it received before its first reply; the model workloads show what went through.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http2Request, type HttpResponse } from '../support/index.js';
import { rawRequest } from '../e2e/hostile-support.js';
import { context, UUID } from '../support/request-context.js';
import { STREAMED_USAGE, startIstioMesh, type IstioMesh } from './support/istio-mesh.js';
import type { IstioProxy } from './support/start-istio-proxy.js';
import { decidingStreams as decidingStreamsOf, expectOneRoundTrip } from '../support/ext-proc-trace.js';

const CHAT = '/v1/chat/completions';
const chatBody = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Summarize ticket #4711 in one sentence.' }], ...extra });
const aiHeaders = (overrides: Record<string, string | undefined> = {}): Record<string, string> => ({ 'content-type': 'application/json', ...context(overrides) });

/** The service's per-stream trace (LOG_LEVEL=trace): each message it read and each reply it wrote, in order. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type EnvoyRoute = Record<string, any> & { name?: string };

/** The routes of each virtual host the proxy has: RDS route configurations and the route tables inline in listeners. */
async function virtualHosts(proxy: IstioProxy): Promise<Map<string, EnvoyRoute[]>> {
  const dump = (await (await fetch(`${proxy.envoy.adminUrl}/config_dump?resource=dynamic_route_configs`)).json()) as { configs: { route_config: { virtual_hosts?: { name: string; routes: EnvoyRoute[] }[] } }[] };
  const inline = (await proxy.listeners()).flatMap((listener) =>
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    (listener.filter_chains ?? []).flatMap((chain: Record<string, any>) => (chain.filters ?? []).map((filter: Record<string, any>) => filter.typed_config?.route_config).filter(Boolean)),
  );
  const hosts = new Map<string, EnvoyRoute[]>();
  for (const config of [...dump.configs.map((entry) => entry.route_config), ...inline]) {
    for (const host of config.virtual_hosts ?? []) hosts.set(host.name, host.routes);
  }
  return hosts;
}

async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('one round trip to decide under Istio (deploy/istio/ext-proc, programmed by a real istiod)', () => {
  let mesh: IstioMesh;
  beforeAll(async () => {
    mesh = await startIstioMesh('ext-proc', undefined, { logLevel: 'trace' });
  }, 120_000);
  afterAll(async () => {
    await mesh?.stop();
  });

  /** The deciding streams opened while `send` ran: each one's messages up to the first reply the service wrote, and that reply. */
  const decidingStreams = (send: () => Promise<unknown>) => decidingStreamsOf(() => mesh.service.logs(), send, 150);

  const blackHoled = async (proxy: IstioProxy) => {
    // Where a request routed to the undecided route's destination would count (it has no endpoint;
    // istiod names its stats "BlackHoleCluster;"). Waits for the cluster, should CDS still be arriving.
    const url = `${proxy.envoy.adminUrl}/stats?filter=${encodeURIComponent('^cluster\\.BlackHoleCluster;?\\.upstream_cx_none_healthy$')}`;
    const stats = await eventually(async () => {
      const text = await (await fetch(url)).text();
      return /upstream_cx_none_healthy: \d+/.test(text) ? text : undefined;
    }, 'the BlackHoleCluster stats');
    return [...stats.matchAll(/: (\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0);
  };

  it("puts the undecided route first in the gateway's and the sidecar's generated routes, and an idle timeout on every generated route", async () => {
    const gateway = await virtualHosts(mesh.gateway);
    const sidecar = await virtualHosts(mesh.sidecar);
    const gatewayRoutes = gateway.get('ai.example.com:80');
    expect(gatewayRoutes?.map((route) => route.name)).toEqual(['genops-undecided', 'claude-opus', 'claude-haiku', 'claude-sonnet']);
    const inbound = [...sidecar.entries()].filter(([name]) => name.startsWith('inbound|'));
    expect(inbound.length).toBeGreaterThan(0);
    for (const [name, routes] of [['gateway', gatewayRoutes!] as const, ...inbound]) {
      const [undecided, ...generated] = routes;
      expect(undecided, name).toMatchObject({
        name: 'genops-undecided',
        route: { cluster: 'BlackHoleCluster', idle_timeout: '2s' },
        typed_per_filter_config: { 'envoy.filters.http.ext_proc': { overrides: { processing_mode: { request_body_mode: 'FULL_DUPLEX_STREAMED', request_trailer_mode: 'SEND' } } } },
      });
      expect(generated.length, name).toBeGreaterThan(0);
      // Istio's own bound back (none, below), not the undecided route's 2 s.
      for (const route of generated) expect(route.route?.idle_timeout, `${name} ${route.name}`).toBe('0s');
    }
    // What they mirror: Istio's stream idle timeouts on the same proxies' connection managers.
    const streamIdle = async (proxy: IstioProxy, port: number) =>
      (await proxy.listeners())
        .filter((listener) => listener.address?.socket_address?.port_value === port)
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        .flatMap((listener) => (listener.filter_chains ?? []).flatMap((chain: Record<string, any>) => chain.filters ?? []))
        .filter((filter) => filter.name === 'envoy.filters.network.http_connection_manager')
        .map((filter) => filter.typed_config.stream_idle_timeout as string | undefined);
    expect(new Set(await streamIdle(mesh.gateway, mesh.gatewayPort))).toEqual(new Set(['0s']));
    expect(new Set(await streamIdle(mesh.sidecar, mesh.sidecarPort))).toEqual(new Set(['0s']));
    // The sidecar's outbound routes (the VirtualService's mesh routes) are left alone: calls out are governed where they land.
    for (const [name, routes] of sidecar) if (!name.startsWith('inbound|')) expect(routes.map((route) => route.name), name).not.toContain('genops-undecided');
  });

  it('decides a JSON AI POST at the gateway in one round trip and routes it by tier (VirtualService on x-genops-route)', async () => {
    const blackHoledBefore = await blackHoled(mesh.gateway);
    const premium = randomUUID();
    let response: HttpResponse | undefined;
    const streams = await decidingStreams(async () => {
      response = await mesh.throughGateway(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'premium' }), 'x-test-id': premium }, chatBody());
    });
    expect(response?.status, response?.body).toBe(200);
    expect(streams).toHaveLength(1);
    expectOneRoundTrip(streams[0]);
    const [received, ...more] = mesh.opus.requestsWith('x-test-id', premium);
    expect(more).toHaveLength(0);
    expect(received?.body).toBe(chatBody());
    expect(received?.headers).toMatchObject({ 'x-genops-route': 'claude-opus', 'x-genops-decision-id': expect.stringMatching(UUID), 'transfer-encoding': 'chunked' });
    expect(response?.header('x-genops-decision-id')).toBe(received?.headers['x-genops-decision-id']);

    // A standard customer forging the premium route: the decision's route wins, to the claude-haiku workload
    // through its sidecar, which lets the gateway's decision stand (one deciding stream in all).
    const forged = randomUUID();
    const forgedStreams = await decidingStreams(async () => {
      const standard = await mesh.throughGateway(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'standard', 'x-genops-route': 'claude-opus' }), 'x-test-id': forged }, chatBody());
      expect(standard.status, standard.body).toBe(200);
    });
    expect(forgedStreams).toHaveLength(1);
    expectOneRoundTrip(forgedStreams[0]);
    expect(mesh.opus.requestsWith('x-test-id', forged)).toHaveLength(0);
    expect(mesh.haiku.requestsWith('x-test-id', forged)[0]?.headers).toMatchObject({ 'x-genops-route': 'claude-haiku' });

    // A client's own decision id skips the undecided route: decided in two round trips, the same way (refused here).
    const chosen = randomUUID();
    const chosenStreams = await decidingStreams(async () => {
      const denied = await mesh.throughGateway(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'standard', 'x-genops-decision-id': 'chosen-by-client' }), 'x-test-id': chosen }, chatBody({ model: 'claude-opus-4-1' }));
      expect(denied.status, denied.body).toBe(403);
      expect(denied.json<{ reason_code: string }>().reason_code).toBe('POLICY_DENY_MODEL');
    });
    expect(chosenStreams.at(-1)!.map((step) => step.kind ?? step.step)).toEqual(['request_headers', 'reply']);
    expect([...mesh.opus.requestsWith('x-test-id', chosen), ...mesh.haiku.requestsWith('x-test-id', chosen)]).toHaveLength(0);
    // Nothing was ever routed from the undecided route.
    expect(await blackHoled(mesh.gateway)).toBe(blackHoledBefore);
  });

  it('decides an east-west JSON POST at the sidecar in one round trip', async () => {
    const testId = randomUUID();
    const streams = await decidingStreams(async () => {
      const response = await mesh.eastWest(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'standard' }), 'x-test-id': testId }, chatBody());
      expect(response.status, response.body).toBe(200);
    });
    expect(streams).toHaveLength(1);
    expectOneRoundTrip(streams[0]);
    expect(mesh.haiku.requestsWith('x-test-id', testId)[0]).toMatchObject({ body: chatBody(), headers: { 'x-genops-route': 'claude-haiku', 'x-genops-decision-id': expect.stringMatching(UUID) } });
    expect(await blackHoled(mesh.sidecar)).toBe(0);
  });

  it('forwards a large body (2 MiB, over Envoy\'s default 1 MiB buffer) byte for byte, and refuses one over the policy limit with the JSON 413', async () => {
    const testId = randomUUID();
    const large = chatBody({ messages: Array.from({ length: 2048 }, (_, index) => ({ role: index % 2 ? 'assistant' : 'user', content: `${index} ${'x'.repeat(1024)}` })) });
    expect(large.length).toBeGreaterThan(2 * 1024 * 1024);
    const response = await mesh.throughGateway(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'premium' }), 'x-test-id': testId }, large);
    expect(response.status, response.body.slice(0, 300)).toBe(200);
    expect(mesh.opus.requestsWith('x-test-id', testId)[0]?.body).toBe(large);

    const huge = chatBody({ messages: [{ role: 'user', content: 'x'.repeat(4 * 1024 * 1024 + 16) }] });
    const refused = await mesh.throughGateway(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'premium' }), 'x-test-id': testId }, huge);
    expect(refused.status, refused.body.slice(0, 300)).toBe(413);
    expect(refused.json<{ reason_code: string }>().reason_code).toBe('x_body_too_large');
    expect(mesh.opus.requestsWith('x-test-id', testId)).toHaveLength(1);
  }, 20_000);

  it('governs a body without content-length at the gateway the same way: HTTP/2 and chunked HTTP/1.1', async () => {
    const testId = randomUUID();
    const body = chatBody({ model: 'claude-opus-4-1' });
    const h2 = (tier: string) => http2Request(`http://127.0.0.2:${mesh.gatewayPort}${CHAT}`, { method: 'POST', headers: { ':authority': 'ai.example.com', ...aiHeaders({ 'x-genops-customer-tier': tier }), 'x-test-id': testId }, body });
    const streams = await decidingStreams(async () => {
      const allowed = await h2('premium');
      expect(allowed.status, allowed.body).toBe(200);
    });
    expect(streams).toHaveLength(1);
    expectOneRoundTrip(streams[0]);
    expect((await h2('standard')).status).toBe(403);
    const chunked = (tier: string) => rawRequest(mesh.gatewayPort, 'POST', CHAT, { host: 'ai.example.com', ...aiHeaders({ 'x-genops-customer-tier': tier }), 'x-test-id': testId }, body, { chunked: true });
    expect((await chunked('standard')).status).toBe(403);
    const fine = await chunked('premium');
    expect(fine.status, fine.body).toBe(200);
    expect(mesh.opus.requestsWith('x-test-id', testId).map((request) => request.body)).toEqual([body, body]);
    expect(mesh.haiku.requestsWith('x-test-id', testId)).toHaveLength(0);
  });

  it('refuses a body model the tier may not use, and an unknown team, before anything reaches a workload', async () => {
    const testId = randomUUID();
    const model = await mesh.throughGateway(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'standard' }), 'x-test-id': testId }, chatBody({ model: 'claude-opus-4-1' }));
    expect(model.status, model.body).toBe(403);
    expect(model.json<{ reason_code: string }>().reason_code).toBe('POLICY_DENY_MODEL');
    const team = await mesh.eastWest(CHAT, { ...aiHeaders({ 'x-genops-team': 'marketing' }), 'x-test-id': testId }, chatBody());
    expect(team.status, team.body).toBe(403);
    expect(team.json<{ reason_code: string }>().reason_code).toBe('x_team_not_allowed');
    expect([...mesh.opus.requestsWith('x-test-id', testId), ...mesh.haiku.requestsWith('x-test-id', testId)]).toHaveLength(0);
  });

  it('still governs a GET on its headers (two round trips, the filter\'s own mode)', async () => {
    const testId = randomUUID();
    const streams = await decidingStreams(async () => {
      const denied = await mesh.throughGateway('/v1/models', { ...context({ 'x-genops-team': 'marketing' }), 'x-test-id': testId });
      expect(denied.status, denied.body).toBe(403);
      expect(denied.json<{ reason_code: string }>().reason_code).toBe('x_team_not_allowed');
    });
    expect(streams.at(-1)!.map((step) => step.kind ?? step.step)).toEqual(['request_headers', 'reply']);
    const allowed = await mesh.throughGateway('/v1/models', { ...context({ 'x-genops-customer-tier': 'premium' }), 'x-test-id': testId });
    expect(allowed.status, allowed.body).toBe(200);
    expect(mesh.opus.requestsWith('x-test-id', testId).map((request) => request.method)).toEqual(['GET']);
  });

  it('lets a streamed answer pause longer than the undecided route\'s 2 s bound, at the gateway and at the sidecar, and meters it once', async () => {
    const stream = chatBody({ stream: true, stream_options: { include_usage: true } });
    const [north, east] = await Promise.all([
      mesh.throughGateway(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'premium' }), 'x-pause-ms': '2500' }, stream),
      mesh.eastWest(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'standard' }), 'x-pause-ms': '2500' }, stream),
    ]);
    for (const response of [north, east]) {
      expect(response.status, response.body).toBe(200);
      expect(response.header('content-type')).toMatch(/^text\/event-stream/);
      expect(response.body).toContain('data: [DONE]');
      const decisionId = response.header('x-genops-decision-id');
      const records = await eventually(async () => {
        const found = mesh.service.logs().filter((line) => line.event === 'usage' && line.decision_id === decisionId);
        return found.length > 0 ? found : undefined;
      }, 'the usage record');
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ outcome: 'completed', tokens: { input: STREAMED_USAGE.input, output: STREAMED_USAGE.output } });
    }
  }, 30_000);

  it('fails closed within the undecided route\'s idle bound while the service hangs, and recovers', async () => {
    const testId = randomUUID();
    const { pid } = mesh.service.process;
    process.kill(pid, 'SIGSTOP');
    let response: HttpResponse;
    const startedAt = Date.now();
    try {
      response = await mesh.throughGateway(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'premium' }), 'x-test-id': testId }, chatBody());
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // The undecided route's 2 s idle bound (two round trips would answer after the 0.2 s message_timeout).
    expect(response.status).toBe(504);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1_900);
    expect(Date.now() - startedAt).toBeLessThan(4_000);
    expect(mesh.opus.requestsWith('x-test-id', testId)).toHaveLength(0);
    const after = await mesh.throughGateway(CHAT, { ...aiHeaders({ 'x-genops-customer-tier': 'premium' }), 'x-test-id': testId }, chatBody());
    expect(after.status, after.body).toBe(200);
    expect(mesh.opus.requestsWith('x-test-id', testId)).toHaveLength(1);
  }, 20_000);

  // Last: it edits the VirtualService. A path the gateway does not govern (outside /v1/) that a VirtualService
  // rewrites into /v1/ reaches the sidecar undecided, from the gateway's identity, so the sidecar's filter skips it:
  // the undecided route's BlackHoleCluster refuses it (two round trips passed it to the workload ungoverned).
  it('refuses, at the sidecar, an undecided AI POST its filter skips (a gateway rewrite into /v1/): BlackHoleCluster, never the workload', async () => {
    const before = await blackHoled(mesh.sidecar);
    const pushes = await mesh.sidecar.listenerUpdates();
    const gatewayRoutes = async () => (await virtualHosts(mesh.gateway)).get('ai.example.com:80')?.map((route) => route.name);
    mesh.applyEdit('deploy/istio/virtual-service.yaml', (objects) => {
      const spec = (objects[0] as { spec: { http: Record<string, unknown>[] } }).spec;
      spec.http.unshift({
        name: 'openai-prefix',
        match: [{ uri: { prefix: '/openai/v1/' } }],
        rewrite: { uri: '/v1/' },
        route: [{ destination: { host: 'ai-inference.genops.svc.cluster.local', subset: 'claude-haiku' } }],
      });
    });
    await eventually(async () => ((await gatewayRoutes())?.includes('openai-prefix') ? true : undefined), 'the edited VirtualService at the gateway');
    expect(await gatewayRoutes()).toEqual(['genops-undecided', 'openai-prefix', 'claude-opus', 'claude-haiku', 'claude-sonnet']);
    expect(await mesh.sidecar.listenerUpdates()).toBeGreaterThanOrEqual(pushes);
    const testId = randomUUID();
    const response = await mesh.throughGateway('/openai/v1/chat/completions', { ...aiHeaders({ 'x-genops-team': 'marketing' }), 'x-test-id': testId }, chatBody());
    expect(response.status, response.body).toBe(503);
    expect(response.header('x-genops-decision-id')).toBeUndefined();
    expect([...mesh.haiku.requestsWith('x-test-id', testId), ...mesh.opus.requestsWith('x-test-id', testId)]).toHaveLength(0);
    expect(await blackHoled(mesh.sidecar)).toBe(before + 1);
    // The same path as a GET (no body, never on the undecided route) still reaches the workload, as the gateway routes it.
    const get = await mesh.throughGateway('/openai/v1/models', { 'x-test-id': testId });
    expect(get.status, get.body).toBe(200);
    expect(mesh.haiku.requestsWith('x-test-id', testId).map((request) => [request.method, request.path])).toEqual([['GET', '/v1/models']]);
  });
});
