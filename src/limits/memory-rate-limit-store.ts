import { assertDebits, type BucketCheck, type BucketDebit, type BucketOutcome, type RateLimitStore, type TakeResult } from './rate-limit-store.js';
import { BucketTable } from './bucket-table.js';
import { admissionCost, fullAtAfter, lowestLevel, msUntil, tokensAt, wholeTokens, type BucketSpec } from './token-bucket.js';

export interface MemoryRateLimitStoreOptions {
  /** Milliseconds since the epoch; injected so tests control time. */
  readonly clock: () => number;
  /** Hard cap on live buckets; past it the least recently used bucket of the largest scope is dropped. */
  readonly maxBuckets?: number;
  /** How many of the least recently used buckets each call looks at for forgetting. */
  readonly sweepPerCall?: number;
}

export interface MemoryRateLimitStore extends RateLimitStore {
  take(checks: readonly BucketCheck[]): TakeResult;
  charge(debits: readonly BucketDebit[]): void;
  size(): number;
}

/**
 * Exact token buckets in memory: per scope (limit), a compact table from key
 * to the time the bucket is full again (see bucket-table.ts), in recency
 * order, so the least recently charged buckets sit at the head. Memory stays
 * bounded under a flood of distinct keys:
 * - each call forgets a few head buckets that have refilled (a full bucket is
 *   the same as no bucket, so no answer changes), a bounded amount of work on
 *   the hot path instead of a periodic sweep of the whole table;
 * - past `maxBuckets`, the least recently used bucket of the largest scope is
 *   dropped (that key starts again full).
 * Times are kept relative to the store's start, unrounded: a limit refilling
 * faster than one token a millisecond stays exact.
 */
export function createMemoryRateLimitStore(options: MemoryRateLimitStoreOptions): MemoryRateLimitStore {
  const { clock } = options;
  const maxBuckets = options.maxBuckets ?? 1_000_000;
  const sweepPerCall = options.sweepPerCall ?? 8;
  const epoch = clock();
  const scopes = new Map<string, BucketTable>();
  let size = 0;

  function forgetRefilled(buckets: BucketTable, now: number): void {
    const before = buckets.size;
    buckets.deleteOldestWhileAtMost(now, sweepPerCall);
    size -= before - buckets.size;
  }

  function outcome(spec: BucketSpec, tokens: number, conforming: boolean): BucketOutcome {
    return {
      conforming,
      remaining: wholeTokens(tokens),
      retryAfterMs: msUntil(spec, tokens, 1),
      resetMs: msUntil(spec, tokens, spec.capacity),
    };
  }

  function tableOf(scope: string): BucketTable {
    let table = scopes.get(scope);
    if (!table) {
      table = new BucketTable();
      scopes.set(scope, table);
    }
    return table;
  }

  /**
   * Stores the bucket's new full-again time. Past maxBuckets the least recently
   * used bucket of the largest scope goes: a flood of distinct customer ids
   * evicts customers, not the few per-team buckets (and their debt) of another limit.
   */
  function store(table: BucketTable, key: string, fullAt: number): void {
    const before = table.size;
    table.set(key, fullAt);
    size += table.size - before;
    if (size > maxBuckets && largestTable().deleteOldest()) size--;
  }

  function largestTable(): BucketTable {
    let largest: BucketTable | undefined;
    for (const table of scopes.values()) if (!largest || table.size > largest.size) largest = table;
    return largest!;
  }

  return {
    take(checks: readonly BucketCheck[]): TakeResult {
      const now = clock() - epoch;
      const tables = checks.map((check) => tableOf(check.scope));
      const available = checks.map((check, index) => tokensAt(check, tables[index]!.get(check.key), now));
      const admitted = checks.every((check, index) => check.shadow || available[index]! >= 1);
      const results = checks.map((check, index) => {
        const tokens = available[index]!;
        const conforming = tokens >= 1;
        const cost = admissionCost(check);
        if (!admitted || !conforming || cost === 0) return outcome(check, tokens, conforming);
        const left = tokens - cost;
        store(tables[index]!, check.key, fullAtAfter(check, left, now));
        return outcome(check, left, true);
      });
      for (const table of tables) forgetRefilled(table, now);
      return { admitted, buckets: results };
    },
    charge(debits: readonly BucketDebit[]): void {
      assertDebits(debits);
      const now = clock() - epoch;
      const touched = new Set<BucketTable>();
      for (const { check, amount } of debits) {
        if (amount === 0) continue;
        const table = tableOf(check.scope);
        const left = Math.max(lowestLevel(check), tokensAt(check, table.get(check.key), now) - amount);
        store(table, check.key, fullAtAfter(check, left, now));
        touched.add(table);
      }
      for (const table of touched) forgetRefilled(table, now);
    },
    async close() {
      scopes.clear();
      size = 0;
    },
    size: () => size,
  };
}
