/**
 * Token-bucket arithmetic shared by every backend (the Redis Lua script
 * implements the same formulas). Tokens refill continuously at
 * refillAmount / refillEveryMs per millisecond, up to capacity.
 */
export interface BucketSpec {
  readonly capacity: number;
  readonly refillAmount: number;
  readonly refillEveryMs: number;
}

export interface BucketState {
  tokens: number;
  updatedAtMs: number;
}

export function refillRatePerMs(spec: BucketSpec): number {
  return spec.refillAmount / spec.refillEveryMs;
}

/** Tokens in the bucket at `nowMs`; a bucket never seen is full. */
export function tokensAt(spec: BucketSpec, state: BucketState | undefined, nowMs: number): number {
  if (!state) return spec.capacity;
  const elapsed = Math.max(0, nowMs - state.updatedAtMs);
  return Math.min(spec.capacity, state.tokens + elapsed * refillRatePerMs(spec));
}

/** Milliseconds until the bucket holds `wanted` tokens (0 when it already does). */
export function msUntil(spec: BucketSpec, tokens: number, wanted: number): number {
  if (tokens >= wanted) return 0;
  return Math.ceil((wanted - tokens) / refillRatePerMs(spec));
}
