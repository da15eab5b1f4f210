import type { Decision } from '../governance/decision.js';
import type { ExchangeClaims } from '../limits/exchange-claims.js';
import type { ExchangeHandoff, HandedOverExchange, OpenedHandoff } from './exchange-handoff.js';

/**
 * Observed metering across replicas: Envoy balances each ext_proc stream on its own, so the
 * metering stream of an event stream may reach another replica than the one that decided it. The
 * deciding replica seals the exchange into its handoff (exchange-handoff.ts); a replica that gets a
 * metering stream for an exchange it does not hold adopts it from the handoff, claims it in the
 * shared store (exchange-claims.ts), keeps its budget hold renewed while it meters, and settles it
 * when the stream ends. The deciding replica's fallback (no metering stream reached it) goes
 * through the same marker: whichever side moves it to "settled" settles, the other never does.
 */
export interface SharedMetering {
  /** The deciding replica hands an event stream over: the sealed handoff for the dynamic metadata (undefined: too large, stays in-process). */
  seal(exchange: HandedOverExchange): string | undefined;
  /** A metering stream for an exchange this process does not hold: undefined when its handoff does not verify. */
  adopt(token: string, exchangeId: string): Adoption | undefined;
  /** A metering stream for an exchange this process decided and sealed: settled through the same claim (a replayed handoff elsewhere loses it). */
  meterHere(decision: Decision): Pick<Adoption, 'finish'>;
  /** The deciding replica's fallback: no metering stream reached this process; `settle` runs only if nobody else settled it. */
  fallback(decision: Decision, settle: () => void): void;
}

export interface Adoption {
  readonly exchange: HandedOverExchange;
  /** The metering stream ended (however): `settle` runs only if this replica still holds the exchange's claim. */
  finish(settle: () => void): void;
}

export interface SharedMeteringObserver {
  /** A metering stream for an exchange another replica decided, adopted from its verified handoff. */
  adopted?(exchangeId: string): void;
  /** A handoff that did not verify (forged, expired, malformed, another exchange's). */
  refused(exchangeId: string, reason: Exclude<OpenedHandoff, { ok: true }>['reason']): void;
  /** An adopted exchange that another side settled or holds: not settled here. */
  lost(exchangeId: string): void;
  /** The shared store did not answer (retried). */
  failed(error: Error): void;
  /** Retries exhausted: the exchange is left to its hold's expiry. */
  abandoned(exchangeId: string): void;
}

export interface SharedMeteringOptions {
  readonly handoff: ExchangeHandoff;
  readonly claims: ExchangeClaims;
  /** This process's claim owner id (unique per process). */
  readonly owner: string;
  /** Lifetime of a metering replica's claim, extended every third of it while it meters; a dead owner's claim lapses after it. */
  readonly claimTtlMs: number;
  /** How long a settled marker is remembered (longer than a handoff is accepted). */
  readonly retainMs: number;
  /** Renew the decision's budget hold from this process (it meters a long stream). */
  readonly keepHold: (decision: Decision) => void;
  /** Stop renewing it here (settled or metered elsewhere). */
  readonly forgetHold: (decision: Decision) => void;
  readonly observer: SharedMeteringObserver;
  /** Attempts for a settlement the store cannot decide yet (another owner metering, or the store down), one claim lifetime apart. Default 360. */
  readonly maxAttempts?: number | undefined;
  readonly setTimer?: (callback: () => void, ms: number) => { unref?(): unknown };
  readonly setRepeat?: (callback: () => void, ms: number) => unknown;
  readonly clearRepeat?: (timer: unknown) => void;
}

export function createSharedMetering(options: SharedMeteringOptions): SharedMetering {
  const { handoff, claims, owner, claimTtlMs, retainMs, keepHold, forgetHold, observer } = options;
  const maxAttempts = options.maxAttempts ?? 360;
  const setTimer = options.setTimer ?? ((callback: () => void, ms: number) => setTimeout(callback, ms));
  const setRepeat = options.setRepeat ?? ((callback: () => void, ms: number) => setInterval(callback, ms).unref());
  const clearRepeat = options.clearRepeat ?? ((timer: unknown) => clearInterval(timer as NodeJS.Timeout));
  const failed = (error: unknown) => observer.failed(error instanceof Error ? error : new Error(String(error)));

  function later(attempt: number, id: string, again: () => void): void {
    if (attempt >= maxAttempts) {
      observer.abandoned(id);
      return;
    }
    setTimer(again, claimTtlMs).unref?.();
  }

  /** Marks the exchange settled for this owner and settles it; `taken` waits for the other owner (or its claim to lapse) when `waitWhenTaken`. */
  function settleOnce(decision: Decision, settle: () => void, waitWhenTaken: boolean, attempt = 1): void {
    const again = () => settleOnce(decision, settle, waitWhenTaken, attempt + 1);
    claims.finalize(decision.id, owner, retainMs).then(
      (outcome) => {
        if (outcome === 'won') return settle();
        forgetHold(decision);
        if (outcome === 'taken' && waitWhenTaken) return later(attempt, decision.id, again);
        if (!waitWhenTaken) observer.lost(decision.id);
      },
      (error: unknown) => {
        failed(error);
        later(attempt, decision.id, again);
      },
    );
  }

  return {
    seal: (exchange) => handoff.seal(exchange),
    adopt(token, exchangeId) {
      const opened = handoff.open(token, exchangeId);
      if (!opened.ok) {
        observer.refused(exchangeId, opened.reason);
        return undefined;
      }
      observer.adopted?.(exchangeId);
      return { exchange: opened.exchange, ...meter(opened.exchange.decision) };
    },
    meterHere: (decision) => meter(decision),
    fallback(decision, settle) {
      settleOnce(decision, settle, true);
    },
  };

  /** Claims the exchange for this owner while its stream is metered here, and settles it at the end if the claim holds. */
  function meter(decision: Decision): Pick<Adoption, 'finish'> {
    const exchangeId = decision.id;
    let keeping: unknown;
    let finished = false;
    const extend = () =>
      claims.claim(exchangeId, owner, claimTtlMs).then(
        (outcome) => {
          if (outcome !== 'won' && keeping !== undefined) {
            clearRepeat(keeping);
            keeping = undefined;
          }
          return outcome;
        },
        (error: unknown) => {
          failed(error);
          return 'failed' as const;
        },
      );
    const claimed = extend().then((outcome) => {
      if (outcome === 'won' && !finished) {
        keepHold(decision);
        keeping = setRepeat(() => void extend(), Math.max(1, Math.floor(claimTtlMs / 3)));
      }
    });
    return {
      finish(settle) {
        finished = true;
        void claimed.then(() => {
          if (keeping !== undefined) clearRepeat(keeping);
          keeping = undefined;
          settleOnce(decision, settle, false);
        });
      },
    };
  }
}
