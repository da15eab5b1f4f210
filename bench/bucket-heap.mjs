// Memory taken by one million live in-memory rate-limit buckets (none refilled yet): JS heap
// plus the typed arrays outside it (`arrayBuffers`).
// Run after `npm run build`:  PATH=node_modules/.bin:$PATH node --expose-gc bench/bucket-heap.mjs
import { createMemoryRateLimitStore } from '../dist/limits/memory-rate-limit-store.js';

const count = Number(process.argv[2] ?? 1_000_000);
global.gc?.();
const before = process.memoryUsage();
const now = 0;
const store = createMemoryRateLimitStore({ clock: () => now, maxBuckets: count });
const spec = { scope: 'per-customer:customerId', capacity: 100, refillAmount: 100, refillEveryMs: 60_000, shadow: false };
for (let index = 0; index < count; index++) store.take([{ ...spec, key: `customer-${String(index).padStart(7, '0')}` }]);
// Array buffers are freed by a background task after the collection that finds them dead.
global.gc?.();
await new Promise((resolve) => setTimeout(resolve, 200));
global.gc?.();
const after = process.memoryUsage();
const taken = after.heapUsed - before.heapUsed + after.arrayBuffers - before.arrayBuffers;
const mb = (bytes) => (bytes / 1048576).toFixed(1);
console.log(JSON.stringify({
  buckets: store.size(),
  heapDeltaMB: mb(after.heapUsed - before.heapUsed),
  arrayBuffersDeltaMB: mb(after.arrayBuffers - before.arrayBuffers),
  bytesPerBucket: Math.round(taken / count),
  rssMB: mb(after.rss),
}));
