import type { BucketCheck, BucketOutcome, RateLimitStore, TakeResult } from './rate-limit-store.js';
import { BucketTable } from './bucket-table.js';
import { fullAtAfter, msUntil, tokensAt, wholeTokens, type BucketSpec } from './token-bucket.js';

export interface MemoryRateLimitStoreOptions {
  /** Milliseconds since the epoch; injected so tests control time. */
  readonly clock: () => number;
  /** Hard cap on live buckets; past it the least recently used bucket of the scope is dropped. */
  readonly maxBuckets?: number;
  /** How many of the least recently used buckets each call looks at for forgetting. */
  readonly sweepPerCall?: number;
}

export interface MemoryRateLimitStore extends RateLimitStore {
  take(checks: readonly BucketCheck[]): TakeResult;
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
 * - past `maxBuckets`, the least recently used bucket is dropped (that key
 *   starts again full).
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

  return {
    take(checks: readonly BucketCheck[]): TakeResult {
      const now = clock() - epoch;
      const tables = checks.map((check) => tableOf(check.scope));
      const available = checks.map((check, index) => tokensAt(check, tables[index]!.get(check.key), now));
      const admitted = checks.every((check, index) => check.shadow || available[index]! >= 1);
      const results = checks.map((check, index) => {
        const tokens = available[index]!;
        const conforming = tokens >= 1;
        if (!admitted || !conforming) return outcome(check, tokens, conforming);
        const table = tables[index]!;
        const left = tokens - 1;
        const before = table.size;
        table.set(check.key, fullAtAfter(check, left, now));
        size += table.size - before;
        if (size > maxBuckets && table.deleteOldest()) size--;
        return outcome(check, left, true);
      });
      for (const table of tables) forgetRefilled(table, now);
      return { admitted, buckets: results };
    },
    async close() {
      scopes.clear();
      size = 0;
    },
    size: () => size,
  };
}
