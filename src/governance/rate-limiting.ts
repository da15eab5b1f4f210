import { isGenopsError } from '../errors/genops-error.js';
import type { BucketCheck, BucketDebit, RateLimitStore, TakeResult } from '../limits/rate-limit-store.js';
import type { CompiledPolicy, CompiledRateLimit } from '../policy/compiled-policy.js';
import type { CountedTokens, RateLimitDimension } from '../policy/policy-schema.js';
import { selects } from './selector.js';
import { isAllowed, type AdmittedTokenLimit, type Decision, type RateLimitStatus } from './decision.js';

export type RateLimitOutcome = 'ok' | 'over_limit' | 'shadow_over_limit' | 'backend_error';

export interface RateLimitObserver {
  /** One call per limit applied to a request. */
  limitChecked(limit: string, outcome: RateLimitOutcome): void;
  backendFailed(error: Error): void;
  /** Any other exception on a rate-limit path: the limits follow their failure mode, as when the backend is down. */
  internalError?(error: Error): void;
  /** Tokens charged to a token limit by settle (once the store has them). */
  tokensCharged?(limit: string, tokens: number): void;
}

/** Billed tokens of one response: input includes cached and cache-write tokens, output includes reasoning. */
export interface SettledUsage {
  readonly input: number;
  readonly output: number;
}

export interface RateLimiter {
  /**
   * Charges the request limits that select an allowed request and checks its
   * token limits are positive; returns the final decision, which carries the
   * token limits to settle (decision.tokenLimits).
   */
  apply(decision: Decision, request: { path?: string | undefined }): Decision | Promise<Decision>;
  /**
   * Charges the token limits that admitted the decision its actual tokens
   * (buckets may go into debt). Call once the response's usage is known; a
   * second call for the same decision charges nothing. Never throws or
   * rejects: a backend failure goes to observer.backendFailed.
   */
  settle(decision: Decision, usage: SettledUsage): void | Promise<void>;
}

interface Selected {
  readonly limit: CompiledRateLimit;
  readonly check: BucketCheck;
}

/**
 * Applies the policy's rate limits after the policy decision. Only allowed
 * requests are charged, and a request denied by one limit is charged by none.
 * Request limits are charged at admission; token limits only have to be
 * positive then, and are charged the response's tokens by settle.
 */
