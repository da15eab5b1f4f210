import { describe, expect, it } from 'vitest';
import type { BudgetAccount } from '../../src/limits/budget-ledger.js';
import { createMemoryBudgetLedger } from '../../src/limits/memory-budget-ledger.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const START = 1_700_000_000_000;

function setup(options: { maxAccounts?: number; maxSettledIds?: number; settledRetentionMaxMs?: number } = {}) {
  let now = START;
  const ledger = createMemoryBudgetLedger({ clock: () => now, ...options });
  const daily = (name: string, limit = 1_000): BudgetAccount => ({ id: `daily|team=${name}`, limit, period: { kind: 'calendar', startMs: START, endMs: START + DAY } });
  return { ledger, daily, advance: (ms: number) => (now += ms), now: () => now };
}

describe('memory budget ledger bounds', () => {
  it('past maxAccounts evicts the least recently used account without live reservations', async () => {
    const { ledger, daily, now } = setup({ maxAccounts: 3 });
    ledger.reserve({ reservationId: 'held', entries: [{ account: daily('a'), amount: 500 }], expiresAtMs: now() + 60_000 });
    ledger.settle({ reservationId: 'b-spend', entries: [{ account: daily('b'), actual: 100 }] });
    ledger.settle({ reservationId: 'c-spend', entries: [{ account: daily('c'), actual: 100 }] });
    ledger.settle({ reservationId: 'd-spend', entries: [{ account: daily('d'), actual: 100 }] });
    expect(ledger.size().accounts).toBe(3);
    // a is the least recently used, but its reservation is live: b went instead.
    expect(ledger.state([daily('a'), daily('b'), daily('c'), daily('d')])).toEqual([
      { spent: 0, reserved: 500, limit: 1_000 },
      { spent: 0, reserved: 0, limit: 1_000 },
      { spent: 100, reserved: 0, limit: 1_000 },
      { spent: 100, reserved: 0, limit: 1_000 },
    ]);
  });

  it('when every account holds a live reservation, the least recently used goes all the same', async () => {
    const { ledger, daily, now } = setup({ maxAccounts: 2 });
    for (const name of ['a', 'b', 'c']) ledger.reserve({ reservationId: name, entries: [{ account: daily(name), amount: 100 }], expiresAtMs: now() + 60_000 });
    expect(ledger.size().accounts).toBe(2);
    expect(ledger.state([daily('a'), daily('b'), daily('c')]).map((state) => state.reserved)).toEqual([0, 100, 100]);
  });

  it('forgets expired reservations of idle accounts, and the accounts they leave empty', async () => {
    const { ledger, daily, now, advance } = setup();
    for (let index = 0; index < 100; index++) {
      ledger.reserve({ reservationId: `orphan-${index}`, entries: [{ account: daily(`idle-${index}`), amount: 10 }], expiresAtMs: now() + 1_000 });
    }
    expect(ledger.size()).toEqual({ accounts: 100, reservations: 100, settledIds: 0 });
    advance(1_000);
    for (let index = 0; index < 20; index++) ledger.state([daily('busy')]);
    for (let index = 0; index < 20; index++) ledger.settle({ reservationId: `busy-settle-${index}`, entries: [{ account: daily('busy'), actual: 1 }] });
    expect(ledger.size().reservations).toBe(0);
    expect(ledger.size().accounts).toBe(1);
  });

  it('bounds the settled ids it remembers, and forgets them once their retention is over', async () => {
    const { ledger, daily, advance } = setup({ maxSettledIds: 5 });
    for (let index = 0; index < 10; index++) ledger.settle({ reservationId: `s-${index}`, entries: [{ account: daily('team'), actual: 1 }] });
    expect(ledger.size().settledIds).toBe(5);
    // The most recent are kept: a duplicate of one of them changes nothing.
    expect(ledger.settle({ reservationId: 's-9', entries: [{ account: daily('team'), actual: 1 }] }).applied).toBe(false);
    advance(DAY);
    for (let index = 0; index < 3; index++) ledger.state([daily('team')]);
    ledger.settle({ reservationId: 'late', entries: [{ account: daily('other'), actual: 1 }] });
    expect(ledger.size().settledIds).toBe(1);
  });

  it('forgets a calendar account a grace period after its period ends', async () => {
    const { ledger, daily, advance } = setup();
    ledger.settle({ reservationId: 'old', entries: [{ account: daily('old'), actual: 100 }] });
    advance(DAY + DAY - 1);
    ledger.settle({ reservationId: 'new-1', entries: [{ account: { ...daily('new'), period: { kind: 'calendar', startMs: START + DAY, endMs: START + 2 * DAY } }, actual: 1 }] });
    expect(ledger.state([daily('old')])[0]!.spent).toBe(100);
    advance(1);
    ledger.settle({ reservationId: 'new-2', entries: [{ account: { ...daily('new'), period: { kind: 'calendar', startMs: START + DAY, endMs: START + 2 * DAY } }, actual: 1 }] });
    expect(ledger.size().accounts).toBe(1);
  });

  it('refuses bounds that are not positive integers', () => {
    expect(() => createMemoryBudgetLedger({ clock: () => 0, maxAccounts: 0 })).toThrow('maxAccounts 0 is not valid: it must be a positive integer');
    expect(() => createMemoryBudgetLedger({ clock: () => 0, maxSettledIds: 1.5 })).toThrow('maxSettledIds 1.5 is not valid: it must be a positive integer');
  });
});
