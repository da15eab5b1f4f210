import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { BudgetAccount } from '../../src/limits/budget-ledger.js';
import { connectRedis, waitForRedis } from '../../src/limits/redis-connection.js';
import { createRedisBudgetLedger, type RedisBudgetLedger } from '../../src/limits/redis-budget-ledger.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('redis budget ledger', () => {
  let redis: RunningRedis | undefined;
  let ledger: RedisBudgetLedger | undefined;
  afterEach(async () => {
    await ledger?.close();
    ledger = undefined;
    await redis?.stop();
    redis = undefined;
  });

  async function connect(url: string, timeoutMs = 200): Promise<Redis> {
    const client = connectRedis(url, { timeoutMs, onError: () => undefined });
    if (!(await waitForRedis(client, 5_000))) throw new Error(`redis at ${url} not ready`);
    return client;
  }

  const near = (actual: number, expected: number) => {
    expect(actual).toBeGreaterThan(expected - 2_000);
    expect(actual).toBeLessThanOrEqual(expected);
  };

  it('keeps one request’s keys under one hash tag, with the period in the key and TTLs past the period', async () => {
    redis = await startRedis();
    const prefix = `t-${randomUUID()}`;
    ledger = createRedisBudgetLedger({ client: await connect(redis.url), clock: () => Date.now(), keyPrefix: prefix });
    const now = Date.now();
    const daily: BudgetAccount = { id: 'daily|team=ml', limit: 1_000, period: { kind: 'calendar', startMs: now - HOUR, endMs: now + HOUR } };
    const rolling: BudgetAccount = { id: 'rolling|team=ml', limit: 1_000, period: { kind: 'rolling', windowMs: 4 * HOUR, slots: 4 } };
    await ledger.reserve({ reservationId: 'req-1', entries: [{ account: daily, amount: 300 }, { account: rolling, amount: 200 }], expiresAtMs: now + 60_000 });
    const inspector = redis.client();
    const tag = `{${prefix}}`;
    expect((await inspector.keys(`${tag}*`)).sort()).toEqual(
      [`${tag}:acct:c:${now - HOUR}:daily|team=ml`, `${tag}:exp:c:${now - HOUR}:daily|team=ml`, `${tag}:acct:r:${HOUR}:rolling|team=ml`, `${tag}:exp:r:${HOUR}:rolling|team=ml`, `${tag}:rsv:req-1`].sort(),
    );
    expect(await inspector.hgetall(`${tag}:acct:c:${now - HOUR}:daily|team=ml`)).toEqual({ 'h:req-1': '300', reserved: '300' });
    // The hold while the reservation lives, the account a day past the period's end.
    near(await inspector.pttl(`${tag}:rsv:req-1`), 60_000);
    near(await inspector.pttl(`${tag}:acct:c:${now - HOUR}:daily|team=ml`), HOUR + DAY);
    near(await inspector.pttl(`${tag}:exp:r:${HOUR}:rolling|team=ml`), 4 * HOUR + DAY);

    await ledger.settle({ reservationId: 'req-1', entries: [{ account: daily, actual: 250 }, { account: rolling, actual: 150 }] });
    expect(await inspector.hgetall(`${tag}:acct:c:${now - HOUR}:daily|team=ml`)).toEqual({ reserved: '0', spent: '250' });
    expect(await inspector.zcard(`${tag}:exp:c:${now - HOUR}:daily|team=ml`)).toBe(0);
    expect(await inspector.hgetall(`${tag}:slots:r:${HOUR}:rolling|team=ml`)).toEqual({ [String(Math.floor(Date.now() / HOUR))]: '150' });
    near(await inspector.pttl(`${tag}:slots:r:${HOUR}:rolling|team=ml`), 4 * HOUR + DAY);
    // The settled id is remembered until the end of the longest-lasting spend: the rolling window.
    expect(await inspector.get(`${tag}:rsv:req-1`)).toBe('s');
    near(await inspector.pttl(`${tag}:rsv:req-1`), 4 * HOUR);
  });

  it('caps how long a settled id is remembered, and never leaves a key without a TTL', async () => {
    redis = await startRedis();
    const prefix = `t-${randomUUID()}`;
    ledger = createRedisBudgetLedger({ client: await connect(redis.url), clock: () => Date.now(), keyPrefix: prefix, settledRetentionMaxMs: 10_000 });
    const now = Date.now();
    const monthly: BudgetAccount = { id: 'monthly|team=ml', limit: 1_000, period: { kind: 'calendar', startMs: now - DAY, endMs: now + 30 * DAY } };
    await ledger.reserve({ reservationId: 'req-2', entries: [{ account: monthly, amount: 300 }], expiresAtMs: now + 60_000 });
    await ledger.settle({ reservationId: 'req-2', entries: [{ account: monthly, actual: 100 }] });
    await ledger.settle({ reservationId: 'unknown', entries: [{ account: monthly, actual: 100 }] });
    await ledger.state([monthly, { ...monthly, id: 'never-seen' }]);
    const inspector = redis.client();
    near(await inspector.pttl(`{${prefix}}:rsv:req-2`), 60_000 + 10_000);
    near(await inspector.pttl(`{${prefix}}:rsv:unknown`), 10_000);
    const keys = await inspector.keys(`{${prefix}}*`);
    // acct, and both reservations (an emptied ZSET of holds is deleted by Redis itself).
    expect(keys).toHaveLength(3);
    for (const key of keys) expect(await inspector.pttl(key), key).toBeGreaterThan(0);
  });

  it('loads its four scripts (reserve, settle, state, renew) on connect and recovers from a flushed script cache (NOSCRIPT)', async () => {
    redis = await startRedis();
    const inspector = redis.client();
    const cachedScripts = async () => Number(/number_of_cached_scripts:(\d+)/.exec(await inspector.info('memory'))![1]);
    ledger = createRedisBudgetLedger({ client: await connect(redis.url), clock: () => Date.now(), keyPrefix: `t-${randomUUID()}` });
    await expect.poll(cachedScripts).toBe(4);
    await inspector.script('FLUSH');
    expect(await cachedScripts()).toBe(0);
    const account: BudgetAccount = { id: 'daily|team=x', limit: 100, period: { kind: 'calendar', startMs: 0, endMs: Date.now() + DAY } };
    expect(await ledger.reserve({ reservationId: 'after-flush', entries: [{ account, amount: 60 }], expiresAtMs: Date.now() + 60_000 })).toMatchObject({ ok: true });
    expect(await ledger.settle({ reservationId: 'after-flush', entries: [{ account, actual: 60 }] })).toMatchObject({ applied: true, expired: false });
    expect(await ledger.state([account])).toEqual([{ spent: 60, reserved: 0, limit: 100 }]);
  });

  it('fails fast with backend_unavailable while Redis is down, and recovers when it returns', async () => {
    redis = await startRedis();
    const port = redis.port;
    const client = await connect(redis.url);
    ledger = createRedisBudgetLedger({ client, clock: () => Date.now(), keyPrefix: `t-${randomUUID()}` });
    const account: BudgetAccount = { id: 'daily|team=down', limit: 100, period: { kind: 'calendar', startMs: 0, endMs: Date.now() + DAY } };
    expect((await ledger.reserve({ reservationId: 'before', entries: [{ account, amount: 10 }], expiresAtMs: Date.now() + 60_000 })).ok).toBe(true);
    await redis.stop();
    const calls = [
      () => ledger!.reserve({ reservationId: 'during', entries: [{ account, amount: 10 }], expiresAtMs: Date.now() + 60_000 }),
      () => ledger!.settle({ reservationId: 'before', entries: [{ account, actual: 10 }] }),
      () => ledger!.state([account]),
    ];
    for (const run of calls) {
      const started = Date.now();
      await expect(run()).rejects.toMatchObject({ name: 'GenopsError', code: 'backend_unavailable', message: expect.stringMatching(/^redis: /) });
      expect(Date.now() - started).toBeLessThan(500);
    }
    redis = await startRedis({ port });
    expect(await waitForRedis(client, 5_000)).toBe(true);
    // A fresh Redis (no persistence): the ledger serves again, scripts reloaded.
    expect(await ledger.reserve({ reservationId: 'after', entries: [{ account, amount: 100 }], expiresAtMs: Date.now() + 60_000 })).toMatchObject({ ok: true });
  });

  it('a Redis that stops answering fails the call at the command timeout instead of hanging', async () => {
    redis = await startRedis();
    ledger = createRedisBudgetLedger({ client: await connect(redis.url, 100), clock: () => Date.now(), keyPrefix: `t-${randomUUID()}` });
    const account: BudgetAccount = { id: 'daily|team=hung', limit: 100, period: { kind: 'calendar', startMs: 0, endMs: Date.now() + DAY } };
    await redis.client().call('CLIENT', 'PAUSE', '1500', 'ALL');
    const started = Date.now();
    await expect(ledger.reserve({ reservationId: 'paused', entries: [{ account, amount: 10 }], expiresAtMs: Date.now() + 60_000 })).rejects.toMatchObject({
      code: 'backend_unavailable',
      message: 'redis: Command timed out',
    });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('replicas whose clocks differ keep spent + reserved within the limit', async () => {
    redis = await startRedis();
    const prefix = `t-${randomUUID()}`;
    const base = Date.now();
    const ahead = createRedisBudgetLedger({ client: await connect(redis.url, 1_000), clock: () => base + 2_000, keyPrefix: prefix });
    ledger = createRedisBudgetLedger({ client: await connect(redis.url, 1_000), clock: () => base, keyPrefix: prefix });
    const account: BudgetAccount = { id: 'daily|team=skew', limit: 1_000, period: { kind: 'calendar', startMs: base - HOUR, endMs: base + HOUR } };
    try {
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, index) =>
          (index % 2 === 0 ? ahead : ledger!).reserve({ reservationId: `skew-${index}`, entries: [{ account, amount: 30 }], expiresAtMs: base + 2_000 + 60_000 }),
        ),
      );
      expect(results.filter((result) => result.ok)).toHaveLength(33);
      expect(await ahead.state([account])).toEqual([{ spent: 0, reserved: 990, limit: 1_000 }]);
    } finally {
      await ahead.close();
    }
  });
});
