/**
 * Errors at load, never per request: a budget or limit that cannot work is a policy error with its
 * position; whatever throws on a budget or rate-limit path at request time follows the rule's
 * failureMode, is counted and logged, and never reaches Envoy as an error.
 */
import { describe, expect, it } from 'vitest';
import { createBudgeter } from '../../src/governance/budgeting.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import type { Decision } from '../../src/governance/decision.js';
import { createGovernor } from '../../src/governance/governor.js';
import { createRateLimiter } from '../../src/governance/rate-limiting.js';
import { MAX_ID_LENGTH } from '../../src/limits/budget-account.js';
import type { BudgetLedger } from '../../src/limits/budget-ledger.js';
import { createMemoryBudgetLedger } from '../../src/limits/memory-budget-ledger.js';
import type { RateLimitStore } from '../../src/limits/rate-limit-store.js';
import { loadPolicyText } from '../../src/policy/policy-store.js';

const policyText = (budget: string) => `apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: load-errors }
spec:
  teams:
    ml-platform: {}
  pricing:
    defaults: false
    models:
      - { model: claude-sonnet-4-5, input: "3", output: "15" }
  budgets:
    - name: per-customer
${budget}
`;

const NOW = Date.UTC(2026, 11, 1, 12);

function governorWith(text: string, ledger: BudgetLedger = createMemoryBudgetLedger({ clock: () => NOW })) {
  const policy = loadPolicyText(text, 'budgets.yaml');
  const internal: Error[] = [];
  const backend: Error[] = [];
  const budgeter = createBudgeter({
    ledger,
    policy: () => policy,
    clock: () => NOW,
    observer: { event: () => undefined, account: () => undefined, backendFailed: (error) => backend.push(error), internalError: (error) => internal.push(error), overshoot: () => undefined },
  });
  let counter = 0;
  const governor = createGovernor({ engine: createDecisionEngine({ policy: () => policy, newDecisionId: () => `d-${++counter}` }), budgeter });
  const decide = (headers: Record<string, string>) =>
    Promise.resolve(
      governor.evaluate({
        headers: (name) => ({ 'x-genops-team': 'ml-platform', ...headers })[name],
        ai: { request: { api: 'anthropic.messages', model: 'claude-sonnet-4-5', stream: false, outputCap: 100, n: 1, inputEstimateTokens: 10, needsIncludeUsage: false } },
        bodyBytes: 100,
        settles: true,
      }),
    );
  return { decide, internal, backend, ledger };
}

describe('a rolling window that cannot be cut into its slots', () => {
  it('is a policy error at load, with the file, line and column', () => {
    const text = policyText('      key: [customerId]\n      amount: 1\n      period: 10s');
    expect(() => loadPolicyText(text, 'budgets.yaml')).toThrow(/budgets\.yaml:15:15: spec\.budgets\[0\]\.period: a rolling window is counted in 24 equal slots of whole milliseconds, and 10s \(10000 ms\) cannot be cut into them/);
  });

  it('loads a window that can, and serves requests with it', async () => {
    const { decide } = governorWith(policyText('      key: [customerId]\n      amount: 1\n      period: 24s'));
    expect(await decide({ 'x-genops-customer-id': 'acme' })).toMatchObject({ result: 'ALLOWED', budget: { entries: [{ heldNano: 1_800_000 }] } });
  });
});

describe('account ids longer than the ledger takes', () => {
  const long = (letter: string) => letter.repeat(128);
  const headersOf = (letter: string) => ({ 'x-genops-customer-id': long(letter), 'x-genops-project': long('p'), 'x-genops-feature': long('f'), 'x-genops-model': 'claude-sonnet-4-5', 'x-genops-environment': 'e'.repeat(32) });
  const text = policyText('      key: [customerId, project, feature, costCenter, environment, model]\n      amount: "0.004"\n      period: daily');

  it('are hashed: stable, readable at the head, one account per key', async () => {
    const { decide, internal, backend } = governorWith(text);
    const first = await decide({ ...headersOf('a'), 'x-genops-cost-center': 'c'.repeat(64) });
    expect(first.result).toBe('ALLOWED');
    const id = first.budget!.entries[0]!.account.id;
    expect(['per-customer', long('a'), long('p'), long('f'), 'c'.repeat(64), 'e'.repeat(32), 'claude-sonnet-4-5'].join('|').length).toBeGreaterThan(MAX_ID_LENGTH);
    expect(id.length).toBeLessThanOrEqual(MAX_ID_LENGTH);
    expect(id).toMatch(new RegExp(`^per-customer\\|${long('a')}\\|p+.*~sha256:[0-9a-f]{64}$`));
    // $0.004 holds two requests of $0.0018: the same long key lands on the same account and is refused the third time.
    const again = { ...headersOf('a'), 'x-genops-cost-center': 'c'.repeat(64) };
    expect((await decide(again)).budget!.entries[0]!.account.id).toBe(id);
    expect(await decide(again)).toMatchObject({ result: 'BLOCKED', reasonCode: 'BUDGET_EXCEEDED' });
    const other = await decide({ ...headersOf('b'), 'x-genops-cost-center': 'c'.repeat(64) });
    expect(other.result).toBe('ALLOWED');
    expect(other.budget!.entries[0]!.account.id).not.toBe(id);
    expect([...internal, ...backend]).toEqual([]);
  });
});

