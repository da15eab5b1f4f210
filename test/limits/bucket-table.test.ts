import { describe, expect, it } from 'vitest';
import { BucketTable } from '../../src/limits/bucket-table.js';
import { seededRandom } from '../support/seeded-random.js';


/** The same operations on a Map kept in recency order: the behaviour the table must match. */
class ReferenceTable {
  readonly entries = new Map<string, number>();
  set(key: string, value: number): void {
    this.entries.delete(key);
    this.entries.set(key, value);
  }
  deleteOldest(): void {
    const oldest = this.entries.keys().next();
    if (!oldest.done) this.entries.delete(oldest.value);
  }
  deleteOldestWhileAtMost(threshold: number, limit: number): void {
    let looked = 0;
    for (const [key, value] of this.entries) {
      if (looked++ >= limit || value > threshold) return;
      this.entries.delete(key);
    }
  }
}

describe('BucketTable', () => {
  it('answers like a recency-ordered Map through random sets, deletes and evictions, across growing and shrinking', () => {
    const random = seededRandom(7);
    const table = new BucketTable();
    const reference = new ReferenceTable();
    const keyCount = 20_000;
    for (let step = 0; step < 200_000; step++) {
      // Phases: fill past several doublings, then drain below a quarter so the arrays halve.
      const draining = step % 100_000 > 70_000;
      const roll = random();
      const key = `customer-${Math.floor(random() * keyCount)}`;
      if (!draining && roll < 0.7) {
        const value = Math.floor(random() * 1_000);
        table.set(key, value);
        reference.set(key, value);
      } else if (roll < 0.8) {
        expect(table.delete(key)).toBe(reference.entries.delete(key));
      } else if (roll < 0.9) {
        table.deleteOldest();
        reference.deleteOldest();
      } else {
        const threshold = Math.floor(random() * 1_000);
        table.deleteOldestWhileAtMost(threshold, 8);
        reference.deleteOldestWhileAtMost(threshold, 8);
      }
      expect(table.get(key)).toBe(reference.entries.get(key));
      if (step % 10_000 === 0) expect(table.size).toBe(reference.entries.size);
    }
    expect(table.size).toBe(reference.entries.size);
    for (const [key, value] of reference.entries) expect(table.get(key)).toBe(value);
    // Recency order survives renumbering: draining oldest-first yields the Map's order.
    const oldestFirst = [...reference.entries.values()];
    for (const value of oldestFirst) {
      expect(table.size).toBeGreaterThan(0);
      table.deleteOldestWhileAtMost(value, 1);
      reference.deleteOldestWhileAtMost(value, 1);
      expect(table.size).toBe(reference.entries.size);
    }
    expect(table.size).toBe(0);
  });

  it('keeps 300,000 similar keys apart (no fingerprint collisions) and finds each again', () => {
    const table = new BucketTable();
    for (let index = 0; index < 300_000; index++) table.set(`mem-${index}`, index);
    expect(table.size).toBe(300_000);
    for (let index = 0; index < 300_000; index++) expect(table.get(`mem-${index}`)).toBe(index);
    expect(table.get('mem-300000')).toBeUndefined();
  });

  it('tells apart keys that differ only in non-ASCII characters or length', () => {
    const table = new BucketTable();
    const keys = ['team-é', 'team-e', 'team-ë', 'チーム', 'チーム ', '', '\u0000', '\u0000\u0000'];
    keys.forEach((key, index) => table.set(key, index));
    keys.forEach((key, index) => expect(table.get(key)).toBe(index));
    expect(table.size).toBe(keys.length);
  });

  it('holds a bucket in under 40 bytes and gives the memory back when emptied', () => {
    const table = new BucketTable();
    const keys = 500_000;
    for (let index = 0; index < keys; index++) table.set(`customer-${index}`, index);
    // The arrays double, so the bound is per slot of the current capacity (2^19 here).
    expect(table.byteLength / keys).toBeLessThan(40);
    table.deleteOldestWhileAtMost(Number.POSITIVE_INFINITY, keys);
    expect(table.size).toBe(0);
    expect(table.byteLength).toBeLessThan(64 * 1024);
  });

  it('clear() empties the table', () => {
    const table = new BucketTable();
    for (let index = 0; index < 5_000; index++) table.set(`k${index}`, index);
    table.clear();
    expect(table.size).toBe(0);
    expect(table.get('k1')).toBeUndefined();
    table.set('k1', 3);
    expect(table.get('k1')).toBe(3);
  });
});