export function createRateLimiter(options: {
  store: RateLimitStore;
  policy: () => CompiledPolicy;
  observer: RateLimitObserver;
}): RateLimiter {
  const { store, policy, observer } = options;
  /** decision.tokenLimits already settled: a decision is charged once however often settle is called. */
  const settled = new WeakSet<readonly AdmittedTokenLimit[]>();

  function admittedTokenLimits(selected: readonly Selected[]): readonly AdmittedTokenLimit[] | undefined {
    let admitted: AdmittedTokenLimit[] | undefined;
    for (const { limit, check } of selected) {
      if (limit.unit !== 'tokens') continue;
      (admitted ??= []).push({ name: limit.name, counts: limit.counts ?? 'total', check });
    }
    return admitted;
  }

  function finish(decision: Decision, selected: readonly Selected[], result: TakeResult): Decision {
    let denying: { index: number; retryAfterMs: number } | undefined;
    let shadowOver: number | undefined;
    let tightest: number | undefined;
    result.buckets.forEach((bucket, index) => {
      const { limit } = selected[index]!;
      const over = !bucket.conforming;
      observer.limitChecked(limit.name, over ? (limit.shadow ? 'shadow_over_limit' : 'over_limit') : 'ok');
      if (over && !limit.shadow && (!denying || bucket.retryAfterMs > denying.retryAfterMs)) denying = { index, retryAfterMs: bucket.retryAfterMs };
      if (over && limit.shadow && shadowOver === undefined) shadowOver = index;
      if (!limit.shadow) {
        const ratio = Math.max(0, bucket.remaining) / limit.capacity;
        const best = tightest === undefined ? Infinity : Math.max(0, result.buckets[tightest]!.remaining) / selected[tightest]!.limit.capacity;
        if (ratio < best) tightest = index;
      }
    });
    if (!result.admitted && denying) {
      const { limit } = selected[denying.index]!;
      const status = statusOf(limit, result, denying.index, true);
      return {
        ...decision,
        result: 'RATE_LIMITED',
        reasonCode: 'RATE_LIMITED',
        message: `${limit.unit === 'tokens' ? 'token rate limit' : 'rate limit'} ${limit.name} exceeded: ${limit.refillAmount} ${limit.unit} per ${limit.refillEveryMs / 1000}s; retry in ${status.retryAfterSeconds}s`,
        httpStatus: 429,
        dryRun: false,
        route: undefined,
        rateLimit: status,
      };
    }
    const reported = tightest !== undefined ? statusOf(selected[tightest]!.limit, result, tightest, false) : undefined;
    const tokenLimits = admittedTokenLimits(selected);
    if (shadowOver !== undefined && decision.result === 'ALLOWED') {
      const { limit } = selected[shadowOver]!;
      return {
        ...decision,
        result: 'WARNING',
        reasonCode: 'RATE_LIMITED',
        message: `dry-run: ${limit.unit === 'tokens' ? 'token rate limit' : 'rate limit'} ${limit.name} exceeded`,
        httpStatus: 429,
        dryRun: true,
        rateLimit: reported,
        ...(tokenLimits && { tokenLimits }),
      };
    }
    if (!reported && !tokenLimits) return decision;
    return { ...decision, rateLimit: reported ?? decision.rateLimit, ...(tokenLimits && { tokenLimits }) };
  }

  function onBackendFailure(decision: Decision, selected: readonly Selected[], error: unknown): Decision {
    const failure = error instanceof Error ? error : new Error(String(error));
    if (isGenopsError(failure, 'backend_unavailable') || !observer.internalError) observer.backendFailed(failure);
    else observer.internalError(failure);
    const closed = selected.find(({ limit }) => limit.failureMode === 'closed' && !limit.shadow);
    for (const { limit } of selected) observer.limitChecked(limit.name, 'backend_error');
    // Admitted by the failure mode: its tokens are still charged if the backend is back by then.
    if (!closed) {
      const tokenLimits = admittedTokenLimits(selected);
      return tokenLimits ? { ...decision, tokenLimits } : decision;
    }
    return {
      ...decision,
      result: 'BLOCKED',
      reasonCode: 'x_rate_limit_unavailable',
      message: `rate limit ${closed.limit.name} cannot be checked (backend unavailable) and fails closed`,
      httpStatus: 503,
      dryRun: false,
      route: undefined,
    };
  }

  return {
    apply(decision, request) {
      if (!isAllowed(decision)) return decision;
      const limits = policy().rateLimits;
      if (limits.length === 0) return decision;
      const selected: Selected[] = [];
      for (const limit of limits) {
        // A token limit counts billed tokens: a token count (free) bills none, so none applies to it.
        if (limit.unit === 'tokens' && decision.ai?.free) continue;
        if (limit.selector && !selects(limit.selector, decision, request.path)) continue;
        const key = bucketKey(limit, decision, request.path);
        if (key === undefined) continue;
        selected.push({ limit, check: checkOf(limit, key) });
      }
      if (selected.length === 0) return decision;
      const checks = selected.map(({ check }) => check);
      // Whatever fails here (the backend, or a bug) follows the limits' failure mode: never an error to Envoy.
      let taken: TakeResult | Promise<TakeResult>;
      try {
        taken = store.take(checks);
        if (!(taken instanceof Promise)) return finish(decision, selected, taken);
      } catch (error) {
        return onBackendFailure(decision, selected, error);
      }
      return taken.then((result) => finish(decision, selected, result)).catch((error: unknown) => onBackendFailure(decision, selected, error));
    },

    settle(decision, usage) {
      const admitted = decision.tokenLimits;
      if (!admitted || admitted.length === 0 || settled.has(admitted)) return;
      settled.add(admitted);
      const limits = policy().rateLimits;
      const debits: BucketDebit[] = [];
      const names: string[] = [];
      for (const { name, counts, check } of admitted) {
        const amount = tokensCounted(counts, usage);
        if (amount === 0) continue;
        // The same bucket, read in the shape its limit has now; a limit a reload
        // removed (or re-keyed) has no reader left, so it is not charged.
        const current = limits.find((limit) => limit.scope === check.scope);
        if (!current) continue;
        debits.push({ check: checkOf(current, check.key), amount });
        names.push(name);
      }
      if (debits.length === 0) return;
      const charged = () => {
        if (observer.tokensCharged) debits.forEach((debit, index) => observer.tokensCharged!(names[index]!, debit.amount));
      };
      const failed = (error: unknown): void => {
        observer.backendFailed(error instanceof Error ? error : new Error(String(error)));
      };
      let pending: void | Promise<void>;
      try {
        pending = store.charge(debits);
      } catch (error) {
        failed(error);
        return;
      }
      if (pending instanceof Promise) return pending.then(charged, failed);
      charged();
    },
  };
}

