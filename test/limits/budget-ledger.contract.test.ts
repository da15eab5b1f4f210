import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BudgetAccount, BudgetLedger, ReserveRequest } from '../../src/limits/budget-ledger.js';
import { createMemoryBudgetLedger } from '../../src/limits/memory-budget-ledger.js';
import { connectRedis, waitForRedis } from '../../src/limits/redis-connection.js';
import { createRedisBudgetLedger } from '../../src/limits/redis-budget-ledger.js';
import { startRedis, type RunningRedis } from '../support/start-redis.js';
import { startRedisCluster, type RunningRedisCluster } from '../support/start-redis-cluster.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** One cent in nano-USD. */
const CENT = 10_000_000;

/** A clock the test moves by hand, shared by both backends; starts on an hour boundary. */
function manualClock(start = Math.ceil(1_700_000_000_000 / HOUR) * HOUR) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms), set: (ms: number) => (now = ms) };
}

type Backend = { name: string; create(clock: () => number): Promise<BudgetLedger> };

let redis: RunningRedis | undefined;
let cluster: RunningRedisCluster | undefined;
const opened: BudgetLedger[] = [];
beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
}, 60_000);
afterAll(async () => {
  for (const ledger of opened) await ledger.close();
  await redis?.stop();
  await cluster?.stop();
});

/** A ledger on the Redis Cluster (3 primaries, 3 replicas): every account in its own slot. */
async function clusterLedger(clock: () => number, keyPrefix: string): Promise<BudgetLedger> {
  // Six redis-server processes on a shared 2-core machine: a generous timeout, since this suite is about semantics.
  const client = connectRedis(cluster!.target, { timeoutMs: 5_000, onError: () => undefined });
  if (!(await waitForRedis(client, 5_000))) throw new Error(`redis cluster at ${cluster!.url} not ready`);
  const ledger = createRedisBudgetLedger({ client, clock, keyPrefix });
  opened.push(ledger);
  return ledger;
}

async function redisLedger(clock: () => number, keyPrefix: string): Promise<BudgetLedger> {
  const client = connectRedis(redis!.url, { timeoutMs: 2_000, onError: () => undefined });
  if (!(await waitForRedis(client, 5_000))) throw new Error(`redis at ${redis!.url} not ready`);
  const ledger = createRedisBudgetLedger({ client, clock, keyPrefix });
  opened.push(ledger);
  return ledger;
}

const backends: Backend[] = [
  {
    name: 'memory',
    async create(clock) {
      const ledger = createMemoryBudgetLedger({ clock });
      opened.push(ledger);
      return ledger;
    },
  },
  { name: 'redis', create: (clock) => redisLedger(clock, `test:${randomUUID()}`) },
  { name: 'redis cluster', create: (clock) => clusterLedger(clock, `test:${randomUUID()}`) },
];

/** Calls either backend and always returns a promise (memory throws synchronously). */
const call = <T>(run: () => T | Promise<T>): Promise<T> => Promise.resolve().then(run);

