import type { CompiledPolicy } from '../policy/compiled-policy.js';
import { PROVIDER_OF, type AiApi, type Provider } from '../usage/ai-api.js';
import { costOf, type Cost } from '../usage/pricing.js';
import type { UsageReport } from '../usage/response-usage.js';
import { NO_USAGE, type TokenUsage } from '../usage/token-usage.js';
import type { Decision } from './decision.js';
import type { GovernanceContext } from './governance-context.js';

/**
 * How one governed AI exchange ended:
 * - completed: the response ended and carried the provider's usage;
 * - ended_without_usage: the response ended but never said what it used (estimated);
 * - interrupted: the client went away or the upstream reset mid-response (estimated);
 * - no_response: the stream ended before any response arrived (input estimated);
 * - upstream_error: the provider answered 4xx/5xx (no charge);
 * - local_reply: Envoy answered 4xx/5xx itself after the request went upstream (a timeout, a reset before
 *   the response headers): the provider may have billed it, so it is estimated, never free;
 * - not_sent: the stream ended before its decision was delivered, so nothing reached the provider (no charge).
 */
export type ExchangeOutcome = 'completed' | 'ended_without_usage' | 'interrupted' | 'no_response' | 'upstream_error' | 'local_reply' | 'not_sent';

/** The response header Envoy's router adds to every response that came from the upstream (and never to its own local replies). */
export const UPSTREAM_RESPONSE_MARK = 'x-envoy-upstream-service-time';

/**
 * How an exchange ended, from what the adapter saw: how its stream ended, the response status and
 * whether the response came from the upstream (UPSTREAM_RESPONSE_MARK), and whether the provider's
 * usage was read. An error status counts as the provider's refusal only when the provider sent it.
 */
export function exchangeOutcome(ended: 'completed' | 'interrupted' | 'no_response', response: { status: number | undefined; fromUpstream: boolean; usageComplete: boolean }): ExchangeOutcome {
  if (response.status !== undefined && response.status >= 400) return response.fromUpstream ? 'upstream_error' : 'local_reply';
  if (ended === 'completed' && !response.usageComplete) return 'ended_without_usage';
  return ended;
}

/** Outcomes that cost nothing: the provider did not bill the request. */
export function isFree(outcome: ExchangeOutcome): boolean {
  return outcome === 'upstream_error' || outcome === 'not_sent';
}

/** One completed AI request, as the decision log and the cost metrics see it. */
export interface UsageRecord {
  readonly decisionId: string;
  readonly api: AiApi;
  readonly provider: Provider;
  readonly context: GovernanceContext;
  readonly modelRequested: string;
  /** The response's model (OpenAI names the dated snapshot), else the model sent upstream (a budget's cheaper model), else the model requested. */
  readonly modelServed: string;
  readonly stream: boolean;
  readonly tokens: TokenUsage;
  /** Undefined when no price matches the model: counted as unpriced, never as free. */
  readonly cost: Cost | undefined;
  readonly currency: 'USD';
  readonly priceTableVersion: string;
  /** The price pattern that priced the model. */
  readonly pricedAs: string | undefined;
  /** True when the provider's usage never came and the tokens are estimated. */
  readonly estimated: boolean;
  readonly outcome: ExchangeOutcome;
  readonly upstreamStatus: number | undefined;
  readonly providerError: string | undefined;
  /** What the request's budgets held for it (nano-USD) and their names; undefined when nothing was reserved. */
  readonly reservation: { readonly budgets: readonly string[]; readonly reservedNano: number } | undefined;
}

export interface FinishedExchange {
  readonly decision: Decision;
  /** When the request's first message arrived, on the adapter's clock. */
  readonly startedAt: number;
  /** What the usage meter read from the response; undefined when no response body was read. */
  readonly report: UsageReport | undefined;
  readonly upstreamStatus: number | undefined;
  readonly outcome: ExchangeOutcome;
}

export interface UsageAccounting {
  /** The usage record of an allowed AI request whose exchange has ended; undefined for any other decision. */
  account(exchange: FinishedExchange): UsageRecord | undefined;
}

const FREE: Cost = Object.freeze({ pico: 0n, usd: '0' });

/**
 * Turns what the response said into tokens and money. The provider's own
 * usage is taken as it is; when it never came, input is the request's
 * estimate and output what was streamed so far, and the record says it is
 * estimated. An upstream error is recorded with its status and charged nothing.
 */
export function createUsageAccounting(options: { policy: () => CompiledPolicy }): UsageAccounting {
  return {
    account({ decision, report, upstreamStatus, outcome }) {
      const ai = decision.ai;
      // A batch or a background response is billed later, a token count never: this exchange carries no usage to record.
      if (!ai || ai.deferred || ai.free) return undefined;
      const prices = options.policy().prices;
      // The body's model; a budget downgrade sends another one upstream (context.model).
      const modelRequested = ai.model.toLowerCase();
      const modelServed = report?.modelServed?.toLowerCase() ?? decision.context.model ?? modelRequested;
      const { tokens, estimated } = tokensOf(outcome, report, ai.inputEstimateTokens);
      const price = prices.priceOf(modelServed) ?? prices.priceOf(modelRequested);
      // Priced at the tier asked for and, when the response does not tell 1-hour writes apart, at the 1-hour rate if the request asked for it.
      const cost = isFree(outcome) ? FREE : price ? costOf(tokens, price, { serviceTier: ai.bound?.serviceTier, cacheTtl: tokens.cacheWrite1h === undefined ? ai.bound?.cacheTtl : undefined }) : undefined;
      return {
        decisionId: decision.id,
        api: ai.api,
        provider: PROVIDER_OF[ai.api],
        context: decision.context,
        modelRequested,
        modelServed,
        stream: ai.stream,
        tokens,
        cost,
        currency: 'USD',
        priceTableVersion: prices.version,
        pricedAs: price?.pattern,
        estimated,
        outcome,
        upstreamStatus,
        providerError: report?.providerError,
        reservation: reservationOf(decision),
      };
    },
  };
}

function reservationOf(decision: Decision): UsageRecord['reservation'] {
  const held = decision.budget?.entries.filter((entry) => entry.heldNano > 0) ?? [];
  return held.length > 0 ? { budgets: held.map((entry) => entry.name), reservedNano: decision.budget!.worstCaseNano } : undefined;
}

function tokensOf(outcome: ExchangeOutcome, report: UsageReport | undefined, inputEstimate: number): { tokens: TokenUsage; estimated: boolean } {
  if (isFree(outcome)) return { tokens: NO_USAGE, estimated: false };
  const usage = report?.usage;
  if (usage && report.complete) return { tokens: usage, estimated: false };
  // Anthropic reports input at the start of a stream: keep what the provider said, estimate the rest.
  const output = Math.max(usage?.output ?? 0, report?.estimatedOutputTokens ?? 0);
  return {
    tokens: {
      input: usage && usage.input > 0 ? usage.input : inputEstimate,
      cachedInput: usage?.cachedInput ?? 0,
      cacheWrite: usage?.cacheWrite ?? 0,
      output,
      reasoning: Math.min(usage?.reasoning ?? 0, output),
    },
    estimated: true,
  };
}
