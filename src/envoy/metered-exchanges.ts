/**
 * Hands an allowed AI exchange from the ext_proc stream that decided it to the stream that meters
 * its response, when Envoy meters with a second ext_proc filter in `observability_mode` (the
 * deciding filter then never waits on the response). The two streams are correlated by the
 * decision id, which the deciding reply emits as dynamic metadata and the metering filter
 * forwards (a client cannot set it, unlike x-request-id).
 *
 * Exactly one side settles each exchange:
 * - the metering stream claims the exchange on its first message and settles it when it ends;
 * - the deciding stream ended and no metering stream came within `graceMs`: the response never
 *   reached Envoy's encoder (client gone, upstream never answered), settled as `no_response`.
 * A metering stream that names an exchange this process does not hold (another replica decided
 * it, or it was already settled) is adopted from the deciding replica's handoff when one verifies
 * (shared-metering.ts), else counted, never settled twice.
 */
export interface MeteredExchanges<Exchange> {
  /** The deciding stream allowed `id`; its response will be metered by another stream. */
  expect(id: string, exchange: Exchange): void;
  /**
   * The metering stream for `id` started: it now owns the exchange. Not held here: `elsewhere`
   * (another replica's handoff) may supply it; undefined: not ours, counted unmatched.
   */
  claim(id: string, elsewhere?: () => Exchange | undefined): Exchange | undefined;
  /** The deciding stream of `id` ended; unclaimed after the grace period, the exchange is settled by `orphaned`. */
  deciderEnded(id: string): void;
  /** Exchanges held (tests, metrics). */
  readonly size: number;
}

export interface MeteredExchangesOptions<Exchange> {
  /** How long after its deciding stream ends an exchange waits for its metering stream. */
  readonly graceMs: number;
  /** Settles an exchange whose metering stream never came. */
  readonly orphaned: (exchange: Exchange) => void;
  /** A metering stream named an exchange this process does not hold. */
  readonly unmatched?: ((id: string) => void) | undefined;
  readonly setTimer?: (callback: () => void, ms: number) => { unref?(): unknown };
  readonly clearTimer?: (timer: unknown) => void;
}

export function createMeteredExchanges<Exchange>(options: MeteredExchangesOptions<Exchange>): MeteredExchanges<Exchange> {
  const { graceMs, orphaned, unmatched } = options;
  const setTimer = options.setTimer ?? ((callback: () => void, ms: number) => setTimeout(callback, ms));
  const clearTimer = options.clearTimer ?? ((timer: unknown) => clearTimeout(timer as NodeJS.Timeout));
  const held = new Map<string, { exchange: Exchange; timer: unknown }>();
  return {
    expect(id, exchange) {
      held.set(id, { exchange, timer: undefined });
    },
    claim(id, elsewhere) {
      const entry = held.get(id);
      if (!entry) {
        const adopted = elsewhere?.();
        if (adopted === undefined) unmatched?.(id);
        return adopted;
      }
      held.delete(id);
      if (entry.timer !== undefined) clearTimer(entry.timer);
      return entry.exchange;
    },
    deciderEnded(id) {
      const entry = held.get(id);
      if (!entry || entry.timer !== undefined) return;
      const timer = setTimer(() => {
        if (held.get(id) !== entry) return;
        held.delete(id);
        orphaned(entry.exchange);
      }, graceMs);
      timer.unref?.();
      entry.timer = timer;
    },
    get size() {
      return held.size;
    },
  };
}