function checkOf(limit: CompiledRateLimit, key: string): BucketCheck {
  return { scope: limit.scope, key, capacity: limit.capacity, refillAmount: limit.refillAmount, refillEveryMs: limit.refillEveryMs, unit: limit.unit, shadow: limit.shadow };
}

/**
 * Whole tokens a response is charged: input + output, or one of them. Counts
 * that are not finite or below 0 count as 0; fractions (estimates) round up.
 */
function tokensCounted(counts: CountedTokens, usage: SettledUsage): number {
  const input = countOf(usage.input);
  const output = countOf(usage.output);
  if (counts === 'input') return input;
  if (counts === 'output') return output;
  return input + output;
}

function countOf(tokens: number): number {
  return Number.isFinite(tokens) && tokens > 0 ? Math.ceil(tokens) : 0;
}

function statusOf(limit: CompiledRateLimit, result: TakeResult, index: number, denied: boolean): RateLimitStatus {
  const bucket = result.buckets[index]!;
  const retryAfterSeconds = Math.max(1, Math.ceil(bucket.retryAfterMs / 1000));
  return {
    name: limit.name,
    unit: limit.unit === 'tokens' ? 'tokens' : undefined,
    quota: limit.refillAmount,
    windowSeconds: Math.max(1, Math.round(limit.refillEveryMs / 1000)),
    remaining: Math.max(0, bucket.remaining),
    resetSeconds: denied ? retryAfterSeconds : Math.ceil(bucket.resetMs / 1000),
    retryAfterSeconds: denied ? retryAfterSeconds : undefined,
  };
}

function dimensionValue(dimension: RateLimitDimension, decision: Decision, path: string | undefined): string | undefined {
  if (dimension === 'principal') return decision.principal;
  if (dimension === 'path') return path === undefined ? undefined : path.split('?', 1)[0];
  return decision.context[dimension];
}

/**
 * The request's values of the limit's key dimensions, joined with "|" (no
 * validated context value contains one); undefined when the request lacks a
 * dimension, in which case the limit does not apply (as with Envoy's
 * rate-limit descriptors): list the dimension in context.required to rule that out.
 */
function bucketKey(limit: CompiledRateLimit, decision: Decision, path: string | undefined): string | undefined {
  if (limit.key.length === 1) return dimensionValue(limit.key[0]!, decision, path);
  const values: string[] = [];
  for (const dimension of limit.key) {
    const value = dimensionValue(dimension, decision, path);
    if (value === undefined) return undefined;
    values.push(value);
  }
  return values.join('|');
}
