import { createHash } from 'node:crypto';
import type { BudgetAccount, RenewRequest, ReserveRequest, SettleRequest } from './budget-ledger.js';

/**
 * What both ledger backends share: input validation, where an account is
 * stored, rolling-window slot arithmetic and how long things are kept.
 */

/** How long an account's storage outlives its period (and its last hold): late settles still find it, the admin endpoint can show the last period. */
export const ACCOUNT_GRACE_MS = 86_400_000;

/** Default cap on how long a settled id is remembered past its reservation's expiry. */
export const DEFAULT_SETTLED_RETENTION_MAX_MS = 86_400_000;

/** Rolling windows are counted in at most this many slots (each read touches every slot). */
export const MAX_ROLLING_SLOTS = 1_000;

export const MAX_ID_LENGTH = 512;
/** How much of a long id stays readable in front of its hash. */
const READABLE_HEAD = 400;

/**
 * An account id the ledger accepts, whatever the key values: ids up to MAX_ID_LENGTH are kept as
 * they are; a longer one becomes its first READABLE_HEAD characters, "~sha256:" and the SHA-256 of
 * the whole id (stable across replicas and restarts; two long ids share an account only if their
 * SHA-256 collide).
 */
export function boundedAccountId(id: string): string {
  if (id.length <= MAX_ID_LENGTH) return id;
  return `${id.slice(0, READABLE_HEAD)}~sha256:${createHash('sha256').update(id, 'utf8').digest('hex')}`;
}

/**
 * The account's storage identity: the period is part of it, so a calendar
 * period's successor is a different account (a reset is a new key, never a
 * race), and a rolling window whose slot width changes starts afresh rather
 * than misreading old slots.
 */
export function accountStorageKey(account: BudgetAccount): string {
  const { period } = account;
  return period.kind === 'calendar' ? `c:${period.startMs}:${account.id}` : `r:${period.windowMs / period.slots}:${account.id}`;
}

export function slotWidthMs(period: { readonly windowMs: number; readonly slots: number }): number {
  return period.windowMs / period.slots;
}

export function slotIndexAt(period: { readonly windowMs: number; readonly slots: number }, nowMs: number): number {
  return Math.floor(nowMs / slotWidthMs(period));
}

/** When spend counted now stops mattering: the calendar period's end, or the rolling window's end from now. */
export function spendRelevantUntilMs(account: BudgetAccount, nowMs: number): number {
  const { period } = account;
  return period.kind === 'calendar' ? period.endMs : nowMs + period.windowMs;
}

/**
 * Until when a settled id is remembered: at least the reservation's expiry
 * (a duplicate settle while it could still be live) and the end of the
 * period its spend counts in (a duplicate would otherwise count twice there),
 * but never more than `maxMs` past the expiry (memory bound).
 */
export function settledUntilMs(accounts: readonly BudgetAccount[], nowMs: number, expiresAtMs: number, maxMs: number): number {
  const base = Math.max(nowMs, expiresAtMs);
  let wanted = base;
  for (const account of accounts) wanted = Math.max(wanted, spendRelevantUntilMs(account, nowMs));
  return Math.min(wanted, base + maxMs);
}

function isMoney(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function assertId(kind: string, id: unknown): void {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH) {
    throw new RangeError(`${kind} ${describe(id)} is not valid: it must be a non-empty string of at most ${MAX_ID_LENGTH} characters`);
  }
}

