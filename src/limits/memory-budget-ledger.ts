import {
  ACCOUNT_GRACE_MS,
  DEFAULT_SETTLED_RETENTION_MAX_MS,
  accountStorageKey,
  assertAccounts,
  assertRenewRequest,
  assertReserveRequest,
  assertSettleRequest,
  settledUntilMs,
  slotIndexAt,
  slotWidthMs,
} from './budget-account.js';
import type { AccountState, BudgetAccount, BudgetLedger, RenewRequest, RenewResult, ReserveRequest, ReserveResult, SettleRequest, SettleResult } from './budget-ledger.js';

export interface MemoryBudgetLedgerOptions {
  /** Milliseconds since the epoch; injected so tests control time. */
  readonly clock: () => number;
  /** Hard cap on accounts kept; past it the least recently used account without live reservations goes first. Default 100,000. */
  readonly maxAccounts?: number;
  /**
   * Hard cap on remembered settled reservation ids (~110 bytes each). Default 100,000: in one process a
   * repeated settle comes from the same exchange's own paths within seconds, so the last 100 s at
   * 1,000 exchanges a second are plenty; 1,000,000 held ~110 MB after 17 minutes at that rate.
   */
  readonly maxSettledIds?: number;
  /** Longest a settled id is remembered past its reservation's expiry. Default 24 h. */
  readonly settledRetentionMaxMs?: number;
}

export interface MemoryBudgetLedger extends BudgetLedger {
  reserve(request: ReserveRequest): ReserveResult;
  settle(request: SettleRequest): SettleResult;
  renew(request: RenewRequest): RenewResult;
  state(accounts: readonly BudgetAccount[]): readonly AccountState[];
  /** Accounts, live reservations and remembered settled ids held (for tests of the bounds). */
  size(): { accounts: number; reservations: number; settledIds: number };
}

interface Hold {
  readonly amount: number;
  readonly expiresAtMs: number;
}

interface Account {
  readonly key: string;
  /** Neighbours in recency order (older, newer). */
  older: Account | undefined;
  newer: Account | undefined;
  /** The period as last seen (a rolling account's slot width is part of its key, its slot count is not). */
  period: BudgetAccount['period'];
  /** Calendar: the period's settled spend. */
  spent: number;
  /** Rolling: settled spend per slot index. */
  readonly slots: Map<number, number>;
  readonly holds: Map<string, Hold>;
  reserved: number;
  /** No hold expires before this (a lower bound: a settled hold may have been the earliest). */
  nextExpiryMs: number;
}

interface LiveReservation {
  expiresAtMs: number;
  readonly accountKeys: readonly string[];
}

/** How many reservations, settled ids and idle accounts each call looks at for forgetting. */
const SWEEP_PER_CALL = 8;
/** How far past the least recently used account eviction looks for one without live reservations. */
const EVICTION_SCAN = 64;

/**
 * Walks a map's entries round and round, a few per call. A persistent
 * iterator passes each deleted slot once, where a fresh iteration from the
 * head would walk every slot deleted there since the map last compacted.
 */
function cursorOver<K, V>(map: Map<K, V>): () => [K, V] | undefined {
  let iterator = map.entries();
  return () => {
    let next = iterator.next();
    if (next.done) {
      iterator = map.entries();
      next = iterator.next();
    }
    return next.done ? undefined : next.value;
  };
}

/**
 * The budget ledger in one process. Every call is synchronous, so each is
 * atomic by construction. Memory stays bounded:
 * - holds past their expiry are dropped when their account is next touched,
 *   and each call sweeps a few live reservations (a cursor cycling through them) so
 *   expired ones of idle accounts go too;
 * - settled ids are kept until their retention ends (a sweep cycling
 *   through them) and at most `maxSettledIds` (past it the one next in that
 *   cycle goes, roughly the oldest: a duplicate settle of it would count twice);
 * - accounts are kept in a recency list; one whose state is the same as a
 *   fresh one (calendar period over + grace, rolling window empty, no holds)
 *   is forgotten from the head; past `maxAccounts` the least recently used
 *   account without live reservations is evicted (its spend is lost: that
 *   key starts again from zero), or failing that the least recently used one.
 */
