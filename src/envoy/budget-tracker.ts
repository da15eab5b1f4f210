import type { BudgetEventKind, BudgetObserver } from '../governance/budgeting.js';
import type { AccountState, BudgetAccount, BudgetLedger } from '../limits/budget-ledger.js';
import type { CompiledPolicy } from '../policy/compiled-policy.js';
import { periodWindow } from '../policy/budget-periods.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { createBoundedLabel } from '../telemetry/bounded-label.js';
import { createCounterChildren } from '../telemetry/labelled-children.js';

/** Budget accounts with series of their own in /metrics and entries in /budgets; past it, a new account takes an idle one's place, or is counted, not listed. */
export const TRACKED_ACCOUNTS_LIMIT = 1000;

export interface BudgetTracker extends BudgetObserver {
  /** The /budgets document: every budget of the policy and the accounts this replica has seen, read fresh from the ledger. */
  snapshot(): Promise<BudgetSnapshot>;
}

export interface BudgetSnapshot {
  readonly budgets: readonly {
    readonly name: string;
    readonly amount_usd: number;
    readonly period: string;
    readonly key: readonly string[];
    readonly warn_at: number | undefined;
    readonly downgrade: { readonly at: number; readonly model: string } | undefined;
    readonly mode: string;
    readonly accounts: readonly { readonly key: string; readonly spent_usd: number; readonly reserved_usd: number; readonly limit_usd: number; readonly remaining_usd: number; readonly percent_used: number; readonly reset: string }[];
  }[];
  readonly untracked_accounts: number;
}

interface TrackedAccount {
  readonly budget: string;
  readonly key: string;
  account: BudgetAccount;
  /** The latest state seen, for the gauges (set when they are read). */
  state: AccountState | undefined;
}

/**
 * Turns budget events into metrics and log lines, and keeps the accounts this replica has seen
 * (bounded) for the gauges and the admin endpoint. Label values are budget names from the policy
 * and key values of accounts admitted by it, capped at TRACKED_ACCOUNTS_LIMIT.
 */
export function createBudgetTracker(options: { metrics: Metrics; logger: Logger; ledger: BudgetLedger; policy: () => CompiledPolicy; clock: () => number; accountIdleMs?: number }): BudgetTracker {
  const { metrics, logger, ledger, policy, clock } = options;
  const accounts = new Map<string, TrackedAccount>();
  // The gauges are set from the latest state when they are read (a scrape), not on every
  // reservation and settlement: three label hashes and objects per call saved (bench/RESULTS.md).
  const changed = new Set<TrackedAccount>();
  const setGauges = () => {
    for (const entry of changed) {
      if (!entry.state) continue;
      const labels = { budget: entry.budget, key: entry.key };
      metrics.budgetSpent.set(labels, entry.state.spent / 1e9);
      metrics.budgetReserved.set(labels, entry.state.reserved / 1e9);
      metrics.budgetLimit.set(labels, entry.state.limit / 1e9);
    }
    changed.clear();
  };
  for (const gauge of [metrics.budgetSpent, metrics.budgetReserved, metrics.budgetLimit]) (gauge as unknown as { collect?: () => void }).collect = setGauges;
  const countDecision = createCounterChildren(metrics.budgetDecisions);
  let untracked = 0;
  // The accounts in use keep their series: a new account past the cap takes the slot of one idle
  // for minutes (its gauges removed), else it is counted as untracked (bounded-label.ts).
  const slots = createBoundedLabel(TRACKED_ACCOUNTS_LIMIT, {
    overflow: '',
    now: clock,
    minIdleMs: options.accountIdleMs,
    onEvict(id) {
      const entry = accounts.get(id);
      accounts.delete(id);
      if (!entry) return;
      changed.delete(entry);
      const labels = { budget: entry.budget, key: entry.key };
      for (const gauge of [metrics.budgetSpent, metrics.budgetReserved, metrics.budgetLimit]) gauge.remove(labels);
      metrics.labelOverflow.inc({ label: 'budget_key', outcome: 'evicted' });
    },
    onOverflow() {
      untracked++;
      metrics.labelOverflow.inc({ label: 'budget_key', outcome: 'overflowed' });
    },
  });

  const track = (budget: string, account: BudgetAccount): TrackedAccount | undefined => {
    if (slots(account.id) === '') return undefined;
    const known = accounts.get(account.id);
    if (known) {
      known.account = account;
      return known;
    }
    const entry: TrackedAccount = { budget, key: account.id.slice(budget.length + 1), account, state: undefined };
    accounts.set(account.id, entry);
    return entry;
  };

  return {
    event(budget: string, kind: BudgetEventKind) {
      countDecision({ budget, outcome: kind });
    },
    account(budget: string, account: BudgetAccount, state: AccountState) {
      const tracked = track(budget, account);
      if (!tracked) return;
      tracked.state = state;
      changed.add(tracked);
    },
    backendFailed(error: Error) {
      metrics.backendErrors.inc({ backend: 'redis', kind: 'budget' });
      logger.warn({ event: 'backend_error', backend: 'budget_ledger', err: error.message }, 'budget ledger error; budgets follow their failure mode');
    },
    internalError(error: Error) {
      metrics.internalErrors.inc({ component: 'budget' });
      logger.error({ event: 'internal_error', component: 'budget', err: error.message, stack: error.stack }, 'budget error; budgets follow their failure mode');
    },
    overshoot(budget: string, reservedNano: number, actualNano: number, decisionId: string) {
      metrics.budgetOvershoot.inc({ budget });
      logger.warn({ event: 'budget_overshoot', budget, decision_id: decisionId, reserved_usd: reservedNano / 1e9, actual_usd: actualNano / 1e9 }, `budget ${budget}: a request cost more than its reservation (the provider ignored the output cap)`);
    },
    async snapshot() {
      const current = policy();
      const nowMs = clock();
      const budgets = [];
      for (const budget of current.budgets) {
        const own = [...accounts.values()].filter((entry) => entry.budget === budget.name);
        // Today's period for calendar budgets: an account seen last month starts afresh.
        const window = periodWindow(budget.period, nowMs);
        const fresh = own.map((entry) => ({
          ...entry,
          account: { ...entry.account, limit: budget.limitNano, period: entry.account.period.kind === 'calendar' ? { kind: 'calendar' as const, startMs: window.startMs, endMs: window.endMs } : entry.account.period },
        }));
        const states = fresh.length > 0 ? await ledger.state(fresh.map((entry) => entry.account)) : [];
        budgets.push({
          name: budget.name,
          amount_usd: budget.limitNano / 1e9,
          period: budget.periodText,
          key: budget.key,
          warn_at: budget.warnAt,
          downgrade: budget.downgrade,
          mode: budget.mode,
          accounts: fresh.map((entry, index) => {
            const state = states[index]!;
            const consumed = state.spent + state.reserved;
            return {
              key: entry.key,
              spent_usd: state.spent / 1e9,
              reserved_usd: state.reserved / 1e9,
              limit_usd: state.limit / 1e9,
              remaining_usd: Math.max(0, state.limit - consumed) / 1e9,
              percent_used: state.limit > 0 ? Math.round((consumed / state.limit) * 10_000) / 100 : 100,
              reset: new Date(window.endMs).toISOString(),
            };
          }),
        });
      }
      return { budgets, untracked_accounts: untracked };
    },
  };
}
