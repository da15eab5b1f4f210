/**
 * Budgets through the real Envoy (deploy/envoy/ext-proc.yaml) and the stub provider: reserved
 * before the call, settled after it, exact under concurrency, shared by two replicas through Redis.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  httpRequest,
  REPO_ROOT,
  startGovernanceStack,
  startStubLlm,
  STUB_BEHAVIOR_HEADER,
  STUB_USAGE_HEADER,
  type GovernanceStack,
  type StubLlm,
} from '../support/index.js';
import { disconnectMidResponse } from '../support/disconnect-mid-response.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';
import { genopsViolations } from '../telemetry/genops-conformance.js';
import { eventually, newTraceparent, scrape, tracingEnv } from '../telemetry/telemetry-support.js';

/** /budgets lists customer ids and their spend: it needs the operator's token (GENOPS_ADMIN_TOKEN). */
const ADMIN_TOKEN = 'budgets-admin-token-for-tests';

/**
 * claude-sonnet-4-5 at $3 / $15 per million tokens. A request body of B bytes with max_tokens 1000
 * reserves B × $3/M + 1000 × $15/M; the budget of $0.10 a day per project affords a few.
 */
function writePolicy(): { path: string; dir: string } {
  const policy = parse(readFileSync(join(REPO_ROOT, 'deploy/default-policy.yaml'), 'utf8')) as { spec: Record<string, unknown> };
  policy.spec.rateLimits = [];
  policy.spec.pricing = {
    defaults: false,
    version: 'e2e-budgets',
    models: [
      { model: 'claude-sonnet-4-5', input: '3', output: '15' },
      { model: 'claude-haiku-4-5', input: '1', output: '5' },
    ],
  };
  policy.spec.budgets = [
    // ml-platform: warn, downgrade, block.
    { name: 'project-daily', key: ['project'], selector: { teams: ['ml-platform'] }, amount: '0.10', period: 'daily', timeZone: 'UTC', warnAt: 50, downgrade: { at: 80, model: 'claude-haiku-4-5' }, maxOutputTokens: 1000 },
    // data-science: block only, so the number of affordable requests is plain arithmetic.
    { name: 'science-daily', key: ['project'], selector: { teams: ['data-science'] }, amount: '0.10', period: 'daily', timeZone: 'UTC' },
  ];
  const dir = mkdtempSync(join(tmpdir(), 'genops-budgets-'));
  const path = join(dir, 'policy.yaml');
  writeFileSync(path, stringify(policy));
  return { path, dir };
}

const body = (extra: Record<string, unknown> = {}) => JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'Hello' }], ...extra });
const BODY_BYTES = Buffer.byteLength(body());
const WORST_USD = (BODY_BYTES * 3 + 1000 * 15) / 1e6;
const headers = (project: string, extra: Record<string, string> = {}) => ({
  'content-type': 'application/json',
  'x-genops-team': 'ml-platform',
  'x-genops-customer-id': `c-${randomUUID().slice(0, 8)}`,
  'x-genops-project': project,
  ...extra,
});

