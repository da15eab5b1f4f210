/**
 * Who settles a handed-over AI exchange when several replicas could: the replica metering its event
 * stream, or the deciding replica whose fallback fires when no metering stream reached it. One
 * marker per exchange in the shared store, moved atomically: absent -> claimed by an owner (with a
 * lifetime its owner keeps extending while it meters) -> settled. Only the one call that moves it
 * to settled settles the exchange, so an exchange is never settled twice; a claim whose owner died
 * lapses, and the fallback then settles it.
 */
export type ClaimOutcome =
  /** This owner holds the exchange (or, from finalize, has just marked it settled: settle it now). */
  | 'won'
  /** Another live owner holds it. */
  | 'taken'
  /** Already settled by someone. */
  | 'settled';

export interface ExchangeClaims {
  /** Claims `exchangeId` for `owner` for `ttlMs`, or extends this owner's claim. */
  claim(exchangeId: string, owner: string, ttlMs: number): Promise<ClaimOutcome>;
  /** Marks the exchange settled if it is unclaimed or claimed by `owner` ('won': the caller settles it), remembered for `retainMs`. */
  finalize(exchangeId: string, owner: string, retainMs: number): Promise<ClaimOutcome>;
}