// The same contract, unchanged, for every backend.
describe.each(backends)('budget ledger contract: $name', (backend) => {
  async function setup() {
    const clock = manualClock();
    const ledger = await backend.create(clock.now);
    const dayStart = clock.now();
    const daily = (name: string, limit: number, startMs = dayStart): BudgetAccount => ({ id: `daily|team=${name}`, limit, period: { kind: 'calendar', startMs, endMs: startMs + DAY } });
    const rolling = (name: string, limit: number, windowMs = 4 * HOUR, slots = 4): BudgetAccount => ({ id: `rolling|team=${name}`, limit, period: { kind: 'rolling', windowMs, slots } });
    let sequence = 0;
    const reserve = (entries: ReserveRequest['entries'], options: { id?: string; ttlMs?: number } = {}) =>
      call(() => ledger.reserve({ reservationId: options.id ?? `decision-${++sequence}`, entries, expiresAtMs: clock.now() + (options.ttlMs ?? 600_000) }));
    const settle = (reservationId: string, entries: { account: BudgetAccount; actual: number }[]) => call(() => ledger.settle({ reservationId, entries }));
    const state = async (account: BudgetAccount) => (await call(() => ledger.state([account])))[0]!;
    return { clock, ledger, daily, rolling, reserve, settle, state };
  }

  it('reserves while spent + reserved + amount fits the limit, and refuses the first request that does not', async () => {
    const { daily, reserve, state } = await setup();
    const team = daily('ml-platform', 10 * CENT);
    expect(await reserve([{ account: team, amount: 4 * CENT }])).toEqual({ ok: true, states: [{ spent: 0, reserved: 4 * CENT, limit: 10 * CENT }] });
    // Exactly up to the limit is allowed.
    expect(await reserve([{ account: team, amount: 6 * CENT }])).toEqual({ ok: true, states: [{ spent: 0, reserved: 10 * CENT, limit: 10 * CENT }] });
    expect(await reserve([{ account: team, amount: 1 }])).toEqual({ ok: false, failedIndex: 0, states: [{ spent: 0, reserved: 10 * CENT, limit: 10 * CENT }] });
    // A zero-amount reservation fits a full budget; nothing else does.
    expect((await reserve([{ account: team, amount: 0 }])).ok).toBe(true);
    expect(await state(team)).toEqual({ spent: 0, reserved: 10 * CENT, limit: 10 * CENT });
  });

  it('reserves all of a request’s budgets or none, naming the first that cannot afford it', async () => {
    const { daily, reserve, state } = await setup();
    const team = daily('product-team', 1_000);
    const project = daily('project=search', 100);
    const customer = daily('customer=acme', 10);
    expect((await reserve([{ account: team, amount: 50 }, { account: project, amount: 80 }])).ok).toBe(true);
    const refused = await reserve([
      { account: team, amount: 50 },
      { account: project, amount: 30 },
      { account: customer, amount: 11 },
    ]);
    expect(refused).toEqual({
      ok: false,
      failedIndex: 1,
      states: [
        { spent: 0, reserved: 50, limit: 1_000 },
        { spent: 0, reserved: 80, limit: 100 },
        { spent: 0, reserved: 0, limit: 10 },
      ],
    });
    // Nothing of the refused request was held anywhere.
    expect(await state(team)).toEqual({ spent: 0, reserved: 50, limit: 1_000 });
    expect(await state(customer)).toEqual({ spent: 0, reserved: 0, limit: 10 });
    expect((await reserve([{ account: team, amount: 950 }, { account: project, amount: 20 }, { account: customer, amount: 10 }])).ok).toBe(true);
  });

  it('admits exactly floor(limit / amount) of 200 parallel reservations, across two budgets at once', async () => {
    const { daily, reserve, state } = await setup();
    const team = daily('parallel', 37 * CENT + 5);
    const org = daily('org=parallel', 1_000 * CENT);
    const results = await Promise.all(Array.from({ length: 200 }, () => reserve([{ account: org, amount: CENT }, { account: team, amount: CENT }])));
    expect(results.filter((result) => result.ok)).toHaveLength(37);
    expect(results.filter((result) => !result.ok).every((result) => !result.ok && result.failedIndex === 1)).toBe(true);
    for (const result of results) expect(result.states[1]!.reserved).toBeLessThanOrEqual(team.limit);
    expect(await state(team)).toEqual({ spent: 0, reserved: 37 * CENT, limit: team.limit });
    expect(await state(org)).toEqual({ spent: 0, reserved: 37 * CENT, limit: org.limit });
  });

  it('under concurrent reserve-then-settle traffic, admitted spend never exceeds the budget', async () => {
    const { daily, reserve, settle, state } = await setup();
    const team = daily('churn', 50 * CENT);
    let admitted = 0;
    let charged = 0;
    // 30 clients, each sending 10 requests one after the other.
    await Promise.all(
      Array.from({ length: 30 }, async (_, client) => {
        for (let request = 0; request < 10; request++) {
          const id = `churn-${client}-${request}`;
          const result = await reserve([{ account: team, amount: 2 * CENT }], { id });
          expect(result.states[0]!.spent + result.states[0]!.reserved).toBeLessThanOrEqual(team.limit);
          if (!result.ok) continue;
          admitted++;
          // The real cost is at most the worst case reserved (here 1 to 2 cents).
          const actual = CENT + ((client + request) % 3) * (CENT / 2);
          const settled = await settle(id, [{ account: team, actual }]);
          expect(settled.applied).toBe(true);
          charged += actual;
          expect(settled.states[0]!.spent + settled.states[0]!.reserved).toBeLessThanOrEqual(team.limit);
        }
      }),
    );
    const final = await state(team);
    expect(final.reserved).toBe(0);
    expect(final.spent).toBe(charged);
    expect(final.spent).toBeLessThanOrEqual(team.limit);
    // Settling returned room, so more than the 25 worst cases were admitted.
    expect(admitted).toBeGreaterThan(25);
  });

  it('settling removes the hold and adds the actual cost; the freed room can be reserved again', async () => {
    const { daily, reserve, settle, state } = await setup();
    const team = daily('settle', 1_000);
    await reserve([{ account: team, amount: 500 }], { id: 'req-a' });
    await reserve([{ account: team, amount: 300 }], { id: 'req-b' });
    expect(await settle('req-a', [{ account: team, actual: 320 }])).toEqual({ applied: true, expired: false, states: [{ spent: 320, reserved: 300, limit: 1_000 }] });
    expect((await reserve([{ account: team, amount: 381 }])).ok).toBe(false);
    expect((await reserve([{ account: team, amount: 380 }])).ok).toBe(true);
    expect(await state(team)).toEqual({ spent: 320, reserved: 680, limit: 1_000 });
  });

  it('an actual of 0 releases the reservation (upstream error): nothing is spent', async () => {
    const { daily, reserve, settle, state } = await setup();
    const team = daily('refund', 1_000);
    await reserve([{ account: team, amount: 1_000 }], { id: 'failed-upstream' });
    expect((await reserve([{ account: team, amount: 1 }])).ok).toBe(false);
    expect(await settle('failed-upstream', [{ account: team, actual: 0 }])).toEqual({ applied: true, expired: false, states: [{ spent: 0, reserved: 0, limit: 1_000 }] });
    expect((await reserve([{ account: team, amount: 1_000 }])).ok).toBe(true);
  });

  it('an actual above the hold is added in full (a provider that ignored the output cap), and then blocks', async () => {
    const { daily, reserve, settle, state } = await setup();
    const team = daily('overshoot', 150);
    await reserve([{ account: team, amount: 100 }], { id: 'ignored-cap' });
    expect(await settle('ignored-cap', [{ account: team, actual: 400 }])).toEqual({ applied: true, expired: false, states: [{ spent: 400, reserved: 0, limit: 150 }] });
    expect(await reserve([{ account: team, amount: 0 }])).toEqual({ ok: false, failedIndex: 0, states: [{ spent: 400, reserved: 0, limit: 150 }] });
    expect(await state(team)).toEqual({ spent: 400, reserved: 0, limit: 150 });
  });

  it('settles each reservation exactly once, even under concurrent duplicate settles', async () => {
    const { daily, reserve, settle, state } = await setup();
    const team = daily('once', 10_000);
    const project = daily('project=once', 10_000);
    await reserve([{ account: team, amount: 700 }, { account: project, amount: 700 }], { id: 'retried' });
    const entries = [{ account: team, actual: 650 }, { account: project, actual: 650 }];
    const results = await Promise.all(Array.from({ length: 50 }, () => settle('retried', entries)));
    expect(results.filter((result) => result.applied)).toHaveLength(1);
    for (const result of results) expect(result.states).toEqual([{ spent: 650, reserved: 0, limit: 10_000 }, { spent: 650, reserved: 0, limit: 10_000 }]);
    expect(await settle('retried', [{ account: team, actual: 9_000 }, { account: project, actual: 9_000 }])).toEqual({
      applied: false,
      expired: false,
      states: [{ spent: 650, reserved: 0, limit: 10_000 }, { spent: 650, reserved: 0, limit: 10_000 }],
    });
    expect(await state(team)).toEqual({ spent: 650, reserved: 0, limit: 10_000 });
  });

  it('a settle of an id never reserved still counts the usage once, as expired', async () => {
    const { daily, settle, state } = await setup();
    const team = daily('unknown', 1_000);
    expect(await settle('never-reserved', [{ account: team, actual: 70 }])).toEqual({ applied: true, expired: true, states: [{ spent: 70, reserved: 0, limit: 1_000 }] });
    expect(await settle('never-reserved', [{ account: team, actual: 70 }])).toMatchObject({ applied: false });
    expect(await state(team)).toEqual({ spent: 70, reserved: 0, limit: 1_000 });
  });

  it('a reservation stops counting at its expiry; settling it later still adds the spend once', async () => {
    const { daily, reserve, settle, state, clock } = await setup();
    const team = daily('expiry', 1_000);
    await reserve([{ account: team, amount: 600 }], { id: 'long-stream', ttlMs: 1_000 });
    clock.advance(999);
    expect(await reserve([{ account: team, amount: 401 }])).toMatchObject({ ok: false, states: [{ spent: 0, reserved: 600 }] });
    clock.advance(1);
    expect(await state(team)).toEqual({ spent: 0, reserved: 0, limit: 1_000 });
    expect(await reserve([{ account: team, amount: 900 }], { id: 'after-expiry', ttlMs: 60_000 })).toMatchObject({ ok: true, states: [{ spent: 0, reserved: 900 }] });
    // The stream that outlived its reservation finally reports its usage.
    expect(await settle('long-stream', [{ account: team, actual: 450 }])).toEqual({ applied: true, expired: true, states: [{ spent: 450, reserved: 900, limit: 1_000 }] });
    expect(await settle('long-stream', [{ account: team, actual: 450 }])).toMatchObject({ applied: false });
    expect(await state(team)).toEqual({ spent: 450, reserved: 900, limit: 1_000 });
  });

  it('renew keeps a live hold past its first expiry, on every account; settling it then is a normal settle', async () => {
    const { daily, rolling, reserve, settle, state, clock, ledger } = await setup();
    const team = daily('renewed', 1_000);
    const window = rolling('renewed', 1_000);
    await reserve([{ account: team, amount: 600 }, { account: window, amount: 600 }], { id: 'open-stream', ttlMs: 1_000 });
    clock.advance(900);
    expect(await call(() => ledger.renew({ reservationId: 'open-stream', accounts: [team, window], expiresAtMs: clock.now() + 1_000 }))).toEqual({ renewed: true });
    clock.advance(900);
    // Past the first expiry: still held, so the rest of the budget is all another request gets.
    expect(await reserve([{ account: team, amount: 401 }])).toMatchObject({ ok: false, states: [{ spent: 0, reserved: 600 }] });
    expect(await state(window)).toEqual({ spent: 0, reserved: 600, limit: 1_000 });
    // An earlier expiry never shortens a hold.
    expect(await call(() => ledger.renew({ reservationId: 'open-stream', accounts: [team, window], expiresAtMs: clock.now() + 1 }))).toEqual({ renewed: true });
    clock.advance(50);
    expect(await state(team)).toEqual({ spent: 0, reserved: 600, limit: 1_000 });
    expect(await settle('open-stream', [{ account: team, actual: 500 }, { account: window, actual: 500 }])).toEqual({ applied: true, expired: false, states: [{ spent: 500, reserved: 0, limit: 1_000 }, { spent: 500, reserved: 0, limit: 1_000 }] });
  });

  it('renew never revives a hold that expired, was settled or never existed', async () => {
    const { daily, reserve, settle, state, clock, ledger } = await setup();
    const team = daily('not-renewed', 1_000);
    const renew = (reservationId: string) => call(() => ledger.renew({ reservationId, accounts: [team], expiresAtMs: clock.now() + 60_000 }));
    expect(await renew('never-reserved')).toEqual({ renewed: false });
    await reserve([{ account: team, amount: 300 }], { id: 'settled-one', ttlMs: 10_000 });
    await settle('settled-one', [{ account: team, actual: 100 }]);
    expect(await renew('settled-one')).toEqual({ renewed: false });
    await reserve([{ account: team, amount: 300 }], { id: 'crashed-replica', ttlMs: 1_000 });
    clock.advance(1_000);
    expect(await renew('crashed-replica')).toEqual({ renewed: false });
    expect(await state(team)).toEqual({ spent: 100, reserved: 0, limit: 1_000 });
    await expect(call(() => ledger.renew({ reservationId: 'x', accounts: [team], expiresAtMs: clock.now() }))).rejects.toThrow(RangeError);
  });

  it('refuses a reservation id used before, live or settled, and changes nothing', async () => {
    const { daily, reserve, settle, state } = await setup();
    const team = daily('reuse', 1_000);
    await reserve([{ account: team, amount: 100 }], { id: 'dup' });
    await expect(reserve([{ account: team, amount: 100 }], { id: 'dup' })).rejects.toThrow(new RangeError('reservation id dup was used before: reservation ids are single-use'));
    await settle('dup', [{ account: team, actual: 100 }]);
    await expect(reserve([{ account: team, amount: 100 }], { id: 'dup' })).rejects.toThrow(RangeError);
    expect(await state(team)).toEqual({ spent: 100, reserved: 0, limit: 1_000 });
  });

  it('a calendar period’s successor is a fresh account; the old period keeps its own spend', async () => {
    const { daily, reserve, settle, state, clock } = await setup();
    const today = daily('calendar', 1_000);
    await reserve([{ account: today, amount: 900 }], { id: 'today' });
    await settle('today', [{ account: today, actual: 900 }]);
    expect((await reserve([{ account: today, amount: 101 }])).ok).toBe(false);
    clock.advance(DAY);
    const tomorrow = daily('calendar', 1_000, today.period.kind === 'calendar' ? today.period.endMs : 0);
    expect(await state(tomorrow)).toEqual({ spent: 0, reserved: 0, limit: 1_000 });
    expect((await reserve([{ account: tomorrow, amount: 1_000 }])).ok).toBe(true);
    expect(await state(today)).toEqual({ spent: 900, reserved: 0, limit: 1_000 });
  });

  it('a rolling window drops spend slot by slot as it ages out', async () => {
    const { rolling, reserve, settle, state, clock } = await setup();
    // 4 hours in 4 hourly slots.
    const team = rolling('rolling', 1_000);
    await settle('hour-0', [{ account: team, actual: 100 }]);
    clock.advance(HOUR);
    await settle('hour-1', [{ account: team, actual: 200 }]);
    clock.advance(HOUR);
    await settle('hour-2', [{ account: team, actual: 300 }]);
    clock.advance(HOUR - 1);
    expect(await state(team)).toEqual({ spent: 600, reserved: 0, limit: 1_000 });
    expect((await reserve([{ account: team, amount: 401 }], { id: 'too-much', ttlMs: 1_000 })).ok).toBe(false);
    clock.advance(1 + HOUR - 1); // the last millisecond of hour 3: hour 0 is still in the window
    expect((await state(team)).spent).toBe(600);
    clock.advance(1); // hour 4: hour 0 drops out
    expect((await state(team)).spent).toBe(500);
    expect((await reserve([{ account: team, amount: 500 }], { id: 'fits-now', ttlMs: 1_000 })).ok).toBe(true);
    clock.advance(HOUR);
    expect(await state(team)).toEqual({ spent: 300, reserved: 0, limit: 1_000 });
    clock.advance(HOUR);
    expect((await state(team)).spent).toBe(0);
    // A settle counts in the slot of its own time, not of its reservation.
    await settle('hour-6', [{ account: team, actual: 50 }]);
    clock.advance(4 * HOUR);
    expect((await state(team)).spent).toBe(0);
  });

  it('reports a never-seen account as empty, and the limit given (a raised budget applies at once)', async () => {
    const { daily, reserve, state, ledger } = await setup();
    expect(await call(() => ledger.state([daily('nobody', 5), daily('nobody-else', 7)]))).toEqual([
      { spent: 0, reserved: 0, limit: 5 },
      { spent: 0, reserved: 0, limit: 7 },
    ]);
    await reserve([{ account: daily('raise', 100), amount: 100 }]);
    expect((await reserve([{ account: daily('raise', 100), amount: 50 }])).ok).toBe(false);
    expect(await reserve([{ account: daily('raise', 150), amount: 50 }])).toEqual({ ok: true, states: [{ spent: 0, reserved: 150, limit: 150 }] });
    expect(await state(daily('raise', 120))).toEqual({ spent: 0, reserved: 150, limit: 120 });
  });

  it('refuses bad input with a clear RangeError and changes nothing', async () => {
    const { daily, rolling, reserve, settle, state, ledger, clock } = await setup();
    const team = daily('validate', 1_000);
    const other = daily('validate-other', 1_000);
    for (const amount of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '5' as unknown as number]) {
      await expect(reserve([{ account: other, amount: 10 }, { account: team, amount }], { id: `bad-${String(amount)}` })).rejects.toThrow(
        /cannot reserve .* on budget account daily\|team=validate: money is a non-negative safe integer of nano-USD/,
      );
      await expect(settle(`bad-settle-${String(amount)}`, [{ account: other, actual: 10 }, { account: team, actual: amount }])).rejects.toThrow(
        /cannot settle .* on budget account daily\|team=validate: money is a non-negative safe integer of nano-USD/,
      );
    }
    await expect(reserve([{ account: daily('bad-limit', -5), amount: 1 }])).rejects.toThrow('budget account daily|team=bad-limit: limit -5 is not valid: money is a non-negative safe integer of nano-USD');
    await expect(reserve([{ account: { ...team, period: { kind: 'calendar', startMs: 10, endMs: 10 } }, amount: 1 }])).rejects.toThrow(/calendar period \[10, 10\) is not valid/);
    await expect(reserve([{ account: rolling('bad-slots', 100, 1_000, 3), amount: 1 }])).rejects.toThrow('budget account rolling|team=bad-slots: a rolling window of 1000 ms cannot be cut into 3 equal slots of whole milliseconds');
    await expect(reserve([{ account: rolling('zero-slots', 100, HOUR, 0), amount: 1 }])).rejects.toThrow(/rolling slots 0 is not valid/);
    await expect(reserve([{ account: team, amount: 1 }], { ttlMs: 0 })).rejects.toThrow(/expiresAtMs .* is not valid: it must be integer epoch milliseconds later than now/);
    await expect(reserve([])).rejects.toThrow(/it needs at least one entry/);
    await expect(reserve([{ account: team, amount: 1 }, { account: { ...team, limit: 5 }, amount: 1 }], { id: 'twice' })).rejects.toThrow('reservation twice: budget account daily|team=validate is listed twice (one entry per account)');
    await expect(call(() => ledger.reserve({ reservationId: '', entries: [{ account: team, amount: 1 }], expiresAtMs: clock.now() + 1_000 }))).rejects.toThrow(/reservation id "" is not valid/);
    await expect(call(() => ledger.state([{ ...team, id: '' }]))).rejects.toThrow(/budget account id "" is not valid/);
    expect(await state(team)).toEqual({ spent: 0, reserved: 0, limit: 1_000 });
    expect(await state(other)).toEqual({ spent: 0, reserved: 0, limit: 1_000 });
    // The ledger keeps serving.
    expect((await reserve([{ account: team, amount: 1_000 }])).ok).toBe(true);
  });

  it('holds amounts up to 2^53 - 1 nano-USD exactly', async () => {
    const { daily, reserve, settle, state } = await setup();
    const max = Number.MAX_SAFE_INTEGER;
    const whale = daily('whale', max);
    await reserve([{ account: whale, amount: max - 1 }], { id: 'big' });
    expect((await reserve([{ account: whale, amount: 2 }])).ok).toBe(false);
    expect(await reserve([{ account: whale, amount: 1 }], { id: 'last' })).toEqual({ ok: true, states: [{ spent: 0, reserved: max, limit: max }] });
    await settle('big', [{ account: whale, actual: max - 3 }]);
    expect(await state(whale)).toEqual({ spent: max - 3, reserved: 1, limit: max });
  });
});