describe('budgets through the real Envoy (ext_proc)', () => {
  let llm: StubLlm;
  let stack: GovernanceStack;
  let receiver: OtlpReceiver;
  let dir: string;
  beforeAll(async () => {
    const policy = writePolicy();
    dir = policy.dir;
    receiver = await startOtlpReceiver();
    llm = await startStubLlm({ chunkDelayMs: 100 });
    stack = await startGovernanceStack({ mode: 'ext-proc', upstreamPort: llm.port, policyPath: policy.path, serviceEnv: { ...tracingEnv(receiver.endpoint), GENOPS_ADMIN_TOKEN: ADMIN_TOKEN } });
  });
  afterAll(async () => {
    await stack?.stop();
    await llm?.stop();
    await receiver?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const send = (project: string, extra: Record<string, string> = {}, requestBody = body()) =>
    httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: headers(project, extra), body: requestBody });

  it('lets exactly the affordable ones of many concurrent streamed requests through, and refuses the rest with 429 BUDGET_EXCEEDED', async () => {
    const project = `conc-${randomUUID().slice(0, 6)}`;
    // Streams still running hold their reservations: none of them can spend what another reserved.
    const responses = await Promise.all(Array.from({ length: 12 }, () => send(project, { 'x-genops-team': 'data-science', [STUB_USAGE_HEADER]: JSON.stringify({ input: 10, output: 10 }) })));
    const passed = responses.filter((response) => response.status === 200);
    const refused = responses.filter((response) => response.status === 429);
    expect(passed.length).toBe(Math.floor(0.1 / WORST_USD));
    expect(responses.filter((response) => response.status !== 200 && response.status !== 429).map((response) => `${response.status} ${response.body}`)).toEqual([]);
    const denial = JSON.parse(refused[0]!.body) as Record<string, unknown>;
    expect(denial).toMatchObject({ error: 'too_many_requests', reason_code: 'BUDGET_EXCEEDED', budget: 'science-daily', limit: 0.1, currency: 'USD' });
    expect(denial.consumed).toBeGreaterThan(0.1 - WORST_USD);
    expect(Date.parse(String(denial.reset_date))).toBeGreaterThan(Date.now());
    expect(Number(refused[0]!.headers['retry-after'])).toBeGreaterThan(0);
    // Settled: each passed request cost 10 × 3 + 10 × 15 µUSD; what was reserved beyond that is free again.
    const budgets = await eventually(async () => {
      const document = (await (await fetch(`${stack.service.adminUrl}/budgets`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { budgets: { name: string; accounts: { key: string; spent_usd: number; reserved_usd: number }[] }[] };
      const account = document.budgets.find((budget) => budget.name === 'science-daily')!.accounts.find((entry) => entry.key === project);
      return account && account.reserved_usd === 0 ? account : undefined;
    }, 'the reservations to be settled');
    expect(budgets.spent_usd).toBeCloseTo((passed.length * 180) / 1e6, 9);
  });

  it('warns past 50 % with X-Budget-Warning, then downgrades past 80 % to the cheaper model the provider really receives', async () => {
    const project = `warn-${randomUUID().slice(0, 6)}`;
    // Each call really costs $0.018 (1000 tokens in, 1000 out at sonnet prices): 18 % of the budget.
    const usage = { [STUB_USAGE_HEADER]: JSON.stringify({ input: 1000, output: 1000 }) };
    const warnings: (string | undefined)[] = [];
    for (let call = 1; call <= 5; call++) {
      const response = await send(project, usage);
      expect(response.status, response.body).toBe(200);
      warnings.push(response.headers['x-budget-warning'] as string | undefined);
      expect(response.headers['x-genops-model-served']).toBeUndefined();
    }
    // Spent before each call plus its reservation: 15 %, 33 %, 51 %, 69 %, 87 %.
    expect(warnings.map((warning) => warning !== undefined)).toEqual([false, false, true, true, true]);
    expect(warnings[2]).toMatch(/^"project-daily";remaining=0\.\d+;limit=0\.1;currency="USD";reset="\d{4}-\d\d-\d\dT00:00:00\.000Z"$/);
    // 90 % spent: past the downgrade threshold.
    const testId = randomUUID();
    const downgraded = await send(project, { ...usage, 'x-test-id': testId });
    expect(downgraded.status, downgraded.body).toBe(200);
    const [received] = llm.received(testId);
    expect(JSON.parse(received!.body).model).toBe('claude-haiku-4-5');
    expect(received!.headers['x-genops-route']).toBe('claude-haiku');
    expect(received!.headers['x-genops-model']).toBe('claude-haiku-4-5');
    // One round trip (FULL_DUPLEX_STREAMED): the new body goes on chunked, with no content-length to go stale.
    expect([received!.headers['content-length'], received!.headers['transfer-encoding']]).toEqual([undefined, 'chunked']);
    expect(downgraded.headers['x-genops-model-served']).toBe('claude-haiku-4-5');
    const record = await eventually(() => stack.service.logs().find((line) => line.event === 'usage' && line.decision_id === downgraded.headers['x-genops-decision-id']), 'the usage record');
    expect(record).toMatchObject({ model_requested: 'claude-sonnet-4-5', model_served: 'claude-haiku-4-5', cost: '0.006' });
  });

  it('refunds an upstream 5xx: the reservation is released, nothing is spent', async () => {
    const project = `refund-${randomUUID().slice(0, 6)}`;
    const failed = await send(project, { [STUB_BEHAVIOR_HEADER]: 'status=503' });
    expect(failed.status).toBe(503);
    const account = await eventually(async () => {
      const document = (await (await fetch(`${stack.service.adminUrl}/budgets`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { budgets: { accounts: { key: string; spent_usd: number; reserved_usd: number }[] }[] };
      const entry = document.budgets.flatMap((budget) => budget.accounts).find((candidate) => candidate.key === project);
      return entry && entry.reserved_usd === 0 ? entry : undefined;
    }, 'the release');
    expect(account.spent_usd).toBe(0);
  });

  it('charges a stream the client cancels its hold: its usage is unknown (unknownUsage: hold, the default)', async () => {
    const project = `cancel-${randomUUID().slice(0, 6)}`;
    await disconnectMidResponse(`${stack.url}/v1/messages`, { headers: headers(project, { [STUB_USAGE_HEADER]: JSON.stringify({ input: 40, output: 900 }) }), body: body() });
    const account = await eventually(async () => {
      const document = (await (await fetch(`${stack.service.adminUrl}/budgets`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { budgets: { accounts: { key: string; spent_usd: number; reserved_usd: number }[] }[] };
      const entry = document.budgets.flatMap((budget) => budget.accounts).find((candidate) => candidate.key === project);
      return entry && entry.reserved_usd === 0 && entry.spent_usd > 0 ? entry : undefined;
    }, 'the cancelled stream to be settled', 15_000);
    // The provider may bill all it was allowed (message_start's 40 input tokens, and up to the 1000-token cap): the hold.
    expect(account.spent_usd).toBeCloseTo(WORST_USD, 9);
    const record = await eventually(() => stack.service.logs().find((line) => line.event === 'usage' && line.project === project), 'the usage record');
    expect(record).toMatchObject({ estimated: true, outcome: 'interrupted' });
  });

  it('records the reservation on the decision span and its reconciliation on the usage span, GenOps-conformant', async () => {
    const trace = newTraceparent();
    const response = await send(`span-${randomUUID().slice(0, 6)}`, { traceparent: trace.traceparent, [STUB_USAGE_HEADER]: JSON.stringify({ input: 100, output: 200 }) });
    expect(response.status).toBe(200);
    const spans = await receiver.waitForSpans((span) => span.traceId === trace.traceId, { count: 2 });
    const decision = spans.find((span) => span.name === 'genops.policy.evaluate')!;
    const usage = spans.find((span) => span.name === 'genops.usage')!;
    expect(decision.attributes).toMatchObject({ 'genops.budget.name': 'project-daily', 'genops.budget.allocated': 0.1, 'genops.budget.period': 'daily (UTC)', 'genops.accounting.unit': 'USD', 'genops.accounting.reserved': WORST_USD });
    expect(decision.events.map((event) => event.name)).toEqual(['genops.policy.evaluated', 'genops.budget.reservation']);
    // 100 × $3/M + 200 × $15/M = $0.0033
    expect(usage.attributes).toMatchObject({ 'genops.accounting.reserved': WORST_USD, 'genops.accounting.actual': 0.0033, 'genops.accounting.unit': 'USD' });
    expect(usage.events.map((event) => event.name)).toEqual(['genops.budget.reservation', 'genops.budget.reconciliation']);
    expect(spans.flatMap(genopsViolations)).toEqual([]);
  });

  it('exposes spent, reserved and limit per budget key in /metrics', async () => {
    const metrics = await scrape(stack.service.adminUrl);
    expect(metrics.find('genops_budget_limit_usd', { budget: 'project-daily' }).every((sample) => sample.value === 0.1)).toBe(true);
    expect(metrics.value('genops_budget_decisions_total', { budget: 'science-daily', outcome: 'blocked' })).toBeGreaterThan(0);
    expect(metrics.value('genops_budget_decisions_total', { budget: 'project-daily', outcome: 'warned' })).toBeGreaterThan(0);
    expect(metrics.find('genops_budget_spent_usd', { budget: 'project-daily' }).length).toBeGreaterThan(0);
    expect(metrics.value('genops_budget_decisions_total', { budget: 'project-daily', outcome: 'downgraded' })).toBeGreaterThan(0);
  });
});

describe('budgets shared by two replicas through Redis', () => {
  let llm: StubLlm;
  let redis: RunningRedis;
  let stacks: GovernanceStack[] = [];
  let dir: string;
  beforeAll(async () => {
    const policy = writePolicy();
    dir = policy.dir;
    llm = await startStubLlm({ chunkDelayMs: 100 });
    redis = await startRedis();
    stacks = await Promise.all([0, 1].map(() => startGovernanceStack({ mode: 'ext-proc', upstreamPort: llm.port, policyPath: policy.path, serviceEnv: { GENOPS_REDIS_URL: redis.url } })));
    // Until a replica's Redis connection is up its budgets fail open (no hold): wait until each one reserves.
    for (const stack of stacks) {
      await eventually(async () => {
        await httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: headers(`warm-${randomUUID().slice(0, 6)}`, { 'x-genops-team': 'data-science' }), body: body() });
        return (await scrape(stack.service.adminUrl)).value('genops_budget_decisions_total', { budget: 'science-daily', outcome: 'reserved' }) > 0 || undefined;
      }, 'the replica to reserve through Redis');
    }
  });
  afterAll(async () => {
    for (const stack of stacks) await stack.stop();
    await redis?.stop();
    await llm?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('never overspends together: concurrent requests through both replicas admit only what the budget affords', async () => {
    const project = `shared-${randomUUID().slice(0, 6)}`;
    const responses = await Promise.all(
      Array.from({ length: 12 }, (_, index) =>
        httpRequest(`${stacks[index % 2]!.url}/v1/messages`, { method: 'POST', headers: headers(project, { 'x-genops-team': 'data-science', [STUB_USAGE_HEADER]: JSON.stringify({ input: 10, output: 10 }) }), body: body() }),
      ),
    );
    const passed = responses.filter((response) => response.status === 200).length;
    expect(responses.filter((response) => response.status !== 200 && response.status !== 429).map((response) => `${response.status} ${response.body}`)).toEqual([]);
    expect(passed).toBe(Math.floor(0.1 / WORST_USD));
    expect(responses.filter((response) => response.status === 429)).toHaveLength(12 - passed);
  });
});

describe('a budget period rolls over (the service clock injected a few seconds before midnight UTC)', () => {
  let llm: StubLlm;
  let stack: GovernanceStack;
  let dir: string;
  let offsetMs: number;
  beforeAll(async () => {
    const policy = writePolicy();
    dir = policy.dir;
    llm = await startStubLlm({ chunkDelayMs: 5 });
    const now = Date.now();
    const midnight = Math.ceil(now / 86_400_000) * 86_400_000;
    // The service believes it is 6 s before midnight UTC once it is up.
    offsetMs = midnight - now - 6_000;
    stack = await startGovernanceStack({ mode: 'ext-proc', upstreamPort: llm.port, policyPath: policy.path, serviceEnv: { GENOPS_CLOCK_OFFSET_MS: String(offsetMs) } });
  });
  afterAll(async () => {
    await stack?.stop();
    await llm?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses once the day is spent, with Retry-After to midnight, and admits again in the new day', async () => {
    const project = `day-${randomUUID().slice(0, 6)}`;
    // Each call costs 100 × $3/M + 1000 × $15/M = $0.0153 (within its reservation): six spend $0.0918.
    const send = () => httpRequest(`${stack.url}/v1/messages`, { method: 'POST', headers: headers(project, { 'x-genops-team': 'data-science', [STUB_USAGE_HEADER]: JSON.stringify({ input: 100, output: 1000 }) }), body: body() });
    for (let call = 0; call < 6; call++) expect((await send()).status).toBe(200);
    const refused = await send();
    expect(refused.status, refused.body).toBe(429);
    const denial = JSON.parse(refused.body) as { reset_date: string };
    const resetMs = Date.parse(denial.reset_date);
    expect(resetMs % 86_400_000).toBe(0);
    const serviceNow = Date.now() + offsetMs;
    // Seconds to the service's midnight, read at decision time (a moment before serviceNow).
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(Math.max(1, Math.ceil((resetMs - serviceNow) / 1000)));
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil((resetMs - serviceNow) / 1000) + 1);
    expect(retryAfter).toBeLessThanOrEqual(7);
    // Wait for the service's midnight: a new period is a new account.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, resetMs - serviceNow) + 250));
    const nextDay = await send();
    expect(nextDay.status, nextDay.body).toBe(200);
  });
});
