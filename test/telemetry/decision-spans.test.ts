/**
 * Decision spans end to end: the service process exports over OTLP/gRPC to a
 * real receiver; each test asserts the exact span a request produced.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGovernanceClient, type GovernanceClient } from '../support/governance-client.js';
import { startService, type RunningService } from '../support/index.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';
import { genopsViolations } from './genops-conformance.js';
import { extProcDecide, newTraceparent, randomHex, tracingEnv, writePolicy } from './telemetry-support.js';

let receiver: OtlpReceiver;
let service: RunningService;
let client: GovernanceClient;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  service = await startService({
    policyPath: writePolicy(),
    env: tracingEnv(receiver.endpoint, { OTEL_SERVICE_NAME: 'genops-mesh-spans-test', OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=production,k8s.namespace.name=genops' }),
  });
  client = createGovernanceClient(`${service.host}:${service.grpcPort}`);
});

afterAll(async () => {
  client?.close();
  await service?.stop();
  await receiver?.stop();
});

const context = (overrides: Record<string, string> = {}) => ({
  'x-genops-team': 'ml-platform',
  'x-genops-customer-id': `cust-${randomUUID().slice(0, 8)}`,
  'x-genops-project': 'support-bot',
  ...overrides,
});

async function spanOf(traceId: string): Promise<ReceivedSpan> {
  // The decision span (an AI request read through ext_proc also has a genops.usage span in its trace).
  const [span, ...more] = await receiver.waitForSpans((candidate) => candidate.traceId === traceId && candidate.name === 'genops.policy.evaluate');
  expect(more).toEqual([]);
  return span!;
}

describe('decision spans', () => {
  it('an allowed Check is a SERVER span in the request trace with the exact GenOps attributes and event', async () => {
    const trace = newTraceparent();
    const headers = context({ 'x-genops-customer-tier': 'premium', 'x-genops-cost-center': 'cc-42', 'x-genops-feature': 'chat-summary', 'x-genops-model': 'claude-opus', traceparent: trace.traceparent });
    const before = BigInt(Date.now()) * 1_000_000n;
    const response = await client.check(headers);
    const after = BigInt(Date.now()) * 1_000_000n;
    expect(response.status.code).toBe(0);
    const decisionId = response.ok_response!.headers.find((option) => option.header.key === 'x-genops-decision-id')!.header.value;

    const span = await spanOf(trace.traceId);
    expect(span.name).toBe('genops.policy.evaluate');
    expect(span.kind).toBe('SPAN_KIND_SERVER');
    expect(span.parentSpanId).toBe(trace.spanId);
    expect(span.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(span.spanId).not.toBe(trace.spanId);
    expect(span.attributes).toEqual({
      'genops.spec.version': '0.1.0',
      'genops.team': 'ml-platform',
      'genops.project': 'support-bot',
      'genops.environment': 'production',
      'genops.operation.name': 'chat-summary',
      'genops.operation.type': 'inference',
      'genops.policy.result': 'ALLOWED',
      'genops.policy.name': 'telemetry-test',
      'genops.decision.id': decisionId,
      'genops.customer_id': headers['x-genops-customer-id'],
      'genops.cost_center': 'cc-42',
      'genops.customer_tier': 'premium',
      'genops.feature': 'chat-summary',
      'gen_ai.request.model': 'claude-opus',
      'genops.route': 'claude-opus',
      'rpc.system': 'grpc',
      'rpc.service': 'envoy.service.auth.v3.Authorization',
      'rpc.method': 'Check',
    });
    expect(span.events).toHaveLength(1);
    expect(span.events[0]).toMatchObject({ name: 'genops.policy.evaluated', attributes: { 'genops.policy.result': 'ALLOWED', 'genops.policy.name': 'telemetry-test' } });
    expect(span.status.code).toBe('STATUS_CODE_UNSET');
    expect(span.startTimeUnixNano).toBeGreaterThanOrEqual(before - 5_000_000n);
    expect(span.endTimeUnixNano).toBeGreaterThanOrEqual(span.startTimeUnixNano);
    expect(span.endTimeUnixNano).toBeLessThanOrEqual(after + 5_000_000n);
    expect(span.events[0]!.timeUnixNano).toBeGreaterThanOrEqual(span.startTimeUnixNano);
    expect(span.resource).toMatchObject({ 'service.name': 'genops-mesh-spans-test', 'deployment.environment.name': 'production', 'k8s.namespace.name': 'genops', 'telemetry.sdk.language': 'nodejs' });
    expect(span.scope.name).toBe('genops-mesh');
  });

  it('a denial carries the reason code and reason on the span and the event; tracestate is kept', async () => {
    const trace = newTraceparent();
    const headers = context({ 'x-genops-team': 'marketing', 'x-genops-environment': 'staging', traceparent: trace.traceparent, tracestate: 'vendor=abc' });
    const response = await client.check(headers);
    expect(response.denied_response?.status.code).toBe(403);

    const span = await spanOf(trace.traceId);
    expect(span.parentSpanId).toBe(trace.spanId);
    expect(span.traceState).toBe('vendor=abc');
    expect(span.attributes).toMatchObject({
      'genops.team': 'marketing',
      'genops.environment': 'staging',
      'genops.policy.result': 'BLOCKED',
      'genops.policy.reason_code': 'x_team_not_allowed',
      'genops.policy.reason': 'team marketing is not allowed to call AI services',
      'genops.operation.name': 'ai.request',
    });
    expect(span.attributes).not.toHaveProperty('genops.route');
    expect(span.events.map((event) => event.attributes)).toEqual([
      {
        'genops.policy.result': 'BLOCKED',
        'genops.policy.reason_code': 'x_team_not_allowed',
        'genops.policy.name': 'telemetry-test',
        'genops.policy.reason': 'team marketing is not allowed to call AI services',
      },
    ]);
  });

  it('missing governance headers become "unknown", never a missing required attribute', async () => {
    const trace = newTraceparent();
    await client.check({ traceparent: trace.traceparent });
    const span = await spanOf(trace.traceId);
    expect(span.attributes).toMatchObject({
      'genops.team': 'unknown',
      'genops.project': 'unknown',
      'genops.environment': 'production',
      'genops.policy.result': 'BLOCKED',
      'genops.policy.reason_code': 'x_missing_context',
    });
    expect(span.attributes).not.toHaveProperty('genops.customer_id');
  });

  it('a dry-run violation is WARNING with its reason code and genops.dry_run', async () => {
    const trace = newTraceparent();
    const response = await client.check(context({ 'x-genops-team': 'ml-research', 'x-genops-model': 'gpt-4o', traceparent: trace.traceparent }));
    expect(response.status.code).toBe(0);
    const span = await spanOf(trace.traceId);
    expect(span.attributes).toMatchObject({ 'genops.policy.result': 'WARNING', 'genops.policy.reason_code': 'POLICY_DENY_MODEL', 'genops.dry_run': true, 'gen_ai.request.model': 'gpt-4o' });
  });

  it('a rate-limited request carries the limit, its quota and the retry delay', async () => {
    const headers = context({ 'x-genops-team': 'product-team' });
    for (let i = 0; i < 2; i++) expect((await client.check(headers)).status.code).toBe(0);
    const trace = newTraceparent();
    const response = await client.check({ ...headers, traceparent: trace.traceparent });
    expect(response.denied_response?.status.code).toBe(429);
    const span = await spanOf(trace.traceId);
    expect(span.attributes).toMatchObject({
      'genops.policy.result': 'RATE_LIMITED',
      'genops.policy.reason_code': 'RATE_LIMITED',
      'genops.rate_limit.name': 'tiny',
      'genops.rate_limit.quota': 1,
      'genops.rate_limit.window_seconds': 3600,
      'genops.rate_limit.remaining': 0,
    });
    expect(span.attributes['genops.rate_limit.retry_after_seconds']).toBeGreaterThan(0);
  });

  it('joins a B3 trace, single header and multi header', async () => {
    const single = { traceId: randomHex(16), spanId: randomHex(8) };
    await client.check(context({ b3: `${single.traceId}-${single.spanId}-1` }));
    const multi = { traceId: randomHex(16), spanId: randomHex(8) };
    await client.check(context({ 'x-b3-traceid': multi.traceId, 'x-b3-spanid': multi.spanId, 'x-b3-sampled': '1' }));
    expect((await spanOf(single.traceId)).parentSpanId).toBe(single.spanId);
    expect((await spanOf(multi.traceId)).parentSpanId).toBe(multi.spanId);
  });

  it('starts a new trace for a request without trace context, and follows a parent that is not sampled', async () => {
    const customer = `root-${randomUUID().slice(0, 8)}`;
    const unsampled = newTraceparent(false);
    await client.check(context({ 'x-genops-customer-id': `${customer}-unsampled`, traceparent: unsampled.traceparent }));
    await client.check(context({ 'x-genops-customer-id': customer }));

    const [root] = await receiver.waitForSpans((span) => span.attributes['genops.customer_id'] === customer);
    expect(root!.parentSpanId).toBe('');
    expect(root!.traceId).toMatch(/^[0-9a-f]{32}$/);
    // Spans leave in order: the unsampled one, decided first, would have arrived by now.
    expect(receiver.spans.filter((span) => span.traceId === unsampled.traceId)).toEqual([]);
  });

  it('an ext_proc decision is a Process span, named after the request when no feature is given', async () => {
    const trace = newTraceparent();
    const reply = await extProcDecide(client, { ':method': 'POST', ':path': '/v1/embeddings?api-version=2', ...context({ 'x-genops-customer-tier': 'basic', traceparent: trace.traceparent }) });
    expect(reply.immediate_response).toBeUndefined();
    // An AI path: the decision is made on headers and body, and its mutations answer the body.
    expect(reply.request_body?.response?.header_mutation?.set_headers?.length).toBeGreaterThan(0);
    const span = await spanOf(trace.traceId);
    expect(span.parentSpanId).toBe(trace.spanId);
    expect(span.attributes).toMatchObject({
      'genops.operation.name': 'POST /v1/embeddings',
      'genops.operation.type': 'embedding',
      'genops.customer_tier': 'basic',
      'genops.route': 'claude-sonnet',
      'rpc.service': 'envoy.service.ext_proc.v3.ExternalProcessor',
      'rpc.method': 'Process',
    });
  });

  it('every span exported here conforms to GenOps 0.1.0', () => {
    expect(receiver.spans.length).toBeGreaterThan(10);
    expect(receiver.spans.flatMap(genopsViolations)).toEqual([]);
  });

  it('counts exported spans in /metrics', async () => {
    const text = await (await fetch(`${service.adminUrl}/metrics`)).text();
    const exported = Number(/^genops_spans_exported_total (\d+)$/m.exec(text)?.[1]);
    expect(exported).toBeGreaterThan(0);
    expect(exported).toBeLessThanOrEqual(receiver.spans.length);
    expect(text).toMatch(/^genops_spans_dropped_total\{reason="queue_full"\} 0$/m);
    expect(text).toMatch(/^genops_spans_dropped_total\{reason="export_failed"\} 0$/m);
  });
});
