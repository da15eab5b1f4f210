import { describe, expect, it } from 'vitest';
import { toCheckResponse } from '../../src/envoy/authz-adapter.js';
import { GenopsError } from '../../src/errors/genops-error.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createRateLimiter, type RateLimitOutcome } from '../../src/governance/rate-limiting.js';
import type { Decision } from '../../src/governance/decision.js';
import { createMemoryRateLimitStore } from '../../src/limits/memory-rate-limit-store.js';
import type { RateLimitStore } from '../../src/limits/rate-limit-store.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';

const policyYaml = (rateLimits: string, mode = 'enforce') => `
apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: limits }
spec:
  mode: ${mode}
  context: { required: [team, customerId] }
  teams:
    ml-platform: {}
    ml-research: {}
  rateLimits:
${rateLimits}
`;

const perCustomer = `
    - name: per-customer
      key: [customerId]
      capacity: 3
      refill: { amount: 3, every: 60s }`;

function governorFor(yaml: string, store?: RateLimitStore) {
  const policy = loadPolicyText(yaml, 'limits.yaml');
  let now = 0;
  const checks: [string, RateLimitOutcome][] = [];
  const backendErrors: Error[] = [];
  const rateLimiter = createRateLimiter({
    store: store ?? createMemoryRateLimitStore({ clock: () => now }),
    policy: () => policy,
    observer: { limitChecked: (limit, outcome) => checks.push([limit, outcome]), backendFailed: (error) => backendErrors.push(error) },
  });
  const governor = createGovernor({ engine: createDecisionEngine({ policy: () => policy }), rateLimiter });
  const request = (headers: Record<string, string>, path = '/v1/chat/completions') =>
    governor.evaluate({ headers: (name) => headers[name], path }) as Decision | Promise<Decision>;
  return { request, checks, backendErrors, advance: (ms: number) => (now += ms) };
}

const acme = { 'x-genops-team': 'ml-platform', 'x-genops-customer-id': 'acme' };

describe('rate limiting', () => {
  it('refuses the request past the bucket with 429 RATE_LIMITED and the RateLimit headers', async () => {
    const { request, checks } = governorFor(policyYaml(perCustomer));
    const allowed: Decision[] = [];
    for (let index = 0; index < 3; index++) allowed.push(await request(acme));
    expect(allowed.map((decision) => decision.result)).toEqual(['ALLOWED', 'ALLOWED', 'ALLOWED']);
    expect(allowed.map((decision) => decision.rateLimit?.remaining)).toEqual([2, 1, 0]);
    const refused = await request(acme);
    expect(refused).toMatchObject({ result: 'RATE_LIMITED', reasonCode: 'RATE_LIMITED', httpStatus: 429, route: undefined });
    expect(refused.message).toBe('rate limit per-customer exceeded: 3 requests per 60s; retry in 20s');
    const denied = toCheckResponse(refused).denied_response!;
    const headers = Object.fromEntries(denied.headers.map((option) => [option.header.key, option.header.value]));
    expect(headers).toMatchObject({ 'retry-after': '20', 'ratelimit-policy': '"per-customer";q=3;w=60', ratelimit: '"per-customer";r=0;t=20' });
    expect(JSON.parse(denied.body)).toMatchObject({ reason_code: 'RATE_LIMITED', retry_after_seconds: 20, decision_id: refused.id });
    expect(checks.at(-1)).toEqual(['per-customer', 'over_limit']);
  });

  it('puts RateLimit headers on allowed responses for the client', async () => {
    const { request } = governorFor(policyYaml(perCustomer));
    const ok = toCheckResponse(await request(acme)).ok_response!;
    const headers = Object.fromEntries(ok.response_headers_to_add.map((option) => [option.header.key, option.header.value]));
    expect(headers).toMatchObject({ 'ratelimit-policy': '"per-customer";q=3;w=60', ratelimit: '"per-customer";r=2;t=20' });
  });

  it('leaves other customers unaffected', async () => {
    const { request } = governorFor(policyYaml(perCustomer));
    for (let index = 0; index < 4; index++) await request(acme);
    expect((await request({ ...acme, 'x-genops-customer-id': 'globex' })).result).toBe('ALLOWED');
  });

  it('charges no limit for a request the policy already refused', async () => {
    const { request, checks } = governorFor(policyYaml(perCustomer));
    for (let index = 0; index < 5; index++) await request({ ...acme, 'x-genops-team': 'marketing' });
    expect(checks).toEqual([]);
    expect((await request(acme)).rateLimit?.remaining).toBe(2);
  });

  it('applies only the limits whose selector matches, keyed by their dimensions', async () => {
    const { request } = governorFor(
      policyYaml(`
    - name: research-models
      key: [team, model]
      capacity: 1
      refill: { amount: 1, every: 1h }
      selector: { teams: [ml-research], paths: [/v1/chat] }`),
    );
    const research = { ...acme, 'x-genops-team': 'ml-research', 'x-genops-model': 'gpt-4o' };
    expect((await request(research)).result).toBe('ALLOWED');
    expect((await request(research)).result).toBe('RATE_LIMITED');
    expect((await request({ ...research, 'x-genops-model': 'claude-haiku' })).result).toBe('ALLOWED');
    expect((await request(research, '/v1/embeddings')).result).toBe('ALLOWED');
    expect((await request(acme)).rateLimit).toBeUndefined();
  });

  it('a shadow limit warns instead of refusing, and so does global dry-run', async () => {
    const shadow = governorFor(policyYaml(perCustomer.replace('capacity: 3', 'capacity: 1\n      shadow: true')));
    await shadow.request(acme);
    expect(await shadow.request(acme)).toMatchObject({ result: 'WARNING', reasonCode: 'RATE_LIMITED', dryRun: true });
    expect(shadow.checks.at(-1)).toEqual(['per-customer', 'shadow_over_limit']);
    const dryRun = governorFor(policyYaml(perCustomer.replace('capacity: 3', 'capacity: 1'), 'dry-run'));
    await dryRun.request(acme);
    expect((await dryRun.request(acme)).result).toBe('WARNING');
  });

  it('follows each limit’s failure mode when the backend is unavailable', async () => {
    const broken: RateLimitStore = {
      take: () => Promise.reject(new GenopsError('backend_unavailable', 'redis: Connection is closed.')),
      charge: () => Promise.reject(new GenopsError('backend_unavailable', 'redis: Connection is closed.')),
      close: async () => undefined,
    };
    const open = governorFor(policyYaml(perCustomer), broken);
    expect((await open.request(acme)).result).toBe('ALLOWED');
    expect(open.checks).toEqual([['per-customer', 'backend_error']]);
    expect(open.backendErrors.map((error) => error.message)).toEqual(['redis: Connection is closed.']);
    const closed = governorFor(policyYaml(`${perCustomer}\n      failureMode: closed`), broken);
    expect(await closed.request(acme)).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_rate_limit_unavailable', httpStatus: 503 });
  });
});
