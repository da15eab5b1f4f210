/**
 * Scenarios both Envoy modes (ext_authz and ext_proc) must pass the same way,
 * through the real Envoy booted with deploy/envoy/<mode>.yaml and the default
 * policy. Each test file registers them inside its own describe.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type ServerResponse } from 'node:http';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPki,
  http2Request,
  httpRequest,
  REPO_ROOT,
  startGovernanceStack,
  startUpstream,
  type EchoBody,
  type EnvoyMode,
  type GovernanceStack,
  type HttpRequestOptions,
  type HttpResponse,
  type RecordedRequest,
  type TestPki,
  type Upstream,
} from '../support/index.js';

import { context, UUID } from '../support/request-context.js';

export { context, UUID };

/** An Anthropic Messages request body, as an SDK sends it. */
export const MESSAGES_BODY = JSON.stringify({ model: 'claude-opus-4-1-20250805', max_tokens: 256, messages: [{ role: 'user', content: 'Summarise the release notes.' }] });

/** Marks every request of one test so the shared upstream's record can be filtered by test. */
const TEST_ID_HEADER = 'x-test-id';

export interface EnvoyStack {
  readonly mode: EnvoyMode;
  readonly upstream: Upstream;
  readonly stack: GovernanceStack;
  /** Sends one request through Envoy, tagged with `testId`. */
  send(testId: string, path: string, options?: HttpRequestOptions): Promise<HttpResponse>;
  /** What the upstream received for `testId`. */
  received(testId: string): RecordedRequest[];
}

/**
 * Starts a recording upstream, the service and Envoy for the enclosing
 * describe (beforeAll) and stops them after it (afterAll). The returned
 * object is usable inside tests only.
 */
export function useEnvoyStack(mode: EnvoyMode, options: { serviceEnv?: () => Record<string, string> } = {}): EnvoyStack {
  let upstream: Upstream | undefined;
  let stack: GovernanceStack | undefined;
  beforeAll(async () => {
    upstream = await startUpstream({ respond: streamWhenAsked });
    stack = await startGovernanceStack({ mode, upstreamPort: upstream.port, ...(options.serviceEnv ? { serviceEnv: options.serviceEnv() } : {}) });
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.stop();
  });
  const started = () => {
    if (!upstream || !stack) throw new Error('the Envoy stack is not running (used outside a test?)');
    return { upstream, stack };
  };
  return {
    mode,
    get upstream() {
      return started().upstream;
    },
    get stack() {
      return started().stack;
    },
    send: (testId, path, options = {}) =>
      httpRequest(`${started().stack.url}${path}`, { ...options, headers: { ...options.headers, [TEST_ID_HEADER]: testId } }),
    received: (testId) => started().upstream.requestsWith(TEST_ID_HEADER, testId),
  };
}


/** The route the default policy picks: tier default, product-team keeps premium customers on claude-sonnet. */
export function expectedRoute(team: string, tier: string | undefined): string {
  if (tier === 'premium') return team === 'product-team' ? 'claude-sonnet' : 'claude-opus';
  if (tier === 'standard') return 'claude-haiku';
  return 'claude-sonnet';
}

/** GET /v1/stream?events=N answers a server-sent-events stream of N events of about 4 KiB each; /v1/slow?ms=N answers after N ms. */
export function streamEvent(index: number): string {
  return `data: ${JSON.stringify({ index, delta: 'x'.repeat(4000) })}\n\n`;
}

