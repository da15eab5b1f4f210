import { describe, expect, it } from 'vitest';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createUsageAccounting, type ExchangeOutcome } from '../../src/governance/usage-accounting.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';
import type { UsageReport } from '../../src/usage/response-usage.js';

const policy = loadPolicyText(
  `apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: accounting }
spec:
  teams: { ml-platform: {} }
  pricing:
    defaults: false
    version: test-prices
    models:
      - { model: claude-sonnet-4-5, input: "3", cachedInput: "0.30", cacheWrite: "3.75", output: "15" }
      - { model: gpt-4o, input: "2.50", cachedInput: "1.25", output: "10" }
`,
  'accounting.yaml',
);
const engine = createDecisionEngine({ policy: () => policy, newDecisionId: () => 'd-1' });
const accounting = createUsageAccounting({ policy: () => policy });

function decision(model: string, inputEstimateTokens = 50) {
  return engine.decide({ headers: (name) => ({ 'x-genops-team': 'ml-platform', 'x-genops-project': 'p' })[name], ai: { request: { api: 'anthropic.messages', model, stream: true, outputCap: 1024, n: 1, inputEstimateTokens, needsIncludeUsage: false } } });
}
const report = (partial: Partial<UsageReport>): UsageReport => ({ usage: undefined, modelServed: undefined, estimatedOutputTokens: 0, complete: false, providerError: undefined, ...partial });
const account = (model: string, outcome: ExchangeOutcome, partial: Partial<UsageReport>, upstreamStatus = 200) => accounting.account({ decision: decision(model), startedAt: 0, report: report(partial), upstreamStatus, outcome })!;

describe('usage accounting', () => {
  it('takes the provider usage as it is and prices each token type exactly', () => {
    const record = account('claude-sonnet-4-5-20250929', 'completed', { complete: true, usage: { input: 2000, cachedInput: 1500, cacheWrite: 300, output: 400, reasoning: 0 }, modelServed: 'claude-sonnet-4-5-20250929' });
    // 200 × 3 + 1500 × 0.30 + 300 × 3.75 + 400 × 15 = 600 + 450 + 1125 + 6000 = 8175 µUSD
    expect(record).toMatchObject({ estimated: false, outcome: 'completed', modelRequested: 'claude-sonnet-4-5-20250929', pricedAs: 'claude-sonnet-4-5', priceTableVersion: 'test-prices', currency: 'USD', provider: 'anthropic' });
    expect(record.cost).toEqual({ pico: 8_175_000_000n, usd: '0.008175' });
  });

  it('prices the served snapshot through its family, and an unknown model as unpriced, never as free', () => {
    expect(account('gpt-4o', 'completed', { complete: true, modelServed: 'gpt-4o-2024-08-06', usage: { input: 1000, cachedInput: 0, cacheWrite: 0, output: 100, reasoning: 0 } }).cost?.usd).toBe('0.0035');
    const unpriced = account('mistral-large-2411', 'completed', { complete: true, usage: { input: 10, cachedInput: 0, cacheWrite: 0, output: 10, reasoning: 0 } });
    expect(unpriced.cost).toBeUndefined();
    expect(unpriced.pricedAs).toBeUndefined();
  });

  it('estimates a stream that ended without usage: input from the request, output from what was streamed, kept provider input', () => {
    const noUsage = account('claude-sonnet-4-5', 'ended_without_usage', { estimatedOutputTokens: 33 });
    expect(noUsage).toMatchObject({ estimated: true, tokens: { input: 50, output: 33, cachedInput: 0 } });
    const interrupted = account('claude-sonnet-4-5', 'interrupted', { estimatedOutputTokens: 120, usage: { input: 900, cachedInput: 100, cacheWrite: 0, output: 1, reasoning: 0 } });
    expect(interrupted).toMatchObject({ estimated: true, tokens: { input: 900, cachedInput: 100, output: 120 } });
  });

  it('charges nothing for an upstream error, and keeps its status', () => {
    const failed = account('gpt-4o', 'upstream_error', { complete: true, usage: { input: 10, cachedInput: 0, cacheWrite: 0, output: 10, reasoning: 0 } }, 503);
    expect(failed).toMatchObject({ outcome: 'upstream_error', upstreamStatus: 503, estimated: false, tokens: { input: 0, output: 0 } });
    expect(failed.cost?.pico).toBe(0n);
  });

  it('has no record for a decision that did not read an AI body', () => {
    const plain = engine.decide({ headers: (name) => ({ 'x-genops-team': 'ml-platform' })[name] });
    expect(accounting.account({ decision: plain, startedAt: 0, report: undefined, upstreamStatus: 200, outcome: 'completed' })).toBeUndefined();
  });
});
