import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryRateLimitStore } from '../../src/limits/memory-rate-limit-store.js';
import type { BucketCheck, RateLimitStore } from '../../src/limits/rate-limit-store.js';
import { connectRedis, waitForRedis } from '../../src/limits/redis-connection.js';
import { createRedisRateLimitStore } from '../../src/limits/redis-rate-limit-store.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';

/** A clock the test moves by hand, shared by both backends. */
function manualClock(start = 1_700_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

type Backend = { name: string; create(clock: () => number): Promise<RateLimitStore> };

let redis: RunningRedis | undefined;
const opened: RateLimitStore[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const store of opened) await store.close();
  await redis?.stop();
});

const backends: Backend[] = [
  { name: 'memory', create: async (clock) => createMemoryRateLimitStore({ clock }) },
  {
    name: 'redis',
    async create(clock) {
      const client = connectRedis(redis!.url, { timeoutMs: 1_000, onError: () => undefined });
      if (!(await waitForRedis(client, 5_000))) throw new Error(`redis at ${redis!.url} not ready`);
      return createRedisRateLimitStore({ client, clock });
    },
  },
];

// The same contract, unchanged, for every backend.
describe.each(backends)('rate-limit store contract: $name', (backend) => {
  async function setup() {
    const clock = manualClock();
    const store = await backend.create(clock.now);
    opened.push(store);
    const prefix = randomUUID();
    const bucket = (name: string, spec: Partial<BucketCheck> = {}): BucketCheck => ({
      scope: `${prefix}:customerId`,
      key: name,
      capacity: 100,
      refillAmount: 100,
      refillEveryMs: 60_000,
      shadow: false,
      ...spec,
    });
    return { clock, store, bucket };
  }

  it('admits a full bucket’s worth, then refuses the next request with the time to wait', async () => {
    const { store, bucket } = await setup();
    const customer = bucket('customer=acme');
    for (let index = 1; index <= 100; index++) {
      const result = await store.take([customer]);
      expect(result.admitted, `request ${index}`).toBe(true);
      expect(result.buckets[0]!.remaining).toBe(100 - index);
    }
    const refused = await store.take([customer]);
    expect(refused.admitted).toBe(false);
    expect(refused.buckets[0]).toMatchObject({ conforming: false, remaining: 0, retryAfterMs: 600 });
  });

  it('refills continuously at the configured rate, never above capacity', async () => {
    const { store, bucket, clock } = await setup();
    const small = bucket('small', { capacity: 2, refillAmount: 1, refillEveryMs: 1_000 });
    expect((await store.take([small])).admitted).toBe(true);
    expect((await store.take([small])).admitted).toBe(true);
    expect((await store.take([small])).admitted).toBe(false);
    clock.advance(999);
    expect((await store.take([small])).admitted).toBe(false);
    clock.advance(1);
    expect((await store.take([small])).admitted).toBe(true);
    clock.advance(60_000);
    const full = await store.take([small]);
    expect(full.buckets[0]!.remaining).toBe(1);
    expect(full.buckets[0]!.resetMs).toBe(1_000);
  });

  it('stays exact for limits that refill faster than a token a millisecond', async () => {
    const { store, bucket } = await setup();
    const fast = bucket('fast', { capacity: 10_000, refillAmount: 10_000, refillEveryMs: 1_000 });
    let last = 0;
    for (let index = 0; index < 100; index++) last = (await store.take([fast])).buckets[0]!.remaining;
    expect(last).toBe(9_900);
  });

  it('keeps distinct keys apart', async () => {
    const { store, bucket } = await setup();
    const acme = bucket('acme', { capacity: 1 });
    const globex = bucket('globex', { capacity: 1 });
    expect((await store.take([acme])).admitted).toBe(true);
    expect((await store.take([acme])).admitted).toBe(false);
    expect((await store.take([globex])).admitted).toBe(true);
  });

  it('charges nothing when any enforced bucket refuses', async () => {
    const { store, bucket } = await setup();
    const perTeam = bucket('team', { capacity: 5 });
    const perCustomer = bucket('customer', { capacity: 1 });
    expect((await store.take([perTeam, perCustomer])).admitted).toBe(true);
    const refused = await store.take([perTeam, perCustomer]);
    expect(refused.admitted).toBe(false);
    expect(refused.buckets[1]!.conforming).toBe(false);
    const team = await store.take([perTeam]);
    expect(team.buckets[0]!.remaining).toBe(3);
  });

  it('counts shadow buckets without refusing on them', async () => {
    const { store, bucket } = await setup();
    const shadow = bucket('shadow', { capacity: 1, shadow: true });
    const enforced = bucket('enforced', { capacity: 10 });
    expect((await store.take([shadow, enforced])).admitted).toBe(true);
    const over = await store.take([shadow, enforced]);
    expect(over.admitted).toBe(true);
    expect(over.buckets[0]!.conforming).toBe(false);
    expect(over.buckets[1]!.remaining).toBe(8);
  });

  it('keeps a bucket’s state while its limit is unchanged, and applies a changed capacity at once', async () => {
    const { store, bucket } = await setup();
    for (let index = 0; index < 4; index++) await store.take([bucket('reload')]);
    // Unchanged limit (a reload that kept it): the state carries on.
    expect((await store.take([bucket('reload')])).buckets[0]!.remaining).toBe(95);
    // Raised: a drained bucket of 2 gets the new room at once.
    const small = { capacity: 2, refillAmount: 2, refillEveryMs: 3_600_000 };
    await store.take([bucket('raise', small)]);
    await store.take([bucket('raise', small)]);
    expect((await store.take([bucket('raise', small)])).admitted).toBe(false);
    const raised = await store.take([bucket('raise', { ...small, capacity: 5 })]);
    expect(raised.admitted).toBe(true);
    expect(raised.buckets[0]!.remaining).toBe(2);
    // Lowered below what is left: the bucket shrinks to the new capacity at once.
    const lowered = await store.take([bucket('reload', { capacity: 10, refillAmount: 100 })]);
    expect(lowered.admitted).toBe(true);
    expect(lowered.buckets[0]!.remaining).toBe(4);
  });
});
