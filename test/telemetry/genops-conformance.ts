/**
 * A checker for the GenOps Governance Specification 0.1.0 telemetry rules
 * (§4 decisions, §5 reason codes, §7 required attributes and events, §8 event
 * schemas), written from the spec, independent of the service's own
 * constants: it reads only what a collector received.
 */
import type { AttributeValue, ReceivedSpan } from '../support/otlp-receiver.js';

export const SPEC_VERSION = '0.1.0';
export const RESULTS = ['ALLOWED', 'BLOCKED', 'WARNING', 'RATE_LIMITED'];
/** §5.2: the fixed reason-code enumeration of 0.1. */
export const SPEC_REASON_CODES = [
  'BUDGET_EXCEEDED',
  'BUDGET_RESERVATION_FAILED',
  'POLICY_DENY_MODEL',
  'POLICY_DENY_REGION',
  'POLICY_DENY_CONTENT',
  'RATE_LIMITED',
  'SLA_LATENCY_VIOLATION',
  'PROVIDER_ERROR_UPSTREAM',
  'ACCOUNTING_INVARIANT_VIOLATION',
];
/** §5.5: extension codes. */
const EXTENSION_CODE = /^x_[a-z0-9_]+$/;
/** §7.1, less the accounting attributes, which are conditional. */
const REQUIRED_STRINGS = ['genops.team', 'genops.project', 'genops.environment', 'genops.operation.name', 'genops.operation.type', 'genops.policy.result', 'genops.spec.version'];
const DOUBLES = ['genops.accounting.reserved', 'genops.accounting.actual', 'genops.accounting.reconciliation_delta', 'genops.budget.allocated', 'genops.budget.consumed', 'genops.budget.remaining', 'genops.cost.total'];
const SPEC_ATTRIBUTES = new Set([
  ...REQUIRED_STRINGS,
  'genops.policy.reason_code',
  'genops.accounting.reserved',
  'genops.accounting.actual',
  'genops.accounting.unit',
  'genops.accounting.reconciliation_delta',
  'genops.budget.name',
  'genops.budget.allocated',
  'genops.budget.consumed',
  'genops.budget.remaining',
  'genops.budget.period',
  'genops.policy.name',
  'genops.policy.reason',
  'genops.policy.timestamp',
  'genops.cost.total',
  'genops.cost.currency',
  'genops.cost.provider',
  'genops.cost.model',
  'genops.tokens.input',
  'genops.tokens.output',
  'genops.tokens.total',
  'genops.customer_id',
  'genops.feature',
  'genops.session_id',
  'genops.cost_center',
]);
/** The extensions genops-mesh documents (docs/observability.md); any other genops.* key is a typo. */
const DOCUMENTED_EXTENSIONS = new Set([
  'genops.customer_tier',
  'genops.decision.id',
  'genops.dry_run',
  'genops.route',
  'genops.principal',
  'genops.rate_limit.name',
  'genops.rate_limit.quota',
  'genops.rate_limit.window_seconds',
  'genops.rate_limit.remaining',
  'genops.rate_limit.retry_after_seconds',
  'genops.tokens.cached_input',
  'genops.tokens.cache_write',
  'genops.tokens.reasoning',
  'genops.cost.price_table',
  'genops.usage.estimated',
  'genops.usage.outcome',
]);
const TOKEN_COUNTS = ['genops.tokens.input', 'genops.tokens.output', 'genops.tokens.total', 'genops.tokens.cached_input', 'genops.tokens.cache_write', 'genops.tokens.reasoning'];
/** The span of a policy evaluation (the decision); the usage span of the same request records accounting only. */
const DECISION_SPAN = 'genops.policy.evaluate';

