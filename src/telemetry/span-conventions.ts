/**
 * Span names, attribute keys and events of the GenOps Governance
 * Specification 0.1.0 as this service emits them. One place, so that the
 * tracer, the docs (docs/observability.md) and the conformance test agree.
 */

export const GENOPS_SPEC_VERSION = '0.1.0';

/** One span per governance decision, kind SERVER, a child of the request's own trace. */
export const DECISION_SPAN_NAME = 'genops.policy.evaluate';

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
  /** The model the request asked for (x-genops-model), per the GenAI conventions. */
  requestModel: 'gen_ai.request.model',
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
