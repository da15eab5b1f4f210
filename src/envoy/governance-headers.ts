import type { Decision } from '../governance/decision.js';
import { formatUsd } from '../governance/budgeting.js';
import { CONTEXT_RULES } from '../governance/governance-context.js';
import { bearerChallenge } from '../governance/identity-binding.js';

export const ROUTE_HEADER = 'x-genops-route';
export const DECISION_ID_HEADER = 'x-genops-decision-id';

/** Headers whose values a client must never choose: they are always overwritten or removed. */
export const SERVICE_OWNED_HEADERS = [ROUTE_HEADER, DECISION_ID_HEADER] as const;

/**
 * The headers an allowed request carries upstream: the chosen route, the
 * decision id and the normalized governance context.
 */
export function upstreamHeaders(decision: Decision): [string, string][] {
  const headers: [string, string][] = [[DECISION_ID_HEADER, decision.id]];
  if (decision.route !== undefined) headers.push([ROUTE_HEADER, decision.route]);
  const context = decision.context as Record<string, string | undefined>;
  for (const rule of CONTEXT_RULES) {
    const value = context[rule.field];
    if (value !== undefined) headers.push([rule.header, value]);
  }
  return headers;
}

/**
 * Removed from AI requests upstream: the provider then answers uncompressed, so its usage can be
 * read from the response without decompressing it.
 */
export const aiUpstreamHeadersToRemove: readonly string[] = ['accept-encoding'];

/** Headers to strip upstream because the decision did not set them. */
export function headersToRemove(decision: Decision): string[] {
  return decision.route === undefined ? [ROUTE_HEADER] : [];
}

export const BUDGET_WARNING_HEADER = 'x-budget-warning';
export const MODEL_SERVED_HEADER = 'x-genops-model-served';

/** Headers for the client, on allowed and denied responses alike. */
export function clientHeaders(decision: Decision): [string, string][] {
  const headers: [string, string][] = [[DECISION_ID_HEADER, decision.id]];
  const budget = decision.budget;
  if (budget?.status?.warned) {
    const { status } = budget;
    headers.push([BUDGET_WARNING_HEADER, `"${status.name}";remaining=${formatUsd(status.remainingNano)};limit=${formatUsd(status.limitNano)};currency="USD";reset="${new Date(status.resetMs).toISOString()}"`]);
  }
  if (budget?.downgradedTo) headers.push([MODEL_SERVED_HEADER, budget.downgradedTo]);
  const limit = decision.rateLimit;
  if (limit) {
    // draft-ietf-httpapi-ratelimit-headers: structured fields naming the policy. The quota unit
    // (qu) defaults to requests; a token limit says "tokens", a unit the draft's registry does not
    // list yet (clients that do not know it still read q, w, r and t).
    const unit = limit.unit === 'tokens' ? ';qu="tokens"' : '';
    headers.push(['ratelimit-policy', `"${limit.name}";q=${limit.quota}${unit};w=${limit.windowSeconds}`]);
    headers.push(['ratelimit', `"${limit.name}";r=${limit.remaining};t=${limit.resetSeconds}`]);
  }
  return headers;
}

export function denialHeaders(decision: Decision): [string, string][] {
  const headers: [string, string][] = [['content-type', 'application/json'], ...clientHeaders(decision)];
  const retryAfter = decision.rateLimit?.retryAfterSeconds ?? decision.budget?.status?.retryAfterSeconds;
  if (retryAfter !== undefined) headers.push(['retry-after', String(retryAfter)]);
  if (decision.httpStatus === 401) headers.push(['www-authenticate', bearerChallenge(decision.reasonCode)]);
  return headers;
}
