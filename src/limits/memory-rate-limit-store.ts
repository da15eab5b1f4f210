import type { BucketCheck, BucketOutcome, RateLimitStore, TakeResult } from './rate-limit-store.js';
import { msUntil, tokensAt, type BucketSpec } from './token-bucket.js';

export interface MemoryRateLimitStoreOptions {
  /** Milliseconds since the epoch; injected so tests control time. */
  readonly clock: () => number;
  /** Hard cap on live buckets; past it the least recently used bucket is dropped. */
  readonly maxBuckets?: number;
  /** How often full buckets (equivalent to absent ones) are swept out. */
  readonly sweepIntervalMs?: number;
}

interface Bucket {
  tokens: number;
  updatedAtMs: number;
  /** When the bucket is full again and so may be forgotten without changing any answer. */
  fullAtMs: number;
}

/**
 * Exact token buckets in a Map. Memory stays bounded under a flood of
 * distinct keys two ways: a bucket that has refilled to capacity carries no
 * information and is swept out, and beyond `maxBuckets` the least recently
 * used bucket is evicted (Map order is kept as recency by re-inserting).
 */
export interface MemoryRateLimitStore extends RateLimitStore {
  take(checks: readonly BucketCheck[]): TakeResult;
  size(): number;
  sweep(): void;
}

export function createMemoryRateLimitStore(options: MemoryRateLimitStoreOptions): MemoryRateLimitStore {
  const { clock } = options;
  const maxBuckets = options.maxBuckets ?? 1_000_000;
  const sweepIntervalMs = options.sweepIntervalMs ?? 10_000;
  const buckets = new Map<string, Bucket>();
  let nextSweepAtMs = clock() + sweepIntervalMs;

  function sweep(): void {
    const now = clock();
    for (const [key, bucket] of buckets) if (bucket.fullAtMs <= now) buckets.delete(key);
    nextSweepAtMs = now + sweepIntervalMs;
  }

  function outcome(spec: BucketSpec, tokens: number, conforming: boolean): BucketOutcome {
    return {
      conforming,
      remaining: Math.floor(tokens),
      retryAfterMs: msUntil(spec, tokens, 1),
      resetMs: msUntil(spec, tokens, spec.capacity),
    };
  }

  return {
    take(checks: readonly BucketCheck[]): TakeResult {
      const now = clock();
      if (now >= nextSweepAtMs) sweep();
      const available = checks.map((check) => tokensAt(check, buckets.get(check.key), now));
      const admitted = checks.every((check, index) => check.shadow || available[index]! >= 1);
      const results = checks.map((check, index) => {
        const tokens = available[index]!;
        const conforming = tokens >= 1;
        if (!admitted || !conforming) return outcome(check, tokens, conforming);
        const left = tokens - 1;
        buckets.delete(check.key);
        buckets.set(check.key, { tokens: left, updatedAtMs: now, fullAtMs: now + msUntil(check, left, check.capacity) });
        return outcome(check, left, true);
      });
      while (buckets.size > maxBuckets) {
        const oldest = buckets.keys().next().value as string;
        buckets.delete(oldest);
      }
      return { admitted, buckets: results };
    },
    async close() {
      buckets.clear();
    },
    size: () => buckets.size,
    sweep,
  };
}
