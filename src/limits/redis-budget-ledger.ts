import type { Redis } from 'ioredis';
import type { BudgetLedger } from './budget-ledger.js';

export interface RedisBudgetLedgerOptions {
  /** A connection from connectRedis (command timeout, no offline queue). */
  readonly client: Redis;
  /** Milliseconds since the epoch; the replica's clock, passed to the scripts. */
  readonly clock: () => number;
  /** Prefix of every key, also their hash tag. Default "genops:budget". */
  readonly keyPrefix?: string;
  /** Longest a settled id is remembered past its reservation's expiry. Default 24 h. */
  readonly settledRetentionMaxMs?: number;
}

export function createRedisBudgetLedger(options: RedisBudgetLedgerOptions): BudgetLedger {
  void options;
  throw new Error('not implemented yet');
}
