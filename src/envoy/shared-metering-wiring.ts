import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { MAX_HOLD_MS, type Budgeter } from '../governance/budgeting.js';
import type { ExchangeClaims } from '../limits/exchange-claims.js';
import type { RedisClient } from '../limits/redis-connection.js';
import { loadSharedKey } from '../limits/redis-shared-key.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { createExchangeHandoff } from './exchange-handoff.js';
import { createSharedMetering, type SharedMetering } from './shared-metering.js';

/**
 * The process's shared metering: handoffs sealed with the deployment's key and accepted for one
 * hold lifetime (a metering stream starts as the response headers pass), claims in the shared
 * store under this process's own owner id, settled markers kept a little longer than a handoff is
 * accepted, holds renewed by the budgeter, every outcome counted and logged.
 */
export function createSharedMeteringFor(options: { secret: string | (() => string | undefined); claims: ExchangeClaims; clock: () => number; budgeter: Budgeter; metrics: Metrics; logger: Logger; claimTtlMs: number; holdTtlMs: number }): SharedMetering {
  const { metrics, logger, budgeter, holdTtlMs } = options;
  const handoff = createExchangeHandoff({ secret: options.secret, clock: options.clock, maxAgeMs: holdTtlMs });
  return createSharedMetering({
    handoff,
    claims: options.claims,
    owner: `${hostname()}:${process.pid}:${randomUUID()}`,
    claimTtlMs: options.claimTtlMs,
    retainMs: holdTtlMs + 5 * 60_000,
    // As long as a hold can be renewed: a stream metered elsewhere may last that long.
    maxAttempts: Math.ceil(MAX_HOLD_MS / options.claimTtlMs),
    keepHold: (decision) => budgeter.keepHold(decision),
    forgetHold: (decision) => budgeter.forgetHold(decision),
    observer: {
      adopted: () => metrics.meteringHandoffs.inc({ outcome: 'adopted' }),
      refused(exchangeId, reason) {
        metrics.meteringHandoffs.inc({ outcome: 'refused' });
        logger.warn({ event: 'metering_handoff_refused', decision_id: exchangeId, reason }, 'a metering stream carried a handoff that does not verify: not settled here (is GENOPS_METERING_HANDOFF_SECRET the same on every replica?)');
      },
      lost(exchangeId) {
        metrics.meteringHandoffs.inc({ outcome: 'lost' });
        logger.info({ event: 'metering_handoff_lost', decision_id: exchangeId }, 'an adopted exchange was settled by another replica');
      },
      failed(error) {
        metrics.backendErrors.inc({ backend: 'redis', kind: error.name === 'GenopsError' ? 'command' : 'connection' });
        logger.warn({ event: 'backend_error', backend: 'redis', err: error.message }, 'exchange claim failed; retried');
      },
      abandoned(exchangeId) {
        metrics.meteringHandoffs.inc({ outcome: 'abandoned' });
        logger.error({ event: 'metering_handoff_abandoned', decision_id: exchangeId }, 'the shared store never settled who meters this exchange: its hold expires unsettled');
      },
    },
  });
}

/**
 * The handoff key kept in Redis (redis-shared-key.ts) when GENOPS_METERING_HANDOFF_SECRET is not
 * set: loaded now, or, while Redis does not answer, retried in the background (until then event
 * streams are metered in-process only and a foreign metering stream is counted unmatched).
 */
export async function sharedHandoffKey(client: RedisClient, logger: Logger, retryMs = 2_000): Promise<() => string | undefined> {
  let key: string | undefined;
  const load = async (): Promise<boolean> => {
    try {
      key = await loadSharedKey(client);
      return true;
    } catch {
      return false;
    }
  };
  if (!(await load())) {
    logger.warn({ event: 'backend_not_ready', backend: 'redis' }, 'the metering handoff key could not be read from redis yet; event streams are metered in-process until it is');
    const timer = setInterval(() => {
      void load().then((loaded) => {
        if (loaded) clearInterval(timer);
      });
    }, retryMs);
    timer.unref();
  }
  return () => key;
}
