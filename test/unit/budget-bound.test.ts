/**
 * The bound: what a request reserves covers everything the provider can bill for it, and what it
 * is charged when the provider never says is its hold.
 */
import { describe, expect, it } from 'vitest';
import { createBudgeter } from '../../src/governance/budgeting.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createUsageAccounting, exchangeOutcome, type ExchangeOutcome } from '../../src/governance/usage-accounting.js';
import { createMemoryBudgetLedger } from '../../src/limits/memory-budget-ledger.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';
import type { AiRequest } from '../../src/usage/request-body.js';
import type { UsageReport } from '../../src/usage/response-usage.js';

const NOW = Date.UTC(2026, 11, 1, 12);

export function budgetSetup(options: { budgetExtra?: string; pricing?: string; amount?: string } = {}) {
  const text = `apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: bound }
spec:
  teams: { ml-platform: {} }
  pricing:
${options.pricing ?? `    defaults: false
    models:
      - { model: claude-sonnet-4-5, input: "3", output: "15" }`}
  budgets:
    - name: team-daily
      key: [team]
      amount: "${options.amount ?? '1'}"
      period: daily${options.budgetExtra ?? ''}
`;
  const policy = loadPolicyText(text, 'bound.yaml');
  const ledger = createMemoryBudgetLedger({ clock: () => NOW });
  const overshoots: number[] = [];
  const budgeter = createBudgeter({ ledger, policy: () => policy, clock: () => NOW, observer: { event: () => undefined, account: () => undefined, backendFailed: () => undefined, overshoot: (_name, _held, actual) => overshoots.push(actual) } });
  let id = 0;
  const governor = createGovernor({ engine: createDecisionEngine({ policy: () => policy, newDecisionId: () => `d-${++id}` }), budgeter });
  const decide = (ai: Partial<AiRequest> = {}, bodyBytes = 100) =>
    Promise.resolve(governor.evaluate({
      headers: (name) => ({ 'x-genops-team': 'ml-platform' })[name],
      ai: { request: { api: 'anthropic.messages', model: 'claude-sonnet-4-5', stream: true, outputCap: 1000, n: 1, inputEstimateTokens: 10, needsIncludeUsage: false, ...ai } },
      bodyBytes,
      settles: true,
    }));
  const accounting = createUsageAccounting({ policy: () => policy });
  const finish = async (decision: Awaited<ReturnType<typeof decide>>, outcome: ExchangeOutcome, report: Partial<UsageReport>, upstreamStatus: number | undefined = 200) => {
    await budgeter.settle(decision, accounting.account({ decision, startedAt: 0, report: { usage: undefined, modelServed: undefined, estimatedOutputTokens: 0, complete: false, providerError: undefined, ...report }, upstreamStatus, outcome })!);
    return ledger.state([decision.budget!.entries[0]!.account])[0]!;
  };
  return { decide, finish, overshoots, policy };
}

// 100 bytes × $3/M + 1000 × $15/M = $0.0153
const WORST = 15_300_000;

describe('unknown usage settles at the hold', () => {
  it('charges a stream cut after its first delta (a reasoning model’s hidden tokens never stream) its whole hold by default', async () => {
    const { decide, finish } = budgetSetup();
    const decision = await decide();
    expect(await finish(decision, 'interrupted', { estimatedOutputTokens: 1 })).toEqual({ spent: WORST, reserved: 0, limit: 1e9 });
  });

  it('charges a stream that ended without usage, and one that never answered, their hold', async () => {
    const { decide, finish } = budgetSetup();
    expect((await finish(await decide(), 'ended_without_usage', { estimatedOutputTokens: 5 })).spent).toBe(WORST);
    expect((await finish(await decide(), 'no_response', {}, undefined)).spent).toBe(2 * WORST);
  });

  it('charges the estimate instead when the budget says unknownUsage: estimate', async () => {
    const { decide, finish } = budgetSetup({ budgetExtra: '\n      unknownUsage: estimate' });
    // 10 input tokens × $3/M + 1 output × $15/M = 45 nano-USD … × 1000
    expect((await finish(await decide(), 'interrupted', { estimatedOutputTokens: 1 })).spent).toBe(45_000);
  });

  it('charges the provider’s own usage when it came, and nothing when the provider refused', async () => {
    const { decide, finish } = budgetSetup();
    expect((await finish(await decide(), 'completed', { complete: true, usage: { input: 10, cachedInput: 0, cacheWrite: 0, output: 10, reasoning: 0 } })).spent).toBe(180_000);
    expect((await finish(await decide(), 'upstream_error', {}, 429)).spent).toBe(180_000);
  });
});

describe('Envoy’s own local replies are not the provider refusing', () => {
  it('tells a local reply from an upstream answer by the router’s upstream mark', () => {
    expect(exchangeOutcome('completed', { status: 504, fromUpstream: false, usageComplete: false })).toBe('local_reply');
    expect(exchangeOutcome('completed', { status: 503, fromUpstream: false, usageComplete: false })).toBe('local_reply');
    expect(exchangeOutcome('completed', { status: 503, fromUpstream: true, usageComplete: false })).toBe('upstream_error');
    expect(exchangeOutcome('completed', { status: 200, fromUpstream: true, usageComplete: false })).toBe('ended_without_usage');
    expect(exchangeOutcome('interrupted', { status: 200, fromUpstream: true, usageComplete: false })).toBe('interrupted');
    expect(exchangeOutcome('completed', { status: 200, fromUpstream: true, usageComplete: true })).toBe('completed');
  });

  it('charges a local 504 (an idle timeout after the provider took the request) its hold, never releases it', async () => {
    const { decide, finish } = budgetSetup();
    expect(await finish(await decide(), 'local_reply', {}, 504)).toEqual({ spent: WORST, reserved: 0, limit: 1e9 });
  });
});