/** Everything wrong with one span, as readable messages; empty when it conforms. */
export function genopsViolations(span: ReceivedSpan): string[] {
  const problems: string[] = [];
  const attributes = span.attributes;
  const isNonEmptyString = (value: AttributeValue | undefined) => typeof value === 'string' && value.length > 0;

  for (const key of REQUIRED_STRINGS) {
    if (!isNonEmptyString(attributes[key])) problems.push(`required attribute ${key} is ${JSON.stringify(attributes[key])}, not a non-empty string`);
  }
  if (attributes['genops.spec.version'] !== SPEC_VERSION) problems.push(`genops.spec.version is ${JSON.stringify(attributes['genops.spec.version'])}, not ${SPEC_VERSION}`);
  problems.push(...decisionProblems('span', attributes));

  const evaluated = span.events.filter((event) => event.name === 'genops.policy.evaluated');
  if (span.name === DECISION_SPAN ? evaluated.length !== 1 : evaluated.length > 1) problems.push(`expected ${span.name === DECISION_SPAN ? 'exactly' : 'at most'} one genops.policy.evaluated event, found ${evaluated.length}`);
  for (const event of evaluated) {
    problems.push(...decisionProblems('genops.policy.evaluated event', event.attributes));
    if (event.attributes['genops.policy.result'] !== attributes['genops.policy.result']) problems.push('the genops.policy.evaluated event and the span disagree on genops.policy.result');
    if (event.attributes['genops.policy.reason_code'] !== attributes['genops.policy.reason_code']) problems.push('the genops.policy.evaluated event and the span disagree on genops.policy.reason_code');
  }

  // §7.1 / §7.2.1: accounting attributes and budget events are conditional on a reservation.
  const reserved = span.events.some((event) => event.name === 'genops.budget.reservation');
  const reconciled = span.events.some((event) => event.name === 'genops.budget.reconciliation');
  if (reserved) {
    for (const key of ['genops.accounting.reserved', 'genops.accounting.unit']) if (!(key in attributes)) problems.push(`a reservation was recorded but ${key} is missing`);
  }
  if (reconciled) {
    if (!reserved) problems.push('genops.budget.reconciliation without genops.budget.reservation');
    if (!('genops.accounting.actual' in attributes)) problems.push('a reconciliation was recorded but genops.accounting.actual is missing');
  }
  const executed = attributes['genops.policy.result'] === 'ALLOWED' || attributes['genops.policy.result'] === 'WARNING';
  if (reconciled && !executed) problems.push('an AWU that did not execute emitted genops.budget.reconciliation');
  for (const key of DOUBLES) {
    if (key in attributes && typeof attributes[key] !== 'number') problems.push(`${key} must be a double`);
  }
  for (const key of TOKEN_COUNTS) {
    const value = attributes[key];
    if (key in attributes && !(typeof value === 'number' && Number.isInteger(value) && value >= 0)) problems.push(`${key} must be a non-negative integer count (got ${JSON.stringify(value)})`);
  }
  if ('genops.tokens.total' in attributes && attributes['genops.tokens.total'] !== Number(attributes['genops.tokens.input'] ?? 0) + Number(attributes['genops.tokens.output'] ?? 0)) {
    problems.push('genops.tokens.total is not genops.tokens.input + genops.tokens.output');
  }
  for (const key of Object.keys(attributes)) {
    if (key.startsWith('genops.') && !SPEC_ATTRIBUTES.has(key) && !DOCUMENTED_EXTENSIONS.has(key)) problems.push(`unknown genops.* attribute ${key}`);
  }
  return problems;
}

/** §4.2 and §5.3 on one attribute set (a span's or an event's). */
function decisionProblems(where: string, attributes: Record<string, AttributeValue>): string[] {
  const problems: string[] = [];
  const result = attributes['genops.policy.result'];
  const code = attributes['genops.policy.reason_code'];
  if (typeof result !== 'string' || !RESULTS.includes(result)) problems.push(`${where}: genops.policy.result ${JSON.stringify(result)} is not one of ${RESULTS.join(', ')}`);
  if (result === 'ALLOWED') {
    if (code !== undefined) problems.push(`${where}: genops.policy.reason_code must not be set when ALLOWED (got ${JSON.stringify(code)})`);
  } else if (typeof code !== 'string' || !(SPEC_REASON_CODES.includes(code) || EXTENSION_CODE.test(code))) {
    problems.push(`${where}: genops.policy.reason_code ${JSON.stringify(code)} is required for ${String(result)} and must be a spec code or an x_ extension code`);
  }
  return problems;
}
