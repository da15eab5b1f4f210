import { GenopsError } from '../errors/genops-error.js';
import { defineScript, preloadScripts, type RedisClient } from './redis-connection.js';
import { groupBySlot } from './redis-slots.js';
import { assertDebits, type BucketCheck, type BucketDebit, type BucketOutcome, type RateLimitStore, type TakeResult } from './rate-limit-store.js';
import { admissionCost, lowestLevel, msUntil, refillRatePerMs, wholeTokens, type BucketSpec } from './token-bucket.js';

/**
 * All buckets of one request in one atomic round trip. Each key holds the
 * time its bucket is full again (see token-bucket.ts). ARGV[1] is the
 * caller's clock in ms, then per bucket: capacity, refill rate per ms,
 * shadow flag, lowest level (0, or -capacity for a token bucket), admission
 * cost (1 for a request bucket, 0 for a token bucket, which only has to be
 * positive). Returns admitted, then per bucket: tokens after, conforming.
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
  local base = (i - 1) * 5 + 1
  local capacity = tonumber(ARGV[base + 1])
  local rate = tonumber(ARGV[base + 2])
  local lowest = tonumber(ARGV[base + 4])
  local t = capacity
  local full_at = redis.call('GET', KEYS[i])
  if full_at then
    local missing = (tonumber(full_at) - now) * rate
    if missing > 0 then t = math.max(lowest, math.floor((capacity - missing) * 1e9 + 0.5) / 1e9) end
  end
  tokens[i] = t
  if t < 0.999 and ARGV[base + 3] ~= '1' then admitted = 0 end
end
local result = { admitted }
for i = 1, count do
  local base = (i - 1) * 5 + 1
  local capacity = tonumber(ARGV[base + 1])
  local rate = tonumber(ARGV[base + 2])
  local cost = tonumber(ARGV[base + 5])
  local t = tokens[i]
  local conforming = 0
  if t >= 0.999 then conforming = 1 end
  if admitted == 1 and conforming == 1 and cost > 0 then
    t = t - cost
    local full_ms = (capacity - t) / rate
    redis.call('SET', KEYS[i], string.format('%.17g', now + full_ms), 'PX', math.ceil(full_ms) + 1000)
  end
  result[#result + 1] = string.format('%.17g', t)
  result[#result + 1] = conforming
end
return result
`;

/**
 * Debits after the fact (a response's actual tokens), all in one atomic
 * script. ARGV[1] is the caller's clock in ms, then per bucket: capacity,
 * refill rate per ms, lowest level, amount. The level may fall to the lowest
 * level, no further. Without that floor the charge moves the full-again time
 * forward by amount / rate from where it was, so it is exact whatever the
 * replicas' clocks; at the floor it is set from this replica's clock (a skew
 * of d ms forgives at most d × rate tokens of a debt already at its bound).
 * Returns per bucket the tokens after.
 */
const CHARGE_SCRIPT = `
local now = tonumber(ARGV[1])
local result = {}
for i = 1, #KEYS do
  local base = (i - 1) * 4 + 1
  local capacity = tonumber(ARGV[base + 1])
  local rate = tonumber(ARGV[base + 2])
  local lowest = tonumber(ARGV[base + 3])
  local amount = tonumber(ARGV[base + 4])
  local t = capacity
  local full_at = redis.call('GET', KEYS[i])
  if full_at then
    local missing = (tonumber(full_at) - now) * rate
    if missing > 0 then t = math.max(lowest, math.floor((capacity - missing) * 1e9 + 0.5) / 1e9) end
  end
  t = math.max(lowest, t - amount)
  local full_ms = (capacity - t) / rate
  if full_ms > 0 then
    redis.call('SET', KEYS[i], string.format('%.17g', now + full_ms), 'PX', math.ceil(full_ms) + 1000)
  end
  result[i] = string.format('%.17g', t)
end
return result
`;

/**
 * Gives back what TAKE_SCRIPT charged, on a Redis Cluster when another slot's
 * bucket of the same request refused it. ARGV[1] is the caller's clock in ms,
 * then per bucket: refill rate per ms, cost. Moves the full-again time back by
 * cost / rate (a bucket whose time is then past is full: deleted).
 */
const REFUND_SCRIPT = `
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local rate = tonumber(ARGV[(i - 1) * 2 + 2])
  local cost = tonumber(ARGV[(i - 1) * 2 + 3])
  local full_at = redis.call('GET', KEYS[i])
  if full_at and cost > 0 then
    local back = tonumber(full_at) - cost / rate
    local ttl = redis.call('PTTL', KEYS[i])
    if back <= now then redis.call('DEL', KEYS[i])
    elseif ttl > 0 then redis.call('SET', KEYS[i], string.format('%.17g', back), 'PX', ttl) end
  end
end
return 1
`;

