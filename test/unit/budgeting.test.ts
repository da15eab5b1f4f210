import { describe, expect, it } from 'vitest';
import { GenopsError } from '../../src/errors/genops-error.js';
import { createBudgeter, type BudgetEventKind } from '../../src/governance/budgeting.js';
import { createDecisionEngine, type DecisionInput } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createUsageAccounting } from '../../src/governance/usage-accounting.js';
import { createMemoryBudgetLedger } from '../../src/limits/memory-budget-ledger.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';
import { periodWindow } from '../../src/policy/budget-periods.js';
import type { AiRequest } from '../../src/usage/request-body.js';

const POLICY = `apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: budgets }
spec:
  routes: { default: claude-sonnet, byTier: { standard: claude-haiku } }
  teams:
    ml-platform: {}
    frugal: { models: [claude-sonnet, claude-haiku] }
    no-haiku: { models: [claude-sonnet] }
  pricing:
    defaults: false
    version: test
    models:
      - { model: claude-sonnet-4-5, input: "3", output: "15" }
      - { model: claude-haiku-4-5, input: "1", output: "5" }
  budgets:
    - name: team-daily
      key: [team]
      amount: "0.10"
      period: daily
      timeZone: Europe/Berlin
      warnAt: 50
      downgrade: { at: 80, model: claude-haiku-4-5 }
      maxOutputTokens: 1000
`;

function setup(clockMs = Date.UTC(2026, 11, 1, 12)) {
  const policy = loadPolicyText(POLICY, 'budgets.yaml');
  let now = clockMs;
  let counter = 0;
  const engine = createDecisionEngine({ policy: () => policy, newDecisionId: () => `d-${++counter}` });
  const ledger = createMemoryBudgetLedger({ clock: () => now });
  const events: [string, BudgetEventKind][] = [];
  const overshoots: number[] = [];
  const budgeter = createBudgeter({
    ledger,
    policy: () => policy,
    clock: () => now,
    observer: { event: (budget, kind) => events.push([budget, kind]), account: () => undefined, backendFailed: () => undefined, overshoot: (_budget, _reserved, actual) => overshoots.push(actual) },
  });
  const governor = createGovernor({ engine, budgeter });
  const accounting = createUsageAccounting({ policy: () => policy });
  const request = (team: string, ai: Partial<AiRequest> = {}, bodyBytes = 400): Promise<ReturnType<typeof engine.decide>> => {
    const input: DecisionInput = {
      headers: (name) => ({ 'x-genops-team': team })[name],
      ai: { request: { api: 'anthropic.messages', model: 'claude-sonnet-4-5', stream: true, outputCap: 1000, n: 1, inputEstimateTokens: 100, needsIncludeUsage: false, ...ai } },
      bodyBytes,
      settles: true,
    };
    return Promise.resolve(governor.evaluate(input));
  };
  const settle = (decision: Awaited<ReturnType<typeof request>>, usage: { input: number; output: number } | 'error') =>
    budgeter.settle(decision, accounting.account({
      decision,
      startedAt: 0,
      report: usage === 'error' ? undefined : { usage: { ...usage, cachedInput: 0, cacheWrite: 0, reasoning: 0 }, modelServed: undefined, estimatedOutputTokens: 0, complete: true, providerError: undefined },
      upstreamStatus: usage === 'error' ? 500 : 200,
      outcome: usage === 'error' ? 'upstream_error' : 'completed',
    })!);
  return { policy, ledger, budgeter, request, settle, events, overshoots, advance: (ms: number) => (now += ms), now: () => now };
}

// One request: 400 bytes × $3/M + 1000 output × $15/M = $0.0012 + $0.015 = $0.0162 reserved.
const WORST = 16_200_000;

