/**
 * Budget account gauges are capped at TRACKED_ACCOUNTS_LIMIT: past it, a new account takes the
 * slot of one idle for a while, so the accounts spending now are the ones
 * GenopsMeshBudgetNearlySpent (genops_budget_spent_usd / genops_budget_limit_usd) can see.
 */
import { describe, expect, it } from 'vitest';
import { createBudgetTracker, TRACKED_ACCOUNTS_LIMIT } from '../../src/envoy/budget-tracker.js';
import type { BudgetLedger } from '../../src/limits/budget-ledger.js';
import type { CompiledPolicy } from '../../src/policy/compiled-policy.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';

const MINUTE = 60_000;

describe('budget account gauges past the cap', () => {
  it('show later accounts once earlier ones are idle; while all are in use the newcomer is counted as untracked', async () => {
    let now = 0;
    const metrics = createMetrics({ defaultMetrics: false });
    const tracker = createBudgetTracker({
      metrics,
      logger: createLogger({ level: 'silent' }),
      ledger: {} as BudgetLedger,
      policy: () => ({ budgets: [] }) as unknown as CompiledPolicy,
      clock: () => now,
      accountIdleMs: 5 * MINUTE,
    });
    const account = (customer: string) => ({ id: `per-customer|${customer}`, limit: 10e9, period: { kind: 'calendar' as const, startMs: 0, endMs: 1e12 } });
    const spend = (customer: string, usd: number) => tracker.account('per-customer', account(customer), { spent: usd * 1e9, reserved: 0, limit: 10e9 });
    const gauge = async () => new Map((await metrics.budgetSpent.get()).values.map(({ labels, value }) => [labels.key as string, value]));

    for (let index = 0; index < TRACKED_ACCOUNTS_LIMIT; index++) spend(`early-${index}`, 1);
    spend('late-0', 9.5);
    expect((await gauge()).has('late-0')).toBe(false);
    expect((await metrics.labelOverflow.get()).values).toContainEqual({ labels: { label: 'budget_key', outcome: 'overflowed' }, value: 1 });

    now += 3 * MINUTE;
    spend('early-0', 2); // still spending: keeps its series
    now += 3 * MINUTE;
    spend('late-0', 9.5);
    const after = await gauge();
    expect(after.get('late-0')).toBe(9.5);
    expect(after.get('early-0')).toBe(2);
    expect(after.has('early-1')).toBe(false);
    expect(after.size).toBe(TRACKED_ACCOUNTS_LIMIT);
    expect((await metrics.budgetLimit.get()).values.some(({ labels }) => labels.key === 'early-1')).toBe(false);
    expect((await metrics.labelOverflow.get()).values).toContainEqual({ labels: { label: 'budget_key', outcome: 'evicted' }, value: 1 });
  });
});
