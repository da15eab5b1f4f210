/**
 * A hold lives as long as its request: renewed while the exchange is open, released by its
 * settlement, and left to expire only when nobody renews it (a crashed replica).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createBudgeter } from '../../src/governance/budgeting.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createUsageAccounting } from '../../src/governance/usage-accounting.js';
import { createMemoryBudgetLedger } from '../../src/limits/memory-budget-ledger.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';

const POLICY = `apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: holds }
spec:
  teams: { ml-platform: {} }
  pricing:
    defaults: false
    models:
      - { model: claude-sonnet-4-5, input: "3", output: "15" }
  budgets:
    - { name: team-daily, key: [team], amount: "0.02", period: daily }
`;
const HOLD_TTL_MS = 3_000;
// 100 bytes × $3/M + 1000 × $15/M = $0.0153: one fits in $0.02, two do not.
const WORST = 15_300_000;

describe('budget holds live as long as their request', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function setup() {
    let now = Date.UTC(2026, 11, 1, 12);
    const policy = loadPolicyText(POLICY, 'holds.yaml');
    const ledger = createMemoryBudgetLedger({ clock: () => now });
    const renewals: string[] = [];
    const counted = { ...ledger, renew: (request: Parameters<typeof ledger.renew>[0]) => (renewals.push(request.reservationId), ledger.renew(request)) };
    const observer = { event: () => undefined, account: () => undefined, backendFailed: () => undefined, overshoot: () => undefined };
    const budgeter = createBudgeter({ ledger: counted, policy: () => policy, clock: () => now, observer, holdTtlMs: HOLD_TTL_MS });
    let id = 0;
    const governor = createGovernor({ engine: createDecisionEngine({ policy: () => policy, newDecisionId: () => `d-${++id}` }), budgeter });
    const decide = () =>
      Promise.resolve(governor.evaluate({
        headers: (name) => ({ 'x-genops-team': 'ml-platform' })[name],
        ai: { request: { api: 'anthropic.messages', model: 'claude-sonnet-4-5', stream: true, outputCap: 1000, n: 1, inputEstimateTokens: 10, needsIncludeUsage: false } },
        bodyBytes: 100,
        settles: true,
      }));
    /** Real time and the service clock move together, a second at a time. */
    const elapse = async (ms: number) => {
      for (let step = 0; step < ms; step += 1_000) {
        now += 1_000;
        await vi.advanceTimersByTimeAsync(1_000);
      }
    };
    const accounting = createUsageAccounting({ policy: () => policy });
    const settle = (decision: Awaited<ReturnType<typeof decide>>) =>
      budgeter.settle(decision, accounting.account({ decision, startedAt: 0, report: { usage: { input: 10, cachedInput: 0, cacheWrite: 0, output: 10, reasoning: 0 }, modelServed: undefined, estimatedOutputTokens: 0, complete: true, providerError: undefined }, upstreamStatus: 200, outcome: 'completed' })!);
    return { decide, elapse, settle, ledger, renewals };
  }

  it('renews an open request’s hold long past its lifetime, so nobody else can reserve that money', async () => {
    const { decide, elapse, settle, ledger, renewals } = setup();
    const stream = await decide();
    expect(stream.budget?.entries[0]?.heldNano).toBe(WORST);
    const account = stream.budget!.entries[0]!.account;
    // Twenty hold lifetimes later the stream is still open and still holds its worst case.
    await elapse(20 * HOLD_TTL_MS);
    expect(ledger.state([account])[0]).toMatchObject({ reserved: WORST });
    expect(await decide()).toMatchObject({ result: 'BLOCKED', reasonCode: 'BUDGET_EXCEEDED' });
    expect(renewals.length).toBeGreaterThanOrEqual(19);
    await settle(stream);
    expect(ledger.state([account])[0]).toMatchObject({ reserved: 0, spent: 180_000 });
    // Settled: never renewed again.
    const before = renewals.length;
    await elapse(3 * HOLD_TTL_MS);
    expect(renewals.length).toBe(before);
  });

  it('lets the hold of a request nobody renews (a crashed replica) expire after one lifetime', async () => {
    const { decide, elapse, ledger } = setup();
    const orphan = await decide();
    const account = orphan.budget!.entries[0]!.account;
    // Another replica's view: its hold expires unless this one renews; here the renewer is gone.
    vi.clearAllTimers();
    await elapse(HOLD_TTL_MS);
    expect(ledger.state([account])[0]).toMatchObject({ reserved: 0 });
    expect((await decide()).result).toBe('ALLOWED');
  });
});
