import { describe, expect, it } from 'vitest';
import { createAuthzAdapter } from '../../src/envoy/authz-adapter.js';
import type { DecisionReporter } from '../../src/envoy/decision-reporter.js';
import type { ProcessingRequest } from '../../src/envoy/envoy-messages.js';
import { createExtProcSessionFactory } from '../../src/envoy/ext-proc-session.js';
import { createDecisionEngine } from '../../src/governance/decision-engine.js';
import { createGovernor } from '../../src/governance/governor.js';
import type { Decision } from '../../src/governance/decision.js';
import { DEFAULT_POLICY_PATH } from '../../src/policy/default-policy.js';
import { loadPolicyFile } from '../../src/policy/policy-store.js';

const policy = loadPolicyFile(DEFAULT_POLICY_PATH);
function parts() {
  const reported: Decision[] = [];
  const reporter: DecisionReporter = { report: (_service, decision) => reported.push(decision) };
  let counter = 0;
  const engine = createDecisionEngine({ policy: () => policy, newDecisionId: () => `decision-${++counter}` });
  return { reported, reporter, governor: createGovernor({ engine }), now: () => 0 };
}

const allowedHeaders = { ':method': 'GET', ':path': '/v1/models', 'x-genops-team': 'ML-Platform', 'x-genops-customer-id': 'acme', 'x-genops-project': 'chatbot', 'x-genops-customer-tier': 'premium', 'x-genops-route': 'spoofed' };
const headerMap = (headers: Record<string, string>) => ({
  headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })),
});
const text = (value: Buffer | Uint8Array | undefined) => Buffer.from(value ?? []).toString('utf8');

describe('ext_authz adapter', () => {
  it('allows with the route, decision id and normalized context as overwriting upstream headers', async () => {
    const { governor, reporter, reported, now } = parts();
    const response = await createAuthzAdapter({ governor, reporter, now, policy: () => policy }).check({ attributes: { request: { http: { path: '/v1/chat', headers: allowedHeaders } } } });
    expect(response.status.code).toBe(0);
    const upstream = Object.fromEntries(response.ok_response!.headers.map((option) => [option.header.key, option.header.value]));
    expect(upstream).toEqual({
      'x-genops-decision-id': 'decision-1',
      'x-genops-route': 'claude-opus',
      'x-genops-team': 'ml-platform',
      'x-genops-customer-id': 'acme',
      'x-genops-project': 'chatbot',
      'x-genops-customer-tier': 'premium',
    });
    expect(response.ok_response!.headers.every((option) => option.append?.value === false)).toBe(true);
    expect(response.ok_response!.response_headers_to_add).toEqual([{ header: { key: 'x-genops-decision-id', value: 'decision-1' }, append: { value: false } }]);
    expect(reported.map((decision) => decision.result)).toEqual(['ALLOWED']);
  });

  it('reads header_map (encode_raw_headers) as well as the headers map', async () => {
    const { governor, reporter, now } = parts();
    const response = await createAuthzAdapter({ governor, reporter, now, policy: () => policy }).check({ attributes: { request: { http: { header_map: headerMap(allowedHeaders) } } } });
    expect(response.status.code).toBe(0);
  });

  it('denies with the HTTP status, a JSON body and the decision id header', async () => {
    const { governor, reporter, now } = parts();
    const response = await createAuthzAdapter({ governor, reporter, now, policy: () => policy }).check({ attributes: { request: { http: { headers: { ...allowedHeaders, 'x-genops-team': 'marketing' } } } } });
    expect(response.status.code).toBe(7);
    expect(response.denied_response!.status.code).toBe(403);
    expect(JSON.parse(response.denied_response!.body)).toEqual({
      error: 'forbidden',
      reason_code: 'x_team_not_allowed',
      message: 'team marketing is not allowed to call AI services',
      decision_id: 'decision-1',
    });
    const headers = Object.fromEntries(response.denied_response!.headers.map((option) => [option.header.key, option.header.value]));
    expect(headers).toEqual({ 'content-type': 'application/json', 'x-genops-decision-id': 'decision-1' });
  });

  it('answers a CheckRequest without HTTP attributes with 400 x_malformed_request', async () => {
    const { governor, reporter, now } = parts();
    const response = await createAuthzAdapter({ governor, reporter, now, policy: () => policy }).check({});
    expect(response.status.code).toBe(3);
    expect(response.denied_response!.status.code).toBe(400);
    expect(JSON.parse(response.denied_response!.body).reason_code).toBe('x_malformed_request');
  });
});

