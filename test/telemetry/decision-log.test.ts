/**
 * The decision log: one JSON line per denial (allows at debug), carrying the
 * decision id, the request's trace id and the governance context, and never
 * a credential, whatever the header casing.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { redactHeaders } from '../../src/telemetry/logger.js';
import { createGovernanceClient, type GovernanceClient } from '../support/governance-client.js';
import { startService, type RunningService } from '../support/index.js';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';
import { eventually, extProcDecide, newTraceparent, tracingEnv, writePolicy } from './telemetry-support.js';

let receiver: OtlpReceiver | undefined;
let service: RunningService | undefined;
let client: GovernanceClient | undefined;
afterEach(async () => {
  client?.close();
  await service?.stop().catch(() => undefined);
  await receiver?.stop();
  service = undefined;
  receiver = undefined;
});

async function start(env: Record<string, string>) {
  service = await startService({ policyPath: writePolicy(), env });
  client = createGovernanceClient(`${service.host}:${service.grpcPort}`);
  return { service, client };
}

const ctx = (overrides: Record<string, string> = {}) => ({
  'x-genops-team': 'ml-platform',
  'x-genops-customer-id': `cust-${randomUUID().slice(0, 8)}`,
  'x-genops-project': 'chatbot',
  'x-genops-customer-tier': 'standard',
  ...overrides,
});

function decisionLines(logs: Record<string, unknown>[]) {
  return logs.filter((line) => line.event === 'decision');
}

describe('decision log', () => {
  it('never writes a credential header value, in any casing, to a log line or a span', async () => {
    receiver = await startOtlpReceiver();
    const { service, client } = await start(tracingEnv(receiver.endpoint, { LOG_LEVEL: 'trace' }));
    const secrets = {
      authorization: `Bearer sk-live-${randomUUID()}`,
      cookie: `session=${randomUUID()}; csrftoken=${randomUUID()}`,
      apiKey: `key-${randomUUID()}`,
      proxy: `Basic ${Buffer.from(`user:${randomUUID()}`).toString('base64')}`,
    };
    const casings: Record<string, string>[] = [
      { authorization: secrets.authorization, cookie: secrets.cookie, 'x-api-key': secrets.apiKey, 'proxy-authorization': secrets.proxy },
      { Authorization: secrets.authorization, Cookie: secrets.cookie, 'X-Api-Key': secrets.apiKey, 'Proxy-Authorization': secrets.proxy },
      { AUTHORIZATION: secrets.authorization, COOKIE: secrets.cookie, 'X-API-KEY': secrets.apiKey, 'PROXY-AUTHORIZATION': secrets.proxy },
      { aUtHoRiZaTiOn: secrets.authorization, cOoKiE: secrets.cookie, 'x-ApI-kEy': secrets.apiKey, 'Proxy-authorization': secrets.proxy },
    ];
    let decisions = 0;
    for (const credentials of casings) {
      // Allowed, denied by policy, invalid context and a dry-run warning; over ext_authz (both header encodings) and ext_proc.
      for (const governance of [ctx(), ctx({ 'x-genops-team': 'marketing' }), ctx({ 'x-genops-customer-id': 'bad id!' }), ctx({ 'x-genops-team': 'ml-research', 'x-genops-model': 'gpt-4o' })]) {
        const headers = { ...credentials, ...governance, traceparent: newTraceparent().traceparent };
        await client.check(headers);
        await client.checkRaw({ attributes: { request: { http: { header_map: { headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) } } } } });
        await extProcDecide(client, headers);
        decisions += 3;
      }
    }
    await eventually(() => decisionLines(service.logs()).length === decisions, `${decisions} decision-log lines`);
    await receiver.waitForSpans(() => true, { count: decisions });

    const values = Object.values(secrets).flatMap((secret) => [secret, ...secret.split(/[ ;=]+/).filter((part) => part.length >= 16)]);
    const logText = service.process.stdoutLines.join('\n') + service.process.stderrTail();
    const spanText = JSON.stringify(receiver.spans, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
    for (const value of values) {
      expect(logText).not.toContain(value);
      expect(spanText).not.toContain(value);
    }
    expect(logText.toLowerCase()).not.toMatch(/authorization|cookie|x-api-key/);
    // The lines are there and complete: this is not a test of an empty log.
    expect(decisionLines(service.logs()).map((line) => line.result)).toEqual(expect.arrayContaining(['ALLOWED', 'BLOCKED', 'WARNING']));
  });

  it('logs each denial and dry-run warning once at info with decision id, trace id and context; allows only at debug', async () => {
    receiver = await startOtlpReceiver();
    const { service, client } = await start(tracingEnv(receiver.endpoint, { LOG_LEVEL: 'info' }));
    const denied = newTraceparent();
    const deny = await client.check({ ...ctx({ 'x-genops-team': 'marketing', 'x-genops-environment': 'prod' }), traceparent: denied.traceparent });
    const decisionId = JSON.parse(deny.denied_response!.body).decision_id as string;
    const warned = newTraceparent();
    await client.check({ ...ctx({ 'x-genops-team': 'ml-research', 'x-genops-model': 'gpt-4o' }), traceparent: warned.traceparent });
    for (let i = 0; i < 3; i++) await client.check(ctx());

    const [denialSpan] = await receiver.waitForSpans((span) => span.traceId === denied.traceId);
    const lines = await eventually(() => {
      const found = decisionLines(service.logs());
      return found.length >= 2 ? found : undefined;
    }, 'two decision-log lines');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(decisionLines(service.logs())).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      level: 'info',
      name: 'genops-mesh',
      event: 'decision',
      service: 'authz',
      decision_id: decisionId,
      trace_id: denied.traceId,
      span_id: denialSpan!.spanId,
      result: 'BLOCKED',
      reason_code: 'x_team_not_allowed',
      message: 'team marketing is not allowed to call AI services',
      team: 'marketing',
      project: 'chatbot',
      tier: 'standard',
      environment: 'prod',
      policy: 'telemetry-test',
      dry_run: false,
      msg: 'request denied',
    });
    expect(typeof lines[0]!.time).toBe('string');
    expect(lines[0]!.duration_ms).toBeGreaterThanOrEqual(0);
    expect(lines[1]).toMatchObject({ level: 'info', result: 'WARNING', reason_code: 'POLICY_DENY_MODEL', dry_run: true, trace_id: warned.traceId, msg: 'request allowed' });
  });

  it('names the request trace even when tracing is off', async () => {
    const { service, client } = await start({ OTEL_SDK_DISABLED: 'true', LOG_LEVEL: 'debug' });
    const trace = newTraceparent();
    await client.check({ ...ctx(), traceparent: trace.traceparent });
    await client.check({ ...ctx({ 'x-genops-team': 'marketing' }), b3: `${trace.traceId}-${trace.spanId}-1` });
    const lines = await eventually(() => {
      const found = decisionLines(service.logs());
      return found.length === 2 ? found : undefined;
    }, 'two decision-log lines');
    expect(lines.map((line) => [line.level, line.result, line.trace_id, line.span_id])).toEqual([
      ['debug', 'ALLOWED', trace.traceId, undefined],
      ['info', 'BLOCKED', trace.traceId, undefined],
    ]);
  });
});

describe('redactHeaders (the logger serializer for any `headers` field)', () => {
  it('masks credential headers whatever their casing and keeps the rest', () => {
    expect(
      redactHeaders({ Authorization: 'a', 'PROXY-AUTHORIZATION': 'b', Cookie: 'c', 'Set-Cookie': 'd', 'X-Api-Key': 'e', 'api-key': 'f', 'x-auth-token': 'g', 'x-genops-team': 'ml-platform', accept: '*/*' }),
    ).toEqual({
      Authorization: '[redacted]',
      'PROXY-AUTHORIZATION': '[redacted]',
      Cookie: '[redacted]',
      'Set-Cookie': '[redacted]',
      'X-Api-Key': '[redacted]',
      'api-key': '[redacted]',
      'x-auth-token': '[redacted]',
      'x-genops-team': 'ml-platform',
      accept: '*/*',
    });
  });
});