describe('an exception on a budget path', () => {
  const throwing = (how: 'sync' | 'async'): BudgetLedger => {
    const fail = () => {
      if (how === 'sync') throw new TypeError('cannot read properties of undefined');
      return Promise.reject(new TypeError('cannot read properties of undefined'));
    };
    return { reserve: fail, settle: fail, state: fail, renew: fail, close: async () => undefined };
  };

  for (const how of ['sync', 'async'] as const) {
    it(`(${how}) fails closed with 503 BUDGET_RESERVATION_FAILED when the budget says so, counted as an internal error`, async () => {
      const { decide, internal, backend } = governorWith(policyText('      key: [team]\n      amount: 1\n      period: daily\n      failureMode: closed'), throwing(how));
      const decision = await decide({});
      expect(decision).toMatchObject({ result: 'BLOCKED', reasonCode: 'BUDGET_RESERVATION_FAILED', httpStatus: 503, message: 'budget per-customer cannot be checked (internal error) and fails closed' });
      expect(internal.map((error) => error.message)).toEqual(['cannot read properties of undefined']);
      expect(backend).toEqual([]);
    });

    it(`(${how}) fails open: admitted without a hold, and settling never throws`, async () => {
      const { decide, internal } = governorWith(policyText('      key: [team]\n      amount: 1\n      period: daily\n      failureMode: open'), throwing(how));
      const decision = await decide({});
      expect(decision.result).toBe('ALLOWED');
      expect(decision.budget?.entries.map((entry) => entry.heldNano)).toEqual([0]);
      expect(internal).toHaveLength(1);
    });
  }
});

describe('an exception on a rate-limit path', () => {
  const limitsText = (failureMode: string) => `apiVersion: genops.ai/v1alpha1
kind: GovernancePolicy
metadata: { name: limits }
spec:
  teams: { ml-platform: {} }
  rateLimits:
    - { name: per-team, key: [team], capacity: 3, refill: { amount: 3, every: 60s }, failureMode: ${failureMode} }
`;
  for (const how of ['sync', 'async'] as const) {
    for (const failureMode of ['open', 'closed'] as const) {
      it(`(${how}) follows failureMode ${failureMode}, counted as an internal error`, async () => {
        const policy = loadPolicyText(limitsText(failureMode), 'limits.yaml');
        const bug = () => new TypeError('bucket table corrupted');
        const store: RateLimitStore = {
          take: () => (how === 'sync' ? (() => { throw bug(); })() : Promise.reject(bug())),
          charge: () => undefined,
          close: async () => undefined,
        } as unknown as RateLimitStore;
        const internal: Error[] = [];
        const rateLimiter = createRateLimiter({ store, policy: () => policy, observer: { limitChecked: () => undefined, backendFailed: () => undefined, internalError: (error) => internal.push(error) } });
        const governor = createGovernor({ engine: createDecisionEngine({ policy: () => policy }), rateLimiter });
        const decision: Decision = await Promise.resolve(governor.evaluate({ headers: (name) => ({ 'x-genops-team': 'ml-platform' })[name] }));
        if (failureMode === 'closed') expect(decision).toMatchObject({ result: 'BLOCKED', reasonCode: 'x_rate_limit_unavailable', httpStatus: 503 });
        else expect(decision.result).toBe('ALLOWED');
        expect(internal.map((error) => error.message)).toEqual(['bucket table corrupted']);
      });
    }
  }
});
