import { randomUUID } from 'node:crypto';
import calculateSlot from 'cluster-key-slot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryRateLimitStore } from '../../src/limits/memory-rate-limit-store.js';
import type { BucketCheck, RateLimitStore } from '../../src/limits/rate-limit-store.js';
import { connectRedis, waitForRedis } from '../../src/limits/redis-connection.js';
import { createRedisRateLimitStore } from '../../src/limits/redis-rate-limit-store.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';
import { startRedisCluster, type RunningRedisCluster } from '../support/start-redis-cluster.js';

/** A clock the test moves by hand, shared by both backends. */
function manualClock(start = 1_700_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

type Backend = { name: string; create(clock: () => number): Promise<RateLimitStore> };

let redis: RunningRedis | undefined;
let cluster: RunningRedisCluster | undefined;
const opened: RateLimitStore[] = [];
beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
}, 60_000);
afterAll(async () => {
  for (const store of opened) await store.close();
  await redis?.stop();
  await cluster?.stop();
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
  {
    // A request's buckets are in different slots here: one script per slot, refunds on refusal.
    name: 'redis cluster',
    async create(clock) {
      const client = connectRedis(cluster!.target, { timeoutMs: 1_000, onError: () => undefined });
      if (!(await waitForRedis(client, 5_000))) throw new Error(`redis cluster at ${cluster!.url} not ready`);
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

// Token buckets (unit tokens): admission only needs a positive bucket and takes nothing; the
// response's tokens are charged afterwards and may put the bucket into debt, down to -capacity.
describe.each(backends)('rate-limit store contract, token buckets: $name', (backend) => {
  async function setup() {
    const clock = manualClock();
    const store = await backend.create(clock.now);
    opened.push(store);
    const prefix = randomUUID();
    // 1,000 tokens a minute: one token every 60 ms.
    const bucket = (name: string, spec: Partial<BucketCheck> = {}): BucketCheck => ({
      scope: `${prefix}:team#tokens`,
      key: name,
      capacity: 1_000,
      refillAmount: 1_000,
      refillEveryMs: 60_000,
      unit: 'tokens',
      shadow: false,
      ...spec,
    });
    const charge = async (check: BucketCheck, amount: number) => store.charge([{ check, amount }]);
    const level = async (check: BucketCheck) => (await store.take([check])).buckets[0]!;
    return { clock, store, bucket, charge, level };
  }

  it('admits while the bucket is positive and takes nothing at admission', async () => {
    const { store, bucket } = await setup();
    const team = bucket('team=ml-platform');
    for (let index = 0; index < 50; index++) {
      const result = await store.take([team]);
      expect(result.admitted, `request ${index}`).toBe(true);
      expect(result.buckets[0]).toMatchObject({ conforming: true, remaining: 1_000, retryAfterMs: 0, resetMs: 0 });
    }
  });

  it('charges a bucket never seen from full, and charges add up', async () => {
    const { bucket, charge, level } = await setup();
    const team = bucket('team=fresh');
    await charge(team, 250);
    expect(await level(team)).toMatchObject({ conforming: true, remaining: 750, resetMs: 15_000 });
    await charge(team, 700);
    expect((await level(team)).remaining).toBe(50);
  });

  it('a charge goes into debt; requests are refused until refill pays it, with the time to wait', async () => {
    const { store, bucket, charge, clock } = await setup();
    const team = bucket('team=debtor');
    await charge(team, 1_500);
    const refused = await store.take([team]);
    expect(refused.admitted).toBe(false);
    // 500 tokens owed, plus one whole token to be positive: 501 × 60 ms.
    expect(refused.buckets[0]).toMatchObject({ conforming: false, remaining: -500, retryAfterMs: 30_060, resetMs: 90_000 });
    clock.advance(30_059);
    expect((await store.take([team])).admitted).toBe(false);
    clock.advance(1);
    const back = await store.take([team]);
    expect(back.admitted).toBe(true);
    expect(back.buckets[0]!.remaining).toBe(1);
    // Nothing was taken at that admission either.
    clock.advance(60);
    expect((await store.take([team])).buckets[0]!.remaining).toBe(2);
  });

  it('bounds the debt at one capacity, however big the charge', async () => {
    const { store, bucket, charge, clock } = await setup();
    const team = bucket('team=huge');
    await charge(team, 1_000_000_000);
    const refused = await store.take([team]);
    expect(refused.buckets[0]).toMatchObject({ conforming: false, remaining: -1_000, retryAfterMs: 60_060, resetMs: 120_000 });
    clock.advance(60_060);
    expect((await store.take([team])).admitted).toBe(true);
  });

  it('stays exact with big buckets and big charges', async () => {
    const { bucket, charge, level } = await setup();
    // 10 million tokens a day.
    const daily = bucket('team=daily', { capacity: 10_000_000, refillAmount: 10_000_000, refillEveryMs: 86_400_000 });
    await charge(daily, 9_999_999);
    expect((await level(daily)).remaining).toBe(1);
    await charge(daily, 123_457);
    expect((await level(daily)).remaining).toBe(-123_456);
  });

  it('a charge of 0 changes nothing; an invalid amount is refused and charges nothing', async () => {
    const { store, bucket, charge, level } = await setup();
    const team = bucket('team=careful');
    const other = bucket('team=other');
    await charge(team, 0);
    expect((await level(team)).remaining).toBe(1_000);
    for (const amount of [-5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(Promise.resolve().then(() => store.charge([{ check: other, amount: 10 }, { check: team, amount }]))).rejects.toThrow(RangeError);
    }
    expect((await level(team)).remaining).toBe(1_000);
    expect((await level(other)).remaining).toBe(1_000);
  });

  it('a request bucket and a token bucket in one call: the request bucket is charged, the token bucket only gates', async () => {
    const { store, bucket, charge } = await setup();
    const requests = bucket('customer=acme', { scope: 'requests-scope-' + randomUUID(), unit: 'requests', capacity: 10, refillAmount: 10 });
    const tokens = bucket('team=both');
    const first = await store.take([requests, tokens]);
    expect(first.admitted).toBe(true);
    expect(first.buckets.map((outcome) => outcome.remaining)).toEqual([9, 1_000]);
    await charge(tokens, 1_000);
    // The token bucket is empty (0 is not positive): refused, and the request bucket is not charged.
    const refused = await store.take([requests, tokens]);
    expect(refused.admitted).toBe(false);
    expect(refused.buckets.map((outcome) => outcome.conforming)).toEqual([true, false]);
    expect((await store.take([requests])).buckets[0]!.remaining).toBe(8);
  });

  it('charges several buckets in one call', async () => {
    const { bucket, store, level } = await setup();
    const team = bucket('team=multi');
    const customer = bucket('customer=multi', { capacity: 400, refillAmount: 400 });
    await store.charge([
      { check: team, amount: 300 },
      { check: customer, amount: 500 },
    ]);
    expect((await level(team)).remaining).toBe(700);
    expect((await level(customer)).remaining).toBe(-100);
  });

  it('counts shadow token buckets without refusing on them', async () => {
    const { store, bucket, charge } = await setup();
    const shadow = bucket('team=shadow', { shadow: true });
    const enforced = bucket('customer=enforced', { scope: 'requests-scope-' + randomUUID(), unit: 'requests', capacity: 10, refillAmount: 10 });
    await charge(shadow, 2_000);
    const over = await store.take([shadow, enforced]);
    expect(over.admitted).toBe(true);
    expect(over.buckets[0]).toMatchObject({ conforming: false, remaining: -1_000 });
    expect(over.buckets[1]!.remaining).toBe(9);
  });

  it('parallel charges sum exactly', async () => {
    const { store, bucket, level } = await setup();
    const team = bucket('team=parallel', { capacity: 100_000, refillAmount: 100_000 });
    await Promise.all(Array.from({ length: 200 }, () => store.charge([{ check: team, amount: 337 }])));
    expect((await level(team)).remaining).toBe(100_000 - 200 * 337);
  });

  it('keeps the debt across a reload that keeps the limit, and applies a raised capacity at once', async () => {
    const { bucket, charge, level } = await setup();
    await charge(bucket('team=reload'), 1_200);
    expect((await level(bucket('team=reload'))).remaining).toBe(-200);
    // Raised to 5,000: the 1,200 tokens missing stay missing.
    expect((await level(bucket('team=reload', { capacity: 5_000 }))).remaining).toBe(3_800);
  });
});

describe('rate-limit store on a Redis Cluster', () => {
  it('a request whose buckets sit in different slots: refused by one, the other slot’s token is given back', async () => {
    const client = connectRedis(cluster!.target, { timeoutMs: 1_000, onError: () => undefined });
    if (!(await waitForRedis(client, 5_000))) throw new Error(`redis cluster at ${cluster!.url} not ready`);
    const store = createRedisRateLimitStore({ client, clock: manualClock().now });
    opened.push(store);
    const scope = `${randomUUID()}:team`;
    const check = (key: string, capacity: number): BucketCheck => ({ scope, key, capacity, refillAmount: capacity, refillEveryMs: 3_600_000, shadow: false });
    const team = check('team', 5);
    let customer = check('customer-0', 1);
    for (let index = 1; calculateSlot(`genops:rl:{${scope}|${customer.key}}`) === calculateSlot(`genops:rl:{${scope}|team}`); index++) customer = check(`customer-${index}`, 1);
    // Two slots, and (with 3 primaries) usually two shards: no one script could see both.
    expect(calculateSlot(`genops:rl:{${scope}|${customer.key}}`)).not.toBe(calculateSlot(`genops:rl:{${scope}|team}`));
    expect((await store.take([team, customer])).admitted).toBe(true);
    {
      const refused = await store.take([team, customer]);
      expect(refused.admitted).toBe(false);
      // Reported as found: the team bucket's token taken in its slot was given back.
      expect(refused.buckets[0]).toMatchObject({ conforming: true, remaining: 4 });
    }
    expect((await store.take([team])).buckets[0]!.remaining).toBe(3);
  });
});
