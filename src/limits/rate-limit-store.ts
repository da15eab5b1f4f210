import type { BucketSpec } from './token-bucket.js';

/** One bucket a request draws from. */
export interface BucketCheck extends BucketSpec {
  /** The limit's identity (name, key dimensions, unit): buckets of one scope share a table. */
  readonly scope: string;
  /** The request's values of the key dimensions: the bucket within the scope. */
  readonly key: string;
  /** Shadow buckets are counted but never make the request fail. */
  readonly shadow: boolean;
}

export interface BucketOutcome {
  /**
   * This bucket had a whole token for the request: one to take for a request
   * bucket, a positive level for a token bucket.
   */
  readonly conforming: boolean;
  /** Whole tokens left after the request; negative for a token bucket in debt. */
  readonly remaining: number;
  /** Milliseconds until one whole token is available again (0 if one is). */
  readonly retryAfterMs: number;
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
}

export interface TakeResult {
  /** Every enforced bucket conformed, and all conforming request buckets were charged. */
  readonly admitted: boolean;
  /** In the order of the checks given. */
  readonly buckets: readonly BucketOutcome[];
}

/** Tokens to subtract from one bucket after the fact (a response's actual usage). */
export interface BucketDebit {
  readonly check: BucketCheck;
  /** A finite number ≥ 0; may take the bucket into debt, down to its lowest level. */
  readonly amount: number;
}

/**
 * Token buckets behind one interface, with memory and Redis backends.
 *
 * `take` is atomic over all the buckets a request touches: either every
 * enforced bucket conforms and each conforming request bucket is charged one,
 * or nothing is charged at all. Token buckets (unit `tokens`) only gate there:
 * they conform while positive and are charged nothing.
 *
 * `charge` subtracts amounts after the fact, allowing debt, atomically over
 * its debits (Redis: one script). It is never retried: a call that failed (or
 * timed out) is charged at most once. A bucket never seen starts full.
 * Invalid amounts (negative, not finite) are refused with a RangeError before
 * anything is charged.
 */
export interface RateLimitStore {
  take(checks: readonly BucketCheck[]): TakeResult | Promise<TakeResult>;
  charge(debits: readonly BucketDebit[]): void | Promise<void>;
  close(): Promise<void>;
}

/** Throws a RangeError naming the first debit whose amount cannot be charged. */
export function assertDebits(debits: readonly BucketDebit[]): void {
  for (const { check, amount } of debits) {
    if (!Number.isFinite(amount) || amount < 0) throw new RangeError(`cannot charge ${amount} tokens to bucket ${check.scope}|${check.key}: the amount must be a finite number ≥ 0`);
  }
}