export function createMemoryBudgetLedger(options: MemoryBudgetLedgerOptions): MemoryBudgetLedger {
  const { clock } = options;
  const maxAccounts = options.maxAccounts ?? 100_000;
  const maxSettledIds = options.maxSettledIds ?? 100_000;
  const settledRetentionMaxMs = options.settledRetentionMaxMs ?? DEFAULT_SETTLED_RETENTION_MAX_MS;
  if (!Number.isSafeInteger(maxAccounts) || maxAccounts < 1) throw new RangeError(`maxAccounts ${maxAccounts} is not valid: it must be a positive integer`);
  if (!Number.isSafeInteger(maxSettledIds) || maxSettledIds < 1) throw new RangeError(`maxSettledIds ${maxSettledIds} is not valid: it must be a positive integer`);
  const accounts = new Map<string, Account>();
  /** The recency list: least recently used first. */
  let oldest: Account | undefined;
  let newest: Account | undefined;
  const reservations = new Map<string, LiveReservation>();
  const nextReservation = cursorOver(reservations);
  /** Settled reservation id → remembered until. */
  const settled = new Map<string, number>();
  const nextSettled = cursorOver(settled);

  function unlink(account: Account): void {
    if (account.older) account.older.newer = account.newer;
    else oldest = account.newer;
    if (account.newer) account.newer.older = account.older;
    else newest = account.older;
    account.older = account.newer = undefined;
  }

  function append(account: Account): void {
    account.older = newest;
    if (newest) newest.newer = account;
    else oldest = account;
    newest = account;
  }

  function forget(account: Account): void {
    unlink(account);
    accounts.delete(account.key);
  }

  function accountFor(budget: BudgetAccount, key: string): Account {
    let account = accounts.get(key);
    if (account) {
      if (account !== newest) {
        unlink(account);
        append(account);
      }
      account.period = budget.period;
      return account;
    }
    account = { key, older: undefined, newer: undefined, period: budget.period, spent: 0, slots: new Map(), holds: new Map(), reserved: 0, nextExpiryMs: Number.POSITIVE_INFINITY };
    accounts.set(key, account);
    append(account);
    return account;
  }

  function releaseExpired(account: Account, now: number): void {
    if (now < account.nextExpiryMs) return;
    let next = Number.POSITIVE_INFINITY;
    for (const [id, hold] of account.holds) {
      if (hold.expiresAtMs <= now) {
        account.holds.delete(id);
        account.reserved -= hold.amount;
      } else if (hold.expiresAtMs < next) next = hold.expiresAtMs;
    }
    account.nextExpiryMs = next;
  }

  function spentOf(account: Account, now: number): number {
    const { period } = account;
    if (period.kind === 'calendar') return account.spent;
    const oldestCounted = slotIndexAt(period, now) - period.slots + 1;
    let spent = 0;
    for (const [slot, amount] of account.slots) {
      if (slot < oldestCounted) account.slots.delete(slot);
      else spent += amount;
    }
    return spent;
  }

  function stateOf(account: Account, limit: number, now: number): AccountState {
    releaseExpired(account, now);
    return { spent: spentOf(account, now), reserved: account.reserved, limit };
  }

  /** True when forgetting the account changes no answer (or the period is long over). */
  function isForgettable(account: Account, now: number): boolean {
    releaseExpired(account, now);
    if (account.holds.size > 0) return false;
    const { period } = account;
    if (period.kind === 'calendar') return account.spent === 0 || now >= period.endMs + ACCOUNT_GRACE_MS;
    return spentOf(account, now) === 0;
  }

  function releaseHold(key: string, reservationId: string): void {
    const account = accounts.get(key);
    const hold = account?.holds.get(reservationId);
    if (!account || !hold) return;
    account.holds.delete(reservationId);
    account.reserved -= hold.amount;
  }

  function sweep(now: number): void {
    const reservationsToLook = Math.min(SWEEP_PER_CALL, reservations.size);
    for (let looked = 0; looked < reservationsToLook; looked++) {
      const [id, reservation] = nextReservation()!;
      if (reservation.expiresAtMs > now) continue;
      reservations.delete(id);
      for (const key of reservation.accountKeys) releaseHold(key, id);
    }
    const settledToLook = Math.min(SWEEP_PER_CALL, settled.size);
    for (let looked = 0; looked < settledToLook; looked++) {
      const [id, until] = nextSettled()!;
      if (until <= now) settled.delete(id);
    }
    for (let looked = 0; looked < SWEEP_PER_CALL && oldest && isForgettable(oldest, now); looked++) forget(oldest);
  }

  function enforceBounds(now: number): void {
    while (accounts.size > maxAccounts && oldest) {
      let victim = oldest;
      let candidate: Account | undefined = oldest;
      for (let looked = 0; candidate && looked < EVICTION_SCAN; looked++, candidate = candidate.newer) {
        releaseExpired(candidate, now);
        if (candidate.holds.size === 0) {
          victim = candidate;
          break;
        }
      }
      forget(victim);
    }
    while (settled.size > maxSettledIds) settled.delete(nextSettled()![0]);
  }

  function isSettled(reservationId: string, now: number): boolean {
    const until = settled.get(reservationId);
    if (until === undefined) return false;
    if (until > now) return true;
    settled.delete(reservationId);
    return false;
  }

  return {
    reserve(request) {
      const now = clock();
      assertReserveRequest(request, now);
      const { reservationId, entries, expiresAtMs } = request;
      sweep(now);
      const keys = entries.map(({ account }) => accountStorageKey(account));
      if (reservations.has(reservationId) || isSettled(reservationId, now) || keys.some((key) => accounts.get(key)?.holds.has(reservationId))) {
        throw new RangeError(`reservation id ${reservationId} was used before: reservation ids are single-use`);
      }
      const found = entries.map(({ account }, index) => accountFor(account, keys[index]!));
      const before = found.map((account, index) => stateOf(account, entries[index]!.account.limit, now));
      const failedIndex = before.findIndex((state, index) => state.spent + state.reserved + entries[index]!.amount > state.limit);
      let result: ReserveResult;
      if (failedIndex >= 0) {
        result = { ok: false, failedIndex, states: before };
      } else {
        found.forEach((account, index) => {
          const { amount } = entries[index]!;
          account.holds.set(reservationId, { amount, expiresAtMs });
          account.reserved += amount;
          if (expiresAtMs < account.nextExpiryMs) account.nextExpiryMs = expiresAtMs;
        });
        reservations.set(reservationId, { expiresAtMs, accountKeys: keys });
        result = { ok: true, states: before.map((state, index) => ({ ...state, reserved: state.reserved + entries[index]!.amount })) };
      }
      enforceBounds(now);
      return result;
    },

    settle(request) {
      const now = clock();
      assertSettleRequest(request);
      const { reservationId, entries } = request;
      sweep(now);
      const keys = entries.map(({ account }) => accountStorageKey(account));
      if (isSettled(reservationId, now)) {
        return { applied: false, expired: false, states: entries.map(({ account }, index) => readState(account, keys[index]!, now)) };
      }
      const reservation = reservations.get(reservationId);
      reservations.delete(reservationId);
      let heldSomewhere = false;
      const states = entries.map(({ account: budget, actual }, index) => {
        const account = accountFor(budget, keys[index]!);
        releaseExpired(account, now);
        const hold = account.holds.get(reservationId);
        if (hold) {
          account.holds.delete(reservationId);
          account.reserved -= hold.amount;
          heldSomewhere = true;
        }
        const { period } = account;
        if (period.kind === 'calendar') account.spent += actual;
        else {
          const slot = slotIndexAt(period, now);
          account.slots.set(slot, (account.slots.get(slot) ?? 0) + actual);
        }
        return stateOf(account, budget.limit, now);
      });
      settled.set(
        reservationId,
        settledUntilMs(
          entries.map((entry) => entry.account),
          now,
          reservation?.expiresAtMs ?? now,
          settledRetentionMaxMs,
        ),
      );
      enforceBounds(now);
      return { applied: true, expired: !heldSomewhere, states };
    },

    renew(request) {
      const now = clock();
      assertRenewRequest(request, now);
      const { reservationId, expiresAtMs } = request;
      sweep(now);
      const reservation = reservations.get(reservationId);
      if (!reservation || reservation.expiresAtMs <= now) return { renewed: false };
      if (expiresAtMs <= reservation.expiresAtMs) return { renewed: true };
      reservation.expiresAtMs = expiresAtMs;
      for (const key of reservation.accountKeys) {
        const account = accounts.get(key);
        const hold = account?.holds.get(reservationId);
        // nextExpiryMs stays a lower bound: the account is only looked at a little earlier than needed.
        if (account && hold) account.holds.set(reservationId, { amount: hold.amount, expiresAtMs });
      }
      return { renewed: true };
    },

    state(budgets) {
      assertAccounts(budgets);
      const now = clock();
      return budgets.map((budget) => readState(budget, accountStorageKey(budget), now));
    },

    async close() {
      accounts.clear();
      oldest = newest = undefined;
      reservations.clear();
      settled.clear();
    },

    size: () => ({ accounts: accounts.size, reservations: reservations.size, settledIds: settled.size }),
  };

  function readState(budget: BudgetAccount, key: string, now: number): AccountState {
    const account = accounts.get(key);
    if (!account) return { spent: 0, reserved: 0, limit: budget.limit };
    if (account.period.kind === 'rolling' && budget.period.kind === 'rolling') account.period = budget.period;
    return stateOf(account, budget.limit, now);
  }
}
