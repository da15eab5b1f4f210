import { describe, expect, it } from 'vitest';
import { toCheckResponse } from '../../src/envoy/authz-adapter.js';
import { GenopsError } from '../../src/errors/genops-error.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createRateLimiter, type RateLimitOutcome } from '../../src/governance/rate-limiting.js';
import type { Decision } from '../../src/governance/decision.js';
import { createMemoryRateLimitStore } from '../../src/limits/memory-rate-limit-store.js';
import type { RateLimitStore } from '../../src/limits/rate-limit-store.js';
import type { CompiledPolicy } from '../../src/policy/compiled-policy.js';
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
  let policy: CompiledPolicy = loadPolicyText(yaml, 'limits.yaml');
  let now = 0;
  const checks: [string, RateLimitOutcome][] = [];
  const backendErrors: Error[] = [];
  const charged: [string, number][] = [];
  const rateLimiter = createRateLimiter({
    store: store ?? createMemoryRateLimitStore({ clock: () => now }),
    policy: () => policy,
    observer: {
      limitChecked: (limit, outcome) => checks.push([limit, outcome]),
      backendFailed: (error) => backendErrors.push(error),
      tokensCharged: (limit, tokens) => charged.push([limit, tokens]),
    },
  });
  const governor = createGovernor({ engine: createDecisionEngine({ policy: () => policy }), rateLimiter });
  const request = (headers: Record<string, string>, path = '/v1/chat/completions') =>
    governor.evaluate({ headers: (name) => headers[name], path }) as Decision | Promise<Decision>;
  const reload = (text: string) => (policy = loadPolicyText(text, 'limits.yaml'));
  const settle = (decision: Decision, usage: { input: number; output: number }) => rateLimiter.settle(decision, usage);
  return { request, settle, reload, checks, backendErrors, charged, advance: (ms: number) => (now += ms) };
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

const tokensPerTeam = `
    - name: tokens-per-team
      key: [team]
      unit: tokens
      capacity: 1000
      refill: { amount: 1000, every: 60s }`;

function headersOf(decision: Decision): Record<string, string> {
  const response = toCheckResponse(decision);
  const options = response.ok_response?.response_headers_to_add ?? response.denied_response!.headers;
  return Object.fromEntries(options.map((option) => [option.header.key, option.header.value]));
}

