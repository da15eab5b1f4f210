import { describe, expect, it } from 'vitest';
import { createHeldRequestBodies, type HeldBody } from '../../src/envoy/held-request-bodies.js';

/** A body as the session keeps it: the chunks and its count. */
function body(): HeldBody & { bytes: number } {
  return { bytes: 0, chunks: [], evicted: false };
}
function push(held: ReturnType<typeof createHeldRequestBodies>, target: ReturnType<typeof body>, size: number): void {
  target.chunks.push(Buffer.alloc(size));
  target.bytes += size;
  held.grew(target, size);
}

describe('held request bodies (one round trip): bounded in total', () => {
  it('keeps every body while the total fits, and counts what is released', () => {
    const held = createHeldRequestBodies({ maxBytes: 1000 });
    const [a, b] = [body(), body()];
    push(held, a, 400);
    push(held, b, 600);
    expect(held.bytes).toBe(1000);
    expect([a.evicted, b.evicted]).toEqual([false, false]);
    held.release(a);
    held.release(a);
    expect(held.bytes).toBe(600);
  });

  it('past the bound lets go of the largest first, dropping its chunks; a small newcomer stays', () => {
    const evicted: number[] = [];
    const totals: number[] = [];
    const held = createHeldRequestBodies({ maxBytes: 1000, evicted: (bytes) => evicted.push(bytes), changed: (bytes) => totals.push(bytes) });
    const [big, medium, small] = [body(), body(), body()];
    push(held, big, 600);
    push(held, medium, 350);
    push(held, small, 100);
    expect(big.evicted).toBe(true);
    expect(big.chunks).toHaveLength(0);
    expect([medium.evicted, small.evicted]).toEqual([false, false]);
    expect(held.bytes).toBe(450);
    expect(evicted).toEqual([600]);
    expect(totals).toEqual([600, 950, 450]);
    // An evicted body no longer counts, even if more of it arrives or it is released.
    held.grew(big, 10);
    held.release(big);
    expect(held.bytes).toBe(450);
  });

  it('a body that grows past the bound alone is let go itself', () => {
    const held = createHeldRequestBodies({ maxBytes: 1000 });
    const [growing, other] = [body(), body()];
    push(held, other, 100);
    push(held, growing, 800);
    push(held, growing, 200);
    expect(growing.evicted).toBe(true);
    expect(other.evicted).toBe(false);
    expect(held.bytes).toBe(100);
  });
});
