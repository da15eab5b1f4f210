import { describe, expect, it } from 'vitest';
import { periodWindow } from '../../src/policy/budget-periods.js';

/**
 * UTC budgets (the default time zone) compute their windows from Date, not Intl: they must be the
 * windows the Intl path gives for a zone with the same clock (Etc/GMT goes through Intl), at every
 * kind of boundary: day, Monday, month, year, leap day.
 */
describe('UTC calendar windows without Intl', () => {
  it('equal the Intl windows of Etc/GMT for daily, weekly and monthly periods', () => {
    const edges = [Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1), Date.UTC(2028, 1, 29, 12), Date.UTC(2026, 2, 29, 1, 30), Date.UTC(2026, 11, 7, 0, 0, 0, 1), Date.UTC(1999, 11, 31, 23, 59, 59)];
    const instants = [...edges, ...Array.from({ length: 300 }, (_, index) => Date.UTC(2026, 0, 1) + index * 29 * 3_600_000 + index * 7_919)];
    for (const unit of ['daily', 'weekly', 'monthly'] as const) {
      for (const nowMs of instants) {
        const at = `${unit} ${new Date(nowMs).toISOString()}`;
        const intl = periodWindow({ kind: 'calendar', unit, timeZone: 'Etc/GMT' }, nowMs);
        expect(periodWindow({ kind: 'calendar', unit, timeZone: 'UTC' }, nowMs), at).toEqual(intl);
        expect(periodWindow({ kind: 'calendar', unit, timeZone: 'etc/utc' }, nowMs), at).toEqual(intl);
      }
    }
  });

  it('starts weeks on Monday and months on the 1st, at midnight UTC', () => {
    const sunday = Date.UTC(2026, 11, 6, 18); // Sunday 6 December 2026
    expect(periodWindow({ kind: 'calendar', unit: 'weekly', timeZone: 'UTC' }, sunday)).toEqual({ startMs: Date.UTC(2026, 10, 30), endMs: Date.UTC(2026, 11, 7) });
    expect(periodWindow({ kind: 'calendar', unit: 'monthly', timeZone: 'UTC' }, sunday)).toEqual({ startMs: Date.UTC(2026, 11, 1), endMs: Date.UTC(2027, 0, 1) });
    expect(periodWindow({ kind: 'calendar', unit: 'daily', timeZone: 'UTC' }, sunday)).toEqual({ startMs: Date.UTC(2026, 11, 6), endMs: Date.UTC(2026, 11, 7) });
  });
});
