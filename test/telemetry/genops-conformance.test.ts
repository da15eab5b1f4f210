/**
 * GenOps 0.1.0 conformance of every span the service exports, over a mix of
 * requests that reaches every decision result and every reason code the
 * service can produce without a shared backend, on both gRPC services.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGovernanceClient, type GovernanceClient } from '../support/governance-client.js';
import { startService, type RunningService } from '../support/index.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';
import { genopsViolations } from './genops-conformance.js';
import { eventually, extProcDecide, scrape, TELEMETRY_POLICY, tracingEnv, writePolicy } from './telemetry-support.js';

const POLICY = TELEMETRY_POLICY.replace(
  '  rateLimits:',
  `    billing: { tiers: [premium] }
    payments: { principals: ["spiffe://cluster.local/ns/pay/sa/gateway"] }
  rateLimits:
    - name: shadowed
      key: [project]
      capacity: 1
      refill: { amount: 1, every: 3600s }
      shadow: true
      selector: { projects: [shadow-project] }`,
);

let receiver: OtlpReceiver;
let service: RunningService;
let client: GovernanceClient;
let spans: ReceivedSpan[];

const ctx = (overrides: Record<string, string | undefined> = {}): Record<string, string> =>
  Object.fromEntries(
    Object.entries({ 'x-genops-team': 'ml-platform', 'x-genops-customer-id': `c-${randomUUID().slice(0, 8)}`, 'x-genops-project': 'chatbot', ...overrides }).filter(
      (entry): entry is [string, string] => entry[1] !== undefined,
    ),
  );

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  // No OTEL_RESOURCE_ATTRIBUTES: genops.environment falls back to "unknown" without x-genops-environment.
  service = await startService({ policyPath: writePolicy(POLICY), env: tracingEnv(receiver.endpoint) });
  client = createGovernanceClient(`${service.host}:${service.grpcPort}`);

  const requests: Record<string, string>[] = [
    ctx(),
    ctx({ 'x-genops-customer-tier': 'premium', 'x-genops-model': 'claude-opus', 'x-genops-feature': 'summaries', 'x-genops-cost-center': 'cc-1', 'x-genops-environment': 'prod' }),
    ctx({ 'x-genops-project': undefined }),
    ctx({ 'x-genops-team': undefined }),
    ctx({ 'x-genops-team': 'Not A Team' }),
    ctx({ 'x-genops-customer-tier': 'gold' }),
    ctx({ 'x-genops-team': 'marketing' }),
    ctx({ 'x-genops-team': 'billing', 'x-genops-customer-tier': 'standard' }),
    ctx({ 'x-genops-team': 'payments' }),
    ctx({ 'x-genops-team': 'product-team', 'x-genops-model': 'gpt-4o' }),
    ctx({ 'x-genops-customer-tier': 'basic', 'x-genops-model': 'gpt-4o' }),
    ctx({ 'x-genops-team': 'ml-research', 'x-genops-model': 'gpt-4o' }),
    ctx({ 'x-genops-project': 'shadow-project' }),
    ctx({ 'x-genops-project': 'shadow-project' }),
  ];
  const limited = ctx({ 'x-genops-team': 'product-team' });
  requests.push(limited, limited, limited);
  for (const headers of requests) {
    await client.check(headers);
    await extProcDecide(client, headers);
  }
  // A CheckRequest without the HTTP attributes is malformed.
  await client.checkRaw({ attributes: {} });
  const decisions = requests.length * 2 + 1;
  await eventually(async () => (await scrape(service.adminUrl)).value('genops_requests_total') === decisions, `${decisions} decisions`);
  spans = await receiver.waitForSpans(() => true, { count: decisions });
});

afterAll(async () => {
  client?.close();
  await service?.stop();
  await receiver?.stop();
});

describe('GenOps 0.1.0 conformance of exported spans', () => {
  it('every span has the required attributes, one genops.policy.evaluated event and a reason code exactly when not ALLOWED', () => {
    const failures = spans.map((span) => ({ decision: span.attributes['genops.decision.id'], problems: genopsViolations(span) })).filter((entry) => entry.problems.length > 0);
    expect(failures).toEqual([]);
  });

  it('the mix covered every result and reason code the service produces here', () => {
    const seen = new Set(spans.map((span) => `${String(span.attributes['genops.policy.result'])}/${String(span.attributes['genops.policy.reason_code'] ?? '-')}`));
    expect([...seen].sort()).toEqual(
      [
        'ALLOWED/-',
        'BLOCKED/POLICY_DENY_MODEL',
        'BLOCKED/x_invalid_context',
        'BLOCKED/x_malformed_request',
        'BLOCKED/x_missing_context',
        'BLOCKED/x_principal_not_allowed',
        'BLOCKED/x_team_not_allowed',
        'BLOCKED/x_tier_not_allowed',
        'RATE_LIMITED/RATE_LIMITED',
        'WARNING/POLICY_DENY_MODEL',
        'WARNING/RATE_LIMITED',
      ].sort(),
    );
    expect(new Set(spans.map((span) => span.attributes['rpc.method']))).toEqual(new Set(['Check', 'Process']));
  });

  it('spans are SERVER spans named genops.policy.evaluate from the genops-mesh service, with a default environment', () => {
    for (const span of spans) {
      expect(span.name).toBe('genops.policy.evaluate');
      expect(span.kind).toBe('SPAN_KIND_SERVER');
      expect(span.resource['service.name']).toBe('genops-mesh');
      expect(span.endTimeUnixNano).toBeGreaterThanOrEqual(span.startTimeUnixNano);
    }
    const environments = new Set(spans.map((span) => span.attributes['genops.environment']));
    expect(environments).toEqual(new Set(['unknown', 'prod']));
  });

  it('the checker itself rejects what the spec forbids', () => {
    const good = spans.find((span) => span.attributes['genops.policy.result'] === 'BLOCKED')!;
    const allowed = spans.find((span) => span.attributes['genops.policy.result'] === 'ALLOWED')!;
    const withAttributes = (span: ReceivedSpan, change: Record<string, unknown>): ReceivedSpan => ({
      ...span,
      attributes: Object.fromEntries(Object.entries({ ...span.attributes, ...change }).filter(([, value]) => value !== undefined)) as ReceivedSpan['attributes'],
    });
    expect(genopsViolations(good)).toEqual([]);
    expect(genopsViolations(withAttributes(good, { 'genops.policy.reason_code': undefined })).join()).toContain('is required for BLOCKED');
    expect(genopsViolations(withAttributes(good, { 'genops.policy.reason_code': 'TEAM_NOT_ALLOWED' })).join()).toContain('must be a spec code or an x_ extension code');
    expect(genopsViolations(withAttributes(allowed, { 'genops.policy.reason_code': 'x_anything' })).join()).toContain('must not be set when ALLOWED');
    expect(genopsViolations(withAttributes(allowed, { 'genops.team': undefined })).join()).toContain('required attribute genops.team');
    expect(genopsViolations(withAttributes(allowed, { 'genops.spec.version': '0.2.0' })).join()).toContain('genops.spec.version');
    expect(genopsViolations(withAttributes(allowed, { 'genops.polcy.result': 'ALLOWED' })).join()).toContain('unknown genops.* attribute');
    expect(genopsViolations({ ...allowed, events: [] }).join()).toContain('exactly one genops.policy.evaluated');
  });
});
