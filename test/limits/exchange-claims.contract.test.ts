/**
 * The exchange claim marker (redis-exchange-claims.ts) on one real Redis node and a real Redis
 * Cluster (3 primaries, 3 replicas): the moves that make a handed-over event stream settle exactly
 * once across replicas — claim, extend, lapse, finalize — and the shared handoff key
 * (redis-shared-key.ts) every replica reads the same.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExchangeClaims } from '../../src/limits/exchange-claims.js';
import { connectRedis, waitForRedis, type RedisClient } from '../../src/limits/redis-connection.js';
import { createRedisExchangeClaims } from '../../src/limits/redis-exchange-claims.js';
import { loadSharedKey } from '../../src/limits/redis-shared-key.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';
import { startRedisCluster, type RunningRedisCluster } from '../support/start-redis-cluster.js';

let redis: RunningRedis | undefined;
let cluster: RunningRedisCluster | undefined;
const clients: RedisClient[] = [];
beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
}, 60_000);
afterAll(async () => {
  for (const client of clients) client.disconnect();
  await redis?.stop();
  await cluster?.stop();
});

async function connect(target: Parameters<typeof connectRedis>[0]): Promise<RedisClient> {
  const client = connectRedis(target, { timeoutMs: 5_000, onError: () => undefined });
  clients.push(client);
  if (!(await waitForRedis(client, 10_000))) throw new Error('redis not ready');
  return client;
}

const backends: [string, () => Promise<RedisClient>][] = [
  ['one Redis node', () => connect(redis!.url)],
  ['a Redis Cluster', () => connect(cluster!.target)],
];
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(backends)('exchange claims on %s', (_name, client) => {
  let claims: ExchangeClaims;
  beforeAll(async () => {
    claims = createRedisExchangeClaims({ client: await client(), keyPrefix: `test:${randomUUID()}` });
  });

  it('lets one owner claim an exchange, extend its claim, and settle it; the others find it taken, then settled', async () => {
    const id = randomUUID();
    expect(await claims.claim(id, 'b', 5_000)).toBe('won');
    expect(await claims.claim(id, 'b', 5_000)).toBe('won');
    expect(await claims.claim(id, 'c', 5_000)).toBe('taken');
    expect(await claims.finalize(id, 'a', 60_000)).toBe('taken');
    expect(await claims.finalize(id, 'b', 60_000)).toBe('won');
    for (const owner of ['a', 'b', 'c']) {
      expect(await claims.claim(id, owner, 5_000)).toBe('settled');
      expect(await claims.finalize(id, owner, 60_000)).toBe('settled');
    }
  });

  it('settles an unclaimed exchange for whoever finalizes first, once', async () => {
    const id = randomUUID();
    const outcomes = await Promise.all(['a', 'b', 'c', 'd'].map((owner) => claims.finalize(id, owner, 60_000)));
    expect(outcomes.filter((outcome) => outcome === 'won')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome === 'settled')).toHaveLength(3);
  });

  it('lets a dead owner\'s claim lapse, so the fallback settles it', async () => {
    const id = randomUUID();
    expect(await claims.claim(id, 'dead', 300)).toBe('won');
    expect(await claims.finalize(id, 'fallback', 60_000)).toBe('taken');
    await wait(500);
    expect(await claims.finalize(id, 'fallback', 60_000)).toBe('won');
    expect(await claims.finalize(id, 'dead', 60_000)).toBe('settled');
  });

  it('refuses "settled" as an owner', async () => {
    await expect(claims.claim(randomUUID(), 'settled', 1_000)).rejects.toThrow(RangeError);
  });

  it('gives every replica the same handoff key, created once', async () => {
    const redisClient = await client();
    const key = `test:${randomUUID()}:handoff-key`;
    const keys = await Promise.all([0, 1, 2].map(() => loadSharedKey(redisClient, key)));
    expect(new Set(keys).size).toBe(1);
    expect(keys[0]!.length).toBeGreaterThanOrEqual(32);
  });
});
