/**
 * Span names, attribute keys and events of the GenOps Governance
 * Specification 0.1.0 as this service emits them. One place, so that the
 * tracer, the docs (docs/observability.md) and the conformance test agree.
 */

export const GENOPS_SPEC_VERSION = '0.1.0';

/** One span per governance decision, kind SERVER, a child of the request's own trace. */
export const DECISION_SPAN_NAME = 'genops.policy.evaluate';

/**
 * One span per completed AI request (kind INTERNAL), from its first message to the end of its
 * response, in the request's own trace beside the decision span: tokens and cost.
 */
export const USAGE_SPAN_NAME = 'genops.usage';

/** Instrumentation scope of the decision spans. */
export const TRACER_NAME = 'genops-mesh';

/** Value of a required attribute the request did not carry (e.g. no x-genops-project header). */
export const UNKNOWN = 'unknown';

export const GenopsAttributes = {
  // Required by GenOps 0.1.0 (§7.1) on every decision span.
  team: 'genops.team',
  project: 'genops.project',
  environment: 'genops.environment',
  operationName: 'genops.operation.name',
  operationType: 'genops.operation.type',
  policyResult: 'genops.policy.result',
  /** Required when the result is not ALLOWED; never set when it is. */
  policyReasonCode: 'genops.policy.reason_code',
  specVersion: 'genops.spec.version',
  // Optional, defined by the spec (§7.3).
  customerId: 'genops.customer_id',
  costCenter: 'genops.cost_center',
  feature: 'genops.feature',
  policyName: 'genops.policy.name',
  policyReason: 'genops.policy.reason',
  // Extensions of this service, in the genops.* namespace.
  customerTier: 'genops.customer_tier',
  decisionId: 'genops.decision.id',
  dryRun: 'genops.dry_run',
  route: 'genops.route',
  principal: 'genops.principal',
  rateLimitName: 'genops.rate_limit.name',
  rateLimitQuota: 'genops.rate_limit.quota',
  rateLimitWindowSeconds: 'genops.rate_limit.window_seconds',
  rateLimitRemaining: 'genops.rate_limit.remaining',
  rateLimitRetryAfterSeconds: 'genops.rate_limit.retry_after_seconds',
  // Usage and cost (spec §7.3 optional keys, plus the token subsets as extensions).
  tokensInput: 'genops.tokens.input',
  tokensOutput: 'genops.tokens.output',
  tokensTotal: 'genops.tokens.total',
  tokensCachedInput: 'genops.tokens.cached_input',
  tokensCacheWrite: 'genops.tokens.cache_write',
  tokensReasoning: 'genops.tokens.reasoning',
  costTotal: 'genops.cost.total',
  costCurrency: 'genops.cost.currency',
  costModel: 'genops.cost.model',
  costProvider: 'genops.cost.provider',
  usageEstimated: 'genops.usage.estimated',
  usageOutcome: 'genops.usage.outcome',
  priceTableVersion: 'genops.cost.price_table',
  // Budgets and accounting (spec §7.1 conditional, §7.3 optional).
  budgetName: 'genops.budget.name',
  budgetAllocated: 'genops.budget.allocated',
  budgetConsumed: 'genops.budget.consumed',
  budgetRemaining: 'genops.budget.remaining',
  budgetPeriod: 'genops.budget.period',
  accountingReserved: 'genops.accounting.reserved',
  accountingActual: 'genops.accounting.actual',
  accountingUnit: 'genops.accounting.unit',
} as const;

/** The keys GenOps 0.1.0 requires on every span that did not reach a budget reservation. */
export const REQUIRED_ATTRIBUTES = [
  GenopsAttributes.team,
  GenopsAttributes.project,
  GenopsAttributes.environment,
  GenopsAttributes.operationName,
  GenopsAttributes.operationType,
  GenopsAttributes.policyResult,
  GenopsAttributes.specVersion,
] as const;

/** OpenTelemetry semantic-convention keys set on the decision span. */
export const OtelAttributes = {
  rpcSystem: 'rpc.system',
  rpcService: 'rpc.service',
  rpcMethod: 'rpc.method',
  /** The model the request asked for (its body's model on AI paths), per the GenAI conventions. */
  requestModel: 'gen_ai.request.model',
  responseModel: 'gen_ai.response.model',
  inputTokens: 'gen_ai.usage.input_tokens',
  outputTokens: 'gen_ai.usage.output_tokens',
  providerName: 'gen_ai.provider.name',
  responseStatusCode: 'http.response.status_code',
} as const;

export const GenopsEvents = {
  /** Emitted on every decision (GenOps 0.1.0 §8.1). */
  policyEvaluated: 'genops.policy.evaluated',
  budgetReservation: 'genops.budget.reservation',
  budgetReconciliation: 'genops.budget.reconciliation',
} as const;

/** genops.operation.type values: the category of the governed AI call, from its path. */
export type OperationType = 'inference' | 'embedding' | 'fine_tune';

export function operationTypeOf(path: string | undefined): OperationType {
  if (path === undefined) return 'inference';
  if (path.includes('/embeddings')) return 'embedding';
  if (path.includes('/fine_tuning') || path.includes('/fine-tunes')) return 'fine_tune';
  return 'inference';
}
