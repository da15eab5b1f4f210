// Cost of the budget ledger per request: a reservation before the call and a settlement after it,
// for one budget and for two (team + project: memory one call each; Redis one script per account, each account in its own slot), memory and Redis.
// Run after `npm run build`:  PATH=node_modules/.bin:$PATH node bench/budget-ledger.mjs [dist-dir]
// Redis: set REDIS_URL (e.g. a redis-server started on 127.0.0.1:6390) to include it.
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const dist = resolve(process.argv[2] ?? 'dist');
const load = (path) => import(pathToFileURL(resolve(dist, path)).href);
const { createMemoryBudgetLedger } = await load('limits/memory-budget-ledger.js');

const DAY = 86_400_000;
const dayStart = Math.floor(Date.now() / DAY) * DAY;
// $1M a day: nothing is ever refused, so every call does the full work.
const limit = 1_000_000 * 1e9;
const teams = Array.from({ length: 1_000 }, (_, index) => ({ id: `daily|team=team-${index}`, limit, period: { kind: 'calendar', startMs: dayStart, endMs: dayStart + DAY } }));
const projects = Array.from({ length: 100 }, (_, index) => ({ id: `rolling|project=p-${index}`, limit, period: { kind: 'rolling', windowMs: DAY, slots: 24 } }));
const accountsOf = (budgets, index) => (budgets === 1 ? [teams[index % teams.length]] : [teams[index % teams.length], projects[index % projects.length]]);
// A worst case of 2 cents reserved, 1.2 cents actually spent.
const reserveRequest = (id, accounts, now) => ({ reservationId: id, entries: accounts.map((account) => ({ account, amount: 20_000_000 })), expiresAtMs: now + 600_000 });
const settleRequest = (id, accounts) => ({ reservationId: id, entries: accounts.map((account) => ({ account, actual: 12_000_000 })) });
const print = (row) => console.log(JSON.stringify(row));

{
  const memory = createMemoryBudgetLedger({ clock: () => Date.now() });
  let sequence = 0;
  const count = 300_000;
  for (const budgets of [1, 2]) {
    const run = (index) => {
      const id = `m-${sequence++}`;
      const accounts = accountsOf(budgets, index);
      if (!memory.reserve(reserveRequest(id, accounts, Date.now())).ok) throw new Error('refused');
      memory.settle(settleRequest(id, accounts));
    };
    for (let index = 0; index < count / 10; index++) run(index); // warm-up
    const started = process.hrtime.bigint();
    for (let index = 0; index < count; index++) run(index);
    const ns = Number(process.hrtime.bigint() - started) / count;
    print({ backend: 'memory', op: `reserve + settle, ${budgets} budget${budgets > 1 ? 's' : ''}`, nsPerRequest: Math.round(ns), requestsPerSecond: Math.round(1e9 / ns) });
  }
  print({ backend: 'memory', op: 'held after the run', ...memory.size() });
  await memory.close();
}

if (process.env.REDIS_URL) {
  const { connectRedis, waitForRedis } = await load('limits/redis-connection.js');
  const { createRedisBudgetLedger } = await load('limits/redis-budget-ledger.js');
  const client = connectRedis(process.env.REDIS_URL, { timeoutMs: 1_000, onError: () => undefined });
  if (!(await waitForRedis(client, 5_000))) throw new Error(`redis at ${process.env.REDIS_URL} not ready`);
  const redis = createRedisBudgetLedger({ client, clock: () => Date.now(), keyPrefix: `bench:${process.pid}` });
  let sequence = 0;
  async function timeAsync(label, total, inFlight, run) {
    for (let index = 0; index < 2_000; index++) await run(index);
    let next = 0;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < total) await run(next++);
      }),
    );
    const ns = Number(process.hrtime.bigint() - started);
    print({ backend: 'redis', op: label, inFlight, requestsPerSecond: Math.round((total * 1e9) / ns), usPerRequestAtOneInFlight: inFlight === 1 ? Math.round(ns / total / 1000) : undefined });
  }
  for (const inFlight of [1, 64]) {
    const total = inFlight === 1 ? 10_000 : 40_000;
    for (const budgets of [1, 2]) {
      await timeAsync(`reserve + settle, ${budgets} budget${budgets > 1 ? 's' : ''}`, total, inFlight, async (index) => {
        const id = `r-${sequence++}`;
        const accounts = accountsOf(budgets, index);
        if (!(await redis.reserve(reserveRequest(id, accounts, Date.now()))).ok) throw new Error('refused');
        await redis.settle(settleRequest(id, accounts));
      });
    }
  }
  const memory = await client.info('memory');
  print({ backend: 'redis', op: 'after the run', keys: await client.dbsize(), usedMemory: /used_memory_human:(\S+)/.exec(memory)?.[1] });
  await redis.close();
}