const REDIS_TIME_EPOCH_MS = Date.UTC(2025, 0, 1);

interface CachedDenial {
  readonly untilMs: number;
  readonly seenAtMs: number;
  readonly tokens: number;
  readonly capacity: number;
  readonly rate: number;
}

type ScriptCommand = (keys: readonly string[], args: readonly (string | number)[]) => Promise<unknown>;

export interface RedisRateLimitStoreOptions {
  readonly client: RedisClient;
  readonly clock: () => number;
  /** Bound on the local cache of over-limit keys. */
  readonly maxCachedDenials?: number;
}

/**
 * Token buckets shared by every replica through Redis. Keys are hash-tagged
 * per bucket ("genops:rl:{...}") so Redis Cluster can place them. On one
 * node a request's buckets are taken in one atomic script; on a Cluster, one
 * script per slot (in parallel), and when one slot's bucket refuses, the
 * tokens the other slots took are given back (REFUND_SCRIPT): a request
 * refused by one limit ends up charged by none, and meanwhile a concurrent
 * request can only see fewer tokens, never more. A bucket
 * found empty is remembered locally until it has a token again, so a hot
 * abusive key costs no Redis call per request (a charge that leaves a token
 * bucket in debt is remembered the same way). Any Redis error or timeout
 * throws GenopsError('backend_unavailable'); the caller applies each limit's
 * failure mode.
 */
export interface RedisRateLimitStore extends RateLimitStore {
  take(checks: readonly BucketCheck[]): Promise<TakeResult>;
  charge(debits: readonly BucketDebit[]): Promise<void>;
}

