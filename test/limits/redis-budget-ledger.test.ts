import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { BudgetAccount } from '../../src/limits/budget-ledger.js';
import { connectRedis, waitForRedis, type RedisClient } from '../../src/limits/redis-connection.js';
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

  async function connect(url: string, timeoutMs = 200): Promise<RedisClient> {
    const client = connectRedis(url, { timeoutMs, onError: () => undefined });
    if (!(await waitForRedis(client, 5_000))) throw new Error(`redis at ${url} not ready`);
    return client;
  }

  const near = (actual: number, expected: number) => {
    expect(actual).toBeGreaterThan(expected - 2_000);
    expect(actual).toBeLessThanOrEqual(expected);
  };

  it('keeps each account under its own hash tag, with the period in the key and TTLs past the period', async () => {
    redis = await startRedis();
    const prefix = `t-${randomUUID()}`;
    ledger = createRedisBudgetLedger({ client: await connect(redis.url), clock: () => Date.now(), keyPrefix: prefix });
    const now = Date.now();
    const daily: BudgetAccount = { id: 'daily|team=ml', limit: 1_000, period: { kind: 'calendar', startMs: now - HOUR, endMs: now + HOUR } };
    const rolling: BudgetAccount = { id: 'rolling|team={ml}', limit: 1_000, period: { kind: 'rolling', windowMs: 4 * HOUR, slots: 4 } };
    await ledger.reserve({ reservationId: 'req-1', entries: [{ account: daily, amount: 300 }, { account: rolling, amount: 200 }], expiresAtMs: now + 60_000 });
    const inspector = redis.client();
    const day = `${prefix}:{c:${now - HOUR}:daily|team=ml}`;
    // Braces in an account's id are escaped: the whole storage key is the tag.
    const roll = `${prefix}:{r:${HOUR}:rolling|team=%7Bml%7D}`;
    expect((await inspector.keys(`${prefix}:*`)).sort()).toEqual([`${day}:acct`, `${day}:exp`, `${roll}:acct`, `${roll}:exp`].sort());
    expect(await inspector.hgetall(`${day}:acct`)).toEqual({ 'h:req-1': '300', reserved: '300' });
    expect(await inspector.zscore(`${day}:exp`, 'req-1')).toBe(String(now + 60_000));
    // The account a day past the period's end.
    near(await inspector.pttl(`${day}:acct`), HOUR + DAY);
    near(await inspector.pttl(`${roll}:exp`), 4 * HOUR + DAY);

    await ledger.settle({ reservationId: 'req-1', entries: [{ account: daily, actual: 250 }, { account: rolling, actual: 150 }] });
    expect(await inspector.hgetall(`${day}:acct`)).toEqual({ reserved: '0', spent: '250' });
    expect(await inspector.zcard(`${day}:exp`)).toBe(0);
    expect(await inspector.hgetall(`${roll}:slots`)).toEqual({ [String(Math.floor(Date.now() / HOUR))]: '150' });
    near(await inspector.pttl(`${roll}:slots`), 4 * HOUR + DAY);
    // Each account remembers the settled id until the end of the spend it counted: the day, the rolling window.
    expect(await inspector.get(`${day}:rsv:req-1`)).toMatch(/^s\|[0-9a-f-]{36}\|1$/);
    near(await inspector.pttl(`${day}:rsv:req-1`), HOUR);
    expect(await inspector.get(`${roll}:rsv:req-1`)).toMatch(/^s\|[0-9a-f-]{36}\|1$/);
    near(await inspector.pttl(`${roll}:rsv:req-1`), 4 * HOUR);
  });

  it('a refused request releases the holds it took on earlier accounts and marks them released', async () => {
    redis = await startRedis();
    const prefix = `t-${randomUUID()}`;
    ledger = createRedisBudgetLedger({ client: await connect(redis.url), clock: () => Date.now(), keyPrefix: prefix });
    const now = Date.now();
    const team: BudgetAccount = { id: 'daily|team=ml', limit: 1_000, period: { kind: 'calendar', startMs: now - HOUR, endMs: now + HOUR } };
    const customer: BudgetAccount = { id: 'daily|customer=acme', limit: 100, period: { kind: 'calendar', startMs: now - HOUR, endMs: now + HOUR } };
    expect(await ledger.reserve({ reservationId: 'too-big', entries: [{ account: team, amount: 300 }, { account: customer, amount: 101 }], expiresAtMs: now + 60_000 })).toEqual({
      ok: false,
      failedIndex: 1,
      states: [{ spent: 0, reserved: 0, limit: 1_000 }, { spent: 0, reserved: 0, limit: 100 }],
    });
    const inspector = redis.client();
    const teamKeys = `${prefix}:{c:${now - HOUR}:daily|team=ml}`;
    expect(await inspector.hgetall(`${teamKeys}:acct`)).toEqual({ reserved: '0' });
    // A late copy of the reserve (one that timed out on its way) cannot hold again: the id is marked released until its expiry.
    expect(await inspector.get(`${teamKeys}:rsv:too-big`)).toBe('x');
    near(await inspector.pttl(`${teamKeys}:rsv:too-big`), 60_000);
    await expect(ledger.reserve({ reservationId: 'too-big', entries: [{ account: team, amount: 300 }], expiresAtMs: now + 60_000 })).rejects.toThrow(RangeError);
    expect(await ledger.state([team])).toEqual([{ spent: 0, reserved: 0, limit: 1_000 }]);
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
    const keysOf = `${prefix}:{c:${now - DAY}:monthly|team=ml}`;
    near(await inspector.pttl(`${keysOf}:rsv:req-2`), 60_000 + 10_000);
    near(await inspector.pttl(`${keysOf}:rsv:unknown`), 10_000);
    const keys = await inspector.keys(`${prefix}:*`);
    // acct, and both reservations (an emptied ZSET of holds is deleted by Redis itself).
    expect(keys).toHaveLength(3);
    for (const key of keys) expect(await inspector.pttl(key), key).toBeGreaterThan(0);
  });

  it('loads its five scripts (reserve, release, settle, state, renew) on connect and recovers from a flushed script cache (NOSCRIPT)', async () => {
    redis = await startRedis();
    const inspector = redis.client();
    const cachedScripts = async () => Number(/number_of_cached_scripts:(\d+)/.exec(await inspector.info('memory'))![1]);
    ledger = createRedisBudgetLedger({ client: await connect(redis.url), clock: () => Date.now(), keyPrefix: `t-${randomUUID()}` });
    await expect.poll(cachedScripts).toBe(5);
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
    // No settlement retries here (see the next test for those).
    ledger = createRedisBudgetLedger({ client, clock: () => Date.now(), keyPrefix: `t-${randomUUID()}`, settleRetryMs: 0 });
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

  it('a settlement retries through an outage and applies once when Redis is back', async () => {
    redis = await startRedis();
    const client = await connect(redis.url);
    ledger = createRedisBudgetLedger({ client, clock: () => Date.now(), keyPrefix: `t-${randomUUID()}`, settleRetryMs: 10_000, settleRetryDelayMs: 100 });
    const account: BudgetAccount = { id: 'daily|team=outage', limit: 100, period: { kind: 'calendar', startMs: 0, endMs: Date.now() + DAY } };
    // Writes paused past the command timeout: the first try times out, runs once the pause ends, and the retry finds it applied by this very settlement.
    expect((await ledger.reserve({ reservationId: 'through', entries: [{ account, amount: 40 }], expiresAtMs: Date.now() + 60_000 })).ok).toBe(true);
    await redis.client().call('CLIENT', 'PAUSE', '1200', 'WRITE');
    const settling = ledger.settle({ reservationId: 'through', entries: [{ account, actual: 30 }] });
    expect(await settling).toMatchObject({ applied: true, expired: false, states: [{ spent: 30, reserved: 0, limit: 100 }] });
    expect(await ledger.settle({ reservationId: 'through', entries: [{ account, actual: 30 }] })).toMatchObject({ applied: false });
    expect(await ledger.state([account])).toEqual([{ spent: 30, reserved: 0, limit: 100 }]);
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