describe('budgets: reserve the worst case, settle the actual', () => {
  it('reserves input bound × input price + output cap × output price, and settles the real cost', async () => {
    const { request, settle, ledger } = setup();
    const decision = await request('ml-platform');
    expect(decision.result).toBe('ALLOWED');
    expect(decision.budget).toMatchObject({ worstCaseNano: WORST, entries: [{ name: 'team-daily', heldNano: WORST }] });
    const [account] = decision.budget!.entries;
    expect(await ledger.state([account!.account])).toEqual([{ spent: 0, reserved: WORST, limit: 100_000_000 }]);
    await settle(decision, { input: 120, output: 80 });
    // 120 × 3 + 80 × 15 = 360 + 1200 = 1560 µUSD
    expect(await ledger.state([account!.account])).toEqual([{ spent: 1_560_000, reserved: 0, limit: 100_000_000 }]);
    await settle(decision, { input: 120, output: 80 });
    expect((await ledger.state([account!.account]))[0]!.spent).toBe(1_560_000);
  });

  it('never lets concurrent requests reserve past the budget: exactly the affordable ones pass', async () => {
    const { request, events } = setup();
    const decisions = await Promise.all(Array.from({ length: 20 }, () => request('ml-platform', { model: 'claude-haiku-4-5' })));
    // claude-haiku: 400 × 1 + 1000 × 5 µUSD = 5400 µUSD; $0.10 affords 18.
    const allowed = decisions.filter((decision) => decision.result === 'ALLOWED');
    const refused = decisions.filter((decision) => decision.result === 'BLOCKED');
    expect(allowed).toHaveLength(18);
    expect(refused.map((decision) => decision.reasonCode)).toEqual(['BUDGET_EXCEEDED', 'BUDGET_EXCEEDED']);
    expect(refused[0]).toMatchObject({ httpStatus: 429 });
    expect(events.filter(([, kind]) => kind === 'reserved')).toHaveLength(18);
  });

  async function untilRefused(request: ReturnType<typeof setup>['request']) {
    for (let index = 0; index < 50; index++) {
      const decision = await request('ml-platform');
      if (decision.result === 'BLOCKED') return { decision, admitted: index };
    }
    throw new Error('never refused');
  }

  it('refuses with the amounts and the reset of the period in the time zone', async () => {
    const { request, now } = setup();
    const { decision: refused, admitted } = await untilRefused(request);
    // 5 at sonnet prices reach 81 %; past 80 % the downgrade reserves at haiku prices: 3 more fit.
    expect(admitted).toBe(8);
    expect(refused).toMatchObject({ result: 'BLOCKED', reasonCode: 'BUDGET_EXCEEDED', httpStatus: 429 });
    const window = periodWindow({ kind: 'calendar', unit: 'daily', timeZone: 'Europe/Berlin' }, now());
    expect(new Date(window.endMs).toISOString()).toBe('2026-12-01T23:00:00.000Z');
    expect(refused.budget?.status).toMatchObject({ name: 'team-daily', limitNano: 100_000_000, resetMs: window.endMs, retryAfterSeconds: Math.ceil((window.endMs - now()) / 1000) });
    // A downgraded body is rewritten: its input bound allows for the new model id and the fields the service may add.
    expect(refused.budget!.status!.consumedNano).toBe(5 * WORST + 3 * 5_544_000);
  });

  it('warns past warnAt, downgrades past downgrade.at to the cheaper model and its route', async () => {
    const { request, settle } = setup();
    const first = await request('frugal');
    await settle(first, { input: 1000, output: 2100 }); // $0.0345
    const warned = await request('frugal');
    expect(warned.budget?.status?.warned).toBe(true);
    expect(warned.budget?.downgradedTo).toBeUndefined();
    await settle(warned, { input: 1000, output: 3000 }); // + $0.048 = $0.0825 spent: 82.5 %
    const downgraded = await request('frugal');
    expect(downgraded).toMatchObject({ result: 'ALLOWED', route: 'claude-haiku', context: { model: 'claude-haiku-4-5' }, budget: { downgradedTo: 'claude-haiku-4-5', downgradedBy: 'team-daily' } });
    // Reserved at the cheaper model's price: (400 + 128 + 16 bytes of the rewritten body) × 1 + 1000 × 5 µUSD.
    expect(downgraded.budget!.worstCaseNano).toBe(5_544_000);
  });

  it('checks the cheaper model against the team like any model', async () => {
    const { request, settle } = setup();
    await settle(await request('no-haiku'), { input: 1000, output: 5000 }); // $0.078
    await settle(await request('no-haiku'), { input: 100, output: 100 }); // + $0.0018 = 79.8 %
    await settle(await request('no-haiku'), { input: 100, output: 100 }); // 81.6 %
    const refused = await request('no-haiku');
    expect(refused).toMatchObject({ result: 'BLOCKED', reasonCode: 'POLICY_DENY_MODEL' });
    expect(refused.message).toMatch(/^budget team-daily is 81% spent and downgrades to claude-haiku-4-5: team no-haiku may not use model claude-haiku-4-5$/);
  });

  it('sets an output cap the remaining budget can pay for when the request names none, at most maxOutputTokens', async () => {
    const { request, settle } = setup();
    const open = await request('ml-platform', { api: 'openai.chat', model: 'claude-sonnet-4-5', outputCap: undefined });
    expect(open.budget?.outputCap).toBe(1000);
    await settle(open, { input: 100, output: 5000 }); // $0.0753 spent (below the downgrade)
    // The body gains the cap: 400 + 128 bytes. $0.0247 left − 528 × $3/M = $0.023116 → 1541 tokens at $15/M; with n = 2, 770 each.
    const two = await request('ml-platform', { api: 'openai.chat', outputCap: undefined, n: 2 });
    expect(two.budget?.outputCap).toBe(770);
    expect(two.budget?.worstCaseNano).toBe(1_584_000 + 2 * 770 * 15_000);
  });

  it('releases the reservation on an upstream error, and counts an overshoot past the hold', async () => {
    const { request, settle, ledger, overshoots } = setup();
    const failed = await request('ml-platform');
    await settle(failed, 'error');
    expect(await ledger.state([failed.budget!.entries[0]!.account])).toEqual([{ spent: 0, reserved: 0, limit: 100_000_000 }]);
    const greedy = await request('ml-platform', { outputCap: 10 });
    await settle(greedy, { input: 100, output: 4000 });
    expect(overshoots).toEqual([60_300_000]);
  });

  it('starts a new day with a new account: yesterday\'s spend does not count', async () => {
    const { request, advance } = setup();
    expect((await untilRefused(request)).decision.reasonCode).toBe('BUDGET_EXCEEDED');
    advance(12 * 3600_000);
    expect((await request('ml-platform')).result).toBe('ALLOWED');
  });
});