/** Throws a RangeError naming the account and the field that is wrong. */
export function assertAccount(account: BudgetAccount): void {
  assertId('budget account id', account?.id);
  const { id, limit, period } = account;
  if (!isMoney(limit)) throw new RangeError(`budget account ${id}: limit ${describe(limit)} is not valid: money is a non-negative safe integer of nano-USD`);
  if (period?.kind === 'calendar') {
    const { startMs, endMs } = period;
    if (!Number.isSafeInteger(startMs) || !Number.isSafeInteger(endMs) || startMs >= endMs) {
      throw new RangeError(`budget account ${id}: calendar period [${describe(startMs)}, ${describe(endMs)}) is not valid: startMs and endMs are integer epoch milliseconds with startMs < endMs`);
    }
  } else if (period?.kind === 'rolling') {
    const { windowMs, slots } = period;
    if (!Number.isSafeInteger(windowMs) || windowMs <= 0) throw new RangeError(`budget account ${id}: rolling windowMs ${describe(windowMs)} is not valid: it must be a positive integer of milliseconds`);
    if (!Number.isSafeInteger(slots) || slots < 1 || slots > MAX_ROLLING_SLOTS) throw new RangeError(`budget account ${id}: rolling slots ${describe(slots)} is not valid: it must be an integer from 1 to ${MAX_ROLLING_SLOTS}`);
    if (windowMs % slots !== 0) throw new RangeError(`budget account ${id}: a rolling window of ${windowMs} ms cannot be cut into ${slots} equal slots of whole milliseconds`);
  } else {
    throw new RangeError(`budget account ${id}: period kind ${describe((period as { kind?: unknown } | undefined)?.kind)} is not valid: it is "calendar" or "rolling"`);
  }
}

export function assertAccounts(accounts: readonly BudgetAccount[]): void {
  for (const account of accounts) assertAccount(account);
}

function assertDistinct(accounts: readonly BudgetAccount[], reservationId: string): void {
  if (accounts.length < 2) return;
  const seen = new Set<string>();
  for (const account of accounts) {
    const key = accountStorageKey(account);
    if (seen.has(key)) throw new RangeError(`reservation ${reservationId}: budget account ${account.id} is listed twice (one entry per account)`);
    seen.add(key);
  }
}

export function assertReserveRequest(request: ReserveRequest, nowMs: number): void {
  assertId('reservation id', request.reservationId);
  const { reservationId, entries, expiresAtMs } = request;
  if (!Array.isArray(entries) || entries.length === 0) throw new RangeError(`reservation ${reservationId}: it needs at least one entry`);
  for (const { account, amount } of entries) {
    assertAccount(account);
    if (!isMoney(amount)) throw new RangeError(`reservation ${reservationId}: cannot reserve ${describe(amount)} on budget account ${account.id}: money is a non-negative safe integer of nano-USD`);
  }
  assertDistinct(entries.map((entry) => entry.account), reservationId);
  if (!Number.isSafeInteger(expiresAtMs) || expiresAtMs <= nowMs) {
    throw new RangeError(`reservation ${reservationId}: expiresAtMs ${describe(expiresAtMs)} is not valid: it must be integer epoch milliseconds later than now (${nowMs})`);
  }
}

export function assertSettleRequest(request: SettleRequest): void {
  assertId('reservation id', request.reservationId);
  const { reservationId, entries } = request;
  if (!Array.isArray(entries) || entries.length === 0) throw new RangeError(`settlement of ${reservationId}: it needs at least one entry`);
  for (const { account, actual } of entries) {
    assertAccount(account);
    if (!isMoney(actual)) throw new RangeError(`settlement of ${reservationId}: cannot settle ${describe(actual)} on budget account ${account.id}: money is a non-negative safe integer of nano-USD`);
  }
  assertDistinct(entries.map((entry) => entry.account), reservationId);
}

/** Throws a RangeError naming what is wrong with a renewal. */
export function assertRenewRequest(request: RenewRequest, nowMs: number): void {
  const { reservationId, accounts, expiresAtMs } = request;
  assertId('reservation id', reservationId);
  if (!Array.isArray(accounts) || accounts.length === 0) throw new RangeError(`renewal of ${reservationId}: it needs at least one account`);
  assertAccounts(accounts);
  if (!Number.isSafeInteger(expiresAtMs) || expiresAtMs <= nowMs) {
    throw new RangeError(`renewal of ${reservationId}: expiresAtMs ${describe(expiresAtMs)} is not valid: it must be integer epoch milliseconds later than now (${nowMs})`);
  }
}