describe('token rate limits', () => {
  it('admit while the team’s bucket is positive, charge the actual tokens on settle, then refuse while in debt', async () => {
    const { request, settle, checks, charged } = governorFor(policyYaml(tokensPerTeam));
    const first = await request(acme);
    expect(first.result).toBe('ALLOWED');
    expect(first.tokenLimits?.map((limit) => [limit.name, limit.counts, limit.check.key])).toEqual([['tokens-per-team', 'total', 'ml-platform']]);
    // A second request in flight before the first one's usage is known is admitted too: nothing is taken at admission.
    const second = await request(acme);
    expect(second.rateLimit).toMatchObject({ name: 'tokens-per-team', unit: 'tokens', remaining: 1000 });
    await settle(first, { input: 700, output: 200 });
    await settle(second, { input: 300, output: 100 });
    expect(charged).toEqual([['tokens-per-team', 900], ['tokens-per-team', 400]]);
    const refused = await request(acme);
    expect(refused).toMatchObject({ result: 'RATE_LIMITED', reasonCode: 'RATE_LIMITED', httpStatus: 429 });
    // A refused request is never charged: it carries nothing to settle.
    expect(refused.tokenLimits).toBeUndefined();
    // 300 tokens owed and one to be positive: 301 × 60 ms = 18.06 s.
    expect(refused.message).toBe('token rate limit tokens-per-team exceeded: 1000 tokens per 60s; retry in 19s');
    expect(headersOf(refused)).toMatchObject({ 'retry-after': '19', 'ratelimit-policy': '"tokens-per-team";q=1000;qu="tokens";w=60', ratelimit: '"tokens-per-team";r=0;t=19' });
    expect(checks.at(-1)).toEqual(['tokens-per-team', 'over_limit']);
    // Other teams have their own bucket.
    expect((await request({ ...acme, 'x-genops-team': 'ml-research' })).result).toBe('ALLOWED');
  });

  it('recover as refill pays the debt', async () => {
    const { request, settle, advance } = governorFor(policyYaml(tokensPerTeam));
    await settle(await request(acme), { input: 1200, output: 0 });
    advance(12_059);
    expect((await request(acme)).result).toBe('RATE_LIMITED');
    advance(1);
    const back = await request(acme);
    expect(back.result).toBe('ALLOWED');
    expect(back.rateLimit).toMatchObject({ remaining: 1, resetSeconds: 60 });
    expect(headersOf(back)).toMatchObject({ 'ratelimit-policy': '"tokens-per-team";q=1000;qu="tokens";w=60', ratelimit: '"tokens-per-team";r=1;t=60' });
  });

  it('count input or output tokens only when the limit says so', async () => {
    const limits = `${tokensPerTeam}
      tokens: output
    - name: input-per-customer
      key: [customerId]
      unit: tokens
      tokens: input
      capacity: 5000
      refill: { amount: 5000, every: 1m }`;
    const { request, settle, charged } = governorFor(policyYaml(limits));
    await settle(await request(acme), { input: 4000, output: 250 });
    expect(charged).toEqual([['tokens-per-team', 250], ['input-per-customer', 4000]]);
    // Estimates may be fractional: they round up; nonsense counts count as nothing.
    await settle(await request(acme), { input: 10.2, output: Number.NaN });
    expect(charged.slice(2)).toEqual([['input-per-customer', 11]]);
  });

  it('charge a decision once, however often it is settled', async () => {
    const { request, settle, charged } = governorFor(policyYaml(tokensPerTeam));
    const decision = await request(acme);
    await settle(decision, { input: 100, output: 50 });
    await settle({ ...decision, message: 'copied' }, { input: 100, output: 50 });
    expect(charged).toEqual([['tokens-per-team', 150]]);
    expect((await request(acme)).rateLimit?.remaining).toBe(850);
  });

  it('apply only where the selector matches; other requests carry nothing to settle', async () => {
    const { request, settle, charged } = governorFor(policyYaml(`${tokensPerTeam}
      selector: { teams: [ml-research], models: [gpt-4o] }`));
    const other = await request(acme);
    expect(other.tokenLimits).toBeUndefined();
    await settle(other, { input: 5000, output: 5000 });
    const research = { ...acme, 'x-genops-team': 'ml-research', 'x-genops-model': 'gpt-4o' };
    const selected = await request(research);
    expect(selected.tokenLimits).toHaveLength(1);
    await settle(selected, { input: 900, output: 200 });
    expect(charged).toEqual([['tokens-per-team', 1100]]);
    expect((await request(research)).result).toBe('RATE_LIMITED');
    expect((await request({ ...research, 'x-genops-model': 'claude-haiku' })).result).toBe('ALLOWED');
  });

  it('a request limit and a token limit together: the request is counted at admission, its tokens on settle', async () => {
    const { request, settle } = governorFor(policyYaml(`${perCustomer}${tokensPerTeam}`));
    const first = await request(acme);
    expect(first.rateLimit).toMatchObject({ name: 'per-customer', remaining: 2 });
    await settle(first, { input: 999, output: 1 });
    // The token bucket is at 0, not positive: refused, and the request bucket is not charged.
    const refused = await request(acme);
    expect(refused.result).toBe('RATE_LIMITED');
    expect(refused.rateLimit).toMatchObject({ name: 'tokens-per-team', unit: 'tokens', remaining: 0, retryAfterSeconds: 1 });
    // Another team: its token bucket is full, and acme’s request bucket still holds 2.
    expect((await request({ ...acme, 'x-genops-team': 'ml-research' })).rateLimit).toMatchObject({ name: 'per-customer', remaining: 1 });
  });

  it('name the tightest limit in the RateLimit headers, counting a token bucket in debt as empty', async () => {
    const roomy = perCustomer.replace('capacity: 3', 'capacity: 100').replace('amount: 3', 'amount: 100');
    const { request, settle } = governorFor(policyYaml(`${roomy}${tokensPerTeam.replace('capacity: 1000', 'capacity: 2000')}`));
    expect((await request(acme)).rateLimit).toMatchObject({ name: 'per-customer', remaining: 99 });
    await settle(await request(acme), { input: 1500, output: 0 });
    expect((await request(acme)).rateLimit).toMatchObject({ name: 'tokens-per-team', remaining: 500, quota: 1000 });
  });

  it('a reload between admission and settlement charges the same bucket, in the shape its limit has now', async () => {
    const { request, settle, reload, charged } = governorFor(policyYaml(tokensPerTeam));
    const admitted = await request(acme);
    // An unrelated edit and a raised capacity: the limit keeps its name and key, so its buckets.
    reload(policyYaml(tokensPerTeam.replace('capacity: 1000', 'capacity: 4000')).replace('ml-research: {}', 'ml-research: {}\n    data-science: {}'));
    await settle(admitted, { input: 1500, output: 0 });
    expect(charged).toEqual([['tokens-per-team', 1500]]);
    expect((await request(acme)).rateLimit).toMatchObject({ name: 'tokens-per-team', remaining: 2500 });
    // A limit a reload removed has no bucket left to read: settling charges nothing and fails nothing.
    const again = await request(acme);
    reload(policyYaml(perCustomer));
    await settle(again, { input: 100, output: 100 });
    expect(charged).toHaveLength(1);
  });

  it('a shadow token limit warns instead of refusing, and is still charged', async () => {
    const { request, settle, checks, charged } = governorFor(policyYaml(`${tokensPerTeam}\n      shadow: true`));
    await settle(await request(acme), { input: 2000, output: 0 });
    const warned = await request(acme);
    expect(warned).toMatchObject({ result: 'WARNING', reasonCode: 'RATE_LIMITED', dryRun: true, message: 'dry-run: token rate limit tokens-per-team exceeded' });
    expect(checks.at(-1)).toEqual(['tokens-per-team', 'shadow_over_limit']);
    await settle(warned, { input: 10, output: 0 });
    expect(charged).toEqual([['tokens-per-team', 2000], ['tokens-per-team', 10]]);
  });

  it('a backend failure on settle is reported, never thrown; a request admitted by failureMode open is still charged later', async () => {
    let failing = true;
    const memory = createMemoryRateLimitStore({ clock: () => 0 });
    const flaky: RateLimitStore = {
      take: (checks) => (failing ? Promise.reject(new GenopsError('backend_unavailable', 'redis: Connection is closed.')) : memory.take(checks)),
      charge: (debits) => (failing ? Promise.reject(new GenopsError('backend_unavailable', 'redis: Command timed out')) : memory.charge(debits)),
      close: async () => undefined,
    };
    const { request, settle, backendErrors, charged } = governorFor(policyYaml(tokensPerTeam), flaky);
    const admitted = await request(acme);
    expect(admitted.result).toBe('ALLOWED');
    expect(admitted.tokenLimits).toHaveLength(1);
    await expect(settle(admitted, { input: 100, output: 0 })).resolves.toBeUndefined();
    expect(backendErrors.map((error) => error.message)).toEqual(['redis: Connection is closed.', 'redis: Command timed out']);
    expect(charged).toEqual([]);
    const later = await request(acme);
    failing = false;
    await settle(later, { input: 1500, output: 0 });
    expect(charged).toEqual([['tokens-per-team', 1500]]);
    expect((await request(acme)).result).toBe('RATE_LIMITED');
  });

  it('refuse nonsense in the policy with a clear message', () => {
    const problem = (limits: string) => {
      try {
        loadPolicyText(policyYaml(limits), 'limits.yaml');
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error('expected the policy to be rejected');
    };
    expect(problem(`${perCustomer}\n      tokens: input`)).toMatch(/spec\.rateLimits\[0\]\.tokens: tokens: input picks what a token limit counts; it needs unit: tokens \(this limit counts requests\)$/);
    expect(problem(`${perCustomer}\n      unit: dollars`)).toMatch(/spec\.rateLimits\[0\]\.unit: Invalid option: expected one of "requests"\|"tokens"$/);
    expect(problem(`${tokensPerTeam}\n      tokens: cached`)).toMatch(/spec\.rateLimits\[0\]\.tokens: Invalid option: expected one of "total"\|"input"\|"output"$/);
  });
});