function streamWhenAsked(request: RecordedRequest, response: ServerResponse): boolean {
  const url = new URL(request.path, 'http://upstream');
  if (url.pathname === '/v1/slow') {
    setTimeout(() => response.writeHead(200, { 'content-type': 'application/json' }).end('{"slow":true}'), Number(url.searchParams.get('ms') ?? '500'));
    return true;
  }
  if (url.pathname !== '/v1/stream') return false;
  const events = Number(url.searchParams.get('events') ?? '100');
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  let index = 0;
  const writeMore = () => {
    while (index < events) {
      const more = response.write(streamEvent(index++));
      if (index % 50 === 0) {
        setTimeout(writeMore, 2); // let the stream be a stream: arrive over time, not in one burst
        return;
      }
      if (!more) {
        response.once('drain', writeMore);
        return;
      }
    }
    response.end();
  };
  writeMore();
  return true;
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A denial as DESIGN §2 has it: JSON {error, reason_code, message, decision_id} (plus `extraKeys`, e.g. for 429s). */
function expectJsonDenial(response: HttpResponse, status: number, reasonCode: string, extraKeys: readonly string[] = []): void {
  expect(response.status, response.body).toBe(status);
  expect(response.header('content-type')).toMatch(/^application\/json/);
  const body = response.json<Record<string, unknown>>();
  expect(Object.keys(body).sort()).toEqual(['decision_id', 'error', 'message', 'reason_code', ...extraKeys].sort());
  expect(body).toMatchObject({ error: expect.any(String), reason_code: reasonCode, message: expect.any(String), decision_id: expect.stringMatching(UUID) });
  expect(body.message).not.toBe('');
  expect(response.header('x-genops-decision-id')).toBe(body.decision_id);
}

/** Allowed requests, routing and every denial kind: what a client and the upstream notice. */
export function describeGovernanceDecisions(envoy: EnvoyStack): void {
  it('lets an allowed request through with the route, a decision id and the normalized context', async () => {
    const testId = randomUUID();
    const headers = context({ 'x-genops-team': 'ML-Platform', 'x-genops-customer-tier': 'Standard', 'x-genops-environment': 'Production' });
    const response = await envoy.send(testId, '/v1/chat/completions', { headers });

    expect(response.status, response.body).toBe(200);
    const [received, ...more] = envoy.received(testId);
    expect(more).toHaveLength(0);
    expect(received?.headers).toMatchObject({
      'x-genops-team': 'ml-platform',
      'x-genops-customer-id': headers['x-genops-customer-id'],
      'x-genops-project': 'support-bot',
      'x-genops-customer-tier': 'standard',
      'x-genops-environment': 'production',
      'x-genops-route': 'claude-haiku',
      'x-routed-by': 'claude-haiku',
      'x-genops-decision-id': expect.stringMatching(UUID),
    });
    expect(response.header('x-genops-decision-id')).toBe(received?.headers['x-genops-decision-id']);
    // The client gets the upstream's answer itself.
    expect(response.json<EchoBody>().headers['x-genops-decision-id']).toBe(received?.headers['x-genops-decision-id']);
  });

  it('routes a premium customer to claude-opus, and Envoy picks its claude-opus route', async () => {
    const testId = randomUUID();
    const response = await envoy.send(testId, '/v1/messages', { method: 'POST', headers: { ...context({ 'x-genops-customer-tier': 'premium' }), 'content-type': 'application/json' }, body: MESSAGES_BODY });

    expect(response.status, response.body).toBe(200);
    expect(envoy.received(testId)).toHaveLength(1);
    expect(envoy.received(testId)[0]?.headers).toMatchObject({ 'x-genops-route': 'claude-opus', 'x-routed-by': 'claude-opus' });
  });

  it('overwrites an x-genops-route or decision id the client sent itself', async () => {
    const testId = randomUUID();
    const headers = { ...context({ 'x-genops-customer-tier': 'basic' }), 'x-genops-route': 'claude-opus', 'x-genops-decision-id': 'chosen-by-client', 'x-routed-by': 'client' };
    const response = await envoy.send(testId, '/v1/messages', { headers });

    expect(response.status, response.body).toBe(200);
    const received = envoy.received(testId)[0];
    expect(received?.headers).toMatchObject({ 'x-genops-route': 'claude-sonnet', 'x-routed-by': 'claude-sonnet', 'x-genops-decision-id': expect.stringMatching(UUID) });
    expect(response.header('x-genops-decision-id')).toBe(received?.headers['x-genops-decision-id']);
  });

  it('serves HTTP/2 clients (h2c) on the same listener the same way', async () => {
    const testId = randomUUID();
    const response = await http2Request(`${envoy.stack.url}/v1/messages`, { method: 'POST', headers: { ...context({ 'x-genops-customer-tier': 'premium' }), 'x-test-id': testId }, body: MESSAGES_BODY });
    expect(response.status, response.body).toBe(200);
    const received = envoy.received(testId)[0];
    expect(received?.headers).toMatchObject({ 'x-genops-route': 'claude-opus', 'x-routed-by': 'claude-opus' });
    expect(response.header('x-genops-decision-id')).toBe(received?.headers['x-genops-decision-id']);

    const denied = await http2Request(`${envoy.stack.url}/v1/messages`, { headers: { ...context({ 'x-genops-team': 'marketing' }), 'x-test-id': testId } });
    expectJsonDenial(denied, 403, 'x_team_not_allowed');
    expect(envoy.received(testId)).toHaveLength(1);
  });

  it('passes the provider credentials on to the upstream (they are only kept from the service)', async () => {
    const testId = randomUUID();
    const response = await envoy.send(testId, '/v1/messages', { headers: { ...context(), authorization: 'Bearer sk-test-secret' } });

    expect(response.status, response.body).toBe(200);
    expect(envoy.received(testId)[0]?.headers.authorization).toBe('Bearer sk-test-secret');
  });

  describePerCustomerRateLimit(envoy);

  const denials: { name: string; headers: () => Record<string, string>; status: number; reasonCode: string; message: RegExp }[] = [
    { name: 'a missing team', headers: () => context({ 'x-genops-team': undefined }), status: 403, reasonCode: 'x_missing_context', message: /x-genops-team/ },
    { name: 'a missing customer id and project', headers: () => context({ 'x-genops-customer-id': undefined, 'x-genops-project': undefined }), status: 403, reasonCode: 'x_missing_context', message: /x-genops-customer-id/ },
    { name: 'a team not in the policy', headers: () => context({ 'x-genops-team': 'marketing' }), status: 403, reasonCode: 'x_team_not_allowed', message: /marketing/ },
    { name: 'a basic-tier customer asking for claude-opus', headers: () => context({ 'x-genops-customer-tier': 'basic', 'x-genops-model': 'claude-opus' }), status: 403, reasonCode: 'POLICY_DENY_MODEL', message: /claude-opus/ },
    { name: 'product-team asking for claude-opus', headers: () => context({ 'x-genops-team': 'product-team', 'x-genops-model': 'claude-opus' }), status: 403, reasonCode: 'POLICY_DENY_MODEL', message: /product-team/ },
    { name: 'a malformed customer id', headers: () => context({ 'x-genops-customer-id': 'bad id!' }), status: 400, reasonCode: 'x_invalid_context', message: /x-genops-customer-id/ },
  ];
  it.each(denials)('refuses $name with $status $reasonCode as JSON, and the upstream gets nothing', async ({ headers, status, reasonCode, message }) => {
    const testId = randomUUID();
    const response = await envoy.send(testId, '/v1/chat/completions', { method: 'POST', headers: { ...headers(), 'content-type': 'application/json' }, body: '{"model":"claude-opus"}' });

    expectJsonDenial(response, status, reasonCode);
    expect(response.json<{ message: string }>().message).toMatch(message);
    expect(envoy.received(testId)).toHaveLength(0);
  });
}

export interface FailClosedStatuses {
  /** Status when the service accepts connections but does not answer in time. */
  readonly hung: number;
  /** Status when nothing listens on the service's port any more. */
  readonly unreachable: number;
}

/**
 * Shutdown and Envoy's failure mode. Stops the service: register last in
 * the describe that owns `envoy`.
 */
export function describeShutdownAndFailClosed(envoy: EnvoyStack, statuses: FailClosedStatuses): void {
  it(`fails closed with ${statuses.hung} while the service hangs, and recovers when it resumes`, async () => {
    const testId = randomUUID();
    const { pid } = envoy.stack.service.process;
    process.kill(pid, 'SIGSTOP');
    let response: HttpResponse;
    const startedAt = Date.now();
    try {
      response = await envoy.send(testId, '/v1/messages', { headers: context() });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(response.status).toBe(statuses.hung);
    expect(Date.now() - startedAt).toBeLessThan(3_000); // the filter's timeout, not the client's
    expect(envoy.received(testId)).toHaveLength(0);

    const after = await envoy.send(testId, '/v1/messages', { headers: context() });
    expect(after.status, after.body).toBe(200);
    expect(envoy.received(testId)).toHaveLength(1);
  });

  it('exits 0 on SIGTERM within a few seconds, letting a request in flight finish', async () => {
    const testId = randomUUID();
    const inFlight = envoy.send(testId, '/v1/slow?ms=400', { headers: context() });
    await until(() => envoy.received(testId).length > 0, 'the slow request to reach the upstream');

    const startedAt = Date.now();
    const code = await envoy.stack.service.stop({ signal: 'SIGTERM', timeoutMs: 5_000 });
    expect(code).toBe(0);
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    expect(envoy.stack.service.logs().map((line) => line.event)).toEqual(expect.arrayContaining(['draining', 'stopped']));

    const response = await inFlight;
    expect(response.status, response.body).toBe(200);
    expect(response.json<{ slow: boolean }>().slow).toBe(true);
    expect(response.header('x-genops-decision-id')).toBe(envoy.received(testId)[0]?.headers['x-genops-decision-id']);
  });

  it(`fails closed with ${statuses.unreachable} once the service is gone, and the upstream gets nothing`, async () => {
    expect(envoy.stack.service.process.exitCode).not.toBeUndefined();
    const testId = randomUUID();
    for (const headers of [context(), context({ 'x-genops-customer-tier': 'premium' })]) {
      const response = await envoy.send(testId, '/v1/messages', { headers });
      expect(response.status).toBe(statuses.unreachable);
      expect(response.header('x-genops-decision-id')).toBeUndefined();
    }
    expect(envoy.received(testId)).toHaveLength(0);
  });
}

const GATEWAY = 'spiffe://cluster.local/ns/api-gateway/sa/gateway';
const BATCH_JOBS = 'spiffe://cluster.local/ns/batch/sa/jobs';

/**
 * The mTLS peer's SPIFFE id reaches the service: with a policy that lets only
 * the gateway act for ml-platform, another workload is refused for that team.
 */
export function describePeerPrincipal(mode: EnvoyMode): void {
  describe('mTLS peer principal', () => {
    let pki: TestPki | undefined;
    let policyPath: string | undefined;
    let upstream: Upstream | undefined;
    let stack: GovernanceStack | undefined;
    beforeAll(async () => {
      pki = createTestPki([GATEWAY, BATCH_JOBS]);
      const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: { teams: Record<string, Record<string, unknown>> } };
      policy.spec.teams['ml-platform'] = { ...policy.spec.teams['ml-platform'], principals: [GATEWAY] };
      policyPath = join(tmpdir(), `genops-policy-${randomUUID()}.yaml`);
      writeFileSync(policyPath, stringify(policy));
      upstream = await startUpstream();
      stack = await startGovernanceStack({
        mode,
        upstreamPort: upstream.port,
        policyPath,
        downstreamTls: { certificateChain: pki.serverCert, privateKey: pki.serverKey, trustedCa: pki.ca },
      });
    });
    afterAll(async () => {
      await stack?.stop();
      await upstream?.stop();
      pki?.remove();
      if (policyPath) rmSync(policyPath, { force: true });
    });
    const sendAs = (principal: string, headers: Record<string, string>) => {
      const client = pki!.clients.get(principal)!;
      return httpRequest(`${stack!.url}/v1/messages`, { headers, tls: { ca: pki!.ca, cert: client.cert, key: client.key } });
    };

    it('lets the named principal act for its team', async () => {
      const response = await sendAs(GATEWAY, context());
      expect(response.status, response.body).toBe(200);
      expect(response.json<EchoBody>().headers['x-genops-route']).toBe('claude-sonnet');
    });

    it('refuses another principal for that team with 403 x_principal_not_allowed', async () => {
      const response = await sendAs(BATCH_JOBS, context());
      expectJsonDenial(response, 403, 'x_principal_not_allowed');
      expect(response.json<{ message: string }>().message).toContain(BATCH_JOBS);
    });

    it('lets any principal act for a team without a principal rule', async () => {
      const response = await sendAs(BATCH_JOBS, context({ 'x-genops-team': 'ml-research' }));
      expect(response.status, response.body).toBe(200);
    });
  });
}

/** The default policy's 100-per-minute bucket per customer, as a client meets it through Envoy. */
export function describePerCustomerRateLimit(envoy: EnvoyStack): void {
  it('rate-limits one customer at 100 requests a minute with 429 RATE_LIMITED, and shows the RateLimit headers', async () => {
    const testId = randomUUID();
    const headers = context();
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    try {
      const started = Date.now();
      // The bucket refills one request every 0.6 s: on a slow run a few may come back while it drains.
      const refilledAtMost = () => Math.ceil((Date.now() - started) / 600) + 1;
      const allowed = await Promise.all(Array.from({ length: 100 }, () => envoy.send(testId, '/v1/messages', { headers, agent })));
      for (const response of allowed) {
        expect(response.status, response.body).toBe(200);
        expect(response.header('ratelimit-policy')).toBe('"per-customer";q=100;w=60');
        expect(response.header('ratelimit')).toMatch(/^"per-customer";r=\d+;t=\d+$/);
      }
      const remaining = allowed.map((response) => Number(/r=(\d+)/.exec(response.header('ratelimit') ?? '')?.[1])).sort((a, b) => a - b);
      expect(remaining[99]).toBe(99);
      expect(remaining[0]).toBeLessThanOrEqual(refilledAtMost());
      expect(new Set(remaining).size).toBeGreaterThanOrEqual(100 - refilledAtMost());

      let limited = await envoy.send(testId, '/v1/messages', { headers, agent });
      let refilled = 0;
      while (limited.status === 200 && refilled < refilledAtMost()) {
        refilled += 1;
        limited = await envoy.send(testId, '/v1/messages', { headers, agent });
      }
      expect(refilled).toBeLessThanOrEqual(refilledAtMost());
      expectJsonDenial(limited, 429, 'RATE_LIMITED', ['retry_after_seconds']);
      expect(Number(limited.header('retry-after'))).toBeGreaterThan(0);
      expect(limited.json<{ retry_after_seconds: number }>().retry_after_seconds).toBe(Number(limited.header('retry-after')));
      expect(limited.header('ratelimit')).toMatch(/^"per-customer";r=0;t=\d+$/);
      expect(envoy.received(testId)).toHaveLength(100 + refilled);

      const otherCustomer = await envoy.send(testId, '/v1/messages', { headers: context(), agent });
      expect(otherCustomer.status, otherCustomer.body).toBe(200);
    } finally {
      agent.destroy();
    }
  });
}
