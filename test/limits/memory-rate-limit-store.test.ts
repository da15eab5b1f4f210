import { describe, expect, it } from 'vitest';
import { createMemoryRateLimitStore } from '../../src/limits/memory-rate-limit-store.js';

const spec = { scope: 'per-customer:customerId', capacity: 100, refillAmount: 100, refillEveryMs: 60_000, shadow: false };

describe('memory rate-limit store stays bounded', () => {
  it('forgets refilled buckets as traffic goes on, which changes no answer', () => {
    let now = 0;
    const store = createMemoryRateLimitStore({ clock: () => now });
    for (let index = 0; index < 10_000; index++) store.take([{ ...spec, key: `customer-${index}` }]);
    expect(store.size()).toBe(10_000);
    now += 600; // one token refills in 600 ms: every bucket so far is full again
    for (let index = 0; index < 10_000; index++) store.take([{ ...spec, key: `next-${index}` }]);
    // Each call forgets up to 8 refilled buckets at the head: the old ones are gone.
    expect(store.size()).toBe(10_000);
    const again = store.take([{ ...spec, key: 'customer-1' }]);
    expect(again.buckets[0]!.remaining).toBe(99);
  });

  it('keeps a bucket that has not refilled', () => {
    let now = 0;
    const store = createMemoryRateLimitStore({ clock: () => now });
    for (let index = 0; index < 50; index++) store.take([{ ...spec, key: 'hot' }]);
    now += 1_500;
    for (let index = 0; index < 20; index++) store.take([{ ...spec, key: `other-${index}` }]);
    expect(store.take([{ ...spec, key: 'hot' }]).buckets[0]!.remaining).toBe(51);
  });

  it('caps live buckets, evicting the least recently used', () => {
    const store = createMemoryRateLimitStore({ clock: () => 0, maxBuckets: 3 });
    for (const key of ['a', 'b', 'c']) store.take([{ ...spec, key }]);
    store.take([{ ...spec, key: 'a' }]); // a is now the most recent
    store.take([{ ...spec, key: 'd' }]);
    expect(store.size()).toBe(3);
    expect(store.take([{ ...spec, key: 'a' }]).buckets[0]!.remaining).toBe(97);
    expect(store.take([{ ...spec, key: 'b' }]).buckets[0]!.remaining).toBe(99); // b was evicted: starts full
  });

  it('past the cap, a flood of one limit’s keys evicts that limit’s buckets, not another limit’s debt', () => {
    const store = createMemoryRateLimitStore({ clock: () => 0, maxBuckets: 100 });
    const team = { scope: 'tokens-per-team:team#tokens', key: 'ml-platform', capacity: 1_000, refillAmount: 1_000, refillEveryMs: 60_000, unit: 'tokens' as const, shadow: false };
    for (let index = 0; index < 1_000; index++) store.take([{ ...spec, key: `flood-${index}` }]);
    store.charge([{ check: team, amount: 1_500 }]);
    for (let index = 0; index < 10; index++) store.take([{ ...spec, key: `more-${index}` }]);
    expect(store.size()).toBe(100);
    expect(store.take([team]).buckets[0]).toMatchObject({ conforming: false, remaining: -500 });
  });
});