describe('budget periods', () => {
  it('computes calendar windows in a time zone, DST included', () => {
    const berlin = (unit: 'daily' | 'weekly' | 'monthly', iso: string) => {
      const window = periodWindow({ kind: 'calendar', unit, timeZone: 'Europe/Berlin' }, Date.parse(iso));
      return [new Date(window.startMs).toISOString(), new Date(window.endMs).toISOString()];
    };
    expect(berlin('daily', '2026-03-29T12:00:00Z')).toEqual(['2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z']);
    expect(berlin('weekly', '2026-12-03T10:00:00Z')).toEqual(['2026-11-29T23:00:00.000Z', '2026-12-06T23:00:00.000Z']);
    expect(berlin('monthly', '2026-12-31T23:30:00Z')).toEqual(['2026-12-31T23:00:00.000Z', '2027-01-31T23:00:00.000Z']);
    const utc = periodWindow({ kind: 'calendar', unit: 'monthly', timeZone: 'UTC' }, Date.parse('2026-02-14T00:00:00Z'));
    expect([new Date(utc.startMs).toISOString(), new Date(utc.endMs).toISOString()]).toEqual(['2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z']);
  });

  it('refuses a budget with a bad time zone or thresholds out of order, with the file and position', () => {
    const bad = POLICY.replace('timeZone: Europe/Berlin', 'timeZone: Mars/Olympus').replace('warnAt: 50', 'warnAt: 90');
    expect(() => loadPolicyText(bad, 'budgets.yaml')).toThrow(/budgets\.yaml:\d+:\d+: spec\.budgets\[0\]\.timeZone: unknown time zone "Mars\/Olympus"/);
    expect(() => loadPolicyText(bad, 'budgets.yaml')).toThrow(/warnAt \(90%\) must not be above downgrade\.at \(80%\)/);
  });
});