export function createRedisRateLimitStore(options: RedisRateLimitStoreOptions): RedisRateLimitStore {
  const { client, clock } = options;
  const maxCachedDenials = options.maxCachedDenials ?? 100_000;
  /**
   * Over-limit buckets: until when, the level seen and when (to report it as it refills), and
   * for which bucket shape (a reloaded limit is asked again).
   */
  const deniedUntil = new Map<string, CachedDenial>();
  const cacheKey = (check: BucketCheck) => `${check.scope}|${check.key}`;
  const cachedEntry = (check: BucketCheck): CachedDenial | undefined => {
    const entry = deniedUntil.get(cacheKey(check));
    return entry && entry.capacity === check.capacity && entry.rate === refillRatePerMs(check) ? entry : undefined;
  };
  const takeTokens = defineScript(client, 'genopsTakeTokens', TAKE_SCRIPT);
  const chargeTokens = defineScript(client, 'genopsChargeTokens', CHARGE_SCRIPT);
  const refundTokens = defineScript(client, 'genopsRefundTokens', REFUND_SCRIPT);
  preloadScripts(client, [TAKE_SCRIPT, CHARGE_SCRIPT, REFUND_SCRIPT]);
  const redisKey = (check: BucketCheck) => `genops:rl:{${check.scope}|${check.key}}`;
  const bySlot = client.isCluster;

  async function call(script: ScriptCommand, keys: readonly string[], args: readonly (string | number)[]): Promise<(string | number)[]> {
    try {
      return (await script(keys, args)) as (string | number)[];
    } catch (error) {
      throw new GenopsError('backend_unavailable', `redis: ${(error as Error).message}`, { cause: error });
    }
  }

  /** One slot's buckets in one script: admitted (all of them), then per bucket tokens after and conforming. */
  function takeGroup(checks: readonly BucketCheck[], now: number): Promise<(string | number)[]> {
    // Times relative to 2025-01-01 keep sub-microsecond precision in a double
    // (absolute epoch milliseconds would lose it after a few hundred charges of a fast limit).
    const args: (string | number)[] = [now - REDIS_TIME_EPOCH_MS];
    for (const check of checks) args.push(check.capacity, refillRatePerMs(check), check.shadow ? '1' : '0', lowestLevel(check), admissionCost(check));
    return call(takeTokens, checks.map(redisKey), args);
  }

  /** Takes every slot group; if one refused, gives back what the others took. Returns one reply in the single-script shape. */
  async function takeAcrossSlots(checks: readonly BucketCheck[], now: number): Promise<(string | number)[]> {
    const groups = groupBySlot(checks, redisKey, bySlot);
    if (groups.length === 1) return takeGroup(checks, now);
    const replies = await Promise.allSettled(groups.map((group) => takeGroup(group.items, now)));
    const admitted = replies.every((reply) => reply.status === 'fulfilled' && Number(reply.value[0]) === 1);
    const merged: (string | number)[] = [admitted ? 1 : 0];
    const refunds: Promise<unknown>[] = [];
    groups.forEach((group, g) => {
      const reply = replies[g]!;
      if (reply.status === 'rejected') return;
      const charged = !admitted && Number(reply.value[0]) === 1;
      // What TAKE_SCRIPT charged: every conforming bucket with a cost, once its group admitted.
      const refunded = charged ? group.items.filter((check, position) => admissionCost(check) > 0 && Number(reply.value[2 + position * 2]) === 1) : [];
      if (refunded.length > 0) {
        const args: (string | number)[] = [now - REDIS_TIME_EPOCH_MS];
        for (const check of refunded) args.push(refillRatePerMs(check), admissionCost(check));
        refunds.push(call(refundTokens, refunded.map(redisKey), args));
      }
      group.indexes.forEach((index, position) => {
        const check = group.items[position]!;
        const tokens = Number(reply.value[1 + position * 2]);
        // A refunded bucket is reported as found, before this request's token.
        merged[1 + index * 2] = refunded.includes(check) ? tokens + admissionCost(check) : tokens;
        merged[2 + index * 2] = reply.value[2 + position * 2]!;
      });
    });
    // A backend error in one group fails the whole take (each limit's failure mode applies), once the others are given back.
    await Promise.allSettled(refunds);
    const failed = replies.find((reply) => reply.status === 'rejected');
    if (failed) throw failed.reason;
    return merged;
  }

  function rememberDenial(check: BucketCheck, now: number, tokens: number): void {
    if (deniedUntil.size >= maxCachedDenials) deniedUntil.delete(deniedUntil.keys().next().value as string);
    deniedUntil.set(cacheKey(check), { untilMs: now + msUntil(check, tokens, 1), seenAtMs: now, tokens, capacity: check.capacity, rate: refillRatePerMs(check) });
  }

  function cachedDenial(checks: readonly BucketCheck[], now: number): TakeResult | undefined {
    if (deniedUntil.size === 0) return undefined;
    let denied = false;
    for (const check of checks) {
      if (check.shadow) continue;
      const entry = cachedEntry(check);
      if (entry === undefined) continue;
      if (entry.untilMs > now) denied = true;
      else deniedUntil.delete(cacheKey(check));
    }
    if (!denied) return undefined;
    return {
      admitted: false,
      buckets: checks.map((check) => {
        const entry = cachedEntry(check);
        if (entry !== undefined && entry.untilMs > now) {
          const tokens = entry.tokens + (now - entry.seenAtMs) * entry.rate;
          return { conforming: false, remaining: wholeTokens(tokens), retryAfterMs: entry.untilMs - now, resetMs: msUntil(check, tokens, check.capacity) };
        }
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
      const reply = await takeAcrossSlots(checks, now);
      const admitted = Number(reply[0]) === 1;
      const buckets = checks.map((check, index) => {
        const tokens = Number(reply[1 + index * 2]);
        const conforming = Number(reply[2 + index * 2]) === 1;
        const result = outcome(check, tokens, conforming);
        if (!conforming && !check.shadow) rememberDenial(check, now, tokens);
        return result;
      });
      return { admitted, buckets };
    },
    async charge(debits) {
      assertDebits(debits);
      const charged = debits.filter((debit) => debit.amount > 0);
      if (charged.length === 0) return;
      const now = clock();
      // One script per slot; on one node, one for all. Debits are independent: no refund is needed.
      const groups = groupBySlot(charged, ({ check }) => redisKey(check), bySlot);
      const replies = await Promise.allSettled(
        groups.map((group) => {
          const args: (string | number)[] = [now - REDIS_TIME_EPOCH_MS];
          for (const { check, amount } of group.items) args.push(check.capacity, refillRatePerMs(check), lowestLevel(check), amount);
          return call(chargeTokens, group.items.map(({ check }) => redisKey(check)), args);
        }),
      );
      groups.forEach((group, g) => {
        const reply = replies[g]!;
        if (reply.status === 'rejected') return;
        group.items.forEach(({ check }, position) => {
          const tokens = Number(reply.value[position]);
          if (!check.shadow && tokens < 0.999) rememberDenial(check, now, tokens);
        });
      });
      const failed = replies.find((reply) => reply.status === 'rejected');
      if (failed) throw failed.reason;
    },
    async close() {
      deniedUntil.clear();
      client.disconnect();
    },
  };
}
