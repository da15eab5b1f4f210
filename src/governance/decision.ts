import type { BucketCheck } from '../limits/rate-limit-store.js';
import type { CountedTokens } from '../policy/policy-schema.js';
import type { AiRequest } from '../usage/request-body.js';
import type { BudgetOutcome } from './budget-outcome.js';
import type { GovernanceContext } from './governance-context.js';
import type { IdentityOutcome } from './identity-outcome.js';

/** GenOps spec 0.1.0 policy results. */
export type PolicyResult = 'ALLOWED' | 'BLOCKED' | 'WARNING' | 'RATE_LIMITED';

/** Spec reason codes, and custom ones (prefixed x_) for governance at the mesh. */
export type ReasonCode =
  | 'POLICY_DENY_MODEL'
  | 'RATE_LIMITED'
  | 'BUDGET_EXCEEDED'
  | 'BUDGET_RESERVATION_FAILED'
  | 'x_missing_context'
  | 'x_invalid_context'
  | 'x_team_not_allowed'
  | 'x_tier_not_allowed'
  | 'x_principal_not_allowed'
  | 'x_malformed_request'
  | 'x_malformed_body'
  | 'x_body_too_large'
  | 'x_model_mismatch'
  | 'x_identity_required'
  | 'x_identity_invalid'
  | 'x_identity_mismatch'
  | 'x_rate_limit_unavailable'
  | 'x_unknown_ai_api'
  | 'x_body_required'
  | 'x_ext_proc_required'
  | 'x_unreadable_model'
  | 'x_unreservable_request'
  | 'x_output_cap_required';

export interface Decision {
  readonly id: string;
  /** ALLOWED and WARNING let the request through; BLOCKED and RATE_LIMITED stop it. */
  readonly result: PolicyResult;
  /** Required when result is not ALLOWED, absent when it is. */
  readonly reasonCode: ReasonCode | undefined;
  readonly message: string;
  /** HTTP status of the denial (or of the denial a dry-run rule would have made). */
  readonly httpStatus: number;
  /** True when a rule in dry-run mode would have denied: the result is WARNING instead. */
  readonly dryRun: boolean;
  readonly context: GovernanceContext;
  readonly principal: string | undefined;
  /** The x-genops-route chosen for an allowed request. */
  readonly route: string | undefined;
  readonly policyName: string;
  /** The rate limit that denied the request, or the one closest to denying it. */
  readonly rateLimit?: RateLimitStatus | undefined;
  /** On an AI API path: what the request body asked for. */
  readonly ai?: AiRequestFacts | undefined;
  /** What the budgets that select the request reserved, and where they stand. */
  readonly budget?: BudgetOutcome | undefined;
  /**
   * The token limits (unit tokens) that admitted the request, to be charged its
   * tokens once the response's usage is known (RateLimiter.settle). Set only on
   * decisions that let the request through; a snapshot, so a policy reload
   * between admission and settlement charges the same buckets.
   */
  readonly tokenLimits?: readonly AdmittedTokenLimit[] | undefined;
  /** How the context was bound to verified identity, when the policy binds it. */
  readonly identity?: IdentityOutcome | undefined;
}

/** A token limit a request passed, and what it will be charged. */
export interface AdmittedTokenLimit {
  readonly name: string;
  /** Which billed tokens count: input + output, or one of them. */
  readonly counts: CountedTokens;
  /** The bucket, as the limit stood at admission. */
  readonly check: BucketCheck;
}

/** What an AI API request body asks for, as the usage room reads it. */
export type AiRequestFacts = AiRequest;

/** What the RateLimit, RateLimit-Policy and Retry-After headers report. */
export interface RateLimitStatus {
  readonly name: string;
  /** What the quota counts: requests (absent, the default) or LLM tokens. */
  readonly unit?: 'requests' | 'tokens' | undefined;
  /** Requests (or LLM tokens) granted per window (the refill amount). */
  readonly quota: number;
  readonly windowSeconds: number;
  /** Whole requests (or tokens) left; 0 for a token bucket in debt. */
  readonly remaining: number;
  /** Seconds until the bucket is full again, or until a token is available when denied. */
  readonly resetSeconds: number;
  /** Set when the request was denied. */
  readonly retryAfterSeconds?: number | undefined;
}

export function isAllowed(decision: Decision): boolean {
  return decision.result === 'ALLOWED' || decision.result === 'WARNING';
}

/** The JSON body of a denial, the same for every adapter (DESIGN §2). */
export function denialBody(decision: Decision): string {
  return JSON.stringify({
    error: errorNameOf(decision.httpStatus),
    reason_code: decision.reasonCode,
    message: decision.message,
    decision_id: decision.id,
    ...(decision.rateLimit?.retryAfterSeconds !== undefined ? { retry_after_seconds: decision.rateLimit.retryAfterSeconds } : {}),
    ...(decision.reasonCode === 'BUDGET_EXCEEDED' && decision.budget?.status
      ? { budget: decision.budget.status.name, consumed: decision.budget.status.consumedNano / 1e9, limit: decision.budget.status.limitNano / 1e9, currency: 'USD', reset_date: new Date(decision.budget.status.resetMs).toISOString() }
      : {}),
  });
}

function errorNameOf(status: number): string {
  if (status === 400) return 'bad_request';
  if (status === 413) return 'payload_too_large';
  if (status === 401) return 'unauthorized';
  if (status === 429) return 'too_many_requests';
  if (status === 503) return 'unavailable';
  return 'forbidden';
}
