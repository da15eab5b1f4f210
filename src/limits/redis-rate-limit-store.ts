import type { Redis } from 'ioredis';
import { GenopsError } from '../errors/genops-error.js';
import type { BucketCheck, BucketOutcome, RateLimitStore, TakeResult } from './rate-limit-store.js';
import { msUntil, refillRatePerMs, wholeTokens, type BucketSpec } from './token-bucket.js';

/**
 * All buckets of one request in one atomic round trip. Each key holds the
 * time its bucket is full again (see token-bucket.ts). ARGV[1] is the
 * caller's clock in ms, then per bucket: capacity, refill rate per ms,
 * shadow flag. Returns admitted, then per bucket: tokens after, conforming.
 * A charge moves the full-again time forward from where it was, never back:
 * replicas whose clocks differ by d ms can admit at most d × rate extra
 * tokens, once, rather than drifting apart.
 */
const TAKE_SCRIPT = `
local now = tonumber(ARGV[1])
local count = #KEYS
local tokens = {}
local admitted = 1
for i = 1, count do
  local base = (i - 1) * 3 + 1
  local capacity = tonumber(ARGV[base + 1])
  local rate = tonumber(ARGV[base + 2])
  local t = capacity
  local full_at = redis.call('GET', KEYS[i])
  if full_at then
    local missing = (tonumber(full_at) - now) * rate
    if missing > 0 then t = math.max(0, math.floor((capacity - missing) * 1e9 + 0.5) / 1e9) end
  end
  tokens[i] = t
  if t < 0.999 and ARGV[base + 3] ~= '1' then admitted = 0 end
end
local result = { admitted }
for i = 1, count do
  local base = (i - 1) * 3 + 1
  local capacity = tonumber(ARGV[base + 1])
  local rate = tonumber(ARGV[base + 2])
  local t = tokens[i]
  local conforming = 0
  if t >= 0.999 then conforming = 1 end
  if admitted == 1 and conforming == 1 then
    t = t - 1
    local full_ms = (capacity - t) / rate
    redis.call('SET', KEYS[i], string.format('%.17g', now + full_ms), 'PX', math.ceil(full_ms) + 1000)
  end
  result[#result + 1] = string.format('%.17g', t)
  result[#result + 1] = conforming
end
return result
`;

const REDIS_TIME_EPOCH_MS = Date.UTC(2025, 0, 1);

type TakeCommand = (numKeys: number, ...args: (string | number)[]) => Promise<(string | number)[]>;

export interface RedisRateLimitStoreOptions {
  readonly client: Redis;
  readonly clock: () => number;
  /** Bound on the local cache of over-limit keys. */
  readonly maxCachedDenials?: number;
}

/**
 * Token buckets shared by every replica through Redis. Keys are hash-tagged
 * per bucket ("genops:rl:{...}") so Redis Cluster can place them. A bucket
 * found empty is remembered locally until it has a token again, so a hot
 * abusive key costs no Redis call per request. Any Redis error or timeout
 * throws GenopsError('backend_unavailable'); the caller applies each limit's
 * failure mode.
 */
export interface RedisRateLimitStore extends RateLimitStore {
  take(checks: readonly BucketCheck[]): Promise<TakeResult>;
}

export function createRedisRateLimitStore(options: RedisRateLimitStoreOptions): RedisRateLimitStore {
  const { client, clock } = options;
  const maxCachedDenials = options.maxCachedDenials ?? 100_000;
  /** Over-limit buckets: until when, and for which bucket shape (a reloaded limit is asked again). */
  const deniedUntil = new Map<string, { untilMs: number; capacity: number; rate: number }>();
  const cacheKey = (check: BucketCheck) => `${check.scope}|${check.key}`;
  const cachedUntil = (check: BucketCheck): number | undefined => {
    const entry = deniedUntil.get(cacheKey(check));
    return entry && entry.capacity === check.capacity && entry.rate === refillRatePerMs(check) ? entry.untilMs : undefined;
  };
  client.defineCommand('genopsTakeTokens', { lua: TAKE_SCRIPT });
  // Load the script on every (re)connect, so the first burst of requests does not
  // each pay a NOSCRIPT round trip before falling back to EVAL.
  const preload = () => void client.script('LOAD', TAKE_SCRIPT).catch(() => undefined);
  client.on('ready', preload);
  if (client.status === 'ready') preload();
  const takeTokens = (client as unknown as { genopsTakeTokens: TakeCommand }).genopsTakeTokens.bind(client);

  function cachedDenial(checks: readonly BucketCheck[], now: number): TakeResult | undefined {
    if (deniedUntil.size === 0) return undefined;
    let denied = false;
    for (const check of checks) {
      if (check.shadow) continue;
      const until = cachedUntil(check);
      if (until === undefined) continue;
      if (until > now) denied = true;
      else deniedUntil.delete(cacheKey(check));
    }
    if (!denied) return undefined;
    return {
      admitted: false,
      buckets: checks.map((check) => {
        const until = cachedUntil(check);
        if (until !== undefined && until > now) return { conforming: false, remaining: 0, retryAfterMs: until - now, resetMs: msUntil(check, 0, check.capacity) };
        // Not consulted: reported as unknown-but-conforming; nothing is charged anyway.
        return { conforming: true, remaining: check.capacity, retryAfterMs: 0, resetMs: 0 };
      }),
    };
  }

  function outcome(spec: BucketSpec, tokens: number, conforming: boolean): BucketOutcome {
    return { conforming, remaining: wholeTokens(tokens), retryAfterMs: msUntil(spec, tokens, 1), resetMs: msUntil(spec, tokens, spec.capacity) };
  }

  return {
    async take(checks) {
      const now = clock();
      const cached = cachedDenial(checks, now);
      if (cached) return cached;
      const args: (string | number)[] = checks.map((check) => `genops:rl:{${check.scope}|${check.key}}`);
      // Times relative to 2025-01-01 keep sub-microsecond precision in a double
      // (absolute epoch milliseconds would lose it after a few hundred charges of a fast limit).
      args.push(now - REDIS_TIME_EPOCH_MS);
      for (const check of checks) args.push(check.capacity, refillRatePerMs(check), check.shadow ? '1' : '0');
      let reply: (string | number)[];
      try {
        reply = await takeTokens(checks.length, ...args);
      } catch (error) {
        throw new GenopsError('backend_unavailable', `redis: ${(error as Error).message}`, { cause: error });
      }
      const admitted = Number(reply[0]) === 1;
      const buckets = checks.map((check, index) => {
        const tokens = Number(reply[1 + index * 2]);
        const conforming = Number(reply[2 + index * 2]) === 1;
        const result = outcome(check, tokens, conforming);
        if (!conforming && !check.shadow) {
          if (deniedUntil.size >= maxCachedDenials) deniedUntil.delete(deniedUntil.keys().next().value as string);
          deniedUntil.set(cacheKey(check), { untilMs: now + result.retryAfterMs, capacity: check.capacity, rate: refillRatePerMs(check) });
        }
        return result;
      });
      return { admitted, buckets };
    },
    async close() {
      deniedUntil.clear();
      client.disconnect();
    },
  };
}
