import type { BucketSpec } from './token-bucket.js';

/** One bucket a request draws from. */
export interface BucketCheck extends BucketSpec {
  /** The limit's identity (name and key dimensions): buckets of one scope share a table. */
  readonly scope: string;
  /** The request's values of the key dimensions: the bucket within the scope. */
  readonly key: string;
  /** Shadow buckets are counted but never make the request fail. */
  readonly shadow: boolean;
}

export interface BucketOutcome {
  /** This bucket had a token for the request. */
  readonly conforming: boolean;
  /** Whole tokens left after the request. */
  readonly remaining: number;
  /** Milliseconds until one token is available again (0 if one is). */
  readonly retryAfterMs: number;
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
}

export interface TakeResult {
  /** Every enforced bucket had a token, and all conforming buckets were charged. */
  readonly admitted: boolean;
  /** In the order of the checks given. */
  readonly buckets: readonly BucketOutcome[];
}

/**
 * Token buckets behind one interface, with memory and Redis backends. One
 * call is atomic over all the buckets a request touches: either every
 * enforced bucket has a token and each conforming bucket is charged, or
 * nothing is charged at all.
 */
export interface RateLimitStore {
  take(checks: readonly BucketCheck[]): TakeResult | Promise<TakeResult>;
  close(): Promise<void>;
}
