import { describe, expect, it } from 'vitest';
import { periodWindow, type BudgetPeriod } from '../../src/policy/budget-periods.js';

/**
 * periodWindow keeps the last calendar window per period (it answers every instant inside it):
 * the cached answers equal freshly computed ones, across a DST change and period boundaries,
 * and an instant outside the window (later, or earlier: a clock set back) gets its own.
 */
describe('calendar period windows, cached per period', () => {
  it('answers like a fresh computation for every instant, in order and out of order', () => {
    for (const [unit, timeZone] of [['daily', 'Europe/Berlin'], ['weekly', 'America/Santiago'], ['monthly', 'UTC'], ['daily', 'Australia/Lord_Howe']] as const) {
      const shared: BudgetPeriod = { kind: 'calendar', unit, timeZone };
      const start = Date.UTC(2026, 2, 27); // around the March DST changes
      const instants = Array.from({ length: 400 }, (_, index) => start + index * 37 * 60_000);
      for (const nowMs of [...instants, ...instants.slice().reverse(), start - 86_400_000 * 40]) {
        const fresh = periodWindow({ kind: 'calendar', unit, timeZone }, nowMs);
        const cached = periodWindow(shared, nowMs);
        expect(cached, `${unit} ${timeZone} ${new Date(nowMs).toISOString()}`).toEqual(fresh);
        expect(cached.startMs <= nowMs && nowMs < cached.endMs).toBe(true);
      }
    }
  });
});
