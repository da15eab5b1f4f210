import type { BudgetAccount } from '../limits/budget-ledger.js';

/** What a budget did to one request, for headers, the deny body, spans and metrics. */
export interface BudgetStatus {
  readonly name: string;
  readonly periodText: string;
  readonly limitNano: number;
  /** Spent plus reserved, this request's reservation included. */
  readonly consumedNano: number;
  readonly remainingNano: number;
  /** When the period resets (calendar) or the oldest spend drops out (rolling). */
  readonly resetMs: number;
  readonly warned: boolean;
  /** Seconds until the reset, on a refusal (Retry-After). */
  readonly retryAfterSeconds?: number | undefined;
}

export interface ReservedBudget {
  readonly name: string;
  readonly account: BudgetAccount;
  /** nano-USD held for the request; 0 when nothing is held (dry-run, or the ledger unreachable and the budget fails open). */
  readonly heldNano: number;
  /** The budget's unknownUsage when the request was admitted. */
  readonly unknownUsage: 'hold' | 'estimate';
}

/** Set on an allowed AI request that budgets select. */
export interface BudgetOutcome {
  readonly reservationId: string;
  readonly entries: readonly ReservedBudget[];
  /** The worst case reserved: input bound × input price + output cap × output price (+ server tools), nano-USD. */
  readonly worstCaseNano: number;
  /** Of which the server-tool calls' prices at the request's maximum calls (charged when the response does not count them). */
  readonly toolsNano?: number | undefined;
  /** The tightest budget after reserving. */
  readonly status: BudgetStatus | undefined;
  /** The output cap the service sets in the forwarded body (the request named none). */
  readonly outputCap: number | undefined;
  /** The cheaper model a downgrade threshold sent the request to. */
  readonly downgradedTo: string | undefined;
  readonly downgradedBy: string | undefined;
}