// Two replicas: two ledgers, each with its own client, sharing one Redis (or one Redis Cluster).
describe.each([
  { name: 'redis', connect: redisLedger },
  { name: 'redis cluster', connect: clusterLedger },
])('budget ledger contract: two replicas on $name', ({ connect: redisLedger }) => {
  it('never overspend together: exactly floor(limit / amount) of 200 parallel reservations across both', async () => {
    const clock = manualClock();
    const prefix = `test:${randomUUID()}`;
    const [left, right] = [await redisLedger(clock.now, prefix), await redisLedger(clock.now, prefix)];
    const team: BudgetAccount = { id: 'daily|team=shared', limit: 41 * CENT + CENT / 2, period: { kind: 'calendar', startMs: clock.now(), endMs: clock.now() + DAY } };
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, index) =>
        (index % 2 === 0 ? left : right).reserve({ reservationId: `shared-${index}`, entries: [{ account: team, amount: CENT }], expiresAtMs: clock.now() + 60_000 }),
      ),
    );
    expect(results.filter((result) => result.ok)).toHaveLength(41);
    expect(await left.state([team])).toEqual([{ spent: 0, reserved: 41 * CENT, limit: team.limit }]);
  });

  it('settle once across replicas: a settlement retried on the other replica changes nothing', async () => {
    const clock = manualClock();
    const prefix = `test:${randomUUID()}`;
    const [left, right] = [await redisLedger(clock.now, prefix), await redisLedger(clock.now, prefix)];
    const team: BudgetAccount = { id: 'daily|team=retry', limit: 1_000, period: { kind: 'calendar', startMs: clock.now(), endMs: clock.now() + DAY } };
    await left.reserve({ reservationId: 'moved', entries: [{ account: team, amount: 500 }], expiresAtMs: clock.now() + 60_000 });
    const results = await Promise.all([left, right, left, right].map((ledger) => ledger.settle({ reservationId: 'moved', entries: [{ account: team, actual: 400 }] })));
    expect(results.map((result) => result.applied).filter(Boolean)).toHaveLength(1);
    expect(await right.state([team])).toEqual([{ spent: 400, reserved: 0, limit: 1_000 }]);
  });
});
