/**
 * The acceptance path, through the real Envoy in both modes: a
 * request with a traceparent shows up as a decision span inside its own
 * trace with the governance attributes, in /metrics under its team and tier,
 * and a denial shows up in the decision log with the same decision id.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest, startGovernanceStack, startUpstream, type EnvoyMode, type GovernanceStack, type Upstream } from '../support/index.js';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';
import { genopsViolations } from './genops-conformance.js';
import { eventually, newTraceparent, scrape, tracingEnv } from './telemetry-support.js';

describe.each<EnvoyMode>(['ext-authz', 'ext-proc'])('%s: decision spans and metrics through the real Envoy', (mode) => {
  const service = mode === 'ext-authz' ? 'authz' : 'ext_proc';
  let receiver: OtlpReceiver;
  let upstream: Upstream;
  let stack: GovernanceStack;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    upstream = await startUpstream();
    stack = await startGovernanceStack({ mode, upstreamPort: upstream.port, serviceEnv: tracingEnv(receiver.endpoint) });
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.stop();
    await receiver?.stop();
  });

  it('an allowed request is a span in its own trace, with its decision id, and counted under its team and tier', async () => {
    const trace = newTraceparent();
    const customer = `env-${randomUUID().slice(0, 8)}`;
    const response = await httpRequest(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        traceparent: trace.traceparent,
        'x-genops-team': 'data-science',
        'x-genops-customer-id': customer,
        'x-genops-project': `proj-${mode}`,
        'x-genops-customer-tier': 'standard',
        'x-genops-environment': 'staging',
      },
      body: '{"model":"claude-haiku"}',
    });
    expect(response.status, response.body).toBe(200);
    const decisionId = response.header('x-genops-decision-id');
    expect(decisionId).toMatch(/^[0-9a-f-]{36}$/);
    // Envoy (no tracer configured) forwards the client's traceparent unchanged.
    expect(upstream.requests.at(-1)?.headers.traceparent).toBe(trace.traceparent);

    const [span] = await receiver.waitForSpans((candidate) => candidate.traceId === trace.traceId && candidate.name === 'genops.policy.evaluate');
    expect(span!.parentSpanId).toBe(trace.spanId);
    expect(span!.name).toBe('genops.policy.evaluate');
    expect(span!.kind).toBe('SPAN_KIND_SERVER');
    expect(span!.attributes).toMatchObject({
      'genops.spec.version': '0.1.0',
      'genops.team': 'data-science',
      'genops.project': `proj-${mode}`,
      'genops.environment': 'staging',
      'genops.customer_id': customer,
      'genops.customer_tier': 'standard',
      'genops.operation.name': 'POST /v1/chat/completions',
      'genops.operation.type': 'inference',
      'genops.policy.result': 'ALLOWED',
      'genops.decision.id': decisionId,
      'genops.route': 'claude-haiku',
    });
    expect(span!.attributes).not.toHaveProperty('genops.policy.reason_code');
    if (mode === 'ext-proc') {
      // ext_proc read the response too: a usage span beside the decision, in the same trace. This
      // upstream echoes instead of reporting usage, so the tokens are estimated.
      const [usage] = await receiver.waitForSpans((candidate) => candidate.traceId === trace.traceId && candidate.name === 'genops.usage');
      expect(usage!.parentSpanId).toBe(trace.spanId);
      expect(usage!.attributes).toMatchObject({ 'genops.team': 'data-science', 'genops.decision.id': decisionId, 'genops.cost.model': 'claude-haiku', 'genops.cost.currency': 'USD', 'genops.usage.estimated': true, 'genops.usage.outcome': 'ended_without_usage', 'gen_ai.request.model': 'claude-haiku' });
      expect(usage!.attributes['genops.tokens.input']).toBeGreaterThan(0);
    }

    const metrics = await scrape(stack.service.adminUrl);
    expect(metrics.value('genops_requests_total', { service, decision: 'ALLOWED', genops_team: 'data-science', genops_project: `proj-${mode}`, genops_tier: 'standard' })).toBe(1);
    expect(metrics.value('genops_decision_duration_seconds_count', { service })).toBeGreaterThanOrEqual(1);
  });

  it('a denial is a span in its trace and a decision-log line with the same decision id and trace id', async () => {
    const trace = newTraceparent();
    const response = await httpRequest(`${stack.url}/v1/messages`, {
      method: 'POST',
      headers: { traceparent: trace.traceparent, 'x-genops-team': 'product-team', 'x-genops-customer-id': 'acme', 'x-genops-project': 'bot', 'x-genops-model': 'gpt-4o', 'x-genops-customer-tier': 'basic', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', max_tokens: 64, messages: [{ role: 'user', content: 'Hello' }] }),
    });
    expect(response.status).toBe(403);
    const body = response.json<{ decision_id: string; reason_code: string }>();
    expect(body.reason_code).toBe('POLICY_DENY_MODEL');

    const [span] = await receiver.waitForSpans((candidate) => candidate.traceId === trace.traceId);
    expect(span!.parentSpanId).toBe(trace.spanId);
    expect(span!.attributes).toMatchObject({
      'genops.decision.id': body.decision_id,
      'genops.policy.result': 'BLOCKED',
      'genops.policy.reason_code': 'POLICY_DENY_MODEL',
      'genops.team': 'product-team',
      'gen_ai.request.model': 'gpt-4o',
    });

    const line = await eventually(() => stack.service.logs().find((entry) => entry.event === 'decision' && entry.decision_id === body.decision_id), 'the decision-log line');
    expect(line).toMatchObject({
      level: 'info',
      service,
      decision_id: body.decision_id,
      trace_id: trace.traceId,
      span_id: span!.spanId,
      team: 'product-team',
      project: 'bot',
      tier: 'basic',
      result: 'BLOCKED',
      reason_code: 'POLICY_DENY_MODEL',
      msg: 'request denied',
    });
    const metrics = await scrape(stack.service.adminUrl);
    expect(metrics.value('genops_requests_total', { service, decision: 'BLOCKED', reason_code: 'POLICY_DENY_MODEL', genops_team: 'product-team', genops_tier: 'basic', model: 'gpt-4o' })).toBe(1);
  });

  it('every span exported through Envoy conforms to GenOps 0.1.0', () => {
    // A decision span for each request, and on ext_proc a usage span for the allowed one.
    expect(receiver.spans).toHaveLength(mode === 'ext-proc' ? 3 : 2);
    expect(receiver.spans.flatMap(genopsViolations)).toEqual([]);
  });
});
