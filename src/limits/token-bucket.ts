/**
 * Token-bucket arithmetic shared by every backend (the Redis Lua scripts
 * implement the same formulas). Tokens refill continuously at
 * refillAmount / refillEveryMs per millisecond, up to capacity.
 *
 * A bucket's whole state is one number: the time it is full again
 * (`fullAtMs`). Tokens at `now` are capacity minus what has not refilled
 * yet. One number per bucket keeps a million buckets small, makes a raised
 * or lowered capacity apply at once (the debt is kept, clamped to the new
 * capacity), and a bucket never seen is simply full.
 *
 * Two units:
 * - `requests`: each admitted request takes one token; the level never goes
 *   below 0.
 * - `tokens` (LLM tokens): admission takes nothing and only needs a positive
 *   bucket (at least one whole token); the request's actual tokens are charged
 *   once its usage is known, and may put the bucket into debt, down to
 *   -capacity (see lowestLevel). The debt is one more number on the same
 *   time axis: a bucket in debt is simply full later.
 */
export type BucketUnit = 'requests' | 'tokens';

export interface BucketSpec {
  readonly capacity: number;
  readonly refillAmount: number;
  readonly refillEveryMs: number;
  /** Default `requests`. */
  readonly unit?: BucketUnit | undefined;
}

export function refillRatePerMs(spec: BucketSpec): number {
  return spec.refillAmount / spec.refillEveryMs;
}

/**
 * The lowest level a bucket can reach. A token bucket may owe at most one
 * capacity: one huge response cannot lock its key out for longer than it
 * takes to refill twice the capacity (the debt, then a first token), and the
 * long-run rate stays within capacity of the configured one per such response.
 */
export function lowestLevel(spec: BucketSpec): number {
  return spec.unit === 'tokens' ? -spec.capacity : 0;
}

/** Tokens an admission takes: one for a request bucket, none for a token bucket (charged later). */
export function admissionCost(spec: BucketSpec): number {
  return spec.unit === 'tokens' ? 0 : 1;
}

/** Tokens in the bucket at `nowMs`, given when it is full again (undefined: never used, full). */
export function tokensAt(spec: BucketSpec, fullAtMs: number | undefined, nowMs: number): number {
  if (fullAtMs === undefined || fullAtMs <= nowMs) return spec.capacity;
  const missing = (fullAtMs - nowMs) * refillRatePerMs(spec);
  return Math.max(lowestLevel(spec), roundNano(spec.capacity - missing));
}

/** Drops floating-point dust (57.000000000001 tokens is 57), as the Lua scripts do. */
function roundNano(tokens: number): number {
  return Math.round(tokens * 1e9) / 1e9;
}

/** When a bucket holding `tokens` at `nowMs` is full again. */
export function fullAtAfter(spec: BucketSpec, tokens: number, nowMs: number): number {
  return nowMs + (spec.capacity - tokens) / refillRatePerMs(spec);
}

/** Milliseconds until the bucket holds `wanted` tokens (0 when it already does). */
export function msUntil(spec: BucketSpec, tokens: number, wanted: number): number {
  if (tokens >= wanted) return 0;
  return Math.ceil((wanted - tokens) / refillRatePerMs(spec));
}

/**
 * Whole tokens, forgiving the floating-point dust of the arithmetic (9899.9993 is 9900): Redis
 * keeps times as doubles of about 6e10 ms, whose rounding adds up over many fast charges.
 * Negative for a token bucket in debt.
 */
export function wholeTokens(tokens: number): number {
  return Math.floor(tokens + 1e-3);
}
