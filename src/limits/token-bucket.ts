/**
 * Token-bucket arithmetic shared by every backend (the Redis Lua script
 * implements the same formulas). Tokens refill continuously at
 * refillAmount / refillEveryMs per millisecond, up to capacity.
 *
 * A bucket's whole state is one number: the time it is full again
 * (`fullAtMs`). Tokens at `now` are capacity minus what has not refilled
 * yet. One number per bucket keeps a million buckets small, makes a raised
 * or lowered capacity apply at once (the debt is kept, clamped to the new
 * capacity), and a bucket never seen is simply full.
 */
export interface BucketSpec {
  readonly capacity: number;
  readonly refillAmount: number;
  readonly refillEveryMs: number;
}

export function refillRatePerMs(spec: BucketSpec): number {
  return spec.refillAmount / spec.refillEveryMs;
}

/** Tokens in the bucket at `nowMs`, given when it is full again (undefined: never used, full). */
export function tokensAt(spec: BucketSpec, fullAtMs: number | undefined, nowMs: number): number {
  if (fullAtMs === undefined || fullAtMs <= nowMs) return spec.capacity;
  const missing = (fullAtMs - nowMs) * refillRatePerMs(spec);
  return Math.max(0, roundNano(spec.capacity - missing));
}

/** Drops floating-point dust (57.000000000001 tokens is 57), as the Lua script does. */
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
 */
export function wholeTokens(tokens: number): number {
  return Math.floor(tokens + 1e-3);
}
