/**
 * The budget ledger: money reserved before a call and settled after it, per
 * budget account, with memory and Redis backends behind one interface
 * (memory-budget-ledger.ts, redis-budget-ledger.ts).
 *
 * Money is an integer number of nano-USD (1e-9 USD) held in a JS number:
 * safe integers reach 2^53 ≈ $9M per account and period, and Lua's doubles
 * hold them exactly too. Every amount, limit and actual must be a
 * non-negative safe integer; anything else is refused with a RangeError
 * before anything changes.
 */

/** One budget account: a budget's key values within one period. */
export interface BudgetAccount {
  /** "<budget name>|<key values>" — the caller builds it; opaque here. */
  readonly id: string;
  /** The spending limit of this account, nano-USD. */
  readonly limit: number;
  /**
   * How the period is counted.
   * Calendar: one window [startMs, endMs) (the caller computes it in its time zone); the period
   * start is part of the storage key, so a new period is a new key and a reset is never a race.
   * Rolling: a sliding window of windowMs ending now, counted in `slots` equal sub-buckets (e.g. 24
   * for 24h → hourly slots; windowMs must divide by slots): spend older than the window drops out
   * slot by slot.
   */
  readonly period: CalendarPeriod | RollingPeriod;
}

export interface CalendarPeriod {
  readonly kind: 'calendar';
  readonly startMs: number;
  readonly endMs: number;
}

export interface RollingPeriod {
  readonly kind: 'rolling';
  readonly windowMs: number;
  readonly slots: number;
}

export interface AccountState {
  /** Settled spend in the current period / window. */
  readonly spent: number;
  /** Live (unexpired) reservations. */
  readonly reserved: number;
  readonly limit: number;
}

export interface ReserveEntry {
  readonly account: BudgetAccount;
  readonly amount: number;
}

export interface ReserveRequest {
  /** Unique per request (the decision id). */
  readonly reservationId: string;
  readonly entries: readonly ReserveEntry[];
  /** A reservation not settled by then is released (a crashed replica, a stream that never finished). Must be later than now. */
  readonly expiresAtMs: number;
}

export type ReserveResult =
  /** States after reserving, in entry order. */
  | { readonly ok: true; readonly states: readonly AccountState[] }
  /** Nothing reserved; failedIndex is the first entry whose account could not afford it; states as found. */
  | { readonly ok: false; readonly failedIndex: number; readonly states: readonly AccountState[] };

export interface SettleEntry {
  readonly account: BudgetAccount;
  readonly actual: number;
}

export interface SettleRequest {
  readonly reservationId: string;
  /**
   * actual = 0 releases (upstream error); the estimate for a cancelled stream; the real cost
   * otherwise. One entry per reserved account (same accounts as reserved).
   */
  readonly entries: readonly SettleEntry[];
}

export interface SettleResult {
  /** false when this reservation id was already settled: nothing changed (exactly once). */
  readonly applied: boolean;
  /**
   * true when the reservation had expired before settling (or was never reserved here): its hold
   * was already released, the actual spend is still added.
   */
  readonly expired: boolean;
  /** States after settling (as found when applied is false), in entry order. */
  readonly states: readonly AccountState[];
}

export interface RenewRequest {
  readonly reservationId: string;
  /** The accounts it was reserved on. */
  readonly accounts: readonly BudgetAccount[];
  /** The new expiry (a hold is only ever extended: an earlier time changes nothing). Must be later than now. */
  readonly expiresAtMs: number;
}

export interface RenewResult {
  /** false when the reservation is no longer held (settled, expired, or never reserved here): nothing changed. */
  readonly renewed: boolean;
}

export interface BudgetLedger {
  /**
   * All or none: every account satisfies spent + reserved + amount <= limit, then all are
   * reserved; otherwise none is once this returns (or throws). Memory checks all at once; Redis
   * holds account by account (each account in its own cluster slot) and releases on the first
   * refusal, so a concurrent caller may briefly see a hold that is then released — a transient
   * refusal, never an overspend: each hold is checked against its own account's limit. A
   * reservationId seen before (reserved, or settled and still remembered) is refused with a
   * RangeError — callers use fresh ids.
   */
  reserve(request: ReserveRequest): ReserveResult | Promise<ReserveResult>;
  /**
   * Idempotent per reservationId on each account (Redis: one atomic script per account, a failed
   * account retried): removes the reservation's holds and adds `actual` to
   * spent (actual may exceed the hold: a provider that ignored the output cap — the overshoot is
   * allowed here and reported by the caller).
   * - An id already settled (and still remembered): applied false, nothing changes. Redis: applied
   *   is true when this call changed any account (a retry after a partial failure settles the rest).
   * - An id never reserved, or whose reservation expired (and was swept): the usage really
   *   happened, so `actual` is still added, once: applied true, expired true, and the id is
   *   remembered like any other settled id.
   * Settled ids are remembered at least until the reservation's expiry and the end of the period
   * the spend was counted in (calendar endMs; rolling now + windowMs), capped by the backend's
   * retention bound (see each backend).
   */
  settle(request: SettleRequest): SettleResult | Promise<SettleResult>;
  /**
   * Atomic: moves a live reservation's expiry to expiresAtMs on every account that still holds it
   * (its holder is alive: a stream still open). The amounts do not change. A reservation that
   * expired, was settled or was never reserved is not revived (renewed false).
   */
  renew(request: RenewRequest): RenewResult | Promise<RenewResult>;
  /** Current state of accounts, in the order given (for headers, metrics, the admin endpoint). */
  state(accounts: readonly BudgetAccount[]): readonly AccountState[] | Promise<readonly AccountState[]>;
  close(): Promise<void>;
}

// Constructors (each in its own file):
//   createMemoryBudgetLedger(options: { clock: () => number; maxAccounts?: number; ... }): BudgetLedger
//     — src/limits/memory-budget-ledger.ts
//   createRedisBudgetLedger(options: { client: Redis | Cluster; clock: () => number; keyPrefix?: string; ... }): BudgetLedger
//     — src/limits/redis-budget-ledger.ts
//     Redis failures (down, timeout) reject reserve/settle/state with GenopsError('backend_unavailable').
