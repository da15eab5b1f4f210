import { afterEach, describe, expect, it } from 'vitest';
import { connectRedis, waitForRedis } from '../../src/limits/redis-connection.js';
import { createRedisRateLimitStore, type RedisRateLimitStore } from '../../src/limits/redis-rate-limit-store.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';

const bucket = { scope: 'per-customer:customerId', key: 'acme', capacity: 2, refillAmount: 2, refillEveryMs: 60_000, shadow: false };

describe('redis rate-limit store', () => {
  let redis: RunningRedis | undefined;
  let store: RedisRateLimitStore | undefined;
  afterEach(async () => {
    await store?.close();
    await redis?.stop();
  });

  async function connect(url: string, timeoutMs = 50) {
    const client = connectRedis(url, { timeoutMs, onError: () => undefined });
    await waitForRedis(client, 5_000);
    return { client };
  }

  it('keeps buckets under hash-tagged keys that expire once full again', async () => {
    redis = await startRedis();
    const { client } = await connect(redis.url);
    store = createRedisRateLimitStore({ client, clock: () => Date.now() });
    await store.take([bucket]);
    const inspector = redis.client();
    const keys = await inspector.keys('genops:rl:*');
    expect(keys).toEqual(['genops:rl:{per-customer:customerId|acme}']);
    const ttl = await inspector.pttl(keys[0]!);
    expect(ttl).toBeGreaterThan(30_000 + 1_000 - 2_000);
    expect(ttl).toBeLessThanOrEqual(31_000);
  });

  it('answers an over-limit key from its local cache without asking Redis', async () => {
    redis = await startRedis();
    const { client } = await connect(redis.url);
    store = createRedisRateLimitStore({ client, clock: () => Date.now() });
    await store.take([bucket]);
    await store.take([bucket]);
    expect((await store.take([bucket])).admitted).toBe(false);
    await redis.stop();
    // Redis is gone, yet the hot key is still refused, at once.
    const started = Date.now();
    const cached = await store.take([bucket]);
    expect(cached.admitted).toBe(false);
    expect(cached.buckets[0]!.retryAfterMs).toBeGreaterThan(25_000);
    expect(Date.now() - started).toBeLessThan(50);
    // A key that is not cached needs Redis, and says so.
    await expect(store.take([{ ...bucket, key: 'globex' }])).rejects.toMatchObject({ name: 'GenopsError', code: 'backend_unavailable' });
  });

  it('fails fast while Redis is down and recovers when it returns', async () => {
    redis = await startRedis();
    const port = redis.port;
    const { client } = await connect(redis.url);
    store = createRedisRateLimitStore({ client, clock: () => Date.now() });
    expect((await store.take([bucket])).admitted).toBe(true);
    await redis.stop();
    const failures = [];
    for (let index = 0; index < 5; index++) {
      const started = Date.now();
      failures.push(await store.take([{ ...bucket, key: `k${index}` }]).then(() => 'ok', (error: Error) => error.message));
      expect(Date.now() - started).toBeLessThan(500);
    }
    expect(failures.every((message) => message.startsWith('redis: '))).toBe(true);
    redis = await startRedis({ port });
    await waitForRedis(client, 5_000);
    expect((await store.take([bucket])).admitted).toBe(true);
  });

  it('replicas whose clocks differ share one bucket: the skew buys at most skew × rate extra tokens', async () => {
    redis = await startRedis();
    const base = Date.now();
    const [ahead, behind] = [await connect(redis.url, 1_000), await connect(redis.url, 1_000)];
    const storeAhead = createRedisRateLimitStore({ client: ahead.client, clock: () => base + 2_000 });
    store = createRedisRateLimitStore({ client: behind.client, clock: () => base });
    const shared = { ...bucket, capacity: 100, refillAmount: 100, refillEveryMs: 60_000 };
    let admitted = 0;
    for (let index = 0; index < 200; index++) {
      const replica = index % 2 === 0 ? storeAhead : store;
      if ((await replica.take([shared])).admitted) admitted++;
    }
    // 2 s of skew at 100 tokens a minute is 3.3 tokens.
    expect(admitted).toBeGreaterThanOrEqual(100);
    expect(admitted).toBeLessThanOrEqual(103);
    ahead.client.disconnect();
  });

  const tokenBucket = { scope: 'tokens-per-team:team#tokens', key: 'ml-platform', capacity: 100_000, refillAmount: 100_000, refillEveryMs: 60_000, unit: 'tokens' as const, shadow: false };

  it('a charge into debt keeps the key until the bucket is full again, and is refused locally until it is positive', async () => {
    redis = await startRedis();
    const { client } = await connect(redis.url);
    let now = Date.now();
    store = createRedisRateLimitStore({ client, clock: () => now });
    await store.charge([{ check: tokenBucket, amount: 150_000 }]);
    const inspector = redis.client();
    // 50,000 owed plus 100,000 to refill: 90 s at 100,000 a minute.
    const ttl = await inspector.pttl('genops:rl:{tokens-per-team:team#tokens|ml-platform}');
    expect(ttl).toBeGreaterThan(90_000 + 1_000 - 2_000);
    expect(ttl).toBeLessThanOrEqual(91_000);
    await redis.stop();
    // Redis is gone, yet the team in debt is still refused, from what the charge told this replica.
    now += 10_000;
    const refused = await store.take([tokenBucket]);
    expect(refused.admitted).toBe(false);
    expect(refused.buckets[0]!.remaining).toBe(-33_334);
    expect(refused.buckets[0]!.retryAfterMs).toBe(20_001);
  });

  it('a charge while Redis is down fails fast with backend_unavailable', async () => {
    redis = await startRedis();
    const { client } = await connect(redis.url);
    store = createRedisRateLimitStore({ client, clock: () => Date.now() });
    await redis.stop();
    const started = Date.now();
    await expect(store.charge([{ check: tokenBucket, amount: 10 }])).rejects.toMatchObject({ name: 'GenopsError', code: 'backend_unavailable' });
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('replicas whose clocks differ share one token bucket: their charges add up exactly', async () => {
    redis = await startRedis();
    const base = Date.now();
    const [ahead, behind] = [await connect(redis.url, 1_000), await connect(redis.url, 1_000)];
    const storeAhead = createRedisRateLimitStore({ client: ahead.client, clock: () => base + 2_000 });
    store = createRedisRateLimitStore({ client: behind.client, clock: () => base });
    for (let index = 0; index < 20; index++) await (index % 2 === 0 ? storeAhead : store).charge([{ check: tokenBucket, amount: 1_000 }]);
    // Read on the clock that is ahead: exactly the 20,000 charged are missing.
    expect((await storeAhead.take([tokenBucket])).buckets[0]!.remaining).toBe(80_000);
    await storeAhead.close();
  });
});