describe('ext_proc session', () => {
  it('answers every message kind with exactly one reply of the matching kind', async () => {
    const { governor, reporter, now } = parts();
    const session = createExtProcSessionFactory({ governor, reporter, now, policy: () => policy }).open();
    const kinds: [ProcessingRequest, string][] = [
      [{ request_headers: { headers: headerMap(allowedHeaders), end_of_stream: true } }, 'request_headers'],
      [{ request_body: { body: Buffer.from('{}'), end_of_stream: true } }, 'request_body'],
      [{ request_trailers: { trailers: headerMap({ 'grpc-status': '0' }) } }, 'request_trailers'],
      [{ response_headers: { headers: headerMap({ ':status': '200' }) } }, 'response_headers'],
      [{ response_body: { body: Buffer.from('data: {}\n\n') } }, 'response_body'],
      [{ response_trailers: { trailers: headerMap({}) } }, 'response_trailers'],
    ];
    for (const [request, kind] of kinds) {
      const reply = await session.handle(request);
      expect(Object.keys(reply!).filter((key) => key !== 'mode_override')).toEqual([kind]);
    }
  });

  it('continues an allowed request with raw_value header mutations and clears the route cache', async () => {
    const { governor, reporter, now } = parts();
    const session = createExtProcSessionFactory({ governor, reporter, now, policy: () => policy }).open();
    const reply = await session.handle({ request_headers: { headers: headerMap(allowedHeaders), end_of_stream: true } }) as { request_headers: { response: { status: string; clear_route_cache: boolean; header_mutation: { set_headers: { header: { key: string; value?: string; raw_value: Buffer }; append_action: string }[] } } } };
    const { response } = reply.request_headers;
    expect(response.status).toBe('CONTINUE');
    expect(response.clear_route_cache).toBe(true);
    const set = Object.fromEntries(response.header_mutation.set_headers.map((option) => [option.header.key, text(option.header.raw_value)]));
    expect(set['x-genops-route']).toBe('claude-opus');
    expect(set['x-genops-team']).toBe('ml-platform');
    for (const option of response.header_mutation.set_headers) {
      expect(option.header.value).toBeUndefined();
      expect(option.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    }
    const responseReply = await session.handle({ response_headers: { headers: headerMap({ ':status': '200' }) } }) as { response_headers: { response: { header_mutation: { set_headers: { header: { key: string; raw_value: Buffer } }[] } } } };
    const clientSet = responseReply.response_headers.response.header_mutation.set_headers;
    expect(clientSet.map((option) => [option.header.key, text(option.header.raw_value)])).toEqual([['x-genops-decision-id', set['x-genops-decision-id']]]);
  });

  it('denies with an immediate response carrying the status, JSON body and headers', async () => {
    const { governor, reporter, now } = parts();
    const session = createExtProcSessionFactory({ governor, reporter, now, policy: () => policy }).open();
    const reply = await session.handle({ request_headers: { headers: headerMap({ ...allowedHeaders, 'x-genops-customer-tier': 'basic', 'x-genops-model': 'claude-opus' }), end_of_stream: true } }) as { immediate_response: { status: { code: number }; body: Buffer; details: string; headers: { set_headers: { header: { key: string; raw_value: Buffer } }[] } } };
    expect(reply.immediate_response.status.code).toBe(403);
    expect(JSON.parse(text(reply.immediate_response.body))).toMatchObject({ reason_code: 'POLICY_DENY_MODEL', decision_id: 'decision-1' });
    expect(reply.immediate_response.details).toBe('genops_POLICY_DENY_MODEL');
    expect(reply.immediate_response.headers.set_headers.map((option) => [option.header.key, text(option.header.raw_value)])).toEqual([
      ['content-type', 'application/json'],
      ['x-genops-decision-id', 'decision-1'],
    ]);
  });

  it('reads the peer principal from the ext_proc attributes', async () => {
    const { governor, reporter, reported, now } = parts();
    const session = createExtProcSessionFactory({ governor, reporter, now, policy: () => policy }).open();
    await session.handle({
      request_headers: { headers: headerMap(allowedHeaders), end_of_stream: true },
      attributes: { 'envoy.filters.http.ext_proc': { fields: { 'source.principal': { stringValue: 'spiffe://cluster.local/ns/a/sa/b' } } } },
    });
    expect(reported[0]!.principal).toBe('spiffe://cluster.local/ns/a/sa/b');
  });

  it('sends nothing back in observability mode, and rejects a message of no known kind', async () => {
    const { governor, reporter, now } = parts();
    const session = createExtProcSessionFactory({ governor, reporter, now, policy: () => policy }).open();
    expect(await session.handle({ observability_mode: true, request_headers: { headers: headerMap(allowedHeaders), end_of_stream: true } })).toBeUndefined();
    expect(() => session.handle({})).toThrow('ProcessingRequest carries none of the request kinds this service knows');
  });
});

describe('ext_proc session: an exchange ends exactly once', () => {
  it('releases (settles as not_sent) a decision that resolves after Envoy ended the stream', async () => {
    const { reporter } = parts();
    let release: (decision: Decision) => void = () => undefined;
    const slowGovernor = { evaluate: (input: Parameters<ReturnType<typeof createGovernor>['evaluate']>[0]) => new Promise<Decision>((resolve) => { release = (decision) => resolve(decision); void input; }) };
    const settled: string[] = [];
    const session = createExtProcSessionFactory({ governor: slowGovernor, reporter, now: () => 0, policy: () => policy, settle: (exchange) => settled.push(exchange.outcome) }).open();
    await session.handle({ request_headers: { headers: headerMap({ ...allowedHeaders, ':method': 'POST', ':path': '/v1/chat/completions' }) } });
    const pending = session.handle({ request_body: { body: Buffer.from('{"model":"claude-sonnet-4-5","messages":[]}'), end_of_stream: true } });
    session.close();
    const engine = createDecisionEngine({ policy: () => policy, newDecisionId: () => 'late' });
    release(engine.decide({ headers: (name) => (allowedHeaders as Record<string, string>)[name], ai: { request: { api: 'openai.chat', model: 'claude-sonnet-4-5', stream: false, outputCap: undefined, n: 1, inputEstimateTokens: 1, needsIncludeUsage: false } } }));
    await pending;
    session.close();
    expect(settled).toEqual(['not_sent']);
  });

  it('settles a completed exchange once, however the stream ends afterwards', async () => {
    const { governor, reporter } = parts();
    const settled: string[] = [];
    const session = createExtProcSessionFactory({ governor, reporter, now: () => 0, policy: () => policy, settle: (exchange) => settled.push(exchange.outcome) }).open();
    await session.handle({ request_headers: { headers: headerMap({ ...allowedHeaders, ':method': 'POST', ':path': '/v1/chat/completions' }) } });
    await session.handle({ request_body: { body: Buffer.from('{"model":"claude-sonnet-4-5","messages":[]}'), end_of_stream: true } });
    await session.handle({ response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) } });
    await session.handle({ response_body: { body: Buffer.from('{"model":"claude-sonnet-4-5","usage":{"prompt_tokens":5,"completion_tokens":2}}'), end_of_stream: true } });
    session.close();
    session.close();
    expect(settled).toEqual(['completed']);
  });
});
