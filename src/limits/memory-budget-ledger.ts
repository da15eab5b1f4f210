import type { BudgetLedger } from './budget-ledger.js';

export interface MemoryBudgetLedgerOptions {
  /** Milliseconds since the epoch; injected so tests control time. */
  readonly clock: () => number;
  /** Hard cap on accounts kept; past it the least recently used account without live reservations goes first. Default 100,000. */
  readonly maxAccounts?: number;
  /** Hard cap on remembered settled reservation ids. Default 1,000,000. */
  readonly maxSettledIds?: number;
  /** Longest a settled id is remembered past its reservation's expiry. Default 24 h. */
  readonly settledRetentionMaxMs?: number;
}

export function createMemoryBudgetLedger(options: MemoryBudgetLedgerOptions): BudgetLedger {
  void options;
  throw new Error('not implemented yet');
}