describe('budgets when the ledger is unreachable', () => {
  function withDeadLedger(failureMode: 'open' | 'closed') {
    const policy = loadPolicyText(POLICY.replace('maxOutputTokens: 1000', `maxOutputTokens: 1000\n      failureMode: ${failureMode}`), 'budgets.yaml');
    const dead = { reserve: () => Promise.reject(new GenopsError('backend_unavailable', 'redis timed out')), settle: () => Promise.reject(new GenopsError('backend_unavailable', 'redis timed out')), state: () => Promise.reject(new GenopsError('backend_unavailable', 'redis timed out')), renew: () => Promise.reject(new GenopsError('backend_unavailable', 'redis timed out')), close: async () => undefined };
    const failures: string[] = [];
    const budgeter = createBudgeter({ ledger: dead, policy: () => policy, clock: () => Date.UTC(2026, 11, 1), observer: { event: () => undefined, account: () => undefined, backendFailed: (error) => failures.push(error.message), overshoot: () => undefined } });
    const engine = createDecisionEngine({ policy: () => policy, newDecisionId: () => 'd-1' });
    const governor = createGovernor({ engine, budgeter });
    const decide = () => Promise.resolve(governor.evaluate({ headers: (name) => ({ 'x-genops-team': 'ml-platform' })[name], ai: { request: { api: 'anthropic.messages', model: 'claude-sonnet-4-5', stream: false, outputCap: 100, n: 1, inputEstimateTokens: 10, needsIncludeUsage: false } }, bodyBytes: 100, settles: true }));
    return { decide, failures, budgeter };
  }

  it('fails closed with 503 BUDGET_RESERVATION_FAILED when the budget says so', async () => {
    const { decide, failures } = withDeadLedger('closed');
    expect(await decide()).toMatchObject({ result: 'BLOCKED', reasonCode: 'BUDGET_RESERVATION_FAILED', httpStatus: 503, message: 'budget team-daily cannot be checked (ledger unavailable) and fails closed' });
    expect(failures).toEqual(['redis timed out']);
  });

  it('fails open: admitted without a hold, and settling later never throws', async () => {
    const { decide, budgeter } = withDeadLedger('open');
    const decision = await decide();
    expect(decision.result).toBe('ALLOWED');
    expect(decision.budget?.entries.map((entry) => entry.heldNano)).toEqual([0]);
    const accounting = createUsageAccounting({ policy: () => loadPolicyText(POLICY, 'budgets.yaml') });
    const record = accounting.account({ decision, startedAt: 0, report: { usage: { input: 10, cachedInput: 0, cacheWrite: 0, output: 10, reasoning: 0 }, modelServed: undefined, estimatedOutputTokens: 0, complete: true, providerError: undefined }, upstreamStatus: 200, outcome: 'completed' })!;
    await expect(budgeter.settle(decision, record)).resolves.toBeUndefined();
  });
});

describe('budgets: limits of the arithmetic and dry-run budgets', () => {
  const withShadow = POLICY.replace('  budgets:\n', `  budgets:
    - name: shadow
      key: [team]
      amount: "0.000001"
      period: daily
      mode: dry-run
`);

  it('never lets a dry-run budget shorten or refuse a request', async () => {
    const policy = loadPolicyText(withShadow, 'budgets.yaml');
    const ledger = createMemoryBudgetLedger({ clock: () => Date.UTC(2026, 11, 1) });
    const budgeter = createBudgeter({ ledger, policy: () => policy, clock: () => Date.UTC(2026, 11, 1), observer: { event: () => undefined, account: () => undefined, backendFailed: () => undefined, overshoot: () => undefined } });
    const engine = createDecisionEngine({ policy: () => policy, newDecisionId: () => 'd-1' });
    const governor = createGovernor({ engine, budgeter });
    const decision = await Promise.resolve(governor.evaluate({ headers: (name) => ({ 'x-genops-team': 'ml-platform' })[name], ai: { request: { api: 'openai.chat', model: 'claude-sonnet-4-5', stream: false, outputCap: undefined, n: 1, inputEstimateTokens: 10, needsIncludeUsage: false } }, bodyBytes: 100, settles: true }));
    // The enforced budget ($0.10) sets the cap; the exhausted dry-run one only warns.
    expect(decision).toMatchObject({ result: 'WARNING', reasonCode: 'BUDGET_EXCEEDED', dryRun: true });
    expect(decision.budget?.outputCap).toBe(1000);
  });

  it('refuses an absurd output cap with BUDGET_EXCEEDED instead of failing', async () => {
    const { request } = setup();
    const decision = await request('ml-platform', { outputCap: 1_000_000_000_000 });
    expect(decision).toMatchObject({ result: 'BLOCKED', reasonCode: 'BUDGET_EXCEEDED', httpStatus: 429 });
  });

  it('refuses budget amounts the nano-dollar ledger cannot hold, at load time', () => {
    expect(() => loadPolicyText(POLICY.replace('amount: "0.10"', 'amount: 10000000'), 'budgets.yaml')).toThrow(/spec\.budgets\[0\]\.amount: must be between 0\.000000001 and 9000000 USD/);
  });
});

describe('budget periods where midnight does not exist', () => {
  it('starts the day at the first instant its wall clock shows the date (America/Santiago, DST at 00:00)', () => {
    // 2026-09-06: clocks in Santiago jump from 00:00 to 01:00 (UTC-4 → UTC-3).
    const window = periodWindow({ kind: 'calendar', unit: 'daily', timeZone: 'America/Santiago' }, Date.parse('2026-09-05T12:00:00Z'));
    expect(new Date(window.endMs).toISOString()).toBe('2026-09-06T04:00:00.000Z');
    expect(window.endMs).toBeGreaterThan(Date.parse('2026-09-05T12:00:00Z'));
  });
});
