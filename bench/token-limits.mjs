// Cost of the rate-limit store calls a token limit adds: take() of a request bucket (as before),
// take() of a token bucket (admission: a read), and charge() (settlement), memory and Redis.
// Run after `npm run build`:  PATH=node_modules/.bin:$PATH node bench/token-limits.mjs [dist-dir]
// Redis: set REDIS_URL (e.g. a redis-server started on 127.0.0.1:6390) to include it.
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const dist = resolve(process.argv[2] ?? 'dist');
const load = (path) => import(pathToFileURL(resolve(dist, path)).href);
const { createMemoryRateLimitStore } = await load('limits/memory-rate-limit-store.js');

const requestSpec = { scope: 'per-customer:customerId', capacity: 100, refillAmount: 100, refillEveryMs: 60_000, shadow: false };
const tokenSpec = { scope: 'tokens-per-team:team#tokens', capacity: 200_000, refillAmount: 200_000, refillEveryMs: 60_000, unit: 'tokens', shadow: false };
const keys = Array.from({ length: 10_000 }, (_, index) => `customer-${index}`);

function timeSync(label, count, run) {
  for (let index = 0; index < count / 10; index++) run(index); // warm-up
  const started = process.hrtime.bigint();
  for (let index = 0; index < count; index++) run(index);
  const ns = Number(process.hrtime.bigint() - started) / count;
  console.log(JSON.stringify({ backend: 'memory', op: label, nsPerCall: Math.round(ns), callsPerSecond: Math.round(1e9 / ns) }));
}

let now = 0;
const memory = createMemoryRateLimitStore({ clock: () => now++ / 1000 });
const count = 2_000_000;
timeSync('take request bucket', count, (index) => memory.take([{ ...requestSpec, key: keys[index % keys.length] }]));
if (typeof memory.charge === 'function') {
  timeSync('take token bucket', count, (index) => memory.take([{ ...tokenSpec, key: keys[index % 100] }]));
  timeSync('take request + token bucket', count, (index) => memory.take([{ ...requestSpec, key: keys[index % keys.length] }, { ...tokenSpec, key: keys[index % 100] }]));
  timeSync('charge token bucket', count, (index) => memory.charge([{ check: { ...tokenSpec, key: keys[index % 100] }, amount: 1 }]));
}

if (process.env.REDIS_URL) {
  const { connectRedis, waitForRedis } = await load('limits/redis-connection.js');
  const { createRedisRateLimitStore } = await load('limits/redis-rate-limit-store.js');
  const client = connectRedis(process.env.REDIS_URL, { timeoutMs: 1_000, onError: () => undefined });
  if (!(await waitForRedis(client, 5_000))) throw new Error(`redis at ${process.env.REDIS_URL} not ready`);
  const redis = createRedisRateLimitStore({ client, clock: () => Date.now() });
  async function timeAsync(label, total, inFlight, run) {
    for (let index = 0; index < 2_000; index++) await run(index);
    let next = 0;
    const started = process.hrtime.bigint();
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (next < total) await run(next++);
    }));
    const ns = Number(process.hrtime.bigint() - started);
    console.log(JSON.stringify({ backend: 'redis', op: label, inFlight, callsPerSecond: Math.round((total * 1e9) / ns), usPerCallAtOneInFlight: inFlight === 1 ? Math.round(ns / total / 1000) : undefined }));
  }
  // Large capacities so nothing is refused (a refusal would be answered from the local cache).
  const big = { capacity: 1e12, refillAmount: 1e12 };
  for (const inFlight of [1, 64]) {
    const total = inFlight === 1 ? 10_000 : 50_000;
    await timeAsync('take request bucket', total, inFlight, (index) => redis.take([{ ...requestSpec, ...big, key: keys[index % keys.length] }]));
    if (typeof redis.charge === 'function') {
      await timeAsync('take request + token bucket', total, inFlight, (index) => redis.take([{ ...requestSpec, ...big, key: keys[index % keys.length] }, { ...tokenSpec, ...big, key: keys[index % 100] }]));
      await timeAsync('charge token bucket', total, inFlight, (index) => redis.charge([{ check: { ...tokenSpec, ...big, key: keys[index % 100] }, amount: 500 }]));
    }
  }
  await redis.close();
}
