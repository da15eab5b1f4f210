import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createIsoTime } from '../../src/telemetry/iso-time.js';

describe('the log lines\' time', () => {
  it('is pino\'s isoTime to the millisecond, across seconds, days and years', () => {
    let now = 0;
    const isoTime = createIsoTime(() => now);
    const moments = [Date.UTC(2026, 11, 5, 1, 45, 40, 123), Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1), Date.UTC(2024, 1, 29, 12), 0, 253402300799999, 253402300800000, -1];
    let seed = 7;
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    for (let i = 0; i < 2_000; i++) moments.push(Math.floor(random() * 4e12));
    // Runs of nearby times: the cached second is reused and left as the clock moves on.
    const base = Date.UTC(2026, 11, 5, 1, 59, 58, 990);
    for (let step = 0; step < 3_000; step += 7) moments.push(base + step);
    for (const moment of moments) {
      now = moment;
      const realNow = Date.now;
      Date.now = () => moment;
      try {
        expect(isoTime()).toBe(pino.stdTimeFunctions.isoTime());
      } finally {
        Date.now = realNow;
      }
    }
  });
});
