import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Decision } from '../governance/decision.js';

/**
 * What the deciding replica hands over, in its response-headers reply's dynamic metadata, so that
 * any replica can settle an event stream it did not decide: the decision's settling facts (the
 * reservation: id, accounts and amounts held; the context labels; the request facts pricing and
 * estimates read; the token limits to charge), when it was decided, and the trace it belongs to.
 * No secret travels: the request's credentials and body never enter a Decision.
 */
export interface HandedOverExchange {
  readonly decision: Decision;
  /** Wall-clock ms when the exchange's first message arrived at the deciding replica. */
  readonly startedAtMs: number;
  /** The request headers the usage record and span read (HANDED_OVER_HEADERS: trace context and path), by lowercase name. */
  readonly headers: Readonly<Record<string, string>>;
}

/** The request headers a handoff carries: the trace the usage span joins (W3C, B3) and the path. */
export const HANDED_OVER_HEADERS: readonly string[] = [':path', 'traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

export type OpenedHandoff = { readonly ok: true; readonly exchange: HandedOverExchange } | { readonly ok: false; readonly reason: 'malformed' | 'forged' | 'expired' | 'mismatched' | 'unkeyed' };

export interface ExchangeHandoff {
  /** The sealed handoff (`v1.<payload>.<mac>`), or undefined when it would exceed the size bound or no key is known yet (the exchange stays in-process). */
  seal(exchange: HandedOverExchange): string | undefined;
  /** Verifies the MAC, the age and that it names `exchangeId`; never throws. */
  open(token: string, exchangeId: string): OpenedHandoff;
}

export interface ExchangeHandoffOptions {
  /** The per-deployment key every replica shares (GENOPS_METERING_HANDOFF_SECRET, or kept in Redis); a function while it is being loaded (undefined: not yet). */
  readonly secret: string | (() => string | undefined);
  /** Wall clock, ms. */
  readonly clock: () => number;
  /** A handoff older than this is refused (a metering stream starts as the response headers pass). */
  readonly maxAgeMs: number;
  /** Bound of the sealed handoff, bytes (Envoy copies the metadata into the metering stream). Default 8 KiB. */
  readonly maxBytes?: number | undefined;
}

const VERSION = 'v1';
export const DEFAULT_HANDOFF_MAX_BYTES = 8 * 1024;

/**
 * HMAC-SHA256 over the payload with a key shared by the replicas. Envoy never lets a client write
 * dynamic metadata, but another filter in the chain (Lua, Wasm, an operator's set_metadata) could
 * write the `genops` namespace that the metering filter forwards: without the key, a forged handoff
 * could settle someone else's reservation at zero. A replayed handoff is stopped by the shared
 * claim marker (exchange-claims.ts), not here.
 */
export function createExchangeHandoff(options: ExchangeHandoffOptions): ExchangeHandoff {
  const { clock, maxAgeMs } = options;
  const maxBytes = options.maxBytes ?? DEFAULT_HANDOFF_MAX_BYTES;
  const { secret } = options;
  let key: Buffer | undefined = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : undefined;
  const keyed = (): Buffer | undefined => {
    if (key === undefined && typeof secret === 'function') {
      const loaded = secret();
      if (loaded !== undefined) key = Buffer.from(loaded, 'utf8');
    }
    return key;
  };
  const mac = (payload: string) => createHmac('sha256', key!).update(`${VERSION}.${payload}`).digest();

  return {
    seal(exchange) {
      if (!keyed()) return undefined;
      const payload = Buffer.from(JSON.stringify(settlingFacts(exchange)), 'utf8').toString('base64url');
      const token = `${VERSION}.${payload}.${mac(payload).toString('base64url')}`;
      return token.length <= maxBytes ? token : undefined;
    },
    open(token, exchangeId) {
      if (!keyed()) return { ok: false, reason: 'unkeyed' };
      if (token.length > maxBytes) return { ok: false, reason: 'malformed' };
      const [version, payload, signature, extra] = token.split('.');
      if (version !== VERSION || !payload || !signature || extra !== undefined) return { ok: false, reason: 'malformed' };
      const given = Buffer.from(signature, 'base64url');
      const expected = mac(payload);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'forged' };
      let exchange: HandedOverExchange;
      try {
        exchange = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as HandedOverExchange;
      } catch {
        return { ok: false, reason: 'malformed' };
      }
      if (typeof exchange?.startedAtMs !== 'number' || typeof exchange.decision?.id !== 'string' || typeof exchange.headers !== 'object' || exchange.headers === null) return { ok: false, reason: 'malformed' };
      if (exchange.decision.id !== exchangeId) return { ok: false, reason: 'mismatched' };
      const age = clock() - exchange.startedAtMs;
      if (!(age <= maxAgeMs)) return { ok: false, reason: 'expired' };
      return { ok: true, exchange };
    },
  };
}

/** Only what settlement reads: the rest of a decision (messages, rate-limit status, identity) stays behind. */
function settlingFacts(exchange: HandedOverExchange): HandedOverExchange {
  const { decision } = exchange;
  const settling: Decision = {
    id: decision.id,
    result: decision.result,
    reasonCode: undefined,
    message: '',
    httpStatus: 200,
    dryRun: decision.dryRun,
    context: decision.context,
    principal: decision.principal,
    route: decision.route,
    policyName: decision.policyName,
    ai: decision.ai,
    budget: decision.budget ? { ...decision.budget, status: undefined } : undefined,
    tokenLimits: decision.tokenLimits,
  };
  const headers: Record<string, string> = {};
  for (const name of HANDED_OVER_HEADERS) if (exchange.headers[name] !== undefined) headers[name] = exchange.headers[name];
  return { decision: settling, startedAtMs: exchange.startedAtMs, headers };
}
