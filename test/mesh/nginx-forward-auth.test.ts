/**
 * Forward auth through the real nginx (auth_request), booted with the shipped
 * deploy/linkerd/nginx/genops-forward-auth.conf, in front of a recording
 * upstream; plus the forward-auth endpoints called directly the way Traefik
 * forwardAuth and Envoy's HTTP ext_authz call them.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, httpRequest, REPO_ROOT, startService, startUpstream, type HttpResponse, type RunningService, type Upstream } from '../support/index.js';
import { startNginx, type RunningNginx } from './support/start-nginx.js';
import { context, UUID } from '../support/request-context.js';

const TEST_ID = 'x-test-id';


function expectJsonDenial(response: HttpResponse, status: number, reasonCode: string): Record<string, unknown> {
  expect(response.status, response.body).toBe(status);
  expect(response.header('content-type')).toMatch(/^application\/json/);
  const body = response.json<Record<string, unknown>>();
  expect(body).toMatchObject({ error: expect.any(String), reason_code: reasonCode, message: expect.any(String), decision_id: expect.stringMatching(UUID) });
  expect(response.header('x-genops-decision-id')).toBe(body.decision_id);
  return body;
}

describe('forward auth: genops-mesh behind the real nginx auth_request', () => {
  let policyPath: string | undefined;
  let service: RunningService | undefined;
  let upstream: Upstream | undefined;
  let nginx: RunningNginx | undefined;
  let forwardAuthUrl = '';
  // Traefik sets X-Forwarded-Uri and X-Forwarded-Method itself: a service behind it names them.
  let traefik: RunningService | undefined;
  let traefikUrl = '';

  beforeAll(async () => {
    // The default policy with a small per-customer bucket on /v1/ paths, to reach 429 quickly.
    const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: Record<string, unknown> };
    policy.spec.rateLimits = [{ name: 'per-customer', key: ['customerId'], capacity: 2, refill: { amount: 2, every: '60s' }, selector: { paths: ['/v1/'] } }];
    policyPath = join(tmpdir(), `genops-forward-auth-policy-${randomUUID()}.yaml`);
    writeFileSync(policyPath, stringify(policy));
    const forwardAuthPort = await freePort();
    service = await startService({ policyPath, env: { GENOPS_FORWARD_AUTH_PORT: String(forwardAuthPort) } });
    forwardAuthUrl = `http://127.0.0.1:${forwardAuthPort}`;
    const traefikPort = await freePort();
    traefik = await startService({ policyPath, env: { GENOPS_FORWARD_AUTH_PORT: String(traefikPort), GENOPS_FORWARD_AUTH_URI_HEADER: 'X-Forwarded-Uri', GENOPS_FORWARD_AUTH_METHOD_HEADER: 'x-forwarded-method' } });
    traefikUrl = `http://127.0.0.1:${traefikPort}`;
    upstream = await startUpstream();
    nginx = await startNginx({
      snippet: 'deploy/linkerd/nginx/genops-forward-auth.conf',
      vars: { GENOPS_FORWARD_AUTH_HOST: '127.0.0.1', GENOPS_FORWARD_AUTH_PORT: forwardAuthPort, UPSTREAM_HOST: '127.0.0.1', UPSTREAM_PORT: upstream.port },
    });
  });
  afterAll(async () => {
    await nginx?.stop();
    await service?.stop();
    await traefik?.stop();
    await upstream?.stop();
    if (policyPath) rmSync(policyPath, { force: true });
  });

  const send = (testId: string, path: string, headers: Record<string, string>, method = 'GET') =>
    httpRequest(`${nginx!.url}${path}`, { method, headers: { ...headers, [TEST_ID]: testId } });
  const received = (testId: string) => upstream!.requestsWith(TEST_ID, testId);

  it('lets an allowed request through with the route, the decision id and the normalized context', async () => {
    const testId = randomUUID();
    const headers = context({ 'x-genops-team': 'ML-Platform', 'x-genops-customer-tier': 'Premium', 'x-genops-environment': 'Production' });
    const response = await send(testId, '/v1/chat/completions?stream=false', headers, 'POST');

    expect(response.status, response.body).toBe(200);
    const [request, ...more] = received(testId);
    expect(more).toHaveLength(0);
    expect(request?.path).toBe('/v1/chat/completions?stream=false');
    expect(request?.headers).toMatchObject({
      'x-genops-route': 'claude-opus',
      'x-genops-team': 'ml-platform',
      'x-genops-customer-tier': 'premium',
      'x-genops-environment': 'production',
      'x-genops-customer-id': headers['x-genops-customer-id'],
      'x-genops-project': 'support-bot',
      'x-genops-decision-id': expect.stringMatching(UUID),
    });
    // nginx-only plumbing never reaches the upstream.
    expect(request?.headers['x-genops-status']).toBeUndefined();
    expect(request?.headers['x-genops-denial']).toBeUndefined();
    expect(response.header('x-genops-decision-id')).toBe(request?.headers['x-genops-decision-id']);
    expect(response.header('ratelimit-policy')).toBe('"per-customer";q=2;w=60');
    expect(response.header('ratelimit')).toMatch(/^"per-customer";r=1;t=\d+$/);
  });

  it('overwrites a route and decision id the client chose itself', async () => {
    const testId = randomUUID();
    const response = await send(testId, '/v1/messages', { ...context({ 'x-genops-customer-tier': 'basic' }), 'x-genops-route': 'claude-opus', 'x-genops-decision-id': 'mine' });

    expect(response.status, response.body).toBe(200);
    expect(received(testId)[0]?.headers).toMatchObject({ 'x-genops-route': 'claude-sonnet', 'x-genops-decision-id': expect.stringMatching(UUID) });
  });

  it('refuses a request without a team with 403 and the JSON body; the upstream gets nothing', async () => {
    const testId = randomUUID();
    const response = await send(testId, '/v1/messages', context({ 'x-genops-team': undefined }));

    const body = expectJsonDenial(response, 403, 'x_missing_context');
    expect(Object.keys(body).sort()).toEqual(['decision_id', 'error', 'message', 'reason_code']);
    expect(body).toMatchObject({ error: 'forbidden', message: expect.stringContaining('x-genops-team') });
    expect(response.header('retry-after')).toBeUndefined();
    expect(received(testId)).toHaveLength(0);
  });

  it('refuses a team that is not in the policy with 403 x_team_not_allowed', async () => {
    const testId = randomUUID();
    const response = await send(testId, '/v1/messages', context({ 'x-genops-team': 'marketing' }));
    expect(expectJsonDenial(response, 403, 'x_team_not_allowed').message).toMatch(/marketing/);
    expect(received(testId)).toHaveLength(0);
  });

  it('answers a malformed header with 400 (not the 500 nginx makes of other auth statuses)', async () => {
    const testId = randomUUID();
    const response = await send(testId, '/v1/messages', context({ 'x-genops-customer-id': 'bad id!' }));

    const body = expectJsonDenial(response, 400, 'x_invalid_context');
    expect(body).toMatchObject({ error: 'bad_request', message: expect.stringContaining('x-genops-customer-id') });
    expect(received(testId)).toHaveLength(0);
  });

  it('rate-limits the customer past its bucket with 429, Retry-After and the RateLimit headers', async () => {
    const testId = randomUUID();
    const headers = context();
    for (let index = 0; index < 2; index += 1) {
      const allowed = await send(testId, '/v1/messages', headers);
      expect(allowed.status, allowed.body).toBe(200);
    }
    const response = await send(testId, '/v1/messages', headers);

    const body = expectJsonDenial(response, 429, 'RATE_LIMITED');
    expect(body).toMatchObject({ error: 'too_many_requests', retry_after_seconds: expect.any(Number) });
    expect(response.header('retry-after')).toBe(String(body.retry_after_seconds));
    expect(Number(response.header('retry-after'))).toBeGreaterThan(0);
    expect(response.header('ratelimit-policy')).toBe('"per-customer";q=2;w=60');
    expect(response.header('ratelimit')).toMatch(/^"per-customer";r=0;t=\d+$/);
    expect(received(testId)).toHaveLength(2);

    // The original path reaches the service (X-Original-URI): the limit selects /v1/ only.
    const elsewhere = await send(testId, '/healthcheck', headers);
    expect(elsewhere.status, elsewhere.body).toBe(200);
    expect(received(testId)).toHaveLength(3);
  });

  it('counts the decisions under service="forward_auth"', async () => {
    const metrics = await httpRequest(`${service!.adminUrl}/metrics`);
    expect(metrics.body).toMatch(/genops_requests_total\{[^}]*service="forward_auth"[^}]*decision="RATE_LIMITED"[^}]*\} [1-9]/);
    expect(metrics.body).toMatch(/genops_requests_total\{[^}]*service="forward_auth"[^}]*decision="ALLOWED"[^}]*\} [1-9]/);
  });

  describe('called directly, as Traefik forwardAuth and Envoy HTTP ext_authz call it', () => {
    it('answers 200 with the headers to copy upstream (Traefik: X-Forwarded-Uri, named by GENOPS_FORWARD_AUTH_URI_HEADER)', async () => {
      const response = await httpRequest(`${traefikUrl}/forward-auth`, {
        headers: { ...context({ 'x-genops-customer-tier': 'standard' }), 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/v1/messages', 'x-forwarded-host': 'ai.example.com' },
      });
      expect(response.status).toBe(200);
      expect(response.body).toBe('');
      expect(response.headers).toMatchObject({ 'x-genops-route': 'claude-haiku', 'x-genops-team': 'ml-platform', 'x-genops-decision-id': expect.stringMatching(UUID), 'ratelimit-policy': '"per-customer";q=2;w=60' });
    });

    it('answers denials with their real status and JSON body (Traefik passes them to the client)', async () => {
      const headers = { ...context(), 'x-forwarded-uri': '/v1/messages', 'x-forwarded-method': 'GET' };
      await httpRequest(`${traefikUrl}/forward-auth`, { headers });
      await httpRequest(`${traefikUrl}/forward-auth`, { headers });
      const limited = await httpRequest(`${traefikUrl}/forward-auth`, { headers });
      expectJsonDenial(limited, 429, 'RATE_LIMITED');
      expect(limited.header('retry-after')).toMatch(/^\d+$/);
      expect(limited.header('x-genops-status')).toBeUndefined();

      const at = { 'x-forwarded-uri': '/v1/models', 'x-forwarded-method': 'GET' };
      expectJsonDenial(await httpRequest(`${traefikUrl}/forward-auth`, { headers: { ...context({ 'x-genops-team': 'marketing' }), ...at } }), 403, 'x_team_not_allowed');
      expectJsonDenial(await httpRequest(`${traefikUrl}/forward-auth`, { headers: { ...context({ 'x-genops-customer-tier': 'gold' }), ...at } }), 400, 'x_invalid_context');
    });

    it('answers nginx-style: 403 carrying the real status and body in headers', async () => {
      const response = await httpRequest(`${forwardAuthUrl}/forward-auth/nginx`, { headers: { ...context({ 'x-genops-customer-tier': 'gold' }), 'x-original-uri': '/v1/models', 'x-original-method': 'GET' } });
      expect(response.status).toBe(403);
      expect(response.header('x-genops-status')).toBe('400');
      expect(JSON.parse(response.header('x-genops-denial') ?? '')).toEqual(response.json());
      expect(response.json()).toMatchObject({ reason_code: 'x_invalid_context' });
    });

    it('reads the original path after the Envoy path_prefix', async () => {
      const headers = context();
      for (let index = 0; index < 2; index += 1) {
        expect((await httpRequest(`${forwardAuthUrl}/forward-auth/envoy/v1/messages?x=1`, { method: 'POST', headers })).status).toBe(200);
      }
      expectJsonDenial(await httpRequest(`${forwardAuthUrl}/forward-auth/envoy/v1/messages`, { headers }), 429, 'RATE_LIMITED');
      // Outside /v1/ the limit does not select the request.
      expect((await httpRequest(`${forwardAuthUrl}/forward-auth/envoy/models`, { headers })).status).toBe(200);
    });

    it('refuses an original target that is not a path with 400 x_malformed_request', async () => {
      const response = await httpRequest(`${traefikUrl}/forward-auth`, { headers: { ...context(), 'x-forwarded-uri': '../v1' } });
      expectJsonDenial(response, 400, 'x_malformed_request');
    });

    it('answers 404 naming the endpoints for any other path', async () => {
      const response = await httpRequest(`${forwardAuthUrl}/auth`, { headers: context() });
      expect(response.status).toBe(404);
      expect(response.json<{ message: string }>().message).toContain('/forward-auth/nginx');
    });
  });

  it('drains and exits 0 on SIGTERM while nginx holds keep-alive connections; nginx then fails closed', async () => {
    const startedAt = Date.now();
    expect(await service!.stop({ signal: 'SIGTERM', timeoutMs: 5_000 })).toBe(0);
    expect(Date.now() - startedAt).toBeLessThan(3_000);
    const testId = randomUUID();
    const response = await send(testId, '/v1/messages', context());
    expect(response.status).toBe(500);
    expect(received(testId)).toHaveLength(0);
  });
});
